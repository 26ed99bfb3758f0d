"""Every integer Numba kernel against the pure-Python reference (tests/reference/intref.py):
bit-exact outputs, states and saturation counts, over random shapes, parameters and inputs,
including values at the int32 / int16 limits, large multipliers and shifts 0..62.

The kernels are called directly, with the dtypes the executor passes them (int32 node
buffers, int8/int16 weights, int32 parameters, int64 instruction fields), so the Numba
specialisations compiled here are the ones the engine uses.
"""

from __future__ import annotations

import itertools
import math
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from edgebrain.kernels import conv as conv_mod
from edgebrain.kernels import dense as dense_mod
from edgebrain.kernels import engine as E
from edgebrain.kernels import fixed
from edgebrain.kernels import layout as L
from edgebrain.kernels.conv import conv2d_int
from edgebrain.kernels.dense import dense_int
from edgebrain.kernels.elementwise import add_into_sat, delay, scale_int, threshold
from edgebrain.kernels.neuron import (CUBA, CURRENT_LAG, GMEM_IDENTITY, GSYN_IDENTITY, MULTISPIKE, NARROW, narrow_ok,
                                      RESET_DELAY, SHIFT_DECAY, SPIKING, SUBTRACT, THRESHOLD_GE,
                                      neuron_int)
from edgebrain.kernels.pool import pool2d_int
from tests.reference import intref as R

I32_MIN, I32_MAX = R.INT32_MIN, R.INT32_MAX
HC = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]


def cfg(n=100):
    """Hypothesis settings; EDGEBRAIN_EXAMPLES_SCALE=k runs k times more examples (soak runs)."""
    scale = int(os.environ.get("EDGEBRAIN_EXAMPLES_SCALE", "1"))
    return settings(max_examples=n * scale, deadline=None, suppress_health_check=HC)


# ------------------------------------------------------------------ strategies


def ints_near_limits(lo, hi, small=16):
    """Integers in [lo, hi], biased toward 0, small values and both limits."""
    return st.one_of(
        st.integers(max(lo, -small), min(hi, small)),
        st.integers(lo, hi),
        st.integers(lo, min(hi, lo + 3)),
        st.integers(max(lo, hi - 3), hi),
    )


i32 = ints_near_limits(I32_MIN, I32_MAX)
i16 = ints_near_limits(R.INT16_MIN, R.INT16_MAX)
# requantisation multipliers: typical to_multiplier output [2^30, 2^31), small ones, negative
mult = st.one_of(st.integers(2 ** 30, I32_MAX), st.integers(-(2 ** 31), -(2 ** 30)),
                 st.integers(-4, 4), i32)
shift = st.one_of(st.integers(0, 62), st.sampled_from([0, 1, 31, 32, 33, 61, 62]))


@st.composite
def int_vector(draw, n, kind=None):
    """An int32 input vector of length n: spikes (sparse or not), spike counts, small ints,
    or full-range int32 with values at the limits."""
    kind = kind or draw(st.sampled_from(["spikes", "sparse", "counts", "small", "wide"]))
    if kind == "spikes":
        return np.array(draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)), np.int32)
    if kind == "sparse":
        vals = draw(st.lists(st.one_of(st.just(0), st.just(0), st.just(0), i32), min_size=n, max_size=n))
        return np.array(vals, np.int32)
    if kind == "counts":
        return np.array(draw(st.lists(st.integers(0, 15), min_size=n, max_size=n)), np.int32)
    if kind == "small":
        return np.array(draw(st.lists(st.integers(-300, 300), min_size=n, max_size=n)), np.int32)
    return np.array(draw(st.lists(i32, min_size=n, max_size=n)), np.int32)


def weight_array(draw, shape, wdt):
    info = np.iinfo(wdt)
    n = int(np.prod(shape))
    vals = draw(st.lists(ints_near_limits(int(info.min), int(info.max)), min_size=n, max_size=n))
    return np.array(vals, wdt).reshape(shape)


@st.composite
def requant_params(draw, n):
    identity = draw(st.booleans())
    if identity:
        return np.ones(n, np.int32), np.zeros(n, np.int32), 1
    m = np.array(draw(st.lists(mult, min_size=n, max_size=n)), np.int32)
    s = np.array(draw(st.lists(shift, min_size=n, max_size=n)), np.int32)
    return m, s, 0


# ------------------------------------------------------------------ primitives


