"""Sinks: where decisions go.

=========  ==========================================================================================
``stdout``  JSON lines on standard output (``-``); ends with one ``{"summary": {...}}`` object
``file``    the same JSON lines in a file (``file:path=out.jsonl``), summary as the last line
``csv``     ``csv:path=out.csv``: header ``t,label,confidence,truth,latency_ms``; the summary goes to
            a side file ``out.summary.json`` (``summary=false`` for none, ``summary=PATH`` elsewhere)
``udp``     ``udp:host=127.0.0.1,port=9000``: one JSON object per datagram, summary included
``mqtt``    ``mqtt:host=127.0.0.1,port=1883,topic=...``: one JSON message per decision, QoS 1, to
            ``edgebrain/{device}/{model}/decisions``; the summary to ``…/summary``
=========  ==========================================================================================

Every decision is written as ``Decision.as_dict()``: keys ``t``, ``label`` (null for no decision),
``confidence``, then ``truth`` and ``latency_ms`` when known, in that order, and ``flush`` ("end" or
"gap") on a partial window decided because the stream ended or paused; options ``index=true``
and ``scores=true`` add the class index and the (smoothed) scores after them. The JSON sinks
(stdout, file, udp, mqtt) write the summary as ``{"summary": {...}}``. NaN and infinities in a
summary are written as null, so every line is strict JSON.

Sinks know the model and the device they report for through :meth:`RecordSink.set_context` (the
pipeline calls it; ``model=`` / ``device=`` options override it); MQTT uses them in its topic.

The file and CSV sinks are streaming outputs (:func:`edgebrain.safeio.open_stream`): written in
place line by line, fsync-ed within a second, never through a symbolic link, FIFOs accepted.

Errors a user can fix (a path that cannot be written, a host that does not resolve, a broker that
does not answer) are :class:`SinkError` s, raised when the sink is built.
"""

from __future__ import annotations

import collections
import csv
import json
import logging
import math
import os
import socket
import sys
import threading

import numpy as np

from ..errors import EdgebrainError, OutputError
from ..safeio import atomic_write, check_output, open_stream
from .base import Decision, Sink

log = logging.getLogger("edgebrain.stream")

CSV_FIELDS = ("t", "label", "confidence", "truth", "latency_ms")


class SinkError(EdgebrainError):
    """A sink cannot be opened or reached."""


