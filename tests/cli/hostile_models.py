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


class _Attention(nn.Module):
    """A conv feeding a MultiheadAttention: Torch-Pruning resizes the attention with the conv,
    and a pruned structure cannot rebuild it."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Conv2d(3, 16, 1)
        self.attn = nn.MultiheadAttention(16, 4, batch_first=True)
        self.out = nn.Conv2d(16, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.inp(x)
        b, c, h, w = y.shape
        tokens = y.flatten(2).transpose(1, 2)
        tokens, _ = self.attn(tokens, tokens, tokens)
        return self.out(tokens.transpose(1, 2).reshape(b, c, h, w))


class Svd(_Conv):
    """The ONNX exporter has no decomposition for linalg_svd (a coloured ConversionError)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) * torch.linalg.svdvals(x).mean()


def attention() -> nn.Module:
    torch.manual_seed(0)
    return _Attention()


def svd() -> nn.Module:
    return Svd()


def wide() -> nn.Module:
    """About 150 KiB of float32 weights: an ONNX file larger than a 64 KiB TMPDIR."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 64, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(64, 64, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(64, 3, 3, padding=1),
    )


class FailsOnRealDevices(_Conv):
    """Counts on meta, then raises a library-style error on real tensors."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "meta":
            raise ValueError("\x1b[31mcannot run\x1b[0m on real data\n  at frame 1\n  at frame 2")
        return self.conv(x)


def fails_on_real_devices() -> nn.Module:
    return FailsOnRealDevices()