def test_rsr_examples_from_the_doc():
    for p, s, want in [(5, 1, 3), (-5, 1, -2), (-6, 2, -1), (7, 0, 7), (-7, -3, -7), (1, 62, 0),
                       (2 ** 61, 62, 1), (-(2 ** 61), 62, 0), (-(2 ** 61) - 1, 62, -1)]:
        assert R.rsr(p, s) == want
        assert fixed.rsr(np.int64(p), np.int64(s)) == want


@cfg(150)
@given(p=st.integers(-(2 ** 62), 2 ** 62), s=st.integers(0, 62))
def test_rsr_matches_reference(p, s):
    assert fixed.rsr(np.int64(p), np.int64(s)) == R.rsr(p, s)


@cfg(150)
@given(x=i32, m=mult, s=shift)
def test_mulshift_matches_reference(x, m, s):
    assert fixed.mulshift(np.int64(x), np.int64(m), np.int64(s)) == R.mulshift(x, m, s)


@cfg(150)
@given(a=st.one_of(i32, st.integers(-(2 ** 63), 2 ** 63 - 1), st.integers(-(2 ** 45), 2 ** 45)),
       m=mult, s=shift)
@example(a=2 ** 63 - 1, m=-(2 ** 31), s=0)
@example(a=-(2 ** 63), m=-(2 ** 31), s=62)
@example(a=-(2 ** 63), m=I32_MAX, s=62)
@example(a=4 * 127 * I32_MAX, m=2 ** 30 + 12345, s=40)
def test_mulshift_sat32_is_exact_for_any_int64_accumulator(a, m, s):
    assert fixed.mulshift_sat32(np.int64(a), np.int64(m), np.int64(s)) == R.sat32(R.mulshift(a, m, s))


# ------------------------------------------------------------------ dense

#: density above which a kernel loops over all inputs instead of the nonzero ones
DENSE_ABOVE = conv_mod.DENSE_ABOVE
#: dense layers with fewer outputs than this loop output by output (else input row by row)
SMALL_OUT = getattr(dense_mod, "SMALL_OUT", 16)
assert 0 < DENSE_ABOVE < 1
n_outputs = st.one_of(st.integers(1, 8), st.integers(max(SMALL_OUT - 2, 1), SMALL_OUT + 6))


def event_pad(n):
    """How many zero inputs to append to n inputs so that the kernel takes the event path."""
    return math.ceil(n / DENSE_ABOVE) - n + 1


def dense_pad(n):
    """How many nonzero inputs to append to n inputs so that the kernel takes the dense path."""
    return math.floor(n * DENSE_ABOVE / (1 - DENSE_ABOVE)) + 1


def extra_groups(G):
    """Extra conv groups (of all-0 or all-1 input) that force the scatter or gather path."""
    return max(event_pad(G), dense_pad(G))



def _dense_kernel(x, W, b, m, s, identity, acc_dtype):
    wt = np.ascontiguousarray(W.T)
    y = np.full(W.shape[0], 12345, np.int32)  # garbage: the kernel must overwrite everything
    acc = np.full(W.shape[0], 77, acc_dtype)
    idx = np.zeros(max(x.shape[0], 1), np.int64)
    dense_int(x, wt, b, y, idx, acc, m, s, identity)
    return y


def _dense_paths(x, W, b, m, s, identity, acc_dtype):
    """Run the kernel on x as given; with x made sparse (zero inputs appended) and dense
    (ones appended whose weights are 0), so that a kernel choosing its loop by density takes
    each; with extra all-zero outputs (>= SMALL_OUT outputs: the loop over input rows) and
    one output at a time (the loop over outputs). Returns the outputs of every variant."""
    n_in, n_out = x.shape[0], W.shape[0]
    natural = _dense_kernel(x, W, b, m, s, identity, acc_dtype)
    n_wide = max(SMALL_OUT - n_out, 0) + 1
    wide_b = np.concatenate([b, np.zeros(n_wide, np.int32)]) if len(b) else b
    wide = _dense_kernel(x, np.concatenate([W, np.zeros((n_wide, n_in), W.dtype)]), wide_b,
                         np.concatenate([m, np.ones(n_wide, np.int32)]),
                         np.concatenate([s, np.zeros(n_wide, np.int32)]), identity, acc_dtype)[:n_out]
    single = np.concatenate([_dense_kernel(x, W[c:c + 1], b[c:c + 1], m[c:c + 1], s[c:c + 1], identity, acc_dtype)
                             for c in range(n_out)])
    rng = np.random.default_rng(n_in * 31 + n_out)
    ze, nd = event_pad(n_in), dense_pad(n_in)
    pad_w = rng.integers(-100, 100, (n_out, ze)).astype(W.dtype)  # multiplied by 0
    event = _dense_kernel(np.concatenate([x, np.zeros(ze, np.int32)]), np.concatenate([W, pad_w], 1),
                          b, m, s, identity, acc_dtype)
    dense = _dense_kernel(np.concatenate([x, np.ones(nd, np.int32)]),
                          np.concatenate([W, np.zeros((n_out, nd), W.dtype)], 1),
                          b, m, s, identity, acc_dtype)
    return natural, event, dense, wide, single


