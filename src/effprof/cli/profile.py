"""``effprof profile``, and the summary ``profile`` and ``count`` print (a table, or ``--json``)."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from effprof import schema as S
from effprof.cli import app, console, err_console, skip_teardown, table_console, warn
from effprof.cli.boundary import one_line
from effprof.files import disk_full
from effprof.results import EffprofError

if TYPE_CHECKING:
    from effprof.report.runview import RunView


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
    json_out: bool = typer.Option(
        False, "--json", help="print the summary as one JSON document (progress on stderr)"
    ),
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
    with step_progress("profile", to_stderr=json_out) as progress:
        run_dir = run_profile(settings, progress=progress).path
        progress("writing report.html")
        write_report_of(run_dir)
    print_summary(run_dir, as_json=json_out)
    skip_teardown()  # the child is joined, the scratch folder removed: no teardown to wait for


@contextlib.contextmanager
def step_progress(job: str, *, to_stderr: bool = False) -> Iterator[Callable[[str], None]]:
    """What a job is doing: a spinner on a terminal; elsewhere (a log file, CI) one line per step
    with the seconds since the start, so a long job piped to a file is not silent until its end.
    On stdout, or on stderr when stdout carries a JSON document."""
    shown = err_console if to_stderr else console
    if shown.is_terminal:
        with shown.status(f"{job}: starting") as spinner:
            yield lambda text: spinner.update(f"{job}: {one_line(text)}")
        return
    stream = sys.stderr if to_stderr else sys.stdout
    started = time.perf_counter()
    reader_gone: list[bool] = []

    def line(text: str) -> None:
        if reader_gone:
            return
        elapsed = time.perf_counter() - started
        try:
            print(f"{job} [{elapsed:7.1f} s] {one_line(text)}", file=stream, flush=True)
        except BrokenPipeError:  # ``| head`` has read enough: the job still finishes its run
            reader_gone.append(True)

    yield line


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


@dataclass(frozen=True)
class SummaryRow:
    """One line of a run's summary: the stored metric it shows (or, for a figure derived as the
    report derives it, that figure's name), its value and unit, how the table writes it, and its
    status (measured, missing, unreliable, partial) with the reason."""

    metric: str
    label: str
    value: Any
    unit: str
    text: str
    status: str
    reason: str | None = None

    def cell(self, footnote: Callable[[str], int]) -> str:
        """The table's cell: the value, or ``missing [n]``; an unreliable value says so. A
        reason is a numbered footnote (``footnote`` gives its number), printed once below."""
        if self.value is None:
            return f"missing [{footnote(self.reason)}]" if self.reason else "—"
        if self.status == S.UNRELIABLE and self.reason:
            return f"{self.text} (unreliable [{footnote(self.reason)}])"
        return self.text


def _stored(
    view: RunView, metric: S.Metric, text: Callable[[Any], str], label: str | None = None
) -> SummaryRow:
    """The row of a stored metric: its value as stored (an int stays an int), its status."""
    record = view.record
    value = view.metric(metric) if view.number(metric) is not None else None
    status, reason = record.metric_status(metric), record.metric_reason(metric)
    shown = text(value) if value is not None else "—"
    return SummaryRow(metric, label or metric.label, value, metric.unit, shown, status, reason)


def summary_rows(view: RunView) -> list[SummaryRow]:
    """The headline of a run, with the report's own facts (:mod:`effprof.report.facts`): MACs
    per output pixel, token, point or image as the run's output is; throughput in megapixels,
    points or inputs per second; each number formatted as the report formats it."""
    from effprof.report import numbers as fmt
    from effprof.report.facts import cost_basis, throughput

    m = view.metrics
    macs = _stored(view, S.MACS, lambda v: fmt.count(v, "MAC"))
    basis = cost_basis(view)
    label, per_unit = basis.label, basis.per_unit
    if label == S.MACS_PER_OUTPUT_PIXEL.label:
        basis = _stored(view, S.MACS_PER_OUTPUT_PIXEL, fmt.count)
    else:  # per token, point or image: derived from the MACs, as the report derives it
        name = label.lower().replace(" ", "_")
        basis = replace(macs, metric=name, label=label, value=per_unit, text=fmt.count(per_unit))
    latency = _stored(view, S.LATENCY.median_ms, fmt.ms, "latency median")
    rate = throughput(view)
    if rate.value is None:
        speed = SummaryRow("throughput", "throughput", None, rate.unit, "—", S.MISSING, rate.detail)
    else:  # as reliable as the latency it comes from
        speed = replace(latency, metric="throughput", label="throughput", value=rate.value,
                        unit=rate.unit, text=rate.text())  # fmt: skip
    rows = [
        _stored(view, S.PARAM_COUNT, fmt.count),
        macs,
        _stored(view, S.FLOPS, lambda v: fmt.count(v, "FLOP")),
        basis,
        latency,
        _stored(view, S.LATENCY.p10_ms, fmt.ms, "latency p10"),
        _stored(view, S.LATENCY.p90_ms, fmt.ms, "latency p90"),
        _stored(view, S.LATENCY.cv, fmt.pct, "latency CV"),
        speed,
        _stored(view, S.MEMORY_ACTIVATION_PEAK_BYTES, fmt.nbytes),
        _stored(view, S.ACTIVATION_PEAK_BYTES, fmt.nbytes),
        _stored(view, S.WEIGHTS_BYTES, fmt.nbytes),
    ]  # fmt: skip
    if S.INT8_SPEEDUP in m or S.INT8_SPEEDUP in view.record.missing:
        rows.append(_stored(view, S.INT8_SPEEDUP, fmt.times))
    if S.ORT.median_ms in m:
        rows.append(_stored(view, S.ORT.median_ms, fmt.ms, "ONNX Runtime latency median"))
    return rows


def print_summary(run_dir: Path, *, as_json: bool = False) -> None:
    """The run's headline as a table (then its notes, folder and report), or one JSON document."""
    from effprof.report.runview import RunView

    view = RunView.open(run_dir)
    record = view.record
    rows = summary_rows(view)
    report = run_dir / "report.html"
    if as_json:
        from effprof.cli.documents import print_document

        print_document("profile", {
            "run": {"run_id": record.run_id, "path": str(run_dir), "kind": record.kind,
                    "model": record.model, "variant": record.variant, "status": record.status,
                    "created": record.created, "count_only": bool(record.params.get("count_only")),
                    "report": str(report) if report.is_file() else None},
            "summary": [{"metric": r.metric, "label": r.label, "value": r.value, "unit": r.unit,
                         "status": r.status, "reason": r.reason} for r in rows],
            "metrics": record.metrics, "missing": record.missing,
            "unreliable": record.unreliable, "partial": record.partial, "notes": record.notes,
        })  # fmt: skip
        return
    device = record.env.get("device_name")
    title = f"{view.title_name} — {view.metric(S.INPUT_SHAPE)} on {device}"
    table = Table(title=one_line(title))
    table.add_column("metric")
    table.add_column("value", justify="right")
    reasons: dict[str, int] = {}
    for row in rows:
        table.add_row(row.label, row.cell(lambda why: reasons.setdefault(why, len(reasons) + 1)))
    table_console().print(table)
    for reason, number in reasons.items():
        console.print(
            f"[{number}] {one_line(reason)}", markup=False, highlight=False, soft_wrap=True
        )
    for note in record.notes:
        if not note.startswith(("latency:", "memory:")):
            console.print(f"note: {one_line(note)}", markup=False, highlight=False, soft_wrap=True)
    console.print(f"run: {run_dir}", markup=False, highlight=False, soft_wrap=True)
    if report.is_file():
        console.print(f"report: {report}", markup=False, highlight=False, soft_wrap=True)