def jsonable(x):
    """``x`` with numpy scalars and arrays made plain and NaN/inf made None (strict JSON)."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        x = float(x)
        return x if math.isfinite(x) else None
    if x is None or isinstance(x, str):
        return x
    return str(x)


def dumps(obj) -> str:
    return json.dumps(jsonable(obj), ensure_ascii=False, allow_nan=False)


def _clean_topic_level(s: str) -> str:
    """A name usable as one MQTT topic level (no '/', '+', '#', NUL or whitespace)."""
    out = "".join("_" if ch in "/+#\0" or ch.isspace() else ch for ch in str(s))
    return out or "_"


class RecordSink(Sink):
    """Base of the sinks here: turns decisions into stable records, counts them."""

    name = "sink"

    def __init__(self, scores: bool = False, index: bool = False, model: str | None = None,
                 device: str | None = None):
        self.scores = bool(scores)
        self.index = bool(index)
        self.model = model
        self.device = device
        self.stats = {"emitted": 0}
        self.closed = False

    def set_context(self, model: str | None = None, device: str | None = None) -> None:
        """The model name and device this sink reports for (options given in the spec win)."""
        if self.model is None and model is not None:
            self.model = str(model)
        if self.device is None and device is not None:
            self.device = str(device)

    def record(self, d: Decision) -> dict:
        r = d.as_dict()
        if self.index:
            r["index"] = int(d.index)
        if self.scores and d.scores is not None:
            r["scores"] = [round(float(v), 6) for v in np.asarray(d.scores).reshape(-1)]
        return r

    def emit(self, decision: Decision) -> None:
        if self.closed:
            raise SinkError(f"{self.name} sink: emit after close")
        self._emit(self.record(decision))
        self.stats["emitted"] += 1

    def _emit(self, rec: dict) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---------------------------------------------------------------------- text sinks


class StdoutSink(RecordSink):
    """JSON lines on standard output, flushed per line (a live consumer sees each decision)."""

    name = "stdout"

    def __init__(self, scores: bool = False, index: bool = False, model: str | None = None,
                 device: str | None = None, stream=None):
        super().__init__(scores=scores, index=index, model=model, device=device)
        self._stream = stream
        self.stream  # noqa: B018 - fail before the stream starts when there is no standard output

    @property
    def stream(self):
        s = self._stream if self._stream is not None else sys.stdout   # looked up late: redirections apply
        if s is None:  # started with file descriptor 1 closed (`>&-`): Python has no sys.stdout
            raise SinkError("stdout sink: standard output is closed, so the JSON lines have nowhere to go; "
                            "open it, or write them to a file with --sink file:path=FILE")
        return s

    def _write(self, obj) -> None:
        self.stream.write(dumps(obj) + "\n")
        self.stream.flush()

    def _emit(self, rec):
        self._write(rec)

    def summary(self, summary: dict) -> None:
        self._write({"summary": summary})

    def close(self) -> None:
        if not self.closed:
            try:
                self.stream.flush()
            except (OSError, ValueError, SinkError):
                pass
        super().close()


class ConsoleSink(Sink):
    """Decisions as readable lines on a rich console, as they happen, then the stream summary.

    The default sink of ``edgebrain stream`` without ``--json``, and the demos' printer. One line
    per decision: stream time, label, confidence, latency and, when the truth is known, the truth
    with ✓ or ✗. ``truth`` is the truth for decisions that carry none (a recording with a single
    label, as in the keyword and N-MNIST demos). ``layout`` picks the line: ``"stream"`` (compact,
    "—" for no decision) or ``"demo"`` (indented, every field named, "(no decision)").
    ``keep=True`` keeps the decisions in ``log``; ``summary=True`` prints the pipeline's summary
    (:func:`print_stream_summary`) when the stream ends.
    """

    name = "console"

    def __init__(self, console, truth=None, layout: str = "stream", keep: bool = False, summary: bool = False):
        if layout not in ("stream", "demo"):
            raise ValueError(f"layout {layout!r}; expected 'stream' or 'demo'")
        self.console = console
        self.truth = truth
        self.layout = layout
        self.log: list = []
        self._keep = keep
        self._summary = summary

    def line(self, d: Decision) -> str:
        """The text printed for decision ``d``."""
        truth = d.truth if d.truth is not None else self.truth
        if self.layout == "demo":
            mark = "" if truth is None else (" ✓" if d.label == truth else " ✗")
            lab = d.label if d.label is not None else "(no decision)"
            lat = f"{1e3 * d.latency:6.3f} ms" if d.latency is not None else ""
            return f"    t={d.t:7.2f} s  {lab:<13} conf {d.confidence:4.2f}  truth {str(truth):<13}{mark}  {lat}"
        label = d.label if d.label is not None else "—"
        mark = f"  truth {truth}" + (" ✓" if truth == d.label else " ✗") if truth is not None else ""
        lat = f"  {1e3 * d.latency:7.3f} ms" if d.latency is not None else ""
        part = f"  ({_FLUSH_TEXT.get(d.flush, d.flush)})" if d.flush is not None else ""
        return f"t={d.t:9.3f} s  {label:<14} {d.confidence:5.2f}{lat}{mark}{part}"

    def emit(self, decision: Decision) -> None:
        if self._keep:
            self.log.append(decision)
        # the stream layout was always printed plain; the demo's with rich's number highlighting
        self.console.print(self.line(decision), highlight=False if self.layout == "stream" else None)

    def summary(self, summary: dict) -> None:
        if self._summary:
            print_stream_summary(self.console, summary)


_FLUSH_TEXT = {"end": "partial window at the end of the stream", "gap": "partial window before a gap"}


def print_stream_summary(console, s: dict) -> None:
    """A pipeline's summary (:meth:`edgebrain.stream.pipeline.Pipeline.run`) on a rich console:
    decisions and precision, set-up, stream and wall time, steady-state latency percentiles and
    what they leave out, accuracy, input damage, spike rates; each figure says what it covers."""
    c = console
    lat = s["latency_ms"]
    unit = "events" if s["kind"] == "events" else "samples"
    flushes = s.get("flush_decisions") or 0
    n = s["decisions"]
    head = (f"[bold]summary[/]: {n} decision{'' if n == 1 else 's'} ({s['no_decision']} without a decision"
            + (f"; {flushes} on a partial window at the end or before a gap" if flushes else "") + ")")
    prec, deployed = s.get("precision"), s.get("deployed_precision")
    if prec:
        head += f", {prec} precision" + (" (as deployed)" if prec == deployed else
                                         f" (deployed: {deployed})" if deployed else "")
    c.print(head)
    if s.get("setup_seconds") is not None:
        c.print(f"  set-up {s['setup_seconds']:.2f} s (model load, source opening, compile or cache load, "
                "warm-up; not in the figures below)")
    c.print(f"  {s['stream_seconds']:.2f} s of stream in {s['wall_seconds']:.2f} s "
            f"(real-time factor {s['realtime_factor'] or 0:.1f}×, {s['throughput_per_s'] or 0:.0f} {unit}/s)")
    if lat["n"]:
        c.print(f"  latency (newest sample's arrival → decision, steady state, n={lat['n']}): "
                f"p50 {lat['p50']:.3f} ms, p90 {lat['p90']:.3f} ms, p99 {lat['p99']:.3f} ms, max {lat['max']:.3f} ms")
    ex = s.get("latency_excluded") or {}
    left = [f"{ex[k]} {what}" for k, what in (("flush", "on a partial window"),
                                               ("setup", "whose newest sample came during set-up"),
                                               ("reconnect", "that waited through a reconnection")) if ex.get(k)]
    if left:
        c.print(("    not in it: " if lat["n"] else "  latency: no steady-state decision to measure; not counted: ")
                + ", ".join(left))
    if "accuracy" in s:
        c.print(f"  accuracy against the recording's labels: {100 * s['accuracy']:.1f} % of {s['scored_decisions']}")
    inp = s["input"]
    c.print(f"  input: {inp['repaired']} repaired, {inp['dropped']} dropped, {inp['reconnects']} reconnects")
    for m in inp["messages"][:5]:
        c.print(f"    {m}")
    gaps = s.get("gaps") or {}
    if gaps.get("count"):
        c.print(f"  gaps in time longer than max_gap ({gaps['max_gap_s']:g} s): {gaps['count']}, "
                f"{gaps['seconds']:.1f} s in all; the model and decoder started over after each")
    if s["spike_rate"]:
        c.print("  spike rate per step: " + ", ".join(f"{k} {v:.3f}" for k, v in s["spike_rate"].items()))
    if s.get("interrupted"):
        c.print("  (stopped by Ctrl-C)")


def _open_text(path, append: bool, what="sink"):
    """A streaming output (:func:`edgebrain.safeio.open_stream`): written in place line by line,
    fsync-ed within a second, never through a link; FIFOs welcome."""
    if path is None or path == "":
        raise SinkError(f"{what} sink needs a path (e.g. {what}:path=out.{'csv' if what == 'csv' else 'jsonl'})")
    path = os.fspath(path) if not isinstance(path, (int, float)) else str(path)
    try:
        return open_stream(path, append=append, text=True, what=f"{what} sink")
    except OutputError as e:
        raise SinkError(e.detail, file=e.file) from None


class FileSink(RecordSink):
    """JSON lines in a file (line-buffered); the summary is appended as the last line."""

    name = "file"

    def __init__(self, path=None, append: bool = False, scores: bool = False, index: bool = False,
                 model: str | None = None, device: str | None = None):
        super().__init__(scores=scores, index=index, model=model, device=device)
        self.path = str(path) if path is not None else None
        self._f = _open_text(path, bool(append), what="file")

    def _emit(self, rec):
        self._f.write(dumps(rec) + "\n")

    def summary(self, summary: dict) -> None:
        if not self.closed:
            self._f.write(dumps({"summary": summary}) + "\n")

    def close(self) -> None:
        if not self.closed:
            self._f.close()
        super().close()


class CsvSink(RecordSink):
    """CSV with header ``t,label,confidence,truth,latency_ms`` (plus ``index``/``scores`` when asked;
    scores joined with '|'); empty cells for no label / unknown values. The summary goes to a side
    file (JSON)."""

    name = "csv"

    def __init__(self, path=None, append: bool = False, summary=True, scores: bool = False, index: bool = False,
                 model: str | None = None, device: str | None = None):
        super().__init__(scores=scores, index=index, model=model, device=device)
        self.path = str(path) if path is not None else None
        if summary is True:
            root, _ = os.path.splitext(self.path or "out")
            summary = root + ".summary.json"
        self.summary_path = str(summary) if summary not in (False, None) else None
        if self.summary_path is not None:
            try:
                check_output(self.summary_path, "summary")  # now, not after the whole stream
            except OutputError as e:
                raise SinkError(e.detail, file=e.file) from None
        self._f = _open_text(path, bool(append), what="csv")
        new = not (append and self._f.regular and os.fstat(self._f.fileno()).st_size > 0)
        self.fields = list(CSV_FIELDS) + (["index"] if self.index else []) + (["scores"] if self.scores else [])
        self._w = csv.writer(self._f, lineterminator="\n")
        if new:
            self._w.writerow(self.fields)

    def _emit(self, rec):
        row = []
        for k in self.fields:
            v = rec.get(k)
            if v is None:
                row.append("")
            elif k == "scores":
                row.append("|".join(repr(x) for x in v))
            else:
                row.append(v)
        self._w.writerow(row)

    def summary(self, summary: dict) -> None:
        if self.summary_path is None:
            return
        with atomic_write(self.summary_path, "summary") as f:
            f.write((dumps({"summary": summary}) + "\n").encode("utf-8"))

    def close(self) -> None:
        if not self.closed:
            self._f.close()
        super().close()


# ---------------------------------------------------------------------- network sinks


class UdpSink(RecordSink):
    """One JSON object per datagram to host:port (the summary too). UDP gives no delivery
    guarantee; send errors are counted in ``stats['errors']`` and logged once, never raised."""

    name = "udp"
    MAX_DATAGRAM = 65507

    def __init__(self, host: str = "127.0.0.1", port: int | None = None, scores: bool = False,
                 index: bool = False, model: str | None = None, device: str | None = None):
        super().__init__(scores=scores, index=index, model=model, device=device)
        if port is None or isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise SinkError(f"udp sink: port={port!r}; expected udp:host=HOST,port=1..65535")
        self.host, self.port = str(host), int(port)
        try:
            fam, typ, proto, _, addr = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_DGRAM)[0]
        except OSError as e:
            raise SinkError(f"udp sink: cannot resolve host '{self.host}' ({e})") from None
        self._addr = addr
        self._sock = socket.socket(fam, typ, proto)
        self.stats.update(sent=0, errors=0)

    def _send(self, obj) -> None:
        data = dumps(obj).encode("utf-8")
        try:
            if len(data) > self.MAX_DATAGRAM:
                raise OSError(f"message of {len(data)} bytes exceeds a UDP datagram")
            self._sock.sendto(data, self._addr)
            self.stats["sent"] += 1
        except OSError as e:
            self.stats["errors"] += 1
            if self.stats["errors"] == 1:
                log.warning("udp sink %s:%d: send failed (%s); further failures are only counted",
                            self.host, self.port, e)

    def _emit(self, rec):
        self._send(rec)

    def summary(self, summary: dict) -> None:
        if not self.closed:
            self._send({"summary": summary})

    def close(self) -> None:
        if not self.closed:
            self._sock.close()
        super().close()


class MqttSink(RecordSink):
    """Publishes each decision as a JSON message (QoS 1 by default) with paho-mqtt.

    * Connects when built: a broker that refuses, a host that does not resolve, or no CONNACK
      within ``timeout`` seconds is a :class:`SinkError`, never a hang.
    * The network loop runs in paho's thread and reconnects on its own if the connection drops
      (delay doubling from ``reconnect_min`` to ``reconnect_max`` seconds); disconnects and
      reconnects are logged and counted. Messages published meanwhile wait in a queue (at
      most ``max_queue``; beyond it they are dropped and counted) and QoS 1 messages not yet
      acknowledged are re-sent after the reconnection (at least once: a subscriber may see one
      twice). Messages published after the drop are held back until the re-sent ones are
      acknowledged, so the order of decisions is kept across reconnections.
    * ``summary`` waits (at most ``flush_timeout`` s) for the decisions' PUBACKs, then publishes
      ``{"summary": {..., "mqtt": stats}}`` to the summary topic (not retained); ``close`` waits
      for that one too, then disconnects.
    * ``stats``: ``published`` (messages the sink was given: decisions and summary), ``acknowledged`` (PUBACK received, or
      written for QoS 0), ``unsent`` (never acknowledged: dropped or still pending at close),
      ``dropped``, ``disconnects``, ``reconnects``.

    * ``username=`` with ``password=``, or with ``password_env=NAME``: the password read from the
      environment variable NAME, so it appears neither on the command line (the process list) nor in a
      systemd unit (``deploy --service`` puts it in an ``EnvironmentFile=``).

    The topic may hold ``{device}`` (default: host name) and ``{model}`` (from :meth:`set_context`
    or ``model=``); the summary topic is the decisions topic with its last level ``decisions``
    replaced by ``summary`` (or ``/summary`` appended).
    """

    name = "mqtt"
    DEFAULT_TOPIC = "edgebrain/{device}/{model}/decisions"

    def __init__(self, host: str = "127.0.0.1", port: int = 1883, topic: str | None = None, qos: int = 1,
                 client_id: str | None = None, username: str | None = None, password: str | None = None,
                 keepalive: int = 30, timeout: float = 5.0, flush_timeout: float = 5.0, retain: bool = False,
                 summary_topic: str | None = None, reconnect_min: float = 0.25, reconnect_max: float = 10.0,
                 max_queue: int = 100000, scores: bool = False, index: bool = False, model: str | None = None,
                 device: str | None = None, password_env: str | None = None):
        super().__init__(scores=scores, index=index, model=model, device=device)
        if password_env is not None:
            if password is not None:
                raise SinkError("mqtt sink: give password= or password_env=, not both")
            password = os.environ.get(str(password_env))
            if password is None:
                raise SinkError(f"mqtt sink: password_env={password_env}, but {password_env} is not set in the "
                                "environment")
        try:
            import paho.mqtt.client as mqtt
        except ImportError:
            raise SinkError("the mqtt sink needs paho-mqtt: pip install 'edgebrain[mqtt]'") from None
        if qos not in (0, 1, 2):
            raise SinkError(f"mqtt sink: qos={qos!r}; expected 0, 1 or 2")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise SinkError(f"mqtt sink: port={port!r}; expected 1..65535")
        for k, v in (("timeout", timeout), ("flush_timeout", flush_timeout), ("keepalive", keepalive)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
                raise SinkError(f"mqtt sink: {k}={v!r}; expected a positive number")
        self.host, self.port = str(host), int(port)
        self.qos, self.retain = int(qos), bool(retain)
        self.topic_template = str(topic) if topic else self.DEFAULT_TOPIC
        self.summary_topic_template = summary_topic
        self.timeout, self.flush_timeout = float(timeout), float(flush_timeout)
        self._mqtt = mqtt
        self._lock = threading.Lock()
        self._acked_cond = threading.Condition(self._lock)
        self._pending: set[int] = set()     # mids published, not acknowledged yet
        self._early: set[int] = set()       # mids acknowledged before publish() returned
        self._gated = False                 # connection lost: new messages wait in self._held
        self._barrier: set[int] = set()     # mids outstanding at the last reconnection (re-sent by paho)
        self._held: collections.deque = collections.deque()   # new messages waiting behind them
        self._drop_warned = False
        self.max_queue = int(max_queue)
        self._connack = threading.Event()
        self._connack_rc = None
        self._ever_connected = False
        self._closing = False
        self.connected = False
        self.stats.update(published=0, acknowledged=0, unsent=0, dropped=0, disconnects=0, reconnects=0)

        dev = self.device or socket.gethostname()
        cid = client_id if client_id else f"edgebrain-{_clean_topic_level(dev)}-{os.getpid()}-{id(self) & 0xffff:x}"
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=str(cid), clean_session=True,
                        protocol=mqtt.MQTTv311)
        if username is not None:
            c.username_pw_set(str(username), None if password is None else str(password))
        c.connect_timeout = self.timeout
        c.reconnect_delay_set(min_delay=reconnect_min, max_delay=reconnect_max)
        c.max_queued_messages_set(int(max_queue))
        c.max_inflight_messages_set(100)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_publish = self._on_publish
        self._client = c
        where = f"mqtt broker {self.host}:{self.port}"
        try:
            c.connect(self.host, self.port, keepalive=int(keepalive))
        except socket.gaierror as e:
            raise SinkError(f"{where}: cannot resolve host ({e.strerror or e})") from None
        except TimeoutError:
            raise SinkError(f"{where}: no answer within {self.timeout:g} s (timeout=)") from None
        except OSError as e:
            raise SinkError(f"{where} unreachable ({e.strerror or e})") from None
        c.loop_start()
        if not self._connack.wait(self.timeout):
            self._abort()
            raise SinkError(f"{where}: connected but no MQTT answer (CONNACK) within {self.timeout:g} s; "
                            "is it an MQTT broker?")
        rc = self._connack_rc
        if rc is not None and rc.is_failure:
            self._abort()
            raise SinkError(f"{where} refused the connection: {rc}")

    # ------------------------------------------------------------------ paho callbacks (loop thread)

    # Order across reconnections (QoS > 0): from the moment the connection drops, new messages are
    # held here instead of going to paho, because paho would send them as soon as its new socket is
    # up, ahead of the unacknowledged ones it re-sends only after the CONNACK. Once reconnected and
    # those are acknowledged (the "barrier"), the loop thread sends the held ones, in order, and
    # only then lets the stream thread publish directly again.

    def _on_connect(self, client, userdata, flags, rc, properties=None):
        self._connack_rc = rc
        if not rc.is_failure:
            again = self._ever_connected
            self._ever_connected = True
            self.connected = True
            if again:
                self.stats["reconnects"] += 1
                log.warning("mqtt sink: reconnected to %s:%d", self.host, self.port)
                with self._lock:
                    self._barrier = set(self._pending)
                    release = not self._barrier
                if release:
                    self._release()
        self._connack.set()

    def _on_disconnect(self, client, userdata, flags, rc, properties=None):
        was = self.connected
        self.connected = False
        if not self._closing and self.qos > 0:
            with self._lock:
                self._gated = True
        if was and not self._closing:
            self.stats["disconnects"] += 1
            log.warning("mqtt sink: lost the connection to %s:%d (%s); reconnecting", self.host, self.port, rc)

    def _on_publish(self, client, userdata, mid, rc=None, properties=None):
        # paho calls this holding its own message lock (re-entrant); we never call paho while
        # holding ours, so the two cannot deadlock
        with self._lock:
            if mid in self._pending:
                self._pending.discard(mid)
                self.stats["acknowledged"] += 1
            else:
                self._early.add(mid)
            release = False
            if self._barrier:
                self._barrier.discard(mid)
                release = not self._barrier and self._gated and self.connected
            self._acked_cond.notify_all()
        if release:
            self._release()

    def _release(self) -> None:
        """(loop thread) Send the held messages in order, then open the gate."""
        while True:
            with self._lock:
                if not self.connected:          # dropped again: on_connect will release them
                    return
                if not self._held:
                    self._gated = False
                    self._acked_cond.notify_all()
                    return
                items = list(self._held)
                self._held.clear()
            for topic, payload in items:
                self._send(topic, payload)

    # ------------------------------------------------------------------ publishing

    @property
    def topic(self) -> str:
        dev = _clean_topic_level(self.device or socket.gethostname())
        model = _clean_topic_level(self.model or "model")
        return self.topic_template.replace("{device}", dev).replace("{model}", model)

    @property
    def summary_topic(self) -> str:
        if self.summary_topic_template:
            dev = _clean_topic_level(self.device or socket.gethostname())
            model = _clean_topic_level(self.model or "model")
            return self.summary_topic_template.replace("{device}", dev).replace("{model}", model)
        t = self.topic
        if t.endswith("/decisions"):
            return t[: -len("decisions")] + "summary"
        return t.rstrip("/") + "/summary"

    def _publish(self, topic: str, obj) -> None:
        payload = dumps(obj).encode("utf-8")
        self.stats["published"] += 1
        with self._lock:
            hold = self._gated
            if hold:
                if len(self._held) >= self.max_queue:
                    self.stats["dropped"] += 1
                else:
                    self._held.append((topic, payload))
        if not hold:
            self._send(topic, payload)
        elif self.stats["dropped"]:
            self._warn_drop("queue full")

    def _send(self, topic: str, payload: bytes) -> None:
        info = self._client.publish(topic, payload, qos=self.qos, retain=self.retain)
        rc = info.rc
        if rc not in (self._mqtt.MQTT_ERR_SUCCESS, self._mqtt.MQTT_ERR_NO_CONN):
            # not queued (queue full, or the message was refused): it will never be sent
            with self._lock:
                self.stats["dropped"] += 1
            self._warn_drop(self._mqtt.error_string(rc))
            return
        with self._lock:
            if info.mid in self._early:
                self._early.discard(info.mid)
                self.stats["acknowledged"] += 1
            else:
                self._pending.add(info.mid)

    def _warn_drop(self, why: str) -> None:
        if not self._drop_warned:
            self._drop_warned = True
            log.warning("mqtt sink: message dropped (%s); further drops are only counted", why)

    def _emit(self, rec):
        self._publish(self.topic, rec)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every published message is acknowledged (at most ``timeout`` s, default
        ``flush_timeout``). True when none is outstanding."""
        timeout = self.flush_timeout if timeout is None else timeout
        with self._lock:
            return self._acked_cond.wait_for(lambda: not self._pending and not self._held, timeout)

    def summary(self, summary: dict) -> None:
        if self.closed:
            return
        self.flush()
        s = dict(summary)
        s["mqtt"] = self._stats_now()
        self._publish(self.summary_topic, {"summary": s})

    def _stats_now(self) -> dict:
        with self._lock:
            st = dict(self.stats)
            st["unsent"] = len(self._pending) + len(self._held) + st["dropped"]
        st["topic"] = self.topic
        return st

    def close(self) -> None:
        if self.closed:
            return
        ok = self.flush()
        self._closing = True
        try:
            self._client.disconnect()
        finally:
            self._client.loop_stop()
        with self._lock:
            self.stats["unsent"] = len(self._pending) + len(self._held) + self.stats["dropped"]
        if not ok or self.stats["unsent"]:
            log.warning("mqtt sink: %d of %d messages were not acknowledged by %s:%d", self.stats["unsent"],
                        self.stats["published"], self.host, self.port)
        self.connected = False
        super().close()

    def _abort(self) -> None:
        self._closing = True
        try:
            self._client.disconnect()
        except Exception:  # noqa: BLE001 - best effort on a connection that failed
            pass
        self._client.loop_stop()
        self.closed = True


SINKS = {"stdout": StdoutSink, "file": FileSink, "csv": CsvSink, "udp": UdpSink, "mqtt": MqttSink}
