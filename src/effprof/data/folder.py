"""Folder datasets: real blurry/sharp pairs (GoPro / RealBlur layout) and blurry-only folders.

A pair folder holds ``blur/`` and ``sharp/`` (or ``gt/``) directories with matching file names,
either directly or once per scene (``GOPR0384_11_00/blur/000001.png`` ...)::

    pairs/blur/0001.png   pairs/sharp/0001.png
    pairs/blur/0002.png   pairs/sharp/0002.png

Everything is checked when the dataset is opened, before any work: an empty folder, a blurry
image without a sharp twin, a twin of another size, an image smaller than SSIM's window or one
too large to decode safely (a decompression bomb) is a one-line ``EffprofError`` naming the
first offending file. Pairs may differ in size from one another (evaluation is per image).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from effprof.data.images import to_rgb_float
from effprof.data.pairs import ImagePair
from effprof.results import EffprofError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})
BLUR_DIRS = ("blur",)
SHARP_DIRS = ("sharp", "gt")


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


MIN_SIDE_PX = 11  # SSIM's 11x11 Gaussian window must fit inside every image


@contextlib.contextmanager
def _opened(path: Path) -> Iterator[Any]:
    """``PIL.Image.open`` with every failure, and images too large to decode safely (PIL's
    decompression-bomb limit, about 89 megapixels), as a one-line EffprofError."""
    from PIL import Image, UnidentifiedImageError

    shown = repr(str(path))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                yield image
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        limit = (Image.MAX_IMAGE_PIXELS or 0) / 1e6
        raise EffprofError(
            f"{shown} has more pixels than the {limit:.0f}-megapixel limit for decoding an image "
            "(a decompression bomb, or an image too large to score)"
        ) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise EffprofError(f"{shown} is not a readable image ({type(err).__name__})") from None


def image_size(path: Path) -> tuple[int, int]:
    """(H, W) of an image file, read from its header only."""
    with _opened(path) as image:
        width, height = image.size
    return height, width


def read_image(path: str | Path) -> Tensor:
    """An image file as float32 RGB (3, H, W) in [0, 1] (gray repeated, alpha composited on white)."""
    path = Path(path)
    with _opened(path) as image:
        if image.mode not in ("L", "RGB", "RGBA", "I;16"):
            image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
        array = np.asarray(image)
    return torch.from_numpy(to_rgb_float(array)).permute(2, 0, 1).contiguous()


def _sharp_dir(blur_dir: Path) -> Path | None:
    for name in SHARP_DIRS:
        candidate = blur_dir.parent / name
        if candidate.is_dir():
            return candidate
    return None


class FolderPairs:
    """Blurry/sharp pairs found under a folder; ``len()``, indexing and iteration load images lazily."""

    def __init__(self, root: Path, blur_files: list[Path], sharp_files: list[Path]) -> None:
        self.root = root
        self.blur_files = blur_files
        self.sharp_files = sharp_files

    @classmethod
    def open(cls, root: str | Path) -> FolderPairs:
        """Find and check every pair under ``root``; raises a one-line EffprofError on bad layout."""
        root = Path(root)
        if not root.is_dir():
            raise EffprofError(f"data folder {str(root)!r} does not exist")
        blur_dirs = sorted(
            p for name in BLUR_DIRS for p in [root / name, *root.glob(f"*/{name}")] if p.is_dir()
        )
        if not blur_dirs:
            raise EffprofError(
                f"{str(root)!r} has no blur/ folder (expected blur/ and sharp/ with matching names)"
            )
        blur_files: list[Path] = []
        sharp_files: list[Path] = []
        for blur_dir in blur_dirs:
            sharp_dir = _sharp_dir(blur_dir)
            for blur_file in _images_in(blur_dir):
                twin = sharp_dir / blur_file.name if sharp_dir is not None else None
                if twin is None or not twin.is_file():
                    expected = blur_dir.parent / SHARP_DIRS[0] / blur_file.name
                    raise EffprofError(
                        f"{str(blur_file)!r} has no sharp twin (expected {str(expected)!r})"
                    )
                blur_size, sharp_size = image_size(blur_file), image_size(twin)
                if blur_size != sharp_size:
                    raise EffprofError(
                        f"{str(blur_file)!r} is {blur_size} (H, W) but its sharp twin is {sharp_size}"
                    )
                if min(blur_size) < MIN_SIDE_PX:
                    raise EffprofError(
                        f"{str(blur_file)!r} is {blur_size[1]}x{blur_size[0]} px; quality is scored "
                        f"on images of at least {MIN_SIDE_PX}x{MIN_SIDE_PX} (SSIM's window)"
                    )
                blur_files.append(blur_file)
                sharp_files.append(twin)
        if not blur_files:
            raise EffprofError(f"{str(root)!r} holds no images in its blur/ folder(s)")
        return cls(root, blur_files, sharp_files)

    def __len__(self) -> int:
        return len(self.blur_files)

    def name(self, index: int) -> str:
        """The pair's name: its blurry file's path relative to the root."""
        return self.blur_files[index].relative_to(self.root).as_posix()

    def __getitem__(self, index: int) -> ImagePair:
        blurry = read_image(self.blur_files[index])
        return ImagePair(self.name(index), blurry, read_image(self.sharp_files[index]))

    def __iter__(self):
        return (self[i] for i in range(len(self)))


def blurry_folder(root: str | Path) -> list[Path]:
    """The images of a blurry-only folder (for calibration): ``root/*`` or ``root/blur/*``, sorted."""
    root = Path(root)
    if not root.is_dir():
        raise EffprofError(f"data folder {str(root)!r} does not exist")
    files = _images_in(root / "blur") if (root / "blur").is_dir() else _images_in(root)
    if not files:
        raise EffprofError(f"{str(root)!r} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return files


def blurry_pairs(root: str | Path) -> list[ImagePair]:
    """A blurry-only folder loaded as pairs without sharp targets."""
    root = Path(root)
    return [
        ImagePair(p.relative_to(root).as_posix(), read_image(p), None) for p in blurry_folder(root)
    ]
