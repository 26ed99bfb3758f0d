"""Option values as people type them (``rate=100``, ``valid=a|b``, ``realtime=yes``), parsed to
Python values: shared by the command line, stream specs and source URLs. Imports nothing heavy,
so the command line stays quick to start."""

from __future__ import annotations

from .errors import InputError


def parse_options(pairs) -> dict:
    """Command-line ``key=value`` options (``--option rate=100``) as a dict of typed values."""
    out = {}
    for p in pairs or ():
        k, eq, v = p.partition("=")
        if not eq or not k:
            raise InputError(f"--option '{p}': expected key=value")
        out[k.strip()] = option_value(v.strip())
    return out


def option_value(v: str):
    """A spec or URL option's text as the value it spells: a|b → list, true/false/none, int, float, else str."""
    if "|" in v:
        return [option_value(x) for x in v.split("|")]
    low = v.lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    if low in ("none", "null"):
        return None
    try:
        return int(v)
    except ValueError:
        pass
    try:
        return float(v)
    except ValueError:
        return v


def positive_number(v, what: str, unit: str = "") -> float:
    """``v`` as a float that is finite and > 0 (a rate, a duration, a limit), else an InputError
    naming ``what`` (e.g. ``"rate"``, ``"--duration"``) and what was expected. Booleans, text, NaN,
    ±inf, 0 and negative values are refused."""
    try:
        f = float(v)
    except (TypeError, ValueError, OverflowError):
        f = float("nan")
    if isinstance(v, bool) or not (f > 0 and f != float("inf")):
        raise InputError(f"{what}={v!r}; expected a finite number{' of ' + unit if unit else ''} > 0")
    return f
