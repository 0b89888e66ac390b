"""Tiny models importable as ``tests.runs.tiny_models:NAME`` for sweep and comparison tests."""

from __future__ import annotations

import torch
from torch import nn


def conv() -> nn.Module:
    """conv 3->4 (3x3, no bias), ReLU, conv 4->3 (1x1): 3*4*9 + 4*3 = 120 MACs per pixel, any size."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.ReLU(), nn.Conv2d(4, 3, 1, bias=False)
    )


def head32() -> nn.Module:
    """conv 3->2 (1x1) then a linear layer over a 2x32x32 map: refuses any input but 32x32."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 2, 1, bias=False), nn.Flatten(), nn.Linear(2 * 32 * 32, 4))
