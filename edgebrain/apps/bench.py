"""``edgebrain bench``: start-up time, per-step latency, throughput, peak memory and footprint.

Measured the way TFLite's ``benchmark_model`` measures (and printed in its manner):

* cold start (only with ``cold=True``, ``--cold``: it takes most of the time) -- a fresh Python
  process that imports edgebrain, loads the model and takes one step, with an empty Numba cache
  (``NUMBA_CACHE_DIR`` pointed at a new directory: every kernel is compiled) and again with that
  cache warm; ``None`` when not measured;
* in this process: init (load + build the session), the first step, warm-up steps, then ``steps``
  timed steps at batch 1 (one ``Session.step`` call each): count, first, curr, min, max, avg, std
  and p50/p90/p99 in microseconds;
* throughput: steps/s of a compiled ``Session.run`` loop at batch 1 and at batch ``B``
  (samples/s = steps/s × B);
* peak resident memory (``VmHWM`` of /proc/self/status, ``getrusage`` elsewhere), and the model's
  footprint at the precision benchmarked (:func:`edgebrain.metrics.footprint`).

The input is uniform random in [0, 1): every input is non-zero, the dense worst case for the
event-driven kernels.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

from ..errors import InputError

WARMUP_STEPS = 20
#: said on stderr before a benchmark with ``--cold``, which spends most of its time compiling in a child
COLD_NOTICE = ("note: --cold: also measuring start-up in two fresh processes, with an empty and then a warm "
               "Numba cache; the empty one compiles every kernel again (10-60 s on a PC, minutes on a Raspberry Pi)")
#: one cold-start measurement in a child process: import, load, session, first step (times in µs)
_CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np
import edgebrain
from edgebrain.model import Model
t1 = time.perf_counter()
m = Model.load(sys.argv[1])
s = m.session(sys.argv[2])
t2 = time.perf_counter()
x = np.random.default_rng(0).random(tuple(m.input_shape)).astype(np.float32)
s.step(x)
t3 = time.perf_counter()
import resource
print(json.dumps({"import_us": 1e6 * (t1 - t0), "init_us": 1e6 * (t2 - t1), "first_step_us": 1e6 * (t3 - t2),
                  "total_us": 1e6 * (t3 - t0), "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""


def peak_rss_bytes() -> int:
    """Peak resident set size of this process (VmHWM; getrusage where /proc is absent)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(r if sys.platform == "darwin" else r * 1024)


def current_rss_bytes() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return peak_rss_bytes()


def stats(us: np.ndarray) -> dict:
    """TFLite-style statistics of per-run times in µs, plus percentiles."""
    us = np.asarray(us, np.float64)
    return {"count": int(us.size), "first": float(us[0]), "curr": float(us[-1]), "min": float(us.min()),
            "max": float(us.max()), "avg": float(us.mean()), "std": float(us.std()),
            "p50": float(np.percentile(us, 50)), "p90": float(np.percentile(us, 90)),
            "p99": float(np.percentile(us, 99))}


def cold_start(path: str, precision: str, timeout: float = 900.0) -> dict:
    """Start-up in fresh processes: with an empty Numba cache (``cold``) and with it warm (``warm``)."""
    out = {}
    with tempfile.TemporaryDirectory(prefix="eb-numba-cache-") as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        for key in ("cold", "warm"):
            t0 = time.perf_counter()
            p = subprocess.run([sys.executable, "-c", _CHILD, os.path.abspath(path), precision], env=env, check=False,
                               capture_output=True, text=True, timeout=timeout)
            wall = time.perf_counter() - t0
            if p.returncode != 0:
                tail = (p.stderr.strip().splitlines() or ["no output"])[-1]
                raise InputError(f"the start-up measurement failed in a child process: {tail}", file=path)
            r = json.loads(p.stdout.strip().splitlines()[-1])
            r["process_wall_us"] = 1e6 * wall
            out[key] = r
    return out


