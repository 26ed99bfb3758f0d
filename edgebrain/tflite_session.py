"""Running a TensorFlow Lite model through the TFLite interpreter API.

The interpreter is LiteRT's (``ai_edge_litert.interpreter``, the ``tflite`` extra:
``pip install 'edgebrain[tflite]'``), else ``tflite_runtime.interpreter`` where only that is installed
(tflite-runtime 2.14 cannot build an interpreter under NumPy 2: that failure is reported as one line).
Nothing below this module knows about TFLite; the command line reaches it through
``cli_common.load_model`` for a file that carries TFLite's identifier.

A :class:`TFLiteModel` runs one inference per sample: ``run(xs)`` takes ``(N, *sample)`` where
``sample`` is the model input's shape without its batch dimension (the first, of size 1), and
returns ``(N, *output sample)`` per output, invoking the interpreter once per sample.

Quantized (int8 / uint8 / int16) inputs and outputs: a float input is quantized with the input
tensor's scale and zero point, ``q = clip(round(x / scale) + zero_point)`` (NumPy's round, half to
even, as TFLite's own Python examples do), and an integer output is dequantized,
``y = (q - zero_point) × scale``, so the caller sees real values either way. An input array that
already has the tensor's integer dtype is passed unchanged.
"""

from __future__ import annotations

import os
import sys
import tempfile
from contextlib import contextmanager

import numpy as np

from .errors import FormatError, InputError, ModelError
from .tflite_io import INSTALL_HINT, read_bytes, read_tflite

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
        self.outputs = self.interpreter.get_output_details()
        if len(self.inputs) != 1:
            raise ModelError(f"{len(self.inputs)} inputs; edgebrain runs TFLite models with one input for now",
                             file=self.path)

    @classmethod
    def load(cls, path, threads: int = 1) -> "TFLiteModel":
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
        """One sample's shape: the input tensor's without its batch dimension."""
        return tuple(int(v) for v in self.inputs[0]["shape"][1:])

    @property
    def output_shapes(self) -> dict:
        return {d["name"]: tuple(int(v) for v in d["shape"][1:]) for d in self.outputs}

    @property
    def precision(self) -> str:
        """The input tensor's dtype name: "float32", "int8", ..."""
        return np.dtype(self.inputs[0]["dtype"]).name

    def summary(self) -> dict:
        """What ``edgebrain inspect`` shows (:func:`edgebrain.tflite_io.describe`), with the runtime."""
        from .tflite_io import describe

        d = describe(self.file)
        d["runtime"] = self.runtime
        return d

    # ------------------------------------------------------------------ running
    def quantize_input(self, x: np.ndarray, file=None) -> np.ndarray:
        """``x`` as the input tensor's dtype (the module docstring: quantized inputs)."""
        d = self.inputs[0]
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
            raise InputError(f"input of shape {list(xs.shape)}; this TFLite model takes samples of shape "
                             f"{list(shape)} (its input tensor is {[1, *shape]}): expected (N, "
                             f"{', '.join(map(str, shape))}) or one sample {list(shape)}", file=file)
        if xs.dtype.kind not in "fiub":
            raise InputError(f"input of dtype {xs.dtype}; expected numbers", file=file)
        return xs

    def invoke(self, sample: np.ndarray) -> list:
        """One inference on one sample (the model's input dtype already): the raw output tensors."""
        it = self.interpreter
        it.set_tensor(self.inputs[0]["index"], sample[None])
        it.invoke()
        return [it.get_tensor(d["index"])[0] for d in self.outputs]

    def run(self, xs: np.ndarray, file=None) -> dict:
        """Outputs (dequantized) for each sample of ``xs`` ``(N, *sample)``: ``{output name: (N, ...)}``."""
        xs = self.quantize_input(self.check_input(xs, file), file)
        outs = [[] for _ in self.outputs]
        for x in xs:
            for k, o in enumerate(self.invoke(x)):
                outs[k].append(o)
        return {d["name"]: self.dequantize_output(d, np.stack(o)) for d, o in zip(self.outputs, outs)}
