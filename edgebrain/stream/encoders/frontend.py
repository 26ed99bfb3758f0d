"""Audio front end: audio samples → per-channel band energies → features or spikes, one row per
model timestep. Encoder name ``audio`` (spec ``"audio:filterbank=bandpass,channels=32,output=delta"``).

Stages (all stateful across chunks, so that any chunking of the input gives the same output):

1. **Mix and resample.** Multichannel audio is averaged to mono; if ``rate`` is given and differs
   from the source's, a :class:`~edgebrain.stream.resample.Resampler` converts it.
2. **Framing.** One frame per hop of ``hop`` samples (``hop_ms``, else the model's timestep ``dt``,
   else 10 ms). Frame k ends after sample (k+1)·hop − 1; its step time is that frame end,
   ``t0 + (k+1)·hop / rate``, and its arrival time is that of the chunk that completed it.
   ``flush()`` pads a trailing partial hop with zeros into one last frame.
3. **Filterbank** (``filterbank=``):

   * ``mel``: the last ``win`` samples (``win_ms``, default 25 ms; zeros before the start) times a
     periodic Hann window, zero-padded to ``n_fft`` (the next power of two), power spectrum
     ``P = |rfft|² · (2/Σw)²`` (a full-scale sine at a bin centre gives 1), then triangular filters
     on the HTK mel scale (``2595·log10(1 + f/700)``, peak 1, no area normalisation: the filters of
     ``librosa.filters.mel(htk=True, norm=None)``) between ``fmin`` and ``fmax``.
   * ``bandpass``: a bank of 2nd-order IIR band-pass biquads (RBJ "constant 0 dB peak gain"
     design, centre frequencies spaced evenly on the mel scale between ``fmin`` and ``fmax``, each
     band as wide as the mel spacing unless ``q`` is given), run sample by sample in transposed
     direct form II (``sos`` holds the coefficients, in scipy's layout); the energy of each
     channel is the rectified output (``rectify=square``: 2·y², ``abs``: |y|) through a leaky
     integrator ``e += a·(r − e)``, ``a = 1 − exp(−1/(tau·rate))`` (``tau_ms``, default one hop),
     read at each frame end. Cheap on a microcontroller: 5 multiply-adds and 2 states per
     channel per sample, no FFT.

     With ``fixed=true`` the bank runs in integers, bit-exactly as a microcontroller would (see
     ``_biquad_bank_int``): input quantised to int16 (``sat(floor(x·2^15 + 0.5))``), coefficients
     int32 with 29 fraction bits, direct form I with an int64 accumulator, outputs and energies
     int32 with 23 fraction bits (8 guard bits below the input LSB), rounding shifts (``rsr``: round
     half up) and saturation as in docs/fixed-point.md; the leaky-integrator factor has 30 fraction
     bits. The energies then go on as exact multiples of 2^-23 (measured on FSDD: within 0.03 % of
     the largest float energy, a few % on bands 60 dB down).

4. **Gain control** (``agc=true``; off by default): a streaming automatic gain control that makes
   the features independent of the recording level. Per frame t, with ``ē_t`` the mean energy over
   the channels, a peak tracker with instant attack and exponential release
   ``m_t = max(ē_t, d·m_{t−1}, agc_floor)`` (``m`` starts at ``agc_floor``, default 1e-7;
   ``d = exp(−hop / agc_ms)``, ``agc_ms`` default 1000 ms) divides every channel's energy:
   ``e ← e / m_t``. A gain g on the input scales all energies and, once the peak is above the floor,
   ``m`` by g², so the quotient does not change. Cost per frame: one mean, one multiply, one
   compare and one division per channel.
   The mean is summed channel by channel from channel 0 up, then divided by the channel count (a fixed
   order, which the board's C twin follows; numpy's pairwise mean would round differently).
5. **Log compression** (``log=``): ``log1p`` ``f = ln(1 + k·e)`` (``k`` default 1e4; computed by
   :func:`log1p` in plain double operations, not the maths library's, so that the board's C twin,
   ``cruntime/eb_codec_audio.c``, gives the same bits), ``log2``
   ``f = log2(max(e, floor) / floor)`` (``floor`` default 1e-6; a count-leading-zeros on a
   microcontroller), or ``none``.
6. **Normalisation**: ``f = (f − mean) · scale`` with fixed per-channel (or scalar) ``mean`` and
   ``scale`` given as options (``mean=1.5|2.0|…``), so that a deployed model carries them in its
   metadata.
7. **Output** (``output=``), shaped like the model input:

   * ``features``: the normalised features as float32 input currents, shape (channels,);
   * ``delta``: send-on-delta on each feature with ``threshold`` θ: a per-channel reference r
     (starting at 0) and, per frame, ``n = trunc((f − r) / θ)`` clipped to ±``max_spikes``,
     ``r += n·θ``; emitted as signed counts, shape (channels,), or as ON counts then OFF counts,
     shape (2·channels,) (``polarity=2``, or ``channels`` given and the model input holding
     2·channels values; signed otherwise);
   * ``if``: a per-channel integrate-and-fire: ``v = max(v + f, 0)``; if ``v ≥ θ``:
     ``n = min(floor(v/θ), max_spikes)``, ``v −= n·θ``; emits n, shape (channels,).

The number of channels is the ``channels`` option or, when absent, taken from the model input
shape (halved for two-polarity delta spikes).
"""

