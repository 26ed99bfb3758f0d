#!/usr/bin/env python
"""The C runtime against the Numba integer path (issue 14): per-step time, peak memory, start-up.

    python tools/bench/firmware.py                  # every zoo model (a minute or two on 2 cores)
    python tools/bench/firmware.py --quick          # fewer rounds and processes (smoke)
    python tools/bench/firmware.py --models kws,nmnist --json out.json

**Per step.** For each zoo model, on REAL recordings (the zoo's test datasets: the full datasets
when present, else the fixture set in tests/data; each recording encoded by the model's own
stream settings, as tests/firmware/cases.py feeds them), in this one process: the host C runtime
(``CSession.run``: one ``eb_run`` over the sequence, through ctypes) and the Numba integer
session (``Session.run``: one compiled call), both from reset, interleaved round by round (the
order alternates), on the process CPU-time clock (``time.process_time_ns``; ``--clock wall``
for wall time), each sample repeated until it lasts about 20 ms. Reported: the median µs per
step of each and the ratio C ÷ Numba (the issue's target: within 1.3×). The outputs of the
two are checked equal first (exit status 1 if not). ``step`` loops (a Python call per step, as
a live stream drives a session) are timed the same way, as a second figure.

**Start-up and memory.** ``edgebrain run zoo:NAME -i X.npy -o OUT`` in fresh processes, with
``--backend c`` and with ``--precision int`` (Numba), interleaved, after one unmeasured run of
each (so the Numba cache, the C runtime's build, the model's blob cache and Python's bytecode
are warm: PYTHONDONTWRITEBYTECODE is unset for the children, as a pip-installed wheel has its
bytecode compiled): the
process's wall time (median) and its peak resident memory (VmHWM, read by the process itself
at exit). Also the same run through the library rather than the command line (no typer), the
first ``--backend c`` run of a model (an empty blob cache: it lowers the model, which imports
Numba), and the floor: ``python -c "import numpy"``. The issue's targets for ``--backend c``: peak RSS under
60 MiB, start-up under 0.2 s.

Timing and memory are measured here, never asserted by tests (a shared machine's times are
noise to a test); tests/firmware/test_backend_c.py checks that the outputs are identical and
that ``run --backend c`` imports neither Numba nor LLVM.
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
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

#: a process that runs the command line (or, with "lib", the library's run_file) and reports its
#: own peak resident memory on its last stderr line
CHILD = r"""
import sys
mode, args = sys.argv[1], sys.argv[2:]
code = 0
if mode == "cli":
    from edgebrain.cli import main
    try:
        main(args)
    except SystemExit as e:
        code = e.code or 0
else:
    from edgebrain.apps.run import run_file
    from edgebrain.model import Model
    model, x, out, backend = args
    run_file(Model.load(model), x, out, None, progress=False, model_name=model, backend=backend)
with open("/proc/self/status") as f:
    hwm = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
