"""NeuroBench's metrics, computed natively on edgebrain models (no torch, no hooks).

The definitions are NeuroBench's (``neurobench`` 2.x, ``neurobench.metrics``), checked against the
package itself by ``tests/test_metrics.py``:

* **Footprint** -- bytes of parameters and buffers. :func:`footprint` gives it at the deployed
  precision (float32 or the fixed-point layout) and, as ``neurobench_bytes``, exactly as NeuroBench
  counts the float snnTorch model (see :func:`footprint` for the convention).
* **ConnectionSparsity** -- zero weights / all weights of the synaptic layers (Affine, Linear,
  Conv1d, Conv2d; biases, neuron parameters and elementwise Scale are not counted), rounded to 4
  decimals as NeuroBench does.
* **ActivationSparsity** -- zero outputs / all outputs of every neuron layer, over all timesteps
  and samples.
* **SynapticOperations** -- per sample, summed over the timesteps: for every synaptic layer and
  timestep, inputs and weights are binarised (non-zero -> 1) and the layer applied without its bias;
  the sum of its outputs is the number of *effective* operations. They are ACs when every input
  value of that layer at that timestep (over the whole batch) lies in {-1, 0, 1}, MACs otherwise.
  ``Dense`` counts every synapse with all-ones inputs and weights (zero padding of a convolution is
  not counted). The bias is not a synaptic operation; pooling and Flatten are not synaptic layers
  (but their outputs are the next layer's inputs: an average pool of spikes makes its consumer's
  operations MACs, as in NeuroBench).
* **MembraneUpdates** -- per sample, the number of neuron membranes that change value in a step
  (after reset vs the previous step's), plus every neuron at the first step.

Effective operations are computed from an exact *fan-out map* per synaptic layer: the number of
non-zero weights each input element reaches (for a convolution this depends on the position:
borders, stride, padding and dilation are included exactly), so the operations at a step are
``sum(binarised input * fan-out)``.

:func:`count_ops` gives the counts another module (the energy estimator) multiplies by energies per
operation: its keys are fixed (see there).
"""

from __future__ import annotations

import numpy as np

from . import ops
from .errors import InputError, ModelError
from .kernels import compact
from .kernels.dense import DENSE_ABOVE
from .qparams import weight_dtype

#: node types NeuroBench counts as connection (synaptic) layers
SYNAPTIC = (ops.Affine, ops.Conv1d, ops.Conv2d)  # Linear is an Affine

#: bytes of snnTorch's per-layer bookkeeping buffers that NeuroBench's Footprint counts for every
#: spiking layer: ``graded_spikes_factor`` (float32 scalar) and ``reset_mechanism_val`` (int64 scalar)
SNNTORCH_NEURON_OVERHEAD = 4 + 8

#: widths assumed for ``precision="int"`` when a model has no fixed-point parameters (the defaults of
#: ``edgebrain convert --quantize``)
DEFAULT_WEIGHT_BITS = 8
DEFAULT_STATE_BITS = 16

#: neuron parameters and the value that makes them a no-op (not stored by a framework when default)
_NEURON_DEFAULTS = {"g_mem": 1.0, "g_syn": 1.0, "bias": 0.0, "v_reset": 0.0}

_RECORD_BUDGET = 1 << 23  # float64 elements of recorded activity held at once (64 MB)


# --------------------------------------------------------------------------- layers


def synaptic_layers(model) -> list[str]:
    g = model.graph
    return [n for n in g.order if isinstance(g.nodes[n], SYNAPTIC)]


def neuron_layers(model) -> list[str]:
    g = model.graph
    return [n for n in g.order if isinstance(g.nodes[n], ops.Neuron)]


def _weights(model, name: str, precision: str) -> np.ndarray:
    op = model.graph.nodes[name]
    if precision == "int" and model.quant:
        q = model.quant.get("nodes", {}).get(name)
        if q is not None and "w" in q:
            return np.asarray(q["w"])
    return op.weight


def _has_bias(op) -> bool:
    # NIR writes a zero bias for convolutions without one; a trained bias is never exactly zero
    if isinstance(op, ops.Linear) or op.bias is None:
        return False
    if isinstance(op, (ops.Conv1d, ops.Conv2d)):
        return bool(np.any(op.bias != 0))
    return True


