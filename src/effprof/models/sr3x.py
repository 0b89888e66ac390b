"""sr3x: a compact 3x super-resolution CNN that computes at low resolution and upsamples last.

Written here from the ESPCN (Shi et al., CVPR 2016, "efficient sub-pixel convolution") and EDSR
(Lim et al., CVPRW 2017) descriptions: a shallow 3x3 conv, a body of residual blocks (conv ->
ReLU -> conv, plus the identity; no batch norm) closed by a conv and a long skip, and a
reconstruction conv that predicts the 3 x 3 x 3 = 27 sub-pixel values of every low-resolution
position, which one ``nn.PixelShuffle(3)`` rearranges into the 3x larger image. Every conv runs
on the low-resolution input grid; only the shuffle (a copy, no arithmetic) writes the output grid.

The counterfactual ``upsample_first=True`` is the pre-upsampling design of SRCNN and VDSR: the
input is bicubic-upsampled 3x first and the same shallow conv and body run on the 9x larger grid,
with a reconstruction conv to 3 channels. Its shallow and body convs cost exactly 9x; its
reconstruction conv costs the same as the real one (27 output channels at the low-resolution grid
and 3 output channels at the 9x grid are equal work), so the whole network costs a little under
9x the MACs.

>>> build_sr3x("small")(torch.rand(1, 3, 8, 8)).shape  # doctest: +SKIP
torch.Size([1, 3, 24, 24])
"""

from __future__ import annotations

from functools import partial

import torch.nn.functional as F
from torch import Tensor, nn

from effprof.models.registry import IMAGE_OUT, ComponentMap, OutputSpec, register_model

SCALE = 3
VARIANTS: dict[str, tuple[int, int]] = {
    # variant: (width, residual blocks)
    "small": (32, 4),
    "base": (64, 8),
}
LOW_RES = "input grid (low resolution)"
HIGH_RES = "output grid (3x per side)"
PARTS = ("upsampler", "shallow features", "body", "reconstruction")
# Module -> (grid its output lives on in the real network, part).
_LABELS: dict[str, tuple[str, str]] = {
    "shallow": (LOW_RES, "shallow features"),
    "body": (LOW_RES, "body"),
    "reconstruct": (LOW_RES, "reconstruction"),
    "upsample": (HIGH_RES, "upsampler"),
}


def conv3x3(c_in: int, c_out: int) -> nn.Conv2d:
    """3x3 convolution with bias and "same" padding."""
    return nn.Conv2d(c_in, c_out, 3, padding=1)


class ResBlock(nn.Module):
    """conv3x3 -> ReLU -> conv3x3, plus the identity (EDSR's block without batch norm)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv3x3(width, width), nn.ReLU(), conv3x3(width, width))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class Body(nn.Module):
    """``blocks`` residual blocks and a closing conv, around a long skip connection."""

    def __init__(self, width: int, blocks: int) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*(ResBlock(width) for _ in range(blocks)))
        self.conv = conv3x3(width, width)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(self.blocks(x))


class Bicubic(nn.Module):
    """Bicubic upsampling by an integer factor (the pre-upsampling counterfactual's first step)."""

    def __init__(self, factor: int) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: Tensor) -> Tensor:
        return F.interpolate(x, scale_factor=self.factor, mode="bicubic", align_corners=False)

    def extra_repr(self) -> str:
        return f"factor={self.factor}"


class SR3x(nn.Module):
    """Shallow conv, residual body, reconstruction conv; upsampling last (sub-pixel conv) or, with
    ``upsample_first``, a bicubic upsampling before everything else."""

    def __init__(self, width: int, blocks: int, upsample_first: bool = False) -> None:
        super().__init__()
        self.upsample_first = upsample_first
        self.shallow = conv3x3(3, width)
        self.body = Body(width, blocks)
        if upsample_first:
            self.upsample: nn.Module = Bicubic(SCALE)
            self.reconstruct = conv3x3(width, 3)
        else:
            self.reconstruct = conv3x3(width, 3 * SCALE * SCALE)
            self.upsample = nn.PixelShuffle(SCALE)

    def forward(self, x: Tensor) -> Tensor:
        if self.upsample_first:
            x = self.upsample(x)
        y = self.reconstruct(self.body(self.shallow(x)))
        return y if self.upsample_first else self.upsample(y)


def build_sr3x(variant: str, upsample_first: bool = False) -> SR3x:
    """A fresh sr3x network of ``variant`` (``small``: 32 wide, 4 blocks; ``base``: 64, 8)."""
    width, blocks = VARIANTS[variant]
    return SR3x(width, blocks, upsample_first=upsample_first)


def sr3x_labels(path: str) -> dict[str, str]:
    """Grid and part of the sr3x module at ``path`` (the real network's layout); ``{}`` if unknown.

    >>> sr3x_labels("body.blocks.2.body.0"), sr3x_labels("upsample")
    ({'scale': 'input grid (low resolution)', 'part': 'body'}, \
{'scale': 'output grid (3x per side)', 'part': 'upsampler'})
    """
    labels = _LABELS.get(path.split(".")[0])
    return {"scale": labels[0], "part": labels[1]} if labels else {}


sr3x_components = ComponentMap(
    sr3x_labels,
    {"scale": (LOW_RES, HIGH_RES), "part": PARTS},
    notes={
        "scale": (
            "The grid each module writes: every conv runs on the input grid; only the "
            "PixelShuffle writes the 3x output grid."
        ),
        "part": (
            "Shallow features: one 3x3 conv; body: the residual blocks, a closing conv and the "
            "long skip; reconstruction: the conv to 27 = 3 x 3 x 3 sub-pixel channels; upsampler: "
            "PixelShuffle(3), a copy without arithmetic."
        ),
    },
)

PRE_UPSAMPLING = (
    "upsampling last: the same shallow conv and residual body run on the input bicubic-upsampled "
    "3x first (SRCNN/VDSR-style pre-upsampling), so each of their convs sees 9x the pixels and "
    "costs 9x; the reconstruction conv then predicts 3 channels per output pixel instead of 27 "
    "per input pixel, the same MACs, so the whole network costs a little under 9x"
)


@register_model(
    "sr3x",
    variants=tuple(VARIANTS),
    default_variant="small",
    summary="compact 3x super-resolution CNN, upsampling last with one PixelShuffle(3)",
    task="single-image 3x super-resolution",
    outputs=OutputSpec(kind=IMAGE_OUT, names=("image_3x",)),
    components=sr3x_components,
    counterfactuals={
        "bicubic-upsampled input": (
            PRE_UPSAMPLING,
            partial(build_sr3x, upsample_first=True),
        )
    },
)
def sr3x(variant: str) -> nn.Module:
    """Registered builder: ``effprof profile --model sr3x --variant base``."""
    return build_sr3x(variant)
