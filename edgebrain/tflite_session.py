"""Running a TensorFlow Lite model through the TFLite interpreter API.

The interpreter is LiteRT's (``ai_edge_litert.interpreter``, the ``tflite`` extra:
``pip install 'edgebrain[tflite]'``), else ``tflite_runtime.interpreter`` where only that is installed
(tflite-runtime 2.14 cannot build an interpreter under NumPy 2: that failure is reported as one line).
Nothing below this module knows about TFLite; the command line reaches it through
``cli_common.load_model`` for a file that carries TFLite's identifier.

A :class:`TFLiteModel` runs one inference per sample: ``run(xs)`` takes ``(N, *sample)`` where
``sample`` is the model input's shape without its batch dimension (the first, of size 1), and
returns ``(N, *output sample)`` per output, invoking the interpreter once per sample.

**Stateful (per-step) models** (docs/tflite.md, "Stateful models"): a model with more than one input
computes one timestep, ``(x, s_1 .. s_k) -> (y .., s_1' .. s_k')``; the states are paired by the state
convention of :mod:`edgebrain.state_pairs`: the sidecar's ``state`` (``MODEL.tflite.json``, else
``MODEL.json``), else by name, comparing names without TensorFlow's ``serving_default_`` prefix and ``:N``
suffix (:func:`tensor_base`). ``run(xs)`` then takes ``(T, *sample)``, one timestep per row from the
initial state (zeros, or the sidecar's ``initial_state``); :class:`TFLiteStepSession` steps it one call at
a time with the stream pipeline's session interface. An integer state output is fed back to its input
requantized exactly (:func:`requantize`): dequantized with the output's scale and zero point, quantized
with the input's, rounding half away from zero (as TFLite's QUANTIZE kernel rounds, ``std::round``).

Quantized (int8 / uint8 / int16) inputs and outputs: a float input is quantized with the input
tensor's scale and zero point, ``q = clip(round(x / scale) + zero_point)`` (NumPy's round, half to
even, as TFLite's own Python examples do), and an integer output is dequantized,
``y = (q - zero_point) × scale``, so the caller sees real values either way. An input array that
already has the tensor's integer dtype is passed unchanged.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from contextlib import contextmanager

import numpy as np

from .errors import EdgebrainError, FormatError, InputError, ModelError
from .sidecar import read_sidecar as _read_sidecar
from .state_pairs import StepSession, given_initial_state, pair_states
from .tflite_io import INSTALL_HINT, read_bytes, read_tflite

#: the sidecar's fields (docs/tflite.md): stream settings, window geometry, the state convention
SIDECAR_KEYS = ("encoder", "decoder", "rate", "hop", "channels", "labels", "output", "source_options", "state",
                "initial_state")

#: tflite-runtime 2.14's failure under NumPy 2, reported as such
_NUMPY2 = ("tflite-runtime cannot run under NumPy 2 (\"_ARRAY_API not found\"); install LiteRT instead: "
           + INSTALL_HINT)


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "?"


def interpreter_class():
    """``(Interpreter class, "package version")``: LiteRT's, else tflite-runtime's, else an
    :class:`InputError` naming the extra to install."""
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, f"ai-edge-litert {_version('ai-edge-litert')}"
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter

        return Interpreter, f"tflite-runtime {_version('tflite-runtime')}"
    except ImportError:
        pass
    except (AttributeError, RuntimeError):  # its C extension built against NumPy 1
        raise InputError(_NUMPY2) from None
    raise InputError("running a .tflite model needs the TFLite interpreter (LiteRT, ai-edge-litert), an optional "
                     "dependency: " + INSTALL_HINT)


@contextmanager
def _quiet_stderr():
    """Hold back what the interpreter's C++ side prints on file descriptor 2 ("INFO: Created TensorFlow
    Lite XNNPACK delegate"), keeping it in ``box[0]`` for an error message."""
    box = [""]
    try:
        fd = os.dup(2)
    except OSError:
        yield box
        return
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield box
        finally:
            sys.stderr.flush()
            os.dup2(fd, 2)
            os.close(fd)
            tmp.seek(0)
            box[0] = tmp.read().decode("utf-8", "replace")


