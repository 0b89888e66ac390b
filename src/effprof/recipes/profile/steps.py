"""The profile as registered steps: each measurement declares what it needs and what it produces.

A step is a function of a :class:`StepContext` returning an :class:`Output`: a typed ``value``
for the steps after it (a ``LatencyResult``, a ``ThreadChoice``...), and what the run stores
(metrics named by :mod:`effprof.schema`, tables, notes, files). Later steps read earlier ones by
the step itself, never by a string key: ``ctx.get(latency)`` is the latency step's value.

Which steps run is one decision, :func:`plan`: a step is skipped, with the reason, when it runs
the model and the profile only counts (count-only is a selection of steps, not a flag read by
each), when its own option turns it off, or when a step it needs did not run. A skipped step's
``missing`` metrics are stored as missing with that reason. The runner times every step; the run
keeps the table ``steps`` (step, seconds, status, reason).

Adding a measurement: one module with a ``@step`` function, and its name in
:data:`effprof.recipes.profile.STEP_MODULES` (which also fixes the order).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import pandas as pd

from effprof._registry import Registry
from effprof.results import Missing

if TYPE_CHECKING:
    from torch import nn

    from effprof.config import ProfileConfig
    from effprof.models import ModelEntry
    from effprof.recipes.profile.target import ProfileTarget

T = TypeVar("T")
Progress = Callable[[str], None]
COUNT_ONLY = "count-only run (effprof count): nothing was run on a device or timed"


@dataclass
class Output(Generic[T]):
    """What one step returns: its typed value and what the run stores."""

    value: T
    metrics: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)


Skip = Callable[["ProfileConfig"], "str | None"]


@dataclass(frozen=True, eq=False)
class Step(Generic[T]):
    """A registered measurement. ``needs`` must have run; ``uses`` are read when they ran;
    ``runs_model`` steps run the model on its device (none runs in a count-only profile);
    ``skip(config)`` gives the reason its options turn it off (None: it runs);
    ``missing`` are the metrics stored as missing, with the reason, when it does not run."""

    name: str
    measure: Callable[[StepContext], Output[T]]
    label: str
    needs: tuple[Step[Any], ...] = ()
    uses: tuple[Step[Any], ...] = ()
    runs_model: bool = False
    skip: Skip | None = None
    missing: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return f"Step({self.name!r})"


STEPS: Registry[str, Step[Any]] = Registry("profile step")


def step(
    name: str,
    *,
    label: str,
    needs: Sequence[Step[Any]] = (),
    uses: Sequence[Step[Any]] = (),
    runs_model: bool = False,
    skip: Skip | None = None,
    missing: Sequence[str] = (),
) -> Callable[[Callable[[StepContext], Output[T]]], Step[T]]:
    """Register the decorated function as the profile step ``name``."""

    def register(measure: Callable[[StepContext], Output[T]]) -> Step[T]:
        made = Step(name, measure, label, tuple(needs), tuple(uses), runs_model, skip,
                    tuple(missing))  # fmt: skip
        return STEPS.add(name, made)

    return register


@dataclass
class StepContext:
    """What a step may read: the configuration, the target, the model and its entry, a scratch
    folder, and the values of the steps that ran before it."""

    config: ProfileConfig
    target: ProfileTarget
    model: nn.Module
    entry: ModelEntry
    scratch: Path  # a folder for files the run keeps (moved into the run folder at the end)
    progress: Progress = lambda _text: None
    values: dict[str, Any] = field(default_factory=dict)

    def get(self, needed: Step[T]) -> T:
        """The value of a step this one needs (it ran: :func:`plan` made sure)."""
        return self.values[needed.name]

    def maybe(self, used: Step[T]) -> T | None:
        """The value of a step this one uses, or None when it did not run."""
        return self.values.get(used.name)


@dataclass(frozen=True)
class Planned:
    """One step of a plan and why it does not run (None: it runs)."""

    step: Step[Any]
    skipped: str | None


def plan(steps: Sequence[Step[Any]], config: ProfileConfig) -> list[Planned]:
    """Which of ``steps`` run, in their order, each skipped one with the reason: the one place
    that reads ``count_only``."""
    done: dict[str, str | None] = {}
    planned = []
    for item in steps:
        reason = COUNT_ONLY if (config.count_only and item.runs_model) else None
        if reason is None and item.skip is not None:
            reason = item.skip(config)
        for needed in item.needs:
            if needed.name not in done:
                raise ValueError(f"step {item.name!r} needs {needed.name!r}, which comes later")
            if reason is None and done[needed.name] is not None:
                reason = done[needed.name]
        done[item.name] = reason
        planned.append(Planned(item, reason))
    return planned


def runs_model(planned: Sequence[Planned]) -> bool:
    """True when a step of the plan runs the model on its device (else it is built on meta)."""
    return any(item.skipped is None and item.step.runs_model for item in planned)


@dataclass
class Collected:
    """Everything the steps produced, merged in step order, and the step table."""

    metrics: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)
    timings: list[dict[str, Any]] = field(default_factory=list)

    def add(self, output: Output[Any]) -> None:
        self.metrics.update(output.metrics)
        self.tables.update(output.tables)
        self.notes.extend(output.notes)
        self.files.update(output.files)

    def step_table(self) -> pd.DataFrame:
        """step, label, status (ran | skipped), seconds (wall), cpu_seconds (this process's CPU
        time: a child process's is not in it), reason: one row per planned step."""
        columns = ["step", "label", "status", "seconds", "cpu_seconds", "reason"]
        return pd.DataFrame(self.timings, columns=columns)


def run_steps(planned: Sequence[Planned], ctx: StepContext, collected: Collected) -> Collected:
    """Run the plan in order into ``collected``; a skipped step's ``missing`` metrics get its
    reason, and every step's wall time is kept."""
    for item in planned:
        current = item.step
        row = {"step": current.name, "label": current.label}
        if item.skipped is not None:
            for name in current.missing:
                collected.metrics.setdefault(name, Missing(item.skipped))
            collected.timings.append({**row, "status": "skipped", "seconds": None,
                                      "cpu_seconds": None, "reason": item.skipped})  # fmt: skip
            continue
        ctx.progress(current.label)
        started, cpu = time.perf_counter(), time.process_time()
        output = current.measure(ctx)
        ctx.values[current.name] = output.value
        collected.add(output)
        collected.timings.append({
            **row, "status": "ran", "seconds": time.perf_counter() - started,
            "cpu_seconds": time.process_time() - cpu, "reason": None,
        })  # fmt: skip
    return collected
