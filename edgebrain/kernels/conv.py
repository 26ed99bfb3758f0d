"""Convolution kernels (Conv2d; Conv1d runs as Conv2d with H = 1), float32 and integer.

PyTorch semantics: zero padding, stride, dilation, groups. One event-driven scatter loop:
every nonzero input adds its weights, times its value, to the outputs it reaches (zero inputs
are skipped, which cannot change an exact integer sum; in float they add nothing either). The
inputs are visited in increasing (input channel, row, column), so each output adds its terms
in that order after its bias, as a gather over its receptive field would; the float results
are bit-identical to a float32 sum in that order (tests/kernels/test_conv_paths.py).

Layouts, chosen so that the innermost loop runs over contiguous memory:

* weights are stored by :func:`lower_conv` as ``(C/groups, kh, kw, Co)`` with the kernel's
  columns reversed (:func:`scatter_weights`): for one input pixel and one kernel row, the
  outputs of consecutive kernel columns are consecutive output columns, so with stride 1,
  no dilation and one group, a whole kernel row is one run of ``n·Co`` weights added to one
  run of ``n·Co`` accumulators (``n`` = kernel columns inside the image);
* accumulators are channel-last, ``(Ho, Wo, Co)``, and are written to ``y`` channel-first
  (the node's layout) at the end, four channels per pass, both in the ``acc`` scratch the
  executor passes;
* until that last pass ``y`` is free, and holds the list of an input row's nonzero columns.

Stride 1 without dilation is the fast path; other strides and dilations take a general
loop over the kernel (same order of terms per output, inner loop over the output channels).
"""

import numpy as np
from numba.core import types
from numba.extending import overload

from ..jit import njit
from .dense import DENSE_ABOVE  # noqa: F401  (tests size their inputs by it; the scatter loop skips zeros at any density)
from .fixed import INT32_MAX, INT32_MIN, mulshift_sat32, rsr, sat
from .layout import CONV_DIM_NAMES, OP_CONV


def scatter_weights(w):
    """Weights ``(Co, C/groups, kh, kw)`` in the kernels' layout: ``(C/groups, kh, kw, Co)`` with
    the kernel columns reversed (``ws[ci, ky, j, co] = w[co, ci, ky, kw-1-j]``), C-contiguous;
    the same number of elements, so it fills the same slot of a parameter buffer."""
    w = np.asarray(w)
    return np.ascontiguousarray(w[:, :, :, ::-1].transpose(1, 2, 3, 0))


def is_narrow(a):
    """Whether array ``a`` holds int32 (a compile-time constant inside a kernel)."""
    return a.dtype == np.int32


@overload(is_narrow)
def _is_narrow_ov(a):
    narrow = isinstance(a, types.Array) and a.dtype == types.int32
    return lambda a: narrow


@njit(cache=True, inline="always")
def _axpy(acc, a0, ws, w0, n, v):
    """acc[a0:a0+n] += v · ws[w0:w0+n]. Through slices: indexed as acc[a0 + t], the possibly
    negative index's wrap-around check kept LLVM from vectorizing the loop (10× slower). With
    int32 accumulators LLVM narrows the int64 expression to 32-bit lanes, which is exact: the
    builder uses them only where no partial sum can leave int32. v == 1 (a spike) adds the
    weights: the same numbers (1·w == w, in float too), without the multiply."""
    a = acc[a0:a0 + n]
    w = ws[w0:w0 + n]
    if v == 1:
        for t in range(n):
            a[t] += w[t]
    else:
        for t in range(n):
            a[t] += v * w[t]


@njit(cache=True, inline="always")
def _add_input(acc, ws, v, ix, ci, co0, iy, ky0, ky1, dims):
    """acc (Ho, Wo, Co flattened) += the contribution of input x[c, iy, ix] = v != 0 (c = ci in
    its group, whose first output channel is co0); ws: the flat weights in
    :func:`scatter_weights` layout; [ky0, ky1) the kernel rows that reach an output row (stride
    1 only). dims = (C, H, W, Co, kh, kw, sh, sw, pt, pl, dh, dw, groups, Ho, Wo)."""
    Co, kh, kw, sh, sw, pt, pl, dh, dw, groups, Ho, Wo = (
        dims[3], dims[4], dims[5], dims[6], dims[7],
        dims[8], dims[9], dims[10], dims[11], dims[12], dims[13], dims[14])
    cout_g = Co // groups
    if sh == 1 and sw == 1 and dh == 1 and dw == 1:
        # reversed kernel column j (kx = kw-1-j) reaches output column ox = ix + pl - kw + 1 + j,
        # which must lie in [0, Wo)
        j0 = max(0, kw - 1 - ix - pl)
        j1 = min(kw, Wo + kw - 1 - ix - pl)
        if j1 <= j0:
            return
        ox0 = ix + pl - kw + 1 + j0
        for ky in range(ky0, ky1):
            oy = iy + pt - ky
            a0 = (oy * Wo + ox0) * Co + co0
            w0 = ((ci * kh + ky) * kw + j0) * Co + co0
            if groups == 1:  # the kernel row is one contiguous run
                _axpy(acc, a0, ws, w0, (j1 - j0) * Co, v)
            else:
                for j in range(j1 - j0):
                    _axpy(acc, a0 + j * Co, ws, w0 + j * Co, cout_g, v)
        return
    for ky in range(kh):
        ty = iy + pt - ky * dh
        if ty < 0 or ty % sh:
            continue
        oy = ty // sh
        if oy >= Ho:
            continue
        for kx in range(kw):
            tx = ix + pl - kx * dw
            if tx < 0 or tx % sw:
                continue
            ox = tx // sw
            if ox >= Wo:
                continue
            _axpy(acc, (oy * Wo + ox) * Co + co0, ws, ((ci * kh + ky) * kw + kw - 1 - kx) * Co + co0, cout_g, v)


