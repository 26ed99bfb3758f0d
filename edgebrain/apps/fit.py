"""``edgebrain devices fit``: does a model fit a device? RAM and flash at the deployed precision,
latency per timestep and energy per inference (analytical estimates), with the verdict, the
margins and the assumptions in words. An application of :mod:`edgebrain.devices` (the profile)
and :mod:`edgebrain.energy.estimate` (the analytical model)."""

from __future__ import annotations

from ..devices import Device, fmt_bytes, python_summary
from ..energy.estimate import counts_for, estimate, latency
from ..errors import InputError, ModelError
from .footprint import blob_buffers
from .footprint import runtime as runtime_footprint
from .icount import latency as icount_latency

#: what the operation counts of a fit (no input given) assume
WORST_CASE = ("operation counts for one timestep, worst case: every input taken as non-zero, so every synapse "
              "with a non-zero weight is charged, every weight is read and every neuron updates (ACs for layers "
              "fed by spikes, MACs otherwise)")


def _buffer_bytes(model, precision: str) -> tuple[int, str]:
    """Activation buffers at batch 1: every node's output held at once (no buffer reuse), 4 bytes per
    element (float32, or int32 accumulators in fixed point)."""
    import numpy as np

    g = model.graph
    n = sum(int(np.prod(g.out_shapes[name])) for name in g.order)
    return 4 * n, (f"activation buffers: every node's output kept ({n} values × 4 B, "
                   f"{'float32' if precision == 'float' else 'int32 accumulators'}; no buffer reuse)")


def _footprint(model, precision: str) -> dict:
    try:
        from ..metrics import footprint
    except ImportError:  # pragma: no cover - metrics ships with edgebrain
        footprint = None
    if footprint is not None:
        f = footprint(model, precision)
        return {"weights": f["param_bytes"], "state": f["state_bytes"], "projected": bool(f.get("estimated"))}
    s = model.summary()["totals"]
    if precision == "float":
        return {"weights": s["float_bytes"], "state": s["state_float_bytes"], "projected": False}
    return {"weights": s["int_bytes"], "state": s["state_int_bytes"], "projected": not model.quant}


def _blob_sizes(model) -> dict | None:
    """The exact sizes of the model's blob and C runtime buffers, or None when it has no integer program."""
    from ..blob import pack, read_header

    try:
        data = pack(model.program("int"))
    except ModelError:
        return None
    return blob_buffers(read_header(data), len(data))


def decision_window(model) -> dict | None:
    """Steps per decision from the model's stream decoder spec (``count:window=100,hop=10``)."""
    spec = (model.graph.meta.get("stream") or {}).get("decoder")
    if not spec:
        return None
    kw = {}
    _, _, rest = str(spec).partition(":")
    for part in filter(None, rest.split(",")):
        k, _, v = part.partition("=")
        kw[k.strip()] = v.strip()
    try:
        window = int(kw.get("window", 50))
        hop = int(kw.get("hop", window))
    except ValueError:
        return None
    return {"decoder": spec, "window": window, "hop": hop}


