"""A running stream: source → encoder → session → decoder → sinks, with its statistics.

    pipe = Pipeline(source, encoder, session, decoder, [sink], labels=["SEATED", ...])
    summary = pipe.run()          # until the source ends, stop() is called, --duration, or Ctrl-C

**What the figures cover** (also in the summary, ``covers``). *Set-up* (``setup_seconds``: loading the
model, opening the source, compiling the kernels or loading them from Numba's cache, and a warm-up
step of the model and the encoder on zero input, after which the session is put back as it was) ends
before the clock starts: ``wall_seconds``, ``realtime_factor`` (stream time / wall time) and the
throughputs are those of the stream alone. *Latency* is measured per decision from the arrival of the
newest sample it depends on (the time the source handed that sample over) to the moment the decision
is emitted; ``latency_ms`` holds the steady-state decisions only. Not in it, and counted in
``latency_excluded``: the decisions on a partial window made because the stream ended or paused
(``flush``: the decoder's flush at the end or before a long gap; such a decision carries
``flush="end"`` or ``"gap"``, and ``flush_decisions`` counts them), those whose newest sample
arrived while the stream was being set up (``setup``: a live link's first lines), and those whose
newest sample arrived before a live link's reconnection (``reconnect``: they waited through it).
With ``realtime=True`` a file is played back at its recorded rate: samples are released at their
recorded times, so latency and CPU load are those of a live sensor.

**Duration.** ``max_seconds`` stops the stream at exactly that stream time, on every source: the
chunk that crosses it is cut before it is encoded (samples by ``t``, events by ``t`` in µs), so no
item at or after it is counted or waited for (``--realtime`` too), and ``stream_seconds`` ends
within one model step of it.

**Precision.** :func:`build_pipeline` runs the model at the precision it was deployed at unless told
otherwise (:func:`deployed_precision`: int for a quantized model); the summary gives both.

**Gaps.** An encoder that watches the time between events (the ``bin`` encoder; ``max_gap``
seconds of stream time, default 1) steps shorter pauses with empty input and reports longer ones
in its :class:`~.base.Steps` (``gaps``). At each one the pipeline decides the decoder's partial
window (nothing seen before the gap is lost), then resets the decoder and the model's state, and
goes on from the next event; the summary counts them (``gaps``: ``count``, ``seconds``,
``max_gap_s``). ``realtime`` playback does not wait through them either.

**Observers.** ``Pipeline(..., observers=[obs])`` lets other code watch the stream without taking
part in it (a timeline figure, a monitor). An observer defines any of ``on_steps(steps, outputs,
spikes)`` (after each run of the model: the :class:`~.base.Steps`, the outputs (T, n_out) float32,
and ``spikes`` {node: (T, n) spike counts} when the observer has ``wants_spikes = True``, else
None), ``on_decision(decision)`` (every decision, flushes included, before the sinks) and
``on_summary(summary)``. The arrays are the pipeline's own: copy what you keep. Without observers
nothing is collected for them.
"""

from __future__ import annotations

import copy
import logging
import os
import socket
import threading
import time
import urllib.parse

import numpy as np

from .. import ops
from ..card import StreamConfig
from ..errors import InputError
from ..options import merge_spec, positive_number
from ..safeio import local_path, reading
from .base import EVENT_DTYPE, Decision, Events, Samples, Steps, now, parse_spec, until

log = logging.getLogger("edgebrain.stream")

#: what each figure of the summary covers (the summary's ``covers``)
COVERS = {
    "setup_seconds": "before the clock starts: model load, source opening, kernel compilation or cache load, warm-up",
    "wall_seconds": "wall-clock time of the stream itself, set-up excluded",
    "realtime_factor": "stream_seconds / wall_seconds",
    "latency_ms": "arrival of a decision's newest sample → the decision, steady state only: without the decisions "
                  "on a partial window at the end or before a gap (flush_decisions), nor those whose newest sample "
                  "arrived during set-up or before a reconnection (latency_excluded)",
}


