"""Sensor to decision on the board (``edgebrain stream --target host-firmware --board-encodes``):
the host forwards raw int16 sensor samples, the board encodes them, runs the model and decodes its
outputs itself (``cruntime/eb_codec.c``), and answers with the decisions it made.

    enc, sess, dec = on_board(encoder, decoder, open_board)   # the pipeline's three roles
    Pipeline(source, enc, sess, dec, sinks)                   # as ever: the sinks print the decisions

* **What goes over the link.** After the model, one CODEC frame: the encoder (direct, delta or
  sigma_delta, with the model's scale and offset, thresholds, layout) and the count decoder (window,
  hop, smoothing, hysteresis, hold, min_confidence, min_spikes). Then SAMPLES frames of int16 counts,
  answered by DECISIONS (docs/protocol.md).
* **Counts.** A sample's value is ``count · unit`` (physical units per count, per channel): the
  encoder's ``unit=`` when given, else :func:`default_unit` (a power of two per channel, covering
  ±16 model units around the offset), said once in the log and in the summary (``board.codec``). The
  host encoding the same stream with ``--encoder unit=...`` (the same values) sees the same counts,
  and the decisions are the same, bit for bit.
* **Rate.** The board takes samples at the model's step rate, as a board sampling its own sensor
  does; a recording at another rate is resampled on the host first (the encoder's interpolator),
  then forwarded.
* **Audio** (firmware 0.3.0). With the audio front end (``audio:filterbank=bandpass``, floating
  point or ``fixed=true``, ``output=features``, ``log=log1p`` or ``none``, with or without ``agc``: what ``zoo:kws``
  uses), the CODEC frame carries the front end too (filter, leak and gain coefficients computed
  here, so that the board needs no maths library; the normalisation), the host forwards the mono
  audio as int16 samples (16-bit PCM exactly; other audio rounded to 16 bits, said in the log) at the
  source's rate, whole frames of ``hop`` samples (the last one padded with zeros, as the Python
  front end's flush pads it), and the board runs one model step per frame
  (``cruntime/eb_codec_audio.c``, bit-exact with ``encoders/frontend.py``).
* **Roles.** :class:`ForwardEncoder` turns chunks into counts (the encoder's channel selection,
  resampling and quantization, nothing else), :class:`OnBoard` is the session the pipeline runs
  (counts in; it returns no outputs: the board keeps them), and :class:`BoardDecisions` is the
  decoder role: it turns the board's decisions into :class:`~.base.Decision` with the times,
  arrival and ground truth of the steps they cover (the host keeps those; the board never sees
  them).
"""

from __future__ import annotations

import copy
import logging
import math
import re
from types import SimpleNamespace

import numpy as np

from .. import proto as P
from ..errors import InputError
from .base import Decision, Steps, now
from .board import BoardError, BoardReset, BoardSession

log = logging.getLogger("edgebrain.stream.board")

#: the model-unit range the default unit covers around each channel's offset
DEFAULT_SPAN = 16.0


def default_unit(scale, offset, n: int) -> np.ndarray:
    """Per channel, the smallest power of two ``u`` with ``32767 · u ≥ |offset| + 16 / |scale|``:
    int16 counts of ``u`` cover ±16 model units ((value − offset) · scale) around the offset."""
    sc = np.ones(n) if scale is None else np.abs(np.asarray(scale, np.float64))
    off = np.zeros(n) if offset is None else np.abs(np.asarray(offset, np.float64))
    out = np.empty(n)
    for k in range(n):
        span = off[k] + (DEFAULT_SPAN / sc[k] if sc[k] > 0 else DEFAULT_SPAN)
        m, e = math.frexp(span / 32767.0)
        out[k] = math.ldexp(1.0, e if m > 0.5 else e - 1)
    return out


