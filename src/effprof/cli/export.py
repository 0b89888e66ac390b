"""``effprof export STORE|RUN...``: stored runs into MLflow, or into the GitHub benchmark action's
JSON (:mod:`effprof.api.export`)."""

from __future__ import annotations

from pathlib import Path

import typer

from effprof.cli import app, check_output_file, console
from effprof.results import EffprofError


@app.command()
def export(
    runs: list[str] = typer.Argument(
        ..., help="run stores (every run in them), run folders, run ids or key=value filters"
    ),
    mlflow: str = typer.Option(
        None, "--mlflow", help="MLflow tracking URI to log the runs to, e.g. sqlite:///mlflow.db"
    ),
    experiment: str = typer.Option(
        "effprof", "--experiment", help="MLflow experiment (created if absent)"
    ),
    github_benchmark: Path = typer.Option(
        None,
        "--github-benchmark",
        help="write the runs' lower-is-better numbers as the GitHub benchmark action's "
        "customSmallerIsBetter JSON to this file ('-': stdout)",
    ),
    root: Path = typer.Option(Path("reports/"), "--root", help="run store for ids and filters"),
) -> None:
    """Export stored runs: to an MLflow tracking store, or as GitHub benchmark action JSON."""
    from effprof.api.export import export_mlflow, export_targets
    from effprof.api.export import github_benchmark as benchmark_entries
    from effprof.runs import dumps_json, write_text_atomic

    if mlflow is None and github_benchmark is None:
        raise EffprofError("say where to: --mlflow TRACKING_URI and/or --github-benchmark FILE")
    to_stdout = github_benchmark is not None and str(github_benchmark) == "-"
    if github_benchmark is not None and not to_stdout:
        check_output_file(github_benchmark, "--github-benchmark")
    paths = export_targets(runs, root)
    if github_benchmark is not None:
        text = dumps_json(benchmark_entries(paths), indent=1) + "\n"
        if to_stdout:
            typer.echo(text, nl=False)
        else:
            write_text_atomic(github_benchmark, text)
            console.print(f"github benchmark: {github_benchmark}", markup=False, highlight=False)
    if mlflow is not None:
        exported = export_mlflow(paths, mlflow, experiment)
        out = console.print if not to_stdout else (lambda *a, **k: None)
        for item in exported:
            what = "logged" if item.logged else "already in MLflow, not logged again"
            out(f"{item.run_id}: {what} (MLflow run {item.mlflow_run_id})", markup=False,
                highlight=False, soft_wrap=True)  # fmt: skip
        logged = sum(item.logged for item in exported)
        out(f"mlflow: {logged} run(s) logged, {len(exported) - logged} already there, "
            f"experiment {experiment!r} at {mlflow}", markup=False, highlight=False, soft_wrap=True)  # fmt: skip
