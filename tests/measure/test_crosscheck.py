"""cross_check: counters side by side, and explanations computed from what was measured."""

from __future__ import annotations

import json
import re

import pytest
import torch
from torch import nn

from effprof.measure import crosscheck
from effprof.measure.crosscheck import ReferenceCount, cross_check
from effprof.measure.tool_counters import hook_visits, untie_shared_modules
from effprof.models import build_model
from effprof.results import EffprofError
from tests.measure.zoo import Heads, SharedActivation

# SharedActivation at 1x4x8x8: four 4->4 3x3 convs of 256 outputs x 36 taps = 36,864 MACs;
# the PReLU sees 256 elements per call, 2 calls = 512, thop's rule counts 1 per element.
CONV_MACS = 4 * 256 * 36
PRELU_ELEMENTS = 2 * 256


@pytest.fixture(scope="module")
def shared_check() -> crosscheck.CrossCheck:
    return cross_check(SharedActivation(), (1, 4, 8, 8))


def test_counters_side_by_side_on_a_shared_activation(shared_check: crosscheck.CrossCheck) -> None:
    table = shared_check.table.set_index("counter")
    assert table.loc["effprof", "macs"] == CONV_MACS
    assert table.loc["FlopCounterMode", "tool_value"] == 2 * CONV_MACS
    assert table.loc["fvcore", "macs"] == CONV_MACS
    # thop hooks the shared PReLU once per parent (2) and sums it once per parent (2): 2^2 x 512.
    assert table.loc["thop", "tool_value"] == CONV_MACS + 4 * PRELU_ELEMENTS
    assert table.loc["thop (shared modules untied)", "tool_value"] == CONV_MACS + PRELU_ELEMENTS
    assert (table["status"] == "ok").all()
    assert set(table["input_shape"]) == {"1x4x8x8"}


def test_thop_explanation_names_the_shared_module_and_the_untied_agreement(
    shared_check: crosscheck.CrossCheck,
) -> None:
    thop = shared_check.table.set_index("counter").loc["thop", "explanation"]
    assert "PReLU instance block1.act is registered under 2 parent modules" in thop
    assert f"2^2 = 4 x {PRELU_ELEMENTS:,}" in thop
    assert "outputs identical" in thop
    assert f"conv/linear part {CONV_MACS:,} equals effprof's MACs" in thop
    assert "parameter count 578" in thop and "(exactly)" in thop  # 577 + the PReLU once more
    fvcore = shared_check.table.set_index("counter").loc["fvcore", "explanation"]
    assert "aten::prelu x2" in fvcore and "aten::add x2" in fvcore


def test_cross_check_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    cross_check(SharedActivation(), (1, 4, 8, 8), tools=("fvcore", "thop"))
    captured = capsys.readouterr()
    assert captured.out == ""


def test_real_counters_can_run_at_a_smaller_shape() -> None:
    check = cross_check(
        Heads(), (1, 3, 32, 32), real_inputs=(1, 3, 8, 8), tools=("FlopCounterMode", "fvcore")
    )
    rows = check.table[["counter", "input_shape"]].values.tolist()
    assert rows == [
        ["effprof", "1x3x32x32"],
        ["FlopCounterMode", "1x3x32x32"],
        ["effprof", "1x3x8x8"],
        ["fvcore", "1x3x8x8"],
    ]
    effprof = check.table.iloc[0]["explanation"]
    assert "never called by this forward (aux)" in effprof


