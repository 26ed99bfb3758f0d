"""Measured ``[perf]`` figures written into a device profile (``edgebrain bench --write-profile``).

The shipped profiles' ``[perf]`` figures are edgebrain's own estimates. A benchmark run on the board
itself replaces them with measured ones: :func:`write_measured_perf` rewrites the ``[perf]`` table of a
profile (every other line of the file is kept as it is, comments included), marks the figures it
measured with the source ``measured`` (``estimated = false``), keeps the ones it could not measure with
their own source and ``estimated`` flag, records where and when (``measured_on``, ``measured_date``,
``measured_edgebrain``, ``measured_model``, ``measured_precision``, ``measured_step_us``,
``measured_run_step_us``) and adds the ``measured`` citation to ``[sources]``. The result is validated
before it is written, atomically (:func:`edgebrain.safeio.atomic_write`).

Shipped profiles are never written: :func:`destination` sends a profile found in the checkout's
``devices/`` or the installed package to a copy of the same name in the user's folder
(:func:`edgebrain.devices.catalog.user_dir`), where lookups find it first.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

from ..errors import InputError, OutputError
from ..safeio import atomic_write
from .catalog import checkout_dir, load_file, packaged_dir, resolve, user_dir, validate
from .schema import Device

#: the [sources] key of measured figures, and its citation
MEASURED_SOURCE = "measured"
MEASURED_CITATION = ("measured on the device itself by edgebrain bench --write-profile: the board, date, edgebrain "
                     "version and model are [perf]'s measured_* fields, the method each figure's note")
#: the figures of [perf] the latency estimate uses
PERF_FIGURES = ("int_ops_per_cycle", "float_ops_per_cycle", "neuron_update_cycles", "step_overhead_us")
#: what a measurement records beside them, in this order
INFO_FIELDS = ("measured_on", "measured_date", "measured_edgebrain", "measured_model", "measured_precision",
               "measured_step_us", "measured_run_step_us")
_HEADER = re.compile(r"^\s*\[")
_PERF = re.compile(r"^\s*\[\s*perf\s*\]\s*(#.*)?$")
_SOURCES = re.compile(r"^\s*\[\s*sources\s*\]\s*(#.*)?$")
_MEASURED_KEY = re.compile(r"^\s*(measured|\"measured\")\s*=")


def is_shipped(path) -> bool:
    """Whether ``path`` is one of the profiles edgebrain ships (the checkout's ``devices/`` or the
    installed ``edgebrain.device_profiles``)."""
    p = Path(path).resolve()
    return any(d is not None and p.parent == d.resolve() for d in (checkout_dir(), packaged_dir()))


def destination(name_or_path: str) -> tuple[Path, Path]:
    """(the profile to start from, the file to write) for ``--write-profile NAME_OR_PATH``.

    A name (or alias) found among the shipped profiles: a copy of the same file name in the user's folder
    (an earlier copy there is found first by the name, and updated). A name found in the user's folders,
    or a path to an existing profile: that file, updated in place. A path to a shipped profile is refused."""
    s = os.fspath(name_or_path)
    is_path = s.endswith(".toml") or os.sep in s or bool(os.altsep and os.altsep in s)
    if is_path and not Path(s).expanduser().is_file():
        raise InputError("no such device profile: --write-profile updates an existing profile; copy one there "
                         "first (edgebrain devices show NAME names its file) or give a device name", file=s)
    base = resolve(s)
    if is_shipped(base):
        if is_path:
            raise InputError("a profile shipped with edgebrain is not overwritten with measurements; give its name "
                             f"({base.stem}) to write a copy in {user_dir()}, or a path to your own copy", file=s)
        return base, user_dir() / base.name
    return base, base


def check_writable(path) -> None:
    """Fail now, with one line, when ``path``'s folder cannot be created or written (before a benchmark
    that takes minutes): the folder is created and a temporary file made and removed in it."""
    path = Path(path)
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".edgebrain-write-test-", dir=folder)
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise OutputError(f"cannot write the device profile there ({e.strerror or e})", file=str(path)) from None
    if path.exists() and not path.is_file():
        raise OutputError("not a regular file: the device profile cannot be written there", file=str(path))


def check_base(dev: Device) -> None:
    """A profile whose [perf] a benchmark of edgebrain's Python runtime on a Linux board can describe."""
    if dev.kind == "host":
        raise InputError("the host profile describes whichever machine loads it (its fields are detected then); "
                         "measured figures belong in a named profile of the board: copy a profile of kind sbc "
                         "(devices/*.toml) and give its path", file=dev.path)
    if dev.kind == "mcu":
        raise InputError("a microcontroller profile's [perf] describes the C runtime, not the Python runtime "
                         "edgebrain bench measures on a Linux board", file=dev.path)


