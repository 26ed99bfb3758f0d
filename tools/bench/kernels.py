#!/usr/bin/env python
"""Kernel benchmark: edgebrain's step/run against snnTorch, Norse, ONNX Runtime, NumPy and a C loop.

    python tools/bench/kernels.py            # full run (a few minutes on 2 cores)
    python tools/bench/kernels.py --quick    # fewer repeats and steps (CI smoke)
    python tools/bench/kernels.py --json out.json   # also write machine-readable results
    python tools/bench/kernels.py --target avx2     # Numba and C both pinned to AVX2 (haswell)

Single-threaded, batch 1. Networks:

  (a) "watch":  6 → Affine → 128 LIF → Affine → 128 LIF → Affine → 5 LI (readout),
                random normal real-valued input (an IMU-like stream);
  (b) "dense512": 512 → Affine 512×512 → 512 LIF, with random spikes at ~10 % activity
                (the event-driven path) and, separately, with dense random normal input.

Engines: edgebrain float and int (``Session.step`` in a Python loop, and ``Session.run``
over all T steps in one call), NumPy float32 (a per-step loop), snnTorch (``Leaky`` with
``init_hidden``) and Norse (``LIFBoxCell`` / ``LIBoxCell``) under ``torch.no_grad``, ONNX
Runtime (the same network and weights exported from PyTorch as one timestep, ``x`` and the
membranes in, the output and the new membranes out, run with ``InferenceSession.run`` once per
step on one thread, states fed back; its outputs are checked against edgebrain's float session
and the differences printed), and ``ref_loop.c`` doing the same integer work as edgebrain's int
session (docs/fixed-point.md) with the exact parameters edgebrain's quantizer chose, built with
gcc and with clang at ``-O3 -march=M -ffp-contract=off`` (M follows ``--target``: native,
haswell or x86-64-v2). Each C build's outputs are checked against edgebrain's bit for bit (and
the script exits with status 1 if they differ); the C targets compare with the faster of the two
builds. Times are medians over repeated runs of T steps, in µs per step, taken in a few fresh
worker processes per network (pooled: a process's memory layout can make it faster or slower)
with all engines interleaved round by round (each C run its own process), on the process
CPU-time clock by default (``--clock wall`` for wall time; both are measured and kept in
``--json``): on a machine shared with other work, CPU time is what the code costs, while wall
time also counts the time the process waited for a core. Results and method are written up in
docs/benchmarks.md.

Cold start: the first ``step`` of model (a) loaded from an ``.ebm`` file in a fresh process,
with an empty Numba cache (NUMBA_CACHE_DIR set to a new directory: everything is compiled)
and again with that cache filled (warm), with the peak resident memory (VmHWM) of that
process.

torch / snntorch / norse / onnx / onnxruntime / clang are optional: their columns are skipped
with a note. ``pip install -e .[bench]`` installs onnxruntime and onnx (torch, snntorch: the
``train`` extra). Helper modules: ``_c_ref.py`` (the C loop: parameters, builds, bit-identity
check), ``_torch_engines.py`` (snnTorch, Norse, ONNX export and Runtime), ``_coldstart.py``,
``_report.py`` (machine description, tables).
"""

from __future__ import annotations

import os
import sys

# single-threaded everything, before numpy / numba / torch are imported
for _k in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
           "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS"):
    os.environ[_k] = "1"

import argparse  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
for _p in (ROOT, HERE):  # edgebrain, and this script's helper modules (_c_ref.py, ...)
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import numpy as np  # noqa: E402
from _c_ref import CFLAGS, ISA, build_c, c_engines, time_once  # noqa: E402
from _coldstart import cold_start  # noqa: E402
from _report import fmt_us, machine_info, steal_seconds, table  # noqa: E402
from _torch_engines import ORT_NAME, onnx_export_main, ort_check_line, ort_engine, torch_engines  # noqa: E402

TARGETS = {  # issue 13's targets (int) and the earlier ones (snnTorch speed-ups)
    "a_step_vs_c": 1.6,       # (a) Session.step within 1.6x of the faster C build
    "a_step_vs_snntorch": 100.0,  # (a) Session.step >= 100x faster than snnTorch
    "a_run_vs_c": 1.2,        # (a) Session.run within 1.2x of C per step
    "b_run_vs_c": 1.2,        # (b) 10 % spikes: Session.run within 1.2x of C per step
    "int_vs_float": 1.10,     # (a) int never slower than float by more than 10 %
    "b_vs_snntorch": 10.0,    # (b) >= 10x faster than snnTorch
}