def fanout(op, in_shape, weight: np.ndarray | None = None, dense: bool = False) -> np.ndarray:
    """Fan-out map of a synaptic layer: for every input element (shape ``in_shape``), the number of
    synapses with a non-zero weight (every synapse if ``dense``) through which it reaches an output.
    A convolution's map is exact at every position (borders, stride, padding, dilation, groups)."""
    w = op.weight if weight is None else np.asarray(weight)
    nz = np.ones(w.shape, np.int64) if dense else (w != 0).astype(np.int64)
    in_shape = tuple(in_shape)
    if isinstance(op, ops.Affine):
        col = nz.sum(axis=0)  # (in,)
        return np.broadcast_to(col, in_shape).astype(np.int64)
    if isinstance(op, ops.Conv1d):
        c, n = in_shape
        nz4 = nz[:, :, None, :]
        return _conv_fanout(nz4, (c, 1, n), (1, op.stride), (0, 0) + tuple(op.padding), (1, op.dilation),
                            op.groups).reshape(in_shape)
    if isinstance(op, ops.Conv2d):
        return _conv_fanout(nz, in_shape, op.stride, op.padding, op.dilation, op.groups)
    raise ModelError(f"{op.kind} is not a synaptic layer")


def _conv_fanout(nz, in_shape, stride, padding, dilation, groups) -> np.ndarray:
    c, h, w = in_shape
    co, cig, kh, kw = nz.shape
    sh, sw = stride
    pt, pb, pl, pr = padding
    dh, dw = dilation
    oh = ops.conv_out_len(h, kh, sh, pt, pb, dh)
    ow = ops.conv_out_len(w, kw, sw, pl, pr, dw)
    cog = co // groups
    # per input channel and tap: number of output channels reached through a non-zero weight
    per_tap = np.zeros((c, kh, kw), np.int64)
    for gi in range(groups):
        per_tap[gi * cig:(gi + 1) * cig] = nz[gi * cog:(gi + 1) * cog].sum(axis=0)
    # rows (cols) reached by tap ki at some output row: y = oy*sh + ki*dh - pt, 0 <= oy < oh
    rows = np.zeros((kh, h), np.int64)
    for ki in range(kh):
        y = np.arange(oh) * sh + ki * dh - pt
        y = y[(y >= 0) & (y < h)]
        rows[ki, y] += 1
    cols = np.zeros((kw, w), np.int64)
    for kj in range(kw):
        x = np.arange(ow) * sw + kj * dw - pl
        x = x[(x >= 0) & (x < w)]
        cols[kj, x] += 1
    return np.einsum("ckl,ky,lx->cyx", per_tap, rows, cols)


# --------------------------------------------------------------------------- static metrics


def _widths(model, precision: str) -> tuple[float, int, bool]:
    """(bytes per weight, bytes per state variable, assumed) at ``precision``."""
    if precision == "float":
        return 4.0, 4, False
    q = model.quant or {}
    wb = int(q.get("weight_bits", DEFAULT_WEIGHT_BITS))
    sb = int(q.get("state_bits", DEFAULT_STATE_BITS))
    return wb / 8, sb // 8, not model.quant


def _n_state(model, name) -> int:
    g = model.graph
    op = g.nodes[name]
    n = int(np.prod(g.out_shapes[name]))
    if isinstance(op, ops.Neuron):
        return n * (2 if op.cuba else 1)
    if isinstance(op, ops.Delay):
        return n * (int(op.steps.max(initial=0)) + 1)
    return 0


def _neurobench_bytes(model, name) -> int:
    """Bytes NeuroBench's Footprint gives the float32 snnTorch layer equivalent to node ``name``,
    after it has run one sample (its state buffers then hold one value per neuron)."""
    g = model.graph
    op = g.nodes[name]
    if isinstance(op, SYNAPTIC):
        return 4 * (op.weight.size + (op.bias.size if _has_bias(op) else 0))
    if isinstance(op, ops.Neuron):
        total = SNNTORCH_NEURON_OVERHEAD if op.spiking else 0
        for k, a in op.arrays().items():
            if k in _NEURON_DEFAULTS and np.all(a == _NEURON_DEFAULTS[k]):
                continue  # a framework does not store a parameter at its no-op value
            total += 4 * (1 if np.all(a == a.reshape(-1)[0]) else a.size)
        n = int(np.prod(g.out_shapes[name]))
        total += 4 * n * (2 if op.cuba else 1)  # mem (and syn)
        if op.spiking and any((name, b) in g.delayed_edges for b in g.succs(name)):
            total += 4 * n  # the last spikes a recurrent layer keeps (snnTorch's ``spk``)
        return total
    return 4 * op.n_params()


