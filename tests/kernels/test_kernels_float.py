"""Float32 kernels against the float64 reference (tests/reference/floatref.py), and every
float kernel against its integer twin within an analytic quantisation bound.

Float32 vs float64: the bound is the classical one for a sum of n rounded terms,
|fl(Σ) − Σ| <= γ_n·Σ|terms| with γ_n = n·u/(1 − n·u), u = 2^-24. The event-driven and the
dense paths of Dense / Conv must agree *exactly* (they add the same terms in the same order).

Float vs integer (notation: a real value is integer × scale; "LSB" is one unit of the
integer):

* rounding a real r to the grid of scale s costs at most s/2 (weights, biases, inputs,
  thresholds, v_reset: round to nearest);
* mulshift(x, m, s) = x·m/2^s + r with |r| <= 1/2, and m/2^s differs from the wanted real
  multiplier M by Δm = |m/2^s − M| (<= 2^-s-1 for to_multiplier), so replacing x·M by
  mulshift(x, m, s) costs at most |x|·Δm + 1/2 LSB of the output;
* a decay z ↦ β·z done as rsr(z·β_m, dq) (or z − rsr(z, k)) is z·β_q + r with |r| <= 1/2,
  β_q = β_m/2^dq (or 1 − 2^-k); on a state that is already off by E it gives
  |β_q·z_q − β·z| <= β_q·E + |β_q − β|·|z|, so the membrane error obeys

      E_{t+1} <= β_q·E_t + |β_q − β|·|v_t| + 1/2 + e_in,t

  (e_in: the input, gain and bias rounding of that step). With β_q = β and e_in <= e this
  stays below E_0·β^t + (1/2 + e)/(1 − β) as long as no spike differs; a spike that does
  differ is only allowed where the float membrane is within the bound of the threshold.

Each test evaluates these bounds on the concrete case (using the actual m, s, β_q), so
they are tight but never violated by correct kernels.
"""

from __future__ import annotations

import math
import os
from fractions import Fraction

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from edgebrain.kernels.conv import conv2d_f32, conv2d_int, scatter_weights
from edgebrain.kernels.dense import dense_f32, dense_int
from edgebrain.kernels.elementwise import scale_f32, scale_int, threshold
from edgebrain.kernels.neuron import (CUBA, CURRENT_LAG, GMEM_IDENTITY, GSYN_IDENTITY, MULTISPIKE,
                                      RESET_DELAY, SHIFT_DECAY, SPIKING, SUBTRACT, THRESHOLD_GE,
                                      neuron_f32, neuron_int)
from edgebrain.kernels.pool import pool2d_f32, pool2d_int
from tests.reference import floatref as F
from tests.reference import intref as R
from tests.kernels.test_kernels_int import SMALL_OUT, dense_pad, event_pad, extra_groups, n_outputs

U = 2.0 ** -24  # unit roundoff of float32
HC = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
seeds = st.integers(0, 2 ** 32 - 1)


def cfg(n=80):
    """Hypothesis settings; EDGEBRAIN_EXAMPLES_SCALE=k runs k times more examples (soak runs)."""
    scale = int(os.environ.get("EDGEBRAIN_EXAMPLES_SCALE", "1"))
    return settings(max_examples=n * scale, deadline=None, suppress_health_check=HC)


def gamma(n):
    return n * U / (1 - n * U)


def to_multiplier(M: float, bits: int = 31) -> tuple[int, int]:
    """(m, s) with m/2^s ≈ M, |m| < 2^bits, 0 <= s <= 62; (1, 0) when M is 1."""
    if M == 0:
        return 0, 0
    if abs(M - 1.0) < 1e-12:
        return 1, 0
    _, exp = math.frexp(abs(M))
    s = min(bits - exp, 62)
    assert s >= 0
    m = int(math.floor(abs(M) * 2.0 ** s + 0.5))
    if m >= 2 ** bits:
        m //= 2
        s -= 1
    return (m if M > 0 else -m), s


def mult_err(m, s, M) -> float:
    """Δm = |m/2^s − M|, exactly (then rounded up a hair)."""
    return float(abs(Fraction(int(m), 2 ** int(s)) - Fraction(float(M)))) * (1 + 1e-12)


def round_half_away(a):
    a = np.asarray(a, np.float64)
    return np.sign(a) * np.floor(np.abs(a) + 0.5)


def f32(a):
    return np.ascontiguousarray(np.asarray(a, np.float32))


# ------------------------------------------------------------------ shapes


def conv_geometry(draw, max_g=3):
    groups = draw(st.integers(1, max_g))
    cin_g, cout_g = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    H, W = draw(st.sampled_from([1, 2, 3, 5, 6])), draw(st.integers(1, 7))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    sh, sw = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    pt, pl = draw(st.integers(0, (kh - 1) * dh)), draw(st.integers(0, (kw - 1) * dw))
    pb, pr = draw(st.integers(0, (kh - 1) * dh)), draw(st.integers(0, (kw - 1) * dw))
    Ho = (H + pt + pb - (kh - 1) * dh - 1) // sh + 1
    Wo = (W + pl + pr - (kw - 1) * dw - 1) // sw + 1
    assume(Ho >= 1 and Wo >= 1)
    return dict(C=groups * cin_g, H=H, W=W, Co=groups * cout_g, kh=kh, kw=kw, stride=(sh, sw),
                padding=(pt, pl), dilation=(dh, dw), groups=groups, out_size=(Ho, Wo))


def conv_dims(g):
    return np.array([g["C"], g["H"], g["W"], g["Co"], g["kh"], g["kw"], *g["stride"], *g["padding"],
                     *g["dilation"], g["groups"], *g["out_size"]], np.int64)


