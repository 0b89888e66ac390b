"""The profile as registered steps: the plan, skipped steps' missing metrics, the step table."""

from __future__ import annotations

import pytest

from effprof import schema as S
from effprof.config import ProfileConfig
from effprof.recipes.profile import (
    COUNT_ONLY,
    STEP_MODULES,
    Collected,
    Output,
    Step,
    StepContext,
    plan,
    profile_steps,
    run_steps,
    runs_model,
)
from effprof.results import Missing


def _step(name, needs=(), runs=False, skip=None, missing=(), value=None):
    return Step(name, lambda ctx: Output(value, {f"{name}_s": 1.0}), name, tuple(needs), (),
                runs, skip, tuple(missing))  # fmt: skip


def test_every_registered_step_is_planned_in_module_order_with_its_needs_first():
    steps = profile_steps()
    names = [s.name for s in steps]
    assert names[:3] == ["count", "params", "peers"] and names[-1] == "crosscheck"
    assert len(names) == len(set(names)) and len(STEP_MODULES) <= len(names)
    for index, item in enumerate(steps):  # a step's needs run before it
        assert all(names.index(n.name) < index for n in item.needs)


def test_count_only_skips_exactly_the_steps_that_run_the_model():
    full = plan(profile_steps(), ProfileConfig())
    counted = plan(profile_steps(), ProfileConfig(count_only=True))
    assert runs_model(full) and not runs_model(counted)
    for item in counted:
        assert (item.skipped == COUNT_ONLY) == item.step.runs_model
    assert {i.step.name for i in counted if i.skipped is None} >= {
        "count", "params", "attribution", "top_layers", "counterfactuals", "scaling",
    }  # fmt: skip


def test_options_turn_steps_off_with_their_reason():
    reasons = {i.step.name: i.skipped for i in plan(profile_steps(), ProfileConfig(int8=False))}
    assert reasons["int8"] == "INT8 comparison turned off (--no-int8)"
    assert reasons["onnx"] == "ONNX export not requested (--onnx)" and reasons["latency"] is None


def test_a_step_whose_need_did_not_run_is_skipped_for_that_reason():
    first = _step("first", skip=lambda config: "switched off")
    second = _step("second", needs=[first], missing=["second_metric"])
    planned = plan([first, second], ProfileConfig())
    assert [p.skipped for p in planned] == ["switched off", "switched off"]
    collected = run_steps(planned, StepContext(None, None, None, None, None), Collected())
    assert collected.metrics["second_metric"] == Missing("switched off")
    table = collected.step_table()
    assert list(table["status"]) == ["skipped", "skipped"] and table["seconds"].isna().all()


def test_a_need_registered_later_is_a_programming_error():
    first = _step("first")
    second = _step("second", needs=[first])
    with pytest.raises(ValueError, match="needs 'first', which comes later"):
        plan([second, first], ProfileConfig())


def test_values_pass_between_steps_by_step_and_times_are_kept():
    first = _step("first", value=41)
    second = Step("second", lambda ctx: Output(ctx.get(first) + 1, {S.MACS: ctx.get(first) + 1}),
                  "second", (first,))  # fmt: skip
    ctx = StepContext(None, None, None, None, None)
    collected = run_steps(plan([first, second], ProfileConfig()), ctx, Collected())
    assert ctx.get(second) == 42 and collected.metrics[S.MACS] == 42
    assert (collected.step_table()["seconds"] >= 0).all()
