"""The profile job: count, time and measure one model, then write one run.

Everything is validated and measured in memory first; the run folder is written at the end, so
bad input never leaves anything behind and a failed measurement is a ``Missing`` value in an
otherwise complete run.
"""

from __future__ import annotations

import copy
import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from effprof.api.cheaper import measure_int8, skipped_int8
from effprof.api.explain import (
    measure_attribution,
    measure_counterfactuals,
    measure_roofline,
    measure_scaling,
)
from effprof.config import ProfileConfig
from effprof.measure.counting import COUNTING_POLICY, CountResult, count_model
from effprof.measure.crosscheck import cross_check
from effprof.measure.environment import collect_environment, resolve_device
from effprof.measure.finite import check_outputs
from effprof.measure.hostload import load_average
from effprof.measure.interleave import choose_threads
from effprof.measure.latency import LatencySpec, measure_latency
from effprof.measure.memory import measure_peak_memory
from effprof.measure.onnx import export_onnx, onnx_parity, ort_latency
from effprof.measure.optime import op_time
from effprof.measure.params import count_params
from effprof.measure.precision import num_threads
from effprof.models import (
    UNKNOWN_OUT,
    InputSpec,
    ModelEntry,
    PadToMultiple,
    Subject,
    infer_output_kind,
    load_subject,
    padded_size,
)
from effprof.results import EffprofError, Missing
from effprof.runs import RunWriter, check_writable
from effprof.units import format_shape, parse_shape

Progress = Callable[[str], None]
# fvcore and thop run the real model on CPU (thop: minutes for MSSNet-base at 256)
CROSSCHECK_MAX_SIDE = 64
CROSSCHECK_MAX_POSITIONS = 4096


@dataclass(frozen=True)
class ProfileTarget:
    """What a profile measures, resolved from the config and the model's entry before any
    measurement: the inputs as given, the inputs the model sees (padded to its multiple)."""

    model_name: str
    variant: str | None
    device: str
    inputs: InputSpec
    padded_inputs: InputSpec
    multiple: int
    notes: tuple[str, ...] = ()

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The primary input's shape as given (an image: N x C x H x W)."""
        return self.inputs.shape

    @property
    def padded_shape(self) -> tuple[int, ...]:
        """The primary input's shape as the model sees it (padded to its multiple)."""
        return self.padded_inputs.shape


@dataclass
class Collected:
    """Results gathered while profiling: metrics (may hold Missing), tables, notes, files."""

    metrics: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)

    def add(self, prefix: str, values: dict[str, Any]) -> None:
        self.metrics.update({f"{prefix}{k}": v for k, v in values.items()})


def check_config(config: ProfileConfig) -> tuple[str, tuple[int, ...] | None]:
    """What can be checked before the model is built: the device and the --input shape."""
    device = resolve_device(config.device)
    shape = parse_shape(config.input, ndim=None) if config.input else None
    return device, shape


def resolve_target(
    config: ProfileConfig, subject: Subject, device: str, shape: tuple[int, ...] | None
) -> ProfileTarget:
    """The inputs to measure with (the entry's default, or ``--input``) and the padded ones."""
    entry = subject.entry
    default = subject.default_inputs(device)
    if shape is None:
        inputs = default
    elif not default.is_image and default.example is not None:
        raise EffprofError(
            f"--input sets the shape of one image, but {config.model} takes "
            f"{default.describe()} (from its factory's example inputs)"
        )
    else:
        inputs = default.with_primary_shape(shape)
    if entry.fixed_size and inputs.size != default.size:
        raise EffprofError(
            f"{config.model} takes a fixed input size {default.describe()}; --input "
            f"{format_shape(shape or ())} changes it"
        )
    if inputs.is_image and default.is_image and inputs.shape[1] != default.shape[1]:
        raise EffprofError(
            f"{config.model} takes {default.shape[1]}-channel images, "
            f"but --input {format_shape(inputs.shape)} has {inputs.shape[1]}"
        )
    notes: list[str] = []
    multiple = entry.input_multiple
    padded = inputs
    if multiple > 1 and inputs.is_image:
        height, width = inputs.shape[-2:]
        ph, pw = padded_size(height, width, multiple)
        padded = inputs.with_size((ph, pw))
        if (ph, pw) != (height, width):
            notes.append(
                f"{config.model} needs H and W divisible by {multiple}: the {height}x{width} "
                f"input is reflect-padded to {ph}x{pw} and the output cropped back; counts are at "
                f"{ph}x{pw}, times include the padding"
            )
    return ProfileTarget(
        config.model, subject.variant, device, inputs, padded, multiple, tuple(notes)
    )


