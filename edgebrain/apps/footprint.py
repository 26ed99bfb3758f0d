"""The C runtime's footprint on a device: **measured** for the targets that ``make -C firmware cross``
builds (``edgebrain/data/firmware_footprint.json``, written by ``tools/firmware/measure.py`` from
``arm-none-eabi-size`` / ``riscv64-unknown-elf-size``), else the device profile's estimate
(``[runtime]``), labelled so; and a model's exact buffers, read from its blob's header.

Shared by ``devices fit`` (:mod:`edgebrain.apps.fit`) and ``firmware export``
(:mod:`edgebrain.apps.firmware`).
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

from ..devices import fmt_bytes

#: the committed measurements (package data)
FOOTPRINT_FILE = "firmware_footprint.json"


@lru_cache(maxsize=1)
def table() -> dict:
    """The committed measurements: ``targets`` (build name -> sizes, toolchain, flags),
    ``devices`` (device name -> build name), ``zoo_blobs``, and when and how they were measured."""
    try:
        text = (resources.files("edgebrain") / "data" / FOOTPRINT_FILE).read_text()
    except (OSError, FileNotFoundError):  # pragma: no cover - shipped with the package
        return {"targets": {}, "devices": {}}
    return json.loads(text)


def build_for(device_name: str) -> str | None:
    """The cross build measured for ``device_name`` (e.g. rp2040 -> cortex-m0plus), or None."""
    return table().get("devices", {}).get(device_name)


def runtime(device) -> dict:
    """The runtime's own cost on ``device``: ``flash`` (code and initialised data), ``ram`` (data,
    bss and the deepest stack of a step), ``source`` ("measured" or "estimate") and a sentence
    saying which was used."""
    build = build_for(device.name)
    t = table()
    if build and build in t.get("targets", {}):
        m = t["targets"][build]
        flash = m["text"] + m["data"]
        ram = m["data"] + m["bss"] + m["stack"]
        text = (f"runtime footprint measured for {device.name} ({build} build, {m['cc']} {m['cc_version']}, "
                f"{m['libc']}, {m['opt']}, {t.get('date', '?')}): flash = code {fmt_bytes(m['text'])} + data "
                f"{fmt_bytes(m['data'])}; RAM = data {fmt_bytes(m['data'])} + bss {fmt_bytes(m['bss'])} + deepest stack "
                f"{fmt_bytes(m['stack'])} (edgebrain/data/{FOOTPRINT_FILE}); an RTOS/SDK, if any, comes on top")
        return {"source": "measured", "build": build, "flash": int(flash), "ram": int(ram), "text": int(m["text"]),
                "data": int(m["data"]), "bss": int(m["bss"]), "stack": int(m["stack"]), "description": text}
    rt = device.data["runtime"]
    est = device.estimated("runtime.ram_bytes") or device.estimated("runtime.flash_bytes")
    if device.is_mcu:
        why = ("no cross build of the C runtime is measured for this target"
               + ("; Xtensa: no Debian toolchain" if device.data["cpu"].get("arch") == "xtensa" else ""))
        label = f"{'estimated' if est else 'given'} ({why})"
    else:  # a Linux board runs edgebrain itself: the profile's figure for that runtime
        label = f"({'estimated' if est else 'given'})"
    text = (f"runtime footprint {label}: {fmt_bytes(rt['ram_bytes'])} RAM, {fmt_bytes(rt['flash_bytes'])} flash — "
            f"{rt['description']}")
    return {"source": "estimate" if est else "profile", "build": None, "flash": int(rt["flash_bytes"]),
            "ram": int(rt["ram_bytes"]), "description": text}


def blob_buffers(header: dict, blob_len: int) -> dict:
    """A blob's exact sizes in bytes: the blob itself (flash) and the buffers the caller provides
    (``eb_state_bytes``, ``eb_act_bytes``, ``eb_scratch_bytes`` of ``eb_runtime.h``)."""
    h = header
    return {"blob": int(blob_len), "state": int(h["state_size"]) * int(h["state_bits"]) // 8,
            "act": int(h["act_size"]) * 4, "scratch": (int(h["n_rows"]) + int(h["acc_size"])) * 8}
