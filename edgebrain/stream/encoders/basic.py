"""Encoders for sample streams (IMU and other multichannel series): Samples chunks → model input Steps.

Every encoder first selects channels (``channels=0|1|2``, also a reorder), brings the samples to
the model's step rate and applies ``x = (value - offset) · scale`` per channel (``scale`` and
``offset`` are scalars or one value per selected channel), then encodes. With ``unit=`` (physical
units per count, a scalar or one per selected channel) the samples are first taken as a sensor's
int16 counts: ``value = clip(rint(value / unit), -32768, 32767) · unit`` (after resampling), which
is what a board that encodes on its own sees (``edgebrain stream --board-encodes``: the host sends
those counts, the board's C encoder of ``eb_codec.c`` does the rest, bit for bit). Then:

* ``direct`` (encoding-free): x itself is the input current of the first layer;
* ``delta`` (send-on-delta): per channel a reference that follows the signal in steps of
  ``threshold``; each step outputs the signed number of thresholds crossed since the last
  step (+k / -k; ``max_spikes`` caps k per step, the rest follows on later steps);
* ``sigma_delta``: a first-order sigma-delta modulator: the integrator adds x and subtracts what
  was sent (k · threshold); k = the number of whole thresholds in the integrator (signed);
* ``rate``: ``mode=deterministic`` accumulates x · gain · dt and emits a spike each time the
  accumulator reaches 1 (subtracting 1); ``mode=poisson`` emits with probability
  p = clip(x · gain · dt, 0, 1) from a seeded generator. ``gain`` is spikes per second per unit
  of x (default 1/dt: p = x per step); negative x gives no spikes unless ``layout=split``.

Layouts: ``signed`` (C outputs carrying ±k) or ``split`` (2C outputs: the C up-counts, then the C
down-counts, both ≥ 0); for ``rate``, ``split`` codes max(x, 0) and max(-x, 0).

Rate: one step per sample at the model's rate, which is ``rate=`` if given, else 1/dt of the
model (the stream rate it carries), else the source's rate. When that differs from the source's
rate the samples are resampled by a streaming linear interpolator on the sample times (step k at
t0 + k/rate, from the two samples around it; the step's label is that of the newest sample at or
before it, its arrival that of the newest sample it uses); this is logged and kept in
``encoder.resampling``. All state (references, integrators, accumulators, the random generator,
the interpolator) carries across chunks, so that any chunking gives the same steps; ``reset()``
starts afresh. The sequential encoders are Numba kernels (``cache=True``).
"""

from __future__ import annotations

import math

import numpy as np
from ...jit import njit

from ...errors import InputError
from ...options import positive_number
from ..base import Encoder, Events, SourceInfo, Steps, log

_EMPTY = np.zeros(0)


# ---------------------------------------------------------------------- kernels


@njit(cache=True)
def _delta_kernel(x, ref, thr, cap, out):
    T, C = x.shape
    for t in range(T):
        for c in range(C):
            d = x[t, c] - ref[c]
            k = 0
            if d >= thr[c]:
                k = int(math.floor(d / thr[c]))
            elif d <= -thr[c]:
                k = -int(math.floor(-d / thr[c]))
            if cap > 0:
                if k > cap:
                    k = cap
                elif k < -cap:
                    k = -cap
            ref[c] += k * thr[c]
            out[t, c] = k


@njit(cache=True)
def _sigma_delta_kernel(x, acc, thr, cap, out):
    T, C = x.shape
    for t in range(T):
        for c in range(C):
            a = acc[c] + x[t, c]
            k = 0
            if a >= thr[c]:
                k = int(math.floor(a / thr[c]))
            elif a <= -thr[c]:
                k = -int(math.floor(-a / thr[c]))
            if cap > 0:
                if k > cap:
                    k = cap
                elif k < -cap:
                    k = -cap
            acc[c] = a - k * thr[c]
            out[t, c] = k


@njit(cache=True)
def _rate_kernel(x, acc, gain, cap, out):
    T, C = x.shape
    for t in range(T):
        for c in range(C):
            v = x[t, c]
            a = acc[c] + (v * gain[c] if v > 0 else 0.0)
            k = int(math.floor(a))
            a -= k
            if cap > 0 and k > cap:
                k = cap          # saturated: the excess is dropped
            acc[c] = a
            out[t, c] = k


# ---------------------------------------------------------------------- resampling


