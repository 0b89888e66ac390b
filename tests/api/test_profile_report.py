"""`effprof profile` writes the explanation tables and report.html; sweep and roofline on request."""

from __future__ import annotations

import json

import pytest

from effprof.cli import main
from effprof.runs import read_record, read_table

TINY = "tests.cli.tiny_models:tiny"
FAST = ["--repeat", "2", "--warmup", "1", "--no-crosscheck"]


def _profile(args: list[str], tmp_path, capsys) -> tuple:
    with pytest.raises(SystemExit) as done:
        main(
            [
                "profile",
                "--model",
                TINY,
                "--input",
                "1x3x32x32",
                "--out",
                str(tmp_path),
                *FAST,
                *args,
            ]
        )
    captured = capsys.readouterr()
    assert done.value.code == 0, captured.err
    (run,) = (tmp_path / "runs").iterdir()
    return run, captured.out


def test_default_profile_writes_attribution_and_report_but_measures_no_ceilings(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("EFFPROF_CACHE_DIR", str(tmp_path / "cache"))
    run, out = _profile([], tmp_path, capsys)
    record = read_record(run)
    assert {"attribution", "op_labels"} <= set(record.tables)
    assert "roofline_layers" not in record.tables
    # counts at other sizes are free on meta, so every profile has them; latency only on request
    assert "latency_median_ms" not in read_table(run, "scaling")
    assert "--roofline" in record.missing["roofline_floor_ms"]
    assert "declares no counterfactuals" in record.missing["counterfactuals"]
    assert not (tmp_path / "cache").exists()
    parts = read_table(run, "attribution").query("dimension == 'part'")
    assert set(parts["group"]) == {"0", "1", "2"}  # a generic model: its top-level modules
    assert parts["macs"].sum() == record.metrics["macs"]
    assert record.metrics["calltime_total_ms"] > 0
    html = (run / "report.html").read_text()
    assert '<section id="summary">' in html and "No roofline" in html
    assert "report.html" in out.replace("\n", "")


def test_the_record_names_the_threads_the_measurements_used(tmp_path, capsys):
    run, _ = _profile(["--threads", "3"], tmp_path, capsys)
    record = read_record(run)
    assert record.env["torch_threads"] == 3  # not the process default (2 on a 2-core CI)
    assert record.metrics["latency_threads"] == 3


def test_roofline_and_resolution_sweep_on_request(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("EFFPROF_CACHE_DIR", str(tmp_path / "cache"))
    run, _ = _profile(["--roofline", "--resolutions", "32,64,96"], tmp_path, capsys)
    record = read_record(run)
    assert record.metrics["ceiling_matmul_flops_per_s"] > 0
    assert json.loads((tmp_path / "cache" / "ceilings.json").read_text())
    layers = read_table(run, "roofline_layers")
    assert set(layers["bound"]) <= {"compute", "memory"} and layers["measured_ms"].notna().all()
    sweep = read_table(run, "scaling").set_index("resolution")
    # counted at the sizes asked for and 1-4x the profiled 32x32; timed only where asked
    assert list(sweep.index) == ["32x32", "64x64", "96x96", "128x128"]
    assert sweep["latency_median_ms"].notna().tolist() == [True, True, True, False]
    assert record.metrics["scaling_macs_exponent"] == pytest.approx(1.0)
    assert record.metrics["scaling_macs_quadratic"] is False
    three = read_table(run, "scaling_3x").set_index("quantity")
    assert three.loc["macs", "larger"] == "96x96" and three.loc[
        "macs", "ratio_predicted"
    ] == pytest.approx(9.0)
    html = (run / "report.html").read_text()
    assert "Fitted laws" in html and "Compute floor" in html


def test_a_bad_resolution_is_refused_before_anything_is_written(tmp_path, capsys):
    with pytest.raises(SystemExit) as done:
        main(["profile", "--model", TINY, "--resolutions", "256,huge", "--out", str(tmp_path)])
    assert done.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "huge" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
