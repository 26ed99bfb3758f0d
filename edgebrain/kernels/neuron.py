"""Neuron population kernels (LI, LIF, CubaLI, CubaLIF, I, IF), float32 and integer.

One function per precision covers every neuron kind; the kind's equation (see
:class:`edgebrain.ops.Neuron`) is selected by flag bits. ``out`` is the node's output
buffer: spikes (or spike counts) for spiking kinds, the membrane for the others. For the
delayed subtractive reset it still holds the previous step's spikes when the kernel starts.
"""

import numpy as np
from ..jit import njit

from .fixed import add32, ashr32, clamp32, i32, mul32, mulshift, rsr, sat, shl32, sub32
from .layout import OP_NEURON

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
NARROW = 1024  # integer only: narrow_ok holds, so the fast path computes in int32 (same results)
SIMPLE = 2048  # integer only: not NARROW, but no current, one spike, reset not delayed (neuron_int_simple)

#: the narrow path clamps its input to ±X_CLAMP: beyond it the membrane saturates alike
X_CLAMP = 1 << 30


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


@njit(cache=True, inline="always")
def _simple_f32(x, v, out, beta, g_mem, bias, thr, v_reset, subtract, ge, spiking):
    """neuron_f32 for the common kinds (no current, single spike, reset not delayed), written
    without data-dependent branches so that it vectorizes: the same operations in the same
    order, so the same float32 results. ``spiking`` is a compile-time constant at each call."""
    for k in range(v.shape[0]):
        vk = beta[k] * v[k] + g_mem[k] * x[k] + bias[k]
        if spiking:
            th = thr[k]
            fire = (vk >= th) if ge else (vk > th)
            vr = vk - np.float32(1.0) * th if subtract else v_reset[k]
            v[k] = vr if fire else vk
            out[k] = np.float32(1.0) if fire else np.float32(0.0)
        else:
            v[k] = vk
            out[k] = vk


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
    if not (cuba or delayed or multi):  # fast path: LIF, LI, IF, I
        if spiking:
            _simple_f32(x, v, out, beta, g_mem, bias, thr, v_reset, subtract != 0, ge != 0, True)
        else:
            _simple_f32(x, v, out, beta, g_mem, bias, thr, v_reset, subtract != 0, ge != 0, False)
        return
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


@njit(cache=True, inline="always")
def _simple_int(x, v, out, beta_m, gmem_m, gmem_s, bias, thr, v_reset, spiking, subtract, ge, dq, lo, hi,
                shift, gmem_id):
    """neuron_int for the common kinds (no current, single spike, reset not delayed), written
    without data-dependent branches so that it vectorizes; exactly the same integer results
    and saturation count. ``shift`` is a compile-time constant at each call."""
    nsat = 0
    gei = np.int64(1) if ge else np.int64(0)  # v >= th  <=>  v > th - 1 for integers
    for k in range(v.shape[0]):
        xk = np.int64(x[k])
        vk = np.int64(v[k])
        if shift:
            vdec = vk - rsr(vk, np.int64(beta_m[k]))
        else:
            vdec = rsr(vk * beta_m[k], dq)
        # both computed, one selected (no branch; mulshift is exact for any parameters)
        ms = mulshift(xk, np.int64(gmem_m[k]), gmem_s[k])
        drive = xk if gmem_id else ms
        acc = vdec + drive + bias[k]
        nsat += (acc < lo) | (acc > hi)
        vs = min(max(acc, lo), hi)
        if spiking:
            th = np.int64(thr[k])
            fire = vs > th - gei
            if subtract:
                r = vs - th
                nsat += fire & ((r < lo) | (r > hi))  # as the general loop: a clamp after the reset counts
                vr = min(max(r, lo), hi)
            else:
                vr = np.int64(v_reset[k])
            v[k] = vr if fire else vs
            out[k] = 1 if fire else 0
        else:
            v[k] = vs
            out[k] = vs
    return nsat


