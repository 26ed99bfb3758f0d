"""The layers of a TFLite ANN (ReLU MLPs and CNNs, with residual sums) in edgebrain's layout, and their
NumPy forward pass: what :mod:`edgebrain.tflite_convert` turns into a spiking graph.

**Reading** (:func:`read_ann`): the first subgraph's operators, in order, form a directed acyclic graph
of layers: each reads the model's input or tensors earlier operators wrote. Weights and biases of int8
models are dequantized first, ``w = (q − zero_point) × scale`` per channel. Supported:

* FULLY_CONNECTED, CONV_2D, DEPTHWISE_CONV_2D with a fused ReLU (or RELU6, or a RELU operator after
  them); a layer without ReLU only where its output is summed by an ADD or is the model's output;
* ADD of two tensors of the same shape (a residual sum: a skip connection around a block), with or
  without a fused ReLU;
* AVERAGE_POOL_2D without padding; MAX_POOL_2D of windows of 2 along one or both axes (1 along the
  other) with a stride equal to the window (the convertible form: docs/conversion.md), right after a ReLU
  layer;
* RESHAPE, EXPAND_DIMS, SQUEEZE where they flatten before FULLY_CONNECTED or add or drop unit axes (or
  anywhere on the model's input), MEAN over all spatial axes when a FULLY_CONNECTED follows (folded
  into its weights), QUANTIZE and DEQUANTIZE (dropped: the spiking model is fed real values), and a
  SOFTMAX at the end (dropped: it does not change the decision).

Everything else is refused with one line naming the operator and its index.

**Layout.** edgebrain's shapes are channel-first: a TFLite activation ``(H, W, C)`` is ``(C, H, W)``
here and ``(L, C)`` is ``(C, 1, L)``. The spiking model's input is the TFLite sample after the reshapes
that precede the first layer, channel-first (:meth:`ANN.snn_input`; an MLP's ``(F,)`` is unchanged).
Flattening before FULLY_CONNECTED permutes its weight columns from TFLite's ``HWC`` order to
edgebrain's ``CHW``.

**What each layer becomes** (:attr:`Layer.rep`): ``"pop"``, a population of integrate-and-fire neurons
(a hidden ReLU layer, or a ReLU'd ADD one of whose terms can be negative); ``"lin"``, a linear value
that is not materialized by itself but projected into whatever sums it (a layer without ReLU feeding
an ADD, and the last layer, read out as a membrane); ``"src"``, a value that is a sum of spike trains
already in the graph (pooling of spikes, an ADD of non-negative spike trains, whose ReLU is the
identity).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import ops
from .errors import ModelError
from .tflite_io import TFLiteFile

#: the operators :func:`read_ann` converts (each within the forms the module docstring gives)
SUPPORTED = ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "AVERAGE_POOL_2D", "MAX_POOL_2D",
             "RESHAPE", "EXPAND_DIMS", "SQUEEZE", "MEAN", "RELU", "RELU6", "QUANTIZE", "DEQUANTIZE", "SOFTMAX")
#: schema.fbs ActivationFunctionType
ACTIVATIONS = {0: None, 1: "relu", 2: "relu_n1_to_1", 3: "relu6", 4: "tanh", 5: "sign_bit", 6: "sigmoid"}
#: the value of :attr:`Layer.srcs` that stands for the model's input
INPUT = -1


@dataclass
class Layer:
    """One layer of the ANN in edgebrain's layout: ``kind`` "dense" (weight (out, in over the
    channel-first flattening of ``in_shape``)), "conv" (weight (C_out, C_in/groups, kH, kW)), "avgpool",
    "maxpool" (``axes`` of ``(C, H, W)`` pooled by 2) or "add" (the sum of its two sources)."""

    kind: str
    index: int                      #: the TFLite operator's index
    op: str                         #: its name
    tensor: int                     #: its output tensor (the ReLU activation, for ReLU layers)
    in_shape: tuple
    out_shape: tuple
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None
    stride: tuple = (1, 1)
    padding: tuple = (0, 0, 0, 0)
    dilation: tuple = (1, 1)
    groups: int = 1
    kernel: tuple = (1, 1)
    axes: tuple = ()                #: maxpool: the axes of (C, H, W) pooled by 2 (1, 2 or both)
    relu: bool = False
    relu6: bool = False
    srcs: tuple = (INPUT,)          #: the layers it reads (indices into ANN.layers; INPUT: the model's input)
    rep: str = ""                   #: "pop", "lin" or "src" (module docstring)
    nonneg: bool = False            #: its values are >= 0 (spike trains)

    @property
    def synaptic(self) -> bool:
        return self.kind in ("dense", "conv")


@dataclass
class ANN:
    """The layers read from a TFLite file, in the file's order, and how its input becomes the spiking model's."""

    path: str
    sample_shape: tuple             #: the TFLite input sample (without batch)
    first_shape: tuple              #: the sample after the reshapes before the first layer (TFLite layout)
    input_shape: tuple              #: the spiking model's input, channel-first
    layers: list = field(default_factory=list)
    quantized: bool = False         #: the file's weights are int8 (dequantized here)
    macs: int = 0                   #: the file's MACs per inference (tflite_io.macs)
    output: int = -1                #: the layer whose value is the model's output

    def snn_input(self, xs: np.ndarray) -> np.ndarray:
        """TFLite samples ``(N, *sample_shape)`` as the spiking model's input ``(N, *input_shape)``."""
        xs = np.asarray(xs)
        x = xs.reshape((len(xs),) + tuple(self.first_shape))
        if x.ndim == 3:
            x = x[:, None]                         # (L, C) → (1, L, C)
        if x.ndim == 4:
            x = x.transpose(0, 3, 1, 2)            # (H, W, C) → (C, H, W)
        return np.ascontiguousarray(x.reshape((len(xs),) + tuple(self.input_shape)), dtype=np.float32)

    @property
    def relu_layers(self) -> list:
        """The layers that become integrate-and-fire populations, in order (one threshold each)."""
        return [ly for ly in self.layers if ly.rep == "pop"]

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, list]:
        """The ANN in NumPy (float64) on spiking-model inputs ``(N, *input_shape)``: (logits, the ReLU
        activations of each layer of :attr:`relu_layers`, in order)."""
        vals = {INPUT: np.asarray(x, np.float64)}
        acts = []
        for k, ly in enumerate(self.layers):
            a = vals[ly.srcs[0]]
            if ly.kind == "dense":
                a = a.reshape(len(a), -1) @ ly.weight.T.astype(np.float64) + ly.bias
            elif ly.kind == "conv":
                a = conv2d(a, ly.weight, ly.bias, ly.stride, ly.padding, ly.dilation, ly.groups)
            elif ly.kind == "avgpool":
                a = conv2d(a, np.full((a.shape[1], 1) + ly.kernel, 1.0 / np.prod(ly.kernel)), np.zeros(a.shape[1]),
                           ly.stride, (0, 0, 0, 0), (1, 1), a.shape[1])
            elif ly.kind == "maxpool":
                for ax in ly.axes:
                    n = a.shape[ax + 1] // 2 * 2
                    a = np.maximum(np.take(a, range(0, n, 2), axis=ax + 1), np.take(a, range(1, n, 2), axis=ax + 1))
            elif ly.kind == "add":
                a = a + vals[ly.srcs[1]]
            if ly.relu:
                a = np.clip(a, 0, 6) if ly.relu6 else np.maximum(a, 0)
            if ly.rep == "pop":
                acts.append(a)
            vals[k] = a
        out = vals[self.output]
        return out.reshape(len(out), -1), acts


