"""A tiny residual restorer importable as ``tests.compress.tiny_restorer:restorer`` (fast pipelines)."""

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
