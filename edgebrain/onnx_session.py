"""Running an ONNX model through ONNX Runtime (the ``onnx`` extra: ``pip install 'edgebrain[onnx]'``).

Nothing below this module knows about ONNX; the command line reaches it through ``cli_common.load_model``
for a ``.onnx`` file (docs/onnx.md). ONNX Runtime is imported when a model is loaded, never when edgebrain
is imported.

An :class:`OnnxModel` is a file, its sidecar (:func:`edgebrain.onnx_io.read_sidecar`) and one
``onnxruntime.InferenceSession`` on the CPU execution provider, with ``threads`` intra-op threads (default
1), one inter-op thread and sequential execution. Its inputs and outputs are sorted by the state convention
(:func:`edgebrain.onnx_io.pair_states`): one data input, the states, and the outputs that are not states.

* A **stateless** model runs one inference per sample: ``run(xs)`` takes ``(N, *sample)``, ``sample`` being
  the data input's shape without its batch dimension (the first, when it is 1 or of unknown size), and
  returns ``(N, *output sample)`` per output.
* A **stateful** (per-step) model runs one timestep per call: ``run(xs)`` takes ``(T, *sample)`` and steps
  through it from the initial state (zeros, or the sidecar's ``initial_state``), feeding each state output
  back as its input; :class:`OnnxStepSession` does the same one step or chunk at a time, keeping the state
  between calls, with the session interface the stream pipeline uses (``step``, ``run``, ``reset``,
  ``snapshot``/``restore``, ``output_size``).
"""

from __future__ import annotations

import os
import re

import numpy as np

from .errors import EdgebrainError, FormatError, InputError, ModelError
from .onnx_io import (
    DTYPES,
    INSTALL_HINT,
    describe_graph,
    pair_states,
    read_bytes,
    read_sidecar,
)
from .state_pairs import StepSession, given_initial_state


def ort():
    """The ``onnxruntime`` module, or an :class:`InputError` naming the extra to install."""
    try:
        import onnxruntime
    except ImportError:
        raise InputError("running an .onnx model needs ONNX Runtime (onnxruntime), an optional dependency: "
                         + INSTALL_HINT) from None
    return onnxruntime


def _io(arg, file) -> dict:
    dt = DTYPES.get(arg.type)
    if dt is None:
        raise ModelError(f"'{arg.name}' is a {arg.type}; edgebrain feeds and reads tensors of numbers", file=file)
    shape = [d if isinstance(d, int) else (d or "?") for d in arg.shape]
    return {"name": arg.name, "shape": shape, "dtype": np.dtype(dt)}


def _batched(shape) -> bool:
    """Whether the first dimension is a batch: of unknown size, or 1 with more dimensions after it."""
    return len(shape) >= 1 and (not isinstance(shape[0], int) or (shape[0] == 1 and len(shape) >= 2))


def _fixed(d: dict, file) -> tuple:
    """The shape of one sample of ``d`` (without its batch dimension), every size known."""
    shape = d["shape"][1:] if _batched(d["shape"]) else d["shape"]
    unknown = [k for k, v in enumerate(shape) if not isinstance(v, int)]
    if unknown:
        raise ModelError(f"'{d['name']}' has shape {d['shape']}, a dimension of unknown size besides the batch; "
                         "edgebrain runs ONNX models whose sample shapes are fixed", file=file)
    return tuple(int(v) for v in shape)


