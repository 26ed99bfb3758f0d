"""Sum / average pooling (2-D, zero padding), float32 reference and integer twin.

Float: y = factor · Σ_window x (factor = 1 for SumPool2d, 1/(kH·kW) for AvgPool2d), the window
summed from 0 in (row, column) order.
Integer: y = sat32(rsr(Σ_window x · m, s)), with (m, s) encoding factor·s_in/s_out.

2×2 windows with stride 2 and no padding (the usual case) have a loop of their own over two
row slices (about 3× faster than the checked loop on N-MNIST's 12×30×30 maps). Other windows
that all lie inside the input run without bounds checks, with unsigned indices (a signed
index's wrap-around check costs more than the addition); windows that can reach the padding
take the checked loop. All three add the same terms in the same order, so the float results
are bit-identical.
"""

import numpy as np

from ..jit import njit
from .fixed import INT32_MAX, INT32_MIN, mulshift_sat32, sat
from .layout import OP_POOL, POOL_DIM_NAMES


@njit(cache=True, inline="always")
def _u(i):
    return np.uint64(i)


@njit(cache=True, inline="always")
def _window_sum(x, c, oy, ox, kh, kw, sh, sw, ph, pw, H, W, zero):
    s = zero
    for ky in range(kh):
        iy = oy * sh - ph + ky
        if iy < 0 or iy >= H:
            continue
        for kx in range(kw):
            ix = ox * sw - pw + kx
            if 0 <= ix < W:
                s += x[_u((c * H + iy) * W + ix)]
    return s


@njit(cache=True, inline="always")
def _inside_sum(x, r0, kh, kw, W, zero):
    """Σ x over the window whose top-left input is x[r0] (kh rows of kw, row length W)."""
    s = zero
    for ky in range(kh):
        r = _u(r0 + ky * W)
        for kx in range(kw):
            s += x[r + _u(kx)]
    return s


@njit(cache=True, inline="always")
def _inside(dims):
    """Whether every window lies inside the input (no padding reached)."""
    H, W, kh, kw, sh, sw, ph, pw, Ho, Wo = (dims[1], dims[2], dims[3], dims[4], dims[5], dims[6], dims[7],
                                            dims[8], dims[9], dims[10])
    return ph == 0 and pw == 0 and (Ho - 1) * sh + kh <= H and (Wo - 1) * sw + kw <= W


@njit(cache=True)
def pool2d_f32(x, y, dims, factor):
    """dims = (C, H, W, kh, kw, sh, sw, ph, pw, Ho, Wo)."""
    C, H, W, kh, kw, sh, sw, ph, pw, Ho, Wo = (dims[0], dims[1], dims[2], dims[3], dims[4],
                                               dims[5], dims[6], dims[7], dims[8], dims[9], dims[10])
    zero = np.float32(0.0)
    scale = factor != 1.0
    if _inside(dims) and kh == 2 and kw == 2 and sh == 2 and sw == 2:
        for c in range(C):
            for oy in range(Ho):
                r = (c * H + 2 * oy) * W
                r0 = x[r:r + W]
                r1 = x[r + W:r + 2 * W]
                yr = y[(c * Ho + oy) * Wo:(c * Ho + oy + 1) * Wo]
                for ox in range(Wo):
                    s = zero + r0[2 * ox]  # from 0, as the general loop (0 + -0.0 is +0.0)
                    s += r0[2 * ox + 1]
                    s += r1[2 * ox]
                    s += r1[2 * ox + 1]
                    yr[ox] = s * factor if scale else s
        return
    if _inside(dims):
        for c in range(C):
            for oy in range(Ho):
                o = (c * Ho + oy) * Wo
                r = (c * H + oy * sh) * W
                for ox in range(Wo):
                    s = _inside_sum(x, r + ox * sw, kh, kw, W, zero)
                    y[_u(o + ox)] = s * factor if scale else s
        return
    for c in range(C):
        for oy in range(Ho):
            for ox in range(Wo):
                s = _window_sum(x, c, oy, ox, kh, kw, sh, sw, ph, pw, H, W, zero)
                y[(c * Ho + oy) * Wo + ox] = s * factor if scale else s


@njit(cache=True)
def pool2d_int(x, y, dims, m, s):
    C, H, W, kh, kw, sh, sw, ph, pw, Ho, Wo = (dims[0], dims[1], dims[2], dims[3], dims[4],
                                               dims[5], dims[6], dims[7], dims[8], dims[9], dims[10])
    zero = np.int64(0)
    m = np.int64(m)
    identity = m == 1 and s == 0
    if _inside(dims) and kh == 2 and kw == 2 and sh == 2 and sw == 2:
        for c in range(C):
            for oy in range(Ho):
                r = (c * H + 2 * oy) * W
                r0 = x[r:r + W]
                r1 = x[r + W:r + 2 * W]
                yr = y[(c * Ho + oy) * Wo:(c * Ho + oy + 1) * Wo]
                for ox in range(Wo):
                    a = np.int64(r0[2 * ox]) + np.int64(r0[2 * ox + 1]) + np.int64(r1[2 * ox]) + np.int64(r1[2 * ox + 1])
                    if identity:
                        yr[ox] = sat(a, INT32_MIN, INT32_MAX)
                    else:
                        yr[ox] = mulshift_sat32(a, m, s)
        return
    if _inside(dims):
        for c in range(C):
            for oy in range(Ho):
                o = (c * Ho + oy) * Wo
                r = (c * H + oy * sh) * W
                for ox in range(Wo):
                    a = _inside_sum(x, r + ox * sw, kh, kw, W, zero)
                    if identity:
                        y[_u(o + ox)] = sat(a, INT32_MIN, INT32_MAX)
                    else:
                        y[_u(o + ox)] = mulshift_sat32(a, m, s)  # the window sum can exceed 2^31
        return
    for c in range(C):
        for oy in range(Ho):
            for ox in range(Wo):
                a = _window_sum(x, c, oy, ox, kh, kw, sh, sw, ph, pw, H, W, zero)
                if identity:
                    y[(c * Ho + oy) * Wo + ox] = sat(a, INT32_MIN, INT32_MAX)
                else:
                    y[(c * Ho + oy) * Wo + ox] = mulshift_sat32(a, m, s)


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
