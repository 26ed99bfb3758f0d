"""``edgebrain profile MODEL.tflite|MODEL.onnx``: the energy per inference of a model another runtime runs
(the TFLite interpreter, ONNX Runtime), measured with the same meters and reported in the same shape as a
spiking model's profile (:mod:`.run`), so the two can be put side by side on one device.

**What an inference is.** ``--input X.npy``: for a stateless model, one inference is one call of the
interpreter on one sample of ``X`` ``(N, *sample)``; for a per-step stateful model, one pass over the
``T`` timesteps of ``X`` ``(T, *sample)`` from the initial state (as for a spiking model). ``--source``: one
decision of the stream (a window model decides once per call; a stepped model's decoder decides).

**The estimate.** Such a runtime executes every multiply-accumulate of every layer, whatever the values
(its kernels do not skip zeros), so the operations are counted from the file, not from the activity:
the MACs of each call (:func:`edgebrain.tflite_io.describe`, :func:`edgebrain.onnx_io.describe_graph`),
the bytes of the weights of the MAC operators read once per call, and every activation written and read
once. :func:`edgebrain.energy.estimate.estimate_for` turns those into energy and latency on the device
profile, at int8 for a model with integer input, else fp32. One "step" of the estimate is one call.
"""

from __future__ import annotations

import numpy as np

from ... import devices as D
from ...energy.estimate import estimate_for
from ...errors import InputError
from .run import check_run_options, measure_workload, result_fields
from .workload import Workload, source_workload


def is_interpreted(model) -> bool:
    """A TFLite or ONNX model (or one wrapped for streaming), not a spiking one."""
    return getattr(model, "format", None) in ("tflite", "onnx")


def _inner(model):
    """The TFLiteModel or OnnxModel under a stream wrapper (or the model itself)."""
    return getattr(model, "interpreted", model)


def call_counts(model) -> tuple[dict, dict]:
    """Operation counts of one call of ``model`` (a TFLiteModel or OnnxModel) in the estimator's form
    (:mod:`edgebrain.energy.estimate`), and its footprint."""
    m = _inner(model)
    prec = "int" if np.dtype(m.data["dtype"]).kind in "iu" else "float"
    if m.format == "tflite":
        d = m.summary()
        tensors = {t["index"]: t for t in d["tensors"]}
        weights = {k for op in d["operators"] if op["macs"] for k in op["inputs"][1:]
                   if k >= 0 and tensors[k]["constant"]}
        macs, params = d["totals"]["macs"], d["totals"]["parameters"]
        weight_bytes = sum(tensors[k]["bytes"] for k in weights)
        act_bytes = d["totals"]["activation_bytes"]
        peak, const = d["totals"]["activation_peak_bytes"], d["totals"]["constant_bytes"]
        state_bytes = sum(t["bytes"] for t in d["inputs"] if t.get("role") == "state")
    else:
        g = m.graph()
        if g is None:
            raise InputError("counting an ONNX model's operations needs the onnx package: pip install "
                             "'edgebrain[onnx]' (or pip install onnx)", file=m.path)
        width = 1 if prec == "int" else 4
        macs, params, const = g["totals"]["macs"], g["totals"]["parameters"], g["totals"]["constant_bytes"]
        weight_bytes = const
        act_bytes = width * sum(int(np.prod(op["output_shape"])) for op in g["operators"] if op["output_shape"])
        peak = act_bytes  # no liveness analysis here: every activation counted (an upper bound)
        state_bytes = m.state_bytes
    counts = {"dense": float(macs), "eff_macs": float(macs), "eff_acs": 0.0, "membrane_updates": 0.0,
              "weight_bytes_read": float(weight_bytes), "state_bytes_rw": float(2 * act_bytes + 2 * state_bytes),
              "steps": 1, "precision": prec,
              "assumed": [f"every one of the {macs} MACs of a call executed ({m.runtime} does not skip zeros); the "
                          f"weights of the MAC operators ({weight_bytes} B) read once per call, every activation "
                          f"({act_bytes} B) written and read once, and a stateful model's state too"]}
    footprint = {"param_bytes": int(const), "state_bytes": int(peak + state_bytes),
                 "total_bytes": int(const + peak + state_bytes), "neurobench_bytes": 4 * int(params),
                 "estimated": m.format == "onnx"}
    return counts, {"footprint": footprint, "parameter_count": int(params), "macs_per_call": int(macs),
                    "precision": prec, "runtime": m.runtime, "threads": m.threads, "stateful": m.stateful}