def footprint(model, precision: str = "float") -> dict:
    """Memory footprint in bytes.

    ``param_bytes`` and ``state_bytes`` are what edgebrain holds at ``precision``: for "float" the
    float32 weights, biases and per-neuron parameters (expanded to one value per neuron, as the
    runtime stores them) and float32 state; for "int" the fixed-point layout (weights at
    ``weight_bits``, int32 biases and requantisation multipliers, int32 neuron constants, state at
    ``state_bits``), estimated with the defaults (8-bit weights, 16-bit state) when the model is not
    quantized (``estimated`` is then True). A dense synapse's weights count as the runtime stores
    them (kernels/compact.py): sparse (values, output indices and row pointers) where that is
    smaller, 4-bit weights two per byte; its layer says which (``weights``).

    ``neurobench_bytes`` is NeuroBench's ``Footprint`` of the equivalent float32 snnTorch model
    (``init_hidden=True``) after it has run one sample, as a trained or exported model has: weights
    and biases (a convolution bias of all zeros counts as absent), each neuron parameter stored once
    if uniform or per neuron otherwise (gains of 1, zero bias and zero reset value are not stored),
    12 bytes of snnTorch bookkeeping buffers per spiking layer, and the state buffers of one sample
    (membrane; synaptic current; last spikes of a recurrent layer). NeuroBench counts the state
    buffers at whatever batch size the model last ran (none before its first run).
    """
    if precision not in ("float", "int"):
        raise ModelError(f"precision '{precision}'; expected float or int")
    g = model.graph
    s = model.summary()
    rows = {r["name"]: r for r in s["nodes"]}
    wbytes, sbytes, assumed = _widths(model, precision)
    layers = {}
    p_total = st_total = nb_total = 0
    for name in g.order:
        op = g.nodes[name]
        r = rows[name]
        if precision == "float":
            pb = r["float_bytes"]
        elif model.quant:
            pb = r["int_bytes"]
        else:
            pb = _int_bytes_estimate(op, g.in_shapes.get(name), wbytes)
        stored = _stored_weights(model, name, precision)
        if stored is not None:  # a dense synapse: its weights as the runtime stores them
            pb += stored[1] - stored[0]
        stb = sbytes * _n_state(model, name)
        nb = _neurobench_bytes(model, name)
        if pb or stb or nb:
            layers[name] = {"kind": op.kind, "param_bytes": int(pb), "state_bytes": int(stb), "neurobench_bytes": nb}
            if stored is not None:
                layers[name]["weights"] = stored[2]
        p_total += pb
        st_total += stb
        nb_total += nb
    return {"precision": precision, "param_bytes": int(p_total), "state_bytes": int(st_total),
            "total_bytes": int(p_total + st_total), "neurobench_bytes": int(nb_total), "estimated": assumed,
            "layers": layers}


def _stored_weights(model, name: str, precision: str) -> tuple[int, int, str] | None:
    """For a dense synapse (Affine, Linear): (bytes its weights were counted at in the summary, bytes
    the runtime stores them in, the layout: "dense", "dense 4-bit", "sparse" or "sparse 4-bit"), as
    the lowering chooses it (kernels/dense.py: the CSR where smaller, 4-bit packed two per byte);
    None for other nodes."""
    from .program import ALIGN  # the parameter buffers' alignment, which the choice pads parts to

    op = model.graph.nodes[name]
    if not isinstance(op, ops.Affine):
        return None
    w = _weights(model, name, precision)
    n_out, n_in = w.shape
    if precision == "float":
        bits, item, counted = 32, 4, 4 * w.size
    else:
        bits = int((model.quant or {}).get("weight_bits", DEFAULT_WEIGHT_BITS))
        item = weight_dtype(bits).itemsize
        counted = (w.size * bits + 7) // 8 if model.quant else int(np.ceil(w.size * bits / 8))
    nnz = int(np.count_nonzero(w))
    sparse = compact.sparse_saves(n_in, n_out, nnz, bits, align=ALIGN * item, index_align=4)
    stored = compact.stored_nbytes(n_in, n_out, nnz, bits, align=ALIGN * item, index_align=4)
    return counted, stored, ("sparse" if sparse else "dense") + (" 4-bit" if bits == 4 else "")