@st.composite
def dense_case(draw):
    n_in = draw(st.integers(1, 40))
    n_out = draw(n_outputs)
    wdt = draw(st.sampled_from([np.int8, np.int16]))
    W = weight_array(draw, (n_out, n_in), wdt)
    x = draw(int_vector(n_in))
    b = np.array(draw(st.lists(i32, min_size=n_out, max_size=n_out)), np.int32) if draw(st.booleans()) \
        else np.zeros(0, np.int32)
    m, s, identity = draw(requant_params(n_out))
    return x, W, b, m, s, identity


@cfg(120)
@given(case=dense_case())
def test_dense_int_matches_reference(case):
    x, W, b, m, s, identity = case
    want = R.dense(x, W, b, m, s, identity)
    for y in _dense_paths(x, W, b, m, s, identity, np.int64):
        assert y.tolist() == want
    # 32-bit accumulators where the builder's bound Σ|x||w| + |b| < 2^31 proves they suffice
    bound = np.abs(W.astype(object)) @ np.abs(x.astype(object))
    if len(b):
        bound = bound + np.abs(b.astype(object))
    if max(bound) < 2 ** 31:
        for y in _dense_paths(x, W, b, m, s, identity, np.int32):
            assert y.tolist() == want


@cfg(60)
@given(n_in=st.integers(1, 64), n_out=n_outputs, data=st.data())
def test_dense_int_spike_input_int32_accumulator(n_in, n_out, data):
    """The common case: 0/1 spikes into int8 weights with 32-bit accumulators."""
    W = weight_array(data.draw, (n_out, n_in), np.int8)
    x = data.draw(int_vector(n_in, "spikes"))
    b = np.array(data.draw(st.lists(st.integers(-(2 ** 20), 2 ** 20), min_size=n_out, max_size=n_out)), np.int32)
    m, s, identity = data.draw(requant_params(n_out))
    want = R.dense(x, W, b, m, s, identity)
    for acc_dtype in (np.int32, np.int64):
        for y in _dense_paths(x, W, b, m, s, identity, acc_dtype):
            assert y.tolist() == want


# ------------------------------------------------------------------ conv


@st.composite
def conv_case(draw):
    groups = draw(st.integers(1, 3))
    cin_g, cout_g = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    C, Co = groups * cin_g, groups * cout_g
    H = draw(st.sampled_from([1, 1, 2, 3, 4, 5, 6]))  # H = 1 is how Conv1d runs
    W = draw(st.integers(1, 7))
    kh = 1 if H == 1 and draw(st.booleans()) else draw(st.integers(1, 3))
    kw = draw(st.integers(1, 3))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    pt, pl = draw(st.integers(0, (kh - 1) * dh)), draw(st.integers(0, (kw - 1) * dw))
    pb, pr = draw(st.integers(0, (kh - 1) * dh)), draw(st.integers(0, (kw - 1) * dw))  # implied
    Ho = (H + pt + pb - (kh - 1) * dh - 1) // sh + 1
    Wo = (W + pl + pr - (kw - 1) * dw - 1) // sw + 1
    assume(Ho >= 1 and Wo >= 1)
    wdt = draw(st.sampled_from([np.int8, np.int16]))
    w = weight_array(draw, (Co, cin_g, kh, kw), wdt)
    x = draw(int_vector(C * H * W))
    b = np.array(draw(st.lists(i32, min_size=Co, max_size=Co)), np.int32)
    m, s, identity = draw(requant_params(Co))
    geo = dict(C=C, H=H, W=W, Co=Co, kh=kh, kw=kw, stride=(sh, sw), padding=(pt, pl), dilation=(dh, dw),
               groups=groups, out_size=(Ho, Wo))
    return x, w, b, m, s, identity, geo


