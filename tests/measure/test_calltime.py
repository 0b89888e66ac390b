"""Per-call time lines up row by row with the counting trace."""

from __future__ import annotations

import torch

from effprof.measure.calltime import call_times
from effprof.measure.counting import count_model
from effprof.measure.latency import LatencySpec
from effprof.results import Missing
from tests.measure.zoo import Functional, SharedActivation


def test_times_align_with_the_counted_trace():
    model = SharedActivation().eval()
    count = count_model(model, (1, 4, 16, 16))
    result = call_times(
        model, (1, 4, 16, 16), LatencySpec(threads=1), expected_ops=list(count.ops["op"]), runs=3
    )
    assert not isinstance(result, Missing)
    assert list(result.table["op"]) == list(count.ops["op"])
    assert list(result.table["seq"]) == list(count.ops["seq"])
    assert (result.table["time_ms"] > 0).all() and result.total_ms > 0
    assert result.runs == 3 and "perf_counter" in result.timer


def test_a_trace_that_differs_is_missing_not_misattributed():
    model = Functional().eval()
    count = count_model(model, (1, 2, 8, 8))
    wrong = list(count.ops["op"])[::-1]
    result = call_times(model, (1, 2, 8, 8), LatencySpec(threads=1), expected_ops=wrong)
    assert isinstance(result, Missing) and "differs from the counted one" in result.reason


def test_caller_model_is_left_unchanged():
    model = SharedActivation().eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    call_times(model, (1, 4, 8, 8), LatencySpec(threads=1), runs=1)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
