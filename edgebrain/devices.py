"""Device profiles: one TOML file per device (``devices/*.toml``), validated on load.

The schema is documented in ``docs/devices.md``. In short: sections ``cpu``, ``memory``, ``python``,
``power``, ``perf``, ``runtime`` and ``energy`` hold fields; a numeric field is either a bare number
or an inline table ``{ value = 3.0, source = "key", estimated = true, note = "..." }``. A bare
number takes its section's ``source`` and ``estimated`` keys. Every ``source`` must name an entry
of the ``[sources]`` table (the citation). ``[[sensors]]`` lists the power meters the device offers.

Profiles are looked up, by file stem, ``name`` or alias, in: the directories of
``$EDGEBRAIN_DEVICES`` (``os.pathsep``-separated), ``<checkout>/devices`` when running from a
source checkout, then ``edgebrain/devices_data`` (the copy shipped in the wheel; a test checks it is
identical to ``devices/``). A path to a ``.toml`` file is loaded as is.

The ``host`` profile (``kind = "host"``) may set fields to ``"auto"``: they are read from the running
machine when it is loaded (``/proc/cpuinfo``, ``os.cpu_count()``, ``/proc/meminfo``, cpufreq,
``/sys/class/powercap`` for RAPL and ``/sys/class/hwmon`` for power sensors).
"""

from __future__ import annotations

import glob
import math
import os
import platform
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .errors import FormatError, InputError

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
             "neuron_update_cycles": ("num", True, 0), "step_overhead_us": ("num", True, 0), "note": ("str", False)},
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


# --------------------------------------------------------------------------- lookup


def search_dirs() -> list[tuple[str, Path]]:
    """(label, directory) pairs searched for profiles, first match wins."""
    out = []
    for d in filter(None, os.environ.get("EDGEBRAIN_DEVICES", "").split(os.pathsep)):
        out.append(("$EDGEBRAIN_DEVICES", Path(d).expanduser()))
    repo = checkout_dir()
    if repo is not None:
        out.append(("checkout", repo))
    out.append(("installed", packaged_dir()))
    return out


def checkout_dir() -> Path | None:
    """``<repo>/devices`` when edgebrain runs from a source checkout (never a stray site-packages folder)."""
    root = Path(__file__).resolve().parent.parent
    pp = root / "pyproject.toml"
    d = root / "devices"
    try:
        if d.is_dir() and pp.is_file() and 'name = "edgebrain"' in pp.read_text(encoding="utf-8"):
            return d
    except OSError:
        pass
    return None


def packaged_dir() -> Path:
    return Path(__file__).resolve().parent / "devices_data"


def _norm(s: str) -> str:
    return re.sub(r"[\s_\-]+", "", s.lower())


def _profiles() -> dict[str, Path]:
    """Profile files by file stem, first directory wins."""
    found: dict[str, Path] = {}
    for _, d in search_dirs():
        if d.is_dir():
            for p in sorted(d.glob("*.toml")):
                found.setdefault(p.stem, p)
    return found


def names() -> list[str]:
    return sorted(_profiles())


