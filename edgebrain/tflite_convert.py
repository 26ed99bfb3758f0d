"""A TFLite ANN (ReLU MLPs and CNNs, with residual sums) as an ordinary edgebrain graph of
integrate-and-fire neurons.

:mod:`edgebrain.tflite_ann` reads the layers of a ``.tflite`` file and runs them in NumPy (float64, from
the dequantized weights); this module builds the spiking graph from the ops of :mod:`edgebrain.ops`, as
:mod:`edgebrain.nir_io` does for NIR; nothing below it learns that the graph came from a TFLite file.
``edgebrain convert --to-snn`` (:mod:`edgebrain.apps.convert_snn`) uses it; docs/conversion.md describes
the method and its measured trade-offs. :func:`read_ann` and the layer types are re-exported here.

**The spiking network** (:func:`build_snn`), after Rueckauer et al. 2017 (data-based normalization,
reset by subtraction): layer *l*'s ReLU becomes integrate-and-fire neurons with threshold 1 and reset by
subtraction, its weights scaled by ``λ_{l−1}/λ_l`` and its bias by ``1/λ_l`` (added every timestep), where
``λ_l`` is the robust maximum (a percentile, 99.9 by default) of the layer's ReLU activations on the
calibration data (``λ`` of the input is 1: the analog input is fed at every step, "direct" coding). A
spike of layer *l* then stands for the value ``λ_l`` and its rate over T steps approximates
``ReLU(W x + b)/λ_l``, within ``1/T`` while below 1. The last layer is an integrator (``I``) whose
membrane after T steps, divided by T, approximates the logits over ``λ_out``; the decision is its argmax.

*Residual sums* (ADD): a node's input is the sum of everything connected into it, so a sum needs no node
of its own. ``ReLU(a + b)`` is one IF population (balanced on the ADD's own activations, ``λ_add``) into
which both branches project: a branch that is a layer without ReLU through that layer's synapses (weights
× ``λ_in/λ_add``, bias ``/λ_add``), a branch that is spikes (the skip connection) through an identity
``Scale`` of ``λ_src/λ_add`` (per element; a depthwise 1×1 convolution of stride 2 when the spikes are a
max-pooled signal's). An ADD of two spike trains without ReLU (or whose ReLU is the identity: both are
spikes, hence ≥ 0) is no population at all: the layers that read it take synapses from both trains, each
scaled by its own ``λ``.

*Rate coding* (``coding="rate"``) instead turns the input into spikes with a deterministic IF encoder in
the graph: ``x/λ_in`` drives one IF population and ``−x/λ_in`` another, and the first layer's weights
take ``+λ_in`` from the first and ``−λ_in`` from the second (``λ_in``: the percentile of ``|x|``).

*Max pooling* of 2 neighbours is exact in rates: ``max(a, b) = a + ReLU(b − a)``. The pooled signal is
the even neighbour's spikes (folded into the next layer as a stride and dilation of 2) plus the spikes of
an IF population fed ``b − a`` (threshold 1, fires at ``v ≥ 1``), whose count after T steps is
``max(0, max_t Σ (b − a))``: ``max(N_a, N_b)`` plus a transient. A 2×2 window pools along H, then along
W: the second stage's difference population is fed the difference of two such sums (each ≤ 1 spike per
step on average), so its count lags by at most a transient too.
"""

from __future__ import annotations

import numpy as np

from . import ops
from .errors import ModelError
from .graph import Graph
from .tflite_ann import ANN, INPUT, SUPPORTED, Layer, conv2d, read_ann

__all__ = ["ANN", "CODINGS", "DEFAULT_PERCENTILE", "SUPPORTED", "Layer", "build_snn", "conv2d", "read_ann"]

CODINGS = ("direct", "rate")
DEFAULT_PERCENTILE = 99.9


def build_snn(ann: ANN, lambdas: list, coding: str = "direct", input_lambda: float = 1.0,
              output_lambda: float = 1.0) -> Graph:
    """The spiking graph of ``ann`` (module docstring): ``lambdas``, one per population of
    ``ann.relu_layers`` (the activation scale its spikes stand for), ``input_lambda`` (rate coding: the
    scale of ``|x|``), ``output_lambda`` (the logits' scale, the readout divided by it). Node names:
    ``if<k>`` for the populations, ``fc<i>``/``conv<i>`` for layer i's synapses, ``skip<i>`` for the
    identity projections of ADD i, ``pool<i>`` for max pooling's difference neurons, ``readout``."""
    if coding not in CODINGS:
        raise ModelError(f"input coding '{coding}'; expected one of {', '.join(CODINGS)}")
    relus = ann.relu_layers
    if len(lambdas) != len(relus) or not all(np.isfinite(v) and v > 0 for v in lambdas):
        raise ModelError(f"{len(lambdas)} threshold scales for {len(relus)} ReLU layers; expected one > 0 each")
    return _Builder(ann, dict(zip(map(id, relus), enumerate(lambdas)))).build(coding, input_lambda, output_lambda)


