"""Reflect-padding inputs to the size a network needs, and cropping its outputs back."""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn


def padded_size(height: int, width: int, multiple: int) -> tuple[int, int]:
    """The smallest (H, W) >= the given one with both divisible by ``multiple``.

    >>> padded_size(250, 720, 16)
    (256, 720)
    """
    return math.ceil(height / multiple) * multiple, math.ceil(width / multiple) * multiple


def pad_to_multiple(x: Tensor, multiple: int) -> tuple[Tensor, tuple[int, int]]:
    """Reflect-pad the bottom and right of ``x`` (N, C, H, W); return it and the original (H, W)."""
    height, width = x.shape[-2:]
    ph, pw = padded_size(height, width, multiple)
    if (ph, pw) == (height, width):
        return x, (height, width)
    # Reflect padding needs pad < size; fall back to replicate for tiny images.
    mode = "reflect" if ph - height < height and pw - width < width else "replicate"
    return F.pad(x, (0, pw - width, 0, ph - height), mode=mode), (height, width)


def crop_to(y: Tensor, size: tuple[int, int]) -> Tensor:
    """Crop the top-left ``size`` (H, W) of an image tensor."""
    return y[..., : size[0], : size[1]]


class PadToMultiple(nn.Module):
    """Wraps a network: reflect-pads inputs to ``multiple``, runs it, crops every output back.

    Outputs smaller than the input (MSSNet's half-size ``res1_1``) are cropped proportionally.
    """

    def __init__(self, model: nn.Module, multiple: int) -> None:
        super().__init__()
        self.model = model
        self.multiple = multiple
        self.train(model.training)  # a wrapper must not flip an eval model back to train mode

    def forward(self, x: Tensor, *args, **kwargs):
        padded, size = pad_to_multiple(x, self.multiple)
        out = self.model(padded, *args, **kwargs)
        if padded is x:
            return out

        def crop(t: Tensor) -> Tensor:
            ratio = t.shape[-1] / padded.shape[-1]
            return crop_to(t, (round(size[0] * ratio), round(size[1] * ratio)))

        return [crop(t) for t in out] if isinstance(out, (list, tuple)) else crop(out)