def run(path: str, steps: int = 1000, batch: int = 8, precision: str | None = None, cold: bool = False,
        warmup: int = WARMUP_STEPS, progress: bool = False, say=None, threads: int = 1) -> dict:
    """Benchmark the model at ``path``; returns plain data (see the module docstring). ``say(text)``, if
    given, is told up front that the cold-start measurement will take a while. A TFLite model is timed
    through its interpreter with ``threads`` threads (:func:`bench_tflite`: the same keys); ``threads``
    applies to TFLite models only."""
    from .. import metrics
    from ..model import Model
    from ..tflite_io import is_tflite_file

    if is_tflite_file(path):
        return bench_tflite(path, steps=steps, threads=threads, warmup=warmup, precision=precision, cold=cold)
    from ..onnx_io import is_onnx_file

    if is_onnx_file(path):  # through ONNX Runtime (docs/onnx.md)
        return bench_onnx(path, steps=steps, threads=threads, warmup=warmup, precision=precision, cold=cold)
    if threads != 1:
        raise InputError(f"--threads {threads}: sets the TFLite interpreter's threads; a spiking model runs on one")

    steps, batch = int(steps), int(batch)
    if steps < 1:
        raise InputError(f"--steps {steps}; expected >= 1")
    if batch < 1:
        raise InputError(f"--batch {batch}; expected >= 1")
    if precision not in (None, "float", "int"):
        raise InputError(f"precision '{precision}'; expected float or int")
    rss0 = current_rss_bytes()
    t0 = time.perf_counter()
    model = Model.load(path)
    path = model.path or path  # zoo:NAME resolved to its file
    precision = precision or ("int" if model.quant else "float")
    sess = model.session(precision)
    init_us = 1e6 * (time.perf_counter() - t0)
    if cold and say is not None:
        say(COLD_NOTICE)
    rss_init = current_rss_bytes()
    shape = tuple(model.input_shape)
    rng = np.random.default_rng(0)
    xs = rng.random((steps + warmup + 1,) + shape).astype(np.float32)

    first_us, warm, lat = time_calls(sess.step, xs, warmup, steps, progress)
    base = 1 + warmup

    # throughput: compiled loops (batch 1, then batch B)
    sess.reset()
    sess.run(xs[:2])  # compile run() outside the timing
    t = time.perf_counter()
    sess.run(xs[base:base + steps])
    run1 = time.perf_counter() - t
    bsess = model.session(precision, batch=batch)
    xb = rng.random((steps, batch) + shape).astype(np.float32)
    bsess.run(xb[:2])
    bsess.reset()
    t = time.perf_counter()
    bsess.run(xb)
    runb = time.perf_counter() - t

    fp = metrics.footprint(model, precision)
    res = {
        "model": path, "precision": precision, "input_shape": list(shape), "steps": steps, "batch": batch,
        "warmup_steps": warmup, "input": "uniform random in [0, 1) (every input non-zero)",
        "model_file_bytes": os.path.getsize(path),
        "init_us": init_us, "first_step_us": first_us,
        "warmup": stats(warm) if warmup else None,
        "latency_us": stats(lat),
        "throughput": {"steps_per_s_step_loop": steps / (lat.sum() / 1e6),
                       "steps_per_s_batch1": steps / run1,
                       "steps_per_s_batch": steps / runb, "samples_per_s_batch": steps * batch / runb},
        "memory": {"peak_rss_bytes": peak_rss_bytes(), "rss_init_delta_bytes": rss_init - rss0,
                   "rss_overall_delta_bytes": current_rss_bytes() - rss0},
        "footprint": {k: fp[k] for k in ("param_bytes", "state_bytes", "total_bytes", "neurobench_bytes",
                                         "estimated")},
        "cold_start": cold_start(path, precision) if cold else None,
    }
    return res


def time_calls(call, xs, warmup: int, steps: int, progress: bool):
    """(first call µs, ``warmup`` warm-up call µs, ``steps`` timed call µs) of ``call`` on ``xs[0]``,
    ``xs[1:1 + warmup]`` and the ``steps`` items after those, one call each on the wall clock."""
    from ..progress import bar as progress_bar

    clock = time.perf_counter_ns
    t = clock()
    call(xs[0])
    first_us = (clock() - t) / 1e3
    warm = np.empty(warmup)
    for k in range(warmup):
        t = clock()
        call(xs[1 + k])
        warm[k] = (clock() - t) / 1e3
    lat = np.empty(steps)
    bar = progress_bar(steps, label="bench", enabled=progress)
    base = 1 + warmup
    for k in range(steps):
        t = clock()
        call(xs[base + k])
        lat[k] = (clock() - t) / 1e3
        if (k & 1023) == 1023:
            bar.update(1024)
    bar.close()
    return first_us, warm, lat


