"""Tiny models importable as ``tests.cli.tiny_models:NAME`` for end-to-end CLI tests."""

from __future__ import annotations

import torch
from torch import nn


def tiny() -> nn.Module:
    """conv 3->8 (3x3, bias), ReLU, conv 8->3: 64x64 input -> 64x64 output."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3, 3, padding=1))


class OutOfMemoryOnRealDevices(nn.Module):
    """Counts fine on the meta device, raises an out-of-memory error when really run."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "meta":
            raise RuntimeError(
                "DefaultCPUAllocator: not enough memory: you tried to allocate 1 TiB (out of memory)"
            )
        return self.conv(x)


def oom() -> nn.Module:
    return OutOfMemoryOnRealDevices()


def not_a_module() -> int:
    return 3


def nan_weights() -> nn.Module:
    """``tiny`` with one NaN weight in its second convolution: output channel 0 is all NaN."""
    model = tiny()
    with torch.no_grad():
        model[2].weight[0, 0, 0, 0] = float("nan")
    return model


def raises() -> nn.Module:
    raise RuntimeError("the factory itself is broken")


def needs_argument(width: int) -> nn.Module:
    return nn.Conv2d(3, width, 1)


def exits() -> nn.Module:
    raise SystemExit(0)