def codec_payload(encoder, decoder, classes: int) -> bytes:
    """The CODEC payload for a configured sample ``encoder`` (with ``unit`` set) and a count
    ``decoder`` over ``classes`` outputs; InputError when the board cannot run them."""
    name = getattr(encoder, "name", None)
    if name not in P.CODEC_ENCODERS:
        raise InputError(f"--board-encodes: the board encodes with {', '.join(P.CODEC_ENCODERS)}; this stream's "
                         f"encoder is '{encoder.spec()}' (encode on the host: leave out --board-encodes)")
    if getattr(decoder, "name", None) not in P.CODEC_DECODERS:
        raise InputError(f"--board-encodes: the board decodes with the count decoder; this stream's decoder is "
                         f"'{decoder.spec()}' (decode on the host: leave out --board-encodes)")
    C = int(encoder.n_in)
    ones, zeros = np.ones(C), np.zeros(C)
    thr = getattr(encoder, "threshold", None)
    cols = [np.asarray(encoder.unit, np.float64),
            zeros if encoder.offset is None else np.asarray(encoder.offset, np.float64),
            ones if encoder.scale is None else np.asarray(encoder.scale, np.float64),
            zeros if thr is None else np.asarray(thr, np.float64)]
    tail = np.ascontiguousarray(np.stack(cols, axis=1), "<f8").tobytes()
    flags = (P.CODEC_HAS_HYSTERESIS if decoder.hysteresis is not None else 0) | (
        P.CODEC_HAS_HOLD if decoder.hold is not None else 0)
    return P.pack("CODEC", tail, encoder=P.CODEC_ENCODERS[name], layout=P.CODEC_LAYOUTS[encoder.layout],
                  init=P.CODEC_INITS[getattr(encoder, "init", "first")], flags=flags,
                  decoder=P.CODEC_DECODERS["count"], channels=C, classes=int(classes),
                  max_spikes=int(getattr(encoder, "max_spikes", 0) or 0), window=decoder.window, hop=decoder.hop,
                  min_spikes=decoder.min_spikes, hold=decoder.hold or 0, alpha=decoder.alpha,
                  min_confidence=decoder.min_confidence, hysteresis=decoder.hysteresis or 0.0)


AUDIO_UNIT = 2.0 ** -15   #: the audio samples' unit: int16 counts of full scale 1


def audio_check(fe) -> None:
    """InputError unless the board's audio front end can run the configured AudioFrontEnd ``fe``."""
    o, why = fe.o, None
    if o["filterbank"] != "bandpass":
        why = f"filterbank={o['filterbank']} (it runs filterbank=bandpass)"
    elif o["output"] != "features":
        why = f"output={o['output']} (it gives output=features)"
    elif o["log"] not in P.AUDIO_LOGS:
        why = f"log={o['log']} (it computes {' or '.join(P.AUDIO_LOGS)})"
    elif fe.resampler is not None:
        why = (f"a source at another rate than the front end's {fe.rate:g} Hz (it takes the samples as they come: "
               "resample the recording first)")
    if why:
        raise InputError(f"--board-encodes: the board's audio front end cannot run '{fe.spec()}': {why}; encode on "
                         "the host: leave out --board-encodes")


def audio_codec_payload(fe, decoder, classes: int) -> bytes:
    """The CODEC payload for a configured AudioFrontEnd ``fe`` (checked by :func:`audio_check`) and a
    count ``decoder``: one raw channel (unit 2^-15), the front end's coefficients and normalisation."""
    audio_check(fe)
    n = int(fe.n)
    channel = np.array([AUDIO_UNIT, 0.0, 1.0, 0.0], "<f8").tobytes()
    fixed = bool(fe.o["fixed"])
    flags = (P.AUDIO_AGC if fe.o["agc"] else 0) | (P.AUDIO_SQUARE if fe.o["rectify"] == "square" else 0) | (
        P.AUDIO_FIXED if fixed else 0)
    head = P.AUDIO.pack(n, flags, P.AUDIO_LOGS[fe.o["log"]], int(fe.hop), float(fe.leak_q if fixed else fe.leak),
                        float(fe.o["k"]), float(fe.agc_decay), float(fe.o["agc_floor"]))
    # fixed=true: the integer coefficients round(c · 2^29) and round(leak · 2^30), exact in float64
    coef = np.asarray(fe.coef_q, np.float64) if fixed else np.asarray(fe.sos, np.float64)[:, [0, 1, 2, 4, 5]].T
    bands = np.stack([*coef, np.asarray(fe.mean, np.float64), np.asarray(fe.scale, np.float64)], axis=1)
    tail = channel + head + np.ascontiguousarray(bands, "<f8").tobytes()
    dflags = (P.CODEC_HAS_HYSTERESIS if decoder.hysteresis is not None else 0) | (
        P.CODEC_HAS_HOLD if decoder.hold is not None else 0)
    return P.pack("CODEC", tail, encoder=P.CODEC_AUDIO, layout=0, init=0, flags=dflags,
                  decoder=P.CODEC_DECODERS["count"], channels=1, classes=int(classes), max_spikes=0,
                  window=decoder.window, hop=decoder.hop, min_spikes=decoder.min_spikes, hold=decoder.hold or 0,
                  alpha=decoder.alpha, min_confidence=decoder.min_confidence, hysteresis=decoder.hysteresis or 0.0)


