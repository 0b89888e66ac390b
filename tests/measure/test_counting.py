"""count_model: totals, call-time attribution, activation memory, and MSSNet against FlopCounterMode."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from effprof.measure.counting import count_model
from effprof.measure.formulas import COUNTING_POLICY
from effprof.models import MODELS, build_model
from effprof.results import EffprofError, Missing
from tests.measure.zoo import Chain, Functional, Heads, SharedActivation

SUMMED = ["macs", "flops", "bias_flops", "bytes_read", "bytes_written"]


def _meta_mssnet(variant: str) -> nn.Module:
    with torch.device("meta"):
        return build_model("mssnet", variant)


@pytest.mark.parametrize("variant", ["small", "base", "large"])
def test_mssnet_conv_macs_equal_flop_counter_mode_exactly(variant: str) -> None:
    model = _meta_mssnet(variant)
    result = count_model(model, (1, 3, 64, 64), forward_kwargs={"all_outputs": True})
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.empty(1, 3, 64, 64, device="meta"), all_outputs=True)
    conv = result.ops[result.ops["category"] == "convolution"]
    assert 2 * int(conv["macs"].sum()) == counter.get_total_flops()
    assert 2 * result.macs == counter.get_total_flops()
    assert result.complete


REGISTERED = [
    (name, variant, counterfactual)
    for name, entry in MODELS.items()
    for variant in entry.variants
    for counterfactual in (None, *entry.counterfactuals)
]


@pytest.mark.parametrize(("name", "variant", "counterfactual"), REGISTERED)
def test_every_registered_model_and_counterfactual_counts_completely(
    name: str, variant: str, counterfactual: str | None
) -> None:
    entry = MODELS.get(name)
    build = entry.build if counterfactual is None else entry.counterfactuals[counterfactual][1]
    with torch.device("meta"):
        model = build(variant)
    result = count_model(model, entry.default_inputs(variant))  # meta: any size is free
    assert result.complete, result.uncounted
    assert result.macs > 0 and result.flops > 2 * result.macs


def test_shared_module_is_charged_to_the_path_that_called_it() -> None:
    result = count_model(SharedActivation(), (1, 4, 8, 8))
    prelu = result.ops[result.ops["op"] == "aten._prelu_kernel.default"]
    assert prelu["module"].tolist() == ["block1.act", "block2.act"]
    by_block = result.by_module(depth=1).set_index("module")
    assert by_block.loc["block1", "flops"] == by_block.loc["block2", "flops"]


def test_mssnet_shared_prelu_is_charged_to_each_resblock() -> None:
    result = count_model(_meta_mssnet("small"), (1, 3, 64, 64))
    prelu = result.ops[result.ops["op"] == "aten._prelu_kernel.default"]
    assert len(prelu) == 87 and prelu["module"].nunique() == 87
    assert prelu["module"].str.endswith(".body.1").all()


def test_functional_calls_are_charged_to_the_enclosing_module() -> None:
    result = count_model(Functional(), (1, 2, 4, 4))
    where = result.ops.groupby("op")["module"].agg(list).to_dict()
    assert where["aten.convolution.default"] == ["conv"]
    assert where["aten.add.Tensor"] == [""]  # the root's own forward
    assert where["aten.cat.default"] == [""]
    resize = result.ops[result.ops["category"] == "resampling"]
    assert resize["module"].tolist() == ["up", "up"]


def test_activation_peak_of_a_tiny_chain_matches_a_hand_count() -> None:
    # input 1x3x8x8 f32 = 768 B; conv1 -> 1x4x8x8 = 1024 B; relu -> another 1024 B while the conv1
    # output is still referenced; conv2 -> 1x2x8x8 = 512 B after conv1's output was dropped.
    result = count_model(Chain(), (1, 3, 8, 8))
    assert result.ops["live_bytes"].tolist() == [768 + 1024, 768 + 2048, 768 + 1024 + 512]
    assert result.activation_peak_bytes == 768 + 2048
    assert result.weights_bytes == (4 * 3 * 9 + 2 * 4) * 4  # weights are not activations
    assert result.input_bytes == 768


def test_in_place_ops_allocate_nothing() -> None:
    # ReLU(inplace=True) writes into conv1's output: no second 1024 B map, so the peak is at conv2.
    model = Chain()
    model[1] = nn.ReLU(inplace=True)
    result = count_model(model, (1, 3, 8, 8))
    assert result.ops["live_bytes"].tolist() == [768 + 1024, 768 + 1024, 768 + 1024 + 512]
    assert result.activation_peak_bytes == 768 + 1024 + 512


def test_half_precision_halves_weights_and_activations() -> None:
    full = count_model(Chain(), (1, 3, 8, 8))
    half = count_model(Chain(), (1, 3, 8, 8), dtype=torch.float16)
    assert half.weights_bytes * 2 == full.weights_bytes
    assert half.activation_peak_bytes * 2 == full.activation_peak_bytes
    assert half.macs == full.macs and half.dtype == "float16"


def test_by_module_and_by_category_sum_to_the_totals() -> None:
    result = count_model(
        _meta_mssnet("small"), (1, 3, 64, 64), forward_kwargs={"all_outputs": True}
    )
    totals = [result.macs, result.flops, result.bias_flops]
    for depth in (None, 1, 2, 3):
        table = result.by_module(depth)
        assert table[["macs", "flops", "bias_flops"]].sum().tolist() == totals
        assert table["calls"].sum() == len(result.ops)
    categories = result.by_category()
    assert categories[["macs", "flops", "bias_flops"]].sum().tolist() == totals
    assert categories["flops_share"].sum() == pytest.approx(1.0)
    top = result.by_module(1).set_index("module")
    assert {"E1_1", "D3_3", "tail1_1", ""} <= set(top.index)


def test_modules_never_called_are_listed_with_their_parameters() -> None:
    assert count_model(Heads(), (1, 3, 8, 8)).uncalled_modules.to_dict("records") == [
        {"module": "aux", "module_type": "Conv2d", "params": 12}
    ]
    assert count_model(Heads(), (1, 3, 8, 8), forward_kwargs={"both": True}).uncalled_modules.empty
    tails = count_model(_meta_mssnet("small"), (1, 3, 64, 64)).uncalled_modules
    assert tails["module"].tolist() == ["tail1_1", "tail2_1", "tail2_2", "tail3_1", "tail3_2"]


def test_real_model_is_counted_on_meta_and_left_untouched() -> None:
    model = Chain()
    before = [p.clone() for p in model.parameters()]
    result = count_model(model, (1, 3, 8, 8))
    assert all(p.device.type == "cpu" for p in model.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert result.macs == count_model(Chain().to("meta"), (1, 3, 8, 8)).macs


def test_macs_per_output_pixel() -> None:
    conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
    assert count_model(conv, (1, 3, 8, 8)).macs_per_output_pixel() == 3 * 9 * 8
    assert isinstance(count_model(nn.Linear(4, 2), (3, 4)).macs_per_output_pixel(), Missing)


@pytest.mark.parametrize("shape", [(1, 3, 0, 8), (), (1, 3, -4, 4)])
def test_bad_shapes_are_user_errors(shape: tuple[int, ...]) -> None:
    with pytest.raises(EffprofError):
        count_model(Chain(), shape)


class _ReadsAValue(nn.Module):
    """A forward that needs a Python number from its input: neither meta nor fake tensors have it."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Linear(2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale(x) * float(x.sum().item())


