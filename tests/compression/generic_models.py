"""Tiny generic CNNs built from ``transformers`` configs (random weights, no download), importable
as ``tests.compression.generic_models:NAME`` for ``effprof compress --model``."""

from __future__ import annotations

import torch
from torch import nn


def convnext() -> nn.Module:
    """A two-stage ConvNeXt classifier (widths 16, 32; 10 classes): the factory gives no inputs."""
    from transformers import ConvNextConfig, ConvNextForImageClassification

    torch.manual_seed(0)
    config = ConvNextConfig(num_channels=3, hidden_sizes=[16, 32], depths=[1, 1], num_labels=10,
                            patch_size=2, num_stages=2)  # fmt: skip
    return ConvNextForImageClassification(config).eval()


def resnet() -> tuple[nn.Module, torch.Tensor]:
    """A two-stage ResNet classifier (widths 16, 32; 10 classes) and its example input."""
    from transformers import ResNetConfig, ResNetForImageClassification

    torch.manual_seed(0)
    config = ResNetConfig(num_channels=3, embedding_size=16, hidden_sizes=[16, 32], depths=[1, 1],
                          layer_type="basic", num_labels=10)  # fmt: skip
    example = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(7))
    return ResNetForImageClassification(config).eval(), example
