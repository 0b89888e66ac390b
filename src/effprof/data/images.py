"""Sharp source images that ship inside scikit-image, and their fixed train / calibration / test split.

Only images bundled with the scikit-image package are used (they load offline); the ones that
scikit-image fetches from the internet (eagle, lily, skin, brain, ...) are never touched.

The split is by source image, so no pixel of a test image is ever seen in training or calibration:

* ``train`` (15 images): natural photos, microscopy, astronomy, textures, documents, graphics;
* ``calibration`` (2): immunohistochemistry, moon — for compression's significance scores;
* ``test`` (4): chelsea (a cat), rocket, gravel, coins — held out; the fixed test set is cut
  from these only.

``clock`` is left out on purpose: scikit-image's clock photo is itself motion-blurred, so it
cannot serve as a sharp target.

Every image becomes float32 RGB in [0, 1], shape (3, H, W): grayscale is repeated on three
channels, RGBA (the logo) is composited onto white, 8-bit values are divided by 255.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import torch
from torch import Tensor

from effprof.results import EffprofError

TRAIN_IMAGES: tuple[str, ...] = (
    "astronaut",
    "camera",
    "coffee",
    "hubble_deep_field",
    "retina",
    "cell",
    "brick",
    "grass",
    "page",
    "text",
    "logo",
    "colorwheel",
    "checkerboard",
    "shepp_logan_phantom",
    "microaneurysms",
)
CALIBRATION_IMAGES: tuple[str, ...] = ("immunohistochemistry", "moon")
TEST_IMAGES: tuple[str, ...] = ("chelsea", "rocket", "gravel", "coins")

SPLITS: dict[str, tuple[str, ...]] = {
    "train": TRAIN_IMAGES,
    "calibration": CALIBRATION_IMAGES,
    "test": TEST_IMAGES,
}


def to_rgb_float(array: np.ndarray) -> np.ndarray:
    """An image array (H, W), (H, W, 3) or (H, W, 4), uint8 or float in [0, 1], as float32 (H, W, 3)."""
    image = np.asarray(array)
    if image.dtype == np.uint8:
        image = image.astype(np.float32) / 255.0
    elif image.dtype == np.uint16:
        image = image.astype(np.float32) / 65535.0
    else:
        image = np.clip(image.astype(np.float32), 0.0, 1.0)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    elif image.ndim == 3 and image.shape[2] == 4:
        alpha = image[:, :, 3:4]
        image = image[:, :, :3] * alpha + (1.0 - alpha)  # composite onto white
    elif image.ndim == 3 and image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3:
        raise EffprofError(f"unsupported image shape {array.shape}: expected gray, RGB or RGBA")
    return np.ascontiguousarray(image)


@cache
def _load_bundled(name: str) -> np.ndarray:
    from skimage import data as skdata

    image = to_rgb_float(getattr(skdata, name)())
    image.setflags(write=False)
    return image


def bundled_image(name: str) -> Tensor:
    """One scikit-image bundled image as a float32 (3, H, W) tensor in [0, 1] (cached, read-only copy)."""
    if not any(name in names for names in SPLITS.values()):
        known = ", ".join(n for names in SPLITS.values() for n in names)
        raise EffprofError(f"unknown bundled image {name!r}; known: {known}")
    return torch.from_numpy(_load_bundled(name).copy()).permute(2, 0, 1).contiguous()


def split_images(split: str) -> dict[str, Tensor]:
    """{name: (3, H, W) float tensor} for the ``train``, ``calibration`` or ``test`` split."""
    if split not in SPLITS:
        raise EffprofError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
    return {name: bundled_image(name) for name in SPLITS[split]}