def _numpy_abi(e: BaseException) -> bool:
    """Whether ``e`` (or what caused it) is a C extension built for NumPy 1 failing under NumPy 2."""
    while e is not None:
        if "_ARRAY_API" in str(e) or "numpy.core.multiarray failed to import" in str(e):
            return True
        e = e.__cause__ or e.__context__
    return False


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("INFO:")]
    return lines[-1] if lines else ""


def tensor_base(name: str) -> str:
    """The part of a TFLite tensor's name the state convention's name pairs compare: without TensorFlow's
    ``serving_default_`` prefix and ``:N`` suffix (``serving_default_h_in:0`` → ``h_in``)."""
    n = re.sub(r":\d+$", "", name)
    return n.removeprefix("serving_default_")


def read_sidecar(path: str, keys=SIDECAR_KEYS, example: str = '{"encoder": "direct", "rate": 50, "labels": [...]}'
                 ) -> tuple[dict | None, str | None]:
    """``(fields, sidecar path)`` of the model at ``path``, ``(None, None)`` without a sidecar. Not JSON, not
    an object, or a field not in ``keys``: an :class:`InputError` naming the sidecar."""
    return _read_sidecar(path, keys, example)


def requantize(q: np.ndarray, src: tuple, dst: tuple, dtype) -> np.ndarray:
    """The integer values ``q``, quantized with ``src`` = (scale, zero point), as ``dtype`` quantized with
    ``dst``: ``clip(round((q - zp_src) × scale_src / scale_dst) + zp_dst)`` in float64, rounding half away
    from zero (TFLite's QUANTIZE kernel, ``std::round``), saturated to ``dtype``. The same parameters: ``q``
    unchanged."""
    dt = np.dtype(dtype)
    (s0, z0), (s1, z1) = src, dst
    if (float(s0), int(z0)) == (float(s1), int(z1)) and q.dtype == dt:
        return q
    v = (q.astype(np.float64) - z0) * float(s0) / float(s1)
    r = np.sign(v) * np.floor(np.abs(v) + 0.5) + z1
    info = np.iinfo(dt)
    return np.clip(r, info.min, info.max).astype(dt)


def _quantized(d: dict) -> bool:
    return np.dtype(d["dtype"]).kind in "iu" and bool(d["quantization"][0])


