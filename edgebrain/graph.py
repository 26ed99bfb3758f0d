"""The model graph: named nodes (ops), directed edges, inferred shapes, an execution order.

A node's input is the sum of the outputs of all nodes with an edge into it. Cycles are
allowed: each cycle is cut once, and the node on the far side of the cut reads the value
its predecessor produced in the previous timestep (a one-step delay on the back edge).
Where the node before the cut is stateless (a weight matrix in a recurrent loop) it is
moved to run just before its consumer, reading the previous step's spikes; this gives the
same values and matches how training frameworks evaluate ``W·s[t−1]`` at t = 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import ops
from .errors import ModelError


#: largest number of elements one node may output (per batch entry)
MAX_ELEMENTS = 2 ** 28


@dataclass
class Graph:
    nodes: dict[str, ops.Op] = field(default_factory=dict)
    edges: list[tuple[str, str]] = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    # filled by prepare()
    order: list[str] = field(default_factory=list, repr=False)
    in_shapes: dict[str, tuple] = field(default_factory=dict, repr=False)
    out_shapes: dict[str, tuple] = field(default_factory=dict, repr=False)
    delayed_edges: set = field(default_factory=set, repr=False)

    # ------------------------------------------------------------------ building
    def add(self, name: str, op: ops.Op) -> str:
        if name in self.nodes:
            raise ModelError(f"duplicate node name '{name}'")
        self.nodes[name] = op
        return name

    def connect(self, src: str, dst: str) -> None:
        self.edges.append((src, dst))

    @classmethod
    def sequential(cls, *layers: ops.Op, names=None) -> "Graph":
        """A chain: Input → layers... → Output (the first layer must be an Input)."""
        g = cls()
        prev = None
        for k, op in enumerate(layers):
            name = names[k] if names else (op.kind.lower() if op.kind in ("Input", "Output") else f"{op.kind.lower()}{k}")
            g.add(name, op)
            if prev is not None:
                g.connect(prev, name)
            prev = name
        return g

    # ------------------------------------------------------------------ queries
    def preds(self, name: str) -> list[str]:
        return [a for a, b in self.edges if b == name]

    def succs(self, name: str) -> list[str]:
        return [b for a, b in self.edges if a == name]

    @property
    def inputs(self) -> list[str]:
        return [n for n, op in self.nodes.items() if isinstance(op, ops.Input)]

    @property
    def outputs(self) -> list[str]:
        return [n for n, op in self.nodes.items() if isinstance(op, ops.Output)]

    def n_params(self) -> int:
        return sum(op.n_params() for op in self.nodes.values())

    # ------------------------------------------------------------------ checking
    def prepare(self) -> "Graph":
        """Check the graph, order it for execution and infer every node's shapes."""
        for a, b in self.edges:
            for end, n in (("source", a), ("target", b)):
                if n not in self.nodes:
                    raise ModelError(f"edge {a} -> {b}: {end} node '{n}' does not exist; expected one of "
                                     f"{_names(self.nodes)}")
        if len(set(self.edges)) != len(self.edges):
            dup = next(e for e in self.edges if self.edges.count(e) > 1)
            raise ModelError(f"edge {dup[0]} -> {dup[1]} appears twice; expected each edge once")
        if not self.inputs:
            raise ModelError("graph has no Input node")
        if not self.outputs:
            raise ModelError("graph has no Output node")
        for n, op in self.nodes.items():
            if isinstance(op, ops.Input) and self.preds(n):
                raise ModelError(f"node '{n}': Input node has incoming edges")
            if isinstance(op, ops.Output) and self.succs(n):
                raise ModelError(f"node '{n}': Output node has outgoing edges")
            if not isinstance(op, ops.Input) and not self.preds(n):
                raise ModelError(f"node '{n}' ({op.kind}) has no input edge; expected at least one edge into it")
        self.order, self.delayed_edges = _schedule(self)
        self._infer_shapes()
        return self

    def _infer_shapes(self) -> None:
        ins: dict[str, tuple] = {}
        outs: dict[str, tuple] = {}
        for n in self.inputs:
            shape = self.nodes[n].shape
            if any(d < 1 for d in shape) or int(np.prod(shape, dtype=np.float64)) > MAX_ELEMENTS:
                raise ModelError(f"node '{n}' (Input): shape {shape}; expected sizes >= 1 and at most "
                                 f"{MAX_ELEMENTS} elements")
            outs[n] = ins[n] = shape
        pending = [n for n in self.order if n not in outs]
        while pending:
            progress = False
            for n in list(pending):
                known = [(p, outs[p]) for p in self.preds(n) if p in outs]
                if not known:
                    continue
                shape = known[0][1]
                for p, s in known[1:]:
                    if s != shape:
                        raise ModelError(f"node '{n}': inputs disagree in shape ({known[0][0]}: {shape}, {p}: {s})")
                op = self.nodes[n]
                try:
                    op.check(shape)
                    out = tuple(int(d) for d in op.out_shape(shape))
                except ModelError as e:
                    e.where = f"node '{n}' ({op.kind})"
                    e.args = (e._format(),)
                    raise
                if int(np.prod(out, dtype=np.float64)) > MAX_ELEMENTS:
                    raise ModelError(f"node '{n}' ({op.kind}): output shape {out} has more than {MAX_ELEMENTS} "
                                     "elements; expected a model that fits in memory")
                ins[n], outs[n] = shape, out
                pending.remove(n)
                progress = True
            if not progress:
                raise ModelError(f"cannot infer the shape of node(s) {', '.join(pending)}: not reachable from an Input")
        for a, b in self.edges:
            if outs[a] != ins[b]:
                raise ModelError(f"edge {a} -> {b}: shape {outs[a]} does not match {ins[b]}")
        for n in self.outputs:
            declared = self.nodes[n].shape
            if declared and int(np.prod(declared)) != int(np.prod(ins[n])):
                raise ModelError(f"node '{n}' (Output): declared shape {declared} but receives {ins[n]}; "
                                 f"expected {ins[n]} (or {int(np.prod(ins[n]))} elements)")
            self.nodes[n].shape = ins[n]
        self.in_shapes, self.out_shapes = ins, outs


