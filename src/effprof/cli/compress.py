"""``effprof compress``: run a compression config, one run per step, and show LightGaussian's table."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from effprof.cli import app, console, err_console, fail, retime_rounds_option
from effprof.units import binary_bytes

if TYPE_CHECKING:
    pass

TABLE_WIDTH = 160


def _options(**given: Any) -> dict[str, Any]:
    return {k: v for k, v in given.items() if v is not None}


class _Bar:
    """A rich bar over the steps; the current phase (and recovery's loss) as its text."""

    def __init__(self) -> None:
        self.bar = Progress(
            TextColumn("compress"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            console=err_console,
        )
        self.task: Any = None

    def __call__(self, event: Any) -> None:  # an effprof.api.compress.CompressEvent
        if self.task is None:
            self.bar.start()
            self.task = self.bar.add_task("steps", total=event.total, status="")
        status = f"{event.label}: {event.detail}" if event.detail else event.label
        done = event.index + (1 if event.kind in ("done", "skip") else 0)
        self.bar.update(self.task, completed=done, status=status)
        if event.kind in ("done", "skip"):
            verb = "skipped (finished earlier)" if event.kind == "skip" else "done"
            self.bar.console.print(f"{event.label}: {verb}", markup=False, highlight=False)

    def stop(self) -> None:
        if self.task is not None:
            self.bar.stop()


def _lines(event: Any) -> None:
    if event.kind == "train" and not event.detail.split("/")[0].endswith("0"):
        return  # one line per ten training log rows
    where = f"[{event.index}/{event.total - 1}] {event.label}"
    print(f"{where} {event.kind}: {event.detail}".rstrip(": "), file=sys.stderr, flush=True)


def _fmt(value: Any, spec: str, suffix: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:{spec}}{suffix}"


def _size(value: Any) -> str:
    return "—" if _fmt(value, ".0f") == "—" else binary_bytes(value)


def _with_ratio(value: Any, ratio: Any, mark: str) -> str:
    text = _fmt(value, ",.1f")
    if text == "—":
        return text
    return f"{text} ({_fmt(ratio, '.2f', 'x')}{mark})" if _fmt(ratio, ".2f") != "—" else text


# the quality columns of the table, per kind of quality (runs.compression.quality_of)
PSNR_COLUMNS = (("test_psnr_db", "PSNR vs sharp (dB)", ".2f"), ("psnr_delta_db", "Δ dense", "+.2f"))
FIDELITY_COLUMNS = (
    ("fidelity_snr_db", "SNR to dense (dB)", ".2f"), ("fidelity_rel_l2_error", "rel. L2", ".2%"),
    ("fidelity_psnr_db", "PSNR to dense (dB)", ".2f"),
    ("fidelity_top1_agreement", "top-1 agreement", ".0%"),
)  # fmt: skip


def _table(frame) -> Table:
    from effprof.runs.compression import quality_of, shown_latency, speedup_mark

    psnr = quality_of(frame).column == "test_psnr_db"
    quality = [
        c for c in (PSNR_COLUMNS if psnr else FIDELITY_COLUMNS)
        if c[0] in ("fidelity_snr_db", "fidelity_rel_l2_error") or frame[c[0]].notna().any()
    ]  # fmt: skip
    table = Table(title="compression: ratios against the dense model")
    headers = ["step", "from", "size (x smaller)", "MACs", "ORT ms (x faster)",
               "torch ms (x faster)", *(label for _, label, _ in quality)]  # fmt: skip
    headers += ["Δ same training"] if psnr else []
    for name in headers:
        table.add_column(name, justify="left" if name in ("step", "from") else "right")
    frame = frame.assign(ort_shown=shown_latency(frame, "ort"),
                         torch_shown=shown_latency(frame, "torch"))  # fmt: skip
    for row in frame.itertuples():
        mark = speedup_mark(row.speedup_basis, bool(row.speedup_reliable))
        cells = [
            str(row.step), row.source if isinstance(row.source, str) else "",
            f"{_size(row.file_bytes)} ({_fmt(row.size_x, '.1f', 'x')})",
            _fmt(row.macs_ratio, ".2f", "x"),
            _with_ratio(row.ort_shown, row.ort_speedup, mark),
            _with_ratio(row.torch_shown, row.torch_speedup, mark),
            *(
                "reference"  # fidelity is scored against the dense model: identical to itself
                if not psnr and row.method == "dense"
                else _fmt(getattr(row, column), spec)
                for column, _, spec in quality
            ),
        ]  # fmt: skip
        if psnr:
            # no dense control trained as many steps: no reference (a missing cell is NaN here)
            reference = row.reference if isinstance(row.reference, str) else None
            same = f"{_fmt(row.quality_delta_db, '+.2f')} {reference}" if reference else "—"
            cells.append(same)
        table.add_row(*cells)
    return table


def _setting(frame) -> list[str]:
    from effprof.runs.compression import caveats, latency_setting, quality_of, speedup_note

    s = latency_setting(frame)
    threads = ", ".join(map(str, s["threads"])) or "?"
    lines = [
        f"latencies: {' and '.join(s['runtimes']) or 'none'}, {threads} intra-op "
        f"thread{'' if s['threads'] == [1] else 's'}, inputs {', '.join(s['inputs']) or '?'}; "
        "x smaller: dense file / this file; x faster: dense latency / this latency in the same "
        "runtime",
        speedup_note(frame),
        quality_of(frame).sentence,
    ]
    if frame["test_psnr_db"].notna().any():
        lines.append(
            "Δ same training: PSNR against the uncompressed model given as many extra training "
            "steps (named)"
        )
    return lines + caveats(frame)


@app.command()
def compress(
    config: Path = typer.Option(
        None, help="YAML file naming the steps (configs/compress-*.yaml); flags given here win"
    ),
    model: str = typer.Option(None, help="registered name (mssnet) or package.module:callable"),
    variant: str = typer.Option(None, help="model variant, e.g. small | base | large"),
    weights: str = typer.Option(None, help="weights file or a shipped name such as 'synthetic'"),
    target: str = typer.Option(
        None,
        help="without --config: prune to macs=F or latency=F of the dense model, recover, "
        "INT8 (e.g. latency=0.5)",
    ),
    recover_steps: int = typer.Option(
        200, min=1, help="with --target: distillation steps after pruning"
    ),
    device: str = typer.Option(None, help="auto | cpu | cuda"),
    threads: int = typer.Option(None, help="torch and ONNX Runtime intra-op threads (default 1)"),
    test_size: int = typer.Option(None, help="image side for quality, MACs and latency (px)"),
    test_count: int = typer.Option(None, help="held-out crops (or random inputs) to score"),
    ort: bool = typer.Option(
        None, "--ort/--no-ort", help="export every model to ONNX and time ONNX Runtime too"
    ),
    resume: bool = typer.Option(
        None, "--resume/--no-resume", help="skip steps already finished by this config in --out"
    ),
    progress: str = typer.Option(None, help="auto | bar | lines | none"),
    out: str = typer.Option(None, help="run store root (default reports/)"),
    retime_rounds: int = retime_rounds_option("at the end, time the pipeline's models again"),
) -> None:
    """Compress a model step by step (prune, recover, int8, vq...; see configs/compress-*.yaml)."""
    from effprof.api.compress import compress as run_compress
    from effprof.api.compress import summary_frame
    from effprof.config import load_config, validate
    from effprof.config.compress import CompressConfig, default_steps

    given = _options(
        model=model, variant=variant, weights=weights, device=device, threads=threads,
        test_size=test_size, test_count=test_count, ort=ort, resume=resume, progress=progress,
        out=out,
    )  # fmt: skip
    if target is not None:
        if config is not None:
            raise fail("--target builds its own steps; give it or --config, not both")
        try:
            given["steps"] = default_steps(target, recover_steps)
        except ValueError as err:
            raise fail(str(err)) from None
    settings = (
        load_config(CompressConfig, config, given)
        if config
        else validate(CompressConfig, given, "options (give --config FILE or --target macs=F)")
    )
    mode = settings.progress
    if mode == "auto":
        mode = "bar" if sys.stderr.isatty() else "lines"
    bar = _Bar() if mode == "bar" else None
    handler = {"bar": bar, "lines": _lines, "none": None}[mode]
    try:
        paths = [
            run.path
            for run in run_compress(settings, progress=handler, retime_rounds=retime_rounds)
        ]
    finally:
        if bar is not None:
            bar.stop()
    frame = summary_frame(paths)
    # piped into a file or a log, the table keeps one line per step instead of the 80-column default
    (console if console.is_terminal else Console(width=TABLE_WIDTH)).print(_table(frame))
    for line in _setting(frame):
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    console.print(f"runs: {paths[0].parent} (group {frame['group'].iloc[0]})", markup=False)
