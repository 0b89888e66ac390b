"""Stored runs' models timed again, together, interleaved (:mod:`effprof.measure.interleave`).

A run's latency was measured when the run was made, possibly minutes or days from the run it
is compared with, under another load. Here every model a set of runs can give back is timed in
one interleaved measurement and compared within each round:

* a compress run: its pruned / recovered torch model (``structure.json`` + ``weights.pt``) and
  its ONNX files (fp32, fp16, INT8), at the inputs its pipeline used (the run's
  ``params.task.input_spec``: any number of tensors, shapes and dtypes; a run made before it was
  recorded: its described shape, else the pipeline's square image) and thread count;
* a profile run: its model rebuilt from the run's options (a registered name or an importable
  ``module:callable``, its weights file if it still exists), at the run's inputs, precision and
  the thread count the run timed with.

A run that gives no model back is listed with the reason (``skipped``).

>>> retimed = retime_runs([dense_dir, pruned_dir], rounds=1)  # doctest: +SKIP
>>> retimed.summary()[["candidate", "run_id", "ratio", "ratio_reliable"]]  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd
from torch import nn

from effprof import schema as S
from effprof.compression.reload import STRUCTURE_FILE, load_pruned
from effprof.config import ProfileConfig, validate, validate_fields
from effprof.config.compress import CompressConfig
from effprof.measure.interleave import Candidate, Interleaved, time_interleaved
from effprof.measure.onnx import check_onnx_file
from effprof.measure.session import LatencySpec
from effprof.models import load_subject, subject_of_module, to_inputs
from effprof.models.inputs import InputSpec, image_inputs
from effprof.models.trust import check_buildable
from effprof.recipes.compress_data import stored_inputs
from effprof.recipes.profile.target import check_config, resolve_target
from effprof.results import EffprofError
from effprof.runs import RunRecord, RunWriter, read_record

ONNX_FILES = (("model.onnx", "ort fp32"), ("model-fp16.onnx", "ort fp16"),
              ("model-int8.onnx", "ort int8"))  # fmt: skip
RETIME_KIND = "retime"
# A stored run is data: its protocol is followed up to these bounds, and its input size too
# (a damaged run asking for 100,000 repeats or a 30-gigapixel input must not hang a comparison).
MAX_RETIME_WARMUP = 10
MAX_RETIME_REPEAT = 200
MAX_RETIME_VALUES = 2**28  # 1 GiB of float32 input values


@dataclass(frozen=True)
class Retimed:
    """The interleaved timing (None when no run gave a model back), which run each candidate came
    from, and the runs skipped with the reason."""

    timing: Interleaved | None
    origins: pd.DataFrame  # candidate, run_id, run_dir, step, label
    skipped: tuple[str, ...]

    def summary(self) -> pd.DataFrame:
        """Per candidate: the run it came from, median over rounds, ratio, reliability."""
        if self.timing is None:
            return self.origins
        return self.origins.merge(self.timing.summary(), on="candidate", how="right")


Builders = Mapping[str, Callable[[], nn.Module]]


def _stored_timing(record: RunRecord) -> dict[str, Any]:
    """A compress run's input size and timing settings, each checked by the config's own bounds
    (a stored run is data: a list, a text or a billion repeats are refused)."""
    pipeline = record.params.get("pipeline", {})
    if not isinstance(pipeline, dict):
        raise EffprofError("its params.pipeline is not an object")
    names = ("test_size", "latency_warmup", "latency_repeat", "threads")
    given = {name: pipeline[name] for name in names if name in pipeline}
    settings = validate_fields(CompressConfig, given, f"the pipeline of run {record.run_id}")
    return {"test_size": 256, "latency_warmup": 2, "latency_repeat": 10, "threads": None} | settings


def _bounded(spec: LatencySpec) -> LatencySpec:
    """The stored protocol, at most :data:`MAX_RETIME_WARMUP` / :data:`MAX_RETIME_REPEAT`."""
    return replace(
        spec, warmup=min(spec.warmup, MAX_RETIME_WARMUP), repeat=min(spec.repeat, MAX_RETIME_REPEAT)
    )


def pipeline_inputs(record: RunRecord, test_size: int) -> InputSpec:
    """The inputs a compress run's models were measured at: its recorded input spec; for a run
    made before that was recorded, its described shape (``1x3x32x32``), else the pipeline's
    ``test_size`` square image. At most :data:`MAX_RETIME_VALUES` values."""
    task = record.params.get("task")
    task = task if isinstance(task, dict) else {}
    where = f"the inputs of run {record.run_id}"
    if "input_spec" in task:
        inputs = stored_inputs(task["input_spec"], where)
    elif "inputs" in task:
        try:
            inputs = to_inputs(str(task["inputs"]), where)
        except EffprofError:  # a description of several tensors is not a shape
            raise EffprofError(
                f"its inputs ({str(task['inputs'])[:200]}) were recorded as text only and "
                "cannot be rebuilt"
            ) from None
    else:
        inputs = image_inputs((1, 3, test_size, test_size), where)
    if inputs.numel() > MAX_RETIME_VALUES:
        raise EffprofError(
            f"its inputs {inputs.describe()} hold {inputs.numel():,} values, more than the "
            f"{MAX_RETIME_VALUES:,} a re-timing allows"
        )
    return inputs


def _compress_candidates(
    run_dir: Path, record: RunRecord, label: str, trusted: Collection[str], builders: Builders
) -> list[Candidate]:
    timing = _stored_timing(record)
    spec = _bounded(LatencySpec(
        device="cpu", warmup=timing["latency_warmup"], repeat=timing["latency_repeat"],
        threads=timing["threads"],
    ))  # fmt: skip
    inputs = pipeline_inputs(record, timing["test_size"])
    found = []
    if (run_dir / STRUCTURE_FILE).exists():
        model = load_pruned(run_dir, trusted=trusted, builders=builders)
        found.append(Candidate(f"{label} torch", inputs, spec, model=model))
    for name, runtime in ONNX_FILES:
        if (run_dir / name).exists():
            path = check_onnx_file(run_dir / name, run_dir)
            found.append(Candidate(f"{label} {runtime}", inputs, spec, onnx_path=path))
    return found


def _profile_candidate(
    record: RunRecord, label: str, trusted: Collection[str], builders: Builders
) -> Candidate:
    params = record.params
    options = {k: v for k, v in params.items() if k in ProfileConfig.model_fields}
    config = validate(ProfileConfig, options, f"the options of run {record.run_id}")
    device, shape = check_config(config)
    values = math.prod(shape or ())
    if values > MAX_RETIME_VALUES:
        raise EffprofError(
            f"its input {config.input} holds {values:,} values, more than the "
            f"{MAX_RETIME_VALUES:,} a re-timing allows"
        )
    if config.model in builders:  # a model the caller holds: its inputs from the stored shape
        stored = to_inputs(str(params.get("input")))
        subject = subject_of_module(builders[config.model](), stored, device=device)
    else:
        check_buildable(config.model, trusted, f"run {record.run_id}")
        subject = load_subject(config.model, config.variant, config.weights, device=device)
    target = resolve_target(config, subject.entry, subject.variant,
                            subject.default_inputs(device), device, shape)  # fmt: skip
    if target.inputs.describe() != params.get("input", target.inputs.describe()):
        raise EffprofError(f"its inputs {params.get('input')} cannot be rebuilt")
    stored_threads = {"threads": record.metrics.get(S.LATENCY.threads) or config.threads}
    threads = validate_fields(ProfileConfig, stored_threads, f"run {record.run_id}")["threads"]
    spec = _bounded(replace(target.latency_spec(config), threads=threads))
    return Candidate(f"{label} torch", target.inputs, spec, model=target.runnable(subject.model))


def run_candidates(
    run_dir: str | Path,
    label: str,
    *,
    onnx: bool = True,
    trusted: Collection[str] = (),
    builders: Builders | None = None,
) -> list[Candidate]:
    """The timeable models of one run (see the module docstring), named ``<label> <runtime>``;
    with ``onnx`` False, its torch model where it stores one, else its ONNX files (an INT8 step
    stores only its ONNX model). A factory the run names is imported only when it is in ``trusted``
    (:mod:`effprof.models.trust`): a run store is data, never code. ``builders`` build the
    models the caller holds as objects, by the name their runs record.

    Raises EffprofError with the reason when the run gives no model back.
    """
    run_dir = Path(run_dir)
    record = read_record(run_dir)
    if record.kind == "compress":
        found = _compress_candidates(run_dir, record, label, trusted, builders or {})
        found = found if onnx else [c for c in found if c.runtime == "torch"] or found
    elif record.kind == "profile":
        try:
            found = [_profile_candidate(record, label, trusted, builders or {})]
        except (EffprofError, ImportError, OSError, ValueError, RuntimeError) as error:
            raise EffprofError(f"its model cannot be rebuilt: {error}") from None
    else:
        raise EffprofError(f"a {record.kind} run stores no model")
    if not found:
        raise EffprofError("the run stores no loadable model (structure.json or .onnx)")
    return found


def retime_runs(
    run_dirs: Sequence[str | Path],
    *,
    labels: Sequence[str] | None = None,
    rounds: int = 1,
    onnx: bool = True,
    reference: str | None = None,
    trusted: Collection[str] = (),
    builders: Builders | None = None,
) -> Retimed:
    """Time the models of ``run_dirs`` interleaved for ``rounds`` rounds. ``labels`` name the
    runs (default: a compress run's step, else its run id); ``reference`` is the candidate the
    ratios are to (default, or when that run was skipped: per runtime, its first candidate).
    ``trusted``: factories the user named, which may be imported to rebuild a run's model."""
    candidates: list[Candidate] = []
    origins, skipped = [], []
    for index, run_dir in enumerate(run_dirs):
        record = read_record(run_dir)
        label = labels[index] if labels else str(record.params.get("step") or record.run_id)
        try:
            found = run_candidates(run_dir, label, onnx=onnx, trusted=trusted, builders=builders)
        except EffprofError as error:
            skipped.append(f"{label}: {error}")
            continue
        candidates += found
        origins += [
            {"candidate": c.name, "run_id": record.run_id, "run_dir": str(run_dir),
             "step": record.params.get("step"), "label": label}
            for c in found
        ]  # fmt: skip
    columns = ["candidate", "run_id", "run_dir", "step", "label"]
    frame = pd.DataFrame(origins, columns=columns)
    if not candidates:
        return Retimed(None, frame, tuple(skipped))
    if reference is not None and reference not in {c.name for c in candidates}:
        reference = None
    timing = time_interleaved(candidates, rounds=rounds, reference=reference)
    return Retimed(timing, frame, tuple(skipped))


def retime_metrics(retimed: Retimed) -> dict[str, Any]:
    """Flat metrics: per candidate ``retimed_<candidate>_median_ms``, ``..._ratio`` (to its
    reference in the same round, median over rounds) and ``..._ratio_reliable``;
    ``retimed_ratios_reliable`` when all ratios are."""
    metrics: dict[str, Any] = {}
    summary = retimed.summary()
    for row in summary.itertuples():
        candidate = str(row.candidate)
        metrics[S.RETIMED_MEDIAN.of(candidate)] = row.median_ms
        metrics[S.RETIMED_RATIO.of(candidate)] = row.ratio
        reliable = bool(row.ratio_reliable) if row.rounds else False
        metrics[S.RETIMED_RATIO_RELIABLE.of(candidate)] = reliable
    metrics[S.RETIMED_RATIOS_RELIABLE] = bool(summary["ratio_reliable"].fillna(False).all())
    metrics[S.RETIMED_ROUNDS] = int(summary["rounds"].max())
    return metrics


def write_retime_run(
    out: str | Path,
    retimed: Retimed,
    *,
    model: str,
    variant: str | None,
    group: str | None,
    parent: str | None,
    env: dict[str, Any],
) -> Path:
    """A run of kind ``retime`` holding the interleaved timing: tables ``retimed`` (per
    candidate) and ``retimed_rounds`` (per round and candidate), metrics of retime_metrics."""
    assert retimed.timing is not None
    params = {
        "runs": list(dict.fromkeys(retimed.origins["run_id"])),
        "rounds": int(retimed.timing.rounds["round"].max()) + 1,
        "order": "every candidate once per round, the order reversed every other round",
        "skipped": list(retimed.skipped),
    }
    writer = RunWriter(out, RETIME_KIND, model, variant, params, group=group, parent=parent)
    writer.start()
    try:
        writer.add_table("retimed", retimed.summary())
        writer.add_table("retimed_rounds", retimed.timing.rounds)
        notes = [
            "the models of the runs above timed again together, interleaved; ratios are to the "
            "reference of the same runtime within each round, then the median over rounds",
            *(f"not re-timed: {reason}" for reason in retimed.skipped),
        ]
        return writer.finish(retime_metrics(retimed), env, notes)
    except BaseException:
        writer.abandon()
        raise


def retime_pipeline(
    run_dirs: Sequence[Path],
    *,
    out: str | Path,
    model: str,
    variant: str | None,
    group: str | None,
    env: dict[str, Any],
    rounds: int = 1,
    builders: Builders | None = None,
) -> Path | None:
    """Re-time the models a compress pipeline made (its runs, dense first) in ``rounds``
    interleaved rounds and write the ``retime`` run into its group; None if none is timeable."""
    retimed = retime_runs(run_dirs, rounds=rounds, trusted=(model,), builders=builders)
    if retimed.timing is None:
        return None
    parent = read_record(run_dirs[0]).run_id if run_dirs else None
    return write_retime_run(
        out, retimed, model=model, variant=variant, group=group, parent=parent, env=env
    )
