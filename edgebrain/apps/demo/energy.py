"""The demos' energy figure: the analytical energy of one decision on the host profile."""

from __future__ import annotations

from ... import metrics
from ...devices import load
from ...energy.estimate import counts_for, estimate
from ...errors import EdgebrainError


def energy_per_decision(model, precision: str, steps_per_decision: float) -> dict | None:
    """Worst-case analytical energy of one decision on the host profile (see docs/energy.md); None
    when it cannot be estimated."""
    try:
        counts = counts_for(model, precision)
        fp = metrics.footprint(model, precision)
        est = estimate(counts, load("host"), static=None, footprint_bytes=fp["param_bytes"] + fp["state_bytes"])
    except EdgebrainError:
        return None
    per_step = est.total_j / max(int(counts["steps"]), 1)
    return {"device": "host", "per_decision_j": per_step * steps_per_decision,
            "steps_per_decision": steps_per_decision, "kind": "analytical worst case (every input non-zero)"}
