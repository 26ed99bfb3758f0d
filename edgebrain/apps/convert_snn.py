"""``edgebrain convert MODEL.tflite --to-snn``: a TFLite ANN as a spiking model, with the report that
says what the conversion costs and gains (docs/conversion.md).

:func:`convert_snn` reads the ANN (:mod:`edgebrain.tflite_convert`), balances each layer's threshold on
the calibration samples (the ``percentile`` of its ReLU activations), builds the integrate-and-fire graph,
optionally quantizes it, and measures on the calibration samples (with their labels, when given):

* the TFLite model's own accuracy (run by the TFLite interpreter) and the spiking model's at each
  timestep count, read from one run of the largest: the decision at T is the argmax of the readout
  membrane after T steps; ``agreement``: the share of samples whose decision equals the interpreter's;
* each spiking population's rate (spikes per neuron per step) at each T;
* operations per inference: the ANN's MACs (the file's, every one executed) against the spiking
  model's synaptic operations counted by :func:`edgebrain.metrics.count_ops` on the same samples
  (effective ACs and MACs: only non-zero inputs × non-zero weights; membrane updates), and the
  analytical energy of each on the ``device`` profile (:mod:`edgebrain.energy.estimate`), both at the
  same precision: "int" when the TFLite model is int8 or the spiking model is quantized, else "float".

The chosen timestep count (stored in the model's card) is the smallest evaluated whose decisions are within
1 point of the interpreter's accuracy (its agreement, without labels), else the largest.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..safeio import check_output, reading

DEFAULT_TIMESTEPS = (8, 16, 32, 64)
MAX_TIMESTEPS = 100_000
#: samples per batch of the spiking evaluation, and at most how many samples the operations are counted on
BATCH = 256
COUNT_SAMPLES = 256
QUANT_SAMPLES = 64
#: at most this many bytes of recorded spikes and membranes per evaluated batch
RECORD_BYTES = 64 << 20


def parse_timesteps(spec) -> list:
    """``"8,16,32,64"`` (or a list) as sorted distinct positive integers, or an :class:`InputError`."""
    items = spec if isinstance(spec, (list, tuple)) else str(spec).split(",")
    out = []
    for v in items:
        try:
            t = int(str(v).strip())
        except ValueError:
            raise InputError(f"--timesteps {spec}; expected comma-separated step counts, e.g. 8,16,32,64") from None
        if not 1 <= t <= MAX_TIMESTEPS:
            raise InputError(f"--timesteps: {t} steps; expected 1 to {MAX_TIMESTEPS}")
        out.append(t)
    if not out:
        raise InputError("--timesteps is empty; expected e.g. 8,16,32,64")
    return sorted(set(out))


def convert_snn(model: str, output: str, *, calib: str | None, labels: str | None = None, timesteps=DEFAULT_TIMESTEPS,
                coding: str = "direct", percentile: float = 99.9, device: str = "host", weight_bits: int | None = None,
                state_bits: int = 16, per_channel: bool = True, progress: bool = False, encoder: str | None = None,
                decoder: str | None = None, class_names: list | None = None, rate: float | None = None) -> dict:
    """Convert the TFLite file ``model`` to the spiking model ``output`` (.ebm, or .nir: the float network),
    calibrated on the samples in the .npy file ``calib`` (``(N, *sample)``, as ``edgebrain run`` takes them),
    and measure it (module docstring); returns the report (what ``--json`` prints). The stream settings
    (:func:`stream_settings`) come from the TFLite model's sidecar JSON and ``encoder``, ``class_names``,
    ``rate`` (``decoder``: only ``window``, the one decision per window a converted model makes)."""
    if decoder is not None and decoder.split(":", 1)[0].strip() != "window":
        raise InputError(f"--decoder {decoder}: a converted model decides once per window, on its readout after "
                         "the chosen T steps (decoder 'window'); docs/conversion.md, \"Streaming\"")
    if not calib:
        raise InputError("--to-snn needs calibration samples: pass --calib FILE.npy, (N, *sample) as `edgebrain run` "
                         "takes them for this model")
    steps = parse_timesteps(timesteps)
    from ..tflite_convert import CODINGS
    from ..tflite_io import is_tflite_file

    if coding not in CODINGS:
        raise InputError(f"--coding {coding}; expected one of {', '.join(CODINGS)}")
    if Path(output).suffix.lower() == ".nir" and weight_bits:
        raise InputError("--quantize with a .nir output: NIR holds the float network only; write .ebm to keep the "
                         "fixed-point model (or quantize the .nir file when converting it to .ebm)", file=output)
    if not is_tflite_file(model):
        raise InputError("--to-snn converts a TensorFlow Lite model (.tflite); this is not one", file=model)
    if not (np.isfinite(percentile) and 50 <= percentile <= 100):
        raise InputError(f"--percentile {percentile}; expected 50 to 100 (99.9: the robust maximum)")
    with reading(model, calib, labels):
        check_output(output, "model file")
        from ..arrays import load_array
        from ..devices import load as load_device
        from ..tflite_session import TFLiteModel

        dev = load_device(device)                      # an unknown profile: one line, before any work
        tfl = TFLiteModel(model)
        xs = tfl.check_input(load_array(calib, "calibration"), file=calib)
        if xs.dtype.kind != "f":
            xs = xs.astype(np.float32)
        if not np.isfinite(xs).all():
            raise InputError("the calibration samples hold NaN or infinite values", file=calib)
        y = _labels(labels, len(xs)) if labels else None
        n_out = int(np.prod(next(iter(tfl.output_shapes.values()))))
        if y is not None and (y.min() < 0 or y.max() >= n_out):
            raise InputError(f"labels range over {int(y.min())}..{int(y.max())}; this model has {n_out} classes "
                             f"(0..{n_out - 1})", file=labels)
        stream = stream_settings(model, tfl, encoder=encoder, class_names=class_names, rate=rate)
        return _convert(tfl, model, output, xs, y, steps, coding, float(percentile), dev, weight_bits, state_bits,
                        per_channel, progress, calib, stream)


def _labels(path: str, n: int) -> np.ndarray:
    from ..arrays import load_array

    y = load_array(path, "labels")
    if y.shape != (n,) or y.dtype.kind not in "iub" and not (y.dtype.kind == "f" and np.all(y == np.round(y))):
        raise InputError(f"labels of shape {list(y.shape)} ({y.dtype}); expected ({n},) class indices, one per "
                         "calibration sample", file=path)
    return y.astype(np.int64)


def stream_settings(model: str, tfl, *, encoder=None, class_names=None, rate=None) -> dict:
    """What a converted model streams with (``graph.meta["stream"]``; :mod:`edgebrain.stream.snn_window`):
    the window the ANN was fed (``window``, ``hop``, ``channels``), its ``encoder``, ``labels``, ``rate`` and
    ``source_options``, from the TFLite model's sidecar (:mod:`edgebrain.tflite_stream`) when there is one,
    else the window from a ``(1, T, C)`` input (side by side); ``encoder``, ``class_names`` and ``rate``
    given here override the sidecar's. ``present_steps`` and the layout are added by the conversion."""
    from ..sidecar import sidecar_path
    from ..tflite_stream import WindowedTFLite

    out = {}
    if sidecar_path(model):
        w = WindowedTFLite(model)
        out.update(w.graph.meta["stream"], window=w.window, hop=w.hop, channels=w.channels)
    elif len(tfl.input_shape) == 2:
        T, C = tfl.input_shape
        out.update(window=int(T), hop=int(T), channels=int(C))
    n_out = int(sum(int(np.prod(s)) for s in tfl.output_shapes.values()))
    from types import SimpleNamespace

    from ..stream.pipeline import set_stream_config

    holder = SimpleNamespace(graph=SimpleNamespace(meta={"stream": out}), output_shapes={"output": (n_out,)})
    set_stream_config(holder, encoder=encoder, labels=class_names, rate=rate)     # checked: specs build, names fit
    return holder.graph.meta["stream"]


