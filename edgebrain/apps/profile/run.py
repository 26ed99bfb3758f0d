"""The profile: measured energy per inference (:func:`edgebrain.energy.measure.measure`), the
analytical estimate (:func:`edgebrain.energy.estimate.estimate_for`) and the NeuroBench metrics,
all in one dict (see the package docstring)."""

from __future__ import annotations

import os

import numpy as np

from ... import devices as D
from ... import metrics as M
from ...energy import measure as energy_measure
from ...energy.estimate import estimate_for
from ...energy.meters import make_meter
from ...errors import InputError
from ...stream.snn_window import presented_windows, presents_windows
from .workload import input_workload, source_workload

#: idle baseline (s) for a real meter when none is given: the recipe's ≥ 30 s
DEFAULT_BASELINE_S = 30.0
#: run length (s) with the ``model`` meter (nothing to integrate: only the host timing)
MODEL_METER_DURATION_S = 1.0
#: sensor periods the measured run must span (the recipe's 100)
MIN_PERIODS = 100


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


def check_run_options(xs, source, baseline_s, duration_s) -> None:
    """One line for the options every profile refuses: both or neither of an input and a source, a negative
    baseline, a duration that is not positive."""
    if (xs is None) == (source is None):
        raise InputError("give exactly one of --input (an array) or --source (a recording or live link)")
    if baseline_s is not None and not (np.isfinite(baseline_s) and baseline_s >= 0):
        raise InputError(f"--baseline {baseline_s}; expected seconds >= 0")
    if duration_s is not None and not (np.isfinite(duration_s) and duration_s > 0):
        raise InputError(f"--duration {duration_s}; expected seconds > 0")


def measure_workload(workload, meter: str, baseline_s, duration_s):
    """Open ``meter`` (a one-line error before any work when it cannot be), build the workload with
    ``workload(duration_s)`` and measure it: ``(workload, result, unmeasured, baseline_s, duration_s)`` with
    the defaults filled in (no baseline and a short run for the ``model`` meter, the recipe's baseline
    otherwise)."""
    mtr = make_meter(meter or "model")
    check_duration(mtr, duration_s)
    unmeasured = mtr.kind == "none"
    if baseline_s is None:
        baseline_s = 0.0 if unmeasured else DEFAULT_BASELINE_S
    if duration_s is None and unmeasured:
        duration_s = MODEL_METER_DURATION_S
    mtr.open()  # absent, not permitted: one clear error before any work
    try:
        wl = workload(duration_s)
        live = wl.info.get("live", False)
        res = energy_measure.measure(wl.run, mtr, baseline_s=baseline_s, min_duration_s=0.0 if live else duration_s,
                                     min_periods=MIN_PERIODS)
    finally:
        mtr.close()
    return wl, res, unmeasured, baseline_s, duration_s


def profile(model, *, xs=None, source: str | None = None, meter: str = "model", device: str = "host",
            precision: str | None = None, baseline_s: float | None = None, duration_s: float | None = None,
            input_name: str = "input", source_format: str | None = None, source_options: dict | None = None,
            model_name: str | None = None, timeline: bool = False) -> dict:
    """Profile ``model`` (a loaded :class:`edgebrain.model.Model`) on ``xs`` or ``source``: measured
    energy per inference with ``meter`` (a name or spec string; ``model`` = no sensor), the analytical
    estimate for ``device`` (a profile name or .toml path), the NeuroBench metrics, all in one dict.
    ``timeline``: with the ``model`` meter, also the estimate per decision (or inference) over time,
    counted step by step from the model's activity (``estimate_timeline``, see :mod:`.activity`)."""
    check_run_options(xs, source, baseline_s, duration_s)
    precision = default_precision(model, precision)
    dev = D.load(device)

    def workload(duration):
        if xs is not None:
            return input_workload(model, xs, precision, input_name)
        return source_workload(model, source, precision, format=source_format, options=source_options,
                               duration_s=duration)
    wl, res, unmeasured, baseline_s, duration_s = measure_workload(workload, meter, baseline_s, duration_s)
    live = wl.info.get("live", False)

    state = wl.info.pop("_state", None)
    captured = wl.info.pop("_captured", None)
    capture = wl.info.pop("_capture", None)
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
    windowed = wl.kind == "source" and presents_windows(model)
    if windowed:  # a converted ANN: each decision is one window presented for T steps from the initial state
        wl.xs = presented_windows(model, wl.xs[:, 0])
        wl.steps_per_inference = float(len(wl.xs))
        wl.definition += (f"; each decision presents one window to the model for {len(wl.xs)} steps from its initial "
                          f"state, so counted per window on {wl.xs.shape[1]} windows")
    if len(wl.xs) == 0 or (windowed and wl.xs.shape[1] == 0):
        raise InputError("the model received no input steps; nothing to count", file=source or input_name)

    # -- metrics and counts on the input the model actually saw
    met = M.metrics(model, wl.xs, precision)
    counts = M.count_ops(model, wl.xs, precision)
    est = estimate_for(model, counts, dev, precision, wl.steps_per_inference)
    tl = None
    if timeline and unmeasured and not windowed:
        from .activity import energy_timeline

        if capture is None:
            tl = energy_timeline(model, wl.xs, counts, est, precision, kind="input")
        else:
            tl = energy_timeline(model, wl.xs, counts, est, precision, kind="source",
                                 step_t=np.concatenate(capture.t) if capture.t else None,
                                 decision_t=capture.decision_t, covered_steps=capture.seen)

    spi = wl.steps_per_inference
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
    return {"model": model_name or model.path, "precision": precision,
            **result_fields(res, wl, est, dev, baseline_s, duration_s), "metrics": metrics_out,
            **({"estimate_timeline": tl} if tl is not None else {})}


