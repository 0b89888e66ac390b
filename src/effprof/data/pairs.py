"""An image pair — a blurry input and, when known, its sharp target — the unit every dataset yields."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor


@dataclass(frozen=True)
class ImagePair:
    """``blurry`` and ``sharp`` are float32 (3, H, W) in [0, 1]; ``sharp`` is None for blurry-only data;
    ``blur_px`` is the exposed motion path length of a synthetic pair (None when unknown)."""

    name: str
    blurry: Tensor
    sharp: Tensor | None
    blur_px: float | None = None

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) of the images."""
        return int(self.blurry.shape[-2]), int(self.blurry.shape[-1])
