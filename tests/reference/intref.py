"""Pure-Python integer reference of docs/fixed-point.md.

Written from the document, not from the Numba kernels: every value is a Python ``int``
(unbounded, so every intermediate result is exact) and every loop is the plainest one that
states the definition. Arrays come in as anything iterable (lists, NumPy arrays) and go
out as lists of ints (nested lists for multi-dimensional outputs).

The only floating-point code is the input quantisation, which the contract defines in
float32 (``x·inv + 0.5`` rounded to float32, then floor); it uses NumPy float32 scalars,
whose ``*`` and ``+`` are correctly rounded IEEE single-precision operations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

INT32_MIN = -(2 ** 31)
INT32_MAX = 2 ** 31 - 1
INT16_MIN = -(2 ** 15)
INT16_MAX = 2 ** 15 - 1


# ---------------------------------------------------------------- primitives


def rsr(p, s) -> int:
    """Rounding shift right: p if s <= 0, else (p + 2^(s-1)) >> s (>> floors)."""
    p, s = int(p), int(s)
    if s <= 0:
        return p
    return (p + (1 << (s - 1))) >> s


def sat(x, lo, hi) -> int:
    x, lo, hi = int(x), int(lo), int(hi)
    return lo if x < lo else hi if x > hi else x


def sat32(x) -> int:
    return sat(x, INT32_MIN, INT32_MAX)


def mulshift(x, m, s) -> int:
    """Multiplication by the real number m / 2^s, rounded as rsr."""
    return rsr(int(x) * int(m), s)


def state_range(bits: int) -> tuple[int, int]:
    """[lo, hi] of the neuron state for int16 (bits=16) or int32 (bits=32) state."""
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


def requant(acc, m, s, identity) -> int:
    """y = sat32(acc) for the identity requantisation, else sat32(rsr(acc·m, s))."""
    return sat32(acc) if identity else sat32(mulshift(acc, m, s))


def add_sat(dst, src) -> list[int]:
    """Saturating int32 sum of two node outputs (one edge added to the running sum)."""
    return [sat32(int(a) + int(b)) for a, b in zip(dst, src)]


# ---------------------------------------------------------------- input


def quantize_input(x, inv, lo, hi) -> tuple[int, bool]:
    """q = sat(floor(x·inv + 0.5), lo, hi) with x·inv + 0.5 evaluated in float32.
    Returns (q, clamped). NaN / infinity are the caller's business (rejected before)."""
    x32, inv32 = np.float32(x), np.float32(inv)
    if not (math.isfinite(float(x32))):
        raise ValueError("non-finite input is rejected before quantisation")
    with np.errstate(over="ignore"):
        t = np.float32(np.float32(x32 * inv32) + np.float32(0.5))
    t = float(t)
    if t == math.inf:
        return int(hi), True
    if t == -math.inf:
        return int(lo), True
    q = math.floor(t)
    return sat(q, lo, hi), (q < lo or q > hi)


# ---------------------------------------------------------------- dense


def dense_acc(x, W, b=None) -> list[int]:
    """acc[c] = b[c] + Σ_j x[j]·W[c][j], exact. W is indexed [output][input] (as the doc)."""
    x = [int(v) for v in x]
    out = []
    for c, row in enumerate(W):
        a = int(b[c]) if b is not None and len(b) else 0
        for j, xj in enumerate(x):
            a += xj * int(row[j])
        out.append(a)
    return out


def dense(x, W, b, m, s, identity) -> list[int]:
    acc = dense_acc(x, W, b)
    return [requant(a, m[c], s[c], identity) for c, a in enumerate(acc)]


# ---------------------------------------------------------------- conv


def conv2d_acc(x, C, H, W, w, b, Co, kh, kw, stride, padding, dilation, groups, out_size):
    """PyTorch Conv2d (zero padding, stride, dilation, groups), exact. x flat (C, H, W)
    channel-first; w[co][ci][ky][kx] with ci < C/groups; padding = (top, left): the bottom /
    right padding is implied by out_size = (Ho, Wo). Returns the flat (Co, Ho, Wo) sums."""
    sh, sw = stride
    pt, pl = padding
    dh, dw = dilation
    Ho, Wo = out_size
    cin_g, cout_g = C // groups, Co // groups

    def xat(c, iy, ix):
        if 0 <= iy < H and 0 <= ix < W:
            return int(x[(c * H + iy) * W + ix])
        return 0

    out = []
    for co in range(Co):
        g = co // cout_g
        for oy in range(Ho):
            for ox in range(Wo):
                a = int(b[co]) if b is not None and len(b) else 0
                for ci in range(cin_g):
                    for ky in range(kh):
                        for kx in range(kw):
                            a += xat(g * cin_g + ci, oy * sh - pt + ky * dh, ox * sw - pl + kx * dw) * int(
                                w[co][ci][ky][kx])
                out.append(a)
    return out


