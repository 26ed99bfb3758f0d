"""What a stream did, step by step, kept for a picture: a pipeline observer (see
:mod:`edgebrain.stream.pipeline`) that records the model's input, the spikes of its spiking layers,
the decisions with their confidence and latency, and the recording's labels, in bounded memory.
``edgebrain stream --plot`` and ``edgebrain demo --plot`` draw what it holds
(:mod:`edgebrain.apps.timeline_plot`); this module imports no plotting library.

    rec = TimelineRecorder(labels=["SEATED", ...])
    summary = build_pipeline(model, "s16_01_sw.csv", observers=[rec]).run()
    data = rec.data()          # plain NumPy arrays and numbers

Several recordings streamed one after another (``edgebrain demo``) go on one time axis: call
:meth:`TimelineRecorder.begin` before each, and each starts where the previous one's stream time
ended (its summary's ``stream_seconds``).

**What is kept, and the bounds.**

* *Steps*: the time of each step (stream seconds, the end of the step), the model input (every value
  when a step has at most :data:`MAX_INPUT_VALUES` of them, e.g. IMU axes or audio features; for a
  larger input such as an event frame only the sum, the number of events binned), and the truth
  label. At most ``max_steps`` steps are kept: beyond, every other kept step is dropped and from then
  on only every second step is recorded (the stride doubles as often as needed), so a long stream is
  covered from start to end at a coarser grain. ``stride`` says which steps are kept (global step
  index divisible by it).
* *Spikes*: one dot (step, neuron) per neuron that spiked at least once in a kept step, stored as
  integer indices, never as dense arrays. A layer of more than ``max_neurons`` neurons is shown
  through every k-th neuron (k = ⌈size / max_neurons⌉, the same ones throughout); the dots are also
  bounded (``max_dots``; the step stride doubles when they would exceed it). Exact totals of every
  layer (all neurons, all steps) are kept beside them.
* *Decisions*: time, class index (−1: no decision), confidence, latency, whether it was a flush
  (partial window at the end or before a gap), and its truth; at most ``max_decisions`` (beyond,
  every other one is dropped, and so on). The latency histogram counts every decision in fixed
  logarithmic bins (:data:`LATENCY_EDGES_MS`), so it never grows.
"""

from __future__ import annotations

import math

import numpy as np

#: a step's input is kept whole up to this many values (IMU axes, audio features); beyond, its sum
MAX_INPUT_VALUES = 64
#: latency histogram bins (milliseconds): 1 µs to 1000 s, 20 bins per decade
LATENCY_EDGES_MS = np.logspace(-3, 6, 181)


class _Chunks:
    """Arrays that grow by appending chunks, and can be filtered in place (decimation)."""

    def __init__(self):
        self.parts: list = []

    def add(self, a) -> None:
        if len(a):
            self.parts.append(a)

    def array(self, empty):
        if not self.parts:
            return empty
        if len(self.parts) > 1:
            self.parts = [np.concatenate(self.parts)]
        return self.parts[0]

    def keep(self, mask) -> None:
        if self.parts:
            self.parts = [self.array(None)[mask]]

    def __len__(self):
        return sum(len(p) for p in self.parts)


