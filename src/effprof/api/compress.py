"""The compress job: run a config's compression steps on a model, every step one run.

The dense model is measured first (run ``dense``); then each step of the config runs on the
model it starts from and writes a run of kind ``compress`` in one group (the pipeline), whose
``parent`` is the run of the model the step started from. A run is published only when its step
has finished, so an interrupted compress leaves the finished steps' runs intact; ``resume=True``
skips every step whose hash (the pipeline's settings, the step and the chain of steps that made
the model it starts from) already has a finished run in the store, reloading the models those steps
saved.

>>> run_dirs = compress(load_config(CompressConfig, "configs/compress-quick.yaml"))  # doctest: +SKIP
>>> summary_frame(run_dirs)                                                          # doctest: +SKIP
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch

from effprof.api.compress_measure import Context, Stage, count_macs
from effprof.api.compress_steps import STEPS, dense_step
from effprof.api.retime import retime_pipeline
from effprof.compress.prune import PruneSpec, check_target
from effprof.compress.recover import frozen
from effprof.compress.reload import load_pruned
from effprof.compress.significance import Calibration
from effprof.config import validate
from effprof.config.compress import DENSE, MODEL_STEPS, CompressConfig, PruneStep, RecoverStep
from effprof.data import TEST_SEED, heldout_pairs, synthetic_pairs
from effprof.measure.environment import collect_environment, resolve_device
from effprof.measure.precision import num_threads
from effprof.models import check_variant, get_entry, load_model, resolve_weights
from effprof.results import EffprofError
from effprof.runs import RunStoreWarning, RunWriter, check_writable, read_record, scan_runs
from effprof.runs.store import new_run_id
from effprof.train import Silent

CALIBRATION_SEED = 3  # calibration crops for significance and pruning (calibration split)

EventKind = Literal["start", "skip", "done", "phase", "train"]


@dataclass(frozen=True)
class CompressEvent:
    """Progress of a compress job: a step starts / is skipped (resume) / is done, a phase within
    it begins, or recovery training moved on; ``index`` counts the dense run as 0."""

    kind: EventKind
    index: int
    total: int
    label: str
    detail: str = ""
    run_dir: Path | None = None


CompressProgress = Callable[[CompressEvent], None]


class _TrainEvents(Silent):
    """The training loop's progress, passed on as ``train`` events of the current step."""

    def __init__(self, emit: Callable[[EventKind, str], None]) -> None:
        self.emit = emit
        self.total = 0

    def start(self, total_steps: int, first_step: int) -> None:
        self.total = total_steps

    def step(self, step: int, loss: float | None, lr: float) -> None:
        loss_text = f" loss {loss:.4f}" if loss is not None else ""
        self.emit("train", f"step {step}/{self.total}{loss_text} lr {lr:.1e}")


@dataclass(frozen=True)
class _Plan:
    """One entry per run: label, the step (None for dense), its hash and the model it starts from."""

    label: str
    step: Any
    step_hash: str
    source: str | None


def _plan(config: CompressConfig) -> list[_Plan]:
    plans = [_Plan(DENSE, None, config.pipeline_hash(), None)]
    for label, step, step_hash, source in zip(
        config.labels(), config.steps, config.step_hashes(), config.sources(), strict=True
    ):
        plans.append(_Plan(label, step, step_hash, source))
    return plans


def _check(config: CompressConfig) -> tuple[str | None, str, int]:
    """Everything about the input that can be wrong without loading the model."""
    variant = check_variant(config.model, config.variant)
    device = resolve_device(config.device)
    entry = get_entry(config.model)
    multiple = entry.input_multiple
    sizes = [("test_size", config.test_size), ("calibration_size", config.calibration_size)]
    sizes += [
        (f"steps.{i}.crop", s.crop)
        for i, s in enumerate(config.steps)
        if isinstance(s, RecoverStep)
    ]
    for name, size in sizes:
        if size % multiple:
            raise EffprofError(f"{name} {size} must be a multiple of {multiple} for {config.model}")
    if config.weights is not None:
        path = resolve_weights(config.model, variant, config.weights)
        if not path.is_file():
            raise EffprofError(f"weights {config.weights!r} do not exist")
    return variant, device, multiple