sys.stderr.write(f"\nVMHWM {hwm} {'numba' in sys.modules}\n")
sys.exit(code)
"""


def zoo_inputs(names, max_steps):
    """{name: (model, xs)} on real recordings (tests/firmware/cases.py's ZOO), with the folder used."""
    from tests.conftest import find_datasets
    from tests.firmware import cases

    root, why = find_datasets()
    if root is None:
        sys.exit(f"no recordings: {why}")
    out = {}
    for name in names:
        got = cases.zoo_input(name, root)
        if got is None:
            print(f"  {name}: recordings {cases.ZOO[name][0]} not found under {root}; skipped", file=sys.stderr)
            continue
        model, xs = got
        out[name] = (model, np.ascontiguousarray(xs[:max_steps], np.float32))
    return out, str(root)


def _clock(kind):
    return time.process_time_ns if kind == "cpu" else time.perf_counter_ns


def _sample(fn, clock, min_ns=20_000_000):
    """ns per call of fn(), repeating it until the sample lasts about min_ns."""
    reps, total = 0, 0
    while total < min_ns:
        t0 = clock()
        fn()
        total += clock() - t0
        reps += 1
    return total / reps


def per_step(model, xs, rounds, clock_kind):
    """Median µs per step of the C and Numba sessions over xs (run, and a step loop), interleaved."""
    from edgebrain.csession import CSession
    from edgebrain.session import Session

    prog = model.program("int")
    c, n = CSession(prog), Session(prog)
    yc, _ = c.run(xs)
    yn, _ = n.run(xs)  # (also compiles, or loads from Numba's cache, before timing)
    same = all(np.array_equal(yc[k], yn[k]) for k in yn) if isinstance(yn, dict) else np.array_equal(yc, yn)
    for s in (c, n):
        s.reset()
        s.step(xs[0])
    T = len(xs)

    def run(s):
        s.reset()
        s.run(xs)

    def loop(s):
        s.reset()
        step = s.step
        for x in xs:
            step(x)

    clock = _clock(clock_kind)
    samples = {(e, k): [] for e in ("c", "numba") for k in ("run", "step")}
    for r in range(rounds):
        order = (("c", c), ("numba", n)) if r % 2 == 0 else (("numba", n), ("c", c))
        for kind, fn in (("run", run), ("step", loop)):
            for e, s in order:
                samples[(e, kind)].append(_sample(lambda fn=fn, s=s: fn(s), clock) / T / 1e3)
    med = {f"{e}_{k}_us": statistics.median(v) for (e, k), v in samples.items()}
    med["ratio_run"] = med["c_run_us"] / med["numba_run_us"]
    med["ratio_step"] = med["c_step_us"] / med["numba_step_us"]
    med["steps"] = T
    med["identical"] = bool(same)
    return med


def _child(mode, args, env):
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", CHILD, mode, *args], capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - t0
    line = [ln for ln in r.stderr.splitlines() if ln.startswith("VMHWM ")]
    if r.returncode != 0 or not line:
        raise RuntimeError(f"{mode} {' '.join(args)} failed ({r.returncode}): {r.stderr.strip()[-400:]}")
    _, hwm, numba = line[-1].split()
    return wall, int(hwm) / 1024, numba == "True"


def start_up(name, model, xs, procs, tmp):
    """Median wall time and peak RSS of fresh `run` processes: --backend c and --precision int,
    through the command line and through the library."""
    x = Path(tmp) / f"{name}.npy"
    np.save(x, xs)
    out = str(Path(tmp) / f"{name}.npz")
    # bytecode written, as an installed wheel has it (pip compiles it); a sandbox that sets
    # PYTHONDONTWRITEBYTECODE would otherwise time Python compiling edgebrain's sources each run
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(ROOT)
    variants = {
        "c_cli": ("cli", ["run", f"zoo:{name}", "-i", str(x), "-o", out, "--backend", "c"]),
        "numba_cli": ("cli", ["run", f"zoo:{name}", "-i", str(x), "-o", out, "--precision", "int"]),
        "c_lib": ("lib", [f"zoo:{name}", str(x), out, "c"]),
        "numba_lib": ("lib", [f"zoo:{name}", str(x), out, "numba"]),
    }
    for mode, args in variants.values():  # warm: Numba's cache, the runtime's build, the blob cache
        _child(mode, args, env)
    got = {k: [] for k in variants}
    for r in range(procs):
        for k in (variants if r % 2 == 0 else reversed(list(variants))):
            got[k].append(_child(*variants[k], env))
    first = []  # --backend c on a model not run before: the blob cache empty (it lowers, importing Numba)
    for r in range(procs):
        home = Path(tmp) / f"xdg-{name}-{r}"
        _copy_runtime_build(home)
        first.append(_child(*variants["c_cli"], {**env, "XDG_CACHE_HOME": str(home)}))
    got["c_cli_first"] = first
    res = {}
    for k, v in got.items():
        res[f"{k}_s"] = statistics.median(w for w, _, _ in v)
        res[f"{k}_rss_mib"] = statistics.median(m for _, m, _ in v)
        res[f"{k}_imports_numba"] = any(nb for _, _, nb in v)
    return res


def _copy_runtime_build(home: Path) -> None:
    """An XDG cache folder with the C runtime's build (as the user's cache has it) and no blobs."""
    import shutil

    from edgebrain import cbuild

    lib = cbuild.library()
    d = home / "edgebrain" / "cruntime" / lib.parent.name
    d.mkdir(parents=True, exist_ok=True)
    shutil.copy2(lib, d / lib.name)


def floor(procs):
    """Median wall time and peak RSS of `python -c "import numpy"`: what no edgebrain command can beat."""
    code = ("import numpy\nwith open('/proc/self/status') as f:\n"
            "    print(next(int(l.split()[1]) for l in f if l.startswith('VmHWM:')))")
    walls, rss = [], []
    for _ in range(procs):
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        walls.append(time.perf_counter() - t0)
        rss.append(int(r.stdout.split()[-1]) / 1024)
    return {"python_numpy_s": statistics.median(walls), "python_numpy_rss_mib": statistics.median(rss)}


def table(results, fl):
    head = ("| model | steps | C µs/step | Numba µs/step | C÷Numba | step loop C / Numba µs | start-up c / int s "
            "| (library) c / int s | peak RSS c / int MiB | numba in c | c, blob not cached: s, MiB |")
    lines = [head, "|" + "---|" * 11]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['steps']} | {r['c_run_us']:.2f} | {r['numba_run_us']:.2f} | {r['ratio_run']:.2f} | "
            f"{r['c_step_us']:.2f} / {r['numba_step_us']:.2f} | {r['c_cli_s']:.3f} / {r['numba_cli_s']:.3f} | "
            f"{r['c_lib_s']:.3f} / {r['numba_lib_s']:.3f} | {r['c_cli_rss_mib']:.1f} / {r['numba_cli_rss_mib']:.1f} | "
            f"{'yes' if r['c_cli_imports_numba'] else 'no'} | {r['c_cli_first_s']:.3f}, "
            f"{r['c_cli_first_rss_mib']:.1f} |")
    lines.append(f"\nfloor (python -c 'import numpy'): {fl['python_numpy_s']:.3f} s, "
                 f"{fl['python_numpy_rss_mib']:.1f} MiB")
    return "\n".join(lines)


