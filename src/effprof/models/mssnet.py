"""MSSNet: Multi-Scale-Stage Network for single-image deblurring (Kim, Lee, Cho, ECCVW 2022).

Three scales, six U-Net stages:

* scale 1 sees the half-size image, pixel-unshuffled to 12 channels at 1/4 resolution: stage 1;
* scale 2 sees the full image pixel-unshuffled to 12 channels at 1/2 resolution: stages 2.1, 2.2;
* scale 3 sees the full image at full resolution: stages 3.1, 3.2, 3.3.

Each stage is a three-level U-Net of residual blocks (widths ``wf``, ``wf+scale``,
``wf+scale+vscale``); later stages receive the previous stage's encoder and decoder features
through 1x1 "cross-stage feature fusion" convolutions, and each scale starts from its own shallow
features fused with the upsampled decoder output of the scale below. All convolutions are
bias-free and one PReLU (a single parameter) is shared by every residual block, as in the official
code. Module names equal the official ``DeblurNet`` so its checkpoints load unchanged.

Two switches exist only for counterfactual counting (never for checkpoints):
``pixel_unshuffle=False`` runs scales 1 and 2 on 3-channel images at their own image size, and
``multiscale=False`` feeds the full-size image to scale 1 as well (a single-scale network).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from effprof.models.mssnet_map import mssnet_components, mssnet_counterfactuals
from effprof.models.peers import DEBLURRING_PEERS
from effprof.models.registry import IMAGE_OUT, OutputSpec, ReferenceCount, register_model

VARIANT_WIDTHS: dict[str, tuple[int, int, int]] = {
    # variant: (wf, scale, vscale) = level-1 width and the two width increments of the U-Net.
    "small": (20, 40, 40),
    "base": (54, 42, 42),
    "large": (80, 50, 50),
}
# Counts of the official code at 1x3x256x256, training graph (all six outputs), from
# ../shared/reference/mssnet-layout.json; the cross-check explains how ours differ.
OFFICIAL_COUNTS_256: dict[str, dict[str, int]] = {
    "small": {"flop_counter": 82_003_681_280, "fvcore": 41_123_176_448},
    "base": {"flop_counter": 289_769_078_784, "fvcore": 145_099_284_480},
    "large": {"flop_counter": 577_553_223_680, "fvcore": 289_073_819_648},
}
OUTPUT_NAMES = ("res1_1", "res2_1", "res2_2", "res3_1", "res3_2", "res3_3")
INPUT_MULTIPLE = 16  # half-size input, unshuffle by 2, two 2x downsamplings in each U-Net


def conv3x3(c_in: int, c_out: int) -> nn.Conv2d:
    """Bias-free 3x3 convolution with "same" padding."""
    return nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)


def conv1x1(c_in: int, c_out: int) -> nn.Conv2d:
    """Bias-free 1x1 convolution."""
    return nn.Conv2d(c_in, c_out, 1, bias=False)


class Resize(nn.Module):
    """Bilinear resize by a fixed factor; a factor of 1 is the identity (used by counterfactuals)."""

    def __init__(self, factor: float, align_corners: bool = False) -> None:
        super().__init__()
        self.factor = factor
        self.align_corners = align_corners

    def forward(self, x: Tensor) -> Tensor:
        if self.factor == 1:
            return x
        return F.interpolate(
            x, scale_factor=self.factor, mode="bilinear", align_corners=self.align_corners
        )

    def extra_repr(self) -> str:
        return f"factor={self.factor}, align_corners={self.align_corners}"


class ResBlock(nn.Module):
    """conv3x3 -> PReLU -> conv3x3, plus the identity."""

    def __init__(self, width: int, act: nn.Module) -> None:
        super().__init__()
        self.body = nn.Sequential(conv3x3(width, width), act, conv3x3(width, width))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


def res_blocks(width: int, act: nn.Module, count: int = 2) -> nn.Sequential:
    """``count`` residual blocks in a row."""
    return nn.Sequential(*(ResBlock(width, act) for _ in range(count)))


class ResizeConv(nn.Module):
    """Resize, then a 1x1 convolution that changes the width (``down``/``up``/``scaleUp`` in the
    official names, hence the attribute name is chosen by the caller)."""

    def __init__(self, attr: str, factor: float, c_in: int, c_out: int) -> None:
        super().__init__()
        self.attr = attr
        self.add_module(attr, nn.Sequential(Resize(factor), conv1x1(c_in, c_out)))

    def forward(self, x: Tensor) -> Tensor:
        return self.get_submodule(self.attr)(x)


class SkipUp(ResizeConv):
    """Upsample 2x, 1x1 conv to the narrower width, add the (attended) skip connection."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__("up", 2.0, c_in, c_out)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:  # type: ignore[override]
        return self.up(x) + skip