def limit_message(channels: int, classes: int, window: int, limit: int, bands: int | None = None) -> str:
    """What a board's CODEC_LIMIT refusal (``limit``: the one exceeded) means for this codec
    (``bands``: the audio front end's, if it is one)."""
    head = "the board cannot encode and decode this stream on its own: "
    if bands is not None and bands > limit:
        what = (f"an audio front end of {bands} bands; it runs at most {limit} (EB_AUDIO_MAX_BANDS): fewer "
                "channels, or firmware built with a larger EB_AUDIO_MAX_BANDS")
    elif channels > limit:
        what = f"{channels} channels; it takes at most {limit} (EB_CODEC_MAX_CHANNELS)"
    elif classes > limit:
        what = f"{classes} classes; it decides among at most {limit} (EB_CODEC_MAX_CLASSES)"
    else:
        what = (f"a window of {window} steps × {classes} classes = {window * classes} outputs kept; it keeps at "
                f"most {limit} (EB_CODEC_MAX_RING): a shorter window (--decoder count:window=...), or firmware "
                "built with a larger EB_CODEC_MAX_RING")
    return head + what


class OnBoard:
    """The pipeline's session role, over a :class:`~.board.BoardSession` whose board also encodes
    and decodes: raw counts (T, channels) in, sent in SAMPLES frames; the decisions the board made
    are kept for :class:`BoardDecisions` (step indices: the stream's since the last reset; a board
    that restarts is given the model and the codec again and its indices shifted to go on); the
    outputs returned are zeros (the board keeps the model's outputs)."""

    batch = 1
    precision = "int"

    def __init__(self, session: BoardSession):
        self.board, self.output_size, self.spiking_nodes = session, int(session.output_size), []
        self.saturations = session.saturations
        self.model_input_shape = tuple(session.input_shape)
        self.program = SimpleNamespace(input_shape=(1,))
        self.pending: list[tuple] = []
        self.codec: bytes | None = None
        self.channels, self.hop, self.audio_hop = 1, 1, 0
        self.steps_seen = self.base = 0
        self.summary: dict = {}

    # -------------------------------------------------------------- the link

    def configure(self, encoder, decoder) -> None:
        """Send the codec of the configured ``encoder`` and ``decoder`` to the board."""
        fw = self.board.info["fw_version"]
        audio = getattr(encoder, "name", None) == "audio"
        if fw < (P.AUDIO_FIRMWARE if audio else P.CODEC_FIRMWARE):
            raise BoardError(f"the board's firmware {fw >> 16}.{fw >> 8 & 0xFF}.{fw & 0xFF} has no on-board "
                             f"{'audio front end (firmware 0.3.0)' if audio else 'codec (CODEC, SAMPLES)'}: update "
                             "it, or leave out --board-encodes")
        if audio:
            payload, channels = audio_codec_payload(encoder, decoder, self.output_size), 1
        else:
            payload, channels = codec_payload(encoder, decoder, self.output_size), int(encoder.n_in)
        try:
            self.board.request("CODEC", payload)
        except BoardError as e:
            m = re.search(r"\[CODEC_LIMIT\] \(detail (\d+)\)", str(e))
            if m is None:
                raise
            raise BoardError(limit_message(channels, self.output_size, int(decoder.window), int(m.group(1)),
                                           int(encoder.n) if audio else None)) from None
        self.codec, self.channels, self.hop = payload, channels, int(decoder.hop)
        self.audio_hop = int(encoder.hop) if audio else 0
        self.program = SimpleNamespace(input_shape=(self.audio_hop,) if audio else (self.channels,))
        self.steps_seen = self.base = 0
        self.summary = {"encoder": encoder.spec(), "decoder": decoder.spec(),
                        "unit": [AUDIO_UNIT] if audio else [float(u) for u in encoder.unit]}

    def samples_per_frame(self) -> int:
        by_bytes = (P.MAX_PAYLOAD - P.STRUCTS["SAMPLES"].size) // (2 * self.channels)
        cap = (P.MAX_PAYLOAD - P.STRUCTS["DECISIONS"].size) // P.DECISION.size
        if self.audio_hop:  # the board counts at most n // hop + 1 steps from n samples (eb_codec_max_steps)
            return max(1, min(by_bytes, ((cap - 2) * self.hop - 1) * self.audio_hop, 0xFFFF))
        return max(1, min(by_bytes, (cap - 2) * self.hop, 0xFFFF))

    def samples(self, counts: np.ndarray, flush: bool = False) -> list[tuple]:
        """Raw counts (T, channels) to the board; its decisions ``(first, last, index, confidence)``."""
        counts = np.ascontiguousarray(np.asarray(counts).reshape(-1, self.channels), "<i2")
        per, out, T = self.samples_per_frame(), [], len(counts)
        for a in range(0, max(T, 1), per):
            part = counts[a:a + per]
            payload = P.pack("SAMPLES", part.tobytes(), n=len(part),
                             flags=P.SAMPLES_FLUSH if flush and a + per >= T else 0)
            try:
                r = self.board.request("SAMPLES", payload, reply="DECISIONS")
            except BoardReset as e:
                if self.board.on_reset != "resume":
                    raise
                self._again(e)
                r = self.board.request("SAMPLES", payload, reply="DECISIONS")
            tail = r["tail"]
            if len(tail) != r["n"] * P.DECISION.size:
                raise BoardError(f"the board sent {len(tail)} bytes for {r['n']} decisions")
            for k in range(r["n"]):
                first, lst, idx, _, conf = P.DECISION.unpack_from(tail, k * P.DECISION.size)
                out.append((first + self.base, lst + self.base, idx, conf))
            self.saturations[0] += r["saturations"]
            self.steps_seen += len(part)
            self.board.clock += len(part)
        return out

    def _again(self, e: BoardReset) -> None:
        """A board that restarted: the model, the codec and the initial state again, saying so."""
        b = self.board
        b.resets += 1
        log.warning("%s; loaded the model and the codec again and resumed from the initial state (the model's and "
                    "the decoder's state before the reset are lost)", str(e).split(":")[0])
        b.info = None
        b.info = b.hello()
        if not (b.info["loaded"] and b.info["model_hash"] == b.program.header["crc32"]):
            b.info = b.load(b.blob)
        b.request("RESET")
        b.request("CODEC", self.codec)
        self.base = self.steps_seen  # the board counts steps from 0 again

    # -------------------------------------------------------------- what the pipeline asks

    def _samples(self, counts, flush=False):
        self.pending += self.samples(counts, flush)

    def step(self, x):
        self._samples(np.asarray(x).reshape(1, -1))
        return np.zeros(self.output_size, np.float32)

    def run(self, xs, record=()):
        xs = np.asarray(xs)
        self._samples(xs.reshape(len(xs), -1))
        return np.zeros((len(xs), self.output_size), np.float32), {}

    def flush(self) -> list[tuple]:
        self._samples(np.zeros((0, self.channels)), flush=True)
        return self.take()

    def take(self) -> list[tuple]:
        out, self.pending = self.pending, []
        return out

    def output_buffer(self, name: str):
        raise InputError(f"a board that encodes and decodes on its own shows no node ('{name}')")

    def snapshot(self) -> dict:
        return {"clock": self.board.clock}

    def restore(self, snap: dict) -> None:
        self.board.restore(snap)  # RESET: the board's session and codec state start over
        self.pending, self.steps_seen, self.base = [], 0, 0

    def reset(self) -> None:
        self.board.reset()
        self.pending, self.steps_seen, self.base = [], 0, 0

    def link_summary(self) -> dict:
        return {**self.board.link_summary(), "codec": dict(self.summary)}

    def close(self) -> None:
        self.board.close()


