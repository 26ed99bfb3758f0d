"""A TFLite ANN (ReLU MLPs and CNNs) as an ordinary edgebrain graph of integrate-and-fire neurons.

This module reads the layers of a ``.tflite`` file (:mod:`edgebrain.tflite_io`), runs them in NumPy
(float64, from the dequantized weights) and builds the spiking graph from the ops of
:mod:`edgebrain.ops`, as :mod:`edgebrain.nir_io` does for NIR; nothing below it learns that the graph
came from a TFLite file. ``edgebrain convert --to-snn`` (:mod:`edgebrain.apps.convert_snn`) uses it;
docs/conversion.md describes the method and its measured trade-offs.

**Reading** (:func:`read_ann`): the first subgraph's operators, in order, must form a chain. Weights and
biases of int8 models are dequantized first, ``w = (q − zero_point) × scale`` per channel. Supported:

* FULLY_CONNECTED, CONV_2D, DEPTHWISE_CONV_2D with a fused ReLU (or RELU6, or a RELU operator after
  them); the last synaptic layer may be linear (its output is read out as a membrane);
* AVERAGE_POOL_2D without padding; MAX_POOL_2D of a window of 2 along one axis and 1 along the other
  with a stride equal to the window (the convertible form, below), after a ReLU layer;
* RESHAPE, EXPAND_DIMS, SQUEEZE where they flatten before FULLY_CONNECTED or add or drop unit axes (or
  anywhere before the first layer), MEAN over all spatial axes when a FULLY_CONNECTED follows (folded
  into its weights), QUANTIZE and DEQUANTIZE (dropped: the spiking model is fed real values), and a
  SOFTMAX at the end (dropped: it does not change the decision).

Everything else (ADD among them: residual sums are not converted yet) is refused with one line naming the
operator and its index.

**Layout.** edgebrain's shapes are channel-first: a TFLite activation ``(H, W, C)`` is ``(C, H, W)``
here and ``(L, C)`` is ``(C, 1, L)``. The spiking model's input is the TFLite sample after the reshapes
that precede the first layer, channel-first (:meth:`ANN.snn_input` does it; an MLP's ``(F,)`` is
unchanged). Flattening before FULLY_CONNECTED permutes its weight columns from TFLite's ``HWC`` order to
edgebrain's ``CHW``.

**The spiking network** (:func:`build_snn`), after Rueckauer et al. 2017 (data-based normalization,
reset by subtraction): layer *l*'s ReLU becomes integrate-and-fire neurons with threshold 1 and reset by
subtraction, its weights scaled by ``λ_{l−1}/λ_l`` and its bias by ``1/λ_l`` (added every timestep), where
``λ_l`` is the robust maximum (a percentile, 99.9 by default) of the layer's ReLU activations on the
calibration data (``λ`` of the input is 1: the analog input is fed at every step, "direct" coding). A
spike of layer *l* then stands for the value ``λ_l`` and its rate over T steps approximates
``ReLU(W x + b)/λ_l``, within ``1/T`` while below 1. The last layer is an integrator (``I``) whose
membrane after T steps, divided by T, approximates the logits over ``λ_out``; the decision is its argmax.

*Rate coding* (``coding="rate"``) instead turns the input into spikes with a deterministic IF encoder in
the graph: ``x/λ_in`` drives one IF population and ``−x/λ_in`` another, and the first layer's weights
take ``+λ_in`` from the first and ``−λ_in`` from the second (``λ_in``: the percentile of ``|x|``).

*Max pooling* of 2 neighbours is exact in rates: ``max(a, b) = a + ReLU(b − a)``. The pooled signal is
the even neighbour's spikes (folded into the next layer as a stride and dilation of 2) plus the spikes of
an IF population fed ``b − a`` (threshold 1, fires at ``v ≥ 1``), whose count after T steps is
``max(0, max_t Σ (b − a))``: ``max(N_a, N_b)`` plus a transient.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import ops
from .errors import ModelError
from .graph import Graph
from .tflite_io import TFLiteFile

#: the operators :func:`read_ann` converts (each within the forms the module docstring gives)
SUPPORTED = ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "MAX_POOL_2D", "RESHAPE",
             "EXPAND_DIMS", "SQUEEZE", "MEAN", "RELU", "RELU6", "QUANTIZE", "DEQUANTIZE", "SOFTMAX")
#: schema.fbs ActivationFunctionType
_ACT = {0: None, 1: "relu", 2: "relu_n1_to_1", 3: "relu6", 4: "tanh", 5: "sign_bit", 6: "sigmoid"}
CODINGS = ("direct", "rate")
DEFAULT_PERCENTILE = 99.9


@dataclass
class Layer:
    """One layer of the ANN in edgebrain's layout: ``kind`` "dense" (weight (out, in over the
    channel-first flattening of ``in_shape``)), "conv" (weight (C_out, C_in/groups, kH, kW)), "avgpool" or
    "maxpool" (``axis`` 1 or 2 of ``(C, H, W)`` pooled by 2)."""

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
    axis: int = 2
    relu: bool = False
    relu6: bool = False

    @property
    def synaptic(self) -> bool:
        return self.kind in ("dense", "conv")


@dataclass
class ANN:
    """The chain of layers read from a TFLite file, and how its input becomes the spiking model's."""

    path: str
    sample_shape: tuple             #: the TFLite input sample (without batch)
    first_shape: tuple              #: the sample after the reshapes before the first layer (TFLite layout)
    input_shape: tuple              #: the spiking model's input, channel-first
    layers: list = field(default_factory=list)
    quantized: bool = False         #: the file's weights are int8 (dequantized here)
    macs: int = 0                   #: the file's MACs per inference (tflite_io.macs)

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
        """The hidden ReLU layers (the last synaptic layer, ReLU or not, is read out as a membrane)."""
        syn = [ly for ly in self.layers if ly.synaptic]
        return [ly for ly in syn[:-1] if ly.relu]

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, list]:
        """The ANN in NumPy (float64) on spiking-model inputs ``(N, *input_shape)``: (logits, the ReLU
        activations of each ReLU layer, in order)."""
        a = np.asarray(x, np.float64)
        acts = []
        hidden = self.relu_layers
        for ly in self.layers:
            if ly.kind == "dense":
                a = a.reshape(len(a), -1) @ ly.weight.T.astype(np.float64) + ly.bias
            elif ly.kind == "conv":
                a = conv2d(a, ly.weight, ly.bias, ly.stride, ly.padding, ly.dilation, ly.groups)
            elif ly.kind == "avgpool":
                a = conv2d(a, np.full((a.shape[1], 1) + ly.kernel, 1.0 / np.prod(ly.kernel)), np.zeros(a.shape[1]),
                           ly.stride, (0, 0, 0, 0), (1, 1), a.shape[1])
            elif ly.kind == "maxpool":
                n = a.shape[ly.axis + 1] // 2 * 2
                a = np.take(a, range(n), axis=ly.axis + 1)
                a = np.maximum(np.take(a, range(0, n, 2), axis=ly.axis + 1),
                               np.take(a, range(1, n, 2), axis=ly.axis + 1))
            if ly.synaptic and ly.relu:
                a = np.clip(a, 0, 6) if ly.relu6 else np.maximum(a, 0)
                if any(ly is h for h in hidden):
                    acts.append(a)
        return a.reshape(len(a), -1), acts


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
    act = _ACT.get(int(op.options.get("fusedActivationFunction", 0)), "unknown")
    if act in ("relu", "relu6"):
        layer.relu, layer.relu6 = True, act == "relu6"
    elif act is not None:
        raise _refuse(op, f"fused activation {act.upper()}; only ReLU (or RELU6) layers convert to integrate-and-fire "
                      "neurons")


