"""Comparing stored runs: headline metrics side by side with ratios to the first run, and warnings
when their times are not comparable (different device, precision, thread count or effprof version).

Presentation lives elsewhere: the CLI prints :attr:`Comparison.headline`, ``report.compare`` renders
it as HTML.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from effprof import schema as S
from effprof.results import EffprofError
from effprof.runs.find import find_run, read_run, store_root
from effprof.runs.load import filter_runs, load_runs, runs_frame
from effprof.runs.record import RunRecord


@dataclass(frozen=True)
class Headline:
    """One headline metric: its run.json key, a label, its unit, and which direction is better."""

    key: str
    label: str
    unit: str
    better: str  # "lower" | "higher"


HEADLINES: tuple[Headline, ...] = (
    Headline("param_count", "parameters", "", "lower"),
    Headline("macs", "MACs", "MAC", "lower"),
    Headline("flops", "FLOPs", "FLOP", "lower"),
    Headline("macs_per_output_pixel", "MACs per output pixel", "MAC/pixel", "lower"),
    Headline("latency_median_ms", "latency median", "ms", "lower"),
    Headline("latency_p90_ms", "latency p90", "ms", "lower"),
    Headline("latency_cv", "latency CV", "share", "lower"),
    Headline("throughput_mpix_s", "throughput", "MP/s", "higher"),
    Headline("memory_activation_peak_bytes", "peak activation memory (measured)", "B", "lower"),
    Headline("activation_peak_bytes", "peak activation memory (meta trace)", "B", "lower"),
    Headline("weights_bytes", "weights", "B", "lower"),
    Headline("ort_latency_median_ms", "ONNX Runtime latency median", "ms", "lower"),
    Headline("psnr_db", "PSNR", "dB", "higher"),
    Headline("ssim", "SSIM", "ratio", "higher"),
    Headline("gain_db", "PSNR gain over blurry input", "dB", "higher"),
    Headline("test_psnr_db", "test PSNR", "dB", "higher"),
    Headline("test_gain_db", "test PSNR gain", "dB", "higher"),
)

# What must agree for two runs' times to be comparable: a name, and the columns that say it
# (the first one a run has a value in wins).
COMPARABILITY: dict[str, tuple[str, ...]] = {
    "device": ("env.device_name", "env.device", "params.device"),
    "precision": ("params.precision", f"metrics.{S.DTYPE}"),
    "thread count": (f"metrics.{S.LATENCY.threads}", "params.threads", "env.torch_threads"),
    "effprof version": ("env.effprof_version",),
}

# Columns that may tell runs apart in a short label, in the order they are shown.
LABEL_COLUMNS = (
    "kind", "model", "variant", "params.step", "params.input", "params.precision", "params.channels_last",
    "params.cuda_graphs", "params.compile", "env.device_name", f"metrics.{S.LATENCY.threads}",
    "env.effprof_version",
)  # fmt: skip


@dataclass(frozen=True)
class Comparison:
    """Runs in the order given, their headline metrics in long form, and comparability warnings.

    ``headline`` columns: run_id, label, key, metric, unit, better, value (float), ratio (value /
    the first run's value; NaN where either is missing or the first is 0), missing (reason or <NA>).
    ``retimed`` (set by ``effprof.api.compare``): the runs' models timed again together,
    interleaved; one row per run with a model: candidate, run_id, label, median_ms (over rounds),
    ratio (to run 1's, within each round), ratio_min / ratio_max, ratio_reliable,
    ratio_unreliable_reason, unreliable_blocks (rounds whose own timing failed the thresholds).
    ``retime_notes`` say which runs were not re-timed and why.
    """

    runs: pd.DataFrame
    headline: pd.DataFrame
    warnings: tuple[str, ...]
    retimed: pd.DataFrame | None = None
    retime_notes: tuple[str, ...] = ()

    @property
    def labels(self) -> list[str]:
        """Short labels of the runs, in order (what sets each apart from the others)."""
        return list(self.runs["label"])

    def wide(self, column: str = "value") -> pd.DataFrame:
        """Metric rows x run columns of ``value`` (or ``ratio``)."""
        table = self.headline.pivot(index="metric", columns="label", values=column)
        order = list(dict.fromkeys(self.headline["metric"]))
        return table.reindex(index=order, columns=self.labels)


def _known(value: Any) -> bool:
    return (
        value is not None
        and value is not pd.NA
        and not (isinstance(value, float) and math.isnan(value))
    )


def run_value(row: pd.Series, columns: Sequence[str]) -> Any:
    """The first known value of ``columns`` in a load_runs row, else None."""
    for column in columns:
        if column in row.index and _known(row[column]):
            return row[column]
    return None


def comparability_warnings(runs: pd.DataFrame) -> list[str]:
    """One line per property that differs between runs: their times are not comparable."""
    lines = []
    for name, columns in COMPARABILITY.items():
        seen: dict[str, list[str]] = {}
        for _, row in runs.iterrows():
            value = run_value(row, columns)
            if value is not None:
                seen.setdefault(str(value), []).append(row["label"].split(":")[0])
        if len(seen) > 1:
            detail = "; ".join(f"{value}: run {', '.join(ids)}" for value, ids in seen.items())
            lines.append(f"runs differ in {name} ({detail}): their times are not comparable")
    return lines


def _short(column: str, value: Any) -> str:
    """``tests.models:tiny`` -> ``models:tiny`` and ``nets/tinyvit.py:vit`` -> ``tinyvit.py:vit``
    in labels (the module path is in the run table)."""
    text = str(value)
    if column == "model" and ":" in text:
        module, name = text.rsplit(":", 1)
        if module.endswith(".py"):  # a file: its name, not the "py" after its last dot
            return f"{module.replace(chr(92), '/').rsplit('/', 1)[-1]}:{name}"
        return f"{module.rsplit('.', 1)[-1]}:{name}"
    return text


def run_labels(runs: pd.DataFrame) -> list[str]:
    """``"1: small fp16"``: the run's position and the values that set it apart from the others."""
    differing = [
        c for c in LABEL_COLUMNS if c in runs.columns and runs[c].astype("string").nunique() > 1
    ]
    labels = []
    for position, (_, row) in enumerate(runs.iterrows(), start=1):
        parts = [_short(c, row[c]) for c in differing if _known(row[c])]
        labels.append(f"{position}: {' '.join(parts) if parts else row['run_id']}")
    return labels


def _headline_rows(runs: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for item in HEADLINES:
        column = f"metrics.{item.key}"
        if column not in runs.columns or runs[column].isna().all():
            continue
        values = pd.to_numeric(runs[column], errors="coerce").astype("float64").tolist()
        first = values[0]
        for (_, row), value in zip(runs.iterrows(), values, strict=True):
            ratio = value / first if _known(value) and _known(first) and first != 0 else math.nan
            reason = row.get(f"missing.{item.key}")
            rows.append({
                "run_id": row["run_id"], "label": row["label"], "key": item.key,
                "metric": item.label, "unit": item.unit, "better": item.better,
                "value": value, "ratio": ratio, "missing": reason if _known(reason) else None,
            })  # fmt: skip
    columns = ["run_id", "label", "key", "metric", "unit", "better", "value", "ratio", "missing"]
    frame = pd.DataFrame(rows, columns=columns)
    for name in ("run_id", "label", "key", "metric", "unit", "better", "missing"):
        frame[name] = frame[name].astype("string")
    return frame.astype({"value": "float64", "ratio": "float64"})


def compare_runs(run_dirs: Sequence[str | Path]) -> Comparison:
    """Compare runs (folders, in this order; the first is the baseline of every ratio)."""
    if len(run_dirs) < 2:
        raise EffprofError(f"compare needs at least two runs; got {len(run_dirs)}")
    pairs = [(Path(p), read_run(p)) for p in run_dirs]
    return compare_records(pairs, store_root(Path(run_dirs[0]).parent))


def compare_records(
    pairs: Sequence[tuple[Path, RunRecord]], root: Path | None = None
) -> Comparison:
    """The comparison of runs already read (folder, record), in this order."""
    runs = runs_frame(pairs, root)
    runs.insert(1, "label", pd.Series(run_labels(runs), dtype="string"))
    return Comparison(runs, _headline_rows(runs), tuple(comparability_warnings(runs)))


def resolve_runs(specs: Sequence[str], root: str | Path = "reports/") -> list[Path]:
    """Run folders from command-line words: paths and run ids (in order), then the runs matching
    every ``key=value`` filter (e.g. ``model=mssnet``, ``params.precision=fp16``; a key given twice
    matches either value: ``variant=small variant=base``), oldest first."""
    filters: dict[str, list[str]] = {}
    named = []
    for spec in specs:
        if "=" in spec and not Path(spec).exists():
            key, value = spec.split("=", 1)
            filters.setdefault(key, []).append(value)  # a key given twice: either value
        else:
            named.append(find_run(spec, root))
    found = list(dict.fromkeys(p.resolve() for p in named))
    if filters:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            matched = filter_runs(load_runs(root), filters)
        if matched.empty:
            shown = " ".join(f"{k}={v}" for k, values in filters.items() for v in values)
            raise EffprofError(f"no run in {str(root)!r} matches {shown}")
        found += [p for p in (Path(x).resolve() for x in matched["path"]) if p not in found]
    return found
