"""Per-op formulas against hand-computed numbers on single ops (fvcore's test style)."""

from __future__ import annotations

import doctest
import importlib

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from effprof._registry import DuplicateNameError
from effprof.measure import formulas
from effprof.measure.counting import count_model
from effprof.measure.formulas import FORMULAS, find_formula, register_formula
from tests.measure.zoo import Functional, Shuffle, Uncounted, Upsample, tiny_models

aten = torch.ops.aten


def test_worked_examples_in_docstrings_are_right() -> None:
    results = [
        doctest.testmod(importlib.import_module(f"effprof.measure.formulas.{name}"))
        for name in formulas.SUBMODULES
    ]
    assert sum(r.attempted for r in results) >= 16 and sum(r.failed for r in results) == 0


@pytest.mark.parametrize(
    ("name", "macs", "bias_flops"),
    [
        ("conv_bias", 13_824, 512),  # out 1x8x8x8 = 512 elements x 3 in x 9 taps; one add each
        ("conv", 13_824, 0),
        ("grouped", 18_432, 0),  # out 1x16x8x8 = 1024 x (8/4 = 2) in x 9
        ("strided", 3_456, 0),  # out 1x8x4x4 = 128 x 3 x 9
        ("dilated", 9_216, 0),  # out 1x4x8x8 = 256 x 4 x 9
        ("transposed", 3_200, 0),  # in 1x4x5x5: 4 x 25 positions x 2 out x 16 taps
        ("linear", 100, 10),  # (2,10) @ (10,5) + bias on 2x5
        ("linear3d", 300, 30),  # 6 rows x 10 x 5
        ("matmul", 72, 0),  # 2 x (3x4 @ 4x3)
    ],
)
def test_mac_ops_match_hand_counts(name: str, macs: int, bias_flops: int) -> None:
    model, shape = tiny_models()[name]
    result = count_model(model, shape)
    assert (result.macs, result.bias_flops) == (macs, bias_flops)
    assert result.flops == 2 * macs  # bias FLOPs are listed apart, not in FLOPs


@pytest.mark.parametrize(
    "name", ["conv", "grouped", "strided", "dilated", "transposed", "linear", "matmul"]
)
def test_mac_ops_equal_flop_counter_mode_halved(name: str) -> None:
    model, shape = tiny_models()[name]
    with FlopCounterMode(display=False) as counter:
        model(torch.randn(shape))
    assert 2 * count_model(model, shape).macs == counter.get_total_flops()


def test_bilinear_resize_is_seven_flops_per_output_and_nearest_zero() -> None:
    bilinear = count_model(Upsample(), (1, 2, 4, 4))
    assert bilinear.flops == 2 * 8 * 8 * 7  # 128 outputs x (4 mul + 3 add)
    assert bilinear.macs == 0
    nearest = count_model(nn.Upsample(scale_factor=2, mode="nearest"), (1, 2, 4, 4))
    assert nearest.flops == 0 and nearest.complete
    assert nearest.ops["category"].tolist() == ["resampling"]


def test_prelu_is_two_flops_per_element() -> None:
    result = count_model(nn.PReLU(), (1, 2, 4, 4))
    assert result.flops == 32 * 2 and result.macs == 0


@pytest.mark.parametrize(
    ("module", "shape", "flops"),
    [
        (nn.BatchNorm2d(2).eval(), (1, 2, 4, 4), 32 * 4),  # normalise 2 + affine 2
        (nn.LayerNorm(4), (2, 3, 4), 24 * 8),  # + 4 for the statistics
        (nn.GroupNorm(1, 2), (1, 2, 4, 4), 32 * 8),
        (nn.Softmax(dim=-1), (2, 5), 10 * 5),
        (nn.AvgPool2d(2), (1, 2, 4, 4), 8 * 4),  # 8 outputs x 4-element windows
        (nn.AdaptiveAvgPool2d(3), (1, 2, 4, 4), 2 * 6 * 6),  # windows 2+2+2 per dim
        (nn.AdaptiveAvgPool2d(1), (1, 2, 4, 4), 32),  # a mean: one add per element
        (nn.Sigmoid(), (2, 5), 10 * 4),
        (nn.ReLU(), (2, 5), 10),
    ],
)
def test_other_op_formulas(module: nn.Module, shape: tuple[int, ...], flops: int) -> None:
    result = count_model(module, shape)
    assert result.complete
    assert result.flops == flops


def test_functional_calls_are_counted() -> None:
    # conv 1x1 2->2 on 1x2x4x4: 64 MACs; add: 32 FLOPs; two bilinear 2x resizes: 2 x 128 x 7.
    result = count_model(Functional(), (1, 2, 4, 4))
    assert result.macs == 64
    assert result.flops == 2 * 64 + 32 + 2 * 128 * 7
    assert "aten.cat.default" in set(result.ops["op"])


def test_pixel_shuffles_cost_no_flops_but_list_their_bytes() -> None:
    result = count_model(Shuffle(), (1, 3, 8, 8))
    ops = result.ops.set_index("op")
    for op in ("aten.pixel_unshuffle.default", "aten.pixel_shuffle.default"):
        assert ops.loc[op, "flops"] == 0 and ops.loc[op, "counted"]
        assert ops.loc[op, "bytes_read"] == ops.loc[op, "bytes_written"] == 3 * 8 * 8 * 4
    assert ops.loc["aten.pixel_unshuffle.default", "output_shape"] == "1x12x4x4"


def test_op_without_formula_is_listed_with_its_call_count() -> None:
    result = count_model(Uncounted(), (1, 2, 4, 4))
    assert not result.complete
    assert result.uncounted.to_dict("records") == [
        {"op": "aten._linalg_svd.default", "calls": 2, "reason": "no formula"}
    ]
    assert not result.ops.loc[result.ops["op"] == "aten._linalg_svd.default", "counted"].any()


def test_a_formula_that_fails_leaves_its_op_uncounted_not_zero(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(args: object, kwargs: object, out: object) -> formulas.OpCost:
        raise IndexError("unexpected arguments")

    monkeypatch.setitem(FORMULAS._entries, aten._linalg_svd.default, broken)
    result = count_model(Uncounted(), (1, 2, 4, 4))
    [row] = result.uncounted.to_dict("records")
    assert row["calls"] == 2
    assert row["reason"] == "formula failed: IndexError: unexpected arguments"


def test_registry_refuses_duplicates_and_resolves_overloads_through_packets() -> None:
    with pytest.raises(DuplicateNameError):
        register_formula(aten.convolution.default)(lambda args, kwargs, out: formulas.OpCost())
    assert find_formula(aten.add.Tensor) is find_formula(aten.mul.Tensor) is not None
    assert find_formula(aten._linalg_svd.default) is None
    assert all(
        isinstance(op, (torch._ops.OpOverload, torch._ops.OpOverloadPacket)) for op in FORMULAS
    )


def test_policy_text_names_the_conventions() -> None:
    for phrase in ("MACs", "2 x MACs", "bias", "bilinear", "pixel (un)shuffle", "meta"):
        assert phrase in formulas.COUNTING_POLICY


def test_bicubic_resize_is_31_flops_per_output() -> None:
    result = count_model(nn.Upsample(scale_factor=2, mode="bicubic"), (1, 1, 4, 4))
    assert result.flops == 8 * 8 * 31  # 16 mul + 15 add per output


def test_every_op_with_a_formula_has_a_category() -> None:
    from effprof.measure.categories import OTHER, op_category

    other = [str(op) for op in FORMULAS if op_category(str(op), getattr(op, "tags", ())) == OTHER]
    assert other == []  # an op counted but filed under "other" would hide in the category table
