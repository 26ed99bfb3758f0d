"""What one call of ``edgebrain profile``'s measured function does: a pass over an input array,
or a recording (or a live link) streamed into decisions; and the model input it captures for
the metrics and the operation counts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ...errors import InputError

#: timesteps of captured input the metrics and counts are computed on (a longer stream is sampled
#: from its start; per-step values are then extrapolated to the whole pass)
METRIC_STEPS_CAP = 10000


@dataclass
class Workload:
    """What one call of the measured function does."""

    kind: str                          # "input" or "source"
    run: Callable[[], int]             # one call: returns the inferences it did
    definition: str                    # what an inference is, in words
    steps_per_inference: float         # model timesteps per inference
    xs: np.ndarray                     # the captured model input (T, B, *input) for the metrics
    info: dict = field(default_factory=dict)


def input_workload(model, xs, precision: str, name: str = "input") -> Workload:
    """An input array, (T, *input) or (T, B, *input) time-major: one inference = one pass over the
    sequence, per sample."""
    xs = np.asarray(xs)
    shape = tuple(model.input_shape)
    if xs.shape[1:] == shape:
        xs = xs[:, None]
    elif not (xs.ndim == len(shape) + 2 and xs.shape[2:] == shape):
        raise InputError(f"array has shape {xs.shape}; expected (T, *{shape}) or (T, B, *{shape}) (time-major)",
                         file=name)
    T, B = int(xs.shape[0]), int(xs.shape[1])
    if T < 1 or B < 1:
        raise InputError(f"array has shape {xs.shape}: no timesteps or no samples; expected T >= 1", file=name)
    if not np.all(np.isfinite(xs)):
        raise InputError("array holds NaN or infinite values; expected finite numbers", file=name)
    xs = np.ascontiguousarray(xs, dtype=np.float32)
    sess = model.session(precision, batch=B)
    feed = xs if B > 1 else xs[:, 0]

    def run() -> int:
        sess.reset()
        sess.run(feed)
        return B

    run()  # compile the kernels outside the measurement
    definition = (f"one inference = one pass over the {T}-step input sequence from the reset state, per sample "
                  f"({B} sample{'s' if B > 1 else ''} per pass); the array is repeated to fill the run")
    return Workload("input", run, definition, float(T), xs,
                    {"input": name, "shape": list(xs.shape), "steps": T, "batch": B})


class Capture:
    """A pipeline observer that keeps what the model received in the first pass: the input of its
    first ``cap`` steps (``xs``, a list of arrays) with their stream times (``t``), and the times of
    the first ``cap`` decisions (``decision_t``: the stream time of each one's last step)."""

    def __init__(self, cap: int = METRIC_STEPS_CAP):
        self.cap, self.seen = cap, 0
        self.xs: list[np.ndarray] = []
        self.t: list[np.ndarray] = []
        self.decision_t: list[float] = []

    def on_steps(self, steps, outputs, spikes) -> None:
        room = self.cap - self.seen
        if room > 0:
            self.xs.append(np.array(np.asarray(steps.x, np.float32)[:room]))
            self.t.append(np.array(steps.t[:room], np.float64))
        self.seen += len(steps)

    def on_decision(self, d) -> None:
        if len(self.decision_t) < self.cap:
            self.decision_t.append(float(d.t))


def source_workload(model, source: str, precision: str, *, format: str | None = None,
                    options: dict | None = None, duration_s: float | None = None) -> Workload:
    """A recording or live source: one inference = one decision of the model's decoder."""
    from ...stream.pipeline import build_pipeline

    capture = Capture()
    captured = capture.xs
    state = {"capture": True, "steps": 0, "decisions": 0, "passes": 0, "no_decision": 0}

    def new_pipe(max_seconds=None):
        return build_pipeline(model, source, format=format, precision=precision, source_options=options,
                              max_seconds=max_seconds, activity=False,
                              observers=[capture] if state["capture"] else ())

    import urllib.parse

    u = urllib.parse.urlsplit(source)
    live = bool(u.scheme) and len(u.scheme) > 1 and u.scheme != "file"   # serial://, tcp://, udp://, mic://

    def one_pass(max_seconds=None) -> int:
        pipe = new_pipe(max_seconds)
        guard = None
        if max_seconds is not None:  # a live source that goes quiet: stop after the chunk in hand
            import threading

            guard = threading.Timer(1.5 * max_seconds + 5.0, pipe.stop)
            guard.daemon = True
            guard.start()
        try:
            s = pipe.run()
        finally:
            if guard is not None:
                guard.cancel()
        state["capture"] = False
        state["passes"] += 1
        state["steps"] += s["steps"]
        state["decisions"] += s["decisions"]
        state["no_decision"] += s["no_decision"]
        state["last"] = s
        state["format"], state["kind"] = s.get("format"), s.get("kind")
        return int(s["decisions"])

    if live:
        # compile on zeros, then stream once for the whole measurement (captured during it)
        sess = model.session(precision)
        shape = tuple(sess.program.input_shape)  # a window model's is one step's, as the encoder feeds it
        sess.run(np.zeros((2, *shape), np.float32))
        seconds = duration_s if duration_s is not None else 10.0

        def run() -> int:
            return one_pass(seconds)

        definition = (f"one inference = one decision of the model's decoder; the live source is streamed once for "
                      f"{seconds:g} s of stream time")
        wl = Workload("source", run, definition, float("nan"), np.zeros((0, 1, *shape), np.float32),
                      {"source": source, "live": True})
        wl.info["_state"], wl.info["_captured"], wl.info["_capture"] = state, captured, capture
        return wl

    n = one_pass()  # compiles, captures the model's input, counts the decisions of one pass
    if n == 0:
        raise InputError(f"streaming the source through the model gave no decision ({state['steps']} model steps); "
                         "a decision is what an inference is counted as: give a longer recording or a decoder with "
                         "a shorter window", file=source)
    steps, dec = state["steps"], state["decisions"]
    xs = np.concatenate(captured)[:, None] if captured else np.zeros((0, 1), np.float32)
    definition = (f"one inference = one decision of the model's decoder ({dec} decisions over {steps} model steps "
                  f"per pass, {steps / dec:.4g} steps per decision); the recording is streamed again from its "
                  "start to fill the run")
    return Workload("source", lambda: one_pass(), definition, steps / dec, xs,
                    {"source": source, "format": state["format"], "source_kind": state["kind"], "live": False,
                     "steps_per_pass": steps,
                     "decisions_per_pass": dec, "no_decision_per_pass": state["no_decision"],
                     "_state": state, "_capture": capture})