@dataclass(frozen=True)
class Widths:
    """The three U-Net level widths: level1 = wf, level2 = wf+scale, level3 = wf+scale+vscale."""

    wf: int
    scale: int
    vscale: int

    @property
    def levels(self) -> tuple[int, int, int]:
        return self.wf, self.wf + self.scale, self.wf + self.scale + self.vscale


class UNetEncoder(nn.Module):
    """Three levels of two ResBlocks, 2x bilinear downsampling between levels; with ``fuse=True``
    each level adds 1x1-projected encoder and decoder features of the previous stage."""

    def __init__(self, widths: Widths, act: nn.Module, fuse: bool) -> None:
        super().__init__()
        w1, w2, w3 = widths.levels
        self.fuse = fuse
        self.encoder_level1 = res_blocks(w1, act)
        self.encoder_level2 = res_blocks(w2, act)
        self.encoder_level3 = res_blocks(w3, act)
        self.down12 = ResizeConv("down", 0.5, w1, w2)
        self.down23 = ResizeConv("down", 0.5, w2, w3)
        if fuse:
            self.csff_enc1, self.csff_enc2, self.csff_enc3 = (conv1x1(w, w) for w in (w1, w2, w3))
            self.csff_dec1, self.csff_dec2, self.csff_dec3 = (conv1x1(w, w) for w in (w1, w2, w3))

    def _fused(
        self, level: int, x: Tensor, prev: tuple[list[Tensor], list[Tensor]] | None
    ) -> Tensor:
        if prev is None:
            return x
        enc, dec = prev
        from_enc = getattr(self, f"csff_enc{level}")(enc[level - 1])
        from_dec = getattr(self, f"csff_dec{level}")(dec[level - 1])
        return x + from_enc + from_dec

    def forward(
        self, x: Tensor, prev: tuple[list[Tensor], list[Tensor]] | None = None
    ) -> list[Tensor]:
        if self.fuse != (prev is not None):
            raise ValueError("a fusing encoder needs the previous stage's features, and only it")
        e1 = self._fused(1, self.encoder_level1(x), prev)
        e2 = self._fused(2, self.encoder_level2(self.down12(e1)), prev)
        e3 = self._fused(3, self.encoder_level3(self.down23(e2)), prev)
        return [e1, e2, e3]


class UNetDecoder(nn.Module):
    """Coarse-to-fine: two ResBlocks per level, 2x upsampling joined by ResBlock-filtered skips."""

    def __init__(self, widths: Widths, act: nn.Module) -> None:
        super().__init__()
        w1, w2, w3 = widths.levels
        self.decoder_level1 = res_blocks(w1, act)
        self.decoder_level2 = res_blocks(w2, act)
        self.decoder_level3 = res_blocks(w3, act)
        self.skip_attn1 = ResBlock(w1, act)
        self.skip_attn2 = ResBlock(w2, act)
        self.up32 = SkipUp(w3, w2)
        self.up21 = SkipUp(w2, w1)

    def forward(self, enc: list[Tensor]) -> list[Tensor]:
        e1, e2, e3 = enc
        d3 = self.decoder_level3(e3)
        d2 = self.decoder_level2(self.up32(d3, self.skip_attn2(e2)))
        d1 = self.decoder_level1(self.up21(d2, self.skip_attn1(e1)))
        return [d1, d2, d3]


class Tail(nn.Module):
    """3x3 conv to ``c_out`` channels, then pixel-shuffle by ``shuffle`` (1 = none)."""

    def __init__(self, c_in: int, c_out: int, shuffle: int) -> None:
        super().__init__()
        self.tail = conv3x3(c_in, c_out)
        self.shuffle = shuffle

    def forward(self, x: Tensor) -> Tensor:
        y = self.tail(x)
        return F.pixel_shuffle(y, self.shuffle) if self.shuffle > 1 else y


