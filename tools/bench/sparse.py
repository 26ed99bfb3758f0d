#!/usr/bin/env python
"""Pruned and 4-bit weights against dense (issue 18, compressed variants): sizes, per-step time and
cold-start compile, each compact variant measured beside its dense twin in the same run.

    python tools/bench/sparse.py                 # zoo:har-lif at 50/80/90 % zeros, int8 and int4
    python tools/bench/sparse.py --quick         # fewer rounds, no cold-start compile
    python tools/bench/sparse.py --icount        # also instructions per step on the emulated Cortex-M4F

For each variant: ``zoo:har-lif`` with the given share of each dense synapse's weights zeroed by
magnitude and quantized again (tests/firmware/cases.py ``pruned_zoo``, calibrated on the real
recording when the test datasets have it). Reported:

* sizes: the ``.ebm`` file and the firmware blob of the variant, as the writer chooses (compact where
  smaller), beside the dense zoo model's; each ratio against dense;
* per step, on the process CPU clock, medians of interleaved rounds on the real recording: the Numba
  integer session and the C runtime (``CSession.run``), the compact program against the same model
  lowered dense (``program.build(..., compact=False)``), with the outputs checked equal first;
* with ``--icount``: instructions per step on the emulated Cortex-M4F (qemu-system-arm ``-icount shift=0``,
  tools/firmware/icount.py) on 100 steps of the recording, each variant as stored against the same
  variant lowered dense (and the dense zoo model);
* cold start (not with ``--quick``): the CPU time of the first ``step`` of a fresh process with an
  empty Numba cache, for the dense zoo model and for the variant (what compiles: the executor variant
  with the sparse and/or 4-bit kernels).

Times are measured here, never asserted by tests (a shared machine's times are noise to a test).
"""

from __future__ import annotations

import os
import sys

for _k in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_k] = "1"

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from edgebrain import blob as B  # noqa: E402
from edgebrain import program  # noqa: E402
from edgebrain.csession import CSession  # noqa: E402
from edgebrain.model import Model  # noqa: E402
from edgebrain.session import Session  # noqa: E402
from tests.conftest import find_datasets  # noqa: E402
from tests.firmware import cases  # noqa: E402

VARIANTS = [(0.5, 8), (0.8, 8), (0.9, 8), (0.5, 4), (0.8, 4), (0.9, 4)]

COLD = """
import sys, time
import numpy as np
from edgebrain.model import Model
m = Model.load(sys.argv[1])
s = m.session("int")
t0 = time.process_time()
s.step(np.zeros(m.input_shape, np.float32))
print(time.process_time() - t0)
"""


def per_step(run, xs, rounds: int) -> float:
    """Median µs per step of ``run(xs)`` over ``rounds`` samples, each repeated to about 20 ms."""
    reps = 1
    while True:
        t0 = time.process_time_ns()
        for _ in range(reps):
            run(xs)
        dt = time.process_time_ns() - t0
        if dt > 20e6 or reps > 1000:
            break
        reps *= 2
    samples = []
    for _ in range(rounds):
        t0 = time.process_time_ns()
        for _ in range(reps):
            run(xs)
        samples.append((time.process_time_ns() - t0) / reps / len(xs) / 1e3)
    return statistics.median(samples)


def cold(path: str, cache: Path) -> float:
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache), PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-c", COLD, path], capture_output=True, text=True, env=env, check=True)
    return float(r.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--icount", action="store_true")
    a = ap.parse_args(argv)
    rounds = 3 if a.quick else 9
    root, _ = find_datasets()
    got = cases.zoo_input("har-lif", root) if root is not None else None
    xs = got[1][:600] if got is not None else \
        (np.random.default_rng(0).standard_normal((600, 6)) * 3).astype(np.float32)
    dense_model = Model.load("zoo:har-lif")
    dense_ebm = Path(dense_model.path).stat().st_size
    dense_blob = len(B.pack(dense_model.program("int")))
    print(f"zoo:har-lif dense: .ebm {dense_ebm} B, blob {dense_blob} B; {len(xs)} steps of "
          f"{'a real recording' if got is not None else 'random input'}")
    print(f"{'variant':>12} {'ebm B':>8} {'ratio':>6} {'blob B':>8} {'ratio':>6} | {'Numba µs':>9} {'dense':>7} "
          f"{'ratio':>6} | {'C µs':>7} {'dense':>7} {'ratio':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for sp, bits in VARIANTS:
            qm = cases.pruned_zoo("har-lif", sp, bits, root)
            path = Path(tmp) / f"p{round(sp * 100)}w{bits}.ebm"
            qm.save(path)
            paths[sp, bits] = path
            pc = qm.program("int")
            pd = program.build(qm.graph, "int", qm.quant, compact=False)
            blob = len(B.pack(pc))
            sc, sd, cc, cd = Session(pc), Session(pd), CSession(pc), CSession(pd)
            ys = [f.run(xs)[0] for f in (sc, sd)] + [f.run(xs)[0] for f in (cc, cd)]
            if not all(np.array_equal(np.asarray(y).reshape(ys[0].shape), ys[0]) for y in ys):
                print("outputs differ", file=sys.stderr)
                return 1
            t = {}
            for k in range(2):  # interleaved, the order alternating
                order = [("nc", sc), ("nd", sd), ("cc", cc), ("cd", cd)]
                for name, sess in (order if k == 0 else order[::-1]):
                    def run(x, s=sess):
                        s.reset()
                        s.run(x)
                    t.setdefault(name, []).append(per_step(run, xs, rounds))
            t = {k: statistics.median(v) for k, v in t.items()}
            print(f"{f'{round(sp * 100)}% int{bits}':>12} {path.stat().st_size:>8} {path.stat().st_size / dense_ebm:>6.2f} "
                  f"{blob:>8} {blob / dense_blob:>6.2f} | {t['nc']:>9.2f} {t['nd']:>7.2f} {t['nc'] / t['nd']:>6.2f} | "
                  f"{t['cc']:>7.2f} {t['cd']:>7.2f} {t['cc'] / t['cd']:>6.2f}")
        if a.icount:
            import importlib.util

            spec = importlib.util.spec_from_file_location("icount", ROOT / "tools" / "firmware" / "icount.py")
            ic = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(ic)
            base = ic.count(dense_model, xs, 100)["instructions_per_step"]
            print(f"instructions per step on the emulated Cortex-M4F (100 steps): zoo:har-lif {base}")
            for key, path in paths.items():
                qm = Model.load(path)
                n = ic.count(qm, xs, 100)["instructions_per_step"]
                d = ic.count(qm, xs, 100, B.pack(program.build(qm.graph, "int", qm.quant, compact=False)))
                d = d["instructions_per_step"]
                print(f"  {round(key[0] * 100)}% int{key[1]}: {n} as stored, {d} lowered dense: {n / d:.2f}")
        if not a.quick:
            print("cold start, CPU s of the first step with an empty Numba cache (compiles the executor variant):")
            print(f"  dense zoo:har-lif: {cold('zoo:har-lif', Path(tmp) / 'c-dense'):.2f} s")
            for key in ((0.8, 8), (0.8, 4)):
                print(f"  {round(key[0] * 100)}% int{key[1]} (sparse{' + 4-bit' if key[1] == 4 else ''}): "
                      f"{cold(str(paths[key]), Path(tmp) / f'c-{key}'):.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
