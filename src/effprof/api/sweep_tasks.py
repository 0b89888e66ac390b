"""One configuration of a sweep as a task: run it into a store, or record why it failed.

The same function runs on this machine (local executor) and on a Ray worker, so a configuration
leaves the same run wherever it ran: a finished profile run, or a run of status ``failed`` whose
first note is ``error: ...`` and whose ``error.txt`` holds the traceback.
"""

from __future__ import annotations

import socket
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from torch import nn

from effprof.api.profile import profile
from effprof.config import ProfileConfig
from effprof.measure.environment import collect_environment, resolve_device
from effprof.results import EffprofError
from effprof.runs import RunWriter

ERROR_CHARS = 500


@dataclass(frozen=True)
class SweepTask:
    """One configuration of a sweep: its grid position (1-based), hash and validated options."""

    sweep: str
    index: int
    config_hash: str
    config: ProfileConfig
    module: nn.Module | None = field(default=None, repr=False)  # a model given as an object


@dataclass(frozen=True)
class TaskOutcome:
    """What became of a task: ``finished`` or ``failed``, the run it wrote, the error, where, how long."""

    config_hash: str
    status: str
    run_id: str | None
    error: str | None
    started: str
    seconds: float
    host: str


def describe_error(error: BaseException) -> str:
    """One line: a user error's own message, else ``TypeName: first line`` (at most 500 chars)."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    line = (
        text if isinstance(error, EffprofError) else f"{type(error).__name__}: {text}".rstrip(": ")
    )
    return line[:ERROR_CHARS]


def _failure_env(device: str) -> dict:
    try:
        return collect_environment(resolve_device(device))
    except Exception:  # e.g. --device cuda on a machine without one: describe the host anyway
        return collect_environment("cpu")


def record_failure(store: Path, task: SweepTask, error: str, details: str = "") -> str | None:
    """Write a run of status ``failed`` for ``task`` (so load_runs sees it); returns its run id."""
    config = task.config
    writer = RunWriter(
        store, "profile", config.model, config.variant,
        params=config.model_dump(mode="json") | {"out": str(store)}, group=task.sweep,
    )  # fmt: skip
    try:
        writer.start()
        if details:
            writer.file_path("error.txt").write_text(details, encoding="utf-8")
        writer.finish({}, _failure_env(config.device), [f"error: {error}"], status="failed")
    except OSError:
        writer.abandon()
        return None
    return writer.run_id


def run_task(
    task: SweepTask, store: Path, step: Callable[[str], None] | None = None
) -> TaskOutcome:
    """Profile one configuration into ``store``; an exception becomes a failed run, never escapes."""
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    begin = time.perf_counter()
    host = socket.gethostname()
    try:
        config = task.config.model_copy(update={"out": str(store)})
        if task.module is None:
            run_dir = profile(config, progress=step).path
        else:
            options = config.model_dump(exclude={"model"})
            run_dir = profile(task.module, progress=step, **options).path
    except (
        Exception
    ) as error:  # out of memory, bad model, bad shape...: recorded, the sweep goes on
        message = describe_error(error)
        run_id = record_failure(store, task, message, traceback.format_exc())
        seconds = time.perf_counter() - begin
        return TaskOutcome(task.config_hash, "failed", run_id, message, started, seconds, host)
    seconds = time.perf_counter() - begin
    return TaskOutcome(task.config_hash, "finished", run_dir.name, None, started, seconds, host)
