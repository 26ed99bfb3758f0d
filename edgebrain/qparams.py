"""The fixed-point contract: what a quantized model's integer parameters are and when they are valid.

One home for the rules that the quantizer (:mod:`edgebrain.quant`, which writes parameters),
the model file reader (:mod:`edgebrain.ebm`, which must refuse a damaged or hand-made file),
the builder (:mod:`edgebrain.program`, which lays them out for the kernels) and the C
exporter all follow. The arithmetic the kernels do with them is docs/fixed-point.md.

A model's ``quant`` dict::

    weight_bits   4, 8 or 16 (WEIGHT_BITS)       storage: int8 up to 8 bits, else int16
    state_bits    16 or 32 (STATE_BITS)          neuron state: int16 or int32
    per_channel, decay ('mul' | 'shift'), dq, input_bits   how the quantizer chose them
    scales        node -> real value of one integer step of its output (> 0)
    nodes         node -> that node's fields, by node type (see :func:`node_fields`)

Only the fields listed by :func:`node_fields` are checked (and read by the builder); the
quantizer also stores informative ones (``w_scale``, ``out_scale``).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from . import ops
from .errors import ModelError

WEIGHT_BITS = (4, 8, 16)
STATE_BITS = (16, 32)
DECAYS = ("mul", "shift")
INPUT_BITS = (8, 16)

#: shift amounts (requantisation s, gsyn_s, gmem_s, pooling s, bit-shift decays) lie in [0, MAX_SHIFT]
MAX_SHIFT = 62
#: dq, the fraction bits of the multiply-shift decay, lies in [0, MAX_DQ] (so that 2**dq, a decay
#: of 1, fits an int32)
MAX_DQ = 30
INT32 = (-2 ** 31, 2 ** 31 - 1)
#: multipliers m are int32 values other than -2**31 (|m| < 2**31)
MULT = (-(2 ** 31 - 1), 2 ** 31 - 1)
#: the input's real scale: its inverse must be a finite float32 (3.4e38)
INPUT_SCALE = (1e-37, 1e37)

#: integer arrays every neuron node has (broadcast to its shape); spiking kinds add
#: thr and v_reset, current-based kinds alpha_m, gsyn_m and gsyn_s
NEURON_INT_FIELDS = ("beta_m", "gmem_m", "gmem_s", "bias")


def state_dtype(state_bits: int) -> np.dtype:
    """Storage of neuron state for ``state_bits`` (16 or 32)."""
    return np.dtype(np.int16 if state_bits == 16 else np.int32)


def weight_dtype(weight_bits: int) -> np.dtype:
    """Storage of weights for ``weight_bits``: int8 (4-bit values too) or int16."""
    return np.dtype(np.int16 if weight_bits > 8 else np.int8)


def to_multiplier(M: float, bits: int = 31) -> tuple[int, int]:
    """(m, s) with m / 2**s ≈ M, |m| < 2**bits, 0 <= s <= 62; (1, 0) when M is exactly 1."""
    if not math.isfinite(M):
        raise ModelError(f"multiplier {M} is not finite")
    if M == 0:
        return 0, 0
    if abs(M - 1.0) < 1e-12:
        return 1, 0
    mant, exp = math.frexp(abs(M))  # M = mant * 2**exp, mant in [0.5, 1)
    s = bits - exp
    if s < 0:
        raise ModelError(f"multiplier {M:g} is too large for a 32-bit fixed-point multiplier")
    s = min(s, 62)
    m = int(round(abs(M) * 2.0 ** s))
    if m >= 2 ** bits:  # rounding carried into the next power of two
        m //= 2
        s -= 1
    return (m if M > 0 else -m), s


def is_num(v) -> bool:
    """A finite int or float from a JSON header (not a bool)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


class Field(NamedTuple):
    """One field of a node's entry in ``quant["nodes"]``.

    ``kind``: 'pos' (a positive number), 'int' (a 32-bit integer), 'bool', 'decay' ('mul' or
    'shift'), 'iarr' (an integer array of exactly ``shape``) or 'barr' (an integer array that
    broadcasts to ``shape``, one value per neuron). ``range``: (lo, hi), inclusive, for the
    value(s) of a number or array field (integer fields: int32 when not given)."""

    key: str
    kind: str
    shape: tuple | None = None
    optional: bool = False
    range: tuple | None = None


#: node types that carry fixed-point parameters (the others pass integers through unchanged)
QUANTIZED_OPS = (ops.Input, ops.Affine, ops.Conv1d, ops.Conv2d, ops.SumPool2d, ops.Scale, ops.Threshold, ops.Neuron)