# A source is a spike train (or the analog input) already in the graph: (node, the value one unit of its
# output stands for, the axes of (C, H, W) where only its even positions count (max pooling), its shape).
# A value is ("src", [sources]) (their sum) or ("lin", [groups]): a linear value not yet materialized, the
# sum of groups (layer, sources): the layer's synapses reading those sources, or for an ADD layer the
# sources themselves (identity projections).


class _Builder:
    def __init__(self, ann: ANN, pops: dict):
        self.ann, self.pops, self.g = ann, pops, Graph()
        self.index = {id(ly): k for k, ly in enumerate(ann.layers)}

    def build(self, coding, input_lambda, output_lambda) -> Graph:
        ann, g = self.ann, self.g
        g.add("input", ops.Input(shape=ann.input_shape))
        if coding == "direct":
            vals = {INPUT: ("src", [("input", 1.0, (), ann.input_shape)])}
        else:
            for sign, name in ((1.0, "enc_pos"), (-1.0, "enc_neg")):
                g.add(f"{name}_scale", ops.Scale(scale=np.float32(sign / input_lambda)))
                g.add(name, ops.IF(threshold=1.0, reset="subtract"))
                g.connect("input", f"{name}_scale")
                g.connect(f"{name}_scale", name)
            vals = {INPUT: ("src", [("enc_pos", input_lambda, (), ann.input_shape),
                                    ("enc_neg", -input_lambda, (), ann.input_shape)])}
        for k, ly in enumerate(ann.layers):
            ins = [vals[s] for s in ly.srcs]
            if ly.kind == "maxpool":
                vals[k] = ("src", self.maxpool(k, ly, ins[0][1]))
            elif ly.kind == "avgpool":
                vals[k] = ("src", self.avgpool(k, ly, ins[0][1]))
            elif ly.rep == "src":                                 # an ADD of spike trains: no node
                vals[k] = ("src", [s for v in ins for s in v[1]])
            else:
                groups = [(ly, ins[0][1])] if ly.synaptic else [grp for v in ins
                                                                for grp in (v[1] if v[0] == "lin" else [(ly, v[1])])]
                if ly.rep == "lin":
                    vals[k] = ("lin", groups)
                else:
                    j, lam = self.pops[id(ly)]
                    g.add(f"if{j}", ops.IF(threshold=1.0, reset="subtract"))
                    self.project(groups, f"if{j}", lam, ly.out_shape)
                    vals[k] = ("src", [(f"if{j}", lam, (), ly.out_shape)])
        out = ann.layers[ann.output]
        g.add("readout", ops.I())
        self.project(vals[ann.output][1], "readout", output_lambda, out.out_shape)
        g.add("output", ops.Output())
        g.connect("readout", "output")
        g.prepare()
        return g

    def _name(self, base: str, target: str) -> str:
        return base if base not in self.g.nodes else f"{base}_{target}"

    def project(self, groups: list, target: str, lam: float, shape: tuple) -> None:
        """Connect each group's synapses (or identity projections) into ``target``, whose unit is ``lam``."""
        g, path = self.g, self.ann.path
        for ly, sources in groups:
            k = self.index[id(ly)]
            for j, (src, fac, sel, sshape) in enumerate(sources):
                suffix = f"_{j}" if len(sources) > 1 else ""
                if ly.kind == "add":
                    name = self._name(f"skip{k}{suffix}", target)
                    g.add(name, _identity(ly, fac / lam, sel, sshape, shape, path))
                    g.connect(src, name)
                else:
                    name = self._name(f"{'fc' if ly.kind == 'dense' else 'conv'}{k}{suffix}", target)
                    g.add(name, _synapse(ly, fac / lam, None if j else ly.bias / lam, sel, sshape, path))
                    if ly.kind == "dense" and len(sshape) > 1:
                        g.add(f"{name}_flat", ops.Flatten())
                        g.connect(src, f"{name}_flat")
                        g.connect(f"{name}_flat", name)
                    else:
                        g.connect(src, name)
                g.connect(name, target)

    def maxpool(self, k: int, ly: Layer, sources: list) -> list:
        """Max pooling by 2 along each of ``ly.axes`` in turn (module docstring)."""
        g = self.g
        for axis in ly.axes:
            pool = f"pool{k}" if len(ly.axes) == 1 else f"pool{k}_{'hw'[axis - 1]}"
            fac = sources[0][1]
            shape = list(sources[0][3])
            for a in (axis, *sources[0][2]):
                shape[a] //= 2
            g.add(pool, ops.IF(threshold=1.0, reset="subtract", threshold_ge=True))
            for j, (src, _, sel, sshape) in enumerate(sources):
                C = sshape[0]
                size = (2, 1) if axis == 1 else (1, 2)
                kern = np.zeros((C, 1) + size, np.float32)
                kern[..., 0, 0], kern[..., -1, -1] = -1.0, 1.0     # b − a: the odd neighbour minus the even one
                stride = tuple(2 if a in sel or a == axis else 1 for a in (1, 2))
                op = ops.Conv2d(weight=kern, bias=np.zeros(C), stride=stride, groups=C)
                if op.out_shape(sshape) != tuple(shape):
                    raise ModelError(f"operator {ly.index} {ly.op}: a 2×2 window over an odd length; expected even "
                                     "lengths where two stages of pooling meet", file=self.ann.path)
                diff = f"{pool}_diff" + (f"_{j}" if len(sources) > 1 else "")
                g.add(diff, op)
                g.connect(src, diff)
                g.connect(diff, pool)
            sources = [(src, fac, tuple(sorted({*sel, axis})), sshape) for src, fac, sel, sshape in sources]
            sources.append((pool, fac, (), tuple(shape)))
        return sources

    def avgpool(self, k: int, ly: Layer, sources: list) -> list:
        out = []
        for j, (src, fac, sel, _) in enumerate(sources):
            if sel:
                raise ModelError(f"operator {ly.index} {ly.op}: average pooling after max pooling is not converted",
                                 file=self.ann.path)
            name = f"avgpool{k}" + (f"_{j}" if len(sources) > 1 else "")
            self.g.add(name, ops.AvgPool2d(kernel_size=ly.kernel, stride=ly.stride))
            self.g.connect(src, name)
            out.append((name, fac, (), ly.out_shape))
        return out


