"""The graph executor: one compiled call runs a whole model for one or many timesteps.

A model is lowered (by :mod:`edgebrain.program`) to a table of instructions, one row of
``prog`` each, over flat buffers:

* ``fpar`` float32 parameters (float mode: everything; integer mode: input/output scales),
* ``ipar`` int32 parameters (delay lengths; integer mode: biases, thresholds, multipliers),
* ``wbuf`` weights (float32 in float mode, int8/int16 in integer mode),
* ``state[b]`` neuron state and ``act[b]`` node outputs for batch element b; both persist
  between steps, which is what gives back edges their one-step delay.

The executor is written once for all models, so Numba compiles it once per machine (and
caches it on disk) instead of once per model. Per instruction it only dispatches on the
opcode and slices buffers; the arithmetic lives in the kernel files beside this one.

The executor's functions are compiled without Numba's reference counting (``_nrt=False``):
the arrays come from the session, which keeps them alive for the whole call, and nothing
here allocates. With it, every slice handed to a kernel (and every array argument) cost an
atomic increment and decrement of a shared counter, about half the time of a small model's
step; without it the arrays carry no counter and the kernels' own increments are no-ops.
"""

import numpy as np
from numba import njit

#: decorator of the executor's functions (see the module docstring)
_engine_jit = njit(cache=True, _nrt=False)

from .conv import conv2d_f32, conv2d_int
from .dense import dense_f32, dense_int
from .elementwise import add_into, add_into_sat, copy_into, delay, scale_f32, scale_int, threshold
from .neuron import neuron_f32, neuron_int
from .pool import pool2d_f32, pool2d_int

# opcodes
OP_INPUT = 1
OP_COPY = 2
OP_ADD = 3
OP_DENSE = 4
OP_CONV = 5
OP_POOL = 6
OP_SCALE = 7
OP_THRESHOLD = 8
OP_NEURON = 9
OP_DELAY = 10
OP_OUTPUT = 11

#: width of one instruction row
WIDTH = 32

# common header: [op, in_off, in_n, out_off, out_n, ...op specific...]
# DENSE  : 5 rows, 6 n_in, 7 n_out, 8 w_off, 9 b_off(-1), 10 rq_m_off, 11 rq_s_off, 12 identity, 13 wide
# CONV   : 5..19 dims(15), 20 w_off, 21 b_off, 22 rq_m_off, 23 rq_s_off, 24 identity, 25 wide
# POOL   : 5..15 dims(11), 16 factor_off (fpar), 17 m, 18 s
# SCALE  : 5 s_off (fpar, float) | m_off (ipar, int), 6 shift_off (ipar, int)
# THRESH : 5 th_off (fpar float | ipar int)
# NEURON : 5 state_off, 6 flags, 7 max_spikes, 8 alpha, 9 g_syn, 10 beta, 11 g_mem, 12 bias,
#          13 thr, 14 v_reset, 15 g_syn shift, 16 g_mem shift, 17 dq, 18 lo, 19 hi
# DELAY  : 5 ring_off (act), 6 steps_off (ipar), 7 ring_len
# INPUT  : 5 inv_scale_off (fpar, int mode), 6 lo, 7 hi
# OUTPUT : 5 column in the output row, 6 scale_off (fpar, int mode)


@_engine_jit
def _step_f32(prog, fpar, ipar, state, act, idx, clock, x, out):
    for r in range(prog.shape[0]):
        p = prog[r]
        op = p[0]
        i0, ni, o0, no = p[1], p[2], p[3], p[4]
        if op == OP_INPUT:
            for k in range(ni):
                act[o0 + k] = x[i0 + k]
        elif op == OP_COPY:
            copy_into(act[i0:i0 + ni], act[o0:o0 + no])
        elif op == OP_ADD:
            add_into(act[i0:i0 + ni], act[o0:o0 + no])
        elif op == OP_DENSE:
            rows, n_in, n_out, w0 = p[5], p[6], p[7], p[8]
            wt = fpar[w0:w0 + n_in * n_out].reshape((n_in, n_out))
            b = fpar[p[9]:p[9] + n_out] if p[9] >= 0 else fpar[0:0]
            for q in range(rows):
                dense_f32(act[i0 + q * n_in:i0 + (q + 1) * n_in], wt, b,
                          act[o0 + q * n_out:o0 + (q + 1) * n_out], idx)
        elif op == OP_CONV:
            dims = p[5:20]
            co, ci_g, kh, kw = dims[3], dims[0] // dims[12], dims[4], dims[5]
            w = fpar[p[20]:p[20] + co * ci_g * kh * kw].reshape((co, ci_g, kh, kw))
            conv2d_f32(act[i0:i0 + ni], w, fpar[p[21]:p[21] + co], act[o0:o0 + no], dims)
        elif op == OP_POOL:
            pool2d_f32(act[i0:i0 + ni], act[o0:o0 + no], p[5:16], fpar[p[16]])
        elif op == OP_SCALE:
            scale_f32(act[i0:i0 + ni], fpar[p[5]:p[5] + no], act[o0:o0 + no])
        elif op == OP_THRESHOLD:
            threshold(act[i0:i0 + ni], fpar[p[5]:p[5] + no], act[o0:o0 + no])
        elif op == OP_NEURON:
            s0 = p[5]
            flags = p[6]
            cuba = flags & 1
            v = state[s0:s0 + no]
            i = state[s0 + no:s0 + 2 * no] if cuba else state[0:0]
            neuron_f32(act[i0:i0 + ni], v, i, act[o0:o0 + no],
                       fpar[p[8]:p[8] + no], fpar[p[9]:p[9] + no], fpar[p[10]:p[10] + no],
                       fpar[p[11]:p[11] + no], fpar[p[12]:p[12] + no], fpar[p[13]:p[13] + no],
                       fpar[p[14]:p[14] + no], flags, p[7])
        elif op == OP_DELAY:
            delay(act[i0:i0 + ni], act[o0:o0 + no], act[p[5]:p[5] + p[7]], ipar[p[6]:p[6] + no], clock)
        elif op == OP_OUTPUT:
            for k in range(ni):
                out[p[5] + k] = act[i0 + k]