class OnnxModel:
    """An ``.onnx`` file, its sidecar and an ONNX Runtime session for it; see the module."""

    format = "onnx"

    def __init__(self, path: str, threads: int = 1):
        if isinstance(threads, bool) or int(threads) < 1:
            raise InputError(f"--threads {threads}; expected >= 1")
        self.path = os.fspath(path)
        self.threads = int(threads)
        self._data = read_bytes(self.path)
        rt = ort()
        self.sidecar, self.sidecar_file = read_sidecar(self.path)
        self.runtime = f"onnxruntime {rt.__version__}"
        so = rt.SessionOptions()
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        so.execution_mode = rt.ExecutionMode.ORT_SEQUENTIAL
        so.log_severity_level = 3  # errors only: its warnings would not be one line
        try:
            self.session = rt.InferenceSession(self._data, so, providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001 - ONNX Runtime's own exception types (InvalidProtobuf, Fail, ...)
            detail = re.sub(r"^\[ONNXRuntimeError\] : \d+ : (\w+) : ", r"\1: ", " ".join(str(e).split())).rstrip(".")
            raise FormatError(f"ONNX Runtime cannot load it as an ONNX model ({detail}); expected an ONNX ModelProto "
                              "file", file=self.path) from None
        side = self.sidecar or {}
        self.inputs = [_io(a, self.path) for a in self.session.get_inputs()]
        self.all_outputs = [_io(a, self.path) for a in self.session.get_outputs()]
        try:
            self.data_name, self.states, self.state_from = pair_states(
                self.inputs, self.all_outputs, side.get("state"), file=self.sidecar_file)
        except EdgebrainError as e:
            raise e.with_file(self.path) from None
        byname = {d["name"]: d for d in self.inputs + self.all_outputs}
        self.data = byname[self.data_name]
        self.input_shape = _fixed(self.data, self.path)
        self.output_names = [d["name"] for d in self.all_outputs if d["name"] not in self.states.values()]
        self.output_shapes = {n: _fixed(byname[n], self.path) for n in self.output_names}
        self._state_shapes = {i: tuple(1 if not isinstance(v, int) else v for v in byname[i]["shape"])
                              for i in self.states}
        self._init = self._initial_state(side.get("initial_state"))

    @classmethod
    def load(cls, path, threads: int = 1) -> OnnxModel:
        return cls(path, threads)

    # ------------------------------------------------------------------ what it is
    @property
    def stateful(self) -> bool:
        return bool(self.states)

    @property
    def precision(self) -> str:
        """The data input's element type: "float32", ..."""
        return self.data["dtype"].name

    @property
    def state_bytes(self) -> int:
        """Bytes of the state fed back at each step (0 for a stateless model)."""
        return int(sum(int(np.prod(s)) * self._dtype(i).itemsize for i, s in self._state_shapes.items()))

    def graph(self) -> dict | None:
        """The operators and constants (:func:`edgebrain.onnx_io.describe_graph`; None without ``onnx``)."""
        return describe_graph(self._data)

    def summary(self) -> dict:
        """What ``edgebrain inspect MODEL.onnx`` shows, as plain data."""
        meta = self.session.get_modelmeta()
        back = {o: i for i, o in self.states.items()}

        def row(d, role, key=None, pair=None):
            r = {"name": d["name"], "shape": d["shape"], "dtype": d["dtype"].name, "role": role}
            if pair:
                r[key] = pair
            return r

        g = self.graph()
        return {
            "file": self.path, "format": "onnx", "file_bytes": len(self._data), "runtime": self.runtime,
            "producer": (g or {}).get("producer") or meta.producer_name, "graph_name": meta.graph_name,
            "opset": (g or {}).get("opset"), "ir_version": (g or {}).get("ir_version"),
            "kind": "stateful (one timestep per run)" if self.stateful else "stateless",
            "sidecar": self.sidecar_file, "state_from": self.state_from, "state": dict(self.states),
            "initial_state": "sidecar" if (self.sidecar or {}).get("initial_state") else "zeros",
            "inputs": [row(d, "data" if d["name"] == self.data_name else "state", "fed_from",
                           self.states.get(d["name"])) for d in self.inputs],
            "outputs": [row(d, "state" if d["name"] in back else "output", "feeds", back.get(d["name"]))
                        for d in self.all_outputs],
            "operators": None if g is None else g["operators"],
            "operator_counts": None if g is None else g["operator_counts"],
            "totals": None if g is None else {**g["totals"], "state_bytes": self.state_bytes},
            "note": None if g is not None else ("the operator table needs the onnx package (pip install onnx): "
                                                "ONNX Runtime does not expose the graph"),
        }

    # ------------------------------------------------------------------ states
    def _initial_state(self, given) -> dict:
        init = {i: np.zeros(s, self._dtype(i)) for i, s in self._state_shapes.items()}
        for name, a in given_initial_state(given, {k: v.shape for k, v in init.items()}, self.sidecar_file).items():
            init[name][...] = a
        return init

    def _dtype(self, name):
        return next(d["dtype"] for d in self.inputs if d["name"] == name)

    def initial_state(self) -> dict:
        """A fresh copy of the initial state: ``{state input name: array}``."""
        return {k: v.copy() for k, v in self._init.items()}

    # ------------------------------------------------------------------ running
    def check_input(self, xs, file=None) -> np.ndarray:
        """``xs`` as ``(N, *sample)`` of the data input's type: one sample of the input shape is a batch of one.
        Float values for an integer input must be whole numbers."""
        xs = np.asarray(xs)
        shape = self.input_shape
        if xs.shape == shape:
            xs = xs[None]
        what, n = ("timesteps", "T") if self.stateful else ("samples", "N")
        if xs.ndim != len(shape) + 1 or tuple(xs.shape[1:]) != shape or xs.shape[0] < 1:
            raise InputError(f"input of shape {list(xs.shape)}; this ONNX model takes {what} of shape {list(shape)} "
                             f"(its input '{self.data_name}' is {self.data['shape']}): expected ({n}, "
                             f"{', '.join(map(str, shape))}) or one {what[:-1]} {list(shape)}", file=file)
        if xs.dtype.kind not in "fiub":
            raise InputError(f"input of dtype {xs.dtype}; expected numbers", file=file)
        dt = self.data["dtype"]
        if dt.kind in "iub" and xs.dtype.kind == "f" and not (np.isfinite(xs).all()
                                                              and np.array_equal(xs, np.round(xs))):
            raise InputError(f"the model's input '{self.data_name}' is {dt.name}; expected whole numbers", file=file)
        return np.ascontiguousarray(xs, dt)

    def batch_of(self, x: np.ndarray) -> np.ndarray:
        """One sample as the data input takes it (with its batch dimension of 1, if it has one)."""
        return x[None] if _batched(self.data["shape"]) else x

    def run(self, xs, file=None) -> tuple[dict, dict]:
        """``(outputs, states)`` for ``xs``: ``{output name: (N, *output sample)}`` and, for a stateful model,
        ``{state output name: (N, *state)}`` after each step (from the initial state); see the module."""
        xs = self.check_input(xs, file)
        run, names = self.session.run, [d["name"] for d in self.all_outputs]
        feeds = self.initial_state()
        idx = {n: k for k, n in enumerate(names)}
        outs = {n: [] for n in self.output_names}
        states = {o: [] for o in self.states.values()}
        for x in xs:
            feeds[self.data_name] = self.batch_of(x)
            got = run(names, feeds)
            for n, v in outs.items():
                v.append(got[idx[n]].reshape(self.output_shapes[n]))
            for i, o in self.states.items():
                feeds[i] = got[idx[o]]
                states[o].append(got[idx[o]])
        return ({n: np.stack(v) for n, v in outs.items()},
                {o: np.stack(states[o])[:, 0] if _batched(self._state_shapes[i]) else np.stack(states[o])
                 for i, o in self.states.items()})

    def infer(self, sample: np.ndarray) -> np.ndarray:
        """A stateless model's outputs for one sample (the input's type already), flattened and concatenated
        in output order."""
        got = self.session.run(self.output_names, {self.data_name: self.batch_of(sample)})
        return got[0].ravel() if len(got) == 1 else np.concatenate([g.ravel() for g in got])

    def step_session(self) -> OnnxStepSession:
        return OnnxStepSession(self)


class OnnxStepSession(StepSession):
    """A stateful ONNX model one timestep per call, its state kept between calls (the stream pipeline's
    session interface, :class:`edgebrain.state_pairs.StepSession`): ``step(x)`` returns the outputs that are
    not states, flattened and concatenated."""

    what = "an ONNX model"

    def __init__(self, model: OnnxModel):
        if not model.stateful:
            raise ModelError("a stateless model: no state to step", file=model.path)
        self._setup(model, "int" if model.data["dtype"].kind in "iub" else "float")
        self._names = list(model.output_names) + list(model.states.values())
        self._k = len(model.output_names)
        self._pairs = list(enumerate(model.states, start=self._k))
        self._run, self._data, self._dt = model.session.run, model.data_name, model.data["dtype"]
        self._shape = ((1,) if _batched(model.data["shape"]) else ()) + model.input_shape
        self.reset()

    @property
    def state(self) -> dict:
        """The current state: ``{state input name: array}`` (what the next step is fed)."""
        return {k: v for k, v in self._slots.items() if k != self._data}

    def reset(self) -> None:
        self._slots = self.model.initial_state()  # the feeds of the next step: the states, and the data input

    def step(self, x) -> np.ndarray:
        feeds = self._slots
        feeds[self._data] = np.asarray(x, self._dt).reshape(self._shape)
        got = self._run(self._names, feeds)
        for k, name in self._pairs:
            feeds[name] = got[k]
        if self._k == 1:
            return got[0].reshape(-1)
        return np.concatenate([g.reshape(-1) for g in got[:self._k]])
