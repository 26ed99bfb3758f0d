"""The node types of an edgebrain graph, one small dataclass each.

These are NIR's primitives in *discrete time*: an importer turns NIR's continuous-time
parameters (tau, r, v_leak, ...) into the per-step constants below, using an explicit
timestep and the exporting framework's convention (see :mod:`edgebrain.dialects`).
The runtime only ever sees these discrete equations, so it does not know or care which
importer built the graph.

Shapes exclude the batch dimension and are channel-first, as in NIR. Array parameters of
neuron nodes are per neuron: any shape that broadcasts to the node's shape.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from .errors import ModelError

Shape = tuple[int, ...]


def _arr(x, dtype=np.float32) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(x, dtype=dtype))


@dataclass(eq=False)
class Op:
    """Base class. ``kind`` is the type name stored in model files."""

    kind: ClassVar[str] = "Op"
    #: array-valued fields (stored as buffers in model files)
    array_fields: ClassVar[tuple[str, ...]] = ()
    #: True when the node keeps state between timesteps
    stateful: ClassVar[bool] = False

    @property
    def breaks_loops(self) -> bool:
        """True when every element of the output depends only on earlier timesteps' inputs or on
        state, so that a recurrent loop through this node has a defined value within a step."""
        return self.stateful

    def out_shape(self, in_shape: Shape) -> Shape:
        return in_shape

    def check(self, in_shape: Shape) -> None:
        """Raise ModelError (without node name; the graph adds it) if parameters are bad."""
        for name in self.array_fields:
            a = getattr(self, name)
            if a is not None and a.dtype.kind == "f" and not np.all(np.isfinite(a)):
                raise ModelError(f"field '{name}' contains NaN or infinite values; expected finite numbers")

    def attrs(self) -> dict:
        """The non-array fields, as JSON-serialisable values."""
        out = {}
        for f in dataclasses.fields(self):
            if f.name in self.array_fields:
                continue
            v = getattr(self, f.name)
            out[f.name] = list(v) if isinstance(v, tuple) else v
        return out

    def arrays(self) -> dict[str, np.ndarray]:
        return {k: getattr(self, k) for k in self.array_fields if getattr(self, k) is not None}

    def n_params(self) -> int:
        return int(sum(a.size for a in self.arrays().values()))


# --------------------------------------------------------------------------- boundary


@dataclass(eq=False)
class Input(Op):
    """Graph input: y[t] = x[t], the array given to ``step``/``run``."""

    kind: ClassVar[str] = "Input"
    shape: Shape = ()

    def __post_init__(self):
        self.shape = tuple(int(s) for s in self.shape)

    def out_shape(self, in_shape):
        return self.shape


@dataclass(eq=False)
class Output(Op):
    """Graph output: y[t] = sum of its inputs at t."""

    kind: ClassVar[str] = "Output"
    shape: Shape = ()

    def __post_init__(self):
        self.shape = tuple(int(s) for s in self.shape)


# --------------------------------------------------------------------------- linear


@dataclass(eq=False)
class Affine(Op):
    """y = W·x + b over the last axis. weight (out, in), bias (out,)."""

    kind: ClassVar[str] = "Affine"
    array_fields: ClassVar[tuple[str, ...]] = ("weight", "bias")
    weight: np.ndarray = None
    bias: np.ndarray = None

    def __post_init__(self):
        self.weight = _arr(self.weight)
        self.bias = _arr(self.bias)

    def check(self, in_shape):
        super().check(in_shape)
        if self.weight.ndim != 2:
            raise ModelError(f"field 'weight' has shape {self.weight.shape}; expected 2-D (out, in)")
        if self.bias is not None and self.bias.shape != (self.weight.shape[0],):
            raise ModelError(f"field 'bias' has shape {self.bias.shape}; expected ({self.weight.shape[0]},)")
        if not in_shape or in_shape[-1] != self.weight.shape[1]:
            raise ModelError(f"input shape {in_shape} does not match field 'weight' (out, in) = {self.weight.shape}; "
                             f"expected (out, {in_shape[-1] if in_shape else 'in'}) for this input")

    def out_shape(self, in_shape):
        return tuple(in_shape[:-1]) + (self.weight.shape[0],)


@dataclass(eq=False)
class Linear(Affine):
    """y = W·x over the last axis. weight (out, in)."""

    kind: ClassVar[str] = "Linear"
    array_fields: ClassVar[tuple[str, ...]] = ("weight",)

    def __post_init__(self):
        self.weight = _arr(self.weight)
        self.bias = None


@dataclass(eq=False)
class Scale(Op):
    """y = s ⊙ x, s broadcast to the input shape."""

    kind: ClassVar[str] = "Scale"
    array_fields: ClassVar[tuple[str, ...]] = ("scale",)
    scale: np.ndarray = None

    def __post_init__(self):
        self.scale = _arr(self.scale)

    def check(self, in_shape):
        super().check(in_shape)
        _check_broadcast("scale", self.scale, in_shape)


def _pair(v, n):
    if isinstance(v, (int, np.integer)):
        return (int(v),) * n
    v = tuple(int(x) for x in np.asarray(v).reshape(-1))
    if len(v) == 1:
        return v * n
    if len(v) != n:
        raise ModelError(f"expected {n} values, got {len(v)}")
    return v


def conv_out_len(n, k, stride, pad_lo, pad_hi, dilation):
    return (n + pad_lo + pad_hi - dilation * (k - 1) - 1) // stride + 1


@dataclass(eq=False)
class Conv1d(Op):
    """y[co, x] = b[co] + Σ_ci,k W[co, ci, k]·x_pad[ci, x·stride + k·dilation] (PyTorch
    semantics, zero padding). weight (C_out, C_in/groups, K), padding (left, right)."""

    kind: ClassVar[str] = "Conv1d"
    array_fields: ClassVar[tuple[str, ...]] = ("weight", "bias")
    weight: np.ndarray = None
    bias: np.ndarray = None
    stride: int = 1
    padding: tuple[int, int] = (0, 0)
    dilation: int = 1
    groups: int = 1

    def __post_init__(self):
        self.weight = _arr(self.weight)
        self.bias = _arr(np.zeros(self.weight.shape[0]) if self.bias is None else self.bias)
        self.stride, self.dilation, self.groups = int(self.stride), int(self.dilation), int(self.groups)
        self.padding = tuple(int(p) for p in self.padding)

    def check(self, in_shape):
        super().check(in_shape)
        w = self.weight
        if w.ndim != 3:
            raise ModelError(f"field 'weight' has shape {w.shape}; expected (C_out, C_in/groups, K)")
        if len(in_shape) != 2:
            raise ModelError(f"input shape {in_shape}; expected (C_in, N)")
        _check_conv_common(self, in_shape[0], w)
        if self.out_shape(in_shape)[1] < 1:
            raise ModelError(f"input length {in_shape[1]} is too short for kernel {w.shape[2]}")

    def out_shape(self, in_shape):
        n = conv_out_len(in_shape[1], self.weight.shape[2], self.stride, *self.padding, self.dilation)
        return (self.weight.shape[0], n)


@dataclass(eq=False)
class Conv2d(Op):
    """y[co, i, j] = b[co] + Σ W[co, ci, ki, kj]·x_pad[ci, i·sh + ki·dh, j·sw + kj·dw] (PyTorch
    semantics, zero padding). weight (C_out, C_in/groups, kH, kW); padding (top, bottom, left, right)."""

    kind: ClassVar[str] = "Conv2d"
    array_fields: ClassVar[tuple[str, ...]] = ("weight", "bias")
    weight: np.ndarray = None
    bias: np.ndarray = None
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1

    def __post_init__(self):
        self.weight = _arr(self.weight)
        self.bias = _arr(np.zeros(self.weight.shape[0]) if self.bias is None else self.bias)
        self.stride = _pair(self.stride, 2)
        self.dilation = _pair(self.dilation, 2)
        self.padding = tuple(int(p) for p in self.padding)
        self.groups = int(self.groups)

    def check(self, in_shape):
        super().check(in_shape)
        w = self.weight
        if w.ndim != 4:
            raise ModelError(f"field 'weight' has shape {w.shape}; expected (C_out, C_in/groups, kH, kW)")
        if len(in_shape) != 3:
            raise ModelError(f"input shape {in_shape}; expected (C_in, H, W)")
        _check_conv_common(self, in_shape[0], w)
        if len(self.padding) != 4:
            raise ModelError(f"padding {self.padding}; expected (top, bottom, left, right)")
        if min(self.out_shape(in_shape)[1:]) < 1:
            raise ModelError(f"input {in_shape[1:]} is too small for kernel {w.shape[2:]}")

    def out_shape(self, in_shape):
        h = conv_out_len(in_shape[1], self.weight.shape[2], self.stride[0], self.padding[0], self.padding[1], self.dilation[0])
        w = conv_out_len(in_shape[2], self.weight.shape[3], self.stride[1], self.padding[2], self.padding[3], self.dilation[1])
        return (self.weight.shape[0], h, w)


def _check_conv_common(op, c_in, w):
    g = op.groups
    if g < 1 or c_in % g or w.shape[0] % g:
        raise ModelError(f"groups={g} does not divide C_in={c_in} and C_out={w.shape[0]}")
    if w.shape[1] * g != c_in:
        raise ModelError(f"weight has {w.shape[1]} input channels per group; input has {c_in} channels and groups={g}")
    if op.bias.shape != (w.shape[0],):
        raise ModelError(f"field 'bias' has shape {op.bias.shape}; expected ({w.shape[0]},)")
    strides = op.stride if isinstance(op.stride, tuple) else (op.stride,)
    dil = op.dilation if isinstance(op.dilation, tuple) else (op.dilation,)
    if min(strides) < 1 or min(dil) < 1 or min(op.padding) < 0:
        raise ModelError(f"stride {op.stride}, dilation {op.dilation} must be >= 1 and padding {op.padding} >= 0")


@dataclass(eq=False)
class SumPool2d(Op):
    """y[c, i, j] = Σ_{ki<kH, kj<kW} x_pad[c, i·sh + ki, j·sw + kj] (zero padding)."""

    kind: ClassVar[str] = "SumPool2d"
    kernel_size: tuple[int, int] = (2, 2)
    stride: tuple[int, int] = (2, 2)
    padding: tuple[int, int] = (0, 0)

    def __post_init__(self):
        self.kernel_size = _pair(self.kernel_size, 2)
        self.stride = _pair(self.stride, 2)
        self.padding = _pair(self.padding, 2)

    #: multiplier applied to each window sum (AvgPool overrides)
    def factor(self) -> float:
        return 1.0

    def check(self, in_shape):
        if len(in_shape) != 3:
            raise ModelError(f"input shape {in_shape}; expected (C, H, W)")
        if min(self.kernel_size) < 1 or min(self.stride) < 1 or min(self.padding) < 0:
            raise ModelError(f"kernel {self.kernel_size} and stride {self.stride} must be >= 1, padding >= 0")
        if min(self.out_shape(in_shape)[1:]) < 1:
            raise ModelError(f"input {in_shape[1:]} is too small for pooling kernel {self.kernel_size}")

    def out_shape(self, in_shape):
        h = conv_out_len(in_shape[1], self.kernel_size[0], self.stride[0], self.padding[0], self.padding[0], 1)
        w = conv_out_len(in_shape[2], self.kernel_size[1], self.stride[1], self.padding[1], self.padding[1], 1)
        return (in_shape[0], h, w)


@dataclass(eq=False)
class AvgPool2d(SumPool2d):
    """y = SumPool2d(x) / (kH·kW) (padding counts toward the divisor, as PyTorch's default)."""

    kind: ClassVar[str] = "AvgPool2d"

    def factor(self) -> float:
        return 1.0 / (self.kernel_size[0] * self.kernel_size[1])


@dataclass(eq=False)
class Flatten(Op):
    """y = x reshaped, merging axes start_dim..end_dim (batch-free axis numbers)."""

    kind: ClassVar[str] = "Flatten"
    start_dim: int = 0
    end_dim: int = -1

    def _range(self, in_shape):
        n = len(in_shape)
        s = self.start_dim + n if self.start_dim < 0 else self.start_dim
        e = self.end_dim + n if self.end_dim < 0 else self.end_dim
        return s, e

    def check(self, in_shape):
        s, e = self._range(in_shape)
        if not (0 <= s <= e < len(in_shape)):
            raise ModelError(f"start_dim={self.start_dim}, end_dim={self.end_dim} out of range for input shape {in_shape}")

    def out_shape(self, in_shape):
        s, e = self._range(in_shape)
        return tuple(in_shape[:s]) + (int(np.prod(in_shape[s : e + 1])),) + tuple(in_shape[e + 1 :])


@dataclass(eq=False)
class Delay(Op):
    """y[t] = x[t − d] per element, d = ``steps`` (integers >= 0, broadcast); x[t<0] = 0."""

    kind: ClassVar[str] = "Delay"
    array_fields: ClassVar[tuple[str, ...]] = ("steps",)
    stateful: ClassVar[bool] = True
    steps: np.ndarray = None

    def __post_init__(self):
        self.steps = _arr(self.steps, np.int32)

    @property
    def breaks_loops(self) -> bool:
        # an element delayed by 0 steps passes its input through within the step, like Scale
        return bool(self.steps.size) and int(self.steps.min()) >= 1

    def check(self, in_shape):
        _check_broadcast("steps", self.steps, in_shape)
        if self.steps.size and self.steps.min() < 0:
            raise ModelError("field 'steps' has negative delays; expected >= 0")
        if self.steps.size and self.steps.max() > 100_000:
            raise ModelError(f"field 'steps' asks for a delay of {self.steps.max()} steps; at most 100000 supported")


@dataclass(eq=False)
class Threshold(Op):
    """y = 1 if x > θ else 0 (strict, as NIR)."""

    kind: ClassVar[str] = "Threshold"
    array_fields: ClassVar[tuple[str, ...]] = ("threshold",)
    threshold: np.ndarray = None

    def __post_init__(self):
        self.threshold = _arr(self.threshold)

    def check(self, in_shape):
        super().check(in_shape)
        _check_broadcast("threshold", self.threshold, in_shape)


# --------------------------------------------------------------------------- neurons

RESETS = ("zero", "subtract")


@dataclass(eq=False)
class Neuron(Op):
    """Discrete-time neuron population; every array is per neuron (broadcast to the shape).

    One timestep, with x the summed input::

        current (Cuba kinds only):  i' = alpha⊙i + g_syn⊙x
                                    d  = i  if current_lag else i'      (then i ← i')
        otherwise:                  d  = x
        membrane:                   v  = beta⊙v + g_mem⊙d + bias
        delayed subtractive reset:  v -= threshold⊙s[t−1]               (reset_delay)
        spikes (spiking kinds):     s  = v > threshold  (>= if threshold_ge)
                                    multispike: s = floor(v/threshold) when it fires
        reset (unless delayed):     zero: v ← v_reset where s;  subtract: v -= s⊙threshold

    The output is s for spiking kinds and v for the others.
    """

    kind: ClassVar[str] = "Neuron"
    stateful: ClassVar[bool] = True
    spiking: ClassVar[bool] = True
    cuba: ClassVar[bool] = False
    array_fields: ClassVar[tuple[str, ...]] = ("alpha", "g_syn", "beta", "g_mem", "bias", "threshold", "v_reset")

    beta: np.ndarray = None
    g_mem: np.ndarray = None
    bias: np.ndarray = None
    threshold: np.ndarray = None
    v_reset: np.ndarray = None
    alpha: np.ndarray = None
    g_syn: np.ndarray = None
    reset: str = "subtract"
    reset_delay: bool = False
    current_lag: bool = False
    threshold_ge: bool = False
    multispike: bool = False
    max_spikes: int = 1

    def __post_init__(self):
        def f(v, default):
            return _arr(default if v is None else v)

        self.beta = f(self.beta, 1.0)
        self.g_mem = f(self.g_mem, 1.0)
        self.bias = f(self.bias, 0.0)
        if self.spiking:
            self.threshold = f(self.threshold, 1.0)
            self.v_reset = f(self.v_reset, 0.0)
        else:
            self.threshold = self.v_reset = None
        if self.cuba:
            self.alpha = f(self.alpha, 0.0)
            self.g_syn = f(self.g_syn, 1.0)
        else:
            self.alpha = self.g_syn = None
        self.reset_delay = bool(self.reset_delay)
        self.current_lag = bool(self.current_lag)
        self.threshold_ge = bool(self.threshold_ge)
        self.multispike = bool(self.multispike)
        self.max_spikes = int(self.max_spikes)

    def check(self, in_shape):
        super().check(in_shape)
        for name, a in self.arrays().items():
            a = _conform(a, in_shape)
            setattr(self, name, a)
            _check_broadcast(name, a, in_shape)
        if self.spiking:
            if self.reset not in RESETS:
                raise ModelError(f"reset '{self.reset}'; expected one of {', '.join(RESETS)}")
            if self.multispike and (self.threshold <= 0).any():
                raise ModelError("multispike neurons need threshold > 0")
            if self.max_spikes < 1:
                raise ModelError(f"max_spikes={self.max_spikes}; expected >= 1")
        if (self.beta < 0).any() or (self.beta > 1).any():
            raise ModelError("field 'beta' (membrane decay per step) must lie in [0, 1]")
        if self.alpha is not None and ((self.alpha < 0).any() or (self.alpha > 1).any()):
            raise ModelError("field 'alpha' (current decay per step) must lie in [0, 1]")


@dataclass(eq=False)
class LI(Neuron):
    """Leaky integrator: v = beta⊙v + g_mem⊙x + bias; output v."""

    kind: ClassVar[str] = "LI"
    spiking: ClassVar[bool] = False


@dataclass(eq=False)
class LIF(Neuron):
    """Leaky integrate-and-fire: v = beta⊙v + g_mem⊙x + bias; s = v > threshold; reset."""

    kind: ClassVar[str] = "LIF"


@dataclass(eq=False)
class CubaLI(Neuron):
    """Current-based leaky integrator: i' = alpha⊙i + g_syn⊙x; v = beta⊙v + g_mem⊙i(') + bias; output v."""

    kind: ClassVar[str] = "CubaLI"
    spiking: ClassVar[bool] = False
    cuba: ClassVar[bool] = True


@dataclass(eq=False)
class CubaLIF(Neuron):
    """Current-based LIF: i' = alpha⊙i + g_syn⊙x; v = beta⊙v + g_mem⊙i(') + bias; spike; reset."""

    kind: ClassVar[str] = "CubaLIF"
    cuba: ClassVar[bool] = True


@dataclass(eq=False)
class I(Neuron):  # noqa: E742 - NIR's name
    """Integrator: v = v + g_mem⊙x (beta = 1, bias = 0 unless set); output v."""

    kind: ClassVar[str] = "I"
    spiking: ClassVar[bool] = False


@dataclass(eq=False)
class IF(Neuron):
    """Integrate-and-fire: v = v + g_mem⊙x; s = v > threshold; reset (beta = 1)."""

    kind: ClassVar[str] = "IF"


OPS: dict[str, type[Op]] = {
    c.kind: c
    for c in (Input, Output, Affine, Linear, Scale, Conv1d, Conv2d, SumPool2d, AvgPool2d, Flatten, Delay,
              Threshold, LI, LIF, CubaLI, CubaLIF, I, IF)
}
NEURON_KINDS = tuple(k for k, c in OPS.items() if issubclass(c, Neuron))


def _conform(a: np.ndarray, shape: Shape) -> np.ndarray:
    """Per-neuron arrays written flat (size = number of neurons) or per channel (size = C of
    a (C, ...) population) are reshaped to broadcast; others are left for the check."""
    shape = tuple(shape)
    try:
        if np.broadcast_shapes(a.shape, shape) == shape:
            return a
    except ValueError:
        pass
    if a.size == int(np.prod(shape)):
        return a.reshape(shape)
    if a.size == 1:
        return a.reshape(())
    if len(shape) > 1 and a.size == shape[0]:
        return a.reshape((shape[0],) + (1,) * (len(shape) - 1))
    return a


def _check_broadcast(name: str, a: np.ndarray, shape: Shape) -> None:
    try:
        b = np.broadcast_shapes(a.shape, tuple(shape))
    except ValueError:
        b = None
    if b != tuple(shape):
        raise ModelError(f"field '{name}' has shape {a.shape}; expected a shape that broadcasts to {tuple(shape)}")


def make_op(kind: str, attrs: dict, arrays: dict) -> Op:
    """Build an op from its stored form (used by the model file reader)."""
    cls = OPS.get(kind)
    if cls is None:
        raise ModelError(f"unknown node type '{kind}'; expected one of {', '.join(OPS)}")
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for k, v in list(attrs.items()) + list(arrays.items()):
        if k not in names:
            raise ModelError(f"unknown field '{k}' for node type {kind}")
        kwargs[k] = tuple(v) if isinstance(v, list) else v
    try:
        return cls(**kwargs)
    except ModelError:
        raise
    except (TypeError, ValueError) as e:
        raise ModelError(f"bad fields for {kind}: {e}") from None


def field_names(kind: str) -> list[str]:
    return [f.name for f in dataclasses.fields(OPS[kind])]


__all__ = ["Op", "OPS", "NEURON_KINDS", "make_op", "Neuron", "Shape", "field"] + list(OPS)
