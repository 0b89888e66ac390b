"""Where the configurations of a sweep run: one after another here (``local``), or as Ray tasks.

An executor takes the tasks still to do, runs those that ``take(task)`` grants (the sweep's claim:
another sweep on the same store may hold a task), and calls ``emit`` with a :class:`SweepEvent` as
they start, progress and end; the sweep job writes the ledger from the ``done`` events. Executors are
plug-ins of one registry (``EXECUTORS``): a Slurm or Kubernetes executor would register here.

Ray: every configuration is a Ray task that runs :func:`run_task` into a temporary store on its
worker and sends the run folder back as bytes; the driver writes it into the store (run.json last,
then the folder is renamed), so workers need no shared filesystem. Resources per task: one whole
GPU for a CUDA timing (Ray never gives one GPU to two tasks at once, so timings never overlap on a
GPU) and ``threads`` CPUs for a CPU timing.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from effprof._registry import Registry
from effprof.api.sweep_tasks import SweepTask, TaskOutcome, describe_error, record_failure, run_task
from effprof.results import EffprofError
from effprof.runs import dumps_json, write_text_atomic
from effprof.runs.store import PARTIAL_SUFFIX, RUN_FILE, RUNS_DIR

RAY_INSTALL = "pip install 'effprof[ray]'"


@dataclass(frozen=True)
class SweepEvent:
    """``start`` (a task began or was submitted), ``step`` (its progress text) or ``done``;
    ``total`` is the number of tasks this run of the executor has."""

    kind: str
    task: SweepTask
    total: int
    text: str = ""
    outcome: TaskOutcome | None = None


Emit = Callable[[SweepEvent], None]
Take = Callable[[SweepTask], bool]


class Executor(Protocol):
    """Runs tasks into a store and reports each one's outcome through ``emit``."""

    def check(self, tasks: Sequence[SweepTask]) -> None:
        """Raise EffprofError for anything that would stop the executor, before any task runs."""

    def run(self, tasks: Sequence[SweepTask], store: Path, emit: Emit, take: Take) -> None:
        """Run every task that ``take`` grants; emit one ``done`` event per task run, failed or not."""


EXECUTORS: Registry[str, Callable[[str | None], Executor]] = Registry("sweep executor")


@EXECUTORS.register("local")
class LocalExecutor:
    """One configuration after another, in this process (nothing else times at the same time)."""

    def __init__(self, address: str | None = None) -> None:
        self.address = address

    def check(self, tasks: Sequence[SweepTask]) -> None:
        if self.address:
            raise EffprofError("--address is only for --executor ray")

    def run(self, tasks: Sequence[SweepTask], store: Path, emit: Emit, take: Take) -> None:
        total = len(tasks)
        for task in tasks:
            if not take(task):  # taken just before it runs, so concurrent sweeps interleave
                continue
            emit(SweepEvent("start", task, total))
            outcome = run_task(
                task, store, step=lambda text, t=task: emit(SweepEvent("step", t, total, text))
            )
            emit(SweepEvent("done", task, total, outcome=outcome))


# --- moving a run folder between machines ------------------------------------------------------


def pack_run(run_dir: Path) -> dict[str, bytes]:
    """Every file of a finished run folder, by name."""
    return {p.name: p.read_bytes() for p in sorted(run_dir.iterdir()) if p.is_file()}


def unpack_run(store: Path, run_id: str, files: dict[str, bytes]) -> Path:
    """Write a packed run into ``store`` the way RunWriter does: run.json last, then rename.

    ``params.out`` is set to ``store``: the run was written into a worker's temporary folder.
    """
    final = store / RUNS_DIR / run_id
    work = store / RUNS_DIR / (run_id + PARTIAL_SUFFIX)
    if final.exists():
        raise EffprofError(f"run {run_id!r} is already in {str(store)!r}")
    work.mkdir(parents=True)
    try:
        for name, data in files.items():
            if name != RUN_FILE:
                (work / Path(name).name).write_bytes(data)
        record = json.loads(files[RUN_FILE])
        if isinstance(record.get("params"), dict) and "out" in record["params"]:
            record["params"]["out"] = str(store)
        write_text_atomic(work / RUN_FILE, dumps_json(record, indent=1))
        work.rename(final)
    except BaseException:  # a full disk, an interrupt: no half-copied run is left
        shutil.rmtree(work, ignore_errors=True)
        raise
    return final


