"""``effprof compare RUN...``: headline metrics side by side, ratios to the first run, and a page."""

from __future__ import annotations

import math
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from effprof.cli import app, check_output_file, console, warn
from effprof.cli.boundary import one_line

if TYPE_CHECKING:
    from effprof.runs import Comparison

# Each round times every run's models once more; past this many the ratios do not get better,
# and a comparison must end (a typo of 1,000,000,000 re-timed until killed).
MAX_RETIME_ROUNDS = 100


def _print_table(comparison: Comparison) -> None:
    from effprof.report.compare import format_metric, format_ratio

    table = Table(title="headline metrics (ratios to run 1)")
    table.add_column("metric")
    for label in comparison.labels:
        table.add_column(one_line(label), justify="right")
    for metric, group in comparison.headline.groupby("metric", sort=False):
        cells = []
        for position, (_, cell) in enumerate(group.iterrows()):
            if math.isnan(cell["value"]):
                reason = cell["missing"]
                cells.append(
                    "—" if reason is None or reason != reason else f"missing ({one_line(reason)})"
                )
                continue
            text = format_metric(cell["value"], cell["unit"])
            cells.append(text if position == 0 else f"{text} ({format_ratio(cell['ratio'])})")
        table.add_row(one_line(metric), *cells)
    console.print(table)
    for _, row in comparison.runs.iterrows():
        console.print(
            f"{row['label'].split(':')[0]}: {one_line(row['path'])}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )


def _print_retimed(comparison: Comparison) -> None:
    from effprof.report.compare import format_metric, format_ratio

    for note in comparison.retime_notes:
        console.print(f"note: {one_line(note)}", markup=False, highlight=False, soft_wrap=True)
    frame = comparison.retimed
    if frame is None or frame.empty:
        return
    rounds = int(frame["rounds"].max())
    table = Table(title=f"timed again now, interleaved ({rounds} round(s); ratios within a round)")
    for name in ("run and runtime", "median", "ratio to run 1", "ratio reliable"):
        table.add_column(name, justify="left" if name == "run and runtime" else "right")
    for row in frame.itertuples():
        if not row.rounds:
            table.add_row(one_line(row.candidate), f"missing ({one_line(row.missing)})", "—", "—")
            continue
        reason = str(row.ratio_unreliable_reason).split("; ")[0]
        reliable = "yes" if row.ratio_reliable else f"no: {reason}"
        table.add_row(
            one_line(row.candidate), format_metric(row.median_ms, "ms"), format_ratio(row.ratio),
            one_line(reliable),
        )  # fmt: skip
    console.print(table)


@app.command()
def compare(
    runs: list[str] = typer.Argument(
        ..., help="run folders, run ids, or key=value filters (model=mssnet params.precision=fp16)"
    ),
    root: Path = typer.Option(Path("reports/"), "--root", help="run store for ids and filters"),
    html: Path = typer.Option(
        None, "--html", help="page to write (default <root>/comparisons/compare-<time>.html)"
    ),
    no_html: bool = typer.Option(False, "--no-html", help="print the table only"),
    retime_rounds: int = typer.Option(
        1,
        "--retime-rounds",
        min=0,
        max=MAX_RETIME_ROUNDS,
        help=f"time the runs' models again, interleaved, in this many rounds (0: do not; at "
        f"most {MAX_RETIME_ROUNDS})",
    ),
    trust_model: list[str] = typer.Option(
        [],
        "--trust-model",
        help="a factory (module:callable, file.py:callable) that runs name and that may be "
        "imported to re-time them; runs are data, so without it only registered models are rebuilt",
    ),
) -> None:
    """Compare runs: headline metrics with ratios to the first, and a comparison HTML page."""
    from effprof.api.compare import compare as compare_job
    from effprof.report.compare import render_comparison
    from effprof.runs import resolve_runs, write_text_atomic

    if html is not None and not no_html:
        check_output_file(html, "--html")
    with warnings.catch_warnings(record=True) as skipped:
        warnings.simplefilter("always")
        comparison = compare_job(
            resolve_runs(runs, root), retime_rounds=retime_rounds, trusted=tuple(trust_model)
        )
    for warning in skipped:
        warn(str(warning.message))
    for line in comparison.warnings:  # part of the comparison's output, beside its table
        console.print(
            f"warning: {one_line(line)}", style="bold yellow", markup=False, highlight=False,
            soft_wrap=True,
        )  # fmt: skip
    _print_table(comparison)
    _print_retimed(comparison)
    if no_html:
        return
    if html is None:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
        html = root / "comparisons" / f"compare-{stamp}.html"
        html.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(html, render_comparison(comparison))
    console.print(f"page: {html}", markup=False, highlight=False, soft_wrap=True)
