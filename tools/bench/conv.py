#!/usr/bin/env python
"""Convolution benchmark (issue 13 (c)): edgebrain's convolutional SNNs against snnTorch and a C loop.

    python tools/bench/conv.py                 # full run (a few minutes on 2 cores)
    python tools/bench/conv.py --quick         # fewer steps and rounds (smoke)
    python tools/bench/conv.py --json out.json # also write the results as JSON

Networks, both Conv2d(2→12, 5) → LIF → AvgPool(2) → Conv2d(12→32, 4) → LIF → AvgPool(2) →
Linear(1152→10) → LIF on 34×34 frames with 2 polarity channels, one step per 20 ms of events:

  zoo    ``zoo:nmnist`` as shipped (trained, int8 weights / int16 state);
  nir    the same shape built in snnTorch (seeded random weights, scaled as the zoo's training
         script does before training), exported with ``snntorch.export_nir``, imported by
         edgebrain from the NIR file and quantized by edgebrain (int8 / int16, per channel),
         calibrated on real frames.

Input: REAL N-MNIST recordings (the ``nmnist-small`` ``.bs2`` files: the full dataset when
present, else the fixture set in tests/data), each read by edgebrain's own ``.bs2`` source and
the model's ``bin:window_us=20000,polarity=split`` encoder, concatenated into one sequence of T
steps. The fraction of nonzero values at every layer's input is measured on these steps and
printed (the event-driven kernels' work is proportional to it).

Engines: edgebrain int and float (``Session.step`` in a Python loop, and ``Session.run``),
snnTorch (the same network as an ``nn.Sequential`` of Conv2d / ``Leaky`` / AvgPool2d / Linear
called once per step under ``torch.no_grad``, one thread), and ``ref_conv.c``: the same
integer work in C99 (event-driven scatter, channel-last accumulators) with the parameters
edgebrain's quantizer chose, built with gcc (and clang when installed) at ``-O3 -march=native
-ffp-contract=off``. The C loop's outputs of every neuron layer are checked bit for bit against
edgebrain's int session (exit status 1 if they differ). Times: µs per step, medians over rounds
in which all engines run interleaved (C: a fresh process per sample), on the process CPU-time
clock (``--clock wall`` for wall time; both are kept in --json). On a shared machine CPU time
is what the code costs; wall time also counts waiting for a core.

Targets (issue 13 (c)), per network: int step ≥ 15× faster than snnTorch, int step ≤ float step,
int step ≤ 1.5× the faster C build.
"""

from __future__ import annotations

import os
import sys

for _k in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_k] = "1"

import argparse
import datetime
import gc
import json
import platform
import shutil
import statistics
import struct
import subprocess
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np

sys.path.insert(0, str(HERE))
from _c_ref import build_c, c_engines, time_once  # noqa: E402  (the C columns and timing, shared with kernels.py)

CFLAGS = ["-std=c99", "-O3", "-march=native", "-ffp-contract=off"]
TARGETS = {"vs_snntorch": 15.0, "int_vs_float": 1.0, "vs_c": 1.5}
ENCODER, RATE = "bin:window_us=20000,polarity=split", 50.0
GAINS = (4.0, 3.0, 3.0)  # tools/train/nmnist.py's initial weight gains (spike rates ~0.06-0.15)


# ============================================================================ data and models


