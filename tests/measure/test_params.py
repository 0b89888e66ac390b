"""count_params: totals, shared parameters once, buffers apart, by module and by dtype."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from effprof.measure.params import count_params
from effprof.models import build_model
from tests.measure.zoo import SharedActivation


@pytest.mark.parametrize(
    ("variant", "params"), [("small", 6_756_161), ("base", 15_614_497), ("large", 28_182_041)]
)
def test_mssnet_parameter_counts_with_the_shared_prelu_once(variant: str, params: int) -> None:
    with torch.device("meta"):
        model = build_model("mssnet", variant)
    summary = count_params(model)
    assert summary.total == summary.trainable == params
    assert summary.bytes == 4 * params
    prelu = summary.tensors[summary.tensors["module_type"] == "PReLU"]
    assert len(prelu) == 1 and prelu["numel"].item() == 1
    assert prelu["aliases"].item() == 87  # one tensor, registered under every ResBlock
    assert prelu["name"].item() == "shallow_feat1.1.body.1.weight"  # its first state-dict name
    for depth in (None, 1, 2):
        assert summary.by_module(depth)["params"].sum() == params


def test_shared_module_counted_once() -> None:
    # two blocks x two 4->4 3x3 convs (144 weights each) + one shared PReLU weight
    summary = count_params(SharedActivation())
    assert summary.total == 4 * 144 + 1
    assert summary.by_module().set_index("module").loc["block1.act", "params"] == 1
    assert "block2.act" not in set(summary.by_module()["module"])


def test_buffers_are_listed_apart_and_trainable_is_separate() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    model[0].weight.requires_grad_(False)
    summary = count_params(model)
    assert summary.total == 3 * 4 * 9 + 4 + 4 + 4  # conv weight + bias, BN weight + bias
    assert summary.trainable == 4 + 4 + 4
    assert summary.buffer_numel == 4 + 4 + 1  # running mean, var, num_batches_tracked
    assert summary.buffer_bytes == 4 * 4 + 4 * 4 + 8
    assert summary.buffers["name"].tolist() == [
        "1.running_mean",
        "1.running_var",
        "1.num_batches_tracked",
    ]
    assert summary.summary()["trainable_params"] == 12


def test_by_dtype_splits_mixed_precision() -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2).half())
    table = count_params(model).by_dtype().set_index("dtype")
    assert table.loc["float32", "params"] == 20 and table.loc["float16", "params"] == 10
    assert table.loc["float16", "bytes"] == 20
