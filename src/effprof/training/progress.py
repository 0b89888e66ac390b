"""Where the training loop reports progress: a rich progress bar, plain log lines, or nothing.

The loop only calls the ``Progress`` protocol; choosing how to show it is the caller's job
(``effprof train`` shows a bar on a terminal and plain lines when its output is a log file).
"""

from __future__ import annotations

import sys
from typing import Any, Protocol, TextIO


class Progress(Protocol):
    """What the training loop reports to."""

    def start(self, total_steps: int, first_step: int) -> None: ...

    def step(self, step: int, loss: float | None, lr: float) -> None: ...

    def log(self, row: dict[str, Any]) -> None: ...

    def stop(self) -> None: ...


class Silent:
    """Reports nothing."""

    def start(self, total_steps: int, first_step: int) -> None:
        pass

    def step(self, step: int, loss: float | None, lr: float) -> None:
        pass

    def log(self, row: dict[str, Any]) -> None:
        pass

    def stop(self) -> None:
        pass


def _format(row: dict[str, Any]) -> str:
    parts = []
    for key, value in row.items():
        parts.append(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}")
    return " ".join(parts)


class PlainLines(Silent):
    """One line per logged row (losses, evaluations), flushed at once: good for ``nohup`` logs."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream

    def log(self, row: dict[str, Any]) -> None:
        stream = self.stream or sys.stderr
        print(_format(row), file=stream, flush=True)


class RichBar(Silent):
    """A rich progress bar with the running loss and learning rate; evaluations are printed above it."""

    def __init__(self) -> None:
        self._bar: Any = None
        self._task: Any = None

    def start(self, total_steps: int, first_step: int) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._bar = Progress(
            TextColumn("train"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._bar.start()
        self._task = self._bar.add_task("train", total=total_steps, completed=first_step, status="")

    def step(self, step: int, loss: float | None, lr: float) -> None:
        if self._bar is None:
            return
        status = f"loss {loss:.4f} lr {lr:.2e}" if loss is not None else f"lr {lr:.2e}"
        self._bar.update(self._task, completed=step, status=status)

    def log(self, row: dict[str, Any]) -> None:
        if self._bar is not None and any(key.startswith("eval_") for key in row):
            self._bar.console.print(_format(row), markup=False, highlight=False)

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