def data_dir(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    try:
        from edgebrain import datasets

        return Path(datasets.locate("nmnist-small"))
    except Exception:  # noqa: BLE001 - fall back to the fixture set
        return ROOT / "tests" / "data" / "events" / "nmnist-small"


def frames(root: Path, T: int, input_shape) -> tuple[np.ndarray, list[str]]:
    """The first T steps of the test recordings (60001.bs2, ...; then the training ones), each
    through edgebrain's .bs2 source and binning encoder, concatenated: (T, 2, 34, 34) float32."""
    from edgebrain.stream.pipeline import encode_file

    ids = sorted(int(p.stem) for p in root.glob("*.bs2") if p.stem.isdigit())
    files = [root / f"{i}.bs2" for i in [i for i in ids if i > 60000] + [i for i in ids if i <= 60000]]
    xs, used, n = [], [], 0
    for p in files:
        x = encode_file(p, ENCODER, RATE, input_shape)[0]
        xs.append(x)
        used.append(p.name)
        n += len(x)
        if n >= T:
            break
    if not xs:
        raise SystemExit(f"no .bs2 recordings in {root}")
    X = np.concatenate(xs)
    while len(X) < T:  # fixture sets are small: repeat them
        X = np.concatenate([X, X])
    return np.ascontiguousarray(X[:T], np.float32), used


def snntorch_net(graph=None, seed=0):
    """The CNN as an snnTorch Sequential: with the weights, β and thresholds of ``graph`` (an
    edgebrain graph of this shape), or seeded random ones (PyTorch's init times GAINS)."""
    import snntorch as snn
    import torch

    def leaky(beta, thr):  # as tools/train/nmnist.py builds them (per-neuron β and threshold)
        return snn.Leaky(beta=torch.as_tensor(np.asarray(beta, np.float32)),
                         threshold=torch.as_tensor(np.asarray(thr, np.float32)), learn_beta=True,
                         learn_threshold=True, init_hidden=True, reset_mechanism="subtract")

    if graph is None:
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)

        def rand_leaky(shape):  # per-neuron β and threshold around 0.9 and 1, as after training
            return leaky(rng.uniform(0.85, 0.95, shape), rng.uniform(0.8, 1.2, shape))

        net = torch.nn.Sequential(
            torch.nn.Conv2d(2, 12, 5), rand_leaky((12, 30, 30)), torch.nn.AvgPool2d(2),
            torch.nn.Conv2d(12, 32, 4), rand_leaky((32, 12, 12)), torch.nn.AvgPool2d(2),
            torch.nn.Flatten(), torch.nn.Linear(1152, 10), rand_leaky((10,)))
        with torch.no_grad():
            for m, k in zip((net[0], net[3], net[7]), GAINS):
                m.weight.mul_(k)
        return net.eval()
    from edgebrain import ops

    mods = []
    for name in graph.order:
        op = graph.nodes[name]
        if isinstance(op, ops.Conv2d):
            co, ci, kh, kw = op.weight.shape
            m = torch.nn.Conv2d(ci, co, (kh, kw), stride=op.stride, padding=op.padding[0::2], bias=True)
            with torch.no_grad():
                m.weight.copy_(torch.from_numpy(np.asarray(op.weight, np.float32)))
                m.bias.copy_(torch.from_numpy(np.asarray(op.bias, np.float32)))
            mods.append(m)
        elif isinstance(op, ops.SumPool2d):
            mods.append(torch.nn.AvgPool2d(op.kernel_size, op.stride))
        elif isinstance(op, ops.Affine):
            m = torch.nn.Linear(op.weight.shape[1], op.weight.shape[0])
            with torch.no_grad():
                m.weight.copy_(torch.from_numpy(np.asarray(op.weight, np.float32)))
                m.bias.copy_(torch.from_numpy(np.asarray(op.bias, np.float32)))
            mods.append(torch.nn.Flatten())
            mods.append(m)
        elif isinstance(op, ops.Neuron):
            mods.append(leaky(op.beta, op.threshold))
    return torch.nn.Sequential(*mods).eval()


def build_models(x_calib, tmp: Path):
    """{key: (title, float model, int model, snnTorch net)}"""
    from edgebrain.model import Model
    from edgebrain.quant import quantize

    out = {}
    zoo = Model.load("zoo:nmnist")
    out["zoo"] = ("zoo:nmnist (trained)", zoo, zoo, snntorch_net(zoo.graph))
    try:
        import nir
        import torch
        from snntorch.export_nir import export_to_nir
    except ImportError as e:
        print(f"note: snnTorch/NIR not importable ({e}): the nir network is skipped", file=sys.stderr)
        return out
    net = snntorch_net(None, seed=0)
    path = tmp / "nmnist_snntorch.nir"
    nir.write(str(path), export_to_nir(net, torch.zeros(1, 2, 34, 34), ignore_dims=[0]))
    fm = Model.load(path)
    qm, _ = quantize(fm, x_calib, weight_bits=8, state_bits=16)
    out["nir"] = (f"snnTorch → NIR → edgebrain (dialect {fm.graph.meta.get('dialect')})", fm, qm, net)
    return out