class _Resampler:
    """Streaming linear interpolation of (t, values) onto t0 + k/rate."""

    def __init__(self, rate: float):
        self.period = 1.0 / rate
        self.reset()

    def reset(self):
        self.t0 = None
        self.k = 0
        self.last = None      # (t, values row, arrival, label) of the newest sample seen

    def push(self, t, v, arrival, labels):
        n = len(t)
        if n == 0:
            return _EMPTY, v[:0], _EMPTY, (None if labels is None else labels[:0])
        if self.t0 is None:
            self.t0 = float(t[0])
        arr = np.full(n, arrival, np.float64)
        if self.last is not None:
            lt, lv, la, ll = self.last
            tt = np.concatenate(([lt], t))
            vv = np.concatenate((lv[None], v))
            aa = np.concatenate(([la], arr))
            labs = None if labels is None else np.concatenate((np.array([ll], dtype=object),
                                                               np.asarray(labels, object)))
        else:
            tt, vv, aa = np.asarray(t, np.float64), v, arr
            labs = None if labels is None else np.asarray(labels, object)
        self.last = (float(tt[-1]), vv[-1].copy(), float(aa[-1]), None if labs is None else labs[-1])
        k_end = int(math.floor((tt[-1] - self.t0) / self.period + 1e-9))
        if k_end < self.k:
            return _EMPTY, v[:0], _EMPTY, (None if labels is None else labels[:0])
        ks = np.arange(self.k, k_end + 1)
        self.k = k_end + 1
        tau = self.t0 + ks * self.period
        out = np.empty((len(tau), vv.shape[1]))
        for c in range(vv.shape[1]):
            out[:, c] = np.interp(tau, tt, vv[:, c])
        j = np.minimum(np.searchsorted(tt, tau, side="left"), len(tt) - 1)   # newest sample used
        i = np.maximum(np.searchsorted(tt, tau, side="right") - 1, 0)        # newest sample at or before
        return tau, out, aa[j], (None if labs is None else labs[i])


# ---------------------------------------------------------------------- encoders


def _list(v, what):
    if v is None:
        return None
    try:
        if isinstance(v, (list, tuple, np.ndarray)):
            return [float(x) for x in v]
        return [float(v)]
    except (TypeError, ValueError):
        raise InputError(f"{what}={v!r}; expected a number or numbers separated by |") from None