def _conv_kernel(x, w, b, m, s, identity, geo, acc_dtype):
    g = geo
    Ho, Wo = g["out_size"]
    dims = np.array([g["C"], g["H"], g["W"], g["Co"], g["kh"], g["kw"], *g["stride"], *g["padding"],
                     *g["dilation"], g["groups"], Ho, Wo], np.int64)
    n = g["Co"] * Ho * Wo
    y = np.full(n, -999, np.int32)
    acc = np.full(n, 5, acc_dtype)
    conv2d_int(x, conv_mod.scatter_weights(w), b, y, dims, acc, m, s, identity)
    return y


def _conv_paths(x, w, b, m, s, identity, geo, acc_dtype):
    """Natural path, and the same convolution forced onto the scatter (event) path and the
    gather (dense) path by appending extra groups whose inputs are all 0 (resp. all 1); the
    real output channels are the first Co of the result."""
    g = geo
    G, C, Co, HW = g["groups"], g["C"], g["Co"], g["H"] * g["W"]
    cin_g, cout_g, e = C // G, Co // G, extra_groups(G)
    out = [_conv_kernel(x, w, b, m, s, identity, geo, acc_dtype)]
    n_real = out[0].shape[0]
    big = dict(geo, groups=G + e, C=C + e * cin_g, Co=Co + e * cout_g)
    rng = np.random.default_rng(C * 7 + Co)
    w_extra = rng.integers(-50, 50, (e * cout_g, cin_g, g["kh"], g["kw"])).astype(w.dtype)
    w_big = np.concatenate([w, w_extra])
    b_big = np.concatenate([b, np.zeros(e * cout_g, np.int32)])
    m_big = np.concatenate([m, np.ones(e * cout_g, np.int32)])
    s_big = np.concatenate([s, np.zeros(e * cout_g, np.int32)])
    for fill in (0, 1):
        x_big = np.concatenate([x, np.full(e * cin_g * HW, fill, np.int32)])
        out.append(_conv_kernel(x_big, w_big, b_big, m_big, s_big, identity, big, acc_dtype)[:n_real])
    return out


@cfg(100)
@given(case=conv_case())
def test_conv2d_int_matches_reference(case):
    x, w, b, m, s, identity, g = case
    want = R.conv2d(x, g["C"], g["H"], g["W"], w, b, g["Co"], g["kh"], g["kw"], g["stride"], g["padding"],
                    g["dilation"], g["groups"], g["out_size"], m, s, identity)
    for y in _conv_paths(x, w, b, m, s, identity, g, np.int64):
        assert y.tolist() == want
    # 32-bit accumulators where Σ|x||w| + |b| < 2^31 for every output (per-channel bound)
    bound = max(int(np.abs(b.astype(object)).max()), 0) + \
        int(np.abs(x.astype(object)).sum()) * int(np.abs(w.astype(object)).max())
    if bound < 2 ** 31:
        for y in _conv_paths(x, w, b, m, s, identity, g, np.int32):
            assert y.tolist() == want


# ------------------------------------------------------------------ pooling


@st.composite
def pool_case(draw):
    C = draw(st.integers(1, 3))
    H, W = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ph, pw = draw(st.integers(0, kh - 1)), draw(st.integers(0, kw - 1))
    pb, pr = draw(st.integers(0, kh - 1)), draw(st.integers(0, kw - 1))
    Ho, Wo = (H + ph + pb - kh) // sh + 1, (W + pw + pr - kw) // sw + 1
    assume(Ho >= 1 and Wo >= 1)
    x = draw(int_vector(C * H * W))
    if draw(st.booleans()):
        m, s = 1, 0
    else:
        m, s = draw(mult), draw(shift)
    return x, dict(C=C, H=H, W=W, kernel=(kh, kw), stride=(sh, sw), padding=(ph, pw), out_size=(Ho, Wo)), m, s


@cfg(100)
@given(case=pool_case())
def test_pool2d_int_matches_reference(case):
    x, g, m, s = case
    Ho, Wo = g["out_size"]
    dims = np.array([g["C"], g["H"], g["W"], *g["kernel"], *g["stride"], *g["padding"], Ho, Wo], np.int64)
    y = np.full(g["C"] * Ho * Wo, 3, np.int32)
    pool2d_int(x, y, dims, np.int64(m), np.int64(s))
    assert y.tolist() == R.pool2d_sum(x, g["C"], g["H"], g["W"], g["kernel"], g["stride"], g["padding"],
                                      g["out_size"], m, s)


