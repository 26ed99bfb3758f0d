"""The state convention of per-step stateful models, shared by ONNX and TFLite models (docs/onnx.md,
docs/tflite.md): which inputs are states fed back from which outputs, and the one data input left.

A stateful model computes one timestep: ``(x, s_1 .. s_k) -> (y .., s_1' .. s_k')``, and the caller feeds
each ``s_i'`` back as ``s_i`` at the next step. Which input is fed from which output is, in this order: the
sidecar's ``"state": {"input name": "output name", ...}`` (``{}``: the model is stateless); else every input
whose name pairs with exactly one output's by :data:`NAME_PAIRS` (``mem_in`` → ``mem_out``, ``state_in`` →
``state_out``, ``h0`` → ``hn``, ``v`` → ``v_new`` ...; or the prefix pair :data:`PREFIX_PAIR`), with the same
shape and element type. The one input left is the data input; a model with no state pair is stateless.

Inputs and outputs are described as plain dicts, ``{"name", "shape", "dtype"}`` (a dimension of unknown size
is a string or None). Nothing here imports a runtime; only NumPy (for dtype names).
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np

from .errors import InputError, ModelError

#: (input name ends with, output name ends with): an input named ``BASE + a`` is the state fed back from
#: the output named ``BASE + b``; and the prefix pair ``in_BASE`` → ``out_BASE``
NAME_PAIRS = (("_in", "_out"), ("_in", "_next"), ("_in", "_new"), ("", "_out"), ("", "_new"), ("", "_next"),
              ("_prev", ""), ("_prev", "_next"), ("0", "n"))
PREFIX_PAIR = ("in_", "out_")


def named_pair(i: str, o: str) -> bool:
    """Whether an input named ``i`` is, by its name, the state fed back from the output named ``o``
    (:data:`NAME_PAIRS`, :data:`PREFIX_PAIR`)."""
    if i == o:
        return False
    if i.startswith(PREFIX_PAIR[0]) and o == PREFIX_PAIR[1] + i[len(PREFIX_PAIR[0]):]:
        return True
    for a, b in NAME_PAIRS:
        if i.endswith(a) and len(i) > len(a) and o == i[:len(i) - len(a)] + b:
            return True
    return False


def same_kind(a: dict, b: dict) -> bool:
    """Whether two inputs or outputs (``{"name", "shape", "dtype"}``; a dimension of unknown size is a
    string or None) can be the two sides of one state: the same element type and rank, and equal sizes
    where both are known."""
    if a["dtype"] != b["dtype"] or len(a["shape"]) != len(b["shape"]):
        return False
    return all(not (isinstance(x, int) and isinstance(y, int)) or x == y for x, y in zip(a["shape"], b["shape"]))


def signature(d: dict) -> str:
    """``[shape] dtype`` of an input or output, for messages (``?``: a dimension of unknown size)."""
    return f"{[v if isinstance(v, int) else '?' for v in d['shape']]} {np.dtype(d['dtype']).name}"


def pair_states(inputs: list, outputs: list, declared=None, file=None, doc: str = "docs/onnx.md",
                base=None) -> tuple[str, dict, str]:
    """``(data input name, {state input: state output}, how)``: the state convention of the module for the
    model's ``inputs`` and ``outputs`` (lists of ``{"name", "shape", "dtype"}``); ``declared``: the sidecar's
    ``state`` (None: pair by name); ``how``: "sidecar", "names" or "none". ``doc``: the page messages point
    to; ``base``: a function giving the part of a tensor's name the name pairs compare (default: the whole
    name; TFLite strips ``serving_default_`` and ``:N``). A state that cannot be, or a model left with no
    data input or several: a :class:`ModelError` (``file``: the sidecar, when declared)."""
    ins, outs = {d["name"]: d for d in inputs}, {d["name"]: d for d in outputs}
    base = base or (lambda n: n)
    if declared is not None:
        if not isinstance(declared, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                     for k, v in declared.items()):
            raise ModelError(f"field 'state' = {json.dumps(declared)[:80]}; expected an object of input names to "
                             "output names, e.g. {\"mem_in\": \"mem_out\"}", file=file)
        for i, o in declared.items():
            if i not in ins:
                raise ModelError(f"field 'state' names input '{i}', which the model does not have (inputs: "
                                 f"{', '.join(ins)})", file=file)
            if o not in outs:
                raise ModelError(f"field 'state' names output '{o}', which the model does not have (outputs: "
                                 f"{', '.join(outs)})", file=file)
            if not same_kind(ins[i], outs[o]):
                raise ModelError(f"field 'state' pairs input '{i}' {signature(ins[i])} with output '{o}' "
                                 f"{signature(outs[o])}; a state's two sides have the same shape and type", file=file)
        if len(set(declared.values())) != len(declared):
            raise ModelError("field 'state' feeds two inputs from the same output", file=file)
        states, how = dict(declared), "sidecar"
    else:
        states = {}
        for i, d in ins.items():
            cands = [o for o in outs if named_pair(base(i), base(o)) and same_kind(d, outs[o])]
            if len(cands) > 1:
                raise ModelError(f"input '{i}' could be the state of outputs {', '.join(repr(c) for c in cands)}; "
                                 f"name the pairs in the sidecar's 'state' ({doc})", file=file)
            if cands:
                states[i] = cands[0]
        if len(set(states.values())) != len(states):
            raise ModelError("two inputs pair by name with the same output; name the pairs in the sidecar's "
                             f"'state' ({doc})", file=file)
        how = "names" if states else "none"
    data = [i for i in ins if i not in states]
    if not data:
        raise ModelError("every input is a state fed back from an output; expected one data input besides the "
                         f"states ({doc})", file=file)
    if len(data) > 1:
        raise ModelError(f"{len(data)} inputs that are not states ({', '.join(data)}; outputs: {', '.join(outs)}); "
                         "edgebrain feeds one data input, the others must be states fed back from outputs: name the "
                         f"pairs in the sidecar's 'state', e.g. {{\"h_in\": \"h_out\"}} ({doc})", file=file)
    if len(states) == len(outs):
        raise ModelError("every output is a state; expected at least one output besides the states", file=file)
    return data[0], states, how


class StepSession:
    """What the sessions of per-step stateful models share (the stream pipeline's session interface, one
    timestep per call, batch 1): ``snapshot``/``restore`` of the state, ``run`` stepping through a
    sequence, and no nodes to read. A subclass calls :meth:`_setup`, keeps its state in ``self._slots``
    (state input name → array; it may hold the data input too), and defines ``state``, ``reset`` and
    ``step``. ``what`` names the kind of model in messages ("an ONNX model")."""

    batch = 1
    what = "this model"

    def _setup(self, model, precision: str) -> None:
        self.model = model
        self.spiking_nodes: list = []
        self.program = SimpleNamespace(input_shape=model.input_shape)
        self.precision = precision
        self.saturations = np.zeros(1, np.int64)
        self.output_size = int(sum(int(np.prod(s)) for s in model.output_shapes.values()))

    def snapshot(self) -> dict:
        return {k: v.copy() for k, v in self.state.items()}

    def restore(self, snap: dict) -> None:
        for k, v in snap.items():
            self._slots[k] = v.copy()

    def output_buffer(self, name):
        raise InputError(f"no node named '{name}': {self.what}'s nodes are not read", file=self.model.path)

    def run(self, xs, record=()):
        """Outputs ``(T, output_size)`` for the steps ``xs``, from the current state (which it advances)."""
        if record:
            raise InputError(f"recording names nodes of spiking models; {self.what} has none", file=self.model.path)
        xs = np.asarray(xs)
        out = np.empty((len(xs), self.output_size), np.float32)
        for t in range(len(xs)):
            out[t] = self.step(xs[t])
        return out, {}


def given_initial_state(given, shapes: dict, file=None, resolve=None) -> dict:
    """The sidecar's ``initial_state`` checked against the states' ``shapes`` (state input name → shape):
    ``{state input name: float64 array of its shape}`` for the states it names (each a number or a nested
    list, broadcast), ``{}`` for None. ``resolve`` maps a name as written to the state's name. Anything else:
    one :class:`InputError` naming the field (``file``: the sidecar)."""
    if given is None:
        return {}
    if not isinstance(given, dict):
        raise InputError("field 'initial_state' must be an object of state input names to a number or a nested "
                         "list of the state's shape", file=file)
    out = {}
    for name, v in given.items():
        name = resolve(name) if resolve is not None else name
        if name not in shapes:
            raise InputError(f"field 'initial_state' names '{name}', which is not a state input (states: "
                             f"{', '.join(shapes) or 'none'})", file=file)
        try:
            a = np.broadcast_to(np.asarray(v, np.float64), tuple(shapes[name]))
            if not np.isfinite(a).all():
                raise ValueError
        except (ValueError, TypeError):
            raise InputError(f"field 'initial_state.{name}' cannot be the state {list(shapes[name])}: "
                             "expected a number or a nested list of that shape", file=file) from None
        out[name] = a
    return out