class SampleEncoder(Encoder):
    """Common part: channel selection, resampling to the model rate, scale and offset."""

    name = "samples"
    layouts = ("signed",)

    def __init__(self, channels=None, scale=1.0, offset=0.0, rate=None, layout=None, unit=None):
        if channels is None:
            self.channels = None
        else:
            ch = channels if isinstance(channels, (list, tuple)) else [channels]
            try:
                self.channels = [int(c) for c in ch]
            except (TypeError, ValueError):
                raise InputError(f"encoder '{self.name}': channels={channels!r}; expected channel numbers "
                                 "separated by |") from None
            if any(c < 0 for c in self.channels):
                raise InputError(f"encoder '{self.name}': channels={channels!r}; expected numbers ≥ 0")
        self._scale, self._offset = _list(scale, "scale"), _list(offset, "offset")
        self._unit = _list(unit, "unit")
        if self._unit is not None and not all(math.isfinite(u) and u > 0 for u in self._unit):
            raise InputError(f"encoder '{self.name}': unit={unit!r}; expected physical units per count > 0")
        self.rate = None if rate is None else positive_number(rate, f"encoder '{self.name}': rate", "steps per second")
        self.layout = layout or self.layouts[0]
        if self.layout not in self.layouts:
            raise InputError(f"encoder '{self.name}': layout='{layout}'; expected {' or '.join(self.layouts)}")
        self._kw = {}
        self._configured = False
        self.resampling = None
        self.input_shape = None
        self.dt = None

    # -------------------------------------------------------------- configuration
    def n_outputs(self, n: int) -> int:
        return 2 * n if self.layout == "split" else n

    def configure(self, info: SourceInfo, input_shape: tuple | None, dt: float | None) -> None:
        if info.kind != "samples":
            raise InputError(f"encoder '{self.name}' takes samples (IMU, series); the source "
                             f"{info.path or info.format} yields {info.kind}; use an event or audio encoder")
        C = info.channels
        if self.channels is not None:
            if C is not None and max(self.channels) >= C:
                raise InputError(f"encoder '{self.name}': channels={'|'.join(map(str, self.channels))} but the "
                                 f"source has {C} channels (0..{C - 1})")
            sel = list(self.channels)
        elif C is not None:
            sel = list(range(C))
        else:
            raise InputError(f"encoder '{self.name}': the source does not say how many channels it has; pass channels=")
        n = len(sel)
        self.sel = np.array(sel, np.int64)
        self.scale = self._per_channel(self._scale, n, "scale")
        self.offset = self._per_channel(self._offset, n, "offset")
        self.unit = self._per_channel(self._unit, n, "unit")
        n_out = self.n_outputs(n)
        shape = tuple(int(s) for s in input_shape) if input_shape else None
        if shape:
            size = int(np.prod(shape))
            if size != n_out:
                what = (f"{n_out} values per step (2 × {n} channels, layout=split)" if self.layout == "split"
                        else f"{n_out} values per step ({n} channel{'s' if n > 1 else ''})")
                names = info.channel_names
                chans = (", ".join(str(names[c]) for c in sel) if names and len(names) == (C or 0) else
                         "|".join(map(str, sel)))
                raise InputError(f"encoder '{self.name}' gives {what}: {chans}; the model input has shape "
                                 f"{shape} = {size} values; choose the channels with channels=..."
                                 + (" or layout=signed" if self.layout == "split" else ""))
        self.input_shape = shape or (n_out,)
        target = self.rate or (1.0 / dt if dt else None)
        src = info.rate
        self.resampling = None
        self._rs = None
        if target is not None and (src is None or abs(target / src - 1) > 1e-9):
            self._rs = _Resampler(target)
            self.resampling = (f"{src:g} Hz → {target:g} Hz (linear interpolation)" if src
                               else f"→ {target:g} Hz (linear interpolation on the sample times)")
            log.info("encoder %s: resampling %s", self.name, self.resampling)
        self.step_rate = target or src
        self.dt = 1.0 / self.step_rate if self.step_rate else None
        self.n_in = n
        self._setup(n)
        self._configured = True
        self.reset()

    def _per_channel(self, v, n, what):
        if v is None:
            return None
        if len(v) == 1:
            return np.full(n, v[0])
        if len(v) != n:
            raise InputError(f"encoder '{self.name}': {len(v)} {what} values for {n} channels; expected 1 or {n}")
        return np.array(v, np.float64)

    def _setup(self, n: int) -> None:
        pass

    # -------------------------------------------------------------- encoding
    def encode(self, chunk) -> Steps:
        t, v, arrival, labels = self.samples(chunk)
        x = v if self.unit is None else v * self.unit
        if self.offset is not None:
            x = x - self.offset
        if self.scale is not None:
            x = x * self.scale
        y = self._encode(np.ascontiguousarray(x, np.float64))
        return Steps(y.reshape((len(t),) + self.input_shape), t, arrival, labels)

    def samples(self, chunk):
        """``(t, v, arrival, labels)``: a chunk's samples of the selected channels at the step rate
        (resampled if need be), before offset and scale; with ``unit=`` set, ``v`` holds the int16
        counts (as float64 integers) that ``encode`` multiplies by the unit."""
        if isinstance(chunk, Events):
            raise InputError(f"encoder '{self.name}' takes samples; got camera events")
        if not self._configured:
            C = np.asarray(chunk.values).shape[1]
            self.configure(SourceInfo(format="?", kind="samples", channels=C), None, None)
        v = np.asarray(chunk.values, np.float64)
        if v.ndim != 2:
            raise InputError(f"encoder '{self.name}': samples of shape {v.shape}; expected (n, channels)")
        if v.shape[1] <= self.sel.max():
            raise InputError(f"encoder '{self.name}': a chunk with {v.shape[1]} channels; expected at least "
                             f"{self.sel.max() + 1}")
        v = v[:, self.sel]
        if self._rs is not None:
            t, v, arrival, labels = self._rs.push(np.asarray(chunk.t, np.float64), v, chunk.arrival, chunk.labels)
        else:
            t = np.asarray(chunk.t, np.float64)
            arrival = np.full(len(t), chunk.arrival, np.float64)
            labels = chunk.labels
        if self.unit is not None:
            with np.errstate(invalid="ignore"):
                if not np.isfinite(v).all():
                    raise InputError(f"encoder '{self.name}': a sample is NaN or infinite; unit= takes finite values")
                v = np.clip(np.rint(v / self.unit), -32768, 32767)
        return t, v, arrival, labels

    def _encode(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def reset(self) -> None:
        if getattr(self, "_rs", None) is not None:
            self._rs.reset()

    def spec(self) -> str:
        kw = dict(self._kw)
        if self.channels is not None:
            kw["channels"] = "|".join(map(str, self.channels))
        for k, v, d in (("scale", self._scale, [1.0]), ("offset", self._offset, [0.0]), ("unit", self._unit, None)):
            if v is not None and v != d:  # the unit exactly: the counts depend on every bit of it
                kw[k] = "|".join(repr(float(x)) if k == "unit" else f"{x:g}" for x in v)
        if self.rate is not None:
            kw["rate"] = f"{self.rate:g}"
        if self.layout != self.layouts[0]:
            kw["layout"] = self.layout
        return self.name + (":" + ",".join(f"{k}={v}" for k, v in kw.items()) if kw else "")


class DirectEncoder(SampleEncoder):
    """Encoding-free: the scaled values are the model input (input current)."""

    name = "direct"

    def _encode(self, x):
        return x.astype(np.float32)


class _Spiking(SampleEncoder):
    layouts = ("signed", "split")

    def __init__(self, threshold=0.1, max_spikes=None, **kw):
        super().__init__(**kw)
        self._thr = _list(threshold, "threshold")
        if any(not t > 0 for t in self._thr):
            raise InputError(f"encoder '{self.name}': threshold={threshold!r}; expected values > 0")
        self.max_spikes = 0 if max_spikes is None else int(max_spikes)
        if self.max_spikes < 0:
            raise InputError(f"encoder '{self.name}': max_spikes={max_spikes}; expected ≥ 1 (or none)")
        self._kw["threshold"] = "|".join(f"{t:g}" for t in self._thr)
        if max_spikes is not None:
            self._kw["max_spikes"] = self.max_spikes

    def _setup(self, n):
        self.threshold = self._per_channel(self._thr, n, "threshold")

    def _out(self, k: np.ndarray) -> np.ndarray:
        if self.layout == "split":
            return np.concatenate((np.maximum(k, 0), np.maximum(-k, 0)), axis=1).astype(np.float32)
        return k.astype(np.float32)


class DeltaEncoder(_Spiking):
    """Send-on-delta: signed counts of threshold crossings per step. ``init``: the reference starts
    at the first sample (``first``, no spikes for the initial level) or at 0 (``zero``)."""

    name = "delta"

    def __init__(self, threshold=0.1, max_spikes=None, init="first", **kw):
        super().__init__(threshold, max_spikes, **kw)
        if init not in ("first", "zero"):
            raise InputError(f"encoder 'delta': init='{init}'; expected first or zero")
        self.init = init
        if init != "first":
            self._kw["init"] = init

    def reset(self):
        super().reset()
        self.ref = None

    def _encode(self, x):
        if self.ref is None:
            if self.init == "first" and not len(x):  # no sample yet: the reference waits for the first
                return self._out(np.zeros(x.shape, np.int64))
            self.ref = x[0].copy() if self.init == "first" else np.zeros(x.shape[1])
        k = np.zeros(x.shape, np.int64)
        _delta_kernel(x, self.ref, self.threshold, self.max_spikes, k)
        return self._out(k)


class SigmaDeltaEncoder(_Spiking):
    """First-order sigma-delta modulator per channel (integrate, emit whole thresholds, subtract)."""

    name = "sigma_delta"

    def reset(self):
        super().reset()
        self.acc = np.zeros(self.n_in) if self._configured else None

    def _encode(self, x):
        k = np.zeros(x.shape, np.int64)
        _sigma_delta_kernel(x, self.acc, self.threshold, self.max_spikes, k)
        return self._out(k)


class RateEncoder(SampleEncoder):
    """Rate coding, deterministic (accumulate and fire) or Poisson (seeded)."""

    name = "rate"
    layouts = ("positive", "split")

    def __init__(self, mode="deterministic", gain=None, seed=0, max_spikes=1, **kw):
        super().__init__(**kw)
        if mode not in ("deterministic", "poisson"):
            raise InputError(f"encoder 'rate': mode='{mode}'; expected deterministic or poisson")
        self.mode = mode
        self._gain = _list(gain, "gain")
        self.seed = int(seed)
        self.max_spikes = 0 if max_spikes is None else int(max_spikes)
        self._kw["mode"] = mode
        if gain is not None:
            self._kw["gain"] = "|".join(f"{g:g}" for g in self._gain)
        if mode == "poisson":
            self._kw["seed"] = self.seed
        elif max_spikes != 1:
            self._kw["max_spikes"] = max_spikes

    def _setup(self, n):
        dt = self.dt if self.dt else 1.0
        g = self._per_channel(self._gain, n, "gain")
        per_step = np.ones(n) if g is None else g * dt        # default gain 1/dt: x spikes per step
        self.per_step = np.concatenate((per_step, per_step)) if self.layout == "split" else per_step

    def reset(self):
        super().reset()
        self.rng = np.random.default_rng(self.seed)
        self.acc = np.zeros(len(self.per_step)) if self._configured else None

    def _encode(self, x):
        if self.layout == "split":
            x = np.concatenate((np.maximum(x, 0), np.maximum(-x, 0)), axis=1)
        if self.mode == "poisson":
            p = np.clip(x * self.per_step, 0.0, 1.0)
            return (self.rng.random(p.shape) < p).astype(np.float32)
        k = np.zeros(x.shape, np.int64)
        _rate_kernel(np.ascontiguousarray(x), self.acc, self.per_step, self.max_spikes, k)
        return k.astype(np.float32)


ENCODERS = {"direct": DirectEncoder, "delta": DeltaEncoder, "sigma_delta": SigmaDeltaEncoder, "rate": RateEncoder}
