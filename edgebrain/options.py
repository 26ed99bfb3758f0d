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


def options_only(spec) -> bool:
    """Whether a spec string is options alone (``crop=1|2|3|4,downsample=2``) rather than
    ``name[:key=value,...]``: its text before the first ``=`` names no component (has no ``:``)."""
    if not isinstance(spec, str):
        return False
    head, eq, _ = spec.strip().partition("=")
    return bool(eq) and ":" not in head


def _spec_pairs(text: str, what: str) -> list[tuple[str, str]]:
    out = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        k, eq, v = part.partition("=")
        if not eq or not k.strip():
            raise InputError(f"{what}: '{part}' is not key=value")
        out.append((k.strip(), v.strip()))
    return out


def merge_spec(stored, given):
    """The spec to use when ``given`` (``--encoder``) may override ``stored`` (the model's own).

    ``given`` None or empty: ``stored``. ``given`` with a name (``bin`` or ``bin:crop=...``):
    ``given``, replacing ``stored`` whole. ``given`` as options alone (``crop=1|2|3|4``): ``stored``
    with those options set, the others kept (``bin:window_us=20000,polarity=split`` +
    ``crop=1|2|3|4`` → ``bin:window_us=20000,polarity=split,crop=1|2|3|4``); values are kept as
    typed. Options alone with no ``stored`` spec to merge into are an InputError."""
    if given is None or (isinstance(given, str) and not given.strip()):
        return stored
    if not options_only(given):
        return given
    if not stored:
        raise InputError(f"--encoder '{given}': options alone are merged into the model's encoder spec, and "
                         "there is none; give the encoder's name too, e.g. 'bin:" + given.strip() + "'")
    name, _, rest = str(stored).strip().partition(":")
    merged = dict(_spec_pairs(rest, f"encoder spec '{stored}'"))
    merged.update(_spec_pairs(given, f"--encoder '{given}'"))
    return name.strip() + (":" + ",".join(f"{k}={v}" for k, v in merged.items()) if merged else "")