def conv2d(x, w, b, stride, padding, dilation, groups) -> np.ndarray:
    """y[n, co, i, j] = b[co] + Σ w[co, ci, ki, kj] x_pad[n, g·cpg + ci, i·sh + ki·dh, j·sw + kj·dw] (float64),
    x (N, C, H, W), padding (top, bottom, left, right): edgebrain's Conv2d, for the NumPy reference."""
    x = np.pad(np.asarray(x, np.float64), ((0, 0), (0, 0), padding[:2], padding[2:]))
    w = np.asarray(w, np.float64)
    co, cpg, kh, kw = w.shape
    sh, sw = stride
    dh, dw = dilation
    ho = (x.shape[2] - dh * (kh - 1) - 1) // sh + 1
    wo = (x.shape[3] - dw * (kw - 1) - 1) // sw + 1
    y = np.zeros((x.shape[0], co, ho, wo))
    opg = co // groups
    for g in range(groups):
        xg = x[:, g * cpg:(g + 1) * cpg]
        wg = w[g * opg:(g + 1) * opg]
        for i in range(kh):
            for j in range(kw):
                patch = xg[:, :, i * dh:i * dh + sh * (ho - 1) + 1:sh, j * dw:j * dw + sw * (wo - 1) + 1:sw]
                y[:, g * opg:(g + 1) * opg] += np.einsum("nchw,oc->nohw", patch, wg[:, :, i, j])
    return y + np.asarray(b, np.float64)[None, :, None, None]


