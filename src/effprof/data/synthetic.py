"""Seeded synthetic deblurring pairs: crops of scikit-image's bundled images, blurred by random
camera shake, with noise and 8-bit rounding.

``SyntheticBlur`` is a batch source for training: ``source(step)`` returns (blurry, sharp) for
that step, a pure function of (seed, step), so a resumed run sees the batches an uninterrupted
one would. Random numbers come from a CPU generator (crops, kernels, flips) and a generator on
the batch's device (noise): for one seed the batches are identical run after run on one device,
and the kernels and crops are identical across devices.

The held-out test set (``heldout_pairs()``) is fixed: 24 crops of 256x256 from the four test images,
seed 2022, blurred with ``TEST_BLUR``; it never depends on the training recipe.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F
from torch import Tensor

from effprof.data.degrade import add_noise, blur_valid, jpeg, quantize_8bit
from effprof.data.images import split_images
from effprof.data.kernels import (
    KernelSpec,
    path_lengths,
    random_kernels,
    random_trajectories,
    rasterise,
)
from effprof.data.pairs import ImagePair

TEST_SEED = 2022
TEST_COUNT = 24
TEST_SIZE_PX = 256
_MIX = 0x9E3779B97F4A7C15  # golden-ratio constant: spreads (seed, step) over the seed space
_AREA_CAP_PX = 512 * 512  # sampling weight of an image = its area, capped so no image dominates


@dataclass(frozen=True)
class BlurSpec:
    """How a sharp crop is degraded: motion kernel, Gaussian noise with a standard deviation drawn
    uniformly from [0, max_noise_sigma] (in [0, 1] units: 0.01 = 2.55 grey levels), optional JPEG at a
    quality drawn from ``jpeg_quality`` (low, high), and rounding to 8 bits."""

    kernel: KernelSpec = field(default_factory=KernelSpec)
    max_noise_sigma: float = 0.01
    jpeg_quality: tuple[int, int] | None = None
    quantize: bool = True


TEST_BLUR = BlurSpec()


@dataclass(frozen=True)
class SyntheticSpec:
    """A synthetic training stream: ``batch`` crops of ``crop_px`` per step from ``split``.

    ``curriculum_steps`` > 0 ramps the longest blur linearly from ``curriculum_start`` of
    ``blur.kernel.max_length_px`` to all of it over that many steps (short blurs first).
    ``zoom`` (low, high) rescales each sharp crop by a factor drawn log-uniformly from that range
    before it is blurred (antialiased bilinear; > 1 enlarges): enlarged crops are smooth yet sharp,
    which teaches the network not to "deblur" smooth shading into edges. (1, 1) is off.
    """

    split: str = "train"
    crop_px: int = 96
    batch: int = 4
    blur: BlurSpec = field(default_factory=BlurSpec)
    seed: int = 0
    augment: bool = True
    curriculum_steps: int = 0
    curriculum_start: float = 0.35
    zoom: tuple[float, float] = (1.0, 1.0)


def step_generator(seed: int, step: int) -> torch.Generator:
    """The CPU generator for one (seed, step): independent streams for every step of every seed."""
    return torch.Generator().manual_seed((seed * _MIX + step * 1_000_003 + 12345) % (2**63))


def _mirror_pad_to(image: Tensor, height: int, width: int) -> Tensor:
    """Extend an image by mirroring (repeatedly if needed) until it is at least height x width."""
    while image.shape[-2] < height or image.shape[-1] < width:
        pad_h = min(max(height - image.shape[-2], 0), image.shape[-2] - 1)
        pad_w = min(max(width - image.shape[-1], 0), image.shape[-1] - 1)
        image = F.pad(image[None], (0, pad_w, 0, pad_h), mode="reflect")[0]
    return image


def degrade(
    sources: Tensor, kernels: Tensor, blur: BlurSpec, gen: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Blur sources (B, 3, S+K-1, S+K-1) with kernels (B, K, K): returns (blurry, sharp), each (B, 3, S, S)."""
    size = kernels.shape[-1]
    crop = sources.shape[-1] - size + 1
    offset = size // 2  # kernels are centred on their centroid: output pixel n sees source n + K//2
    sharp = sources[..., offset : offset + crop, offset : offset + crop]
    blurry = blur_valid(sources, kernels)
    count = sources.shape[0]
    if blur.max_noise_sigma > 0:
        sigmas = torch.rand(count, generator=gen) * blur.max_noise_sigma
        noise_gen = torch.Generator(device=sources.device).manual_seed(
            int(torch.randint(2**62, (1,), generator=gen))
        )
        blurry = add_noise(blurry, sigmas, noise_gen)
    if blur.quantize or blur.jpeg_quality:
        blurry = quantize_8bit(blurry)
    if blur.jpeg_quality:
        low, high = blur.jpeg_quality
        qualities = torch.randint(low, high + 1, (count,), generator=gen).tolist()
        blurry = jpeg(blurry, qualities)
    return blurry.clamp(0.0, 1.0).contiguous(), sharp.contiguous()