# ============================================================================ activity


def activity(qmodel, xs) -> dict:
    """Fraction of nonzero values at each conv / pool / dense node's input, over the steps xs (int
    session: what the integer kernels see), and the neuron layers' spike rates."""
    from edgebrain import ops

    g = qmodel.graph
    s = qmodel.session("int")
    _, rec = s.run(xs, record=list(g.nodes))
    act = {}
    for name, op in g.nodes.items():
        if isinstance(op, (ops.Conv2d, ops.SumPool2d, ops.Affine)):
            for a in g.preds(name):
                while isinstance(g.nodes[a], ops.Flatten):  # a view of its input
                    a = g.preds(a)[0]
                key = f"spikes/{a}" if f"spikes/{a}" in rec else f"out/{a}"
                act[f"{type(op).__name__} {name} input"] = float(np.mean(np.asarray(rec[key]) != 0))
        if isinstance(op, ops.Neuron) and f"spikes/{name}" in rec:
            act[f"{type(op).__name__} {name} spikes"] = float(np.mean(np.asarray(rec[f"spikes/{name}"]) != 0))
    return act


def snntorch_agreement(fmodel, net, xs) -> float:
    """Fraction of output spikes (every step, every output) on which edgebrain's float session
    and the snnTorch net agree: that both compute the same network."""
    import torch
    from snntorch import utils as sutils

    sutils.reset(net)
    with torch.no_grad():
        ref = np.stack([net(torch.from_numpy(x[None]))[0].numpy() for x in xs])
    y, _ = fmodel.session("float").run(xs)
    return float(np.mean(np.asarray(y).reshape(ref.shape) == ref))


# ============================================================================ C reference


def dump_c_params(qmodel, xs, path) -> list[str]:
    """Write ref_conv.c's parameter file (format in its header) for the int program of qmodel;
    returns the neuron nodes in order (their outputs are what the C loop records)."""
    from edgebrain import ops
    from edgebrain.kernels import layout as L

    g, quant = qmodel.graph, qmodel.quant
    nodes = quant["nodes"]
    prog = qmodel.program("int")
    wide = {prog.instr_node[r]: int(row[L.CONV_WIDE] if row[L.OP] == L.OP_CONV else row[L.DENSE_WIDE])
            for r, row in enumerate(prog.prog) if row[L.OP] in (L.OP_CONV, L.OP_DENSE)}
    sb = int(quant["state_bits"])
    lo_s, hi_s = (-(2 ** 15), 2 ** 15 - 1) if sb == 16 else (-(2 ** 31), 2 ** 31 - 1)
    i32 = lambda a: np.ascontiguousarray(a, dtype="<i4").tobytes()
    body, neurons, n_layers = bytearray(), [], 0
    order = [n for n in prog.instr_node if n not in ("input", "output")]
    inp = next(n for n, op in g.nodes.items() if isinstance(op, ops.Input))
    for name in dict.fromkeys(order):
        op, q = g.nodes[name], nodes.get(name, {})
        ish, osh = g.in_shapes[name], g.out_shapes[name]
        if isinstance(op, ops.Conv2d):
            (C, H, W), (Co, Ho, Wo) = ish, osh
            body += struct.pack("<18i", 1, C, H, W, Co, *op.weight.shape[2:], *op.stride, op.padding[0], op.padding[2],
                                *op.dilation, op.groups, Ho, Wo, int(q["identity"]), wide[name])
            body += np.ascontiguousarray(q["w"], np.int8).tobytes() + i32(q["b"]) + i32(q["rq_m"]) + i32(q["rq_s"])
        elif isinstance(op, ops.SumPool2d):
            (C, H, W), (_, Ho, Wo) = ish, osh
            body += struct.pack("<14i", 2, C, H, W, *op.kernel_size, *op.stride, *op.padding, Ho, Wo,
                                int(q["m"]), int(q["s"]))
        elif isinstance(op, ops.Affine):
            w = np.asarray(q["w"], np.int8)
            body += struct.pack("<6i", 3, w.shape[1], w.shape[0], int("b" in q), int(q["identity"]), wide[name])
            body += np.ascontiguousarray(w).tobytes() + (i32(q["b"]) if "b" in q else b"") + i32(q["rq_m"]) + i32(q["rq_s"])
        elif isinstance(op, ops.Neuron):
            if op.cuba or op.multispike:
                raise SystemExit(f"node {name}: ref_conv.c handles LIF/LI without current or multi-spike")
            n = int(np.prod(osh))
            body += struct.pack("<11i", 4, n, int(op.spiking), int(op.spiking and op.reset == "subtract"),
                                int(op.spiking and op.threshold_ge), int(op.spiking and op.reset_delay),
                                int(q["decay"] == "shift"), int(bool(q.get("gmem_identity"))), int(q["dq"]), lo_s, hi_s)
            z = np.zeros(n, np.int64)
            for k in ("beta_m", "gmem_m", "gmem_s", "bias", "thr", "v_reset"):
                body += i32(np.broadcast_to(np.asarray(q[k]), osh).reshape(-1) if k in q else z)
            neurons.append(name)
        elif isinstance(op, (ops.Flatten, ops.Output)):
            continue
        else:
            raise SystemExit(f"node {name}: ref_conv.c has no {type(op).__name__}")
        n_layers += 1
    qi = nodes[inp]
    T = xs.shape[0]
    n_in = int(np.prod(xs.shape[1:]))
    head = bytearray(b"EBCNN1\0\0") + struct.pack("<4i", n_layers, T, n_in, sb)
    head += struct.pack("<f", float(np.float32(1.0 / qi["scale"]))) + struct.pack("<2i", int(qi["lo"]), int(qi["hi"]))
    Path(path).write_bytes(bytes(head + body) + np.ascontiguousarray(xs, "<f4").tobytes())
    return neurons


