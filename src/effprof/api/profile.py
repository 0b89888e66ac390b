"""The profile job: count, time and measure one model with the registered steps, write one run.

Everything is validated and measured in memory first; the run folder is written at the end, so
bad input never leaves anything behind and a failed measurement is a ``Missing`` value in an
otherwise complete run. The measurements are the steps of :mod:`effprof.recipes.profile`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from torch import nn

from effprof import schema as S
from effprof.api.given import job_options
from effprof.api.run import Run
from effprof.config import ProfileConfig, validate
from effprof.files import move_file
from effprof.measure.counting import COUNTING_POLICY
from effprof.measure.environment import collect_environment, resolve_device
from effprof.measure.hostload import load_average
from effprof.measure.onnx import onnx_scratch
from effprof.measure.precision import num_threads
from effprof.models import (
    Subject,
    WeightsOrigin,
    borrowed,
    load_subject,
    subject_of_module,
    to_inputs,
)
from effprof.models.weights_origin import MODULE
from effprof.recipes.profile import (
    Collected,
    StepContext,
    check_config,
    plan,
    profile_steps,
    resolve_target,
    run_steps,
    runs_model,
)
from effprof.recipes.profile.threads import threads
from effprof.results import Missing
from effprof.runs import RunWriter, check_writable

Progress = Callable[[str], None]


def profile_config(
    model: nn.Module | str | ProfileConfig | None, options: dict[str, Any]
) -> tuple[ProfileConfig, nn.Module | None]:
    """The job's config from what the caller gave (a config, a name or a module, and options),
    and the module when one was given."""
    data, module = job_options(model, options)
    return validate(ProfileConfig, data, "profile options"), module


def _subject(config: ProfileConfig, module: nn.Module | None, inputs: Any, on: str) -> Subject:
    if module is not None:
        given = to_inputs(inputs) if inputs is not None else None
        return subject_of_module(module, given, device=on)
    subject = load_subject(config.model, config.variant, config.weights, device=on)
    if inputs is None:
        return subject
    given = to_inputs(inputs)
    entry = replace(subject.entry, inputs=lambda _v: given)
    return Subject(entry, subject.variant, subject.model, subject.weights)


def profile(
    model: nn.Module | str | ProfileConfig | None = None,
    inputs: Any = None,
    *,
    progress: Progress | None = None,
    **options: Any,
) -> Run:
    """Profile one model and write a run: ``model`` is an ``nn.Module``, a registered name or a
    factory (``pkg.module:callable``, ``file.py:callable``); ``inputs`` a tensor, a tuple or dict
    of tensors, or a shape (default: the model's own, else one 256x256 RGB image on the CPU);
    ``options`` are :class:`~effprof.config.ProfileConfig`'s (``repeat=5``, ``onnx=True``...).

    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU())
    >>> run = profile(net, torch.rand(1, 3, 32, 32), out=tmp, count_only=True)
    >>> run.metrics["macs"], run.metrics.status("latency_median_ms")
    (221184, 'missing')
    """
    config, module = profile_config(model, options)
    if module is not None:  # the caller's module is given back as it came: mode and device
        with borrowed(module, resolve_device(config.device)) as lent:
            return _profile(config, lent, inputs, progress)
    return _profile(config, None, inputs, progress)


def _profile(
    config: ProfileConfig, module: nn.Module | None, inputs: Any, progress: Progress | None
) -> Run:
    step = progress or (lambda _name: None)
    started = time.perf_counter()
    device, shape = check_config(config)
    out_root = check_writable(config.out)
    planned = plan(profile_steps(), config)
    on_device = runs_model(planned)
    step("loading model" if on_device else "building the model on meta")
    subject = _subject(config, module, inputs, device if on_device else "meta")
    default = subject.default_inputs(device)
    target = resolve_target(config, subject.entry, subject.variant, default, device, shape)
    weights = subject.weights or WeightsOrigin(MODULE, type(subject.model).__name__)
    collected = Collected(notes=[weights.note(), *target.notes])
    with onnx_scratch(out_root) as scratch:  # on the store's filesystem, removed whatever happens
        ctx = StepContext(config, target, subject.model, subject.entry, scratch, step)
        load_before = load_average() if on_device else None
        run_steps(planned, ctx, collected)
        if on_device:
            loads = [v for v in (load_before, load_average()) if v is not None]
            collected.metrics[S.HOST_LOAD_AVG] = (
                max(loads) if loads else Missing("the OS reports no load average")
            )
        timing = ctx.maybe(threads)
        with num_threads(timing.spec.threads if timing else config.threads):
            env = collect_environment(target.device)  # the threads the measurements used
        collected.metrics[S.PROFILE_SECONDS] = time.perf_counter() - started
        collected.tables["steps"] = collected.step_table()
        params = config.model_dump(mode="json")
        params.update({"variant": target.variant, "device": target.device,
                       "input": target.inputs.describe(), "counting_policy": COUNTING_POLICY,
                       "task": subject.entry.task, "output_kind": subject.entry.outputs.kind,
                       "registered_model": subject.entry.registered,
                       "model_given_as": "object" if module is not None else "name",
                       **weights.summary(), **target.inputs.summary()})  # fmt: skip
        step("writing the run")
        return Run.open(_write(out_root, config, target.variant, params, collected, env))


def _write(
    out_root: Path, config: ProfileConfig, variant: str | None, params: dict[str, Any],
    collected: Collected, env: dict[str, Any],
) -> Path:  # fmt: skip
    writer = RunWriter(out_root, "profile", config.model, variant, params).start()
    try:
        for name, table in collected.tables.items():
            writer.add_table(name, table)
        for name, source in collected.files.items():
            move_file(source, writer.file_path(name))
        return writer.finish(collected.metrics, env, collected.notes)
    except BaseException:
        writer.abandon()
        raise
