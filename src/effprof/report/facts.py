"""Facts about a stored run that several sections state: what its output is (an image, tokens,
points), how many images or tokens one forward holds, the cost basis of its headline, and the
rows of one attribution dimension. Each is read from the run, never assumed."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from effprof import schema as S
from effprof.report import numbers
from effprof.report.runview import RunView


def dimension(view: RunView, name: str) -> pd.DataFrame | None:
    """The attribution rows of one dimension (scale, stage, part, block part, category)."""
    table = view.table("attribution")
    if table is None:
        return None
    rows = table[table["dimension"] == name]
    return rows.reset_index(drop=True) if len(rows) else None


def is_image_output(view: RunView) -> bool:
    """True for an image-to-image model (restoration, super-resolution): cost per output pixel."""
    kind = view.metric(S.OUTPUT_KIND)
    if kind is None:  # runs made before output kinds were recorded: MACs per pixel was their basis
        return view.metric(S.MACS_PER_OUTPUT_PIXEL) is not None
    return kind == "image"


def points_of(view: RunView) -> int | None:
    """Points in the cloud of a point model (its input is N x C points), None for other models."""
    if view.metric(S.OUTPUT_KIND) != "points":
        return None
    first = str(view.metric(S.INPUT_SHAPE) or "").split("x")[0]
    return int(first) if first.isdigit() and int(first) > 0 else None


def batch_of(view: RunView) -> int:
    """Images per forward: the first dimension of the profiled input (one cloud for points)."""
    if view.metric(S.OUTPUT_KIND) == "points":
        return 1
    shape = str(view.metric(S.INPUT_SHAPE) or "1")
    first = shape.split("x")[0]
    return int(first) if first.isdigit() and int(first) > 0 else 1


def tokens_of(view: RunView) -> int | None:
    """Tokens per image of a model whose main output is N x L x C tokens (None otherwise)."""
    if view.metric(S.OUTPUT_KIND) != "tokens":
        return None
    shapes = [s for s in str(view.metric(S.OUTPUT_SHAPES) or "").split(", ") if s.count("x") == 2]
    if not shapes:
        return None
    dims = [
        int(d)
        for d in max(shapes, key=lambda s: math.prod(int(d) for d in s.split("x"))).split("x")
    ]
    return dims[1]


def cost_basis(view: RunView) -> tuple[str, float | None, str]:
    """(label, MACs per unit, detail) for the headline: per output pixel, per token or per image."""
    macs = view.number(S.MACS)
    if is_image_output(view):
        return "MACs per output pixel", view.number(S.MACS_PER_OUTPUT_PIXEL), "output pixels"
    tokens = tokens_of(view)
    if tokens and macs is not None:
        return "MACs per token", macs / batch_of(view) / tokens, f"{tokens} tokens per image"
    points = points_of(view)
    if points and macs is not None:
        return "MACs per point", macs / points, f"{points:,} points in the cloud"
    return "MACs per image", (macs / batch_of(view) if macs is not None else None), "image"


@dataclass(frozen=True)
class Throughput:
    """What one second buys at the median latency: ``value`` (None when not measured, ``detail``
    then says why) in ``unit``: ``MP/s`` (output megapixels), ``points/s`` or ``inputs/s``."""

    value: float | None
    unit: str
    detail: str

    def text(self) -> str:
        """As the headline shows it: ``0.512 MP/s``, ``12.3 k /s``, or ``—`` when not measured."""
        if self.value is None:
            return "—"
        if self.unit == "MP/s":
            return f"{numbers.plain(self.value)} MP/s"
        return f"{numbers.count(self.value)} /s"


def throughput(view: RunView) -> Throughput:
    """Output megapixels per second for an image-to-image model (as measured), points per second
    for a point model, inputs per second otherwise (both from the median latency)."""
    median = view.number(S.LATENCY.median_ms)
    why = view.reason(S.LATENCY.median_ms) or "latency not measured"
    if is_image_output(view):
        measured = view.number(S.LATENCY.throughput_mpix_s)
        detail = "output megapixels per second" if measured is not None else why
        return Throughput(measured, "MP/s", detail)
    if not median:
        return Throughput(None, "inputs/s", why)
    points = points_of(view)
    if points:
        return Throughput(
            points / (median / 1e3), "points/s", "points per second at the median latency"
        )
    return Throughput(
        batch_of(view) / (median / 1e3), "inputs/s", "inputs per second at the median latency"
    )
