"""Models for the sentence audit that the other test zoos do not hold: a Swin backbone (its
tokens merge from stage to stage, so the output's token count is not the first stage's) and the
source of a user's classifier CNN in a file (written to a temporary folder by the test)."""

from __future__ import annotations

import torch
from torch import nn

CLASSIFIER_FILE = '''
import torch
from torch import nn


def make():
    """A small classifier CNN, as a user writes one, with its example input."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 32, 3, stride=2, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10),
    )
    return model, torch.randn(1, 3, 32, 32)
'''


def swin_backbone() -> nn.Module:
    """Swin without its head: it returns its last stage's tokens (1 x 16 x 32 at 32x32, where
    its first stage works on 64 tokens)."""
    import transformers as tf

    torch.manual_seed(0)
    return tf.SwinModel(tf.SwinConfig(
        image_size=32, patch_size=4, embed_dim=16, depths=[1, 1], num_heads=[1, 2],
        window_size=4))  # fmt: skip