from __future__ import annotations

import math

import numpy as np
from ...jit import njit

from ...errors import InputError
from ..base import Encoder, Samples, SourceInfo, Steps, log

FILTERBANKS = ("mel", "bandpass")
OUTPUTS = ("features", "delta", "if")
LOGS = ("log1p", "log2", "none")


def hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, np.float64) / 700.0)


def mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, np.float64) / 2595.0) - 1.0)


def mel_filters(rate: float, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """(n_mels, n_fft//2 + 1) triangular filters on the HTK mel scale, peak 1 (no normalisation)."""
    freqs = np.arange(n_fft // 2 + 1, dtype=np.float64) * (rate / n_fft)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    fdiff = np.diff(edges)
    ramps = edges[:, None] - freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    return np.maximum(0.0, np.minimum(lower, upper))


def bandpass_sos(rate: float, n: int, fmin: float, fmax: float, q: float | None = None) -> np.ndarray:
    """(n, 6) biquad sections [b0, b1, b2, 1, a1, a2] of a mel-spaced band-pass bank (RBJ band-pass,
    0 dB peak gain). Band k spans mel edges k..k+1; its centre is the geometric mean of its edges and
    its Q = centre / width unless ``q`` is given."""
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n + 1))
    lo, hi = edges[:-1], edges[1:]
    fc = np.sqrt(np.maximum(lo, 1e-3) * hi)
    qs = fc / (hi - lo) if q is None else np.full(n, float(q))
    w0 = 2 * np.pi * fc / rate
    alpha = np.sin(w0) / (2 * qs)
    a0 = 1 + alpha
    sos = np.zeros((n, 6))
    sos[:, 0] = alpha / a0
    sos[:, 2] = -alpha / a0
    sos[:, 3] = 1.0
    sos[:, 4] = -2 * np.cos(w0) / a0
    sos[:, 5] = (1 - alpha) / a0
    return sos


# ---------------------------------------------------------------------------------------- kernels


@njit(cache=True)
def _biquad_bank(x, sos, z1, z2, e, a, square, count, hop, out):
    """Run every channel's biquad (transposed direct form II, as scipy's sosfilt) over x, rectify,
    leaky-integrate, and write e into out at each frame end. Returns (frames written, count).
    ``sos`` is transposed here, (6, channels), so that each coefficient is contiguous over channels."""
    nch = sos.shape[1]
    nf = 0
    b0 = sos[0]
    b1 = sos[1]
    b2 = sos[2]
    a1 = sos[4]
    a2 = sos[5]
    for i in range(x.shape[0]):
        xi = np.float64(x[i])
        for c in range(nch):
            y = b0[c] * xi + z1[c]
            z1[c] = b1[c] * xi - a1[c] * y + z2[c]
            z2[c] = b2[c] * xi - a2[c] * y
            r = 2.0 * y * y if square else abs(y)
            e[c] += a * (r - e[c])
        count += 1
        if count == hop:
            for c in range(nch):
                out[nf, c] = e[c]
            nf += 1
            count = 0
    return nf, count


