"""Reset by subtraction written in plain NIR, and read back.

NIR's spiking nodes (IF, LIF, CubaLIF) reset to ``v_reset``; a file cannot say "subtract the threshold",
nor "fire at v ≥ θ" (NIR's comparison is strict), so an importer has to guess from the exporter's
conventions (docs/conformance.md; ../shared/docs/nir.md §3). An integrate-and-fire neuron with reset by
subtraction is, exactly, an integrator whose spikes are fed back with weight −θ one step later:

    NIR:  x ──▶ I (v ← v + r·dt·x) ──▶ Threshold θ' (z = v > θ') ──▶ the neuron's readers
                ▲                                │
                └──────── Scale −θ ◀─────────────┘    (a recurrent loop: one step late)

    u_t = u_{t−1} + x_t − θ·z_{t−1},  z_t = u_t > θ'   ≡   edgebrain's IF (reset "subtract"), u = v before reset

with θ' = θ for ``v > θ`` and θ' = the float32 number just below θ for ``v ≥ θ`` (the same test on float32
membranes). Every node is a standard one (I, Threshold, Scale), so any NIR reader that supports them and
recurrent edges runs the neuron as edgebrain does (within float rounding: it adds the feedback to the input
where edgebrain subtracts it from the membrane). :func:`write_explicit` writes that form where the graph's
dialect would read a plain IF node differently; :func:`fuse` recognises it on import and makes it one IF
node again, so edgebrain reads its own files back spike for spike. The Threshold keeps the neuron's name
(its spikes), the integrator is ``<name>_v`` and the feedback ``<name>_reset``.
"""

from __future__ import annotations

import numpy as np

from . import ops
from .errors import ModelError
from .graph import Graph


def explicit(op, dialect) -> bool:
    """Whether the neuron ``op`` needs the explicit form: an integrate-and-fire neuron with reset by
    subtraction (one spike per step, reset at once, unit gain, no bias) that a plain NIR IF node, read
    with ``dialect``'s conventions, would not reproduce."""
    if op.kind != "IF" or op.reset != "subtract" or op.multispike or op.reset_delay:
        return False
    if not (np.all(op.beta == 1) and np.all(op.g_mem == 1) and np.all(op.bias == 0) and np.all(op.threshold > 0)):
        return False
    return (dialect.reset, dialect.threshold_ge, dialect.multispike, dialect.reset_delay) != (
        "subtract", op.threshold_ge, False, False)


def _below(theta: np.ndarray) -> np.ndarray:
    """The float32 number just below each θ: ``v > θ'`` is ``v ≥ θ`` for float32 ``v``."""
    t = np.asarray(theta, np.float32)
    return np.nextafter(t, np.float32(-np.inf))


def write_explicit(nodes: dict, edges: list, name: str, graph: Graph, r: np.ndarray) -> list:
    """Add the explicit form of ``graph``'s IF neuron ``name`` (module docstring) to the NIR ``nodes`` and
    return the edges with its inputs moved to the integrator; ``r``: the integrator's NIR ``r`` (unit gain)."""
    import nir

    op, shape = graph.nodes[name], graph.in_shapes[name]
    for extra in (f"{name}_v", f"{name}_reset"):
        if extra in graph.nodes:
            raise ModelError(f"node '{name}': its reset by subtraction is written as nodes '{name}_v' and "
                             f"'{name}_reset', and the graph has a node '{extra}' already; rename it")
    theta = np.broadcast_to(np.asarray(op.threshold, np.float32), shape).copy()
    nodes[f"{name}_v"] = nir.I(r=np.broadcast_to(np.asarray(r, np.float32), shape).copy())
    nodes[name] = nir.Threshold(threshold=_below(theta) if op.threshold_ge else theta)
    nodes[f"{name}_reset"] = nir.Scale(scale=-theta)
    moved = [(a, f"{name}_v" if b == name else b) for a, b in edges]
    return moved + [(f"{name}_v", name), (name, f"{name}_reset"), (f"{name}_reset", f"{name}_v")]


def fuse(graph: Graph) -> list:
    """Make each I → Threshold → Scale(−θ) → I loop of ``graph`` (built from a NIR file, not yet
    prepared) one IF node with reset by subtraction named as the Threshold; returns the names fused.
    A loop whose integrator has another reader, a gain other than 1, or a Threshold other than θ or the
    float32 number below it stays as it is."""
    fused = []
    for t, op in list(graph.nodes.items()):
        if not isinstance(op, ops.Threshold):
            continue
        preds = graph.preds(t)
        if len(preds) != 1 or type(graph.nodes[preds[0]]) is not ops.I or graph.succs(preds[0]) != [t]:
            continue
        m = preds[0]
        loop = [s for s in graph.preds(m) if isinstance(graph.nodes[s], ops.Scale)
                and graph.preds(s) == [t] and graph.succs(s) == [m]]
        mem = graph.nodes[m]
        if len(loop) != 1 or not (np.all(mem.beta == 1) and np.all(mem.g_mem == 1) and np.all(mem.bias == 0)):
            continue
        s = loop[0]
        theta = -np.asarray(graph.nodes[s].scale, np.float32)
        th, theta = np.broadcast_arrays(np.asarray(op.threshold, np.float32), theta)
        if not np.all(theta > 0):
            continue
        if np.array_equal(th, theta):
            ge = False
        elif np.array_equal(th, _below(theta)):
            ge = True
        else:
            continue
        graph.nodes[t] = ops.IF(threshold=theta.astype(np.float32), reset="subtract", threshold_ge=ge)
        del graph.nodes[m], graph.nodes[s]
        graph.edges = [(a, t if b == m else b) for a, b in graph.edges
                       if (a, b) not in ((m, t), (t, s), (s, m))]
        fused.append(t)
    return fused
