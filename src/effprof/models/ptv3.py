"""ptv3: a Point Transformer V3-style U-Net on serialized points, and its KNN-attention twin.

Written here from the description in Wu et al., "Point Transformer V3: Simpler, Faster,
Stronger" (CVPR 2024, arXiv 2312.10035). Kept from the paper:

* serialization: the points' grid coordinates (coordinates / grid size, quantised) are ordered
  along four space-filling curves: z-order (Morton) and Hilbert codes, and both again with the x
  and y axes swapped ("trans"). Each block uses one of the four orders, in turn; in training the
  assignment of orders to blocks is shuffled every forward ("shuffle order");
* patch attention: in a block's order, the points are cut into non-overlapping patches of
  ``patch`` consecutive points (1024 in the paper), and multi-head attention runs within each
  patch only. A point count that is not a multiple of the patch is completed, as the paper does,
  with points borrowed from the patch before: the last patch is the last ``patch`` points of the
  order, and each point keeps the output of its first patch;
* pre-norm blocks: x + CPE(x), then x + attention(LN(x)), then x + MLP(LN(x));
* a U-Net: an encoder whose stages are joined by pooling and a decoder whose unpooling gives every
  point of the finer level its parent's features plus a projection of the skip features; one
  prediction per input point (segmentation logits).

Substituted, so that everything runs on the meta device with static shapes:

* xCPE (a sparse 3x3x3 submanifold convolution) is replaced by a dense ``Conv1d`` of kernel 3
  along the block's serialization order, then a linear layer and LayerNorm, with a skip: each
  point mixes with its neighbours on the curve rather than its neighbours in the voxel grid;
* grid pooling (merging the points of each 2x coarser voxel, a data-dependent count) is replaced
  by merging every ``pool`` (4) consecutive points of the z-order (max of their projected
  features, mean of their coordinates), so each level holds ceil(N / 4) points; the grid size
  used to serialize a level doubles at every level, as the paper's voxels do;
* the stem is a linear layer (the paper: a sparse convolution); attention goes through
  ``F.scaled_dot_product_attention`` (PyTorch's fused kernels) where the paper uses
  FlashAttention; there is no batch of clouds and no drop path.

The counterfactual (``attention="knn"``) is the same network with Point Transformer V2's
neighbourhood: every point attends to its ``k`` (16) nearest neighbours, found once per level by
brute force (for a chunk of 256 queries, ``|p|^2 - 2 q.p`` to every point as one matrix
product, then top-k), chunked so that memory stays at 256 x N distances. Everything else is
unchanged (the same weights, CPE, pooling and serialization), so the comparison isolates the
attention neighbourhood.

>>> model = build_ptv3("small")
>>> model(torch.rand(2048, 3) * 8, torch.rand(2048, 6)).shape  # doctest: +SKIP
torch.Size([2048, 13])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from effprof.models.inputs import FEATURES, POINTS, InputSpec, TensorSpec
from effprof.models.ptv3_map import ptv3_components
from effprof.models.ptv3_serialization import PATTERNS, KNNQuery, Level, Serialize
from effprof.models.registry import POINTS_OUT, OutputSpec, register_model
from effprof.models.transformer import Mlp

DEFAULT_POINTS = 16384
EXTENT_M = 8.0  # coordinates lie in [0, 8) metres on every axis


@dataclass(frozen=True)
class PTv3Config:
    """Widths and depths per encoder stage / decoder stage (decoder listed fine to coarse)."""

    enc_channels: tuple[int, ...]
    enc_depths: tuple[int, ...]
    enc_heads: tuple[int, ...]
    dec_channels: tuple[int, ...]
    dec_depths: tuple[int, ...]
    dec_heads: tuple[int, ...]
    in_channels: int = 6
    classes: int = 13
    patch: int = 1024
    pool: int = 4
    grid_size_m: float = 0.02
    neighbours: int = 16
    mlp_ratio: int = 4


VARIANTS: dict[str, PTv3Config] = {
    "small": PTv3Config(
        enc_channels=(32, 64, 128, 256), enc_depths=(2, 2, 2, 2), enc_heads=(2, 4, 8, 16),
        dec_channels=(64, 64, 128), dec_depths=(1, 1, 1), dec_heads=(4, 4, 8),
    ),
    # The paper's widths, depths and heads (its ScanNet configuration).
    "base": PTv3Config(
        enc_channels=(32, 64, 128, 256, 512), enc_depths=(2, 2, 2, 6, 2),
        enc_heads=(2, 4, 8, 16, 32), dec_channels=(64, 64, 128, 256), dec_depths=(2, 2, 2, 2),
        dec_heads=(4, 4, 8, 16),
    ),
}  # fmt: skip


# ----------------------------------------------------------------------------- blocks


def patch_layout(points: int, patch: int) -> tuple[int, int]:
    """(patch size, padding) for ``points`` in a serialized order: the patch shrinks to the point
    count when there are fewer points; the padding completes the last patch.

    >>> patch_layout(2500, 1024), patch_layout(300, 1024)
    ((1024, 572), (300, 0))
    """
    size = min(patch, points)
    return size, (-points) % size


class PatchAttention(nn.Module):
    """Multi-head attention within non-overlapping patches of a serialization order."""

    def __init__(self, dim: int, heads: int, patch: int) -> None:
        super().__init__()
        self.heads = heads
        self.patch = patch
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, level: Level, pattern: int) -> Tensor:
        points, dim = x.shape
        size, pad = patch_layout(points, self.patch)
        order = level.orders[pattern]
        if pad:  # the last patch is the last `size` points of the order
            order = torch.cat([order[: points - (size - pad)], order[points - size :]])
        qkv = self.qkv(x)[order].reshape(-1, size, 3, self.heads, dim // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # (patches, heads, size, head dim)
        out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(-1, dim)
        if pad:  # keep each point's first patch
            out = torch.cat([out[: points - (size - pad)], out[out.shape[0] - (size - pad) :]])
        return self.proj(out[level.inverses[pattern]])


class KNNAttention(nn.Module):
    """Multi-head attention of every point over its k nearest neighbours (PTv2's neighbourhood,
    with dot-product attention); the same parameters as :class:`PatchAttention`."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, level: Level, pattern: int) -> Tensor:
        points, dim = x.shape
        assert level.neighbours is not None, "KNN attention needs the level's neighbours"
        q, k, v = self.qkv(x).reshape(points, 3, self.heads, dim // self.heads).unbind(1)
        k = k[level.neighbours].transpose(1, 2)  # (points, heads, k, head dim)
        v = v[level.neighbours].transpose(1, 2)
        out = F.scaled_dot_product_attention(q.unsqueeze(2), k, v)  # one query per point
        return self.proj(out.reshape(points, dim))


class CurveCPE(nn.Module):
    """Conditional positional encoding (xCPE substitute): Conv1d (kernel 3) along the block's
    serialization order, linear, LayerNorm; returns x plus that."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(dim, dim, 3, padding=1)
        self.linear = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor, level: Level, pattern: int) -> Tensor:
        along = x[level.orders[pattern]].T.unsqueeze(0)  # (1, C, N) in curve order
        mixed = self.conv(along).squeeze(0).T[level.inverses[pattern]]
        return x + self.norm(self.linear(mixed))


class Block(nn.Module):
    """Pre-norm block: CPE, attention (patch or KNN), MLP, each with a skip."""

    def __init__(self, dim: int, heads: int, config: PTv3Config, attention: str) -> None:
        super().__init__()
        self.cpe = CurveCPE(dim)
        self.norm1 = nn.LayerNorm(dim)
        self.attn: nn.Module = (
            PatchAttention(dim, heads, config.patch)
            if attention == "patch"
            else KNNAttention(dim, heads)
        )
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, config.mlp_ratio)

    def forward(self, x: Tensor, level: Level, pattern: int) -> Tensor:
        x = self.cpe(x, level, pattern)
        x = x + self.attn(self.norm1(x), level, pattern)
        return x + self.mlp(self.norm2(x))


class Blocks(nn.ModuleList):
    """A stage's blocks; block i uses the order ``level.patterns[i]``."""

    def forward(self, x: Tensor, level: Level) -> Tensor:  # type: ignore[override]
        for index, block in enumerate(self):
            x = block(x, level, level.patterns[index % len(level.patterns)])
        return x


def project(c_in: int, c_out: int) -> nn.Sequential:
    """Linear -> LayerNorm -> GELU (the pooling and unpooling projections)."""
    return nn.Sequential(nn.Linear(c_in, c_out), nn.LayerNorm(c_out), nn.GELU())


class SerialPool(nn.Module):
    """Merge every ``ratio`` consecutive points of the z-order: max of projected features, mean
    of coordinates. Returns the coarse features, coordinates and each fine point's parent."""

    def __init__(self, c_in: int, c_out: int, ratio: int) -> None:
        super().__init__()
        self.ratio = ratio
        self.proj = nn.Linear(c_in, c_out)
        self.norm = nn.LayerNorm(c_out)
        self.act = nn.GELU()

    def forward(self, x: Tensor, level: Level) -> tuple[Tensor, Tensor, Tensor]:
        points = x.shape[0]
        coarse = math.ceil(points / self.ratio)
        slots = torch.arange(coarse * self.ratio, device=x.device).clamp(max=points - 1)
        order = level.orders[0][slots]  # the last point repeats to fill the last group
        pooled = self.proj(x)[order].reshape(coarse, self.ratio, -1).amax(dim=1)
        coords = level.coords[order].reshape(coarse, self.ratio, 3).mean(dim=1)
        parent = torch.div(level.inverses[0], self.ratio, rounding_mode="floor")
        return self.act(self.norm(pooled)), coords, parent


class Unpool(nn.Module):
    """Every fine point gets its parent's projected features plus its projected skip features."""

    def __init__(self, c_coarse: int, c_skip: int, c_out: int) -> None:
        super().__init__()
        self.proj = project(c_coarse, c_out)
        self.proj_skip = project(c_skip, c_out)

    def forward(self, coarse: Tensor, skip: Tensor, parent: Tensor) -> Tensor:
        return self.proj(coarse)[parent] + self.proj_skip(skip)


# ----------------------------------------------------------------------------- network


class EncoderStage(nn.Module):
    """Pool from the level above (except stage 1), serialize the new level, run its blocks."""

    def __init__(self, config: PTv3Config, stage: int, attention: str) -> None:
        super().__init__()
        dim = config.enc_channels[stage]
        self.pool = (
            SerialPool(config.enc_channels[stage - 1], dim, config.pool) if stage > 0 else None
        )
        self.serialize = Serialize(config.grid_size_m * 2**stage)
        self.knn = KNNQuery(config.neighbours) if attention == "knn" else None
        self.blocks = Blocks(
            Block(dim, config.enc_heads[stage], config, attention)
            for _ in range(config.enc_depths[stage])
        )

    def forward(
        self, x: Tensor, source: Tensor | Level, patterns: Sequence[int]
    ) -> tuple[Tensor, Level, Tensor | None]:
        parent = None
        if isinstance(source, Level):
            assert self.pool is not None, "only the first stage starts from coordinates"
            x, coords, parent = self.pool(x, source)
        else:
            coords = source
        level = self.serialize(coords)
        level.patterns = list(patterns)
        if self.knn is not None:
            level.neighbours = self.knn(coords)
        return self.blocks(x, level), level, parent


class DecoderStage(nn.Module):
    """Unpool the coarser features onto level ``stage`` + 1 and run that level's blocks."""

    def __init__(self, config: PTv3Config, stage: int, attention: str) -> None:
        super().__init__()
        last = len(config.enc_channels) - 1
        coarse = config.dec_channels[stage + 1] if stage + 1 < last else config.enc_channels[last]
        dim = config.dec_channels[stage]
        self.unpool = Unpool(coarse, config.enc_channels[stage], dim)
        self.blocks = Blocks(
            Block(dim, config.dec_heads[stage], config, attention)
            for _ in range(config.dec_depths[stage])
        )

    def forward(self, coarse: Tensor, skip: Tensor, parent: Tensor, level: Level) -> Tensor:
        return self.blocks(self.unpool(coarse, skip, parent), level)


class PTv3(nn.Module):
    """``forward(coords (N, 3), feats (N, C_in)) -> (N, classes)`` logits, one row per point.

    ``attention`` is ``"patch"`` (serialized patches, the real network) or ``"knn"`` (the PTv2
    neighbourhood counterfactual).
    """

    def __init__(self, config: PTv3Config, attention: str = "patch") -> None:
        super().__init__()
        if attention not in ("patch", "knn"):
            raise ValueError(f"attention is 'patch' or 'knn', not {attention!r}")
        self.attention = attention
        self.shuffle_orders = True
        self.embed = project(config.in_channels, config.enc_channels[0])
        levels = len(config.enc_channels)
        self.enc = nn.ModuleList(EncoderStage(config, s, attention) for s in range(levels))
        self.dec = nn.ModuleList(DecoderStage(config, s, attention) for s in range(levels - 1))
        self.head = nn.Linear(config.dec_channels[0], config.classes)

    def patterns(self) -> list[int]:
        """Which order each block of a stage uses: in turn, shuffled per forward in training."""
        if self.training and self.shuffle_orders:
            return torch.randperm(len(PATTERNS), device="cpu").tolist()
        return list(range(len(PATTERNS)))

    def forward(self, coords: Tensor, feats: Tensor) -> Tensor:
        patterns = self.patterns()
        x = self.embed(feats)
        source: Tensor | Level = coords
        skips, levels, parents = [], [], []
        for stage in self.enc:
            x, level, parent = stage(x, source, patterns)
            skips.append(x)
            levels.append(level)
            parents.append(parent)
            source = level
        for index in reversed(range(len(self.dec))):
            x = self.dec[index](x, skips[index], parents[index + 1], levels[index])
        return self.head(x)


def build_ptv3(variant: str, attention: str = "patch", **changes: object) -> PTv3:
    """A fresh ptv3 network of ``variant``; ``changes`` override config fields (tests: tiny
    widths or patches)."""
    return PTv3(replace(VARIANTS[variant], **changes), attention)  # type: ignore[arg-type]


def point_inputs(points: int, in_channels: int) -> InputSpec:
    """coords (points x 3) uniform in [0, 8) m and features (points x in_channels) in [0, 1)."""
    return InputSpec(
        (
            TensorSpec((points, 3), high=EXTENT_M, role=POINTS, size_dims=(0,)),
            TensorSpec((points, in_channels), role=FEATURES, size_dims=(0,)),
        )
    )


KNN_ATTENTION = (
    "serialized patch attention: every point attends to its 16 nearest neighbours (PTv2's "
    "neighbourhood; brute-force kNN once per level, in chunks of 256 queries: |p|^2 - 2 q.p as "
    "a matrix product, then top-k) instead of to the up to 1024 points of its patch of "
    "a serialization order; weights, CPE, pooling and serialization are unchanged"
)


@register_model(
    "ptv3",
    variants=tuple(VARIANTS),
    default_variant="small",
    summary="Point Transformer V3-style U-Net: patch attention on serialized points",
    task="point cloud semantic segmentation",
    inputs=lambda variant: point_inputs(DEFAULT_POINTS, VARIANTS[variant or "small"].in_channels),
    outputs=OutputSpec(kind=POINTS_OUT, names=("logits",)),
    components=ptv3_components,
    counterfactuals={"KNN attention": (KNN_ATTENTION, lambda v: build_ptv3(v, "knn"))},
)
def ptv3(variant: str) -> nn.Module:
    """Registered builder: ``effprof profile --model ptv3 --variant base``."""
    return build_ptv3(variant)