def narrow_ok(flags: int, lo: int, hi: int, beta_m, bias, thr, v_reset, dq: int) -> bool:
    """Whether ``_simple_int32`` computes exactly what ``neuron_int`` does for these parameters
    (int64 there, int32 here): no current, one spike per step (the reset immediate or delayed, as
    snnTorch's), the gain to the membrane exactly 1, a state of at most 16 bits, and parameters
    small enough that no intermediate value leaves int32. The input
    drive is clamped to ±X_CLAMP first: a larger drive saturates the membrane (and is counted)
    the same way, because the decayed membrane and the bias together stay below X_CLAMP − 2^15.
    The delayed reset subtracts the previous output times the threshold: that output is the one
    this kernel wrote, 0 or 1 (a state restored from the same model's snapshot keeps that true).
    """
    if flags & (CUBA | MULTISPIKE) or not flags & GMEM_IDENTITY:
        return False
    if lo < -(1 << 15) or hi > (1 << 15) - 1:
        return False
    beta = np.asarray(beta_m, np.int64)
    if flags & SHIFT_DECAY:  # v − rsr(v, k): 2^(k−1) must fit, and |result| <= 2^16
        if beta.size and (beta.min() < 0 or beta.max() > 30):
            return False
        vdec = 1 << 16
    else:  # rsr(v·β, dq): the product and its rounding term must fit
        if not 0 <= dq <= 30:
            return False
        prod = (1 << 15) * int(np.abs(beta).max(initial=0)) + ((1 << dq) >> 1)
        if prod >= 1 << 31:
            return False
        vdec = (prod >> dq) + 1
    big = max((int(np.abs(np.asarray(a, np.int64)).max(initial=0)) for a in (bias, thr, v_reset)), default=0)
    return vdec + 2 * big < X_CLAMP - (1 << 15)  # bias, and the delayed reset's threshold


@njit(cache=True, inline="always")
def _simple_int32(x, v, out, beta_m, bias, thr, v_reset, spiking, subtract, delayed, ge, dq, lo, hi, shift):
    """_simple_int in int32 arithmetic (see :func:`narrow_ok`, which the builder checked): twice
    the vector width, and the operations AVX2 and NEON have for 32-bit lanes. ``shift`` is a
    compile-time constant at each call; the other kinds arrive at run time and only select
    between values computed either way, which the loop's vectorization survives."""
    nsat = i32(0)
    lo32, hi32 = i32(lo), i32(hi)
    gei = i32(1) if ge else i32(0)  # v >= th  <=>  v > th - 1 for integers
    dq32 = i32(dq)
    half = ashr32(shl32(1, dq32), 1)
    for k in range(v.shape[0]):
        xk = clamp32(i32(x[k]), i32(-X_CLAMP), i32(X_CLAMP))
        vk = i32(v[k])
        if shift:
            s = i32(beta_m[k])
            vdec = sub32(vk, ashr32(add32(vk, ashr32(shl32(1, s), 1)), s))
        else:
            vdec = ashr32(add32(mul32(vk, beta_m[k]), half), dq32)
        th = i32(thr[k])
        # loaded on every path: a load under a branch keeps the loop scalar where there are
        # no masked loads (NEON, AVX2); the flags arrive at run time
        prev, vres = out[k], i32(v_reset[k])
        acc = add32(add32(vdec, xk), bias[k])
        if delayed:  # the previous step's spike (0 or 1, in out) is subtracted now
            acc = sub32(acc, mul32(prev, th))
        nsat = add32(nsat, (acc < lo32) | (acc > hi32))
        vs = clamp32(acc, lo32, hi32)
        fire = (vs > sub32(th, gei)) & spiking
        now = fire & (not delayed)  # a reset applied at this step
        r = sub32(vs, th)
        nsat = add32(nsat, now & subtract & ((r < lo32) | (r > hi32)))
        vr = clamp32(r, lo32, hi32) if subtract else vres
        v[k] = vr if now else vs
        out[k] = i32(fire) if spiking else vs
    return nsat


@njit(cache=True)
def neuron_int32(x, v, out, beta_m, bias, thr, v_reset, flags, dq, lo, hi):
    """The NARROW fast path. A function of its own: compiled inside neuron_int, whose kind is
    known only at run time, the same loop ran 3-4× slower (measured in tools/bench)."""
    sp, sb, ge = (flags & SPIKING) != 0, (flags & SUBTRACT) != 0, (flags & THRESHOLD_GE) != 0
    dl = sp and (flags & RESET_DELAY) != 0  # as neuron_int: a delayed reset needs spikes
    if flags & SHIFT_DECAY:
        return _simple_int32(x, v, out, beta_m, bias, thr, v_reset, sp, sb, dl, ge, dq, lo, hi, True)
    return _simple_int32(x, v, out, beta_m, bias, thr, v_reset, sp, sb, dl, ge, dq, lo, hi, False)