def _check_targets(ctx: Context, dense: Any, plans: list[_Plan]) -> None:
    """Refuse prune targets that cannot be reached, before any run is written: exactly for steps
    starting from the dense model, by order (a lower target than the model they start from) else."""
    fraction = {DENSE: 1.0}
    for index, plan in enumerate(plans[1:]):
        step = plan.step
        if isinstance(step, PruneStep):
            start = fraction[plan.source]
            where = f"steps.{index} ({plan.label})"
            if step.target_macs >= start:
                raise EffprofError(
                    f"{where}: target_macs {step.target_macs:g} is not below the {start:g} of the "
                    f"dense MACs that {plan.source} keeps"
                )
            if plan.source == DENSE:
                spec = PruneSpec(step.target_macs, step.criterion, step.steps, step.round_to,
                                 step.round_all)  # fmt: skip
                try:
                    check_target(dense, spec, ctx.calibration)
                except EffprofError as err:
                    raise EffprofError(f"{where}: {err}") from None
        if step.step in MODEL_STEPS:
            fraction[plan.label] = (
                step.target_macs if isinstance(step, PruneStep) else fraction[plan.source]
            )


def _calibration(config: CompressConfig, forward_kwargs: dict[str, Any]) -> Calibration:
    pairs = synthetic_pairs(
        "calibration", config.calibration_count, config.calibration_size, CALIBRATION_SEED
    )
    size = config.calibration_batch
    batches = [
        (
            torch.stack([p.blurry for p in pairs[i : i + size]]),
            torch.stack([p.sharp for p in pairs[i : i + size]]),
        )
        for i in range(0, len(pairs), size)
    ]
    return Calibration(batches, forward_kwargs=forward_kwargs)


