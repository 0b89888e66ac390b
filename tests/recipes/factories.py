"""Tiny model factories for compress at the inputs they give: ``tests.recipes.factories:NAME``."""

from __future__ import annotations

import torch
from torch import nn


def nonsquare() -> tuple[nn.Module, torch.Tensor]:
    """A two-convolution classifier (10 classes) and its 1x3x24x40 example image."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10),
    )  # fmt: skip
    return model.eval(), torch.randn(1, 3, 24, 40, generator=torch.Generator().manual_seed(1))


def features() -> tuple[nn.Module, torch.Tensor]:
    """An MLP on a batch of two 17-feature rows (not an image)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(17, 32), nn.ReLU(), nn.Linear(32, 5))
    return model.eval(), torch.randn(2, 17, generator=torch.Generator().manual_seed(2))
