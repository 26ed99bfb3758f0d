"""``edgebrain stream MODEL.onnx``: an ONNX model as the stream pipeline's model (docs/onnx.md, "stream").

The stream settings live in the sidecar beside the model (``MODEL.onnx.json``, else ``MODEL.json``;
:func:`edgebrain.onnx_io.read_sidecar`). What the pipeline runs depends on the model:

* a **stateful** model (states by the sidecar's ``state`` or by name, :func:`edgebrain.onnx_io.pair_states`)
  is stepped once per encoded step by :class:`edgebrain.onnx_session.OnnxStepSession`, its state kept between
  chunks, and its outputs go to a decoder as a spiking model's do: the sidecar's ``decoder`` (default
  ``count``), e.g. ``"count:window=25,hop=12"``. Sidecar fields: ``encoder``, ``decoder``, ``rate``,
  ``labels``, ``source_options``, ``state``, ``initial_state``;
* a **stateless** model sees windows of the encoded stream, as a TFLite model does (docs/tflite.md): input
  ``(1, T, C)``, or a flat ``(1, T*C)`` with the sidecar's ``channels``; one inference every ``hop`` steps
  (default T), one decision each (:mod:`edgebrain.stream.window_session`). Sidecar fields: ``encoder``,
  ``rate``, ``labels``, ``source_options``, ``hop``, ``channels``, ``output`` (``"logits"``, the default:
  confidence = softmax; ``"probabilities"``: as is), and ``state: {}``.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from .card import StreamConfig
from .errors import InputError, ModelError
from .onnx_session import OnnxModel
from .stream.window_session import PerWindowDecoder, WindowSession, softmax

STEP_KEYS = ("encoder", "decoder", "rate", "labels", "source_options", "state", "initial_state")
WINDOW_KEYS = ("encoder", "rate", "labels", "source_options", "state", "hop", "channels", "output")
EXAMPLE = {"step": '{"encoder": "direct", "decoder": "count:window=25,hop=12", "rate": 50, "labels": [...]}',
           "window": '{"encoder": "direct", "rate": 100, "hop": 25, "channels": 6, "labels": [...], '
                     '"output": "logits"}'}


def stream_model(path: str, threads: int = 1):
    """The model at ``path`` with its sidecar, as ``edgebrain stream`` runs it: a :class:`SteppedOnnx` for a
    stateful model, a :class:`WindowedOnnx` for a stateless one."""
    m = OnnxModel.load(path, threads)
    kind = "step" if m.stateful else "window"
    if m.sidecar is None:
        raise InputError(f"streaming an ONNX model needs a sidecar JSON beside it: write {m.path}.json, e.g. "
                         f"{EXAMPLE[kind]} (docs/onnx.md)", file=m.path)
    allowed = STEP_KEYS if kind == "step" else WINDOW_KEYS
    extra = [k for k in m.sidecar if k not in allowed]
    if extra:
        what = ("applies to stateless window models; this model is stateful, stepped once per step (its states: "
                f"{', '.join(m.states)})" if kind == "step" else
                "applies to stateful per-step models; this stateless model decides once per window")
        raise InputError(f"field '{extra[0]}' {what} (docs/onnx.md)", file=m.sidecar_file)
    return SteppedOnnx(m) if kind == "step" else WindowedOnnx(m)


def _stream_meta(m: OnnxModel, keys, n_out: int) -> dict:
    stream = {k: m.sidecar[k] for k in keys if k in m.sidecar}
    try:
        StreamConfig.check_meta(stream, n_out)
    except ModelError as e:
        raise InputError(e.detail, file=m.sidecar_file) from None
    return stream


def _positive(d: dict, k: str, what: str, default=None, file=None):
    v = d.get(k, default)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise InputError(f"field '{k}' = {v!r}; expected {what}", file=file)
    return v


class _Streamed:
    format = "onnx"

    def __init__(self, m: OnnxModel, stream: dict, n_out: int):
        self.onnx, self.path = m, m.path
        self.interpreted = m  # the model under the stream settings (what ``profile`` counts)
        self.graph = SimpleNamespace(meta={"stream": stream})
        self.quant = m.data["dtype"].kind in "iub"
        self.output_shapes = {"output": (n_out,)}

    @property
    def input_shape(self):
        """What ``stream --plot`` asks a model for: not drawn for an ONNX model yet (one line, exit 2)."""
        raise InputError("--plot draws spiking models' timelines; an ONNX model's is not drawn yet", file=self.path)

    def _check(self, precision: str, backend: str) -> str:
        mine = "int" if self.quant else "float"
        if precision != mine:
            raise InputError(f"--precision {precision}: an ONNX model runs at the precision it was exported at "
                             f"({self.onnx.precision} input)", file=self.path)
        if backend != "numba":
            raise InputError(f"--backend {backend}: an ONNX model runs on ONNX Runtime", file=self.path)
        return mine


class SteppedOnnx(_Streamed):
    """A stateful ONNX model, stepped once per encoded step, its outputs decoded like a spiking model's."""

    stream_decoder = None  # the pipeline builds the sidecar's decoder (default count)

    def __init__(self, m: OnnxModel):
        n_out = int(sum(int(np.prod(s)) for s in m.output_shapes.values()))
        super().__init__(m, _stream_meta(m, ("encoder", "decoder", "labels", "rate", "source_options"), n_out), n_out)

    def session(self, precision: str, backend: str = "numba"):
        self._check(precision, backend)
        return self.onnx.step_session()


