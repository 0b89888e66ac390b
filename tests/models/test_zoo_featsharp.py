"""featsharp: 4x features from a ViT, image-guided JBU and tile fusion; the ViT at 4x resolution
costs far more because its attention grows with the square of the token count."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from effprof.measure.counting import count_model
from effprof.measure.regions import SDPA_OP
from effprof.models import build_model
from effprof.models.featsharp import (
    GRID,
    VARIANTS,
    Debias,
    JointBilateralUp,
    TileEncoder,
    ViT,
    build_featsharp,
    build_high_res_vit,
)


def test_real_cpu_forward_gives_features_at_a_quarter_of_the_input():
    model = build_model("featsharp", "small").eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, 64, 96))
    assert out.shape == (1, 192, 16, 24)
    assert torch.isfinite(out).all()


def test_jbu_is_a_convex_combination_and_nearest_when_only_space_counts():
    torch.manual_seed(0)
    step = JointBilateralUp(guidance=8, radius=2)
    image = torch.rand(1, 3, 32, 32)
    constant = torch.full((1, 5, 4, 4), 3.0)
    with torch.no_grad():
        assert torch.allclose(step(constant, image), torch.full((1, 5, 8, 8), 3.0))
        step.log_temperature.fill_(-30.0)  # no range term
        step.log_sigma.fill_(-3.0)  # a spatial kernel far narrower than a cell
        features = torch.rand(1, 5, 4, 4)
        nearest = features.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
        assert torch.allclose(step(features, image), nearest, atol=1e-5)


class _MeanPatches(nn.Module):
    """A stand-in ViT: 16 x 16 average pooling (features = the image's mean colour per patch)."""

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return nn.functional.avg_pool2d(image, 16)


def test_tiles_are_stitched_where_they_came_from():
    image = torch.zeros(1, 3, 32, 32)
    for row in range(2):
        for col in range(2):
            image[:, :, 16 * row : 16 * (row + 1), 16 * col : 16 * (col + 1)] = 10 * row + col
    debias = Debias(3)
    encoder = TileEncoder(_MeanPatches(), debias, tiles=2)  # type: ignore[arg-type]
    with torch.no_grad():
        grid = encoder(image)
    assert grid.shape == (1, 3, 4, 4)  # each 16 px tile resized to 32 px: 2 x 2 patches
    for row in range(2):
        for col in range(2):
            block = grid[:, :, 2 * row : 2 * (row + 1), 2 * col : 2 * (col + 1)]
            assert torch.allclose(block, torch.full_like(block, 10 * row + col))


def test_position_table_is_used_as_is_on_the_native_grid_and_interpolated_elsewhere():
    vit = ViT(VARIANTS["small"])
    assert vit.position_table(GRID, GRID) is vit.pos_embed
    assert vit.position_table(4, 6).shape == (1, 24, 192)


def test_debias_subtracts_the_learned_buffer():
    debias = Debias(2)
    with torch.no_grad():
        debias.bias.fill_(0.5)
        assert torch.allclose(debias(torch.ones(1, 2, GRID, GRID)), torch.full((1, 2, 14, 14), 0.5))
        assert torch.allclose(debias(torch.ones(1, 2, 3, 5)), torch.full((1, 2, 3, 5), 0.5))


@pytest.fixture(scope="module")
def counted() -> dict:
    """featsharp small and its ViT-at-4x counterfactual counted on meta at 224 and 448 px."""
    with torch.device("meta"):
        real, high = build_featsharp("small"), build_high_res_vit("small")
    return {
        (name, side): count_model(model, (1, 3, side, side))
        for name, model in (("real", real), ("high", high))
        for side in (224, 448)
    }


def _macs_under(count, prefix: str, op: str | None = None) -> int:
    ops = count.ops
    inside = (ops["module"] == prefix) | ops["module"].str.startswith(prefix + ".")
    if op is not None:
        inside &= ops["op"] == op
    return int(ops.loc[inside, "macs"].sum())


def test_vit_at_4x_has_16x_the_tokens_and_256x_the_attention_macs(counted):
    real, high = counted[("real", 224)], counted[("high", 224)]
    assert _macs_under(high, "vit", SDPA_OP) == 256 * _macs_under(real, "vit", SDPA_OP) > 0
    for count, grid in ((real, "14x14"), (high, "56x56")):
        embed = count.ops[count.ops["module"] == "vit.patch_embed"]
        assert embed["output_shape"].tolist() == [f"1x192x{grid}"]


def test_high_res_vit_costs_several_times_more_and_more_so_on_larger_images(counted):
    ratios = [counted[("high", side)].macs / counted[("real", side)].macs for side in (224, 448)]
    assert ratios[0] > 7  # 7.8x at 224 px (the entry's default input)
    assert ratios[1] > 2 * ratios[0]  # attention's share grows with the token count


def test_tiles_cost_four_whole_image_passes(counted):
    real = counted[("real", 224)]
    assert _macs_under(real, "tiles.vit") == 4 * _macs_under(real, "vit") > 0