def resolve(name_or_path: str) -> Path:
    """The profile file for a device name, alias or path."""
    s = os.fspath(name_or_path)
    if s.endswith(".toml") or os.sep in s or (os.altsep and os.altsep in s):
        p = Path(s).expanduser()
        if not p.is_file():
            raise InputError("device profile file not found; expected a .toml profile (see docs/devices.md)", file=s)
        return p
    profiles = _profiles()
    key = _norm(s)
    for stem, p in profiles.items():
        if _norm(stem) == key:
            return p
    for stem, p in profiles.items():  # names and aliases (read cheaply, without validation)
        try:
            raw = tomllib.loads(p.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
            continue
        al = [raw.get("name", "")] + [a for a in raw.get("aliases", []) if isinstance(a, str)]
        if any(isinstance(a, str) and _norm(a) == key for a in al):
            return p
    raise InputError(f"no device profile '{s}'; available: {', '.join(profiles) or 'none found'} "
                     "(or give a path to your own .toml profile)")


def load(name_or_path) -> Device:
    """Load and validate a profile by name, alias or path."""
    return load_file(resolve(name_or_path))


def load_all() -> list[Device]:
    return [load_file(p) for p in _profiles().values()]


def load_file(path) -> Device:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("device profile file not found", file=str(path)) from None
    except (OSError, UnicodeDecodeError) as e:
        raise FormatError(f"cannot read the device profile ({e})", file=str(path)) from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise FormatError(f"not valid TOML ({e})", file=str(path)) from None
    return validate(raw, str(path))


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


def validate(raw: dict, path: str = "<profile>") -> Device:
    """Check a parsed profile against the schema; return a :class:`Device`. Errors name the file and
    the field (``section.field``) and say what was expected."""
    raw = dict(raw)
    kind = raw.get("kind")
    if kind == "host":
        raw = _fill_host(raw)
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


# --------------------------------------------------------------------------- the host


def _read(path) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def detect_host() -> dict:
    """Facts about the running machine, each with where it was read from."""
    cpuinfo = _read("/proc/cpuinfo")
    meminfo = _read("/proc/meminfo")

    def first(key):
        m = re.search(rf"^{key}\s*:\s*(.*)$", cpuinfo, re.M)
        return m.group(1).strip() if m else None

    flags = set((first("flags") or first("Features") or "").split())
    arch = platform.machine() or "unknown"
    model = first("model name") or first("Hardware") or first("Model") or first("cpu model") or platform.processor() or arch
    cores = os.cpu_count() or 1
    clock = None
    khz = _read("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq").strip()
    if khz.isdigit():
        clock = int(khz) / 1000.0
    elif first("cpu MHz"):
        try:
            clock = float(first("cpu MHz"))
        except ValueError:
            clock = None
    simd = [f for f in ("neon", "asimd", "sve", "sve2", "sse2", "sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni",
                        "avx512_bf16", "avx_vnni") if f in flags]
    if arch in ("aarch64", "arm64") and "neon" not in simd:
        simd.insert(0, "neon")
    cache = None
    m = re.search(r"^cache size\s*:\s*(\d+)\s*KB", cpuinfo, re.M)
    if m:
        cache = int(m.group(1)) * 1024
    else:
        for lvl in ("index3", "index2"):
            s = _read(f"/sys/devices/system/cpu/cpu0/cache/{lvl}/size").strip()
            mm = re.match(r"(\d+)K", s)
            if mm:
                cache = int(mm.group(1)) * 1024
                break
    ram = None
    m = re.search(r"^MemTotal:\s*(\d+)\s*kB", meminfo, re.M)
    if m:
        ram = int(m.group(1)) * 1024
    fpu = "dp" if (arch in ("x86_64", "aarch64", "arm64", "AMD64") or "fpu" in flags or "vfpv4" in flags) else "none"
    try:
        import numba  # noqa: F401

        has_numba = True
    except ImportError:
        has_numba = False
    sensors = []
    rapl = sorted(glob.glob("/sys/class/powercap/intel-rapl:*"))
    if rapl:
        readable = os.access(os.path.join(rapl[0], "energy_uj"), os.R_OK)
        sensors.append({"meter": "rapl", "scope": "package",
                        "how": f"powercap sysfs {rapl[0]}/energy_uj (µJ, wraps at max_energy_range_uj); "
                               + ("readable by this user" if readable else
                                  "root-only since Linux 5.10: run as root or chmod/udev rule energy_uj to 0444")})
    hw = sorted(glob.glob("/sys/class/hwmon/hwmon*/power*_input"))
    if hw:
        sensors.append({"meter": "hwmon", "scope": "rail", "how": f"hwmon power*_input (µW): {', '.join(hw[:4])}"})
    sensors.append({"meter": "model", "scope": "estimate",
                    "how": "no sensor: the analytical estimate from this profile (edgebrain profile --meter model)"})
    return {"model": model, "arch": arch, "cores": cores, "clock_mhz": clock, "fpu": fpu, "simd": simd,
            "cache_bytes": cache, "ram_bytes": ram, "python_version": platform.python_version(), "numba": has_numba,
            "sensors": sensors}


def _fill_host(raw: dict) -> dict:
    """Replace "auto" values of a host profile with what the running machine reports."""
    h = detect_host()
    src = {"detected": "read from the running machine when the profile was loaded (/proc/cpuinfo, os.cpu_count(), "
                       "/proc/meminfo, cpufreq, /sys/class/powercap, /sys/class/hwmon)"}
    raw["sources"] = {**src, **(raw.get("sources") or {})}
    facts = {("cpu", "model"): h["model"], ("cpu", "arch"): h["arch"], ("cpu", "cores"): h["cores"],
             ("cpu", "clock_mhz"): h["clock_mhz"], ("cpu", "fpu"): h["fpu"], ("cpu", "simd"): h["simd"],
             ("cpu", "cache_bytes"): h["cache_bytes"], ("memory", "ram_bytes"): h["ram_bytes"],
             ("python", "version"): h["python_version"], ("python", "numba"): h["numba"], ("", "sensors"): h["sensors"]}
    for (sec, key), value in facts.items():
        tbl = raw if sec == "" else raw.get(sec)
        if not isinstance(tbl, dict) or tbl.get(key) != "auto":
            continue
        tbl = dict(tbl)
        if value is None:
            if (sec, key) == ("cpu", "clock_mhz"):
                value = {"value": 1000.0, "source": "detected", "estimated": True,
                         "note": "clock not reported by this machine; 1 GHz assumed"}
            else:
                tbl.pop(key)
                value = None
        elif sec in PROVENANCE_SECTIONS and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = {"value": value, "source": "detected"}
        if value is not None:
            tbl[key] = value
        if sec == "":
            raw = {**raw, key: value} if value is not None else {k: v for k, v in raw.items() if k != key}
        else:
            raw[sec] = tbl
    for sec, key in AUTO_FIELDS:  # anything still "auto" is an error in validation, with a clear message
        tbl = raw if sec == "" else raw.get(sec)
        if isinstance(tbl, dict) and tbl.get(key) == "auto":
            tbl.pop(key)
    return raw


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


# --------------------------------------------------------------------------- fit


def _buffer_bytes(model, precision: str) -> tuple[int, str]:
    """Activation buffers at batch 1: every node's output held at once (no buffer reuse), 4 bytes per
    element (float32, or int32 accumulators in fixed point)."""
    import numpy as np

    g = model.graph
    n = sum(int(np.prod(g.out_shapes[name])) for name in g.order)
    return 4 * n, (f"activation buffers: every node's output kept ({n} values × 4 B, "
                   f"{'float32' if precision == 'float' else 'int32 accumulators'}; no buffer reuse)")


def _footprint(model, precision: str) -> dict:
    try:
        from .metrics import footprint
    except ImportError:  # pragma: no cover - metrics ships with edgebrain
        footprint = None
    if footprint is not None:
        f = footprint(model, precision)
        return {"weights": f["param_bytes"], "state": f["state_bytes"], "projected": bool(f.get("estimated"))}
    s = model.summary()["totals"]
    if precision == "float":
        return {"weights": s["float_bytes"], "state": s["state_float_bytes"], "projected": False}
    return {"weights": s["int_bytes"], "state": s["state_int_bytes"], "projected": not model.quant}


def decision_window(model) -> dict | None:
    """Steps per decision from the model's stream decoder spec (``count:window=100,hop=10``)."""
    spec = (model.graph.meta.get("stream") or {}).get("decoder")
    if not spec:
        return None
    kw = {}
    _, _, rest = str(spec).partition(":")
    for part in filter(None, rest.split(",")):
        k, _, v = part.partition("=")
        kw[k.strip()] = v.strip()
    try:
        window = int(kw.get("window", 50))
        hop = int(kw.get("hop", window))
    except ValueError:
        return None
    return {"decoder": spec, "window": window, "hop": hop}


def fit(model, device: Device, precision: str = "auto") -> dict:
    """Does ``model`` fit ``device``: RAM and flash at the deployed precision, latency per timestep
    and energy per inference (analytical estimates), with the verdict, margins and assumptions."""
    from .energy.estimate import counts_for, estimate, latency

    if precision == "auto":
        precision = "int" if (model.quant or device.is_mcu) else "float"
    if precision not in ("int", "float"):
        raise InputError(f"precision '{precision}'; expected auto, int or float")
    assumptions, warnings = [], []
    fp = _footprint(model, precision)
    if fp["projected"]:
        assumptions.append("model not quantized: fixed-point footprint projected for int8 weights, int32 biases and "
                           "requantisation constants, int16 state (edgebrain convert --quantize int8 defaults)")
    buf, buf_text = _buffer_bytes(model, precision)
    assumptions.append(buf_text)
    rt = device.data["runtime"]
    mem = device.data["memory"]
    weights_in_flash = mem["weights_in"] == "flash"
    ram_items = {"state": fp["state"], "buffers": buf, "runtime": rt["ram_bytes"]}
    flash_items = None
    if weights_in_flash:
        flash_items = {"weights": fp["weights"], "runtime": rt["flash_bytes"]}
        assumptions.append("weights stored in flash as constants and read in place; state and buffers in RAM")
    else:
        ram_items = {"weights": fp["weights"], **ram_items}
        assumptions.append("weights, state and buffers in RAM")
    assumptions.append(f"runtime footprint ({'estimated' if device.estimated('runtime.ram_bytes') else 'given'}): "
                       f"{fmt_bytes(rt['ram_bytes'])} RAM, {fmt_bytes(rt['flash_bytes'])} flash — {rt['description']}")

    def check(items, avail):
        need = int(sum(items.values()))
        return {"items": {k: int(v) for k, v in items.items()}, "need": need, "available": int(avail),
                "margin": int(avail) - need, "margin_pct": 100.0 * (int(avail) - need) / avail if avail else None,
                "fits": need <= avail}

    ram = check(ram_items, mem["ram_bytes"])
    if flash_items is not None:
        flash = check(flash_items, mem["flash_bytes"])
    else:
        flash = {"checked": False, "reason": "the model file lives on storage (SD card, eMMC, NVMe)", "fits": True,
                 "need": int(fp["weights"])}
    fits = ram["fits"] and flash["fits"]

    counts = counts_for(model, precision)
    assumptions += [f"operation counts: {a}" for a in counts.get("assumed", [])]
    t_step, lat_text = latency(counts, device)
    steps = max(int(counts["steps"]), 1)
    est = estimate(counts, device, time_s=None, static=None, footprint_bytes=fp["weights"] + fp["state"])
    per_step_dyn = est.total_j / steps
    active = float(device.data["power"]["active_w"])
    per_step_dev = active * t_step
    energy = {"per_step_j": per_step_dyn, "device_per_step_j": per_step_dev, "estimate": est.as_dict()}
    assumptions += lat_text
    assumptions.append(f"device-level energy per step = active power {active:g} W × estimated latency"
                       + (" (active power estimated)" if device.estimated("power.active_w") else ""))
    win = decision_window(model)
    if win:
        energy["window"] = win
        energy["per_window_j"] = per_step_dyn * win["window"]
        energy["device_per_window_j"] = per_step_dev * win["window"]
        assumptions.append(f"one decision = a window of {win['window']} steps (decoder {win['decoder']}); with "
                           f"hop {win['hop']} a new decision costs {win['hop']} steps")
    realtime = None
    rate = (model.graph.meta.get("stream") or {}).get("rate")
    if rate:
        budget = 1.0 / float(rate)
        realtime = {"rate": float(rate), "budget_s": budget, "latency_s": t_step, "ok": t_step <= budget,
                    "load_pct": 100.0 * t_step / budget}
    py = device.data["python"]
    if device.is_mcu:
        warnings.append(f"{python_summary(device)}: edgebrain's Python/Numba runtime does not run here; the fit "
                        "assumes a C runtime with the model compiled in")
    elif not py["numba"]:
        warnings.append(f"{python_summary(device)}: {py.get('note') or 'numba unavailable'}")
    if precision == "float" and device.data["cpu"]["fpu"] == "none":
        warnings.append("float precision on a device without FPU: software floating point (slow); quantize the model")
    if realtime and not realtime["ok"]:
        warnings.append(f"estimated latency {t_step * 1e3:.3g} ms per step exceeds the model's step budget "
                        f"{realtime['budget_s'] * 1e3:.3g} ms ({realtime['rate']:g} steps/s)")
    return {"model": model.path, "device": device.name, "title": device.data["title"], "profile": device.path,
            "precision": precision, "fits": fits, "verdict": "fits" if fits else "does not fit",
            "ram": ram, "flash": flash, "footprint": {**fp, "buffers": buf},
            "latency_s": t_step, "realtime": realtime, "energy": energy,
            "counts": {k: counts[k] for k in ("dense", "eff_macs", "eff_acs", "membrane_updates", "weight_bytes_read",
                                              "state_bytes_rw", "steps")},
            "warnings": warnings, "assumptions": assumptions + est.assumptions}
