"""Convolution kernels (Conv2d; Conv1d runs as Conv2d with H = 1), float32 and integer.

PyTorch semantics: zero padding, stride, dilation, groups. Two paths with identical
results: a gather loop over outputs (dense input) and a scatter loop over the nonzero
inputs (event-driven, used when at most ``DENSE_ABOVE`` of the inputs are nonzero). Both
add the terms of one output in the same order (input channel, row, column), so the float
results are bit-identical too.
"""

import numpy as np
from ..jit import njit

from .dense import DENSE_ABOVE
from .fixed import INT32_MAX, INT32_MIN, mulshift_sat32, sat
from .layout import CONV_DIM_NAMES, OP_CONV


@njit(cache=True)
def _conv_core(x, w, acc, dims):
    """acc += conv(x, w); acc must hold the bias already. dims = (C, H, W, Co, kh, kw, sh, sw,
    pt, pl, dh, dw, groups, Ho, Wo)."""
    C, H, W, Co, kh, kw, sh, sw, pt, pl, dh, dw, groups, Ho, Wo = (
        dims[0], dims[1], dims[2], dims[3], dims[4], dims[5], dims[6], dims[7],
        dims[8], dims[9], dims[10], dims[11], dims[12], dims[13], dims[14])
    cin_g = C // groups
    cout_g = Co // groups
    x3 = x.reshape((C, H, W))
    a3 = acc.reshape((Co, Ho, Wo))
    nnz = 0
    for k in range(x.shape[0]):
        if x[k] != 0:
            nnz += 1
    if nnz > DENSE_ABOVE * x.shape[0]:
        # gather: for every output, its receptive field
        for co in range(Co):
            g = co // cout_g
            for oy in range(Ho):
                for ox in range(Wo):
                    s = a3[co, oy, ox]
                    for ci in range(cin_g):
                        c = g * cin_g + ci
                        for ky in range(kh):
                            iy = oy * sh - pt + ky * dh
                            if iy < 0 or iy >= H:
                                continue
                            for kx in range(kw):
                                ix = ox * sw - pl + kx * dw
                                if ix < 0 or ix >= W:
                                    continue
                                v = x3[c, iy, ix]
                                if v != 0:
                                    s += v * w[co, ci, ky, kx]
                    a3[co, oy, ox] = s
    else:
        # scatter: every nonzero input adds its weights to the outputs it reaches
        for c in range(C):
            g = c // cin_g
            ci = c - g * cin_g
            for iy in range(H):
                for ix in range(W):
                    v = x3[c, iy, ix]
                    if v == 0:
                        continue
                    for co in range(g * cout_g, (g + 1) * cout_g):
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
                                a3[co, oy, ox] += v * w[co, ci, ky, kx]


@njit(cache=True)
def conv2d_f32(x, w, b, y, dims):
    """y = conv2d(x, w) + b, flat channel-first buffers."""
    Co, Ho, Wo = dims[3], dims[13], dims[14]
    hw = Ho * Wo
    for co in range(Co):
        for k in range(hw):
            y[co * hw + k] = b[co]
    _conv_core(x, w, y, dims)


@njit(cache=True)
def conv2d_int(x, w, b, y, dims, acc, rq_m, rq_s, identity):
    """Integer twin: acc = b + conv(x, w) exactly, then per output channel
    y = sat32(rsr(acc·rq_m[co], rq_s[co])) (or sat32(acc) when ``identity``)."""
    Co, Ho, Wo = dims[3], dims[13], dims[14]
    hw = Ho * Wo
    for co in range(Co):
        for k in range(hw):
            acc[co * hw + k] = b[co]
    _conv_core(x, w, acc, dims)
    for co in range(Co):
        for k in range(hw):
            a = np.int64(acc[co * hw + k])
            if identity:
                y[co * hw + k] = sat(a, INT32_MIN, INT32_MAX)
            else:
                y[co * hw + k] = mulshift_sat32(a, np.int64(rq_m[co]), rq_s[co])  # exact for any int64 acc


# ---------------------------------------------------------------------- lowering
# How a Conv1d / Conv2d node becomes an instruction (called by edgebrain.program.build with
# its Builder; the row's columns are named in layout.py).


def lower_conv(b, name, op, q, inp, out):
    """One OP_CONV row; a Conv1d is laid out as a Conv2d with H = 1 (weights (Co, C/groups, 1, K))."""
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
    b.need_scratch(acc=out.n)
    if b.is_int:
        w_off = b.wbuf.add(np.asarray(q["w"]).reshape(wshape))
        b.emit(name, OP_CONV, inp, out, **dims, w_off=w_off, b_off=b.ipar.add(q["b"]),
               rq_m_off=b.ipar.add(q["rq_m"]), rq_s_off=b.ipar.add(q["rq_s"]), identity=q["identity"],
               wide=b.wide(name, q))
    else:
        b.emit(name, OP_CONV, inp, out, **dims, w_off=b.fpar.add(op.weight.reshape(wshape)),
               b_off=b.fpar.add(op.bias))


#: op kind -> lowering
LOWERING = {"Conv1d": lower_conv, "Conv2d": lower_conv}