# fixed-point band-pass bank (``fixed=true``): Q-formats of docs/fixed-point.md
COEF_BITS = 29      # biquad coefficients: int32, value · 2^29 (|a1| < 2 fits with room to spare)
GUARD_BITS = 8      # filter outputs carry 8 bits below the 16-bit input LSB: real = y / 2^23
LEAK_BITS = 30      # leaky-integrator factor: round(a · 2^30)
Y_FRAC = 15 + GUARD_BITS


@njit(cache=True)
def _biquad_bank_int(xq, coef, y1, y2, xh, e, leak, square, count, hop, out):
    """Integer twin of _biquad_bank (transposed to direct form I, which needs no internal headroom),
    bit-exact by construction. Per sample x (int16 value) and channel c, all in int64:

        acc = ((b0·x + b1·x1 + b2·x2) << GUARD_BITS) − a1·y1 − a2·y2
        y   = sat32(rsr(acc, COEF_BITS))                     # real value y / 2^23
        r   = min(rsr(y·y, 22), 2^31 − 1)  (square: 2·y², scale 2^23)  or  |y| (abs)
        e  += rsr((r − e) · leak, LEAK_BITS)                 # e: real value e / 2^23

    ``coef`` (5, channels) int64 = round([b0, b1, b2, a1, a2] · 2^29); xh = [x1, x2], the input
    history shared by all channels."""
    nch = coef.shape[1]
    nf = 0
    half_c = np.int64(1) << (COEF_BITS - 1)
    half_l = np.int64(1) << (LEAK_BITS - 1)
    x1 = xh[0]
    x2 = xh[1]
    for i in range(xq.shape[0]):
        x0 = np.int64(xq[i])
        for c in range(nch):
            acc = ((coef[0, c] * x0 + coef[1, c] * x1 + coef[2, c] * x2) << GUARD_BITS) \
                - coef[3, c] * y1[c] - coef[4, c] * y2[c]
            y = (acc + half_c) >> COEF_BITS
            if y > 2147483647:
                y = 2147483647
            elif y < -2147483648:
                y = -2147483648
            y2[c] = y1[c]
            y1[c] = y
            if square:
                r = (y * y + (np.int64(1) << 21)) >> 22
                if r > 2147483647:
                    r = 2147483647
            else:
                r = abs(y)
            e[c] += ((r - e[c]) * leak + half_l) >> LEAK_BITS
        x2 = x1
        x1 = x0
        count += 1
        if count == hop:
            for c in range(nch):
                out[nf, c] = e[c]
            nf += 1
            count = 0
    xh[0] = x1
    xh[1] = x2
    return nf, count


def quantize_input(x: np.ndarray) -> np.ndarray:
    """Float samples → int16 values: sat(floor(x·2^15 + 0.5)) with the product and sum in float32
    (the model-input rule of docs/fixed-point.md); exact for 16-bit PCM sources."""
    q = np.floor(np.asarray(x, np.float32) * np.float32(32768.0) + np.float32(0.5))
    return np.clip(q, -32768, 32767).astype(np.int64)


@njit(cache=True)
def _delta_spikes(f, r, theta, max_spikes, out):
    """Send-on-delta: per frame t and channel c, n = trunc((f − r)/θ) clipped to ±max_spikes, r += n·θ."""
    for t in range(f.shape[0]):
        for c in range(f.shape[1]):
            d = (np.float64(f[t, c]) - r[c]) / theta[c]
            n = math.trunc(d)
            if n > max_spikes:
                n = max_spikes
            elif n < -max_spikes:
                n = -max_spikes
            r[c] += n * theta[c]
            out[t, c] = n


@njit(cache=True)
def _if_spikes(f, v, theta, max_spikes, out):
    """Integrate-and-fire: v = max(v + f, 0); if v ≥ θ: n = min(floor(v/θ), max_spikes), v −= n·θ."""
    for t in range(f.shape[0]):
        for c in range(f.shape[1]):
            vc = v[c] + np.float64(f[t, c])
            if vc < 0.0:
                vc = 0.0
            n = 0
            if vc >= theta[c]:
                n = math.floor(vc / theta[c])
                if n > max_spikes:
                    n = max_spikes
                vc -= n * theta[c]
            v[c] = vc
            out[t, c] = n


# portable ln(1 + x): the same double operations in the same order as eb_log1p in cruntime/eb_codec_audio.c
LN2_HI = 6.93147180369123816490e-01     # fdlibm's split of ln 2: LN2_HI has 32 significant bits,
LN2_LO = 1.90821492927058770002e-10     # so k · LN2_HI is exact for |k| < 2^20
SQRT2 = 1.4142135623730951
SQRT1_2 = 0.7071067811865476


