"""The compression section reads compress runs: ratios to the dense baseline and Pareto fronts."""

from __future__ import annotations

import pandas as pd

from effprof.report.compression import pareto_mask, render, steps_frame
from effprof.report.runview import RunView
from effprof.runs import RunWriter


def _compress_run(root, step: str, created: str, **metrics) -> RunView:
    writer = RunWriter(root, "compress", "mssnet", "small", {"step": step}).start()
    writer.created = created
    return RunView.open(writer.finish(metrics, env={}))


def test_ratios_are_to_the_dense_step_and_missing_values_stay_missing(tmp_path):
    runs = [
        _compress_run(tmp_path, "prune", "2026-01-01T00:00:02", macs=20e9, latency_median_ms=50.0,
                      file_bytes=10e6, test_psnr_db=30.8),
        _compress_run(tmp_path, "dense", "2026-01-01T00:00:01", macs=40e9, latency_median_ms=100.0,
                      file_bytes=27e6, test_psnr_db=31.0),
        _compress_run(tmp_path, "vq", "2026-01-01T00:00:03", macs=20e9, file_bytes=2e6,
                      test_psnr_db=30.7),
    ]  # fmt: skip
    frame = steps_frame(runs)
    assert list(frame["step"]) == ["dense", "prune", "vq"]  # ordered by creation
    assert frame.loc[1, "macs_ratio"] == 0.5 and frame.loc[1, "latency_ms_ratio"] == 0.5
    assert round(frame.loc[2, "psnr_delta_db"], 6) == -0.3
    assert pd.isna(frame.loc[2, "latency_ms"])
    html = render(runs)
    assert "Pareto" in html and "0.50x" in html and "-0.30" in html


def test_pareto_front_keeps_only_undominated_points():
    cost = pd.Series([1.0, 2.0, 3.0, 2.5])
    quality = pd.Series([30.0, 31.0, 30.5, 31.5])
    assert list(pareto_mask(cost, quality)) == [True, True, False, True]
