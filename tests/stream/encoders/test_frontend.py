"""Audio front end (edgebrain.stream.encoders.frontend, encoder "audio"): mel energies against librosa and a
direct NumPy computation, the band-pass biquad bank against scipy.signal.sosfilt + lfilter, chunking
invariance, step times and arrivals, the spike rules against plain Python loops, and a sanity check
that FSDD digits give distinct spike patterns."""

from __future__ import annotations

import numpy as np
import pytest

from edgebrain.errors import InputError
from edgebrain.stream import build_encoder, open_source
from edgebrain.stream.resample import Resampler
from edgebrain.stream.base import Samples, SourceInfo
from edgebrain.stream.encoders.frontend import AudioFrontEnd, mel_filters

signal = pytest.importorskip("scipy.signal")
sf = pytest.importorskip("soundfile")

FSDD = "audio/fsdd/recordings"


def fsdd16k(datasets, name="3_theo_12.wav"):
    """An FSDD recording resampled to 16 kHz (float32 mono), and the raw 8 kHz samples."""
    p = datasets / FSDD / name
    if not p.exists():
        pytest.skip(f"recording {p} not found")
    x8 = sf.read(str(p), dtype="float32")[0]
    r = Resampler(8000, 16000)
    y = np.concatenate([r.process(x8)[:, 0], r.flush()[:, 0]])
    return y, x8


def info(rate, channels=1):
    return SourceInfo(format="test", kind="samples", rate=float(rate), channels=channels)


def run(fe: AudioFrontEnd, x: np.ndarray, rate: float, sizes=None, flush=True):
    """Feed x (mono) in chunks of the given sizes (default one chunk); returns the concatenated Steps
    fields (x, t, arrival); chunk i arrives at time i."""
    sizes = [len(x)] if sizes is None else list(sizes)
    out, i, k = [], 0, 0
    while i < len(x):
        n = sizes[k % len(sizes)] if k < len(sizes) else len(x) - i
        c = x[i:i + n]
        out.append(fe.encode(Samples(t=(i + np.arange(len(c))) / rate, values=c[:, None], arrival=float(k))))
        i += len(c)
        k += 1
    if flush:
        f = fe.flush()
        if f is not None:
            out.append(f)
    out = [s for s in out if len(s)]
    return (np.concatenate([s.x for s in out]), np.concatenate([s.t for s in out]),
            np.concatenate([s.arrival for s in out]))


def frontend(sr, shape=None, dt=None, src_rate=None, **options):
    """A configured front end for a source at ``src_rate`` (default ``sr``)."""
    fe = AudioFrontEnd(**options)
    fe.configure(info(src_rate or sr), shape, dt)
    return fe


# ------------------------------------------------------------------ mel


def test_mel_filters_match_librosa():
    librosa = pytest.importorskip("librosa")
    for rate, n_fft, n_mels, fmin, fmax in [(16000, 512, 40, 20, 8000), (8000, 256, 32, 50, 4000),
                                            (16000, 1024, 64, 0, 7600)]:
        ours = mel_filters(rate, n_fft, n_mels, fmin, fmax)
        ref = librosa.filters.mel(sr=rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=True, norm=None)
        np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-6)


def test_mel_energies_match_librosa_melspectrogram(datasets):
    librosa = pytest.importorskip("librosa")
    y, _ = fsdd16k(datasets)
    hop, win = 160, 512
    fe = frontend(16000, channels=40, hop_ms=10, win_ms=32, fmin=20, fmax=8000, log="none")
    assert (fe.hop, fe.win, fe.n_fft) == (hop, win, 512)
    x, t, _ = run(fe, y, 16000, flush=False)
    # frame k ends with sample (k+1)·hop − 1, zeros before the start: librosa without centring on a
    # signal preceded by win − hop zeros
    padded = np.concatenate([np.zeros(win - hop), y.astype(np.float64)])
    ref = librosa.feature.melspectrogram(y=padded, sr=16000, n_fft=512, hop_length=hop, win_length=win,
                                         window="hann", center=False, power=2.0, n_mels=40, fmin=20, fmax=8000,
                                         htk=True, norm=None).T
    ref *= (2.0 / (win / 2.0)) ** 2               # the documented power scale (2/Σw)², Σ periodic Hann = win/2
    assert len(x) == len(y) // hop == len(ref)
    np.testing.assert_allclose(x, ref, rtol=1e-4, atol=1e-6 * ref.max())
    np.testing.assert_allclose(t, np.arange(1, len(x) + 1) * hop / 16000)


