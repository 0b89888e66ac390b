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
    assert names[:3] == ["count", "params", "peers"] and names[-1] == "int8"
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


def test_background_work_goes_on_beside_steps_that_time_nothing_and_ends_before_timing():
    events = []

    def background(ctx):
        events.append("start child")
        return Output(None, finish=lambda: (events.append("join"), Output(7, {S.FLOPS: 7}))[1])

    def tag(name):
        return lambda ctx: (events.append(name), Output(None))[1]

    child = Step("child", background, "child", runs_model=True)
    quiet_free = Step("counting", tag("counting"), "counting")  # runs nothing on the device
    overlapping = Step("export", lambda ctx: (events.append("export"), ctx.quiet(),
                                              events.append("time"), Output(None))[3],
                       "export", runs_model=True, overlaps=True)  # fmt: skip
    timer = Step("timer", tag("timer"), "timer", runs_model=True)
    ctx = StepContext(None, None, None, None, None)
    planned = plan([child, quiet_free, overlapping, timer], ProfileConfig())
    collected = run_steps(planned, ctx, Collected())
    assert events == ["start child", "counting", "export", "join", "time", "timer"]
    assert ctx.get(child) == 7 and collected.metrics[S.FLOPS] == 7
    table = collected.step_table().set_index("step")
    assert bool(table.loc["child", "overlapped"]) and not table.loc["timer", "overlapped"]


def test_a_step_that_times_waits_for_background_work_and_a_failure_stops_it():
    events = []
    child = Step("child", lambda ctx: Output(None, finish=lambda: (events.append("join"),
                                                                   Output(1))[1],
                                             abort=lambda: events.append("abort")),
                 "child", runs_model=True)  # fmt: skip
    timer = Step("timer", lambda ctx: (events.append("timer"), Output(None))[1], "timer",
                 runs_model=True)  # fmt: skip
    run_steps(plan([child, timer], ProfileConfig()), StepContext(None, None, None, None, None),
              Collected())  # fmt: skip
    assert events == ["join", "timer"]

    def fails(ctx):
        raise RuntimeError("boom")

    events.clear()
    broken = Step("broken", fails, "broken")
    with pytest.raises(RuntimeError):
        run_steps(plan([child, broken], ProfileConfig()),
                  StepContext(None, None, None, None, None), Collected())  # fmt: skip
    assert events == ["abort"]  # the child is stopped, not waited for
