"""Where the analytical estimate's energy goes over time, for ``edgebrain profile --plot`` without a
sensor: the operations of every model step counted from the activity the model actually had, priced
with the estimate's energies per operation, and added up per decision (or per inference).

:func:`step_counts` counts, for each step and sample, what :func:`edgebrain.metrics.count_ops`
counts over the whole input (NeuroBench's definitions, see :mod:`edgebrain.metrics`): effective MACs
and ACs (a synaptic layer's non-zero inputs × their fan-out of non-zero weights; ACs when the layer's
inputs at that step are spikes over the whole batch), membrane updates (membranes that changed value,
every neuron at the first step) and the weights the kernels read. Their sums over the steps are
``count_ops``' totals (tested), so the energy per step of :func:`step_energy` adds up to the estimate
over the same steps.

The timeline of a source ties the steps to the decisions: decision *i* is charged the steps since
decision *i − 1* (what the device spends per decision as it streams); of an input array, each sample
is one inference, charged all of its steps.
"""

from __future__ import annotations

import numpy as np

from ... import metrics as M

def run_precision(model, precision: str) -> str:
    """The precision activity is counted at (as :func:`edgebrain.metrics.count_ops`: float for a model
    that is not quantized)."""
    return precision if (precision == "float" or model.quant) else "float"


def step_counts(model, xs, precision: str = "int") -> dict:
    """Per step and sample, over the time-major input ``xs`` ((T, *input) or (T, B, *input), each
    sample from the reset state): ``eff_macs``, ``eff_acs``, ``membrane_updates`` and
    ``weight_reads`` (weights read, in weights), each a (T, B) float64 array; and ``steps``,
    ``samples``. ``precision`` is the deployed one (counted as :func:`run_precision` says). One
    counting pass: :func:`edgebrain.metrics.workload`'s, per step."""
    w = M.workload(model, xs, run_precision(model, precision), step_counts=True)
    return {**w["step_counts"], "steps": w["steps"], "samples": w["samples"]}


def step_energy(model, sc: dict, counts: dict, estimate: dict, precision: str) -> dict:
    """Energy (J) per step and sample, (T, B), of the step counts ``sc`` priced like the estimate
    (``estimate``: :func:`edgebrain.energy.estimate.estimate_for`'s dict, ``counts``: the
    :func:`edgebrain.metrics.count_ops` it was made from, over the same steps), by component:
    ``synaptic_j`` (MACs and ACs), ``membrane_j``, ``memory_j`` (weights read, and the neuron state
    read and written every step, as the estimate charges them) and ``total_j``."""
    pj = 1e-12
    e = estimate["per_op_pj"]
    T = max(int(counts["steps"]), 1)
    q = model.quant or {}
    wbytes = 4.0 if precision == "float" else int(q.get("weight_bits", M.DEFAULT_WEIGHT_BITS)) / 8
    B = sc["samples"]
    reads_bytes = sc["weight_reads"] * wbytes
    # what count_ops charges besides the weights read per input: the biases, every step
    fixed = max(0.0, (counts["weight_bytes_read"] - reads_bytes.sum() / B) / T)
    syn = (sc["eff_macs"] * e["E_MAC"] + sc["eff_acs"] * e["E_AC"]) * pj
    mem = ((reads_bytes + fixed) / 8 * e["weights_access"] + counts["state_bytes_rw"] / T / 8 * e["state_access"]) * pj
    mem = np.broadcast_to(mem, syn.shape)
    membrane = sc["membrane_updates"] * e["E_neuron"] * pj
    return {"synaptic_j": syn, "membrane_j": membrane, "memory_j": np.array(mem), "total_j": syn + membrane + mem}


def energy_timeline(model, xs, counts: dict, estimate: dict, precision: str, *, kind: str,
                    step_t=None, decision_t=None, covered_steps: int | None = None) -> dict:
    """The estimate over time, for the plot (see the module). ``kind`` "source": ``step_t`` (stream
    seconds per step of ``xs``) and ``decision_t`` (each decision's time: that of its window's last
    step, so decision *i* ends at the step of that time); ``covered_steps``: the steps of the pass
    (more than ``xs`` holds when it was capped). ``kind`` "input": one inference per sample. Returns ``per`` ("decision" or
    "inference"), ``t`` (decision times, or sample numbers), ``energy_j`` per decision or inference,
    ``steps`` of each, ``step`` ({``t``, and the per-step energy by component, mean over samples}),
    ``mean_j``, ``note``."""
    sc = step_counts(model, xs, precision)
    en = step_energy(model, sc, counts, estimate, precision)
    T = sc["steps"]
    per_step = {k: v.mean(axis=1) for k, v in en.items()}
    if kind == "input":
        e = en["total_j"].sum(axis=0)
        return {"per": "inference", "t": np.arange(1, sc["samples"] + 1), "energy_j": e,
                "steps": np.full(sc["samples"], T), "step": {"t": np.arange(1, T + 1), **per_step},
                "mean_j": float(e.mean()),
                "note": f"one inference = one pass over the {T} steps, per sample"}
    st = np.asarray(step_t, np.float64)[:T] if step_t is not None else np.arange(1, T + 1, dtype=np.float64)
    tt = np.asarray(decision_t if decision_t is not None else [], np.float64)
    keep = tt <= (st[-1] if T else -np.inf) + 1e-9
    dropped = int((~keep).sum())
    tt = tt[keep]
    ends = np.searchsorted(st, tt + 1e-9, side="right")  # steps up to and including the decision's last
    cum = np.concatenate([[0.0], np.cumsum(per_step["total_j"])])
    starts = np.concatenate([[0], ends[:-1]]) if len(ends) else ends
    e = cum[ends] - cum[starts]
    note = (f"decision i is charged the steps since decision i-1 ({len(ends)} decision{'s' if len(ends) != 1 else ''} "
            f"over {T} steps)")
    if dropped or (covered_steps is not None and covered_steps > T):
        note += f"; the first {T} steps of the stream only ({dropped} later decisions not drawn)"
    return {"per": "decision", "t": tt, "energy_j": e, "steps": ends - starts, "step": {"t": st, **per_step},
            "mean_j": float(e.mean()) if len(e) else 0.0, "note": note}
