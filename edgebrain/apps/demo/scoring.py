"""Scoring the demos' decisions against the truth."""

from __future__ import annotations

import numpy as np


def window_decision(counts: np.ndarray) -> int:
    """The class of a window of output spike counts: the most spikes; -1 when nothing spiked."""
    return int(np.argmax(counts)) if counts.any() else -1


def accuracy(predicted, truth) -> float:
    """The fraction of ``predicted`` classes equal to ``truth`` (same length)."""
    return float(np.mean(np.array(predicted) == np.asarray(truth)))


def score_decisions(decisions: list[dict], last_per_file: bool = False) -> tuple[int, int]:
    """(scored, correct) of decisions ``{"file", "label", "truth", ...}`` in stream order. Every
    decision with a truth is scored, or, with ``last_per_file``, only the last one of each file (a
    recording holding one utterance or one sample: its final window is the one covering it)."""
    if last_per_file:
        last = {}
        for d in decisions:
            last[d["file"]] = d
        per = list(last.values())
        return len(per), sum(int(d["label"] == d["truth"]) for d in per)
    scored = [d for d in decisions if d["truth"] is not None]
    return len(scored), sum(int(d["label"] == d["truth"]) for d in scored)


def latency_percentiles_ms(lat_ms) -> dict:
    """p50 and p99 of per-decision latencies in ms (None when there are none)."""
    a = np.array(lat_ms) if len(lat_ms) else np.zeros(0)
    return {"p50": round(float(np.percentile(a, 50)), 4) if a.size else None,
            "p99": round(float(np.percentile(a, 99)), 4) if a.size else None}
