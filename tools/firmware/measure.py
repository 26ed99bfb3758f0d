"""Measure the C runtime's footprint on the cross targets and write
``edgebrain/data/firmware_footprint.json``, which ``devices fit`` and ``firmware export`` read.

    python tools/firmware/measure.py            measure every target whose toolchain is installed, write the file
    python tools/firmware/measure.py --check    measure again and compare with the committed file (exit 1 on a difference)
    python tools/firmware/measure.py --table    print the committed numbers as docs/firmware.md's table

For each target ``make -C firmware cross-NAME`` links the runtime with ``firmware/cross/eb_cross_main.c``
(load a blob, run one step) and a baseline that keeps the same blob and buffers without the runtime; the
runtime's footprint is the difference of ``<cross>-size`` (text, data, bss) between the two, so it
holds the runtime's code, the compiler helpers it pulls in (64-bit and soft-float on Cortex-M0+) and
its statics. ``stack`` is the deepest call chain below ``main`` through the runtime's API, from
GCC's ``-fcallgraph-info=su`` (compiler helpers count 0 bytes). Toolchains (Debian):
gcc-arm-none-eabi libnewlib-arm-none-eabi gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "edgebrain" / "data" / "firmware_footprint.json"
FIRMWARE = REPO / "firmware"

#: make target -> (cpu, compiler, libc, device profiles it stands for)
TARGETS = {
    "m0plus": ("Cortex-M0+", "arm-none-eabi-gcc", "newlib-nano", ["rp2040"]),
    "m4f": ("Cortex-M4F", "arm-none-eabi-gcc", "newlib-nano", ["stm32f446", "nrf52840"]),
    "m7": ("Cortex-M7", "arm-none-eabi-gcc", "newlib-nano", ["stm32h743"]),
    "m33": ("Cortex-M33", "arm-none-eabi-gcc", "newlib-nano", ["rp2350"]),
    "rv32imac": ("RV32IMAC", "riscv64-unknown-elf-gcc", "picolibc", []),
}
#: the entry points whose call chains bound the stack
API = ("eb_model_load", "eb_session_init", "eb_step", "eb_run")


def have(target: str) -> bool:
    """Whether the target's compiler and C library are installed: they link an empty program."""
    cc = TARGETS[target][1]
    if not shutil.which(cc):
        return False
    flags = ["-march=rv32imac", "-mabi=ilp32", "--specs=picolibc.specs"] if target == "rv32imac" else \
        ["-mcpu=cortex-m0plus", "-mthumb", "--specs=nano.specs", "--specs=nosys.specs"]
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "t.c"
        src.write_text("int main(void) { return 0; }\n")
        return subprocess.run([cc, *flags, "-o", str(Path(d) / "t.elf"), str(src)], capture_output=True).returncode == 0


def cc_version(cc: str) -> str:
    first = subprocess.run([cc, "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    return first.split(") ", 1)[-1].strip() if ") " in first else first


def sizes(size_tool: str, elf: Path) -> dict:
    out = subprocess.run([size_tool, str(elf)], capture_output=True, text=True, check=True).stdout.splitlines()[1]
    text, data, bss = (int(v) for v in out.split()[:3])
    return {"text": text, "data": data, "bss": bss}


def stack_depth(obj_dir: Path) -> int:
    """The deepest call chain (bytes) from any API entry point, over the .ci files of one build."""
    frame, calls = {}, {}
    for ci in obj_dir.glob("*.ci"):
        for line in ci.read_text().splitlines():
            m = re.match(r'node: \{ title: "([^"]+)" label: "[^"]*\\n(\d+) bytes \((\w+)', line)
            if m:
                frame[m.group(1)] = int(m.group(2))
                if m.group(3) != "static":
                    raise SystemExit(f"{m.group(1)}: {m.group(3)} stack usage; the bound below needs static frames")
                continue
            m = re.match(r'edge: \{ sourcename: "([^"]+)" targetname: "([^"]+)"', line)
            if m:
                calls.setdefault(m.group(1), set()).add(m.group(2))

    def depth(fn, seen=()):
        if fn in seen:
            raise SystemExit(f"recursion through {fn}: no static stack bound")
        return frame.get(fn, 0) + max((depth(c, seen + (fn,)) for c in calls.get(fn, ())), default=0)

    return max(depth(f) for f in API if f in frame)