def test_mel_energies_direct_numpy_short_window(datasets):
    """win (25 ms = 400 samples) shorter than n_fft (512): a straightforward per-frame computation."""
    y, _ = fsdd16k(datasets, "8_jackson_3.wav")
    fe = frontend(16000, channels=32, hop_ms=10, win_ms=25, fmin=50, log="none")
    x, _, _ = run(fe, y, 16000, flush=False)
    win, hop = 400, 160
    w = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)
    fb = mel_filters(16000, 512, 32, 50, 8000)
    padded = np.concatenate([np.zeros(win - hop), y.astype(np.float64)])
    ref = []
    for k in range(len(y) // hop):
        seg = padded[k * hop:k * hop + win] * w
        spec = np.fft.fft(seg, 512)[:257]
        ref.append(fb @ (np.abs(spec) ** 2 * (2 / w.sum()) ** 2))
    np.testing.assert_allclose(x, np.array(ref), rtol=1e-4, atol=1e-7)


def test_mel_full_scale_sine_energy_is_about_one():
    rate = 16000
    f0 = 1000.0
    x = np.sin(2 * np.pi * f0 * np.arange(rate) / rate).astype(np.float32)
    fe = frontend(rate, channels=40, hop_ms=10, win_ms=32, log="none")
    e, _, _ = run(fe, x, rate, flush=False)
    peak = e[10:].max(axis=1)
    assert np.all((peak > 0.5) & (peak < 1.5)), peak


# ------------------------------------------------------------------ band-pass biquads


@pytest.mark.parametrize("rectify", ["square", "abs"])
def test_bandpass_matches_sosfilt(datasets, rectify):
    y, _ = fsdd16k(datasets)
    fe = frontend(16000, filterbank="bandpass", channels=32, hop_ms=10, fmin=100, fmax=7000, log="none",
                  rectify=rectify, tau_ms=5)
    x, _, _ = run(fe, y, 16000, flush=False)
    a = fe.leak
    assert abs(a - (1 - np.exp(-1 / (0.005 * 16000)))) < 1e-15
    ref = []
    for c in range(32):
        yc = signal.sosfilt(fe.sos[c:c + 1], y.astype(np.float64))
        r = 2 * yc ** 2 if rectify == "square" else np.abs(yc)
        e = signal.lfilter([a], [1, -(1 - a)], r)
        ref.append(e[fe.hop - 1::fe.hop][: len(y) // fe.hop])
    ref = np.array(ref).T
    assert x.shape == ref.shape
    np.testing.assert_allclose(x, ref, rtol=1e-6, atol=1e-9 * ref.max())


def test_bandpass_bank_design():
    fe = frontend(16000, channels=16, fmin=100, fmax=7000, filterbank="bandpass", log="none")
    sos = fe.sos
    assert sos.shape == (16, 6) and np.all(sos[:, 3] == 1)
    # every section is stable and has unit gain at its centre frequency, and the centres rise
    for s in sos:
        assert np.all(np.abs(np.roots([1, s[4], s[5]])) < 1)
    w0 = np.arccos(-sos[:, 4] / (1 + sos[:, 5]))       # RBJ: a1 = −2cos(w0)/a0, a2 = (1 − α)/a0
    assert np.all(np.diff(w0) > 0)
    for s, w in zip(sos, w0):
        _, h = signal.sosfreqz(s[None], worN=[w])
        assert abs(abs(h[0]) - 1) < 1e-9
    assert 100 < w0[0] * 16000 / (2 * np.pi) < 200 and 6000 < w0[-1] * 16000 / (2 * np.pi) < 7000


def int_bank_reference(xq, sos, hop, leak, square):
    """Plain-Python integer reference of the fixed-point bank, straight from the documented equations."""
    F, G, LB = 29, 8, 30

    def rsr(p, s):
        return (p + (1 << (s - 1))) >> s

    def sat32(v):
        return max(-(2 ** 31), min(2 ** 31 - 1, v))

    coef = [[int(round(float(v) * 2 ** F)) for v in (s[0], s[1], s[2], s[4], s[5])] for s in sos]
    lq = int(round(leak * 2 ** LB))
    C = len(sos)
    y1, y2, e = [0] * C, [0] * C, [0] * C
    x1 = x2 = 0
    out = []
    for i, x0 in enumerate(int(v) for v in xq):
        for c in range(C):
            b0, b1, b2, a1, a2 = coef[c]
            acc = ((b0 * x0 + b1 * x1 + b2 * x2) << G) - a1 * y1[c] - a2 * y2[c]
            y = sat32(rsr(acc, F))
            y2[c], y1[c] = y1[c], y
            r = min(rsr(y * y, 22), 2 ** 31 - 1) if square else abs(y)
            e[c] += rsr((r - e[c]) * lq, LB)
        x2, x1 = x1, x0
        if (i + 1) % hop == 0:
            out.append([v / 2 ** 23 for v in e])
    return np.array(out)


@pytest.mark.parametrize("rectify", ["square", "abs"])
def test_fixed_point_bank_matches_integer_reference(datasets, rectify):
    y, _ = fsdd16k(datasets, "4_george_1.wav")
    y = y[2400:4000] * 4                      # 0.1 s of loud speech, some of it clipping at ±1
    fe = frontend(16000, filterbank="bandpass", fixed=True, channels=6, hop_ms=5, fmin=200, fmax=6000,
                  log="none", rectify=rectify)
    x, _, _ = run(fe, y, 16000, [333], flush=False)
    xq = np.clip(np.floor(y.astype(np.float32) * np.float32(32768) + np.float32(0.5)), -32768, 32767)
    assert (np.abs(xq) == 32768).any() or (xq == 32767).any()     # saturation of the input is exercised
    ref = int_bank_reference(xq, fe.sos, fe.hop, fe.leak, rectify == "square")
    np.testing.assert_array_equal(x, ref)


def test_fixed_point_bank_close_to_float(datasets):
    y, _ = fsdd16k(datasets, "3_jackson_5.wav")
    common = dict(filterbank="bandpass", channels=32, log="none")
    a, _, _ = run(frontend(16000, **common), y, 16000)
    b, _, _ = run(frontend(16000, fixed=True, **common), y, 16000)
    assert np.abs(a - b).max() < 1e-3 * a.max()
    big = a > 1e-2 * a.max()
    assert (np.abs(a - b)[big] / a[big]).max() < 0.01
    with pytest.raises(InputError, match="fixed=true"):
        AudioFrontEnd(filterbank="mel", fixed=True)


# ------------------------------------------------------------------ chunking, times, arrivals


CONFIGS = [
    dict(filterbank="mel", output="features"),
    dict(filterbank="mel", output="delta", threshold=0.5, polarity=2),
    dict(filterbank="bandpass", output="features", log="log2"),
    dict(filterbank="bandpass", output="if", threshold=3.0, max_spikes=2),
    dict(filterbank="bandpass", output="delta", threshold=0.7, mean=1.0, scale=0.5),
    dict(filterbank="mel", output="if", threshold=2.0, win_ms=20, hop_ms=16),
    dict(filterbank="bandpass", output="delta", fixed=True, threshold=0.5),
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
def test_chunked_equals_one_chunk(datasets, cfg):
    """Any chunking gives exactly the same steps (with the front end's own 8 → 16 kHz resampling)."""
    _, x8 = fsdd16k(datasets)
    whole = run(frontend(16000, src_rate=8000, rate=16000, channels=24, **cfg), x8, 8000)
    rng = np.random.default_rng(1)
    for sizes in ([1] * 500, list(rng.integers(1, 400, 50)), [80], [4096]):
        fe = frontend(16000, src_rate=8000, rate=16000, channels=24, **cfg)
        got = run(fe, x8, 8000, sizes)
        np.testing.assert_array_equal(got[0], whole[0])
        np.testing.assert_array_equal(got[1], whole[1])
        # reset() starts over: the same again
        fe.reset()
        np.testing.assert_array_equal(run(fe, x8, 8000, sizes)[0], whole[0])
    hop = frontend(16000, channels=24, **cfg).hop
    assert whole[0].shape[0] == -(-(2 * len(x8)) // hop)    # every sample lands in a frame; the last is padded


def test_step_times_and_arrivals():
    rate, hop = 8000, 80
    x = np.random.default_rng(2).uniform(-0.5, 0.5, 1000).astype(np.float32)
    fe = frontend(rate, channels=8, hop_ms=10, filterbank="bandpass")
    sizes = [37, 200, 5, 333, 425]
    y, t, arrival = run(fe, x, rate, sizes)
    assert len(y) == 13                       # 12 whole frames and the padded partial one (40 samples)
    np.testing.assert_allclose(t, np.arange(1, 14) * hop / rate)
    ends = np.cumsum(sizes)
    for k in range(12):
        last = (k + 1) * hop - 1              # the frame's last sample …
        assert arrival[k] == np.searchsorted(ends, last, side="right")   # … arrived with this chunk
    assert arrival[12] == len(sizes) - 1       # flushed frame: the last chunk's arrival


def test_hop_from_model_dt_and_shapes():
    fe = frontend(16000, shape=(1, 20), dt=0.004, filterbank="mel")
    assert fe.hop == 64 and fe.n == 20
    y, _, _ = run(fe, np.zeros(640, np.float32), 16000, flush=False)
    assert y.shape == (10, 1, 20)
    fe = frontend(16000, shape=(40,), output="delta", channels=20)     # 2 × 20: ON and OFF channels
    assert fe.n == 20 and fe.polarity == 2
    fe = frontend(16000, shape=(40,), output="delta", polarity=2)
    assert fe.n == 20
    fe = frontend(16000, shape=(40,), output="delta")                  # default: signed spikes
    assert fe.n == 40 and fe.polarity == 1
    with pytest.raises(InputError, match="model input shape"):
        frontend(16000, shape=(40,), channels=32)
    with pytest.raises(InputError, match="unknown option"):
        AudioFrontEnd(chanels=3)
    with pytest.raises(InputError, match="filterbank"):
        AudioFrontEnd(filterbank="gammatone")
    with pytest.raises(InputError, match="fmax"):
        frontend(8000, fmax=6000)
    with pytest.raises(InputError, match="mean"):
        frontend(8000, channels=4, mean=[1.0, 2.0])


def test_spec_string_roundtrip():
    fe = build_encoder("audio:filterbank=bandpass,channels=16,mean=1|2|3|4|5|6|7|8|9|10|11|12|13|14|15|16,"
                       "output=delta,threshold=0.25")
    assert isinstance(fe, AudioFrontEnd)
    again = build_encoder(fe.spec())
    assert again.options == fe.options
    fe.configure(info(16000), None, None)
    np.testing.assert_array_equal(fe.mean, np.arange(1, 17))


def test_stereo_is_mixed_to_mono():
    rng = np.random.default_rng(3)
    st = rng.uniform(-0.5, 0.5, (1600, 2)).astype(np.float32)
    a = AudioFrontEnd(channels=8, filterbank="bandpass")
    a.configure(info(8000, 2), None, None)
    ya = a.encode(Samples(t=np.arange(1600) / 8000, values=st)).x
    b = frontend(8000, channels=8, filterbank="bandpass")
    yb = b.encode(Samples(t=np.arange(1600) / 8000, values=st.mean(axis=1, dtype=np.float32)[:, None])).x
    np.testing.assert_array_equal(ya, yb)


# ------------------------------------------------------------------ spike rules vs plain Python


def delta_reference(f, theta, max_spikes):
    T, C = f.shape
    out = np.zeros((T, C))
    r = [0.0] * C
    for t in range(T):
        for c in range(C):
            n = int((float(f[t, c]) - r[c]) / theta[c])        # int() truncates toward zero
            n = max(-max_spikes, min(max_spikes, n))
            r[c] += n * theta[c]
            out[t, c] = n
    return out


def if_reference(f, theta, max_spikes):
    T, C = f.shape
    out = np.zeros((T, C))
    v = [0.0] * C
    for t in range(T):
        for c in range(C):
            v[c] = max(v[c] + float(f[t, c]), 0.0)
            if v[c] >= theta[c]:
                n = min(int(v[c] // theta[c]), max_spikes)
                v[c] -= n * theta[c]
                out[t, c] = n
    return out


@pytest.mark.parametrize("filterbank", ["mel", "bandpass"])
@pytest.mark.parametrize("max_spikes", [1, 3])
def test_spikes_match_python_reference(datasets, filterbank, max_spikes):
    y, _ = fsdd16k(datasets, "2_lucas_7.wav")
    n = 16
    theta = list(np.linspace(0.2, 1.5, n))
    common = dict(filterbank=filterbank, channels=n, mean=2.0, scale=0.8)
    feats, _, _ = run(frontend(16000, **common), y, 16000, [999])
    assert feats.min() < 0 < feats.max()          # IF sees negative input too

    signed, _, _ = run(frontend(16000, output="delta", threshold=theta, max_spikes=max_spikes, **common),
                       y, 16000, [999])
    ref = delta_reference(feats, theta, max_spikes)
    np.testing.assert_array_equal(signed, ref)
    assert (ref > 0).any() and (ref < 0).any()
    if max_spikes > 1:
        assert np.abs(ref).max() > 1

    onoff, _, _ = run(frontend(16000, shape=(2 * n,), output="delta", threshold=theta, max_spikes=max_spikes,
                               **common), y, 16000, [999])
    np.testing.assert_array_equal(onoff, np.hstack([np.maximum(ref, 0), np.maximum(-ref, 0)]))

    fired, _, _ = run(frontend(16000, output="if", threshold=theta, max_spikes=max_spikes, **common),
                      y, 16000, [999])
    ref = if_reference(feats, theta, max_spikes)
    np.testing.assert_array_equal(fired, ref)
    assert 0.02 < (ref > 0).mean() < 0.9


# ------------------------------------------------------------------ real speech


def profile(path, spec):
    src = open_source(str(path))
    enc = build_encoder(spec)
    enc.configure(src.info, (32,), None)
    steps = [enc.encode(c) for c in src.chunks()]
    f = enc.flush()
    x = np.abs(np.concatenate([s.x for s in steps] + ([f.x] if f else [])))
    v = np.concatenate([x[i].mean(0) for i in np.array_split(np.arange(len(x)), 8)])   # 8 time bins × 32 channels
    return v / (np.linalg.norm(v) + 1e-12), (x > 0).mean()


@pytest.mark.parametrize("spec", ["audio:filterbank=mel,rate=16000,output=delta,threshold=1",
                                  "audio:filterbank=bandpass,rate=16000,output=if,threshold=4"])
def test_fsdd_digits_give_distinct_spike_patterns(datasets, spec):
    """Spike patterns of 100 FSDD recordings (2 speakers × 10 digits × 5 takes): a leave-one-out
    nearest neighbour on them finds the spoken digit far above chance (10 %) — the front end keeps
    what tells digits apart."""
    root = datasets / FSDD
    if not (root / "0_george_0.wav").exists():
        pytest.skip(f"FSDD recordings not found in {root}")
    X, Y, rates = [], [], []
    for spk in ("george", "jackson"):
        for d in range(10):
            for i in range(5):
                v, rate = profile(root / f"{d}_{spk}_{i}.wav", spec)
                X.append(v)
                Y.append(d)
                rates.append(rate)
    X, Y = np.array(X), np.array(Y)
    dist = ((X[:, None] - X[None]) ** 2).sum(-1)
    np.fill_diagonal(dist, np.inf)
    acc = (Y[dist.argmin(1)] == Y).mean()
    assert acc > 0.5, f"leave-one-out 1-NN digit accuracy {acc:.2f}"
    assert 0.01 < np.mean(rates) < 0.5       # spiking, but sparsely
    # and two different digits of the same speaker differ more than two takes of one digit
    same = np.mean([np.linalg.norm(X[k] - X[k + 1]) for k in range(0, 100, 5)])
    diff = np.mean([np.linalg.norm(X[k] - X[(k + 5) % 100]) for k in range(0, 100, 5)])
    assert diff > same


def test_lauscher_cochlea_reference_activity(datasets):
    """lauscher's cochlea model (reference.npz, 70 channels) is a different front end, so only the
    speech activity over time is compared: spike counts per 20 ms bin correlate (measured 0.48)."""
    p = datasets / "audio/lauscher/spoken_digit.flac"
    ref = datasets / "audio/lauscher/reference.npz"
    if not (p.exists() and ref.exists()):
        pytest.skip("lauscher spoken_digit.flac / reference.npz not found")
    t_ref = np.load(ref)["arr_0"][0]
    src = open_source(str(p))
    enc = build_encoder("audio:filterbank=bandpass,rate=16000,output=if,threshold=2,channels=70")
    enc.configure(src.info, None, None)
    steps = [enc.encode(c) for c in src.chunks()]
    x = np.concatenate([s.x for s in steps])
    t = np.concatenate([s.t for s in steps])
    edges = np.arange(0, 0.8, 0.02)
    ours = np.histogram(np.repeat(t, x.sum(1).astype(int)), edges)[0]
    theirs = np.histogram(t_ref, edges)[0]
    assert np.corrcoef(ours, theirs)[0, 1] > 0.3


# ------------------------------------------------------------------ gain control (agc=true)


def agc_reference(e, hop_s, agc_ms, floor):
    """Plain NumPy/Python reference of the peak-tracking gain control on energies e (frames, channels)."""
    d = np.exp(-hop_s * 1000.0 / agc_ms)
    m = floor
    out = np.zeros_like(e, dtype=np.float64)
    for t in range(len(e)):
        m = max(np.sum(e[t]) / e.shape[1], m * d, floor)
        out[t] = e[t] / m
    return out


@pytest.mark.parametrize("filterbank,agc_ms,floor", [("bandpass", 1000.0, 1e-7), ("mel", 250.0, 1e-5),
                                                     ("bandpass", 40.0, 1e-3)])
def test_agc_matches_numpy_reference(datasets, filterbank, agc_ms, floor):
    _, x8 = fsdd16k(datasets)
    common = dict(filterbank=filterbank, channels=16, hop_ms=20, fmin=100, fmax=3800)
    e = run(frontend(8000, **common, log="none"), x8, 8000)[0].astype(np.float64)
    mean = np.linspace(1, 3, 16)
    scale = np.linspace(0.5, 1.5, 16)
    ref = (np.log1p(1e4 * agc_reference(e, 0.020, agc_ms, floor)) - mean) * scale
    fe = frontend(8000, **common, log="log1p", k=1e4, agc=True, agc_ms=agc_ms, agc_floor=floor,
                  mean=list(mean), scale=list(scale))
    got = run(fe, x8, 8000, sizes=[37, 160, 1000, 5])[0]
    # the reference starts from energies already rounded to float32 by the log=none output
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)
    # agc=false (the default) is unchanged: plain log1p of the energies
    plain = run(frontend(8000, **common, log="log1p", k=1e4), x8, 8000)[0]
    np.testing.assert_allclose(plain, np.log1p(1e4 * e), rtol=1e-4, atol=1e-4)


def test_agc_is_level_invariant_and_resets(datasets):
    _, x8 = fsdd16k(datasets)
    opts = dict(filterbank="bandpass", channels=24, hop_ms=20, fmin=100, fmax=3800, log="log1p", k=1e4,
                agc=True, agc_floor=1e-12)
    fe = frontend(8000, **opts)
    a = run(fe, x8, 8000)[0]
    fe.reset()
    b = run(fe, (x8 * np.float32(0.1)).astype(np.float32), 8000)[0]   # −20 dB
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-3)
    fe.reset()
    np.testing.assert_array_equal(run(fe, x8, 8000)[0], a)
    with pytest.raises(InputError, match="agc"):
        AudioFrontEnd(agc="maybe")
    with pytest.raises(InputError, match="agc_ms"):
        AudioFrontEnd(agc=True, agc_ms=0)
