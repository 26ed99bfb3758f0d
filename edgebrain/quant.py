"""Post-training quantization: pick integer parameters and scales from calibration data.

    qmodel, report = quantize(model, calib, weight_bits=8, state_bits=16)

Scheme (the arithmetic itself is in docs/fixed-point.md):

* weights: symmetric, per output channel (or per layer), scale = max|w| / qmax;
* spikes are exact integers (scale 1), so a layer fed by spikes only adds weights;
* neuron state: one scale per population, from the largest membrane (and current) value seen
  during calibration or the threshold, whichever is larger, with 25 % headroom;
* each linear layer requantizes its accumulator (one multiply-shift per output, not per
  synapse) straight into the units its consumer neuron wants, so that the neuron's own input
  gain is exactly 1 whenever the gain is uniform over the population;
* decays: multiply-shift (decay·2^dq rounded) or a bit shift (decay ≈ 1 − 2^−k).

The report lists per node the scales, clipped weights, saturations of the fixed-point run
on the calibration data, and how many spikes agree with the float run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import ops
from .arrays import time_major
from .errors import InputError, ModelError
from .model import Model
from .qparams import DECAYS, INPUT_BITS, STATE_BITS, WEIGHT_BITS, needs_wide, summed_bound, to_multiplier, value_bounds

HEADROOM = 1.25


def _round(a) -> np.ndarray:
    """Round half away from zero (as TFLite), independent of NumPy's half-to-even."""
    a = np.asarray(a, np.float64)
    return np.sign(a) * np.floor(np.abs(a) + 0.5)


@dataclass
class LayerReport:
    name: str
    kind: str
    out_scale: float
    weight_scale: tuple = ()
    state_scale: float | None = None
    current_scale: float | None = None
    clipped_weights: int = 0
    clipped_bias: int = 0
    saturations: int = 0
    spike_agreement: float | None = None
    notes: list = field(default_factory=list)

    def as_dict(self):
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


@dataclass
class QuantReport:
    weight_bits: int
    state_bits: int
    per_channel: bool
    decay: str
    layers: list
    steps: int
    float_accuracy: float | None = None
    int_accuracy: float | None = None
    output_agreement: float | None = None

    def as_dict(self):
        d = {k: v for k, v in self.__dict__.items() if k != "layers"}
        d["layers"] = [lr.as_dict() for lr in self.layers]
        return d


# ---------------------------------------------------------------------- calibration


def _as_batched(model, calib) -> np.ndarray:
    x = np.asarray(calib)
    if time_major(x, model.input_shape, what="calibration data", note="") is None:
        x = x[:, None]
    if x.dtype.kind not in "fiub":
        raise InputError(f"calibration data has dtype {x.dtype}; expected numbers")
    x = x.astype(np.float32)
    if not np.isfinite(x).all():
        raise InputError("calibration data contains NaN or infinite values")
    return x


def _calibrate(model, xs, progress=False) -> dict:
    """Largest |value| of every node output, membrane and current over the calibration run."""
    from .progress import bar

    pb = bar(xs.shape[0], "calibrating", enabled=progress)
    g = model.graph
    sess = model.session("float", batch=xs.shape[1])
    names = [n for n in g.order if not isinstance(g.nodes[n], ops.Output)]
    stats = {n: {"out": 0.0, "v": 0.0, "i": 0.0, "integer": True, "nonneg": True} for n in names}
    chunk = 64
    for t in range(0, xs.shape[0], chunk):
        _, rec = sess.run(xs[t:t + chunk], record=names)
        for key, a in rec.items():
            kind, n = key.split("/", 1)
            m = float(np.max(np.abs(a))) if a.size else 0.0
            k = "out" if kind in ("out", "spikes") else kind
            stats[n][k] = max(stats[n][k], m)
            if k == "out":
                stats[n]["integer"] &= bool(np.all(a == np.round(a)))
                stats[n]["nonneg"] &= bool(np.all(a >= 0))
        pb.update(min(chunk, xs.shape[0] - t))
    pb.close()
    return stats


# ---------------------------------------------------------------------- scales


class _UnionFind:
    def __init__(self):
        self.p = {}

    def find(self, a):
        self.p.setdefault(a, a)
        while self.p[a] != a:
            self.p[a] = self.p[self.p[a]]
            a = self.p[a]
        return a

    def union(self, a, b):
        self.p[self.find(a)] = self.find(b)