@njit(cache=True, inline="always")
def _index_scratch(y, W):
    """y's memory as int32 index scratch for :func:`_scatter` (a row of W entries), or an empty
    array when y is shorter than a row."""
    yi = y.view(np.int32)
    return yi if yi.shape[0] >= W else yi[:0]


@njit(cache=True)
def _scatter(x, w, acc, dims, idx):
    """acc (Ho, Wo, Co flattened) += conv(x, w), the nonzero inputs in increasing (channel, row,
    column). Row by row, the columns of the nonzero inputs are listed first, in ``idx`` (int32
    scratch of at least W entries), by a branch-free pass: a branch per input mispredicts on
    random spikes (testing N-MNIST's 95 % zeros one by one took 4 µs of the first layer's 15).
    An empty ``idx`` tests the inputs one by one instead."""
    C, H, W, Co, kh, pt, groups, Ho = dims[0], dims[1], dims[2], dims[3], dims[4], dims[8], dims[12], dims[13]
    ws = w.reshape(-1)  # C-contiguous: the flat weights, reinterpreted
    cin_g = C // groups
    cout_g = Co // groups
    listed = idx.shape[0] >= W
    for c in range(C):
        g = c // cin_g
        ci = c - g * cin_g
        co0 = g * cout_g
        for iy in range(H):
            ky0 = max(0, iy + pt - Ho + 1)  # (stride 1) output row iy + pt - ky in [0, Ho)
            ky1 = min(kh, iy + pt + 1)
            xr = x[(c * H + iy) * W:(c * H + iy + 1) * W]
            if listed:
                n = 0
                for ix in range(W):
                    idx[n] = ix
                    n += xr[ix] != 0
                for q in range(n):
                    ix = idx[q]
                    _add_input(acc, ws, xr[ix], ix, ci, co0, iy, ky0, ky1, dims)
            else:
                for ix in range(W):
                    if xr[ix] != 0:
                        _add_input(acc, ws, xr[ix], ix, ci, co0, iy, ky0, ky1, dims)


@njit(cache=True)
def _bias_rows(acc, b, hw, Co):
    for k in range(hw):
        for co in range(Co):
            acc[k * Co + co] = b[co]


@njit(cache=True, inline="always")
def _rq(a, b, m, s, identity, narrow):
    """The output value of accumulator ``a`` (without its bias ``b``): sat32(rsr((a + b)·m, s)),
    or sat32(a + b) when ``identity``."""
    a = np.int64(a) + np.int64(b)
    if identity:
        return sat(a, INT32_MIN, INT32_MAX)
    if narrow:
        # |a| < 2^31 (the builder's proof) and |m| < 2^31: a·m and the rounding term fit in int64
        return sat(rsr(a * m, s), INT32_MIN, INT32_MAX)
    return mulshift_sat32(a, m, s)  # exact for any int64 a


@njit(cache=True)
def _to_channels_int(acc, y, b, rq_m, rq_s, identity, hw, Co):
    """y (Co, hw) = requantised acc (hw, Co) + bias. Four output rows at a time: each
    accumulator row is read once per four channels (a transpose one channel at a time reads
    it Co times, with a stride of Co)."""
    narrow = is_narrow(acc)
    a2 = acc.reshape((hw, Co))
    y2 = y.reshape((Co, hw))
    co = 0
    while co + 4 <= Co:
        d0, d1, d2, d3 = y2[co], y2[co + 1], y2[co + 2], y2[co + 3]
        b0, b1, b2, b3 = b[co], b[co + 1], b[co + 2], b[co + 3]
        m0, m1, m2, m3 = (np.int64(rq_m[co]), np.int64(rq_m[co + 1]), np.int64(rq_m[co + 2]),
                          np.int64(rq_m[co + 3]))
        s0, s1, s2, s3 = (np.int64(rq_s[co]), np.int64(rq_s[co + 1]), np.int64(rq_s[co + 2]),
                          np.int64(rq_s[co + 3]))
        for k in range(hw):
            r = a2[k]
            d0[k] = _rq(r[co], b0, m0, s0, identity, narrow)
            d1[k] = _rq(r[co + 1], b1, m1, s1, identity, narrow)
            d2[k] = _rq(r[co + 2], b2, m2, s2, identity, narrow)
            d3[k] = _rq(r[co + 3], b3, m3, s3, identity, narrow)
        co += 4
    for c in range(co, Co):
        d = y2[c]
        bc, mc, sc = b[c], np.int64(rq_m[c]), np.int64(rq_s[c])
        for k in range(hw):
            d[k] = _rq(a2[k, c], bc, mc, sc, identity, narrow)


