"""Dense (Affine / Linear) kernels: y = W·x + b, float32 reference and integer twin.

Weights are stored transposed, ``wt[j, c] = W[c, j]`` (shape (n_in, n_out)), so that the
contribution of one input is one contiguous row. Only the rows of nonzero inputs are added
("event-driven": an addition per synapse when the input is a 0/1 spike). The nonzero
inputs are listed first by a branch-free scan (random spike patterns would otherwise cost a
branch misprediction per spike), then their rows are added in increasing j. Layers with
fewer than ``SMALL_OUT`` outputs loop over outputs outside instead (a row of a few outputs
is too short for the vector loop's set-up to pay off); each output still adds the same
terms in the same order (increasing j), so every path gives bit-identical results, in
float as in integer arithmetic.
"""

import numpy as np
from ..jit import njit

from .fixed import INT32_MAX, INT32_MIN, mulshift_sat32, sat
from .layout import OP_DENSE

#: fraction of nonzero inputs above which a loop over all inputs is used (convolutions; the
#: dense kernels always add the listed nonzero rows, which costs the same once the list is
#: made without branches)
DENSE_ABOVE = 0.25
#: layers with fewer outputs than this accumulate output by output
SMALL_OUT = 16


@njit(cache=True)
def _active(x, idx):
    """idx[:n] = the indices j of the nonzero x[j], increasing; returns n. Branch-free: idx[n]
    is written for every j (n <= j, so idx needs room for x.shape[0] entries)."""
    n = 0
    for j in range(x.shape[0]):
        idx[n] = j
        n += x[j] != 0
    return n


@njit(cache=True)
def dense_f32(x, wt, b, y, idx):
    """y[c] = b[c] + Σ_j x[j]·wt[j, c]. x (n_in,), wt (n_in, n_out), b (n_out,) or empty."""
    n_in, n_out = wt.shape
    if b.shape[0]:
        for c in range(n_out):
            y[c] = b[c]
    else:
        for c in range(n_out):
            y[c] = 0.0
    nnz = _active(x, idx)
    if n_out < SMALL_OUT:
        for c in range(n_out):
            s = y[c]
            for k in range(nnz):
                j = idx[k]
                s += x[j] * wt[j, c]
            y[c] = s
        return
    for k in range(nnz):
        j = idx[k]
        xj = x[j]
        row = wt[j]
        if xj == 1.0:
            for c in range(n_out):
                y[c] += row[c]
        else:
            for c in range(n_out):
                y[c] += xj * row[c]


@njit(cache=True)
def dense_int(x, wt, b, y, idx, acc, rq_m, rq_s, identity):
    """Integer twin: acc[c] = b[c] + Σ_j x[j]·wt[j, c] (exact), then
    y[c] = sat32(rsr(acc[c]·rq_m[c], rq_s[c])), or sat32(acc[c]) when ``identity``.

    ``acc`` is an int32 scratch row when the builder proved |acc| < 2**31 for every input
    the quantizer allows, else int64; either way the sum is exact.
    """
    n_in, n_out = wt.shape
    if b.shape[0]:
        for c in range(n_out):
            acc[c] = b[c]
    else:
        for c in range(n_out):
            acc[c] = 0
    nnz = _active(x, idx)
    if n_out < SMALL_OUT:
        for c in range(n_out):
            a = acc[c]
            for k in range(nnz):
                j = idx[k]
                a += x[j] * wt[j, c]
            acc[c] = a
    else:
        for k in range(nnz):
            j = idx[k]
            xj = x[j]
            row = wt[j]
            if xj == 1:
                for c in range(n_out):
                    acc[c] += row[c]
            else:
                for c in range(n_out):
                    acc[c] += xj * row[c]
    if identity:
        for c in range(n_out):
            y[c] = sat(np.int64(acc[c]), INT32_MIN, INT32_MAX)
    else:
        for c in range(n_out):
            y[c] = mulshift_sat32(np.int64(acc[c]), np.int64(rq_m[c]), rq_s[c])  # exact for any int64 acc


# ---------------------------------------------------------------------- lowering
# How an Affine / Linear node becomes an instruction (called by edgebrain.program.build with
# its Builder; the row's columns are named in layout.py).


def lower_dense(b, name, op, q, inp, out):
    """One OP_DENSE row; the weights are stored transposed (n_in, n_out), as the kernels read them."""
    n_in, n_o = op.weight.shape[1], op.weight.shape[0]
    b.need_scratch(acc=n_o, idx=n_in)
    head = dict(rows=inp.n // n_in, n_in=n_in, n_out=n_o)
    if b.is_int:
        w_off = b.wbuf.add(q["w"].T)
        b_off = b.ipar.add(q["b"]) if "b" in q else -1
        b.emit(name, OP_DENSE, inp, out, **head, w_off=w_off, b_off=b_off, rq_m_off=b.ipar.add(q["rq_m"]),
               rq_s_off=b.ipar.add(q["rq_s"]), identity=q["identity"], wide=b.wide(name, q))
    else:
        w_off = b.fpar.add(op.weight.T)
        b_off = b.fpar.add(op.bias) if op.bias is not None else -1
        b.emit(name, OP_DENSE, inp, out, **head, w_off=w_off, b_off=b_off)


#: op kind -> lowering (Linear, a subclass of Affine, uses Affine's)
LOWERING = {"Affine": lower_dense}
