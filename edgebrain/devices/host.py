"""The running machine: the facts the ``host`` profile's ``"auto"`` fields are filled with.

Read from ``/proc/cpuinfo``, ``os.cpu_count()``, ``/proc/meminfo``, cpufreq, ``/sys/class/powercap``
(RAPL) and ``/sys/class/hwmon`` (power sensors); nothing here needs root.
"""

from __future__ import annotations

import glob
import os
import platform
import re

from .schema import AUTO_FIELDS, PROVENANCE_SECTIONS


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
    import importlib.util

    has_numba = importlib.util.find_spec("numba") is not None  # found, not imported: that costs 0.3-1 s
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


def fill_host(raw: dict) -> dict:
    """Replace the ``"auto"`` values of a host profile (parsed TOML, changed in place and returned)
    with what the running machine reports (:func:`detect_host`), each citing the source ``detected``;
    an ``"auto"`` the machine cannot answer is left out, for validation to report."""
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
