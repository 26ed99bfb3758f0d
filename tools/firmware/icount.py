"""Count the instructions each zoo model executes per timestep on the emulated Cortex-M4F and write
``edgebrain/data/firmware_icount.json``, which ``devices fit`` turns into a latency estimate.

    python tools/firmware/icount.py                 measure every zoo model, write the file
    python tools/firmware/icount.py --check         measure again, compare with the committed file (exit 1)
    python tools/firmware/icount.py --models har-lif --steps 100

How: the qemu-m4 firmware (``firmware/boards/mps2-an386/``, ``make -C firmware qemu-m4``) runs under
``qemu-system-arm -M mps2-an386 -icount shift=0``: QEMU advances the guest's clock by exactly 1 ns per
instruction, and the board's cycle counter (SysTick at 25 MHz, reported in nanoseconds) times each
``eb_step``, so STATS' ``cycles`` is the number of instructions executed in steps (to within 40, one
SysTick tick, per step). Debian's QEMU 7.2 ships no TCG plugins, hence the clock. The inputs are the
zoo models' real recordings, encoded as the stream encodes them (``tests/firmware/cases.py``), fed
one step per frame after ``WARMUP`` steps; the STATS delta after each step gives its count.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "edgebrain" / "data" / "firmware_icount.json"
MODELS = ("basicmotions", "har-lif", "har-l2mu", "kws", "nmnist")
STEPS = {"nmnist": 10}  # a 2x34x34 step is three STEP_PART frames over a ~30 KB/s emulated UART
DEFAULT_STEPS = 100
WARMUP = 5
TOLERANCE = 0.02  # relative: SysTick's 40-instruction resolution, and where the idle loop leaves the clock


def _versions() -> dict:
    from edgebrain.stream import emulated as E

    board = E.BOARDS["qemu-m4"]
    qemu = subprocess.run([board.qemu, "--version"], capture_output=True, text=True, timeout=30).stdout.splitlines()
    cc = subprocess.run([board.cc, "--version"], capture_output=True, text=True, timeout=30).stdout.splitlines()
    flags = subprocess.run(["make", "-s", "-C", str(E.FIRMWARE_DIR), f"qemu-flags-{board.name}"], capture_output=True,
                           text=True, timeout=60).stdout.strip()
    return {"qemu": qemu[0] if qemu else "?", "cc": cc[0] if cc else "?", "flags": flags}


def measure(name: str, steps: int | None = None, datasets: Path | None = None) -> dict:
    """Instructions per step of zoo model ``name`` on the emulated Cortex-M4F: mean, min, max over
    ``steps`` steps of its recording (after the warm-up)."""
    sys.path.insert(0, str(REPO))
    from tests.conftest import find_datasets
    from tests.firmware import cases

    root = datasets or find_datasets()[0]
    got = cases.zoo_input(name, root) if root else None
    if got is None:
        raise SystemExit(f"icount: the recordings of {name} are not in {root}")
    model, xs = got
    return {**count(model, xs, steps or STEPS.get(name, DEFAULT_STEPS)), "recordings": cases.ZOO[name][0]}


def count(model, xs, steps: int, blob: bytes | None = None) -> dict:
    """Instructions per step of ``model`` (an integer model; or its ``blob``, when given) on the emulated
    Cortex-M4F over ``steps`` steps of the encoded input ``xs`` after the warm-up: mean, min, max
    (tools/bench/sparse.py counts pruned variants, stored compactly and dense, with it)."""
    sys.path.insert(0, str(REPO))
    from edgebrain.csession import model_blob
    from edgebrain.stream import emulated as E
    from edgebrain.stream.board import BoardSession, SerialLink

    xs = xs[:WARMUP + steps]
    qemu = E.QemuBoard("qemu-m4", icount=True)
    try:
        qemu.link = SerialLink(qemu.url)
        s = BoardSession(blob if blob is not None else model_blob(model, cache=False)[0], qemu.link, board=qemu,
                         timeout=10.0)
        s.run(xs[:WARMUP])
        per = []
        before = s.board_stats()["cycles"]
        for x in xs[WARMUP:]:
            s.step(x)
            now = s.board_stats()["cycles"]
            per.append(now - before)
            before = now
    finally:
        qemu.close()
    per = np.asarray(per, np.int64)
    return {"steps": len(per), "instructions_per_step": round(float(per.mean())), "min": int(per.min()),
            "max": int(per.max())}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare with the committed file instead of writing it")
    ap.add_argument("--models", nargs="*", default=list(MODELS))
    ap.add_argument("--steps", type=int, default=None)
    a = ap.parse_args(argv)
    got = {f"zoo:{n}": measure(n, a.steps) for n in a.models}
    for k, v in got.items():
        print(f"{k:18} {v['instructions_per_step']:>10} instructions/step (min {v['min']}, max {v['max']}, "
              f"{v['steps']} steps)")
    if a.check:
        old = json.loads(OUT.read_text())["models"]
        bad = [k for k, v in got.items() if k not in old or abs(v["instructions_per_step"] - old[k]["instructions_per_step"])
               > TOLERANCE * old[k]["instructions_per_step"]]
        if bad:
            print(f"stale: {', '.join(bad)}; run python tools/firmware/icount.py")
            return 1
        return 0
    from edgebrain.stream import emulated as E

    doc = {"date": datetime.date.today().isoformat(), **_versions(),
           "board": "qemu-system-arm -M mps2-an386 -icount shift=0 (Cortex-M4F, firmware/boards/mps2-an386)",
           "counter": E.BOARDS["qemu-m4"].counter, "warmup_steps": WARMUP, "tolerance": TOLERANCE,
           "models": got}
    if OUT.is_file() and set(a.models) != set(MODELS):  # a partial run keeps the other models
        doc["models"] = {**json.loads(OUT.read_text())["models"], **got}
    OUT.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {OUT.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