# ------------------------------------------------------------------ element-wise


@cfg(100)
@given(data=st.data(), n=st.integers(1, 24))
def test_scale_int_matches_reference(data, n):
    x = data.draw(int_vector(n, data.draw(st.sampled_from(["small", "wide", "spikes"]))))
    m = np.array(data.draw(st.lists(mult, min_size=n, max_size=n)), np.int32)
    s = np.array(data.draw(st.lists(shift, min_size=n, max_size=n)), np.int32)
    y = np.zeros(n, np.int32)
    scale_int(x, m, s, y)
    assert y.tolist() == R.scale(x, m, s)


@cfg(100)
@given(data=st.data(), n=st.integers(1, 24))
def test_threshold_int_matches_reference(data, n):
    x = np.array(data.draw(st.lists(i32, min_size=n, max_size=n)), np.int32)
    th = np.array(data.draw(st.lists(i32, min_size=n, max_size=n)), np.int32)
    if data.draw(st.booleans()):  # thresholds equal to the input: x > θ must be strict
        th = x.copy()
    y = np.full(n, 7, np.int32)
    threshold(x, th, y)
    assert y.tolist() == R.threshold(x, th)


@cfg(100)
@given(data=st.data(), n=st.integers(1, 24))
def test_add_into_sat_matches_reference(data, n):
    a = np.array(data.draw(st.lists(i32, min_size=n, max_size=n)), np.int32)
    b = np.array(data.draw(st.lists(i32, min_size=n, max_size=n)), np.int32)
    dst = a.copy()
    add_into_sat(b, dst)
    assert dst.tolist() == R.add_sat(a, b)


@cfg(80)
@given(data=st.data(), n=st.integers(1, 6), T=st.integers(1, 14), extra_depth=st.integers(0, 2))
def test_delay_ring_matches_reference(data, n, T, extra_depth):
    steps = np.array(data.draw(st.lists(st.integers(0, 5), min_size=n, max_size=n)), np.int32)
    depth = int(steps.max()) + 1 + extra_depth  # the builder uses max + 1; more must work too
    ring = np.zeros(depth * n, np.int32)
    ref = R.DelayLine(steps)
    for t in range(T):
        x = np.array(data.draw(st.lists(i32, min_size=n, max_size=n)), np.int32)
        y = np.full(n, -5, np.int32)
        delay(x, y, ring, steps, np.int64(t))
        assert y.tolist() == ref.step(x), f"step {t}"


# ------------------------------------------------------------------ input quantisation


def _quantize_with_engine(xs, inv, lo, hi):
    """The executor's OP_INPUT instruction, alone in a program."""
    n = xs.shape[0]
    prog = np.array([L.row(L.OP_INPUT, 0, n, 0, n, inv_scale_off=1, lo=lo, hi=hi)], np.int64)
    fpar = np.array([0.0, inv], np.float32)
    act = np.full((1, n), 99, np.int32)
    satcount = np.zeros(1, np.int64)
    ok = E.executor().step_int(prog, fpar, np.zeros(1, np.int32), np.zeros(1, np.int8), np.zeros((1, 1), np.int16), act,
                    np.zeros(1, np.int32), np.zeros(1, np.int64), np.zeros(1, np.int64), np.zeros(1, np.int64),
                    xs.reshape(1, n), np.zeros((1, 1), np.float32), satcount)
    assert ok
    return act[0].tolist(), int(satcount[0])


finite_f32 = st.floats(width=32, allow_nan=False, allow_infinity=False)


@cfg(100)
@given(xs=st.lists(st.one_of(finite_f32, st.integers(-300, 300).map(lambda k: k / 2),
                             st.floats(-200, 200, width=32)), min_size=1, max_size=12),
       inv=st.one_of(st.just(1.0), st.floats(2.0 ** -10, 2.0 ** 10, width=32),
                     st.floats(2.0 ** -100, 2.0 ** 100, width=32)),
       rng=st.sampled_from([(-127, 127), (-128, 127), (-32767, 32767), (0, 1), (0, 15), (I32_MIN, I32_MAX)]))