def test_a_failing_counter_is_a_missing_row(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("tracer exploded")

    monkeypatch.setattr(crosscheck, "run_fvcore", broken)
    table = cross_check(Heads(), (1, 3, 8, 8), tools=("fvcore",)).table.set_index("counter")
    assert table.loc["fvcore", "status"] == "missing: RuntimeError: tracer exploded"
    assert table["macs"].isna()["fvcore"]


def test_unknown_counter_is_a_user_error() -> None:
    with pytest.raises(EffprofError, match="unknown counter"):
        cross_check(Heads(), (1, 3, 8, 8), tools=("ptflops",))


def test_untying_gives_each_parent_its_own_module_with_identical_outputs() -> None:
    model = SharedActivation().eval()
    untied = untie_shared_modules(model)
    assert untied.block1.act is not untied.block2.act
    assert max(hook_visits(model).values()) == 2 and max(hook_visits(untied).values()) == 1
    x = torch.randn(1, 4, 8, 8)
    with torch.no_grad():
        assert torch.equal(model(x), untied(x))


def test_layout_file_difference_is_the_official_pixel_unshuffle_conv(reference_dir) -> None:
    layout = json.loads((reference_dir / "mssnet-layout.json").read_text())["variants"]["small"]
    with torch.device("meta"):
        model = build_model("mssnet", "small")
    ref = ReferenceCount(
        "layout file",
        "FlopCounterMode",
        layout["flops_torch_flop_counter_256x256_all_six_outputs"],
        (1, 3, 256, 256),
    )
    check = cross_check(
        model,
        (1, 3, 256, 256),
        forward_kwargs={"all_outputs": True},
        tools=("FlopCounterMode",),
        references=[ref],
    )
    table = check.table.set_index("counter")
    assert table.loc["FlopCounterMode", "tool_value"] == 82_001_715_200
    text = table.loc["layout file", "explanation"]
    assert "+1,966,080" in text and "exactly the difference" in text


@pytest.mark.slow
def test_thop_on_mssnet_base_over_counts_the_shared_prelu() -> None:
    model = build_model("mssnet", "base").eval()
    table = cross_check(model, (1, 3, 256, 256), tools=("thop",)).table.set_index("counter")
    conv_macs = table.loc["effprof", "macs"]
    assert 140e9 < conv_macs < 150e9
    assert table.loc["thop", "tool_value"] > 6 * conv_macs
    assert "registered under 87 parent modules" in table.loc["thop", "explanation"]


class NormPoolHead(nn.Module):
    """conv, batch norm, layer norm over channels, global pool, linear: the ops whose names
    fvcore and aten spell differently."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.ln = nn.LayerNorm(8)
        self.head = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.conv(x))
        x = self.ln(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return self.head(nn.functional.adaptive_avg_pool2d(x, 1).flatten(1))


def test_explanations_match_fvcore_op_names_and_keep_matmul_out_of_other_ops() -> None:
    check = cross_check(NormPoolHead(), (1, 3, 16, 16), tools=("fvcore",)).table.set_index(
        "counter"
    )
    fvcore = check.loc["fvcore", "explanation"]
    for op in ("batch_norm", "layer_norm", "adaptive_avg_pool2d"):
        mine = int(
            re.search(rf"for {op}, where effprof counts ([\d,]+) FLOPs", fvcore)
            .group(1)
            .replace(",", "")
        )
        assert mine > 0, fvcore  # aten's _native_batch_norm_legit_no_training etc. are matched
    effprof = check.loc["effprof", "explanation"]
    beyond = effprof.split("beyond the multiply-accumulates (")[1].split(")")[0]
    assert "linear/matmul" not in beyond and "convolution" not in beyond  # their FLOPs are 2 x MACs


class _Attention(torch.nn.Module):
    """One fused attention call: fvcore has no handle for it, effprof counts it as one row."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = x.flatten(2).transpose(1, 2).reshape(1, 16, 2, 2).transpose(1, 2)
        return torch.nn.functional.scaled_dot_product_attention(q, q, q)


def test_fvcore_skipping_fused_attention_names_effprofs_macs_for_it() -> None:
    check = cross_check(_Attention(), (1, 4, 4, 4), tools=("fvcore",)).table.set_index("counter")
    fvcore = check.loc["fvcore", "explanation"]
    skipped = re.search(
        r"scaled_dot_product_attention x1 \(effprof: ([\d,]+) FLOPs, ([\d,]+) MACs", fvcore
    )
    assert skipped, fvcore
    flops, macs = (int(g.replace(",", "")) for g in skipped.groups())
    assert macs == 2 * 2 * 16 * 16 * 2 and flops > 2 * macs  # QK^T and AV, plus the softmax
