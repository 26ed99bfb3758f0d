"""Cold start for tools/bench/kernels.py: the first ``step`` of a model loaded from an ``.ebm`` file
in a fresh process, with an empty Numba cache and again with that cache filled, and the peak
resident memory (VmHWM) of that process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


CHILD = r"""
import os, sys, time, json, resource
t0 = time.perf_counter()
sys.path.insert(0, sys.argv[1])
import numpy as np
import edgebrain.model
t_import = time.perf_counter() - t0
path, prec, T = sys.argv[2], sys.argv[3], int(sys.argv[4])
t1 = time.perf_counter()
m = edgebrain.model.Model.load(path)
s = m.session(prec)
t_load = time.perf_counter() - t1
x = np.random.default_rng(0).standard_normal((T,) + tuple(m.input_shape)).astype(np.float32)
t2 = time.perf_counter(); s.step(x[0]); t_first = time.perf_counter() - t2
t3 = time.perf_counter(); s.step(x[1]); t_second = time.perf_counter() - t3
t4 = time.perf_counter(); s.run(x); t_run_first = time.perf_counter() - t4
t5 = time.perf_counter(); s.run(x); t_run_second = time.perf_counter() - t5
# VmHWM: this process's own peak. (getrusage's ru_maxrss is carried over fork+exec from the
# parent on Linux, so in a child of a big process it reports the parent's peak.)
hwm = None
try:
    with open("/proc/self/status") as f:
        hwm = next(int(l.split()[1]) for l in f if l.startswith("VmHWM:"))
except (OSError, StopIteration):
    pass
ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"import_s": t_import, "load_s": t_load, "first_step_s": t_first, "second_step_s": t_second,
                  "first_run_s": t_run_first, "second_run_s": t_run_second, "T": T,
                  "peak_rss_kib": hwm if hwm is not None else ru, "ru_maxrss_kib": ru}))
"""


def cold_start(model_paths, T):
    """First step in a fresh process: empty Numba cache, then the same cache again (warm)."""
    out = {}
    for prec, path in model_paths.items():
        cache = tempfile.mkdtemp(prefix="eb_numba_cache_")
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        for label in ("cold", "warm"):
            t0 = time.perf_counter()
            r = subprocess.run([sys.executable, "-c", CHILD, str(ROOT), str(path), prec, str(T)],
                               capture_output=True, text=True, env=env)
            wall = time.perf_counter() - t0
            if r.returncode:
                raise SystemExit(f"cold-start child failed: {r.stderr}")
            d = json.loads(r.stdout.strip().splitlines()[-1])
            d["process_wall_s"] = wall
            out[f"{prec} {label}"] = d
        shutil.rmtree(cache, ignore_errors=True)
    return out