def conv2d(x, C, H, W, w, b, Co, kh, kw, stride, padding, dilation, groups, out_size, m, s, identity):
    acc = conv2d_acc(x, C, H, W, w, b, Co, kh, kw, stride, padding, dilation, groups, out_size)
    hw = out_size[0] * out_size[1]
    return [requant(a, m[k // hw], s[k // hw], identity) for k, a in enumerate(acc)]


# ---------------------------------------------------------------- pooling


def pool2d_sum(x, C, H, W, kernel, stride, padding, out_size, m=1, s=0) -> list[int]:
    """SumPool2d / AvgPool2d: y = sat32(rsr(Σ_window x · m, s)); padding contributes zeros."""
    kh, kw = kernel
    sh, sw = stride
    ph, pw = padding
    Ho, Wo = out_size
    out = []
    for c in range(C):
        for oy in range(Ho):
            for ox in range(Wo):
                a = 0
                for ky in range(kh):
                    for kx in range(kw):
                        iy, ix = oy * sh - ph + ky, ox * sw - pw + kx
                        if 0 <= iy < H and 0 <= ix < W:
                            a += int(x[(c * H + iy) * W + ix])
                out.append(sat32(rsr(a * int(m), s)))
    return out


# ---------------------------------------------------------------- element-wise


def scale(x, m, s) -> list[int]:
    return [sat32(mulshift(xj, mj, sj)) for xj, mj, sj in zip(x, m, s)]


def threshold(x, thq) -> list[int]:
    return [1 if int(xj) > int(tj) else 0 for xj, tj in zip(x, thq)]


def threshold_q(theta, s_x) -> int:
    """θq = floor(θ / s_x), computed exactly (θ and s_x are the floats' exact values)."""
    return math.floor(Fraction(theta) / Fraction(s_x))


class DelayLine:
    """y[t] = x[t − d] per element, 0 before the first d steps; values pass unchanged."""

    def __init__(self, steps):
        self.steps = [int(d) for d in steps]
        self.history: list[list[int]] = []

    def step(self, x) -> list[int]:
        self.history.append([int(v) for v in x])
        t = len(self.history) - 1
        return [self.history[t - d][k] if t - d >= 0 else 0 for k, d in enumerate(self.steps)]


# ---------------------------------------------------------------- neurons


@dataclass
class NeuronConfig:
    """The flags and per-node integers of one neuron instruction (names as in the doc)."""

    cuba: bool = False
    spiking: bool = True
    subtract: bool = True          # subtractive reset (else reset to v_reset)
    reset_delay: bool = False
    current_lag: bool = False
    threshold_ge: bool = False
    multispike: bool = False
    max_spikes: int = 1
    shift_decay: bool = False      # decay(z, k) = z − rsr(z, k) instead of rsr(z·m, dq)
    gsyn_identity: bool = False
    gmem_identity: bool = False
    dq: int = 15
    state_bits: int = 16


PARAMS = ("alpha_m", "gsyn_m", "gsyn_s", "beta_m", "gmem_m", "gmem_s", "bias", "thr", "v_reset")


def _decay(z, m, cfg: NeuronConfig) -> int:
    if cfg.shift_decay:
        return z - rsr(z, m)
    return rsr(z * int(m), cfg.dq)


def neuron_step(cfg: NeuronConfig, x, v, i, out_prev, p: dict):
    """One step of a neuron population, exactly as docs/fixed-point.md writes it.

    x: summed int32 input; v, i: state (i ignored unless cfg.cuba); out_prev: the output
    buffer as it was before the step (previous spikes); p: per-neuron integer parameters
    (keys PARAMS). Returns (v, i, out, nsat) with new lists and the number of clamps of
    v or i.
    """
    lo, hi = state_range(cfg.state_bits)
    n = len(v)
    v_new, i_new, out = [0] * n, [0] * n, [0] * n
    nsat = 0

    def clamp(val):
        nonlocal nsat
        if val < lo or val > hi:
            nsat += 1
        return sat(val, lo, hi)

    for k in range(n):
        xk = int(x[k])
        if cfg.cuba:
            ik = int(i[k])
            drive_in = xk if cfg.gsyn_identity else mulshift(xk, p["gsyn_m"][k], p["gsyn_s"][k])
            i_acc = _decay(ik, p["alpha_m"][k], cfg) + drive_in
            inew = clamp(i_acc)
            d = ik if cfg.current_lag else inew
            i_new[k] = inew
        else:
            d = xk
        drive = d if cfg.gmem_identity else mulshift(d, p["gmem_m"][k], p["gmem_s"][k])
        acc = _decay(int(v[k]), p["beta_m"][k], cfg) + drive + int(p["bias"][k])
        thr = int(p["thr"][k]) if cfg.spiking else 0
        if cfg.spiking and cfg.reset_delay:
            acc = acc - int(out_prev[k]) * thr
        vk = clamp(acc)
        if not cfg.spiking:
            v_new[k] = vk
            out[k] = vk
            continue
        fires = vk >= thr if cfg.threshold_ge else vk > thr
        s = 0
        if fires:
            if cfg.multispike:
                s = min(max(vk // thr, 1), int(cfg.max_spikes))
            else:
                s = 1
            if not cfg.reset_delay:
                if cfg.subtract:
                    vk = clamp(vk - s * thr)
                else:
                    vk = int(p["v_reset"][k])
        v_new[k] = vk
        out[k] = s
    return v_new, (i_new if cfg.cuba else [int(a) for a in i]), out, nsat
