"""The compression table: one row per compress run, ratios against its pipeline's dense model.

One builder for everyone (``api.compress``, the CLI's table, ``report.compression``, the
benchmark scripts), reading run records only, with the metric names the pipeline writes shared as
constants. Columns:

* ``step``, ``method``, ``source`` (the step it started from), ``run_id``, ``group``;
* ``param_count``, ``macs``, ``macs_ratio``, ``file_bytes``, ``size_x`` (dense file / this file);
* ``torch_latency_ms``, ``ort_latency_ms`` and ``torch_speedup``, ``ort_speedup`` (dense latency /
  this latency, each in its own runtime), ``latency_threads``;
* ``test_psnr_db``, ``test_ssim``, ``fidelity_psnr_db``, ``psnr_delta_db`` (against dense) and
  ``quality_delta_db`` against ``reference``: the uncompressed model given as many extra training
  steps (dense itself, or a recover step from dense with that many steps, the control);
* for a model without task data (``recipes.compress_data``): ``fidelity_snr_db``,
  ``fidelity_rel_l2_error`` and ``fidelity_top1_agreement`` against the dense output instead;
* ``trained_steps``, ``pruned``, ``test_size``, ``test_count``, ``inputs`` (what one forward
  took: MACs, latency and exports used it).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from effprof import schema as S
from effprof.runs.ledger import RunStoreWarning
from effprof.runs.load import scan_runs
from effprof.runs.store import RunRecord

DENSE = "dense"
CONTROL_METHODS = (DENSE, "recover")  # an unpruned model given extra steps is a control

COLUMNS = [
    "step", "method", "source", "param_count", "macs", "macs_ratio", "file_bytes", "size_x",
    "torch_latency_ms", "ort_latency_ms", "torch_speedup", "ort_speedup", "latency_threads",
    "test_psnr_db", "test_ssim", "fidelity_psnr_db", "psnr_delta_db", "reference",
    "quality_delta_db", "fidelity_snr_db", "fidelity_rel_l2_error", "fidelity_top1_agreement",
    "trained_steps", "pruned", "test_size", "test_count", "inputs", "run_id", "group",
]  # fmt: skip
NUMERIC = ["param_count", "macs", "file_bytes", "torch_latency_ms", "ort_latency_ms",
           "test_psnr_db", "test_ssim", "fidelity_psnr_db", "latency_threads", "fidelity_snr_db",
           "fidelity_rel_l2_error", "fidelity_top1_agreement"]  # fmt: skip


def _row(record: RunRecord) -> dict[str, Any]:
    m, p = record.metrics, record.params
    pipeline = p.get("pipeline") or {}
    return {
        "step": p.get("step") or record.run_id, "method": p.get("method"),
        "source": p.get("source"), "param_count": m.get(S.PARAM_COUNT), "macs": m.get(S.MACS),
        "file_bytes": m.get(S.FILE_BYTES), "torch_latency_ms": m.get(S.TORCH.median_ms),
        "ort_latency_ms": m.get(S.ORT.median_ms),
        "latency_threads": m.get(S.ORT.threads, m.get(S.TORCH.threads, pipeline.get("threads"))),
        "test_psnr_db": m.get(S.TEST_PSNR), "test_ssim": m.get(S.TEST_SSIM),
        "fidelity_psnr_db": m.get(S.FIDELITY_PSNR), "fidelity_snr_db": m.get(S.FIDELITY_SNR),
        "fidelity_rel_l2_error": m.get(S.FIDELITY_REL_L2),
        "fidelity_top1_agreement": m.get(S.FIDELITY_TOP1),
        "trained_steps": int(p.get("trained_steps") or 0), "pruned": bool(p.get("pruned")),
        "test_size": pipeline.get("test_size"), "test_count": pipeline.get("test_count"),
        "inputs": (p.get("task") or {}).get("inputs"),
        "index": p.get("index", 0), "created": record.created,
        "run_id": record.run_id, "group": record.group or "",  # ungrouped runs compare together
    }  # fmt: skip


def _ratios(frame: pd.DataFrame) -> pd.DataFrame:
    """Ratios against the group's dense run (its first run when it has none)."""
    base = frame[(frame["method"] == DENSE) | (frame["step"] == DENSE)]
    base = base.iloc[0] if len(base) else frame.iloc[0]
    frame["size_x"] = base["file_bytes"] / frame["file_bytes"]
    frame["macs_ratio"] = frame["macs"] / base["macs"]
    frame["torch_speedup"] = base["torch_latency_ms"] / frame["torch_latency_ms"]
    frame["ort_speedup"] = base["ort_latency_ms"] / frame["ort_latency_ms"]
    frame["psnr_delta_db"] = frame["test_psnr_db"] - base["test_psnr_db"]
    controls = frame[~frame["pruned"] & frame["method"].isin(CONTROL_METHODS)]
    by_steps = {int(r.trained_steps): r for r in controls.itertuples()}
    references = [by_steps.get(int(t)) for t in frame["trained_steps"]]
    frame["reference"] = [r.step if r is not None else None for r in references]
    frame["quality_delta_db"] = [
        q - r.test_psnr_db if r is not None else np.nan
        for q, r in zip(frame["test_psnr_db"], references, strict=True)
    ]
    return frame


