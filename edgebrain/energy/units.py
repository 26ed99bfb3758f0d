"""Energies and times as short readable text, for every report that prints them."""

from __future__ import annotations

import math

#: (unit, joules) from the largest down
JOULE_UNITS = (("J", 1.0), ("mJ", 1e-3), ("µJ", 1e-6), ("nJ", 1e-9), ("pJ", 1e-12))


def fmt_j(x: float | None, smallest: str = "nJ") -> str:
    """Joules with an SI prefix and 3 significant digits (``"4.21 µJ"``); ``"?"`` for None or a
    non-finite value. Below one ``smallest`` unit (``"nJ"``, or ``"pJ"`` for per-operation scales)
    the value is still given in that unit."""
    if x is None or not math.isfinite(x):
        return "?"
    a = abs(x)
    for unit, f in JOULE_UNITS:
        if a >= f or unit == smallest:
            return f"{x / f:.3g} {unit}"
    raise ValueError(f"smallest={smallest!r}; expected one of {', '.join(u for u, _ in JOULE_UNITS)}")


def fmt_s(x: float | None) -> str:
    """Seconds with a prefix (s, ms, µs, ns) and 3 significant digits; ``"?"`` for None."""
    if x is None:
        return "?"
    for unit, f in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if abs(x) >= f:
            return f"{x / f:.3g} {unit}"
    return f"{x / 1e-9:.3g} ns"
