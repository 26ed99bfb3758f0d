"""The C runtime's test cases, shared by tests/firmware/ and tools/firmware/golden.py (which writes
them as golden vectors for ``make -C firmware test``):

* :func:`neuron_programs`: every combination of the neuron flags the integer kernels support, at
  both state widths, one neuron row per combination, with parameters drawn over the contract's
  ranges (decays at 0 and 1, gains up to ±(2³¹−1), shifts up to 62, thresholds ≤ 0) and inputs
  that saturate the input, the current and the membrane;
* :func:`networks`: random graphs through the quantizer, covering every op (dense with several
  input edges and a recurrent edge, conv 1-D / 2-D with stride, padding, dilation and groups,
  sum and average pooling, Scale, Threshold, Delay) at every weight width, state width and decay;
* :func:`zoo_cases`: every zoo model on a real recording from the test datasets, encoded as the
  stream would feed it;
* :func:`pruned_cases`: a network whose dense synapses are pruned to 80 % zeros (sparse rows with
  every index width: over 256 outputs, over 65535 stored weights; a recurrent one; 64-bit
  accumulators) at every weight width, and :func:`pruned_zoo`, a zoo model pruned by magnitude and
  quantized again.

Each case is ``(name, program, xs)``: an integer Program and a time-major float32 input.
"""

from __future__ import annotations

import copy
import functools
import itertools
from pathlib import Path

import numpy as np

from edgebrain import ops
from edgebrain.graph import Graph
from edgebrain.kernels import layout as L
from edgebrain.kernels import neuron as N
from edgebrain.model import Model
from edgebrain.program import Pack, Program, Region, aligned_empty
from edgebrain.quant import quantize

#: the flags that change a neuron's equation (NARROW and SIMPLE only pick a Numba fast path)
SEMANTIC_FLAGS = (N.CUBA, N.SPIKING, N.SUBTRACT, N.RESET_DELAY, N.CURRENT_LAG, N.THRESHOLD_GE, N.MULTISPIKE,
                  N.SHIFT_DECAY, N.GSYN_IDENTITY, N.GMEM_IDENTITY)
#: neuron rows per program of :func:`neuron_programs`
ROWS_PER_PROGRAM = 128


def all_flag_combinations() -> list[int]:
    return [sum(f for f, on in zip(SEMANTIC_FLAGS, bits) if on)
            for bits in itertools.product((0, 1), repeat=len(SEMANTIC_FLAGS))]


def _gain(rng, n):
    """(m, s) pairs: mostly moderate, some at the contract's limits."""
    m = rng.integers(-(2 ** 15), 2 ** 15, n)
    s = rng.integers(0, 20, n)
    pick = rng.random(n)
    m[pick < 0.1] = 2 ** 31 - 1
    m[(pick >= 0.1) & (pick < 0.2)] = -(2 ** 31 - 1)
    s[pick < 0.15] = 62
    s[(pick >= 0.15) & (pick < 0.2)] = 0
    return m, s


