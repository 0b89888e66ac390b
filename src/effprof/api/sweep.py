"""The sweep job: expand a grid of profile configurations and run them, resumably, in shards.

Each configuration is identified by a stable hash of its options (:func:`config_hash`). What became
of each one is kept in the store's ledger (``<out>/sweeps/<sweep>/<hash>.json``), so ``resume=True``
skips configurations that finished and runs the others again (failed, never run, or whose run was
deleted). A failing configuration is recorded as a run of status ``failed`` and the sweep goes on.

Two sweeps started on the same store share the work: each configuration is claimed before it runs
(:func:`effprof.runs.claim`), and one that another sweep holds, or finished while this one ran, is
left to it (``elsewhere`` in the summary).

>>> summary = sweep("configs/sweep-variants.yaml", out="reports/", shard="1/2")  # doctest: +SKIP
>>> summary.to_frame()                                                           # doctest: +SKIP
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from torch import nn

from effprof.api.executors import EXECUTORS, SweepEvent
from effprof.api.run import Run
from effprof.api.sweep_tasks import SweepTask, TaskOutcome
from effprof.config.sweep import (
    Shard,
    SweepSpec,
    config_hash,
    describe_config,
    expand_grid,
    read_sweep,
)
from effprof.models import module_name
from effprof.results import EffprofError
from effprof.runs import (
    LedgerEntry,
    check_writable,
    claim,
    finished_elsewhere,
    owner_record,
    read_entries,
    read_entry,
    read_run,
    release,
    write_entry,
)
from effprof.runs.store import RUNS_DIR

Progress = Callable[[SweepEvent], None]


@dataclass(frozen=True)
class SweepSummary:
    """What a sweep (or one shard of it) did; ``skipped`` are hashes already finished (resume)."""

    sweep: str
    store: Path
    grid_size: int
    shard: Shard | None
    tasks: tuple[SweepTask, ...]
    skipped: tuple[str, ...]
    outcomes: tuple[TaskOutcome, ...]
    seconds: float
    elsewhere: tuple[str, ...] = ()  # hashes another sweep on the same store ran or holds

    @property
    def runs(self) -> list[Run]:
        """The runs this sweep finished, in the order they ran."""
        return [Run.open(self.store / RUNS_DIR / o.run_id) for o in self.finished if o.run_id]

    @property
    def finished(self) -> list[TaskOutcome]:
        return [o for o in self.outcomes if o.status == "finished"]

    @property
    def failed(self) -> list[TaskOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    def to_frame(self) -> pd.DataFrame:
        """One row per configuration of this shard: index, config_hash, config, status, run_id,
        error, seconds; status is ``finished``, ``failed``, ``skipped`` (resume), ``elsewhere``
        (another sweep on the store ran or holds it) or ``not run``."""
        done = {o.config_hash: o for o in self.outcomes}
        rows = []
        for task in self.tasks:
            outcome = done.get(task.config_hash)
            status = outcome.status if outcome else (
                "skipped" if task.config_hash in self.skipped
                else "elsewhere" if task.config_hash in self.elsewhere else "not run"
            )  # fmt: skip
            rows.append({
                "index": task.index, "config_hash": task.config_hash,
                "config": describe_config(task.config), "status": status,
                "run_id": outcome.run_id if outcome else None,
                "error": outcome.error if outcome else None,
                "seconds": outcome.seconds if outcome else float("nan"),
            })  # fmt: skip
        frame = pd.DataFrame(
            rows, columns=["index", "config_hash", "config", "status", "run_id", "error", "seconds"]
        )
        return frame.astype({"index": "int64", "seconds": "float64"} | dict.fromkeys(
            ["config_hash", "config", "status", "run_id", "error"], "string"
        ))  # fmt: skip


def plan_tasks(spec: SweepSpec, module: nn.Module | None = None) -> list[SweepTask]:
    """The grid as tasks in grid order; a configuration listed twice is kept once. With
    ``module``, every configuration profiles that object (the grid's ``model`` axis is ignored)."""
    tasks: dict[str, SweepTask] = {}
    for index, config in enumerate(expand_grid(spec), start=1):
        if module is not None:
            config = config.model_copy(update={"model": module_name(module)})
        digest = config_hash(config)
        tasks.setdefault(digest, SweepTask(spec.name, index, digest, config, module))
    return list(tasks.values())


def _finished_run(store: Path, entry: LedgerEntry) -> bool:
    """The ledger says finished and the run is still there, readable and finished."""
    if entry.status != "finished" or not entry.run_id:
        return False
    try:
        return read_run(store / RUNS_DIR / entry.run_id).status == "finished"
    except EffprofError:
        return False


def _drop_failed_run(store: Path, entry: LedgerEntry | None) -> None:
    """A failed run superseded by a new attempt of its configuration is removed."""
    if entry is None or entry.status != "failed" or not entry.run_id:
        return
    run_dir = store / RUNS_DIR / entry.run_id
    try:
        if read_run(run_dir).status == "failed":
            shutil.rmtree(run_dir, ignore_errors=True)
    except EffprofError:
        pass


def sweep(
    spec: str | Path | SweepSpec,
    *,
    out: str | Path = "reports/",
    shard: str | Shard | None = None,
    resume: bool = False,
    executor: str = "local",
    address: str | None = None,
    progress: Progress | None = None,
    model: nn.Module | None = None,
) -> SweepSummary:
    """Run every configuration of a sweep file (or of one shard of it) into the store ``out``;
    with ``model`` (an ``nn.Module``), every configuration profiles that object (local executor).
    ``summary.runs`` are the finished runs.

    Everything is validated first (axes, values, shard, executor): bad input writes nothing.

    >>> import torch
    >>> grid = Path(tmp) / "grid.yaml"
    >>> _ = grid.write_text("input: [1x3x16x16, 1x3x32x32]\\ncount_only: [true]\\n")
    >>> summary = sweep(grid, out=tmp, model=torch.nn.Conv2d(3, 4, 3))  # 4 x 3 x 3 x 3 per pixel
    >>> [run.metrics["macs"] for run in summary.runs]  # 14 x 14 and 30 x 30 output pixels
    [21168, 97200]
    """
    spec = spec if isinstance(spec, SweepSpec) else read_sweep(spec)
    shard = Shard.parse(shard) if isinstance(shard, str) else shard
    if model is not None and executor != "local":
        raise EffprofError("a model given as an object is swept by the local executor only")
    tasks = plan_tasks(spec, model)
    selected = shard.select(tasks) if shard else tasks
    runner = EXECUTORS.get(executor)(address)
    runner.check(selected)
    store = check_writable(out)
    emit = progress or (lambda _event: None)

    ledger = {e.config_hash: e for e in read_entries(store, spec.name)}
    skipped = tuple(
        t.config_hash
        for t in selected
        if resume and t.config_hash in ledger and _finished_run(store, ledger[t.config_hash])
    )
    todo = [t for t in selected if t.config_hash not in skipped]
    outcomes: list[TaskOutcome] = []
    elsewhere: list[str] = []
    held: set[str] = set()

    def take(task: SweepTask) -> bool:
        """Claim ``task``; False when another sweep holds it, or finished it while running."""
        if claim(store, spec.name, task.config_hash) is not None:
            elsewhere.append(task.config_hash)
            return False
        now = read_entry(store, spec.name, task.config_hash)
        if finished_elsewhere(now, ledger.get(task.config_hash)):
            release(store, spec.name, task.config_hash)
            elsewhere.append(task.config_hash)
            return False
        held.add(task.config_hash)
        return True

    def record(event: SweepEvent) -> None:
        if event.kind == "done" and event.outcome is not None:
            outcome = event.outcome
            write_entry(store, LedgerEntry(
                sweep=spec.name, config_hash=outcome.config_hash, status=outcome.status,
                run_id=outcome.run_id, error=outcome.error,
                config=event.task.config.model_dump(mode="json"), started=outcome.started,
                seconds=outcome.seconds, host=outcome.host, executor=executor,
                owner=owner_record(),
            ))  # fmt: skip
            release(store, spec.name, outcome.config_hash)
            held.discard(outcome.config_hash)
            previous = ledger.get(outcome.config_hash)
            if previous is not None and previous.run_id != outcome.run_id:
                _drop_failed_run(store, previous)
            outcomes.append(outcome)
        emit(event)

    started = time.perf_counter()
    try:
        runner.run(todo, store, record, take)
    finally:  # interrupted: what this sweep still holds is free for the next one
        for digest in held:
            release(store, spec.name, digest)
    return SweepSummary(
        spec.name, store, len(tasks), shard, tuple(selected), skipped, tuple(outcomes),
        time.perf_counter() - started, tuple(elsewhere),
    )  # fmt: skip


def sweep_plan(
    spec: str | Path | SweepSpec, *, shard: str | Shard | None = None, out: str | Path = "reports/"
) -> pd.DataFrame:
    """The configurations a sweep (shard) would run, without running them: index, config_hash,
    config, and status from the ledger in ``out`` (``finished``, ``failed`` or ``new``)."""
    spec = spec if isinstance(spec, SweepSpec) else read_sweep(spec)
    shard = Shard.parse(shard) if isinstance(shard, str) else shard
    tasks = plan_tasks(spec)
    selected = shard.select(tasks) if shard else tasks
    ledger = {e.config_hash: e for e in read_entries(Path(out), spec.name)}
    rows = [
        (t.index, t.config_hash, describe_config(t.config),
         ledger[t.config_hash].status if t.config_hash in ledger else "new")
        for t in selected
    ]  # fmt: skip
    frame = pd.DataFrame(rows, columns=["index", "config_hash", "config", "status"])
    return frame.astype({"index": "int64", "config_hash": "string", "config": "string",
                         "status": "string"})  # fmt: skip
