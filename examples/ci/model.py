"""The model this example's CI guards: a small image-restoration CNN (residual, 3 -> 3 channels).

In your repository this is your own factory; ``effprof count --model examples/ci/model.py:build``
imports it as a file, no package needed. ``WIDTH`` is the knob a pull request might turn.
"""

from __future__ import annotations

from torch import nn

WIDTH = 16


class Restorer(nn.Module):
    """conv 3->W, two conv W->W with ReLU, conv W->3, plus the input (a residual)."""

    def __init__(self, width: int = WIDTH) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, 3, 3, padding=1),
        )  # fmt: skip

    def forward(self, x):
        return x + self.body(x)


def build() -> nn.Module:
    """The model at its current width."""
    return Restorer()
