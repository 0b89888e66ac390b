"""``effprof count``: counts, attribution, counterfactuals and scaling on the meta device, no timing.

Nothing runs on a device, so any size is counted in about a second; the run is stored like a
profile (kind ``profile``, ``params.count_only = true``) and ``--report`` renders its page.
"""

from __future__ import annotations

from pathlib import Path

import typer

from effprof import schema as S
from effprof.cli import app, console, skip_teardown


@app.command()
def count(
    model: str = typer.Option(None, help="registered name (mssnet) or package.module:callable"),
    variant: str = typer.Option(None, help="model variant, e.g. small | base | large"),
    weights: str = typer.Option(None, help="checked, not loaded: counts do not depend on weights"),
    input: str = typer.Option(None, "--input", help="N x C x H x W, e.g. 1x3x2160x3840"),
    resolutions: str = typer.Option(None, help="more sizes to count at, e.g. 256,720p,4k"),
    out: str = typer.Option(None, help="run store root (default reports/)"),
    report: bool = typer.Option(False, "--report/--no-report", help="also write report.html"),
    config: Path = typer.Option(None, help="YAML file of profile options; flags given here win"),
    json_out: bool = typer.Option(
        False, "--json", help="print the counts as one JSON document (the run is stored too)"
    ),
) -> None:
    """Count a model on the meta device (no timing): MACs, attribution, counterfactuals, scaling."""
    from effprof.api.profile import profile as run_profile
    from effprof.cli.profile import print_summary, write_report_of
    from effprof.config import ProfileConfig, load_config, validate

    options = {"model": model, "variant": variant, "weights": weights, "input": input,
               "resolutions": resolutions, "out": out}  # fmt: skip
    given = {k: v for k, v in options.items() if v is not None}
    given["count_only"] = True
    settings = (
        load_config(ProfileConfig, config, given)
        if config
        else validate(ProfileConfig, given, "options")
    )
    run_dir = run_profile(settings).path
    if report:
        write_report_of(run_dir)
    print_summary(run_dir, as_json=json_out)
    if not json_out:
        console.print(f"counted in {read_seconds(run_dir):.2f} s", markup=False)
    skip_teardown()  # the run is written and nothing was started: no teardown to wait for


def read_seconds(run_dir: Path) -> float:
    """The seconds the job took, as its run recorded them."""
    from effprof.runs import read_record

    return float(read_record(run_dir).metrics.get(S.PROFILE_SECONDS) or 0.0)