def main(argv=None):
    from tests.firmware.cases import ZOO

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default=",".join(ZOO), help="comma-separated zoo models (default: all)")
    ap.add_argument("--rounds", type=int, default=9, help="interleaved rounds of per-step timing")
    ap.add_argument("--procs", type=int, default=5, help="fresh processes per start-up variant")
    ap.add_argument("--steps", type=int, default=2000, help="steps of each model's recordings kept (at most)")
    ap.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    ap.add_argument("--quick", action="store_true", help="3 rounds, 2 processes")
    ap.add_argument("--json", dest="json_out", help="also write the results here")
    a = ap.parse_args(argv)
    if a.quick:
        a.rounds, a.procs = 3, 2
    names = [n.strip() for n in a.models.split(",") if n.strip()]
    unknown = [n for n in names if n not in ZOO]
    if unknown:
        ap.error(f"unknown zoo models {unknown}; expected some of {', '.join(ZOO)}")
    inputs, root = zoo_inputs(names, a.steps)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (model, xs) in inputs.items():
            print(f"  {name}: {len(xs)} steps ...", file=sys.stderr)
            r = per_step(model, xs, a.rounds, a.clock)
            r.update(start_up(name, model, xs, a.procs, tmp))
            results[name] = r
        fl = floor(a.procs)
    print(table(results, fl))
    bad = [n for n, r in results.items() if not r["identical"]]
    if bad:
        print(f"OUTPUTS DIFFER: {', '.join(bad)}", file=sys.stderr)
    if a.json_out:
        import numba

        doc = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
               "python": platform.python_version(), "platform": platform.platform(), "numpy": np.__version__,
               "numba": numba.__version__, "clock": a.clock, "rounds": a.rounds, "procs": a.procs,
               "datasets": root, "floor": fl, "models": results,
               "targets": {"ratio_run": 1.3, "c_cli_rss_mib": 60, "c_cli_s": 0.2}}
        Path(a.json_out).write_text(json.dumps(doc, indent=1))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
