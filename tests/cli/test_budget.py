"""``effprof compare --fail-on / --budget``: the gate's exit codes end to end (a regression, an
improvement, an unreliable latency ratio, a malformed rule, an unknown metric), its lines, and
its JSON document."""

from __future__ import annotations

import itertools
import json

import pytest

from effprof import schema as S
from effprof.cli import main
from effprof.measure import interleave
from effprof.measure.latency import LatencyResult
from tests.runs.conftest import write_run

TINY = "tests.runs.tiny_models:conv"


def run_cli(args, capsys):
    with pytest.raises(SystemExit) as done:
        main(args)
    captured = capsys.readouterr()
    return done.value.code, captured.out, captured.err


@pytest.fixture
def store(tmp_path):
    """A base run and a heavier and a lighter run of the tiny conv (hand-made, every number known;
    their options rebuild the model for a re-timing)."""
    params = {"model": TINY, "input": "1x3x32x32", "device": "cpu", "threads": 1, "warmup": 0,
              "repeat": 2}  # fmt: skip
    runs = {}
    for name, macs, params_count in (("base", 122_880, 120), ("heavier", 131_072, 128),
                                     ("lighter", 110_592, 108)):  # fmt: skip
        metrics = {S.MACS: macs, S.PARAM_COUNT: params_count, S.PARAM_BYTES: 4 * params_count,
                   S.LATENCY.median_ms: 0.5}  # fmt: skip
        runs[name] = str(write_run(tmp_path, "profile", TINY, None, params, metrics))
    return tmp_path, runs


def gate(store, new, *rules, capsys, extra=()):
    root, runs = store
    args = ["compare", runs["base"], runs[new], "--root", str(root), "--no-html", *extra]
    for rule in rules:
        args += ["--fail-on", rule]
    if "--retime-rounds" not in extra:
        args += ["--retime-rounds", "0"]
    return run_cli(args, capsys)


def test_a_regression_exits_1_naming_the_metric_both_values_and_the_rule(store, capsys):
    code, out, err = gate(store, "heavier", "macs=+2%", "params<=200", capsys=capsys)
    assert code == 1, err
    assert "budget: FAIL macs: 123 kMAC -> 131 kMAC (+6.67 %) breaks macs=+2% (run 2)" in out
    assert "budget: ok param_count: 120 -> 128 holds params<=200 (run 2)" in out
    assert out.rstrip().endswith("budget: 1 rule(s) broken (exit code 1)")


def test_an_improvement_exits_0(store, capsys):
    code, out, err = gate(store, "lighter", "macs=+2%", "params=+0", "param_bytes<=1KiB",
                          capsys=capsys)  # fmt: skip
    assert code == 0, err
    assert out.count("budget: ok ") == 3 and "budget: every rule holds (exit code 0)" in out


def test_the_budget_file_adds_its_rules(store, tmp_path, capsys):
    budget = tmp_path / "budgets.yaml"
    budget.write_text("fail_on:\n  - macs=+10%\n  - params=+5%\n")
    code, out, _ = gate(store, "heavier", "param_bytes<=1KiB", capsys=capsys,
                        extra=["--budget", str(budget)])  # fmt: skip
    assert code == 1  # params grew 6.7 %
    lines = [line for line in out.splitlines() if line.startswith("budget: ") and "(run 2)" in line]
    assert [line.split()[1] for line in lines] == [
        "ok",
        "ok",
        "FAIL",
    ]  # --fail-on first, then the file


def _fake_rounds(monkeypatch, medians_ms: dict[str, list[float]]):
    """Each candidate's median per round, in place of timing it (the host's noise, on demand)."""
    calls = {name: itertools.cycle(values) for name, values in medians_ms.items()}

    def timed(self):
        ms = next(calls[self.name.split(" ", 1)[0].rstrip(":")])  # "1: tiny torch" -> "1"
        return LatencyResult((ms, ms, ms), (1, 3, 32, 32), 1024, "cpu", "test cpu", "fp32",
                             "perf_counter", 1, 0)  # fmt: skip

    monkeypatch.setattr(interleave.Candidate, "time", timed)


RETIME = ["--retime-rounds", "3", "--trust-model", TINY]


def test_an_unreliable_latency_ratio_could_not_be_judged_exit_3(store, monkeypatch, capsys):
    # run 2 takes 1x, then 2x, then 1x run 1's time: the ratios disagree, the ratio is unreliable
    _fake_rounds(monkeypatch, {"1": [10.0], "2": [10.0, 20.0, 10.0]})
    code, out, err = gate(store, "heavier", "latency=+5%", "macs=+10%", capsys=capsys,
                          extra=RETIME)  # fmt: skip
    assert code == 3, err
    line = next(line for line in out.splitlines() if line.startswith("budget: ? "))
    assert "could not judge latency=+5% (run 2): the interleaved ratio is unreliable" in line
    assert "budget: 1 rule(s) could not be judged (exit code 3)" in out