@_engine_jit
def _step_int(prog, fpar, ipar, wbuf, state, act, acc32, acc64, idx, clock, x, out, satcount):
    for r in range(prog.shape[0]):
        p = prog[r]
        op = p[0]
        i0, ni, o0, no = p[1], p[2], p[3], p[4]
        if op == OP_INPUT:
            inv = fpar[p[5]]
            lo, hi = p[6], p[7]
            for k in range(ni):
                # clamp before converting: x·inv may be beyond int64 (or inf in float32)
                t = np.floor(x[i0 + k] * inv + np.float32(0.5))
                if t < lo or t > hi:
                    satcount[r] += 1
                    act[o0 + k] = lo if t < lo else hi
                else:
                    act[o0 + k] = np.int64(t)
        elif op == OP_COPY:
            copy_into(act[i0:i0 + ni], act[o0:o0 + no])
        elif op == OP_ADD:
            add_into_sat(act[i0:i0 + ni], act[o0:o0 + no])
        elif op == OP_DENSE:
            rows, n_in, n_out, w0 = p[5], p[6], p[7], p[8]
            wt = wbuf[w0:w0 + n_in * n_out].reshape((n_in, n_out))
            b = ipar[p[9]:p[9] + n_out] if p[9] >= 0 else ipar[0:0]
            m, s = ipar[p[10]:p[10] + n_out], ipar[p[11]:p[11] + n_out]
            for q in range(rows):
                xin = act[i0 + q * n_in:i0 + (q + 1) * n_in]
                y = act[o0 + q * n_out:o0 + (q + 1) * n_out]
                if p[13]:
                    dense_int(xin, wt, b, y, idx, acc64[:n_out], m, s, p[12])
                else:
                    dense_int(xin, wt, b, y, idx, acc32[:n_out], m, s, p[12])
        elif op == OP_CONV:
            dims = p[5:20]
            co, ci_g, kh, kw = dims[3], dims[0] // dims[12], dims[4], dims[5]
            w = wbuf[p[20]:p[20] + co * ci_g * kh * kw].reshape((co, ci_g, kh, kw))
            b = ipar[p[21]:p[21] + co]
            m, s = ipar[p[22]:p[22] + co], ipar[p[23]:p[23] + co]
            if p[25]:
                conv2d_int(act[i0:i0 + ni], w, b, act[o0:o0 + no], dims, acc64[:no], m, s, p[24])
            else:
                conv2d_int(act[i0:i0 + ni], w, b, act[o0:o0 + no], dims, acc32[:no], m, s, p[24])
        elif op == OP_POOL:
            pool2d_int(act[i0:i0 + ni], act[o0:o0 + no], p[5:16], p[17], p[18])
        elif op == OP_SCALE:
            scale_int(act[i0:i0 + ni], ipar[p[5]:p[5] + no], ipar[p[6]:p[6] + no], act[o0:o0 + no])
        elif op == OP_THRESHOLD:
            threshold(act[i0:i0 + ni], ipar[p[5]:p[5] + no], act[o0:o0 + no])
        elif op == OP_NEURON:
            s0 = p[5]
            flags = p[6]
            cuba = flags & 1
            v = state[s0:s0 + no]
            i = state[s0 + no:s0 + 2 * no] if cuba else state[0:0]
            satcount[r] += neuron_int(act[i0:i0 + ni], v, i, act[o0:o0 + no],
                       ipar[p[8]:p[8] + no], ipar[p[9]:p[9] + no], ipar[p[15]:p[15] + no],
                       ipar[p[10]:p[10] + no], ipar[p[11]:p[11] + no], ipar[p[16]:p[16] + no],
                       ipar[p[12]:p[12] + no], ipar[p[13]:p[13] + no], ipar[p[14]:p[14] + no],
                       flags, p[7], p[17], p[18], p[19])
        elif op == OP_DELAY:
            delay(act[i0:i0 + ni], act[o0:o0 + no], act[p[5]:p[5] + p[7]], ipar[p[6]:p[6] + no], clock)
        elif op == OP_OUTPUT:
            sc = fpar[p[6]]
            for k in range(ni):
                out[p[5] + k] = np.float32(act[i0 + k]) * sc