@example(xs=[1e30, -1e30, 3e38, 2.5, -2.5, 0.5, -0.5], inv=1.0, rng=(-127, 127))
def test_input_quantisation_matches_reference(xs, inv, rng):
    lo, hi = rng
    x = np.array(xs, np.float32)
    got, nsat = _quantize_with_engine(x, np.float32(inv), lo, hi)
    want = [R.quantize_input(v, np.float32(inv), lo, hi) for v in x]
    assert got == [q for q, _ in want]
    assert nsat == sum(c for _, c in want)


# ------------------------------------------------------------------ neurons


def _flags(c: R.NeuronConfig) -> int:
    f = 0
    for on, bit in [(c.cuba, CUBA), (c.spiking, SPIKING), (c.subtract, SUBTRACT), (c.reset_delay, RESET_DELAY),
                    (c.current_lag, CURRENT_LAG), (c.threshold_ge, THRESHOLD_GE), (c.multispike, MULTISPIKE),
                    (c.shift_decay, SHIFT_DECAY), (c.gsyn_identity, GSYN_IDENTITY),
                    (c.gmem_identity, GMEM_IDENTITY)]:
        f |= bit if on else 0
    return f


def _neuron_params(draw_int, c: R.NeuronConfig, n):
    """Per-neuron integer parameters in the ranges the quantizer produces (decays in
    [0, 2^dq] or shifts 0..62, gains any int32 with shifts 0..62, bias / thresholds /
    v_reset in the state range, thresholds >= 1 for multi-spike neurons)."""
    lo, hi = R.state_range(c.state_bits)

    def vec(lo_, hi_, near=True):
        return np.array([draw_int(lo_, hi_, near) for _ in range(n)], np.int32)

    decay = (lambda: vec(0, 62)) if c.shift_decay else (lambda: vec(0, 2 ** c.dq))
    p = {
        "alpha_m": decay(), "beta_m": decay(),
        "gsyn_m": vec(I32_MIN, I32_MAX), "gsyn_s": vec(0, 62),
        "gmem_m": vec(I32_MIN, I32_MAX), "gmem_s": vec(0, 62),
        "bias": vec(lo, hi), "thr": vec(1 if c.multispike else lo, hi), "v_reset": vec(lo, hi),
    }
    return p


def _run_neuron_both(c: R.NeuronConfig, p, xs, v0, i0, out0):
    """Run T steps of the kernel and of the reference from the same state; compare every
    step exactly (v, i, out, saturation count)."""
    sdt = np.int16 if c.state_bits == 16 else np.int32
    lo, hi = R.state_range(c.state_bits)
    v, i, out = v0.astype(sdt), (i0.astype(sdt) if c.cuba else np.zeros(0, sdt)), out0.astype(np.int32)
    rv, ri, rout = v.tolist(), i.tolist(), out.tolist()
    flags = _flags(c)
    if narrow_ok(flags, lo, hi, p["beta_m"], p["bias"], p["thr"], p["v_reset"], c.dq):
        flags |= NARROW  # as the builder sets it: the int32 path, checked against the same reference
    max_sp = c.max_spikes if c.multispike else 1
    for t, x in enumerate(xs):
        nsat = neuron_int(x, v, i, out, p["alpha_m"], p["gsyn_m"], p["gsyn_s"], p["beta_m"], p["gmem_m"],
                          p["gmem_s"], p["bias"], p["thr"], p["v_reset"], np.int64(flags), np.int64(max_sp),
                          np.int64(c.dq), np.int64(lo), np.int64(hi))
        rv, ri, rout, rsat = R.neuron_step(c, x, rv, ri, rout, p)
        assert v.tolist() == rv, f"v at step {t}"
        assert i.tolist() == (ri if c.cuba else []), f"i at step {t}"
        assert out.tolist() == rout, f"out at step {t}"
        assert nsat == rsat, f"saturation count at step {t}"


