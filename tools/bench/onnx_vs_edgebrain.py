#!/usr/bin/env python
"""The L2MU paper's deployment path against edgebrain on the same model, data and machine (issue 17): per-step
latency of ``zoo:har-lif`` exported from PyTorch as ONE ONNX timestep (tests/onnx/data/har_lif_step.onnx, its
membranes as inputs and outputs) in ONNX Runtime, beside edgebrain's float and int sessions of the same model.

    python tools/bench/onnx_vs_edgebrain.py                 # 9 interleaved rounds (a few seconds)
    python tools/bench/onnx_vs_edgebrain.py --quick --json out.json

**Data.** A real recording (``imu/sp-sw-har/s16/s16_01_sw.csv``: the full datasets when present, else the fixture
set in tests/data), encoded by the model's own stream settings (585 steps at 50 steps/s).

**Engines**, each stepping through the recording from its initial state, one Python call per step (as a live
stream drives a model), in this one process:

* ``onnxruntime`` -- ``InferenceSession.run(None, feeds)`` per step on the CPUExecutionProvider with one intra-op
  and one inter-op thread, sequential execution, default graph optimisations, the ``*_out`` membranes fed back
  as ``*_in`` (what a user of the paper's path writes; the reference of every ratio);
* ``onnxruntime via edgebrain`` -- the same model through ``edgebrain.onnx_session.OnnxStepSession.step`` (what
  ``edgebrain stream MODEL.onnx`` runs);
* ``edgebrain float step`` / ``edgebrain int step`` -- ``Session.step`` of ``zoo:har-lif`` in float32 and in fixed
  point (int8 weights, int16 state);
* ``edgebrain float run`` / ``edgebrain int run`` -- ``Session.run`` over the whole recording (one compiled call),
  per step.

Each round times every engine once, in an order that alternates, each sample repeated until it lasts about
20 ms, on the process CPU-time clock (``--clock wall`` for wall time); reported: the median µs per step over the
rounds, and each engine's ratio ONNX Runtime ÷ engine (the speed-up over the paper's path) measured in the same
run. Before timing, the ONNX model's output spikes are checked against edgebrain's float session on the recording
(tests/onnx/test_onnx_step.py asserts it). Timing is measured here, never asserted by tests.
"""

from __future__ import annotations

import os
import sys

for _k in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_k] = "1"

import argparse
import datetime
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

ONNX = ROOT / "tests" / "onnx" / "data" / "har_lif_step.onnx"
RECORDING = "imu/sp-sw-har/s16/s16_01_sw.csv"
REFERENCE = "onnxruntime"
#: the issue's own figure for this network in ONNX Runtime 1.32 "on this kind of machine"
ISSUE_US = 37.6


def recording():
    from edgebrain.model import Model
    from edgebrain.stream.pipeline import encode_file
    from tests.conftest import find_datasets

    root, why = find_datasets()
    if root is None:
        sys.exit(f"no recordings: {why}")
    model = Model.load("zoo:har-lif")
    cfg = model.graph.meta["stream"]
    xs = encode_file(root / RECORDING, cfg["encoder"], float(cfg["rate"]), model.input_shape)[0]
    return model, np.ascontiguousarray(xs, np.float32), str(root)


def ort_plain(xs):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(str(ONNX), so, providers=["CPUExecutionProvider"])
    outs = [o.name for o in sess.get_outputs()]
    pairs = [(k, n[:-len("_out")] + "_in") for k, n in enumerate(outs) if n.endswith("_out")]
    zeros = {i.name: np.zeros(i.shape, np.float32) for i in sess.get_inputs() if i.name != "x"}
    xs2 = xs.reshape(len(xs), 1, -1)
    run = sess.run

    def loop():
        feeds = dict(zeros)
        ys = []
        for x in xs2:
            feeds["x"] = x
            o = run(None, feeds)
            for k, name in pairs:
                feeds[name] = o[k]
            ys.append(o[0])
        return ys

    return loop, ort.__version__


def engines(model, xs):
    from edgebrain.onnx_session import OnnxModel

    plain, version = ort_plain(xs)
    eb_onnx = OnnxModel.load(ONNX).step_session()
    sess = {p: model.session(p) for p in ("float", "int")}

    def stepper(s):
        def loop():
            s.reset()
            step = s.step
            for x in xs:
                step(x)
        return loop

    def runner(s):
        def whole():
            s.reset()
            s.run(xs)
        return whole

    return {"onnxruntime": plain, "onnxruntime via edgebrain": stepper(eb_onnx),
            "edgebrain float step": stepper(sess["float"]), "edgebrain int step": stepper(sess["int"]),
            "edgebrain float run": runner(sess["float"]), "edgebrain int run": runner(sess["int"])}, version


def check(model, xs) -> dict:
    """ONNX Runtime's output spikes against edgebrain's float session on the recording."""
    from edgebrain.onnx_session import OnnxModel

    y_eb = model.session("float").run(xs)[0]
    y_onnx = OnnxModel.load(ONNX).run(xs)[0]["spikes"]
    return {"steps": len(xs), "output_spikes_identical_steps": int((y_onnx == y_eb).all(1).sum())}


def _sample(fn, clock, min_ns=20_000_000):
    reps, total = 0, 0
    while total < min_ns:
        t0 = clock()
        fn()
        total += clock() - t0
        reps += 1
    return total / reps


def measure(fns, T, rounds, clock_kind) -> dict:
    clock = time.process_time_ns if clock_kind == "cpu" else time.perf_counter_ns
    for fn in fns.values():  # warm: compiled kernels loaded, ONNX Runtime's first runs
        fn()
    names = list(fns)
    got = {n: [] for n in names}
    for r in range(rounds):
        for n in (names if r % 2 == 0 else names[::-1]):
            got[n].append(_sample(fns[n], clock) / T / 1e3)
    return {n: {"median": statistics.median(v), "min": min(v), "max": max(v)} for n, v in got.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=9, help="interleaved rounds")
    ap.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    ap.add_argument("--quick", action="store_true", help="3 rounds")
    ap.add_argument("--json", dest="json_out", help="also write the results here")
    a = ap.parse_args(argv)
    if a.quick:
        a.rounds = 3
    model, xs, root = recording()
    fns, ort_version = engines(model, xs)
    ok = check(model, xs)
    us = measure(fns, len(xs), a.rounds, a.clock)
    ref = us[REFERENCE]["median"]
    import numba

    doc = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
           "machine": f"{platform.machine()} {os.cpu_count()} cores, {_cpu_name()}",
           "python": platform.python_version(), "numpy": np.__version__, "numba": numba.__version__,
           "onnxruntime": f"{ort_version} (1 intra-op + 1 inter-op thread, sequential, CPUExecutionProvider)",
           "model": "zoo:har-lif (6 -> 160 -> 160 -> 5 LIF); ONNX: tests/onnx/data/har_lif_step.onnx",
           "data": f"{root}/{RECORDING}", "clock": a.clock, "rounds": a.rounds, "check": ok,
           "us_per_step": us,
           "ratios": {f"{REFERENCE} / {n}": ref / v["median"] for n, v in us.items() if n != REFERENCE},
           "issue_onnxruntime_us": ISSUE_US}
    print(json.dumps(doc, indent=1))
    if a.json_out:
        Path(a.json_out).write_text(json.dumps(doc, indent=1))
    return 0 if ok["output_spikes_identical_steps"] == ok["steps"] else 1


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "?"


if __name__ == "__main__":
    sys.exit(main())