def fit(model, device: Device, precision: str = "auto") -> dict:
    """Does ``model`` fit ``device``: RAM and flash at the deployed precision, latency per timestep
    and energy per inference (analytical estimates), with the verdict, margins and assumptions."""
    if precision == "auto":
        precision = "int" if (model.quant or device.is_mcu) else "float"
    if precision not in ("int", "float"):
        raise InputError(f"precision '{precision}'; expected auto, int or float")
    assumptions, warnings = [], []
    fp = _footprint(model, precision)
    if fp["projected"]:
        assumptions.append("model not quantized: fixed-point footprint projected for int8 weights, int32 biases and "
                           "requantisation constants, int16 state (edgebrain convert --quantize int8 defaults)")
    rtf = runtime_footprint(device)
    exact = _blob_sizes(model) if (precision == "int" and device.is_mcu and model.quant) else None
    mem = device.data["memory"]
    weights_in_flash = mem["weights_in"] == "flash"
    if exact is not None:  # the C runtime's exact buffers, read from the model's blob
        buf = exact["act"] + exact["scratch"]
        fp = {**fp, "weights": exact["blob"], "state": exact["state"], "projected": False}
        ram_items = {"state": exact["state"], "act": exact["act"], "scratch": exact["scratch"], "runtime": rtf["ram"]}
        assumptions.append(f"model sizes exact, from its blob (edgebrain firmware export): blob {fmt_bytes(exact['blob'])}, "
                           f"state {fmt_bytes(exact['state'])}, activations {fmt_bytes(exact['act'])}, scratch "
                           f"{fmt_bytes(exact['scratch'])} (saturation counters and accumulators)")
    else:
        buf, buf_text = _buffer_bytes(model, precision)
        assumptions.append(buf_text)
        ram_items = {"state": fp["state"], "buffers": buf, "runtime": rtf["ram"]}
    flash_items = None
    if weights_in_flash:
        flash_items = ({"blob": exact["blob"]} if exact is not None else {"weights": fp["weights"]})
        flash_items["runtime"] = rtf["flash"]
        assumptions.append("weights stored in flash as constants and read in place; state and buffers in RAM")
    else:
        ram_items = {"weights": fp["weights"], **ram_items}
        assumptions.append("weights, state and buffers in RAM")
    assumptions.append(rtf["description"])

    def check(items, avail):
        need = int(sum(items.values()))
        return {"items": {k: int(v) for k, v in items.items()}, "need": need, "available": int(avail),
                "margin": int(avail) - need, "margin_pct": 100.0 * (int(avail) - need) / avail if avail else None,
                "fits": need <= avail}

    ram = check(ram_items, mem["ram_bytes"])
    if flash_items is not None:
        flash = check(flash_items, mem["flash_bytes"])
    else:
        flash = {"checked": False, "reason": "the model file lives on storage (SD card, eMMC, NVMe)", "fits": True,
                 "need": int(fp["weights"])}
    fits = ram["fits"] and flash["fits"]

    counts = counts_for(model, precision)
    # no input is given, so the counts are the worst case; said once, in the estimate's own terms
    assumptions.append(WORST_CASE)
    assumptions += [f"operation counts: {a}" for a in counts.get("assumed", []) if not a.startswith("worst case")]
    t_step, lat_text = latency(counts, device)
    steps = max(int(counts["steps"]), 1)
    est = estimate(counts, device, time_s=None, static=None, footprint_bytes=fp["weights"] + fp["state"])
    per_step_dyn = est.total_j / steps
    active = float(device.data["power"]["active_w"])
    per_step_dev = active * t_step
    energy = {"per_step_j": per_step_dyn, "device_per_step_j": per_step_dev, "estimate": est.as_dict()}
    assumptions += lat_text
    lat_i = icount_latency(model, device) if precision == "int" else None
    if lat_i:
        assumptions.append(lat_i["text"])
    assumptions.append(f"device-level energy per step = active power {active:g} W × estimated latency"
                       + (" (active power estimated)" if device.estimated("power.active_w") else ""))
    win = decision_window(model)
    if win:
        energy["window"] = win
        energy["per_window_j"] = per_step_dyn * win["window"]
        energy["device_per_window_j"] = per_step_dev * win["window"]
        assumptions.append(f"one decision = a window of {win['window']} steps (decoder {win['decoder']}); with "
                           f"hop {win['hop']} a new decision costs {win['hop']} steps")
    realtime = None
    rate = (model.graph.meta.get("stream") or {}).get("rate")
    if rate:
        budget = 1.0 / float(rate)
        realtime = {"rate": float(rate), "budget_s": budget, "latency_s": t_step, "ok": t_step <= budget,
                    "load_pct": 100.0 * t_step / budget}
    py = device.data["python"]
    if device.is_mcu:
        warnings.append(f"{python_summary(device)}: edgebrain's Python/Numba runtime does not run here; the fit "
                        "assumes a C runtime with the model compiled in")
    elif not py["numba"]:
        warnings.append(f"{python_summary(device)}: {py.get('note') or 'numba unavailable'}")
    if precision == "float" and device.data["cpu"]["fpu"] == "none":
        warnings.append("float precision on a device without FPU: software floating point (slow); quantize the model")
    if realtime and not realtime["ok"]:
        warnings.append(f"estimated latency {t_step * 1e3:.3g} ms per step exceeds the model's step budget "
                        f"{realtime['budget_s'] * 1e3:.3g} ms ({realtime['rate']:g} steps/s)")
    return {"model": model.path, "device": device.name, "title": device.data["title"], "profile": device.path,
            "precision": precision, "fits": fits, "verdict": "fits" if fits else "does not fit",
            "ram": ram, "flash": flash, "footprint": {**fp, "buffers": buf},
            "runtime": {k: v for k, v in rtf.items() if k != "description"},
            "model_sizes": "exact (blob)" if exact is not None else "estimate",
            "latency_s": t_step, "latency_from_instructions": lat_i, "realtime": realtime, "energy": energy,
            "counts": {k: counts[k] for k in ("dense", "eff_macs", "eff_acs", "membrane_updates", "weight_bytes_read",
                                              "state_bytes_rw", "steps")},
            "warnings": warnings, "assumptions": assumptions + est.assumptions}