def _convert(tfl, model, output, xs, y, steps, coding, percentile, dev, weight_bits, state_bits, per_channel,
             progress, calib, stream=None) -> dict:
    from ..model import Model
    from ..tflite_convert import build_snn, read_ann

    ann = read_ann(tfl.file)
    x_snn = ann.snn_input(xs)
    logits, acts = ann.forward(x_snn)
    lambdas = [_robust_max(a, percentile) for a in acts]
    out_lambda = _robust_max(np.abs(logits), percentile)
    in_lambda = _robust_max(np.abs(x_snn), percentile) if coding == "rate" else 1.0
    graph = build_snn(ann, lambdas, coding, in_lambda, out_lambda)
    m = Model(graph, None, None)
    ref = next(iter(tfl.run(xs).values()))
    tfl_pred = ref.reshape(len(ref), -1).argmax(1)
    ann_pred = logits.argmax(1)
    quant_report = None
    if weight_bits:
        from ..quant import quantize

        cal = _repeat(x_snn[:QUANT_SAMPLES], max(steps))
        try:
            m, quant_report = quantize(m, cal, weight_bits=weight_bits, state_bits=state_bits, per_channel=per_channel,
                                       progress=progress)
        except InputError as e:
            raise e.with_file(calib)
    precisions = ["float"] + (["int"] if weight_bits else [])
    evals = {p: _evaluate(m, x_snn, steps, p, progress) for p in precisions}
    rows = []
    for p, (preds, rates) in evals.items():
        for k, t in enumerate(steps):
            row = {"precision": p, "timesteps": t, "agreement": float((preds[k] == tfl_pred).mean()),
                   "spike_rates": {n: float(r[k]) for n, r in rates.items()}}
            if y is not None:
                row["accuracy"] = float((preds[k] == y).mean())
            rows.append(row)
    ann_acc = float((tfl_pred == y).mean()) if y is not None else None
    deployed = "int" if weight_bits else "float"
    chosen = _choose(rows, deployed, ann_acc, steps)
    prec = "int" if (weight_bits or ann.quantized) else "float"
    cost = _costs(m, tfl, ann, x_snn[:COUNT_SAMPLES], steps, prec, dev)
    result = {
        "input": model, "output": str(output), "format": "tflite", "to": "snn",
        "tflite": {"precision": tfl.precision, "accuracy": ann_acc, "macs": ann.macs, "runtime": tfl.runtime,
                   "numpy_agreement": float((ann_pred == tfl_pred).mean())},
        "samples": len(xs), "labels": y is not None, "calib": calib, "coding": coding, "percentile": percentile,
        "input_shape": list(ann.input_shape), "sample_shape": list(ann.sample_shape),
        "thresholds": {f"if{k}": {"operator": ly.index, "op": ly.op, "lambda": lam}
                       for k, (ly, lam) in enumerate(zip(ann.relu_layers, lambdas))},
        "output_lambda": out_lambda, "input_lambda": in_lambda if coding == "rate" else None,
        "timesteps": chosen, "evaluated": rows, "deployed_precision": deployed,
        "decoder": "membrane: the argmax of the readout integrator's membrane after T steps",
        "costs": cost, "quantization": quant_report.as_dict() if quant_report else None,
    }
    _store_card(m, result, model)
    m.graph.meta["stream"] = {**(stream or {}), "present_steps": chosen, "present_shape": [int(v) for v in ann.first_shape],
                              "output_lambda": float(out_lambda)}
    result["stream"] = m.graph.meta["stream"]
    if Path(output).suffix.lower() == ".nir":      # reset by subtraction written as NIR nodes (nir_reset.py)
        m.export_nir(Path(output))
    else:
        m.save(Path(output))
    result["nodes"] = len(m.graph.nodes)
    result["params"] = m.summary()["totals"]["params"]
    return result