def _int_bytes_estimate(op, shape_in, wbytes) -> int:
    if isinstance(op, SYNAPTIC):
        co = op.weight.shape[0]
        return int(np.ceil(op.weight.size * wbytes)) + 4 * (op.bias.size if op.bias is not None else 0) + 8 * co
    if isinstance(op, ops.Neuron) and shape_in:
        n = int(np.prod(shape_in))
        return 4 * sum(min(a.size, n) for a in op.arrays().values())
    return 4 * op.n_params()


def connection_sparsity(model, precision: str = "float", rounded: bool = True) -> float:
    """Zero weights / all weights over the synaptic layers (NeuroBench's ConnectionSparsity); at
    "int" precision the quantized weights are counted (rounding can make small weights zero)."""
    zeros = total = 0
    for name in synaptic_layers(model):
        w = _weights(model, name, precision)
        zeros += int(np.count_nonzero(w == 0))
        total += int(w.size)
    if total == 0:
        return 0.0
    return round(zeros / total, 4) if rounded else zeros / total


# --------------------------------------------------------------------------- workload metrics


def _as_tb(model, xs) -> np.ndarray:
    xs = np.asarray(xs)
    shape = tuple(model.input_shape)
    if xs.shape[1:] == shape:
        xs = xs[:, None]
    elif xs.ndim != len(shape) + 2 or xs.shape[2:] != shape:
        raise InputError(f"input sequence has shape {xs.shape}; expected (T, *{shape}) or (T, B, *{shape}) "
                         "(time-major)")
    if xs.shape[0] < 1:
        raise InputError("input sequence has no timesteps; expected T >= 1")
    return xs


def _binary(a: np.ndarray, precision: str) -> bool:
    """NeuroBench's test for spike inputs (every value in {-1, 0, 1}); in integer mode, where values
    are dequantized, any single magnitude (a spike of a fixed size) counts as binary."""
    if precision == "float":
        return not np.any((a != 0) & (a != 1) & (a != -1))
    nz = np.abs(a[a != 0])
    return nz.size == 0 or bool(np.all(nz == nz.flat[0]))