@st.composite
def neuron_case(draw):
    spiking = draw(st.booleans())
    multispike = spiking and draw(st.booleans())
    c = R.NeuronConfig(
        cuba=draw(st.booleans()), spiking=spiking, subtract=draw(st.booleans()),
        reset_delay=spiking and draw(st.booleans()), current_lag=draw(st.booleans()),
        threshold_ge=draw(st.booleans()), multispike=multispike,
        max_spikes=draw(st.sampled_from([1, 2, 3, 7, 1000, 2 ** 15])) if multispike else 1,
        shift_decay=draw(st.booleans()), gsyn_identity=draw(st.booleans()), gmem_identity=draw(st.booleans()),
        dq=draw(st.sampled_from([15, 15, 0, 1, 8, 16, 24, 30])), state_bits=draw(st.sampled_from([16, 32])))
    n = draw(st.integers(1, 8))
    lo, hi = R.state_range(c.state_bits)

    def draw_int(a, b, near=True):
        return draw(ints_near_limits(a, b) if near else st.integers(a, b))

    p = _neuron_params(draw_int, c, n)
    T = draw(st.integers(1, 4))
    xs = [draw(int_vector(n, draw(st.sampled_from(["small", "wide", "spikes", "counts"])))) for _ in range(T)]
    v0 = np.array([draw_int(lo, hi) for _ in range(n)], np.int64)
    i0 = np.array([draw_int(lo, hi) for _ in range(n)], np.int64)
    out0 = np.array([draw_int(0, c.max_spikes) for _ in range(n)], np.int64) if spiking \
        else v0.copy()
    return c, p, xs, v0, i0, out0


@cfg(150)
@given(case=neuron_case())
def test_neuron_int_matches_reference(case):
    _run_neuron_both(*case)


def test_neuron_int_every_flag_combination():
    """All 2^10 flag combinations (x int16 / int32 state), random parameters from a fixed
    seed, a few steps each; inputs alternate small, full-range and spike values."""
    rng = np.random.default_rng(1234)

    def draw_int(a, b, near=True):
        r = rng.random()
        if near and r < 0.15:
            return int(rng.integers(a, min(b, a + 3) + 1))
        if near and r < 0.3:
            return int(rng.integers(max(a, b - 3), b + 1))
        if r < 0.6:
            return int(rng.integers(max(a, -300), min(b, 300) + 1))
        return int(rng.integers(a, b + 1))

    names = ["cuba", "spiking", "subtract", "reset_delay", "current_lag", "threshold_ge", "multispike",
             "shift_decay", "gsyn_identity", "gmem_identity"]
    n = 6
    for bits in (16, 32):
        lo, hi = R.state_range(bits)
        for combo in itertools.product([False, True], repeat=len(names)):
            c = R.NeuronConfig(**dict(zip(names, combo)), state_bits=bits, dq=15,
                               max_spikes=int(rng.choice([1, 3, 100])))
            p = _neuron_params(draw_int, c, n)
            if rng.random() < 0.5:  # thresholds of useful size, so that some neurons fire
                p["thr"] = rng.integers(1, 2000, n).astype(np.int32)
            xs = [rng.integers(-3000, 3000, n).astype(np.int32),
                  np.array([draw_int(I32_MIN, I32_MAX) for _ in range(n)], np.int32),
                  rng.integers(0, 2, n).astype(np.int32)]
            v0 = np.array([draw_int(lo, hi) for _ in range(n)], np.int64)
            i0 = np.array([draw_int(lo, hi) for _ in range(n)], np.int64)
            # a spiking neuron's previous output is what it wrote: a count up to max_spikes, or 0/1
            # for one spike a step (the int32 path relies on that for the delayed reset)
            out0 = rng.integers(0, (c.max_spikes if c.multispike else 1) + 1, n) if c.spiking else v0.copy()
            _run_neuron_both(c, p, xs, v0, i0, out0)


@cfg(150)
@given(data=st.data(), spiking=st.booleans(), subtract=st.booleans(), ge=st.booleans(), shift=st.booleans(),
       delayed=st.booleans(), dq=st.integers(0, 16))