def read_ann(f: TFLiteFile) -> ANN:
    """The layers of the TFLite file ``f`` (module docstring: what is supported), or a
    :class:`ModelError` naming the operator that cannot be converted."""
    if len(f.inputs) != 1 or len(f.outputs) != 1:
        raise ModelError(f"{len(f.inputs)} inputs and {len(f.outputs)} outputs; the conversion takes a model with one "
                         "of each", file=f.path)
    try:
        return _read(f)
    except ModelError as e:
        raise e.with_file(f.path)


def _read(f: TFLiteFile) -> ANN:
    t_in = f.tensors[f.inputs[0]]
    sample = tuple(t_in.shape[1:])
    ann = ANN(f.path, sample, sample, (), quantized=any(t.dtype == "int8" and t.data is not None for t in f.tensors),
              macs=sum(op.macs for op in f.operators))
    cur_t = f.inputs[0]
    logical = sample                       # the TFLite activation shape, without batch
    pending_mean = False
    n_ops = len(f.operators)
    for op in f.operators:
        if not op.inputs or op.inputs[0] != cur_t:
            raise _refuse(op, f"does not read the previous operator's output (tensor {cur_t}): the conversion takes a "
                          "chain of layers (no branches or residual sums)")
        out_t = op.outputs[0]
        out_shape = tuple(f.tensors[out_t].shape[1:])
        consts = [f.tensors[k] for k in op.inputs[1:] if k >= 0]
        name = op.name
        started = bool(ann.layers)
        if name in ("QUANTIZE", "DEQUANTIZE"):
            pass
        elif name in ("RESHAPE", "EXPAND_DIMS", "SQUEEZE"):
            if pending_mean:
                raise _refuse(op, "after MEAN; expected FULLY_CONNECTED")
            if not started:
                ann.first_shape = out_shape
            elif len(out_shape) == 1 and len(logical) > 1:
                pass                                      # a flatten: the next FULLY_CONNECTED permutes its columns
            elif not _same_layout(logical, out_shape):
                raise _refuse(op, f"reshapes {list(logical)} to {list(out_shape)}; the conversion takes reshapes that "
                              "flatten before FULLY_CONNECTED or add or drop unit axes")
            logical = out_shape
        elif name == "MEAN":
            if not started:
                raise _refuse(op, "before any layer; expected it after a convolution")
            axes = np.asarray(consts[0].data).reshape(-1) if consts and consts[0].data is not None else None
            spatial = set(range(1, len(logical)))       # every axis but the channels (TFLite axes count the batch)
            if axes is None or {int(a) % (len(logical) + 1) for a in axes} != spatial or op.options.get("keepDims"):
                raise _refuse(op, f"MEAN over axes {None if axes is None else axes.tolist()} of {list(logical)}; "
                              "the conversion takes a global average over all spatial axes (keep_dims false)")
            pending_mean = True
            logical = out_shape
        elif name == "FULLY_CONNECTED":
            ann.layers.append(_dense(op, f, consts, logical, pending_mean, _cur_phys(ann, logical, pending_mean)))
            pending_mean = False
            logical = out_shape
        elif name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            ann.layers.append(_conv(op, f, consts, logical, _cur_phys(ann, logical, False)))
            logical = out_shape
        elif name in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
            ann.layers.append(_pool(op, ann, logical, _cur_phys(ann, logical, False)))
            logical = out_shape
        elif name in ("RELU", "RELU6"):
            prev = ann.layers[-1] if ann.layers else None
            if prev is None or not prev.synaptic or prev.relu:
                raise _refuse(op, "follows no linear layer; expected it right after FULLY_CONNECTED or a convolution")
            prev.relu, prev.relu6, prev.tensor = True, name == "RELU6", out_t
        elif name == "SOFTMAX" and op.index == n_ops - 1 and float(op.options.get("beta", 1.0)) > 0:
            pass                                          # the argmax of softmax(β·z), β > 0, is z's
        else:
            hint = "; residual sums of two tensors are not converted yet" if name == "ADD" else ""
            raise _refuse(op, f"not supported by the ANN → SNN conversion{hint} (supported: {', '.join(SUPPORTED)})")
        if pending_mean and name != "MEAN":
            raise _refuse(op, "after MEAN; expected FULLY_CONNECTED")
        cur_t = out_t
    syn = [ly for ly in ann.layers if ly.synaptic]
    if not syn:
        raise ModelError("no FULLY_CONNECTED or convolution layer: nothing to convert")
    for ly in syn[:-1]:
        if not ly.relu:
            raise ModelError(f"operator {ly.index} {ly.op} has no ReLU (fused activation NONE); every layer but the "
                             "last must end in a ReLU to become integrate-and-fire neurons")
    if ann.layers[-1] is not syn[-1]:
        raise _refuse(f.operators[ann.layers[-1].index], "pooling after the last linear layer; expected the model to "
                      "end in FULLY_CONNECTED or a convolution")
    ann.input_shape = ann.layers[0].in_shape
    return ann