def _crosscheck_inputs(model: nn.Module, target: ProfileTarget, fixed: bool) -> InputSpec:
    """The inputs fvcore and thop run the real model at: the profiled ones, shrunk to at most
    64 px per side (images, keeping the multiple) or 4,096 along other sizes, where the model
    takes them (checked by counting on meta: free); a fixed-size model keeps its own."""
    spec = target.padded_inputs
    if fixed or not spec.resizable:
        return spec
    size = spec.size
    if spec.is_image:
        scale = min(1.0, CROSSCHECK_MAX_SIDE / max(size))
        h, w = (max(1, round(d * scale)) for d in size)
        small = padded_size(h, w, max(target.multiple, 1))
    else:
        small = tuple(min(d, CROSSCHECK_MAX_POSITIONS) for d in size)
    if tuple(small) == tuple(size):
        return spec
    candidate = spec.with_size(small)
    try:
        count_model(model, candidate)
    except EffprofError:  # the model rejects that size: run the tools at the profiled inputs
        return spec
    return candidate


def _measure_counts(
    model: nn.Module, entry: ModelEntry, target: ProfileTarget, out: Collected
) -> CountResult:
    try:
        count = count_model(model, target.padded_inputs)
    except EffprofError as error:
        cause = error.__cause__ or error
        first = (str(cause).strip().splitlines() or [type(cause).__name__])[0][:200]
        raise EffprofError(
            f"--model {target.model_name!r} does not run on {target.padded_inputs.describe()} "
            f"({target.padded_inputs.origin or 'inputs'}): {first}; give --input the shape it takes"
        ) from None
    out.add("", count.summary())
    out.metrics["input_shape"] = format_shape(target.input_shape)
    out.metrics["padded_shape"] = format_shape(target.padded_shape)
    out.metrics["inputs"] = target.inputs.describe()
    declared = entry.outputs.kind
    inferred = infer_output_kind(target.padded_inputs, count.output_shapes)
    out.metrics["output_kind"] = declared if declared != UNKNOWN_OUT else inferred
    out.metrics["output_kind_source"] = (
        "the registry entry" if declared != UNKNOWN_OUT else "inferred from the output's shape"
    )
    if target.inputs.is_image:
        out.metrics["megapixels"] = (
            target.input_shape[0] * target.input_shape[-2] * target.input_shape[-1] / 1e6
        )
    out.tables["ops"] = count.ops
    out.tables["modules"] = count.by_module()
    out.tables["categories"] = count.by_category()
    out.tables["uncounted"] = count.uncounted
    out.tables["uncalled_modules"] = count.uncalled_modules
    return count


def _latency_spec(config: ProfileConfig, target: ProfileTarget) -> LatencySpec:
    return LatencySpec(
        device=target.device, precision=config.precision, channels_last=config.channels_last,
        cuda_graphs=config.cuda_graphs, compile=config.compile, warmup=config.warmup,
        repeat=config.repeat, threads=config.threads,
    )  # fmt: skip


def _choose_threads(
    runnable: nn.Module, config: ProfileConfig, target: ProfileTarget, out: Collected
) -> LatencySpec:
    """The spec to time with: ``--threads`` as given, else the thread count this host's load
    allows (a brief 1-vs-N trial when it is busy; the run says which and why)."""
    spec = _latency_spec(config, target)
    if config.threads is not None:
        out.metrics["latency_threads_choice"] = f"{config.threads} (--threads)"
        return spec
    choice = choose_threads(runnable, target.inputs, spec)
    out.add("", choice.summary())
    if choice.trial is not None:
        out.tables["threads_trial"] = choice.trial.rounds
        out.notes.append(f"threads: {choice.reason}")
    return replace(spec, threads=choice.threads)


def build_runnable(
    name: str, variant: str | None, weights: str | None, multiple: int | None
) -> nn.Module:
    """The profiled model built again on the CPU, padded to ``multiple`` when the profile pads
    (the peak-memory child's fallback for a model that does not pickle)."""
    model = load_subject(name, variant, weights, device="cpu").model
    return PadToMultiple(model, multiple) if multiple else model