def _uniform(a) -> float | None:
    a = np.asarray(a, np.float64).reshape(-1)
    return float(a[0]) if a.size and np.all(a == a[0]) else None


def quantize(model, calib, weight_bits: int = 8, state_bits: int = 16, per_channel: bool = True,
             decay: str = "mul", dq: int = 15, input_bits: int = 8, labels=None, progress: bool = False):
    """Return (quantized model, QuantReport). ``calib``: (T, *input) or (T, B, *input) float data."""
    if weight_bits not in WEIGHT_BITS:
        raise ModelError(f"weight_bits={weight_bits}; expected 4, 8 or 16")
    if state_bits not in STATE_BITS:
        raise ModelError(f"state_bits={state_bits}; expected 16 or 32")
    if decay not in DECAYS:
        raise ModelError(f"decay='{decay}'; expected mul or shift")
    if input_bits not in INPUT_BITS:
        raise ModelError(f"input_bits={input_bits}; expected 8 or 16")
    g = model.graph
    xs = _as_batched(model, calib)
    stats = _calibrate(model, xs, progress)
    qmax_w = 2 ** (weight_bits - 1) - 1
    qmax_s = 2 ** (state_bits - 1) - 1
    # states are kept well inside int32 so sums of a few of them cannot overflow
    state_span = qmax_s if state_bits == 16 else 2 ** 24

    scale: dict[str, float] = {}      # output scale of every node
    nq: dict[str, dict] = {}
    reports: dict[str, LayerReport] = {}

    def spiking(n):
        op = g.nodes[n]
        return (isinstance(op, ops.Neuron) and op.spiking) or isinstance(op, ops.Threshold)

    # ---- neuron state scales and the input scale each neuron would like
    desire: dict[str, float] = {}
    for n in g.order:
        op = g.nodes[n]
        if not isinstance(op, ops.Neuron):
            continue
        st = stats[n]
        rng_v = max(st["v"], float(np.max(np.abs(op.threshold))) if op.spiking else 0.0,
                    float(np.max(np.abs(op.v_reset))) if op.spiking else 0.0, 1e-12) * HEADROOM
        s_v = rng_v / state_span
        q = {"s_v": s_v, "dq": dq, "decay": decay}
        gm = _uniform(op.g_mem)
        if op.cuba:
            s_i = max(st["i"], 1e-12) * HEADROOM / state_span
            if gm and gm > 0 and s_v / gm >= s_i:
                s_i = s_v / gm  # drive current into the membrane without a multiply
            q["s_i"] = s_i
            gs = _uniform(op.g_syn)
            desire[n] = s_i / gs if gs and gs > 0 else s_i / max(float(np.max(np.abs(op.g_syn))), 1e-12)
        else:
            desire[n] = s_v / gm if gm and gm > 0 else s_v / max(float(np.max(np.abs(op.g_mem))), 1e-12)
        nq[n] = q

    # ---- groups of producers that must share one output scale (they are summed somewhere)
    uf = _UnionFind()
    for n in g.order:
        preds = g.preds(n)
        for p in preds:
            uf.find(p)
        for a, b in zip(preds, preds[1:]):
            uf.union(a, b)
    groups: dict = {}
    for p in list(uf.p):
        groups.setdefault(uf.find(p), []).append(p)

    chooses = (ops.Affine, ops.Conv1d, ops.Conv2d, ops.Scale)
    group_scale = {}
    for root, members in groups.items():
        consumers = {b for a, b in g.edges if a in members}
        wants = [desire[c] for c in consumers if c in desire]
        free = [m for m in members if isinstance(g.nodes[m], chooses)]
        if not free:
            continue  # scales fixed by the producers themselves (spikes, inputs, pools...)
        if wants:
            group_scale[root] = min(wants)
        else:
            rng = max(max(stats[m]["out"] for m in free), 1e-12) * HEADROOM
            group_scale[root] = rng / (2 ** 15 - 1)

    # ---- assign output scales in execution order (repeat for values read over back edges)
    for _ in range(3):
        for n in g.order:
            op = g.nodes[n]
            preds = g.preds(n)
            s_in = scale.get(preds[0]) if preds else None
            if isinstance(op, ops.Input):
                st = stats[n]
                hi = 2 ** (input_bits - 1) - 1
                if st["integer"] and st["out"] <= hi:
                    scale[n], lo_ = 1.0, -hi
                else:
                    scale[n], lo_ = max(st["out"], 1e-12) / hi, -hi
                nq[n] = {"scale": scale[n], "lo": lo_, "hi": hi}
            elif spiking(n):
                scale[n] = 1.0
            elif isinstance(op, ops.Neuron):
                scale[n] = nq[n]["s_v"]
            elif isinstance(op, chooses):
                scale[n] = group_scale[uf.find(n)]
            elif isinstance(op, ops.SumPool2d) and s_in is not None:
                scale[n] = s_in * op.factor()
            elif isinstance(op, (ops.Flatten, ops.Delay, ops.Output)) and s_in is not None:
                scale[n] = s_in

    # ---- the sums must be consistent: every input of a node carries the same scale
    for n in g.order:
        preds = g.preds(n)
        ss = {scale[p] for p in preds}
        if len(ss) > 1 and max(ss) / min(ss) > 1 + 1e-9:
            raise ModelError(
                f"node '{n}' sums inputs with different fixed-point scales ({', '.join(preds)}); "
                "fixed point needs them to share a scale (put the spike input through a Scale or Linear node)")

    # ---- integer parameters per node
    bounds = value_bounds(g, {"state_bits": state_bits, "nodes": nq})  # what each node's output can hold
    for n in g.order:
        op = g.nodes[n]
        preds = g.preds(n)
        s_x = scale[preds[0]] if preds else 1.0
        rep = reports[n] = LayerReport(n, op.kind, scale.get(n, 1.0))
        if isinstance(op, (ops.Affine, ops.Conv1d, ops.Conv2d)):
            w = op.weight.astype(np.float64)
            co = w.shape[0]
            wr = w.reshape(co, -1)
            mx = np.abs(wr).max(axis=1) if per_channel else np.full(co, np.abs(wr).max())
            s_w = np.where(mx > 0, mx / qmax_w, 1.0)
            wq = _round(wr / s_w[:, None])
            rep.clipped_weights = int(np.sum(np.abs(wq) > qmax_w))
            wq = np.clip(wq, -qmax_w, qmax_w).astype(np.int64)
            q = {"w": wq.reshape(w.shape).astype(np.int8 if weight_bits <= 8 else np.int16), "w_scale": s_w}
            if op.bias is not None:
                bq = _round(op.bias.astype(np.float64) / (s_x * s_w))
                rep.clipped_bias = int(np.sum(np.abs(bq) > 2 ** 31 - 1))
                q["b"] = np.clip(bq, -(2 ** 31 - 1), 2 ** 31 - 1).astype(np.int32)
            ms = [to_multiplier(s_x * s_w[c] / scale[n]) for c in range(co)]
            q["rq_m"] = np.array([m for m, _ in ms], np.int32)
            q["rq_s"] = np.array([s for _, s in ms], np.int32)
            q["identity"] = all(m == 1 and s == 0 for m, s in ms)
            q["out_scale"] = scale[n]
            # 32-bit accumulators only where no input the quantizer allows can overflow them
            q["wide"] = needs_wide(wq, q.get("b"), summed_bound(g, n, bounds))
            rep.weight_scale = (float(s_w.min()), float(s_w.max()))
            nq[n] = q
        elif isinstance(op, ops.SumPool2d):
            nq[n] = {"m": 1, "s": 0, "out_scale": scale[n]}
        elif isinstance(op, ops.Scale):
            sc = op.scale.astype(np.float64).reshape(-1)
            ms = [to_multiplier(s_x * v / scale[n]) for v in sc]
            nq[n] = {"m": np.array([m for m, _ in ms], np.int32).reshape(op.scale.shape),
                     "s": np.array([s for _, s in ms], np.int32).reshape(op.scale.shape), "out_scale": scale[n]}
        elif isinstance(op, ops.Threshold):
            nq[n] = {"th": np.floor(op.threshold.astype(np.float64) / s_x).clip(-2 ** 31, 2 ** 31 - 1).astype(np.int32)}
        elif isinstance(op, ops.Neuron):
            q = nq[n]
            s_v = q["s_v"]
            rep.state_scale = s_v

            def decay_param(a):
                a = np.asarray(a, np.float64)
                if decay == "mul":
                    return np.clip(_round(a * 2 ** dq), 0, 2 ** dq).astype(np.int32)
                with np.errstate(divide="ignore"):
                    k = np.where(a >= 1, 62, np.where(a <= 0, 0, _round(-np.log2(np.maximum(1 - a, 1e-300)))))
                return np.clip(k, 0, 62).astype(np.int32)

            q["beta_m"] = decay_param(op.beta)
            if op.cuba:
                s_i = q["s_i"]
                rep.current_scale = s_i
                q["alpha_m"] = decay_param(op.alpha)
                m_s = [to_multiplier(v) for v in (op.g_syn.astype(np.float64).reshape(-1) * s_x / s_i)]
                q["gsyn_m"] = np.array([m for m, _ in m_s], np.int32).reshape(op.g_syn.shape)
                q["gsyn_s"] = np.array([s for _, s in m_s], np.int32).reshape(op.g_syn.shape)
                q["gsyn_identity"] = all(m == 1 and s == 0 for m, s in m_s)
                s_d = s_i
            else:
                s_d = s_x
            m_s = [to_multiplier(v) for v in (op.g_mem.astype(np.float64).reshape(-1) * s_d / s_v)]
            q["gmem_m"] = np.array([m for m, _ in m_s], np.int32).reshape(op.g_mem.shape)
            q["gmem_s"] = np.array([s for _, s in m_s], np.int32).reshape(op.g_mem.shape)
            q["gmem_identity"] = all(m == 1 and s == 0 for m, s in m_s)
            q["bias"] = np.clip(_round(op.bias / s_v), -qmax_s - 1, qmax_s).astype(np.int32)
            if op.spiking:
                thr = np.clip(_round(op.threshold / s_v), -qmax_s - 1, qmax_s)
                if op.multispike:
                    thr = np.maximum(thr, 1)
                q["thr"] = thr.astype(np.int32)
                q["v_reset"] = np.clip(_round(op.v_reset / s_v), -qmax_s - 1, qmax_s).astype(np.int32)
            if decay == "shift":
                eff = 1 - 2.0 ** -q["beta_m"].astype(np.float64)
                err = float(np.max(np.abs(eff - op.beta)))
                if err > 0.01:
                    rep.notes.append(f"bit-shift decay differs from beta by up to {err:.3f}")

    quant = {"weight_bits": weight_bits, "state_bits": state_bits, "per_channel": per_channel, "decay": decay,
             "dq": dq, "input_bits": input_bits, "nodes": nq, "scales": {k: float(v) for k, v in scale.items()}}
    qmodel = Model(g, quant, model.path)
    rep = _evaluate(model, qmodel, xs, reports, labels, progress)
    rep.weight_bits, rep.state_bits, rep.per_channel, rep.decay = weight_bits, state_bits, per_channel, decay
    return qmodel, rep


