"""Lowering a graph to the executor's instruction table and flat buffers.

This is the "build" half of the runtime (Nengo's builder, TFLM's interpreter set-up): it
decides where every node's output and state live, expands per-neuron parameters, lays
weights out for the kernels and emits one instruction per node, plus the copies and
additions that sum a node's inputs. The session then only calls the executor.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import ops
from .errors import ModelError
from .graph import Graph
from .kernels import engine as E
from .kernels.neuron import GMEM_IDENTITY, GSYN_IDENTITY, SHIFT_DECAY, flags_for

ALIGN = 16  # elements; 64 bytes for 32-bit buffers


def aligned_empty(shape, dtype, align_bytes=64) -> np.ndarray:
    """A zeroed array whose data starts on an ``align_bytes`` boundary (faster kernels)."""
    dtype = np.dtype(dtype)
    n = int(np.prod(shape)) * dtype.itemsize
    raw = np.zeros(n + align_bytes, dtype=np.uint8)
    start = (-raw.ctypes.data) % align_bytes
    return raw[start:start + n].view(dtype).reshape(shape)


class _Pack:
    """Appends arrays to one flat buffer, each aligned, and remembers offsets."""

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


def build(graph: Graph, precision: str = "float", quant: dict | None = None) -> Program:
    """Lower ``graph`` (already prepared) for ``precision`` 'float' or 'int' (needs ``quant``)."""
    if precision not in ("float", "int"):
        raise ModelError(f"precision '{precision}'; expected float or int")
    if precision == "int" and not quant:
        raise ModelError("this model has no fixed-point parameters; convert it with --quantize first")
    if not graph.order:
        graph.prepare()
    if len(graph.inputs) != 1:
        raise ModelError(f"the graph has {len(graph.inputs)} Input nodes; exactly one is supported")
    is_int = precision == "int"
    qn = (quant or {}).get("nodes", {})
    state_bits = int((quant or {}).get("state_bits", 32))
    weight_bits = int((quant or {}).get("weight_bits", 8))
    sdt = np.dtype(np.int16 if state_bits == 16 else np.int32) if is_int else np.dtype(np.float32)
    adt = np.dtype(np.int32 if is_int else np.float32)
    wdt = np.dtype(np.int16 if weight_bits > 8 else np.int8) if is_int else np.dtype(np.float32)

    fpar = _Pack(np.float32)
    ipar = _Pack(np.int32)
    wbuf = fpar if not is_int else _Pack(wdt)
    fpar.add(np.zeros(1))  # offset 0 is a harmless scalar

    # ---- output regions: aliases (Flatten, Output, single-input sums) share their input's
    nodes = graph.nodes
    size = lambda s: int(np.prod(s)) if len(s) else 1  # noqa: E731
    act_size = 0

    def alloc_act(n):
        nonlocal act_size
        act_size += (-act_size) % ALIGN
        off = act_size
        act_size += n
        return off

    out_reg: dict[str, Region] = {}
    sum_reg: dict[str, Region] = {}

    def is_alias(n):
        return isinstance(nodes[n], (ops.Flatten, ops.Output)) and len(graph.preds(n)) == 1

    for n in graph.order:
        if not is_alias(n):
            out_reg[n] = Region(alloc_act(size(graph.out_shapes[n])), size(graph.out_shapes[n]), graph.out_shapes[n])
        if len(graph.preds(n)) > 1:
            sh = graph.in_shapes[n]
            sum_reg[n] = Region(alloc_act(size(sh)), size(sh), sh)

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

    rows: list[np.ndarray] = []
    instr_node: list[str] = []
    state_size = 0
    state_regions = {}
    acc_size = 1
    idx_size = 1
    scales = {k: float(v) for k, v in (quant or {}).get("scales", {}).items()} if is_int else {}
    state_scales = {}

    def emit(name, *vals):
        r = np.zeros(E.WIDTH, np.int64)
        r[:len(vals)] = vals
        rows.append(r)
        instr_node.append(name)

    def alloc_state(n):
        nonlocal state_size
        state_size += (-state_size) % (ALIGN * 2)
        off = state_size
        state_size += n
        return off

    input_name = graph.inputs[0]
    outputs = {}
    n_out = 0
    for name in graph.order:
        op = nodes[name]
        q = qn.get(name, {})
        if name in sum_reg:
            preds = graph.preds(name)
            dst = sum_reg[name]
            first = resolve(preds[0])
            emit(name, E.OP_COPY, first.off, first.n, dst.off, dst.n)
            for p in preds[1:]:
                src = resolve(p)
                emit(name, E.OP_ADD, src.off, src.n, dst.off, dst.n)
        if isinstance(op, (ops.Flatten, ops.Output)):
            if name in sum_reg and isinstance(op, ops.Flatten):
                # a Flatten with several inputs: its output region holds the copy of the sum
                src, dst = sum_reg[name], out_reg[name]
                emit(name, E.OP_COPY, src.off, src.n, dst.off, dst.n)
            continue
        out = out_reg[name]
        if isinstance(op, ops.Input):
            if is_int:
                emit(name, E.OP_INPUT, 0, out.n, out.off, out.n, fpar.add([1.0 / q["scale"]]), q["lo"], q["hi"])
            else:
                emit(name, E.OP_INPUT, 0, out.n, out.off, out.n)
            continue
        inp = in_region(name)
        if isinstance(op, ops.Affine):  # and Linear
            n_in, n_o = op.weight.shape[1], op.weight.shape[0]
            rows_ = inp.n // n_in
            idx_size = max(idx_size, n_in)
            acc_size = max(acc_size, n_o)
            if is_int:
                w_off = wbuf.add(q["w"].T)  # (n_in, n_out)
                b_off = ipar.add(q["b"]) if "b" in q else -1
                emit(name, E.OP_DENSE, inp.off, inp.n, out.off, out.n, rows_, n_in, n_o, w_off, b_off,
                     ipar.add(q["rq_m"]), ipar.add(q["rq_s"]), int(q["identity"]), int(q["wide"]))
            else:
                w_off = fpar.add(op.weight.T)
                b_off = fpar.add(op.bias) if op.bias is not None else -1
                emit(name, E.OP_DENSE, inp.off, inp.n, out.off, out.n, rows_, n_in, n_o, w_off, b_off)
        elif isinstance(op, (ops.Conv1d, ops.Conv2d)):
            ish, osh = graph.in_shapes[name], graph.out_shapes[name]
            if isinstance(op, ops.Conv1d):
                C, H, W = ish[0], 1, ish[1]
                Co, Ho, Wo = osh[0], 1, osh[1]
                kh, kw = 1, op.weight.shape[2]
                sh, sw, dh, dw = 1, op.stride, 1, op.dilation
                pt, pl = 0, op.padding[0]
                wshape = (Co, C // op.groups, 1, kw)
            else:
                C, H, W = ish
                Co, Ho, Wo = osh
                kh, kw = op.weight.shape[2:]
                (sh, sw), (dh, dw) = op.stride, op.dilation
                pt, pl = op.padding[0], op.padding[2]
                wshape = op.weight.shape
            dims = (C, H, W, Co, kh, kw, sh, sw, pt, pl, dh, dw, op.groups, Ho, Wo)
            acc_size = max(acc_size, out.n)
            if is_int:
                w_off = wbuf.add(np.asarray(q["w"]).reshape(wshape))
                emit(name, E.OP_CONV, inp.off, inp.n, out.off, out.n, *dims, w_off, ipar.add(q["b"]),
                     ipar.add(q["rq_m"]), ipar.add(q["rq_s"]), int(q["identity"]), int(q["wide"]))
            else:
                emit(name, E.OP_CONV, inp.off, inp.n, out.off, out.n, *dims,
                     fpar.add(op.weight.reshape(wshape)), fpar.add(op.bias))
        elif isinstance(op, ops.SumPool2d):  # and AvgPool2d
            (C, H, W), (_, Ho, Wo) = graph.in_shapes[name], graph.out_shapes[name]
            dims = (C, H, W, *op.kernel_size, *op.stride, *op.padding, Ho, Wo)
            if is_int:
                emit(name, E.OP_POOL, inp.off, inp.n, out.off, out.n, *dims, 0, q["m"], q["s"])
            else:
                emit(name, E.OP_POOL, inp.off, inp.n, out.off, out.n, *dims, fpar.add([op.factor()]))
        elif isinstance(op, ops.Scale):
            shape = graph.in_shapes[name]
            if is_int:
                emit(name, E.OP_SCALE, inp.off, inp.n, out.off, out.n, ipar.add(_expand(q["m"], shape)),
                     ipar.add(_expand(q["s"], shape)))
            else:
                emit(name, E.OP_SCALE, inp.off, inp.n, out.off, out.n, fpar.add(_expand(op.scale, shape)))
        elif isinstance(op, ops.Threshold):
            shape = graph.in_shapes[name]
            if is_int:
                emit(name, E.OP_THRESHOLD, inp.off, inp.n, out.off, out.n, ipar.add(_expand(q["th"], shape)))
            else:
                emit(name, E.OP_THRESHOLD, inp.off, inp.n, out.off, out.n, fpar.add(_expand(op.threshold, shape)))
        elif isinstance(op, ops.Delay):
            shape = graph.in_shapes[name]
            steps = _expand(op.steps, shape).astype(np.int64)
            ring_len = (int(steps.max(initial=0)) + 1) * out.n
            ring_off = alloc_act(ring_len)
            emit(name, E.OP_DELAY, inp.off, inp.n, out.off, out.n, ring_off, ipar.add(steps), ring_len)
        elif isinstance(op, ops.Neuron):
            shape = graph.in_shapes[name]
            n = out.n
            s_off = alloc_state(2 * n if op.cuba else n)
            state_regions[name] = (Region(s_off, n, shape), Region(s_off + n, n, shape) if op.cuba else None)
            flags = flags_for(op)
            max_sp = op.max_spikes if op.multispike else 1
            if is_int:
                zeros = np.zeros(n, np.int64)
                flags |= SHIFT_DECAY if q["decay"] == "shift" else 0
                flags |= GSYN_IDENTITY if q.get("gsyn_identity") else 0
                flags |= GMEM_IDENTITY if q.get("gmem_identity") else 0
                info = np.iinfo(sdt)
                get = lambda k: _expand(q[k], shape) if k in q else zeros  # noqa: E731
                emit(name, E.OP_NEURON, inp.off, inp.n, out.off, out.n, s_off, flags, max_sp,
                     ipar.add(get("alpha_m")), ipar.add(get("gsyn_m")), ipar.add(get("beta_m")),
                     ipar.add(get("gmem_m")), ipar.add(get("bias")), ipar.add(get("thr")), ipar.add(get("v_reset")),
                     ipar.add(get("gsyn_s")), ipar.add(get("gmem_s")), int(q["dq"]), int(info.min), int(info.max))
                state_scales[name] = (q["s_v"], q.get("s_i"))
            else:
                e = lambda a: fpar.add(_expand(a, shape) if a is not None else np.zeros(n))  # noqa: E731
                emit(name, E.OP_NEURON, inp.off, inp.n, out.off, out.n, s_off, flags, max_sp,
                     e(op.alpha), e(op.g_syn), e(op.beta), e(op.g_mem), e(op.bias), e(op.threshold), e(op.v_reset))
        else:  # pragma: no cover
            raise ModelError(f"node '{name}': no kernel for node type {op.kind}")

    for name in graph.outputs:
        src = resolve(name)
        if is_int:
            emit(name, E.OP_OUTPUT, src.off, src.n, 0, 0, n_out, fpar.add([scales[name]]))
        else:
            emit(name, E.OP_OUTPUT, src.off, src.n, 0, 0, n_out)
        outputs[name] = (n_out, src.n, graph.in_shapes[name])
        n_out += src.n

    prog = np.stack(rows) if rows else np.zeros((0, E.WIDTH), np.int64)
    return Program(
        precision=precision, prog=np.ascontiguousarray(prog), fpar=fpar.array(), ipar=ipar.array(),
        wbuf=(wbuf.array() if is_int else np.zeros(1, np.float32)), act_size=max(act_size, 1),
        state_size=max(state_size, 1), state_dtype=sdt, act_dtype=adt, acc_size=acc_size, idx_size=idx_size,
        input_name=input_name, input_shape=graph.out_shapes[input_name], outputs=outputs, n_out=n_out,
        out_regions=out_reg, state_regions=state_regions, instr_node=instr_node, scales=scales,
        state_scales=state_scales,
        spiking={n for n, op in nodes.items() if (isinstance(op, ops.Neuron) and op.spiking)
                 or isinstance(op, ops.Threshold)})
