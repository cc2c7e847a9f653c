"""Numbers written for people, shared by the report and the tables: three significant digits and an
SI prefix (``3633900.0`` -> ``3.63 M``) rather than ``3.6339e+06``; exact integers in groups of three;
durations in the unit that reads best (``8.37 ms``, ``35.3 s``, ``10 min 14 s``)."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["duration", "grouped", "human"]

_BIG = ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))
_SMALL = ((1e-3, "m"), (1e-6, "µ"), (1e-9, "n"))


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return not math.isfinite(float(value))
    except (TypeError, ValueError):
        return True


def human(value: Any, *, digits: int = 3, unit: str = "") -> str:
    """``value`` with ``digits`` significant digits and an SI prefix from k up: ``3.63 M``, ``23.7 k``,
    ``661``, ``0.052``; ``-`` for a missing or non-finite value. With a ``unit``, small values take the
    prefixes m, µ, n too (``human(0.0041, unit="s")`` is ``4.1 ms``)."""
    if _missing(value):
        return "-"
    v = float(value)
    scales = [*_BIG, (1.0, "")] + (list(_SMALL) if unit else [])
    scale, prefix = next(((s, p) for s, p in scales if abs(v) >= s), (1.0, ""))
    mantissa = f"{v / scale:.{digits}g}"
    if abs(float(mantissa)) >= 1000 and scale < _BIG[0][0]:  # 999 999 rounds to 1000 k: that is 1 M
        scale, prefix = scales[[s for s, _ in scales].index(scale) - 1]
        mantissa = f"{v / scale:.{digits}g}"
    if "e" in mantissa:  # beyond the prefixes (or below them without a unit): plain scientific
        return f"{v:.{digits}g} {unit}".rstrip()
    suffix = prefix + unit
    return f"{mantissa} {suffix}" if suffix else mantissa


def grouped(value: Any, *, sep: str = "\u202f") -> str:
    """An exact integer in groups of three digits (``4071234567`` -> ``4 071 234 567``, with a narrow
    no-break space by default); ``-`` for a missing value."""
    if _missing(value):
        return "-"
    return f"{int(value):,}".replace(",", sep)


def duration(seconds: Any) -> str:
    """A duration: ``8.37 ms`` below a second, ``35.3 s`` below a minute, then ``10 min 14 s`` and
    ``2 h 05 min``; ``-`` for a missing value."""
    if _missing(seconds):
        return "-"
    s = float(seconds)
    if abs(s) < 59.95:
        return human(s, unit="s")
    whole = round(s)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    minutes = round(s / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min"
