"""Budget rules: their grammar (every name the schema allows, every malformed text refused in one
line), and how a comparison is judged: changes, fixed budgets, both directions, aliases, missing
values, and latency only by the interleaved within-round ratio."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from effprof import schema as S
from effprof.measure.interleave import ROUND_COLUMNS, Interleaved
from effprof.recipes.retime import Retimed
from effprof.results import EffprofError
from effprof.runs import RunRecord
from effprof.runs.budget import (
    ALIASES,
    BROKEN,
    EXIT_BROKEN,
    EXIT_HOLDS,
    EXIT_UNJUDGED,
    HOLDS,
    RATIO_JUDGED,
    UNJUDGED,
    check_budget,
    judged_metrics,
    known_names,
    parse_rule,
    parse_rules,
)
from effprof.runs.compare import compare_records

CREATED = "2026-01-01T00:00:0{}+00:00"


def record(position: int, metrics: dict, missing: dict | None = None, **fields) -> RunRecord:
    return RunRecord(
        run_id=f"run{position}", kind=fields.pop("kind", "profile"),
        created=CREATED.format(position), model="tiny", variant=None, params={},
        metrics=metrics, missing=missing or {}, **fields,
    )  # fmt: skip


def comparison(*records: RunRecord):
    return compare_records([(Path(f"/store/runs/{r.run_id}"), r) for r in records])


def judge(rules: list[str], *records: RunRecord):
    return check_budget(comparison(*records), parse_rules(rules))


# --- the grammar ---------------------------------------------------------------------------------


def _worse(metric: S.Metric) -> tuple[str, str]:
    return ("=+", "<=") if metric.better == S.LOWER else ("=-", ">=")


@settings(max_examples=200, deadline=None)
@given(
    name=st.sampled_from(known_names()),
    amount=st.floats(min_value=0, max_value=1e15, allow_nan=False),
    percent=st.booleans(),
    fixed=st.booleans(),
)
def test_every_known_name_parses_in_its_worse_direction(name, amount, percent, fixed):
    metric = (ALIASES.get(name) or (judged_metrics()[name],))[0]
    change, limit = _worse(metric)
    fixed = fixed and metric not in RATIO_JUDGED  # latency takes no fixed budget
    text = f"{name}{limit}{amount!r}" if fixed else f"{name}{change}{amount!r}{'%' * percent}"
    rule = parse_rule(text)
    assert rule.amount == pytest.approx(amount) and rule.metrics[0] == metric
    assert rule.op == (limit if fixed else change) and rule.percent == (percent and not fixed)


@pytest.mark.parametrize("name", known_names())
def test_the_direction_that_is_an_improvement_is_refused(name):
    metric = (ALIASES.get(name) or (judged_metrics()[name],))[0]
    better_change = "=-" if metric.better == S.LOWER else "=+"
    with pytest.raises(EffprofError, match="is better for"):
        parse_rule(f"{name}{better_change}2%")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_any_text_is_a_rule_or_one_line_saying_why(text):
    try:
        rule = parse_rule(text)
    except EffprofError as error:
        assert "\n" not in str(error) and str(error)
    else:
        assert rule.metrics and math.isfinite(rule.amount) and rule.amount >= 0


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        (
            "macz=+2%",
            "unknown metric 'macz' in rule 'macz=+2%' (did you mean macs?); known: params",
        ),
        ("macs+2%", "malformed rule"),
        ("macs=2%", "a change has a sign, e.g. macs=+2%"),
        ("=+2%", "malformed rule"),
        ("macs=+", "malformed value ''"),
        ("macs=+2%%", "malformed value"),
        ("macs=+nan", "malformed value 'nan'"),
        ("macs<=1e999", "is not a finite number"),
        ("macs<=2%", "a fixed budget is a value, not a percentage"),
        ("macs<=3ms", "'ms' is not the unit of macs (MAC)"),
        ("psnr_db=+1%", "higher is better for psnr_db"),
        ("macs>=1G", "lower is better for macs"),
        ("latency<=10ms", "latency is judged only by the ratio to BASE measured now"),
        ("latency_p90_ms=+5%", "belongs to a latency a run stored"),
        ("throughput_mpix_s=-5%", "belongs to a latency a run stored"),
        ("latency_threads=+1", "has no better direction"),
        ("m" * 300 + "=+1%", "at most 200 characters"),
    ],
)
def test_a_bad_rule_is_one_line_saying_what_to_write(text, expect):
    with pytest.raises(EffprofError) as error:
        parse_rules([text], "--fail-on")
    assert str(error.value).startswith("--fail-on: ") and expect in str(error.value)


def test_values_take_prefixes_and_the_metric_unit():
    assert parse_rule("params<=1.5M").amount == 1_500_000
    assert parse_rule("param_bytes<=20MiB").amount == 20 * 2**20
    assert parse_rule("macs<=1.2 GMAC").amount == pytest.approx(1.2e9)
    assert parse_rule("ort_latency=+0.5ms").amount == 0.5
    assert parse_rule("PSNR_DB >= 27").metrics == (S.PSNR,)  # names are not case-sensitive
    assert parse_rule("peak-memory=+5%").metrics == ALIASES["peak_memory"]


# --- judging stored values -----------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(
    base=st.integers(min_value=0, max_value=10**13),
    new=st.integers(min_value=0, max_value=10**13),
    allowed=st.floats(min_value=0, max_value=500, allow_nan=False),
)
def test_a_growth_budget_breaks_exactly_when_new_grows_past_it(base, new, allowed):
    check = judge([f"macs=+{allowed!r}%"], record(1, {S.MACS: base}), record(2, {S.MACS: new}))
    (verdict,) = check.verdicts
    grew = math.inf if base == 0 and new > 0 else 0 if base == new else 100 * (new - base) / base
    assert verdict.status == (BROKEN if grew > allowed * (1 + 1e-9) else HOLDS) or math.isclose(
        grew, allowed, rel_tol=1e-9
    )
    assert (verdict.base, verdict.new) == (base, new)


@settings(max_examples=100, deadline=None)
@given(
    base=st.floats(min_value=0, max_value=60, allow_nan=False),
    new=st.floats(min_value=0, max_value=60, allow_nan=False),
    allowed=st.floats(min_value=0, max_value=10, allow_nan=False),
)
def test_a_drop_budget_breaks_exactly_when_quality_drops_past_it(base, new, allowed):
    check = judge([f"psnr_db=-{allowed!r}"], record(1, {S.PSNR: base}), record(2, {S.PSNR: new}))
    (verdict,) = check.verdicts
    dropped = base - new
    if not math.isclose(dropped, allowed, rel_tol=1e-9, abs_tol=1e-12):
        assert verdict.status == (BROKEN if dropped > allowed else HOLDS)
    assert verdict.change == pytest.approx(new - base)


def test_regression_improvement_and_fixed_budgets_with_their_exit_codes():
    base = record(1, {S.MACS: 1000, S.PARAM_COUNT: 100, S.PSNR: 27.0})
    worse = record(2, {S.MACS: 1030, S.PARAM_COUNT: 100, S.PSNR: 26.7})
    better = record(3, {S.MACS: 900, S.PARAM_COUNT: 90, S.PSNR: 27.5})
    rules = ["macs=+2%", "params<=100", "psnr_db=-0.2", "quality>=27"]
    check = judge(rules, base, worse, better)
    statuses = {(v.rule.text, v.run_id): v.status for v in check.verdicts}
    assert statuses == {
        ("macs=+2%", "run2"): BROKEN, ("macs=+2%", "run3"): HOLDS,
        ("params<=100", "run2"): HOLDS, ("params<=100", "run3"): HOLDS,
        ("psnr_db=-0.2", "run2"): BROKEN, ("psnr_db=-0.2", "run3"): HOLDS,
        ("quality>=27", "run2"): BROKEN, ("quality>=27", "run3"): HOLDS,
    }  # fmt: skip
    assert check.exit_code == EXIT_BROKEN
    assert judge(rules, base, better).exit_code == EXIT_HOLDS
    (macs,) = [v for v in check.verdicts if v.rule.text == "macs=+2%" and v.run_id == "run2"]
    assert (macs.metric, macs.base, macs.new, macs.change) == (
        "macs",
        1000,
        1030,
        pytest.approx(3.0),
    )


def test_an_alias_judges_the_first_metric_both_runs_have():
    base = record(1, {S.FIDELITY_PSNR: 40.0, S.TEST_SSIM: 0.9}, kind="compress")
    new = record(2, {S.FIDELITY_PSNR: 39.0, S.TEST_PSNR: 30.0}, kind="compress")
    (verdict,) = judge(["quality=-0.5"], base, new).verdicts
    assert verdict.metric == S.FIDELITY_PSNR and verdict.status == BROKEN  # test PSNR: new only
    measured = record(1, {S.MEMORY_ACTIVATION_PEAK_BYTES: 100, S.ACTIVATION_PEAK_BYTES: 50})
    counted = record(2, {S.ACTIVATION_PEAK_BYTES: 51})
    (verdict,) = judge(["peak_memory=+5%"], measured, counted).verdicts
    assert verdict.metric == S.ACTIVATION_PEAK_BYTES and verdict.status == HOLDS


def test_a_value_a_run_lacks_cannot_be_judged_and_says_why():
    base = record(1, {S.MACS: 1000, S.PSNR: None}, {S.PSNR: "no test data"})
    new = record(2, {S.MACS: 1000})
    check = judge(["psnr_db=-0.1", "macs=+0%"], base, new)
    psnr, macs = check.verdicts
    assert psnr.status == UNJUDGED
    assert psnr.reason == "psnr_db missing in run 1 (no test data); run 2 has no psnr_db"
    assert macs.status == HOLDS and check.exit_code == EXIT_UNJUDGED


# --- judging latency: the interleaved ratio, never a stored time ---------------------------------


def retimed(base_ms: list[float], new_ms: list[float], runtime: str = "torch") -> pd.DataFrame:
    """compare's re-timing summary of two runs whose rounds timed these medians."""
    names = ("1 tiny torch", "2 tiny torch")
    rows = []
    for round_, (a, b) in enumerate(zip(base_ms, new_ms, strict=True)):
        for name, ms in zip(names, (a, b), strict=True):
            rows.append({"round": round_, "position": 0, "candidate": name, "runtime": runtime,
                         "threads": 1, "median_ms": ms, "reliable": True, "unreliable_reason": None,
                         "reference": names[0], "ratio": ms / a, "missing": None})  # fmt: skip
    timing = Interleaved(pd.DataFrame(rows).reindex(columns=ROUND_COLUMNS))
    origins = pd.DataFrame({"candidate": names, "run_id": ["run1", "run2"], "run_dir": ["a", "b"],
                            "step": [None, None], "label": ["1 tiny", "2 tiny"]})  # fmt: skip
    return Retimed(timing, origins, ()).summary()


