"""The device profile schema: its fields, the :class:`Device` a validated profile becomes, and the
validation itself (:func:`check_profile`).

The schema is documented in ``docs/devices.md``. In short: sections ``cpu``, ``memory``, ``python``,
``power``, ``perf``, ``runtime`` and ``energy`` hold fields; a numeric field is either a bare number
or an inline table ``{ value = 3.0, source = "key", estimated = true, note = "..." }``. A bare
number takes its section's ``source`` and ``estimated`` keys. Every ``source`` must name an entry
of the ``[sources]`` table (the citation). ``[[sensors]]`` lists the power meters the device offers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..errors import FormatError

SCHEMA_VERSION = 1
KINDS = ("sbc", "mcu", "host")
FPUS = ("none", "sp", "dp")
RUNTIMES = ("cpython", "micropython", "none")
WEIGHTS_IN = ("ram", "flash")
METERS = ("rapl", "hwmon", "ina3221", "tegrastats", "pi5-pmic", "um25c", "fnb58", "model")
ENERGY_OPS = tuple(f"{t}{b}_{op}" for t in ("int", "fp") for op in ("add", "mul") for b in (8, 16, 32))
ENERGY_FIELDS = ENERGY_OPS + ("sram_access", "dram_access")

# field spec: (type, required, minimum (exclusive? → "gt"), provenance-carrying)
# types: "str", "int", "num", "bool", "strs" (list of strings), or a tuple of allowed strings
_S = {
    "": {"schema": ("int", True), "name": ("str", True), "title": ("str", True), "kind": (KINDS, True),
         "aliases": ("strs", False), "notes": ("str", False)},
    "cpu": {"model": ("str", True), "arch": ("str", True), "cores": ("int", True, 1), "clock_mhz": ("num", True, "gt0"),
            "fpu": (FPUS, True), "simd": ("strs", True), "cache_bytes": ("int", False, 0)},
    "memory": {"ram_bytes": ("int", True, "gt0"), "flash_bytes": ("int", True, 0), "weights_in": (WEIGHTS_IN, True)},
    "python": {"runtime": (RUNTIMES, True), "version": ("str", False), "numba": ("bool", True), "note": ("str", False)},
    "power": {"idle_w": ("num", True, 0), "active_w": ("num", True, 0), "supply": ("str", False)},
    "perf": {"int_ops_per_cycle": ("num", True, "gt0"), "float_ops_per_cycle": ("num", True, "gt0"),
             "neuron_update_cycles": ("num", True, 0), "step_overhead_us": ("num", True, 0), "note": ("str", False),
             # written by edgebrain bench --write-profile (devices/measured.py): what was measured, where and when
             "measured_on": ("str", False), "measured_date": ("str", False), "measured_edgebrain": ("str", False),
             "measured_model": ("str", False), "measured_precision": (("int", "float"), False),
             "measured_step_us": ("num", False, "gt0"), "measured_run_step_us": ("num", False, "gt0")},
    "runtime": {"ram_bytes": ("int", True, 0), "flash_bytes": ("int", True, 0), "description": ("str", True)},
    "energy": {**{k: ("num", True, 0) for k in ENERGY_FIELDS}},
}
SENSOR_FIELDS = {"meter": (METERS, True), "how": ("str", True), "scope": ("str", False), "rate_hz": ("num", False, "gt0"),
                 "rails": ("strs", False)}
#: sections whose numeric fields carry a source (and may be marked estimated)
PROVENANCE_SECTIONS = ("cpu", "memory", "power", "perf", "runtime", "energy")
#: fields a host profile may set to "auto"
AUTO_FIELDS = {("cpu", "model"), ("cpu", "arch"), ("cpu", "cores"), ("cpu", "clock_mhz"), ("cpu", "fpu"), ("cpu", "simd"),
               ("cpu", "cache_bytes"), ("memory", "ram_bytes"), ("python", "version"), ("python", "numba"), ("", "sensors")}

_TYPE_NAMES = {"str": "a string", "int": "an integer", "num": "a number", "bool": "true or false",
               "strs": "a list of strings"}


@dataclass
class Device:
    """A validated device profile. ``data`` holds plain values (inline tables resolved to their
    ``value``); ``provenance`` maps ``"section.field"`` to ``{source, citation, estimated, note}``."""

    path: str
    data: dict
    provenance: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.data["name"]

    @property
    def kind(self) -> str:
        return self.data["kind"]

    @property
    def is_mcu(self) -> bool:
        return self.kind == "mcu"

    def __getitem__(self, dotted: str):
        sec, _, key = dotted.partition(".")
        return self.data[sec][key] if key else self.data[sec]

    def energy(self, op: str) -> float:
        """Energy of one operation (``int8_add``, ``fp32_mul``, ``sram_access``...) in picojoules."""
        return float(self.data["energy"][op])

    def estimated(self, dotted: str) -> bool:
        return bool(self.provenance.get(dotted, {}).get("estimated"))

    def as_dict(self) -> dict:
        return {**self.data, "file": self.path, "provenance": self.provenance}


# --------------------------------------------------------------------------- validation


def _err(path, where, msg):
    return FormatError(msg, file=path, where=where)


def _check_value(v, spec, path, where):
    typ = spec[0]
    lo = spec[2] if len(spec) > 2 else None
    if isinstance(typ, tuple):
        if not isinstance(v, str) or v not in typ:
            raise _err(path, where, f"got {v!r}; expected one of {', '.join(typ)}")
        return v
    if typ == "str":
        ok = isinstance(v, str)
    elif typ == "bool":
        ok = isinstance(v, bool)
    elif typ == "int":
        ok = isinstance(v, int) and not isinstance(v, bool)
    elif typ == "num":
        ok = isinstance(v, (int, float)) and not isinstance(v, bool)
    elif typ == "strs":
        ok = isinstance(v, list) and all(isinstance(x, str) for x in v)
    else:  # pragma: no cover
        raise AssertionError(typ)
    if not ok:
        raise _err(path, where, f"got {type(v).__name__} {v!r}; expected {_TYPE_NAMES[typ]}")
    if typ in ("int", "num"):
        if not math.isfinite(v):
            raise _err(path, where, f"got {v!r}; expected a finite number")
        if lo == "gt0" and not v > 0:
            raise _err(path, where, f"got {v!r}; expected a number > 0")
        if isinstance(lo, (int, float)) and v < lo:
            raise _err(path, where, f"got {v!r}; expected a number >= {lo}")
    return v


def check_profile(raw: dict, path: str = "<profile>") -> Device:
    """Check a parsed profile against the schema; return a :class:`Device`. Errors name the file and
    the field (``section.field``) and say what was expected. A host profile's ``"auto"`` fields must
    already be filled in (:func:`edgebrain.devices.host.fill_host`; :func:`edgebrain.devices.validate`
    does both)."""
    raw = dict(raw)
    kind = raw.get("kind")
    sources = raw.get("sources", {})
    if not isinstance(sources, dict) or not all(isinstance(v, str) for v in sources.values()):
        raise _err(path, "sources", "expected a table of key = \"citation\" strings")
    data: dict = {}
    prov: dict = {}
    known = set(_S) - {""} | {"sensors", "sources"} | set(_S[""])
    for k in raw:
        if k not in known:
            raise _err(path, k, f"unknown field; expected one of {', '.join(sorted(known))}")
    for sec, fields in _S.items():
        if sec == "":
            src_tbl = raw
        else:
            if sec not in raw:
                raise _err(path, f"[{sec}]", "missing section; see docs/devices.md for the schema")
            src_tbl = raw[sec]
            if not isinstance(src_tbl, dict):
                raise _err(path, sec, f"got {type(src_tbl).__name__}; expected a table [{sec}]")
        out = {}
        sec_source = src_tbl.get("source") if sec in PROVENANCE_SECTIONS else None
        sec_est = src_tbl.get("estimated", False) if sec in PROVENANCE_SECTIONS else False
        if sec in PROVENANCE_SECTIONS:
            if sec_source is not None and (not isinstance(sec_source, str) or sec_source not in sources):
                raise _err(path, f"{sec}.source", f"got {sec_source!r}; expected a key of [sources] "
                           f"({', '.join(sources) or 'none defined'})")
            if not isinstance(sec_est, bool):
                raise _err(path, f"{sec}.estimated", f"got {sec_est!r}; expected true or false")
        allowed = set(fields) | ({"source", "estimated"} if sec in PROVENANCE_SECTIONS else set())
        if sec != "":
            for k in src_tbl:
                if k not in allowed:
                    raise _err(path, f"{sec}.{k}", f"unknown field; expected one of {', '.join(sorted(allowed))}")
        for fname, spec in fields.items():
            where = f"{sec}.{fname}" if sec else fname
            required = spec[1] and not (fname == "dram_access" and kind == "mcu")
            if fname not in src_tbl:
                if required:
                    raise _err(path, where, f"missing field; expected {_describe(spec)}")
                continue
            v = src_tbl[fname]
            meta = {}
            if isinstance(v, dict) and sec in PROVENANCE_SECTIONS:
                bad = set(v) - {"value", "source", "estimated", "note"}
                if bad:
                    raise _err(path, where, f"unknown key(s) {', '.join(sorted(bad))} in the inline table; expected "
                               "value, source, estimated, note")
                if "value" not in v:
                    raise _err(path, where, "inline table without 'value'; expected { value = ..., source = ..., "
                               "estimated = true|false }")
                meta = v
                v = v["value"]
            v = _check_value(v, spec, path, where)
            out[fname] = v
            if sec in PROVENANCE_SECTIONS and spec[0] in ("int", "num"):
                src = meta.get("source", sec_source)
                est = meta.get("estimated", sec_est)
                if src is None:
                    raise _err(path, where, f"no source: give {sec}.source or {{ value = ..., source = \"key\" }} "
                               "naming an entry of [sources]")
                if not isinstance(src, str) or src not in sources:
                    raise _err(path, f"{where}.source", f"got {src!r}; expected a key of [sources] "
                               f"({', '.join(sources) or 'none defined'})")
                if not isinstance(est, bool):
                    raise _err(path, f"{where}.estimated", f"got {est!r}; expected true or false")
                note = meta.get("note")
                if note is not None and not isinstance(note, str):
                    raise _err(path, f"{where}.note", f"got {note!r}; expected a string")
                prov[where] = {"source": src, "citation": sources[src], "estimated": est,
                               **({"note": note} if note else {})}
        if sec == "":
            data.update(out)
        else:
            data[sec] = out
    if data["schema"] != SCHEMA_VERSION:
        raise _err(path, "schema", f"got {data['schema']}; expected {SCHEMA_VERSION} (this edgebrain's profile schema)")
    sensors = raw.get("sensors", [])
    if not isinstance(sensors, list):
        raise _err(path, "sensors", "expected an array of tables [[sensors]]")
    data["sensors"] = []
    for i, s in enumerate(sensors):
        if not isinstance(s, dict):
            raise _err(path, f"sensors[{i}]", "expected a table with meter, how")
        for k in s:
            if k not in SENSOR_FIELDS:
                raise _err(path, f"sensors[{i}].{k}", f"unknown field; expected one of {', '.join(SENSOR_FIELDS)}")
        row = {}
        for fname, spec in SENSOR_FIELDS.items():
            if fname not in s:
                if spec[1]:
                    raise _err(path, f"sensors[{i}].{fname}", f"missing field; expected {_describe(spec)}")
                continue
            row[fname] = _check_value(s[fname], spec, path, f"sensors[{i}].{fname}")
        data["sensors"].append(row)
    data["sources"] = dict(sources)
    data.setdefault("aliases", [])
    return Device(path=path, data=data, provenance=prov)


def _describe(spec) -> str:
    typ = spec[0]
    if isinstance(typ, tuple):
        return "one of " + ", ".join(typ)
    lo = spec[2] if len(spec) > 2 else None
    s = _TYPE_NAMES[typ]
    if lo == "gt0":
        s += " > 0"
    elif lo is not None:
        s += f" >= {lo}"
    return s


# --------------------------------------------------------------------------- display helpers


def fmt_bytes(n) -> str:
    n = float(n)
    for unit, div in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(n) >= div:
            return f"{n / div:.4g} {unit}"
    return f"{int(n)} B"


def python_summary(d: Device) -> str:
    p = d.data["python"]
    s = {"cpython": "CPython", "micropython": "MicroPython", "none": "no Python"}[p["runtime"]]
    if p.get("version"):
        s += f" {p['version']}"
    s += ", numba" if p["numba"] else ", no numba"
    return s