def test_a_forward_that_reads_a_value_is_counted_on_real_cpu_tensors() -> None:
    result = count_model(_ReadsAValue(), (1, 2))
    assert result.counted_on == "cpu" and result.macs == 4  # 1x2 @ 2x2
    assert "reads tensor values" in result.fallback_reason
    assert "Tensor.item() cannot be called on meta tensors" in result.summary()["counted_on_reason"]


def test_a_forward_that_reads_a_value_without_weights_is_refused_in_one_line() -> None:
    with torch.device("meta"):
        model = _ReadsAValue()
    with pytest.raises(EffprofError) as refused:
        count_model(model, (1, 2))
    line = str(refused.value)
    assert "\n" not in line and line.startswith(
        "cannot count _ReadsAValue with inputs other 1x2 float32"
    )
    assert "reads tensor values" in line and "weights are on the meta device" in line
    assert not refused.value.blames_shape


def test_summary_and_policy_travel_with_the_result() -> None:
    result = count_model(Chain(), (1, 3, 8, 8))
    summary = result.summary()
    assert summary["input_shape"] == "1x3x8x8" and summary["macs"] == result.macs
    assert summary["uncounted_ops"] == 0 and summary["activation_peak_bytes"] == 2816
    assert result.policy == COUNTING_POLICY
    assert result.to_frame() is result.ops


class _Resizes(nn.Module):
    """Every way F.interpolate is called: scale factors, a size, per-axis scales, recomputed."""

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [
            F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=True),
            F.interpolate(x, scale_factor=1.7, mode="bicubic", align_corners=False),
            F.interpolate(x, size=(13, 9), mode="nearest"),
            F.interpolate(x, scale_factor=(0.3, 2.5), mode="nearest"),
            F.interpolate(x, scale_factor=2, mode="bilinear", recompute_scale_factor=True),
        ]


def test_resizes_on_meta_have_the_real_output_shapes_and_formulas():
    model = _Resizes()
    real = [tuple(t.shape) for t in model(torch.randn(1, 3, 37, 53))]
    result = count_model(model, (1, 3, 37, 53))
    assert list(result.output_shapes) == real
    ops = result.ops
    assert ops["op"].str.endswith(".default").all() and ops["counted"].all()
    bilinear = ops[ops["op"] == "aten.upsample_bilinear2d.default"]
    assert bilinear["flops"].tolist() == [7 * 3 * 18 * 26, 7 * 3 * 74 * 106]  # 7 per output


def test_a_meta_count_does_not_import_torch_dynamo():
    # torch's Python decompositions import torch._dynamo on first use: 1.4 s of a cold CLI
    code = (
        "import sys, torch\n"
        "from effprof.measure.counting import count_model\n"
        "from tests.measure.test_counting import _Resizes\n"
        "count_model(torch.nn.Sequential(torch.nn.Conv2d(3, 3, 3), _Resizes()), (1, 3, 32, 32))\n"
        "assert 'torch._dynamo' not in sys.modules, 'torch._dynamo was imported'\n"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root)
    assert done.returncode == 0, done.stderr[-500:]
