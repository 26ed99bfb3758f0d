"""The C reference loop of tools/bench/kernels.py: ``ref_loop.c``'s parameter file written from
edgebrain's quantized parameters, the gcc and clang builds (``-march`` follows ``--target``), and
the check that each build's outputs are bit-identical to edgebrain's int session."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

#: --target: instruction set both sides are built for, as (NUMBA_CPU_NAME, gcc/clang -march); the
#: integer path must be fast on what users deploy to, not only on this machine's widest vectors
ISA = {"native": (None, "native"), "avx2": ("haswell", "haswell"), "x86-64-v2": ("x86-64-v2", "x86-64-v2")}
#: the flags of both compilers; kernels.py sets CFLAGS[1] to the target's -march before building
CFLAGS = ["-O3", "-march=native", "-ffp-contract=off"]
#: the compilers tried, in this order; each builds its own column ("C gcc -O3 (int)", "C clang -O3 (int)")
COMPILERS = ("gcc", "clang")


def dump_c_params(qmodel, xs, path):
    """Write ref_loop.c's parameter file from the quantizer's integer parameters (qmodel.quant)."""
    from edgebrain import ops

    g, q = qmodel.graph, qmodel.quant
    if int(q["weight_bits"]) != 8:
        raise SystemExit("the C reference handles 8-bit weights only")
    nodes = q["nodes"]
    order = [n for n in g.order if not isinstance(g.nodes[n], ops.Output)]
    inp, rest = order[0], order[1:]
    assert isinstance(g.nodes[inp], ops.Input)
    state_bits = int(q["state_bits"])
    lo_s, hi_s = (-(2 ** 15), 2 ** 15 - 1) if state_bits == 16 else (-(2 ** 31), 2 ** 31 - 1)
    T, n_in = xs.shape
    qi = nodes[inp]
    buf = bytearray(b"EBREF1\0\0")
    buf += struct.pack("<4i", len(rest) // 2, T, n_in, state_bits)
    buf += struct.pack("<f", float(np.float32(1.0 / qi["scale"])))
    buf += struct.pack("<2i", int(qi["lo"]), int(qi["hi"]))
    i32 = lambda a: np.ascontiguousarray(a, dtype="<i4").tobytes()  # noqa: E731
    for aff, neu in zip(rest[0::2], rest[1::2]):
        op_a, op_n = g.nodes[aff], g.nodes[neu]
        assert isinstance(op_a, ops.Affine) and isinstance(op_n, ops.Neuron), (aff, neu)
        if op_n.cuba or op_n.multispike or (op_n.spiking and op_n.reset_delay):
            raise SystemExit(f"node {neu}: the C reference handles LIF/LI without current, multi-spike or delayed reset")
        qa, qn = nodes[aff], nodes[neu]
        w = np.asarray(qa["w"], np.int8)  # (n_out, n_in)
        n_o, n_i = w.shape
        has_b = "b" in qa
        buf += struct.pack("<5i", n_i, n_o, int(has_b), int(qa["identity"]), int(qa["wide"]))
        buf += np.ascontiguousarray(w.T).tobytes()
        if has_b:
            buf += i32(qa["b"])
        buf += i32(qa["rq_m"]) + i32(qa["rq_s"])
        sub = op_n.spiking and op_n.reset == "subtract"
        buf += struct.pack("<8i", int(op_n.spiking), int(sub), int(op_n.spiking and op_n.threshold_ge),
                           int(qn["decay"] == "shift"), int(bool(qn.get("gmem_identity"))), int(qn["dq"]), lo_s, hi_s)
        z = np.zeros(n_o, np.int64)
        for k in ("beta_m", "gmem_m", "gmem_s", "bias", "thr", "v_reset"):
            buf += i32(np.broadcast_to(np.asarray(qn[k]), (n_o,)) if k in qn else z)
    buf += np.ascontiguousarray(xs, dtype="<f4").tobytes()
    Path(path).write_bytes(bytes(buf))
    return [n for n in rest[1::2]]


def build_c(workdir, have, source="ref_loop.c", cflags=None):
    """Compile ``source`` (beside this file) with every compiler of COMPILERS found, with the same
    flags (``cflags``, default CFLAGS: so the same ``-march`` as Numba's pinned target). Returns
    ({name: exe path}, notes, {name: {"version", "command"}})."""
    cflags = CFLAGS if cflags is None else cflags
    src = HERE / source
    exes, notes, builds = {}, [], {}
    for cc in COMPILERS:
        path = shutil.which(cc)
        if not path:
            notes.append(f"{cc} not found: its C column is skipped (apt-get install -y {cc})")
            continue
        exe = Path(workdir) / f"{src.stem}_{cc}"
        cmd = [path, *cflags, "-DSTATE_BITS=16", str(src), "-o", str(exe), "-lm"]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode:
            notes.append(f"{cc} failed to build {source} with {' '.join(cflags)}: {r.stderr.strip()[:300]}")
            continue
        ver = subprocess.run([path, "--version"], capture_output=True, text=True).stdout.splitlines()[0]
        have[cc] = ver
        exes[cc] = str(exe)
        builds[cc] = {"version": ver, "command": " ".join([cc, *cflags, "-DSTATE_BITS=16", source, "-lm"])}
    return exes, notes, builds


def int_outputs(qmodel, xs, neurons):
    """edgebrain's int session over xs: every listed neuron's output at every step, as integers
    (spikes, or the membrane of non-spiking layers), (T, sum of sizes); and the session."""
    s = qmodel.session("int")
    _, rec = s.run(xs, record=neurons)
    prog = qmodel.program("int")
    cols = []
    for n in neurons:
        key = f"spikes/{n}" if f"spikes/{n}" in rec else f"out/{n}"
        a = np.asarray(rec[key]) if key.startswith("spikes") else np.asarray(rec[key]) / prog.scales[n]
        cols.append(np.rint(a).reshape(len(xs), -1).astype(np.int64))
    return np.concatenate(cols, axis=1), s


def c_engines(exes, qmodel, xs, workdir, tag, dump=dump_c_params):
    """Dump the parameters (``dump(qmodel, xs, path)`` returns the neurons the C loop records),
    run every C build once to check that its outputs are bit-identical to edgebrain's int
    session, and return the timing commands and the checks."""
    cmds, checks = {}, {}
    params = Path(workdir) / f"{tag}.params.bin"
    eb, s = int_outputs(qmodel, xs, dump(qmodel, xs, params))
    eb_sat = int(s.saturations.sum())
    for cc, exe in exes.items():
        out = Path(workdir) / f"{tag}.{cc}.out.bin"
        r = subprocess.run([exe, str(params), str(out), "1"], capture_output=True, text=True)
        if r.returncode:
            raise SystemExit(f"{Path(exe).name} failed: {r.stderr}")
        info = json.loads(r.stdout.strip().splitlines()[-1])
        c = np.fromfile(out, dtype="<i4").reshape(len(xs), -1).astype(np.int64)
        same = bool(c.shape == eb.shape and np.array_equal(c, eb))
        detail = {"equal": same, "saturations_c": info["saturations"], "saturations_edgebrain": eb_sat,
                  "values_compared": int(eb.size)}
        if not same and c.shape == eb.shape:
            bad = np.argwhere(c != eb)
            detail["first_mismatch"] = [int(v) for v in bad[0]]
            detail["mismatches"] = int(bad.shape[0])
        checks[cc] = detail
        # one timed run of T steps per process ("-": no record file, a warm-up run instead)
        cmds[f"C {cc} -O3 (int)"] = [exe, str(params), "-", "1"]
    return cmds, checks


def time_once(body, setup=None):
    """(CPU ns, wall ns) of one call of ``body``, after ``setup``."""
    if setup:
        setup()
    c0, t0 = time.process_time_ns(), time.perf_counter_ns()
    body()
    t1, c1 = time.perf_counter_ns(), time.process_time_ns()
    return c1 - c0, t1 - t0