@njit(cache=True)
def neuron_int_simple(x, v, out, beta_m, gmem_m, gmem_s, bias, thr, v_reset, flags, dq, lo, hi):
    """neuron_int's fast path in int64 (LIF, LI, IF, I; int32 state, or parameters narrow_ok
    refuses). A function of its own for the reason neuron_int32 is one; the executor calls it
    for rows flagged SIMPLE."""
    sp, sb, g, gid = (flags & SPIKING) != 0, (flags & SUBTRACT) != 0, (flags & THRESHOLD_GE) != 0, \
        (flags & GMEM_IDENTITY) != 0
    if flags & SHIFT_DECAY:
        return _simple_int(x, v, out, beta_m, gmem_m, gmem_s, bias, thr, v_reset, sp, sb, g, dq, lo, hi, True, gid)
    return _simple_int(x, v, out, beta_m, gmem_m, gmem_s, bias, thr, v_reset, sp, sb, g, dq, lo, hi, False, gid)


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
    if flags & NARROW:  # (the executor calls neuron_int32 itself)
        return neuron_int32(x, v, out, beta_m, bias, thr, v_reset, flags, dq, lo, hi)
    if not (cuba or delayed or multi):  # fast path: LIF, LI, IF, I (the executor calls it itself)
        return neuron_int_simple(x, v, out, beta_m, gmem_m, gmem_s, bias, thr, v_reset, flags, dq, lo, hi)
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
        if not spiking:
            if acc < lo or acc > hi:
                nsat += 1
            vk = sat(acc, lo, hi)
            v[k] = vk
            out[k] = vk
            continue
        th = np.int64(thr[k])
        if delayed:
            acc -= np.int64(out[k]) * th
        if acc < lo or acc > hi:  # counted after the delayed reset: that is the value clamped
            nsat += 1
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
                    vk -= s * th
                    if vk < lo or vk > hi:  # only possible with a threshold <= 0
                        nsat += 1
                    vk = sat(vk, lo, hi)
                else:
                    vk = np.int64(v_reset[k])
        v[k] = vk
        out[k] = s
    return nsat


# ---------------------------------------------------------------------- lowering
# How a neuron node becomes an instruction (called by edgebrain.program.build with its
# Builder; the row's columns are named in layout.py). Every parameter is expanded to one
# value per neuron, so the kernels index them all alike.


def lower_neuron(b, name, op, q, inp, out):
    """One OP_NEURON row; the state (v, then i for current-based kinds) gets its own region."""
    shape = b.graph.in_shapes[name]
    n = out.n
    s_off = b.alloc_neuron_state(name, shape, n, current=op.cuba)
    flags = flags_for(op)
    max_sp = op.max_spikes if op.multispike else 1
    if b.is_int:
        zeros = np.zeros(n, np.int64)
        flags |= SHIFT_DECAY if q["decay"] == "shift" else 0
        flags |= GSYN_IDENTITY if q.get("gsyn_identity") else 0
        flags |= GMEM_IDENTITY if q.get("gmem_identity") else 0
        info = np.iinfo(b.state_dtype)
        if narrow_ok(flags, int(info.min), int(info.max), q["beta_m"], q.get("bias", 0), q.get("thr", 0),
                     q.get("v_reset", 0), int(q["dq"])):
            flags |= NARROW
        elif not flags & (CUBA | RESET_DELAY | MULTISPIKE):
            flags |= SIMPLE

        def par(k):
            return b.ipar.add(b.expand(q[k], shape) if k in q else zeros)

        b.emit(name, OP_NEURON, inp, out, state_off=s_off, flags=flags, max_spikes=max_sp,
               alpha_off=par("alpha_m"), g_syn_off=par("gsyn_m"), beta_off=par("beta_m"), g_mem_off=par("gmem_m"),
               bias_off=par("bias"), thr_off=par("thr"), v_reset_off=par("v_reset"), gsyn_s_off=par("gsyn_s"),
               gmem_s_off=par("gmem_s"), dq=int(q["dq"]), lo=int(info.min), hi=int(info.max))
        b.state_scales[name] = (q["s_v"], q.get("s_i"))
    else:
        def par(a):
            return b.fpar.add(b.expand(a, shape) if a is not None else np.zeros(n))

        b.emit(name, OP_NEURON, inp, out, state_off=s_off, flags=flags, max_spikes=max_sp,
               alpha_off=par(op.alpha), g_syn_off=par(op.g_syn), beta_off=par(op.beta), g_mem_off=par(op.g_mem),
               bias_off=par(op.bias), thr_off=par(op.threshold), v_reset_off=par(op.v_reset))


#: op kind -> lowering (every neuron kind is a subclass of Neuron)
LOWERING = {"Neuron": lower_neuron}