def _pin_isa(argv) -> str:
    """Apply --target before Numba is imported (it reads NUMBA_CPU_NAME once); the worker processes
    inherit it. A pinned target compiles into a cache folder of its own."""
    name = "native"
    for i, arg in enumerate(argv):
        if arg == "--target" and i + 1 < len(argv):
            name = argv[i + 1]
        elif arg.startswith("--target="):
            name = arg.split("=", 1)[1]
    if name not in ISA:
        return name  # argparse reports it
    cpu, march = ISA[name]
    if cpu and os.environ.get("NUMBA_CPU_NAME") != cpu:
        os.environ["NUMBA_CPU_NAME"] = cpu
        os.environ.setdefault("NUMBA_CACHE_DIR", tempfile.mkdtemp(prefix=f"eb_numba_{name}_"))
    CFLAGS[1] = f"-march={march}"
    return name


ISA_NAME = _pin_isa(sys.argv[1:])


# ============================================================================ networks


def _lin(rng, n_out, n_in, gain, bias=0.1):
    w = rng.standard_normal((n_out, n_in)) * gain / np.sqrt(n_in)
    b = rng.standard_normal(n_out) * bias
    return w.astype(np.float32), b.astype(np.float32)


def net_watch(seed=0):
    """(a) 6 → 128 LIF → 128 LIF → 5 LI. Returns (layers, graph) with layers a list of
    (W, b, kind, beta, threshold)."""
    rng = np.random.default_rng(seed)
    W1, b1 = _lin(rng, 128, 6, 1.5)
    W2, b2 = _lin(rng, 128, 128, 3.0)
    W3, b3 = _lin(rng, 5, 128, 1.0)
    return [(W1, b1, "LIF", 0.9, 1.0), (W2, b2, "LIF", 0.9, 1.0), (W3, b3, "LI", 0.9, None)]


def net_dense512(seed=1):
    """(b) 512 → 512 LIF (one 512×512 dense layer)."""
    rng = np.random.default_rng(seed)
    W, b = _lin(rng, 512, 512, 4.0, bias=0.05)
    return [(W, b, "LIF", 0.9, 1.0)]


def to_graph(layers, n_in):
    from edgebrain import ops
    from edgebrain.graph import Graph

    seq = [ops.Input(shape=(n_in,))]
    for W, b, kind, beta, thr in layers:
        seq.append(ops.Affine(weight=W, bias=b))
        if kind == "LIF":
            seq.append(ops.LIF(beta=beta, threshold=thr, reset="subtract"))
        else:
            seq.append(ops.LI(beta=beta))
    seq.append(ops.Output())
    return Graph.sequential(*seq)


def inputs(kind, T, n_in, seed):
    rng = np.random.default_rng(seed)
    if kind == "spikes":
        return (rng.random((T, n_in)) < 0.10).astype(np.float32)
    return rng.standard_normal((T, n_in)).astype(np.float32)


# ============================================================================ timing


def _stats(cpu, wall):
    """{"cpu": (median s, min s), "wall": (median s, min s)} of samples in ns."""
    return {"cpu": (statistics.median(cpu) * 1e-9, min(cpu) * 1e-9),
            "wall": (statistics.median(wall) * 1e-9, min(wall) * 1e-9)}


