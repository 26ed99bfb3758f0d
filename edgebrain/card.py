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

import math
from dataclasses import dataclass, field

from .errors import InputError, ModelError

_STREAM_KEYS = ("encoder", "labels", "decoder", "rate", "source_options")

#: the fastest stream a model may ask for, in model steps per second of sensor time (1 µs steps)
MAX_RATE = 1e6
#: longest encoder or decoder spec string, and most class names, a model file may carry
MAX_SPEC = 1 << 16
MAX_LABELS = 1 << 16


def _num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def check_rate(rate, what: str = "rate") -> float:
    """``rate`` as a float if it is a number of steps per second in (0, MAX_RATE]; else an
    :class:`InputError` saying ``what`` was given and what was expected."""
    if not (_num(rate) and 0 < rate <= MAX_RATE):
        raise InputError(f"{what} {rate!r}; expected steps per second > 0 and at most {MAX_RATE:g}")
    return float(rate)


def check_labels(labels, n_outputs: int | None, what: str) -> list:
    """Class names: a list of non-empty strings (or numbers), one per model output."""
    if not (isinstance(labels, list) and len(labels) <= MAX_LABELS
            and all((isinstance(x, str) and x) or _num(x) for x in labels)):
        raise ModelError(f"{what} = {_short(labels)}; expected a list of class names (non-empty strings)")
    if n_outputs is not None and len(labels) != n_outputs:
        raise ModelError(f"{what} has {len(labels)} class names; expected {n_outputs}, one per model output")
    return labels


def _short(v) -> str:
    r = repr(v)
    return r if len(r) <= 60 else r[:57] + "..."


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

    @staticmethod
    def check_meta(d, n_outputs: int | None = None) -> None:
        """Check the stored form (``graph.meta["stream"]`` as read from a file): types and ranges
        of every known key, raising :class:`ModelError` naming the field. Whether an encoder or
        decoder spec builds is checked where the stream registry is (when the stream starts)."""
        if d is None:
            return
        if not isinstance(d, dict):
            raise ModelError(f"field 'meta.stream' is {_short(d)}; expected an object")
        for k in ("encoder", "decoder"):
            v = d.get(k)
            if v is not None and not (isinstance(v, str) and v.strip() and len(v) <= MAX_SPEC):
                raise ModelError(f"field 'meta.stream.{k}' = {_short(v)}; expected a spec string such as "
                                 f"{'direct' if k == 'encoder' else 'count:window=25'!r}")
        if d.get("labels") is not None:
            check_labels(d["labels"], n_outputs, "field 'meta.stream.labels'")
        if d.get("rate") is not None:
            try:
                check_rate(d["rate"], "field 'meta.stream.rate' =")
            except InputError as e:
                raise ModelError(e.detail) from None
        opts = d.get("source_options")
        if opts is not None and not (isinstance(opts, dict) and all(
                isinstance(k, str) and (isinstance(v, (str, bool)) or _num(v)) for k, v in opts.items())):
            raise ModelError(f"field 'meta.stream.source_options' = {_short(opts)}; expected an object of "
                             "option names to strings or numbers")

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
            new.rate = check_rate(rate, "--rate")
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

    @staticmethod
    def check_meta(d) -> None:
        """Check the stored form (``graph.meta["card"]`` as read from a file): the type of every
        known key and what readers of a card take from it, raising :class:`ModelError`."""
        if d is None:
            return
        if not isinstance(d, dict):
            raise ModelError(f"field 'meta.card' is {_short(d)}; expected an object")

        def bad(k, v, expected):
            raise ModelError(f"field 'meta.card.{k}' = {_short(v)}; expected {expected}")

        for k in ("title", "data", "machine"):
            if d.get(k) is not None and not isinstance(d[k], str):
                bad(k, d[k], "a string")
        if d.get("labels") is not None:
            check_labels(d["labels"], None, "field 'meta.card.labels'")
        for k in ("accuracy", "footprint"):
            v = d.get(k)
            if v is not None and not (isinstance(v, dict) and all(x is None or _num(x) for x in v.values())):
                bad(k, v, "an object of numbers")
        act = d.get("activity")
        if act is not None and not (isinstance(act, dict) and all(
                act.get(k) is None or _num(act[k])
                for k in ("mean_spike_activity", "synaptic_ac_per_s", "synaptic_mac_per_s"))):
            bad("activity", act, "an object whose activity and synaptic operation rates are numbers")
        res = d.get("results")
        if res is not None:
            if not isinstance(res, list):
                bad("results", res, "a list of rows")
            for i, r in enumerate(res):
                if not (isinstance(r, dict) and isinstance(r.get("model"), str)
                        and isinstance(r.get("precision"), str) and _num(r.get("accuracy"))):
                    bad(f"results[{i}]", r, 'a row with "model" and "precision" (strings) and "accuracy" (a number)')
        lat = d.get("latency_us")
        if lat:
            if not (isinstance(lat, dict) and all(isinstance(lat.get(p), dict) and _num(lat[p].get("p50"))
                                                  for p in ("float", "int"))):
                bad("latency_us", lat, 'an object with "float" and "int", each with a "p50" in microseconds')
        for k in ("confusion_int8", "confusion_float"):
            v = d.get(k)
            if v is not None and not (isinstance(v, list) and all(
                    isinstance(row, list) and all(_num(x) for x in row) for row in v)):
                bad(k, v, "a matrix (a list of rows of numbers)")

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