class TFLiteModel:
    """A ``.tflite`` file and an interpreter for it (``threads`` set explicitly, default 1)."""

    format = "tflite"

    def __init__(self, path: str, threads: int = 1):
        if int(threads) < 1:
            raise InputError(f"--threads {threads}; expected >= 1")
        self.path = os.fspath(path)
        self.threads = int(threads)
        data = read_bytes(self.path)
        cls, self.runtime = interpreter_class()
        with _quiet_stderr() as said:
            try:
                self.interpreter = cls(model_content=data, num_threads=self.threads)
                self.interpreter.allocate_tensors()
                err = None
            except (ValueError, RuntimeError) as e:
                err = e
            except (AttributeError, SystemError, ImportError) as e:  # tflite-runtime's NumPy 1 build on NumPy 2
                err = e
            if err is not None and not isinstance(err, ValueError) and _numpy_abi(err):
                err = InputError(_NUMPY2)
        if isinstance(err, InputError) or (err is not None and "NumPy 1.x cannot be run in" in said[0]):
            raise InputError(_NUMPY2)
        if err is not None:
            detail = " ".join(str(err).split()) or _last_line(said[0])
            extra = _last_line(said[0])
            if extra and extra not in detail:
                detail += f" ({extra})"
            raise FormatError(f"the TFLite interpreter cannot load it: {detail}", file=self.path) from None
        self._data, self._file = data, None
        self.inputs = self.interpreter.get_input_details()
        self.all_outputs = self.interpreter.get_output_details()
        self.sidecar, self.sidecar_file = None, None
        self.states, self.state_from, self._held = {}, "none", None
        if len(self.inputs) > 1:  # a per-step model with its state as inputs and outputs
            self._pair_states()
        byname = {d["name"]: d for d in self.inputs}
        self.data = byname[self.data_name] if self.states else self.inputs[0]
        self.data_name = self.data["name"]
        back = set(self.states.values())
        #: the outputs that are not states (all of them for a stateless model)
        self.outputs = [d for d in self.all_outputs if d["name"] not in back]
        self._init = self._initial_state((self.sidecar or {}).get("initial_state"))

    def _pair_states(self) -> None:
        self.sidecar, self.sidecar_file = read_sidecar(self.path)
        declared = (self.sidecar or {}).get("state")

        def io(d):
            return {"name": d["name"], "shape": [int(v) for v in d["shape"]], "dtype": np.dtype(d["dtype"])}

        ins, outs = [io(d) for d in self.inputs], [io(d) for d in self.all_outputs]
        if isinstance(declared, dict):  # a name without serving_default_ / :N stands for the one tensor it names
            declared = {self._full(k, ins): self._full(v, outs) for k, v in declared.items()}
        try:
            self.data_name, self.states, self.state_from = pair_states(
                ins, outs, declared, file=self.sidecar_file, doc="docs/tflite.md", base=tensor_base)
        except EdgebrainError as e:
            raise e.with_file(self.path) from None

    @staticmethod
    def _full(name, tensors):
        if not isinstance(name, str) or any(t["name"] == name for t in tensors):
            return name
        hits = [t["name"] for t in tensors if tensor_base(t["name"]) == name]
        return hits[0] if len(hits) == 1 else name

    def _initial_state(self, given) -> dict:
        """``{state input name: raw tensor}``: zeros (the zero point of an integer state), or the sidecar's
        ``initial_state`` (real values, quantized with the state input's parameters)."""
        ins = {d["name"]: d for d in self.inputs}
        init = {}
        for i in self.states:
            d = ins[i]
            dt = np.dtype(d["dtype"])
            init[i] = np.full(tuple(int(v) for v in d["shape"]), d["quantization"][1] if _quantized(d) else 0, dt)
        named = [{"name": k} for k in init]
        for name, a in given_initial_state(given, {k: v.shape for k, v in init.items()}, self.sidecar_file,
                                           resolve=lambda n: self._full(n, named)).items():
            d = ins[name]
            init[name][...] = requantize(a, (1.0, 0), d["quantization"], d["dtype"]) if _quantized(d) else a
        return init

    def initial_state(self) -> dict:
        """A fresh copy of the initial state: ``{state input name: raw tensor}``."""
        return {k: v.copy() for k, v in self._init.items()}

    @property
    def stateful(self) -> bool:
        return bool(self.states)

    def step_session(self) -> TFLiteStepSession:
        """A session stepping this stateful model one timestep per call, its state kept."""
        return TFLiteStepSession(self)

    @classmethod
    def load(cls, path, threads: int = 1) -> TFLiteModel:
        return cls(path, threads)

    @property
    def file(self):
        """The file's operators and tensors (:class:`edgebrain.tflite_io.TFLiteFile`), read on first use
        with LiteRT's schema module (running needs only the interpreter)."""
        if self._file is None:
            self._file = read_tflite(self.path, self._data)
        return self._file

    # ------------------------------------------------------------------ shapes
    @property
    def input_shape(self) -> tuple:
        """One sample's shape: the (data) input tensor's without its batch dimension."""
        return tuple(int(v) for v in self.data["shape"][1:])

    @property
    def output_shapes(self) -> dict:
        return {d["name"]: tuple(int(v) for v in d["shape"][1:]) for d in self.outputs}

    @property
    def precision(self) -> str:
        """The (data) input tensor's dtype name: "float32", "int8", ..."""
        return np.dtype(self.data["dtype"]).name

    def summary(self) -> dict:
        """What ``edgebrain inspect`` shows (:func:`edgebrain.tflite_io.describe`), with the runtime."""
        from .tflite_io import describe

        d = describe(self.file)
        d["runtime"] = self.runtime
        back = {o: i for i, o in self.states.items()}
        for r in d["inputs"]:
            r["role"] = "state" if r["name"] in self.states else "data"
            if r["name"] in self.states:
                r["fed_from"] = self.states[r["name"]]
        for r in d["outputs"]:
            r["role"] = "state" if r["name"] in back else "output"
            if r["name"] in back:
                r["feeds"] = back[r["name"]]
        d.update({"kind": "stateful (one timestep per invoke)" if self.stateful else "stateless",
                  "sidecar": self.sidecar_file, "state_from": self.state_from, "state": dict(self.states),
                  "initial_state": "sidecar" if (self.sidecar or {}).get("initial_state") else "zeros"})
        return d

    # ------------------------------------------------------------------ running
    def quantize_input(self, x: np.ndarray, file=None) -> np.ndarray:
        """``x`` as the (data) input tensor's dtype (the module docstring: quantized inputs)."""
        d = self.data
        dt = np.dtype(d["dtype"])
        if x.dtype == dt:
            return x
        if dt.kind in "iu":
            scale, zp = d["quantization"]
            if not scale:
                raise ModelError(f"input tensor '{d['name']}' is {dt.name} with no scale; pass {dt.name} values",
                                 file=self.path)
            if not np.isfinite(x).all():
                raise InputError(f"the input holds NaN or infinite values, which the {dt.name} input tensor "
                                 f"'{d['name']}' cannot represent", file=file)
            info = np.iinfo(dt)
            return np.clip(np.round(x.astype(np.float64) / scale) + zp, info.min, info.max).astype(dt)
        return x.astype(dt)

    def dequantize_output(self, d: dict, q: np.ndarray) -> np.ndarray:
        scale, zp = d["quantization"]
        if np.dtype(d["dtype"]).kind in "iu" and scale:
            return ((q.astype(np.float64) - zp) * scale).astype(np.float32)
        return q

    def check_input(self, xs: np.ndarray, file=None) -> np.ndarray:
        """``xs`` as ``(N, *sample)``: one sample of the input shape is a batch of one."""
        xs = np.asarray(xs)
        shape = self.input_shape
        if xs.shape == shape:
            xs = xs[None]
        if xs.ndim != len(shape) + 1 or tuple(xs.shape[1:]) != shape or xs.shape[0] < 1:
            what, n = ("timesteps", "T") if self.stateful else ("samples", "N")
            raise InputError(f"input of shape {list(xs.shape)}; this TFLite model takes {what} of shape "
                             f"{list(shape)} (its input tensor is {[1, *shape]}): expected ({n}, "
                             f"{', '.join(map(str, shape))}) or one {what[:-1]} {list(shape)}", file=file)
        if xs.dtype.kind not in "fiub":
            raise InputError(f"input of dtype {xs.dtype}; expected numbers", file=file)
        return xs

    def invoke(self, sample: np.ndarray) -> list:
        """One inference on one sample (the model's input dtype already): the raw output tensors (not the
        states). A stateful model: one timestep from a state this model keeps for it, fed back (what
        ``bench`` times)."""
        if self.stateful:
            if self._held is None:
                self._held = self.step_session()
            return [o[0] for o in self._held.advance(sample)]
        it = self.interpreter
        it.set_tensor(self.data["index"], sample[None])
        it.invoke()
        return [it.get_tensor(d["index"])[0] for d in self.outputs]

    def run(self, xs: np.ndarray, file=None) -> dict:
        """Outputs (dequantized) for each sample of ``xs`` ``(N, *sample)``: ``{output name: (N, ...)}``; a
        stateful model: one timestep per row from the initial state (:meth:`run_steps`)."""
        if self.stateful:
            return self.run_steps(xs, file)[0]
        xs = self.quantize_input(self.check_input(xs, file), file)
        outs = [[] for _ in self.outputs]
        for x in xs:
            for k, o in enumerate(self.invoke(x)):
                outs[k].append(o)
        return {d["name"]: self.dequantize_output(d, np.stack(o)) for d, o in zip(self.outputs, outs)}

    def run_steps(self, xs: np.ndarray, file=None) -> tuple[dict, dict]:
        """``(outputs, states)`` of a stateful model stepped through ``xs`` ``(T, *sample)`` from the initial
        state: ``{output name: (T, *output sample)}`` and ``{state output name: (T, *state)}`` after each
        step (its batch dimension of 1 dropped), dequantized."""
        xs = self.quantize_input(self.check_input(xs, file), file)
        sess = self.step_session()
        back = {o: i for i, o in self.states.items()}
        outs = [[] for _ in self.outputs]
        states = {o: [] for o in back}
        for x in xs:
            for k, o in enumerate(sess.advance(x)):
                outs[k].append(o[0])
            for o in back:
                states[o].append(sess.raw_state_out[o][0])
        byname = {d["name"]: d for d in self.all_outputs}
        return ({d["name"]: self.dequantize_output(d, np.stack(o)) for d, o in zip(self.outputs, outs)},
                {o: self.dequantize_output(byname[o], np.stack(v)) for o, v in states.items()})


