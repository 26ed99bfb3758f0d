"""``edgebrain demo motion``: the built-in example, no network, data or hardware needed.

Imports the shipped NIR file (detecting snnTorch's conventions), quantizes it to int8 weights and
int16 state on generated calibration data, then streams a generated recording through both
precisions one timestep at a time and reports decisions against the truth, agreement and speed.
"""

from __future__ import annotations

import json
import time

import numpy as np

from ...synthetic import CLASSES, RATE_HZ, WINDOW, example_path, synthetic_motion
from .printing import print_motion
from .scoring import accuracy, window_decision


def run_demo(json_out: bool = False, seconds: int = 12, seed: int = 7, extra: dict | None = None,
             plot: str | None = None) -> dict:
    """Run the built-in example and print it (or its JSON); returns the result. ``plot``: a PNG path
    for the timeline of the fixed-point stream (:mod:`..timeline_plot`)."""
    from ...model import Model
    from ...quant import quantize

    if plot:
        from ..timeline_plot import check_plot_path

        check_plot_path(plot, example_path())  # before the work, as for every --plot

    t0 = time.perf_counter()
    model = Model.load(example_path())
    rep = model.graph.meta["import_report"]
    rng = np.random.default_rng(seed)
    calib_labels = rng.integers(0, 3, 24)
    calib = np.stack([synthetic_motion([lab], rng) for lab in calib_labels], axis=1)  # (T, B, 3)
    qmodel, qrep = quantize(model, calib, weight_bits=8, state_bits=16, labels=calib_labels)
    t_prep = time.perf_counter() - t0

    truth = rng.integers(0, 3, seconds)
    stream = synthetic_motion(truth, rng)
    sessions = {p: (model if p == "float" else qmodel).session(p) for p in ("float", "int")}
    decisions = {p: [] for p in sessions}
    counts = {p: np.zeros(3) for p in sessions}
    step_time = {p: [] for p in sessions}
    figure = _Figure(plot, qmodel, sessions["int"], truth) if plot else None
    for t, x in enumerate(stream):
        for p, s in sessions.items():
            a = time.perf_counter()
            y = s.step(x)
            step_time[p].append(time.perf_counter() - a)
            counts[p] += y
        if figure:
            figure.step(t, x, y)
        if (t + 1) % WINDOW == 0:
            if figure:
                figure.decide(t, counts["int"])
            for p in sessions:
                decisions[p].append(window_decision(counts[p]))
                counts[p][:] = 0
    acc = {p: accuracy(d, truth) for p, d in decisions.items()}
    agree = accuracy(decisions["float"], decisions["int"])
    lat = {p: float(np.median(v[WINDOW:]) * 1e6) for p, v in step_time.items()}
    result = {
        "model": example_path(), "dialect": rep["dialect"], "dt": rep["dt"], "detected_because": rep["reason"],
        "seconds_streamed": seconds, "rate_hz": RATE_HZ,
        "decisions": [{"t": (i + 1) * WINDOW / RATE_HZ, "truth": CLASSES[tr],
                       "float": CLASSES[f] if f >= 0 else None, "int": CLASSES[q] if q >= 0 else None}
                      for i, (tr, f, q) in enumerate(zip(truth, decisions["float"], decisions["int"]))],
        "accuracy": acc, "float_int_agreement": agree, "step_latency_us_median": lat,
        "quantization": {"calibration_accuracy_float": qrep.float_accuracy,
                         "calibration_accuracy_int": qrep.int_accuracy},
        "setup_seconds": t_prep, "synthetic": True, **(extra or {}),
    }
    if figure:
        result["plot"] = figure.write(seconds)
    if json_out:
        print(json.dumps(result, indent=1))
        return result
    from ...report import console

    print_motion(console(), result, model.graph.meta["source"]["file"], calib.shape[1])
    if figure:
        console().print(f"timeline: wrote {result['plot']['path']}", highlight=False)
    return result


class _Figure:
    """The timeline of the fixed-point session, fed step by step as a stream pipeline would."""

    def __init__(self, plot, model, session, truth):
        from ..timeline_plot import TimelineFigure

        self.fig = TimelineFigure(plot, model, inputs=(example_path(),), labels=list(CLASSES),
                                  title="edgebrain demo motion: the built-in SYNTHETIC example (generated data), "
                                        "int precision", input_names=["x", "y", "z"])
        self.session, self.truth = session, truth
        self.fig.recorder.begin("synthetic motion")

    def step(self, t, x, y):
        from ...stream.base import Steps

        s = self.session
        label = np.array([CLASSES[self.truth[t // WINDOW]]], object)
        steps = Steps(np.asarray(x, np.float32)[None], np.array([(t + 1) / RATE_HZ]), np.zeros(1), label)
        spikes = {n: np.asarray(s.spikes(n), np.float32).reshape(1, -1) for n in s.spiking_nodes}
        self.fig.recorder.on_steps(steps, np.asarray(y, np.float32).reshape(1, -1), spikes)

    def decide(self, t, counts):
        from ...stream.base import Decision

        k = window_decision(counts)
        total = float(counts.sum())
        self.fig.recorder.on_decision(Decision(
            t=(t + 1) / RATE_HZ, label=CLASSES[k] if k >= 0 else None, index=k,
            confidence=float(counts[k]) / total if k >= 0 and total > 0 else 0.0,
            truth=CLASSES[self.truth[t // WINDOW]]))

    def write(self, seconds):
        self.fig.recorder.on_summary({"stream_seconds": float(seconds), "source": "synthetic motion",
                                      "format": "synthetic", "kind": "samples", "precision": "int",
                                      "deployed_precision": "int"})
        return self.fig.write()
