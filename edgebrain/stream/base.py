"""The pieces of a stream and what flows between them.

    source ──Samples/Events──▶ encoder ──Steps──▶ session ──outputs──▶ decoder ──Decision──▶ sinks

* A **source** yields chunks: :class:`Samples` (a time series: IMU, audio) or :class:`Events`
  (an event camera). It never holds a whole recording: memory stays constant in file length.
  Damage it can step over is counted in ``source.stats`` (and logged); damage it cannot is an
  :class:`edgebrain.errors.FormatError` naming the file and offset.
* An **encoder** turns chunks into model input, one row per model timestep (:class:`Steps`),
  carrying for every step its stream time and the wall-clock time its last sample arrived
  (for latency), and the ground-truth label when the source has one.
* The session (``edgebrain.session.Session``) runs the model over those rows.
* A **decoder** turns model outputs into :class:`Decision` s (label, confidence, or none).
* A **sink** writes decisions somewhere (stdout JSON lines, CSV, file, UDP, MQTT).

Each piece is a small object configured from a spec string such as ``"delta:threshold=0.1"``
(see :func:`parse_spec`), so a model can carry its own pre-processing in its metadata
(``graph.meta["stream"]``) and the command line can override it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from ..errors import InputError
from ..options import option_value

log = logging.getLogger("edgebrain.stream")

#: the in-memory event record: t in microseconds from the start of the recording, p in {0, 1}
EVENT_DTYPE = np.dtype([("x", "<u2"), ("y", "<u2"), ("t", "<i8"), ("p", "u1")])


def now() -> float:
    """Wall-clock time used for latency (seconds, monotonic)."""
    return time.perf_counter()


# ---------------------------------------------------------------------- chunks


@dataclass
class Samples:
    """A chunk of a multichannel time series.

    t: (n,) float64 stream time of each sample in seconds (from the first sample);
    values: (n, channels) float32; labels: (n,) ground truth per sample, or None;
    arrival: wall-clock time (:func:`now`) at which this chunk became available.
    """

    t: np.ndarray
    values: np.ndarray
    labels: np.ndarray | None = None
    arrival: float = 0.0

    def __len__(self):
        return len(self.t)


@dataclass
class Events:
    """A chunk of camera events (``EVENT_DTYPE``, time-ordered), and when it arrived.

    ``t_end`` (µs), when known, says that no event earlier than it will follow (the source
    has seen that far), which lets a time-window binner close windows without waiting for the
    next event."""

    events: np.ndarray
    arrival: float = 0.0
    t_end: int | None = None

    def __len__(self):
        return len(self.events)


@dataclass
class Steps:
    """Model input for a run of timesteps: x (T, *input_shape) float32, and per step its stream
    time in seconds (end of the step), the arrival time of its newest sample, and the truth label
    (or None).

    ``gaps``: ``(index, seconds)`` pairs, one per gap in the input longer than the encoder's
    ``max_gap``: the gap (of that many seconds of stream time) lies before step ``index``
    (0..len), and the model state and the decoder start over there (see the pipeline)."""

    x: np.ndarray
    t: np.ndarray
    arrival: np.ndarray
    labels: np.ndarray | None = None
    gaps: tuple = ()

    def __len__(self):
        return len(self.t)

    def part(self, a: int, b: int) -> "Steps":
        """Steps ``a:b`` (views), without gaps."""
        return Steps(self.x[a:b], self.t[a:b], self.arrival[a:b], None if self.labels is None else self.labels[a:b])


@dataclass
class Decision:
    t: float                      # stream time in seconds
    label: str | None             # None: no decision (not confident enough, or nothing seen)
    index: int                    # class index, -1 for no decision
    confidence: float             # 0..1
    scores: np.ndarray | None = None
    latency: float | None = None  # seconds from the newest sample's arrival to this decision
    truth: str | None = None      # ground truth at t, when the source has labels
    flush: str | None = None      # a partial window decided at the "end" of the stream or before a "gap"

    def as_dict(self) -> dict:
        d = {"t": round(float(self.t), 6), "label": self.label, "confidence": round(float(self.confidence), 4)}
        if self.truth is not None:
            d["truth"] = self.truth
        if self.latency is not None:
            d["latency_ms"] = round(1e3 * self.latency, 4)
        if self.flush is not None:
            d["flush"] = self.flush
        return d


def until(chunk, seconds: float):
    """``(part, reached)``: the items of ``chunk`` earlier than ``seconds`` of stream time (samples
    by ``t``, events by ``t`` in µs), and whether the chunk reached that time (an item at or after
    it, or an ``Events.t_end`` at or past it). A cut event chunk ends at ``seconds`` (``t_end``), so
    that windows ending there close."""
    if isinstance(chunk, Events):
        lim = int(np.ceil(seconds * 1e6))  # events at whole µs: t < seconds ⇔ t < ceil(seconds·1e6)
        t = chunk.events["t"]
        keep = t < lim
        reached = not keep.all() or (chunk.t_end is not None and chunk.t_end >= lim)
        if not reached:
            return chunk, False
        return Events(chunk.events[keep], chunk.arrival, lim), True
    keep = np.asarray(chunk.t) < seconds
    if keep.all():
        return chunk, False
    return Samples(chunk.t[keep], chunk.values[keep], None if chunk.labels is None else chunk.labels[keep],
                   chunk.arrival), True


# ---------------------------------------------------------------------- sources


@dataclass
class SourceInfo:
    """What a source is (filled in as soon as the header is read)."""

    format: str
    kind: str                          # "samples" or "events"
    path: str | None = None
    rate: float | None = None          # samples per second (samples sources)
    channels: int | None = None
    channel_names: list | None = None
    sensor_size: tuple | None = None   # (width, height) for event cameras
    label_names: list | None = None    # class names the file's labels use, if any
    n_items: int | None = None         # samples or events, when known without reading everything
    duration: float | None = None      # seconds, when known
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if v is not None and k != "extra"}
        if "sensor_size" in d:
            d["sensor_size"] = list(d["sensor_size"])
        d.update(self.extra)
        return d


@dataclass
class RepairStats:
    """Counted, logged repairs: damage a source stepped over while keeping the data around it."""

    repaired: int = 0           # items fixed or skipped with resynchronisation
    dropped: int = 0            # items that could not be used (e.g. events outside the sensor)
    reconnects: int = 0
    messages: list = field(default_factory=list)
    max_messages: int = 20

    def note(self, kind: str, where: str, what: str, n: int = 1) -> None:
        if kind == "dropped":
            self.dropped += n
        elif kind == "reconnect":
            self.reconnects += n
        else:
            self.repaired += n
        msg = f"{where}: {what}"
        if len(self.messages) < self.max_messages:
            self.messages.append(msg)
            log.warning(msg)
        elif len(self.messages) == self.max_messages:
            self.messages.append("… further repairs not listed")

    def as_dict(self) -> dict:
        return {"repaired": self.repaired, "dropped": self.dropped, "reconnects": self.reconnects,
                "messages": list(self.messages)}


class Source:
    """Base class: iterate :meth:`chunks`; close when done (also a context manager)."""

    info: SourceInfo
    live: bool = False

    def __init__(self):
        self.stats = RepairStats()

    def chunks(self) -> Iterator[Samples | Events]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---------------------------------------------------------------------- encoders, decoders, sinks


class Encoder:
    """Base class. ``configure`` is called once with the source's info and the model's input
    shape and timestep (seconds, or None); ``encode`` turns one chunk into zero or more steps."""

    name = "encoder"

    def configure(self, info: SourceInfo, input_shape: tuple, dt: float | None) -> None:
        pass

    def encode(self, chunk) -> Steps:
        raise NotImplementedError

    def flush(self) -> Steps | None:
        """Steps still buffered when the source ends (a partial window), or None."""
        return None

    def reset(self) -> None:
        pass

    def spec(self) -> str:
        return self.name


class Decoder:
    name = "decoder"

    def update(self, outputs: np.ndarray, steps: Steps) -> list[Decision]:
        raise NotImplementedError

    def reset(self) -> None:
        pass


class Sink:
    name = "sink"

    def emit(self, decision: Decision) -> None:
        raise NotImplementedError

    def summary(self, summary: dict) -> None:
        pass

    def close(self) -> None:
        pass


# ---------------------------------------------------------------------- spec strings


def parse_spec(spec: str | dict) -> tuple[str, dict]:
    """``"name:key=value,key=value"`` → (name, {key: value}) with numbers, booleans and
    ``a|b|c`` lists parsed; a dict ``{"type": name, ...}`` is accepted as well."""
    if isinstance(spec, dict):
        d = dict(spec)
        try:
            return str(d.pop("type")), d
        except KeyError:
            raise InputError(f"spec {spec!r} has no 'type'") from None
    spec = spec.strip()
    name, _, rest = spec.partition(":")
    if not name:
        raise InputError(f"empty spec {spec!r}; expected name[:key=value,...]")
    kw = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        k, eq, v = part.partition("=")
        if not eq or not k:
            raise InputError(f"in spec '{spec}': '{part}' is not key=value")
        kw[k.strip()] = option_value(v.strip())
    return name.strip(), kw


def build(registry: dict, spec, what: str):
    """Instantiate ``registry[name](**kwargs)`` from a spec, with a clear error for bad names
    or arguments."""
    name, kw = parse_spec(spec)
    cls = registry.get(name)
    if cls is None:
        raise InputError(f"unknown {what} '{name}'; expected one of {', '.join(sorted(registry))}")
    try:
        return cls(**kw)
    except TypeError as e:
        raise InputError(f"{what} '{name}': {e}") from None