class TFLiteStepSession(StepSession):
    """A stateful TFLite model one timestep per call, its state kept between calls (the stream pipeline's
    session interface, as :class:`edgebrain.onnx_session.OnnxStepSession`): ``step(x)`` takes one step's
    real values and returns the outputs that are not states, dequantized, flattened and concatenated. Each
    state output is fed back as its input, requantized when their quantization differs (:func:`requantize`)."""

    what = "a TFLite model"

    def __init__(self, model: TFLiteModel):
        if not model.stateful:
            raise ModelError("a stateless model: no state to step", file=model.path)
        self._setup(model, "int" if np.dtype(model.data["dtype"]).kind in "iu" else "float")
        ins = {d["name"]: d for d in model.inputs}
        outs = {d["name"]: d for d in model.all_outputs}
        self._it = model.interpreter
        self._pairs = []  # (state input name, its tensor index, output name, output index, requantize or None)
        for i, o in model.states.items():
            di, do = ins[i], outs[o]
            rq = None
            if _quantized(di) and _quantized(do) and tuple(di["quantization"]) != tuple(do["quantization"]):
                rq = (tuple(do["quantization"]), tuple(di["quantization"]), np.dtype(di["dtype"]))
            self._pairs.append((i, di["index"], o, do["index"], rq))
        self._data = model.data["index"]
        self._dshape = tuple(int(v) for v in model.data["shape"])
        self.raw_state_out: dict = {}
        self.reset()

    @property
    def state(self) -> dict:
        """The current state: ``{state input name: raw tensor}`` (what the next step is fed)."""
        return self._slots

    def reset(self) -> None:
        self._slots = self.model.initial_state()

    def advance(self, q: np.ndarray) -> list:
        """One timestep on one sample ``q`` (the data input's dtype already): the raw output tensors that are
        not states (with their batch dimension); the state outputs are kept (``raw_state_out``) and fed back."""
        it = self._it
        it.set_tensor(self._data, np.asarray(q).reshape(self._dshape))
        for i, idx, _, _, _ in self._pairs:
            it.set_tensor(idx, self._slots[i])
        it.invoke()
        got = [it.get_tensor(d["index"]) for d in self.model.outputs]
        for i, _, o, odx, rq in self._pairs:
            v = it.get_tensor(odx)
            self.raw_state_out[o] = v
            self._slots[i] = v if rq is None else requantize(v, *rq)
        return got

    def step(self, x) -> np.ndarray:
        m = self.model
        q = m.quantize_input(np.asarray(x, np.float32).reshape(m.input_shape))
        got = [np.ravel(m.dequantize_output(d, o)) for d, o in zip(m.outputs, self.advance(q))]
        return got[0] if len(got) == 1 else np.concatenate(got)
