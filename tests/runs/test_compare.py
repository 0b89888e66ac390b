"""compare_runs: ratios to the first run, labels, and warnings when times are not comparable."""

from __future__ import annotations

import math

import pytest

from effprof.results import EffprofError, Missing
from effprof.runs import compare_runs, resolve_runs
from tests.runs.conftest import CPU_ENV, write_run

GPU_ENV = dict(CPU_ENV, device="cuda", device_name="NVIDIA H200", effprof_version="0.2.0")


def profile_run(root, variant, macs, latency_ms, env=CPU_ENV, precision="fp32", threads=2):
    return write_run(
        root, "profile", variant=variant, env=env,
        params={"precision": precision, "input": "1x3x256x256"},
        metrics={"macs": macs, "latency_median_ms": latency_ms, "latency_threads": threads},
    )  # fmt: skip


def test_ratios_are_to_the_first_run(tmp_path):
    small = profile_run(tmp_path, "small", 145_000_000_000, 40.0)
    base = profile_run(tmp_path, "base", 290_000_000_000, Missing("CUDA out of memory"))
    large = profile_run(tmp_path, "large", 435_000_000_000, 100.0)

    result = compare_runs([small, base, large])

    assert result.labels == ["1: small", "2: base", "3: large"]  # what sets each apart
    assert result.warnings == ()
    ratios = result.wide("ratio")
    assert ratios.loc["MACs"].tolist() == [1.0, 2.0, 3.0]
    assert ratios.loc["latency median", "3: large"] == pytest.approx(2.5)
    assert math.isnan(ratios.loc["latency median", "2: base"])
    missing = result.headline.set_index(["label", "key"]).loc[("2: base", "latency_median_ms")]
    assert missing["missing"] == "CUDA out of memory"


def test_different_device_precision_threads_and_version_are_warned(tmp_path):
    cpu = profile_run(tmp_path, "small", 1, 40.0)
    gpu = profile_run(tmp_path, "small", 1, 2.0, env=GPU_ENV, precision="fp16", threads=16)

    warnings = compare_runs([cpu, gpu]).warnings

    assert len(warnings) == 4
    device, precision, threads, version = warnings
    assert device.startswith("runs differ in device (AMD EPYC: run 1; NVIDIA H200: run 2)")
    assert "precision (fp32: run 1; fp16: run 2)" in precision
    assert "thread count (2: run 1; 16: run 2)" in threads
    assert "effprof version (0.1.0: run 1; 0.2.0: run 2)" in version
    assert all(w.endswith("their times are not comparable") for w in warnings)


def test_resolve_runs_from_paths_ids_and_filters(tmp_path):
    small = profile_run(tmp_path, "small", 1, 1.0)
    base = profile_run(tmp_path, "base", 2, 2.0)
    write_run(tmp_path, "evaluate", variant="base")

    assert resolve_runs([str(base), small.name], tmp_path) == [base.resolve(), small.resolve()]
    # filter matches come oldest first (both were created in the same second here)
    assert set(resolve_runs(["kind=profile"], tmp_path)) == {small.resolve(), base.resolve()}
    assert resolve_runs([base.name, "kind=profile"], tmp_path) == [base.resolve(), small.resolve()]
    with pytest.raises(EffprofError, match=r"no run in .* matches kind=train"):
        resolve_runs(["kind=train"], tmp_path)
    with pytest.raises(EffprofError, match="at least two runs"):
        compare_runs(resolve_runs(["kind=evaluate"], tmp_path))