def _toml_str(s: str) -> str:
    return json.dumps(str(s), ensure_ascii=False)  # a TOML basic string: JSON's escapes are TOML's


def _toml_num(v) -> str:
    v = float(v)
    if not math.isfinite(v):
        raise InputError(f"a measured figure is {v!r}; expected a finite number")
    return repr(float(f"{v:.6g}"))


def _field_line(name: str, value, meta: dict | None) -> str:
    if not meta:
        return f"{name} = {_toml_num(value)}"
    parts = [f"value = {_toml_num(value)}"]
    for k in ("source", "estimated", "note"):
        if meta.get(k) is not None:
            v = meta[k]
            parts.append(f"{k} = {'true' if v is True else 'false' if v is False else _toml_str(v)}")
    return f"{name} = {{ {', '.join(parts)} }}"


def perf_block(base: Device, figures: dict, info: dict) -> list[str]:
    """The new ``[perf]`` table: ``figures`` maps a field of :data:`PERF_FIGURES` to ``{"value", "note"}``
    (measured); the others keep the base profile's value, source and estimated flag. ``info`` holds
    :data:`INFO_FIELDS`."""
    old = base.data["perf"]
    section_note = old.get("note") or ""
    lines = ["[perf]",
             "# measured on the device by edgebrain bench --write-profile (docs/devices.md); figures with their own",
             "# source and estimated = true were not measured and keep the profile's estimate",
             f"source = {_toml_str(MEASURED_SOURCE)}", "estimated = false",
             f"note = {_toml_str('latency figures measured on the device (see measured_*)')}"]
    for name in PERF_FIGURES:
        if name in figures:
            lines.append(_field_line(name, figures[name]["value"], {"note": figures[name].get("note")}))
            continue
        prov = dict(base.provenance.get(f"perf.{name}", {}))
        note = prov.get("note")
        if prov.get("source") != MEASURED_SOURCE and not note:
            note = f"not measured; the estimate's rationale: {section_note}" if section_note else "not measured"
        lines.append(_field_line(name, old[name], {"source": prov.get("source"), "estimated": prov.get("estimated"),
                                                   "note": note}))
    for name in INFO_FIELDS:
        v = info.get(name)
        if v is None:
            continue
        lines.append(f"{name} = {_toml_num(v) if name.endswith('_us') else _toml_str(v)}")
    return lines


def _block_span(lines: list[str], header: re.Pattern) -> tuple[int, int] | None:
    """(start, end) of the table whose header matches: from its header to before the next header, the
    blank lines and comments just before that header left to it."""
    start = next((i for i, ln in enumerate(lines) if header.match(ln)), None)
    if start is None:
        return None
    end = next((i for i in range(start + 1, len(lines)) if _HEADER.match(lines[i])), len(lines))
    if end < len(lines):
        while end > start + 1 and (not lines[end - 1].strip() or lines[end - 1].lstrip().startswith("#")):
            end -= 1
    return start, end


def rewrite(text: str, block: list[str], path: str = "<profile>") -> str:
    """``text`` (a profile) with its ``[perf]`` table replaced by ``block`` and ``[sources]`` citing
    :data:`MEASURED_SOURCE`; every other line kept."""
    lines = text.splitlines()
    span = _block_span(lines, _PERF)
    if span is None:
        raise InputError("no [perf] table in the profile (see docs/devices.md)", file=path)
    lines[span[0]:span[1]] = block
    cite = f"{MEASURED_SOURCE} = {_toml_str(MEASURED_CITATION)}"
    span = _block_span(lines, _SOURCES)
    if span is None:
        lines += ["", "[sources]", cite]
    else:
        at = next((i for i in range(span[0] + 1, span[1]) if _MEASURED_KEY.match(lines[i])), None)
        if at is None:
            lines.insert(span[1], cite)
        else:
            lines[at] = cite
    return "\n".join(lines) + "\n"


def write_measured_perf(base_path, out_path, figures: dict, info: dict) -> Device:
    """Write ``base_path``'s profile with measured ``[perf]`` figures (:func:`perf_block`) to ``out_path``,
    atomically; the written profile is validated first and returned."""
    base = load_file(base_path)
    check_base(base)
    text = rewrite(Path(base_path).read_text(encoding="utf-8"), perf_block(base, figures, info), str(base_path))
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:  # an unusual layout (e.g. perf.x = ... keys elsewhere)
        raise InputError(f"cannot rewrite the profile's [perf] table: the result is not valid TOML ({e})",
                         file=str(base_path)) from None
    dev = validate(raw, str(out_path))
    with atomic_write(out_path, "device profile") as f:
        f.write(text.encode("utf-8"))
    return dev


__all__ = ["INFO_FIELDS", "MEASURED_CITATION", "MEASURED_SOURCE", "PERF_FIGURES", "check_base", "check_writable",
           "destination", "is_shipped", "perf_block", "rewrite", "write_measured_perf"]
