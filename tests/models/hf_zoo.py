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


# ---------------------------------------------------------------- more families, counted only
# Detection, depth, segmentation, super-resolution, masked autoencoding, pooling-only and token
# models: forwards that read values (masks checked with .all(), DETR's .item()) and ops the first
# eight never call (grid sampling, clipped pooling windows, causal masks).


def _resnet_backbone() -> object:
    import transformers as tf

    return tf.ResNetConfig(
        embedding_size=8, hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 1, 1], layer_type="basic",
        out_features=["stage4"])  # fmt: skip


@_seeded
def detr() -> tuple[nn.Module, torch.Tensor]:
    """DETR with a ResNet backbone built from its config (no timm, nothing pretrained)."""
    import transformers as tf

    model = tf.DetrForObjectDetection(tf.DetrConfig(
        use_timm_backbone=False, use_pretrained_backbone=False, backbone_config=_resnet_backbone(),
        d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, num_queries=5,
        num_labels=3))  # fmt: skip
    return model, torch.rand(1, 3, 64, 64)


@_seeded
def yolos() -> nn.Module:
    """YOLOS: a ViT whose detection tokens ride along the patches."""
    import transformers as tf

    return tf.YolosForObjectDetection(tf.YolosConfig(
        image_size=[IMAGE, IMAGE], patch_size=8, hidden_size=32, num_hidden_layers=2,
        num_attention_heads=2, intermediate_size=64, num_detection_tokens=5, num_labels=3))  # fmt: skip


@_seeded
def dpt() -> nn.Module:
    """DPT depth estimation: a ViT, a reassembling neck and a head returning N x H x W depth."""
    import transformers as tf

    return tf.DPTForDepthEstimation(tf.DPTConfig(
        image_size=IMAGE, patch_size=8, hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
        intermediate_size=64, backbone_out_indices=[0, 1, 2, 3], neck_hidden_sizes=[8, 8, 16, 16],
        fusion_hidden_size=16, head_in_index=-1, reassemble_factors=[4, 2, 1, 0.5]))  # fmt: skip


@_seeded
def glpn() -> tuple[nn.Module, torch.Tensor]:
    """GLPN depth estimation: a SegFormer-style encoder and a light decoder (N x H x W depth)."""
    import transformers as tf

    model = tf.GLPNForDepthEstimation(tf.GLPNConfig(
        num_encoder_blocks=2, depths=[1, 1], sr_ratios=[2, 1], hidden_sizes=[8, 16],
        num_attention_heads=[1, 2], patch_sizes=[7, 3], strides=[4, 2], mlp_ratios=[2, 2],
        decoder_hidden_size=16))  # fmt: skip
    return model, torch.rand(1, 3, 64, 64)


@_seeded
def pvt_v2() -> tuple[nn.Module, torch.Tensor]:
    """PVT v2: overlapping patch embeddings and spatial-reduction attention in stages."""
    import transformers as tf

    model = tf.PvtV2ForImageClassification(tf.PvtV2Config(
        num_encoder_blocks=2, depths=[1, 1], sr_ratios=[2, 1], hidden_sizes=[8, 16],
        num_attention_heads=[1, 2], patch_sizes=[7, 3], strides=[4, 2], mlp_ratios=[2, 2],
        num_labels=10))  # fmt: skip
    return model, torch.rand(1, 3, 64, 64)


@_seeded
def swin2sr() -> tuple[nn.Module, torch.Tensor]:
    """Swin2SR: windowed attention for 2x super-resolution (pads to its window size)."""
    import transformers as tf

    model = tf.Swin2SRForImageSuperResolution(tf.Swin2SRConfig(
        image_size=IMAGE, patch_size=1, embed_dim=16, depths=[1, 1], num_heads=[2, 2],
        window_size=4, upscale=2, upsampler="pixelshuffle"))  # fmt: skip
    return model, torch.rand(1, 3, 16, 16)


@_seeded
def vitmae() -> nn.Module:
    """ViTMAE: random masking of patches (argsort of noise, gather) before the encoder."""
    import transformers as tf

    return tf.ViTMAEForPreTraining(tf.ViTMAEConfig(
        image_size=IMAGE, patch_size=8, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64, decoder_hidden_size=16, decoder_num_hidden_layers=1,
        decoder_num_attention_heads=2, decoder_intermediate_size=32))  # fmt: skip


@_seeded
def poolformer() -> nn.Module:
    """PoolFormer: average pooling (padded, count_include_pad=False) as the token mixer."""
    import transformers as tf

    return tf.PoolFormerForImageClassification(tf.PoolFormerConfig(
        image_size=IMAGE, hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 1, 1], num_labels=10))  # fmt: skip


def _tokens(vocab: int, length: int = 16) -> dict[str, torch.Tensor]:
    mask = torch.ones(1, length, dtype=torch.long)
    mask[0, -3:] = 0  # padding at the end: the mask matters
    return {"input_ids": torch.randint(0, vocab, (1, length)), "attention_mask": mask}


@_seeded
def bert_masked() -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """BERT given token ids and an attention mask (the mask helper calls ``.all()``)."""
    import transformers as tf

    model = tf.BertModel(tf.BertConfig(
        vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64))  # fmt: skip
    return model, _tokens(100)


@_seeded
def gpt2_masked() -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """GPT-2 given token ids and an attention mask: causal attention plus padding."""
    import transformers as tf

    model = tf.GPT2Model(tf.GPT2Config(
        vocab_size=100, n_embd=32, n_layer=2, n_head=2, n_positions=64, bos_token_id=0,
        eos_token_id=0))  # fmt: skip
    return model, _tokens(100)


@_seeded
def efficientnet() -> nn.Module:
    """EfficientNet: squeeze-excitation and a final avg_pool2d whose kernel (its hidden size)
    is larger than the feature map, with ceil_mode."""
    import transformers as tf

    return tf.EfficientNetForImageClassification(tf.EfficientNetConfig(
        image_size=IMAGE, width_coefficient=0.25, depth_coefficient=0.2, hidden_dim=320,
        num_labels=10))  # fmt: skip


@_seeded
def mask2former() -> tuple[nn.Module, torch.Tensor]:
    """Mask2Former with a Swin backbone from config: multi-scale deformable attention samples
    features with grid_sample."""
    import transformers as tf

    backbone = tf.SwinConfig(
        image_size=64, patch_size=4, embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2],
        window_size=4, out_features=["stage1", "stage2", "stage3", "stage4"])  # fmt: skip
    model = tf.Mask2FormerForUniversalSegmentation(tf.Mask2FormerConfig(
        backbone_config=backbone, use_pretrained_backbone=False, feature_size=32, mask_feature_size=32,
        hidden_dim=32, encoder_feedforward_dim=32, dim_feedforward=32, encoder_layers=1,
        decoder_layers=2, num_attention_heads=2, num_queries=5, num_labels=3,
        common_stride=4))  # fmt: skip
    return model, torch.rand(1, 3, 64, 64)


COUNTED = (
    "detr", "yolos", "dpt", "glpn", "pvt_v2", "swin2sr", "vitmae", "poolformer", "bert_masked",
    "gpt2_masked", "efficientnet", "mask2former",
)  # fmt: skip
