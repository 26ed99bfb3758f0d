"""``edgebrain stream MODEL.tflite``: a TFLite model over windows of the encoded stream
(docs/tflite.md, "Streaming").

The stream settings live in a sidecar JSON beside the model: ``MODEL.tflite.json``, else ``MODEL.json``
(``har_mlp_int8.tflite`` → ``har_mlp_int8.tflite.json`` or ``har_mlp_int8.json``)::

    {"encoder": "direct:offset=0.1|...,scale=2.0|...", "rate": 100, "hop": 25, "channels": 6,
     "labels": ["SEATED", ...], "output": "logits"}

``encoder``, ``rate``, ``labels`` (and ``source_options``) mean what they mean in a spiking model's
stream settings (:class:`edgebrain.card.StreamConfig`); ``hop``: steps from one window's end to the
next (default: the window); ``channels``: values per step; ``output``: ``"logits"`` (confidence =
softmax of the output) or ``"probabilities"`` (the output as is). The input shape ``(1, T, C)`` gives
the window T and channels C; a flat ``(1, N)`` input needs ``channels`` (T = N / C).

A **stateful** per-step model (its state as inputs and outputs, paired by the sidecar's ``state`` or by
name: :mod:`edgebrain.tflite_session`) is a :class:`SteppedTFLite` instead: stepped once per encoded step by
:class:`edgebrain.tflite_session.TFLiteStepSession`, its state kept between chunks, its outputs going to the
sidecar's ``decoder`` (default ``count``) as a spiking model's do. Its sidecar fields: ``encoder``,
``decoder``, ``rate``, ``labels``, ``source_options``, ``state``, ``initial_state``. :func:`stream_model`
chooses.
"""

from __future__ import annotations

import os
from types import SimpleNamespace

import numpy as np

from .card import StreamConfig
from .errors import InputError, ModelError
from .sidecar import read_fields, sidecar_path
from .stream.window_session import PerWindowDecoder, WindowSession, softmax
from .tflite_session import TFLiteModel

KEYS = ("encoder", "rate", "hop", "channels", "labels", "output", "source_options")
EXAMPLE = '{"encoder": "direct", "rate": 100, "hop": 25, "channels": 6, "labels": [...], "output": "logits"}'
#: a stateful model's sidecar fields
STEP_KEYS = ("encoder", "decoder", "rate", "labels", "source_options", "state", "initial_state")
STEP_EXAMPLE = ('{"encoder": "direct", "decoder": "count:window=25,hop=12", "rate": 50, "labels": [...], '
                '"state": {"h_in": "h_out"}}')


def stream_model(path: str, threads: int = 1):
    """The model at ``path`` with its sidecar, as ``edgebrain stream`` runs it: a :class:`SteppedTFLite` for a
    stateful model, a :class:`WindowedTFLite` for one that decides once per window."""
    m = TFLiteModel.load(os.fspath(path), threads)
    return SteppedTFLite(m) if m.stateful else WindowedTFLite(path, threads, model=m)


def _int(d, k, what, default=None):
    v = d.get(k, default)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ModelError(f"field '{k}' = {v!r}; expected {what}")
    return v