class ForwardEncoder:
    """The encoder role: the model's sample encoder up to its counts (channel selection, resampling,
    quantization to int16), forwarded as they are; the board does offset, scale and encoding."""

    def __init__(self, inner, board: OnBoard | None, decoder, input_shape: tuple):
        self.inner, self.board, self.decoder, self.model_input_shape = inner, board, decoder, tuple(input_shape)
        self.name = "board:" + inner.name
        self.input_shape = None

    def configure(self, info, input_shape, dt) -> None:
        self.inner.configure(info, self.model_input_shape, dt)  # the model's input, not the board's counts
        enc = self.inner
        if enc.unit is None:
            enc.unit = default_unit(enc.scale, enc.offset, enc.n_in)
            log.info("--board-encodes: samples go to the board as int16 counts of unit=%s (encode on the host with "
                     "--encoder unit=... for the same decisions)", "|".join(repr(float(u)) for u in enc.unit))
        self.input_shape = (enc.n_in,)
        if self.board is not None:
            self.board.configure(enc, self.decoder)

    def encode(self, chunk) -> Steps:
        t, v, arrival, labels = self.inner.samples(chunk)
        return Steps(np.asarray(v, np.float32), t, arrival, labels)

    def flush(self):
        return None

    def reset(self) -> None:
        self.inner.reset()

    def spec(self) -> str:
        return self.inner.spec()

    def __deepcopy__(self, memo):  # the pipeline's warm-up copies the encoder: not the board
        return ForwardEncoder(copy.deepcopy(self.inner, memo), None, self.decoder, self.model_input_shape)