def _robust_max(a: np.ndarray, p: float) -> float:
    """The ``p``-th percentile of ``a`` (NumPy's linear interpolation), its maximum when that is 0 (a
    mostly silent layer), 1.0 when all of it is 0 (a dead layer: any threshold gives no spikes)."""
    v = float(np.percentile(a, p))
    if v <= 0:
        v = float(np.max(a))
    return v if v > 0 else 1.0


def _repeat(x: np.ndarray, T: int) -> np.ndarray:
    """Direct input: each sample presented at every one of ``T`` steps, time-major ``(T, N, *shape)``."""
    return np.ascontiguousarray(np.broadcast_to(x[None], (T,) + x.shape), dtype=np.float32)


def _evaluate(m, x: np.ndarray, steps: list, precision: str, progress: bool):
    """(decisions at each T: a list of (N,) arrays; per spiking population its rate at each T), from
    runs of max(steps) steps over batches of :data:`BATCH` samples."""
    T = max(steps)
    idx = np.array(steps) - 1
    spiking = [n for n, op in m.graph.nodes.items() if getattr(op, "spiking", False)]
    sizes = {n: int(np.prod(m.graph.out_shapes[n])) for n in spiking}
    preds = [[] for _ in steps]
    counts = {n: np.zeros(len(steps)) for n in spiking}
    width = 2 * sum(sizes.values())                   # spikes and membrane recorded, float64
    B = max(1, min(BATCH, len(x), RECORD_BYTES // max(1, 8 * T * width)))
    sess = m.session(precision, batch=B)
    for a in range(0, len(x), B):
        chunk = x[a:a + B]
        n = len(chunk)
        if n < B:
            chunk = np.concatenate([chunk, np.zeros((B - n,) + chunk.shape[1:], chunk.dtype)])
        sess.reset()
        out, rec = sess.run(_repeat(chunk, T), record=spiking)
        out = np.asarray(out).reshape(T, B, -1)[:, :n]
        for k, t in enumerate(steps):
            preds[k].append(out[t - 1].argmax(-1))
        for name in spiking:
            s = np.asarray(rec[f"spikes/{name}"]).reshape(T, B, -1)[:, :n].sum(axis=(1, 2))
            counts[name] += np.cumsum(s)[idx]
    rates = {name: counts[name] / (np.array(steps) * len(x) * sizes[name]) for name in spiking}
    return [np.concatenate(p) for p in preds], rates


def _choose(rows: list, precision: str, ann_acc, steps: list) -> int:
    for r in rows:
        if r["precision"] != precision:
            continue
        if (r["accuracy"] >= ann_acc - 0.01) if ann_acc is not None else (r["agreement"] >= 0.99):
            return r["timesteps"]
    return max(steps)


def _costs(m, tfl, ann, x: np.ndarray, steps: list, precision: str, dev) -> dict:
    """Operations and the analytical energy per inference of the ANN and of the spiking model at each T."""
    from .. import metrics as M
    from ..energy.estimate import estimate, estimate_for

    f = tfl.file
    weights = {k for op in f.operators if op.macs for k in op.inputs[1:] if k >= 0 and f.tensors[k].data is not None}
    wide = 1 if precision == "int" else 4       # int: int8 weights and activations, int32 biases
    wbytes = sum(f.tensors[k].data.size * (4 if f.tensors[k].data.ndim < 2 else wide) for k in weights)
    act_bytes = 2 * wide * sum(int(np.prod(t.shape)) for t in f.tensors if t.data is None)   # written, then read
    ann_counts = {"dense": float(ann.macs), "eff_macs": float(ann.macs), "eff_acs": 0.0, "membrane_updates": 0.0,
                  "weight_bytes_read": float(wbytes), "state_bytes_rw": float(act_bytes), "steps": 1,
                  "precision": precision}
    est = estimate(ann_counts, dev, static=None, footprint_bytes=wbytes + act_bytes / 2)
    ann_row = {"macs": ann.macs, "energy_j": est.total_j, "breakdown_j": est.breakdown_j, "weights_in": est.weights_in}
    snn_rows = []
    for t in steps:
        c = M.count_ops(m, _repeat(x, t), precision)
        e = estimate_for(m, c, dev, precision, t)
        snn_rows.append({"timesteps": t, "eff_acs": c["eff_acs"], "eff_macs": c["eff_macs"],
                         "membrane_updates": c["membrane_updates"], "dense": c["dense"], "energy_j": e["per_inference_j"],
                         "breakdown_j": e["breakdown_per_inference_j"], "weights_in": e["weights_in"]})
    return {"device": dev.name, "precision": precision, "samples_counted": len(x), "ann": ann_row,
            "snn": snn_rows,
            "assumptions": [(f"ANN: every one of its {ann.macs} MACs executed (the TFLite kernels do not skip zeros); "
                             "weights read once, every activation written and read once"),
                            ("spiking model: effective operations only (non-zero inputs × non-zero weights), counted "
                             f"on the first {len(x)} samples, and every membrane update; edgebrain's estimator"),
                            *e["assumptions"]]}


def _store_card(m, r: dict, model: str) -> None:
    """The model card: where it came from, the timesteps chosen, the decoder, and the measured table."""
    with open(model, "rb") as fh:
        digest = hashlib.sha256(fh.read()).hexdigest()
    results = [{"model": f"TFLite ANN ({os.path.basename(model)})", "precision": r["tflite"]["precision"],
                "accuracy": r["tflite"]["accuracy"]}] if r["labels"] else []
    results += [{"model": f"SNN T={row['timesteps']}", "precision": row["precision"], "accuracy": row["accuracy"]}
                for row in r["evaluated"] if r["labels"]]
    m.graph.meta["card"] = {
        "title": f"{os.path.basename(model)} converted to integrate-and-fire neurons (edgebrain convert --to-snn)",
        "data": f"thresholds balanced on {r['samples']} samples of {r['calib']} (percentile {r['percentile']:g})",
        "results": results,
        "conversion": {"source": "tflite", "file": os.path.basename(model), "sha256": digest,
                       "tflite_precision": r["tflite"]["precision"], "method": "IF neurons, reset by subtraction, "
                       "threshold balancing (Rueckauer et al. 2017)", "coding": r["coding"],
                       "timesteps": r["timesteps"], "evaluated_timesteps": sorted({x["timesteps"] for x in r["evaluated"]}),
                       "decoder": r["decoder"], "sample_shape": r["sample_shape"], "input_shape": r["input_shape"],
                       "input_layout": "the TFLite sample reshaped as before its first layer, channel-first "
                                       "((H, W, C) → (C, H, W), (L, C) → (C, 1, L)), presented at every step",
                       "thresholds": {k: v["lambda"] for k, v in r["thresholds"].items()},
                       "output_lambda": r["output_lambda"]},
    }
    # IF neurons have no time constant: one step per timestep (dt 1, NIR's forward-Euler reading, r = 1)
    m.graph.meta.update(dt=1.0, dialect="nir", reset="subtract")
    m.graph.meta["import_report"] = {
        "format": "tflite", "converted": "ANN → SNN", "file": os.path.basename(model), "detected": "tflite",
        "reason": "a TFLite ANN converted by convert --to-snn: integrate-and-fire neurons, reset by subtraction",
        "dt_source": "not needed: integrate-and-fire neurons count steps", "warnings": []}
    m.source_digest = None


# --------------------------------------------------------------------------- printing


def print_convert_snn(c, r: dict) -> None:
    """The report for people: thresholds, accuracy against timesteps, rates, operations and energy."""
    from ..energy.units import fmt_j

    t = r["tflite"]
    acc = (lambda v: "—" if v is None else f"{100 * v:.1f} %")
    c.print(f"[bold]{r['input']}[/] ({t['precision']} TFLite, {t['macs']} MACs) → [bold]{r['output']}[/]: "
            f"{r['nodes']} nodes, {r['params']} parameters; {r['coding']} input {r['input_shape']}")
    c.print("thresholds (percentile {:g} of each ReLU's activations on {} samples): ".format(r["percentile"], r["samples"])
            + ", ".join(f"{k} (op {v['operator']} {v['op']}) λ={v['lambda']:.4g}" for k, v in r["thresholds"].items()))
    c.print(f"TFLite interpreter: accuracy {acc(t['accuracy'])} on the {r['samples']} calibration samples")
    cost = {row["timesteps"]: row for row in r["costs"]["snn"]}
    from rich.table import Table

    tab = Table()
    for col in ("T", "precision", "accuracy", "agreement", "spikes/neuron/step", "ACs", "MACs", f"energy ({r['costs']['device']})"):
        tab.add_column(col, justify="right")
    tab.add_row("ANN", t["precision"], acc(t["accuracy"]), "—", "—", "0", str(t["macs"]),
                fmt_j(r["costs"]["ann"]["energy_j"]))
    for row in r["evaluated"]:
        k = cost.get(row["timesteps"]) if row["precision"] == r["deployed_precision"] else None
        rate = float(np.mean(list(row["spike_rates"].values()))) if row["spike_rates"] else 0.0
        tab.add_row(str(row["timesteps"]), row["precision"], acc(row.get("accuracy")), f"{100 * row['agreement']:.1f} %",
                    f"{rate:.3f}", f"{k['eff_acs']:.0f}" if k else "", f"{k['eff_macs']:.0f}" if k else "",
                    fmt_j(k["energy_j"]) if k else "")
    c.print(tab)
    last = [row for row in r["evaluated"] if row["timesteps"] == r["timesteps"]][-1]
    c.print("spike rates at T={}: ".format(r["timesteps"]) + ", ".join(f"{n} {v:.3f}" for n, v in last["spike_rates"].items()))
    c.print(f"chosen: T={r['timesteps']} (decoder {r['decoder']}); operations counted at {r['costs']['precision']} "
            f"precision on {r['costs']['samples_counted']} samples; energy: edgebrain's analytical estimate "
            f"(--json lists its assumptions)")