def measure_target(target: str, build: Path, runtime: str | None) -> dict:
    cpu, cc, libc, devices = TARGETS[target]
    args = ["make", "-s", "-C", str(FIRMWARE), f"BUILD={build}", f"PYTHON={sys.executable}", f"cross-{target}"]
    if runtime:
        args.append(f"RUNTIME={runtime}")
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode != 0 or "warning" in r.stderr:
        raise SystemExit(f"cross build {target} failed or warned:\n{r.stdout}\n{r.stderr}")
    size_tool = cc.replace("gcc", "size")
    full = sizes(size_tool, build / "cross" / target / "eb_cross.elf")
    base = sizes(size_tool, build / "cross" / target / "baseline.elf")
    flags = subprocess.run(["make", "-s", "-C", str(FIRMWARE), f"cross-flags-{target}"], capture_output=True,
                           text=True, check=True).stdout.strip().split(" | ", 1)[1]
    opt = next((f for f in flags.split() if re.fullmatch(r"-O\w*", f)), "?")
    return {"cpu": cpu, "cc": cc, "cc_version": cc_version(cc), "libc": libc, "opt": opt, "flags": flags,
            **{k: full[k] - base[k] for k in ("text", "data", "bss")},
            "stack": stack_depth(build / "cross" / target / "obj"), "elf": full, "baseline_elf": base,
            "devices": devices}


def sources_hash(runtime: str | None) -> str:
    d = Path(runtime) if runtime else REPO / "edgebrain" / "cruntime"
    h = hashlib.sha256()
    for p in sorted(d.glob("*.[ch]")):
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    h.update((FIRMWARE / "cross" / "eb_cross_main.c").read_bytes())
    return h.hexdigest()[:16]


def zoo_blobs() -> dict:
    sys.path.insert(0, str(REPO))
    from edgebrain import blob, zoo
    from edgebrain.apps.footprint import blob_buffers
    from edgebrain.model import Model

    out = {}
    for n in zoo.names():
        data = blob.pack(Model.load(f"zoo:{n}").program("int"))
        out[f"zoo:{n}"] = blob_buffers(blob.read_header(data), len(data))
    return out


def measure(runtime: str | None = None, targets=None) -> dict:
    targets = [t for t in (targets or TARGETS) if have(t)]
    with tempfile.TemporaryDirectory(prefix="eb-measure-") as tmp:
        res = {t: measure_target(t, Path(tmp), runtime) for t in targets}
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="compare with the committed file instead of writing it")
    ap.add_argument("--table", action="store_true", help="print the committed numbers as a Markdown table")
    ap.add_argument("--runtime", help="the runtime's source folder (default edgebrain/cruntime)")
    a = ap.parse_args(argv)
    if a.table:
        t = json.loads(OUT.read_text())
        print("| target | device profiles | toolchain | text | data | bss | stack |\n|---|---|---|---|---|---|---|")
        for m in t["targets"].values():
            devs = ", ".join(m["devices"]) or "—"
            print(f"| {m['cpu']} | {devs} | {m['cc']} {m['cc_version'].split()[0]}, {m['libc']} | {m['text']} | "
                  f"{m['data']} | {m['bss']} | {m['stack']} |")
        return 0
    if a.check:
        committed = json.loads(OUT.read_text())
        fresh = measure(a.runtime)
        bad = []
        for t, m in fresh.items():
            old = committed["targets"].get(t)
            if old is None:
                bad.append(f"{t}: not in the committed file")
            elif old["cc_version"] != m["cc_version"]:
                print(f"{t}: skipped, committed with {old['cc']} {old['cc_version']}, installed {m['cc_version']}")
            else:
                diff = {k: (old[k], m[k]) for k in ("text", "data", "bss", "stack") if old[k] != m[k]}
                if diff:
                    bad.append(f"{t}: committed vs measured {diff}")
        if set(fresh) != set(committed["targets"]):
            print("not measured here (toolchain absent): " + ", ".join(sorted(set(committed["targets"]) - set(fresh))))
        for b in bad:
            print(b)
        if bad:
            print("the committed footprint is stale: run python tools/firmware/measure.py")
        return 1 if bad else 0
    targets = measure(a.runtime)
    missing = sorted(set(TARGETS) - set(targets))
    if missing:
        raise SystemExit(f"toolchain missing for {', '.join(missing)}: install gcc-arm-none-eabi libnewlib-arm-none-eabi "
                         "gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf")
    doc = {"generated_by": "tools/firmware/measure.py", "date": datetime.date.today().isoformat(),
           "sources_sha256": sources_hash(a.runtime),
           "method": "runtime = size(runtime + firmware/cross/eb_cross_main.c) - size(same main, blob and buffers, "
                     "no runtime); stack = deepest call chain from the runtime's API (-fcallgraph-info=su)",
           "targets": targets,
           "devices": {d: t for t, m in targets.items() for d in m["devices"]},
           "zoo_blobs": zoo_blobs()}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    tmp = OUT.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    os.replace(tmp, OUT)
    print(f"wrote {OUT.relative_to(REPO)}")
    for t, m in targets.items():
        print(f"  {t:9s} text {m['text']:6d}  data {m['data']:4d}  bss {m['bss']:4d}  stack {m['stack']:4d}  "
              f"({m['cc']} {m['cc_version']}, {m['libc']}, {m['opt']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
