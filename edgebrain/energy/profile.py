"""``edgebrain profile``: measured energy per inference beside the analytical estimate, and the
NeuroBench metrics, for one model on one workload.

    from edgebrain.energy.profile import profile, format_report
    res = profile(model, xs=x, meter="um25c:/dev/rfcomm0", device="rpi4b")   # or source="walk.csv"
    print(format_report(res)); json.dumps(res)

**What an inference is.**

* ``xs`` (a time-major array ``(T, *input)`` or ``(T, B, *input)``): one inference is one pass over
  the whole ``T``-step sequence from the reset state, for one sample; a batch of ``B`` samples is
  ``B`` inferences per pass. The array is run again and again (state reset before each pass) to
  fill the measurement. Per-timestep values are the per-inference ones divided by ``T``.
* ``source`` (a recording or live link, as ``edgebrain stream`` takes it): one inference is one
  *decision* of the model's decoder. A recording is streamed from its start on every pass (a
  fresh pipeline, state reset) until the measurement is long enough; a live source is streamed
  once, for the measurement's duration. Per-timestep values divide by the model steps the
  decisions took.

**How.** A first, unmeasured pass compiles the kernels and captures the input the model actually
sees (the array, or the encoder's output for a source, up to :data:`METRIC_STEPS_CAP` steps).
The measurement then follows :func:`edgebrain.energy.measure.measure` (idle baseline, sampling
thread, integration, baseline subtraction, uncertainty). The NeuroBench metrics
(:func:`edgebrain.metrics.metrics`) and the operation counts (:func:`edgebrain.metrics.count_ops`)
are computed on the captured input at the deployed precision, and the analytical estimate
(:func:`edgebrain.energy.estimate.estimate`) multiplies the counts by the device profile's energies
per operation: per inference = per step × steps per inference.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from . import measure as _measure
from .meters import make_meter

#: idle baseline (s) for a real meter when none is given: the recipe's ≥ 30 s
DEFAULT_BASELINE_S = 30.0
#: run length (s) with the ``model`` meter (nothing to integrate: only the host timing)
MODEL_METER_DURATION_S = 1.0
#: sensor periods the measured run must span (the recipe's 100)
MIN_PERIODS = 100
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


# --------------------------------------------------------------------------- workloads


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


def source_workload(model, source: str, precision: str, *, format: str | None = None,
                    options: dict | None = None, duration_s: float | None = None) -> Workload:
    """A recording or live source: one inference = one decision of the model's decoder."""
    from ..stream.pipeline import build_pipeline

    captured: list[np.ndarray] = []
    state = {"capture": True, "steps": 0, "decisions": 0, "passes": 0, "no_decision": 0}

    def new_pipe(max_seconds=None):
        pipe = build_pipeline(model, source, format=format, precision=precision, source_options=options,
                              max_seconds=max_seconds, activity=False)
        if state["capture"]:
            inner = pipe._process
            held = [0]

            def process(steps, inner=inner):
                if steps is not None and len(steps) and held[0] < METRIC_STEPS_CAP:
                    x = np.asarray(steps.x, np.float32)[:METRIC_STEPS_CAP - held[0]]
                    captured.append(x.copy())
                    held[0] += len(x)
                return inner(steps)

            pipe._process = process
        return pipe

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
        sess.run(np.zeros((2, *model.input_shape), np.float32))
        seconds = duration_s if duration_s is not None else 10.0

        def run() -> int:
            return one_pass(seconds)

        definition = (f"one inference = one decision of the model's decoder; the live source is streamed once for "
                      f"{seconds:g} s of stream time")
        wl = Workload("source", run, definition, float("nan"), np.zeros((0, 1, *model.input_shape), np.float32),
                      {"source": source, "live": True})
        wl.info["_state"], wl.info["_captured"] = state, captured
        return wl

    n = one_pass()  # compiles, captures the model's input, counts the decisions of one pass
    if n == 0:
        raise InputError(f"streaming the source through the model gave no decision ({state['steps']} model steps); "
                         "a decision is what an inference is counted as: give a longer recording or a decoder with "
                         "a shorter window", file=source)
    steps, dec = state["steps"], state["decisions"]
    xs = np.concatenate(captured)[:, None] if captured else np.zeros((0, 1, *model.input_shape), np.float32)
    definition = (f"one inference = one decision of the model's decoder ({dec} decisions over {steps} model steps "
                  f"per pass, {steps / dec:.4g} steps per decision); the recording is streamed again from its "
                  "start to fill the run")
    return Workload("source", lambda: one_pass(), definition, steps / dec, xs,
                    {"source": source, "format": state["format"], "source_kind": state["kind"], "live": False,
                     "steps_per_pass": steps,
                     "decisions_per_pass": dec, "no_decision_per_pass": state["no_decision"],
                     "_state": state})