def test_neuron_int32_path_matches_reference(data, spiking, subtract, ge, shift, delayed, dq):
    """The int32 fast path (NARROW) on the parameters where the builder allows it, at their limits,
    with drives anywhere in int32 (beyond ±2^30 the input is clamped: the membrane must saturate
    exactly as the int64 reference's does)."""
    c = R.NeuronConfig(cuba=False, spiking=spiking, subtract=subtract, reset_delay=spiking and delayed, current_lag=False,
                       threshold_ge=ge, multispike=False, max_spikes=1, shift_decay=shift, gsyn_identity=False,
                       gmem_identity=True, dq=dq, state_bits=16)
    lo, hi = R.state_range(16)
    n = data.draw(st.integers(1, 12))
    edge = st.one_of(st.integers(lo, hi), st.sampled_from([lo, lo + 1, -1, 0, 1, hi - 1, hi]))
    vec = lambda e: np.array(data.draw(st.lists(e, min_size=n, max_size=n)), np.int32)  # noqa: E731
    beta = vec(st.integers(0, 30) if shift else st.integers(0, 2 ** dq))
    beta[0] = 30 if shift else 2 ** dq  # the limit itself, always
    p = {"alpha_m": np.zeros(n, np.int32), "gsyn_m": np.zeros(n, np.int32), "gsyn_s": np.zeros(n, np.int32),
         "beta_m": beta, "gmem_m": np.zeros(n, np.int32), "gmem_s": np.zeros(n, np.int32),
         "bias": vec(edge), "thr": vec(edge), "v_reset": vec(edge)}
    wide = st.one_of(st.integers(I32_MIN, I32_MAX), st.sampled_from(
        [I32_MIN, I32_MAX, (1 << 30) - 1, 1 << 30, (1 << 30) + 1, -(1 << 30) - 1, -(1 << 30), 40000, -40000]))
    xs = [vec(st.one_of(wide, st.integers(-3000, 3000))) for _ in range(data.draw(st.integers(1, 4)))]
    assert narrow_ok(_flags(c), lo, hi, p["beta_m"], p["bias"], p["thr"], p["v_reset"], dq) == (dq <= 15 or shift)
    v0 = vec(edge).astype(np.int64)
    out0 = np.array(data.draw(st.lists(st.integers(0, 1), min_size=n, max_size=n))) if spiking else v0.copy()
    _run_neuron_both(c, p, xs, v0, np.zeros(n, np.int64), out0)


def test_the_int32_path_is_refused_where_int32_could_overflow():
    flags = SPIKING | SUBTRACT | GMEM_IDENTITY
    ok = dict(lo=-(1 << 15), hi=(1 << 15) - 1, beta_m=[1 << 15], bias=[0], thr=[100], v_reset=[0], dq=15)
    assert narrow_ok(flags, **ok)
    assert not narrow_ok(flags, **dict(ok, lo=-(1 << 31), hi=(1 << 31) - 1))  # 32-bit state
    assert not narrow_ok(flags, **dict(ok, beta_m=[1 << 16], dq=16))          # 2^15·2^16 > 2^31
    assert not narrow_ok(flags, **dict(ok, dq=0))                              # v·β undivided: too large
    assert not narrow_ok(flags | SHIFT_DECAY, **dict(ok, beta_m=[31]))         # 2^30 rounding term
    assert not narrow_ok(flags, **dict(ok, bias=[1 << 30]))
    assert not narrow_ok(flags & ~GMEM_IDENTITY, **ok)                         # a gain: 64-bit product
    assert not narrow_ok(flags | CUBA, **ok)                                   # a current
    assert not narrow_ok(flags | MULTISPIKE, **ok)                             # several spikes a step
    assert narrow_ok(flags | RESET_DELAY, **ok)                                # snnTorch's delayed reset


@pytest.mark.parametrize("bits", [16, 32])
def test_neuron_int_saturates_and_counts_at_the_state_limits(bits):
    """Hand-picked corner cases: a membrane driven past hi / lo, a delayed reset taking it
    back inside (no clamp), and a current saturating."""
    lo, hi = R.state_range(bits)
    n = 4
    one = np.ones(n, np.int32)
    p = {"alpha_m": one * 2 ** 15, "gsyn_m": one, "gsyn_s": 0 * one, "beta_m": one * 2 ** 15,
         "gmem_m": one, "gmem_s": 0 * one, "bias": 0 * one, "thr": one * 100, "v_reset": 0 * one}
    x = np.array([I32_MAX, I32_MIN, 50, -50], np.int32)
    for c in [R.NeuronConfig(spiking=False, state_bits=bits),
              R.NeuronConfig(spiking=True, reset_delay=True, state_bits=bits),
              R.NeuronConfig(cuba=True, spiking=True, state_bits=bits, gsyn_identity=True, gmem_identity=True),
              R.NeuronConfig(cuba=True, spiking=False, current_lag=True, state_bits=bits)]:
        v0 = np.array([hi - 10, lo + 10, hi - 20, lo + 20])
        out0 = np.array([1, 1, 1, 0]) if c.spiking else v0.copy()
        _run_neuron_both(c, p, [x, x[::-1].copy(), x], v0, v0.copy(), out0)
