"""Restoration quality: PSNR and SSIM (torch, batched, any device), gain over the input, fidelity.

Conventions (the ones deblurring papers use, and scikit-image's):

* images are float RGB in [0, 1], compared as given (callers clip model outputs to [0, 1] first);
  ``DATA_RANGE = 1.0``; no rounding to 8 bits, no border crop, no conversion to Y.
* PSNR = 10 log10(1 / MSE) with the MSE over all channels and pixels of one image, computed in
  float64; identical images (MSE = 0) give the cap ``PSNR_CAP_DB = 100`` dB instead of infinity, so
  that means and differences stay finite (any PSNR above 100 dB is reported as 100).
  Worked example: two 2x2 gray images differing by 0.1 in one pixel of four have MSE 0.0025 and
  PSNR 26.0206 dB.
* SSIM is Wang et al. 2004 exactly as ``skimage.metrics.structural_similarity(a, b,
  data_range=1, channel_axis=0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)``
  computes it: 11x11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03, the 5-pixel border left out
  of the mean, per channel then averaged. The tests check both against scikit-image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

DATA_RANGE = 1.0
PSNR_CAP_DB = 100.0
SSIM_SIGMA = 1.5
SSIM_RADIUS = int(
    3.5 * SSIM_SIGMA + 0.5
)  # scipy's gaussian_filter truncation: 5 -> an 11-tap window
SSIM_K1, SSIM_K2 = 0.01, 0.03


def _batched(x: Tensor) -> Tensor:
    if x.dim() == 3:
        x = x[None]
    if x.dim() != 4:
        raise ValueError(f"expected (C, H, W) or (N, C, H, W) images, got shape {tuple(x.shape)}")
    return x


def _check_pair(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    a, b = _batched(a), _batched(b)
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
    return a, b


def psnr_db(output: Tensor, target: Tensor) -> Tensor:
    """PSNR in dB of each image in a batch (N,) against its target, capped at ``PSNR_CAP_DB``.

    >>> a = torch.zeros(1, 2, 2); b = a.clone(); b[0, 0, 0] = 0.1
    >>> round(float(psnr_db(a, b)), 4)
    26.0206
    """
    output, target = _check_pair(output, target)
    mse = (output.double() - target.double()).pow(2).mean(dim=(1, 2, 3))
    psnr = 10.0 * torch.log10(DATA_RANGE**2 / mse.clamp_min(1e-300))
    return psnr.clamp(max=PSNR_CAP_DB)


def _gaussian_window(device: torch.device) -> Tensor:
    offsets = torch.arange(-SSIM_RADIUS, SSIM_RADIUS + 1, dtype=torch.float64, device=device)
    weights = torch.exp(-(offsets**2) / (2 * SSIM_SIGMA**2))
    return weights / weights.sum()


def _filter(x: Tensor, window: Tensor) -> Tensor:
    """Separable Gaussian filter, valid region only (exactly the pixels SSIM averages)."""
    channels = x.shape[1]
    taps = window.numel()
    x = F.conv2d(x, window.view(1, 1, 1, taps).expand(channels, 1, 1, taps), groups=channels)
    return F.conv2d(x, window.view(1, 1, taps, 1).expand(channels, 1, taps, 1), groups=channels)


def ssim(output: Tensor, target: Tensor) -> Tensor:
    """Mean SSIM of each image in a batch (N,) against its target (scikit-image's definition)."""
    output, target = _check_pair(output, target)
    size = 2 * SSIM_RADIUS + 1
    if min(output.shape[-2:]) < size:
        raise ValueError(
            f"SSIM needs images of at least {size}x{size}, got {tuple(output.shape[-2:])}"
        )
    x, y = output.double(), target.double()
    window = _gaussian_window(x.device)
    mu_x, mu_y = _filter(x, window), _filter(y, window)
    var_x = _filter(x * x, window) - mu_x**2
    var_y = _filter(y * y, window) - mu_y**2
    cov = _filter(x * y, window) - mu_x * mu_y
    c1, c2 = (SSIM_K1 * DATA_RANGE) ** 2, (SSIM_K2 * DATA_RANGE) ** 2
    index = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / (
        (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    )
    return index.mean(dim=(1, 2, 3))


def quality(output: Tensor, target: Tensor) -> dict[str, Tensor]:
    """``{"psnr_db": (N,), "ssim": (N,)}`` of outputs against targets."""
    return {"psnr_db": psnr_db(output, target), "ssim": ssim(output, target)}


def fidelity(output: Tensor, reference_output: Tensor) -> dict[str, Tensor]:
    """How close one model's outputs are to another's (e.g. pruned vs dense): PSNR/SSIM between them."""
    return {
        "fidelity_psnr_db": psnr_db(output, reference_output),
        "fidelity_ssim": ssim(output, reference_output),
    }
