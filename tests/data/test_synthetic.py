"""Synthetic pairs: deterministic per seed, split by source image, aligned, fixed held-out test set."""

from __future__ import annotations

from dataclasses import replace

import torch

from effprof.data import (
    CALIBRATION_IMAGES,
    SPLITS,
    TEST_IMAGES,
    TRAIN_IMAGES,
    BlurSpec,
    KernelSpec,
    SyntheticBlur,
    SyntheticSpec,
    heldout_pairs,
    psnr_db,
    split_images,
    synthetic_pairs,
)
from effprof.data.synthetic import degrade

SMALL = SyntheticSpec(
    crop_px=32, batch=3, blur=BlurSpec(kernel=KernelSpec(min_length_px=3, max_length_px=9))
)


def test_batches_are_deterministic_for_a_seed():
    first = SyntheticBlur.load(SMALL)(5)
    again = SyntheticBlur.load(SMALL)(5)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    other_step = SyntheticBlur.load(SMALL)(6)
    assert not torch.equal(first[1], other_step[1])
    other_seed = SyntheticBlur.load(SyntheticSpec(crop_px=32, batch=3, blur=SMALL.blur, seed=1))(5)
    assert not torch.equal(first[1], other_seed[1])


def test_batch_shapes_range_and_degradation():
    blurry, sharp = SyntheticBlur.load(SMALL)(0)
    assert blurry.shape == sharp.shape == (3, 3, 32, 32)
    assert blurry.dtype == torch.float32 and float(blurry.min()) >= 0 and float(blurry.max()) <= 1
    assert torch.equal(torch.round(blurry * 255) / 255, blurry)  # 8-bit like a camera file
    assert (psnr_db(blurry, sharp) < 60).all()  # really degraded


def test_train_calibration_and_test_images_never_overlap():
    names = [set(SPLITS[s]) for s in ("train", "calibration", "test")]
    assert not (names[0] & names[1]) and not (names[0] & names[2]) and not (names[1] & names[2])
    assert set(TEST_IMAGES) == set(split_images("test"))
    # Pixel level too: no test image appears in the other splits under another name.
    others = list(split_images("train").values()) + list(split_images("calibration").values())
    for image in split_images("test").values():
        assert not any(o.shape == image.shape and torch.equal(o, image) for o in others)
    assert SyntheticBlur.load(SMALL).names == list(TRAIN_IMAGES)
    assert SyntheticBlur.load(SyntheticSpec(split="calibration", crop_px=32)).names == list(
        CALIBRATION_IMAGES
    )


def test_heldout_set_is_24_crops_of_256_from_test_images_only_and_fixed():
    pairs = heldout_pairs()
    assert len(pairs) == 24
    assert all(p.blurry.shape == p.sharp.shape == (3, 256, 256) for p in pairs)
    assert {p.name.rsplit("-", 1)[0] for p in pairs} == set(TEST_IMAGES)
    assert all(
        4 * 0.5 - 0.01 <= p.blur_px <= 24 + 0.01 for p in pairs
    )  # exposed part of a 4-24 px path
    again = heldout_pairs()
    assert all(torch.equal(a.blurry, b.blurry) for a, b in zip(pairs, again, strict=True))
    assert (
        20
        < float(
            psnr_db(
                torch.stack([p.blurry for p in pairs]), torch.stack([p.sharp for p in pairs])
            ).mean()
        )
        < 40
    )


def test_sharp_target_is_aligned_with_the_blurry_input():
    image = split_images("test")["gravel"][:, :80, :80][None]
    kernel = torch.zeros(1, 7, 7)
    kernel[0, 3, 1:6] = 0.2  # centred horizontal box
    blurry, sharp = degrade(
        image, kernel, BlurSpec(max_noise_sigma=0.0, quantize=False), torch.Generator()
    )
    assert blurry.shape == sharp.shape == (1, 3, 74, 74)
    centred = psnr_db(blurry[..., 2:-2, 2:-2], sharp[..., 2:-2, 2:-2])
    for dy, dx in ((0, 1), (1, 0), (0, -1), (-1, 0)):
        shifted = sharp[..., 2 + dy : 72 + dy, 2 + dx : 72 + dx]
        assert centred > psnr_db(blurry[..., 2:-2, 2:-2], shifted)
    identity = torch.ones(1, 1, 1)
    same, target = degrade(
        image, identity, BlurSpec(max_noise_sigma=0.0, quantize=False), torch.Generator()
    )
    assert torch.allclose(same, target, atol=1e-6)  # FFT round-off only


def _roughness(images: torch.Tensor) -> float:
    """Mean absolute difference between horizontal neighbours."""
    return float((images[..., 1:] - images[..., :-1]).abs().mean())


def test_zoom_off_leaves_the_stream_unchanged_and_enlarging_smooths_the_crops():
    plain = SyntheticBlur.load(SMALL)(3)
    explicit = SyntheticBlur.load(replace(SMALL, zoom=(1.0, 1.0)))(3)
    assert all(torch.equal(a, b) for a, b in zip(plain, explicit, strict=True))
    enlarged = SyntheticBlur.load(replace(SMALL, batch=16, zoom=(3.0, 3.0)))
    native = SyntheticBlur.load(replace(SMALL, batch=16))
    for step in range(2):
        zoomed_sharp, native_sharp = enlarged(step)[1], native(step)[1]
        assert zoomed_sharp.shape == native_sharp.shape == (16, 3, 32, 32)
        assert float(zoomed_sharp.min()) >= 0 and float(zoomed_sharp.max()) <= 1
        assert _roughness(zoomed_sharp) < 0.7 * _roughness(native_sharp)
    ranged = SyntheticBlur.load(replace(SMALL, zoom=(0.5, 2.0)))
    assert all(torch.equal(a, b) for a, b in zip(ranged(4), ranged(4), strict=True))
    assert min(min(im.shape[-2:]) for im in ranged.images) >= (32 + 9 - 1) / 0.5  # room to shrink


def test_small_source_images_are_mirrored_up_to_size():
    source = SyntheticBlur.load(SyntheticSpec(crop_px=224, batch=2))
    assert all(min(im.shape[-2:]) >= 224 for im in source.images)  # microaneurysms is 102x102
    blurry, _ = source(0)
    assert blurry.shape == (2, 3, 224, 224)


def test_synthetic_pairs_cycle_over_the_split():
    pairs = synthetic_pairs("calibration", 4, 48, seed=7)
    assert [p.name for p in pairs] == [f"{CALIBRATION_IMAGES[i % 2]}-{i:02d}" for i in range(4)]