def pool_geometry(draw):
    C, H, W = draw(st.integers(1, 3)), draw(st.integers(1, 6)), draw(st.integers(1, 6))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ph, pw = draw(st.integers(0, kh - 1)), draw(st.integers(0, kw - 1))
    pb, pr = draw(st.integers(0, kh - 1)), draw(st.integers(0, kw - 1))
    Ho, Wo = (H + ph + pb - kh) // sh + 1, (W + pw + pr - kw) // sw + 1
    assume(Ho >= 1 and Wo >= 1)
    return dict(C=C, H=H, W=W, kernel=(kh, kw), stride=(sh, sw), padding=(ph, pw), out_size=(Ho, Wo))


def pool_dims(g):
    return np.array([g["C"], g["H"], g["W"], *g["kernel"], *g["stride"], *g["padding"], *g["out_size"]], np.int64)


def float_input(rng, n, kind):
    """float32 inputs: 0/1 spikes, sparse analog values, or dense analog values."""
    if kind == "spikes":
        return (rng.random(n) < rng.uniform(0.02, 0.6)).astype(np.float32)
    x = rng.standard_normal(n) * 10.0 ** rng.uniform(-2, 2)
    if kind == "sparse":
        x[rng.random(n) < 0.85] = 0.0
    return x.astype(np.float32)


# ------------------------------------------------------------------ float32 vs float64


def _dense_f32_paths(x, W, b):
    """The float32 outputs of the variants of the integer test's _dense_paths: as given,
    sparse (zero inputs appended), dense (ones with zero weights appended), wide (zero
    outputs appended up to SMALL_OUT) and one output at a time."""
    n_in, n_out = x.shape[0], W.shape[0]

    def run(x_, W_, b_=b):
        y = np.full(W_.shape[0], np.nan, np.float32)
        dense_f32(f32(x_), f32(W_.T), f32(b_), y, np.zeros(max(x_.shape[0], 1), np.int64))
        return y

    n_wide = max(SMALL_OUT - n_out, 0) + 1
    ze, nd = event_pad(n_in), dense_pad(n_in)
    return [run(x, W),
            run(x, np.concatenate([W, np.zeros((n_wide, n_in), np.float32)]),
                np.concatenate([b, np.zeros(n_wide, np.float32)]) if len(b) else b)[:n_out],
            np.concatenate([run(x, W[c:c + 1], b[c:c + 1]) for c in range(n_out)]),
            run(np.concatenate([x, np.zeros(ze, np.float32)]),
                np.concatenate([W, np.ones((n_out, ze), np.float32)], 1)),
            run(np.concatenate([x, np.ones(nd, np.float32)]),
                np.concatenate([W, np.zeros((n_out, nd), np.float32)], 1))]


@cfg(80)
@given(n_in=st.integers(1, 48), n_out=n_outputs, seed=seeds,
       kind=st.sampled_from(["spikes", "sparse", "dense"]), has_b=st.booleans())
def test_dense_f32_matches_float64(n_in, n_out, seed, kind, has_b):
    rng = np.random.default_rng(seed)
    W = f32(rng.standard_normal((n_out, n_in)))
    x = float_input(rng, n_in, kind)
    b = f32(rng.standard_normal(n_out)) if has_b else np.zeros(0, np.float32)
    ys = _dense_f32_paths(x, W, b)
    for y in ys[1:]:
        assert np.array_equal(y, ys[0]), "event-driven and dense paths must be bit-identical"
    ref = F.dense(x, W, b)
    mag = np.abs(W.astype(np.float64)) @ np.abs(x.astype(np.float64)) + (np.abs(b) if has_b else 0)
    assert np.all(np.abs(ys[0] - ref) <= gamma(n_in + 1) * mag + 1e-30)


def _conv_f32_paths(x, w, b, g):
    """Natural path and the convolution forced onto scatter / gather by extra groups of
    all-zero / all-one input (see the integer test)."""
    G, C, Co, HW = g["groups"], g["C"], g["Co"], g["H"] * g["W"]
    cin_g, cout_g, e = C // G, Co // G, extra_groups(G)
    Ho, Wo = g["out_size"]
    n = Co * Ho * Wo

    def run(x_, w_, b_, geo):
        y = np.full(geo["Co"] * Ho * Wo, np.nan, np.float32)
        conv2d_f32(f32(x_), scatter_weights(f32(w_)), f32(b_), y, conv_dims(geo), np.full(y.shape[0], np.nan, np.float32))
        return y[:n]

    big = dict(g, groups=G + e, C=C + e * cin_g, Co=Co + e * cout_g)
    w_big = np.concatenate([w, np.ones((e * cout_g,) + w.shape[1:], np.float32)])
    b_big = np.concatenate([b, np.zeros(e * cout_g, np.float32)])
    return [run(x, w, b, g)] + [run(np.concatenate([x, np.full(e * cin_g * HW, fill, np.float32)]), w_big, b_big,
                                    big) for fill in (0.0, 1.0)]


