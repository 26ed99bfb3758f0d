"""Lowering a graph to the executor's instruction table and flat buffers.

This is the "build" half of the runtime (Nengo's builder, TFLM's interpreter set-up): it
decides where every node's output lives, emits the copies and additions that sum a node's
inputs, and hands each node to the lowering function of its kernel family (TFLM's op
resolver: ``LOWERING``, op kind -> function, filled from each ``kernels/<family>.py``), which
expands its parameters, lays them out for the kernel and writes its instruction rows (named
columns: :mod:`edgebrain.kernels.layout`). The session then only calls the executor.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import ops
from .errors import ModelError
from .graph import Graph
from .kernels import conv, dense, elementwise, neuron, pool
from .kernels import layout as L
from .qparams import needs_wide, state_dtype, summed_bound, value_bounds, weight_dtype

ALIGN = 16  # elements; 64 bytes for 32-bit buffers


def aligned_empty(shape, dtype, align_bytes=64) -> np.ndarray:
    """A zeroed array whose data starts on an ``align_bytes`` boundary (faster kernels)."""
    dtype = np.dtype(dtype)
    n = int(np.prod(shape)) * dtype.itemsize
    raw = np.zeros(n + align_bytes, dtype=np.uint8)
    start = (-raw.ctypes.data) % align_bytes
    return raw[start:start + n].view(dtype).reshape(shape)


class Pack:
    """Appends arrays to one flat parameter buffer, each aligned; :meth:`add` returns the
    offset an instruction row refers to."""

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)
        self.parts: list[np.ndarray] = []
        self.size = 0

    def add(self, a, align=ALIGN) -> int:
        a = np.ascontiguousarray(np.asarray(a).reshape(-1))
        pad = (-self.size) % align
        if pad:
            self.parts.append(np.zeros(pad, self.dtype))
            self.size += pad
        off = self.size
        if a.size:
            if self.dtype.kind in "iu":
                info = np.iinfo(self.dtype)
                if a.size and (a.min() < info.min or a.max() > info.max):
                    raise ModelError(f"value out of range for {self.dtype} while packing parameters")
            self.parts.append(a.astype(self.dtype))
            self.size += a.size
        return off

    @property
    def align_bytes(self) -> int:
        """Bytes an :meth:`add` aligns to (what a kernel family's size decisions pad parts to)."""
        return ALIGN * self.dtype.itemsize

    def add_raw(self, a, align=ALIGN) -> int:
        """Like :meth:`add`, but the bytes of ``a`` (little-endian; row pointers, indices, packed
        4-bit weights) are stored as they are, padded with zeros to whole elements."""
        raw = np.ascontiguousarray(np.asarray(a).reshape(-1)).astype(np.asarray(a).dtype.newbyteorder("<")).tobytes()
        raw += b"\0" * ((-len(raw)) % self.dtype.itemsize)
        return self.add(np.frombuffer(raw, self.dtype.newbyteorder("<")).astype(self.dtype), align)

    def array(self) -> np.ndarray:
        out = aligned_empty((max(self.size, 1),), self.dtype)
        if self.parts:
            out[:self.size] = np.concatenate(self.parts)
        return out


@dataclass
class Region:
    off: int
    n: int
    shape: tuple


@dataclass
class Program:
    precision: str
    prog: np.ndarray
    fpar: np.ndarray
    ipar: np.ndarray
    wbuf: np.ndarray
    act_size: int
    state_size: int
    state_dtype: np.dtype
    act_dtype: np.dtype
    acc_size: int
    idx_size: int
    input_name: str
    input_shape: tuple
    outputs: dict = field(default_factory=dict)  # name -> (column, n, shape)
    n_out: int = 0
    out_regions: dict = field(default_factory=dict)  # node -> Region in act
    state_regions: dict = field(default_factory=dict)  # neuron node -> (v Region, i Region | None)
    instr_node: list = field(default_factory=list)  # instruction row -> node name
    scales: dict = field(default_factory=dict)  # int mode: node -> output scale (float)
    state_scales: dict = field(default_factory=dict)  # int mode: node -> (s_v, s_i)
    spiking: set = field(default_factory=set)  # nodes whose output is spikes


def _expand(a, shape) -> np.ndarray:
    return np.broadcast_to(np.asarray(a), shape).reshape(-1)


#: op kind -> lowering function ``lower(builder, name, op, q, inp, out)`` (see :class:`Builder`);
#: a kind not listed uses its base class's (Linear: Affine's, LIF: Neuron's)
LOWERING = {**dense.LOWERING, **conv.LOWERING, **pool.LOWERING, **elementwise.LOWERING, **neuron.LOWERING}


def _lowering_for(op):
    for cls in type(op).__mro__:
        f = LOWERING.get(getattr(cls, "kind", None))
        if f is not None:
            return f
    return None


class Builder:
    """The program being built, as a kernel family's lowering function sees it.

    ``lower(b, name, op, q, inp, out)`` is called once per node, in execution order, with the
    node's fixed-point parameters ``q`` (int mode; ``{}`` in float mode) and the
    :class:`Region` of its (summed) input and of its output in the activation buffer. It adds
    its parameters to ``b.fpar`` (float32), ``b.ipar`` (int32) or ``b.wbuf`` (weights) with
    ``add``, which returns the offset to write in the row, and writes rows with :meth:`emit`.
    """

    def __init__(self, graph: Graph, precision: str, quant: dict | None, compact: bool = True):
        self.graph = graph
        #: whether weights may be stored compactly (sparse, 4-bit packed) where that is smaller;
        #: False lays every dense synapse out dense, as before (tests and benchmarks compare both)
        self.compact = compact
        self.is_int = is_int = precision == "int"
        self.state_dtype = state_dtype(int((quant or {}).get("state_bits", 32))) if is_int else np.dtype(np.float32)
        self.act_dtype = np.dtype(np.int32 if is_int else np.float32)
        self.fpar = Pack(np.float32)
        self.ipar = Pack(np.int32)
        #: the model's weight width (4, 8 or 16; int mode)
        self.weight_bits = int((quant or {}).get("weight_bits", 8))
        self.wbuf = Pack(weight_dtype(self.weight_bits)) if is_int else self.fpar
        self.fpar.add(np.zeros(1))  # offset 0 is a harmless scalar
        self.act_size = 0
        self.state_size = 0
        self.acc_size = 1
        self.idx_size = 1
        self.rows: list[list[int]] = []
        self.instr_node: list[str] = []
        self.state_regions: dict = {}
        self.state_scales: dict = {}
        self._bounds = value_bounds(graph, quant) if is_int else {}

    expand = staticmethod(_expand)

    def wide(self, name: str, q: dict) -> bool:
        """Whether node ``name``'s weighted sum needs a 64-bit accumulator: as the file says, or
        because its weights and input range can reach 2³¹ (derived here, not trusted from a file:
        a 32-bit accumulator that overflows would give wrong numbers silently)."""
        return bool(q.get("wide")) or needs_wide(q["w"], q.get("b"), summed_bound(self.graph, name, self._bounds))

    def emit(self, name: str, opcode: int, src: Region | None, dst: Region | None, **fields) -> None:
        """Append one row for node ``name``: ``src`` and ``dst`` fill the header (None: 0, 0),
        ``fields`` the opcode's named columns (:data:`edgebrain.kernels.layout.FIELDS`)."""
        self.rows.append(L.row(opcode, src.off if src else 0, src.n if src else 0, dst.off if dst else 0,
                               dst.n if dst else 0, **fields))
        self.instr_node.append(name)

    def alloc_act(self, n: int) -> int:
        """Offset of ``n`` new values in the activation buffer (per batch element)."""
        self.act_size += (-self.act_size) % ALIGN
        off = self.act_size
        self.act_size += n
        return off

    def alloc_neuron_state(self, name: str, shape, n: int, current: bool) -> int:
        """Offset of node ``name``'s membrane (``n`` values, then as many for the current when
        ``current``) in the state buffer; recorded for the session's v() / i()."""
        self.state_size += (-self.state_size) % (ALIGN * 2)
        off = self.state_size
        self.state_size += 2 * n if current else n
        self.state_regions[name] = (Region(off, n, shape), Region(off + n, n, shape) if current else None)
        return off

    def need_scratch(self, acc: int = 0, idx: int = 0) -> None:
        """Make the accumulator row hold at least ``acc`` values and the index list ``idx``."""
        self.acc_size = max(self.acc_size, acc)
        self.idx_size = max(self.idx_size, idx)


def build(graph: Graph, precision: str = "float", quant: dict | None = None, compact: bool = True) -> Program:
    """Lower ``graph`` (already prepared) for ``precision`` 'float' or 'int' (needs ``quant``).
    ``compact`` False stores every dense synapse's weights dense (int8/int16, float32) even where
    a sparse or 4-bit form would be smaller: the reference the compact kernels are tested against."""
    if precision not in ("float", "int"):
        raise ModelError(f"precision '{precision}'; expected float or int")
    if precision == "int" and not quant:
        raise ModelError("this model has no fixed-point parameters; convert it with --quantize first")
    if not graph.order:
        graph.prepare()
    if len(graph.inputs) != 1:
        raise ModelError(f"the graph has {len(graph.inputs)} Input nodes; exactly one is supported")
    b = Builder(graph, precision, quant, compact)
    is_int = b.is_int
    qn = (quant or {}).get("nodes", {})
    nodes = graph.nodes
    out_reg, sum_reg, resolve, in_region = _regions(graph, b)
    scales = {k: float(v) for k, v in (quant or {}).get("scales", {}).items()} if is_int else {}

    for name in graph.order:
        op = nodes[name]
        q = qn.get(name, {})
        if name in sum_reg:
            preds = graph.preds(name)
            dst = sum_reg[name]
            b.emit(name, L.OP_COPY, resolve(preds[0]), dst)
            for p in preds[1:]:
                b.emit(name, L.OP_ADD, resolve(p), dst)
        if isinstance(op, (ops.Flatten, ops.Output)):
            if name in sum_reg and isinstance(op, ops.Flatten):
                # a Flatten with several inputs: its output region holds the copy of the sum
                b.emit(name, L.OP_COPY, sum_reg[name], out_reg[name])
            continue
        out = out_reg[name]
        if isinstance(op, ops.Input):
            src = Region(0, out.n, ())
            if is_int:
                b.emit(name, L.OP_INPUT, src, out, inv_scale_off=b.fpar.add([1.0 / q["scale"]]), lo=q["lo"],
                       hi=q["hi"])
            else:
                b.emit(name, L.OP_INPUT, src, out)
            continue
        lower = _lowering_for(op)
        if lower is None:  # pragma: no cover
            raise ModelError(f"node '{name}': no kernel for node type {op.kind}")
        lower(b, name, op, q, in_region(name), out)

    outputs = {}
    n_out = 0
    for name in graph.outputs:
        src = resolve(name)
        if is_int:
            b.emit(name, L.OP_OUTPUT, src, None, column=n_out, scale_off=b.fpar.add([scales[name]]))
        else:
            b.emit(name, L.OP_OUTPUT, src, None, column=n_out)
        outputs[name] = (n_out, src.n, graph.in_shapes[name])
        n_out += src.n

    prog = np.array(b.rows, np.int64) if b.rows else np.zeros((0, L.WIDTH), np.int64)
    input_name = graph.inputs[0]
    return Program(
        precision=precision, prog=np.ascontiguousarray(prog), fpar=b.fpar.array(), ipar=b.ipar.array(),
        wbuf=(b.wbuf.array() if is_int else np.zeros(1, np.float32)), act_size=max(b.act_size, 1),
        state_size=max(b.state_size, 1), state_dtype=b.state_dtype, act_dtype=b.act_dtype, acc_size=b.acc_size,
        idx_size=b.idx_size, input_name=input_name, input_shape=graph.out_shapes[input_name], outputs=outputs,
        n_out=n_out, out_regions=out_reg, state_regions=b.state_regions, instr_node=b.instr_node, scales=scales,
        state_scales=b.state_scales,
        spiking={n for n, op in nodes.items() if (isinstance(op, ops.Neuron) and op.spiking)
                 or isinstance(op, ops.Threshold)})


def _regions(graph: Graph, b: Builder):
    """Output regions of every node and the regions where multi-input nodes sum their inputs.
    Aliases (Flatten, Output, with a single input) share their input's region."""
    nodes = graph.nodes
    size = lambda s: int(np.prod(s)) if len(s) else 1  # noqa: E731
    out_reg: dict[str, Region] = {}
    sum_reg: dict[str, Region] = {}

    def is_alias(n):
        return isinstance(nodes[n], (ops.Flatten, ops.Output)) and len(graph.preds(n)) == 1

    for n in graph.order:
        if not is_alias(n):
            out_reg[n] = Region(b.alloc_act(size(graph.out_shapes[n])), size(graph.out_shapes[n]), graph.out_shapes[n])
        if len(graph.preds(n)) > 1:
            sh = graph.in_shapes[n]
            sum_reg[n] = Region(b.alloc_act(size(sh)), size(sh), sh)

    def resolve(n, depth=0) -> Region:
        if depth > len(nodes):
            raise ModelError(f"node '{n}': pass-through nodes form a loop")
        if n in out_reg:
            return out_reg[n]
        r = in_region(n, depth + 1)
        return Region(r.off, r.n, graph.out_shapes[n])

    def in_region(n, depth=0) -> Region:
        if n in sum_reg:
            return sum_reg[n]
        return resolve(graph.preds(n)[0], depth)

    for n in graph.order:
        if n not in out_reg:
            out_reg[n] = resolve(n)
    return out_reg, sum_reg, resolve, in_region