def _cur_phys(ann: ANN, logical: tuple, mean: bool) -> tuple:
    if mean:
        return ann.layers[-1].out_shape if ann.layers else _chw(logical)
    if ann.layers:
        return ann.layers[-1].out_shape
    return _chw(logical)


def _dense(op, f, consts, logical, mean, phys) -> Layer:
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


def _conv(op, f, consts, logical, phys) -> Layer:
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


def _pool(op, ann: ANN, logical, phys) -> Layer:
    if len(phys) != 3:
        raise _refuse(op, f"an input of shape {list(logical)}; expected (H, W, C)")
    o = op.options
    k = (int(o.get("filterHeight", 1)), int(o.get("filterWidth", 1)))
    s = (int(o.get("strideH", 1)), int(o.get("strideW", 1)))
    if _ACT.get(int(o.get("fusedActivationFunction", 0))) is not None:
        raise _refuse(op, "a fused activation after pooling; expected none")
    C, H, W = phys
    if _pads(op, H, k[0], s[0], 1) != (0, 0) or _pads(op, W, k[1], s[1], 1) != (0, 0):
        raise _refuse(op, "SAME padding that pads; expected VALID pooling (TFLite's padded average excludes the "
                      "padding, which a spiking pool cannot)")
    if op.name == "AVERAGE_POOL_2D":
        out = ops.AvgPool2d(kernel_size=k, stride=s).out_shape(phys)
        return Layer("avgpool", op.index, op.name, op.outputs[0], phys, out, kernel=k, stride=s)
    if sorted(k) != [1, 2] or tuple(s) != tuple(k):
        raise _refuse(op, f"a {k[0]}×{k[1]} window with stride {s[0]}×{s[1]} is not convertible to spikes; the "
                      "conversion takes a max over 2 neighbours along one axis (window and stride 1×2 or 2×1)")
    prev = ann.layers[-1] if ann.layers else None
    if prev is None or not (prev.synaptic and prev.relu):
        raise _refuse(op, "max pooling not right after a ReLU layer; only the max of spike rates converts")
    axis = 2 if k == (1, 2) else 1
    out = (C, H // 2, W) if axis == 1 else (C, H, W // 2)
    return Layer("maxpool", op.index, op.name, op.outputs[0], phys, out, kernel=k, stride=s, axis=axis)


# --------------------------------------------------------------------------- the spiking graph


def build_snn(ann: ANN, lambdas: list, coding: str = "direct", input_lambda: float = 1.0,
              output_lambda: float = 1.0) -> Graph:
    """The spiking graph of ``ann`` (module docstring): ``lambdas``, one per ReLU layer (the activation
    scale its spikes stand for), ``input_lambda`` (rate coding: the scale of ``|x|``), ``output_lambda``
    (the logits' scale, the readout divided by it). Node names: ``if<k>`` for the ReLU layers' neurons,
    ``fc<k>``/``conv<k>`` for their synapses, ``readout`` for the output integrator."""
    if coding not in CODINGS:
        raise ModelError(f"input coding '{coding}'; expected one of {', '.join(CODINGS)}")
    relus = ann.relu_layers
    if len(lambdas) != len(relus) or not all(np.isfinite(v) and v > 0 for v in lambdas):
        raise ModelError(f"{len(lambdas)} threshold scales for {len(relus)} ReLU layers; expected one > 0 each")
    g = Graph()
    g.add("input", ops.Input(shape=ann.input_shape))
    # the current signal: a sum over sources (node, value of one unit, even-selection axis or None, shape)
    if coding == "direct":
        sources = [("input", 1.0, None, ann.input_shape)]
    else:
        for sign, name in ((1.0, "enc_pos"), (-1.0, "enc_neg")):
            g.add(f"{name}_scale", ops.Scale(scale=np.float32(sign / input_lambda)))
            g.add(name, ops.IF(threshold=1.0, reset="subtract"))
            g.connect("input", f"{name}_scale")
            g.connect(f"{name}_scale", name)
        sources = [("enc_pos", input_lambda, None, ann.input_shape), ("enc_neg", -input_lambda, None, ann.input_shape)]
    k_relu = 0
    syn = [ly for ly in ann.layers if ly.synaptic]
    for k, ly in enumerate(ann.layers):
        if ly.kind == "maxpool":
            (src, fac, _, shape), = sources
            C = ly.in_shape[0]
            kern = np.zeros((C, 1) + ly.kernel, np.float32)
            kern[..., 0, 0], kern[..., -1, -1] = -1.0, 1.0     # b − a: the odd neighbour minus the even one
            g.add(f"pool{k}_diff", ops.Conv2d(weight=kern, bias=np.zeros(C), stride=ly.kernel, groups=C))
            g.add(f"pool{k}", ops.IF(threshold=1.0, reset="subtract", threshold_ge=True))
            g.connect(src, f"pool{k}_diff")
            g.connect(f"pool{k}_diff", f"pool{k}")
            sources = [(src, fac, ly.axis, shape), (f"pool{k}", fac, None, ly.out_shape)]
            continue
        if ly.kind == "avgpool":
            if len(sources) != 1 or sources[0][2] is not None:
                raise ModelError(f"operator {ly.index} {ly.op}: average pooling after max pooling or rate coding is "
                                 "not converted", file=ann.path)
            g.add(f"avgpool{k}", ops.AvgPool2d(kernel_size=ly.kernel, stride=ly.stride))
            g.connect(sources[0][0], f"avgpool{k}")
            sources = [(f"avgpool{k}", sources[0][1], None, ly.out_shape)]
            continue
        hidden = ly is not syn[-1]
        lam = lambdas[k_relu] if hidden else output_lambda
        target = f"if{k_relu}" if hidden else "readout"
        g.add(target, ops.IF(threshold=1.0, reset="subtract") if hidden else ops.I())
        for j, (src, fac, sel, shape) in enumerate(sources):
            name = f"{'fc' if ly.kind == 'dense' else 'conv'}{k}" + (f"_{j}" if len(sources) > 1 else "")
            g.add(name, _synapse(ly, fac / lam, None if j else ly.bias / lam, sel, shape, ann.path))
            if ly.kind == "dense" and len(shape) > 1:
                g.add(f"{name}_flat", ops.Flatten())
                g.connect(src, f"{name}_flat")
                g.connect(f"{name}_flat", name)
            else:
                g.connect(src, name)
            g.connect(name, target)
        if not hidden:
            g.add("output", ops.Output())
            g.connect(target, "output")
            break
        sources = [(target, lam, None, ly.out_shape)]
        k_relu += 1
    g.prepare()
    return g


def _synapse(ly: Layer, gain: float, bias, sel, shape: tuple, path: str) -> ops.Op:
    """The synaptic op of layer ``ly`` reading a source of ``shape`` (``sel``: only the even neighbours of
    the source along that axis, folded in as stride and dilation 2), weights × ``gain``, with ``bias``
    (or none)."""
    w = ly.weight * np.float32(gain)
    if ly.kind == "conv":
        stride, dil, pad = list(ly.stride), list(ly.dilation), list(ly.padding)
        if sel is not None:
            a = sel - 1
            stride[a] *= 2
            dil[a] *= 2
            pad[2 * a] *= 2
            pad[2 * a + 1] *= 2
        b = np.zeros(w.shape[0], np.float32) if bias is None else bias
        op = ops.Conv2d(weight=w, bias=b, stride=tuple(stride), padding=tuple(pad), dilation=tuple(dil),
                        groups=ly.groups)
        if op.out_shape(shape) != ly.out_shape:
            raise ModelError(f"operator {ly.index} {ly.op} after MAX_POOL_2D over an odd length: the pooled "
                             "neighbours do not fold into it", file=path)
        return op
    if sel is not None:                                   # scatter the pooled columns onto the even neighbours
        wf = np.zeros((w.shape[0],) + tuple(shape), np.float32)
        idx = [slice(None)] * 4
        n = ly.in_shape[sel] * 2
        idx[sel + 1] = slice(0, n, 2)
        wf[tuple(idx)] = w.reshape((w.shape[0],) + tuple(ly.in_shape))
        w = wf.reshape(w.shape[0], -1)
    return ops.Affine(weight=w, bias=np.zeros(w.shape[0], np.float32) if bias is None else bias)
