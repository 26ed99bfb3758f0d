"""Reading a TensorFlow Lite (``.tflite``) file: its operators, tensors, weights and quantization.

The flatbuffer is read with the generated schema module that LiteRT ships
(``ai_edge_litert.schema_py_generated``, the ``tflite`` extra), never by hand. Nothing here runs a
model (that is :mod:`edgebrain.tflite_session`, through the LiteRT interpreter), and nothing below
this module knows TFLite exists.

* :func:`is_tflite` and :func:`is_tflite_file` tell a TFLite flatbuffer by its file identifier (``TFL3`` at byte 4);
* :func:`read_tflite` returns a :class:`TFLiteFile`: the first subgraph's tensors (name, shape,
  dtype, scale and zero point, constant data), operators (builtin name, inputs, outputs, MACs);
* :func:`describe` is what ``edgebrain inspect`` shows: operators, tensors, quantization, MACs,
  constant bytes and the activation bytes a tensor arena must hold.

MACs (multiply-accumulates), per operator: FULLY_CONNECTED ``outputs × input features``; CONV_2D
``outputs × kh × kw × cin``; DEPTHWISE_CONV_2D ``outputs × kh × kw``; TRANSPOSE_CONV ``inputs ×
kh × kw × cout``; BATCH_MATMUL ``outputs × the shared dimension``; every other operator 0.

Arena: ``activation_peak_bytes`` is the most bytes of non-constant tensors alive at once when the
operators run in the file's order (a tensor lives from the operator that writes it, or the start for
a model input, to the last operator that reads it, or the end for a model output). Any arena planner
needs at least that; TFLite Micro's adds alignment and operator scratch buffers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import FormatError, InputError
from .infile import open_regular, read_at

IDENTIFIER = b"TFL3"
#: what to install when the LiteRT package is missing (the ``tflite`` extra)
INSTALL_HINT = "pip install 'edgebrain[tflite]'"

#: TensorType (schema.fbs) → NumPy dtype; INT4 is packed two to a byte (``itemsize`` 0.5 below)
_DTYPES = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 6: np.bool_, 7: np.int16,
           9: np.int8, 10: np.float64, 12: np.uint64, 15: np.uint32, 16: np.uint16}
_TYPE_NAMES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 5: "string", 6: "bool", 7: "int16",
               8: "complex64", 9: "int8", 10: "float64", 11: "complex128", 12: "uint64", 13: "resource",
               14: "variant", 15: "uint32", 16: "uint16", 17: "int4", 18: "bfloat16", 19: "int2"}
#: bytes per element of each type (packed int4/int2 below one; strings and handles counted as 0)
_ITEMSIZE = {**{_TYPE_NAMES[k]: np.dtype(v).itemsize for k, v in _DTYPES.items()},
             "int4": 0.5, "int2": 0.25, "string": 0, "resource": 0, "variant": 0, "bfloat16": 2, "complex64": 8,
             "complex128": 16}


def schema():
    """LiteRT's generated flatbuffer schema module, or an :class:`InputError` saying how to install it."""
    try:
        from ai_edge_litert import schema_py_generated
    except ImportError:
        raise InputError("reading a .tflite file needs LiteRT (ai-edge-litert), an optional dependency: "
                         + INSTALL_HINT) from None
    return schema_py_generated


def is_tflite(head: bytes) -> bool:
    """Whether the first bytes of a file (at least 8) carry TFLite's flatbuffer identifier."""
    return len(head) >= 8 and head[4:8] == IDENTIFIER


def is_tflite_file(path) -> bool:
    """Whether ``path`` names a TFLite model: a ``.tflite`` suffix, or a regular file whose first
    bytes carry the identifier (whatever its name). Such a path goes to :mod:`edgebrain.tflite_session`,
    which says what is wrong with it if it is not a TFLite model after all."""
    p = str(path)
    if p.lower().endswith(".tflite"):
        return True
    if p.startswith("zoo:"):
        return False
    try:
        f, size = open_regular(p)
    except FormatError:
        return False
    with f:
        return size >= 8 and is_tflite(f.read(8))


def read_bytes(path) -> bytes:
    """The whole file, checked to be a TFLite flatbuffer by its identifier (a :class:`FormatError` if not)."""
    f, size = open_regular(path, "a TensorFlow Lite model (.tflite)")
    with f:
        if size < 8:
            raise FormatError(f"{size} bytes: too short for a TensorFlow Lite model (.tflite flatbuffer)", file=path)
        data = read_at(f, 0, size, path)
    if not is_tflite(data):
        raise FormatError(f"not a TensorFlow Lite model: expected the flatbuffer identifier 'TFL3' at byte 4, found "
                          f"{data[4:8]!r}", file=path)
    return data