# --------------------------------------------------------------------------- reading


def _refuse(op, why: str) -> ModelError:
    return ModelError(f"operator {op.index} {op.name}: {why}")


def _dequantize(t) -> np.ndarray:
    """A constant tensor's real values: float as stored, integers (q − zero_point) × scale along its
    quantized dimension (per channel) or per tensor."""
    d = np.asarray(t.data)
    if t.dtype.startswith("float"):
        return d.astype(np.float32)
    if not t.scale.size:
        raise ModelError(f"tensor {t.index} '{t.name}' holds {t.dtype} weights without a scale; expected a "
                         "quantized tensor (scale and zero point)")
    shape = [1] * d.ndim
    if t.scale.size > 1:
        shape[t.quantized_dimension] = t.scale.size
    s = t.scale.astype(np.float64).reshape(shape)
    z = t.zero_point.astype(np.float64) if t.zero_point.size else np.zeros(1)
    z = z.reshape(shape if z.size > 1 else [1] * d.ndim)
    return ((d.astype(np.float64) - z) * s).astype(np.float32)


def _chw(shape: tuple) -> tuple:
    """A TFLite activation's batch-free shape as edgebrain's: (H, W, C) → (C, H, W), (L, C) → (C, 1, L)."""
    if len(shape) == 3:
        return (shape[2], shape[0], shape[1])
    if len(shape) == 2:
        return (shape[1], 1, shape[0])
    if len(shape) == 1:
        return tuple(shape)
    raise ModelError(f"an activation of shape {list(shape)}; expected 1 to 3 axes besides the batch")


def _unbatched(full, before: tuple) -> tuple:
    """A reshape's output shape without the batch axis: its first axis when that is 1 and the rest holds
    the values (the usual case), else the whole shape (TensorFlow's converter squeezes ``(1, N)`` to
    ``(N,)`` before an ADD, which broadcasts it back)."""
    full, n = tuple(int(d) for d in full), int(np.prod(before))
    return full[1:] if full and full[0] == 1 and int(np.prod(full[1:])) == n else full


def _same_layout(a: tuple, b: tuple) -> bool:
    """Whether two TFLite shapes are one activation with unit axes added or dropped (no data moves)."""
    return [s for s in a if s != 1] == [s for s in b if s != 1] and _chw_key(a) == _chw_key(b)


def _chw_key(shape):
    try:
        return [s for s in _chw(tuple(shape)) if s != 1]
    except ModelError:
        return None