def neuron_params(flags: int, state_bits: int, n: int, rng) -> dict:
    """Integer parameters of one neuron row, within docs/fixed-point.md's ranges."""
    lo, hi = -(2 ** (state_bits - 1)), 2 ** (state_bits - 1) - 1
    q: dict = {"lo": lo, "hi": hi}
    if flags & N.SHIFT_DECAY:
        q["dq"] = 15
        for k in ("beta_m", "alpha_m"):
            q[k] = rng.choice([0, 1, 2, 3, 5, 8, 16, 62], n)
    else:
        q["dq"] = dq = int(rng.choice([0, 8, 15, 30]))
        for k in ("beta_m", "alpha_m"):
            q[k] = rng.integers(0, 2 ** dq + 1, n)
            q[k][0], q[k][-1] = 0, 2 ** dq  # decays of 0 and 1
    q["gsyn_m"], q["gsyn_s"] = _gain(rng, n)
    q["gmem_m"], q["gmem_s"] = _gain(rng, n)
    q["bias"] = rng.integers(lo // 64, hi // 64, n)
    if flags & N.MULTISPIKE:
        q["thr"] = rng.integers(1, hi // 8 + 2, n)
    else:
        q["thr"] = rng.integers(lo // 16, hi // 4, n)
    q["v_reset"] = rng.integers(lo // 4, hi // 4, n)
    q["max_spikes"] = int(rng.integers(2, 6)) if flags & N.MULTISPIKE else 1
    return q


def _row_flags(flags: int, q: dict) -> int:
    """The flags as the builder writes them: the NARROW / SIMPLE fast-path bits where it would set them
    (kernels/neuron.py lower_neuron), so that the Numba side takes the path a real model takes."""
    if N.narrow_ok(flags, q["lo"], q["hi"], q["beta_m"], q["bias"], q["thr"], q["v_reset"], q["dq"]):
        return flags | N.NARROW
    simple = getattr(N, "SIMPLE", 0)
    if simple and not flags & (N.CUBA | N.RESET_DELAY | N.MULTISPIKE):
        return flags | simple
    return flags


def neuron_program(flag_list, state_bits: int, n: int, rng) -> tuple[Program, list[dict]]:
    """One Input row (int32 range), one neuron row per entry of ``flag_list`` reading it, and one
    output per neuron row (scale 1). Returns the program and each row's parameters."""
    ip, fp = Pack(np.int32), Pack(np.float32)
    fp.add(np.zeros(1))
    one = fp.add([1.0])
    rows, names, params = [], [], []
    rows.append(L.row(L.OP_INPUT, 0, n, 0, n, inv_scale_off=one, lo=-(2 ** 31), hi=2 ** 31 - 1))
    names.append("input")
    act, state = 16 * ((n + 15) // 16), 0
    outs, state_regions = {}, {}
    for k, flags in enumerate(flag_list):
        q = neuron_params(flags, state_bits, n, rng)
        q["flags"] = _row_flags(flags, q)
        cur = bool(flags & N.CUBA)
        state += (-state) % 32
        s_off = state
        state += 2 * n if cur else n
        act += (-act) % 16
        o_off = act
        act += n
        offs = {f"{a}_off": ip.add(q[b]) for a, b in (("alpha", "alpha_m"), ("g_syn", "gsyn_m"), ("beta", "beta_m"),
                                                          ("g_mem", "gmem_m"), ("bias", "bias"), ("thr", "thr"),
                                                          ("v_reset", "v_reset"), ("gsyn_s", "gsyn_s"),
                                                          ("gmem_s", "gmem_s"))}
        rows.append(L.row(L.OP_NEURON, 0, n, o_off, n, state_off=s_off, flags=q["flags"], max_spikes=q["max_spikes"],
                          dq=q["dq"], lo=q["lo"], hi=q["hi"], **offs))
        name = f"n{k}_f{flags}"
        names.append(name)
        q.update(state_off=s_off, out_off=o_off)
        params.append(q)
        outs[name] = (k * n, n, (n,))
        state_regions[name] = (Region(s_off, n, (n,)), Region(s_off + n, n, (n,)) if cur else None)
    for k, name in enumerate(outs):
        rows.append(L.row(L.OP_OUTPUT, params[k]["out_off"], n, 0, 0, column=k * n, scale_off=one))
        names.append(name)
    sd = np.dtype(np.int16 if state_bits == 16 else np.int32)
    prog = Program(precision="int", prog=np.ascontiguousarray(np.array(rows, np.int64)), fpar=fp.array(),
                   ipar=ip.array(), wbuf=aligned_empty((1,), np.int8), act_size=act, state_size=max(state, 1),
                   state_dtype=sd, act_dtype=np.dtype(np.int32), acc_size=1, idx_size=1, input_name="input",
                   input_shape=(n,), outputs=outs, n_out=n * len(outs), instr_node=names,
                   state_regions=state_regions)
    return prog, params


def neuron_inputs(T: int, n: int, state_bits: int, rng) -> np.ndarray:
    """Inputs around the state range, with steps far beyond it and beyond int32 (saturating)."""
    hi = 2 ** (state_bits - 1)
    xs = rng.normal(0, hi / 6, (T, n))
    xs[rng.random((T, n)) < 0.25] = 0
    big = rng.random((T, n))
    xs[big < 0.05] = 4e9
    xs[(big >= 0.05) & (big < 0.1)] = -4e9
    xs[(big >= 0.1) & (big < 0.15)] *= 50
    return xs.astype(np.float32)


def neuron_programs(state_bits: int, seed: int = 7, n: int = 5, T: int = 40):
    """(name, program, xs, params) covering every flag combination, ROWS_PER_PROGRAM rows a program."""
    rng = np.random.default_rng(seed + state_bits)
    combos = all_flag_combinations()
    for c in range(0, len(combos), ROWS_PER_PROGRAM):
        flags = combos[c:c + ROWS_PER_PROGRAM]
        prog, params = neuron_program(flags, state_bits, n, rng)
        yield f"neurons-s{state_bits}-{c // ROWS_PER_PROGRAM}", prog, neuron_inputs(T, n, state_bits, rng), params


# ---------------------------------------------------------------------- random networks


def _w(rng, *shape, scale=1.0):
    return (scale * rng.standard_normal(shape) / np.sqrt(max(np.prod(shape[1:]), 1))).astype(np.float32)


def _u(rng, lo, hi, n):
    return rng.uniform(lo, hi, n).astype(np.float32)


def mlp_graph(rng) -> Graph:
    """Dense layers with two input edges (a saturating sum) and a recurrent edge; Delay, Scale,
    Threshold; LIF (delayed subtractive reset), CubaLIF (current lag, ≥), IF (multi-spike, zero
    reset), LI; two outputs."""
    g = Graph()
    g.add("input", ops.Input(shape=(6,)))
    g.add("fc1", ops.Affine(weight=_w(rng, 16, 6, scale=3), bias=_u(rng, -0.2, 0.2, 16)))
    g.add("skip", ops.Linear(weight=_w(rng, 16, 6, scale=2)))
    g.add("lif1", ops.LIF(beta=_u(rng, 0.5, 0.95, 16), threshold=np.ones(16, np.float32), reset_delay=True))
    g.add("rec", ops.Affine(weight=_w(rng, 16, 16, scale=1.5), bias=_u(rng, -0.1, 0.1, 16)))
    g.add("fc2", ops.Affine(weight=_w(rng, 12, 16, scale=4), bias=_u(rng, -0.1, 0.1, 12)))
    g.add("cuba", ops.CubaLIF(alpha=_u(rng, 0.3, 0.9, 12), beta=_u(rng, 0.6, 0.95, 12), g_mem=_u(rng, 0.3, 0.8, 12),
                              threshold=_u(rng, 0.5, 1.5, 12), current_lag=True, threshold_ge=True))
    g.add("dl", ops.Delay(steps=rng.integers(0, 4, 12).astype(np.int32)))
    g.add("sc", ops.Scale(scale=_u(rng, 0.5, 3.0, 12)))
    g.add("th", ops.Threshold(threshold=_u(rng, 0.2, 1.5, 12)))
    g.add("fc3", ops.Affine(weight=_w(rng, 4, 12, scale=3), bias=_u(rng, -0.1, 0.1, 4)))
    g.add("li", ops.LI(beta=_u(rng, 0.7, 0.95, 4)))
    g.add("fc4", ops.Linear(weight=_w(rng, 4, 16, scale=4)))
    g.add("ifn", ops.IF(threshold=_u(rng, 0.3, 1.0, 4), reset="zero", multispike=True, max_spikes=3))
    g.add("out_li", ops.Output())
    g.add("out_if", ops.Output())
    for e in [("input", "fc1"), ("input", "skip"), ("fc1", "lif1"), ("skip", "lif1"), ("lif1", "rec"),
              ("rec", "lif1"), ("lif1", "fc2"), ("fc2", "cuba"), ("cuba", "dl"), ("dl", "sc"), ("sc", "th"),
              ("th", "fc3"), ("fc3", "li"), ("li", "out_li"), ("lif1", "fc4"), ("fc4", "ifn"), ("ifn", "out_if")]:
        g.connect(*e)
    return g.prepare()


def conv2d_graph(rng) -> Graph:
    """Conv2d with stride and asymmetric padding, a grouped dilated one, two with stride 1 (the
    kernels' contiguous-run path; one grouped), average pooling with padding, a stride-1 sum
    pooling, Flatten, Dense."""
    g = Graph.sequential(
        ops.Input(shape=(2, 10, 10)),
        ops.Conv2d(weight=_w(rng, 4, 2, 3, 3, scale=3), bias=_u(rng, -0.1, 0.1, 4), stride=(2, 2),
                   padding=(1, 0, 1, 1)),                                               # (4, 5, 5)
        ops.LIF(beta=_u(rng, 0.6, 0.9, 1), threshold=np.ones(1, np.float32)),
        ops.Conv2d(weight=_w(rng, 4, 2, 3, 3, scale=4), bias=_u(rng, -0.1, 0.1, 4), groups=2, dilation=(2, 2),
                   padding=(2, 2, 2, 2)),                                               # (4, 5, 5)
        ops.IF(threshold=np.full(1, 0.8, np.float32), threshold_ge=True),
        ops.Conv2d(weight=_w(rng, 6, 4, 3, 2, scale=4), bias=_u(rng, -0.1, 0.1, 6), padding=(1, 0, 0, 1)),  # (6, 4, 5)
        ops.LIF(beta=np.full(1, 0.7, np.float32), threshold=np.full(1, 0.6, np.float32)),
        ops.Conv2d(weight=_w(rng, 6, 3, 2, 2, scale=4), bias=_u(rng, -0.1, 0.1, 6), groups=2,
                   padding=(1, 1, 1, 1)),                                               # (6, 5, 6)
        ops.AvgPool2d(kernel_size=(2, 2), stride=(2, 2), padding=(1, 1)),               # (6, 3, 4)
        ops.SumPool2d(kernel_size=(3, 3), stride=(1, 1), padding=(1, 1)),
        ops.CubaLI(alpha=np.full(1, 0.5, np.float32), beta=np.full(1, 0.8, np.float32)),
        ops.Flatten(),
        ops.Affine(weight=_w(rng, 5, 72, scale=2), bias=_u(rng, -0.1, 0.1, 5)),
        ops.LIF(beta=np.full(5, 0.9, np.float32), threshold=np.ones(5, np.float32), reset="zero"),
        ops.Output(),
        names=["input", "c1", "l1", "c2", "l2", "c3", "l3", "c4", "avg", "sum", "cli", "flat", "fc", "out_lif",
               "output"])
    return g.prepare()


def conv1d_graph(rng) -> Graph:
    """Conv1d with stride and padding, a grouped dilated one, two with stride 1 (one grouped),
    multi-spike LIF, Flatten, Dense, LI."""
    g = Graph.sequential(
        ops.Input(shape=(3, 16)),
        ops.Conv1d(weight=_w(rng, 6, 3, 3, scale=3), bias=_u(rng, -0.1, 0.1, 6), stride=2, padding=(1, 1)),  # (6, 8)
        ops.CubaLIF(alpha=np.full(1, 0.6, np.float32), beta=np.full(1, 0.85, np.float32),
                    threshold=np.full(1, 0.7, np.float32)),
        ops.Conv1d(weight=_w(rng, 6, 2, 3, scale=4), bias=_u(rng, -0.1, 0.1, 6), groups=3, dilation=2,
                   padding=(2, 1)),                                                     # (6, 7)
        ops.LIF(beta=np.full(1, 0.8, np.float32), threshold=np.full(1, 0.5, np.float32), multispike=True,
                max_spikes=4),
        ops.Conv1d(weight=_w(rng, 4, 6, 3, scale=4), bias=_u(rng, -0.1, 0.1, 4), padding=(0, 2)),  # (4, 7)
        ops.LIF(beta=np.full(1, 0.8, np.float32), threshold=np.full(1, 0.5, np.float32)),
        ops.Conv1d(weight=_w(rng, 4, 2, 2, scale=4), bias=_u(rng, -0.1, 0.1, 4), groups=2, padding=(1, 0)),  # (4, 7)
        ops.Flatten(),
        ops.Linear(weight=_w(rng, 3, 28, scale=3)),
        ops.LI(beta=np.full(3, 0.9, np.float32)),
        ops.Output(),
        names=["input", "c1", "n1", "c2", "n2", "c3", "n3", "c4", "flat", "fc", "li", "output"])
    return g.prepare()


GRAPHS = {"mlp": mlp_graph, "conv2d": conv2d_graph, "conv1d": conv1d_graph}
#: (weight bits, state bits, decay) of every network
WIDTHS = [(w, s, d) for w in (4, 8, 16) for s in (16, 32) for d in ("mul", "shift")]


def network_inputs(shape, T: int, rng) -> np.ndarray:
    """Calibration-like inputs with a few steps 8× larger and one beyond any range (saturating)."""
    xs = rng.standard_normal((T,) + tuple(shape)).astype(np.float32)
    xs[rng.random(T) < 0.1] *= 8
    xs[T // 2] = 1e9
    return xs


@functools.cache
def _network_cases(gname: str, seed: int, T: int) -> tuple:
    rng = np.random.default_rng(seed)
    graph = GRAPHS[gname](rng)
    shape = graph.out_shapes[graph.inputs[0]]
    calib = rng.standard_normal((80,) + tuple(shape)).astype(np.float32)
    xs = network_inputs(shape, T, rng)
    model = Model(graph)
    out = []
    for wb, sb, decay in WIDTHS:
        qm, _ = quantize(model, calib, weight_bits=wb, state_bits=sb, decay=decay)
        out.append((f"{gname}-w{wb}-s{sb}-{decay}", qm.program("int"), xs))
    return tuple(out)


def networks(seed: int = 11, T: int = 60, graphs=None):
    """(name, program, xs) for every graph of GRAPHS (or those named) at every width of WIDTHS
    (built once per process)."""
    for gname in graphs or GRAPHS:
        yield from _network_cases(gname, seed, T)


# ---------------------------------------------------------------------- the zoo on real recordings

#: zoo model -> (recordings under the datasets folder, fed one after the other; steps kept, 0: all)
ZOO = {
    "har-lif": (["imu/sp-sw-har/s16/s16_01_sw.csv"], 600),
    "har-l2mu": (["imu/sp-sw-har/s16/s16_01_sw.csv"], 600),
    "kws": ([f"audio/fsdd/recordings/{d}_theo_{k}.wav" for d in range(3) for k in range(2)], 0),
    "basicmotions": (["imu/basicmotions/BasicMotions_TEST.ts"], 300),
    "nmnist": ([f"events/nmnist-small/{k}.bs2" for k in range(1, 6)], 0),
}


def zoo_input(name: str, datasets: Path):
    """(model, xs) of zoo model ``name`` on its recordings, each encoded by the model's own stream
    settings (as tests/zoo feeds them) and concatenated; None when a recording is absent."""
    from edgebrain.stream.pipeline import encode_file

    rels, keep = ZOO[name]
    paths = [Path(datasets) / r for r in rels]
    if not all(p.is_file() for p in paths):
        return None
    model = Model.load("zoo:" + name)
    cfg = model.graph.meta["stream"]
    xs = np.concatenate([encode_file(p, cfg["encoder"], float(cfg["rate"]), model.input_shape)[0] for p in paths])
    return model, (xs[:keep] if keep else xs)


def zoo_cases(datasets: Path):
    for name in ZOO:
        got = zoo_input(name, datasets)
        if got is not None:
            model, xs = got
            yield f"zoo-{name}", model.program("int"), xs


# ---------------------------------------------------------------------- pruned and 4-bit weights


def prune(graph: Graph, sparsity: float) -> Graph:
    """A copy of ``graph`` whose dense synapses (Affine, Linear) each have the ``sparsity`` fraction
    of their weights of smallest magnitude set to zero (ties broken by position)."""
    g = copy.deepcopy(graph)
    for op in g.nodes.values():
        if isinstance(op, ops.Affine):
            flat = op.weight.reshape(-1).copy()
            flat[np.argsort(np.abs(flat), kind="stable")[:int(round(sparsity * flat.size))]] = 0
            op.weight = flat.reshape(op.weight.shape)
    return g


def pruned_zoo(name: str, sparsity: float, weight_bits: int, datasets: Path | None = None) -> Model:
    """Zoo model ``name`` with ``sparsity`` of each dense synapse's weights (by magnitude) set to zero,
    quantized again as the zoo model was (state width, decay) at ``weight_bits``, calibrated on its
    real recording when the datasets have it, else on random data."""
    m = Model.load("zoo:" + name)
    got = zoo_input(name, datasets) if datasets is not None else None
    calib = got[1][:800] if got is not None else \
        np.random.default_rng(1).standard_normal((400,) + tuple(m.input_shape)).astype(np.float32) * 3
    q = m.quant
    qm, _ = quantize(Model(prune(m.graph, sparsity)), calib, weight_bits=weight_bits, state_bits=q["state_bits"],
                     decay=q["decay"], dq=q["dq"], input_bits=q["input_bits"])
    return qm


def pruned_graph(rng) -> Graph:
    """fc1 (6 → 1200, real-valued input), lif1, fc2 (1200 → 300: over 65535 stored weights at 80 %
    and over 256 outputs, so 32-bit row pointers and 16-bit indices), lif2 with a recurrent Linear
    (300 → 300), a skip Linear from the input, fc3 (300 → 5), LI; not yet pruned (:func:`prune`)."""
    g = Graph()
    g.add("input", ops.Input(shape=(6,)))
    g.add("fc1", ops.Affine(weight=_w(rng, 1200, 6, scale=3), bias=_u(rng, -0.2, 0.2, 1200)))
    g.add("lif1", ops.LIF(beta=_u(rng, 0.5, 0.95, 1200), threshold=np.ones(1200, np.float32)))
    g.add("fc2", ops.Affine(weight=_w(rng, 300, 1200, scale=12), bias=_u(rng, -0.1, 0.1, 300)))
    g.add("skip", ops.Linear(weight=_w(rng, 300, 6, scale=2)))
    g.add("rec", ops.Linear(weight=_w(rng, 300, 300, scale=6)))
    g.add("lif2", ops.LIF(beta=_u(rng, 0.6, 0.95, 300), threshold=np.ones(300, np.float32), reset="subtract"))
    g.add("fc3", ops.Affine(weight=_w(rng, 5, 300, scale=8), bias=_u(rng, -0.1, 0.1, 5)))
    g.add("li", ops.LI(beta=_u(rng, 0.7, 0.95, 5)))
    g.add("output", ops.Output())
    for e in [("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "lif2"), ("input", "skip"),
              ("skip", "lif2"), ("lif2", "rec"), ("rec", "lif2"), ("lif2", "fc3"), ("fc3", "li"), ("li", "output")]:
        g.connect(*e)
    return g.prepare()


#: (weight bits, state bits, sparsity, input bits) of the pruned networks: at 80 % a 4-bit layer of
#: over 256 outputs stays dense (two weights per byte are as small), at 90 % it is sparse too; 16-bit
#: weights on a 16-bit input need 64-bit accumulators
PRUNED_WIDTHS = [(4, 16, 0.8, 8), (4, 32, 0.9, 8), (8, 16, 0.8, 8), (8, 32, 0.9, 8), (16, 32, 0.8, 16)]


@functools.cache
def _pruned_models(seed: int, T: int) -> tuple:
    rng = np.random.default_rng(seed)
    graph = pruned_graph(rng)
    calib = (2 * rng.standard_normal((60, 6))).astype(np.float32)
    xs = network_inputs((6,), T, rng)
    out = []
    for wb, sb, sp, ib in PRUNED_WIDTHS:
        qm, _ = quantize(Model(prune(graph, sp)), calib, weight_bits=wb, state_bits=sb, input_bits=ib)
        out.append((f"pruned{round(sp * 100)}-w{wb}-s{sb}-i{ib}", qm, xs))
    return tuple(out)


def pruned_models(seed: int = 13, T: int = 60):
    """(name, quantized model, xs) of :func:`pruned_graph` pruned and quantized at every width of
    PRUNED_WIDTHS (built once per process)."""
    yield from _pruned_models(seed, T)


def pruned_cases(seed: int = 13, T: int = 60):
    """(name, program, xs) of :func:`pruned_models`."""
    for name, qm, xs in _pruned_models(seed, T):
        yield name, qm.program("int"), xs