# --------------------------------------------------------------------------- the profile


def default_precision(model, precision: str | None) -> str:
    if precision is None:
        return "int" if model.quant else "float"
    if precision not in ("int", "float"):
        raise InputError(f"precision '{precision}'; expected int or float")
    if precision == "int" and not model.quant:
        raise InputError("--precision int needs a quantized model (edgebrain convert --quantize int8 ...)",
                         file=model.path)
    return precision


def check_duration(meter, duration_s: float | None, min_periods: int = MIN_PERIODS) -> float:
    """The run length a meter needs; a requested ``duration_s`` shorter than that is refused."""
    need = min_periods * float(meter.period_s)
    if meter.kind != "none" and duration_s is not None and duration_s < need:
        raise InputError(f"--duration {duration_s:g} s is too short for meter {meter.name} "
                         f"({meter.rate_hz:.3g} samples/s): the average needs at least {min_periods} sensor periods, "
                         f"run for at least {need:.1f} s")
    return need


def profile(model, *, xs=None, source: str | None = None, meter: str = "model", device: str = "host",
            precision: str | None = None, baseline_s: float | None = None, duration_s: float | None = None,
            input_name: str = "input", source_format: str | None = None, source_options: dict | None = None,
            model_name: str | None = None) -> dict:
    """Profile ``model`` (a loaded :class:`edgebrain.model.Model`) on ``xs`` or ``source``: measured
    energy per inference with ``meter`` (a name or spec string; ``model`` = no sensor), the analytical
    estimate for ``device`` (a profile name or .toml path), the NeuroBench metrics, all in one dict."""
    from .. import devices as D
    from .. import metrics as M

    if (xs is None) == (source is None):
        raise InputError("give exactly one of --input (an array) or --source (a recording or live link)")
    if baseline_s is not None and not (np.isfinite(baseline_s) and baseline_s >= 0):
        raise InputError(f"--baseline {baseline_s}; expected seconds >= 0")
    if duration_s is not None and not (np.isfinite(duration_s) and duration_s > 0):
        raise InputError(f"--duration {duration_s}; expected seconds > 0")
    precision = default_precision(model, precision)
    dev = D.load(device)
    mtr = make_meter(meter or "model")
    check_duration(mtr, duration_s)
    unmeasured = mtr.kind == "none"
    if baseline_s is None:
        baseline_s = 0.0 if unmeasured else DEFAULT_BASELINE_S
    if duration_s is None and unmeasured:
        duration_s = MODEL_METER_DURATION_S

    mtr.open()  # absent, not permitted: one clear error before any work
    try:
        if xs is not None:
            wl = input_workload(model, xs, precision, input_name)
        else:
            wl = source_workload(model, source, precision, format=source_format, options=source_options,
                                 duration_s=duration_s)
        live = wl.info.get("live", False)
        res = _measure.measure(wl.run, mtr, baseline_s=baseline_s, min_duration_s=0.0 if live else duration_s,
                               min_periods=MIN_PERIODS)
    finally:
        mtr.close()

    state = wl.info.pop("_state", None)
    captured = wl.info.pop("_captured", None)
    if live:
        steps, dec = state["steps"], state["decisions"]
        if not dec:
            raise InputError(f"the live source gave no decision in {state['steps']} model steps; nothing to count "
                             "per inference (stream longer: --duration)", file=source)
        wl.steps_per_inference = steps / dec
        wl.xs = np.concatenate(captured)[:, None] if captured else wl.xs
        wl.info.update({"format": state.get("format"), "source_kind": state.get("kind"), "steps_per_pass": steps,
                        "decisions_per_pass": dec})
        wl.definition += f" ({dec} decisions over {steps} model steps, {steps / dec:.4g} steps per decision)"
    if len(wl.xs) == 0:
        raise InputError("the model received no input steps; nothing to count", file=source or input_name)

    # -- metrics and counts on the input the model actually saw
    met = M.metrics(model, wl.xs, precision)
    counts = M.count_ops(model, wl.xs, precision)
    est = estimate_for(model, counts, dev, precision, wl.steps_per_inference)

    measured = res.as_dict()
    n_inf = res.inferences
    host = None
    if n_inf and res.duration_s > 0:
        host = {"seconds_per_inference": res.duration_s / n_inf,
                "seconds_per_step": res.duration_s / n_inf / wl.steps_per_inference,
                "note": "wall time of the measured run on this machine (the sampler runs beside it)"}
    cmp = None
    if res.dynamic_per_inference_j is not None and est["per_inference_j"] > 0:
        cmp = {"measured_dynamic_over_estimate": res.dynamic_per_inference_j / est["per_inference_j"],
               "measured_total_over_device_estimate": (res.energy_per_inference_j / est["device_per_inference_j"]
                                                       if est["device_per_inference_j"] else None)}
    spi = wl.steps_per_inference
    per_step = None
    if res.energy_per_inference_j is not None:
        per_step = {"energy_j": res.energy_per_inference_j / spi,
                    "energy_uncertainty_j": (res.energy_per_inference_uncertainty_j or 0.0) / spi,
                    "dynamic_j": None if res.dynamic_per_inference_j is None else res.dynamic_per_inference_j / spi,
                    "dynamic_uncertainty_j": (None if res.dynamic_per_inference_uncertainty_j is None
                                              else res.dynamic_per_inference_uncertainty_j / spi)}
    w = met.get("synaptic_operations") or {}
    so_per_inf = {k: v / max(counts["steps"], 1) * spi for k, v in w.items()}
    metrics_out = {
        "precision": precision,
        "footprint": met["footprint"],
        "connection_sparsity": met["connection_sparsity"],
        "parameter_count": met["parameter_count"],
        "activation_sparsity": met.get("activation_sparsity"),
        "synaptic_operations": w,
        "membrane_updates": met.get("membrane_updates"),
        "per_step": met.get("per_step"),
        "per_inference": {**so_per_inf,
                          "membrane_updates": met.get("membrane_updates", 0.0) / max(counts["steps"], 1) * spi},
        "steps": met.get("steps"), "samples": met.get("samples"),
        "layers": met.get("layers"),
        "note": (f"NeuroBench definitions (docs/metrics.md), on the {met.get('steps')} steps × {met.get('samples')} "
                 "sample(s) of input the model received; synaptic operations and membrane updates are per sample "
                 "summed over those steps"),
    }
    return {
        "model": model_name or model.path, "precision": precision,
        "device": {"name": dev.name, "title": dev.data["title"], "profile": dev.path},
        "workload": {"kind": wl.kind, "definition": wl.definition, "steps_per_inference": spi,
                     **{k: v for k, v in wl.info.items() if not k.startswith("_")}},
        "meter": measured["meter"], "measured": measured, "per_step_measured": per_step, "host_timing": host,
        "estimate": est, "comparison": cmp, "metrics": metrics_out,
        "partial": res.partial, "too_short": res.too_short,
        "uncertainty": {"energy_per_inference_j": res.energy_per_inference_uncertainty_j,
                        "dynamic_per_inference_j": res.dynamic_per_inference_uncertainty_j,
                        "components_j": res.uncertainty},
        "settings": {"baseline_s": baseline_s, "duration_s": duration_s, "min_periods": MIN_PERIODS},
    }