@njit(cache=True)
def _to_channels(acc, y, hw, Co):
    """y (Co, hw) = acc (hw, Co), four output rows at a time (see :func:`_to_channels_int`)."""
    a2 = acc.reshape((hw, Co))
    y2 = y.reshape((Co, hw))
    co = 0
    while co + 4 <= Co:
        d0, d1, d2, d3 = y2[co], y2[co + 1], y2[co + 2], y2[co + 3]
        for k in range(hw):
            r = a2[k]
            d0[k] = r[co]
            d1[k] = r[co + 1]
            d2[k] = r[co + 2]
            d3[k] = r[co + 3]
        co += 4
    for c in range(co, Co):
        d = y2[c]
        for k in range(hw):
            d[k] = a2[k, c]


@njit(cache=True)
def conv2d_f32(x, w, b, y, dims, acc):
    """y = conv2d(x, w) + b, flat channel-first buffers; w in :func:`scatter_weights` layout
    (viewed as (Co, C/groups, kh, kw) by the executor: the same memory). ``acc``: float32 scratch
    of at least y.shape[0] values (the executor lends its index list: it compiles without
    Numba's allocator), where the sums run channel-last."""
    Co, hw = dims[3], dims[13] * dims[14]
    acc = acc[:y.shape[0]]
    _bias_rows(acc, b, hw, Co)  # float: the bias is the first term of every sum
    _scatter(x, w, acc, dims, _index_scratch(y, dims[2]))  # y is free until the last pass
    _to_channels(acc, y, hw, Co)


@njit(cache=True)
def conv2d_int(x, w, b, y, dims, acc, rq_m, rq_s, identity):
    """Integer twin: acc = b + conv(x, w) exactly, then per output channel
    y = sat32(rsr(acc·rq_m[co], rq_s[co])) (or sat32(acc) when ``identity``). w as for
    :func:`conv2d_f32`; acc (int32 where the builder proved that |b + any partial sum| < 2^31,
    else int64) is scratch of y.shape[0] values, used channel-last. The bias is added at the
    end (an exact sum does not depend on the order of its terms)."""
    Co, hw = dims[3], dims[13] * dims[14]
    acc[:] = 0
    _scatter(x, w, acc, dims, _index_scratch(y, dims[2]))  # y is free until the last pass
    _to_channels_int(acc, y, b, rq_m, rq_s, identity, hw, Co)


# ---------------------------------------------------------------------- lowering
# How a Conv1d / Conv2d node becomes an instruction (called by edgebrain.program.build with
# its Builder; the row's columns are named in layout.py).


def lower_conv(b, name, op, q, inp, out):
    """One OP_CONV row; a Conv1d is laid out as a Conv2d with H = 1 (weights (Co, C/groups, 1, K)).
    The weights go into the buffer in :func:`scatter_weights` layout (the kernels read nothing else)."""
    ish, osh = b.graph.in_shapes[name], b.graph.out_shapes[name]
    if op.kind == "Conv1d":
        C, H, W = ish[0], 1, ish[1]
        Co, Ho, Wo = osh[0], 1, osh[1]
        kh, kw = 1, op.weight.shape[2]
        sh, sw, dh, dw = 1, op.stride, 1, op.dilation
        pt, pl = 0, op.padding[0]
        wshape = (Co, C // op.groups, 1, kw)
    else:
        C, H, W = ish
        Co, Ho, Wo = osh
        kh, kw = op.weight.shape[2:]
        (sh, sw), (dh, dw) = op.stride, op.dilation
        pt, pl = op.padding[0], op.padding[2]
        wshape = op.weight.shape
    dims = dict(zip(CONV_DIM_NAMES, (C, H, W, Co, kh, kw, sh, sw, pt, pl, dh, dw, op.groups, Ho, Wo)))
    # int: the accumulator row; float: room for out.n float32 in the int64 index scratch, which
    # the executor can hand conv2d_f32 as ``idx.view(np.float32)`` (its accumulators)
    b.need_scratch(acc=out.n, idx=0 if b.is_int else (out.n + 1) // 2)
    if b.is_int:
        w_off = b.wbuf.add(scatter_weights(np.asarray(q["w"]).reshape(wshape)))
        b.emit(name, OP_CONV, inp, out, **dims, w_off=w_off, b_off=b.ipar.add(q["b"]),
               rq_m_off=b.ipar.add(q["rq_m"]), rq_s_off=b.ipar.add(q["rq_s"]), identity=q["identity"],
               wide=b.wide(name, q))
    else:
        b.emit(name, OP_CONV, inp, out, **dims, w_off=b.fpar.add(scatter_weights(op.weight.reshape(wshape))),
               b_off=b.fpar.add(op.bias))


#: op kind -> lowering
LOWERING = {"Conv1d": lower_conv, "Conv2d": lower_conv}
