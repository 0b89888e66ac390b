"""PSNR and SSIM: the documented cap, a hand computation, and agreement with scikit-image."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from effprof.data import PSNR_CAP_DB, fidelity, psnr_db, ssim


def pair(seed: int, shape=(2, 3, 40, 48), noise: float = 0.05):
    gen = torch.Generator().manual_seed(seed)
    clean = torch.rand(shape, generator=gen)
    return (clean + noise * torch.randn(shape, generator=gen)).clamp(0, 1), clean


def test_identical_images_give_the_documented_cap():
    image = torch.rand(3, 16, 16)
    assert float(psnr_db(image, image)) == PSNR_CAP_DB == 100.0
    assert float(ssim(image, image)) == pytest.approx(1.0, abs=1e-12)


def test_psnr_matches_a_hand_computation():
    a = torch.zeros(1, 2, 2)
    b = a.clone()
    b[0, 0, 0] = 0.1  # one pixel of four off by 0.1: MSE = 0.01 / 4 = 0.0025
    assert float(psnr_db(a, b)) == pytest.approx(
        10 * math.log10(1 / 0.0025), abs=1e-6
    )  # 0.1 in float32
    assert float(psnr_db(a, b)) == pytest.approx(26.0206, abs=1e-4)


def test_psnr_and_ssim_match_scikit_image_per_image():
    noisy, clean = pair(0)
    ours_psnr, ours_ssim = psnr_db(noisy, clean), ssim(noisy, clean)
    for i in range(len(noisy)):
        x, y = noisy[i].double().numpy(), clean[i].double().numpy()
        ref_psnr = peak_signal_noise_ratio(y, x, data_range=1.0)
        ref_ssim = structural_similarity(
            x,
            y,
            data_range=1.0,
            channel_axis=0,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
        assert float(ours_psnr[i]) == pytest.approx(ref_psnr, abs=1e-9)
        assert float(ours_ssim[i]) == pytest.approx(ref_ssim, abs=1e-7)


def test_more_noise_means_lower_psnr_and_ssim():
    light, clean = pair(1, noise=0.02)
    heavy, _ = pair(1, noise=0.2)
    assert (psnr_db(heavy, clean) < psnr_db(light, clean)).all()
    assert (ssim(heavy, clean) < ssim(light, clean)).all()
    assert (ssim(heavy, clean) > -1).all() and (ssim(light, clean) < 1).all()


def test_fidelity_compares_two_outputs_not_a_target():
    a, b = pair(2)
    scores = fidelity(a, b)
    assert torch.allclose(scores["fidelity_psnr_db"], psnr_db(a, b))
    assert float(fidelity(a, a)["fidelity_psnr_db"][0]) == PSNR_CAP_DB


def test_shape_mismatch_and_tiny_images_are_refused():
    with pytest.raises(ValueError, match="differ in shape"):
        psnr_db(torch.zeros(3, 8, 8), torch.zeros(3, 8, 9))
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(torch.zeros(3, 8, 8), torch.zeros(3, 8, 8))


def test_psnr_is_float64_exact_for_8bit_images():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (3, 20, 20)).astype(np.float64) / 255
    b = np.clip(a + rng.integers(-3, 4, a.shape) / 255, 0, 1)
    assert float(psnr_db(torch.from_numpy(a), torch.from_numpy(b))) == pytest.approx(
        peak_signal_noise_ratio(a, b, data_range=1.0), abs=1e-10
    )