def engines(fmodel, qmodel, net, xs):
    """{name: (setup, body, is_slow)} for one network."""
    res = {}
    for prec, m in (("int", qmodel), ("float", fmodel)):
        s = m.session(prec)

        def loop(step=s.step):
            for x in xs:
                step(x)

        res[f"edgebrain {prec} step"] = (s.reset, loop, False)
        res[f"edgebrain {prec} run"] = (s.reset, lambda s=s: s.run(xs), False)
    if net is not None:
        import torch
        from snntorch import utils as sutils

        xt = torch.from_numpy(xs).unsqueeze(1)  # (T, 1, 2, 34, 34)

        def tloop():
            with torch.no_grad():
                for x in xt:
                    net(x)

        res["snnTorch step"] = (lambda: sutils.reset(net), tloop, True)
    return res


def bench(py, c_cmds, rounds, slow_rounds, T):
    """Interleaved rounds: every engine once per round (the slow ones in ``slow_rounds`` rounds
    spread over the run; every C sample a fresh process). name -> {"cpu": [...], "wall": [...]} in
    s per step."""
    for setup, body, _ in py.values():  # warm-up: compilation, caches
        time_once(body, setup)
    slow_at = {round(i * (rounds - 1) / max(slow_rounds - 1, 1)) for i in range(min(slow_rounds, rounds))}
    samples = {n: {"cpu": [], "wall": []} for n in list(py) + list(c_cmds)}
    for rnd in range(rounds):
        gc.disable()
        try:
            for name, (setup, body, slow) in py.items():
                if slow and rnd not in slow_at:
                    continue
                c, w = time_once(body, setup)
                samples[name]["cpu"].append(c * 1e-9 / T)
                samples[name]["wall"].append(w * 1e-9 / T)
        finally:
            gc.enable()
        for name, cmd in c_cmds.items():
            r = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if r.returncode:
                raise SystemExit(f"{name} failed: {r.stderr}")
            d = json.loads(r.stdout.strip().splitlines()[-1])
            samples[name]["cpu"].append(d["cpu_median_ns_per_step"] * 1e-9)
            samples[name]["wall"].append(d["median_ns_per_step"] * 1e-9)
    return samples


# ============================================================================ report


