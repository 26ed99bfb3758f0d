"""Latency per timestep from instructions counted on an emulated board: the committed counts
(``edgebrain/data/firmware_icount.json``, written by ``tools/firmware/icount.py``: each zoo model's
firmware steps on ``qemu-system-arm -M mps2-an386 -icount shift=0``) divided by a device's clock,
times the cycles per instruction its core typically needs. An estimate, and labelled so: QEMU counts
instructions, not cycles; flash wait states, caches and the core's pipeline make the CPI."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from pathlib import Path

ICOUNT_FILE = "firmware_icount.json"
#: cycles per instruction (nominal, low, high) for the cores that run the Cortex-M4F build's Thumb-2
#: code: the M4 and M33 issue one instruction per cycle at best, loads, multiply-accumulates and
#: taken branches cost 2-3, and flash wait states more (ART/XIP caches hide most); the M7 dual-issues.
CPI = {"armv7e-m": {"Cortex-M7": (1.0, 0.7, 1.5), "default": (1.25, 1.0, 1.5)},
       "armv8-m": {"default": (1.25, 1.0, 1.5)}}


@lru_cache(maxsize=1)
def table() -> dict:
    try:
        return json.loads((resources.files("edgebrain") / "data" / ICOUNT_FILE).read_text())
    except (OSError, FileNotFoundError, ValueError):  # pragma: no cover - shipped with the package
        return {"models": {}}


def _zoo_name(model) -> str | None:
    path = getattr(model, "path", None)
    if not path:
        return None
    p = Path(str(path))
    zoo = Path(__file__).resolve().parents[1] / "zoo"
    try:
        return f"zoo:{p.stem}" if p.resolve().parent == zoo.resolve() and p.suffix == ".ebm" else None
    except OSError:
        return None


def latency(model, device) -> dict | None:
    """``{"instructions_per_step", "cpi", "seconds", "seconds_range", "source": "estimate", "text"}``
    for a zoo model on a microcontroller whose core runs the M4F build's instruction set, else None."""
    t = table()
    name = _zoo_name(model)
    cpu = device.data["cpu"]
    arch = CPI.get(cpu.get("arch"))
    if not device.is_mcu or arch is None or cpu.get("fpu") == "none" or name not in t.get("models", {}):
        return None
    n = int(t["models"][name]["instructions_per_step"])
    core = next((k for k in arch if k in cpu.get("model", "")), "default")
    cpi, lo, hi = arch[core]
    hz = float(cpu["clock_mhz"]) * 1e6
    s = n * cpi / hz
    text = (f"latency from instructions counted on the emulated Cortex-M4F (QEMU -icount, {t.get('date', '?')}): "
            f"{n} instructions/step × CPI {cpi:g} ({lo:g}–{hi:g}) ÷ {cpu['clock_mhz']:g} MHz = {s * 1e6:.3g} µs "
            f"({n * lo / hz * 1e6:.3g}–{n * hi / hz * 1e6:.3g} µs); an estimate, not a measurement on the board "
            f"(edgebrain/data/{ICOUNT_FILE})")
    return {"instructions_per_step": n, "cpi": cpi, "cpi_range": [lo, hi], "clock_hz": hz, "seconds": s,
            "seconds_range": [n * lo / hz, n * hi / hz], "source": "estimate", "text": text}
