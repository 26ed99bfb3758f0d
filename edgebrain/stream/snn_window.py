"""A spiking model that classifies *windows* of the stream (one converted from a TFLite ANN by
``edgebrain convert MODEL.tflite --to-snn``; docs/conversion.md, "Streaming"), as the stream pipeline
runs it: each window of the encoded stream presented for ``present_steps`` steps from the initial state.
Its spiking layers' spikes over those T steps are counted at the step that decides the window (zero at the
other steps), so ``stream``'s spike rates are spikes per neuron per stream step and ``stream --plot`` draws one
column of dots per window.

The model says so in its stream settings (``graph.meta["stream"]``, written by the converter):

* ``window``, ``hop``, ``channels``: the ANN's window (encoded steps of ``channels`` values, oldest
  first) and the steps from one window's end to the next, as the TFLite model's sidecar gave them;
* ``present_steps``: T, how many timesteps each window is presented for;
* ``present_shape``: the ANN's first layer's input shape; the window, reshaped to it, is laid out as
  the spiking model's channel-first input (``(L, C)`` → ``(C, 1, L)``, ``(H, W, C)`` → ``(C, H, W)``,
  flat stays flat): what :meth:`edgebrain.tflite_ann.ANN.snn_input` does to a TFLite sample;
* ``output_lambda`` (optional): the value one unit of the readout stands for (the confidence below).

:class:`WindowedSNN` wraps the model; its session is a :class:`~.window_session.WindowSession` whose
window function resets the spiking session to its initial state, runs the window's input at every one
of T steps (direct coding: the analog input itself; rate coding: the same analog input, which the
encoder populations *in the graph* turn into spikes, exactly as ``convert``'s accuracy report presents
a sample), and returns the readout after T steps: the integrator's membrane, the last layer's spikes
weighted and summed over the T steps. The decision is its argmax (ties: the lowest index) and the
confidence the softmax of ``readout × output_lambda / T`` (≈ the ANN's logits; ``output_lambda`` 1 when
absent). The session runs on any backend (Numba float or int, the C runtime) or on a board session
(``RESET`` over the link before every window). Nothing here knows TFLite.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from .window_session import PerWindowDecoder, WindowSession, softmax

#: the stream settings of a model presented window by window
KEYS = ("window", "hop", "channels", "present_steps", "present_shape", "output_lambda")


def presents_windows(model) -> bool:
    """Whether ``model``'s stream settings say it classifies windows (``present_steps`` is set)."""
    meta = getattr(getattr(model, "graph", None), "meta", None) or {}
    return isinstance(meta.get("stream"), dict) and meta["stream"].get("present_steps") is not None


def present_input(window: np.ndarray, present_shape, input_shape) -> np.ndarray:
    """One ``(window, channels)`` window as the spiking model's input (one step's): reshaped to the
    ANN's ``present_shape``, then channel-first as ``ANN.snn_input`` lays a TFLite sample out."""
    x = np.asarray(window, np.float32).reshape((1,) + tuple(present_shape))
    if x.ndim == 3:
        x = x[:, None]                         # (L, C) → (1, L, C)
    if x.ndim == 4:
        x = x.transpose(0, 3, 1, 2)            # (H, W, C) → (C, H, W)
    return np.ascontiguousarray(x.reshape(tuple(input_shape)), dtype=np.float32)


def presented_windows(model, steps: np.ndarray, max_windows: int = 256) -> np.ndarray:
    """What a windowed ``model`` (a :class:`WindowedSNN`) is run on for the encoded ``steps`` ``(N, channels)``
    of a stream: its windows cut as :class:`~.window_session.WindowSession` cuts them (the first ending at step
    ``window − 1``, then one every ``hop``; at most ``max_windows``), each presented for ``present_steps`` steps,
    as a batch ``(T, windows, *input)``: every window from the initial state (``edgebrain profile`` counts the
    operations of the decisions on it)."""
    w = model if isinstance(model, WindowedSNN) else WindowedSNN(model)
    x = np.asarray(steps, np.float32).reshape(len(steps), -1)
    ends = np.arange(w.window - 1, len(x), w.hop)[:max_windows]
    shape = tuple(w.model.input_shape)
    if not len(ends):
        return np.zeros((w.present_steps, 0) + shape, np.float32)
    wins = np.stack([present_input(x[e - w.window + 1:e + 1], w.present_shape, shape) for e in ends])
    return np.ascontiguousarray(np.broadcast_to(wins, (w.present_steps,) + wins.shape))