class TimelineRecorder:
    """A pipeline observer that keeps a stream's timeline in bounded memory (see the module).

    ``labels``: the class names (decisions and truth are drawn against them; learnt from the
    decisions when not given). ``max_steps``, ``max_dots``, ``max_neurons``, ``max_decisions``: the
    bounds."""

    wants_spikes = True

    def __init__(self, labels=None, *, max_steps: int = 20000, max_dots: int = 400_000, max_neurons: int = 256,
                 max_decisions: int = 50_000):
        if min(max_steps, max_dots, max_neurons, max_decisions) < 1:
            raise ValueError("the recorder's bounds must be >= 1")
        self.labels = [str(x) for x in labels] if labels is not None else []
        self.other_truth: list[str] = []       # truth labels that are no class name
        self.max_steps, self.max_dots, self.max_neurons = int(max_steps), int(max_dots), int(max_neurons)
        self.max_decisions = int(max_decisions)
        self.stride = 1                         # steps kept: global index % stride == 0
        self.n_steps = 0                        # steps seen
        self._idx, self._t, self._x, self._xsum, self._truth = (_Chunks() for _ in range(5))
        self.input_size = None                  # values per step
        self.layers: dict[str, dict] = {}       # node -> size, shown neurons, first row, totals
        self._rows = 0
        self._dot_step, self._dot_row = _Chunks(), _Chunks()
        self.decision_stride = 1
        self.n_decisions = 0
        self._dec: list[tuple] = []             # (t, index, confidence, latency ms or nan, flush, truth index)
        self.latency_steady = np.zeros(len(LATENCY_EDGES_MS) - 1, np.int64)
        self.latency_flush = np.zeros(len(LATENCY_EDGES_MS) - 1, np.int64)
        self.latency_outside = 0                # latencies beyond the bins (never expected)
        self.segments: list[dict] = []
        self.summary: dict | None = None        # the latest recording's summary
        self.recordings = 0                     # summaries received
        self.offset = 0.0                       # stream time at which the current recording starts
        self._seg_truth = None
        self._seg_steps0 = 0

    # ------------------------------------------------------------------ recordings
    def begin(self, name: str | None = None, truth=None) -> None:
        """A new recording starts (on the same time axis, after the previous one); ``truth``: its
        label when the recording is one labelled sample (its steps carry no labels)."""
        self._close_segment()
        self.segments.append({"name": name, "t0": self.offset, "t1": None, "truth": truth,
                              "first_step": self.n_steps})
        self._seg_truth = truth

    def _close_segment(self, seconds: float | None = None) -> None:
        if self.segments and self.segments[-1]["t1"] is None:
            seg = self.segments[-1]
            end = seg["t0"] + seconds if seconds is not None else max(seg["t0"], self._last_t())
            seg["t1"] = end
            seg["steps"] = self.n_steps - seg["first_step"]
            self.offset = end

    def _last_t(self) -> float:
        t = self._t.array(np.zeros(0))
        return float(t[-1]) if len(t) else self.offset

    # ------------------------------------------------------------------ observer
    def on_steps(self, steps, outputs, spikes) -> None:
        T = len(steps)
        if T == 0:
            return
        if not self.segments:
            self.begin()
        g = self.n_steps + np.arange(T, dtype=np.int64)
        self.n_steps += T
        x = np.asarray(steps.x).reshape(T, -1)
        if self.input_size is None:
            self.input_size = int(x.shape[1])
        keep = (g % self.stride) == 0
        kx = x[keep]
        self._idx.add(g[keep])
        self._t.add(self.offset + np.asarray(steps.t, np.float64)[keep])
        self._xsum.add(kx.sum(axis=1, dtype=np.float64).astype(np.float32))
        if self.input_size <= MAX_INPUT_VALUES:
            self._x.add(np.array(kx, np.float32))
        self._truth.add(self._truth_codes(steps.labels, T)[keep])
        for name, a in (spikes or {}).items():
            a = np.asarray(a).reshape(T, -1)
            lay = self.layers.get(name)
            if lay is None:
                size = a.shape[1]
                every = max(1, math.ceil(size / self.max_neurons))
                shown = np.arange(0, size, every)
                lay = self.layers[name] = {"size": size, "every": every, "shown": shown, "row0": self._rows,
                                           "spikes": 0.0, "active": 0}
                self._rows += len(shown)
            lay["spikes"] += float(a.sum())
            lay["active"] += int(np.count_nonzero(a))
            sub = a[keep][:, lay["shown"]] if lay["every"] > 1 else a[keep]
            k, col = np.nonzero(sub)
            self._dot_step.add(g[keep][k])
            self._dot_row.add((col + lay["row0"]).astype(np.int32))
        self._bound()

    def on_decision(self, d) -> None:
        self.n_decisions += 1
        lat = float("nan") if d.latency is None else 1e3 * float(d.latency)
        if d.latency is not None:
            b = int(np.searchsorted(LATENCY_EDGES_MS, lat, side="right")) - 1
            if 0 <= b < len(self.latency_steady):
                (self.latency_flush if d.flush is not None else self.latency_steady)[b] += 1
            else:
                self.latency_outside += 1
        if d.label is not None and d.index >= 0:
            while len(self.labels) <= d.index:
                self.labels.append(str(len(self.labels)))
            self.labels[d.index] = str(d.label)
        truth = d.truth if d.truth is not None else self._seg_truth
        if (self.n_decisions - 1) % self.decision_stride == 0:
            self._dec.append((self.offset + float(d.t), int(d.index), float(d.confidence), lat, d.flush,
                              self._code(truth)))
            if len(self._dec) > self.max_decisions:
                self.decision_stride *= 2
                self._dec = [r for k, r in enumerate(self._dec) if k % 2 == 0]

    def on_summary(self, summary) -> None:
        self.summary = summary
        self.recordings += 1
        if not self.segments:
            self.begin()
        self._close_segment(float(summary.get("stream_seconds") or 0.0))

    # ------------------------------------------------------------------ bounds
    def _bound(self) -> None:
        while (len(self._idx) > self.max_steps or len(self._dot_step) > self.max_dots) and len(self._idx) > 1:
            self.stride *= 2
            s = self.stride
            m = (self._idx.array(None) % s) == 0
            for c in (self._idx, self._t, self._xsum, self._truth, self._x):
                c.keep(m)
            if self._dot_step.parts:
                dm = (self._dot_step.array(None) % s) == 0
                self._dot_step.keep(dm)
                self._dot_row.keep(dm)

    # ------------------------------------------------------------------ labels
    def _code(self, label) -> int:
        """Class index of a truth label (−1: none); names that are no class are numbered after them."""
        if label is None:
            return -1
        if isinstance(label, (int, np.integer)) and not isinstance(label, bool):
            return int(label) if label >= 0 else -1
        if isinstance(label, (float, np.floating)):
            return int(label) if np.isfinite(label) and label >= 0 else -1
        s = str(label)
        if s == "":
            return -1
        if s in self.labels:
            return self.labels.index(s)
        if s not in self.other_truth:
            self.other_truth.append(s)
        return -(2 + self.other_truth.index(s))  # resolved after the classes in data()

    def _truth_codes(self, labels, T: int) -> np.ndarray:
        if labels is None:
            return np.full(T, self._code(self._seg_truth), np.int32)
        labels = np.asarray(labels, object).reshape(-1)
        memo: dict = {}
        out = np.empty(T, np.int32)
        for k, v in enumerate(labels):
            key = v if isinstance(v, (str, int, np.integer)) else repr(v)
            c = memo.get(key)
            if c is None:
                c = memo[key] = self._code(v)
            out[k] = c
        return out

    # ------------------------------------------------------------------ results
    @property
    def duration(self) -> float:
        """Stream seconds covered: the summaries' ``stream_seconds`` added up (the last step's time
        while a recording is still running)."""
        if self.segments and self.segments[-1]["t1"] is None:
            return max(self.offset, self._last_t())
        return self.offset

    def data(self) -> dict:
        """What was recorded, as plain arrays (see the module): the figure is drawn from this alone."""
        n_cls = len(self.labels)

        def resolve(codes):
            codes = np.asarray(codes, np.int64)
            return np.where(codes <= -2, n_cls + (-codes - 2), codes)

        idx = self._idx.array(np.zeros(0, np.int64))
        t = self._t.array(np.zeros(0))
        dstep = self._dot_step.array(np.zeros(0, np.int64))
        drow = self._dot_row.array(np.zeros(0, np.int32))
        dec = self._dec
        layers = []
        for name, lay in self.layers.items():
            r0, n = lay["row0"], len(lay["shown"])
            layers.append({"name": name, "size": lay["size"], "every": lay["every"], "shown": n, "row0": r0,
                           "spikes": lay["spikes"], "active": lay["active"],
                           "dots": int(np.count_nonzero((drow >= r0) & (drow < r0 + n)))})
        return {
            "labels": list(self.labels), "other_truth": list(self.other_truth),
            "duration": self.duration, "steps": self.n_steps, "stride": self.stride,
            "t": t, "step": idx, "input_size": self.input_size,
            "x": self._x.array(None) if self._x.parts else None,
            "x_sum": self._xsum.array(np.zeros(0, np.float32)),
            "truth": resolve(self._truth.array(np.zeros(0, np.int32))),
            "layers": layers, "rows": self._rows,
            "dots_t": t[np.searchsorted(idx, dstep)] if len(dstep) else np.zeros(0),
            "dots_row": drow, "dots_step": dstep,
            "decisions": {
                "t": np.array([r[0] for r in dec], np.float64),
                "index": np.array([r[1] for r in dec], np.int64),
                "confidence": np.array([r[2] for r in dec], np.float64),
                "latency_ms": np.array([r[3] for r in dec], np.float64),
                "flush": [r[4] for r in dec],
                "truth": resolve([r[5] for r in dec]) if dec else np.zeros(0, np.int64),
            },
            "n_decisions": self.n_decisions, "decision_stride": self.decision_stride,
            "latency_hist": {"edges_ms": LATENCY_EDGES_MS, "steady": self.latency_steady.copy(),
                             "flush": self.latency_flush.copy(), "outside": self.latency_outside},
            "segments": [dict(s) for s in self.segments],
            "summary": self.summary, "recordings": self.recordings,
        }