@dataclass
class Tensor:
    index: int
    name: str
    shape: tuple
    dtype: str                      #: "float32", "int8", ... (:data:`_TYPE_NAMES`)
    scale: np.ndarray               #: per-tensor (1 value) or per-channel; empty when not quantized
    zero_point: np.ndarray
    quantized_dimension: int
    data: np.ndarray | None = None  #: the constant's values (weights, biases, shapes), None for activations

    @property
    def nbytes(self) -> int:
        n = int(np.prod(self.shape)) if len(self.shape) else 1
        return int(np.ceil(n * _ITEMSIZE.get(self.dtype, 1)))

    @property
    def quantization(self) -> dict | None:
        if not self.scale.size:
            return None
        return {"scale": self.scale.tolist(), "zero_point": self.zero_point.tolist(),
                "quantized_dimension": self.quantized_dimension}


@dataclass
class Operator:
    index: int
    name: str                       #: the builtin operator's name (CONV_2D), or CUSTOM:code
    inputs: list
    outputs: list
    options: dict = field(default_factory=dict)
    macs: int = 0


@dataclass
class TFLiteFile:
    path: str
    size: int
    version: int
    description: str
    tensors: list
    operators: list
    inputs: list
    outputs: list
    subgraphs: int

    def tensor(self, name_or_index) -> Tensor:
        if isinstance(name_or_index, (int, np.integer)):
            return self.tensors[int(name_or_index)]
        for t in self.tensors:
            if t.name == name_or_index:
                return t
        raise KeyError(name_or_index)


def _code(dtype_name: str) -> int:
    return next(k for k, v in _TYPE_NAMES.items() if v == dtype_name)


def _text(b) -> str:
    return b.decode("utf-8", "replace") if isinstance(b, (bytes, bytearray)) else ("" if b is None else str(b))


def builtin_names() -> dict:
    """Builtin operator code → name, from the schema module's ``BuiltinOperator``."""
    ops = schema().BuiltinOperator
    return {v: k for k, v in vars(ops).items() if not k.startswith("_") and isinstance(v, int)}


def read_tflite(path, data: bytes | None = None) -> TFLiteFile:
    """The first subgraph of the TFLite file at ``path`` (``data``: its bytes, if already read).
    A file the schema cannot read, or whose buffers point outside it, is a :class:`FormatError`."""
    data = read_bytes(path) if data is None else data
    s = schema()
    try:
        m = s.ModelT.InitFromPackedBuf(bytearray(data), 0)
        return _describe_model(path, data, m, builtin_names())
    except FormatError:
        raise
    except Exception as e:  # noqa: BLE001 - a damaged flatbuffer fails in many ways inside the generated code
        raise FormatError(f"not a readable TensorFlow Lite flatbuffer ({type(e).__name__}: {e}); truncated or "
                          "damaged?", file=path) from None


def _describe_model(path, data: bytes, m, names: dict) -> TFLiteFile:
    if not m.subgraphs:
        raise FormatError("a TensorFlow Lite model with no subgraph", file=path)
    g = m.subgraphs[0]
    buffers = m.buffers or []
    tensors = []
    for i, t in enumerate(g.tensors or []):
        dtype = _TYPE_NAMES.get(int(t.type), f"type{int(t.type)}")
        q = t.quantization
        scale = np.asarray(q.scale if q is not None and q.scale is not None else [], np.float32)
        zp = np.asarray(q.zeroPoint if q is not None and q.zeroPoint is not None else [], np.int64)
        shape = tuple(int(v) for v in (t.shape if t.shape is not None else ()))
        tensors.append(Tensor(i, _text(t.name), shape, dtype, scale, zp,
                              int(q.quantizedDimension) if q is not None else 0,
                              _constant(path, data, buffers, t.buffer, shape, dtype)))
    ops = []
    for k, op in enumerate(g.operators or []):
        code = m.operatorCodes[op.opcodeIndex]
        c = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
        name = f"CUSTOM:{_text(code.customCode)}" if c == 32 else names.get(c, f"BUILTIN_{c}")
        o = Operator(k, name, [int(v) for v in (op.inputs if op.inputs is not None else [])],
                     [int(v) for v in (op.outputs if op.outputs is not None else [])],
                     {kk: (int(v) if isinstance(v, (bool, int, np.integer)) else v)
                      for kk, v in vars(op.builtinOptions).items() if np.isscalar(v)} if op.builtinOptions else {})
        o.macs = macs(o, tensors)
        ops.append(o)
    return TFLiteFile(str(path), len(data), int(m.version), _text(m.description), tensors, ops,
                      [int(v) for v in g.inputs], [int(v) for v in g.outputs], len(m.subgraphs))