def run_task_packed(task: SweepTask) -> tuple[TaskOutcome, dict[str, bytes]]:
    """A Ray task's body: run ``task`` into a temporary store on the worker, return the run."""
    with tempfile.TemporaryDirectory(prefix="effprof-ray-") as tmp:
        outcome = run_task(task, Path(tmp))
        run_dir = Path(tmp) / RUNS_DIR / (outcome.run_id or "")
        files = pack_run(run_dir) if outcome.run_id and run_dir.is_dir() else {}
    return outcome, files


# --- Ray -----------------------------------------------------------------------------------------


def import_ray() -> Any:
    """The ``ray`` module, or a one-line error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise EffprofError(
            f"--executor ray needs Ray, which is not installed: {RAY_INSTALL}"
        ) from None
    return ray


def task_resources(task: SweepTask, cluster_gpus: float) -> dict[str, float]:
    """Ray resources of one configuration: a whole GPU (+ threads or 1 CPU) for CUDA timing,
    ``threads`` CPUs for CPU timing. ``device: auto`` means CUDA when the cluster has GPUs."""
    config = task.config
    device = config.device if config.device != "auto" else ("cuda" if cluster_gpus else "cpu")
    if device == "cuda":
        if not cluster_gpus:
            raise EffprofError(
                f"configuration {task.index} ({task.config_hash}) needs a GPU; the Ray cluster has none"
            )
        return {"num_gpus": 1, "num_cpus": config.threads or 1}
    if config.threads is None:
        raise EffprofError(
            f"--executor ray: configuration {task.index} times on the CPU without a thread count; "
            "add a `threads` axis (e.g. threads: [4]) so Ray can reserve that many CPUs"
        )
    return {"num_cpus": config.threads}


@EXECUTORS.register("ray")
class RayExecutor:
    """Each configuration a Ray task on the cluster at ``address`` (default: a local one)."""

    def __init__(self, address: str | None = None) -> None:
        self.address = address

    def check(self, tasks: Sequence[SweepTask]) -> None:
        import_ray()
        for task in tasks:  # CPU timings need a thread count; "auto" waits for the cluster
            if task.config.device == "cpu":
                task_resources(task, cluster_gpus=0)

    def _connect(self, ray: Any) -> bool:
        if ray.is_initialized():
            return False
        options: dict[str, Any] = {"logging_level": logging.WARNING}
        if self.address is None:
            options["include_dashboard"] = False
        ray.init(address=self.address, **options)
        return True

    def run(self, tasks: Sequence[SweepTask], store: Path, emit: Emit, take: Take) -> None:
        tasks = [task for task in tasks if take(task)]  # claimed when submitted
        if not tasks:
            return
        ray = import_ray()
        started_here = self._connect(ray)
        try:
            gpus = ray.cluster_resources().get("GPU", 0)
            resources = {task.config_hash: task_resources(task, gpus) for task in tasks}
            remote = ray.remote(run_task_packed)
            pending = {}
            for task in tasks:
                options = resources[task.config_hash] | {"max_retries": 0}
                pending[remote.options(**options).remote(task)] = task
                emit(SweepEvent("start", task, len(tasks), "submitted"))
            try:
                while pending:
                    (ref,), _ = ray.wait(list(pending), num_returns=1)
                    task = pending.pop(ref)
                    outcome = self._collect(ray, ref, task, store)
                    emit(SweepEvent("done", task, len(tasks), outcome=outcome))
            finally:
                for ref in pending:
                    ray.cancel(ref)
        finally:
            if started_here:
                ray.shutdown()

    @staticmethod
    def _collect(ray: Any, ref: Any, task: SweepTask, store: Path) -> TaskOutcome:
        """The task's outcome with its run written into ``store``; a lost worker is a failure."""
        try:
            outcome, files = ray.get(ref)
        except Exception as error:  # worker killed (e.g. out of memory), task error, node lost
            message = f"Ray task failed: {describe_error(error)}"
            run_id = record_failure(store, task, message, str(error))
            return TaskOutcome(task.config_hash, "failed", run_id, message, "", 0.0, "")
        if files:
            unpack_run(store, outcome.run_id, files)
        return outcome
