"""Facts about a stored run that several sections state: what its output is (an image, tokens,
points), how many images or tokens one forward holds, the cost basis of its headline, and the
rows of one attribution dimension. Each is read from the run, never assumed."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from effprof import schema as S
from effprof.report import numbers as fmt
from effprof.report.runview import RunView


def dimension(view: RunView, name: str) -> pd.DataFrame | None:
    """The attribution rows of one dimension (scale, stage, part, block part, category)."""
    table = view.table("attribution")
    if table is None:
        return None
    rows = table[table["dimension"] == name]
    return rows.reset_index(drop=True) if len(rows) else None


def measured(view: RunView, key: str) -> float | None:
    """A metric's number only when it was measured as such: None when it is missing, flagged
    unreliable (a fidelity against a degenerate reference, say) or only partial, so that no
    finding quotes it."""
    if view.record.metric_status(key) != S.MEASURED:
        return None
    return view.number(key)


def is_image_output(view: RunView) -> bool:
    """True for an image-to-image model (restoration, super-resolution): cost per output pixel."""
    kind = view.metric(S.OUTPUT_KIND)
    if kind is None:  # runs made before output kinds were recorded: MACs per pixel was their basis
        return view.metric(S.MACS_PER_OUTPUT_PIXEL) is not None
    return kind == "image"


def _dims(shape: str) -> list[int] | None:
    parts = shape.strip().split("x")
    return [int(p) for p in parts] if all(p.isdigit() for p in parts) else None


def output_shapes(view: RunView) -> list[list[int]]:
    """The forward's output shapes as stored (``1x3x64x64, 1x10`` -> [[1, 3, 64, 64], [1, 10]])."""
    found = (_dims(s) for s in str(view.metric(S.OUTPUT_SHAPES) or "").split(","))
    return [d for d in found if d]


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


def _primary_input(view: RunView) -> dict[str, Any]:
    tensors = view.record.params.get("input_tensors")
    first = tensors[0] if isinstance(tensors, list) and tensors else None
    return first if isinstance(first, dict) else {}


def token_input(view: RunView) -> tuple[int, int] | None:
    """(sequences, tokens per sequence) of a model whose primary input is token ids (an N x L
    tensor of role "tokens", e.g. BERT's ``input_ids``), None for other models."""
    primary = _primary_input(view)
    dims = _dims(str(primary.get("shape", "")))
    if primary.get("role") != "tokens" or not dims or len(dims) != 2 or min(dims) < 1:
        return None
    return dims[0], dims[1]


def image_input(view: RunView) -> bool:
    """True when the primary input is an image (runs made before inputs were described: when
    it is an N x C x H x W shape)."""
    primary = _primary_input(view)
    if primary:
        return primary.get("role") == "image"
    dims = _dims(str(view.metric(S.INPUT_SHAPE) or ""))
    return dims is not None and len(dims) == 4


def tokens_of(view: RunView) -> int | None:
    """Tokens per image in the main output of an image model whose output is N x L x C tokens:
    the L of the largest 3-D output, the tokens the model *returns* (a hierarchical model such
    as Swin works on more tokens in its early stages); None for other models."""
    if view.metric(S.OUTPUT_KIND) != "tokens":
        return None
    shapes = [d for d in output_shapes(view) if len(d) == 3]
    return max(shapes, key=math.prod)[1] if shapes else None


def output_image(view: RunView) -> list[int] | None:
    """The output whose pixels are the cost basis: the one of N x H x W pixels such that MACs /
    pixels is the stored MACs per output pixel (None when the run stores no such number)."""
    macs, per_pixel = view.number(S.MACS), view.number(S.MACS_PER_OUTPUT_PIXEL)
    if not macs or not per_pixel:
        return None
    pixels = macs / per_pixel
    for dims in output_shapes(view):
        if len(dims) in (3, 4) and math.isclose(
            dims[0] * dims[-2] * dims[-1], pixels, rel_tol=1e-9
        ):
            return dims
    return None


@dataclass(frozen=True)
class CostBasis:
    """What the headline divides the MACs by, and how the answer names it.

    ``unit`` is what one share of the MACs is ("output pixel", "token", "point", "output token",
    "image", "forward"); ``per_unit`` the MACs per unit; ``units`` how many units one forward holds;
    ``detail`` says where that count comes from, as the sentence quotes it.
    """

    label: str
    unit: str
    per_unit: float | None
    units: float | None
    detail: str


def _basis(label: str, unit: str, macs: float | None, units: float, detail: str) -> CostBasis:
    return CostBasis(label, unit, macs / units if macs is not None else None, units, detail)


def cost_basis(view: RunView) -> CostBasis:
    """The unit the run's cost is told in, by one rule:

    * an image output (restoration, super-resolution, depth): per **output pixel**, the N x H x W
      of the output the count step divided by (so a 3x upsampler's basis is its output pixels);
    * token ids in (N x L integers): per **token**, the L positions of each sequence the model
      computes on (padding included: a mask changes values, not the work);
    * a point cloud: per **point** of the cloud;
    * an image in and N x L x C tokens out: per **output token**, the L tokens the model returns
      (not the tokens of every stage: a hierarchical model merges tokens on the way);
    * anything else: per **image** (an image in), else per **forward**.
    """
    macs = view.number(S.MACS)
    if is_image_output(view):
        dims = output_image(view)
        per_pixel = view.number(S.MACS_PER_OUTPUT_PIXEL)
        pixels = macs / per_pixel if macs and per_pixel else None
        where = (
            f"the {fmt.integer(dims[0] * dims[-2] * dims[-1])} pixels of its "
            f"{'x'.join(map(str, dims))} output"
            if dims
            else "its output pixels"
        )
        return CostBasis("MACs per output pixel", "output pixel", per_pixel, pixels, where)
    sequences = token_input(view)
    if sequences and view.metric(S.OUTPUT_KIND) != "points":
        n, length = sequences
        return _basis(
            "MACs per token", "token", macs, n * length,
            f"{length:,} tokens per sequence" + (f", {n} sequences" if n > 1 else ""),
        )  # fmt: skip
    points = points_of(view)
    if points:
        return _basis("MACs per point", "point", macs, points, f"{points:,} points in the cloud")
    tokens = tokens_of(view)
    if tokens:
        batch = batch_of(view)
        return _basis(
            "MACs per output token", "output token", macs, batch * tokens,
            f"its output holds {tokens:,} tokens per {'image' if image_input(view) else 'sample'}",
        )  # fmt: skip
    batch = batch_of(view)
    if image_input(view):
        return _basis("MACs per image", "image", macs, batch, f"{batch} images per forward")
    return _basis("MACs per forward", "forward", macs, 1, "one forward")


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
            return f"{fmt.plain(self.value)} MP/s"
        return f"{fmt.count(self.value)} /s"


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
