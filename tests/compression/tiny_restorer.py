"""A tiny residual restorer importable as ``tests.compression.tiny_restorer:restorer`` (fast pipelines)."""

from __future__ import annotations

import torch
from torch import nn


class TinyRestorer(nn.Module):
    """x + tail(act(body(act(head(x))))): 3 -> 32 -> 32 -> 3 channels, one PReLU shared twice."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Conv2d(3, 32, 3, padding=1)
        self.body = nn.Conv2d(32, 32, 3, padding=1)
        self.tail = nn.Conv2d(32, 3, 3, padding=1)
        self.act = nn.PReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.tail(self.act(self.body(self.act(self.head(x)))))


def restorer() -> nn.Module:
    """A TinyRestorer with small output weights, so it starts close to the identity."""
    model = TinyRestorer()
    with torch.no_grad():
        model.tail.weight.mul_(0.1)
    return model


class Block(nn.Module):
    """x + conv(act(conv(x))) at one width."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=1)
        self.act = nn.ReLU()
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.act(self.conv1(x)))


class TinyBlocks(nn.Module):
    """A residual trunk of 16 channels (two blocks), a 24-channel side branch, an RGB residual:
    four prunable groups (trunk, two block hiddens, the branch) and two feature points."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Conv2d(3, 16, 3, padding=1)
        self.blocks = nn.Sequential(Block(16), Block(16))
        self.branch = nn.Conv2d(16, 24, 1)
        self.merge = nn.Conv2d(24, 16, 1)
        self.tail = nn.Conv2d(16, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        trunk = self.blocks(self.head(x))
        trunk = trunk + self.merge(torch.relu(self.branch(trunk)))
        return x + 0.1 * self.tail(trunk)


def blocks() -> nn.Module:
    """A seeded TinyBlocks."""
    torch.manual_seed(0)
    return TinyBlocks()