def _valid_int(v, lo, hi) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def node_fields(op: ops.Op, in_shape, quant: dict | None = None, q: dict | None = None) -> list[Field]:
    """The fields node ``op`` (with input shape ``in_shape``) must have, in checking order, with
    their ranges; empty for node types without fixed-point parameters. ``quant`` (the model's
    parameters: weight and state widths) and ``q`` (the node's own entry: dq and the decay kind)
    narrow the ranges of weights and neuron fields when they are valid."""
    quant, q = quant if isinstance(quant, dict) else {}, q if isinstance(q, dict) else {}
    shift = (0, MAX_SHIFT)
    if isinstance(op, ops.Input):
        return [Field("scale", "pos", range=INPUT_SCALE), Field("lo", "int"), Field("hi", "int")]
    if isinstance(op, (ops.Affine, ops.Conv1d, ops.Conv2d)):  # and Linear
        co = (op.weight.shape[0],)
        wb = quant.get("weight_bits")
        wmax = 2 ** (wb - 1) - 1 if wb in WEIGHT_BITS and not isinstance(wb, bool) else 2 ** 15 - 1
        return [Field("w", "iarr", op.weight.shape, range=(-wmax, wmax)), Field("b", "iarr", co, optional=True),
                Field("rq_m", "iarr", co, range=MULT), Field("rq_s", "iarr", co, range=shift),
                Field("identity", "bool"), Field("wide", "bool")]
    if isinstance(op, ops.SumPool2d):  # and AvgPool2d
        return [Field("m", "int", range=MULT), Field("s", "int", range=shift)]
    if isinstance(op, ops.Scale):
        return [Field("m", "iarr", op.scale.shape, range=MULT), Field("s", "iarr", op.scale.shape, range=shift)]
    if isinstance(op, ops.Threshold):
        return [Field("th", "iarr", op.threshold.shape)]
    if isinstance(op, ops.Neuron):
        sb = quant.get("state_bits")
        info = np.iinfo(state_dtype(sb)) if sb in STATE_BITS and not isinstance(sb, bool) else np.iinfo(np.int32)
        state = (int(info.min), int(info.max))
        dq = q.get("dq")
        if q.get("decay") == "shift":
            decay = shift  # a shift k: decay = 1 - 2**-k
        else:  # a multiplier of 2**-dq: decay in [0, 1]
            decay = (0, 2 ** dq) if _valid_int(dq, 0, MAX_DQ) else (0, 2 ** MAX_DQ)
        # multi-spike neurons divide by the threshold: it must be >= 1
        thr = (1, state[1]) if op.spiking and op.multispike else state
        ranges = {"beta_m": decay, "alpha_m": decay, "gmem_m": MULT, "gsyn_m": MULT, "gmem_s": shift,
                  "gsyn_s": shift, "bias": state, "thr": thr, "v_reset": state}
        per_neuron = NEURON_INT_FIELDS + (("thr", "v_reset") if op.spiking else ()) + (
            ("alpha_m", "gsyn_m", "gsyn_s") if op.cuba else ())
        return ([Field("s_v", "pos"), Field("dq", "int", range=(0, MAX_DQ)), Field("decay", "decay")]
                + [Field(k, "barr", in_shape, range=ranges[k]) for k in per_neuron]
                + ([Field("s_i", "pos")] if op.cuba else [])
                + [Field(k, "bool", optional=True) for k in ("gmem_identity",)
                   + (("gsyn_identity",) if op.cuba else ())])
    return []


def check_quant(g, quant) -> None:
    """Check fixed-point parameters read from a file against the graph (types, shapes, ranges),
    so that a damaged or hand-made file cannot make the kernels read outside their buffers.
    Raises :class:`ModelError` naming the first bad field."""
    def bad(msg):
        raise ModelError(msg)

    if not isinstance(quant, dict):
        bad(f"header field 'quant' is a {type(quant).__name__}; expected an object")
    for k, allowed in (("weight_bits", WEIGHT_BITS), ("state_bits", STATE_BITS)):
        if quant.get(k) not in allowed or isinstance(quant.get(k), bool):
            bad(f"'{k}' = {quant.get(k)!r}; expected one of {allowed}")
    nodes, scales = quant.get("nodes"), quant.get("scales", {})
    if not isinstance(nodes, dict) or not isinstance(scales, dict):
        bad("'nodes' and 'scales' must be objects")
    for n, v in scales.items():
        if n not in g.nodes or not (is_num(v) and v > 0):
            bad(f"'scales.{n}' = {v!r}; expected a positive number for a node of the graph")
    for n, q in nodes.items():
        if n not in g.nodes:
            bad(f"node '{n}' is not in the graph")
    for n in g.outputs:
        if n not in scales:
            bad(f"'scales' has no entry for output node '{n}'")
    for name in g.order:
        op = g.nodes[name]
        if not isinstance(op, QUANTIZED_OPS):
            continue
        q = nodes.get(name)
        where = f"node '{name}' ({op.kind})"
        if not isinstance(q, dict):
            bad(f"{where}: entry is missing or not an object")
        for f in node_fields(op, g.in_shapes.get(name), quant, q):
            if f.key not in q:
                if f.optional:
                    continue
                bad(f"{where}: field '{f.key}' is missing")
            _check_field(where, f, q[f.key])
        if isinstance(op, ops.Input) and q["lo"] > q["hi"]:
            bad(f"{where}: fields 'lo' = {q['lo']} and 'hi' = {q['hi']}; expected lo <= hi")


