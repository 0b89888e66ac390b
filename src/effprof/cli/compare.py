"""``effprof compare RUN...``: headline metrics side by side, ratios to the first run, a page, and
the budget gate of CI (``--fail-on``, ``--budget``; rules in :mod:`effprof.runs.budget`).

Exit codes: 0 every rule holds (or none was given); 1 a rule is broken; 2 bad input (a malformed
rule, an unknown metric, an unreadable run or budget file); 3 no rule is broken but one could not
be judged (an unreliable interleaved latency ratio, a run that was not re-timed, a value a run
lacks).
"""

from __future__ import annotations

import math
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from effprof.cli import app, check_output_file, console, retime_rounds_option, table_console, warn
from effprof.cli.boundary import one_line
from effprof.results import EffprofError

if TYPE_CHECKING:
    from effprof.runs import BudgetCheck, Comparison, Rule, Verdict


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
    table_console().print(table)
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
    runtimes = frame["runtime"].nunique() > 1 if "runtime" in frame.columns else False
    title = f"timed again now, interleaved ({rounds} round(s); ratios within a round"
    table = Table(title=f"{title}{', to run 1 in the same runtime' if runtimes else ''})")
    for name in ("run", "median", "ratio to run 1", "ratio reliable"):
        table.add_column(name, justify="left" if name == "run" else "right")
    for row in frame.itertuples():
        # with ONNX Runtime models too, each row names its model: a run may give two
        name = one_line(row.candidate if runtimes else row.label)
        if not row.rounds:
            table.add_row(name, f"missing ({one_line(row.missing)})", "—", "—")
            continue
        reason = str(row.ratio_unreliable_reason).split("; ")[0]
        reliable = "yes" if row.ratio_reliable else f"no: {reason}"
        table.add_row(
            name, format_metric(row.median_ms, "ms"), format_ratio(row.ratio), one_line(reliable)
        )
    table_console().print(table)


def _rules(fail_on: list[str], budget: Path | None) -> tuple[Rule, ...]:
    """The rules of ``--fail-on`` and of the ``--budget`` file, in that order."""
    from effprof.config import BudgetFile, load_config
    from effprof.runs import parse_rules

    rules = parse_rules(fail_on, "--fail-on")
    if budget is not None:
        rules += parse_rules(load_config(BudgetFile, budget).fail_on, f"budget {str(budget)!r}")
    return rules


def _verdict_line(verdict: Verdict) -> str:
    """``FAIL macs: 1.23 GMAC -> 1.30 GMAC (+5.69 %) breaks macs=+2% (run 2)``."""
    from effprof.report.compare import format_metric, format_ratio
    from effprof.runs.budget import BROKEN, HOLDS

    rule, unit = verdict.rule, "" if verdict.unit == "count" else verdict.unit
    position = verdict.label.split(":")[0]
    if verdict.new is None:
        return f"? {verdict.metric}: could not judge {rule.text} (run {position}): {verdict.reason}"
    values = f"{format_metric(verdict.base, unit)} -> {format_metric(verdict.new, unit)}"
    if verdict.base is None:
        values = format_metric(verdict.new, unit)
    if verdict.ratio is not None:
        values += f" (ratio {format_ratio(verdict.ratio)} within rounds)"
    elif verdict.change is not None:
        change = f"{verdict.change:+.2f} %" if rule.percent else format_metric(verdict.change, unit)
        values += f" ({change})"
    if verdict.status == HOLDS:
        return f"ok {verdict.metric}: {values} holds {rule.text} (run {position})"
    if verdict.status == BROKEN:
        return f"FAIL {verdict.metric}: {values} breaks {rule.text} (run {position})"
    return f"? {verdict.metric}: {values}: could not judge {rule.text} (run {position}): {verdict.reason}"


def _print_budget(check: BudgetCheck) -> None:
    for verdict in check.verdicts:
        console.print(
            f"budget: {one_line(_verdict_line(verdict))}", markup=False, highlight=False,
            soft_wrap=True,
        )  # fmt: skip
    broken, unjudged = len(check.broken), len(check.unjudged)
    verdict = (
        f"{broken} rule(s) broken" if broken
        else f"{unjudged} rule(s) could not be judged" if unjudged
        else "every rule holds"
    )  # fmt: skip
    console.print(f"budget: {verdict} (exit code {check.exit_code})", markup=False, highlight=False)


