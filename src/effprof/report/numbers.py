"""Numbers as a reader wants them: with their unit, a sensible precision, and "—" when missing."""

from __future__ import annotations

import math
from typing import Any

from effprof.units import binary_bytes, si


def _bad(value: Any) -> bool:
    if value is None or isinstance(value, bool):
        return True
    try:
        return math.isnan(float(value))
    except (TypeError, ValueError):
        return True


def count(value: Any, unit: str = "") -> str:
    """``count(4.085e10, "MAC")`` -> ``"40.9 GMAC"``."""
    return "—" if _bad(value) else si(float(value), unit)


def integer(value: Any) -> str:
    """``6756161`` -> ``"6,756,161"``."""
    return "—" if _bad(value) else f"{round(float(value)):,}"


def ms(value: Any) -> str:
    """Milliseconds with 3 significant digits (``1.23 ms``, ``456 ms``, ``12,345 ms``)."""
    if _bad(value):
        return "—"
    number = float(value)
    if number >= 1000:
        return f"{number:,.0f} ms"
    return f"{number:.3g} ms"


def nbytes(value: Any) -> str:
    """Binary bytes (``25.77 MiB``)."""
    return "—" if _bad(value) else binary_bytes(float(value))


def pct(value: Any, digits: int = 1) -> str:
    """A share 0..1 as a percentage (``0.8399`` -> ``"84.0 %"``)."""
    return "—" if _bad(value) else f"{100 * float(value):.{digits}f} %"


def signed_pct(value: Any, digits: int = 2) -> str:
    """A relative error 0..1 as a signed percentage, ``0.00 %`` when it rounds to zero."""
    if _bad(value):
        return "—"
    number = 100 * float(value)
    if abs(number) < 0.5 * 10**-digits:
        return f"{0:.{digits}f} %"
    return f"{number:+.{digits}f} %"


def times(value: Any) -> str:
    """A ratio as ``"1.48x"`` (two decimals below 10, one above)."""
    if _bad(value):
        return "—"
    number = float(value)
    return f"{number:.2f}x" if number < 10 else f"{number:,.1f}x"


def plain(value: Any, digits: int = 3) -> str:
    """A float with ``digits`` significant digits."""
    return "—" if _bad(value) else f"{float(value):.{digits}g}"


def giga(value: Any) -> float | None:
    """Value / 1e9 for chart axes in G units (None stays None)."""
    return None if _bad(value) else float(value) / 1e9
