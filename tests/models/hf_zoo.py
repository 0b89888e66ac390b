"""Tiny real architectures from ``transformers`` configs (random weights, no download), importable
as ``tests.models.hf_zoo:NAME`` for ``effprof profile --model``. Each is a few thousand
parameters on 32x32 or 64x64 images, so a whole profile takes seconds."""

from __future__ import annotations

import torch
from torch import nn

IMAGE = 32


def _seeded(build):
    def factory():
        torch.manual_seed(0)
        return build()

    factory.__name__ = build.__name__
    factory.__doc__ = build.__doc__
    return factory


@_seeded
def vit() -> nn.Module:
    """ViT classifier with a fixed 32x32 input (its position table does not interpolate)."""
    import transformers as tf

    return tf.ViTForImageClassification(tf.ViTConfig(
        image_size=IMAGE, patch_size=8, hidden_size=32, num_hidden_layers=2,
        num_attention_heads=2, intermediate_size=64, num_labels=10))  # fmt: skip


@_seeded
def deit() -> nn.Module:
    """DeiT with its distillation token."""
    import transformers as tf

    return tf.DeiTForImageClassificationWithTeacher(tf.DeiTConfig(
        image_size=IMAGE, patch_size=8, hidden_size=32, num_hidden_layers=2,
        num_attention_heads=2, intermediate_size=64, num_labels=10))  # fmt: skip


@_seeded
def swin() -> nn.Module:
    """Swin: windowed attention with a relative-position bias table, two stages."""
    import transformers as tf

    return tf.SwinForImageClassification(tf.SwinConfig(
        image_size=IMAGE, patch_size=4, embed_dim=16, depths=[2, 1], num_heads=[1, 2],
        window_size=4, num_labels=10))  # fmt: skip


@_seeded
def convnext() -> nn.Module:
    """ConvNeXt: depthwise 7x7 convs and inverted MLPs in four stages."""
    import transformers as tf

    return tf.ConvNextForImageClassification(tf.ConvNextConfig(
        image_size=IMAGE, hidden_sizes=[8, 16, 24, 32], depths=[1, 2, 1, 1], num_labels=10))  # fmt: skip


@_seeded
def resnet() -> tuple[nn.Module, torch.Tensor]:
    """ResNet with basic blocks in four stages; its config has no image size, so the factory
    returns an example input too."""
    import transformers as tf

    model = tf.ResNetForImageClassification(tf.ResNetConfig(
        embedding_size=8, hidden_sizes=[8, 16, 24, 32], depths=[2, 1, 1, 1], layer_type="basic",
        num_labels=10))  # fmt: skip
    return model, torch.rand(1, 3, IMAGE, IMAGE)


@_seeded
def dinov2() -> nn.Module:
    """DINOv2 backbone: global attention that interpolates its position table (any size)."""
    import transformers as tf

    return tf.Dinov2Model(tf.Dinov2Config(
        image_size=IMAGE, patch_size=8, hidden_size=32, num_hidden_layers=2,
        num_attention_heads=2, mlp_ratio=2))  # fmt: skip


@_seeded
def mobilevit() -> nn.Module:
    """MobileViT: MobileNet blocks with transformer blocks over unfolded patches."""
    import transformers as tf

    return tf.MobileViTForImageClassification(tf.MobileViTConfig(
        image_size=64, hidden_sizes=[16, 24, 32], neck_hidden_sizes=[8, 8, 16, 16, 24, 32, 64],
        num_labels=10))  # fmt: skip


@_seeded
def segformer() -> tuple[nn.Module, torch.Tensor]:
    """SegFormer: efficient attention with reduced keys, and an all-MLP decoder (1/4-resolution
    logits); returns an example input like resnet."""
    import transformers as tf

    model = tf.SegformerForSemanticSegmentation(tf.SegformerConfig(
        num_encoder_blocks=2, depths=[1, 1], sr_ratios=[2, 1], hidden_sizes=[8, 16],
        num_attention_heads=[1, 2], decoder_hidden_size=16, num_labels=5, patch_sizes=[7, 3],
        strides=[4, 2], mlp_ratios=[2, 2]))  # fmt: skip
    return model, torch.rand(1, 3, 64, 64)


MODELS = ("vit", "deit", "swin", "convnext", "resnet", "dinov2", "mobilevit", "segformer")
