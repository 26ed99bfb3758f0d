"""A model: a graph, its metadata and (optionally) its fixed-point parameters."""

from __future__ import annotations

import hashlib
import os

import numpy as np

from . import ebm, ops
from .errors import FormatError, ModelError
from .graph import Graph
from .infile import open_regular

#: what :meth:`Model.session` runs a model on: edgebrain's Numba kernels, or the C runtime
#: (``edgebrain/cruntime/`` through ctypes; integer models, batch 1, no Numba in the process)
BACKENDS = ("numba", "c")


class Model:
    def __init__(self, graph: Graph, quant: dict | None = None, path: str | None = None):
        if not graph.order:
            graph.prepare()
        self.graph = graph
        self.quant = quant
        self.path = path
        #: SHA-256 of the .ebm file's bytes as loaded (None for a model not loaded from one): the
        #: key of the C backend's blob cache (:func:`edgebrain.csession.for_model`); set it to None
        #: after changing the model's graph or parameters in memory
        self.source_digest: str | None = None
        self._programs: dict = {}

    # ------------------------------------------------------------------ files
    @classmethod
    def load(cls, path, dt: float | None = None, dialect: str | None = None, reset: str | None = None) -> "Model":
        """Load a ``.ebm`` model or import a ``.nir`` file (dt, dialect, reset apply to NIR only)."""
        path = os.fspath(path)
        if path.startswith("zoo:"):
            from . import zoo

            path = zoo.path(path)
        kind = _sniff(path)
        if kind == "nir":
            from .nir_io import read_nir

            graph, _ = read_nir(path, dt=dt, dialect=dialect, reset=reset)
            return cls(graph, None, path)
        if any(v is not None for v in (dt, dialect, reset)):
            raise ModelError("--dt, --dialect and --reset apply to NIR files; this is an edgebrain model "
                             "(they were fixed when it was converted)", file=path)
        graph, quant = ebm.load(path)
        m = cls(graph, quant, path)
        m.source_digest = _file_digest(path)
        return m

    def save(self, path) -> None:
        ebm.save(path, self.graph, self.quant)

    def export_nir(self, path) -> None:
        from .nir_io import write_nir

        write_nir(self.graph, path)

    # ------------------------------------------------------------------ running
    def program(self, precision: str = "float"):
        from .program import build  # (imports the kernels, and with them Numba: not before it is needed)

        if precision not in self._programs:
            try:
                self._programs[precision] = build(self.graph, precision, self.quant)
            except ModelError as e:
                raise e.with_file(self.path) if self.path else e
        return self._programs[precision]

    def session(self, precision: str = "float", batch: int = 1, backend: str = "numba"):
        """A :class:`~edgebrain.session.Session` at ``precision``, or with ``backend="c"`` a
        :class:`~edgebrain.csession.CSession` on the C runtime (integer precision, batch 1; the
        model's blob comes from the user's cache when this file was lowered before, so neither
        lowering nor Numba is needed)."""
        if backend == "c":
            from .csession import for_model

            return for_model(self, precision, batch)
        if backend != "numba":
            raise ModelError(f"backend '{backend}'; expected one of {', '.join(BACKENDS)}")
        from .session import Session

        return Session(self.program(precision), batch)

    @property
    def input_shape(self) -> tuple:
        return self.graph.out_shapes[self.graph.inputs[0]]

    @property
    def output_shapes(self) -> dict:
        return {n: self.graph.in_shapes[n] for n in self.graph.outputs}

    @property
    def dt(self) -> float | None:
        return self.graph.meta.get("dt")

    # ------------------------------------------------------------------ description
    def summary(self) -> dict:
        """Nodes, shapes, parameter counts and memory footprint, as plain data (for inspect)."""
        g = self.graph
        q = (self.quant or {}).get("nodes", {})
        wbits = int((self.quant or {}).get("weight_bits", 8))
        sbits = int((self.quant or {}).get("state_bits", 32))
        rows = []
        tot = {"params": 0, "float_bytes": 0, "int_bytes": 0, "state_float_bytes": 0, "state_int_bytes": 0}
        for name in g.order:
            op = g.nodes[name]
            n_params = op.n_params()
            shape_in = g.in_shapes.get(name)
            shape_out = g.out_shapes.get(name)
            n_out = int(np.prod(shape_out)) if shape_out else 0
            n_state = 0
            if isinstance(op, ops.Neuron):
                n_state = n_out * (2 if op.cuba else 1)
            elif isinstance(op, ops.Delay):
                n_state = n_out * (int(op.steps.max(initial=0)) + 1)
            fbytes = 4 * _expanded_params(op, shape_in)
            ibytes = _int_bytes(op, q.get(name), wbits, shape_in) if self.quant else 0
            row = {"name": name, "kind": op.kind, "in": list(shape_in or ()), "out": list(shape_out or ()),
                   "params": n_params, "state": n_state, "float_bytes": fbytes, "int_bytes": ibytes}
            rows.append(row)
            tot["params"] += n_params
            tot["float_bytes"] += fbytes
            tot["int_bytes"] += ibytes
            tot["state_float_bytes"] += 4 * n_state
            tot["state_int_bytes"] += (sbits // 8) * n_state
        return {
            "file": self.path, "nodes": rows, "edges": [list(e) for e in g.edges],
            "delayed_edges": sorted([list(e) for e in g.delayed_edges]), "order": list(g.order),
            "input_shape": list(self.input_shape), "outputs": {k: list(v) for k, v in self.output_shapes.items()},
            "dt": g.meta.get("dt"), "dialect": g.meta.get("dialect"), "reset": g.meta.get("reset"),
            "import": g.meta.get("import_report"), "quantized": bool(self.quant),
            "weight_bits": wbits if self.quant else None, "state_bits": sbits if self.quant else None,
            "totals": tot,
        }


def _expanded_params(op, shape_in) -> int:
    if isinstance(op, ops.Neuron) and shape_in:
        n = int(np.prod(shape_in))
        return n * len(op.arrays())
    return op.n_params()


def _int_bytes(op, q, wbits, shape_in) -> int:
    if not q:
        return 0
    if isinstance(op, (ops.Affine, ops.Conv1d, ops.Conv2d)):
        w = np.asarray(q["w"]).size
        return (w * wbits + 7) // 8 + 4 * np.asarray(q.get("b", np.zeros(0))).size + 8 * np.asarray(q["rq_m"]).size
    if isinstance(op, ops.Neuron) and shape_in:
        n = int(np.prod(shape_in))
        keys = [k for k in ("alpha_m", "gsyn_m", "gsyn_s", "beta_m", "gmem_m", "gmem_s", "bias", "thr", "v_reset")
                if k in q]
        return 4 * sum(min(np.asarray(q[k]).size, n) for k in keys)
    return 4 * sum(np.asarray(v).size for v in q.values() if isinstance(v, np.ndarray))


def _file_digest(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest() if hasattr(hashlib, "file_digest") \
                else hashlib.sha256(f.read()).hexdigest()
    except OSError:
        return None


def _sniff(path: str) -> str:
    # a FIFO would block the open, a device (a link to /dev/zero) never ends: refused here
    f, _ = open_regular(path, "a model file (.ebm or .nir)")
    with f:
        head = f.read(8)
    if head == ebm.MAGIC:
        return "ebm"
    if head == b"\x89HDF\r\n\x1a\n":
        return "nir"
    ext = os.path.splitext(path)[1].lower()
    if ext == ".nir":
        return "nir"
    if ext == ".ebm":
        return "ebm"
    raise FormatError("neither an edgebrain model (.ebm) nor a NIR file (HDF5): unrecognised first bytes",
                      file=path)