def compression_frame(records: Sequence[RunRecord]) -> pd.DataFrame:
    """The table of ``records`` (compress runs; others are ignored), in step order per pipeline."""
    rows = [_row(r) for r in records if r.kind == "compress"]
    if not rows:
        return pd.DataFrame(columns=COLUMNS)
    frame = pd.DataFrame(rows)
    frame[NUMERIC] = frame[NUMERIC].apply(pd.to_numeric, errors="coerce")
    order = frame.groupby("group")["created"].transform("min")
    frame = frame.assign(_first=order).sort_values(["_first", "group", "index"], kind="stable")
    parts = [_ratios(part.copy()) for _, part in frame.groupby("group", sort=False)]
    return pd.concat(parts, ignore_index=True)[COLUMNS]


def quality_column(frame: pd.DataFrame) -> tuple[str, str]:
    """(column, label) of the table's quality: S.TEST_PSNR against sharp where the pipeline had task
    data, else SNR of the output against the dense model's."""
    if frame["test_psnr_db"].notna().any():
        return "test_psnr_db", "S.TEST_PSNR (dB)"
    return "fidelity_snr_db", "SNR to the dense output (dB)"


def latency_setting(frame: pd.DataFrame) -> dict[str, Any]:
    """How the table's latencies were measured: runtimes present, threads, input side, crops."""
    runtimes = [
        name
        for name, column in (("torch", "torch_latency_ms"), ("ONNX Runtime", "ort_latency_ms"))
        if frame[column].notna().any()
    ]

    def values(column: str) -> list[Any]:
        return sorted({v for v in frame[column].dropna().tolist()})

    inputs = values("inputs") or [f"1x3x{int(v)}x{int(v)}" for v in values("test_size")]
    return {
        "runtimes": runtimes,
        "threads": [int(v) for v in values("latency_threads")],
        "inputs": inputs,
        "test_size": [int(v) for v in values("test_size")],
        "test_count": [int(v) for v in values("test_count")],
    }


def related_compress_runs(
    store: str | Path, model: str, variant: str | None, weights: str | None
) -> list[tuple[Path, RunRecord]]:
    """Finished compress runs in ``store`` of the same model, variant and weights (the profile
    report's Pareto front), oldest first."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RunStoreWarning)
        found = [
            (path, record)
            for path, record in scan_runs(store)
            if record.kind == "compress"
            and record.status == "finished"
            and record.model == model
            and record.variant == variant
            and (record.params.get("pipeline") or {}).get("weights") == weights
        ]
    return sorted(found, key=lambda run: (run[1].created, run[1].params.get("index", 0)))
