"""Reading an ONNX model file and its sidecar, and the state convention of per-step models (docs/onnx.md).

Nothing here runs a model (that is :mod:`edgebrain.onnx_session`, through ONNX Runtime), nothing here
imports ONNX Runtime, and nothing below this module knows ONNX exists.

* :func:`is_onnx_file`: a path whose name ends in ``.onnx`` (an ONNX file carries no identifier to tell it
  by: it is a protobuf ``ModelProto``, checked by ONNX Runtime when it loads it);
* :func:`read_bytes`: the whole file, refused when empty;
* :func:`read_sidecar`: ``MODEL.onnx.json`` (else ``MODEL.json``) as a checked dict;
* :func:`pair_states` (from :mod:`edgebrain.state_pairs`, shared with TFLite models): which inputs are
  states fed back from which outputs, by the sidecar's ``state`` or by their names (:data:`NAME_PAIRS`),
  and the one data input left;
* :func:`describe_graph`: the operators, MACs and constant bytes, read with the ``onnx`` package when
  it is installed (ONNX Runtime does not expose the graph); None without it.

**The state convention.** A stateful model computes one timestep: ``(x, s_1 .. s_k) -> (y .., s_1' ..
s_k')``, and the caller feeds each ``s_i'`` back as ``s_i`` at the next step. Which input is fed from which
output is, in this order: the sidecar's ``"state": {"input name": "output name", ...}`` (``{}``: the model
is stateless); else every input whose name pairs with exactly one output's by :data:`NAME_PAIRS`
(``mem_in`` → ``mem_out``, ``state_in`` → ``state_out``, ``h0`` → ``hn``, ``v`` → ``v_new`` ...), with
the same shape and element type. The one input left is the data input; a model with no state pair is
stateless (one inference per sample, or per window when streamed).
"""

from __future__ import annotations

import numpy as np

from .errors import FormatError
from .infile import open_regular, read_at
from .sidecar import read_sidecar as _read_sidecar

# the state convention lives in state_pairs.py (shared with TFLite models); its names stay importable from here
from .state_pairs import NAME_PAIRS, PREFIX_PAIR, named_pair, pair_states, same_kind  # noqa: F401

#: what to install when ONNX Runtime is missing (the ``onnx`` extra)
INSTALL_HINT = "pip install 'edgebrain[onnx]'"

#: the sidecar's fields (docs/onnx.md): stream settings, the state convention, window geometry
SIDECAR_KEYS = ("encoder", "decoder", "rate", "labels", "source_options", "state", "initial_state", "hop",
                "channels", "output")

#: ONNX Runtime's element type names → NumPy dtypes
DTYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16,
          "tensor(int8)": np.int8, "tensor(uint8)": np.uint8, "tensor(int16)": np.int16, "tensor(uint16)": np.uint16,
          "tensor(int32)": np.int32, "tensor(uint32)": np.uint32, "tensor(int64)": np.int64,
          "tensor(uint64)": np.uint64, "tensor(bool)": np.bool_}


def is_onnx_file(path) -> bool:
    """Whether ``path`` names an ONNX model: its name ends in ``.onnx`` (any case). Such a path goes to
    :mod:`edgebrain.onnx_session`, which says what is wrong with it if it is not an ONNX model after all."""
    p = str(path)
    return not p.startswith("zoo:") and p.lower().endswith(".onnx")


def read_bytes(path) -> bytes:
    """The whole file (a :class:`FormatError` if it is missing, not a regular file, or empty)."""
    f, size = open_regular(path, "an ONNX model (.onnx)")
    with f:
        if size == 0:
            raise FormatError("0 bytes: an empty file; expected an ONNX model (a protobuf ModelProto)", file=path)
        return read_at(f, 0, size, path)


# ---------------------------------------------------------------------------------------------- the sidecar
def read_sidecar(path: str) -> tuple[dict | None, str | None]:
    """``(fields, sidecar path)`` of the model at ``path``, ``(None, None)`` without a sidecar. Not JSON,
    not an object, or an unknown field: an :class:`InputError` naming the sidecar."""
    return _read_sidecar(path, SIDECAR_KEYS, '{"encoder": "direct", "rate": 50, "labels": [...]}', "docs/onnx.md")


# ---------------------------------------------------------------------------------------------- the graph
#: operators counted as multiply-accumulates (docs/onnx.md, inspect)
MAC_OPS = ("Gemm", "MatMul", "Conv", "ConvTranspose")


def _dims(t) -> list:
    return [d.dim_value if d.HasField("dim_value") else 1 for d in t.type.tensor_type.shape.dim]


def describe_graph(data: bytes) -> dict | None:
    """The operators, MACs and constants of the model ``data``, read with the ``onnx`` package (None when it
    is not installed). MACs per inference: Gemm and MatMul ``outputs × the shared dimension``; Conv ``outputs ×
    (input channels / groups) × kernel size``; ConvTranspose ``inputs × (output channels / groups) × kernel
    size``; every other operator 0 (a dimension of unknown size, the batch, counts 1)."""
    try:
        import onnx
        from onnx import numpy_helper, shape_inference
    except ImportError:
        return None
    try:
        m = onnx.load_from_string(data)
        m = shape_inference.infer_shapes(m)
    except Exception:  # noqa: BLE001 - ONNX Runtime loaded it; a graph onnx cannot read is shown without operators
        return None
    g = m.graph
    shapes = {}
    for t in list(g.input) + list(g.value_info) + list(g.output):
        shapes[t.name] = _dims(t)
    const = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    for n in g.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    const[n.output[0]] = numpy_helper.to_array(a.t)
    for k, v in const.items():
        shapes.setdefault(k, list(v.shape))
    ops, params = [], set()
    for idx, n in enumerate(g.node):
        out = shapes.get(n.output[0], []) if n.output else []
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        macs = 0
        try:
            size = int(np.prod(out)) if out else 0
            if n.op_type == "Gemm":
                a = shapes[n.input[0]]
                macs = size * int(a[0] if attrs.get("transA", 0) else a[-1])
            elif n.op_type == "MatMul":
                macs = size * int(shapes[n.input[0]][-1])
            elif n.op_type == "Conv":
                macs = size * int(np.prod(shapes[n.input[1]][1:]))
            elif n.op_type == "ConvTranspose":
                macs = int(np.prod(shapes[n.input[0]])) * int(np.prod(shapes[n.input[1]][1:]))
        except (KeyError, IndexError):
            macs = 0
        if n.op_type in MAC_OPS:
            params.update(k for k in n.input[1:] if k in const)
        ops.append({"index": idx, "op": n.op_type, "name": n.name, "inputs": list(n.input),
                    "outputs": list(n.output), "output_shape": list(out), "macs": int(macs)})
    counts: dict = {}
    for op in ops:
        counts[op["op"]] = counts.get(op["op"], 0) + 1
    opset = {o.domain or "ai.onnx": int(o.version) for o in m.opset_import}
    producer = f"{m.producer_name} {m.producer_version}".strip()
    return {"ir_version": int(m.ir_version), "opset": opset, "producer": producer,
            "graph_name": g.name, "operators": ops, "operator_counts": counts,
            "totals": {"operators": len(ops), "macs": sum(op["macs"] for op in ops),
                       "parameters": int(sum(const[k].size for k in params)),
                       "constant_bytes": int(sum(v.nbytes for v in const.values()))}}
