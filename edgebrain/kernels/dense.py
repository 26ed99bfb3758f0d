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

Pruned and 4-bit weights (:mod:`edgebrain.kernels.compact`) have kernels of their own:
``sparse_int`` / ``sparse_f32`` add, for each nonzero input, only the stored (nonzero) weights of
its row, whose output indices the CSR lists; ``dense_int4`` reads two weights per byte. Each
output still adds its terms in increasing j: the integer sums are the dense kernel's exactly
(a zero weight adds nothing), and so are the float ones (adding x·0 changes no finite sum, only
perhaps the sign of a zero).
"""

import numpy as np
from ..jit import njit

from . import compact
from .fixed import INT32_MAX, INT32_MIN, mulshift_sat32, sat
from .layout import OP_DENSE, OP_SPARSE

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


# ---------------------------------------------------------------------- pruned and 4-bit weights


@njit(cache=True, inline="always")
def _start(acc, b, n_out):
    if b.shape[0]:
        for c in range(n_out):
            acc[c] = b[c]
    else:
        for c in range(n_out):
            acc[c] = 0


@njit(cache=True, inline="always")
def _requant(acc, y, rq_m, rq_s, identity):
    if identity:
        for c in range(y.shape[0]):
            y[c] = sat(np.int64(acc[c]), INT32_MIN, INT32_MAX)
    else:
        for c in range(y.shape[0]):
            y[c] = mulshift_sat32(np.int64(acc[c]), np.int64(rq_m[c]), rq_s[c])


@njit(cache=True, inline="always")
def _lo4(v):
    """The low nibble of byte ``v`` as a signed 4-bit value."""
    return ((v & 15) ^ 8) - 8


@njit(cache=True)
def dense_int4(x, wp, b, y, idx, acc, rq_m, rq_s, identity):
    """dense_int with 4-bit weights: ``wp`` (n_in, ceil(n_out / 2)) int8, byte h of row j holding
    wt[j, 2h] in its low nibble and wt[j, 2h + 1] in its high one (``v >> 4`` of the signed byte)."""
    n_out = y.shape[0]
    _start(acc, b, n_out)
    nnz = _active(x, idx)
    half = n_out // 2
    for k in range(nnz):
        j = idx[k]
        xj = x[j]
        row = wp[j]
        if xj == 1:
            for h in range(half):
                v = row[h]
                acc[2 * h] += _lo4(v)
                acc[2 * h + 1] += v >> 4
        else:
            for h in range(half):
                v = row[h]
                acc[2 * h] += xj * _lo4(v)
                acc[2 * h + 1] += xj * (v >> 4)
        if n_out & 1:
            acc[n_out - 1] += xj * _lo4(row[half])
    _requant(acc, y, rq_m, rq_s, identity)


@njit(cache=True, inline="always")
def _uint(b, k, w):
    """The k-th little-endian unsigned integer of ``w`` (2 or 4) bytes in the byte array ``b``."""
    o = k * w
    v = np.int64(b[o]) | (np.int64(b[o + 1]) << 8)
    if w == 4:
        v |= (np.int64(b[o + 2]) << 16) | (np.int64(b[o + 3]) << 24)
    return v


@njit(cache=True)
def _scatter_int(x, idx, nnz, vals, ptrb, pw, colb, cw, acc, int4):
    for k in range(nnz):
        j = idx[k]
        xj = x[j]
        e0, e1 = _uint(ptrb, j, pw), _uint(ptrb, j + 1, pw)
        if cw == 2:  # 16-bit output indices (over 256 outputs)
            for e in range(e0, e1):
                c = np.int64(colb[2 * e]) | (np.int64(colb[2 * e + 1]) << 8)
                acc[c] += xj * ((vals[e >> 1] >> 4) if int4 and e & 1 else _lo4(vals[e >> 1]) if int4 else vals[e])
        elif int4:  # entry e in byte e >> 1: an odd first entry alone, then pairs sharing a byte
            e = e0
            if e & 1 and e < e1:
                acc[colb[e]] += xj * (vals[e >> 1] >> 4)
                e += 1
            while e + 1 < e1:
                v = vals[e >> 1]
                acc[colb[e]] += xj * _lo4(v)
                acc[colb[e + 1]] += xj * (v >> 4)
                e += 2
            if e < e1:
                acc[colb[e]] += xj * _lo4(vals[e >> 1])
        elif xj == 1:
            for e in range(e0, e1):
                acc[colb[e]] += vals[e]
        else:
            for e in range(e0, e1):
                acc[colb[e]] += xj * vals[e]


@njit(cache=True)
def sparse_int(x, vals, ptrb, pw, colb, cw, b, y, idx, acc, rq_m, rq_s, identity, int4):
    """dense_int over the CSR of the transposed weights (kernels/compact.py): for each nonzero
    x[j], acc[cols[e]] += x[j]·vals[e] over its stored entries e = ptr[j] .. ptr[j+1] - 1. ``ptrb``
    and ``colb`` are the raw little-endian bytes of the row pointers (``pw`` = 2 or 4 bytes each) and
    of the output indices (``cw`` = 1 or 2); ``vals`` the weights, or with ``int4`` their bytes, two
    4-bit weights each (entry e in byte e >> 1, the low nibble for even e)."""
    n_out = y.shape[0]
    _start(acc, b, n_out)
    nnz = _active(x, idx)
    _scatter_int(x, idx, nnz, vals, ptrb, pw, colb, cw, acc, int4)
    _requant(acc, y, rq_m, rq_s, identity)


@njit(cache=True)
def _scatter_f32(x, idx, nnz, vals, ptrb, pw, colb, cw, y):
    for k in range(nnz):
        j = idx[k]
        xj = x[j]
        e0, e1 = _uint(ptrb, j, pw), _uint(ptrb, j + 1, pw)
        if cw == 2:  # 16-bit output indices (over 256 outputs)
            for e in range(e0, e1):
                y[np.int64(colb[2 * e]) | (np.int64(colb[2 * e + 1]) << 8)] += xj * vals[e]
        elif xj == 1.0:
            for e in range(e0, e1):
                y[colb[e]] += vals[e]
        else:
            for e in range(e0, e1):
                y[colb[e]] += xj * vals[e]


@njit(cache=True)
def sparse_f32(x, vals, ptrb, pw, colb, cw, b, y, idx):
    """Float twin of sparse_int: y[c] = b[c] + Σ_j x[j]·wt[j, c] over the stored weights, in
    increasing j for every output c (as dense_f32 adds them)."""
    n_out = y.shape[0]
    if b.shape[0]:
        for c in range(n_out):
            y[c] = b[c]
    else:
        for c in range(n_out):
            y[c] = 0.0
    nnz = _active(x, idx)
    _scatter_f32(x, idx, nnz, vals, ptrb, pw, colb, cw, y)


# ---------------------------------------------------------------------- lowering
# How an Affine / Linear node becomes an instruction (called by edgebrain.program.build with
# its Builder; the row's columns are named in layout.py).


def lower_dense(b, name, op, q, inp, out):
    """One OP_DENSE row, the weights stored transposed (n_in, n_out) as the kernels read them; or,
    when that is smaller (kernels/compact.py: pruned weights), one OP_SPARSE row over their CSR.
    4-bit weights are packed two per byte either way."""
    n_in, n_o = op.weight.shape[1], op.weight.shape[0]
    b.need_scratch(acc=n_o, idx=n_in)
    head = dict(rows=inp.n // n_in, n_in=n_in, n_out=n_o)
    wt = np.asarray(q["w"] if b.is_int else op.weight).T
    bits = b.weight_bits if b.is_int else 32
    if not b.compact and bits == 4:
        bits = 8  # (the int8 wbuf holds 4-bit values one per byte)
    nnz = int(np.count_nonzero(wt))
    if b.compact and compact.sparse_saves(n_in, n_o, nnz, bits, align=b.wbuf.align_bytes, index_align=b.ipar.dtype.itemsize):
        ptr, cols, vals = compact.to_csr(wt)
        w_off = b.wbuf.add_raw(compact.pack_int4(vals)) if bits == 4 else b.wbuf.add(vals)
        # the row pointers and output indices: raw bytes in ipar, each part 4-byte aligned
        head.update(nnz=nnz, ptr_off=b.ipar.add_raw(ptr, align=1), ptr_bytes=ptr.itemsize,
                    idx_off=b.ipar.add_raw(cols, align=1), idx_bytes=cols.itemsize)
        opcode = OP_SPARSE
    else:
        w_off = b.wbuf.add_raw(compact.pack_int4_rows(wt)) if bits == 4 else b.wbuf.add(wt)
        opcode = OP_DENSE
    if bits == 4:
        head["int4"] = 1
    if b.is_int:
        b_off = b.ipar.add(q["b"]) if "b" in q else -1
        b.emit(name, opcode, inp, out, **head, w_off=w_off, b_off=b_off, rq_m_off=b.ipar.add(q["rq_m"]),
               rq_s_off=b.ipar.add(q["rq_s"]), identity=q["identity"], wide=b.wide(name, q))
    else:
        b_off = b.fpar.add(op.bias) if op.bias is not None else -1
        b.emit(name, opcode, inp, out, **head, w_off=w_off, b_off=b_off)


#: op kind -> lowering (Linear, a subclass of Affine, uses Affine's)
LOWERING = {"Affine": lower_dense}
