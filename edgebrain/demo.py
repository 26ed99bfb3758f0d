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


def run_demo(json_out: bool = False, seconds: int = 12, seed: int = 7, extra: dict | None = None) -> dict:
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
        "setup_seconds": t_prep, "synthetic": True, **(extra or {}),
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


# ---------------------------------------------------------------------- zoo demos on real recordings

ZOO_DEMOS = {
    # name: (zoo model, dataset, default number of recordings)
    "har": ("har-l2mu", "sp-sw-har", 3),
    "kws": ("kws", "fsdd", 10),
    "nmnist": ("nmnist", "nmnist-small", 10),
}


def demo_recordings(name: str, root, n: int) -> list[tuple[str, str | None]]:
    """(file, truth or None when the file carries per-sample labels) for demo ``name``: test-split
    recordings only (never seen in training)."""
    from pathlib import Path

    root = Path(root)
    if name == "har":  # test subjects s16–s18; labels are inside the files
        files = sorted(p for s in (16, 17, 18) for p in (root / f"s{s}").glob(f"s{s}_*_sw.csv"))
        return [(str(f), None) for f in files[:n]]
    if name == "kws":  # speaker theo, one recording per digit in turn
        out = []
        for i in range(50):
            for d in range(10):
                f = root / "recordings" / f"{d}_theo_{i}.wav"
                if f.is_file():
                    out.append((str(f), str(d)))
                if len(out) >= n:
                    return out
        return out
    if name == "nmnist":  # the 100 test samples, labels in test100.txt
        from .datasets import nmnist_labels

        files = [(root / f"{i}.bs2", d) for i, d in nmnist_labels(root / "test100.txt").items()]
        return [(str(f), str(d)) for f, d in files if f.is_file()][:n]
    raise ValueError(name)


class _DemoPrinter:
    """A sink printing each decision against the truth as it happens."""

    def __init__(self, console, truth=None):
        self.c = console
        self.truth = truth
        self.log = []

    def emit(self, d):
        self.log.append(d)
        truth = d.truth if d.truth is not None else self.truth
        mark = "" if truth is None else (" ✓" if d.label == truth else " ✗")
        lab = d.label if d.label is not None else "(no decision)"
        lat = f"{1e3 * d.latency:6.3f} ms" if d.latency is not None else ""
        self.c.print(f"    t={d.t:7.2f} s  {lab:<13} conf {d.confidence:4.2f}  truth {str(truth):<13}{mark}  {lat}")

    def summary(self, s):
        pass

    def close(self):
        pass


