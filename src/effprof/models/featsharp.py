"""featsharp: a small ViT feature extractor with a cheap, image-guided 4x feature upsampler.

Written here from the descriptions of FeatSharp (Ranzinger et al., "FeatSharp: Your Vision Model
Features, Sharper", arXiv 2502.16025) and the joint bilateral upsampler (JBU) of FeatUp (Fu et
al., ICLR 2024) that it builds on. Kept from the paper:

* a ViT (patch embedding, pre-norm blocks with self-attention through
  ``F.scaled_dot_product_attention``, a learned position table for its native 14 x 14 token grid,
  bicubic-interpolated when the grid differs) run once on the whole image: features at 1/16;
* de-biasing: a learned per-position, per-channel bias buffer on the native grid is subtracted
  from every ViT output (the fixed-pattern artefacts a ViT's features carry);
* a stack of two 2x JBU steps guided by the image: every output position averages the 5 x 5
  low-resolution neighbourhood of its parent, weighted by a softmax of a range term (the dot
  product of learned guidance embeddings of the image) plus a Gaussian spatial term with a
  learned width: features at 1/4;
* tiling: the image is cut into 2 x 2 tiles, each resized to the full input size and encoded by
  the same ViT (and de-biased), giving features at 1/8 from a ViT that saw the image at twice
  the scale (8 x 8 input pixels per token instead of 16 x 16);
* fusion: the JBU features and the (bilinearly upsampled) tile features are concatenated, mixed
  by a linear layer and refined by one transformer block whose attention is local.

Simplified (as we read the paper, its tiles match the upsampling factor and its fusion block
attends over sliding windows): here the tiles are 2 x 2 for a 4x upsampler and the block attends
within non-overlapping 8 x 8 windows (static reshapes, no custom kernel). There is no class
token, and the guidance embedding is a two-layer conv on the average-pooled image.

The counterfactual runs the same ViT on the image bicubic-upsampled 4x, so that its own token
grid is the upsampled feature grid (56 x 56 at the default 224 px input): 16x the tokens, and
attention whose cost grows with the square of the token count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from effprof.models.featsharp_map import featsharp_components
from effprof.models.inputs import image_inputs
from effprof.models.registry import DENSE_OUT, OutputSpec, register_model
from effprof.models.sr3x import Bicubic
from effprof.models.transformer import Block

PATCH = 16
GRID = 14  # native token grid: 224 / 16
UPSAMPLE = 4  # two 2x JBU steps
TILES = 2  # 2 x 2 tiles
NATIVE_SIZE = PATCH * GRID


@dataclass(frozen=True)
class FeatSharpConfig:
    """Widths of one variant: ViT width, depth, heads; guidance width; JBU radius; fusion window."""

    dim: int
    depth: int
    heads: int
    guidance: int = 32
    radius: int = 2
    window: int = 8


VARIANTS: dict[str, FeatSharpConfig] = {
    "small": FeatSharpConfig(dim=192, depth=12, heads=3),  # ViT-Ti/16 widths
    "base": FeatSharpConfig(dim=384, depth=12, heads=6),  # ViT-S/16 widths
}


# ----------------------------------------------------------------------------- ViT


class ViT(nn.Module):
    """Patch embedding, position table, blocks, final norm; returns a (B, C, H/16, W/16) map."""

    def __init__(self, config: FeatSharpConfig) -> None:
        super().__init__()
        self.patch_embed = nn.Conv2d(3, config.dim, PATCH, stride=PATCH)
        self.pos_embed = nn.Parameter(torch.randn(1, GRID * GRID, config.dim) * 0.02)
        self.blocks = nn.Sequential(*(Block(config.dim, config.heads) for _ in range(config.depth)))
        self.norm = nn.LayerNorm(config.dim)

    def position_table(self, height: int, width: int) -> Tensor:
        """The (1, height x width, C) position table, bicubic-interpolated off the native grid."""
        if (height, width) == (GRID, GRID):
            return self.pos_embed
        table = self.pos_embed.reshape(1, GRID, GRID, -1).permute(0, 3, 1, 2)
        table = F.interpolate(table, size=(height, width), mode="bicubic", align_corners=False)
        return table.flatten(2).transpose(1, 2)

    def forward(self, image: Tensor) -> Tensor:
        x = self.patch_embed(image)
        batch, dim, height, width = x.shape
        x = x.flatten(2).transpose(1, 2) + self.position_table(height, width)
        x = self.norm(self.blocks(x))
        return x.transpose(1, 2).reshape(batch, dim, height, width)


class Debias(nn.Module):
    """Subtract a learned (C, 14, 14) bias buffer from ViT features (resized if the grid differs)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, dim, GRID, GRID))

    def forward(self, features: Tensor) -> Tensor:
        bias = self.bias
        if features.shape[-2:] != bias.shape[-2:]:
            bias = F.interpolate(bias, size=features.shape[-2:], mode="bilinear")
        return features - bias


