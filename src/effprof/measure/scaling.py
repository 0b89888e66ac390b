"""Cost against input size: counts at every size (meta device), fitted laws, the 3x question.

Sizes are *positions*: H x W of an image after padding to the model's multiple (the pixels it
computes on), or the number of points of a cloud. Two kinds of law, each refusing nonsense:

* **counts** (MACs, FLOPs, activation bytes) are exact, and for the networks effprof meets they
  are polynomials of degree at most two in the positions: ``a + b p + c p^2`` with a, b, c >= 0
  (a fixed head, per-position work such as convolutions and linear layers, and global attention,
  whose QK^T and AV grow with the square of the tokens). The coefficients are fitted by
  non-negative least squares on at least three sizes; the law passes when it reproduces every
  count within 2% (a strided layer rounds an odd size down, so counts of most CNNs are a
  polynomial only up to such rounding; the largest error is stored with the law).
* **measured** quantities (latency) follow no exact law: a power law ``k p^alpha`` fitted in
  log-log space on at least three sizes, with its exponent and residuals; it passes when every
  point is within 25% of the law and alpha lies in [0.3, 3]. It predicts only within
  :data:`EXTRAPOLATION` times the measured range, and never a negative value.

"What does a 3x larger image cost" is a passed law evaluated at 9x the positions (images) or 3x
(points), checked against an exact count or a measurement where one exists.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import nnls
from torch import nn

from effprof.measure.categories import ATTENTION
from effprof.measure.counting import count_model
from effprof.models.inputs import InputSpec
from effprof.results import EffprofError, Missing

SIDE_FACTOR = 3
MIN_SIZES = 3
COUNT_TOLERANCE = 0.02  # strided layers round odd sizes down, so counts are polynomial within ~1%
POWER_TOLERANCE = 0.25
ALPHA_RANGE = (0.3, 3.0)
EXTRAPOLATION = 10.0
COUNT_QUANTITIES = ("macs", "flops", "activation_peak_bytes", "macs_attention", "macs_other")
MEASURED_QUANTITIES = ("latency_median_ms",)


@dataclass(frozen=True)
class CountLaw:
    """``y = a + b p + c p^2`` (a, b, c >= 0) over ``n`` sizes; ``max_error`` is the largest
    relative difference between the law and a count."""

    quantity: str
    a: float
    b: float
    c: float
    n: int
    max_error: float
    p_min: float
    p_max: float

    @property
    def passed(self) -> bool:
        return self.max_error <= COUNT_TOLERANCE

    def predict(self, p: float) -> float:
        """The law's value at ``p`` positions (exact counts extrapolate: their law is exact)."""
        return self.a + self.b * p + self.c * p * p

    @property
    def quadratic(self) -> bool:
        """True when the squared term is more than 1% of the value at the largest size."""
        return self.c * self.p_max**2 > 0.01 * self.predict(self.p_max)

    def exponent(self, p: float) -> float:
        """The local growth exponent d log y / d log p at ``p`` (1 linear, 2 quadratic)."""
        y = self.predict(p)
        return (self.b * p + 2 * self.c * p * p) / y if y > 0 else float("nan")


