"""How close one output is to a reference output, for any tensor (used by the profile's INT8 and
by compression of models without a task metric).

For every output: relative L2 error ||a - b|| / ||b|| and SNR = 10 log10(||b||^2 / ||a - b||^2) dB;
for an image output also PSNR with peak 1 (both clipped to [0, 1]); for logits (N x classes) the
share of rows whose arg-max agrees (top-1 agreement). SNR and PSNR are capped at
``effprof.data.PSNR_CAP_DB`` (identical outputs), as every PSNR effprof reports.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from effprof.data.metrics import PSNR_CAP_DB

NOISE_FLOOR = 1e-30


ZERO_REFERENCE = "the reference output is all zeros: a relative error or SNR is undefined"


def tensor_fidelity(
    reference: Tensor, output: Tensor, image: bool, logits: bool
) -> dict[str, float]:
    """``rel_l2`` and ``snr_db`` (left out when the reference is all zeros: see
    ``ZERO_REFERENCE``), ``psnr_db`` for images, ``top1`` for logits."""
    ref, out = reference.detach().double().cpu(), output.detach().double().cpu()
    noise = float(torch.sum((out - ref) ** 2))
    signal = float(torch.sum(ref**2))
    scores: dict[str, float] = {}
    if signal > 0:
        scores["rel_l2"] = (noise / signal) ** 0.5
        scores["snr_db"] = min(PSNR_CAP_DB, float(10 * np.log10(signal / max(noise, NOISE_FLOOR))))
    if image and ref.dim() == 4:
        mse = float(torch.mean((out.clamp(0, 1) - ref.clamp(0, 1)) ** 2))
        scores["psnr_db"] = min(PSNR_CAP_DB, float(10 * np.log10(1.0 / max(mse, 1e-20))))
    if logits and ref.dim() == 2 and ref.shape[-1] > 1:
        scores["top1"] = float((ref.argmax(-1) == out.argmax(-1)).double().mean())
    return scores