@njit(cache=True)
def log1p(x):
    """ln(1 + x) for a double x, in plain IEEE double operations (no maths library, so that any
    platform computes the same bits; within 3 ulp of numpy.log1p, measured): u = 1 + x, rounded, with
    c = (x − (u − 1)) / u the correction ln(1 + x) − ln(u) ≈ c; u = 2^k · f with f in [√½, √2)
    by exact halvings/doublings; ln f = 2·atanh(s), s = (f − 1)/(f + 1), |s| < 0.1716, by the
    series 2s·(1 + z/3 + z²/5 + … + z^10/21), z = s², in Horner form."""
    if not (x > -1.0):
        if x == -1.0:
            return -np.inf
        return np.nan
    if x == 0.0 or x > 1.7976931348623157e308:    # ±0 kept; +inf stays +inf
        return x
    u = 1.0 + x
    if u == 1.0:                                  # |x| below half an ulp of 1: ln(1 + x) = x to 1 ulp
        return x
    c = (x - (u - 1.0)) / u
    k = 0
    f = u
    while f >= SQRT2:
        f *= 0.5
        k += 1
    while f < SQRT1_2:
        f *= 2.0
        k -= 1
    s = (f - 1.0) / (f + 1.0)
    z = s * s
    p = 1.0 / 21.0
    p = p * z + 1.0 / 19.0
    p = p * z + 1.0 / 17.0
    p = p * z + 1.0 / 15.0
    p = p * z + 1.0 / 13.0
    p = p * z + 1.0 / 11.0
    p = p * z + 1.0 / 9.0
    p = p * z + 1.0 / 7.0
    p = p * z + 1.0 / 5.0
    p = p * z + 1.0 / 3.0
    p = p * z + 1.0
    r = 2.0 * s * p
    dk = np.float64(k)
    return dk * LN2_HI + (r + (c + dk * LN2_LO))


@njit(cache=True)
def _log1p_scaled(e, k, out):
    """out = log1p(k · e), elementwise (e, out: 2-D float64)."""
    for t in range(e.shape[0]):
        for c in range(e.shape[1]):
            out[t, c] = log1p(k * e[t, c])


@njit(cache=True)
def _agc(e, m, d, fl, out):
    """The gain control of the module docstring over frames e (frames, channels): the mean summed
    from channel 0 up and divided by the channel count, m = max(mean, d·m, floor), out = e / m.
    Returns the last m."""
    n = e.shape[1]
    for t in range(e.shape[0]):
        s = 0.0
        for c in range(n):
            s += e[t, c]
        mean = s / n
        dm = d * m
        m = mean
        if dm > m:
            m = dm
        if fl > m:
            m = fl
        for c in range(n):
            out[t, c] = e[t, c] / m
    return m


# ---------------------------------------------------------------------------------------- encoder


def _per_channel(value, n: int, what: str) -> np.ndarray:
    a = np.atleast_1d(np.asarray(value, np.float64))
    if a.size == 1:
        return np.full(n, float(a[0]))
    if a.size != n:
        raise InputError(f"audio front end: {what} has {a.size} values; expected 1 or {n} (one per channel)")
    return a.copy()


