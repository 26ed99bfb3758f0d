"""The graph executor: one compiled call runs a whole model for one or many timesteps.

A model is lowered (by :mod:`edgebrain.program`) to a table of instructions, one row of
``prog`` each (its columns are named in :mod:`edgebrain.kernels.layout`), over flat buffers:

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
from ..jit import njit

#: decorator of the executor's functions (see the module docstring)
_engine_jit = njit(cache=True, _nrt=False)

#: functions written once and compiled per variant (see :func:`executor`), in the order they call each other
_TEMPLATES: list = []


def _template(f):
    _TEMPLATES.append(f)
    return f

from .conv import conv2d_f32, conv2d_int
from .layout import (
    CONV_B, CONV_C, CONV_CO, CONV_DIMS, CONV_GROUPS, CONV_IDENTITY, CONV_KH, CONV_KW, CONV_NDIMS, CONV_RQ_M,
    CONV_RQ_S, CONV_W, CONV_WIDE, DELAY_RING, DELAY_RING_LEN, DELAY_STEPS, DENSE_B, DENSE_IDENTITY, DENSE_INT4,
    DENSE_N_IN, DENSE_N_OUT, DENSE_ROWS, DENSE_RQ_M, DENSE_RQ_S, DENSE_W, DENSE_WIDE, IN_N, IN_OFF, INPUT_HI,
    INPUT_INV_SCALE, INPUT_LO, NEURON_ALPHA, NEURON_BETA, NEURON_BIAS, NEURON_DQ, NEURON_FLAGS, NEURON_G_MEM,
    NEURON_G_SYN, NEURON_GMEM_S, NEURON_GSYN_S, NEURON_HI, NEURON_LO, NEURON_MAX_SPIKES, NEURON_STATE,
    NEURON_THR, NEURON_V_RESET, OP, OP_ADD, OP_CONV, OP_COPY, OP_DELAY, OP_DENSE, OP_INPUT, OP_NEURON,
    OP_OUTPUT, OP_POOL, OP_SCALE, OP_SPARSE, OP_THRESHOLD, OUT_N, OUT_OFF, OUTPUT_COLUMN, OUTPUT_SCALE, POOL_DIMS,
    POOL_FACTOR, POOL_M, POOL_NDIMS, POOL_S, SCALE_SCALE, SCALE_SHIFT, SPARSE_B, SPARSE_IDENTITY, SPARSE_IDX,
    SPARSE_IDX_BYTES, SPARSE_INT4, SPARSE_N_IN, SPARSE_N_OUT, SPARSE_NNZ, SPARSE_PTR, SPARSE_PTR_BYTES, SPARSE_ROWS,
    SPARSE_RQ_M, SPARSE_RQ_S, SPARSE_W, SPARSE_WIDE, THRESHOLD_TH)
from .dense import dense_f32, dense_int, dense_int4, sparse_f32, sparse_int
from .elementwise import add_into, add_into_sat, copy_into, delay, scale_f32, scale_int, threshold
from .neuron import NARROW as NEURON_NARROW, SIMPLE as NEURON_SIMPLE, neuron_f32, neuron_int, neuron_int32, \
    neuron_int_simple
from .pool import pool2d_f32, pool2d_int

# Which op families the templates below compile (see :func:`executor`): each variant binds its
# own values, and Numba, which reads globals as constants, drops the branches they turn off
# before typing them, so their kernels are never compiled. The module's values: everything.
_HAS_CONV = True             # convolution and pooling rows
_HAS_WIDE_ACC = True         # integer dense and conv rows with int64 accumulators
_HAS_SIMPLE_NEURON = True    # integer neuron rows flagged SIMPLE (neuron_int_simple)
_HAS_GENERAL_NEURON = True   # integer neuron rows neither NARROW nor SIMPLE (neuron_int)
_NARROW_ONLY = False         # every integer neuron row NARROW (neuron_int32)
_HAS_SPARSE = True           # sparse (CSR) dense rows (sparse_int, sparse_f32)
_HAS_INT4 = True             # integer dense rows with 4-bit weights (dense_int4)


@_template
def _exec_f32(prog, fpar, ipar, state, act, idx, clock, x, out):
    for r in range(prog.shape[0]):
        p = prog[r]
        op = p[OP]
        i0, ni, o0, no = p[IN_OFF], p[IN_N], p[OUT_OFF], p[OUT_N]
        if op == OP_INPUT:
            for k in range(ni):
                act[o0 + k] = x[i0 + k]
        elif op == OP_COPY:
            copy_into(act[i0:i0 + ni], act[o0:o0 + no])
        elif op == OP_ADD:
            add_into(act[i0:i0 + ni], act[o0:o0 + no])
        elif op == OP_DENSE:
            rows, n_in, n_out, w0 = p[DENSE_ROWS], p[DENSE_N_IN], p[DENSE_N_OUT], p[DENSE_W]
            wt = fpar[w0:w0 + n_in * n_out].reshape((n_in, n_out))
            b = fpar[p[DENSE_B]:p[DENSE_B] + n_out] if p[DENSE_B] >= 0 else fpar[0:0]
            for q in range(rows):
                dense_f32(act[i0 + q * n_in:i0 + (q + 1) * n_in], wt, b,
                          act[o0 + q * n_out:o0 + (q + 1) * n_out], idx)
        elif _HAS_SPARSE and op == OP_SPARSE:
            rows, n_in, n_out, nnz = p[SPARSE_ROWS], p[SPARSE_N_IN], p[SPARSE_N_OUT], p[SPARSE_NNZ]
            ib = ipar.view(np.uint8)
            pw, cw, pb, cb = p[SPARSE_PTR_BYTES], p[SPARSE_IDX_BYTES], 4 * p[SPARSE_PTR], 4 * p[SPARSE_IDX]
            b = fpar[p[SPARSE_B]:p[SPARSE_B] + n_out] if p[SPARSE_B] >= 0 else fpar[0:0]
            for q in range(rows):
                sparse_f32(act[i0 + q * n_in:i0 + (q + 1) * n_in], fpar[p[SPARSE_W]:p[SPARSE_W] + nnz],
                           ib[pb:pb + pw * (n_in + 1)], pw, ib[cb:cb + cw * nnz], cw, b,
                           act[o0 + q * n_out:o0 + (q + 1) * n_out], idx)
        elif _HAS_CONV and op == OP_CONV:
            dims = p[CONV_DIMS:CONV_DIMS + CONV_NDIMS]
            co, ci_g, kh, kw = p[CONV_CO], p[CONV_C] // p[CONV_GROUPS], p[CONV_KH], p[CONV_KW]
            w = fpar[p[CONV_W]:p[CONV_W] + co * ci_g * kh * kw].reshape((co, ci_g, kh, kw))
            conv2d_f32(act[i0:i0 + ni], w, fpar[p[CONV_B]:p[CONV_B] + co], act[o0:o0 + no], dims,
                       idx.view(np.float32))  # (lower_conv sized idx for the float accumulators)
        elif _HAS_CONV and op == OP_POOL:
            pool2d_f32(act[i0:i0 + ni], act[o0:o0 + no], p[POOL_DIMS:POOL_DIMS + POOL_NDIMS], fpar[p[POOL_FACTOR]])
        elif op == OP_SCALE:
            scale_f32(act[i0:i0 + ni], fpar[p[SCALE_SCALE]:p[SCALE_SCALE] + no], act[o0:o0 + no])
        elif op == OP_THRESHOLD:
            threshold(act[i0:i0 + ni], fpar[p[THRESHOLD_TH]:p[THRESHOLD_TH] + no], act[o0:o0 + no])
        elif op == OP_NEURON:
            s0 = p[NEURON_STATE]
            flags = p[NEURON_FLAGS]
            cuba = flags & 1
            v = state[s0:s0 + no]
            i = state[s0 + no:s0 + 2 * no] if cuba else state[0:0]
            neuron_f32(act[i0:i0 + ni], v, i, act[o0:o0 + no],
                       fpar[p[NEURON_ALPHA]:p[NEURON_ALPHA] + no], fpar[p[NEURON_G_SYN]:p[NEURON_G_SYN] + no],
                       fpar[p[NEURON_BETA]:p[NEURON_BETA] + no], fpar[p[NEURON_G_MEM]:p[NEURON_G_MEM] + no],
                       fpar[p[NEURON_BIAS]:p[NEURON_BIAS] + no], fpar[p[NEURON_THR]:p[NEURON_THR] + no],
                       fpar[p[NEURON_V_RESET]:p[NEURON_V_RESET] + no], flags, p[NEURON_MAX_SPIKES])
        elif op == OP_DELAY:
            delay(act[i0:i0 + ni], act[o0:o0 + no], act[p[DELAY_RING]:p[DELAY_RING] + p[DELAY_RING_LEN]],
                  ipar[p[DELAY_STEPS]:p[DELAY_STEPS] + no], clock)
        elif op == OP_OUTPUT:
            for k in range(ni):
                out[p[OUTPUT_COLUMN] + k] = act[i0 + k]


@_template
def _exec_int(prog, fpar, ipar, wbuf, state, act, acc32, acc64, idx, clock, x, out, satcount):
    for r in range(prog.shape[0]):
        p = prog[r]
        op = p[OP]
        i0, ni, o0, no = p[IN_OFF], p[IN_N], p[OUT_OFF], p[OUT_N]
        if op == OP_INPUT:
            inv = fpar[p[INPUT_INV_SCALE]]
            lo, hi = p[INPUT_LO], p[INPUT_HI]
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
            rows, n_in, n_out, w0 = p[DENSE_ROWS], p[DENSE_N_IN], p[DENSE_N_OUT], p[DENSE_W]
            b = ipar[p[DENSE_B]:p[DENSE_B] + n_out] if p[DENSE_B] >= 0 else ipar[0:0]
            m, s = ipar[p[DENSE_RQ_M]:p[DENSE_RQ_M] + n_out], ipar[p[DENSE_RQ_S]:p[DENSE_RQ_S] + n_out]
            if _HAS_INT4 and p[DENSE_INT4]:
                nb = (n_out + 1) // 2
                wp = wbuf[w0:w0 + n_in * nb].reshape((n_in, nb))
                for q in range(rows):
                    xin = act[i0 + q * n_in:i0 + (q + 1) * n_in]
                    y = act[o0 + q * n_out:o0 + (q + 1) * n_out]
                    if _HAS_WIDE_ACC and p[DENSE_WIDE]:
                        dense_int4(xin, wp, b, y, idx, acc64[:n_out], m, s, p[DENSE_IDENTITY])
                    else:
                        dense_int4(xin, wp, b, y, idx, acc32[:n_out], m, s, p[DENSE_IDENTITY])
                continue
            wt = wbuf[w0:w0 + n_in * n_out].reshape((n_in, n_out))
            for q in range(rows):
                xin = act[i0 + q * n_in:i0 + (q + 1) * n_in]
                y = act[o0 + q * n_out:o0 + (q + 1) * n_out]
                if _HAS_WIDE_ACC and p[DENSE_WIDE]:
                    dense_int(xin, wt, b, y, idx, acc64[:n_out], m, s, p[DENSE_IDENTITY])
                else:
                    dense_int(xin, wt, b, y, idx, acc32[:n_out], m, s, p[DENSE_IDENTITY])
        elif _HAS_SPARSE and op == OP_SPARSE:
            rows, n_in, n_out, nnz, int4 = p[SPARSE_ROWS], p[SPARSE_N_IN], p[SPARSE_N_OUT], p[SPARSE_NNZ], p[SPARSE_INT4]
            vals = wbuf[p[SPARSE_W]:p[SPARSE_W] + ((nnz + 1) // 2 if int4 else nnz)]
            ib = ipar.view(np.uint8)
            pw, cw, pb, cb = p[SPARSE_PTR_BYTES], p[SPARSE_IDX_BYTES], 4 * p[SPARSE_PTR], 4 * p[SPARSE_IDX]
            ptrb, colb = ib[pb:pb + pw * (n_in + 1)], ib[cb:cb + cw * nnz]
            b = ipar[p[SPARSE_B]:p[SPARSE_B] + n_out] if p[SPARSE_B] >= 0 else ipar[0:0]
            m, s = ipar[p[SPARSE_RQ_M]:p[SPARSE_RQ_M] + n_out], ipar[p[SPARSE_RQ_S]:p[SPARSE_RQ_S] + n_out]
            for q in range(rows):
                xin = act[i0 + q * n_in:i0 + (q + 1) * n_in]
                y = act[o0 + q * n_out:o0 + (q + 1) * n_out]
                if _HAS_WIDE_ACC and p[SPARSE_WIDE]:
                    sparse_int(xin, vals, ptrb, pw, colb, cw, b, y, idx, acc64[:n_out], m, s, p[SPARSE_IDENTITY], int4)
                else:
                    sparse_int(xin, vals, ptrb, pw, colb, cw, b, y, idx, acc32[:n_out], m, s, p[SPARSE_IDENTITY], int4)
        elif _HAS_CONV and op == OP_CONV:
            dims = p[CONV_DIMS:CONV_DIMS + CONV_NDIMS]
            co, ci_g, kh, kw = p[CONV_CO], p[CONV_C] // p[CONV_GROUPS], p[CONV_KH], p[CONV_KW]
            w = wbuf[p[CONV_W]:p[CONV_W] + co * ci_g * kh * kw].reshape((co, ci_g, kh, kw))
            b = ipar[p[CONV_B]:p[CONV_B] + co]
            m, s = ipar[p[CONV_RQ_M]:p[CONV_RQ_M] + co], ipar[p[CONV_RQ_S]:p[CONV_RQ_S] + co]
            if _HAS_WIDE_ACC and p[CONV_WIDE]:
                conv2d_int(act[i0:i0 + ni], w, b, act[o0:o0 + no], dims, acc64[:no], m, s, p[CONV_IDENTITY])
            else:
                conv2d_int(act[i0:i0 + ni], w, b, act[o0:o0 + no], dims, acc32[:no], m, s, p[CONV_IDENTITY])
        elif _HAS_CONV and op == OP_POOL:
            pool2d_int(act[i0:i0 + ni], act[o0:o0 + no], p[POOL_DIMS:POOL_DIMS + POOL_NDIMS], p[POOL_M], p[POOL_S])
        elif op == OP_SCALE:
            scale_int(act[i0:i0 + ni], ipar[p[SCALE_SCALE]:p[SCALE_SCALE] + no],
                      ipar[p[SCALE_SHIFT]:p[SCALE_SHIFT] + no], act[o0:o0 + no])
        elif op == OP_THRESHOLD:
            threshold(act[i0:i0 + ni], ipar[p[THRESHOLD_TH]:p[THRESHOLD_TH] + no], act[o0:o0 + no])
        elif op == OP_NEURON:
            s0 = p[NEURON_STATE]
            flags = p[NEURON_FLAGS]
            cuba = flags & 1
            v = state[s0:s0 + no]
            if _NARROW_ONLY or flags & NEURON_NARROW:  # called on its own: see neuron_int32
                satcount[r] += neuron_int32(act[i0:i0 + ni], v, act[o0:o0 + no], ipar[p[NEURON_BETA]:p[NEURON_BETA] + no],
                                            ipar[p[NEURON_BIAS]:p[NEURON_BIAS] + no], ipar[p[NEURON_THR]:p[NEURON_THR] + no],
                                            ipar[p[NEURON_V_RESET]:p[NEURON_V_RESET] + no], flags, p[NEURON_DQ],
                                            p[NEURON_LO], p[NEURON_HI])
                continue
            if _HAS_SIMPLE_NEURON and flags & NEURON_SIMPLE:  # likewise
                satcount[r] += neuron_int_simple(
                    act[i0:i0 + ni], v, act[o0:o0 + no], ipar[p[NEURON_BETA]:p[NEURON_BETA] + no],
                    ipar[p[NEURON_G_MEM]:p[NEURON_G_MEM] + no], ipar[p[NEURON_GMEM_S]:p[NEURON_GMEM_S] + no],
                    ipar[p[NEURON_BIAS]:p[NEURON_BIAS] + no], ipar[p[NEURON_THR]:p[NEURON_THR] + no],
                    ipar[p[NEURON_V_RESET]:p[NEURON_V_RESET] + no], flags, p[NEURON_DQ], p[NEURON_LO], p[NEURON_HI])
                continue
            if _HAS_GENERAL_NEURON:
                i = state[s0 + no:s0 + 2 * no] if cuba else state[0:0]
                satcount[r] += neuron_int(
                    act[i0:i0 + ni], v, i, act[o0:o0 + no],
                    ipar[p[NEURON_ALPHA]:p[NEURON_ALPHA] + no], ipar[p[NEURON_G_SYN]:p[NEURON_G_SYN] + no],
                    ipar[p[NEURON_GSYN_S]:p[NEURON_GSYN_S] + no], ipar[p[NEURON_BETA]:p[NEURON_BETA] + no],
                    ipar[p[NEURON_G_MEM]:p[NEURON_G_MEM] + no], ipar[p[NEURON_GMEM_S]:p[NEURON_GMEM_S] + no],
                    ipar[p[NEURON_BIAS]:p[NEURON_BIAS] + no], ipar[p[NEURON_THR]:p[NEURON_THR] + no],
                    ipar[p[NEURON_V_RESET]:p[NEURON_V_RESET] + no],
                    flags, p[NEURON_MAX_SPIKES], p[NEURON_DQ], p[NEURON_LO], p[NEURON_HI])
        elif op == OP_DELAY:
            delay(act[i0:i0 + ni], act[o0:o0 + no], act[p[DELAY_RING]:p[DELAY_RING] + p[DELAY_RING_LEN]],
                  ipar[p[DELAY_STEPS]:p[DELAY_STEPS] + no], clock)
        elif op == OP_OUTPUT:
            sc = fpar[p[OUTPUT_SCALE]]
            for k in range(ni):
                out[p[OUTPUT_COLUMN] + k] = np.float32(act[i0 + k]) * sc


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


@_template
def _run_f32(prog, fpar, ipar, state, act, idx, clock, xs, out, rec, recbuf):
    """Run xs.shape[0] steps for xs.shape[1] batch elements; out[t, b] gets the outputs."""
    for t in range(xs.shape[0]):
        for b in range(xs.shape[1]):
            _exec_f32(prog, fpar, ipar, state[b], act[b], idx, clock[0], xs[t, b], out[t, b])
            if rec.shape[0]:
                _record(rec, state[b], act[b], recbuf[t, b])
        clock[0] += 1


@_template
def _run_int(prog, fpar, ipar, wbuf, state, act, acc32, acc64, idx, clock, xs, out, rec, recbuf, satcount):
    for t in range(xs.shape[0]):
        for b in range(xs.shape[1]):
            _exec_int(prog, fpar, ipar, wbuf, state[b], act[b], acc32, acc64, idx, clock[0],
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


@_template
def _step_f32(prog, fpar, ipar, state, act, idx, clock, x, out):
    """One step for every batch element: x (B, n_in), out (B, n_out). Returns False (and
    changes nothing) when x holds NaN or infinity."""
    if not _finite(x):
        return False
    for b in range(x.shape[0]):
        _exec_f32(prog, fpar, ipar, state[b], act[b], idx, clock[0], x[b], out[b])
    clock[0] += 1
    return True


@_template
def _step_int(prog, fpar, ipar, wbuf, state, act, acc32, acc64, idx, clock, x, out, satcount):
    if not _finite(x):
        return False
    for b in range(x.shape[0]):
        _exec_int(prog, fpar, ipar, wbuf, state[b], act[b], acc32, acc64, idx, clock[0], x[b], out[b], satcount)
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


@_template
def _step1_f32(prog, fpar, ipar, state, act, scr, x, out):
    """step for a batch of one: state, act (1, n) as there; x (n_in,), out (n_out,)."""
    if not _finite1(x):
        return False
    _exec_f32(prog, fpar, ipar, state[0], act[0], scr[scr[3]:scr[3] + scr[4]], scr[0], x, out)
    scr[0] += 1
    return True


@_template
def _step1_int(prog, fpar, ipar, wbuf, state, act, scr, x, out):
    """step_int for a batch of one: state, act (1, n) as there; x (n_in,), out (n_out,)."""
    if not _finite1(x):
        return False
    n_acc = scr[7]
    acc32 = scr[scr[6]:scr[6] + (n_acc + 1) // 2].view(np.int32)[:n_acc]
    _exec_int(prog, fpar, ipar, wbuf, state[0], act[0], acc32, scr[scr[5]:scr[5] + n_acc],
              scr[scr[3]:scr[3] + scr[4]], scr[0], x, out, scr[scr[1]:scr[1] + scr[2]])
    scr[0] += 1
    return True


# ---- variants: compile only the op families a program uses
# Compiling the executor compiles every kernel it can call (and LLVM optimises them again
# inside each entry point), about 10 s for all of them on a fast x86 core and several times
# that on a Pi. Most models use a few families, so the executor is instantiated per set of
# families: the functions above are written once, and each variant compiles them with its own
# values of the _HAS_* constants, which drop the branches of the families it does not need.
# Each variant has its own name, so its own entries in the on-disk cache.

#: feature bits of a program (see :func:`features`)
USES_CONV = 1             # convolution or pooling rows
USES_GENERAL_NEURON = 2   # an integer neuron row with a current, multi-spike or a delayed reset off int32
USES_WIDE_ACC = 4         # an integer dense or conv row with int64 accumulators
USES_SIMPLE_NEURON = 8    # an integer neuron row of the simple kinds off int32 (e.g. 32-bit state)
USES_SPARSE = 16          # a sparse (CSR) dense row (pruned weights)
USES_INT4 = 32            # an integer dense row with 4-bit weights
ALL = USES_CONV | USES_GENERAL_NEURON | USES_WIDE_ACC | USES_SIMPLE_NEURON | USES_SPARSE | USES_INT4


def features(prog, integer: bool) -> int:
    """The feature bits a program's rows need: a variant with these bits runs every row.
    (The float executor always has its one neuron kernel.)"""
    ops = prog[:, OP]
    bits = USES_CONV if ((ops == OP_CONV) | (ops == OP_POOL)).any() else 0
    flags = prog[ops == OP_NEURON, NEURON_FLAGS]
    if integer and ((flags & (NEURON_NARROW | NEURON_SIMPLE)) == 0).any():
        bits |= USES_GENERAL_NEURON
    if integer and ((flags & NEURON_SIMPLE) != 0).any():
        bits |= USES_SIMPLE_NEURON
    if integer and ((prog[ops == OP_DENSE, DENSE_WIDE] != 0).any() or (prog[ops == OP_CONV, CONV_WIDE] != 0).any()
                    or (prog[ops == OP_SPARSE, SPARSE_WIDE] != 0).any()):
        bits |= USES_WIDE_ACC
    if (ops == OP_SPARSE).any():
        bits |= USES_SPARSE
    if integer and (prog[ops == OP_DENSE, DENSE_INT4] != 0).any():
        bits |= USES_INT4
    return bits


_variants: dict = {}


def executor(bits: int = ALL):
    """The executor's entry points (``step1_f32``, ``step1_int``, ``step_f32``, ``step_int``,
    ``run_f32``, ``run_int``) compiled with the kernel families in ``bits`` only. A program
    must run on a variant whose bits include :func:`features` of it: rows of a family left
    out would be skipped."""
    bits &= ALL
    ns = _variants.get(bits)
    if ns is None:
        import types
        tag = "all" if bits == ALL else "".join(c for b, c in ((USES_CONV, "c"), (USES_GENERAL_NEURON, "n"),
                                                                  (USES_WIDE_ACC, "a"), (USES_SIMPLE_NEURON, "s"),
                                                                  (USES_SPARSE, "z"), (USES_INT4, "h"))
                                                if bits & b) or "core"
        g = dict(globals(), _HAS_CONV=bool(bits & USES_CONV), _HAS_WIDE_ACC=bool(bits & USES_WIDE_ACC),
                 _HAS_SIMPLE_NEURON=bool(bits & USES_SIMPLE_NEURON), _HAS_SPARSE=bool(bits & USES_SPARSE),
                 _HAS_INT4=bool(bits & USES_INT4),
                 _HAS_GENERAL_NEURON=bool(bits & USES_GENERAL_NEURON),
                 _NARROW_ONLY=not bits & (USES_GENERAL_NEURON | USES_SIMPLE_NEURON))
        ns = types.SimpleNamespace(bits=bits, name=tag)
        for f in _TEMPLATES:
            fn = types.FunctionType(f.__code__, g, f.__name__, f.__defaults__)
            fn.__qualname__ = f"{f.__name__}__{tag}"  # names the variant's cache entries
            fn.__doc__ = f.__doc__
            g[f.__name__] = _engine_jit(fn)  # the templates after it call this instance
            if not f.__name__.startswith("_exec"):
                setattr(ns, f.__name__[1:], g[f.__name__])
        _variants[bits] = ns
    return ns