@_engine_jit
def _record(rec, state, act, dst):
    # rec rows: (buffer 0=act 1=state, offset, count, column in dst)
    for r in range(rec.shape[0]):
        off, n, col = rec[r, 1], rec[r, 2], rec[r, 3]
        if rec[r, 0] == 0:
            for k in range(n):
                dst[col + k] = act[off + k]
        else:
            for k in range(n):
                dst[col + k] = state[off + k]


@_engine_jit
def run_f32(prog, fpar, ipar, state, act, idx, clock, xs, out, rec, recbuf):
    """Run xs.shape[0] steps for xs.shape[1] batch elements; out[t, b] gets the outputs."""
    for t in range(xs.shape[0]):
        for b in range(xs.shape[1]):
            _step_f32(prog, fpar, ipar, state[b], act[b], idx, clock[0], xs[t, b], out[t, b])
            if rec.shape[0]:
                _record(rec, state[b], act[b], recbuf[t, b])
        clock[0] += 1


@_engine_jit
def run_int(prog, fpar, ipar, wbuf, state, act, acc32, acc64, idx, clock, xs, out, rec, recbuf, satcount):
    for t in range(xs.shape[0]):
        for b in range(xs.shape[1]):
            _step_int(prog, fpar, ipar, wbuf, state[b], act[b], acc32, acc64, idx, clock[0],
                      xs[t, b], out[t, b], satcount)
            if rec.shape[0]:
                _record(rec, state[b], act[b], recbuf[t, b])
        clock[0] += 1


@_engine_jit
def _finite(x):
    for b in range(x.shape[0]):
        for k in range(x.shape[1]):
            if not np.isfinite(x[b, k]):
                return False
    return True


@_engine_jit
def step_f32(prog, fpar, ipar, state, act, idx, clock, x, out):
    """One step for every batch element: x (B, n_in), out (B, n_out). Returns False (and
    changes nothing) when x holds NaN or infinity."""
    if not _finite(x):
        return False
    for b in range(x.shape[0]):
        _step_f32(prog, fpar, ipar, state[b], act[b], idx, clock[0], x[b], out[b])
    clock[0] += 1
    return True


@_engine_jit
def step_int(prog, fpar, ipar, wbuf, state, act, acc32, acc64, idx, clock, x, out, satcount):
    if not _finite(x):
        return False
    for b in range(x.shape[0]):
        _step_int(prog, fpar, ipar, wbuf, state[b], act[b], acc32, acc64, idx, clock[0], x[b], out[b], satcount)
    clock[0] += 1
    return True


# ---- batch-1 entry points for Session.step: fewer arguments, x and out one-dimensional.
# Each array argument costs Python→Numba dispatch time (tens of ns), which at a few µs per
# step of a small model is worth saving. ``scr`` is the session's int64 scratch buffer,
# laid out by :func:`scratch_layout`: scr[0] the clock, scr[1:8] where the rest lives.

#: header words of the scratch buffer (the clock and six offsets/lengths)
SCR_HEADER = 8


def scratch_layout(n_sat, n_idx, n_acc, align=8):
    """(size, header) of a scratch buffer holding the saturation counters, the index list
    and both accumulator rows; every region starts on a 64-byte boundary (8 int64)."""
    off = SCR_HEADER
    up = lambda o: o + (-o) % align  # noqa: E731
    sat_off = up(off)
    idx_off = up(sat_off + n_sat)
    a64_off = up(idx_off + n_idx)
    a32_off = up(a64_off + n_acc)
    size = up(a32_off + (n_acc + 1) // 2)
    return size, (sat_off, n_sat, idx_off, n_idx, a64_off, a32_off, n_acc)


@_engine_jit
def _finite1(x):
    for k in range(x.shape[0]):
        if not np.isfinite(x[k]):
            return False
    return True


@_engine_jit
def step1_f32(prog, fpar, ipar, state, act, scr, x, out):
    """step_f32 for a batch of one: state, act (1, n) as there; x (n_in,), out (n_out,)."""
    if not _finite1(x):
        return False
    _step_f32(prog, fpar, ipar, state[0], act[0], scr[scr[3]:scr[3] + scr[4]], scr[0], x, out)
    scr[0] += 1
    return True


@_engine_jit
def step1_int(prog, fpar, ipar, wbuf, state, act, scr, x, out):
    """step_int for a batch of one: state, act (1, n) as there; x (n_in,), out (n_out,)."""
    if not _finite1(x):
        return False
    n_acc = scr[7]
    acc32 = scr[scr[6]:scr[6] + (n_acc + 1) // 2].view(np.int32)[:n_acc]
    _step_int(prog, fpar, ipar, wbuf, state[0], act[0], acc32, scr[scr[5]:scr[5] + n_acc],
              scr[scr[3]:scr[3] + scr[4]], scr[0], x, out, scr[scr[1]:scr[1] + scr[2]])
    scr[0] += 1
    return True
