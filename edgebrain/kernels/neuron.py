"""Neuron population kernels (LI, LIF, CubaLI, CubaLIF, I, IF), float32 and integer.

One function per precision covers every neuron kind; the kind's equation (see
:class:`edgebrain.ops.Neuron`) is selected by flag bits. ``out`` is the node's output
buffer: spikes (or spike counts) for spiking kinds, the membrane for the others. For the
delayed subtractive reset it still holds the previous step's spikes when the kernel starts.
"""

import numpy as np
from numba import njit

from .fixed import mulshift, rsr, sat

CUBA = 1
SPIKING = 2
SUBTRACT = 4
RESET_DELAY = 8
CURRENT_LAG = 16
THRESHOLD_GE = 32
MULTISPIKE = 64
SHIFT_DECAY = 128  # integer only: decay by v - rsr(v, k) instead of rsr(v*m, dq)
GSYN_IDENTITY = 256  # integer only: input gain of the current is exactly 1
GMEM_IDENTITY = 512  # integer only: gain from drive to membrane is exactly 1


def flags_for(op) -> int:
    """Flag bits for a :class:`edgebrain.ops.Neuron` op."""
    f = 0
    if op.cuba:
        f |= CUBA
    if op.spiking:
        f |= SPIKING
        if op.reset == "subtract":
            f |= SUBTRACT
            if op.reset_delay:
                f |= RESET_DELAY
        if op.threshold_ge:
            f |= THRESHOLD_GE
        if op.multispike:
            f |= MULTISPIKE
    if op.cuba and op.current_lag:
        f |= CURRENT_LAG
    return f


@njit(cache=True)
def neuron_f32(x, v, i, out, alpha, g_syn, beta, g_mem, bias, thr, v_reset, flags, max_spikes):
    n = v.shape[0]
    cuba = flags & CUBA
    spiking = flags & SPIKING
    subtract = flags & SUBTRACT
    delayed = flags & RESET_DELAY
    lag = flags & CURRENT_LAG
    ge = flags & THRESHOLD_GE
    multi = flags & MULTISPIKE
    for k in range(n):
        if cuba:
            i_new = alpha[k] * i[k] + g_syn[k] * x[k]
            d = i[k] if lag else i_new
            i[k] = i_new
        else:
            d = x[k]
        vk = beta[k] * v[k] + g_mem[k] * d + bias[k]
        if not spiking:
            v[k] = vk
            out[k] = vk
            continue
        th = thr[k]
        if delayed:
            vk = vk - out[k] * th
        fire = vk >= th if ge else vk > th
        s = np.float32(0.0)
        if fire:
            if multi:
                s = np.floor(vk / th)
                if s < 1:
                    s = np.float32(1.0)
                if s > max_spikes:
                    s = np.float32(max_spikes)
            else:
                s = np.float32(1.0)
            if not delayed:
                if subtract:
                    vk = vk - s * th
                else:
                    vk = v_reset[k]
        v[k] = vk
        out[k] = s


@njit(cache=True)
def neuron_int(x, v, i, out, alpha_m, gsyn_m, gsyn_s, beta_m, gmem_m, gmem_s, bias, thr, v_reset,
               flags, max_spikes, dq, lo, hi):
    """Integer twin. State v, i saturate to [lo, hi]; all arithmetic in int64 (exact).
    Returns how many values had to be saturated.

    decay(z, m) = rsr(z·m, dq), or z − rsr(z, m) with SHIFT_DECAY (m is then the shift k).
    """
    n = v.shape[0]
    cuba = flags & CUBA
    spiking = flags & SPIKING
    subtract = flags & SUBTRACT
    delayed = flags & RESET_DELAY
    lag = flags & CURRENT_LAG
    ge = flags & THRESHOLD_GE
    multi = flags & MULTISPIKE
    shift = flags & SHIFT_DECAY
    gsyn_id = flags & GSYN_IDENTITY
    gmem_id = flags & GMEM_IDENTITY
    nsat = 0
    for k in range(n):
        xk = np.int64(x[k])
        if cuba:
            ik = np.int64(i[k])
            if shift:
                idec = ik - rsr(ik, np.int64(alpha_m[k]))
            else:
                idec = rsr(ik * alpha_m[k], dq)
            drive_in = xk if gsyn_id else mulshift(xk, np.int64(gsyn_m[k]), gsyn_s[k])
            i_acc = idec + drive_in
            if i_acc < lo or i_acc > hi:
                nsat += 1
            i_new = sat(i_acc, lo, hi)
            d = ik if lag else i_new
            i[k] = i_new
        else:
            d = xk
        vk = np.int64(v[k])
        if shift:
            vdec = vk - rsr(vk, np.int64(beta_m[k]))
        else:
            vdec = rsr(vk * beta_m[k], dq)
        acc = vdec + (d if gmem_id else mulshift(d, np.int64(gmem_m[k]), gmem_s[k])) + bias[k]
        if acc < lo or acc > hi:
            nsat += 1
        if not spiking:
            vk = sat(acc, lo, hi)
            v[k] = vk
            out[k] = vk
            continue
        th = np.int64(thr[k])
        if delayed:
            acc -= np.int64(out[k]) * th
        vk = sat(acc, lo, hi)
        fire = vk >= th if ge else vk > th
        s = np.int64(0)
        if fire:
            if multi:
                s = vk // th
                if s < 1:
                    s = 1
                if s > max_spikes:
                    s = max_spikes
            else:
                s = 1
            if not delayed:
                if subtract:
                    vk = sat(vk - s * th, lo, hi)
                else:
                    vk = np.int64(v_reset[k])
        v[k] = vk
        out[k] = s
    return nsat