def machine_info(have):
    info = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "python": platform.python_version(), "loadavg": os.getloadavg()}
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in lscpu.splitlines():
            k, _, v = line.partition(":")
            if k.strip() in ("Model name", "CPU(s)"):
                info[k.strip()] = v.strip()
        flags = next((ln for ln in lscpu.splitlines() if ln.startswith("Flags")), "")
        info["simd"] = " ".join(f for f in ("avx2", "avx512f", "avx512bw") if f" {f}" in flags)
    except OSError:
        pass
    import numba

    info["numpy"], info["numba"] = np.__version__, numba.__version__
    info.update(have)
    return info


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer steps and rounds (smoke run)")
    ap.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH ('-': stdout)")
    ap.add_argument("--steps", type=int, default=None, help="T, steps per timed run (default 400; 64 with --quick)")
    ap.add_argument("--rounds", type=int, default=None, help="timing rounds (default 15; 3 with --quick)")
    ap.add_argument("--clock", choices=("cpu", "wall"), default="cpu", help="clock of the table and targets")
    ap.add_argument("--data", help="folder of N-MNIST .bs2 files (default: nmnist-small, else the fixture set)")
    a = ap.parse_args(argv)
    T = a.steps or (64 if a.quick else 400)
    rounds = a.rounds or (3 if a.quick else 15)
    slow_rounds = 1 if a.quick else 5
    clk = a.clock
    have, notes = {}, []
    try:
        import torch

        torch.set_num_threads(1)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:
            pass
        import snntorch

        have["torch"], have["snntorch"] = torch.__version__, snntorch.__version__
    except ImportError as e:
        notes.append(f"torch/snntorch not importable ({e}): snnTorch column and nir network skipped")

    from edgebrain.model import Model

    root = data_dir(a.data)
    zoo_shape = tuple(Model.load("zoo:nmnist").input_shape)
    xs, files = frames(root, T, zoo_shape)
    work = Path(tempfile.mkdtemp(prefix="eb_bench_conv_"))
    exes, n, _ = build_c(work, have, source="ref_conv.c", cflags=CFLAGS)
    notes += n
    calib, _ = frames(root, min(T, 200), zoo_shape)
    models = build_models(calib[:, None], work) if "torch" in have else {}
    if not models:
        zoo = Model.load("zoo:nmnist")
        models = {"zoo": ("zoo:nmnist (trained)", zoo, zoo, None)}

    results, checks, acts, agree = {}, {}, {}, {}
    print(f"input: {T} steps of real N-MNIST events from {root} ({len(files)} recordings, first {files[0]}), "
          f"{ENCODER}; nonzero input values {np.mean(xs != 0):.2%}", flush=True)
    for key, (title, fm, qm, net) in models.items():
        print(f"== {key}: {title}", flush=True)
        acts[key] = activity(qm, xs)
        print("  activity (fraction nonzero): " + ", ".join(f"{k} {v:.3f}" for k, v in acts[key].items()), flush=True)
        c_cmds, checks[key] = c_engines(exes, qm, xs, work, key, dump=dump_c_params)
        for cc, d in checks[key].items():
            print(f"  C ({cc}) == edgebrain int, every neuron layer, every step: {d['equal']} "
                  f"({d['values_compared']} values; saturations C {d['saturations_c']}, edgebrain "
                  f"{d['saturations_edgebrain']})", flush=True)
        if net is not None:
            agree[key] = snntorch_agreement(fm, net, xs)
            print(f"  edgebrain float vs snnTorch, output spikes identical: {agree[key]:.2%}", flush=True)
        py = engines(fm, qm, net, xs)
        samples = bench(py, c_cmds, rounds, slow_rounds, T)
        results[key] = {name: {c: {"median": statistics.median(v[c]), "min": min(v[c]), "n": len(v[c])}
                               for c in ("cpu", "wall")} for name, v in samples.items() if v["cpu"]}

    def ratios(c):
        out = {}
        for key, r in results.items():
            med = {n: v[c]["median"] for n, v in r.items()}
            cbest = min((v for n, v in med.items() if n.startswith("C ")), default=None)
            snn = med.get("snnTorch step")
            i, f = med["edgebrain int step"], med["edgebrain float step"]
            out[key] = {"int_step_speedup_vs_snnTorch": snn / i if snn else None,
                        "int_step_over_float_step": i / f,
                        "int_step_over_fastest_C": i / cbest if cbest else None,
                        "float_step_speedup_vs_snnTorch": snn / f if snn else None}
        return out

    rat = {c: ratios(c) for c in ("cpu", "wall")}
    targets = {}
    for c in ("cpu", "wall"):
        targets[c] = {}
        for key, r in rat[c].items():
            v = r["int_step_speedup_vs_snnTorch"]
            targets[c][f"({key}) int step ≥ {TARGETS['vs_snntorch']:.0f}× faster than snnTorch"] = (
                v, None if v is None else v >= TARGETS["vs_snntorch"])
            v = r["int_step_over_float_step"]
            targets[c][f"({key}) int step ≤ float step"] = (v, v <= TARGETS["int_vs_float"])
            v = r["int_step_over_fastest_C"]
            targets[c][f"({key}) int step ≤ {TARGETS['vs_c']}× fastest C"] = (v, None if v is None else v <= TARGETS["vs_c"])

    info = machine_info(have)
    print()
    print(f"date {info['date']}; {info.get('Model name', platform.processor())}, {info.get('CPU(s)', '?')} CPUs "
          f"({info.get('simd', '')}); python {info['python']}, numpy {info['numpy']}, numba {info['numba']}"
          + "".join(f", {k} {info[k]}" for k in ("torch", "snntorch") if k in info))
    for cc in ("gcc", "clang"):
        if cc in info:
            print(f"{cc}: {info[cc]}  ({' '.join(CFLAGS)})")
    print(f"load average {info['loadavg'][0]:.2f} (1 min); batch 1, single thread, T = {T} steps per run; medians "
          f"over {rounds} rounds ({slow_rounds} for snnTorch; C: one process per round); µs per step, "
          f"{'process CPU time' if clk == 'cpu' else 'wall time'}\n")
    names = list(dict.fromkeys(n for r in results.values() for n in r))
    keys = list(results)
    print("| engine | " + " | ".join(f"{k} µs/step | ×snnT" for k in keys) + " |")
    print("|---|" + "---|---|" * len(keys))
    for nm in names:
        row = f"| {nm} |"
        for k in keys:
            t = results[k].get(nm)
            snn = results[k].get("snnTorch step")
            if t is None:
                row += " — | — |"
                continue
            row += f" {t[clk]['median'] * 1e6:.1f} | " + (f"{snn[clk]['median'] / t[clk]['median']:.1f} |" if snn else "— |")
        print(row)
    other = "wall" if clk == "cpu" else "cpu"
    print(f"\n×snnT: snnTorch's time ÷ this engine's (speed-up).  The same medians on the {other} clock (µs/step): "
          + "; ".join(f"{k}: " + ", ".join(f"{n} {v[other]['median'] * 1e6:.1f}" for n, v in results[k].items())
                      for k in keys))
    print(f"\ntargets ({clk} clock; {other} clock in brackets):")
    for name, (val, ok) in targets[clk].items():
        v2, ok2 = targets[other][name]
        st = "n/a" if ok is None else ("MET" if ok else "MISSED")
        v1s = f"{val:.2f}" if val is not None else "—"
        v2s = f"{v2:.2f}" if v2 is not None else "—"
        print(f"  {name:44s} {v1s:>7s}  {st:6s} [{v2s} {'n/a' if ok2 is None else ('met' if ok2 else 'missed')}]")
    for x in notes:
        print("note:", x)

    ok = all(d["equal"] for chk in checks.values() for d in chk.values())
    if a.json:
        doc = {"machine": info, "T": T, "rounds": rounds, "slow_rounds": slow_rounds, "clock": clk,
               "input": {"data": str(root), "files": files, "encoder": ENCODER, "nonzero": float(np.mean(xs != 0))},
               "activity": acts, "float_vs_snntorch_output_spikes_identical": agree,
               "us_per_step": {k: {n: {c: {s: v[c][s] * 1e6 for s in ("median", "min")} for c in ("cpu", "wall")}
                                   for n, v in r.items()} for k, r in results.items()},
               "ratios": rat, "targets": {c: {k: {"value": v, "met": m} for k, (v, m) in t.items()}
                                          for c, t in targets.items()},
               "c_equals_edgebrain_int": checks, "notes": notes}
        text = json.dumps(doc, indent=2, ensure_ascii=False)
        if a.json == "-":
            print(text)
        else:
            Path(a.json).write_text(text + "\n")
    shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