def bench_interleaved(py, c_cmds, repeats, slow=None, slow_repeats=5):
    """Round-robin timing: in each of ``repeats`` rounds every Python engine (name ->
    (setup, body)) runs once, then every C command (name -> argv printing one JSON line
    with one timed repeat); the ``slow`` engines (snnTorch, Norse) run in ``slow_repeats``
    rounds spread evenly over the others. Load from other processes then falls on all
    engines alike, and each C sample comes from a fresh process (its own memory layout).
    Returns name -> (CPU ns samples, wall ns samples) of one whole run each."""
    slow = slow or {}
    slow_rounds = {round(i * (repeats - 1) / max(slow_repeats - 1, 1)) for i in range(min(slow_repeats, repeats))}
    for setup, body in list(py.values()) + list(slow.values()):  # warm-up (compilation, caches)
        time_once(body, setup)
    samples = {name: ([], []) for name in list(py) + list(c_cmds) + list(slow)}
    gc_on = gc.isenabled()
    try:
        for rnd in range(repeats):
            gc.disable()
            engines = list(py.items()) + (list(slow.items()) if rnd in slow_rounds else [])
            for name, (setup, body) in engines:
                c, w = time_once(body, setup)
                samples[name][0].append(c)
                samples[name][1].append(w)
            if gc_on:
                gc.enable()
            for name, cmd in c_cmds.items():
                r = subprocess.run(cmd, capture_output=True, text=True)
                if r.returncode:
                    raise SystemExit(f"{name} failed: {r.stderr}")
                d = json.loads(r.stdout.strip().splitlines()[-1])
                T = d["T"]
                samples[name][0].append(d["cpu_median_ns_per_step"] * T)
                samples[name][1].append(d["median_ns_per_step"] * T)
    finally:
        if gc_on:
            gc.enable()
    return samples


def per_step(t, T):
    return {k: (a / T, b / T) for k, (a, b) in t.items()}


# ============================================================================ engines


def edgebrain_engines(model, qmodel, xs):
    """Session.step in a Python loop and Session.run over all steps, float and int:
    {name: (setup, body)}, and a check that returns whether the step loop's outputs equal
    run's, bit for bit, per precision."""
    engines, sessions = {}, {}
    for prec, m in (("float", model), ("int", qmodel)):
        s = sessions[prec] = m.session(prec)

        def loop(step=s.step):
            for x in xs:
                step(x)

        engines[f"edgebrain {prec} step"] = (s.reset, loop)
        engines[f"edgebrain {prec} run"] = (s.reset, lambda s=s: s.run(xs))

    def check():
        same = {}
        for prec, s in sessions.items():
            s.reset()
            y_step = np.stack([np.array(s.step(x), copy=True) for x in xs])
            s.reset()
            y_run, _ = s.run(xs)
            same[prec] = bool(np.array_equal(y_step, y_run))
            if not same[prec]:
                print(f"  WARNING: edgebrain {prec}: step loop and run outputs differ", file=sys.stderr)
        return same

    return engines, check


def numpy_engine(layers, xs):
    """The same network in float32 NumPy, one step at a time: ({name: (setup, body)},
    record) where record() returns every layer's output over time."""
    T = xs.shape[0]
    Ws = [np.ascontiguousarray(W) for W, *_ in layers]
    bs = [b for _, b, *_ in layers]
    kinds = [k for *_, k, _, _ in layers]
    betas = [np.float32(be) for *_, be, _ in layers]
    thrs = [np.float32(th if th is not None else 0) for *_, th in layers]
    vs = [np.zeros(W.shape[0], np.float32) for W in Ws]
    outs = np.zeros((T, Ws[-1].shape[0]), np.float32)
    spikes = [np.zeros((T, W.shape[0]), np.float32) for W in Ws]

    def reset():
        for v in vs:
            v[...] = 0

    def loop(record=False):
        for t in range(T):
            h = xs[t]
            for k in range(len(Ws)):
                v = vs[k]
                v *= betas[k]
                v += Ws[k] @ h + bs[k]
                if kinds[k] == "LIF":
                    s = (v > thrs[k]).astype(np.float32)
                    v -= s * thrs[k]
                    h = s
                else:
                    h = v
                if record:
                    spikes[k][t] = h
            outs[t] = h

    def record():
        reset()
        loop(record=True)
        return spikes

    return {"numpy float32 step": (reset, loop)}, record


CASES = {  # key: (title, network, n_in, input kind, seed)
    "a": ("(a) watch 6→128→128→5, real input", net_watch, 6, "normal", 10),
    "b_spikes": ("(b) 512×512 → 512 LIF, 10% spikes in", net_dense512, 512, "spikes", 20),
    "b_dense": ("(b) 512×512 → 512 LIF, dense real in", net_dense512, 512, "normal", 20),
}


def float_case(key, T):
    """The case's title, layers, inputs and float model (deterministic)."""
    from edgebrain.model import Model

    title, net, n_in, kind, seed = CASES[key]
    layers = net()
    return title, layers, inputs(kind, T, n_in, seed), Model(to_graph(layers, n_in))