def test_a_reliable_latency_ratio_breaks_or_holds_its_budget(store, monkeypatch, capsys):
    _fake_rounds(monkeypatch, {"1": [10.0, 20.0, 10.0], "2": [13.0, 26.0, 13.0]})  # 1.3x
    code, out, _ = gate(store, "heavier", "latency=+20%", capsys=capsys, extra=RETIME)
    assert code == 1
    assert (
        "budget: FAIL latency_median_ms: 10 ms -> 13 ms (ratio 1.30x within rounds) breaks latency=+20% (run 2)"
        in out
    )
    code, out, _ = gate(store, "heavier", "latency=+35%", capsys=capsys, extra=RETIME)
    assert code == 0


@pytest.mark.parametrize(
    ("rule", "expect"),
    [
        ("macs+2%", "error: --fail-on: malformed rule 'macs+2%': write METRIC=+X%"),
        ("macz=+2%", "error: --fail-on: unknown metric 'macz' in rule 'macz=+2%' (did you mean macs?); known: params, parameter_bytes, peak_memory, latency, ort_latency, quality, macs, flops"),
        ("psnr_db=+1%", "error: --fail-on: rule 'psnr_db=+1%': higher is better for psnr_db, so a budget limits how far it may drop: psnr_db=-X% or psnr_db>=VALUE"),
    ],
)  # fmt: skip
def test_a_malformed_rule_or_an_unknown_metric_exits_2_in_one_line(store, rule, expect, capsys):
    code, out, err = gate(store, "heavier", rule, capsys=capsys)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith(expect)


def test_a_latency_rule_without_re_timing_is_refused_before_anything_runs(store, capsys):
    code, _, err = gate(store, "heavier", "latency=+5%", capsys=capsys)
    assert code == 2 and "give --retime-rounds 1 or more" in err


def test_the_json_document_carries_the_verdicts_and_the_schema_version(store, capsys):
    code, out, err = gate(store, "heavier", "macs=+2%", "params=+10%", capsys=capsys,
                          extra=["--json"])  # fmt: skip
    assert code == 1, err
    document = json.loads(out)  # stdout is the document alone
    assert document["document"] == "comparison" and document["schema_version"] == S.SCHEMA_VERSION
    assert document["budget"]["exit_code"] == 1
    macs, params = document["budget"]["verdicts"]
    assert macs == {"rule": "macs=+2%", "metric": "macs", "unit": "MAC",
                    "run_id": document["runs"][1]["run_id"], "label": document["runs"][1]["label"],
                    "base": 122880.0, "new": 131072.0, "change": pytest.approx(6.6666, abs=1e-3),
                    "change_unit": "%", "ratio": None, "status": "broken", "reason": None}  # fmt: skip
    assert params["status"] == "holds"
    headline = {(h["key"], h["run_id"]): h["value"] for h in document["headline"]}
    assert headline[("macs", document["runs"][0]["run_id"])] == 122880


def test_onnx_runtime_latency_is_judged_between_the_runs_onnx_models(tmp_path, monkeypatch, capsys):
    """Two compress runs keeping only an .onnx file each: compare times both in ONNX Runtime,
    interleaved, and the rule reads NEW's ratio to BASE's ONNX model (not to a torch model)."""
    from effprof.measure.onnx import export_onnx
    from tests.runs.tiny_models import conv

    pipeline = {
        "pipeline": {"test_size": 16, "latency_warmup": 0, "latency_repeat": 2, "threads": 1}
    }
    runs = []
    for step in ("dense", "int8"):
        run = write_run(tmp_path, "compress", TINY, None, {**pipeline, "step": step},
                        {S.MACS: 30_720, S.ORT.median_ms: 0.1})  # fmt: skip
        export_onnx(conv().eval(), (1, 3, 16, 16), run / "model.onnx")
        runs.append(str(run))
    _fake_rounds(monkeypatch, {"1": [10.0, 30.0], "2": [15.0, 45.0]})  # 1.5x in both rounds
    code, out, err = run_cli(["compare", *runs, "--no-html", "--retime-rounds", "2",
                              "--fail-on", "ort_latency=+20%"], capsys)  # fmt: skip
    assert code == 1, err
    # the medians over the rounds, and the ratio within each round
    assert "budget: FAIL ort_latency_median_ms: 20 ms -> 30 ms (ratio 1.50x within rounds)" in out
