"""Sample encoders (direct, delta, sigma_delta, rate) on real IMU data against straightforward
hand-written Python references, across chunk boundaries (any chunking gives the same steps),
resampling against numpy.interp, Poisson seeding and rate statistics, configuration errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgebrain.errors import InputError
from edgebrain.stream import Samples, SourceInfo, open_source
from edgebrain.stream.registry import build_encoder, encoders
from tests.conftest import IMU_CSV, need

NAMES = ["x_acc", "y_acc", "z_acc", "x_gyro", "y_gyro", "z_gyro"]


@pytest.fixture(scope="module")
def imu(datasets):
    """t (s, from the file's timestamps), values (n, 6) float32, labels of the real recording."""
    src = open_source(str(need(datasets / IMU_CSV)))
    ch = list(src.chunks())
    return (np.concatenate([c.t for c in ch]), np.concatenate([c.values for c in ch]),
            np.concatenate([c.labels for c in ch]), src.info)


def chunks_of(t, v, labels, sizes):
    """Split a recording into chunks of the given sizes (cycled); chunk k arrives at time k."""
    out, a, k = [], 0, 0
    while a < len(t):
        n = sizes[k % len(sizes)]
        out.append(Samples(t[a:a + n], v[a:a + n], None if labels is None else labels[a:a + n], float(k)))
        a, k = a + n, k + 1
    return out


def run(spec, info, chunks, shape=None, dt=None):
    enc = build_encoder(spec)
    enc.configure(info, shape, dt)
    steps = [enc.encode(c) for c in chunks]
    x = np.concatenate([s.x for s in steps])
    t = np.concatenate([s.t for s in steps])
    arr = np.concatenate([s.arrival for s in steps])
    lab = None if steps[0].labels is None else np.concatenate([np.asarray(s.labels, object) for s in steps])
    return x, t, arr, lab, enc


RAGGED = [1, 7, 64, 3, 200, 2, 33]


def bar(a):
    return "|".join(repr(float(x)) for x in a)


def standardised(v):
    mean, std = v.astype(np.float64).mean(0), v.astype(np.float64).std(0)
    return mean, 1.0 / std


# ---------------------------------------------------------------------- direct


def test_registry_has_the_sample_encoders():
    assert {"direct", "delta", "sigma_delta", "rate"} <= set(encoders())


def test_direct(imu):
    t, v, lab, info = imu
    mean, inv = standardised(v)
    spec = "direct:offset=" + bar(mean) + ",scale=" + bar(inv)
    x, ts, arr, lb, enc = run(spec, info, chunks_of(t, v, lab, [len(t)]), shape=(6,))
    ref = np.array([[(float(v[i, c]) - mean[c]) * inv[c] for c in range(6)] for i in range(len(v))], np.float32)
    np.testing.assert_array_equal(x, ref)
    np.testing.assert_array_equal(ts, t)
    assert list(lb) == list(lab) and enc.resampling is None
    # chunked, with channel selection/reorder and a 2-D model input
    x2, ts2, arr2, lb2, _ = run("direct:channels=5|0|3,scale=2,offset=0.5", info, chunks_of(t, v, lab, RAGGED),
                                shape=(1, 3))
    assert x2.shape == (len(t), 1, 3)
    np.testing.assert_array_equal(x2[:, 0], ((v[:, [5, 0, 3]].astype(np.float64) - 0.5) * 2).astype(np.float32))
    # the arrival of each step is that of its sample's chunk
    sizes = [c.values.shape[0] for c in chunks_of(t, v, lab, RAGGED)]
    np.testing.assert_array_equal(arr2, np.repeat(np.arange(len(sizes), dtype=float), sizes))


# ---------------------------------------------------------------------- delta


def ref_delta(x, thr, cap=0):
    """Send-on-delta, one threshold crossing at a time; the reference starts at 0."""
    T, C = x.shape
    ref = [0.0] * C
    out = np.zeros((T, C))
    for t in range(T):
        for c in range(C):
            k = 0
            while x[t, c] - ref[c] >= thr[c] and (not cap or k < cap):
                ref[c] += thr[c]
                k += 1
            while ref[c] - x[t, c] >= thr[c] and (not cap or -k < cap):
                ref[c] -= thr[c]
                k -= 1
            out[t, c] = k
    return out


@pytest.mark.parametrize("cap", [0, 1, 2])
def test_delta_against_reference(imu, cap):
    t, v, lab, info = imu
    thr = [0.25, 0.5, 0.125, 0.0625, 0.03125, 0.0625]        # dyadic: the reference sums are exact
    spec = "delta:init=zero,threshold=" + "|".join(map(str, thr)) + (f",max_spikes={cap}" if cap else "")
    ref = ref_delta(v.astype(np.float64), thr, cap)
    whole, *_ = run(spec, info, chunks_of(t, v, lab, [len(t)]), shape=(6,))
    np.testing.assert_array_equal(whole, ref)
    assert np.abs(ref).sum() > 500 and (np.abs(ref) > 1).any() == (cap != 1)
    chunked, ts, _, lb, _ = run(spec, info, chunks_of(t, v, lab, RAGGED), shape=(6,))
    np.testing.assert_array_equal(chunked, whole)
    assert list(lb) == list(lab)
    split, *_ = run(spec + ",layout=split", info, chunks_of(t, v, lab, RAGGED), shape=(12,))
    np.testing.assert_array_equal(split, np.concatenate([np.maximum(ref, 0), np.maximum(-ref, 0)], axis=1))


def test_delta_tracks_the_signal(imu):
    """init=first: no spikes for the initial level, and the reference (first sample + threshold ×
    the running sum of the counts) stays within one threshold of the signal."""
    t, v, lab, info = imu
    x, *_ = run("delta:threshold=0.2", info, chunks_of(t, v, lab, RAGGED), shape=(6,))
    assert not x[0].any()
    recon = v[0].astype(np.float64) + 0.2 * np.cumsum(x, axis=0)
    assert np.abs(recon - v).max() < 0.2 + 1e-9


# ---------------------------------------------------------------------- sigma-delta


def ref_sigma_delta(x, thr, cap=0):
    T, C = x.shape
    acc = [0.0] * C
    out = np.zeros((T, C))
    for t in range(T):
        for c in range(C):
            a = acc[c] + x[t, c]
            k = math.floor(a / thr[c]) if a >= thr[c] else (-math.floor(-a / thr[c]) if a <= -thr[c] else 0)
            if cap:
                k = max(-cap, min(cap, k))
            acc[c] = a - k * thr[c]
            out[t, c] = k
    return out


@pytest.mark.parametrize("cap", [0, 3])
def test_sigma_delta_against_reference(imu, cap):
    t, v, lab, info = imu
    mean, inv = standardised(v)
    xs = (v.astype(np.float64) - mean) * inv
    thr = [1.0, 2.0, 0.5, 1.5, 1.0, 3.0]
    spec = ("sigma_delta:threshold=" + "|".join(map(str, thr)) + ",offset=" + bar(mean)
            + ",scale=" + bar(inv) + (f",max_spikes={cap}" if cap else ""))
    ref = ref_sigma_delta(xs, thr, cap)
    whole, *_ = run(spec, info, chunks_of(t, v, lab, [len(t)]), shape=(6,))
    np.testing.assert_array_equal(whole, ref)
    chunked, *_ = run(spec, info, chunks_of(t, v, lab, RAGGED), shape=(6,))
    np.testing.assert_array_equal(chunked, whole)
    if not cap:
        # what was sent (threshold × running count) follows the running integral within one threshold
        err = np.cumsum(xs, axis=0) - np.cumsum(ref, axis=0) * np.array(thr)
        assert np.all(np.abs(err) < np.array(thr) + 1e-9)


# ---------------------------------------------------------------------- rate


def ref_rate(x, per_step, cap):
    T, C = x.shape
    acc = [0.0] * C
    out = np.zeros((T, C))
    for t in range(T):
        for c in range(C):
            acc[c] += max(x[t, c], 0.0) * per_step
            k = math.floor(acc[c])
            acc[c] -= k
            out[t, c] = min(k, cap) if cap else k
    return out


def test_rate_deterministic_against_reference(imu):
    t, v, lab, info = imu
    xs = np.abs(v.astype(np.float64))
    # model at 100 steps/s (the source rate), gain 30 spikes/s per unit: 0.3 per step per unit
    spec = "rate:gain=30,scale=1"
    enc_chunks = chunks_of(t, np.abs(v), lab, RAGGED)
    x, ts, *_ = run(spec, info, enc_chunks, shape=(6,), dt=0.01)
    np.testing.assert_array_equal(x, ref_rate(xs, 0.3, 1))
    x2, *_ = run(spec + ",max_spikes=0", info, enc_chunks, shape=(6,), dt=0.01)
    np.testing.assert_array_equal(x2, ref_rate(xs, 0.3, 0))
    assert x2.max() > 1 and x.max() == 1
    # split layout codes positive and negative parts
    x3, *_ = run("rate:gain=30,layout=split", info, chunks_of(t, v, lab, RAGGED), shape=(12,), dt=0.01)
    np.testing.assert_array_equal(x3[:, :6], ref_rate(v.astype(np.float64), 0.3, 1))
    np.testing.assert_array_equal(x3[:, 6:], ref_rate(-v.astype(np.float64), 0.3, 1))


def test_rate_poisson_seeded(imu):
    t, v, lab, info = imu
    mean, inv = standardised(v)
    spec = ("rate:mode=poisson,gain=40,seed=7,offset=" + bar(mean) + ",scale="
            + bar(inv))
    a, *_ = run(spec, info, chunks_of(t, v, lab, [len(t)]), shape=(6,), dt=0.01)
    b, *_ = run(spec, info, chunks_of(t, v, lab, RAGGED), shape=(6,), dt=0.01)
    np.testing.assert_array_equal(a, b)                       # chunking does not change the draws
    c, *_ = run(spec.replace("seed=7", "seed=8"), info, chunks_of(t, v, lab, RAGGED), shape=(6,), dt=0.01)
    assert (a != c).any()
    enc = build_encoder(spec)
    enc.configure(info, (6,), 0.01)
    first = np.concatenate([enc.encode(ch).x for ch in chunks_of(t, v, lab, RAGGED)])
    enc.reset()
    again = np.concatenate([enc.encode(ch).x for ch in chunks_of(t, v, lab, RAGGED)])
    np.testing.assert_array_equal(first, again)
    # statistics: spikes ~ Bernoulli(p), p = clip(x · gain · dt); negative x never spikes
    p = np.clip((v.astype(np.float64) - mean) * inv * 40 * 0.01, 0, 1)
    assert set(np.unique(a)) <= {0.0, 1.0}
    assert not a[p == 0].any()
    s, m, sd = a.sum(), p.sum(), math.sqrt((p * (1 - p)).sum())
    assert abs(s - m) < 5 * sd, (s, m, sd)
    for c in range(6):
        assert abs(a[:, c].sum() - p[:, c].sum()) < 5 * math.sqrt((p[:, c] * (1 - p[:, c])).sum()) + 1
    # a constant input: the rate is p per step, for a long run
    n = 40000
    const = Samples(np.arange(n) / 100.0, np.full((n, 2), [0.25, 0.8], np.float32))
    enc = build_encoder("rate:mode=poisson,seed=3")
    enc.configure(SourceInfo("x", "samples", rate=100.0, channels=2), (2,), None)
    r = enc.encode(const).x.mean(0)
    for got, want in zip(r, [0.25, 0.8]):
        assert abs(got - want) < 5 * math.sqrt(want * (1 - want) / n)
    # deterministic with the same mean rate spikes exactly floor(sum) times (or one less)
    enc = build_encoder("rate")
    enc.configure(SourceInfo("x", "samples", rate=100.0, channels=2), (2,), None)
    d = enc.encode(const).x.sum(0)
    np.testing.assert_allclose(d, [0.25 * n, 0.8 * n], atol=1)


# ---------------------------------------------------------------------- resampling


@pytest.mark.parametrize("rate", [40.0, 250.0, 33.3])
def test_resampling_against_numpy_interp(imu, rate):
    t, v, lab, info = imu
    x, ts, arr, lb, enc = run(f"direct:rate={rate:g}", info, chunks_of(t, v, lab, RAGGED), shape=(6,))
    assert enc.resampling and "100 Hz" in enc.resampling
    k = np.arange(int(math.floor((t[-1] - t[0]) * rate + 1e-9)) + 1)
    tau = t[0] + k / rate
    np.testing.assert_allclose(ts, tau, rtol=0, atol=1e-12)
    ref = np.stack([np.interp(tau, t, v[:, c].astype(np.float64)) for c in range(6)], axis=1)
    np.testing.assert_allclose(x, ref.astype(np.float32), rtol=1e-6, atol=1e-6)
    # label: the newest sample at or before the step; arrival: the chunk of the newest sample used
    i = np.searchsorted(t, tau, side="right") - 1
    assert list(lb) == list(lab[i])
    sizes = [c.values.shape[0] for c in chunks_of(t, v, lab, RAGGED)]
    chunk_of = np.repeat(np.arange(len(sizes)), sizes)
    np.testing.assert_array_equal(arr, chunk_of[np.searchsorted(t, tau, side="left")])
    # the same in one chunk
    x1, ts1, *_ = run(f"direct:rate={rate:g}", info, chunks_of(t, v, lab, [len(t)]), shape=(6,))
    np.testing.assert_array_equal(x1, x)
    np.testing.assert_array_equal(ts1, ts)


def test_model_dt_sets_the_step_rate(imu):
    t, v, lab, info = imu
    x, ts, *_ , enc = run("delta:threshold=0.5", info, chunks_of(t, v, lab, RAGGED), shape=(6,), dt=1 / 50)
    assert "100 Hz → 50 Hz" in enc.resampling and len(x) == len(ts)
    np.testing.assert_allclose(np.diff(ts), 0.02, atol=1e-9)
    # the same rate as the source: no resampling, one step per sample
    x, ts, *_, enc = run("delta:threshold=0.5", info, chunks_of(t, v, lab, RAGGED), shape=(6,), dt=0.01)
    assert enc.resampling is None and len(x) == len(t)
    # an encoder rate= overrides the model's
    x, ts, *_, enc = run("direct:rate=20", info, chunks_of(t, v, lab, RAGGED), shape=(6,), dt=0.01)
    assert "→ 20 Hz" in enc.resampling


# ---------------------------------------------------------------------- configuration


def test_configuration_errors(imu):
    t, v, lab, info = imu
    with pytest.raises(InputError, match=r"gives 12 values per step \(2 × 6 channels, layout=split\).*"
                                         r"model input has shape \(6,\)"):
        build_encoder("delta:layout=split").configure(info, (6,), None)
    with pytest.raises(InputError, match=r"gives 6 values per step .*x_acc.*shape \(3,\) = 3 values"):
        build_encoder("direct").configure(info, (3,), None)
    with pytest.raises(InputError, match="channels=7 but the source has 6 channels"):
        build_encoder("direct:channels=7").configure(info, None, None)
    with pytest.raises(InputError, match="2 scale values for 6 channels"):
        build_encoder("direct:scale=1|2").configure(info, (6,), None)
    with pytest.raises(InputError, match="takes samples"):
        build_encoder("rate").configure(SourceInfo("evt3", "events", sensor_size=(8, 8)), (6,), None)
    with pytest.raises(InputError, match="threshold"):
        build_encoder("delta:threshold=0")
    with pytest.raises(InputError, match="layout"):
        build_encoder("sigma_delta:layout=grid")
    with pytest.raises(InputError, match="mode"):
        build_encoder("rate:mode=burst")
    with pytest.raises(InputError, match="unknown encoder"):
        build_encoder("deltaa")
    enc = build_encoder("direct:channels=0|1|2")
    enc.configure(info, (3,), None)                        # fine


def test_spec_round_trip_and_reset(imu):
    t, v, lab, info = imu
    for spec in ("delta:threshold=0.3|0.2|0.1|0.05|0.05|0.05,max_spikes=2,layout=split",
                 "sigma_delta:threshold=1.5,channels=2|1,scale=0.5", "rate:mode=poisson,gain=25,seed=4",
                 "direct:offset=1,rate=50"):
        enc = build_encoder(spec)
        enc.configure(info, None, None)
        a = np.concatenate([enc.encode(c).x for c in chunks_of(t, v, lab, RAGGED)])
        enc.reset()
        b = np.concatenate([enc.encode(c).x for c in chunks_of(t, v, lab, [100])])
        np.testing.assert_array_equal(a, b)
        enc2 = build_encoder(enc.spec())
        enc2.configure(info, None, None)
        c = np.concatenate([enc2.encode(ch).x for ch in chunks_of(t, v, lab, [len(t)])])
        np.testing.assert_array_equal(a, c)