def build_case(key, T):
    """The case's layers, inputs, float model and quantized model (deterministic)."""
    from edgebrain.quant import quantize

    title, layers, xs, model = float_case(key, T)
    _, _, n_in, kind, seed = CASES[key]
    calib = inputs(kind, 1000, n_in, seed + 1)
    qmodel, qrep = quantize(model, calib, weight_bits=8, state_bits=16)
    return title, layers, xs, model, qmodel, qrep


def onnx_column(key, T, workdir):
    """Export the case's network as one ONNX timestep and check it against edgebrain's float
    session, in a subprocess (torch stays out of this process): the JSON of onnx_export_main."""
    path = Path(workdir) / f"{key}.step.onnx"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--onnx-export", key, "--steps", str(T), "--onnx", str(path)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        return {"path": None, "have": {}, "notes": [f"ONNX export of ({key}) failed: ONNX Runtime column skipped: "
                                                      f"{r.stderr.strip()[-400:]}"]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def worker(key, T, rounds, slow_rounds, c_cmds_path, onnx_path):
    """One timing process (see main): every engine of one case, interleaved; prints the raw
    samples as one JSON line."""
    _, layers, xs, model, qmodel, _ = build_case(key, T)
    py, _ = edgebrain_engines(model, qmodel, xs)
    npy, _ = numpy_engine(layers, xs)
    py.update(npy)
    if onnx_path:  # cheap enough (tens of µs per step) to run in every round, like NumPy
        py.update(ort_engine(onnx_path, xs))
    have = {}
    slow, notes = torch_engines(layers, xs, have) if slow_rounds else ({}, [])
    c_cmds = json.loads(Path(c_cmds_path).read_text()) if c_cmds_path else {}
    samples = bench_interleaved(py, c_cmds, rounds, slow=slow, slow_repeats=slow_rounds)
    print(json.dumps({"samples": samples, "have": have, "notes": notes}))


