"""Float64 NumPy reference of the float equations (the docstrings of edgebrain.ops, in
particular ops.Neuron), used to check the float32 kernels and as the "real" value in the
float-vs-integer twin checks. No rounding, no saturation."""

from __future__ import annotations

import numpy as np


def f64(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float64)


def dense(x, W, b=None) -> np.ndarray:
    """y = W·x + b; W is (n_out, n_in)."""
    y = f64(W) @ f64(x)
    return y + f64(b) if b is not None and len(b) else y


def conv2d(x, C, H, W, w, b, stride, padding, dilation, groups, out_size) -> np.ndarray:
    """PyTorch Conv2d on a flat (C, H, W) input with top/left padding and the output size
    (Ho, Wo) implying bottom/right padding. Returns the flat (Co, Ho, Wo) output."""
    w = f64(w)
    Co, cin_g, kh, kw = w.shape
    sh, sw = stride
    pt, pl = padding
    dh, dw = dilation
    Ho, Wo = out_size
    cout_g = Co // groups
    # zero-pad generously so that every tap of every output is inside the array
    need_h = (Ho - 1) * sh + (kh - 1) * dh + 1
    need_w = (Wo - 1) * sw + (kw - 1) * dw + 1
    xp = np.zeros((C, max(need_h, pt + H), max(need_w, pl + W)))
    xp[:, pt:pt + H, pl:pl + W] = f64(x).reshape(C, H, W)
    y = np.zeros((Co, Ho, Wo))
    for co in range(Co):
        g = co // cout_g
        for ci in range(cin_g):
            for ky in range(kh):
                for kx in range(kw):
                    patch = xp[g * cin_g + ci, ky * dh:ky * dh + (Ho - 1) * sh + 1:sh,
                               kx * dw:kx * dw + (Wo - 1) * sw + 1:sw]
                    y[co] += w[co, ci, ky, kx] * patch
        y[co] += f64(b)[co] if b is not None and len(b) else 0.0
    return y.reshape(-1)


def pool2d(x, C, H, W, kernel, stride, padding, out_size, factor=1.0) -> np.ndarray:
    """SumPool2d (factor 1) / AvgPool2d (factor 1/(kh·kw)): y = factor·Σ_window x."""
    kh, kw = kernel
    sh, sw = stride
    ph, pw = padding
    Ho, Wo = out_size
    xp = np.zeros((C, max((Ho - 1) * sh + kh, ph + H), max((Wo - 1) * sw + kw, pw + W)))
    xp[:, ph:ph + H, pw:pw + W] = f64(x).reshape(C, H, W)
    y = np.zeros((C, Ho, Wo))
    for ky in range(kh):
        for kx in range(kw):
            y += xp[:, ky:ky + (Ho - 1) * sh + 1:sh, kx:kx + (Wo - 1) * sw + 1:sw]
    return (y * factor).reshape(-1)


def scale(x, s) -> np.ndarray:
    return f64(x) * f64(s)


def threshold(x, th) -> np.ndarray:
    return (f64(x) > f64(th)).astype(np.float64)


def neuron_step(x, v, i, out_prev, alpha, g_syn, beta, g_mem, bias, thr, v_reset, *, cuba=False,
                spiking=True, subtract=True, reset_delay=False, current_lag=False, threshold_ge=False,
                multispike=False, max_spikes=1):
    """One step of ops.Neuron in float64. Returns (v, i, out, d, v_pre) as new arrays: d is
    the drive the membrane received, v_pre the membrane compared with the threshold (after
    the delayed reset, before the reset of this step); both are for error bounds.

        i' = alpha·i + g_syn·x;   d = i if current_lag else i'   (Cuba kinds; else d = x)
        v  = beta·v + g_mem·d + bias
        v -= thr·s[t−1]                                         (reset_delay)
        s  = v > thr (>= if threshold_ge); multispike: clamp(floor(v/thr), 1, max_spikes)
        reset unless delayed: zero → v_reset, subtract → v − s·thr
    """
    x, v, out_prev = f64(x), f64(v), f64(out_prev)
    if cuba:
        i = f64(i)
        i_new = f64(alpha) * i + f64(g_syn) * x
        d = i if current_lag else i_new
    else:
        i_new = f64(i).copy()
        d = x
    vn = f64(beta) * v + f64(g_mem) * d + f64(bias)
    if not spiking:
        return vn, i_new, vn.copy(), d, vn.copy()
    thr = f64(thr)
    if reset_delay:
        vn = vn - out_prev * thr
    v_pre = vn.copy()
    fire = vn >= thr if threshold_ge else vn > thr
    if multispike:
        with np.errstate(divide="ignore", invalid="ignore"):
            s = np.clip(np.floor(vn / thr), 1, max_spikes)
    else:
        s = np.ones_like(vn)
    s = np.where(fire, s, 0.0)
    if not reset_delay:
        if subtract:
            vn = vn - s * thr
        else:
            vn = np.where(fire, f64(v_reset), vn)
    return vn, i_new, s, d, v_pre