def _refuse_numba_options(path: str, precision, cold: bool, what: str, steps) -> int:
    """The checks every interpreter's bench shares: no --precision, no --cold, steps >= 1."""
    if precision is not None:
        raise InputError(f"--precision {precision}: {what} model runs at the precision it was converted to",
                         file=path)
    if cold:
        raise InputError(f"--cold measures start-up with an empty Numba cache; {what} model does not use Numba",
                         file=path)
    steps = int(steps)
    if steps < 1:
        raise InputError(f"--steps {steps}; expected >= 1")
    return steps


def _interpreter_result(path: str, m, call, xs, *, steps: int, warmup: int, rss0: int, init_us: float,
                        rss_init: int, described: str, footprint: dict, **extra) -> dict:
    """Time ``call`` over ``xs`` (batch 1) and return the dict of :func:`run` for a model run by another
    interpreter (``m``: its runtime, threads, precision and input shape)."""
    first_us, warm, lat = time_calls(call, xs, warmup, steps, progress=False)
    rate = steps / (lat.sum() / 1e6)
    return {
        "model": path, "precision": m.precision, "input_shape": list(m.input_shape), "steps": steps, "batch": 1,
        "warmup_steps": warmup, "input": described, "model_file_bytes": os.path.getsize(path),
        "runtime": m.runtime, "threads": m.threads, **extra, "init_us": init_us, "first_step_us": first_us,
        "warmup": stats(warm) if warmup else None, "latency_us": stats(lat),
        "throughput": {"steps_per_s_step_loop": rate, "steps_per_s_batch1": rate, "steps_per_s_batch": rate,
                       "samples_per_s_batch": rate},
        "memory": {"peak_rss_bytes": peak_rss_bytes(), "rss_init_delta_bytes": rss_init - rss0,
                   "rss_overall_delta_bytes": current_rss_bytes() - rss0},
        "footprint": footprint, "cold_start": None,
    }


def bench_tflite(path: str, steps: int = 1000, threads: int = 1, warmup: int = 20, precision=None,
                 cold: bool = False) -> dict:
    """``edgebrain bench MODEL.tflite``: the dict of :func:`edgebrain.apps.bench.run` for a TFLite
    model. One step is one ``invoke`` at batch 1 with the interpreter's thread count set to
    ``threads``; throughput is that loop's (every throughput field), ``batch`` is 1; the footprint
    is the file's constant bytes (parameters) and the activation peak (state, an arena's lower bound)."""
    from ..tflite_session import TFLiteModel

    steps = _refuse_numba_options(path, precision, cold, "a TFLite", steps)
    rss0 = current_rss_bytes()
    t0 = time.perf_counter()
    m = TFLiteModel.load(path, threads=threads)
    init_us = 1e6 * (time.perf_counter() - t0)
    rss_init = current_rss_bytes()
    rng = np.random.default_rng(0)
    xs = m.quantize_input(rng.random((steps + warmup + 1,) + m.input_shape).astype(np.float32))
    tot = m.summary()["totals"]
    footprint = {"param_bytes": tot["constant_bytes"], "state_bytes": tot["activation_peak_bytes"],
                 "total_bytes": tot["constant_bytes"] + tot["activation_peak_bytes"],
                 "neurobench_bytes": 4 * tot["parameters"], "estimated": True}
    return _interpreter_result(path, m, m.invoke, xs, steps=steps, warmup=warmup, rss0=rss0, init_us=init_us,
                               rss_init=rss_init, footprint=footprint,
                               described="uniform random in [0, 1) (quantized with the input's scale for an "
                               "integer input)")


def bench_onnx(path: str, steps: int = 1000, threads: int = 1, warmup: int = 20, precision=None,
               cold: bool = False) -> dict:
    """``edgebrain bench MODEL.onnx``: the dict of :func:`run` for an ONNX model, as :func:`bench_tflite`. One
    step is one ONNX Runtime ``run`` at batch 1 with ``threads`` intra-op threads: for a stateful model one
    timestep, its states fed back (:class:`edgebrain.onnx_session.OnnxStepSession`, as ``stream`` steps it),
    else one inference. The footprint: the constants (with the ``onnx`` package; else the file's size,
    estimated) and the state fed back."""
    from ..onnx_session import OnnxModel

    steps = _refuse_numba_options(path, precision, cold, "an ONNX", steps)
    rss0 = current_rss_bytes()
    t0 = time.perf_counter()
    m = OnnxModel.load(path, threads=threads)
    call = m.step_session().step if m.stateful else m.infer
    init_us = 1e6 * (time.perf_counter() - t0)
    rss_init = current_rss_bytes()
    xs = np.random.default_rng(0).random((steps + warmup + 1,) + m.input_shape).astype(np.float32)
    xs = m.check_input(np.round(xs) if m.data["dtype"].kind in "iub" else xs)
    g = m.graph()
    params = g["totals"]["constant_bytes"] if g else os.path.getsize(path)
    footprint = {"param_bytes": params, "state_bytes": m.state_bytes, "total_bytes": params + m.state_bytes,
                 "neurobench_bytes": 4 * g["totals"]["parameters"] if g else params, "estimated": g is None}
    return _interpreter_result(path, m, call, xs, steps=steps, warmup=warmup, rss0=rss0, init_us=init_us,
                               rss_init=rss_init, footprint=footprint, stateful=m.stateful,
                               described="uniform random in [0, 1) (rounded for an integer input)")


