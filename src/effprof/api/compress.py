"""The compress job: run a config's compression steps on a model, every step one run.

The dense model is measured first (run ``dense``); then each step of the config runs on the
model it starts from and writes a run of kind ``compress`` in one group (the pipeline), whose
``parent`` is the run of the model the step started from. A step is a registered method
(``effprof.compression.methods``): the api gives it its services (counting, timing, ONNX export,
the data of ``recipes.compress_data``) and measures what it returns the same way for every method: a
new model fully, a form of the model it started from (fp16, INT8, VQ) by its file and runtime,
or nothing new (the starting model's metrics). A run is published only when its step
has finished, so an interrupted compress leaves the finished steps' runs intact; ``resume=True``
skips every step whose hash (the pipeline's settings, the step and the chain of steps that made
the model it starts from) already has a finished run in the store, reloading the models those steps
saved.

>>> run_dirs = compress(load_config(CompressConfig, "configs/compress-quick.yaml"))  # doctest: +SKIP
>>> summary_frame(run_dirs)                                                          # doctest: +SKIP
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import torch
from torch import nn

from effprof.api.given import job_options
from effprof.api.run import Run
from effprof.compression.methods import Services, Stage
from effprof.compression.recover import frozen
from effprof.compression.reload import load_pruned
from effprof.config import validate
from effprof.config.compress import DENSE, MODEL_STEPS, CompressConfig
from effprof.measure.environment import collect_environment, resolve_device
from effprof.measure.latency import measure_latency
from effprof.measure.layer_latency import LayerLatencyTable
from effprof.measure.onnx import check_exportable, export_onnx, onnx_parity
from effprof.measure.precision import num_threads
from effprof.models import (
    Subject,
    check_variant,
    get_entry,
    load_state_dict_strict,
    load_subject,
    module_entry,
    read_state_dict,
    resolve_weights,
)
from effprof.models.registry import DEBLURRING
from effprof.models.weights_origin import (
    FILE,
    MODULE,
    RANDOM,
    WeightsOrigin,
    file_sha256,
    state_dict_sha256,
)
from effprof.recipes.compress_data import (
    TaskData,
    check_steps,
    describe,
    task_data,
)
from effprof.recipes.compress_measure import Context, count_macs, latency_spec, run_step
from effprof.recipes.compress_plan import (
    check_targets,
    finished_runs,
    plan_runs,
    run_notes,
    run_params,
)
from effprof.recipes.retime import retime_pipeline
from effprof.results import EffprofError, Missing
from effprof.runs import check_writable, read_record
from effprof.runs.compression import compression_frame, with_retimes
from effprof.runs.find import store_root
from effprof.runs.store import new_run_id
from effprof.training import FFT_WEIGHT, Silent

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


def _check(config: CompressConfig, module: nn.Module | None) -> tuple[str | None, str, int]:
    """Everything about the input that can be wrong without loading the model."""
    variant = check_variant(config.model, config.variant) if module is None else None
    device = resolve_device(config.device)
    entry = get_entry(config.model) if module is None else module_entry(module)
    multiple = entry.input_multiple
    sizes = [("test_size", config.test_size), ("calibration_size", config.calibration_size)]
    sizes += [
        (f"steps.{i}.{name}", size)
        for i, step in enumerate(config.steps)
        for name, size in step.image_sizes().items()
    ]
    for name, size in sizes:
        if size % multiple:
            raise EffprofError(f"{name} {size} must be a multiple of {multiple} for {config.model}")
    if config.weights == RANDOM and (module is not None or not entry.registered):
        raise EffprofError(
            f"--weights random re-initialises a registered model; {config.model} has the "
            "weights it was given (give a weights file to load into it instead)"
        )
    if config.weights is not None and config.weights != RANDOM:
        path = (
            resolve_weights(config.model, variant, config.weights)
            if module is None
            else Path(config.weights)
        )
        if not path.is_file():
            raise EffprofError(f"weights {config.weights!r} do not exist")
    return variant, device, multiple


def _services(
    config: CompressConfig, device: str, multiple: int, dense: nn.Module, data: TaskData,
    emit: Callable[[EventKind, str], None],
) -> Services:  # fmt: skip
    """What the methods get from the api: data, the teacher, and measurements as callables."""
    shape = data.shape
    tables: dict[str, LayerLatencyTable] = {}

    def conv_ms(conv: nn.Conv2d, c_in: int, c_out: int, hw: tuple[int, int]) -> float:
        if "table" not in tables:
            tables["table"] = LayerLatencyTable(device, threads=config.threads)
        return tables["table"].conv_ms(conv, c_in, c_out, hw)

    def latency_ms_of(model: nn.Module) -> float:
        result = measure_latency(model, shape, latency_spec(config, device))
        if isinstance(result, Missing):
            raise EffprofError(f"cannot time the model for a latency target: {result.reason}")
        return result.median_ms

    services = Services(
        device=device, threads=config.threads, ort=config.ort, shape=shape, multiple=multiple,
        teacher=frozen(copy.deepcopy(dense)).to(device), calibration=data.calibration,
        test_size=config.test_size, phase=lambda text: emit("phase", text),
        train_progress=_TrainEvents(emit), macs_of=lambda m: count_macs(data.inputs, m),
        latency_ms_of=latency_ms_of, conv_ms=conv_ms,
        export_onnx=lambda model, path: export_onnx(model, shape, path),
        onnx_parity=lambda model, path, x: onnx_parity(model, path, x).summary(),
        inputs=data.int8_inputs, batches=data.batches,
        fft_weight=FFT_WEIGHT if data.task == DEBLURRING else 0.0,
    )  # fmt: skip
    services.cache["latency_tables"] = tables
    return services


def compress(
    model: nn.Module | str | CompressConfig | None = None,
    /,
    *,
    progress: CompressProgress | None = None,
    retime_rounds: int = 1,
    **options: Any,
) -> list[Run]:
    """Run a compression pipeline on ``model`` (an ``nn.Module``, never changed in place; a
    registered name; a factory string; or a :class:`CompressConfig`); one run per step.
    ``options`` are the config's fields (``steps=[...]``, ``test_size=64``...).

    Returns the runs in step order (the dense baseline first), including runs reused by
    ``resume``. At the end the models are timed again together, interleaved, in
    ``retime_rounds`` rounds (0: not), into a ``retime`` run of the same group
    (:func:`effprof.recipes.retime.retime_pipeline`).

    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 32, 3, padding=1), torch.nn.ReLU(),
    ...                           torch.nn.Conv2d(32, 3, 3, padding=1))
    >>> runs = compress(net, steps=[{"step": "prune", "target_macs": 0.5, "steps": 1}],
    ...                 test_count=2, test_size=16, calibration_count=2, calibration_size=16,
    ...                 calibration_batch=2, latency_warmup=0, latency_repeat=2, ort=False,
    ...                 retime_rounds=0, out=tmp)
    >>> [run.record.params["step"] for run in runs], runs[1].metrics["macs_ratio"] <= 0.5
    (['dense', 'prune'], True)
    """
    data, module = job_options(model, options)
    config = validate(CompressConfig, data, "compress options")
    variant, device, multiple = _check(config, module)
    original = copy.deepcopy(module).cpu() if module is not None else None
    builders = {config.model: lambda: copy.deepcopy(original)} if original is not None else {}
    plans = plan_runs(config)
    emit_to = progress or (lambda event: None)
    state = {"index": 0, "label": DENSE}

    def emit(kind: EventKind, detail: str = "", run_dir: Path | None = None) -> None:
        emit_to(CompressEvent(kind, state["index"], len(plans), state["label"], detail, run_dir))

    check_writable(config.out)
    with num_threads(config.threads):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)  # without weights, the same random model on every (re)run
            subject = (
                load_subject(config.model, variant, weights=config.weights, device="cpu")
                if original is None
                else _given_subject(original, config.weights)
            )
        dense, entry = subject.model, subject.entry
        data = task_data(config, entry, variant, dense)
        check_steps(config, data)
        services = _services(config, device, multiple, dense, data, emit)
        ctx = Context(config, variant, services, data, entry, builders=builders)
        services.dense_macs = count_macs(data.inputs, dense)
        check_targets(dense, services.calibration, plans)
        if not config.ort and any(p.step is not None and p.step.step == "int8" for p in plans):
            check_exportable(dense, data.inputs)  # else the dense run is kept, int8 fails late
        group, done = finished_runs(config, variant) if config.resume else (None, {})
        group = group or new_run_id("pipeline", config.model, variant)
        weights = subject.weights or WeightsOrigin(MODULE, type(dense).__name__)
        notes = run_notes(config, ctx, weights.note())
        env = collect_environment(device)
        stages: dict[str, Stage] = {}
        paths: list[Path] = []
        for index, plan in enumerate(plans):
            state.update(index=index, label=plan.label)
            source = stages[plan.source] if plan.source else Stage(dense, DENSE)
            step = plan.step
            trained = source.trained_steps + (step.training_steps() if step else 0)
            pruned = source.pruned or bool(step is not None and step.prunes)
            if plan.step_hash in done:
                path, record = done[plan.step_hash]
                emit("skip", f"finished earlier: {record.run_id}", path)
                model = None
                if step is None or step.step in MODEL_STEPS:
                    model = (
                        dense
                        if step is None
                        else load_pruned(
                            path,
                            trusted=(config.model,),
                            expected=(config.model, variant),
                            builders=builders,
                        )
                    )
            else:
                emit("start", step.step if step else DENSE)
                params = {**run_params(config, plan, index, trained, pruned), "task": describe(data),
                          **weights.summary()}  # fmt: skip
                path, model = run_step(ctx, plan, source, params, group, notes, env)
                emit("done", "", path)
            paths.append(path)
            if model is not None:
                stages[plan.label] = Stage(
                    model, plan.label, path.name, path, trained_steps=trained, pruned=pruned
                )
        if retime_rounds:  # the models timed again together: ratios within one round
            emit("phase", f"re-timing the models interleaved ({retime_rounds} round(s))")
            retime_pipeline(paths, out=config.out, model=config.model, variant=variant,
                            group=group, env=env, rounds=retime_rounds, builders=builders)  # fmt: skip
    return [Run.open(path) for path in paths]


def _given_subject(module: nn.Module, weights: str | None) -> Subject:
    """The model the caller gave, as a subject (a copy: the caller's module is never changed)."""
    model = copy.deepcopy(module).cpu().eval()
    origin = WeightsOrigin(MODULE, type(model).__name__, state_dict_sha256(model))
    if weights is not None:
        load_state_dict_strict(model, read_state_dict(weights), weights)
        origin = WeightsOrigin(FILE, weights, file_sha256(weights))
    return Subject(module_entry(model), None, model, origin)


def summary_frame(run_dirs: Sequence[str | Path]) -> pd.DataFrame:
    """The compression table of these runs (``effprof.runs.compression.compression_frame``),
    speed-ups from their pipelines' interleaved re-timing runs in the same store."""
    records = [read_record(Path(path)) for path in run_dirs]
    store = store_root(Path(run_dirs[0]).parent) if run_dirs else None
    return compression_frame(with_retimes(records, store))


__all__ = ["CompressEvent", "CompressProgress", "compress", "summary_frame"]