def result_fields(res, wl, est: dict, dev, baseline_s: float, duration_s: float | None,
                  step_note: str = "") -> dict:
    """The keys every profile result has besides the model, its precision and metrics: the device, the
    workload, the measurement (per inference, per step, host timing, uncertainty), the estimate and the
    comparison of the two. ``res``: the :class:`~edgebrain.energy.measure.EnergyResult`; ``wl``: the
    :class:`~.workload.Workload`; ``est``: :func:`edgebrain.energy.estimate.estimate_for`'s dict."""
    measured = res.as_dict()
    spi = wl.steps_per_inference
    n_inf = res.inferences
    host = None
    if n_inf and res.duration_s > 0:
        host = {"seconds_per_inference": res.duration_s / n_inf, "seconds_per_step": res.duration_s / n_inf / spi,
                "note": "wall time of the measured run on this machine (the sampler runs beside it)" + step_note}
    cmp = None
    if res.dynamic_per_inference_j is not None and est["per_inference_j"] > 0:
        cmp = {"measured_dynamic_over_estimate": res.dynamic_per_inference_j / est["per_inference_j"],
               "measured_total_over_device_estimate": (res.energy_per_inference_j / est["device_per_inference_j"]
                                                       if est["device_per_inference_j"] else None)}
    per_step = None
    if res.energy_per_inference_j is not None:
        per_step = {"energy_j": res.energy_per_inference_j / spi,
                    "energy_uncertainty_j": (res.energy_per_inference_uncertainty_j or 0.0) / spi,
                    "dynamic_j": None if res.dynamic_per_inference_j is None else res.dynamic_per_inference_j / spi,
                    "dynamic_uncertainty_j": (None if res.dynamic_per_inference_uncertainty_j is None
                                              else res.dynamic_per_inference_uncertainty_j / spi)}
    return {
        "device": {"name": dev.name, "title": dev.data["title"], "profile": dev.path},
        "workload": {"kind": wl.kind, "definition": wl.definition, "steps_per_inference": spi,
                     **{k: v for k, v in wl.info.items() if not k.startswith("_")}},
        "meter": measured["meter"], "measured": measured, "per_step_measured": per_step, "host_timing": host,
        "estimate": est, "comparison": cmp,
        "partial": res.partial, "too_short": res.too_short,
        "uncertainty": {"energy_per_inference_j": res.energy_per_inference_uncertainty_j,
                        "dynamic_per_inference_j": res.dynamic_per_inference_uncertainty_j,
                        "components_j": res.uncertainty},
        "settings": {"baseline_s": baseline_s, "duration_s": duration_s, "min_periods": MIN_PERIODS},
    }


def check_plot_path(path: str) -> None:
    """Fail before the run when the plot cannot be written: matplotlib missing, bad directory."""
    from ...energy.plot import require_matplotlib

    require_matplotlib()
    d = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(d):
        raise InputError(f"--plot: directory {d} does not exist", file=path)
    if not path.lower().endswith(".png"):
        raise InputError("--plot: expected a .png file name", file=path)
    from ...safeio import check_output

    check_output(path, "plot")  # not a link, not a directory: say so now, not after the run
