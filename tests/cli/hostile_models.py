"""Models that misbehave in their forward (or the factory's result), importable as
``tests.cli.hostile_models:NAME`` for the hostile-input suite."""

from __future__ import annotations

import sys

import torch
from torch import nn


class _Conv(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)


class ExitsInForward(_Conv):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sys.exit(3)


class ExitsOnRealDevices(_Conv):
    """Counts on meta, then calls sys.exit when run on real tensors."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "meta":
            sys.exit(3)
        return self.conv(x)


class InterruptsInForward(_Conv):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise KeyboardInterrupt


class InterruptsOnRealDevices(_Conv):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "meta":
            raise KeyboardInterrupt
        return self.conv(x)


class ColourfulError(_Conv):
    """Raises a library-style error: terminal colours and a many-line dump."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError(
            "\x1b[31mFailed\x1b[0m in \x1b[96mstep 2/3\x1b[0m\n"
            + "\n".join(f"  frame {i}: somewhere.py:{i}" for i in range(80))
        )


def exits_in_forward() -> nn.Module:
    return ExitsInForward()


def exits_on_real_devices() -> nn.Module:
    return ExitsOnRealDevices()


def interrupts_in_forward() -> nn.Module:
    return InterruptsInForward()


def interrupts_on_real_devices() -> nn.Module:
    return InterruptsOnRealDevices()


def colourful_error() -> nn.Module:
    return ColourfulError()
