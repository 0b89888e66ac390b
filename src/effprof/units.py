"""Units, shapes and resolutions: parsing user strings and formatting numbers with their unit."""

from __future__ import annotations

import math
import re

from effprof.results import EffprofError

KIB = 1024
MIB = 1024**2
GIB = 1024**3

# Named resolutions, as (height, width). "720p" is 1280x720 landscape, "4k" is UHD 3840x2160.
RESOLUTIONS: dict[str, tuple[int, int]] = {
    "360p": (360, 640),
    "480p": (480, 854),
    "540p": (540, 960),
    "720p": (720, 1280),
    "1080p": (1080, 1920),
    "1440p": (1440, 2560),
    "2k": (1440, 2560),
    "4k": (2160, 3840),
    "2160p": (2160, 3840),
}

_SHAPE = re.compile(r"^\s*\d+(\s*[xX×,]\s*\d+)*\s*$")
INT64_MAX = 2**63 - 1  # PyTorch's sizes and element counts are int64
MAX_TEXT = 200  # longer shape or resolution strings are refused before any number is read


def _shown(text: object) -> str:
    return repr(text if not isinstance(text, str) or len(text) <= 40 else text[:37] + "...")


def _check_sizes(text: str, dims: tuple[int, ...], what: str) -> None:
    """Every size and their product must fit PyTorch's int64: the limit is named, not hit."""
    elements = math.prod(dims)
    if max(dims) > INT64_MAX or elements > INT64_MAX:
        raise EffprofError(
            f"{what} {_shown(text)} is too large: PyTorch holds at most 2^63-1 = {INT64_MAX:,} "
            "elements in a tensor"
        )


def parse_shape(text: str, ndim: int | None = 4) -> tuple[int, ...]:
    """Parse ``"1x3x256x256"`` into ``(1, 3, 256, 256)``; every dimension must be a positive integer.
    ``ndim`` None accepts any number of dimensions (a point cloud ``16384x3``).

    >>> parse_shape("1x3x720x1280"), parse_shape("16384x3", ndim=None)
    ((1, 3, 720, 1280), (16384, 3))
    """
    if not isinstance(text, str) or len(text) > MAX_TEXT or not _SHAPE.match(text):
        raise EffprofError(
            f"malformed input shape {_shown(text)}: expected N x C x H x W, e.g. 1x3x256x256"
        )
    dims = tuple(int(part) for part in re.split(r"\s*[xX×,]\s*", text.strip()))
    if ndim is not None and len(dims) != ndim:
        raise EffprofError(
            f"malformed input shape {_shown(text)}: expected {ndim} dimensions (N x C x H x W), "
            f"got {len(dims)}"
        )
    if any(d <= 0 for d in dims):
        raise EffprofError(
            f"malformed input shape {_shown(text)}: every dimension must be positive"
        )
    _check_sizes(text, dims, "input shape")
    return dims


def format_shape(shape: tuple[int, ...]) -> str:
    """``(1, 3, 64, 64)`` -> ``"1x3x64x64"``."""
    return "x".join(str(int(d)) for d in shape)


def parse_resolution(text: str) -> tuple[int, int]:
    """A resolution as (height, width): ``"720p"``, ``"4k"``, ``"512"`` (square) or ``"720x1280"`` (HxW).

    >>> parse_resolution("1080p"), parse_resolution("256"), parse_resolution("720x1280")
    ((1080, 1920), (256, 256), (720, 1280))
    """
    known = ", ".join(RESOLUTIONS)
    if not isinstance(text, str) or len(text) > MAX_TEXT:
        raise EffprofError(
            f"malformed resolution {_shown(text)}: use a side (512), HxW (720x1280) or one of {known}"
        )
    key = text.strip().lower()
    if key in RESOLUTIONS:
        return RESOLUTIONS[key]
    match = re.fullmatch(r"(\d+)(?:\s*[x×]\s*(\d+))?", key)
    if match:
        height, width = int(match[1]), int(match[2] or match[1])
        if height > 0 and width > 0:
            _check_sizes(text, (height, width), "resolution")
            return height, width
    raise EffprofError(
        f"malformed resolution {_shown(text)}: use a side (512), HxW (720x1280) or one of {known}"
    )


def parse_resolutions(text: str) -> list[tuple[int, int]]:
    """A comma-separated list of resolutions, e.g. ``"256,512,720p,1080p,4k"``."""
    if not isinstance(text, str) or len(text) > 20 * MAX_TEXT:
        raise EffprofError(f"malformed --resolutions {_shown(text)}: give e.g. 256,512,720p")
    parts = [p for p in text.split(",") if p.strip()]
    if not parts:
        raise EffprofError("empty --resolutions: give e.g. 256,512,720p")
    return [parse_resolution(p) for p in parts]


def megapixels(height: int, width: int, batch: int = 1) -> float:
    """Output megapixels of one forward pass: ``batch * H * W / 1e6``."""
    return batch * height * width / 1e6


def _significant(value: float, digits: int) -> str:
    """``digits`` significant digits, trailing zeros kept (``2.00``, ``145``, ``0.500``)."""
    text = f"{value:#.{digits}g}"
    if "e" in text:
        return f"{value:.{digits}g}"
    return text.rstrip(".")


def si(value: float, unit: str = "", digits: int = 3) -> str:
    """Format with an SI prefix and ``digits`` significant digits: ``si(1.45e11, "MAC")`` ->
    ``"145 GMAC"``, ``si(1999296, "MAC")`` -> ``"2.00 MMAC"``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if value == 0:
        return f"0 {unit}".strip()
    prefixes = [(1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")]
    for scale, prefix in prefixes:
        if abs(value) >= scale * (1 - 0.5 * 10 ** (-digits)):
            return f"{_significant(value / scale, digits)} {prefix}{unit}".strip()
    if float(value).is_integer():
        return f"{int(value)} {unit}".strip()
    return f"{_significant(value, digits)} {unit}".strip()


def binary_bytes(num_bytes: float) -> str:
    """Format a byte count with binary prefixes: ``binary_bytes(3 * 2**30)`` -> ``"3.00 GiB"``."""
    if num_bytes is None or (isinstance(num_bytes, float) and math.isnan(num_bytes)):
        return "—"
    for scale, name in ((GIB, "GiB"), (MIB, "MiB"), (KIB, "KiB")):
        if abs(num_bytes) >= scale:
            return f"{num_bytes / scale:.2f} {name}"
    return f"{int(num_bytes)} B"