@dataclass(frozen=True)
class PowerLaw:
    """``y = k p^alpha`` fitted in log-log space; ``residuals`` are measured / law - 1."""

    quantity: str
    k: float
    alpha: float
    n: int
    residuals: tuple[float, ...]
    p_min: float
    p_max: float

    @property
    def max_error(self) -> float:
        return max((abs(r) for r in self.residuals), default=0.0)

    @property
    def refusal(self) -> str | None:
        """Why the law is not to be used for predictions (None when it passed)."""
        if self.max_error > POWER_TOLERANCE:
            return (
                f"a measured point is {100 * self.max_error:.0f}% off the fitted power law "
                f"(over {100 * POWER_TOLERANCE:.0f}%): the times do not follow one law"
            )
        if not ALPHA_RANGE[0] <= self.alpha <= ALPHA_RANGE[1]:
            return (
                f"the fitted exponent {self.alpha:.2f} is outside {ALPHA_RANGE[0]}-{ALPHA_RANGE[1]}: "
                "the times do not grow with size as computation does (a busy machine?)"
            )
        return None

    @property
    def passed(self) -> bool:
        return self.refusal is None

    def predict(self, p: float) -> float | Missing:
        """The law at ``p``; Missing outside the measured range widened by EXTRAPOLATION."""
        if self.refusal is not None:
            return Missing(f"no prediction: {self.refusal}")
        if not self.p_min / EXTRAPOLATION <= p <= self.p_max * EXTRAPOLATION:
            return Missing(
                f"no prediction: {p:,.0f} positions is beyond {EXTRAPOLATION:g}x the measured range "
                f"({self.p_min:,.0f}-{self.p_max:,.0f})"
            )
        return self.k * p**self.alpha


