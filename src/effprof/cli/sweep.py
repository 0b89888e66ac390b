"""``effprof sweep FILE``: run a grid of profile configurations, resumably, in shards, here or on Ray."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from effprof.cli import app, console, err_console

if TYPE_CHECKING:
    from effprof.api.executors import SweepEvent
    from effprof.api.sweep import SweepSummary

# The executors' registry lives in the api (it imports torch); --help names them from here, and a
# test checks that this tuple is the registry's.
EXECUTOR_NAMES = ("local", "ray")


class _Printer:
    """Prints one line when a configuration starts and ends; step text goes to the spinner."""

    def __init__(self, status) -> None:
        self.done = 0
        self.status = status

    def __call__(self, event: SweepEvent) -> None:
        task = event.task
        name = f"{task.config_hash} (#{task.index})"
        if event.kind == "step":
            self.status.update(f"{name}: {event.text}")
        elif event.kind == "start" and event.text != "submitted":
            self.status.update(f"{name}: starting")
        elif event.kind == "done" and event.outcome is not None:
            self.done += 1
            outcome = event.outcome
            head = f"[{self.done}/{event.total}] {outcome.status} {name} in {outcome.seconds:.1f} s"
            tail = (
                f"run {outcome.run_id}"
                if outcome.status == "finished"
                else f"error: {outcome.error}"
            )
            style = None if outcome.status == "finished" else "red"
            console.print(
                f"{head}: {tail}", style=style, markup=False, highlight=False, soft_wrap=True
            )


def _print_summary(summary: SweepSummary) -> None:
    shard = (
        f", shard {summary.shard} ({len(summary.tasks)} configurations)" if summary.shard else ""
    )
    table = Table(title=f"sweep {summary.sweep}: {summary.grid_size} configurations{shard}")
    for column in ("finished", "failed", "skipped (already finished)",
                   "left to another sweep", "seconds"):  # fmt: skip
        table.add_column(column, justify="right")
    table.add_row(
        str(len(summary.finished)), str(len(summary.failed)), str(len(summary.skipped)),
        str(len(summary.elsewhere)), f"{summary.seconds:,.1f}",
    )  # fmt: skip
    console.print(table)
    for outcome in summary.failed:
        console.print(
            f"failed {outcome.config_hash}: {outcome.error}",
            style="red",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    console.print(f"store: {summary.store}", markup=False, highlight=False)
    if summary.failed:
        console.print("re-run the failed ones with --resume", markup=False)


def _print_plan(path: Path, shard: str | None, out: Path) -> None:
    from effprof.api.sweep import sweep_plan

    plan = sweep_plan(path, shard=shard, out=out)
    table = Table(title=f"{len(plan)} configurations")
    for column in ("index", "config_hash", "config", "status"):
        table.add_column(column)
    for row in plan.itertuples(index=False):
        table.add_row(str(row.index), row.config_hash, row.config, row.status)
    console.print(table)


@app.command()
def sweep(
    file: Path = typer.Argument(..., help="sweep YAML: keys are profile options, values lists"),
    shard: str = typer.Option(None, help="run only slice i/N of the grid, e.g. 2/8"),
    resume: bool = typer.Option(False, "--resume", help="skip configurations already finished"),
    executor: str = typer.Option("local", help=f"where to run: {' | '.join(EXECUTOR_NAMES)}"),
    address: str = typer.Option(None, help="Ray cluster address (default: start a local Ray)"),
    out: Path = typer.Option(Path("reports/"), help="run store root"),
    dry_run: bool = typer.Option(False, "--dry-run", help="list the configurations, run nothing"),
) -> None:
    """Run every configuration of a sweep file; exit code 1 when any configuration failed."""
    from effprof.api.sweep import sweep as run_sweep

    if dry_run:
        _print_plan(file, shard, out)
        return
    with console.status("sweep: planning") as status:
        summary = run_sweep(
            file, out=out, shard=shard, resume=resume, executor=executor, address=address,
            progress=_Printer(status),
        )  # fmt: skip
    _print_summary(summary)
    if summary.failed:
        err_console.print(f"{len(summary.failed)} configuration(s) failed", markup=False)
        raise typer.Exit(1)