def _evaluate(fmodel, qmodel, xs, reports, labels, progress=False) -> QuantReport:
    g = fmodel.graph
    names = [n for n in g.order if not isinstance(g.nodes[n], (ops.Output, ops.Input))]
    spk = [n for n in names if isinstance(g.nodes[n], ops.Neuron) and g.nodes[n].spiking]
    fs = fmodel.session("float", batch=xs.shape[1])
    qs = qmodel.session("int", batch=xs.shape[1])
    fo, fr = fs.run(xs, record=spk, progress=progress)
    qo, qr = qs.run(xs, record=spk, progress=progress)
    for n in spk:
        a, b = fr[f"spikes/{n}"], qr[f"spikes/{n}"]
        reports[n].spike_agreement = float(np.mean(a == b)) if a.size else None
    prog = qmodel.program("int")
    for r, n in enumerate(prog.instr_node):
        if n in reports:
            reports[n].saturations += int(qs.saturations[r])
    out = QuantReport(0, 0, True, "", [reports[n] for n in g.order if n in reports], steps=int(xs.shape[0]))
    fo1 = fo if not isinstance(fo, dict) else next(iter(fo.values()))
    qo1 = qo if not isinstance(qo, dict) else next(iter(qo.values()))
    out.output_agreement = float(np.mean(np.argmax(fo1.sum(0).reshape(xs.shape[1], -1), -1)
                                         == np.argmax(qo1.sum(0).reshape(xs.shape[1], -1), -1)))
    if labels is not None:
        lab = np.asarray(labels).reshape(-1)
        if lab.size != xs.shape[1]:
            raise InputError(f"{lab.size} labels for {xs.shape[1]} calibration sequences; expected one per sequence")
        out.float_accuracy = float(np.mean(np.argmax(fo1.sum(0).reshape(xs.shape[1], -1), -1) == lab))
        out.int_accuracy = float(np.mean(np.argmax(qo1.sum(0).reshape(xs.shape[1], -1), -1) == lab))
    return out