class TileEncoder(nn.Module):
    """Cut the image into ``tiles`` x ``tiles`` tiles, resize each to the full input size, encode
    all of them with the shared ViT in one batch, de-bias, and stitch a grid ``tiles``x finer."""

    def __init__(self, vit: ViT, debias: Debias, tiles: int) -> None:
        super().__init__()
        self.vit = vit
        self.debias = debias
        self.tiles = tiles

    def forward(self, image: Tensor) -> Tensor:
        batch, channels, height, width = image.shape
        t = self.tiles
        parts = image.reshape(batch, channels, t, height // t, t, width // t)
        parts = parts.permute(0, 2, 4, 1, 3, 5).reshape(batch * t * t, channels, height // t, -1)
        parts = F.interpolate(parts, size=(height, width), mode="bilinear", align_corners=False)
        features = self.debias(self.vit(parts))
        _, dim, h, w = features.shape
        features = features.reshape(batch, t, t, dim, h, w).permute(0, 3, 1, 4, 2, 5)
        return features.reshape(batch, dim, t * h, t * w)


# ----------------------------------------------------------------------------- upsampler


def neighbourhoods(x: Tensor, radius: int) -> Tensor:
    """(B, C, H, W) -> (B, K, C, H, W): the K = (2r+1)^2 shifted copies (edge-replicated), rows of
    offsets outer and columns inner."""
    height, width = x.shape[-2:]
    padded = F.pad(x, (radius,) * 4, mode="replicate")
    size = 2 * radius + 1
    shifts = [
        padded[..., dy : dy + height, dx : dx + width] for dy in range(size) for dx in range(size)
    ]
    return torch.stack(shifts, dim=1)


class JointBilateralUp(nn.Module):
    """One 2x joint bilateral upsampling step guided by the image (FeatUp's JBU).

    Output position (2y+a, 2x+b) is a convex combination of the K low-resolution features around
    (y, x): softmax over K of ``temperature * <g_hr, g_lr[k]>`` (range term, learned guidance
    embeddings of the image at the two grids) ``- |offset_k - subpixel|^2 / (2 sigma^2)``
    (spatial term). Both weightings and the weighted sum are batched matrix products.
    """

    def __init__(self, guidance: int, radius: int) -> None:
        super().__init__()
        self.radius = radius
        self.guide = nn.Sequential(
            nn.Conv2d(3, guidance, 3, padding=1), nn.GELU(), nn.Conv2d(guidance, guidance, 1)
        )
        self.log_temperature = nn.Parameter(torch.zeros(()))
        self.log_sigma = nn.Parameter(torch.zeros(()))
        size = 2 * radius + 1
        grid = torch.arange(size, dtype=torch.float32) - radius
        offsets = torch.stack(torch.meshgrid(grid, grid, indexing="ij"), -1).reshape(-1, 2)
        sub = torch.tensor([-0.25, 0.25])
        subpixels = torch.stack(torch.meshgrid(sub, sub, indexing="ij"), -1).reshape(-1, 2)
        # (4 subpixels, K offsets) squared distances, fixed by the geometry.
        self.register_buffer("distance2", ((subpixels[:, None] - offsets[None]) ** 2).sum(-1))

    def forward(self, features: Tensor, image: Tensor) -> Tensor:
        batch, dim, height, width = features.shape
        guide_hr = self.guide(F.avg_pool2d(image, image.shape[-1] // (2 * width)))
        guide_lr = F.avg_pool2d(guide_hr, 2)
        g = guide_hr.shape[1]
        k = (2 * self.radius + 1) ** 2
        positions = batch * height * width
        # (positions, 4 subpixels, G) @ (positions, G, K) -> range logits per subpixel and offset
        query = F.pixel_unshuffle(guide_hr, 2).reshape(batch, g, 4, height, width)
        query = query.permute(0, 3, 4, 2, 1).reshape(positions, 4, g)
        keys = neighbourhoods(guide_lr, self.radius).permute(0, 3, 4, 2, 1).reshape(positions, g, k)
        logits = torch.bmm(query, keys) * self.log_temperature.exp()
        spatial = self.distance2 / (2 * self.log_sigma.exp() ** 2)
        weights = torch.softmax(logits - spatial, dim=-1)
        values = neighbourhoods(features, self.radius).permute(0, 3, 4, 2, 1)
        out = torch.bmm(values.reshape(positions, dim, k), weights.transpose(1, 2))
        out = out.reshape(batch, height, width, dim, 2, 2).permute(0, 3, 1, 4, 2, 5)
        return out.reshape(batch, dim, 2 * height, 2 * width)


class JBUStack(nn.Module):
    """``steps`` JBU steps of 2x each (4x for two)."""

    def __init__(self, config: FeatSharpConfig, steps: int) -> None:
        super().__init__()
        self.steps = nn.ModuleList(
            JointBilateralUp(config.guidance, config.radius) for _ in range(steps)
        )

    def forward(self, features: Tensor, image: Tensor) -> Tensor:
        for step in self.steps:
            features = step(features, image)
        return features


def to_windows(x: Tensor, window: int) -> Tensor:
    """(B, H, W, C) -> (B x windows, window^2, C), zero-padding H and W up to the window."""
    batch, height, width, dim = x.shape
    ph, pw = math.ceil(height / window) * window, math.ceil(width / window) * window
    x = F.pad(x, (0, 0, 0, pw - width, 0, ph - height))
    x = x.reshape(batch, ph // window, window, pw // window, window, dim).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, window * window, dim)


def from_windows(x: Tensor, batch: int, height: int, width: int) -> Tensor:
    """The inverse of :func:`to_windows`: (B x windows, window^2, C) -> (B, H, W, C)."""
    window = math.isqrt(x.shape[1])
    ph, pw = math.ceil(height / window) * window, math.ceil(width / window) * window
    x = x.reshape(batch, ph // window, pw // window, window, window, -1).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(batch, ph, pw, -1)[:, :height, :width]


class TileFusion(nn.Module):
    """Concatenate JBU and tile features, mix them linearly, refine them with one transformer
    block that attends within non-overlapping windows (norm and MLP are per token, so the block
    runs on the window batch as it is)."""

    def __init__(self, config: FeatSharpConfig) -> None:
        super().__init__()
        self.window = config.window
        self.fuse = nn.Linear(2 * config.dim, config.dim)
        self.block = Block(config.dim, config.heads)

    def forward(self, upsampled: Tensor, tiles: Tensor) -> Tensor:
        batch, _, height, width = upsampled.shape
        tiles = F.interpolate(tiles, size=(height, width), mode="bilinear", align_corners=False)
        x = self.fuse(torch.cat([upsampled, tiles], dim=1).permute(0, 2, 3, 1))
        x = self.block(to_windows(x, self.window))
        return from_windows(x, batch, height, width).permute(0, 3, 1, 2)


# ----------------------------------------------------------------------------- networks


class FeatSharp(nn.Module):
    """ViT at 1/16 -> de-bias -> 4x JBU to 1/4; ViT on 2 x 2 tiles at 1/8; fused at 1/4.

    ``forward(image)`` returns (B, C, H/4, W/4) features; H and W must be multiples of 16.
    """

    def __init__(self, config: FeatSharpConfig) -> None:
        super().__init__()
        self.vit = ViT(config)
        self.debias = Debias(config.dim)
        self.upsampler = JBUStack(config, steps=int(math.log2(UPSAMPLE)))
        self.tiles = TileEncoder(self.vit, self.debias, TILES)
        self.fusion = TileFusion(config)

    def forward(self, image: Tensor) -> Tensor:
        low = self.debias(self.vit(image))
        upsampled = self.upsampler(low, image)
        return self.fusion(upsampled, self.tiles(image))


class HighResViT(nn.Module):
    """The counterfactual: the same ViT and de-bias on the image bicubic-upsampled 4x, so that its
    token grid is FeatSharp's output grid (H/4 x W/4)."""

    def __init__(self, config: FeatSharpConfig) -> None:
        super().__init__()
        self.upsample = Bicubic(UPSAMPLE)
        self.vit = ViT(config)
        self.debias = Debias(config.dim)

    def forward(self, image: Tensor) -> Tensor:
        return self.debias(self.vit(self.upsample(image)))


def build_featsharp(variant: str) -> FeatSharp:
    """A fresh featsharp network (``small``: ViT-Ti/16 widths; ``base``: ViT-S/16)."""
    return FeatSharp(VARIANTS[variant])


def build_high_res_vit(variant: str) -> HighResViT:
    """The ViT-at-4x-resolution counterfactual of ``variant``."""
    return HighResViT(VARIANTS[variant])


HIGH_RES_VIT = (
    "the cheap upsampler: instead of the JBU stack, the tiles and the fusion block, the same ViT "
    "(and de-bias) runs on the image bicubic-upsampled 4x, so its own token grid is the 1/4 "
    "output grid: 16x the tokens of the whole-image pass, with attention that grows with the "
    "square of the token count"
)


@register_model(
    "featsharp",
    variants=tuple(VARIANTS),
    default_variant="small",
    summary="FeatSharp-style ViT features upsampled 4x by image-guided JBU and tile fusion",
    task="dense feature extraction (4x feature upsampling)",
    inputs=lambda _variant: image_inputs((1, 3, NATIVE_SIZE, NATIVE_SIZE)),
    input_multiple=PATCH,
    outputs=OutputSpec(kind=DENSE_OUT, names=("features_1_4",)),
    components=featsharp_components,
    counterfactuals={"ViT at the upsampled resolution": (HIGH_RES_VIT, build_high_res_vit)},
)
def featsharp(variant: str) -> nn.Module:
    """Registered builder: ``effprof profile --model featsharp --variant base``."""
    return build_featsharp(variant)
