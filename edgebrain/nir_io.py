"""NIR import and export.

Import reads the HDF5 file itself (with h5py), so every missing or malformed field is
reported by node and field name; nested graphs are flattened (``outer.inner`` names) and
continuous-time neurons are discretised with an explicit timestep and dialect
(:mod:`edgebrain.dialects`). Export writes a NIR file with the ``nir`` package.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np

from . import dialects, ops
from .errors import FormatError, ModelError
from .graph import Graph

# fields every NIR node type must / may have
REQUIRED = {
    "Input": ("shape",), "Output": ("shape",),
    "Affine": ("weight", "bias"), "Linear": ("weight",), "Scale": ("scale",),
    "Conv1d": ("weight", "stride", "padding", "dilation", "groups", "bias"),
    "Conv2d": ("weight", "stride", "padding", "dilation", "groups", "bias"),
    "SumPool2d": ("kernel_size", "stride", "padding"), "AvgPool2d": ("kernel_size", "stride", "padding"),
    "Flatten": ("start_dim", "end_dim"), "Delay": ("delay",), "Threshold": ("threshold",),
    "LI": ("tau", "r", "v_leak"), "LIF": ("tau", "r", "v_leak", "v_threshold"),
    "CubaLI": ("tau_syn", "tau_mem", "r", "v_leak"), "CubaLIF": ("tau_syn", "tau_mem", "r", "v_leak", "v_threshold"),
    "I": ("r",), "IF": ("r", "v_threshold"), "NIRGraph": ("nodes", "edges"),
}
NEURONS = ("LI", "LIF", "CubaLI", "CubaLIF", "I", "IF")
# fields a neuron node may have besides the required ones (anything else is reported and ignored)
OPTIONAL = {"LIF": ("v_reset",), "CubaLI": ("w_in",), "CubaLIF": ("v_reset", "w_in"), "IF": ("v_reset",)}


@dataclass
class ImportReport:
    """What the importer concluded, for ``inspect`` and the CLI."""

    dialect: str
    dt: float | None
    reset: str
    detected: str
    reason: str
    dt_source: str
    warnings: list[str] = field(default_factory=list)
    nir_version: str = ""

    def as_dict(self) -> dict:
        return dict(dialect=self.dialect, dt=self.dt, reset=self.reset, detected=self.detected, reason=self.reason,
                    dt_source=self.dt_source, warnings=list(self.warnings), nir_version=self.nir_version)


# ---------------------------------------------------------------------- reading HDF5


def _h5_to_dict(group, path: str) -> dict:
    import h5py

    out = {}
    try:
        items = list(group.items())
    except Exception as e:  # noqa: BLE001 - h5py raises many kinds on damaged data
        raise FormatError(f"group {path} cannot be read ({e})") from None
    for k, v in items:
        if isinstance(v, h5py.Group):
            out[k] = _h5_to_dict(v, f"{path}/{k}")
        else:
            try:
                val = v[()]
            except Exception as e:  # noqa: BLE001 - h5py raises many kinds on damaged data
                raise FormatError(f"dataset {path}/{k} cannot be read ({e})") from None
            out[k] = val
    return out


def _str(v) -> str:
    if isinstance(v, bytes):
        return v.decode("utf8", "replace")
    if isinstance(v, np.ndarray) and v.shape == ():
        return _str(v.item())
    return str(v)


def read_nir_dict(path) -> tuple[dict, str]:
    """The raw node tree of a NIR file and its version string."""
    import h5py

    path = os.fspath(path)
    if not os.path.exists(path):
        raise FormatError("file not found", file=path)
    try:
        with h5py.File(path, "r") as f:
            if "node" not in f:
                raise FormatError("not a NIR file: no '/node' group (expected NIR's HDF5 layout)", file=path)
            version = _str(f["version"][()]) if "version" in f else ""
            tree = _h5_to_dict(f["node"], "/node")
    except FormatError as e:
        raise e.with_file(path)
    except Exception as e:  # noqa: BLE001 - h5py raises OSError, KeyError, RuntimeError... on damaged files
        raise FormatError(f"cannot read as HDF5 ({e}); expected a NIR file (HDF5), complete and undamaged",
                          file=path) from None
    return tree, version


# ---------------------------------------------------------------------- flattening


def _flatten(tree: dict, prefix: str, nodes: dict, edges: list, where: str) -> tuple[list[str], list[str]]:
    """Add the nodes of one (sub)graph; return the names of its Input and Output nodes."""
    if _str(tree.get("type", b"")) != "NIRGraph":
        raise ModelError("expected a NIRGraph", where=where)
    for f in REQUIRED["NIRGraph"]:
        if f not in tree:
            raise ModelError(f"graph is missing field '{f}' (expected a NIRGraph with fields nodes and edges)",
                             where=where)
    inner, ins, outs = tree["nodes"], [], []
    if not isinstance(inner, dict):
        raise ModelError("field 'nodes' is not a group", where=where)
    sub_io = {}
    for name, nd in inner.items():
        full = prefix + name
        if not isinstance(nd, dict) or "type" not in nd:
            raise ModelError("node has no 'type' field (expected a group with a NIR node type such as 'LIF')",
                             where=f"node '{full}'")
        kind = _str(nd["type"])
        if kind == "NIRGraph":
            sub_io[name] = _flatten(nd, full + ".", nodes, edges, f"node '{full}'")
            continue
        if kind not in REQUIRED:
            raise ModelError(f"unknown node type '{kind}'; expected one of {', '.join(REQUIRED)}",
                             where=f"node '{full}'")
        for f in REQUIRED[kind]:
            if f not in nd:
                article = "an" if kind[0] in "AEIOU" else "a"
                raise ModelError(f"missing field '{f}' (expected {article} {kind} to have "
                                 f"{', '.join(REQUIRED[kind])})", where=f"node '{full}'")
        nodes[full] = (kind, nd)
        if kind == "Input":
            ins.append(full)
        elif kind == "Output":
            outs.append(full)
    raw = tree["edges"]
    arr = np.asarray(raw)
    if arr.size == 0:
        pairs = []
    elif arr.ndim != 2 or arr.shape[1] != 2:
        raise ModelError(f"field 'edges' has shape {arr.shape}; expected (E, 2)", where=where)
    else:
        pairs = [(_str(a), _str(b)) for a, b in arr]
    for a, b in pairs:
        # an edge into a subgraph goes to its Input nodes; out of it, from its Output nodes
        srcs = sub_io[a][1] if a in sub_io else [prefix + a]
        dsts = sub_io[b][0] if b in sub_io else [prefix + b]
        for s in srcs:
            for d in dsts:
                edges.append((s, d))
    return ins, outs


def _remove_passthrough(nodes: dict, edges: list, names: list[str]) -> list:
    """Drop inner Input/Output nodes, connecting each predecessor to each successor."""
    for n in names:
        preds = [a for a, b in edges if b == n]
        succs = [b for a, b in edges if a == n]
        edges = [(a, b) for a, b in edges if n not in (a, b)]
        edges += [(p, s) for p in preds for s in succs]
        del nodes[n]
    return edges


# ---------------------------------------------------------------------- field parsing


def _describe(v) -> str:
    if isinstance(v, dict):
        return "a group"
    if isinstance(v, (bytes, str)):
        return f"the text {_str(v)[:40]!r}"
    a = np.asarray(v)
    return f"{a.dtype} values" if a.dtype.kind in "cSUOV" else type(v).__name__


def _num(nd: dict, f: str, where: str, dtype=np.float64) -> np.ndarray:
    v = nd[f]
    if isinstance(v, (dict, bytes, str)) or np.asarray(v).dtype.kind not in "biuf":
        raise ModelError(f"field '{f}' is not numeric (got {_describe(v)}); expected real numbers", where=where)
    try:
        a = np.asarray(v, dtype=dtype)
    except (TypeError, ValueError, OverflowError):
        raise ModelError(f"field '{f}' is not numeric (got {_describe(v)}); expected real numbers",
                         where=where) from None
    if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
        raise ModelError(f"field '{f}' contains NaN or infinite values; expected finite numbers", where=where)
    return a


def _ints(nd, f, where, n) -> tuple:
    a = _num(nd, f, where).reshape(-1)
    if a.size == 1:
        a = np.repeat(a, n)
    if a.size != n or np.any(a != np.round(a)):
        raise ModelError(f"field '{f}' = {a.tolist()}; expected {n} integer(s)", where=where)
    return tuple(int(x) for x in a)


def _padding(nd, where, kernel, dilation, ndim) -> tuple:
    p = nd["padding"]
    if isinstance(p, (bytes, str)) or (isinstance(p, np.ndarray) and p.dtype.kind in "SUO"):
        s = _str(p)
        if s == "valid":
            return (0,) * (2 * ndim)
        if s == "same":
            out = []
            for k, d in zip(kernel, dilation):
                total = d * (k - 1)
                out += [total // 2, total - total // 2]
            return tuple(out)
        raise ModelError(f"field 'padding' = '{s}'; expected an integer, a pair, 'same' or 'valid'", where=where)
    vals = _ints(nd, "padding", where, ndim)
    return tuple(v for v in vals for _ in range(2))


def _neuron_fields(where: str, kind: str, nd: dict, warnings: list) -> dict:
    """The numeric NIR fields of a neuron node, checked to be per-neuron arrays of one size."""
    p = {}
    for f in nd:
        if f in ("type", "metadata", "input_type", "output_type"):
            continue
        if f not in REQUIRED[kind] + OPTIONAL.get(kind, ()):
            warnings.append(f"{where}: field '{f}' is not part of NIR's {kind} and was ignored")
            continue
        p[f] = _num(nd, f, where)
    if kind.startswith("Cuba") and "w_in" not in p:
        p["w_in"] = np.ones(1)
    for f in ("tau", "tau_mem", "tau_syn"):
        if f in p and p[f].size and not (p[f] > 0).all():
            raise ModelError(f"field '{f}' has values <= 0 (smallest {p[f].min():g}); expected time constants > 0",
                             where=where)
    # a time constant and its gain are read together (dialect detection flattens both)
    for a, b in (("tau", "r"), ("tau_mem", "r"), ("tau_syn", "w_in")):
        if a in p and b in p and 1 not in (p[a].size, p[b].size) and p[a].size != p[b].size:
            raise ModelError(f"field '{a}' has shape {p[a].shape} but field '{b}' has shape {p[b].shape}; "
                             "expected one value per neuron (or a single value) in both", where=where)
    # fields combined by the discretisation must broadcast together; each is checked against the
    # node's shape once that is known
    for group in (("tau", "tau_mem", "r", "v_leak"), ("tau_syn", "w_in"), ("v_threshold", "v_reset")):
        fs = [f for f in group if f in p]
        try:
            np.broadcast_shapes(*(p[f].shape for f in fs))
        except ValueError:
            desc = ", ".join(f"'{f}' {p[f].shape}" for f in fs)
            raise ModelError(f"fields have shapes that do not fit together ({desc}); expected one value per "
                             "neuron (or a single value) in each", where=where) from None
    return p


def _op_from_nir(kind: str, nd: dict, where: str, dialect: dialects.Dialect, dt: float) -> ops.Op:
    g = lambda f: _num(nd, f, where)  # noqa: E731
    if kind == "Input":
        return ops.Input(shape=_ints(nd, "shape", where, _num(nd, "shape", where).size))
    if kind == "Output":
        return ops.Output(shape=_ints(nd, "shape", where, _num(nd, "shape", where).size))
    if kind == "Affine":
        return ops.Affine(weight=g("weight"), bias=g("bias"))
    if kind == "Linear":
        return ops.Linear(weight=g("weight"))
    if kind == "Scale":
        return ops.Scale(scale=g("scale"))
    if kind == "Threshold":
        return ops.Threshold(threshold=g("threshold"))
    if kind in ("Conv1d", "Conv2d"):
        nd_ = 1 if kind == "Conv1d" else 2
        w = g("weight")
        if w.ndim != nd_ + 2:
            raise ModelError(f"field 'weight' has shape {w.shape}; expected {nd_ + 2}-D", where=where)
        groups = _ints(nd, "groups", where, 1)[0]
        stride = _ints(nd, "stride", where, nd_)
        dil = _ints(nd, "dilation", where, nd_)
        pad = _padding(nd, where, w.shape[2:], dil, nd_)
        if kind == "Conv1d":
            return ops.Conv1d(weight=w, bias=g("bias"), stride=stride[0], padding=pad, dilation=dil[0], groups=groups)
        return ops.Conv2d(weight=w, bias=g("bias"), stride=stride, padding=pad, dilation=dil, groups=groups)
    if kind in ("SumPool2d", "AvgPool2d"):
        cls = ops.SumPool2d if kind == "SumPool2d" else ops.AvgPool2d
        return cls(kernel_size=_ints(nd, "kernel_size", where, 2), stride=_ints(nd, "stride", where, 2),
                   padding=_ints(nd, "padding", where, 2))
    if kind == "Flatten":
        return ops.Flatten(start_dim=_ints(nd, "start_dim", where, 1)[0], end_dim=_ints(nd, "end_dim", where, 1)[0])
    if kind == "Delay":
        d = g("delay") / dt
        steps = np.round(d)
        if np.any(np.abs(d - steps) > 1e-3 * np.maximum(1, d)):
            raise ModelError(f"field 'delay' is not a whole number of timesteps at dt={dt:g}", where=where)
        return ops.Delay(steps=steps.astype(np.int32))
    if kind in NEURONS:
        p = _neuron_fields(where, kind, nd, [])
        try:
            fields = dialect.discretize(kind, p, dt)
        except ModelError as e:
            e.where = where
            e.args = (e._format(),)
            raise
        except ValueError as e:  # parameter arrays that cannot be combined
            desc = ", ".join(f"'{f}' {a.shape}" for f, a in p.items())
            raise ModelError(f"fields cannot be combined ({desc}): {e}", where=where) from None
        cls = ops.OPS[kind]
        return cls(**{k: v.astype(np.float32) for k, v in fields.items()},
                   **({} if kind in ("LI", "CubaLI", "I") else dialect.flags()),
                   **({"current_lag": dialect.current_lag} if kind in ("CubaLI",) else {}))
    raise ModelError(f"unsupported node type '{kind}'", where=where)


def read_nir(path, dt: float | None = None, dialect: str | None = None, reset: str | None = None,
             ) -> tuple[Graph, ImportReport]:
    """Read a NIR file into an edgebrain graph.

    dt: timestep in seconds (None: use the one the exporter's convention implies, if any).
    dialect: the exporting framework's discretisation (None: detect from the parameters).
    reset: 'zero' or 'subtract' to override the dialect's reset.
    """
    path = os.fspath(path)
    try:
        tree, version = read_nir_dict(path)
        nodes: dict = {}
        edges: list = []
        top_in, top_out = _flatten(tree, "", nodes, edges, "top-level graph")
        inner = [n for n, (k, _) in nodes.items() if k in ("Input", "Output") and n not in top_in + top_out]
        edges = _remove_passthrough(nodes, edges, inner)
        for a, b in edges:
            for end, n in (("source", a), ("target", b)):
                if n not in nodes:
                    raise ModelError(f"edge {a} -> {b}: {end} node '{n}' does not exist; expected one of "
                                     f"{', '.join(list(nodes)[:12])}{', ...' if len(nodes) > 12 else ''}")

        neuron_fields = []
        warnings = []
        for n, (k, nd) in nodes.items():
            if k in NEURONS:
                neuron_fields.append((n, k, _neuron_fields(f"node '{n}' ({k})", k, nd, warnings)))
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            det = dialects.detect(neuron_fields)
        chosen = dialect or det.dialect
        d = dialects.get(chosen, reset)
        if dt is not None:
            if not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
                raise ModelError(f"dt={dt!r}; expected a positive number of seconds")
            dt_source = "given"
            implied = d.fixed_dt if d.fixed_dt is not None else (det.dt if chosen == det.dialect else None)
            if implied is not None and abs(implied - dt) > 1e-6 * implied:
                warnings.append(
                    f"the file's parameters imply dt={implied:g} ({chosen} convention) but dt={dt:g} was given: "
                    "time constants will act on a different time scale than in training")
        elif d.fixed_dt is not None:
            dt, dt_source = d.fixed_dt, f"fixed by the {chosen} convention"
        elif chosen == det.dialect and det.dt is not None:
            dt, dt_source = det.dt, "inferred from r·dt/tau" if chosen == "snntorch" else "inferred from the parameters"
        elif not neuron_fields or all(k in ("I", "IF") for _, k, _ in neuron_fields) and d.integrator == "r":
            dt, dt_source = 1.0, "not needed by this graph"
        else:
            raise ModelError(f"cannot tell the timestep: {det.reason}. Pass --dt (seconds)")
        if dialect and dialect != det.dialect:
            warnings.append(f"dialect '{dialect}' given; the parameters suggested '{det.dialect}' ({det.reason})")
        graph = Graph()
        for n, (k, nd) in nodes.items():
            graph.add(n, _op_from_nir(k, nd, f"node '{n}' ({k})", d, dt))
        graph.edges = edges
        graph.prepare()
    except (ModelError, FormatError) as e:
        raise e.with_file(path)
    rep = ImportReport(dialect=chosen, dt=dt, reset=d.reset, detected=det.dialect, reason=det.reason,
                       dt_source=dt_source, warnings=warnings, nir_version=version)
    graph.meta.update(source={"format": "nir", "file": os.path.basename(path), "nir_version": version},
                      dt=dt, dialect=chosen, reset=d.reset, import_report=rep.as_dict())
    return graph, rep


# ---------------------------------------------------------------------- export


def to_nir_graph(graph: Graph):
    """An equivalent ``nir.NIRGraph`` (flat; the inverse of the import discretisation)."""
    import nir

    dt = float(graph.meta.get("dt") or 1.0)
    d = dialects.get(graph.meta.get("dialect", "nir"))
    nodes = {}
    for name, op in graph.nodes.items():
        k = op.kind
        if k == "Input":
            nodes[name] = nir.Input(input_type=np.array(op.shape))
        elif k == "Output":
            nodes[name] = nir.Output(output_type=np.array(op.shape))
        elif k == "Affine":
            nodes[name] = nir.Affine(weight=op.weight, bias=op.bias)
        elif k == "Linear":
            nodes[name] = nir.Linear(weight=op.weight)
        elif k == "Scale":
            nodes[name] = nir.Scale(scale=op.scale)
        elif k == "Threshold":
            nodes[name] = nir.Threshold(threshold=op.threshold)
        elif k == "Flatten":
            nodes[name] = nir.Flatten(input_type={"input": np.array(graph.in_shapes[name])},
                                      start_dim=op.start_dim, end_dim=op.end_dim)
        elif k == "Delay":
            nodes[name] = nir.Delay(delay=op.steps.astype(np.float64) * dt)
        elif k in ("SumPool2d", "AvgPool2d"):
            cls = nir.SumPool2d if k == "SumPool2d" else nir.AvgPool2d
            nodes[name] = cls(kernel_size=np.array(op.kernel_size), stride=np.array(op.stride),
                              padding=np.array(op.padding))
        elif k == "Conv1d":
            lo, hi = op.padding
            if lo != hi:
                raise ModelError(f"node '{name}': asymmetric padding {op.padding} cannot be written to NIR")
            nodes[name] = nir.Conv1d(input_shape=graph.in_shapes[name][1], weight=op.weight, stride=op.stride,
                                     padding=lo, dilation=op.dilation, groups=op.groups, bias=op.bias)
        elif k == "Conv2d":
            t, b, l_, r = op.padding
            if t != b or l_ != r:
                raise ModelError(f"node '{name}': asymmetric padding {op.padding} cannot be written to NIR")
            nodes[name] = nir.Conv2d(input_shape=tuple(graph.in_shapes[name][1:]), weight=op.weight,
                                     stride=op.stride, padding=(t, l_), dilation=op.dilation, groups=op.groups,
                                     bias=op.bias)
        elif isinstance(op, ops.Neuron):
            shape = graph.in_shapes[name]
            p = {f: np.broadcast_to(v, shape).astype(np.float32).copy() for f, v in d.continuous(op, dt).items()}
            nodes[name] = getattr(nir, k)(**p)
        else:  # pragma: no cover - every op kind is handled above
            raise ModelError(f"node '{name}': cannot export {k} to NIR")
    return nir.NIRGraph(nodes=nodes, edges=list(graph.edges), type_check=False,
                        metadata={"exported_by": "edgebrain", "dt": dt, "dialect": d.name})


def write_nir(graph: Graph, path) -> None:
    import nir

    nir.write(os.fspath(path), to_nir_graph(graph))