def _pads(op, size: int, k: int, stride: int, dil: int) -> tuple:
    if op.options.get("padding", 1) == 1:            # VALID
        return (0, 0)
    out = -(-size // stride)
    total = max((out - 1) * stride + dil * (k - 1) + 1 - size, 0)
    return (total // 2, total - total // 2)


def _activation(op, layer: Layer) -> None:
    act = ACTIVATIONS.get(int(op.options.get("fusedActivationFunction", 0)), "unknown")
    if act in ("relu", "relu6"):
        layer.relu, layer.relu6 = True, act == "relu6"
    elif act is not None:
        raise _refuse(op, f"fused activation {act.upper()}; only ReLU (or RELU6) layers convert to integrate-and-fire "
                      "neurons")


@dataclass
class _Value:
    """A tensor as the reader sees it: the layer whose value it holds (INPUT: the model's input), its
    TFLite shape (without batch), and whether a MEAN waits to be folded into the next FULLY_CONNECTED."""

    src: int
    logical: tuple
    mean: bool = False


def read_ann(f: TFLiteFile) -> ANN:
    """The layers of the TFLite file ``f`` (module docstring: what is supported), or a
    :class:`ModelError` naming the operator that cannot be converted."""
    if len(f.inputs) != 1 or len(f.outputs) != 1:
        raise ModelError(f"{len(f.inputs)} inputs and {len(f.outputs)} outputs; the conversion takes a model with one "
                         "of each", file=f.path)
    try:
        return _Reader(f).read()
    except ModelError as e:
        raise e.with_file(f.path)


class _Reader:
    def __init__(self, f: TFLiteFile):
        self.f = f
        sample = tuple(f.tensors[f.inputs[0]].shape[1:])
        self.ann = ANN(f.path, sample, sample, (), macs=sum(op.macs for op in f.operators),
                       quantized=any(t.dtype == "int8" and t.data is not None for t in f.tensors))
        self.vals = {f.inputs[0]: _Value(INPUT, sample)}
        self.first = None                             # the input's TFLite shape where a layer first reads it
        self.readers: dict = {}                       # layer → how many operators read its value

    def phys(self, v: _Value, op) -> tuple:
        """The channel-first shape of the value ``v`` holds (the input: its shape where layers read it)."""
        if v.src != INPUT:
            return self.ann.layers[v.src].out_shape
        if self.first is not None and tuple(v.logical) != tuple(self.first):
            raise _refuse(op, f"reads the model's input as {list(v.logical)}, another layer read it as "
                          f"{list(self.first)}; expected one layout of the input")
        self.first = tuple(v.logical)
        return _chw(self.first)

    def add(self, layer: Layer, op, v: _Value) -> None:
        if layer.kind != "add":
            layer.srcs = (v.src,)
        self.ann.layers.append(layer)
        self.vals[op.outputs[0]] = _Value(len(self.ann.layers) - 1, tuple(self.f.tensors[op.outputs[0]].shape[1:]))

    def read(self) -> ANN:
        f, ann, vals = self.f, self.ann, self.vals
        n_ops = len(f.operators)
        for op in f.operators:
            name = op.name
            n_data = 2 if name == "ADD" else 1
            data = list(op.inputs[:n_data])
            if len(data) < n_data or any(t not in vals for t in data):
                if name == "ADD":
                    raise _refuse(op, "adds a tensor no converted operator wrote (a constant?); the conversion takes "
                                  "the sum of two activations (a residual connection)")
                raise _refuse(op, f"reads tensor {data[0] if data else None}, which is neither the model's input nor "
                              "written by an operator the conversion took")
            v = vals[data[0]]
            for t in data:
                if vals[t].src != INPUT:
                    self.readers[vals[t].src] = self.readers.get(vals[t].src, 0) + 1
            if v.mean and name != "FULLY_CONNECTED":
                raise _refuse(op, "after MEAN; expected FULLY_CONNECTED")
            out_t = op.outputs[0]
            out_shape = tuple(f.tensors[out_t].shape[1:])
            consts = [f.tensors[k] for k in op.inputs[1:] if k >= 0]
            if name in ("QUANTIZE", "DEQUANTIZE"):
                vals[out_t] = _Value(v.src, v.logical, v.mean)
            elif name in ("RESHAPE", "EXPAND_DIMS", "SQUEEZE"):
                out_shape = _unbatched(f.tensors[out_t].shape, v.logical)
                if v.src != INPUT and not (len(out_shape) == 1 and len(v.logical) > 1) \
                        and not _same_layout(v.logical, out_shape):
                    raise _refuse(op, f"reshapes {list(v.logical)} to {list(out_shape)}; the conversion takes reshapes "
                                  "that flatten before FULLY_CONNECTED or add or drop unit axes")
                vals[out_t] = _Value(v.src, out_shape)
            elif name == "MEAN":
                self.mean(op, v, consts, out_t, out_shape)
            elif name == "FULLY_CONNECTED":
                self.add(_dense(op, consts, v.logical, v.mean, self.phys(v, op)), op, v)
            elif name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
                self.add(_conv(op, consts, v.logical, self.phys(v, op)), op, v)
            elif name in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
                self.add(_pool(op, ann, v, self.phys(v, op)), op, v)
            elif name == "ADD":
                self.add(self.sum(op, v, vals[data[1]]), op, v)
            elif name in ("RELU", "RELU6"):
                prev = ann.layers[v.src] if v.src != INPUT else None
                if prev is None or prev.kind not in ("dense", "conv", "add") or prev.relu \
                        or self.readers.get(v.src, 0) != 1:
                    raise _refuse(op, "follows no linear layer; expected it right after FULLY_CONNECTED, a "
                                  "convolution or ADD (and the only reader of its output)")
                prev.relu, prev.relu6, prev.tensor = True, name == "RELU6", out_t
                self.readers[v.src] = 0
                vals[out_t] = _Value(v.src, out_shape)
            elif name == "SOFTMAX" and op.index == n_ops - 1 and float(op.options.get("beta", 1.0)) > 0:
                vals[out_t] = v                               # the argmax of softmax(β·z), β > 0, is z's
            else:
                raise _refuse(op, f"not supported by the ANN → SNN conversion (supported: {', '.join(SUPPORTED)})")
        out = vals.get(f.outputs[0])
        if not any(ly.synaptic for ly in ann.layers):
            raise ModelError("no FULLY_CONNECTED or convolution layer: nothing to convert")
        if out is None or out.src == INPUT:
            raise ModelError(f"the model's output (tensor {f.outputs[0]}) is not the value of a layer the conversion "
                             "took")
        ann.output = out.src
        self.classify()
        ann.first_shape = self.first if self.first is not None else ann.sample_shape
        ann.input_shape = _chw(ann.first_shape)
        return ann

    def mean(self, op, v: _Value, consts, out_t, out_shape) -> None:
        if v.src == INPUT:
            raise _refuse(op, "before any layer; expected it after a convolution")
        axes = np.asarray(consts[0].data).reshape(-1) if consts and consts[0].data is not None else None
        spatial = set(range(1, len(v.logical)))     # every axis but the channels (TFLite axes count the batch)
        if axes is None or {int(a) % (len(v.logical) + 1) for a in axes} != spatial or op.options.get("keepDims"):
            raise _refuse(op, f"MEAN over axes {None if axes is None else axes.tolist()} of {list(v.logical)}; "
                          "the conversion takes a global average over all spatial axes (keep_dims false)")
        self.vals[out_t] = _Value(v.src, out_shape, True)

    def sum(self, op, a: _Value, b: _Value) -> Layer:
        pa, pb = self.phys(a, op), self.phys(b, op)
        if tuple(a.logical) != tuple(b.logical) or pa != pb:
            raise _refuse(op, f"adds tensors of shapes {list(a.logical)} and {list(b.logical)}; the conversion takes "
                          "the sum of two activations of the same shape (no broadcasting)")
        ly = Layer("add", op.index, op.name, op.outputs[0], pa, pa, srcs=(a.src, b.src))
        _activation(op, ly)
        return ly

    def classify(self) -> None:
        """Each layer's :attr:`Layer.rep` (module docstring), or the refusal of a layer whose value cannot be
        spikes or a sum of them where it is read."""
        ann, f = self.ann, self.f
        layers = ann.layers

        def rep(s):
            return "src" if s == INPUT else layers[s].rep

        def nonneg(s):
            return s != INPUT and layers[s].nonneg

        for k, ly in enumerate(layers):
            final = k == ann.output
            if k > ann.output or (not final and not self.readers.get(k)):
                raise _refuse(f.operators[ly.index], "its output is not used by the model's output")
            for s in ly.srcs:
                if rep(s) == "lin" and ly.kind != "add":
                    src = layers[s]
                    raise ModelError(f"operator {src.index} {src.op} has no ReLU (fused activation NONE); every layer "
                                     "but the last must end in a ReLU to become integrate-and-fire neurons (or feed "
                                     "an ADD)")
            if ly.synaptic:
                ly.rep = "lin" if final or not ly.relu else "pop"
            elif ly.kind == "maxpool":
                if rep(ly.srcs[0]) != "pop":
                    raise _refuse(f.operators[ly.index], "max pooling not right after a ReLU layer; only the max of "
                                  "spike rates converts")
                ly.rep = "src"
            elif ly.kind == "avgpool":
                ly.rep = "src"
            else:                                                 # add
                terms = [rep(s) for s in ly.srcs]
                all_spikes = all(nonneg(s) for s in ly.srcs)
                if final or (not ly.relu and "lin" in terms):
                    ly.rep = "lin"
                elif ly.relu and (ly.relu6 or not all_spikes):
                    ly.rep = "pop"
                else:
                    ly.rep = "src"
            ly.nonneg = ly.rep == "pop" or (ly.rep == "src" and all(nonneg(s) for s in ly.srcs))
            if final and not (ly.synaptic or ly.kind == "add"):
                raise _refuse(f.operators[ly.index], "pooling after the last linear layer; expected the model to end "
                              "in FULLY_CONNECTED, a convolution or ADD")


def _dense(op, consts, logical, mean, phys) -> Layer:
    if len(consts) < 1 or consts[0].data is None:
        raise _refuse(op, "weights are not a constant tensor")
    w = _dequantize(consts[0])                       # (units, features of the TFLite activation)
    b = _dequantize(consts[1]) if len(consts) > 1 and consts[1].data is not None else np.zeros(w.shape[0], np.float32)
    if int(op.options.get("weightsFormat", 0)) != 0:
        raise _refuse(op, "shuffled weights; expected the default format")
    n_phys = int(np.prod(phys))
    if mean:                                         # global average folded in: W'[o, c, pos] = W[o, c] / positions
        c = phys[0]
        pos = n_phys // c
        if w.shape[1] != c:
            raise _refuse(op, f"{w.shape[1]} input features after MEAN over {list(phys)} (channel-first)")
        wp = np.repeat(w[:, :, None] / pos, pos, axis=2).reshape(w.shape[0], n_phys)
    elif len(phys) == 1:
        wp = w
    else:                                            # TFLite flattens (H, W, C); edgebrain (C, H, W)
        if w.shape[1] != n_phys:
            raise _refuse(op, f"{w.shape[1]} input features; its input {list(logical)} has {n_phys}")
        C, H, W = phys
        wp = w.reshape(w.shape[0], H, W, C).transpose(0, 3, 1, 2).reshape(w.shape[0], n_phys)
    if wp.shape[1] != n_phys:
        raise _refuse(op, f"weights of shape {list(w.shape)} for an input of {n_phys} features")
    ly = Layer("dense", op.index, op.name, op.outputs[0], phys, (w.shape[0],), wp.astype(np.float32),
               b.astype(np.float32))
    _activation(op, ly)
    return ly


def _conv(op, consts, logical, phys) -> Layer:
    if len(phys) != 3:
        raise _refuse(op, f"an input of shape {list(logical)}; expected (H, W, C)")
    if len(consts) < 1 or consts[0].data is None:
        raise _refuse(op, "weights are not a constant tensor")
    w = _dequantize(consts[0])
    b = _dequantize(consts[1]) if len(consts) > 1 and consts[1].data is not None else None
    C, H, W = phys
    o = op.options
    stride = (int(o.get("strideH", 1)), int(o.get("strideW", 1)))
    dil = (int(o.get("dilationHFactor", 1)), int(o.get("dilationWFactor", 1)))
    if op.name == "CONV_2D":
        weight, groups = w.transpose(0, 3, 1, 2), 1        # (cout, kh, kw, cin) → (cout, cin, kh, kw)
        if weight.shape[1] != C:
            raise _refuse(op, f"weights for {weight.shape[1]} input channels; its input has {C}")
    else:
        mult = int(o.get("depthMultiplier", 1)) or 1
        weight, groups = w[0].transpose(2, 0, 1)[:, None], C   # (1, kh, kw, C·mult) → (C·mult, 1, kh, kw)
        if weight.shape[0] != C * mult:
            raise _refuse(op, f"{weight.shape[0]} output channels; expected {C} × depth multiplier {mult}")
    kh, kw = weight.shape[2:]
    pad = _pads(op, H, kh, stride[0], dil[0]) + _pads(op, W, kw, stride[1], dil[1])
    cout = weight.shape[0]
    bias = np.zeros(cout, np.float32) if b is None else b
    out = ops.Conv2d(weight=weight, bias=bias, stride=stride, padding=pad, dilation=dil, groups=groups).out_shape(phys)
    ly = Layer("conv", op.index, op.name, op.outputs[0], phys, out, np.ascontiguousarray(weight, np.float32),
               bias.astype(np.float32), stride, pad, dil, groups)
    _activation(op, ly)
    return ly


def _pool(op, ann: ANN, v: _Value, phys) -> Layer:
    if len(phys) != 3:
        raise _refuse(op, f"an input of shape {list(v.logical)}; expected (H, W, C)")
    o = op.options
    k = (int(o.get("filterHeight", 1)), int(o.get("filterWidth", 1)))
    s = (int(o.get("strideH", 1)), int(o.get("strideW", 1)))
    if ACTIVATIONS.get(int(o.get("fusedActivationFunction", 0))) is not None:
        raise _refuse(op, "a fused activation after pooling; expected none")
    C, H, W = phys
    if _pads(op, H, k[0], s[0], 1) != (0, 0) or _pads(op, W, k[1], s[1], 1) != (0, 0):
        raise _refuse(op, "SAME padding that pads; expected VALID pooling (TFLite's padded average excludes the "
                      "padding, which a spiking pool cannot)")
    if op.name == "AVERAGE_POOL_2D":
        out = ops.AvgPool2d(kernel_size=k, stride=s).out_shape(phys)
        return Layer("avgpool", op.index, op.name, op.outputs[0], phys, out, kernel=k, stride=s)
    axes = tuple(a + 1 for a in range(2) if k[a] == 2)
    if not axes or any(kk not in (1, 2) for kk in k) or tuple(s) != tuple(k):
        raise _refuse(op, f"a {k[0]}×{k[1]} window with stride {s[0]}×{s[1]} is not convertible to spikes; the "
                      "conversion takes windows of 2 with stride 2 along one or both axes (max(a, b) = a + "
                      "ReLU(b − a) is exact in spike counts for two neighbours, applied per axis); wider or "
                      "overlapping windows have no such form here")
    out = (C, H // 2 if 1 in axes else H, W // 2 if 2 in axes else W)
    return Layer("maxpool", op.index, op.name, op.outputs[0], phys, out, kernel=k, stride=s, axes=axes)