def _finished(config: CompressConfig) -> tuple[str | None, dict[str, tuple[Path, Any]]]:
    """The latest pipeline group of this config in the store and its finished runs by step hash."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RunStoreWarning)
        runs = [
            (path, record)
            for path, record in scan_runs(config.out)
            if record.kind == "compress"
            and record.status == "finished"
            and record.params.get("pipeline_hash") == config.pipeline_hash()
        ]
    if not runs:
        return None, {}
    group = max(runs, key=lambda run: run[1].created)[1].group
    return group, {r.params["step_hash"]: (p, r) for p, r in runs if r.group == group}


def _notes(config: CompressConfig, ctx: Context, weights_note: str) -> list[str]:
    c = config
    return [
        weights_note,
        f"quality: {len(ctx.pairs)} held-out synthetic crops of {c.test_size} px from the test "
        f"images (seed {TEST_SEED}); PSNR/SSIM on RGB in [0, 1], outputs clipped; fidelity_*: "
        "PSNR/SSIM against the dense model's output",
        f"macs: effprof's counter at 1x3x{c.test_size}x{c.test_size}; latency: batch 1 at that "
        f"size, {c.latency_warmup} warm-ups, median of {c.latency_repeat}, torch and ONNX Runtime "
        f"(CPU provider) with {c.threads or 'default'} intra-op threads",
        f"calibration: {c.calibration_count} crops of {c.calibration_size} px from the "
        f"calibration images (seed {CALIBRATION_SEED}), batches of {c.calibration_batch}",
        "file_bytes: size on disk of the file this step stores",
    ]


def compress(
    config: CompressConfig | None = None,
    /,
    *,
    progress: CompressProgress | None = None,
    retime_rounds: int = 1,
    **options: Any,
) -> list[Path]:
    """Run the compression pipeline of ``config`` (or keyword options); one run per step.

    Returns the run folders in step order (the dense baseline first), including runs reused by
    ``resume``. At the end the models are timed again together, interleaved, in
    ``retime_rounds`` rounds (0: not), into a ``retime`` run of the same group
    (:func:`effprof.api.retime.retime_pipeline`).
    """
    data = {**(config.model_dump(by_alias=True) if config else {}), **options}
    config = validate(CompressConfig, data, "compress options")
    variant, device, multiple = _check(config)
    plans = _plan(config)
    emit_to = progress or (lambda event: None)
    state = {"index": 0, "label": DENSE}

    def emit(kind: EventKind, detail: str = "", run_dir: Path | None = None) -> None:
        emit_to(CompressEvent(kind, state["index"], len(plans), state["label"], detail, run_dir))

    check_writable(config.out)
    with num_threads(config.threads):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)  # without weights, the same random model on every (re)run
            dense = load_model(config.model, variant, weights=config.weights, device="cpu")
        ctx = Context(
            config=config,
            variant=variant,
            device=device,
            multiple=multiple,
            teacher=frozen(copy.deepcopy(dense)).to(device),
            pairs=heldout_pairs(config.test_count, config.test_size),
            calibration=_calibration(config, get_entry(config.model).forward_all_kwargs()),
            phase=lambda text: emit("phase", text),
            train_progress=_TrainEvents(emit),
        )
        ctx.dense_macs = count_macs(ctx, dense)
        _check_targets(ctx, dense, plans)
        group, done = _finished(config) if config.resume else (None, {})
        group = group or new_run_id("pipeline", config.model, variant)
        weights_note = (
            f"weights: {config.weights}"
            if config.weights
            else "no weights given: random weights (seed 0), quality numbers are meaningless"
        )
        notes = _notes(config, ctx, weights_note)
        env = collect_environment(device)
        stages: dict[str, Stage] = {}
        paths: list[Path] = []
        for index, plan in enumerate(plans):
            state.update(index=index, label=plan.label)
            source = stages[plan.source] if plan.source else Stage(dense, DENSE)
            trained = source.trained_steps + (plan.step.steps if _is_recover(plan) else 0)
            pruned = source.pruned or isinstance(plan.step, PruneStep)
            if plan.step_hash in done:
                path, record = done[plan.step_hash]
                emit("skip", f"finished earlier: {record.run_id}", path)
                model = None
                if plan.step is None or plan.step.step in MODEL_STEPS:
                    model = dense if plan.step is None else load_pruned(path)
            else:
                emit("start", plan.step.step if plan.step else DENSE)
                params = _params(config, plan, index, trained, pruned)
                path, model = _run(ctx, config, variant, plan, source, params, group, notes, env)
                emit("done", "", path)
            paths.append(path)
            if model is not None:
                stages[plan.label] = Stage(
                    model, plan.label, path.name, path, trained_steps=trained, pruned=pruned
                )
        if retime_rounds:  # the models timed again together: ratios within one round
            emit("phase", f"re-timing the models interleaved ({retime_rounds} round(s))")
            retime_pipeline(paths, out=config.out, model=config.model, variant=variant,
                            group=group, env=env, rounds=retime_rounds)  # fmt: skip
    return paths


def _is_recover(plan: _Plan) -> bool:
    return isinstance(plan.step, RecoverStep)


def _params(
    config: CompressConfig, plan: _Plan, index: int, trained: int, pruned: bool
) -> dict[str, Any]:
    pipeline = config.model_dump(mode="json", exclude={"steps", "out", "resume", "progress"})
    return {
        "step": plan.label,
        "method": plan.step.step if plan.step else DENSE,
        "index": index,
        "source": plan.source,
        "settings": plan.step.model_dump(mode="json", by_alias=True) if plan.step else {},
        "pipeline": pipeline,
        "pipeline_hash": config.pipeline_hash(),
        "step_hash": plan.step_hash,
        "trained_steps": trained,
        "pruned": pruned,
    }


def _run(
    ctx: Context,
    config: CompressConfig,
    variant: str | None,
    plan: _Plan,
    source: Stage,
    params: dict[str, Any],
    group: str,
    notes: list[str],
    env: dict[str, Any],
) -> tuple[Path, Any]:
    """Run one step into its own run folder; nothing of it remains if it fails."""
    writer = RunWriter(
        config.out,
        "compress",
        config.model,
        variant,
        params=params,
        run_id=new_run_id(f"compress-{plan.label}", config.model, variant),
        group=group,
        parent=source.run_id if plan.step is not None else None,
    ).start()
    try:
        if plan.step is None:
            output = dense_step(ctx, source, writer)
        else:
            output = STEPS[plan.step.step](ctx, source, plan.step, writer)
        path = writer.finish(output.metrics, env, [*notes, *output.notes])
    except BaseException:
        writer.abandon()
        raise
    return path, (source.model if plan.step is None else output.model)


# ---- the summary the CLI shows ------------------------------------------------------------------

SUMMARY_COLUMNS = [
    "step", "method", "source", "param_count", "macs", "file_bytes", "torch_latency_ms",
    "ort_latency_ms", "test_psnr_db", "test_ssim", "fidelity_psnr_db", "size_x", "macs_ratio",
    "torch_speedup", "ort_speedup", "psnr_delta_db", "reference", "quality_delta_db", "run_id",
    "group",
]  # fmt: skip


def summary_frame(run_dirs: Sequence[str | Path]) -> pd.DataFrame:
    """One row per compress run (LightGaussian's table): size ``x`` smaller than dense, MAC ratio,
    speed-ups over dense (torch and ORT, each against the same runtime), PSNR change against dense
    and ``quality_delta_db`` against the uncompressed model with the same extra training
    (``reference``: dense, or a recover step from dense with as many training steps)."""
    rows = []
    for run_dir in run_dirs:
        record = read_record(run_dir)
        m, p = record.metrics, record.params
        rows.append({
            "step": p.get("step"), "method": p.get("method"), "source": p.get("source"),
            "param_count": m.get("param_count"), "macs": m.get("macs"),
            "file_bytes": m.get("file_bytes"),
            "torch_latency_ms": m.get("torch_latency_median_ms"),
            "ort_latency_ms": m.get("ort_latency_median_ms"),
            "test_psnr_db": m.get("test_psnr_db"), "test_ssim": m.get("test_ssim"),
            "fidelity_psnr_db": m.get("fidelity_psnr_db"),
            "trained_steps": p.get("trained_steps", 0), "pruned": p.get("pruned", False),
            "run_id": record.run_id, "group": record.group,
        })  # fmt: skip
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    numeric = ["param_count", "macs", "file_bytes", "torch_latency_ms", "ort_latency_ms",
               "test_psnr_db", "test_ssim", "fidelity_psnr_db"]  # fmt: skip
    frame[numeric] = frame[numeric].apply(pd.to_numeric, errors="coerce")
    base = frame[frame["method"] == DENSE]
    base = base.iloc[0] if len(base) else frame.iloc[0]
    frame["size_x"] = base["file_bytes"] / frame["file_bytes"]
    frame["macs_ratio"] = frame["macs"] / base["macs"]
    frame["torch_speedup"] = base["torch_latency_ms"] / frame["torch_latency_ms"]
    frame["ort_speedup"] = base["ort_latency_ms"] / frame["ort_latency_ms"]
    frame["psnr_delta_db"] = frame["test_psnr_db"] - base["test_psnr_db"]
    controls = frame[~frame["pruned"].astype(bool) & frame["method"].isin([DENSE, "recover"])]
    by_steps = {int(r.trained_steps): r for r in controls.itertuples()}
    references = [by_steps.get(int(t)) for t in frame["trained_steps"]]
    frame["reference"] = [r.step if r is not None else None for r in references]
    frame["quality_delta_db"] = [
        q - r.test_psnr_db if r is not None else np.nan
        for q, r in zip(frame["test_psnr_db"], references, strict=True)
    ]
    return frame[SUMMARY_COLUMNS]


__all__ = ["CompressEvent", "CompressProgress", "compress", "summary_frame"]