class AudioForward:
    """The encoder role for the audio front end: mono audio to int16 samples (``floor(x·2^15 + 0.5)``,
    saturated: exact for 16-bit PCM), forwarded in whole frames of ``hop`` samples, one step each
    (x: the frame's samples), with the times, arrival and labels the Python front end gives its
    frames; the last partial frame padded with zeros at the end, as the front end's flush does."""

    def __init__(self, inner, board: OnBoard | None, decoder, input_shape: tuple):
        self.inner, self.board, self.decoder, self.model_input_shape = inner, board, decoder, tuple(input_shape)
        self.name = "board:" + inner.name
        self.input_shape = None
        self.buf = np.zeros(0, np.int64)
        self.rounded = False

    def configure(self, info, input_shape, dt) -> None:
        fe = self.inner
        fe.configure(info, self.model_input_shape, dt)  # the model's input, not the board's samples
        audio_check(fe)
        self.input_shape = (fe.hop,)
        self.buf = np.zeros(0, np.int64)
        if self.board is not None:
            self.board.configure(fe, self.decoder)

    def _frames(self, n: int, arrival: float) -> Steps:
        fe, hop = self.inner, self.inner.hop
        x = self.buf[:n * hop].reshape(n, hop).astype(np.float32)
        self.buf = self.buf[n * hop:]
        k = np.arange(fe.frames + 1, fe.frames + 1 + n, dtype=np.float64)
        fe.frames += n
        t = (fe.t0 or 0.0) + k * hop / fe.rate
        labels = None if fe.last_label is None else np.array([fe.last_label] * n, dtype=object)
        return Steps(x=x, t=t, arrival=np.full(n, arrival), labels=labels)

    def encode(self, chunk) -> Steps:
        from .encoders.frontend import quantize_input

        fe = self.inner
        v = np.asarray(chunk.values, np.float32)
        if v.ndim == 2:
            if v.shape[1] != 1:
                raise InputError(f"--board-encodes: the board's audio front end takes mono audio; this source has "
                                 f"{v.shape[1]} channels (encode on the host: leave out --board-encodes)")
            v = v[:, 0]
        if fe.t0 is None and len(chunk.t):
            fe.t0 = float(chunk.t[0])
        fe.last_arrival = chunk.arrival
        if chunk.labels is not None and len(chunk.labels):
            fe.last_label = chunk.labels[-1]
        q = quantize_input(v)
        if not self.rounded and not np.array_equal(q.astype(np.float32) * np.float32(AUDIO_UNIT), v):
            self.rounded = True
            log.warning("--board-encodes: the audio is not 16-bit PCM; the board sees it rounded to 16 bits, so its "
                        "decisions may differ from the host's")
        self.buf = np.concatenate([self.buf, q])
        return self._frames(len(self.buf) // fe.hop, chunk.arrival)

    def flush(self):
        if not len(self.buf):
            return None
        self.buf = np.concatenate([self.buf, np.zeros(self.inner.hop - len(self.buf), np.int64)])
        return self._frames(1, self.inner.last_arrival)

    def reset(self) -> None:
        self.inner.reset()
        self.buf = np.zeros(0, np.int64)

    def spec(self) -> str:
        return self.inner.spec()

    def __deepcopy__(self, memo):  # the pipeline's warm-up copies the encoder: not the board
        c = AudioForward(copy.deepcopy(self.inner, memo), None, self.decoder, self.model_input_shape)
        c.input_shape, c.buf = self.input_shape, self.buf.copy()
        return c


class BoardDecisions:
    """The decoder role: the board's decisions as :class:`~.base.Decision`, with the time, arrival
    and ground truth (the most frequent label of the window's steps, ties to the lowest class
    index, then to the label met first) of the steps each covers."""

    def __init__(self, board: OnBoard, decoder):
        self.board, self.inner = board, decoder
        self.name = decoder.name
        self.reset()

    @property
    def labels(self):
        return self.inner.labels

    def set_labels(self, labels, force: bool = False) -> None:
        self.inner.set_labels(labels, force)

    def spec(self) -> str:
        return self.inner.spec()

    def reset(self) -> None:
        self.start = 0                     # stream index of the first step kept
        self.t, self.arr, self.truth = [], [], []
        self.codes: dict = {}
        self.names: dict = {}

    def update(self, outputs, steps: Steps) -> list[Decision]:
        T = len(steps)
        self.t += np.asarray(steps.t, np.float64).reshape(T).tolist()
        self.arr += np.asarray(steps.arrival, np.float64).reshape(T).tolist()
        self.truth += [None] * T if steps.labels is None else [self._code(v) for v in np.asarray(steps.labels).reshape(-1)]
        return self._decisions(self.board.take())

    def flush(self) -> list[Decision]:
        return self._decisions(self.board.flush())

    def _decisions(self, raw) -> list[Decision]:
        out = []
        for first, last, idx, conf in raw:
            e = last - self.start
            if not 0 <= e < len(self.t) or first < self.start:
                raise BoardError(f"the board decided on steps {first}..{last}, which the host did not send")
            arrival = self.arr[e]
            label = None if idx < 0 else (self.labels[idx] if self.labels is not None else str(idx))
            out.append(Decision(t=self.t[e], label=label, index=int(idx), confidence=float(conf),
                                latency=now() - arrival if arrival > 0 and math.isfinite(arrival) else None,
                                truth=self._majority(first - self.start, e + 1)))
        # keep the steps a later window may cover: those of the latest window on
        keep = max(0, len(self.t) - self.inner.window)
        if keep:
            del self.t[:keep], self.arr[:keep], self.truth[:keep]
            self.start += keep
        return out

    def _code(self, v):
        """A truth label's code: a class index for the model's classes, else in order of first meeting."""
        if v is None or (isinstance(v, (float, np.floating)) and not (math.isfinite(v) and v >= 0)):
            return None
        if isinstance(v, (bool, np.bool_, int, np.integer, float, np.floating)):
            if v < 0:
                return None
            i = int(v)
            name = self.labels[i] if self.labels is not None and i < len(self.labels) else str(i)
        else:
            name = v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
            if name == "":
                return None
        c = self.codes.get(name)
        if c is None:
            known = {n: k for k, n in enumerate(self.labels or ())}
            c = known.get(name, max(len(self.labels or ()), max(self.codes.values(), default=-1) + 1))
            self.codes[name], self.names[c] = c, name
        return c

    def _majority(self, a: int, b: int):
        codes = [c for c in self.truth[a:b] if c is not None]
        if not codes:
            return None
        return self.names[int(np.argmax(np.bincount(codes)))]


def on_board(encoder, decoder, open_board):
    """The pipeline's encoder, session and decoder roles for a board that encodes and decodes;
    ``open_board()`` opens the :class:`~.board.BoardSession` (after the checks here)."""
    audio = getattr(encoder, "name", None) == "audio"
    if not audio and (not hasattr(encoder, "samples") or getattr(encoder, "name", None) not in P.CODEC_ENCODERS):
        raise InputError(f"--board-encodes: the board encodes sensor samples with {', '.join(P.CODEC_ENCODERS)} "
                         "and audio with the audio front end; "
                         f"this stream's encoder is '{encoder.spec()}' (encode on the host: leave out --board-encodes)")
    if getattr(decoder, "name", None) not in P.CODEC_DECODERS:
        raise InputError(f"--board-encodes: the board decodes with the count decoder; this stream's decoder is "
                         f"'{decoder.spec()}' (decode on the host: leave out --board-encodes)")
    board = OnBoard(open_board())
    fwd = (AudioForward if audio else ForwardEncoder)(encoder, board, decoder, board.model_input_shape)
    return fwd, board, BoardDecisions(board, decoder)