def run_zoo_demo(name: str, precision: str = "int", items: int = 0, realtime: bool = False,
                 json_out: bool = False) -> dict:
    """Stream test recordings through zoo model ``name`` and score its decisions (see `edgebrain demo`)."""
    from rich.console import Console

    from . import datasets, zoo
    from .errors import InputError
    from .model import Model
    from .stream.pipeline import build_pipeline

    if name not in ZOO_DEMOS:
        raise InputError(f"unknown demo '{name}'; expected one of {', '.join(ZOO_DEMOS)} or motion")
    if precision not in ("int", "float"):
        raise InputError(f"--precision {precision}; expected int or float")
    model_name, ds, n_default = ZOO_DEMOS[name]
    c = Console(stderr=json_out)
    root = datasets.find(ds)
    if root is None:
        looked = "; ".join(f"{w}: {p}" for w, p in datasets.roots())
        c.print(f"[yellow]no {ds} recordings found[/] (looked in {looked}; `edgebrain data fetch {ds}` downloads "
                "them).\n[yellow]Running the built-in SYNTHETIC example instead: a generated motion stream and a "
                "model trained on generated data — not the zoo model, not a real recording.[/]")
        return run_demo(json_out=json_out, extra={"demo": name, "fallback_reason": f"no {ds} recordings found"})
    model = Model.load(zoo.path(model_name))
    recs = demo_recordings(name, root, items or n_default)
    card = model.graph.meta.get("card") or {}
    c.print(f"[bold]edgebrain demo {name}[/]: zoo:{model_name} ({card.get('title', '')}), {precision} precision, "
            f"{len(recs)} test recording{'s' if len(recs) != 1 else ''} from {root}")
    # the first use compiles the kernels (Numba caches them on disk): do it before timing anything
    t0 = time.perf_counter()
    build_pipeline(model, recs[0][0], precision=precision, max_seconds=0.5, activity=False).run()
    c.print(f"  (first-use compile and warm-up: {time.perf_counter() - t0:.1f} s)")
    decisions, lat, scored, correct = [], [], 0, 0
    stream_s = wall_s = 0.0
    steps_total = 0
    for f, truth in recs:
        c.print(f"  [cyan]{f}[/]" + (f"  (truth {truth})" if truth is not None else ""))
        sink = _DemoPrinter(c, truth)
        p = build_pipeline(model, f, precision=precision, realtime=realtime, sinks=[sink])
        t0 = time.perf_counter()
        s = p.run()
        wall_s += time.perf_counter() - t0
        stream_s += s["stream_seconds"]
        steps_total += s["steps"]
        lat += list(np.array(p.latencies) * 1e3)
        for d in sink.log:
            t = d.truth if d.truth is not None else truth
            decisions.append({"file": f, "t": round(float(d.t), 4), "label": d.label,
                              "confidence": round(float(d.confidence), 4), "truth": t})
            if t is not None:
                scored += 1
                correct += int(d.label == t)
    if name != "har":
        # one decision per recording: the last one made (the window covering the utterance / sample)
        last = {}
        for d in decisions:
            last[d["file"]] = d
        per = list(last.values())
        scored = len(per)
        correct = sum(int(d["label"] == d["truth"]) for d in per)
    energy = _energy_per_decision(model, precision, steps_total / max(len(decisions), 1))
    lat_a = np.array(lat) if lat else np.zeros(0)
    result = {
        "demo": name, "model": f"zoo:{model_name}", "precision": precision, "recordings": [f for f, _ in recs],
        "decisions": decisions, "accuracy": round(correct / scored, 4) if scored else None, "scored": scored,
        "latency_ms": {"p50": round(float(np.percentile(lat_a, 50)), 4) if lat_a.size else None,
                       "p99": round(float(np.percentile(lat_a, 99)), 4) if lat_a.size else None},
        "stream_seconds": round(stream_s, 3), "wall_seconds": round(wall_s, 3),
        "realtime_factor": round(stream_s / wall_s, 1) if wall_s > 0 else None,
        "energy_per_decision": energy, "synthetic": False,
    }
    if json_out:
        print(json.dumps(result, indent=1))
        return result
    acc = result["accuracy"]
    c.print(f"[bold]summary[/]: accuracy {100 * acc:.1f} % over {scored} scored decisions" if acc is not None
            else "[bold]summary[/]: nothing to score")
    if lat_a.size:
        c.print(f"  latency sample arrival → decision: p50 {result['latency_ms']['p50']:.3f} ms, "
                f"p99 {result['latency_ms']['p99']:.3f} ms" + ("" if realtime else
                " (files read as fast as possible, a chunk at a time; --realtime paces them sample by sample)"))
    c.print(f"  {stream_s:.1f} s of recordings in {wall_s:.2f} s: {result['realtime_factor']}× real time")
    if energy:
        c.print(f"  energy per decision (analytical, worst case: every synapse active; {energy['device']} profile): "
                f"{_fmt_j(energy['per_decision_j'])} over {energy['steps_per_decision']:.1f} steps — "
                "`edgebrain profile` measures it where the device has a meter")
    return result


def _fmt_j(j: float) -> str:
    for unit, f in (("mJ", 1e-3), ("µJ", 1e-6), ("nJ", 1e-9)):
        if j >= f:
            return f"{j / f:.3g} {unit}"
    return f"{j / 1e-12:.3g} pJ"


def _energy_per_decision(model, precision: str, steps_per_decision: float) -> dict | None:
    """Worst-case analytical energy of one decision on the host profile (see docs/energy.md)."""
    from . import metrics
    from .devices import load
    from .energy.estimate import counts_for, estimate
    from .errors import EdgebrainError

    try:
        counts = counts_for(model, precision)
        fp = metrics.footprint(model, precision)
        est = estimate(counts, load("host"), static=None, footprint_bytes=fp["param_bytes"] + fp["state_bytes"])
    except EdgebrainError:
        return None
    per_step = est.total_j / max(int(counts["steps"]), 1)
    return {"device": "host", "per_decision_j": per_step * steps_per_decision,
            "steps_per_decision": steps_per_decision, "kind": "analytical worst case (every synapse active)"}
