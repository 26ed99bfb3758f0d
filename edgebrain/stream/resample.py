"""Streaming sample-rate conversion, shared by the audio sources (option ``rate=``) and the audio
front-end encoder (a model rate that differs from the source's).

:class:`Resampler` is a polyphase windowed-sinc FIR filter that keeps its state across chunks, so
the output does not depend on how the input was chunked. Its filter is the one
:func:`scipy.signal.resample_poly` designs by default (Kaiser window β = 5, 10·max(up, down) taps
each side of the centre, cutoff at the lower Nyquist frequency), with the same time alignment and
zero padding at both ends; output sample n is at time n / rate.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
from ..jit import njit

from ..errors import InputError

MAX_RATIO_TERM = 4096         # largest up or down factor the resampler accepts


def _resample_filter(up: int, down: int, half_len: int, beta: float = 5.0) -> np.ndarray:
    """The low-pass FIR filter of scipy.signal.resample_poly (``firwin(2·half_len + 1, 1/max(up, down),
    window=('kaiser', beta)) · up``), computed with NumPy only."""
    n = 2 * half_len + 1
    cutoff = 1.0 / max(up, down)
    m = np.arange(n, dtype=np.float64) - half_len
    h = cutoff * np.sinc(cutoff * m) * np.kaiser(n, beta)
    h /= h.sum()
    return h * up


@njit(cache=True)
def _polyphase(buf, buf_start, n_total, n0, n1, up, down, half, h, out):
    """out[n − n0, c] = Σ_i x[i, c] · h[n·down + half − i·up] for n in [n0, n1), over the inputs i with
    0 ≤ n·down + half − i·up ≤ 2·half and 0 ≤ i < n_total (inputs outside are zero). ``buf`` holds
    inputs buf_start, buf_start + 1, …; the sum always runs over increasing i, so the result does
    not depend on how the input was split into chunks."""
    nch = buf.shape[1]
    for n in range(n0, n1):
        c = n * down + half
        i_hi = c // up
        i_lo = -((2 * half - c) // up)          # ceil((c − 2·half) / up)
        if i_lo < 0:
            i_lo = 0
        if i_hi > n_total - 1:
            i_hi = n_total - 1
        for ch in range(nch):
            acc = 0.0
            for i in range(i_lo, i_hi + 1):
                acc += buf[i - buf_start, ch] * h[c - i * up]
            out[n - n0, ch] = acc


def rate_ratio(rate_in: float, rate_out: float) -> tuple[int, int]:
    """(up, down): the smallest integers with rate_out / rate_in = up / down."""
    if not (rate_in > 0 and rate_out > 0 and math.isfinite(rate_in) and math.isfinite(rate_out)):
        raise InputError(f"cannot resample from {rate_in} Hz to {rate_out} Hz: rates must be positive")
    if float(rate_in).is_integer() and float(rate_out).is_integer():
        fr = Fraction(int(rate_out), int(rate_in))
    else:
        fr = Fraction(rate_out / rate_in).limit_denominator(MAX_RATIO_TERM)
    up, down = fr.numerator, fr.denominator
    if max(up, down) > MAX_RATIO_TERM:
        raise InputError(f"cannot resample from {rate_in:g} Hz to {rate_out:g} Hz: the ratio {up}/{down} has "
                         f"terms above {MAX_RATIO_TERM}; choose rates with a simpler ratio")
    return up, down


class Resampler:
    """Streaming rational-ratio resampler (polyphase windowed-sinc FIR), stateful across chunks.

    ``process(x)`` takes (n, channels) samples and returns the output samples that are complete
    (each needs ``half_len / up`` input samples of look-ahead); ``flush()`` returns the rest, with
    the input continued by zeros, so that ``process`` over any chunking followed by ``flush``
    equals ``scipy.signal.resample_poly(x, up, down)`` on the whole signal (to float rounding), and
    equals itself exactly for every chunking. Output sample n lies at time n / rate_out.
    """

    def __init__(self, rate_in: float, rate_out: float, channels: int = 1, beta: float = 5.0):
        self.rate_in, self.rate_out = float(rate_in), float(rate_out)
        self.up, self.down = rate_ratio(rate_in, rate_out)
        self.channels = int(channels)
        self.half = 10 * max(self.up, self.down)
        self.h = _resample_filter(self.up, self.down, self.half, beta)
        self.reset()

    @property
    def identity(self) -> bool:
        return self.up == self.down

    @property
    def delay(self) -> float:
        """Input samples of look-ahead an output sample needs."""
        return self.half / self.up

    def reset(self) -> None:
        self.n_in = 0            # input samples seen
        self.n_out = 0           # output samples produced
        self.buf = np.zeros((0, self.channels), np.float32)
        self.buf_start = 0       # input index of buf[0]

    def n_outputs(self, n_in: int) -> int:
        """Output length for n_in input samples (as resample_poly: ceil(n_in·up / down))."""
        return -((-n_in * self.up) // self.down)

    def _run(self, n1: int) -> np.ndarray:
        n0 = self.n_out
        out = np.empty((max(n1 - n0, 0), self.channels), np.float64)
        if n1 > n0:
            _polyphase(self.buf, self.buf_start, self.n_in, n0, n1, self.up, self.down, self.half, self.h, out)
            self.n_out = n1
        # keep the inputs the next output still needs
        keep_from = max(0, -((2 * self.half - (self.n_out * self.down + self.half)) // self.up))
        if keep_from > self.buf_start:
            cut = min(keep_from - self.buf_start, len(self.buf))
            self.buf = self.buf[cut:]
            self.buf_start += cut
        return out.astype(np.float32)

    def process(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float32)
        if x.ndim == 1:
            x = x[:, None]
        if x.shape[1] != self.channels:
            raise InputError(f"resampler set up for {self.channels} channels got {x.shape[1]}")
        if self.identity:
            self.n_in += len(x)
            self.n_out += len(x)
            return x.copy()
        self.buf = np.concatenate([self.buf, x]) if len(self.buf) else np.ascontiguousarray(x)
        self.n_in += len(x)
        # output n is complete when its last input floor((n·down + half) / up) has arrived
        n1 = (self.n_in * self.up - 1 - self.half) // self.down + 1 if self.n_in else 0
        n1 = min(max(n1, self.n_out), self.n_outputs(self.n_in))
        return self._run(n1)

    def flush(self) -> np.ndarray:
        if self.identity:
            return np.zeros((0, self.channels), np.float32)
        return self._run(self.n_outputs(self.n_in))



__all__ = ["MAX_RATIO_TERM", "Resampler", "rate_ratio"]