class AudioFrontEnd(Encoder):
    """Audio → filterbank energies → log → normalised features or spikes (see the module docstring)."""

    name = "audio"
    _DEFAULTS = dict(filterbank="mel", channels=None, rate=None, hop_ms=None, win_ms=25.0, n_fft=None,
                     fmin=50.0, fmax=None, q=None, tau_ms=None, rectify="square", log="log1p", k=1e4,
                     floor=1e-6, mean=0.0, scale=1.0, output="features", threshold=1.0, max_spikes=1,
                     polarity=None, fixed=False, agc=False, agc_ms=1000.0, agc_floor=1e-7)

    def __init__(self, **options):
        unknown = set(options) - set(self._DEFAULTS)
        if unknown:
            raise InputError(f"audio front end: unknown option(s) {', '.join(sorted(unknown))}; expected "
                             f"{', '.join(self._DEFAULTS)}")
        self.options = dict(options)
        o = {**self._DEFAULTS, **options}
        if o["log"] is None or o["log"] is False:     # "log=none" in a spec string parses to None
            o["log"] = "none"
        for key, allowed in (("filterbank", FILTERBANKS), ("output", OUTPUTS), ("log", LOGS),
                             ("rectify", ("square", "abs"))):
            if o[key] not in allowed:
                raise InputError(f"audio front end: {key}={o[key]!r}; expected one of {', '.join(allowed)}")
        if o["polarity"] not in (None, 1, 2):
            raise InputError(f"audio front end: polarity={o['polarity']!r}; expected 1 (signed) or 2 (ON/OFF)")
        for key in ("k", "floor", "max_spikes", "agc_ms", "agc_floor"):
            if not (isinstance(o[key], (int, float)) and o[key] > 0):
                raise InputError(f"audio front end: {key}={o[key]!r}; expected a positive number")
        if o["agc"] not in (True, False):
            raise InputError(f"audio front end: agc={o['agc']!r}; expected true or false")
        if o["fixed"] and o["filterbank"] != "bandpass":
            raise InputError("audio front end: fixed=true (integer filterbank) needs filterbank=bandpass")
        self.o = o
        self.configured = False

    # -------------------------------------------------------------- configuration

    def spec(self) -> str:
        def fmt(v):
            if isinstance(v, (list, tuple, np.ndarray)):
                return "|".join(fmt(x) for x in v)
            return f"{v:g}" if isinstance(v, float) else str(v)
        parts = [f"{k}={fmt(v)}" for k, v in self.options.items() if v is not None]
        return self.name + (":" + ",".join(parts) if parts else "")

    def configure(self, info: SourceInfo, input_shape: tuple | None, dt: float | None) -> None:
        o = self.o
        if info is not None and info.kind not in (None, "samples"):
            raise InputError(f"audio front end needs an audio (samples) source, not {info.kind}")
        src_rate = None if info is None else info.rate
        rate = float(o["rate"] or src_rate or 0)
        if rate <= 0:
            raise InputError("audio front end: the source has no sample rate; pass rate=")
        self.rate = rate
        self.resampler = None
        if src_rate and float(src_rate) != rate:
            from ..resample import Resampler

            self.resampler = Resampler(float(src_rate), rate, 1)
        # output shape and channel count
        size = None if input_shape is None else int(np.prod(input_shape))
        polarity = o["polarity"]
        n = o["channels"]
        if o["output"] == "delta" and polarity is None:
            polarity = 2 if (size is not None and n is not None and size == 2 * int(n)) else 1
        per = 2 if (o["output"] == "delta" and polarity == 2) else 1
        if n is None:
            if size is None:
                n = 32
            elif size % per:
                raise InputError(f"audio front end: model input of {size} values is not 2 × channels, as "
                                 "ON/OFF delta spikes need")
            else:
                n = size // per
        n = int(n)
        if n < 1:
            raise InputError(f"audio front end: channels={n}; expected at least 1")
        if size is not None and size != per * n:
            raise InputError(f"audio front end: {n} channels give {per * n} input value(s) per step ("
                             f"output={o['output']}{', ON/OFF' if per == 2 else ''}) but the model input "
                             f"shape {tuple(input_shape)} holds {size}")
        self.n = n
        self.polarity = polarity
        self.out_shape = tuple(input_shape) if input_shape is not None else (per * n,)
        # framing
        hop_s = o["hop_ms"] / 1e3 if o["hop_ms"] else (dt if dt else 0.010)
        self.hop = max(1, int(round(hop_s * rate)))
        if abs(self.hop / rate - hop_s) > 1e-6 * hop_s + 1e-9:
            log.warning("audio front end: hop %.6g s is not a whole number of samples at %g Hz; using %d "
                        "samples (%.6g s)", hop_s, rate, self.hop, self.hop / rate)
        fmax = float(o["fmax"] or rate / 2)
        fmin = float(o["fmin"])
        if not 0 <= fmin < fmax <= rate / 2:
            raise InputError(f"audio front end: need 0 ≤ fmin < fmax ≤ rate/2 = {rate / 2:g} Hz; got "
                             f"fmin={fmin:g}, fmax={fmax:g}")
        self.fmin, self.fmax = fmin, fmax
        if o["filterbank"] == "mel":
            self.win = max(1, int(round(float(o["win_ms"]) / 1e3 * rate)))
            self.n_fft = int(o["n_fft"] or 1 << (self.win - 1).bit_length())
            if self.n_fft < self.win:
                raise InputError(f"audio front end: n_fft={self.n_fft} is shorter than the window ({self.win} samples)")
            w = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(self.win) / self.win)   # periodic Hann
            self.window = w
            self.power_scale = (2.0 / w.sum()) ** 2
            self.fb = mel_filters(rate, self.n_fft, n, fmin, fmax)
            if not (self.fb.sum(axis=1) > 0).all():
                log.warning("audio front end: some mel filters are empty (too many channels for n_fft=%d)", self.n_fft)
            self.fbT = np.ascontiguousarray(self.fb.T)
            self.pre = max(self.win - self.hop, 0)
        else:
            if fmin <= 0:
                fmin = self.fmin = 20.0
            if fmax >= rate / 2:
                fmax = self.fmax = 0.98 * rate / 2
            self.sos = bandpass_sos(rate, n, fmin, fmax, o["q"])
            self._sosT = np.ascontiguousarray(self.sos.T)
            if o["fixed"]:
                self.coef_q = np.ascontiguousarray(np.round(self.sos[:, [0, 1, 2, 4, 5]].T * 2.0 ** COEF_BITS)
                                                   .astype(np.int64))
            tau = o["tau_ms"] / 1e3 if o["tau_ms"] else self.hop / rate
            self.leak = 1.0 - math.exp(-1.0 / (tau * rate))
            self.leak_q = int(round(self.leak * 2 ** LEAK_BITS))
        self.agc_decay = math.exp(-(self.hop / rate) / (float(o["agc_ms"]) / 1e3))
        self.mean = _per_channel(o["mean"], n, "mean")
        self.scale = _per_channel(o["scale"], n, "scale")
        self.theta = _per_channel(o["threshold"], n, "threshold")
        if (self.theta <= 0).any():
            raise InputError("audio front end: threshold must be positive")
        self.configured = True
        self.reset()

    def reset(self) -> None:
        if not self.configured:
            return
        if self.resampler is not None:
            self.resampler.reset()
        if self.o["filterbank"] == "mel":
            self.tail = np.zeros(self.pre, np.float64)
        else:
            self.z1 = np.zeros(self.n)
            self.z2 = np.zeros(self.n)
            self.e = np.zeros(self.n)
            self.count = 0
            if self.o["fixed"]:
                self.y1 = np.zeros(self.n, np.int64)
                self.y2 = np.zeros(self.n, np.int64)
                self.xh = np.zeros(2, np.int64)
                self.e = np.zeros(self.n, np.int64)
        self.state = np.zeros(self.n)       # delta reference or IF membrane
        self.agc_peak = float(self.o["agc_floor"])
        self.frames = 0
        self.t0 = None
        self.last_arrival = 0.0
        self.last_label = None

    # -------------------------------------------------------------- processing

    def pending(self) -> int:
        """Samples received since the last complete frame."""
        if self.o["filterbank"] == "mel":
            return len(self.tail) - self.pre
        return self.count

    def energies(self, x: np.ndarray) -> np.ndarray:
        """Feed mono samples (at the front end's rate); return the band energies of the frames they
        complete, (frames, channels) float64."""
        if self.o["filterbank"] == "mel":
            buf = np.concatenate([self.tail, x.astype(np.float64)])
            nfr = (len(buf) - self.pre) // self.hop
            self.tail = buf[nfr * self.hop:]
            if nfr == 0:
                return np.zeros((0, self.n))
            starts = self.pre + self.hop * np.arange(1, nfr + 1) - self.win
            frames = np.lib.stride_tricks.sliding_window_view(buf, self.win)[starts] * self.window
            spec = np.fft.rfft(frames, n=self.n_fft, axis=1)
            power = (spec.real ** 2 + spec.imag ** 2) * self.power_scale
            return power @ self.fbT
        if self.o["fixed"]:
            out = np.empty(((self.count + len(x)) // self.hop, self.n), np.int64)
            nf, self.count = _biquad_bank_int(quantize_input(x), self.coef_q, self.y1, self.y2, self.xh, self.e,
                                              self.leak_q, self.o["rectify"] == "square", self.count, self.hop, out)
            return out[:nf] * 2.0 ** -Y_FRAC
        out = np.empty(((self.count + len(x)) // self.hop, self.n))
        nf, self.count = _biquad_bank(np.ascontiguousarray(x, np.float32), self._sosT, self.z1, self.z2, self.e,
                                      self.leak, self.o["rectify"] == "square", self.count, self.hop, out)
        return out[:nf]

    def gain_control(self, e: np.ndarray) -> np.ndarray:
        """Band energies (frames, channels) divided by the running peak of the per-frame mean energy
        (``agc=true``, see the module docstring); updates the peak tracker."""
        e = np.ascontiguousarray(e, np.float64).reshape(-1, self.n)
        out = np.empty_like(e)
        self.agc_peak = float(_agc(e, float(self.agc_peak), float(self.agc_decay), float(self.o["agc_floor"]), out))
        return out

    def features(self, e: np.ndarray) -> np.ndarray:
        """Band energies → (gain control →) log-compressed, normalised features (float32)."""
        o = self.o
        if o["agc"]:
            e = self.gain_control(e)
        if o["log"] == "log1p":
            e = np.ascontiguousarray(e, np.float64).reshape(-1, self.n)
            f = np.empty_like(e)
            _log1p_scaled(e, float(o["k"]), f)
        elif o["log"] == "log2":
            f = np.log2(np.maximum(e, o["floor"]) / o["floor"])
        else:
            f = e
        return ((f - self.mean) * self.scale).astype(np.float32)

    def spikes(self, f: np.ndarray) -> np.ndarray:
        """Features → spike counts per the output rule (float32, shaped (frames, channels or 2·channels))."""
        out = np.empty(f.shape, np.float64)
        ms = int(self.o["max_spikes"])
        if self.o["output"] == "delta":
            _delta_spikes(f, self.state, self.theta, ms, out)
            if self.polarity == 2:
                out = np.concatenate([np.maximum(out, 0), np.maximum(-out, 0)], axis=1)
        else:
            _if_spikes(f, self.state, self.theta, ms, out)
        return out.astype(np.float32)

    def _steps(self, x: np.ndarray, arrival: float, label) -> Steps:
        e = self.energies(x)
        f = self.features(e)
        y = f if self.o["output"] == "features" else self.spikes(f)
        k = np.arange(self.frames + 1, self.frames + 1 + len(y), dtype=np.float64)
        self.frames += len(y)
        t = (self.t0 or 0.0) + k * self.hop / self.rate
        labels = None
        if label is not None:
            labels = np.array([label] * len(y), dtype=object)
        return Steps(x=y.reshape((len(y),) + self.out_shape), t=t, arrival=np.full(len(y), arrival), labels=labels)

    def encode(self, chunk: Samples) -> Steps:
        if not self.configured:
            raise InputError("audio front end: configure() must be called before encode()")
        v = np.asarray(chunk.values, np.float32)
        if v.ndim == 2:
            v = v[:, 0] if v.shape[1] == 1 else v.mean(axis=1, dtype=np.float32)
        if self.t0 is None and len(chunk.t):
            self.t0 = float(chunk.t[0])
        if self.resampler is not None:
            v = self.resampler.process(v)[:, 0]
        self.last_arrival = chunk.arrival
        if chunk.labels is not None and len(chunk.labels):
            self.last_label = chunk.labels[-1]
        return self._steps(v, chunk.arrival, self.last_label)

    def flush(self) -> Steps | None:
        if not self.configured:
            return None
        parts = []
        if self.resampler is not None:
            rest = self.resampler.flush()[:, 0]
            if len(rest):
                parts.append(self._steps(rest, self.last_arrival, self.last_label))
        p = self.pending()
        if p > 0:
            parts.append(self._steps(np.zeros(self.hop - p, np.float32), self.last_arrival, self.last_label))
        parts = [s for s in parts if len(s)]
        if not parts:
            return None
        if len(parts) == 1:
            return parts[0]
        return Steps(x=np.concatenate([s.x for s in parts]), t=np.concatenate([s.t for s in parts]),
                     arrival=np.concatenate([s.arrival for s in parts]),
                     labels=None if parts[0].labels is None else np.concatenate([s.labels for s in parts]))


ENCODERS = {"audio": AudioFrontEnd}

__all__ = ["AudioFrontEnd", "ENCODERS", "bandpass_sos", "hz_to_mel", "log1p", "mel_filters", "mel_to_hz"]