class MSSNet(nn.Module):
    """The full network; ``forward(x)`` returns the deblurred image, ``all_outputs=True`` all six."""

    def __init__(
        self,
        widths: Widths,
        *,
        pixel_unshuffle: bool = True,
        multiscale: bool = True,
    ) -> None:
        super().__init__()
        self.widths = widths
        self.pixel_unshuffle = pixel_unshuffle
        self.multiscale = multiscale
        wf = widths.wf
        act = nn.PReLU()  # one instance, one parameter, shared by every ResBlock (as officially)
        k = 2 if pixel_unshuffle else 1
        c_low = 3 * k * k  # channels seen by scales 1 and 2: 12 with pixel-unshuffle
        # Feature resolution of each scale relative to the input image.
        res1 = (0.5 if multiscale else 1.0) / k
        res2 = 1.0 / k
        self.stage_resize = (res2 / res1, 1.0 / res2)  # scale1->2 and scale2->3 factors

        self.shallow_feat1 = nn.Sequential(conv3x3(c_low, wf), ResBlock(wf, act))
        self.E1_1 = UNetEncoder(widths, act, fuse=False)
        self.D1_1 = UNetDecoder(widths, act)
        self.tail1_1 = Tail(wf, c_low, k)

        self.shallow_feat2 = nn.Sequential(conv3x3(c_low, wf), ResBlock(wf, act))
        self.up_scale1_feat = ResizeConv("scaleUp", self.stage_resize[0], wf, wf)
        self.fusion12 = conv3x3(2 * wf, wf)
        self.E2_1 = UNetEncoder(widths, act, fuse=True)
        self.D2_1 = UNetDecoder(widths, act)
        self.E2_2 = UNetEncoder(widths, act, fuse=True)
        self.D2_2 = UNetDecoder(widths, act)
        self.tail2_1 = Tail(wf, c_low, k)
        self.tail2_2 = Tail(wf, c_low, k)

        self.shallow_feat3 = nn.Sequential(conv3x3(3, wf), ResBlock(wf, act))
        self.up_scale2_feat = ResizeConv("scaleUp", self.stage_resize[1], wf, wf)
        self.fusion23 = conv3x3(2 * wf, wf)
        self.E3_1 = UNetEncoder(widths, act, fuse=True)
        self.D3_1 = UNetDecoder(widths, act)
        self.E3_2 = UNetEncoder(widths, act, fuse=True)
        self.D3_2 = UNetDecoder(widths, act)
        self.E3_3 = UNetEncoder(widths, act, fuse=True)
        self.D3_3 = UNetDecoder(widths, act)
        self.tail3_1 = conv3x3(wf, 3)
        self.tail3_2 = conv3x3(wf, 3)
        self.tail3_3 = conv3x3(wf, 3)

    def _unshuffle(self, x: Tensor) -> Tensor:
        return F.pixel_unshuffle(x, 2) if self.pixel_unshuffle else x

    @staticmethod
    def _resize_all(
        feats: tuple[list[Tensor], list[Tensor]], factor: float
    ) -> tuple[list[Tensor], list[Tensor]]:
        """Carry a stage's encoder and decoder features to the next scale's resolution."""
        if factor == 1:
            return feats
        enc, dec = feats
        up = [
            F.interpolate(f, scale_factor=factor, mode="bilinear", align_corners=False)
            for f in enc + dec
        ]
        return up[: len(enc)], up[len(enc) :]

    def _stage(
        self, enc: UNetEncoder, dec: UNetDecoder, x: Tensor, prev
    ) -> tuple[list[Tensor], list[Tensor]]:
        e = enc(x, prev)
        return e, dec(e)

    def forward(self, x: Tensor, all_outputs: bool = False) -> Tensor | list[Tensor]:
        if x.shape[-2] % INPUT_MULTIPLE or x.shape[-1] % INPUT_MULTIPLE:
            raise ValueError(
                f"MSSNet needs H and W divisible by {INPUT_MULTIPLE}, got {tuple(x.shape[-2:])}; "
                "use effprof.models.PadToMultiple"
            )
        # Scale 1: half-size image (bilinear, align_corners=True as in the official code).
        half = (
            F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=True)
            if self.multiscale
            else x
        )
        s1 = self._stage(self.E1_1, self.D1_1, self.shallow_feat1(self._unshuffle(half)), None)

        # Scale 2: two stages on the unshuffled full image, fused with scale 1's decoder output.
        feat2 = torch.cat(
            [self.shallow_feat2(self._unshuffle(x)), self.up_scale1_feat(s1[1][0])], 1
        )
        s2_1 = self._stage(
            self.E2_1, self.D2_1, self.fusion12(feat2), self._resize_all(s1, self.stage_resize[0])
        )
        s2_2 = self._stage(self.E2_2, self.D2_2, s2_1[1][0], s2_1)

        # Scale 3: three stages at full resolution.
        feat3 = torch.cat([self.shallow_feat3(x), self.up_scale2_feat(s2_2[1][0])], 1)
        s3_1 = self._stage(
            self.E3_1, self.D3_1, self.fusion23(feat3), self._resize_all(s2_2, self.stage_resize[1])
        )
        s3_2 = self._stage(self.E3_2, self.D3_2, s3_1[1][0], s3_1)
        s3_3 = self._stage(self.E3_3, self.D3_3, s3_2[1][0], s3_2)

        final = self.tail3_3(s3_3[1][0]) + x
        if not all_outputs:
            return final
        return [
            self.tail1_1(s1[1][0]) + half,
            self.tail2_1(s2_1[1][0]) + x,
            self.tail2_2(s2_2[1][0]) + x,
            self.tail3_1(s3_1[1][0]) + x,
            self.tail3_2(s3_2[1][0]) + x,
            final,
        ]


