"""The built-in example: a small spiking network trained in snnTorch on synthetic 3-axis
motion (still / walking / shaking), exported to NIR by snnTorch, shipped in the package.

``edgebrain demo`` imports that NIR file (detecting snnTorch's conventions), quantizes it to
int8 weights and int16 state on generated calibration data, then streams a generated
recording through both precisions one timestep at a time and prints decisions against the
truth, agreement and speed. No network, data or hardware needed.
"""

from __future__ import annotations

import json
import time
from importlib import resources

import numpy as np

CLASSES = ("still", "walking", "shaking")
RATE_HZ = 50.0
WINDOW = 50  # steps per decision (1 s at 50 Hz)


def example_path() -> str:
    return str(resources.files("edgebrain") / "examples" / "motion_snntorch.nir")


def synthetic_motion(labels, rng, steps=WINDOW) -> np.ndarray:
    """Accelerometer-like signals (steps, 3) per label: still = noise, walking = 1.5–2.5 Hz
    swing, shaking = 5–8 Hz vibration; random amplitudes, phases and axis mixing."""
    out = []
    t = np.arange(steps) / RATE_HZ
    for lab in labels:
        x = 0.08 * rng.standard_normal((steps, 3))
        if lab == 1:
            f = rng.uniform(1.5, 2.5)
            amp = rng.uniform(0.6, 1.2)
            x += amp * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))[:, None] * rng.uniform(0.3, 1, 3)
        elif lab == 2:
            f = rng.uniform(5.0, 8.0)
            amp = rng.uniform(0.6, 1.2)
            x += amp * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))[:, None] * rng.uniform(0.3, 1, 3)
        out.append(x)
    return np.concatenate(out).astype(np.float32)


def run_demo(json_out: bool = False, seconds: int = 12, seed: int = 7) -> dict:
    from .model import Model
    from .quant import quantize

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
    for t, x in enumerate(stream):
        for p, s in sessions.items():
            a = time.perf_counter()
            y = s.step(x)
            step_time[p].append(time.perf_counter() - a)
            counts[p] += y
        if (t + 1) % WINDOW == 0:
            for p in sessions:
                decisions[p].append(int(np.argmax(counts[p])) if counts[p].any() else -1)
                counts[p][:] = 0
    acc = {p: float(np.mean(np.array(d) == truth)) for p, d in decisions.items()}
    agree = float(np.mean(np.array(decisions["float"]) == np.array(decisions["int"])))
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
        "setup_seconds": t_prep,
    }
    if json_out:
        print(json.dumps(result, indent=1))
        return result
    from rich.console import Console

    c = Console()
    c.print(f"[bold]edgebrain demo[/]: {model.graph.meta['source']['file']} (written by snnTorch's NIR exporter)")
    c.print(f"  detected dialect [cyan]{rep['dialect']}[/], dt = {rep['dt']:g} s — {rep['reason']}")
    c.print(f"  quantized to int8 weights / int16 state on {calib.shape[1]} generated sequences "
            f"(setup incl. first-use compile {t_prep:.1f} s)")
    c.print(f"  streaming {seconds} s of generated 3-axis motion at {RATE_HZ:g} Hz, one decision per second:")
    for d in result["decisions"]:
        mark = "✓" if d["int"] == d["truth"] else "✗"
        c.print(f"    t={d['t']:5.1f} s  truth {d['truth']:<8} float {str(d['float']):<8} int {str(d['int']):<8} {mark}")
    c.print(f"  accuracy: float {100 * acc['float']:.0f} %, fixed point {100 * acc['int']:.0f} %; "
            f"decisions agreeing {100 * agree:.0f} %")
    c.print(f"  median step latency (Python call included): float {lat['float']:.1f} µs, int {lat['int']:.1f} µs")
    return result