def _document(comparison: Comparison, check: BudgetCheck | None, page: Path | None) -> dict:
    from effprof.cli.documents import records

    runs = comparison.runs[["run_id", "label", "kind", "model", "variant", "path"]]
    retimed = comparison.retimed
    return {
        "runs": records(runs), "headline": records(comparison.headline),
        "warnings": list(comparison.warnings),
        "retimed": records(retimed) if retimed is not None else None,
        "retime_notes": list(comparison.retime_notes),
        "budget": None if check is None else {
            "exit_code": check.exit_code, "verdicts": [v.to_dict() for v in check.verdicts],
        },
        "page": str(page) if page is not None else None,
    }  # fmt: skip


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
    retime_rounds: int = retime_rounds_option("time the runs' models again"),
    trust_model: list[str] = typer.Option(
        [],
        "--trust-model",
        help="a factory (module:callable, file.py:callable) that runs name and that may be "
        "imported to re-time them; runs are data, so without it only registered models are rebuilt",
    ),
    fail_on: list[str] = typer.Option(
        [],
        "--fail-on",
        help="a budget rule NEW must hold against BASE (repeatable): macs=+2% (may grow by 2%), "
        "params=+1000, 'params<=1.5M', psnr_db=-0.1, latency=+5% (interleaved ratio); exit "
        "code 1 when one is broken, 3 when one could not be judged",
    ),
    budget: Path = typer.Option(
        None, "--budget", help="YAML file of budget rules (fail_on: [macs=+2%, ...])"
    ),
    json_out: bool = typer.Option(
        False, "--json", help="print the comparison (and budget verdicts) as one JSON document"
    ),
) -> None:
    """Compare runs: headline metrics with ratios to the first, a comparison HTML page, and a
    budget gate for CI (--fail-on, --budget)."""
    from effprof.api.compare import compare as compare_job
    from effprof.runs import check_budget, resolve_runs
    from effprof.runs.budget import needs_onnx, needs_retiming

    rules = _rules(fail_on, budget)
    if needs_retiming(rules) and retime_rounds < 1:
        raise EffprofError(
            "a latency rule is judged by the runs' models timed again now, interleaved: give "
            "--retime-rounds 1 or more"
        )
    if html is not None and not no_html:
        check_output_file(html, "--html")
    with warnings.catch_warnings(record=True) as skipped:
        warnings.simplefilter("always")
        comparison = compare_job(
            resolve_runs(runs, root), retime_rounds=retime_rounds, trusted=tuple(trust_model),
            onnx=needs_onnx(rules),
        )  # fmt: skip
    for warning in skipped:
        warn(str(warning.message))
    check = check_budget(comparison, rules) if rules else None
    page = None if no_html else _write_page(comparison, html, root)
    if json_out:
        from effprof.cli.documents import print_document

        print_document("comparison", _document(comparison, check, page))
    else:
        _print_all(comparison, check, page)
    if check is not None and check.exit_code:
        raise typer.Exit(check.exit_code)


def _write_page(comparison: Comparison, html: Path | None, root: Path) -> Path:
    """The comparison page, at ``html`` or under the store's comparisons/ folder."""
    from effprof.report.compare import render_comparison
    from effprof.runs import write_text_atomic

    if html is None:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
        html = root / "comparisons" / f"compare-{stamp}.html"
        html.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(html, render_comparison(comparison))
    return html


def _print_all(comparison: Comparison, check: BudgetCheck | None, page: Path | None) -> None:
    for line in comparison.warnings:  # part of the comparison's output, beside its table
        console.print(
            f"warning: {one_line(line)}", style="bold yellow", markup=False, highlight=False,
            soft_wrap=True,
        )  # fmt: skip
    _print_table(comparison)
    _print_retimed(comparison)
    if check is not None:
        _print_budget(check)
    if page is not None:
        console.print(f"page: {page}", markup=False, highlight=False, soft_wrap=True)