def _points(x: Sequence[float], y: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(xs) & np.isfinite(ys)
    return xs[keep], ys[keep]


def fit_counts(
    quantity: str, positions: Sequence[float], values: Sequence[float]
) -> CountLaw | Missing:
    """Non-negative least squares ``a + b p + c p^2`` on at least three different sizes.

    >>> law = fit_counts("macs", [100, 400, 1600], [1000, 4000, 16000])
    >>> round(law.b, 6), law.passed, law.quadratic
    (10.0, True, False)
    """
    xs, ys = _points(positions, values)
    if len(set(xs.tolist())) < MIN_SIZES:
        return Missing(
            f"need {MIN_SIZES} or more sizes to fit {quantity}, have {len(set(xs.tolist()))}"
        )
    scale_x, scale_y = float(xs.max()), float(max(ys.max(), 1.0))
    design = np.stack([np.ones_like(xs), xs / scale_x, (xs / scale_x) ** 2], axis=1)
    coef, _ = nnls(design, ys / scale_y)
    a, b, c = coef[0] * scale_y, coef[1] * scale_y / scale_x, coef[2] * scale_y / scale_x**2
    fitted = a + b * xs + c * xs * xs
    error = float(np.max(np.abs(fitted - ys) / np.maximum(np.abs(ys), 1.0)))
    return CountLaw(
        quantity, float(a), float(b), float(c), len(xs), error, float(xs.min()), float(xs.max())
    )


def fit_power(
    quantity: str, positions: Sequence[float], values: Sequence[float]
) -> PowerLaw | Missing:
    """``log y = log k + alpha log p`` by least squares on at least three sizes (y > 0).

    >>> law = fit_power("latency_median_ms", [1e4, 4e4, 1.6e5], [2.0, 8.0, 32.0])
    >>> round(law.alpha, 6), law.passed
    (1.0, True)
    """
    xs, ys = _points(positions, values)
    keep = (xs > 0) & (ys > 0)
    xs, ys = xs[keep], ys[keep]
    if len(set(xs.tolist())) < MIN_SIZES:
        return Missing(
            f"need {MIN_SIZES} or more measured sizes to fit a {quantity} law, have {len(set(xs.tolist()))}"
        )
    alpha, log_k = np.polyfit(np.log(xs), np.log(ys), 1)
    law = np.exp(log_k) * xs**alpha
    residuals = tuple(float(v) for v in ys / law - 1.0)
    return PowerLaw(
        quantity,
        float(np.exp(log_k)),
        float(alpha),
        len(xs),
        residuals,
        float(xs.min()),
        float(xs.max()),
    )


def crossover(first: CountLaw, second: CountLaw) -> float | None:
    """The smallest positive ``p`` where ``first`` rises through ``second`` (None if never): a
    root of their difference where that difference grows, so a root where ``first`` falls below
    (a constant term crossing near zero) does not count.

    >>> attention = CountLaw("a", 0, 1, 0.01, 3, 0, 1, 1e4)
    >>> rest = CountLaw("r", 1e-8, 50, 0, 3, 0, 1, 1e4)
    >>> round(crossover(attention, rest))
    4900
    """
    dc, db, da = first.c - second.c, first.b - second.b, first.a - second.a
    roots = np.roots([dc, db, da]) if dc else (np.array([-da / db]) if db else np.array([]))
    rising = [float(r.real) for r in np.atleast_1d(roots)
              if abs(r.imag) < 1e-9 and r.real > 0 and 2 * dc * r.real + db > 0]  # fmt: skip
    return min(rising) if rising else None


def padded(side: int, multiple: int) -> int:
    """``side`` rounded up to ``multiple``."""
    return -(-side // multiple) * multiple


def resolution_label(size: Sequence[int]) -> str:
    """``"720x1280"`` (H x W) for an image size, ``"16384"`` for a point count."""
    return "x".join(str(int(d)) for d in size)


def default_sizes(size: Sequence[int]) -> list[tuple[int, ...]]:
    """The sizes a profile counts at when none are asked for: 1, 2, 3 and 4 times the input size
    per dimension (256 to 1024 px for a 256x256 image; whole multiples keep strided layers'
    rounding the same at every size)."""
    return [tuple(int(d) * f for d in size) for f in (1, 2, 3, 4)]


def count_sweep(
    model: nn.Module,
    inputs: InputSpec,
    sizes: Sequence[Sequence[int]],
    *,
    multiple: int = 1,
    forward_kwargs: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """MACs (all and attention), FLOPs and peak activation memory at every size, smallest first.

    Columns: resolution, size (the label), positions (what the model computes on, after
    padding), padded_pixels (images: the same), macs, macs_attention, macs_other, flops,
    activation_peak_bytes, count_missing (why a size could not be counted).
    """
    rows = []
    order = sorted({tuple(int(d) for d in s) for s in sizes}, key=lambda s: (math.prod(s), s))
    for size in order:
        grown = tuple(padded(d, multiple) for d in size) if inputs.is_image else size
        row: dict[str, Any] = {"resolution": resolution_label(size), "positions": math.prod(grown)}
        if inputs.is_image:
            row.update(height=size[0], width=size[1], padded_height=grown[0], padded_width=grown[1],
                       pixels=inputs.batch * size[0] * size[1], padded_pixels=math.prod(grown) * inputs.batch)  # fmt: skip
        try:
            count = count_model(model, inputs.with_size(grown), forward_kwargs=forward_kwargs)
        except EffprofError as error:
            row["count_missing"] = str(error)[:300]
            rows.append(row)
            continue
        attention = int(count.ops.loc[count.ops["category"] == ATTENTION, "macs"].sum())
        row.update(macs=count.macs, macs_attention=attention, macs_other=count.macs - attention,
                   flops=count.flops, activation_peak_bytes=count.activation_peak_bytes,
                   count_missing=None)  # fmt: skip
        rows.append(row)
    return pd.DataFrame(rows)


def fit_table(sweep: pd.DataFrame) -> pd.DataFrame:
    """One law per quantity against ``positions``: exact counts as polynomials, measured ones as
    power laws. Columns: quantity, law, a, b, c, k, alpha, n, max_error, passed, missing, p_min,
    p_max, exponent_at_max (the local growth exponent at the largest size)."""
    rows = []
    for quantity in (*COUNT_QUANTITIES, *MEASURED_QUANTITIES):
        if quantity not in sweep.columns or not sweep[quantity].notna().any():
            continue
        if quantity in COUNT_QUANTITIES:
            law: Any = fit_counts(quantity, sweep["positions"], sweep[quantity])
            kind = "a + b p + c p^2"
        else:
            law = fit_power(quantity, sweep["positions"], sweep[quantity])
            kind = "k p^alpha"
        row: dict[str, Any] = {
            "quantity": quantity,
            "law": kind,
            "n": int(sweep[quantity].notna().sum()),
        }
        if isinstance(law, Missing):
            row.update(passed=False, missing=law.reason)
        elif isinstance(law, CountLaw):
            row.update(a=law.a, b=law.b, c=law.c, max_error=law.max_error, passed=law.passed,
                       missing=None if law.passed else f"the counts are not a polynomial of degree 2 "
                       f"(largest error {100 * law.max_error:.2f}%)", p_min=law.p_min,
                       p_max=law.p_max, exponent_at_max=law.exponent(law.p_max))  # fmt: skip
        else:
            row.update(k=law.k, alpha=law.alpha, max_error=law.max_error, passed=law.passed,
                       missing=law.refusal, p_min=law.p_min, p_max=law.p_max,
                       exponent_at_max=law.alpha)  # fmt: skip
        rows.append(row)
    columns = ["quantity", "law", "a", "b", "c", "k", "alpha", "n", "max_error", "passed",
               "missing", "p_min", "p_max", "exponent_at_max"]  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


def law_of(fits: pd.DataFrame, quantity: str) -> CountLaw | PowerLaw | None:
    """The fitted law of ``quantity`` from a fit table (None when it could not be fitted)."""
    rows = fits[fits["quantity"] == quantity]
    if rows.empty:
        return None
    row = rows.iloc[0]
    if row["law"] == "a + b p + c p^2":
        if pd.isna(row["a"]):
            return None
        return CountLaw(quantity, row["a"], row["b"], row["c"], int(row["n"]), row["max_error"],
                        row["p_min"], row["p_max"])  # fmt: skip
    if pd.isna(row["k"]):
        return None
    # the table keeps the largest residual only: enough to decide whether the law passed
    residuals = (float(row["max_error"]),)
    return PowerLaw(
        quantity, row["k"], row["alpha"], int(row["n"]), residuals, row["p_min"], row["p_max"]
    )


def three_x_table(
    sweep: pd.DataFrame,
    base: Sequence[int],
    *,
    multiple: int = 1,
    batch: int = 1,
    image: bool = True,
    exact: Callable[[Sequence[int]], Mapping[str, float]] | None = None,
) -> pd.DataFrame:
    """The cost at 3x the size per dimension of ``base``, from each law that passed, checked
    against ``exact(size)`` (counts on meta) or a measurement in the sweep (with the law refitted
    without it, so the check is a real prediction). Rows only for laws that passed.

    Columns: quantity, base, larger, base_value, predicted, ratio_predicted, checked,
    check_source, error (predicted / checked - 1).
    """
    big = tuple(d * SIDE_FACTOR for d in base)
    grow = (lambda s: tuple(padded(d, multiple) for d in s)) if image else (lambda s: tuple(s))
    base_p, big_p = (
        math.prod(grow(base)) * (batch if image else 1),
        math.prod(grow(big)) * (batch if image else 1),
    )
    label = resolution_label(big)
    exact_values = dict(exact(big)) if exact is not None else {}
    rows = []
    for quantity in (*COUNT_QUANTITIES[:3], *MEASURED_QUANTITIES):
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
        fit = (fit_counts if quantity in COUNT_QUANTITIES else fit_power)(
            quantity, points["positions"], points[quantity]
        )
        if isinstance(fit, Missing) or not fit.passed:
            continue
        predicted, at_base = fit.predict(big_p), fit.predict(base_p)
        if isinstance(predicted, Missing) or isinstance(at_base, Missing) or at_base <= 0:
            continue
        rows.append({
            "quantity": quantity, "base": resolution_label(base), "larger": label,
            "base_value": at_base, "predicted": predicted, "ratio_predicted": predicted / at_base,
            "checked": checked, "check_source": source,
            "error": predicted / checked - 1 if checked else None,
        })  # fmt: skip
    return pd.DataFrame(rows)