def _identity(ly: Layer, gain: float, sel: tuple, shape: tuple, target: tuple, path: str) -> ops.Op:
    """The identity projection of a source of ``shape`` × ``gain`` (its even positions along ``sel``)."""
    if not sel:
        return ops.Scale(scale=np.float32(gain))
    C = shape[0]
    op = ops.Conv2d(weight=np.full((C, 1, 1, 1), gain, np.float32), bias=np.zeros(C, np.float32),
                    stride=tuple(2 if a in sel else 1 for a in (1, 2)), groups=C)
    if op.out_shape(shape) != tuple(target):
        raise ModelError(f"operator {ly.index} {ly.op} after MAX_POOL_2D over an odd length: the pooled neighbours "
                         "do not fold into it", file=path)
    return op


def _synapse(ly: Layer, gain: float, bias, sel: tuple, shape: tuple, path: str) -> ops.Op:
    """The synaptic op of layer ``ly`` reading a source of ``shape`` (``sel``: only the even positions of
    the source along those axes, folded in as stride and dilation 2), weights × ``gain``, with ``bias``
    (or none)."""
    w = ly.weight * np.float32(gain)
    if ly.kind == "conv":
        stride, dil, pad = list(ly.stride), list(ly.dilation), list(ly.padding)
        for ax in sel:
            a = ax - 1
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
    if sel:                                               # scatter the pooled columns onto the even neighbours
        wf = np.zeros((w.shape[0],) + tuple(shape), np.float32)
        idx = [slice(None)] * 4
        for ax in sel:
            idx[ax + 1] = slice(0, ly.in_shape[ax] * 2, 2)
        wf[tuple(idx)] = w.reshape((w.shape[0],) + tuple(ly.in_shape))
        w = wf.reshape(w.shape[0], -1)
    return ops.Affine(weight=w, bias=np.zeros(w.shape[0], np.float32) if bias is None else bias)