def _pos_int(d: dict, k: str, path) -> int:
    v = d.get(k)
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise InputError(f"field 'meta.stream.{k}' = {v!r}; expected a positive integer (a model converted by "
                         "convert --to-snn from a TFLite model with its sidecar JSON stores it)", file=path)
    return v


class WindowedSNN:
    """A spiking model with window settings (module docstring), as the stream pipeline wants a model:
    ``graph`` (its stream settings), ``path``, ``quant``, ``output_shapes``, ``session()`` and
    ``stream_decoder()``; ``model`` is the spiking model itself."""

    def __init__(self, model, present_steps: int | None = None):
        self.model, self.graph, self.path = model, model.graph, getattr(model, "path", None)
        self.quant = model.quant
        self.output_shapes = model.output_shapes
        d = model.graph.meta.get("stream") or {}
        if d.get("window") is None:
            raise InputError("this converted model does not say which window of the stream it classifies "
                             "(meta.stream.window): convert it again with the TFLite model's sidecar JSON beside it "
                             "(MODEL.tflite.json: channels, hop; docs/tflite.md)", file=self.path)
        self.window, self.hop = _pos_int(d, "window", self.path), _pos_int(d, "hop", self.path)
        self.channels = _pos_int(d, "channels", self.path)
        self.present_steps = int(present_steps) if present_steps else _pos_int(d, "present_steps", self.path)
        shape = d.get("present_shape")
        if not (isinstance(shape, list) and shape and all(isinstance(v, int) and v > 0 for v in shape)
                and int(np.prod(shape)) == self.window * self.channels
                and int(np.prod(model.input_shape)) == self.window * self.channels):
            raise InputError(f"field 'meta.stream.present_shape' = {shape!r}; expected the ANN's input shape, "
                             f"{self.window} × {self.channels} values as the model's input {list(model.input_shape)}",
                             file=self.path)
        self.present_shape = tuple(shape)
        lam = d.get("output_lambda", 1.0)
        self.output_lambda = float(lam) if isinstance(lam, (int, float)) and np.isfinite(lam) and lam > 0 else 1.0
        self.n_out = int(sum(int(np.prod(s)) for s in model.output_shapes.values()))

    @property
    def input_shape(self):
        """What ``stream --plot`` asks a model for: a windowed model's timeline is not drawn (one line)."""
        raise InputError("--plot draws models that run step by step; a model presented window by window "
                         "(convert --to-snn) is not drawn yet", file=self.path)

    def session(self, precision: str, backend: str = "numba", board=None) -> WindowSession:
        """A window session over the spiking model's session at ``precision`` on ``backend``, or over
        ``board()`` (a board session, e.g. :func:`edgebrain.stream.board.board_session`) when given."""
        inner = board() if board is not None else self.model.session(precision, backend=backend)
        T, shape = self.present_steps, tuple(self.model.input_shape)
        if board is None:       # compile (or load from the cache) the path every window takes, before the clock
            inner.run(np.zeros((T,) + shape, np.float32))
            inner.reset()
        ws = WindowSession(None, self.window, self.channels, self.n_out, self.hop, precision=precision)
        gain = self.output_lambda / T
        # the spiking layers' counts over a window's T steps, for the pipeline's spike rates and raster (a board
        # session reads none)
        ws.spiking_nodes = list(getattr(inner, "spiking_nodes", []) or [])
        ws.spikes = {n: np.zeros((1, inner.output_buffer(n).size), np.float32) for n in ws.spiking_nodes}

        def infer(window: np.ndarray) -> np.ndarray:
            inner.reset()
            sat0 = int(np.sum(inner.saturations))   # a board keeps its count across RESET, Numba zeroes it
            x = present_input(window, self.present_shape, shape)
            counted = sorted(ws.counting)
            out, rec = inner.run(np.ascontiguousarray(np.broadcast_to(x, (T,) + shape)), record=counted)
            for n in counted:
                ws.spikes[n][0] = np.asarray(rec[f"spikes/{n}"]).reshape(T, -1).sum(0)
            ws.saturations[0] += int(np.sum(inner.saturations)) - sat0
            last = np.concatenate([np.ravel(v[-1]) for v in out.values()]) if isinstance(out, dict) else \
                np.ravel(np.asarray(out)[-1])
            ws.readout = last.astype(np.float64)
            return softmax(ws.readout * gain)

        ws.infer, ws.inner = infer, inner
        ws.readout = None
        for name in ("close", "link_summary"):      # a board's link and counters, for run_stream's summary
            if hasattr(inner, name):
                setattr(ws, name, getattr(inner, name))
        return ws

    def stream_decoder(self, labels) -> PerWindowDecoder:
        return PerWindowDecoder(labels, self.window)
