"""Sum / average pooling (2-D, zero padding), float32 reference and integer twin.

Float: y = factor · Σ_window x (factor = 1 for SumPool2d, 1/(kH·kW) for AvgPool2d).
Integer: y = sat32(rsr(Σ_window x · m, s)), with (m, s) encoding factor·s_in/s_out.
"""

import numpy as np
from ..jit import njit

from .fixed import INT32_MAX, INT32_MIN, mulshift_sat32, sat
from .layout import OP_POOL, POOL_DIM_NAMES


@njit(cache=True)
def _window_sum(x3, c, oy, ox, kh, kw, sh, sw, ph, pw, H, W, zero):
    s = zero
    for ky in range(kh):
        iy = oy * sh - ph + ky
        if iy < 0 or iy >= H:
            continue
        for kx in range(kw):
            ix = ox * sw - pw + kx
            if 0 <= ix < W:
                s += x3[c, iy, ix]
    return s


@njit(cache=True)
def pool2d_f32(x, y, dims, factor):
    """dims = (C, H, W, kh, kw, sh, sw, ph, pw, Ho, Wo)."""
    C, H, W, kh, kw, sh, sw, ph, pw, Ho, Wo = (dims[0], dims[1], dims[2], dims[3], dims[4],
                                               dims[5], dims[6], dims[7], dims[8], dims[9], dims[10])
    x3 = x.reshape((C, H, W))
    y3 = y.reshape((C, Ho, Wo))
    zero = np.float32(0.0)
    for c in range(C):
        for oy in range(Ho):
            for ox in range(Wo):
                s = _window_sum(x3, c, oy, ox, kh, kw, sh, sw, ph, pw, H, W, zero)
                y3[c, oy, ox] = s * factor if factor != 1.0 else s


@njit(cache=True)
def pool2d_int(x, y, dims, m, s):
    C, H, W, kh, kw, sh, sw, ph, pw, Ho, Wo = (dims[0], dims[1], dims[2], dims[3], dims[4],
                                               dims[5], dims[6], dims[7], dims[8], dims[9], dims[10])
    x3 = x.reshape((C, H, W))
    y3 = y.reshape((C, Ho, Wo))
    zero = np.int64(0)
    identity = m == 1 and s == 0
    for c in range(C):
        for oy in range(Ho):
            for ox in range(Wo):
                a = _window_sum(x3, c, oy, ox, kh, kw, sh, sw, ph, pw, H, W, zero)
                if identity:
                    y3[c, oy, ox] = sat(a, INT32_MIN, INT32_MAX)
                else:
                    y3[c, oy, ox] = mulshift_sat32(a, np.int64(m), s)  # the window sum can exceed 2^31


# ---------------------------------------------------------------------- lowering
# How a SumPool2d / AvgPool2d node becomes an instruction (called by edgebrain.program.build
# with its Builder; the row's columns are named in layout.py).


def lower_pool(b, name, op, q, inp, out):
    """One OP_POOL row: the float factor (1/(kH·kW) for AvgPool2d) or the integer (m, s)."""
    (C, H, W), (_, Ho, Wo) = b.graph.in_shapes[name], b.graph.out_shapes[name]
    dims = dict(zip(POOL_DIM_NAMES, (C, H, W, *op.kernel_size, *op.stride, *op.padding, Ho, Wo)))
    if b.is_int:
        b.emit(name, OP_POOL, inp, out, **dims, factor_off=0, m=q["m"], s=q["s"])
    else:
        b.emit(name, OP_POOL, inp, out, **dims, factor_off=b.fpar.add([op.factor()]))


#: op kind -> lowering (AvgPool2d, a subclass of SumPool2d, uses SumPool2d's)
LOWERING = {"SumPool2d": lower_pool}