class WindowedOnnx(_Streamed):
    """A stateless ONNX model over windows of the encoded stream (as
    :class:`edgebrain.tflite_stream.WindowedTFLite`)."""

    def __init__(self, m: OnnxModel):
        d, side, shape = m.sidecar, m.sidecar_file, m.input_shape
        ch = _positive(d, "channels", "a positive integer (values per step)", file=side)
        if len(shape) == 2:
            T, C = shape
            if ch is not None and ch != C:
                raise InputError(f"field 'channels' = {ch}; the model's input {m.data['shape']} takes {C} per step",
                                 file=side)
        elif len(shape) == 1:
            if ch is None:
                raise InputError(f"field 'channels' is missing; the model's input {m.data['shape']} is flat and the "
                                 "sidecar must say how many values one step has", file=side)
            if shape[0] % ch:
                raise InputError(f"field 'channels' = {ch} does not divide the model's input {m.data['shape']} into "
                                 "whole steps", file=side)
            T, C = shape[0] // ch, ch
        else:
            raise InputError(f"input {m.data['shape']}; a streamed stateless ONNX model takes (1, T, C) or (1, T*C) "
                             "windows", file=m.path)
        out = d.get("output", "logits")
        if out not in ("logits", "probabilities"):
            raise InputError(f"field 'output' = {out!r}; expected \"logits\" or \"probabilities\"", file=side)
        n_out = int(sum(int(np.prod(s)) for s in m.output_shapes.values()))
        super().__init__(m, _stream_meta(m, ("encoder", "labels", "rate", "source_options"), n_out), n_out)
        self.window, self.channels, self.output, self.n_out = T, C, out, n_out
        self.hop = _positive(d, "hop", "a positive integer (steps between windows)", T, file=side)

    def infer(self, window: np.ndarray) -> np.ndarray:
        """Class probabilities for one ``(T, C)`` window: the model's outputs, softmax-ed when they are logits."""
        y = self.onnx.infer(self.onnx.check_input(window.reshape(self.onnx.input_shape))[0])
        return softmax(y) if self.output == "logits" else np.asarray(y, np.float64)

    def session(self, precision: str, backend: str = "numba") -> WindowSession:
        mine = self._check(precision, backend)
        return WindowSession(self.infer, self.window, self.channels, self.n_out, self.hop, precision=mine)

    def stream_decoder(self, labels) -> PerWindowDecoder:
        return PerWindowDecoder(labels, self.window)