class WindowedTFLite:
    """A TFLite model with its sidecar, as the stream pipeline wants a model: ``graph.meta["stream"]``
    (the sidecar's settings), ``output_shapes``, ``quant``, ``session()`` and ``stream_decoder()``."""

    format = "tflite"

    def __init__(self, path: str, threads: int = 1, model: TFLiteModel | None = None):
        self.path = os.fspath(path)
        side = sidecar_path(self.path)
        if side is None:
            raise InputError(f"streaming a TFLite model needs a sidecar JSON beside it: write {self.path}.json, "
                             f"e.g. {EXAMPLE} (docs/tflite.md)", file=self.path)
        self.sidecar = side
        d = read_fields(side, KEYS, EXAMPLE)
        self.tfl = model if model is not None else TFLiteModel.load(self.path, threads)
        if self.tfl.stateful:
            raise InputError("a stateful per-step model does not decide once per window; stream it with "
                             "stream_model() (edgebrain stream)", file=self.path)
        shape = self.tfl.input_shape
        try:
            ch = _int(d, "channels", "a positive integer (values per step)")
            if len(shape) == 2:
                T, C = shape
                if ch is not None and ch != C:
                    raise ModelError(f"field 'channels' = {ch}; the model's input {[1, *shape]} takes {C} per step")
            elif len(shape) == 1:
                if ch is None:
                    raise ModelError(f"field 'channels' is missing; the model's input {[1, *shape]} is flat and "
                                     "the sidecar must say how many values one step has")
                if shape[0] % ch:
                    raise ModelError(f"field 'channels' = {ch} does not divide the model's input {[1, *shape]} "
                                     "into whole steps")
                T, C = shape[0] // ch, ch
            else:
                raise ModelError(f"input {[1, *shape]}; a streamed TFLite model takes (1, T, C) or (1, T*C)")
            hop = _int(d, "hop", "a positive integer (steps between windows)", T)
            out = d.get("output", "logits")
            if out not in ("logits", "probabilities"):
                raise ModelError(f"field 'output' = {out!r}; expected \"logits\" or \"probabilities\"")
            n_out = sum(int(np.prod(s)) for s in self.tfl.output_shapes.values())
            stream = {k: d[k] for k in ("encoder", "labels", "rate", "source_options") if k in d}
            StreamConfig.check_meta(stream, n_out)
        except ModelError as e:
            raise InputError(e.detail, file=side) from None
        self.window, self.channels, self.hop, self.output, self.n_out = T, C, hop, out, n_out
        self.graph = SimpleNamespace(meta={"stream": stream})
        self.quant = np.dtype(self.tfl.data["dtype"]).kind in "iu"
        self.output_shapes = {"output": (n_out,)}

    @property
    def input_shape(self):
        """What ``stream --plot`` asks a model for: not drawn for a TFLite model yet (one line, exit 2)."""
        raise InputError("--plot draws spiking models' timelines; a TFLite model's is not drawn yet", file=self.path)

    @property
    def interpreted(self) -> TFLiteModel:
        """The model under the stream settings (what ``profile`` counts)."""
        return self.tfl

    def infer(self, window: np.ndarray) -> np.ndarray:
        """Class probabilities for one ``(T, C)`` window: the interpreter's output (dequantized),
        softmax-ed when the sidecar says it is logits."""
        t = self.tfl
        x = t.quantize_input(window.reshape(t.input_shape))
        y = np.concatenate([np.ravel(t.dequantize_output(d, o)) for d, o in zip(t.outputs, t.invoke(x))])
        return softmax(y) if self.output == "logits" else np.asarray(y, np.float64)

    def session(self, precision: str, backend: str = "numba") -> WindowSession:
        mine = "int" if self.quant else "float"
        if precision != mine:
            raise InputError(f"--precision {precision}: a TFLite model runs at the precision it was converted to "
                             f"({self.tfl.precision} input)", file=self.path)
        if backend != "numba":
            raise InputError(f"--backend {backend}: a TFLite model runs on the TFLite interpreter", file=self.path)
        return WindowSession(self.infer, self.window, self.channels, self.n_out, self.hop, precision=mine)

    def stream_decoder(self, labels) -> PerWindowDecoder:
        return PerWindowDecoder(labels, self.window)


class SteppedTFLite:
    """A stateful TFLite model with its sidecar, stepped once per encoded step (as
    :class:`edgebrain.onnx_stream.SteppedOnnx`): its session is a
    :class:`edgebrain.tflite_session.TFLiteStepSession` and its outputs go to the pipeline's decoder (the
    sidecar's ``decoder``, default ``count``)."""

    format = "tflite"
    stream_decoder = None  # the pipeline builds the sidecar's decoder

    def __init__(self, m: TFLiteModel):
        self.tfl, self.path = m, m.path
        if m.sidecar is None:
            raise InputError(f"streaming a TFLite model needs a sidecar JSON beside it: write {m.path}.json, e.g. "
                             f"{STEP_EXAMPLE} (docs/tflite.md)", file=m.path)
        self.sidecar = m.sidecar_file
        extra = [k for k in m.sidecar if k not in STEP_KEYS]
        if extra:
            raise InputError(f"field '{extra[0]}' applies to models deciding once per window; this model is stateful, "
                             f"stepped once per step (its states: {', '.join(m.states)}) (docs/tflite.md)",
                             file=m.sidecar_file)
        n_out = int(sum(int(np.prod(s)) for s in m.output_shapes.values()))
        stream = {k: m.sidecar[k] for k in ("encoder", "decoder", "labels", "rate", "source_options")
                  if k in m.sidecar}
        try:
            StreamConfig.check_meta(stream, n_out)
        except ModelError as e:
            raise InputError(e.detail, file=m.sidecar_file) from None
        self.graph = SimpleNamespace(meta={"stream": stream})
        self.quant = np.dtype(m.data["dtype"]).kind in "iu"
        self.output_shapes = {"output": (n_out,)}

    @property
    def input_shape(self):
        """What ``stream --plot`` asks a model for: not drawn for a TFLite model yet (one line, exit 2)."""
        raise InputError("--plot draws spiking models' timelines; a TFLite model's is not drawn yet", file=self.path)

    @property
    def interpreted(self) -> TFLiteModel:
        return self.tfl

    def session(self, precision: str, backend: str = "numba"):
        mine = "int" if self.quant else "float"
        if precision != mine:
            raise InputError(f"--precision {precision}: a TFLite model runs at the precision it was converted to "
                             f"({self.tfl.precision} input)", file=self.path)
        if backend != "numba":
            raise InputError(f"--backend {backend}: a TFLite model runs on the TFLite interpreter", file=self.path)
        return self.tfl.step_session()