def _measure_time(
    model: nn.Module, config: ProfileConfig, target: ProfileTarget, out: Collected, step: Progress
) -> LatencySpec:
    """Latency, peak memory, op time and ONNX Runtime; returns the spec they used (its thread
    count chosen for this host), for the measurements that follow."""
    runnable = (
        PadToMultiple(model, target.multiple)
        if target.padded_shape != target.input_shape
        else model
    )
    step("threads for this host")
    spec = _choose_threads(runnable, config, target, out)
    step("latency")
    latency = measure_latency(runnable, target.inputs, spec)
    if isinstance(latency, Missing):
        out.metrics["latency_median_ms"] = latency
        out.metrics["throughput_mpix_s"] = latency
    else:
        out.add("", latency.summary())
        out.metrics["latency_timer"] = latency.timer
        out.tables["latency"] = latency.to_frame()
        out.notes.extend(f"latency: {n}" for n in latency.notes)
    step("peak memory")
    rebuild = partial(
        build_runnable, config.model, config.variant, config.weights,
        target.multiple if runnable is not model else None,
    )  # fmt: skip
    memory = measure_peak_memory(runnable, target.inputs, spec, rebuild=rebuild)
    if isinstance(memory, Missing):
        out.metrics["memory_peak_bytes"] = memory
        out.metrics["memory_activation_peak_bytes"] = memory
    else:
        out.add("", memory.summary())
        out.metrics["memory_method"] = memory.method
        out.tables["memory"] = memory.to_frame()
        out.notes.extend(f"memory: {n}" for n in memory.notes)
    if config.optime:
        step("time per op")
        timing = op_time(runnable, target.inputs, spec)
        if isinstance(timing, Missing):
            out.metrics["optime_total_ms"] = timing
        else:
            out.add("", timing.summary())
            out.tables["optime_ops"] = timing.ops
            out.tables["optime_categories"] = timing.categories
    if config.onnx:
        step("ONNX Runtime")
        _measure_onnx(runnable, spec, target, out)
    return spec


def _measure_onnx(
    model: nn.Module, spec: LatencySpec, target: ProfileTarget, out: Collected
) -> None:
    folder = Path(tempfile.mkdtemp(prefix="effprof-onnx-"))
    path = folder / "model.onnx"
    model = copy.deepcopy(model).cpu().float().eval()  # ONNX Runtime runs on the CPU, in fp32
    try:
        export_onnx(model, target.inputs, path)
    except Exception as error:  # the exporter fails in many ways; the run records why
        out.metrics["ort_latency_median_ms"] = Missing(
            f"ONNX export failed: {str(error).splitlines()[0][:200]}"
        )
        return
    out.files["model.onnx"] = path
    out.metrics["onnx_file_bytes"] = path.stat().st_size
    threads = spec.threads or torch.get_num_threads()
    result = ort_latency(
        path, target.inputs, threads=threads, warmup=spec.warmup, repeat=spec.repeat
    )
    if isinstance(result, Missing):
        out.metrics["ort_latency_median_ms"] = result
    else:
        out.add(
            "ort_",
            {k: v for k, v in result.summary().items() if k.startswith(("latency", "throughput"))},
        )
        out.tables["ort_latency"] = result.to_frame()
    parity = onnx_parity(model, path, target.inputs)
    out.add("onnx_", parity.summary())


def _reusable_export(target: ProfileTarget, out: Collected) -> Path | None:
    """The ``--onnx`` export of the model, when it is the graph INT8 needs (no padding wrapper)."""
    path = out.files.get("model.onnx")
    return path if path is not None and target.padded_shape == target.input_shape else None


def _check_outputs(model: nn.Module, target: ProfileTarget, out: Collected) -> None:
    """One fp32 forward: are the outputs finite (else which, and from which module on)?"""
    check = check_outputs(model, lambda: target.padded_inputs.build(target.device))
    if isinstance(check, Missing):
        out.metrics["outputs_finite"] = check
        return
    out.add("", check.summary())
    if not check.ok:
        out.notes.append(check.describe())
        out.tables["finite"] = check.to_frame()


def _store_peers(entry: ModelEntry, out: Collected) -> None:
    """The entry's published peers, for the report (which never imports models)."""
    peers = entry.peers
    if peers is None:
        return
    out.tables["peers"] = pd.DataFrame(peers.records())
    out.tables["peers_meta"] = pd.DataFrame([{
        "title": peers.title, "about": peers.about, "columns": json.dumps(dict(peers.columns)),
        "quality": peers.quality, "params": peers.params, "runtime": peers.runtime,
        "comparable": peers.comparable, "notes": json.dumps(list(peers.notes)),
    }])  # fmt: skip


COUNT_ONLY = "count-only run (effprof count): nothing was run on a device or timed"


def _note_count_only(config: ProfileConfig, out: Collected) -> None:
    """What a count-only run leaves out, as missing values with the reason."""
    for key in ("latency_median_ms", "throughput_mpix_s", "memory_activation_peak_bytes",
                "calltime_total_ms", "roofline_floor_ms"):  # fmt: skip
        out.metrics[key] = Missing(COUNT_ONLY)
    if config.weights is not None:
        out.notes.append(
            f"count-only: the weights {config.weights!r} were checked but not loaded (counts do "
            "not depend on them)"
        )


def _load_average() -> float | None:
    """1-minute load average of the host (None where the OS does not report one)."""
    return load_average()