def measure(key, T, c_cmds, workdir, processes, rounds, slow_rounds, onnx_path=None):
    """Samples of every engine for one case, pooled over ``processes`` fresh worker
    processes (each with its own memory layout; a single process can land in a slower
    one, by up to a few tens of per cent on this kind of machine)."""
    path = Path(workdir) / f"{key}.c_cmds.json"
    path.write_text(json.dumps(c_cmds))
    pooled, have, notes = {}, {}, []
    for w in range(processes):
        sr = slow_rounds // processes + (1 if w < slow_rounds % processes else 0)
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", key, "--steps", str(T),
               "--rounds", str(rounds), "--slow-rounds", str(sr), "--c-cmds", str(path), "--onnx", onnx_path or ""]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode:
            raise SystemExit(f"timing worker failed:\n{r.stderr}")
        d = json.loads(r.stdout.strip().splitlines()[-1])
        have.update(d["have"])
        notes += [x for x in d["notes"] if x not in notes]
        for name, (cpu, wall) in d["samples"].items():
            pc, pw = pooled.setdefault(name, ([], []))
            pc += cpu
            pw += wall
    return {name: per_step(_stats(*v), T) for name, v in pooled.items()}, have, notes


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats and steps (CI smoke test)")
    ap.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH ('-' for stdout)")
    ap.add_argument("--steps", type=int, default=None, help="T, steps per run (default 2000; 300 with --quick)")
    ap.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                    help="clock of the table and the targets: process CPU time (default; robust on a shared "
                         "machine) or wall time; both are measured and kept in --json")
    ap.add_argument("--no-cold", action="store_true", help="skip the cold-start subprocesses")
    ap.add_argument("--target", choices=sorted(ISA), default="native",
                    help="instruction set of both Numba (NUMBA_CPU_NAME) and the C builds (-march): native, avx2 "
                         "(haswell) or x86-64-v2 (SSE4.2); run once per target to compare them")
    ap.add_argument("--processes", type=int, default=None,
                    help="timing processes per case, whose samples are pooled (default 3; 1 with --quick)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--rounds", type=int, default=11, help=argparse.SUPPRESS)
    ap.add_argument("--slow-rounds", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--c-cmds", default="", help=argparse.SUPPRESS)
    ap.add_argument("--onnx", default="", help=argparse.SUPPRESS)
    ap.add_argument("--onnx-export", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker:
        worker(a.worker, a.steps, a.rounds, a.slow_rounds, a.c_cmds, a.onnx)
        return 0
    if a.onnx_export:
        _, layers, xs, model = float_case(a.onnx_export, a.steps)
        onnx_export_main(layers, model, xs, a.onnx)
        return 0

    T = a.steps or (300 if a.quick else 2000)
    procs = max(1, a.processes or (1 if a.quick else 3))
    rounds = 3 if a.quick else 11      # per process: edgebrain, NumPy, C
    reps_fast = procs * rounds
    reps_torch = 1 if a.quick else 5   # snnTorch, Norse (spread over the processes)
    clk = a.clock

    load0, steal0 = os.getloadavg(), steal_seconds()
    have, notes = {}, []
    work = tempfile.mkdtemp(prefix="eb_bench_")
    exes, n, c_builds = build_c(work, have)
    notes += n

    results, checks, extra, qmodels = {}, {}, {}, {}
    for key in CASES:
        title, layers, xs, model, qmodel, qrep = build_case(key, T)
        print(f"== {title}: T={T}", flush=True)
        qmodels[key] = qmodel
        # correctness first (in this process): C vs edgebrain int, step vs run, NumPy vs float
        c_cmds, chk = c_engines(exes, qmodel, xs, work, key)
        py, same_check = edgebrain_engines(model, qmodel, xs)
        step_eq_run = same_check()
        _, np_record = numpy_engine(layers, xs)
        np_spikes = np_record()
        # ONNX Runtime: export one timestep and check it against edgebrain float (in a subprocess)
        ox = onnx_column(key, T, work)
        have.update(ox["have"])
        notes += [x for x in ox["notes"] if x not in notes]
        # timing: pooled over fresh worker processes
        r, h, n = measure(key, T, c_cmds, work, procs, rounds, reps_torch, ox["path"])
        have.update(h)
        notes += [x for x in n if x not in notes]
        checks[key] = chk
        for cc, d in chk.items():
            print(f"  C ({cc}) == edgebrain int: {d['equal']}"
                  f"  (saturations C {d['saturations_c']}, edgebrain {d['saturations_edgebrain']})"
                  + ("" if d["equal"] else f"  first mismatch (t, unit) {d.get('first_mismatch')}"), flush=True)
        # float sanity: spikes of edgebrain float vs NumPy float32, and rates
        fs = model.session("float")
        spk_names = list(qmodel.program("int").state_regions)
        _, frec = fs.run(xs, record=spk_names)
        agree, rates = [], {}
        for k, nm in enumerate(spk_names):
            if f"spikes/{nm}" in frec:
                agree.append(float(np.mean(frec[f"spikes/{nm}"] == np_spikes[k])))
                rates[nm] = float(frec[f"spikes/{nm}"].mean())
        extra[key] = {"step_outputs_equal_run": step_eq_run,
                      "numpy_vs_edgebrain_float_spike_agreement": min(agree) if agree else None,
                      "spike_rates": rates, "int_float_spike_agreement":
                      {lr.name: lr.spike_agreement for lr in qrep.layers if lr.spike_agreement is not None},
                      "onnxruntime_vs_edgebrain_float": ox.get("check")}
        if ox.get("check"):
            print("  " + ort_check_line(ox["check"]), flush=True)
        print(f"  spike rates {', '.join(f'{k} {v:.3f}' for k, v in rates.items())};"
              f" NumPy/edgebrain float spike agreement {extra[key]['numpy_vs_edgebrain_float_spike_agreement']:.4f}",
              flush=True)
        results[key] = r
        for name, t in r.items():
            print(f"  {name:24s} cpu {fmt_us(t['cpu'][0])} µs/step (min {fmt_us(t['cpu'][1]).strip()}),"
                  f" wall {fmt_us(t['wall'][0])} (min {fmt_us(t['wall'][1]).strip()})", flush=True)

    # ---- ratios and targets (on the chosen clock's medians)
    def fastest_c(r, c):  # the faster of the C builds (gcc, clang) in this case, on clock c
        return min((k for k in r if k.startswith("C ")), key=lambda k: r[k][c][0], default=None)

    def ratios_for(c):
        out = {}
        for key, r in results.items():
            c_best = r[fastest_c(r, c)][c][0] if fastest_c(r, c) else None
            snn_t = r["snnTorch step"][c][0] if "snnTorch step" in r else None
            ort_t = r[ORT_NAME][c][0] if ORT_NAME in r else None
            out[key] = {name: {"vs_fastest_C": (t[c][0] / c_best) if c_best else None,
                               "speedup_vs_snnTorch": (snn_t / t[c][0]) if snn_t else None,
                               "speedup_vs_onnxruntime": (ort_t / t[c][0]) if ort_t else None}
                        for name, t in r.items()}
        return out

    ratios = {c: ratios_for(c) for c in ("cpu", "wall")}
    fastest = {c: {key: fastest_c(r, c) for key, r in results.items()} for c in ("cpu", "wall")}

    def targets_for(c):
        ra, rb = ratios[c]["a"], ratios[c]["b_spikes"]
        out = {}

        def tgt(val, limit, le):
            if val is None:
                return None
            return bool(val <= limit) if le else bool(val >= limit)

        for prec in ("int", "float"):
            v = ra[f"edgebrain {prec} step"]["vs_fastest_C"]
            out[f"(a) {prec} step ≤ {TARGETS['a_step_vs_c']}× fastest C"] = (v, tgt(v, TARGETS["a_step_vs_c"], True))
            v = ra[f"edgebrain {prec} step"]["speedup_vs_snnTorch"]
            out[f"(a) {prec} step ≥ {TARGETS['a_step_vs_snntorch']:.0f}× faster than snnTorch"] = (
                v, tgt(v, TARGETS["a_step_vs_snntorch"], False))
            v = ra[f"edgebrain {prec} run"]["vs_fastest_C"]
            out[f"(a) {prec} run ≤ {TARGETS['a_run_vs_c']}× fastest C per step"] = (v, tgt(v, TARGETS["a_run_vs_c"], True))
            for mode in ("step", "run"):
                v = rb[f"edgebrain {prec} {mode}"]["speedup_vs_snnTorch"]
                out[f"(b) {prec} {mode} ≥ {TARGETS['b_vs_snntorch']:.0f}× faster than snnTorch"] = (
                    v, tgt(v, TARGETS["b_vs_snntorch"], False))
        v = rb["edgebrain int run"]["vs_fastest_C"]
        out[f"(b) int run ≤ {TARGETS['b_run_vs_c']}× fastest C per step"] = (v, tgt(v, TARGETS["b_run_vs_c"], True))
        for mode in ("step", "run"):
            fi = results["a"].get(f"edgebrain int {mode}"), results["a"].get(f"edgebrain float {mode}")
            v = fi[0][c][0] / fi[1][c][0] if all(fi) else None
            out[f"(a) int {mode} ≤ {TARGETS['int_vs_float']}× float {mode}"] = (v, tgt(v, TARGETS["int_vs_float"], True))
        return out

    targets = {c: targets_for(c) for c in ("cpu", "wall")}

    peak_main = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cold = {}
    if not a.no_cold:
        print("== cold start (fresh processes, model (a))", flush=True)
        p = Path(work) / "watch.ebm"
        qmodels["a"].save(p)  # the .ebm holds the graph and the integer parameters
        cold = cold_start({"float": p, "int": p}, T)
    load1, steal1 = os.getloadavg(), steal_seconds()

    info = machine_info(have)
    info["loadavg_start"], info["loadavg_end"] = load0, load1
    info["steal_s"] = (steal1 - steal0) if steal0 is not None and steal1 is not None else None
    # ---- print the report
    print()
    print(f"date {info['date']}; {info.get('Model name', platform.processor())}, {info.get('CPU(s)', '?')} CPUs "
          f"({info.get('simd', '')}); python {info['python']}, numpy {info['numpy']}, numba {info['numba']}"
          + "".join(f", {k} {info[k]}" for k in ("torch", "snntorch", "norse") if k in info))
    for cc, b in c_builds.items():
        print(f"{cc}: {b['version']}  ({b['command']})")
    if ORT_NAME in results.get("a", {}):
        print(f"ONNX Runtime {info.get('onnxruntime')}, onnx {info.get('onnx')}: one exported timestep per "
              f"InferenceSession.run, states fed back")
    print(f"target instruction set: {ISA_NAME} (NUMBA_CPU_NAME={os.environ.get('NUMBA_CPU_NAME', '(host)')}, "
          f"C {CFLAGS[1]})")
    print(f"load average at start {load0[0]:.2f}, at end {load1[0]:.2f} (1 min)"
          + (f"; CPU time stolen by the hypervisor during the run: {info['steal_s']:.1f} s"
             if info["steal_s"] is not None else ""))
    print(f"batch 1, single thread, T = {T} steps per run; median over {reps_fast} runs in {procs} processes "
          f"({reps_torch} for snnTorch/Norse; C: one process per run); µs per step, "
          f"{'process CPU time' if clk == 'cpu' else 'wall time'}\n")
    print(table(results, ratios[clk], clk))
    print("\n/C: time ÷ the faster C build of that column ("
          + ", ".join(f"{k} {v.split()[1] if v else '—'}" for k, v in fastest[clk].items())
          + "); snnT/x, ORT/x: snnTorch, ONNX Runtime time ÷ this time (speed-up)")
    other = "wall" if clk == "cpu" else "cpu"
    print(f"\nthe same medians on the {other} clock (µs/step):")
    print(table(results, ratios[other], other, ratios_cols=False))
    for key, chk in checks.items():
        for cc, d in chk.items():
            print(f"{key}: C ({cc}) == edgebrain int: {d['equal']}")
    print(f"\ntargets ({clk} clock; the {other} clock in brackets):")
    for name, (val, ok) in targets[clk].items():
        state = "n/a (column skipped)" if ok is None else ("MET" if ok else "MISSED")
        v2, ok2 = targets[other][name]
        st2 = "n/a" if ok2 is None else ("met" if ok2 else "missed")
        print(f"  {name:50s} {('%.2f' % val) if val is not None else '—':>8s}  {state:7s}"
              f"  [{('%.2f' % v2) if v2 is not None else '—'} {st2}]")
    if cold:
        print("\ncold start, model (a), fresh process each (ms); peak RSS = VmHWM of that process:")
        print(f"  {'':12s} {'import':>8s} {'load':>8s} {'1st step':>9s} {'2nd step':>9s} {'1st run':>9s} "
              f"{'process':>9s} {'peak RSS':>10s}")
        for k, d in cold.items():
            print(f"  {k:12s} {d['import_s'] * 1e3:8.1f} {d['load_s'] * 1e3:8.1f} {d['first_step_s'] * 1e3:9.2f} "
                  f"{d['second_step_s'] * 1e3:9.3f} {d['first_run_s'] * 1e3:9.1f} {d['process_wall_s'] * 1e3:9.0f} "
                  f"{d['peak_rss_kib'] / 1024:6.1f} MiB")
    print(f"\npeak RSS of the benchmark's main process (no torch; timing runs in worker processes): {peak_main / 1024:.1f} MiB")
    for x in notes:
        print("note:", x)

    if a.json:
        doc = {"machine": info, "target": {"name": ISA_NAME, "numba_cpu_name": os.environ.get("NUMBA_CPU_NAME"),
                                            "c_march": CFLAGS[1]}, "T": T, "repeats": {"fast": reps_fast, "torch": reps_torch, "processes": procs},
               "clock": clk,
               "us_per_step": {k: {n: {c: {"median": v[c][0] * 1e6, "min": v[c][1] * 1e6} for c in ("cpu", "wall")}
                                   for n, v in r.items()} for k, r in results.items()},
               "ratios": ratios, "targets": {c: {k: {"value": v, "met": ok} for k, (v, ok) in t.items()}
                                             for c, t in targets.items()},
               "c_equals_edgebrain_int": checks, "c_builds": c_builds, "fastest_C": fastest, "checks": extra, "cold_start": cold,
               "peak_rss_bench_process_kib": peak_main, "notes": notes}
        text = json.dumps(doc, indent=2, ensure_ascii=False)
        if a.json == "-":
            print(text)
        else:
            Path(a.json).write_text(text + "\n")
    shutil.rmtree(work, ignore_errors=True)
    ok = all(d["equal"] for chk in checks.values() for d in chk.values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
