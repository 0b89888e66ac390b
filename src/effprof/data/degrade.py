"""Degrading sharp images: motion blur (a per-image convolution in torch), noise, 8-bit rounding, JPEG.

The blur is a true convolution computed with FFTs, so its cost does not grow with the kernel
size and it runs on whatever device the images are on (a batch of 32 crops of 256x256 with
41x41 kernels takes milliseconds on a GPU). ``blur_valid`` takes sources larger than the output
by K - 1 pixels and returns only the fully covered ("valid") region: no border artefacts.
"""

from __future__ import annotations

import io

import numpy as np
import torch
from torch import Tensor


def blur_valid(sources: Tensor, kernels: Tensor) -> Tensor:
    """Convolve each source (B, C, H, W) with its kernel (B, K, K); returns (B, C, H-K+1, W-K+1).

    >>> blur_valid(torch.ones(1, 3, 20, 20), torch.full((1, 5, 5), 1 / 25)).shape
    torch.Size([1, 3, 16, 16])
    """
    batch, _, height, width = sources.shape
    size = kernels.shape[-1]
    if kernels.shape != (batch, size, size):
        raise ValueError(f"kernels must be (B, K, K) with B={batch}, got {tuple(kernels.shape)}")
    if height < size or width < size:
        raise ValueError(f"sources {height}x{width} are smaller than the {size}x{size} kernels")
    kernels = kernels.to(device=sources.device, dtype=torch.float32)
    spectrum = torch.fft.rfft2(sources.float(), s=(height, width))
    kernel_spectrum = torch.fft.rfft2(kernels, s=(height, width))[:, None]
    full = torch.fft.irfft2(spectrum * kernel_spectrum, s=(height, width))
    # Circular convolution equals the linear one wherever the kernel does not wrap around.
    return full[..., size - 1 :, size - 1 :].to(sources.dtype)


def blur_same(images: Tensor, kernels: Tensor) -> Tensor:
    """Blur images (B, C, H, W) keeping their size; borders are extended by reflection first."""
    pad = kernels.shape[-1] // 2
    if pad == 0:
        return images * kernels.reshape(-1, 1, 1, 1).to(images)
    mode = "reflect" if pad < min(images.shape[-2:]) else "replicate"
    padded = torch.nn.functional.pad(images, (pad, pad, pad, pad), mode=mode)
    return blur_valid(padded, kernels)


def add_noise(images: Tensor, sigmas: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Add white Gaussian noise with a per-image standard deviation ``sigmas`` (B,), in [0, 1] units."""
    noise = torch.randn(images.shape, generator=generator, device=images.device, dtype=images.dtype)
    return images + noise * sigmas.to(images).view(-1, 1, 1, 1)


def quantize_8bit(images: Tensor) -> Tensor:
    """Clip to [0, 1] and round to the 256 levels of an 8-bit image (what a camera file holds)."""
    return torch.round(images.clamp(0.0, 1.0) * 255.0) / 255.0


def jpeg(images: Tensor, qualities: list[int]) -> Tensor:
    """Round-trip each image (B, 3, H, W) in [0, 1] through JPEG at its quality (Pillow, on the CPU)."""
    from PIL import Image

    out = []
    for image, quality in zip(images, qualities, strict=True):
        array = (image.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format="JPEG", quality=int(quality))
        decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
        out.append(torch.from_numpy(decoded.copy()).permute(2, 0, 1))
    return (torch.stack(out).to(images.device, torch.float32) / 255.0).to(images.dtype)