@cfg(60)
@given(data=st.data(), seed=seeds, kind=st.sampled_from(["spikes", "sparse", "dense"]))
def test_conv2d_f32_matches_float64(data, seed, kind):
    g = conv_geometry(data.draw)
    rng = np.random.default_rng(seed)
    w = f32(rng.standard_normal((g["Co"], g["C"] // g["groups"], g["kh"], g["kw"])))
    b = f32(rng.standard_normal(g["Co"]))
    x = float_input(rng, g["C"] * g["H"] * g["W"], kind)
    ys = _conv_f32_paths(x, w, b, g)
    for y in ys[1:]:
        assert np.array_equal(y, ys[0]), "scatter and gather paths must be bit-identical"
    args = (g["C"], g["H"], g["W"])
    geo = (g["stride"], g["padding"], g["dilation"], g["groups"], g["out_size"])
    ref = F.conv2d(x, *args, w, b, *geo)
    mag = F.conv2d(np.abs(x), *args, np.abs(w), np.abs(b), *geo)
    n_terms = (g["C"] // g["groups"]) * g["kh"] * g["kw"] + 1
    assert np.all(np.abs(ys[0] - ref) <= gamma(n_terms) * mag + 1e-30)


@cfg(60)
@given(data=st.data(), seed=seeds, avg=st.booleans())
def test_pool2d_f32_matches_float64(data, seed, avg):
    g = pool_geometry(data.draw)
    rng = np.random.default_rng(seed)
    x = f32(rng.standard_normal(g["C"] * g["H"] * g["W"]))
    kh, kw = g["kernel"]
    factor = np.float32(1.0 / (kh * kw)) if avg else np.float32(1.0)
    Ho, Wo = g["out_size"]
    y = np.full(g["C"] * Ho * Wo, np.nan, np.float32)
    pool2d_f32(x, y, pool_dims(g), factor)
    geo = (g["C"], g["H"], g["W"], g["kernel"], g["stride"], g["padding"], g["out_size"])
    ref = F.pool2d(x, *geo, factor=float(factor))
    mag = F.pool2d(np.abs(x), *geo, factor=float(factor))
    assert np.all(np.abs(y - ref) <= gamma(kh * kw + 1) * mag + 1e-30)


@cfg(60)
@given(n=st.integers(1, 32), seed=seeds)
def test_scale_and_threshold_f32_match_float64(n, seed):
    rng = np.random.default_rng(seed)
    x = f32(rng.standard_normal(n) * 100)
    s = f32(rng.standard_normal(n))
    y = np.zeros(n, np.float32)
    scale_f32(x, s, y)
    assert np.all(np.abs(y - F.scale(x, s)) <= U * np.abs(F.scale(x, s)))
    th = f32(np.where(rng.random(n) < 0.3, x, rng.standard_normal(n) * 100))  # some ties: x > θ is strict
    out = np.full(n, 7, np.float32)
    threshold(x, th, out)
    assert np.array_equal(out, F.threshold(x, th))


def _flags(cuba, spiking, subtract, reset_delay, lag, ge, multi, shift=False, gsyn_id=False, gmem_id=False):
    f = 0
    for on, bit in [(cuba, CUBA), (spiking, SPIKING), (subtract, SUBTRACT), (reset_delay, RESET_DELAY),
                    (lag, CURRENT_LAG), (ge, THRESHOLD_GE), (multi, MULTISPIKE), (shift, SHIFT_DECAY),
                    (gsyn_id, GSYN_IDENTITY), (gmem_id, GMEM_IDENTITY)]:
        f |= bit if on else 0
    return f


@st.composite
def neuron_flags(draw, delay_needs_subtract=True):
    cuba = draw(st.booleans())
    spiking = draw(st.booleans())
    subtract = draw(st.booleans()) if spiking else True
    reset_delay = spiking and (subtract or not delay_needs_subtract) and draw(st.booleans())
    multi = spiking and draw(st.booleans())
    return dict(cuba=cuba, spiking=spiking, subtract=subtract, reset_delay=reset_delay,
                current_lag=cuba and draw(st.booleans()), threshold_ge=draw(st.booleans()), multispike=multi,
                max_spikes=draw(st.integers(1, 5)) if multi else 1)


@cfg(100)
@given(fl=neuron_flags(delay_needs_subtract=False), n=st.integers(1, 16), T=st.integers(1, 6), seed=seeds)
def test_neuron_f32_matches_float64_every_step(fl, n, T, seed):
    """Each step of the float32 kernel, from its own state, against the float64 equations.
    Neurons whose membrane is within the float32 error of a spike boundary are not compared
    at that step (either decision is right)."""
    rng = np.random.default_rng(seed)
    p = dict(alpha=rng.uniform(0, 1, n), g_syn=rng.normal(0, 1.5, n), beta=rng.uniform(0, 1, n),
             g_mem=rng.normal(0, 1.5, n), bias=rng.normal(0, 0.3, n),
             thr=rng.uniform(0.1, 2, n) if fl["multispike"] else rng.uniform(-0.5, 2, n),
             v_reset=rng.normal(0, 0.3, n))
    for k in ("alpha", "beta"):
        p[k][rng.random(n) < 0.15] = 1.0
    p = {k: f32(a) for k, a in p.items()}
    v = f32(rng.normal(0, 1.5, n))
    i = f32(rng.normal(0, 1.5, n)) if fl["cuba"] else np.zeros(0, np.float32)
    out = f32(rng.integers(0, fl["max_spikes"] + 1, n)) if fl["spiking"] else v.copy()
    flags = _flags(fl["cuba"], fl["spiking"], fl["subtract"], fl["reset_delay"], fl["current_lag"],
                   fl["threshold_ge"], fl["multispike"])
    kw = {k: fl[k] for k in ("cuba", "spiking", "subtract", "reset_delay", "current_lag", "threshold_ge",
                             "multispike", "max_spikes")}
    compared = 0
    for _ in range(T):
        x = f32(rng.normal(0, 2, n) if rng.random() < 0.7 else rng.integers(0, 2, n))
        v0, i0, o0 = v.astype(np.float64), i.astype(np.float64), out.astype(np.float64)
        rv, ri, rout, d, vpre = F.neuron_step(x, v0, i0 if fl["cuba"] else np.zeros(n), o0, p["alpha"], p["g_syn"],
                                              p["beta"], p["g_mem"], p["bias"], p["thr"], p["v_reset"], **kw)
        neuron_f32(x, v, i, out, p["alpha"], p["g_syn"], p["beta"], p["g_mem"], p["bias"], p["thr"], p["v_reset"],
                   np.int64(flags), np.int64(fl["max_spikes"]))
        g_m, thr = np.abs(p["g_mem"].astype(np.float64)), np.abs(p["thr"].astype(np.float64))
        if fl["cuba"]:
            mag_i = np.abs(p["alpha"] * i0) + np.abs(p["g_syn"] * x.astype(np.float64))
            tol_i = gamma(2) * mag_i
            assert np.all(np.abs(i - ri) <= tol_i + 1e-30)
            tol_d = 0.0 if fl["current_lag"] else tol_i
        else:
            tol_d = 0.0
        mag_v = np.abs(p["beta"] * v0) + g_m * (np.abs(d) + tol_d) + np.abs(p["bias"])
        if fl["spiking"] and fl["reset_delay"]:
            mag_v = mag_v + np.abs(o0 * thr)
        tol_pre = gamma(4) * mag_v + g_m * tol_d + 1e-30
        if not fl["spiking"]:
            assert np.all(np.abs(v - rv) <= tol_pre)
            assert np.array_equal(out, v)
            compared += n
            continue
        # decisions: v > thr (or >=) and, for multi-spike, floor(v / thr) at the boundaries k·thr
        ks = np.arange(1, fl["max_spikes"] + 1)[:, None]
        near = np.any(np.abs(vpre - ks * p["thr"]) <= tol_pre + ks * thr * 2 * U, axis=0)
        ok = ~near
        tol_v = tol_pre + gamma(2) * (np.abs(vpre) + np.abs(rout) * thr)
        assert np.array_equal(out[ok], rout[ok])
        assert np.all(np.abs(v - rv)[ok] <= tol_v[ok])
        compared += int(ok.sum())
    assert compared > 0 or T * n < 4


# ------------------------------------------------------------------ float vs integer twins


def _quantize_weights(w2d, bits, per_channel):
    qmax = 2 ** (bits - 1) - 1
    mx = np.abs(w2d).max(axis=1) if per_channel else np.full(w2d.shape[0], np.abs(w2d).max())
    s_w = np.where(mx > 0, mx / qmax, 1.0)
    wq = round_half_away(w2d / s_w[:, None])
    assert np.abs(wq).max(initial=0) <= qmax
    return wq.astype(np.int8 if bits == 8 else np.int16), s_w


def _quantize_input(x, kind):
    """(x_q, s_x, δ) with x ≈ x_q·s_x, |δ| = |x/s_x − x_q| <= 1/2 (0 for spikes, scale 1)."""
    x = x.astype(np.float64)
    if kind == "spikes":
        return x.astype(np.int32), 1.0, np.zeros_like(x)
    s_x = max(np.abs(x).max(), 1e-30) / 127
    xq = round_half_away(x / s_x)
    return xq.astype(np.int32), s_x, np.abs(x / s_x - xq)


@cfg(80)
@given(n_in=st.integers(1, 48), n_out=n_outputs, seed=seeds,
       kind=st.sampled_from(["spikes", "sparse", "dense"]), bits=st.sampled_from([8, 16]),
       per_channel=st.booleans(), has_b=st.booleans(), out_shift=st.integers(-4, 4))
def test_dense_twin_within_quantisation_bound(n_in, n_out, seed, kind, bits, per_channel, has_b, out_shift):
    """|y_q·s_out − y| <= s_x·s_w/2·Σ|x_q| (weights) + s_x/2·Σ|W|·[analog input] + s_x·s_w/2 (bias)
    + s_out·(|acc|·Δm + 1/2) (requantisation)."""
    rng = np.random.default_rng(seed)
    W = f32(rng.standard_normal((n_out, n_in)) * rng.uniform(0.01, 3, (n_out, 1)))
    b = f32(rng.standard_normal(n_out)) if has_b else np.zeros(0, np.float32)
    x = float_input(rng, n_in, kind)
    y_real = F.dense(x, W, b)
    wq, s_w = _quantize_weights(W.astype(np.float64), bits, per_channel)
    xq, s_x, dx = _quantize_input(x, kind)
    assume(not has_b or np.abs(b / (s_x * s_w)).max() < 2 ** 31 - 1)  # the quantizer would clip it
    bq = round_half_away(b / (s_x * s_w)).astype(np.int32) if has_b else np.zeros(0, np.int32)
    s_out = max(np.abs(y_real).max(), 1e-6) * 1.25 / (2 ** 15 - 1) * 2.0 ** out_shift
    M = s_x * s_w / s_out
    assume(np.abs(M).max() < 2 ** 30)
    ms = [to_multiplier(v) for v in M]
    m = np.array([a for a, _ in ms], np.int32)
    s = np.array([c for _, c in ms], np.int32)
    yq = np.zeros(n_out, np.int32)
    dense_int(xq, np.ascontiguousarray(wq.T), bq, yq, np.zeros(n_in, np.int64), np.zeros(n_out, np.int64), m, s, 0)
    acc = np.array(R.dense_acc(xq, wq, bq), np.float64)
    bound = (s_x * s_w / 2 * np.abs(xq).sum() + s_x * (np.abs(W.astype(np.float64)) @ dx)
             + (s_x * s_w / 2 if has_b else 0)
             + s_out * (np.abs(acc) * np.array([mult_err(a, c, v) for (a, c), v in zip(ms, M)]) + 0.5))
    slack = 1e-9 * (np.abs(W.astype(np.float64)) @ np.abs(x.astype(np.float64)) + (np.abs(b) if has_b else 0) + s_out)
    assert np.abs(yq).max() < 2 ** 31 - 1
    err = np.abs(yq * s_out - y_real)
    assert np.all(err <= bound + slack), (err, bound)
    # and against the float32 kernel, whose own error adds γ_{n+1}·Σ|x·w|
    y32 = _dense_f32_paths(x, W, b)[0]
    tol32 = gamma(n_in + 1) * (np.abs(W.astype(np.float64)) @ np.abs(x.astype(np.float64))
                               + (np.abs(b) if has_b else 0))
    assert np.all(np.abs(yq * s_out - y32) <= bound + slack + tol32)


@cfg(50)
@given(data=st.data(), seed=seeds, kind=st.sampled_from(["spikes", "sparse", "dense"]), bits=st.sampled_from([8, 16]),
       per_channel=st.booleans())
def test_conv2d_twin_within_quantisation_bound(data, seed, kind, bits, per_channel):
    g = conv_geometry(data.draw)
    rng = np.random.default_rng(seed)
    Co, cin_g = g["Co"], g["C"] // g["groups"]
    w = f32(rng.standard_normal((Co, cin_g, g["kh"], g["kw"])) * rng.uniform(0.01, 3, (Co, 1, 1, 1)))
    b = f32(rng.standard_normal(Co))
    x = float_input(rng, g["C"] * g["H"] * g["W"], kind)
    args = (g["C"], g["H"], g["W"])
    geo = (g["stride"], g["padding"], g["dilation"], g["groups"], g["out_size"])
    y_real = F.conv2d(x, *args, w, b, *geo)
    wq2, s_w = _quantize_weights(w.reshape(Co, -1).astype(np.float64), bits, per_channel)
    wq = wq2.reshape(w.shape)
    xq, s_x, dx = _quantize_input(x, kind)
    assume(np.abs(b / (s_x * s_w)).max() < 2 ** 31 - 1)
    bq = round_half_away(b / (s_x * s_w)).astype(np.int32)
    s_out = max(np.abs(y_real).max(), 1e-6) * 1.25 / (2 ** 15 - 1)
    M = s_x * s_w / s_out
    assume(np.abs(M).max() < 2 ** 30)
    ms = [to_multiplier(v) for v in M]
    m = np.array([a for a, _ in ms], np.int32)
    s = np.array([c for _, c in ms], np.int32)
    Ho, Wo = g["out_size"]
    n = Co * Ho * Wo
    yq = np.zeros(n, np.int32)
    conv2d_int(xq, scatter_weights(wq), bq, yq, conv_dims(g), np.zeros(n, np.int64), m, s, 0)
    acc = np.array(R.conv2d_acc(xq, *args, wq, bq, Co, g["kh"], g["kw"], g["stride"], g["padding"], g["dilation"],
                                g["groups"], g["out_size"]), np.float64)
    per = lambda a: np.repeat(np.asarray(a, np.float64), Ho * Wo)  # noqa: E731  per channel → per output
    sum_xq = F.conv2d(np.abs(xq), *args, np.ones_like(w), np.zeros(Co), *geo)      # Σ|x_q| over each window
    sum_wdx = F.conv2d(dx, *args, np.abs(w), np.zeros(Co), *geo)                    # Σ|w|·δ
    dm = np.array([mult_err(a, c, v) for (a, c), v in zip(ms, M)])
    bound = (per(s_x * s_w / 2) * sum_xq + s_x * sum_wdx + per(s_x * s_w / 2)
             + s_out * (np.abs(acc) * per(dm) + 0.5))
    mag = F.conv2d(np.abs(x), *args, np.abs(w), np.abs(b), *geo)
    assert np.abs(yq).max() < 2 ** 31 - 1
    assert np.all(np.abs(yq * s_out - y_real) <= bound + 1e-9 * (mag + s_out))
    y32 = _conv_f32_paths(x, w, b, g)[0]
    tol32 = gamma(cin_g * g["kh"] * g["kw"] + 1) * mag
    assert np.all(np.abs(yq * s_out - y32) <= bound + 1e-9 * (mag + s_out) + tol32)


@cfg(60)
@given(data=st.data(), seed=seeds, avg=st.booleans(), identity=st.booleans(), kind=st.sampled_from(["spikes", "dense"]))
def test_pool2d_twin_within_quantisation_bound(data, seed, avg, identity, kind):
    """Identity requantisation (s_out = factor·s_x, m=1, s=0): only the input rounding,
    factor·Σ_window δ·s_x. Otherwise also s_out·(|Σ x_q|·Δm + 1/2)."""
    g = pool_geometry(data.draw)
    rng = np.random.default_rng(seed)
    x = float_input(rng, g["C"] * g["H"] * g["W"], kind)
    kh, kw = g["kernel"]
    factor = 1.0 / (kh * kw) if avg else 1.0
    geo = (g["C"], g["H"], g["W"], g["kernel"], g["stride"], g["padding"], g["out_size"])
    y_real = F.pool2d(x, *geo, factor=factor)
    xq, s_x, dx = _quantize_input(x, kind)
    if identity:
        s_out, m, s = factor * s_x, 1, 0
        M = 1.0
    else:
        s_out = max(np.abs(y_real).max(), 1e-6) * 1.25 / (2 ** 15 - 1)
        M = factor * s_x / s_out
        assume(M < 2 ** 30)
        m, s = to_multiplier(M)
    Ho, Wo = g["out_size"]
    yq = np.zeros(g["C"] * Ho * Wo, np.int32)
    pool2d_int(xq, yq, pool_dims(g), np.int64(m), np.int64(s))
    sums = np.array(R.pool2d_sum(xq, *geo), np.float64)
    bound = factor * s_x * F.pool2d(dx, *geo) + (0 if identity else s_out * (np.abs(sums) * mult_err(m, s, M) + 0.5))
    mag = F.pool2d(np.abs(x), *geo, factor=factor)
    assert np.all(np.abs(yq * s_out - y_real) <= bound + 1e-9 * (mag + s_out))
    y32 = np.zeros_like(yq, dtype=np.float32)
    pool2d_f32(x, y32, pool_dims(g), np.float32(factor))
    # float32 factor 1/(kh·kw) is itself rounded: relative u more
    tol32 = gamma(kh * kw + 2) * mag
    assert np.all(np.abs(yq * s_out - y32) <= bound + 1e-9 * (mag + s_out) + tol32)


@cfg(60)
@given(n=st.integers(1, 32), seed=seeds, kind=st.sampled_from(["spikes", "dense"]))
def test_scale_twin_within_quantisation_bound(n, seed, kind):
    rng = np.random.default_rng(seed)
    x = float_input(rng, n, kind)
    sc = f32(rng.standard_normal(n) * 10.0 ** rng.uniform(-3, 3))
    y_real = F.scale(x, sc)
    xq, s_x, dx = _quantize_input(x, kind)
    assume(np.abs(y_real).max() > 0)
    s_out = np.abs(y_real).max() * 1.25 / (2 ** 15 - 1)
    M = s_x * sc.astype(np.float64) / s_out
    assume(np.abs(M).max() < 2 ** 30)
    ms = [to_multiplier(v) for v in M]
    m = np.array([a for a, _ in ms], np.int32)
    s = np.array([c for _, c in ms], np.int32)
    yq = np.zeros(n, np.int32)
    scale_int(xq, m, s, yq)
    dm = np.array([mult_err(a, c, v) for (a, c), v in zip(ms, M)])
    bound = np.abs(sc) * s_x * dx + s_out * (np.abs(xq) * dm + 0.5)
    assert np.all(np.abs(yq * s_out - y_real) <= bound + 1e-9 * (np.abs(y_real) + s_out))
    y32 = np.zeros(n, np.float32)
    scale_f32(x, sc, y32)
    assert np.all(np.abs(yq * s_out - y32) <= bound + 1e-9 * (np.abs(y_real) + s_out) + U * np.abs(y_real))


@cfg(80)
@given(n=st.integers(1, 32), seed=seeds, exp=st.integers(-20, 20))
def test_threshold_twin_is_exact(n, seed, exp):
    """θq = floor(θ/s_x) makes the integer test x_q > θq exactly the real test x_q·s_x > θ."""
    rng = np.random.default_rng(seed)
    s_x = float(rng.uniform(0.5, 1.5) * 2.0 ** exp)
    xq = rng.integers(-1000, 1000, n).astype(np.int32)
    r = rng.random(n)
    theta = np.where(r < 0.2, xq * s_x,                      # x·s_x ≈ θ (equal or an ulp off)
                     np.where(r < 0.4, (xq + rng.choice([-0.5, 0.5], n)) * s_x,
                              rng.uniform(-1000, 1000, n) * s_x))
    thq = np.array([R.threshold_q(t, s_x) for t in theta], np.int64)
    assume(np.all(np.abs(thq) < 2 ** 31))
    y = np.zeros(n, np.int32)
    threshold(xq, thq.astype(np.int32), y)
    real = [1 if Fraction(int(a)) * Fraction(s_x) > Fraction(float(t)) else 0 for a, t in zip(xq, theta)]
    assert y.tolist() == real


# ------------------------------------------------------------------ neuron twin


@st.composite
def twin_neuron_case(draw):
    fl = draw(neuron_flags())
    return dict(fl, decay=draw(st.sampled_from(["mul", "shift"])), bits=draw(st.sampled_from([16, 32])),
                dq=draw(st.sampled_from([15, 15, 12, 20])), n=draw(st.integers(1, 12)), T=draw(st.integers(1, 40)),
                seed=draw(seeds), gsyn_unit=draw(st.booleans()), gmem_unit=draw(st.booleans()),
                spike_input=draw(st.booleans()), coarse=draw(st.sampled_from([0, 0, 24, 150])))


@cfg(120)
@given(case=twin_neuron_case())
def test_neuron_twin_within_quantisation_bound(case):
    """Quantise a random neuron population as the quantizer does (state scale from a float
    calibration run with 25 % headroom, decays as round(β·2^dq) or shifts, gains as (m, s),
    identity gains where the scales make them exactly 1), run the float64 equations and the
    integer kernel side by side, and check after every step, per neuron:

        |i_q − i/s_i| <= E_i,   |v_q − v/s_v| <= E_v     (recursions in the module docstring)

    and that a spike count differs only where the float membrane was within E_v (plus the
    threshold rounding) of a decision boundary k·θ; such a neuron is not followed further.
    For I / LI populations also the closed form E_v <= E_0·β_q^t + (1/2 + e)/(1 − β_q).
    The first step is also checked against the float32 kernel (with its own error added).
    """
    c = case
    n, T = c["n"], c["T"]
    rng = np.random.default_rng(c["seed"])
    cuba, spiking, multi = c["cuba"], c["spiking"], c["multispike"]
    # ---- float parameters (float32 values)
    if c["decay"] == "shift":
        kb, ka = rng.integers(0, 9, n), rng.integers(0, 9, n)
        beta, alpha = 1 - 2.0 ** -kb, 1 - 2.0 ** -ka
    else:
        beta, alpha = rng.uniform(0, 1, n), rng.uniform(0, 1, n)
        beta[rng.random(n) < 0.1] = 1.0
    g_syn = np.full(n, rng.uniform(0.3, 2)) if c["gsyn_unit"] else rng.uniform(0.2, 2, n) * rng.choice([-1, 1], n)
    g_mem = np.full(n, rng.uniform(0.3, 2)) if c["gmem_unit"] else rng.uniform(0.2, 2, n) * rng.choice([-1, 1], n)
    p = {k: f32(a) for k, a in dict(alpha=alpha, beta=beta, g_syn=g_syn, g_mem=g_mem, bias=rng.normal(0, 0.1, n),
                                    thr=rng.uniform(0.5, 2, n), v_reset=rng.uniform(-0.3, 0.3, n)).items()}
    P = {k: a.astype(np.float64) for k, a in p.items()}
    xs = (rng.random((T, n)) < 0.3).astype(np.float32) if c["spike_input"] else \
        f32(rng.normal(0.3, 1.0, (T, n)))
    v_init = f32(rng.uniform(-1, 1, n))
    i_init = f32(rng.normal(0, 0.5, n)) if cuba else np.zeros(n, np.float32)
    kw = {k: c[k] for k in ("cuba", "spiking", "subtract", "reset_delay", "current_lag", "threshold_ge",
                            "multispike", "max_spikes")}

    def float_run(xs_):
        v, i, out = v_init.astype(np.float64), i_init.astype(np.float64), np.zeros(n)
        traj = []
        for x in xs_:
            v_old, i_old, out_old = v, i, out
            v, i, out, d, vpre = F.neuron_step(x, v, i, out, P["alpha"], P["g_syn"], P["beta"], P["g_mem"], P["bias"],
                                               P["thr"], P["v_reset"], **kw)
            traj.append((v_old, i_old, out_old, v, i, out, d, vpre))
        return traj

    traj = float_run(xs.astype(np.float64))
    # ---- scales, as the quantizer picks them (calibration on this very run)
    # the quantizer's span, or a coarse one (24 or 150 LSB) where spike decisions do differ
    span = c["coarse"] or (2 ** 15 - 1 if c["bits"] == 16 else 2 ** 24)
    vmax = max(max(np.abs(t[7]).max() for t in traj), np.abs(v_init).max(), P["thr"].max() if spiking else 0,
               np.abs(P["v_reset"]).max() if spiking else 0, 1e-6)
    s_v = vmax * 1.25 / span
    s_i = max(max(np.abs(t[4]).max() for t in traj), np.abs(i_init).max(), 1e-6) * 1.25 / span if cuba else None
    gm_id_wanted = c["gmem_unit"] and (not cuba or s_v / g_mem[0] >= s_i)
    if cuba and gm_id_wanted:
        s_i = s_v / float(p["g_mem"][0])
    xmax = max(float(np.abs(xs).max()), 1e-6)
    if cuba and c["gsyn_unit"]:
        s_x = s_i / float(p["g_syn"][0])
    elif not cuba and gm_id_wanted:
        s_x = s_v / float(p["g_mem"][0])
    else:
        s_x = 1.0 if c["spike_input"] else xmax / 127
    s_d = s_i if cuba else s_x
    assume(np.abs(xs / s_x).max() < 2 ** 30)
    # ---- integer parameters
    dq = c["dq"]
    if c["decay"] == "shift":
        beta_m, alpha_m = kb.astype(np.int32), ka.astype(np.int32)
        beta_q, alpha_q = 1 - 2.0 ** -kb, 1 - 2.0 ** -ka
    else:
        beta_m = np.clip(round_half_away(P["beta"] * 2 ** dq), 0, 2 ** dq).astype(np.int32)
        alpha_m = np.clip(round_half_away(P["alpha"] * 2 ** dq), 0, 2 ** dq).astype(np.int32)
        beta_q, alpha_q = beta_m / 2 ** dq, alpha_m / 2 ** dq
    M_gs = P["g_syn"] * s_x / s_i if cuba else np.zeros(n)
    M_gm = P["g_mem"] * s_d / s_v
    gs = [to_multiplier(v) for v in M_gs]
    gm = [to_multiplier(v) for v in M_gm]
    gsyn_id = cuba and all(t == (1, 0) for t in gs)
    gmem_id = all(t == (1, 0) for t in gm)
    dm_gs = np.array([mult_err(a, b, v) for (a, b), v in zip(gs, M_gs)])
    dm_gm = np.array([mult_err(a, b, v) for (a, b), v in zip(gm, M_gm)])
    lo, hi = R.state_range(c["bits"])
    bias_q = round_half_away(P["bias"] / s_v)
    thr_q = np.maximum(round_half_away(P["thr"] / s_v), 1)
    vres_q = round_half_away(P["v_reset"] / s_v)
    e_bias = np.abs(bias_q - P["bias"] / s_v)
    e_thr = np.abs(thr_q - P["thr"] / s_v)
    e_vres = np.abs(vres_q - P["v_reset"] / s_v)
    ip = {"alpha_m": alpha_m, "beta_m": beta_m,
          "gsyn_m": np.array([a for a, _ in gs], np.int32), "gsyn_s": np.array([b for _, b in gs], np.int32),
          "gmem_m": np.array([a for a, _ in gm], np.int32), "gmem_s": np.array([b for _, b in gm], np.int32),
          "bias": bias_q.astype(np.int32), "thr": thr_q.astype(np.int32), "v_reset": vres_q.astype(np.int32)}
    flags = _flags(cuba, spiking, c["subtract"], c["reset_delay"], c["current_lag"], c["threshold_ge"], multi,
                   c["decay"] == "shift", gsyn_id, gmem_id)
    sdt = np.int16 if c["bits"] == 16 else np.int32
    vq = round_half_away(v_init / s_v).astype(sdt)
    iq = round_half_away(i_init / s_i).astype(sdt) if cuba else np.zeros(0, sdt)
    outq = np.zeros(n, np.int32) if spiking else vq.astype(np.int32)
    E_v = np.abs(vq - v_init.astype(np.float64) / s_v)
    E_i = np.abs(iq - i_init.astype(np.float64) / s_i) if cuba else np.zeros(n)
    E_v0 = E_v.copy()
    e_step_max = np.zeros(n)
    alive = np.ones(n, bool)
    # float64 evaluation of the bounds themselves: values reach 2^30 LSB, so allow a few ulp of that
    tiny = 1e-9 + 4e-16 * 2 ** 31
    # ---- the float32 kernel, first step only (for the single-step float32-twin check)
    v32, i32, o32 = v_init.copy(), i_init.copy() if cuba else np.zeros(0, np.float32), np.zeros(n, np.float32)
    if not spiking:
        o32 = v32.copy()
    neuron_f32(xs[0], v32, i32, o32, p["alpha"], p["g_syn"], p["beta"], p["g_mem"], p["bias"], p["thr"],
               p["v_reset"], np.int64(_flags(cuba, spiking, c["subtract"], c["reset_delay"], c["current_lag"],
                                             c["threshold_ge"], multi)), np.int64(c["max_spikes"]))

    for t in range(T):
        x = xs[t].astype(np.float64)
        xq = round_half_away(x / s_x).astype(np.int32)
        dx = np.abs(x / s_x - xq)
        v_old_f, i_old_f, out_old_f, v_f, i_f, out_f, d_f, vpre_f = traj[t]
        iq_old = iq.astype(np.int64).copy()
        nsat = neuron_int(xq, vq, iq, outq, ip["alpha_m"], ip["gsyn_m"], ip["gsyn_s"], ip["beta_m"], ip["gmem_m"],
                          ip["gmem_s"], ip["bias"], ip["thr"], ip["v_reset"], np.int64(flags),
                          np.int64(c["max_spikes"]), np.int64(dq), np.int64(lo), np.int64(hi))
        if nsat:
            break  # the bounds assume no clamping; the headroom makes this rare
        # ---- current
        if cuba:
            e_gs = np.abs(xq) * dm_gs + np.abs(M_gs) * dx + (0.0 if gsyn_id else 0.5)
            E_i_new = alpha_q * E_i + np.abs(alpha_q - P["alpha"]) * np.abs(i_old_f) / s_i + 0.5 + e_gs
            assert np.all((np.abs(iq - i_f / s_i) <= E_i_new + tiny)[alive]), "current outside its bound"
            E_d = E_i if c["current_lag"] else E_i_new
            d_q = iq_old if c["current_lag"] else iq.astype(np.int64)
            E_i = E_i_new
        else:
            E_d, d_q = dx, xq.astype(np.int64)
        e_gm = np.abs(d_q) * dm_gm + np.abs(M_gm) * E_d + (0.0 if gmem_id else 0.5)
        e_in = np.abs(beta_q - P["beta"]) * np.abs(v_old_f) / s_v + 0.5 + e_gm + e_bias
        if spiking and c["reset_delay"]:
            e_in = e_in + out_old_f * e_thr
        e_step_max = np.maximum(e_step_max, e_in)
        E_pre = beta_q * E_v + e_in
        vqf = vq.astype(np.float64)
        # float32 kernel error of the first step (see test_neuron_f32_matches_float64_every_step)
        mag_i = np.abs(P["alpha"] * i_old_f) + np.abs(P["g_syn"] * x) if cuba else np.zeros(n)
        tol32 = gamma(8) * (np.abs(P["beta"] * v_old_f) + np.abs(P["g_mem"]) * (np.abs(d_f) + 2 * mag_i)
                            + np.abs(P["bias"]) + np.abs(vpre_f) + ((out_old_f + out_f) * P["thr"] if spiking else 0)
                            ) + 1e-30
        if not spiking:
            E_v = E_pre
            assert np.all((np.abs(vqf - v_f / s_v) <= E_v + tiny)[alive]), "membrane outside its bound"
            if not cuba:  # closed form: E_0·β^t + e/(1 − β) (or E_0 + t·e when β_q = 1)
                steps = t + 1
                closed = np.where(beta_q < 1, E_v0 * beta_q ** steps + e_step_max / np.maximum(1 - beta_q, 1e-300),
                                  E_v0 + steps * e_step_max)
                assert np.all(np.abs(vqf - v_f / s_v) <= closed + tiny)
            if t == 0:
                assert np.all(np.abs(vqf * s_v - v32) <= (E_v + tiny) * s_v + tol32)
            continue
        # ---- spikes: agree, or the float membrane was within the bound of a boundary k·θ
        ks = np.arange(1, c["max_spikes"] + 1)[:, None]
        margin = np.min(np.abs(vpre_f / s_v - ks * P["thr"] / s_v) - (E_pre + ks * e_thr), axis=0)
        differs = outq != out_f
        assert np.all(margin[differs & alive] <= tiny), "a spike differs although the membrane was clear of θ"
        if t == 0:  # float32 and float64 decide alike unless v_pre is within tol32 of a boundary
            near32 = np.min(np.abs(vpre_f - ks * P["thr"]), axis=0) <= tol32 + ks.max() * P["thr"] * 2 * U
            assert np.all((o32 == outq) | near32 | differs)
        alive &= ~differs
        fired = out_f > 0
        if c["reset_delay"]:
            E_v = E_pre
        elif c["subtract"]:
            E_v = E_pre + out_f * e_thr
        else:
            E_v = np.where(fired, e_vres, E_pre)
        assert np.all((np.abs(vqf - v_f / s_v) <= E_v + tiny)[alive]), "membrane outside its bound"
        if t == 0:
            ok = alive & (o32 == out_f)
            assert np.all((np.abs(vqf * s_v - v32) <= (E_v + tiny) * s_v + tol32)[ok])