class Pipeline:
    def __init__(self, source, encoder, session, decoder, sinks=(), labels=None, realtime: bool = False,
                 activity: bool = True, max_seconds: float | None = None, dt: float | None = None,
                 max_gap: float | None = None, observers=(), setup_start: float | None = None,
                 deployed_precision: str | None = None):
        t_setup0 = now() if setup_start is None else setup_start  # set-up began (the caller's load, if given)
        self.source, self.encoder, self.session, self.decoder = source, encoder, session, decoder
        if max_seconds is not None:
            max_seconds = positive_number(max_seconds, "--duration", "seconds")
        if max_gap is not None:
            max_gap = positive_number(max_gap, "max_gap", "seconds")
            if not hasattr(encoder, "max_gap"):
                raise InputError(f"max_gap={max_gap:g}: the encoder '{encoder.spec()}' does not watch gaps in time "
                                 "(the event binner does)")
            encoder.max_gap = max_gap
        self.max_gap = getattr(encoder, "max_gap", None)
        self.dt = dt
        self.sinks = list(sinks)
        self.labels = list(labels) if labels else None
        self.realtime = realtime
        self.max_seconds = max_seconds
        self.deployed_precision = deployed_precision
        self._stop = threading.Event()
        self.observers = list(observers)
        self._on_steps = [o.on_steps for o in self.observers if hasattr(o, "on_steps")]
        self._on_decision = [o.on_decision for o in self.observers if hasattr(o, "on_decision")]
        self._want_spikes = any(getattr(o, "wants_spikes", False) for o in self.observers if hasattr(o, "on_steps"))
        self._spiking = session.spiking_nodes if (activity or self._want_spikes) else []
        # statistics
        self.latencies: list[float] = []        # steady-state decisions (see the module)
        self.flush_latencies: list[float] = []  # decisions on a partial window, at the end or before a gap
        self.latency_excluded = {"flush": 0, "setup": 0, "reconnect": 0}
        self.decisions = 0
        self.no_decision = 0
        self.flush_decisions = 0
        self.correct = 0
        self.scored = 0
        self.steps = 0
        self.items = 0
        self.stream_time = 0.0
        self.gaps = 0
        self.gap_seconds = 0.0
        self._pace_skip = 0          # µs of long gaps skipped by realtime playback
        self._pace_last = None       # the latest event time played back
        self._t_ready = -np.inf      # when set-up ended
        self._t_reconnected = -np.inf  # arrival of the first chunk after the latest reconnection
        self._reconnects = source.stats.reconnects
        self._warm = False
        self.spike_sum = {n: 0.0 for n in self._spiking}
        self.spike_n = {n: 0 for n in self._spiking}
        # raw views of the spiking nodes' outputs (spike counts, scale 1 in both precisions)
        self._spike_views = {n: session.output_buffer(n) for n in self._spiking}
        self._n_out = session.output_size
        # steps per model call at most: their input and recorded spikes stay within about 16 MiB
        per_step = 4 * (int(np.prod(session.program.input_shape)) + sum(v.size for v in self._spike_views.values()))
        self._block = max(1, min(4096, (16 << 20) // max(1, per_step * session.batch)))
        self.confusion: dict = {}
        self.setup_seconds = now() - t_setup0

    def stop(self) -> None:
        """Ask the stream to end after the current chunk (thread-safe)."""
        self._stop.set()

    # ------------------------------------------------------------------ the loop
    def run(self, progress=None) -> dict:
        """Run to the end of the source; ``progress(items_done)`` is called per chunk if given."""
        s = self.session
        t_setup = now()
        try:
            self.encoder.configure(self.source.info, tuple(s.program.input_shape), self.dt)
            self._warm_up()
        except BaseException:  # a bad setting, or Ctrl-C while compiling: the source still closes
            self.source.close()
            raise
        t_wall0 = self._t_ready = now()
        self.setup_seconds += t_wall0 - t_setup
        cpu0 = time.process_time()
        interrupted = False
        encode = getattr(self.encoder, "encode_parts", None) or (lambda c: (self.encoder.encode(c),))
        limit = self.max_seconds
        try:
            for chunk in self.source.chunks():
                if self.source.stats.reconnects != self._reconnects:
                    self._reconnects = self.source.stats.reconnects
                    arrival = getattr(chunk, "arrival", 0.0)
                    self._t_reconnected = arrival if arrival > 0 else now()
                reached = False
                if limit is not None:
                    chunk, reached = until(chunk, limit)
                pace = self.realtime and not self.source.live
                if len(chunk) or not (reached and isinstance(chunk, Samples)):  # events: t_end may close windows
                    for part in (self._paced(chunk, t_wall0, reached) if pace else (chunk,)):
                        self.items += len(part)
                        for steps in encode(part):
                            self._process(steps)
                if progress:
                    progress(self.items)
                if self._stop.is_set() or reached:
                    break
            tail = self.encoder.flush()
            if tail is not None:
                self._process(tail)
            self._flush("end")
        except KeyboardInterrupt:
            interrupted = True
        finally:
            self.source.close()
        wall = now() - t_wall0
        summary = self._summary(wall, time.process_time() - cpu0, interrupted)
        for k in self.sinks:
            k.summary(summary)
        for o in self.observers:
            if hasattr(o, "on_summary"):
                o.on_summary(summary)
        return summary

    def _warm_up(self) -> None:
        """Compile, or load from Numba's cache, what the stream calls (the model's one-step and many-step
        paths, the encoder) on zero input, and put the session back as it was: set-up is not the first
        decisions' latency."""
        if self._warm:
            return
        self._warm = True
        s = self.session
        snap, sat = s.snapshot(), s.saturations.copy()
        x = np.zeros(((s.batch,) if s.batch > 1 else ()) + tuple(s.program.input_shape), np.float32)
        try:
            if s.batch == 1:
                s.step(x)
            s.run(np.zeros((2,) + x.shape, np.float32), record=self._spiking)
        finally:
            s.restore(snap)
            s.saturations[...] = sat
        self._warm_encoder()

    def _warm_encoder(self) -> None:
        """A copy of the configured encoder on a made-up chunk of the source's kind: its compiled kernels
        are loaded now rather than on the first real chunk."""
        info = self.source.info
        if info.kind == "events":
            ev = np.zeros(2, EVENT_DTYPE)
            ev["t"], ev["p"] = (0, 100_000), (0, 1)
            chunk = Events(ev, 0.0, t_end=200_000)
        else:
            ch = info.channels or len(info.channel_names or ())
            if not info.rate or not ch:
                return
            n = max(16, int(0.1 * info.rate))
            chunk = Samples(np.arange(n) / float(info.rate), np.zeros((n, ch), np.float32), None, 0.0)
        try:
            enc = copy.deepcopy(self.encoder)
            for _ in (getattr(enc, "encode_parts", None) or (lambda c: (enc.encode(c),)))(chunk):
                pass
            enc.flush()
        except Exception as e:  # noqa: BLE001 - best effort: the real chunks report real problems
            log.debug("encoder warm-up skipped: %s", e)

    def _paced(self, chunk, t_wall0, cut: bool = False):
        """Split a file chunk into the pieces a live sensor would deliver, each released at its
        recorded time (samples one by one; events in 1 ms slices); ``cut``: the chunk ends the stream."""
        if isinstance(chunk, Samples):
            for k in range(len(chunk)):
                _sleep_until(t_wall0 + float(chunk.t[k]))
                yield Samples(chunk.t[k:k + 1], chunk.values[k:k + 1],
                              None if chunk.labels is None else chunk.labels[k:k + 1], now())
        elif isinstance(chunk, Events):
            ev = chunk.events
            t = ev["t"]
            gap = None if self.max_gap is None else int(self.max_gap * 1e6)
            bounds = [0, len(ev)] if len(ev) else [0]
            if gap is not None and len(ev) and t[-1] - t[0] > gap:  # long gaps inside the chunk: not waited through
                bounds[1:1] = (np.flatnonzero(np.diff(t) > gap) + 1).tolist()
            for a, b in zip(bounds[:-1], bounds[1:]):
                if gap is not None and self._pace_last is not None and t[a] - self._pace_last > gap:
                    self._pace_skip += int(t[a]) - self._pace_last
                self._pace_last = max(int(t[b - 1]), self._pace_last or 0)
                edges = np.arange(t[a] // 1000 * 1000, t[b - 1] + 1000, 1000)
                cuts = np.searchsorted(t[a:b], edges[1:], side="left") + a
                start = a
                for e, c in zip(edges[1:], cuts):
                    _sleep_until(t_wall0 + (e - self._pace_skip) * 1e-6)
                    if c > start:
                        yield Events(ev[start:c], now(), t_end=int(e))
                    start = c
            if cut and chunk.t_end is not None:  # cut at --duration: the windows up to it close then
                _sleep_until(t_wall0 + (chunk.t_end - self._pace_skip) * 1e-6)
                yield Events(ev[:0], now(), t_end=chunk.t_end)
        else:  # pragma: no cover - sources only yield the two kinds
            yield chunk

    def _process(self, steps: Steps) -> None:
        if steps is None:
            return
        if steps.gaps:
            a = 0
            for i, seconds in steps.gaps:
                if i > a:
                    self._run_steps(steps.part(a, i))
                    a = i
                self._gap(seconds)
            steps = steps.part(a, len(steps))
        self._run_steps(steps)

    def _flush(self, why: str) -> None:
        """The decoder's partial window: decided now because the stream ended ("end") or paused ("gap")."""
        ds = (getattr(self.decoder, "flush", None) or list)()
        for d in ds:
            d.flush = why
        self._emit_all(ds)

    def _gap(self, seconds: float) -> None:
        """A gap longer than max_gap: decide what was seen before it, then start over."""
        self._flush("gap")
        self.decoder.reset()
        sat = self.session.saturations.copy()  # a count over the whole stream, not state
        self.session.reset()
        self.session.saturations[...] = sat
        self.gaps += 1
        self.gap_seconds += float(seconds)

    def _run_steps(self, steps: Steps) -> None:
        T = len(steps)
        if T > self._block:  # e.g. a run of empty frames (one zero frame repeated): bounded copies
            for a in range(0, T, self._block):
                self._run_steps(steps.part(a, min(a + self._block, T)))
            return
        if T == 0:
            return
        spikes = None
        if T <= 4 and self.session.batch == 1:
            # a live sensor hands over a sample or two at a time: step() costs microseconds where
            # run() with recording costs tens of them
            out2 = np.empty((T, self._n_out), np.float32)
            x = np.ascontiguousarray(steps.x, dtype=np.float32)
            if self._want_spikes:
                spikes = {n: np.empty((T, v.size), np.float32) for n, v in self._spike_views.items()}
            for k in range(T):
                y = self.session.step(x[k])
                out2[k] = np.concatenate([np.ravel(v) for v in y.values()]) if isinstance(y, dict) else np.ravel(y)
                for n, v in self._spike_views.items():
                    self.spike_sum[n] += float(v.sum())
                    self.spike_n[n] += v.size
                    if spikes is not None:
                        spikes[n][k] = v.ravel()
        else:
            out, rec = self.session.run(steps.x, record=self._spiking)
            if isinstance(out, dict):
                out = np.concatenate([v.reshape(T, -1) for v in out.values()], axis=1)
            out2 = out.reshape(T, -1)
            for n in self._spiking:
                a = rec[f"spikes/{n}"]
                self.spike_sum[n] += float(a.sum())
                self.spike_n[n] += a.size
            if self._want_spikes:
                spikes = {n: rec[f"spikes/{n}"].reshape(T, -1) for n in self._spiking}
        self.steps += T
        self.stream_time = float(steps.t[-1])
        for f in self._on_steps:
            f(steps, out2, spikes)
        self._emit_all(self.decoder.update(out2, steps))

    def _emit_all(self, ds: list) -> None:
        if not ds:
            return
        t = now()  # once, before any sink: what the decoder measured is ``t - latency`` ago
        for d in ds:
            self._emit(d, t)

    def _emit(self, d: Decision, t: float) -> None:
        self.decisions += 1
        if d.label is None:
            self.no_decision += 1
        if d.flush is not None:
            self.flush_decisions += 1
        if d.latency is not None:
            arrival = t - d.latency
            if d.flush is not None:
                self.flush_latencies.append(d.latency)
                self.latency_excluded["flush"] += 1
            elif arrival < self._t_ready:
                self.latency_excluded["setup"] += 1
            elif arrival < self._t_reconnected:
                self.latency_excluded["reconnect"] += 1
            else:
                self.latencies.append(d.latency)
        if d.truth is not None:
            self.scored += 1
            self.correct += int(d.label == d.truth)
            key = (d.truth, d.label)
            self.confusion[key] = self.confusion.get(key, 0) + 1
        for f in self._on_decision:
            f(d)
        for k in self.sinks:
            k.emit(d)

    # ------------------------------------------------------------------ results
    def _summary(self, wall: float, cpu: float, interrupted: bool) -> dict:
        lat = np.array(self.latencies) * 1e3
        pct = (lambda q: round(float(np.percentile(lat, q)), 4)) if lat.size else (lambda q: None)
        info = self.source.info
        out = {
            "source": info.path or info.format, "format": info.format, "kind": info.kind,
            "steps": self.steps, "items": self.items,
            "stream_seconds": round(self.stream_time, 6), "setup_seconds": round(self.setup_seconds, 6),
            "wall_seconds": round(wall, 6), "cpu_seconds": round(cpu, 6),
            "realtime_factor": round(self.stream_time / wall, 3) if wall > 0 else None,
            "throughput_per_s": round(self.items / wall, 1) if wall > 0 else None,
            "steps_per_s": round(self.steps / wall, 1) if wall > 0 else None,
            "decisions": self.decisions, "no_decision": self.no_decision, "flush_decisions": self.flush_decisions,
            "latency_ms": {"p50": pct(50), "p90": pct(90), "p99": pct(99),
                           "max": round(float(lat.max()), 4) if lat.size else None, "n": int(lat.size)},
            "latency_excluded": dict(self.latency_excluded),
            "input": self.source.stats.as_dict(),
            "gaps": {"count": self.gaps, "seconds": round(self.gap_seconds, 6),
                     "max_gap_s": None if self.max_gap is None else float(self.max_gap)},
            "spike_rate": {n: round(self.spike_sum[n] / self.spike_n[n], 5) for n in self._spiking if self.spike_n[n]},
            "precision": self.session.precision,
            "deployed_precision": self.deployed_precision,
            "duration_limit_s": self.max_seconds,
            "interrupted": interrupted,
            "realtime_playback": bool(self.realtime),
            "covers": dict(COVERS),
        }
        if self.session.precision == "int":
            out["saturations"] = int(self.session.saturations.sum())
        if hasattr(self.session, "link_summary"):  # a board session: the link's and the board's counters
            out["board"] = self.session.link_summary()
        if self.scored:
            out["accuracy"] = round(self.correct / self.scored, 4)
            out["scored_decisions"] = self.scored
            out["confusion"] = [{"truth": t, "label": p, "n": n} for (t, p), n in sorted(
                self.confusion.items(), key=lambda kv: (str(kv[0][0]), str(kv[0][1])))]
        return out


def _sleep_until(t: float) -> None:
    while True:
        d = t - now()
        if d <= 0:
            return
        time.sleep(min(d, 0.05) if d > 0.001 else 0)  # spin the last millisecond: sleep is coarse


def spiking_nodes(model) -> list[str]:
    g = model.graph
    return [n for n in g.order if isinstance(g.nodes[n], ops.Neuron) and g.nodes[n].spiking]


# ---------------------------------------------------------------------- assembling a pipeline

AUDIO_FORMATS = ("wav", "flac", "mic", "pcm")


def n_outputs(model) -> int:
    """The number of model outputs a decoder sees per step (all output nodes, flattened)."""
    return sum(int(np.prod(s)) for s in model.output_shapes.values())


def with_labels(spec, labels) -> tuple[str, dict]:
    """A decoder spec parsed into (name, options), with the class ``labels`` added unless the
    spec names its own."""
    name, kw = parse_spec(spec)
    kw.setdefault("labels", list(labels))
    return name, kw


def set_stream_config(model, *, encoder: str | None = None, labels: list | None = None,
                      decoder: str | None = None, rate: float | None = None) -> StreamConfig:
    """Store stream settings in ``model`` (``graph.meta["stream"]``, what ``edgebrain convert``
    writes), after checking that they can be used: the encoder and decoder specs build, the class
    names match the outputs, the rate is positive. Settings not given keep their stored values;
    with none given the metadata is left untouched."""
    from .registry import build_decoder, build_encoder

    cfg = StreamConfig.from_meta(model.graph.meta)
    if all(v is None for v in (encoder, labels, decoder, rate)):
        return cfg
    n = n_outputs(model)
    if encoder is not None:
        build_encoder(encoder)
    cfg = cfg.updated(n, encoder=encoder, labels=labels, decoder=decoder)
    if decoder is not None:
        name, kw = with_labels(decoder, cfg.class_names(n))
        build_decoder({"type": name, **kw})
    cfg = cfg.updated(n, rate=rate)
    model.graph.meta["stream"] = cfg.to_meta()
    return cfg


def encode_file(path, encoder, rate: float | None = None, input_shape=None, **source_options):
    """A whole recording through its source and ``encoder`` (a spec, at ``rate`` model steps per
    second), as a stream would feed a model: (x (T, *input) float32, per-step labels (T,) object
    array or None, t (T,) seconds). The steps are copied: encoders may reuse their buffers."""
    from .registry import build_encoder, open_source

    src = open_source(str(path), **source_options)
    enc = build_encoder(encoder)
    enc.configure(src.info, None if input_shape is None else tuple(input_shape), (1.0 / rate) if rate else None)
    xs, ls, ts = [], [], []

    def keep(s):
        if s is not None and len(s):
            xs.append(np.array(s.x, np.float32)), ts.append(np.array(s.t)), ls.append(s.labels)

    with src:
        for chunk in src.chunks():
            keep(enc.encode(chunk))
    keep(enc.flush())
    x = np.concatenate(xs) if xs else np.zeros((0,) + tuple(input_shape or ()), np.float32)
    labels = None if not ls or any(v is None for v in ls) else np.concatenate([np.asarray(v, object) for v in ls])
    return x, labels, (np.concatenate(ts) if ts else np.zeros(0))


def deployed_precision(model) -> str:
    """The precision ``model`` was deployed at: "int" when it is quantized, else "float"."""
    return "int" if model.quant else "float"


def build_pipeline(model, source: str, *, format: str | None = None, encoder=None, decoder=None, sinks=(),
                   precision: str | None = None, realtime: bool = False, source_options: dict | None = None,
                   labels=None, max_seconds: float | None = None, activity: bool = True,
                   max_gap: float | None = None, observers=(), setup_start: float | None = None,
                   backend: str = "numba", target: str | None = None, board_encodes: bool = False) -> Pipeline:
    """Open ``source`` and assemble source → encoder → session → decoder → sinks for ``model``.
    Encoder/decoder/labels given here override those in the model's metadata. ``precision``: None
    for the one the model was deployed at (:func:`deployed_precision`). ``max_gap`` (seconds; also
    ``max_gap=`` among the options of an event source, e.g. ``-O max_gap=5``), ``observers``: see the
    module. ``setup_start``: when set-up began (:func:`~.base.now`; default now), e.g. before loading
    the model, for ``setup_seconds``. ``backend``: what runs the model (:meth:`Model.session`): "numba",
    or "c" for the C runtime (integer precision; the encoders and decoders are unchanged). ``target``:
    where the model runs: None or "host" in this process, "host-firmware" on a board over the link
    of :mod:`edgebrain.stream.board` (the host encodes and decodes; the session is closed by
    :func:`run_stream`). ``board_encodes``: the board encodes and decodes too (sample encoders and the
    count decoder): the host forwards raw int16 counts and the sinks get the board's decisions
    (:mod:`edgebrain.stream.board_codec`)."""
    from .registry import build_encoder, open_source

    setup_start = now() if setup_start is None else setup_start
    from .snn_window import WindowedSNN, presents_windows

    if presents_windows(model) and not isinstance(model, WindowedSNN):  # an ANN converted: T steps per window
        model = WindowedSNN(model)
    precision = precision or deployed_precision(model)
    if max_seconds is not None:
        max_seconds = positive_number(max_seconds, "--duration", "seconds")
    cfg = StreamConfig.from_meta(model.graph.meta)
    opts = dict(cfg.source_options or {})
    opts.update(source_options or {})
    if "max_gap" in opts and max_gap is None and _event_source(source, format, opts):
        max_gap = opts.pop("max_gap")  # the binner's, not the source's (a CSV has a max_gap of its own)
    src = open_source(source, format=format, **opts)
    try:
        # "--encoder k=v,..." sets those options of the model's (or the default) encoder, keeping the rest
        enc_spec = merge_spec(cfg.encoder or (
            "bin" if src.info.kind == "events" else "audio" if src.info.format in AUDIO_FORMATS else "direct"), encoder)
        enc = build_encoder(enc_spec)
        labels = list(labels) if labels else cfg.class_names(n_outputs(model))
        own = getattr(model, "stream_decoder", None)  # a model deciding once per window brings its decoder
        if own is not None:
            if decoder or board_encodes or (target not in (None, "host") and not isinstance(model, WindowedSNN)):
                raise InputError("--decoder, --target and --board-encodes do not apply to a model that decides once "
                                 "per window (docs/tflite.md)", file=getattr(model, "path", None))
            dec = own(labels)
        else:
            dec_spec = decoder or cfg.decoder or "count"
            name, kw = with_labels(dec_spec, labels)
            from .base import build as _build
            from .registry import decoders

            dec = _build(decoders(), {"type": name, **kw}, "decoder")
        if board_encodes:
            if target in (None, "host"):
                raise InputError("--board-encodes needs a board to encode on: --target host-firmware (or another "
                                 "board target)")
            from .board_codec import on_board

            enc, sess, dec = on_board(enc, dec, lambda: _board(model, precision, target))
        elif target in (None, "host"):
            sess = model.session(precision, backend=backend)
        elif isinstance(model, WindowedSNN):  # a spiking model presented window by window, on a board
            sess = model.session(precision, board=lambda: _board(model.model, precision, target))
        else:
            sess = _board(model, precision, target)
        name = os.path.splitext(os.path.basename(model.path or "model"))[0]
        for k in sinks:
            if hasattr(k, "set_context"):
                k.set_context(model=name, device=socket.gethostname())
        # the model's own dt is a discretisation convention (snnTorch always writes 1e-4); the
        # sensor time one step stands for is the stream rate the model carries, if any
        return Pipeline(src, enc, sess, dec, sinks, labels=labels, realtime=realtime, activity=activity,
                        max_seconds=max_seconds, dt=cfg.dt, max_gap=max_gap, observers=observers,
                        setup_start=setup_start, deployed_precision=deployed_precision(model))
    except BaseException:
        src.close()
        raise


def _board(model, precision: str, target: str):
    """The session of a model run on a board (:func:`edgebrain.stream.board.board_session`)."""
    from .board import board_session

    if precision != "int":
        raise InputError(f"--target {target} runs integer programs only; precision '{precision}' runs on the host "
                         "(--target host)", file=getattr(model, "path", None))
    return board_session(model, target)


def _event_source(source: str, format: str | None, opts: dict) -> bool:
    """Whether ``source`` (a file or URL, with ``format`` and options) is an event source."""
    from .registry import detect_format, formats

    u = urllib.parse.urlsplit(source)
    if u.scheme and len(u.scheme) > 1 and u.scheme != "file":  # a live link: events when its format says so
        from .sources.livebin import EVENT_FORMATS

        q = dict(urllib.parse.parse_qsl(u.query))
        fmt = format or opts.get("format") or q.get("format")
        return str(fmt).lower() in EVENT_FORMATS
    fmt = formats().get(format) if format else None
    if fmt is None:
        path = urllib.parse.unquote(u.path) if u.scheme == "file" else source
        fmt = detect_format(path)
    return fmt.kind == "events"


def run_stream(model, source: str, *, sinks=(), sink_specs=(), **options) -> dict:
    """Stream ``source`` through ``model`` to the end (or ``max_seconds``, or Ctrl-C) into
    ``sinks`` and the sinks built from ``sink_specs``, and return the summary (what
    ``edgebrain stream`` does). A file of known length shows a progress bar on an interactive
    terminal. Every sink is closed at the end, also on an error. ``options``: those of
    :func:`build_pipeline`."""
    from ..progress import bar
    from .registry import build_sink

    options.setdefault("setup_start", now())
    if options.get("precision") == "int" and not model.quant:
        raise InputError("--precision int needs a quantized model (edgebrain convert --quantize ...)", file=model.path)
    sinks = list(sinks)
    try:
        with reading(local_path(source), getattr(model, "path", None)):  # no sink may write over an input
            sinks += [build_sink(sp) for sp in sink_specs]
        pipe = build_pipeline(model, source, sinks=sinks, **options)
        total = pipe.source.info.n_items
        pb = bar(total or 0, "streaming", "events" if pipe.source.info.kind == "events" else "samples",
                 enabled=bool(total) and not pipe.source.live)
        last = [0]

        def progress(done):
            pb.update(done - last[0])
            last[0] = done

        try:
            return pipe.run(progress=progress)
        finally:
            pb.close()
            if hasattr(pipe.session, "close"):  # a board session: its link and process
                pipe.session.close()
    finally:
        for k in sinks:
            k.close()
