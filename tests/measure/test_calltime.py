"""Per-call time lines up with the counting trace: per call, or per (module, category) pair."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn
from torch.nn.functional import scaled_dot_product_attention as bound_sdpa

from effprof.measure.calltime import PER_CALL, PER_GROUP, align_by_group, call_times
from effprof.measure.counting import count_model
from effprof.measure.latency import LatencySpec
from effprof.measure.regions import SDPA_OP
from effprof.models.inputs import InputSpec, TensorSpec
from effprof.results import Missing
from tests.measure.zoo import Functional, SharedActivation

SPEC = LatencySpec(threads=1)


def test_times_align_with_the_counted_trace():
    model = SharedActivation().eval()
    count = count_model(model, (1, 4, 16, 16))
    result = call_times(model, (1, 4, 16, 16), SPEC, counted=count.ops, runs=3)
    assert not isinstance(result, Missing)
    assert result.alignment == PER_CALL
    assert list(result.table["op"]) == list(count.ops["op"])
    assert list(result.table["seq"]) == list(count.ops["seq"])
    assert (result.table["time_ms"] > 0).all() and result.total_ms > 0
    assert result.runs == 3 and "perf_counter" in result.timer
    # the shared PReLU is timed under the path that called it, as the counter charges it
    assert list(result.timed["module"]) == list(count.ops["module"])


def tiny_vit() -> nn.Module:
    transformers = pytest.importorskip("transformers")
    config = transformers.ViTConfig(
        image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2,
        num_attention_heads=2, intermediate_size=64,
    )  # fmt: skip
    torch.manual_seed(0)
    return transformers.ViTForImageClassification(config).eval()


def test_a_transformers_vit_aligns_call_for_call_with_attention_as_one_row():
    model = tiny_vit()
    count = count_model(model, (1, 3, 32, 32))
    result = call_times(model, (1, 3, 32, 32), SPEC, counted=count.ops, runs=2)
    assert not isinstance(result, Missing)
    assert result.alignment == PER_CALL
    attention = result.timed[result.timed["op"] == SDPA_OP]
    assert len(attention) == 2  # one fused row per layer, as the counter has
    assert set(attention["category"]) == {"attention"}
    assert (attention["time_ms"] > 0).all()


class BoundAttention(nn.Module):
    """Calls scaled_dot_product_attention through a name bound at import (before any wrap), so
    the counter sees its meta decomposition while the cpu runs the fused kernel."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(8, 24)
        self.out = nn.Linear(8, 8)

    def forward(self, x: Tensor) -> Tensor:
        q, k, v = self.proj(x).reshape(1, -1, 3, 2, 4).permute(2, 0, 3, 1, 4)
        return self.out(bound_sdpa(q, k, v).transpose(1, 2).reshape(1, -1, 8))


def test_a_trace_that_differs_is_attributed_per_module_and_category():
    model = BoundAttention().eval()
    inputs = InputSpec((TensorSpec((1, 16, 8), role="features"),))
    count = count_model(model, inputs)
    result = call_times(model, inputs, SPEC, counted=count.ops, runs=2)
    assert not isinstance(result, Missing)
    assert result.alignment == PER_GROUP
    assert len(result.timed) != len(count.ops)
    # every counted call has a time, and the linear layers' time is exactly what was timed there
    assert list(result.table["seq"]) == list(count.ops["seq"])
    timed, table = result.timed, result.table.assign(module=count.ops["module"])
    for path in ("proj", "out"):
        expected = timed.loc[timed["module"] == path, "time_ms"].sum()
        assert table.loc[table["module"] == path, "time_ms"].sum() == pytest.approx(expected)
    assert result.table["time_ms"].sum() + result.unmatched_ms == pytest.approx(result.total_ms)


def test_group_alignment_spreads_a_pair_by_flops():
    counted = count_model(Functional().eval(), (1, 2, 8, 8)).ops
    timed = counted[["seq", "op", "module", "category"]].assign(time_ms=1.0)
    timed = timed.iloc[::-1].reset_index(drop=True)  # another order: not aligned per call
    table, unmatched = align_by_group(counted, timed)
    assert unmatched == 0.0
    assert table["time_ms"].sum() == pytest.approx(len(timed))
    pair = counted.groupby(["module", "category"])["seq"].transform("size")
    assert table.loc[pair == 1, "time_ms"].tolist() == [1.0] * int((pair == 1).sum())


def test_nothing_in_common_is_missing_not_misattributed():
    model = Functional().eval()
    count = count_model(model, (1, 2, 8, 8))
    wrong = count.ops.assign(module="elsewhere")
    result = call_times(model, (1, 2, 8, 8), SPEC, counted=wrong)
    assert isinstance(result, Missing) and "no (module, category) pair" in result.reason


def test_caller_model_is_left_unchanged():
    model = SharedActivation().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    call_times(model, (1, 4, 8, 8), SPEC, runs=1)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert model.training and all(m.training for m in model.modules())


def test_mssnet_aligns_call_for_call():
    from effprof.models import load_model

    model = load_model("mssnet", "small")
    count = count_model(model, (1, 3, 32, 32))
    result = call_times(model, (1, 3, 32, 32), SPEC, counted=count.ops, runs=1, warmup=0)
    assert not isinstance(result, Missing)
    assert result.alignment == PER_CALL and len(result.timed) == len(count.ops)