def estimate_for(model, counts: dict, dev, precision: str, steps_per_inference: float) -> dict:
    """The analytical estimate of one inference on ``dev`` from per-sample ``counts``."""
    from .. import metrics as M
    from .estimate import estimate, latency

    fp = M.footprint(model, precision)
    est = estimate(counts, dev, time_s=None, static=None, footprint_bytes=fp["param_bytes"] + fp["state_bytes"])
    steps = max(int(counts["steps"]), 1)
    scale = steps_per_inference / steps
    t_step, lat_text = latency(counts, dev)
    active = float(dev.data["power"]["active_w"])
    idle = float(dev.data["power"]["idle_w"])
    per_inf = est.total_j * scale
    assumptions = list(est.assumptions) + lat_text + [
        f"device-level energy per inference = active power {active:g} W × estimated latency × "
        f"{steps_per_inference:.4g} steps" + (" (active power estimated)" if dev.estimated("power.active_w") else ""),
    ] + [f"operation counts: {a}" for a in counts.get("assumed", [])]
    if precision == "float" and dev.data["cpu"]["fpu"] == "none":
        assumptions.append("float precision on a device without FPU: software floating point costs many instructions "
                           "per operation; the fp32 energies per operation understate it (quantize the model)")
    if scale != 1.0:
        assumptions.append(f"counted over {steps} steps of input; per inference = per step × "
                           f"{steps_per_inference:.4g} steps")
    return {
        "label": "analytical estimate", "device": dev.name, "precision": precision,
        "per_inference_j": per_inf, "per_step_j": est.total_j / steps,
        "breakdown_per_inference_j": {k: v * scale for k, v in est.breakdown_j.items()},
        "per_op_pj": est.per_op_pj, "weights_in": est.weights_in,
        "latency_per_step_s": t_step, "latency_per_inference_s": t_step * steps_per_inference,
        "device_per_inference_j": active * t_step * steps_per_inference,
        "idle_power_w": idle, "active_power_w": active,
        "counts": {k: counts[k] for k in ("dense", "eff_macs", "eff_acs", "membrane_updates", "weight_bytes_read",
                                          "state_bytes_rw", "steps")},
        "assumptions": assumptions,
    }