def _note_busy_host(before: float | None, after: float | None, out: Collected) -> None:
    """Record the load while timing; say so when a timing is marked unreliable.

    The per-measurement fields are the latency's own (``latency_reliable``,
    ``latency_unreliable_reason``, ``latency_load_avg_1min``, ``latency_other_cpu_cores``; the
    same with ``ort_``); this adds ``host_load_avg_1min`` around all the timing and a note.
    """
    loads = [v for v in (before, after) if v is not None]
    out.metrics["host_load_avg_1min"] = (
        max(loads) if loads else Missing("the OS reports no load average")
    )
    for prefix, name in (("", "latency"), ("ort_", "ONNX Runtime latency")):
        reason = out.metrics.get(f"{prefix}latency_unreliable_reason")
        if isinstance(reason, str):
            out.notes.append(f"{name} marked unreliable: {reason}")


def profile(
    config: ProfileConfig | None = None, *, progress: Progress | None = None, **options: Any
) -> Path:
    """Profile one model and write a run; returns the run folder.

    >>> run_dir = profile(model="mssnet", variant="small", input="1x3x64x64")  # doctest: +SKIP
    """
    if config is None:
        from effprof.config import validate

        config = validate(ProfileConfig, options, "profile options")
    elif options:
        raise TypeError("pass either a ProfileConfig or keyword options, not both")
    step = progress or (lambda _name: None)
    started = time.perf_counter()
    device, shape = check_config(config)
    out_root = check_writable(config.out)

    step("building the model on meta" if config.count_only else "loading model")
    load_on = "meta" if config.count_only else device
    subject = load_subject(config.model, config.variant, config.weights, device=load_on)
    target = resolve_target(config, subject, device, shape)
    model, entry = subject.model, subject.entry
    collected = Collected(notes=list(target.notes))
    _store_peers(entry, collected)
    step("counting on the meta device")
    count = _measure_counts(model, entry, target, collected)
    params = count_params(model)
    collected.metrics.update(
        param_count=params.total, param_trainable=params.trainable, param_bytes=params.bytes,
        buffer_bytes=params.buffer_bytes,
    )  # fmt: skip
    collected.tables["params"] = params.to_frame()
    spec = _latency_spec(config, target)
    if config.count_only:
        _note_count_only(config, collected)
    else:
        step("checking the outputs are finite")
        _check_outputs(model, target, collected)
        load_before = _load_average()
        spec = _measure_time(model, config, target, collected, step)
        _note_busy_host(load_before, _load_average(), collected)
    step("attribution" if config.count_only else "time per call and attribution")
    measure_attribution(
        model, entry, target, spec, count, params.to_frame(), collected, timed=not config.count_only
    )
    step("counterfactuals on the meta device")
    measure_counterfactuals(model, entry, target, count, collected)
    if not config.count_only:
        step("roofline")
        measure_roofline(config, target, count, collected)
    measure_scaling(model, config, target, spec, collected, step, entry, count)

    if config.count_only:
        collected.metrics.update(skipped_int8(COUNT_ONLY).metrics)
    else:
        step("INT8 in ONNX Runtime (how much cheaper, without training)")
        with num_threads(spec.threads):  # the thread count the latency used (chosen for the host)
            int8 = measure_int8(model, target.padded_inputs, count.macs, entry,
                                enabled=config.int8, threads=spec.threads,
                                fp32_onnx=_reusable_export(target, collected))  # fmt: skip
        collected.metrics.update(int8.metrics)
        collected.tables.update(int8.tables)
        collected.notes.extend(int8.notes)

    if config.crosscheck and not config.count_only:
        step("cross-checking counters")
        with num_threads(config.threads):  # fvcore and thop run the model: same threads as timing
            check = cross_check(
                model, target.padded_inputs,
                real_inputs=_crosscheck_inputs(model, target, entry.fixed_size),
                references=entry.references(target.variant),
            )  # fmt: skip
        collected.tables["crosscheck"] = check.to_frame()

    with num_threads(config.threads):  # the record names the threads the measurements used
        env = collect_environment(target.device)
    collected.metrics["profile_seconds"] = time.perf_counter() - started
    params_record = config.model_dump(mode="json")
    params_record.update({"variant": target.variant, "device": target.device,
                          "input": target.inputs.describe(), "counting_policy": COUNTING_POLICY,
                          "task": entry.task, "output_kind": entry.outputs.kind,
                          "registered_model": entry.registered,
                          **target.inputs.summary()})  # fmt: skip
    step("writing the run")
    writer = RunWriter(out_root, "profile", config.model, target.variant, params_record).start()
    try:
        for name, table in collected.tables.items():
            writer.add_table(name, table)
        for name, source in collected.files.items():
            source.replace(writer.file_path(name))
        return writer.finish(collected.metrics, env, collected.notes)
    except BaseException:
        writer.abandon()
        raise