def build_mssnet(variant: str, *, pixel_unshuffle: bool = True, multiscale: bool = True) -> MSSNet:
    """An MSSNet of the named width variant (small / base / large)."""
    return MSSNet(
        Widths(*VARIANT_WIDTHS[variant]), pixel_unshuffle=pixel_unshuffle, multiscale=multiscale
    )


def _official_references() -> dict[str, tuple[ReferenceCount, ...]]:
    """The official code's counts at 1x3x256x256 (training graph, all six outputs) per variant."""
    shape, kwargs = (1, 3, 256, 256), {"all_outputs": True}
    return {
        variant: (
            ReferenceCount("official code, FlopCounterMode, all six outputs", "FlopCounterMode",
                           counts["flop_counter"], shape, kwargs),
            ReferenceCount("official code, fvcore, all six outputs", "fvcore", counts["fvcore"],
                           shape, kwargs),
        )
        for variant, counts in OFFICIAL_COUNTS_256.items()
    }  # fmt: skip


def zero_tails(model: nn.Module) -> int:
    """Zero every convolution of MSSNet's output heads (the ``tail*`` modules): each stage adds
    its head's output to its input, so the network then returns its input unchanged (training
    from scratch starts from the identity). Returns how many convolutions were zeroed."""
    zeroed = 0
    for name, module in model.named_modules():
        if name.split(".")[0].startswith("tail") and isinstance(module, nn.Conv2d):
            nn.init.zeros_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
            zeroed += 1
    return zeroed


@register_model(
    "mssnet",
    variants=tuple(VARIANT_WIDTHS),
    default_variant="small",
    summary="MSSNet multi-scale-stage deblurring network (Kim et al., ECCVW 2022)",
    task="single-image deblurring",
    input_multiple=INPUT_MULTIPLE,
    outputs=OutputSpec(
        kind=IMAGE_OUT, names=OUTPUT_NAMES[-1:], all_kwargs={"all_outputs": True},
        all_names=OUTPUT_NAMES,
    ),
    shipped_weights={
        "synthetic": {"small": "mssnet-small-synthetic.pt"},
        "synthetic-cpu": {"small": "mssnet-small-synthetic-cpu.pt"},
    },
    default_weights="synthetic",  # the subject is profiled with its trained weights
    components=mssnet_components,
    counterfactuals=mssnet_counterfactuals(build_mssnet),
    reference_counts=_official_references(),
    peers=DEBLURRING_PEERS,
    start_as_identity=zero_tails,
)  # fmt: skip
def mssnet(variant: str) -> nn.Module:
    """Registered builder: ``effprof profile --model mssnet --variant base``."""
    return build_mssnet(variant)