def workload(model, xs, precision: str = "float", progress: bool = False, step_counts: bool = False) -> dict:
    """NeuroBench's workload metrics for the input sequence ``xs`` ((T, *input) or (T, B, *input),
    time-major; every batch entry is one sample, started from the initial state).

    Returns ``activation_sparsity``, ``synaptic_operations`` ({"Effective_MACs", "Effective_ACs",
    "Dense"} per sample, summed over the T steps, as NeuroBench reports them), ``membrane_updates``
    (per sample), ``per_step`` (the same three counts divided by T), ``layers`` (per synaptic layer:
    effective MACs/ACs and dense per sample; per neuron layer: zeros, elements, updates), ``samples``
    and ``steps``.

    As in NeuroBench, the AC/MAC decision is made per layer and timestep over the whole batch.
    With ``step_counts``, ``step_counts`` holds the same counts per step and sample: ``eff_macs``,
    ``eff_acs``, ``membrane_updates`` and ``weight_reads`` as (T, B) float64 arrays (their sums are
    the totals above; ``edgebrain profile --plot`` draws the estimate over time from them).
    """
    xs = _as_tb(model, xs)
    T, B = xs.shape[:2]
    g = model.graph
    syn = synaptic_layers(model)
    neu = neuron_layers(model)
    # what to record: the sources of every synaptic layer's input, and the neurons
    sources = sorted({p for n in syn for p in g.preds(n)} | set(neu), key=g.order.index)
    sess = model.session(precision, batch=B)
    width = sum(int(np.prod(g.out_shapes[n])) * (2 if n in neu else 1) for n in sources)
    chunk = max(1, min(T, _RECORD_BUDGET // max(1, B * width)))

    fan = {n: fanout(g.nodes[n], g.in_shapes[n], _weights(model, n, precision)).reshape(-1).astype(np.float64)
           for n in syn}
    dfan = {n: fanout(g.nodes[n], g.in_shapes[n], dense=True).reshape(-1).astype(np.float64) for n in syn}
    dense_fan = {n: float(dfan[n].sum()) for n in syn}
    lay = {n: {"kind": g.nodes[n].kind, "eff_macs": 0, "eff_acs": 0, "dense": 0, "nnz_inputs": 0, "weight_reads": 0}
           for n in syn}
    nlay = {n: {"kind": g.nodes[n].kind, "zeros": 0, "elements": 0, "membrane_updates": 0} for n in neu}
    prev_out: dict[str, np.ndarray] = {}  # last step's output of every source (for delayed edges)
    prev_v: dict[str, np.ndarray] = {}
    per = {k: np.zeros((T, B)) for k in ("eff_macs", "eff_acs", "membrane_updates", "weight_reads")} \
        if step_counts else None

    from .progress import bar as progress_bar

    pbar = progress_bar(T, label="counting", enabled=progress)
    t0 = 0
    while t0 < T:
        t1 = min(T, t0 + chunk)
        _, rec = sess.run(xs[t0:t1], record=sources)
        outs = {}
        for n in sources:
            key = next(k for k in (f"spikes/{n}", f"out/{n}") if k in rec)
            outs[n] = rec[key].reshape(t1 - t0, B, -1)
        for n in syn:
            size = fan[n].size
            for k in range(t1 - t0):
                x = np.zeros((B, size))
                for p in g.preds(n):
                    if (p, n) in g.delayed_edges:
                        src = outs[p][k - 1] if k > 0 else prev_out.get(p, np.zeros((B, size)))
                    else:
                        src = outs[p][k]
                    x = x + src
                nzm = (x != 0)
                eff_b = nzm @ fan[n]  # per sample
                eff = int(round(float(eff_b.sum())))
                lay[n]["nnz_inputs"] += int(nzm.sum())
                # weights the kernels read: a dense layer reads the (whole) row of every non-zero
                # input; a convolution scatters the non-zero inputs' weights when at most
                # DENSE_ABOVE of its inputs are non-zero, and gathers every synapse otherwise
                visits = nzm @ dfan[n]
                if not isinstance(g.nodes[n], ops.Affine):
                    visits = np.where(nzm.sum(axis=1) <= DENSE_ABOVE * size, visits, dense_fan[n])
                lay[n]["weight_reads"] += int(round(float(visits.sum())))
                lay[n]["dense"] += int(dense_fan[n]) * B
                kind = "eff_acs" if _binary(x, precision) else "eff_macs"
                lay[n][kind] += eff
                if per is not None:
                    per[kind][t0 + k] += eff_b
                    per["weight_reads"][t0 + k] += visits
        for n in neu:
            s = outs[n]
            nlay[n]["zeros"] += int(s.size - np.count_nonzero(s))
            nlay[n]["elements"] += int(s.size)
            v = rec[f"v/{n}"].reshape(t1 - t0, B, -1)
            if n in prev_v:
                changed = np.count_nonzero(np.concatenate([prev_v[n][None], v[:-1]]) != v, axis=2)
            else:  # the first step counts every neuron (NeuroBench)
                changed = np.concatenate([np.full((1, B), v.shape[2]), np.count_nonzero(v[:-1] != v[1:], axis=2)])
            nlay[n]["membrane_updates"] += int(changed.sum())
            if per is not None:
                per["membrane_updates"][t0:t1] += changed
            prev_v[n] = v[-1].copy()
        for n in sources:
            prev_out[n] = outs[n][-1].copy()
        pbar.update(t1 - t0)
        t0 = t1
    pbar.close()

    zeros = sum(r["zeros"] for r in nlay.values())
    elems = sum(r["elements"] for r in nlay.values())
    macs = sum(r["eff_macs"] for r in lay.values())
    acs = sum(r["eff_acs"] for r in lay.values())
    dense = sum(r["dense"] for r in lay.values())
    mu = sum(r["membrane_updates"] for r in nlay.values())
    layers = {}
    for n, r in lay.items():
        layers[n] = {"kind": r["kind"], "eff_macs": r["eff_macs"] / B, "eff_acs": r["eff_acs"] / B,
                     "dense": r["dense"] / B, "input_density": r["nnz_inputs"] / (B * T * fan[n].size)}
    for n, r in nlay.items():
        layers[n] = {"kind": r["kind"], "activation_sparsity": r["zeros"] / r["elements"],
                     "membrane_updates": r["membrane_updates"] / B}
    syn_ops = {"Effective_MACs": macs / B, "Effective_ACs": acs / B, "Dense": dense / B}
    return {
        "precision": precision, "samples": int(B), "steps": int(T),
        "activation_sparsity": (zeros / elems) if elems else 0.0,
        "synaptic_operations": syn_ops,
        "membrane_updates": mu / B,
        "per_step": {"Effective_MACs": macs / B / T, "Effective_ACs": acs / B / T, "Dense": dense / B / T,
                     "membrane_updates": mu / B / T},
        "layers": layers,
        "_raw": {"weight_reads": {n: r["weight_reads"] for n, r in lay.items()}},
        **({"step_counts": per} if per is not None else {}),
    }


def metrics(model, xs=None, precision: str = "float", progress: bool = False) -> dict:
    """All of NeuroBench's static metrics, and the workload metrics when ``xs`` is given."""
    fp = footprint(model, precision)
    out = {"precision": precision, "footprint": fp, "connection_sparsity": connection_sparsity(model, precision),
           "parameter_count": int(sum(model.graph.nodes[n].n_params() for n in model.graph.order))}
    if xs is not None:
        w = workload(model, xs, precision, progress=progress)
        w.pop("_raw", None)
        out.update(w)
    return out


# --------------------------------------------------------------------------- counts for energy


def _spike_fed(model, name) -> bool:
    """True when a synaptic layer's input is spikes (through Flatten/Delay/Output aliases)."""
    g = model.graph
    for p in g.preds(name):
        op = g.nodes[p]
        while isinstance(op, (ops.Flatten, ops.Delay)) and len(g.preds(p)) == 1:
            p = g.preds(p)[0]
            op = g.nodes[p]
        if not (isinstance(op, ops.Neuron) and op.spiking and not op.multispike):
            return False
    return True


def count_ops(model, xs=None, precision: str = "int") -> dict:
    """Operation and memory-traffic counts for an energy estimate, per sample over ``steps`` steps.

    Keys (fixed; the energy estimator reads exactly these): ``dense``, ``eff_macs``, ``eff_acs``,
    ``membrane_updates`` (NeuroBench's definitions, per sample, summed over the steps);
    ``weight_bytes_read`` (weights the kernels read: a whole weight row per non-zero input of a
    dense layer, every synapse of a convolution), ``state_bytes_rw`` (neuron and delay state read
    and written every step), ``steps``, ``precision``; plus ``layers`` and ``assumed`` (notes).

    ``xs`` None: the worst case, one timestep with every synapse active (every input non-zero);
    layers fed by binary spikes count ACs, the others (the model input, pooled or analog values)
    MACs; every neuron updates.
    """
    if precision not in ("float", "int"):
        raise ModelError(f"precision '{precision}'; expected float or int")
    g = model.graph
    wbytes, sbytes, assumed = _widths(model, precision)
    notes = []
    if assumed:
        notes.append(f"not quantized: {DEFAULT_WEIGHT_BITS}-bit weights and {DEFAULT_STATE_BITS}-bit state assumed; "
                     "activity from the float model")
    run_prec = precision if (precision == "float" or model.quant) else "float"
    syn = synaptic_layers(model)
    n_state = sum(_n_state(model, n) for n in g.order)
    layers = {}
    if xs is None:
        steps = 1
        macs = acs = dense = 0
        wread = 0.0
        for n in syn:
            d = int(fanout(g.nodes[n], g.in_shapes[n], dense=True).sum())
            e = int(fanout(g.nodes[n], g.in_shapes[n], _weights(model, n, precision)).sum())
            spk = _spike_fed(model, n)
            acs += e if spk else 0
            macs += 0 if spk else e
            dense += d
            wread += d * wbytes
            layers[n] = {"kind": g.nodes[n].kind, "dense": d, "eff_macs": 0 if spk else e, "eff_acs": e if spk else 0}
        mu = sum(int(np.prod(g.out_shapes[n])) for n in neuron_layers(model))
        notes.append("worst case, one timestep: every input non-zero, so every synapse with a non-zero weight is "
                     "charged and every neuron updates")
    else:
        w = workload(model, xs, run_prec)
        steps = w["steps"]
        so = w["synaptic_operations"]
        macs, acs, dense = so["Effective_MACs"], so["Effective_ACs"], so["Dense"]
        mu = w["membrane_updates"]
        wread = 0.0
        B = w["samples"]
        for n in syn:
            wread += w["_raw"]["weight_reads"][n] / B * wbytes
            layers[n] = {k: w["layers"][n][k] for k in ("kind", "dense", "eff_macs", "eff_acs")}
    bias_bytes = sum(4 * g.nodes[n].weight.shape[0] for n in syn if _has_bias(g.nodes[n]))
    return {
        "dense": float(dense), "eff_macs": float(macs), "eff_acs": float(acs), "membrane_updates": float(mu),
        "weight_bytes_read": float(wread + bias_bytes * steps),
        "state_bytes_rw": float(2 * sbytes * n_state * steps),
        "steps": int(steps), "precision": precision, "layers": layers, "assumed": notes,
    }
