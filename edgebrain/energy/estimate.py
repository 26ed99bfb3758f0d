"""Analytical energy and latency estimates: counted operations × the device profile's costs.

Counts come as a plain dict (what :func:`edgebrain.metrics.count_ops` returns), per sample and
summed over ``steps`` timesteps:

``dense``             synaptic operations of a dense execution (reported, not charged)
``eff_macs``          effective multiply-accumulates (layers fed by real values)
``eff_acs``           effective accumulates (layers fed by binary spikes)
``membrane_updates``  neuron state updates
``weight_bytes_read`` bytes of weights (and biases) read by the kernels
``state_bytes_rw``    bytes of neuron/delay state read and written
``steps``             timesteps the counts cover
``precision``         "int" (int8 weights, int32 accumulate) or "float" (fp32)

Energy (picojoules from the profile's ``[energy]`` table)::

    E_MAC    = int8_mul + int32_add        (float: fp32_mul + fp32_add)
    E_AC     = int32_add                   (float: fp32_add)
    E_neuron = int32_mul + 2·int32_add     (float: fp32_mul + 2·fp32_add): decay, integrate, compare
    E_ops    = eff_macs·E_MAC + eff_acs·E_AC + membrane_updates·E_neuron
    E_mem    = weight_bytes_read/8 · E_access(weights) + state_bytes_rw/8 · sram_access
    E_static = P · t                       (optional: P = idle_w or active_w, t = the run's duration)

``E_access(weights)`` is ``sram_access`` (per 64-bit access) when the weights stay on chip (an MCU;
or per-step weights + state within the CPU's last-level cache), else ``dram_access``.

Latency per timestep (one core)::

    cycles = (eff_macs + eff_acs)/steps / ops_per_cycle + membrane_updates/steps · neuron_update_cycles
    t_step = cycles / clock + step_overhead

Both are *analytical estimates*: the assumptions are returned as text with every result.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError

COUNT_KEYS = ("dense", "eff_macs", "eff_acs", "membrane_updates", "weight_bytes_read", "state_bytes_rw", "steps")
ACCESS_BYTES = 8  # the profile's memory energies are per 64-bit access


@dataclass
class Estimate:
    """An analytical energy estimate; energies in joules."""

    device: str
    precision: str
    steps: int
    per_op_pj: dict
    breakdown_j: dict
    dynamic_j: float
    static_j: float
    total_j: float
    weights_in: str
    assumptions: list = field(default_factory=list)

    @property
    def per_step_j(self) -> float:
        return self.total_j / max(self.steps, 1)

    def as_dict(self) -> dict:
        return {"label": "analytical estimate", "device": self.device, "precision": self.precision,
                "steps": self.steps, "per_op_pj": self.per_op_pj, "breakdown_j": self.breakdown_j,
                "dynamic_j": self.dynamic_j, "static_j": self.static_j, "total_j": self.total_j,
                "per_step_j": self.per_step_j, "weights_in": self.weights_in, "assumptions": list(self.assumptions)}


def _check_counts(counts: dict) -> tuple[dict, str]:
    if not isinstance(counts, dict):
        raise InputError(f"operation counts: got {type(counts).__name__}; expected a dict with keys {', '.join(COUNT_KEYS)}")
    missing = [k for k in COUNT_KEYS if k not in counts]
    if missing:
        raise InputError(f"operation counts: missing key(s) {', '.join(missing)}; expected {', '.join(COUNT_KEYS)}")
    out = {}
    for k in COUNT_KEYS:
        v = counts[k]
        try:
            v = float(v)
        except (TypeError, ValueError):
            raise InputError(f"operation counts: '{k}' is {v!r}; expected a number >= 0") from None
        if not np.isfinite(v) or v < 0:
            raise InputError(f"operation counts: '{k}' is {v!r}; expected a finite number >= 0")
        out[k] = v
    precision = counts.get("precision", "int")
    if precision not in ("int", "float"):
        raise InputError(f"operation counts: precision {precision!r}; expected 'int' or 'float'")
    out["steps"] = max(int(out["steps"]), 1)
    return out, precision


def per_op_energies(device, precision: str) -> tuple[dict, list]:
    """(E_MAC, E_AC, E_neuron in pJ with their formulas, assumptions) for ``precision``."""
    e = device.energy
    # (multiply, accumulate, membrane multiply) operations of each precision
    if precision == "int":
        mul, add, nmul = "int8_mul", "int32_add", "int32_mul"
    else:
        mul, add, nmul = "fp32_mul", "fp32_add", "fp32_mul"
    ops = {"mac": e(mul) + e(add), "ac": e(add), "neuron": e(nmul) + 2 * e(add)}

    def name(op):
        return op.replace("_mul", " multiply").replace("_add", " add")

    why = " (int8 weights, int32 accumulator)" if precision == "int" else ""
    text = [f"{'int' if precision == 'int' else 'float'}: E_MAC = {name(mul)} {e(mul):g} + {name(add)} {e(add):g} = "
            f"{ops['mac']:.4g} pJ{why}; E_AC = {name(add)} {e(add):g} pJ",
            f"membrane update = 1 {name(nmul)} + 2 {name(add)}s (decay, integrate, threshold compare) "
            f"= {ops['neuron']:.4g} pJ"]
    return ops, text


def weights_level(device, counts: dict, footprint_bytes: float | None = None) -> tuple[str, str]:
    """Which memory the weights are read from ("sram" or "dram") and why."""
    if device.is_mcu or "dram_access" not in device.data["energy"]:
        where = "flash, charged as SRAM" if device["memory.weights_in"] == "flash" else "SRAM"
        return "sram", f"weights read from on-chip memory ({where}) at sram_access per 64-bit access"
    steps = max(int(counts["steps"]), 1)
    hot = footprint_bytes if footprint_bytes is not None else (
        counts["weight_bytes_read"] / steps + counts["state_bytes_rw"] / (2 * steps))
    cache = device.data["cpu"].get("cache_bytes") or 0
    if hot <= cache:
        return "sram", (f"weights and state per step ({hot:.0f} B) fit the {cache} B last-level cache: read at "
                        "sram_access per 64-bit access")
    return "dram", (f"weights and state per step ({hot:.0f} B) exceed the {cache} B last-level cache: weights read "
                    "from DRAM at dram_access per 64-bit access")


def estimate(counts: dict, device, time_s: float | None = None, static: str | None = "idle",
             footprint_bytes: float | None = None) -> Estimate:
    """Energy of the counted operations on ``device`` (a :class:`edgebrain.devices.Device`).

    ``time_s``: duration of the counted run; with ``static`` ("idle" or "active") the device's power
    of that kind × ``time_s`` is added as static energy. ``footprint_bytes``: the model's resident
    bytes (weights + state), used to decide whether weights come from cache or DRAM.
    """
    c, precision = _check_counts(counts)
    if static not in (None, "idle", "active"):
        raise InputError(f"static power {static!r}; expected None, 'idle' or 'active'")
    ops, assumptions = per_op_energies(device, precision)
    level, why = weights_level(device, c, footprint_bytes)
    e_w = device.energy("sram_access" if level == "sram" else "dram_access")
    e_s = device.energy("sram_access")
    pj = 1e-12
    br = {
        "synaptic_mac_j": c["eff_macs"] * ops["mac"] * pj,
        "synaptic_ac_j": c["eff_acs"] * ops["ac"] * pj,
        "membrane_j": c["membrane_updates"] * ops["neuron"] * pj,
        "weight_memory_j": c["weight_bytes_read"] / ACCESS_BYTES * e_w * pj,
        "state_memory_j": c["state_bytes_rw"] / ACCESS_BYTES * e_s * pj,
    }
    dynamic = sum(br.values())
    static_j = 0.0
    if static and time_s is not None:
        p = float(device.data["power"][f"{static}_w"])
        static_j = p * float(time_s)
        br["static_j"] = static_j
        assumptions.append(f"static energy = {static} power {p:g} W × {time_s:.4g} s (whole device, "
                           f"{'estimated' if device.estimated(f'power.{static}_w') else 'from its source'})")
    assumptions += [
        why,
        f"neuron/delay state read and written in SRAM/cache at sram_access {e_s:g} pJ per 64-bit access "
        "(memory energy charged per byte as 1/8 of a 64-bit access)",
        "only the counts' effective operations charged (synapses whose weight and input are both non-zero); "
        "dense operations reported, not charged",
        f"per-operation energies from {_energy_source(device)}",
        "control flow, instruction fetch, cache misses beyond the weights, I/O and the OS are not counted",
    ]
    est_fields = [k for k in ("energy.int8_mul", "energy.int32_add", "energy.int32_mul", "energy.fp32_mul",
                              "energy.fp32_add", "energy.sram_access", "energy.dram_access") if device.estimated(k)]
    if est_fields:
        assumptions.append("estimated profile values used: " + ", ".join(est_fields))
    return Estimate(device=device.name, precision=precision, steps=c["steps"],
                    per_op_pj={"E_MAC": ops["mac"], "E_AC": ops["ac"], "E_neuron": ops["neuron"],
                               "weights_access": e_w, "state_access": e_s},
                    breakdown_j=br, dynamic_j=dynamic, static_j=static_j, total_j=dynamic + static_j,
                    weights_in=level, assumptions=assumptions)


def _energy_source(device) -> str:
    p = device.provenance.get("energy.int32_add") or {}
    return f"the '{device.name}' profile, source '{p.get('source', '?')}': {p.get('citation', '')}"


def latency(counts: dict, device) -> tuple[float, list]:
    """Estimated seconds per timestep on one core of ``device``, and the assumptions."""
    c, precision = _check_counts(counts)
    perf = device.data["perf"]
    opc = perf["int_ops_per_cycle"] if precision == "int" else perf["float_ops_per_cycle"]
    clock = device.data["cpu"]["clock_mhz"] * 1e6
    syn = (c["eff_macs"] + c["eff_acs"]) / c["steps"]
    neu = c["membrane_updates"] / c["steps"]
    cycles = syn / opc + neu * perf["neuron_update_cycles"]
    t = cycles / clock + perf["step_overhead_us"] * 1e-6
    text = [f"latency per step = ({syn:.0f} synaptic ops / {opc:g} ops per cycle + {neu:.0f} membrane updates × "
            f"{perf['neuron_update_cycles']:g} cycles) / {device.data['cpu']['clock_mhz']:g} MHz + "
            f"{perf['step_overhead_us']:g} µs per-step overhead, on one core (profile [perf] values, "
            + (f"measured on {perf['measured_on']} {perf.get('measured_date', '')})".replace(" )", ")")
               if perf.get("measured_on") and not device.estimated("perf.step_overhead_us") else "estimated)")]
    return t, text


def estimate_for(model, counts: dict, dev, precision: str, steps_per_inference: float,
                 footprint_bytes: float | None = None) -> dict:
    """The analytical estimate of one inference on ``dev`` (a :class:`edgebrain.devices.Device`) from
    per-sample ``counts`` over ``counts["steps"]`` timesteps, an inference being
    ``steps_per_inference`` timesteps: the energy and its breakdown, the latency, the device-level
    energy at active power, and the assumptions in words (what ``edgebrain profile`` reports).
    ``footprint_bytes``: the resident bytes, when ``model`` is not a spiking model (then None) whose
    footprint edgebrain computes."""
    if footprint_bytes is None:
        from .. import metrics as M

        fp = M.footprint(model, precision)
        footprint_bytes = fp["param_bytes"] + fp["state_bytes"]
    est = estimate(counts, dev, time_s=None, static=None, footprint_bytes=footprint_bytes)
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


# --------------------------------------------------------------------------- counts


def counts_for(model, precision: str = "int", xs=None) -> dict:
    """Operation counts for ``model``: :func:`edgebrain.metrics.count_ops` when available, else the
    worst-case counter below (``xs`` is then ignored)."""
    try:
        from ..metrics import count_ops
    except ImportError:  # pragma: no cover - the metrics module ships with edgebrain
        return _worst_case_counts(model, precision)
    return count_ops(model, xs, precision)


def _worst_case_counts(model, precision: str = "int") -> dict:
    """Fallback worst-case counts for one timestep: every synapse active (Affine/Linear: weight
    size; Conv: weight size × output positions), ACs for layers fed directly by spiking neurons
    (through Flatten/Delay), MACs otherwise; every neuron updates."""
    from .. import ops as O

    g = model.graph
    q = model.quant or {}
    wbytes = int(q.get("weight_bits", 8)) / 8 if precision == "int" else 4.0
    sbytes = int(q.get("state_bits", 16)) // 8 if precision == "int" else 4
    dense = macs = acs = 0
    wread = 0.0
    n_state = mu = 0
    for name in g.order:
        op = g.nodes[name]
        out = g.out_shapes[name]
        if isinstance(op, (O.Affine, O.Conv1d, O.Conv2d)):
            pos = 1 if isinstance(op, O.Affine) else int(np.prod(out[1:]))
            rows = int(np.prod(g.in_shapes[name][:-1])) if isinstance(op, O.Affine) else 1
            d = op.weight.size * pos * rows
            dense += d
            spk = True
            for p in g.preds(name):
                src = g.nodes[p]
                while isinstance(src, (O.Flatten, O.Delay)) and len(g.preds(p)) == 1:
                    p = g.preds(p)[0]
                    src = g.nodes[p]
                spk = spk and isinstance(src, O.Neuron) and src.spiking and not src.multispike
            acs += d if spk else 0
            macs += 0 if spk else d
            wread += d * wbytes + (4 * op.weight.shape[0] if op.bias is not None else 0)
        if isinstance(op, O.Neuron):
            n = int(np.prod(out))
            mu += n
            n_state += n * (2 if op.cuba else 1)
        elif isinstance(op, O.Delay):
            n_state += int(np.prod(out)) * (int(op.steps.max(initial=0)) + 1)
    return {"dense": float(dense), "eff_macs": float(macs), "eff_acs": float(acs), "membrane_updates": float(mu),
            "weight_bytes_read": float(wread), "state_bytes_rw": float(2 * sbytes * n_state), "steps": 1,
            "precision": precision, "assumed": ["worst case: every synapse active, one timestep"]}
