"""A zoo of tiny models for counting tests: the cases other counters get wrong.

Each model is small enough that its MACs, FLOPs and bytes can be worked out by hand in a comment
of the test that uses it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class Chain(nn.Sequential):
    """conv 3->4 (3x3, same) -> ReLU -> conv 4->2 (1x1); no biases: the activation-peak case."""

    def __init__(self) -> None:
        super().__init__(
            nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.ReLU(), nn.Conv2d(4, 2, 1, bias=False)
        )


class Block(nn.Module):
    """conv -> (shared) activation -> conv, plus the identity (an MSSNet ResBlock in miniature)."""

    def __init__(self, width: int, act: nn.Module) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.act = act
        self.conv2 = nn.Conv2d(width, width, 3, padding=1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(self.act(self.conv1(x)))


class SharedActivation(nn.Module):
    """Two blocks and one PReLU instance registered under both (and called by both)."""

    def __init__(self, width: int = 4) -> None:
        super().__init__()
        act = nn.PReLU()
        self.block1 = Block(width, act)
        self.block2 = Block(width, act)

    def forward(self, x: Tensor) -> Tensor:
        return self.block2(self.block1(x))


class Upsample(nn.Module):
    """A module whose only work is a functional bilinear resize."""

    def forward(self, x: Tensor) -> Tensor:
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


class Functional(nn.Module):
    """Functional calls in the root's forward (add, cat) and inside a child (interpolate)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 1, bias=False)
        self.up = Upsample()

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv(x) + x
        return torch.cat([self.up(y), self.up(x)], dim=1)


class Shuffle(nn.Module):
    """pixel-unshuffle by 2 then pixel-shuffle by 2: memory only."""

    def forward(self, x: Tensor) -> Tensor:
        return F.pixel_shuffle(F.pixel_unshuffle(x, 2), 2)


class Uncounted(nn.Module):
    """An op effprof has no formula for (singular values, ``aten._linalg_svd``), called twice."""

    def forward(self, x: Tensor) -> Tensor:
        return x + torch.linalg.svdvals(x).sum() + torch.linalg.svdvals(x.transpose(-1, -2)).mean()


class Matmul(nn.Module):
    """A batched matrix product of the input with its transpose."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.matmul(x, x.transpose(-1, -2))


class Heads(nn.Module):
    """Two heads, only one used by ``forward(x)``; ``forward(x, both=True)`` uses both."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.head = nn.Conv2d(4, 3, 1, bias=False)
        self.aux = nn.Conv2d(4, 3, 1, bias=False)

    def forward(self, x: Tensor, both: bool = False) -> Tensor | list[Tensor]:
        f = self.body(x)
        return [self.head(f), self.aux(f)] if both else self.head(f)


def tiny_models() -> dict[str, tuple[nn.Module, tuple[int, ...]]]:
    """Every zoo model with an input shape, for tests that loop over the zoo."""
    return {
        "conv_bias": (nn.Conv2d(3, 8, 3, padding=1, bias=True), (1, 3, 8, 8)),
        "conv": (nn.Conv2d(3, 8, 3, padding=1, bias=False), (1, 3, 8, 8)),
        "grouped": (nn.Conv2d(8, 16, 3, padding=1, groups=4, bias=False), (1, 8, 8, 8)),
        "strided": (nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False), (1, 3, 8, 8)),
        "dilated": (nn.Conv2d(4, 4, 3, padding=2, dilation=2, bias=False), (1, 4, 8, 8)),
        "transposed": (nn.ConvTranspose2d(4, 2, 4, stride=2, padding=1, bias=False), (1, 4, 5, 5)),
        "linear": (nn.Linear(10, 5), (2, 10)),
        "linear3d": (nn.Linear(10, 5), (2, 3, 10)),
        "matmul": (Matmul(), (2, 3, 4)),
        "chain": (Chain(), (1, 3, 8, 8)),
        "shared": (SharedActivation(), (1, 4, 8, 8)),
        "functional": (Functional(), (1, 2, 4, 4)),
        "shuffle": (Shuffle(), (1, 3, 8, 8)),
        "heads": (Heads(), (1, 3, 8, 8)),
    }