def _mb(b) -> str:
    return f"{b / 2 ** 20:.4g}"


def _stats_line(s: dict) -> str:
    """One line of :func:`stats` in benchmark_model's words."""
    return (f"count={s['count']} first={s['first']:.4g} curr={s['curr']:.4g} min={s['min']:.4g} max={s['max']:.4g} "
            f"avg={s['avg']:.4g} std={s['std']:.4g}")


def format_report(r: dict) -> str:
    """The result in the manner of TFLite's benchmark_model."""
    L = []
    a = L.append
    a(f"Graph: [{r['model']}]")
    a(f"Precision: [{r['precision']}]  Input shape: {tuple(r['input_shape'])}  Input: {r['input']}")
    a(f"Num runs: [{r['steps']}]  Warmup runs: [{r['warmup_steps']}]  Batch (throughput): [{r['batch']}]")
    if "threads" in r:
        a(f"Runtime: [{r['runtime']}]  Num threads: [{r['threads']}]")
    a(f"The input model file size (MB): {_mb(r['model_file_bytes'])}")
    a(f"Initialized session in {r['init_us'] / 1e3:.3f}ms.")
    if r["warmup"]:
        w = r["warmup"]
        a(f"Running benchmark for {r['warmup_steps']} warm-up steps.")
        a(_stats_line(w))
    s = r["latency_us"]
    a("")
    a(f"Running benchmark for {r['steps']} steps (one {'interpreter invoke' if 'threads' in r else 'Session.step'} "
      "each, batch 1).")
    a(_stats_line(s))
    a(f"Percentiles (us): p50={s['p50']:.4g} p90={s['p90']:.4g} p99={s['p99']:.4g}")
    a("")
    a(f"Inference timings in us: Init: {r['init_us']:.0f}, First inference: {r['first_step_us']:.0f}, "
      f"Warmup (avg): {r['warmup']['avg'] if r['warmup'] else 0:.4g}, Inference (avg): {s['avg']:.4g}")
    t = r["throughput"]
    a(f"Throughput: {t['steps_per_s_step_loop']:.5g} steps/s (step loop), {t['steps_per_s_batch1']:.5g} steps/s "
      f"(compiled run, batch 1), {t['samples_per_s_batch']:.5g} samples/s = {t['steps_per_s_batch']:.5g} steps/s "
      f"× batch {r['batch']}")
    c = r["cold_start"]
    if not c:
        a("Cold start: not measured (--cold to measure)")
    else:
        for k in ("cold", "warm"):
            v = c[k]
            a(f"Start-up ({k} Numba cache) in us: Import: {v['import_us']:.0f}, Init: {v['init_us']:.0f}, "
              f"First inference: {v['first_step_us']:.0f}, Total: {v['total_us']:.0f} "
              f"(process {v['process_wall_us']:.0f}; peak RSS {_mb(v['peak_rss_bytes'])} MB)")
    m = r["memory"]
    a("Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the "
      "actual memory footprint of the model at runtime. Take the information at your discretion.")
    a(f"Memory footprint delta from the start of the tool (MB): init={_mb(m['rss_init_delta_bytes'])} "
      f"overall={_mb(m['rss_overall_delta_bytes'])}")
    a(f"Overall peak memory footprint (MB) via VmHWM: {_mb(m['peak_rss_bytes'])}")
    f = r["footprint"]
    a(f"Model footprint ({r['precision']}{', estimated' if f['estimated'] else ''}) in bytes: "
      f"parameters={f['param_bytes']} state={f['state_bytes']} total={f['total_bytes']} "
      f"(NeuroBench float convention: {f['neurobench_bytes']})")
    return "\n".join(L)
