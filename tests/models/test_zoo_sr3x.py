"""sr3x: every conv runs on the low-resolution grid, one PixelShuffle(3) upsamples last, and the
pre-upsampling counterfactual costs what the design predicts."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from effprof.measure.counterfactual import Counterfactual, count_counterfactuals
from effprof.measure.counting import count_model
from effprof.models import MODELS, build_model
from effprof.models.sr3x import VARIANTS, build_sr3x, sr3x_components

COUNTERFACTUAL = "bicubic-upsampled input"


def _predicted_ratio(width: int, blocks: int) -> float:
    """MACs per low-resolution pixel: shallow 27C, (2B+1) body convs of 9C^2, reconstruction
    9C x 27; pre-upsampling runs shallow and body on 9x the pixels and reconstructs 9C x 3 on each
    of the 9 output pixels (the same 243C)."""
    shallow, body, reconstruct = 27 * width, (2 * blocks + 1) * 9 * width**2, 243 * width
    return (9 * (shallow + body) + reconstruct) / (shallow + body + reconstruct)


def test_output_is_three_times_larger_on_a_real_cpu_forward():
    model = build_model("sr3x", "small").eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, 10, 14))
    assert out.shape == (2, 3, 30, 42)
    assert torch.isfinite(out).all()


def test_every_conv_runs_at_input_resolution_and_one_pixel_shuffle_is_last():
    with torch.device("meta"):
        model = build_sr3x("small")
    count = count_model(model, (1, 3, 16, 16))
    convs = count.ops[count.ops["op"].str.startswith("aten.convolution")]
    assert (convs["output_shape"].str.endswith("x16x16")).all()
    shuffles = [m for m in model.modules() if isinstance(m, nn.PixelShuffle)]
    assert len(shuffles) == 1 and shuffles[0].upscale_factor == 3
    last = count.ops.iloc[-1]
    assert last["module"] == "upsample" and last["output_shape"] == "1x3x48x48"
    assert count.ops.loc[count.ops["module"] == "upsample", "macs"].sum() == 0


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_pre_upsampling_costs_the_predicted_ratio(variant: str):
    entry = MODELS.get("sr3x")
    with torch.device("meta"):
        real = entry.build(variant)
        pre = entry.counterfactuals[COUNTERFACTUAL][1](variant)
    spec = entry.default_inputs(variant)
    table = count_counterfactuals(
        real, count_model(real, spec), [Counterfactual(COUNTERFACTUAL, "design", "", pre)]
    )
    assert table.ratio(COUNTERFACTUAL) == pytest.approx(_predicted_ratio(*VARIANTS[variant]))
    assert 8 < table.ratio(COUNTERFACTUAL) < 9  # "a little under 9x", as the entry says
    assert table.ratio(COUNTERFACTUAL, "params") == pytest.approx(1.0, rel=0.1)


def test_per_part_pre_upsampling_is_nine_times_except_reconstruction():
    with torch.device("meta"):
        real, pre = build_sr3x("small"), build_sr3x("small", upsample_first=True)
    parts = {}
    for name, model in (("real", real), ("pre", pre)):
        count = count_model(model, (1, 3, 32, 32))
        labels = count.ops["module"].map(lambda p: sr3x_components(p)["part"])
        parts[name] = count.ops.groupby(labels.to_numpy())["macs"].sum()
    ratio = parts["pre"] / parts["real"]
    assert ratio["shallow features"] == ratio["body"] == 9
    assert ratio["reconstruction"] == 1
    assert parts["real"]["upsampler"] == parts["pre"]["upsampler"] == 0


def test_map_puts_convs_on_the_input_grid_and_the_shuffle_on_the_output_grid():
    assert sr3x_components("body.blocks.0.body.2")["scale"].startswith("input grid")
    assert sr3x_components("reconstruct")["scale"].startswith("input grid")
    assert sr3x_components("upsample") == {
        "scale": "output grid (3x per side)",
        "part": "upsampler",
    }
    assert sr3x_components("not_a_module") == {}