def _check_field(where: str, f: Field, v) -> None:
    def bad(msg):
        raise ModelError(f"{where}: field '{f.key}' {msg}")

    lo, hi = f.range if f.range is not None else INT32
    if f.kind == "pos":
        if not (is_num(v) and v > 0):
            bad(f"= {v!r}; expected a positive number")
        if f.range is not None and not lo <= v <= hi:
            bad(f"= {v!r}; expected a number from {lo:g} to {hi:g}")
    elif f.kind == "int":
        if not (isinstance(v, int) and not isinstance(v, bool)):
            bad(f"= {v!r}; expected an integer from {lo} to {hi}")
        if not lo <= v <= hi:
            bad(f"= {v}; expected an integer from {lo} to {hi}")
    elif f.kind == "bool":
        if not isinstance(v, bool):
            bad(f"= {v!r}; expected true or false")
    elif f.kind == "decay":
        if v not in DECAYS:
            bad(f"= {v!r}; expected 'mul' or 'shift'")
    else:  # integer array, of exactly `shape` ('iarr') or broadcasting to it ('barr')
        a = v if isinstance(v, np.ndarray) else None
        if a is None or a.dtype.kind not in "iu":
            bad(f"is {type(v).__name__}; expected an integer array")
        exact = f.kind == "iarr"
        try:
            ok = a.shape == tuple(f.shape) if exact else np.broadcast_shapes(a.shape, f.shape) == tuple(f.shape)
        except ValueError:
            ok = False
        if not ok:
            bad(f"has shape {a.shape}; expected "
                f"{tuple(f.shape) if exact else f'a shape that broadcasts to {tuple(f.shape)}'}")
        if a.size:
            amin, amax = int(a.min()), int(a.max())
            if amin < lo or amax > hi:
                worst = amin if amin < lo else amax
                at = tuple(int(i) for i in np.unravel_index(int(np.argmax(a == worst)), a.shape))
                bad(f"holds {worst} (at index {at}); "
                    f"expected values from {lo} to {hi}")


# ---------------------------------------------------------------------- accumulator widths

INT32_SPAN = 2 ** 31


def value_bounds(g, quant: dict) -> dict[str, int]:
    """The largest |integer| each node's output can hold under the contract (docs/fixed-point.md),
    from the graph and the fixed-point parameters alone: what decides whether a weighted sum
    fits a 32-bit accumulator. A node that sums several inputs sees the sum of their bounds."""
    nodes = quant.get("nodes", {})
    qmax_s = 2 ** (int(quant.get("state_bits", 32)) - 1) - 1
    out: dict[str, int] = {}
    for _ in range(3):  # values read over back edges: a later pass sees them bounded
        for n in g.order:
            op = g.nodes[n]
            x_in = summed_bound(g, n, out)
            if isinstance(op, ops.Input):
                q = nodes.get(n, {})
                out[n] = max(abs(int(q.get("lo", -INT32_SPAN))), abs(int(q.get("hi", INT32_SPAN))))
            elif isinstance(op, ops.Threshold) or (isinstance(op, ops.Neuron) and op.spiking):
                out[n] = op.max_spikes if getattr(op, "multispike", False) else 1
            elif isinstance(op, ops.Neuron):
                out[n] = qmax_s + 1
            elif isinstance(op, ops.SumPool2d):
                out[n] = min(INT32_SPAN, x_in * op.kernel_size[0] * op.kernel_size[1])
            elif isinstance(op, (ops.Flatten, ops.Delay, ops.Output)):
                out[n] = x_in
            else:  # a requantised weighted sum or scale: anything int32 holds
                out[n] = INT32_SPAN
    return out


def summed_bound(g, n: str, bounds: dict) -> int:
    """The bound of node ``n``'s input: the saturating sum of its predecessors' outputs."""
    preds = g.preds(n)
    return min(INT32_SPAN, sum(bounds.get(p, INT32_SPAN) for p in preds)) if preds else INT32_SPAN


def needs_wide(w, b, x_bound: int) -> bool:
    """Whether ``Σ x·w + b`` over any input with |x| ≤ ``x_bound`` can reach 2³¹ for some output
    channel (axis 0 of the integer weights ``w``; ``b`` the integer bias or None): then the
    kernel must accumulate in 64 bits."""
    w = np.asarray(w, np.int64)
    worst = np.abs(w.reshape(w.shape[0], -1)).sum(axis=1) * int(x_bound)
    if b is not None:
        worst = worst + np.abs(np.asarray(b, np.int64).reshape(-1))
    return bool(worst.size and worst.max() >= INT32_SPAN)