def _constant(path, data: bytes, buffers, index: int, shape: tuple, dtype: str):
    if not 0 < index < len(buffers):
        return None
    b = buffers[index]
    if b.data is not None and len(b.data):
        raw = np.asarray(b.data, np.uint8).tobytes()
    elif b.offset and b.offset > 1:  # a large model keeps its buffers after the flatbuffer
        if b.offset + b.size > len(data):
            raise FormatError(f"buffer {index} at bytes {b.offset}..{b.offset + b.size} lies past the end of the "
                              f"file ({len(data)} bytes): truncated?", file=path)
        raw = data[b.offset:b.offset + b.size]
    else:
        return None
    if dtype not in _TYPE_NAMES.values() or _code(dtype) not in _DTYPES:
        return np.frombuffer(raw, np.uint8).copy()  # packed int4, strings: the bytes as stored
    a = np.frombuffer(raw, np.dtype(_DTYPES[_code(dtype)]).newbyteorder("<"))
    n = int(np.prod(shape)) if shape else 1
    if a.size != n:
        raise FormatError(f"buffer {index} holds {a.size} {dtype} values; its tensor's shape {list(shape)} needs {n}",
                          file=path)
    return a.reshape(shape).astype(a.dtype.newbyteorder("="))


def macs(op: Operator, tensors: list) -> int:
    """Multiply-accumulates of one operator (see the module docstring for each kind)."""
    def shape(k):
        return tensors[k].shape if 0 <= k < len(tensors) else ()

    def n(s):
        return int(np.prod(s)) if s else 0

    if not op.outputs or not op.inputs:
        return 0
    out = shape(op.outputs[0])
    if op.name == "FULLY_CONNECTED" and len(op.inputs) > 1:
        w = shape(op.inputs[1])                      # (units, in_features)
        return n(out) * int(w[-1]) if w else 0
    if op.name == "CONV_2D" and len(op.inputs) > 1:
        w = shape(op.inputs[1])                      # (cout, kh, kw, cin)
        return n(out) * int(np.prod(w[1:])) if len(w) == 4 else 0
    if op.name == "DEPTHWISE_CONV_2D" and len(op.inputs) > 1:
        w = shape(op.inputs[1])                      # (1, kh, kw, cout)
        return n(out) * int(w[1] * w[2]) if len(w) == 4 else 0
    if op.name == "TRANSPOSE_CONV" and len(op.inputs) > 2:
        w, x = shape(op.inputs[1]), shape(op.inputs[2])   # (cout, kh, kw, cin), input (n, h, w, cin)
        return n(x) * int(w[0] * w[1] * w[2]) if len(w) == 4 else 0
    if op.name == "BATCH_MATMUL" and len(op.inputs) > 1:
        a = shape(op.inputs[0])
        adj_x = bool(op.options.get("adjX", False))
        return n(out) * int(a[-2] if adj_x else a[-1]) if len(a) >= 2 else 0
    return 0


def activation_peak_bytes(f: TFLiteFile) -> int:
    """The most bytes of non-constant tensors alive at once (module docstring: Arena)."""
    n_ops = len(f.operators)
    first, last = {}, {}
    for t in f.inputs:
        first[t] = -1
    for op in f.operators:
        for t in op.outputs:
            first.setdefault(t, op.index)
        for t in op.inputs:
            if t >= 0:
                last[t] = op.index
    for t in f.outputs:
        last[t] = n_ops
    live = [t for t in set(first) | set(last) if f.tensors[t].data is None]
    if not live:
        return 0
    peak = 0
    for k in range(-1, n_ops + 1):
        alive = (t for t in live if first.get(t, -1) <= k <= last.get(t, first.get(t, -1)))
        peak = max(peak, sum(f.tensors[t].nbytes for t in alive))
    return peak


def describe(f: TFLiteFile) -> dict:
    """What ``edgebrain inspect MODEL.tflite`` shows, as plain data."""
    def row(t: Tensor) -> dict:
        return {"index": t.index, "name": t.name, "shape": list(t.shape), "dtype": t.dtype, "bytes": t.nbytes,
                "constant": t.data is not None, "quantization": t.quantization}

    counts: dict = {}
    for op in f.operators:
        counts[op.name] = counts.get(op.name, 0) + 1
    const = sum(t.nbytes for t in f.tensors if t.data is not None)
    weights = {k for op in f.operators if op.macs for k in op.inputs[1:] if k >= 0 and f.tensors[k].data is not None}
    params = sum(int(f.tensors[k].data.size) for k in weights)  # the weights and biases of the MAC operators
    return {
        "file": f.path, "format": "tflite", "file_bytes": f.size, "schema_version": f.version,
        "description": f.description, "subgraphs": f.subgraphs,
        "inputs": [row(f.tensors[i]) for i in f.inputs], "outputs": [row(f.tensors[i]) for i in f.outputs],
        "operators": [{"index": op.index, "op": op.name, "inputs": op.inputs, "outputs": op.outputs,
                       "output_shape": list(f.tensors[op.outputs[0]].shape) if op.outputs else [],
                       "macs": op.macs, "options": op.options} for op in f.operators],
        "operator_counts": counts,
        "tensors": [row(t) for t in f.tensors],
        "totals": {"macs": sum(op.macs for op in f.operators), "operators": len(f.operators),
                   "tensors": len(f.tensors), "parameters": params, "constant_bytes": const,
                   "activation_bytes": sum(t.nbytes for t in f.tensors if t.data is None),
                   "activation_peak_bytes": activation_peak_bytes(f)},
    }
