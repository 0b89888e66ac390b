"""``effprof profile`` and ``effprof runs``."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from effprof import schema as S
from effprof.cli import app, console, err_console, warn
from effprof.cli.boundary import one_line
from effprof.files import disk_full
from effprof.results import EffprofError


def _options(**given: Any) -> dict[str, Any]:
    """Options the user actually set (None / unset flags are left to the config file or defaults)."""
    return {k: v for k, v in given.items() if v is not None}


@app.command()
def profile(
    model: str = typer.Option(None, help="registered name (mssnet) or package.module:callable"),
    variant: str = typer.Option(None, help="model variant, e.g. small | base | large"),
    weights: str = typer.Option(
        None, help="checkpoint file, or a shipped name such as 'synthetic'"
    ),
    input: str = typer.Option(
        None,
        "--input",
        help="N x C x H x W, e.g. 1x3x720x1280 (default: 256x256 on CPU, 720p on CUDA)",
    ),
    device: str = typer.Option(None, help="auto | cpu | cuda"),
    precision: str = typer.Option(None, help="fp32 | tf32 | fp16 | bf16"),
    channels_last: bool = typer.Option(None, "--channels-last/--no-channels-last"),
    cuda_graphs: bool = typer.Option(None, "--cuda-graphs/--no-cuda-graphs"),
    compile: bool = typer.Option(None, "--compile/--no-compile", help="time torch.compile'd model"),
    onnx: bool = typer.Option(
        None, "--onnx/--no-onnx", help="also export to ONNX and time ONNX Runtime"
    ),
    int8: bool = typer.Option(
        None,
        "--int8/--no-int8",
        help="quantise the model to ONNX Runtime INT8 and compare it with fp32 (default on)",
    ),
    resolutions: str = typer.Option(None, help="resolution sweep, e.g. 256,512,720p,1080p,4k"),
    warmup: int = typer.Option(None, help="untimed warm-up forwards"),
    repeat: int = typer.Option(None, help="timed forwards"),
    threads: int = typer.Option(None, help="torch intra-op threads while timing"),
    crosscheck: bool = typer.Option(
        None, "--crosscheck/--no-crosscheck", help="count with FlopCounterMode, fvcore and thop too"
    ),
    roofline: bool = typer.Option(
        None,
        "--roofline/--no-roofline",
        help="measure this device's peak FLOP/s and bandwidth now (cached for later runs)",
    ),
    out: str = typer.Option(None, help="run store root (default reports/)"),
    config: Path = typer.Option(None, help="YAML file of these options; flags given here win"),
) -> None:
    """Count, time and measure a model; write a run and its HTML report."""
    from effprof.api.profile import profile as run_profile
    from effprof.config import ProfileConfig, load_config, validate

    given = _options(
        model=model, variant=variant, weights=weights, input=input, device=device,
        precision=precision, channels_last=channels_last, cuda_graphs=cuda_graphs,
        compile=compile, onnx=onnx, int8=int8, resolutions=resolutions, warmup=warmup, repeat=repeat,
        threads=threads, crosscheck=crosscheck, roofline=roofline, out=out,
    )  # fmt: skip
    settings = (
        load_config(ProfileConfig, config, given)
        if config
        else validate(ProfileConfig, given, "options")
    )
    with console.status("profiling") as status:
        run_dir = run_profile(
            settings, progress=lambda step: status.update(f"profiling: {step}")
        ).path
        status.update("writing report.html")
        write_report_of(run_dir)
    print_summary(run_dir)


def write_report_of(run_dir: Path) -> None:
    """report.html beside the run; a rendering failure is reported, the run stays intact."""
    from effprof.report.render import write_report
    from effprof.runs import remove_run

    try:
        write_report([run_dir])
    except OSError as error:
        if not disk_full(error):
            raise
        remove_run(run_dir)  # a full disk: the command fails whole, leaving nothing behind
        raise EffprofError(
            f"no space left on the device for report.html under {str(run_dir.parent.parent)!r}; "
            "the run was removed again"
        ) from None
    except Exception as error:  # the measured run matters more than its page
        warn(
            f"report.html not written ({type(error).__name__}: {error}); "
            f"retry with: effprof report {run_dir}"
        )


def _value(metrics: dict[str, Any], missing: dict[str, str], key: str, fmt) -> str:
    if metrics.get(key) is None:
        return f"missing ({missing[key]})" if key in missing else "—"
    return fmt(metrics[key])


def print_summary(run_dir: Path) -> None:
    from effprof.runs import read_record
    from effprof.units import binary_bytes, si

    record = read_record(run_dir)
    m, miss = record.metrics, record.missing
    table = Table(
        title=f"{record.model} {record.variant or ''} — {m.get(S.INPUT_SHAPE)} on {record.env.get('device_name')}"
    )
    table.add_column("metric")
    table.add_column("value", justify="right")
    rows = [
        ("parameters", "param_count", lambda v: f"{v:,}"),
        ("MACs", "macs", lambda v: si(v, "MAC")),
        ("FLOPs", "flops", lambda v: si(v, "FLOP")),
        ("MACs per output pixel", "macs_per_output_pixel", lambda v: f"{v:,.0f}"),
        ("latency median", "latency_median_ms", lambda v: f"{v:,.2f} ms"),
        (
            "latency p10 / p90",
            "latency_p10_ms",
            lambda v: f"{v:,.2f} / {m.get(S.LATENCY.p90_ms, 0):,.2f} ms",
        ),
        ("latency CV", "latency_cv", lambda v: f"{100 * v:.1f} %"),
        ("throughput", "throughput_mpix_s", lambda v: f"{v:,.3f} MP/s"),
        ("peak activation memory (measured)", "memory_activation_peak_bytes", binary_bytes),
        ("peak activation memory (meta trace)", "activation_peak_bytes", binary_bytes),
        ("weights", "weights_bytes", binary_bytes),
    ]
    if S.INT8_SPEEDUP in m or S.INT8_SPEEDUP in miss:
        rows.append(("ONNX Runtime INT8 speed-up over fp32", "int8_speedup_vs_ort_fp32",
                     lambda v: f"{v:.2f}x"))  # fmt: skip
    if S.ORT.median_ms in m:
        rows.append(
            ("ONNX Runtime latency median", "ort_latency_median_ms", lambda v: f"{v:,.2f} ms")
        )
    for label, key, fmt in rows:
        table.add_row(label, _value(m, miss, key, fmt))
    console.print(table)
    for note in record.notes:
        if not note.startswith(("latency:", "memory:")):
            console.print(f"note: {note}", markup=False)
    report = run_dir / "report.html"
    console.print(f"run: {run_dir}", markup=False)
    if report.is_file():
        console.print(f"report: {report}", markup=False)


RUN_COLUMNS = {
    "run_id": "run",
    "kind": "kind",
    "model": "model",
    "variant": "variant",
    f"metrics.{S.INPUT_SHAPE}": "input",
    "env.device_name": "device",
    f"metrics.{S.LATENCY.median_ms}": "latency ms",
}


def _cell(value: Any) -> str:
    """A table cell: blank for every shape of missing (None, NaN, pd.NA), numbers with commas."""
    if value is None or type(value).__name__ in ("NAType", "NaTType"):
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:,.2f}"
    return one_line(value)  # a stored run's text: no terminal escapes reach the screen


@app.command()
def runs(root: Path = typer.Option(Path("reports/"), "--root", help="run store root")) -> None:
    """List stored runs, newest last; unreadable run folders are skipped with a warning."""
    from effprof.runs import check_store_root, load_runs

    frame = load_runs(check_store_root(root, "--root"))
    if frame.empty:
        err_console.print(f"no runs under {root}", markup=False, highlight=False, soft_wrap=True)
        return
    table = Table()
    columns = [c for c in RUN_COLUMNS if c in frame.columns]
    for column in columns:
        table.add_column(RUN_COLUMNS[column])
    for row in frame.sort_values("created", kind="stable")[columns].itertuples(index=False):
        table.add_row(*(_cell(value) for value in row))
    console.print(table)