def input_workload(model, xs, name: str = "input") -> Workload:
    """An input array: ``(N, *sample)`` samples of a stateless model (one inference = one call), or
    ``(T, *sample)`` timesteps of a stateful one (one inference = one pass from the initial state)."""
    m = _inner(model)
    xs = m.check_input(np.asarray(xs), file=name)
    if xs.dtype.kind == "f" and not np.all(np.isfinite(xs)):
        raise InputError("array holds NaN or infinite values; expected finite numbers", file=name)
    n = int(xs.shape[0])
    if m.stateful:
        sess = m.step_session()
        real = xs.astype(np.float32) if xs.dtype.kind == "f" else xs

        def run() -> int:
            sess.reset()
            for x in real:
                sess.step(x)
            return 1
        definition = (f"one inference = one pass over the {n} timesteps of the input from the initial state (one "
                      "call per timestep, the state fed back); the array is repeated to fill the run")
        calls = float(n)
    else:
        if m.format == "tflite":
            q = m.quantize_input(xs, file=name)

            def run() -> int:
                for x in q:
                    m.invoke(x)
                return n
        else:
            def run() -> int:
                for x in xs:
                    m.infer(x)
                return n
        definition = (f"one inference = one call of {m.runtime} on one of the {n} samples of the input; the array "
                      "is repeated to fill the run")
        calls = 1.0
    run()  # the interpreter's first call (allocation, caches) outside the measurement
    return Workload("input", run, definition, calls, np.zeros((0,)),
                    {"input": name, "shape": list(xs.shape), "samples" if not m.stateful else "steps": n})


def profile_interpreted(model, *, xs=None, source: str | None = None, meter: str = "model", device: str = "host",
                        precision: str | None = None, baseline_s: float | None = None,
                        duration_s: float | None = None, input_name: str = "input", source_format: str | None = None,
                        source_options: dict | None = None, model_name: str | None = None,
                        timeline: bool = False) -> dict:
    """:func:`edgebrain.apps.profile.profile` for a TFLite or ONNX model (see the module): the same keys, its
    ``metrics`` those of an ANN (MACs, parameters, footprint) and ``kind`` "interpreted"."""
    check_run_options(xs, source, baseline_s, duration_s)
    m = _inner(model)
    if precision is not None:
        raise InputError(f"--precision {precision}: {('a TFLite' if m.format == 'tflite' else 'an ONNX')} model runs "
                         f"at the precision it was converted to ({m.precision} input)", file=m.path)
    counts, facts = call_counts(m)
    prec = facts["precision"]
    dev = D.load(device)

    def workload(duration):
        if xs is not None:
            return input_workload(m, xs, input_name)
        wl = source_workload(model, source, prec, format=source_format, options=source_options, duration_s=duration)
        if not m.stateful:
            wl.steps_per_inference = 1.0  # a window model: one call per decision
        return wl
    wl, res, _, baseline_s, duration_s = measure_workload(workload, meter, baseline_s, duration_s)
    live = wl.info.get("live", False)
    state = wl.info.pop("_state", None)
    for k in ("_captured", "_capture"):
        wl.info.pop(k, None)
    if live:
        if not state["decisions"]:
            raise InputError(f"the live source gave no decision in {state['steps']} steps; nothing to count per "
                             "inference (stream longer: --duration)", file=source)
        wl.steps_per_inference = state["steps"] / state["decisions"] if m.stateful else 1.0
        wl.info.update({"steps_per_pass": state["steps"], "decisions_per_pass": state["decisions"]})
    spi = wl.steps_per_inference
    est = estimate_for(None, counts, dev, prec, spi, footprint_bytes=facts["footprint"]["total_bytes"])
    metrics_out = {**facts, "macs_per_inference": facts["macs_per_call"] * spi, "calls_per_inference": spi,
                   "note": ("counted from the file: every MAC of every call (an interpreter does not skip zeros); "
                            "no spikes, so no activation sparsity or synaptic operations of the NeuroBench kind")}
    return {"kind": "interpreted", "format": m.format, "model": model_name or m.path, "precision": prec,
            **result_fields(res, wl, est, dev, baseline_s, duration_s, step_note="; a step is one call of the "
                            "interpreter"), "metrics": metrics_out}