def _cut(
    images: list[Tensor],
    picks: list[int],
    source_px: int,
    gen: torch.Generator,
    augment: bool,
    zoom: tuple[float, float] = (1.0, 1.0),
) -> Tensor:
    """Random source_px squares, one from ``images[pick]`` per pick, optionally rescaled by a
    factor drawn log-uniformly from ``zoom`` and flipped / rotated."""
    crops = []
    log_low, log_high = math.log(zoom[0]), math.log(zoom[1])
    for pick in picks:
        image = images[pick]
        cut_px = source_px
        if zoom != (1.0, 1.0):  # (1, 1) draws nothing: the stream stays that of unzoomed data
            u = float(torch.rand(1, generator=gen)) if log_high > log_low else 0.0
            factor = math.exp(log_low + (log_high - log_low) * u)
            cut_px = min(max(round(source_px / factor), 2), image.shape[-2], image.shape[-1])
        top = int(torch.randint(image.shape[-2] - cut_px + 1, (1,), generator=gen))
        left = int(torch.randint(image.shape[-1] - cut_px + 1, (1,), generator=gen))
        crop = image[:, top : top + cut_px, left : left + cut_px]
        if cut_px != source_px:
            crop = F.interpolate(
                crop[None], size=(source_px, source_px), mode="bilinear", antialias=True
            )[0].clamp(0.0, 1.0)
        if augment:
            flip, turns = (
                torch.randint(2, (1,), generator=gen),
                torch.randint(4, (1,), generator=gen),
            )
            crop = torch.rot90(crop.flip(-1) if int(flip) else crop, int(turns), dims=(-2, -1))
        crops.append(crop)
    return torch.stack(crops)


class SyntheticBlur:
    """A batch source of synthetic pairs: ``source(step) -> (blurry, sharp)``, (B, 3, crop, crop) each.

    >>> source = SyntheticBlur.load(SyntheticSpec(crop_px=64, batch=2), device="cpu")  # doctest: +SKIP
    >>> blurry, sharp = source(0)  # doctest: +SKIP
    """

    def __init__(
        self, spec: SyntheticSpec, images: list[Tensor], weights: Tensor, names: list[str]
    ) -> None:
        self.spec = spec
        self.images = images
        self.weights = weights
        self.names = names

    @classmethod
    def load(cls, spec: SyntheticSpec, device: str | torch.device = "cpu") -> SyntheticBlur:
        """Load the split's images onto ``device`` (mirror-padded where smaller than the largest source)."""
        largest = math.ceil((spec.crop_px + spec.blur.kernel.max_size_px - 1) / min(spec.zoom))
        named = split_images(spec.split)
        images = [_mirror_pad_to(image, largest, largest).to(device) for image in named.values()]
        areas = torch.tensor(
            [min(im.shape[-2] * im.shape[-1], _AREA_CAP_PX) for im in named.values()],
            dtype=torch.float64,
        )
        return cls(spec, images, areas / areas.sum(), list(named))

    def blur_at(self, step: int) -> BlurSpec:
        """The blur used at ``step`` (differs from ``spec.blur`` only during a curriculum)."""
        spec = self.spec
        if spec.curriculum_steps <= 0 or step >= spec.curriculum_steps:
            return spec.blur
        kernel = spec.blur.kernel
        fraction = (
            spec.curriculum_start + (1 - spec.curriculum_start) * step / spec.curriculum_steps
        )
        longest = max(kernel.min_length_px, kernel.max_length_px * fraction)
        return replace(spec.blur, kernel=replace(kernel, max_length_px=longest))

    def __call__(self, step: int) -> tuple[Tensor, Tensor]:
        """The (blurry, sharp) batch of ``step``: deterministic for (seed, step)."""
        gen = step_generator(self.spec.seed, step)
        blur = self.blur_at(step)
        kernels = random_kernels(self.spec.batch, blur.kernel, gen)
        picks = torch.multinomial(
            self.weights, self.spec.batch, replacement=True, generator=gen
        ).tolist()
        source_px = self.spec.crop_px + kernels.shape[-1] - 1
        sources = _cut(self.images, picks, source_px, gen, self.spec.augment, self.spec.zoom)
        return degrade(sources, kernels, blur, gen)


def synthetic_pairs(
    split: str,
    count: int,
    size_px: int,
    seed: int,
    blur: BlurSpec = TEST_BLUR,
) -> list[ImagePair]:
    """``count`` fixed pairs of ``size_px`` squares, cycling over the split's images (on the CPU).

    Pair i comes from image ``i % n_images`` and is named ``<image>-<i>``; no flips or rotations;
    each pair records its exposed blur path length (``blur_px``).
    """
    named = split_images(split)
    names = list(named)
    gen = step_generator(seed, 0)
    points, weights = random_trajectories(count, blur.kernel, gen)  # = random_kernels, with lengths
    kernels, lengths = rasterise(points, weights), path_lengths(points, weights)
    source_px = size_px + kernels.shape[-1] - 1
    images = [_mirror_pad_to(image, source_px, source_px) for image in named.values()]
    picks = [i % len(images) for i in range(count)]
    sources = _cut(images, picks, source_px, gen, augment=False)
    blurry, sharp = degrade(sources, kernels, blur, gen)
    return [
        ImagePair(f"{names[p]}-{i:02d}", blurry[i], sharp[i], round(float(lengths[i]), 2))
        for i, p in enumerate(picks)
    ]


def heldout_pairs(count: int = TEST_COUNT, size_px: int = TEST_SIZE_PX) -> list[ImagePair]:
    """The held-out test set: by default 24 crops of 256x256 from the test images, seed 2022.

    Smaller ``count`` / ``size_px`` give a quick subset drawn the same way (not the first crops of
    the full set: kernels and positions depend on the request).
    """
    return synthetic_pairs("test", count, size_px, TEST_SEED, TEST_BLUR)