def latency_check(rule: str, base_ms: list[float], new_ms: list[float]):
    stored = {S.LATENCY.median_ms: 1.0}  # a stored time is never what is judged
    runs = comparison(record(1, stored), record(2, {S.LATENCY.median_ms: 100.0}))
    return check_budget(replace(runs, retimed=retimed(base_ms, new_ms)), parse_rules([rule]))


def test_latency_is_judged_by_the_ratio_within_each_round():
    slower = latency_check("latency=+10%", [10.0, 20.0, 10.0], [12.0, 24.0, 12.5])
    (verdict,) = slower.verdicts  # 1.2x in every round, though the host slowed both 2x
    assert verdict.status == BROKEN and verdict.ratio == pytest.approx(1.2)
    assert verdict.base == 10.0 and verdict.new == 12.5 and verdict.change == pytest.approx(20.0)
    assert latency_check("latency=+25%", [10.0, 20.0], [12.0, 24.0]).exit_code == EXIT_HOLDS
    assert latency_check("latency=+3ms", [10.0, 10.0], [12.0, 12.0]).exit_code == EXIT_HOLDS


def test_an_unreliable_ratio_is_never_a_failure_it_could_not_be_judged():
    check = latency_check("latency=+5%", [10.0, 10.0, 10.0], [10.0, 20.0, 10.0])  # 1.0x .. 2.0x
    (verdict,) = check.verdicts
    assert verdict.status == UNJUDGED and check.exit_code == EXIT_UNJUDGED
    assert "the interleaved ratio is unreliable: its ratio to 1 tiny torch ranged 1.00-2.00" in (
        verdict.reason
    )


def test_latency_without_a_re_timing_cannot_be_judged():
    runs = comparison(record(1, {S.LATENCY.median_ms: 1.0}), record(2, {S.LATENCY.median_ms: 9.0}))
    skipped = replace(runs, retime_notes=("not re-timed: 2 tiny: its model cannot be rebuilt",))
    (verdict,) = check_budget(skipped, parse_rules(["latency=+5%"])).verdicts
    assert verdict.status == UNJUDGED and "not re-timed: 2 tiny" in verdict.reason
    onnx = replace(runs, retimed=retimed([1.0], [1.0]))  # torch timed, no ONNX Runtime model
    (verdict,) = check_budget(onnx, parse_rules(["ort_latency=+5%"])).verdicts
    assert verdict.status == UNJUDGED and "has no ONNX Runtime model to time" in verdict.reason
