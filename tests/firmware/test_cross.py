"""The cross builds of the C runtime (``make -C firmware cross-NAME``: Cortex-M0+, M4F, M7, M33 with
arm-none-eabi-gcc and newlib-nano, rv32imac with riscv64-unknown-elf-gcc and picolibc), each with
``-Wall -Wextra -Werror``; the committed footprint (``edgebrain/data/firmware_footprint.json``)
measured again on them and still true; and ``devices fit`` using it, saying measured or estimate.

A target whose toolchain is not installed is skipped, naming the Debian packages (CI installs them)."""

from __future__ import annotations

import importlib.util
import json
import subprocess

import pytest

from edgebrain import blob as B
from edgebrain import devices as D
from edgebrain.apps.fit import fit
from edgebrain.apps.footprint import table
from edgebrain.model import Model
from tests.conftest import REPO

APT = "gcc-arm-none-eabi libnewlib-arm-none-eabi gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf"


def _measure_module():
    spec = importlib.util.spec_from_file_location("eb_measure", REPO / "tools" / "firmware" / "measure.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


M = _measure_module()
COMMITTED = json.loads((REPO / "edgebrain" / "data" / "firmware_footprint.json").read_text())


@pytest.mark.parametrize("target", list(M.TARGETS))
def test_cross_build_has_no_warning_and_the_committed_footprint_is_still_true(target, tmp_path):
    _, cc, libc, _ = M.TARGETS[target]
    if not M.have(target):
        pytest.skip(f"{cc} with {libc} is not installed (apt-get install {APT})")
    m = M.measure_target(target, tmp_path, None)  # fails on any warning (-Werror) or link error
    assert m["elf"]["text"] > m["baseline_elf"]["text"] > 0
    assert 4096 < m["text"] < 64 * 1024 and m["bss"] < 1024 and 0 < m["stack"] < 4096
    # the exported blob is linked into flash (read-only, not copied to RAM), 8-byte aligned, whole
    objdump = cc.replace("gcc", "objdump")
    syms = subprocess.run([objdump, "-t", str(tmp_path / "cross" / target / "eb_cross.elf")], capture_output=True,
                          text=True, check=True).stdout
    line = next(ln.split() for ln in syms.splitlines() if ln.endswith(" model_blob"))
    addr, section, size = int(line[0], 16), line[-3], int(line[-2], 16)
    assert section in (".rodata", ".text") and addr % 8 == 0, line
    assert size == COMMITTED["zoo_blobs"]["zoo:har-lif"]["blob"]
    old = COMMITTED["targets"][target]
    if old["cc_version"] != m["cc_version"]:
        pytest.skip(f"footprint committed with {cc} {old['cc_version']}; installed {m['cc_version']}")
    got = {k: m[k] for k in ("text", "data", "bss", "stack")}
    want = {k: old[k] for k in ("text", "data", "bss", "stack")}
    assert got == want, "the committed footprint is stale: run python tools/firmware/measure.py"


def test_the_committed_zoo_blob_sizes_are_the_blobs_sizes():
    from edgebrain.apps.footprint import blob_buffers

    for name, want in COMMITTED["zoo_blobs"].items():
        data = B.pack(Model.load(name).program("int"))
        assert blob_buffers(B.read_header(data), len(data)) == want, \
            f"{name}: stale; run python tools/firmware/measure.py"


def test_the_committed_file_covers_the_profiles_it_names():
    t = table()
    assert set(t["devices"]) == {"rp2040", "stm32f446", "nrf52840", "stm32h743", "rp2350"}
    assert set(t["targets"]) == set(M.TARGETS)
    for name, build in t["devices"].items():
        assert D.load(name).is_mcu and build in t["targets"]


def test_fit_uses_the_measured_runtime_and_the_blobs_exact_sizes():
    model = Model.load("zoo:kws")
    r = fit(model, D.load("stm32f446"))
    m = COMMITTED["targets"]["m4f"]
    sizes = COMMITTED["zoo_blobs"]["zoo:kws"]
    assert r["runtime"]["source"] == "measured" and r["model_sizes"] == "exact (blob)"
    assert r["flash"]["items"] == {"blob": sizes["blob"], "runtime": m["text"] + m["data"]}
    assert r["ram"]["items"] == {"state": sizes["state"], "act": sizes["act"], "scratch": sizes["scratch"],
                                 "runtime": m["data"] + m["bss"] + m["stack"]}
    said = [a for a in r["assumptions"] if a.startswith("runtime footprint")]
    assert len(said) == 1 and said[0].startswith("runtime footprint measured for stm32f446 (m4f build")
    assert not any("8 KiB of code" in a for a in r["assumptions"])


def test_fit_on_esp32s3_keeps_the_estimate_and_says_so():
    r = fit(Model.load("zoo:kws"), D.load("esp32s3"))
    dev = D.load("esp32s3")
    assert r["runtime"]["source"] == "estimate" and r["flash"]["items"]["runtime"] == dev.data["runtime"]["flash_bytes"]
    said = [a for a in r["assumptions"] if a.startswith("runtime footprint")]
    assert len(said) == 1 and said[0].startswith("runtime footprint estimated") and "Xtensa: no Debian toolchain" in said[0]
    assert r["model_sizes"] == "exact (blob)"  # the model's own sizes are still exact


def test_fit_of_a_float_model_projects_the_model_but_measures_the_runtime():
    nir = next((REPO / "edgebrain" / "examples").glob("*.nir"))
    r = fit(Model.load(nir), D.load("rp2040"))
    assert r["model_sizes"] == "estimate" and r["runtime"]["source"] == "measured"
    m = COMMITTED["targets"]["m0plus"]
    assert r["flash"]["items"]["runtime"] == m["text"] + m["data"]
