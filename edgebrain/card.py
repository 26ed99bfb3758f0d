"""What a model carries besides its graph: how to stream it and its model card.

Both are stored in the model's metadata (``graph.meta["stream"]`` and ``graph.meta["card"]``,
plain JSON-like dicts inside the .ebm file); these classes are their typed form:

    cfg = StreamConfig.from_meta(model.graph.meta)     # encoder, decoder, labels, rate, ...
    cfg = cfg.updated(n_outputs, decoder="count:window=25", rate=50)   # checked
    model.graph.meta["stream"] = cfg.to_meta()

Keys this version does not know are kept in ``extra`` and written back unchanged. Checking that
an encoder or decoder spec can be built needs the stream registry: see
:func:`edgebrain.stream.pipeline.set_stream_config`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import InputError

_STREAM_KEYS = ("encoder", "labels", "decoder", "rate", "source_options")


@dataclass
class StreamConfig:
    """The stream settings a model carries, all optional.

    ``encoder`` and ``decoder``: spec strings (``"delta:threshold=0.1"``, ``"count:window=25"``);
    ``labels``: class names in output order; ``rate``: model steps per second of sensor time
    (the encoder's dt is 1/rate); ``source_options``: options for opening a source (e.g. CSV
    columns); ``extra``: any other keys found in the metadata.
    """

    encoder: str | None = None
    labels: list | None = None
    decoder: str | None = None
    rate: float | None = None
    source_options: dict | None = None
    extra: dict = field(default_factory=dict)
    _order: tuple = field(default=(), repr=False, compare=False)  # the keys as read, to write them back alike

    @classmethod
    def from_meta(cls, meta: dict) -> "StreamConfig":
        """The configuration stored in ``meta`` (a graph's metadata) under ``"stream"``."""
        d = dict((meta or {}).get("stream") or {})
        order = tuple(d)
        return cls(**{k: d.pop(k, None) for k in _STREAM_KEYS}, extra=d, _order=order)

    def to_meta(self) -> dict:
        """The dict stored as ``graph.meta["stream"]``: the keys read keep their place, new
        settings follow in the order encoder, labels, decoder, rate, source_options."""
        known = {k: getattr(self, k) for k in _STREAM_KEYS if getattr(self, k) is not None}
        out = {}
        for k in self._order:
            if k in known:
                out[k] = known.pop(k)
            elif k in self.extra:
                out[k] = self.extra[k]
        out.update(known)
        out.update({k: v for k, v in self.extra.items() if k not in out})
        return out

    @property
    def dt(self) -> float | None:
        """Seconds of sensor time one model step stands for (1 / rate), None without a rate."""
        return (1.0 / float(self.rate)) if self.rate else None

    def class_names(self, n_outputs: int) -> list[str]:
        """The class names, as strings; "0", "1", ... for ``n_outputs`` outputs when none are set."""
        if self.labels:
            return [str(x) for x in self.labels]
        return [str(k) for k in range(n_outputs)]

    def updated(self, n_outputs: int, *, encoder: str | None = None, labels: list | None = None,
                decoder: str | None = None, rate: float | None = None) -> "StreamConfig":
        """A copy with the settings given (None: unchanged), checking the class names against the
        model's ``n_outputs`` and the rate. Encoder and decoder specs are not built here."""
        new = StreamConfig(self.encoder, self.labels, self.decoder, self.rate, self.source_options, dict(self.extra),
                           self._order)
        if encoder is not None:
            new.encoder = encoder
        if labels is not None:
            names = list(labels)
            if len(names) != n_outputs or not all(names):
                raise InputError(f"--class-names gives {len(names)} names; the model has {n_outputs} outputs")
            new.labels = names
        if decoder is not None:
            new.decoder = decoder
        if rate is not None:
            if not rate > 0:
                raise InputError(f"--rate {rate}; expected steps per second > 0")
            new.rate = float(rate)
        return new


_CARD_KEYS = ("title", "data", "labels", "results", "accuracy", "footprint", "activity", "latency_us", "machine",
              "confusion_int8", "confusion_float")


@dataclass
class ModelCard:
    """A trained model's card (zoo models): what it was trained on and how well and cheaply it runs.

    ``title``, ``data`` (the dataset and split); ``labels`` (class names); ``results`` (rows
    ``{"model", "precision", "accuracy", ...}``); ``accuracy`` (the headline ``{"float", "int8"}``);
    ``footprint``, ``activity`` (spike activity, synaptic operations per second), ``latency_us``
    (per-step ``{"float": {"p50", ...}, "int": ...}`` on ``machine``), ``confusion_int8`` and
    ``confusion_float`` (rows truth, columns decision); ``extra``: any other keys.
    """

    title: str = ""
    data: str = ""
    labels: list = field(default_factory=list)
    results: list = field(default_factory=list)
    accuracy: dict = field(default_factory=dict)
    footprint: dict = field(default_factory=dict)
    activity: dict = field(default_factory=dict)
    latency_us: dict = field(default_factory=dict)
    machine: str | None = None
    confusion_int8: list | None = None
    confusion_float: list | None = None
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_meta(cls, meta: dict) -> "ModelCard | None":
        """The card stored in ``meta`` (a graph's metadata) under ``"card"``, None if there is none."""
        d = dict((meta or {}).get("card") or {})
        if not d:
            return None
        kw = {k: d.pop(k) for k in _CARD_KEYS if d.get(k) is not None}
        return cls(**kw, extra=d)

    def to_meta(self) -> dict:
        """The dict stored as ``graph.meta["card"]``."""
        out = {k: getattr(self, k) for k in _CARD_KEYS if getattr(self, k) is not None}
        out.update(self.extra)
        return out