def _names(nodes, limit: int = 12) -> str:
    names = list(nodes)
    return ", ".join(names[:limit]) + (f", ... ({len(names)} nodes)" if len(names) > limit else "")


def _scc(nodes: list[str], succ: dict[str, list[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components, iteratively, in reverse topological order."""
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(succ[root]))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            nxt = next(it, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter[0]
                    counter[0] += 1
                    stack.append(nxt)
                    on.add(nxt)
                    work.append((nxt, iter(succ[nxt])))
                elif nxt in on:
                    low[v] = min(low[v], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                out.append(comp)
    return out


def _schedule(g: Graph) -> tuple[list[str], set]:
    names = list(g.nodes)
    pos = {n: i for i, n in enumerate(names)}
    succ = {n: [] for n in names}
    pred = {n: [] for n in names}
    for a, b in g.edges:
        succ[a].append(b)
        pred[b].append(a)
    for n in names:  # deterministic: follow declaration order
        succ[n].sort(key=pos.get)

    # depth-first order from the inputs: post-order reversed is a topological order of the
    # acyclic part; edges that close a cycle become back edges
    visited, order_rev = set(), []
    starts = g.inputs + [n for n in names if n not in g.inputs]
    for s in starts:
        if s in visited:
            continue
        visited.add(s)
        work = [(s, iter(succ[s]))]
        while work:
            v, it = work[-1]
            nxt = next(it, None)
            if nxt is None:
                work.pop()
                order_rev.append(v)
            elif nxt not in visited:
                visited.add(nxt)
                work.append((nxt, iter(succ[nxt])))
    order = order_rev[::-1]
    # a plain DFS order is only topological for acyclic graphs; within each strongly connected
    # component keep DFS order, and order components topologically
    comps = _scc(order, succ)[::-1]
    rank = {n: i for i, n in enumerate(order)}
    order = [n for comp in comps for n in sorted(comp, key=rank.get)]

    # hoist stateless nodes whose every consumer runs before them (recurrent weights)
    changed = True
    guard = 0
    while changed and guard < 10 * len(names):
        changed = False
        guard += 1
        idx = {n: i for i, n in enumerate(order)}
        for n in list(order):
            op = g.nodes[n]
            if op.stateful or isinstance(op, (ops.Input, ops.Output)) or not succ[n]:
                continue
            first = min(idx[c] for c in succ[n])
            if first < idx[n] and all(idx[c] < idx[n] for c in succ[n]):
                order.remove(n)
                order.insert(first, n)
                changed = True
                break
    idx = {n: i for i, n in enumerate(order)}
    delayed = {(a, b) for a, b in g.edges if idx[a] >= idx[b]}
    # every cycle must pass through a stateful node or a delay; otherwise it is an algebraic loop
    # (a Delay counts only when it delays every element by at least one step)
    for a, b in delayed:
        if not g.nodes[a].breaks_loops and not _stateless_loop_ok(g, a, b):
            on_loop = _reach(b, g.succs) & _reach(a, g.preds)
            zero = sorted(n for n in on_loop if isinstance(g.nodes[n], ops.Delay))
            why = (f" (Delay node(s) {', '.join(repr(n) for n in zero)} delay some elements by 0 steps, which "
                   "passes them through within the step)") if zero else ""
            raise ModelError(
                f"edge {a} -> {b} closes a loop without a neuron or delay on it{why}; such a loop has no defined "
                "value within one timestep (expected a neuron, or a Delay of at least 1 step, on every loop)")
    return order, delayed


def _reach(start: str, step) -> set:
    seen, todo = set(), [start]
    while todo:
        n = todo.pop()
        if n not in seen:
            seen.add(n)
            todo.extend(step(n))
    return seen


def _stateless_loop_ok(g: Graph, a: str, b: str) -> bool:
    # A back edge out of a stateless node is still a well-defined one-step delay, but only
    # if some loop through it contains a stateful node; otherwise it is an instantaneous
    # algebraic loop that NIR gives no meaning to.
    on_loop = _reach(b, g.succs) & _reach(a, g.preds)
    return any(g.nodes[n].breaks_loops for n in on_loop)
