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

import numpy as np

from .errors import ModelError

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
