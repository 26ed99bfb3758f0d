"""Models that decide once per window of steps (a TFLite or other ANN over the last T encoded steps, or a
spiking model converted from one and presented each window for T steps: :mod:`.snn_window`), as a session
and a decoder the stream pipeline runs like any other (docs/tflite.md, "Streaming").

:class:`WindowSession` keeps the last ``window`` encoded steps of ``channels`` values each. The first
window ends at step ``window - 1`` (counting from 0), then one every ``hop`` steps; at such a step it
calls ``infer(x)`` with ``x`` the window as a ``(window, channels)`` float32 array, oldest step first,
and outputs the class probabilities it returns (``n_out`` values); at every other step it outputs NaN.
:class:`PerWindowDecoder` turns each non-NaN output row into one decision: label = argmax (ties: the
lowest index), confidence = that probability, time = the stream time of the window's last step,
truth = the most frequent labelled class over the window's steps (ties: the lowest class index).

Nothing here knows which runtime or importer made ``infer``.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from .base import Decision, Decoder, Steps, now


def softmax(z) -> np.ndarray:
    """``exp(z - max z) / Σ exp(z - max z)`` in float64 (what a logits model's confidence is)."""
    z = np.asarray(z, np.float64).ravel()
    e = np.exp(z - z.max())
    return e / e.sum()


class _Program:
    def __init__(self, channels: int):
        self.input_shape = (channels,)


class WindowSession:
    """A session (the pipeline's interface: ``step``, ``run``, ``reset``, ``snapshot``/``restore``)
    over a function of whole windows; see the module."""

    batch = 1

    def __init__(self, infer, window: int, channels: int, n_out: int, hop: int, precision: str = "float"):
        self.infer, self.window, self.channels, self.hop = infer, int(window), int(channels), int(hop)
        self.output_size = int(n_out)
        self.precision = precision
        self.program = _Program(self.channels)
        self.saturations = np.zeros(1, np.int64)
        self.windows = 0
        #: node → (1, n) spike counts of the latest window (a window function that has spiking layers fills
        #: them, for the nodes in :attr:`counting`); ``spiking_nodes`` lists them for the pipeline
        self.spikes: dict = {}
        self.spiking_nodes = []
        self.counting: set = set()
        self.reset()

    def reset(self) -> None:
        self._buf = np.zeros((self.window, self.channels), np.float32)
        self._seen = 0

    def snapshot(self):
        return self._buf.copy(), self._seen, self.windows

    def restore(self, snap) -> None:
        buf, self._seen, self.windows = snap
        self._buf = buf.copy()

    def output_buffer(self, name):
        """The spike counts a window function left for node ``name`` (:attr:`spikes`), a live view: the window's
        counts at the step that decided it, zeros at every other step. Asking for it turns the counting on."""
        if name not in self.spikes:
            raise KeyError(name)
        self.counting.add(name)
        return self.spikes[name]

    def step(self, x) -> np.ndarray:
        for v in self.spikes.values():
            v[...] = 0
        self._buf[:-1] = self._buf[1:]
        self._buf[-1] = np.asarray(x, np.float32).reshape(self.channels)
        self._seen += 1
        k = self._seen - self.window
        if k < 0 or k % self.hop:
            return np.full(self.output_size, np.nan, np.float32)
        self.windows += 1
        p = np.asarray(self.infer(self._buf.copy()), np.float64).ravel()
        if p.size != self.output_size:
            raise InputError(f"the window model gave {p.size} outputs; expected {self.output_size}")
        return p

    def run(self, x, record=()):
        x = np.asarray(x, np.float32).reshape(len(x), self.channels)
        out = np.empty((len(x), self.output_size), np.float64)
        names = [n for n in record if n in self.spikes]
        self.counting.update(names)
        rec = {f"spikes/{n}": np.zeros((len(x), self.spikes[n].size), np.float32) for n in names}
        for k in range(len(x)):
            out[k] = self.step(x[k])
            for n in names:
                rec[f"spikes/{n}"][k] = self.spikes[n].ravel()
        return out, rec


class PerWindowDecoder(Decoder):
    """One decision per window the session decided on (rows of NaN are skipped); see the module."""

    name = "window"

    def __init__(self, labels, window: int):
        self.labels = [str(v) for v in labels]
        self.window = int(window)
        self.reset()

    def spec(self) -> str:
        return f"window:window={self.window}"

    def reset(self) -> None:
        self._truth = []  # the class codes (-1: unlabelled) of the last ``window`` steps

    def _code(self, v) -> int:
        if v is None or (isinstance(v, float) and v != v) or v == "":
            return -1
        if isinstance(v, (int, np.integer)):
            return int(v) if 0 <= int(v) < len(self.labels) else -1
        s = str(v)
        return self.labels.index(s) if s in self.labels else -1

    def update(self, outputs: np.ndarray, steps: Steps) -> list[Decision]:
        out = np.asarray(outputs, np.float64).reshape(len(steps), -1)
        labels = steps.labels
        ds = []
        for k in range(len(steps)):
            self._truth.append(-1 if labels is None else self._code(labels[k]))
            if len(self._truth) > self.window:
                del self._truth[0]
            p = out[k]
            if np.isnan(p).any():
                continue
            i = int(np.argmax(p))
            codes = np.array([c for c in self._truth if c >= 0], np.int64)
            truth = self.labels[int(np.bincount(codes, minlength=len(self.labels)).argmax())] if codes.size else None
            arrival = float(steps.arrival[k])
            latency = now() - arrival if arrival > 0 and np.isfinite(arrival) else None
            ds.append(Decision(t=float(steps.t[k]), label=self.labels[i], index=i, confidence=float(p[i]),
                               scores=p.copy(), latency=latency, truth=truth))
        return ds