# --------------------------------------------------------------------------- report


def fmt_j(x) -> str:
    return _measure._fmt_j(x)


def fmt_s(x) -> str:
    if x is None:
        return "?"
    for unit, f in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if abs(x) >= f:
            return f"{x / f:.3g} {unit}"
    return f"{x / 1e-9:.3g} ns"


def format_report(r: dict) -> str:
    """The human-readable report."""
    m, e, w, met = r["measured"], r["estimate"], r["workload"], r["metrics"]
    spi = w["steps_per_inference"]
    L = [(f"profile of {r['model']} ({r['precision']} precision), estimate for {r['device']['name']} "
          f"({r['device']['title']}), meter {r['meter']['name']}")]
    src = w.get("input") or w.get("source")
    L.append(f"workload: {src}; {w['definition']}")
    L.append(f"run: {m['inferences']} inferences in {m['duration_s']:.2f} s ({m['calls']} calls)"
             + (f"; on this machine {fmt_s(r['host_timing']['seconds_per_inference'])} per inference, "
                f"{fmt_s(r['host_timing']['seconds_per_step'])} per step" if r["host_timing"] else ""))
    L.append("")
    L.append("measured")
    if not m["measured"]:
        L.append("  no sensor (meter model): no measured energy; see the analytical estimate")
    else:
        mt = r["meter"]
        L.append(f"  meter {mt['name']} {mt.get('target') or ''} ({mt.get('scope')}), {m['samples']} samples in the run, "
                 f"{m['baseline_samples']} in the {m['baseline_duration_s']:.1f} s idle baseline".replace("  (", " ("))
        if m["energy_per_inference_j"] is None:
            L.append("  no complete inference was measured")
        else:
            L.append(f"  energy per inference  {fmt_j(m['energy_per_inference_j'])} ± "
                     f"{fmt_j(m['energy_per_inference_uncertainty_j'])} (mean power {m['mean_power_w']:.4g} W; "
                     f"per step {fmt_j(r['per_step_measured']['energy_j'])})")
            if m["dynamic_per_inference_j"] is not None:
                L.append(f"  above idle            {fmt_j(m['dynamic_per_inference_j'])} ± "
                         f"{fmt_j(m['dynamic_per_inference_uncertainty_j'])} (idle {m['baseline_power_w']:.4g} W "
                         f"± {m['baseline_power_std_w'] if m['baseline_power_std_w'] > 1e-12 else 0:.2g} W; per step {fmt_j(r['per_step_measured']['dynamic_j'])})")
            u = m.get("uncertainty") or {}
            L.append("  uncertainty (1 σ, over the run): " + ", ".join(
                f"{k.replace('_j', '')} {fmt_j(v)}" for k, v in u.items() if v is not None))
        if r["partial"]:
            L.append(f"  PARTIAL: {m['partial_reason']}")
        if r["too_short"]:
            L.append(f"  TOO SHORT: {m['too_short_reason']}")
        for n in m.get("notes", []):
            L.append(f"  note: {n}")
    L.append("")
    L.append(f"analytical estimate ({e['device']}, {e['precision']})")
    b = e["breakdown_per_inference_j"]
    L.append(f"  energy per inference  {fmt_j(e['per_inference_j'])} (synaptic MAC {fmt_j(b['synaptic_mac_j'])}, "
             f"AC {fmt_j(b['synaptic_ac_j'])}, membrane {fmt_j(b['membrane_j'])}, weight memory "
             f"{fmt_j(b['weight_memory_j'])}, state memory {fmt_j(b['state_memory_j'])}); per step "
             f"{fmt_j(e['per_step_j'])}")
    L.append(f"  latency per step ≈ {fmt_s(e['latency_per_step_s'])}; device at active power "
             f"{e['active_power_w']:g} W for that long: {fmt_j(e['device_per_inference_j'])} per inference")
    if r["comparison"]:
        c = r["comparison"]
        L.append(f"  measured above idle / estimate = {c['measured_dynamic_over_estimate']:.3g}×"
                 + (f"; measured total / device-level estimate = {c['measured_total_over_device_estimate']:.3g}×"
                    if c.get("measured_total_over_device_estimate") else ""))
    L.append("")
    fp = met["footprint"]
    so = met["synaptic_operations"]
    pi = met["per_inference"]
    L.append(f"metrics (NeuroBench definitions, {met['precision']}; on {met['steps']} steps × {met['samples']} sample(s))")
    L.append(f"  footprint             {fp['total_bytes']} B ({fp['param_bytes']} B parameters + {fp['state_bytes']} B "
             f"state{', estimated' if fp.get('estimated') else ''}); NeuroBench float model {fp['neurobench_bytes']} B")
    L.append(f"  connection sparsity   {met['connection_sparsity']:.4f}")
    L.append(f"  activation sparsity   {met['activation_sparsity']:.4f}")
    L.append(f"  synaptic operations   per sample over the steps: eff MACs {so.get('Effective_MACs', 0):.6g}, "
             f"eff ACs {so.get('Effective_ACs', 0):.6g}, dense {so.get('Dense', 0):.6g}")
    L.append(f"                        per inference ({spi:.4g} steps): eff MACs {pi.get('Effective_MACs', 0):.6g}, "
             f"eff ACs {pi.get('Effective_ACs', 0):.6g}, dense {pi.get('Dense', 0):.6g}")
    L.append(f"  membrane updates      {met['membrane_updates']:.6g} per sample ({pi['membrane_updates']:.6g} per inference)")
    L.append("")
    L.append("assumptions (analytical estimate)")
    L.extend(f"  - {a}" for a in e["assumptions"])
    return "\n".join(L)


def check_plot_path(path: str) -> None:
    """Fail before the run when the plot cannot be written: matplotlib missing, bad directory."""
    from .plot import require_matplotlib

    require_matplotlib()
    d = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(d):
        raise InputError(f"--plot: directory {d} does not exist", file=path)
    if not path.lower().endswith(".png"):
        raise InputError("--plot: expected a .png file name", file=path)


__all__ = ["DEFAULT_BASELINE_S", "MIN_PERIODS", "check_plot_path", "estimate_for", "format_report", "input_workload",
           "profile", "source_workload"]
