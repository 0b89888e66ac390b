"""Cost against resolution: counts at every size (meta device), a fitted law, the 3x question.

The law is ``cost = a + b x pixels`` fitted by least squares, where pixels are the ones the model
computes on (H x W after padding to the model's multiple) and R² says how well it holds. A fully
convolutional network's MACs are exactly linear in pixels (a = 0, R² = 1); latency has a fixed
overhead ``a`` (launches, Python) and bends where caches or memory run out. "What does a 3x larger
image cost" is the law evaluated at 9x the pixels; counts are checked exactly (counting is free on
meta) and latency wherever the sweep measured the larger size.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from torch import nn

from effprof.measure.counting import count_model
from effprof.results import Missing

SIDE_FACTOR = 3


@dataclass(frozen=True)
class LinearFit:
    """``y = a + b x`` with its coefficient of determination over ``n`` points."""

    quantity: str
    a: float
    b: float
    r2: float
    n: int

    def predict(self, x: float) -> float:
        """The law's value at ``x``."""
        return self.a + self.b * x


def fit_linear(quantity: str, x: Sequence[float], y: Sequence[float]) -> LinearFit | Missing:
    """Least-squares ``y = a + b x``; R² = 1 - SS_res / SS_tot (1.0 when y is constant and fit).

    >>> fit_linear("macs", [1, 2, 3], [10, 20, 30]).b
    10.0
    """
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(xs) & np.isfinite(ys)
    xs, ys = xs[keep], ys[keep]
    if len(xs) < 2 or np.ptp(xs) == 0:
        return Missing(f"need two or more different sizes to fit {quantity}, have {len(xs)}")
    b, a = np.polyfit(xs, ys, 1)
    residual = float(np.sum((ys - (a + b * xs)) ** 2))
    total = float(np.sum((ys - ys.mean()) ** 2))
    r2 = 1.0 - residual / total if total > 0 else 1.0
    return LinearFit(quantity, float(a), float(b), r2, len(xs))


def padded(side: int, multiple: int) -> int:
    """``side`` rounded up to ``multiple``."""
    return -(-side // multiple) * multiple


def resolution_label(height: int, width: int) -> str:
    """``"720x1280"`` style label (H x W)."""
    return f"{height}x{width}"


def count_sweep(
    model: nn.Module,
    resolutions: Sequence[tuple[int, int]],
    *,
    batch: int = 1,
    channels: int = 3,
    multiple: int = 1,
    forward_kwargs: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """MACs, FLOPs and peak activation memory (meta trace) at every resolution, smallest first.

    Columns: resolution, height, width, padded_height, padded_width, pixels (input, N x H x W),
    padded_pixels (what the model computes on), macs, flops, activation_peak_bytes.
    """
    rows = []
    for height, width in sorted(set(resolutions), key=lambda hw: (hw[0] * hw[1], hw)):
        ph, pw = padded(height, multiple), padded(width, multiple)
        count = count_model(model, (batch, channels, ph, pw), forward_kwargs=forward_kwargs)
        rows.append({
            "resolution": resolution_label(height, width), "height": height, "width": width,
            "padded_height": ph, "padded_width": pw, "pixels": batch * height * width,
            "padded_pixels": batch * ph * pw, "macs": count.macs, "flops": count.flops,
            "activation_peak_bytes": count.activation_peak_bytes,
        })  # fmt: skip
    return pd.DataFrame(rows)


def fit_table(sweep: pd.DataFrame, quantities: Sequence[str]) -> pd.DataFrame:
    """One fitted law per quantity against ``padded_pixels``: quantity, a, b, r2, n (or a reason)."""
    rows = []
    for quantity in quantities:
        if quantity not in sweep.columns:
            continue
        fit = fit_linear(quantity, sweep["padded_pixels"], sweep[quantity])
        if isinstance(fit, Missing):
            rows.append({"quantity": quantity, "n": int(sweep[quantity].notna().sum()),
                         "missing": fit.reason})  # fmt: skip
        else:
            rows.append({"quantity": quantity, "a": fit.a, "b": fit.b, "r2": fit.r2, "n": fit.n,
                         "missing": None})  # fmt: skip
    return pd.DataFrame(rows, columns=["quantity", "a", "b", "r2", "n", "missing"])


def three_x_table(
    sweep: pd.DataFrame,
    quantities: Sequence[str],
    base: tuple[int, int],
    *,
    multiple: int = 1,
    batch: int = 1,
    exact: Callable[[int, int], Mapping[str, float]] | None = None,
) -> pd.DataFrame:
    """The cost of an image 3x larger per side than ``base`` (H, W), predicted by each quantity's
    law and checked: against ``exact(H, W)`` (counts on meta) or, where the sweep measured the
    larger size, against that measurement, with the law refitted without it (a real prediction).

    Columns: quantity, base, larger, base_value, predicted, ratio_predicted (predicted / the
    law's value at the base), checked, check_source, error (predicted / checked - 1).
    """
    h, w = base
    big = (h * SIDE_FACTOR, w * SIDE_FACTOR)
    base_pixels = batch * padded(h, multiple) * padded(w, multiple)
    big_pixels = batch * padded(big[0], multiple) * padded(big[1], multiple)
    exact_values = dict(exact(*big)) if exact is not None else {}
    label = resolution_label(*big)
    rows = []
    for quantity in quantities:
        if quantity not in sweep.columns:
            continue
        known = sweep[sweep[quantity].notna()]
        checked, source, points = None, None, known
        if quantity in exact_values:
            checked, source = float(exact_values[quantity]), "counted on meta at that size"
        elif label in set(known["resolution"]):
            checked = float(known.loc[known["resolution"] == label, quantity].iloc[0])
            source = "measured in this sweep (law fitted without it)"
            points = known[known["resolution"] != label]
        law = fit_linear(quantity, points["padded_pixels"], points[quantity])
        if isinstance(law, Missing):
            continue
        predicted, base_value = law.predict(big_pixels), law.predict(base_pixels)
        rows.append({
            "quantity": quantity, "base": resolution_label(h, w), "larger": label,
            "base_value": base_value, "predicted": predicted,
            "ratio_predicted": predicted / base_value if base_value else None,
            "checked": checked, "check_source": source,
            "error": predicted / checked - 1 if checked else None,
        })  # fmt: skip
    return pd.DataFrame(rows)
