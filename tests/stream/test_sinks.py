"""Sinks (edgebrain.stream.sinks): stdout captured, CSV and JSON-lines files read back with the
csv/json modules, UDP to a real socket on loopback, and MQTT against a real Mosquitto broker
started on a free loopback port (tests/_mqtt.py), with a separate paho subscriber."""

from __future__ import annotations

import csv
import json
import socket
import threading
import time

import numpy as np
import pytest

from edgebrain.errors import EdgebrainError, InputError
from edgebrain.stream.base import Decision
from edgebrain.stream.registry import build_sink
from edgebrain.stream.sinks import CsvSink, FileSink, MqttSink, SinkError, StdoutSink, UdpSink
from tests.stream._mqtt import Subscriber, free_port, mosquitto_fixture  # noqa: F401  (the mosquitto fixture)

DECISIONS = [
    Decision(t=0.5, label="walk", index=1, confidence=0.756789, scores=np.array([1.0, 3.0]), latency=0.0012345,
             truth="walk"),
    Decision(t=1.0, label=None, index=-1, confidence=0.25, scores=np.array([0.0, 0.0])),
    Decision(t=1.5, label="still", index=0, confidence=1.0, latency=0.002),
]
EXPECTED = [
    {"t": 0.5, "label": "walk", "confidence": 0.7568, "truth": "walk", "latency_ms": 1.2345},
    {"t": 1.0, "label": None, "confidence": 0.25},
    {"t": 1.5, "label": "still", "confidence": 1.0, "latency_ms": 2.0},
]
SUMMARY = {"decisions": 3, "latency_ms": {"p50": 1.5, "p99": float("nan")}, "rtf": np.float32(12.5)}
SUMMARY_JSON = {"decisions": 3, "latency_ms": {"p50": 1.5, "p99": None}, "rtf": 12.5}
WAIT = 30.0     # seconds a wait may take before the test fails (a hang guard, not a speed limit)


def decision(i: int) -> Decision:
    return Decision(t=round(0.1 * i, 6), label=f"c{i % 3}", index=i % 3, confidence=0.5, latency=0.001)


# --------------------------------------------------------------------------- stdout, file, csv


def test_stdout_json_lines(capsys):
    s = build_sink("-")
    assert isinstance(s, StdoutSink) and isinstance(build_sink("stdout"), StdoutSink)
    for d in DECISIONS:
        s.emit(d)
    s.summary(SUMMARY)
    s.close()
    lines = capsys.readouterr().out.splitlines()
    objs = [json.loads(x) for x in lines]
    assert objs[:3] == EXPECTED
    assert [list(o) for o in objs[:3]] == [list(e) for e in EXPECTED]       # stable key order
    assert objs[3] == {"summary": SUMMARY_JSON}
    assert len(lines) == 4 and "NaN" not in lines[3]                        # strict JSON


def test_stdout_extras(capsys):
    s = build_sink("stdout:scores=true,index=true")
    s.emit(DECISIONS[0])
    s.emit(DECISIONS[2])
    objs = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert objs[0] == {**EXPECTED[0], "index": 1, "scores": [1.0, 3.0]}
    assert list(objs[0])[:5] == ["t", "label", "confidence", "truth", "latency_ms"]
    assert objs[1] == {**EXPECTED[2], "index": 0}                           # no scores known: none written


def test_file_round_trip(tmp_path):
    p = tmp_path / "out.jsonl"
    with build_sink(f"file:path={p}") as s:
        assert isinstance(s, FileSink)
        for d in DECISIONS:
            s.emit(d)
        s.summary(SUMMARY)
    objs = [json.loads(x) for x in p.read_text().splitlines()]
    assert objs == EXPECTED + [{"summary": SUMMARY_JSON}]
    # append=true adds to the file instead of replacing it
    with build_sink(f"file:path={p},append=true") as s:
        s.emit(DECISIONS[1])
    assert len(p.read_text().splitlines()) == 5


def test_csv_round_trip(tmp_path):
    p = tmp_path / "out.csv"
    s = build_sink(f"csv:path={p}")
    assert isinstance(s, CsvSink)
    for d in DECISIONS:
        s.emit(d)
    s.summary(SUMMARY)
    s.close()
    with open(p, newline="") as f:
        r = csv.reader(f)
        header = next(r)
        body = list(r)
    assert header == ["t", "label", "confidence", "truth", "latency_ms"]
    assert body == [["0.5", "walk", "0.7568", "walk", "1.2345"],
                    ["1.0", "", "0.25", "", ""],
                    ["1.5", "still", "1.0", "", "2.0"]]
    side = tmp_path / "out.summary.json"
    assert json.loads(side.read_text()) == {"summary": SUMMARY_JSON}
    # appending keeps a single header; summary=false writes no side file
    side.unlink()
    with build_sink(f"csv:path={p},append=true,summary=false") as s:
        s.emit(DECISIONS[2])
        s.summary(SUMMARY)
    with open(p, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and rows[3]["label"] == "still" and not side.exists()
    # index and scores columns on request
    q = tmp_path / "x.csv"
    with CsvSink(path=q, index=True, scores=True, summary=str(tmp_path / "s.json")) as s:
        s.emit(DECISIONS[0])
        s.summary({"n": 1})
    with open(q, newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows == [{"t": "0.5", "label": "walk", "confidence": "0.7568", "truth": "walk", "latency_ms": "1.2345",
                     "index": "1", "scores": "1.0|3.0"}]
    assert json.loads((tmp_path / "s.json").read_text()) == {"summary": {"n": 1}}


def test_sink_errors(tmp_path):
    with pytest.raises(SinkError, match="cannot open") as e:
        build_sink(f"csv:path={tmp_path}/no/such/dir/out.csv")
    assert "out.csv" in str(e.value) and isinstance(e.value, EdgebrainError)
    with pytest.raises(SinkError, match="needs a path"):
        build_sink("file")
    with pytest.raises(InputError, match="unknown sink 'kafka'"):
        build_sink("kafka:host=x")
    with pytest.raises(SinkError, match="port"):
        build_sink("udp:host=127.0.0.1")
    s = build_sink(f"file:path={tmp_path / 'a.jsonl'}")
    s.close()
    s.close()                                           # idempotent
    with pytest.raises(SinkError, match="after close"):
        s.emit(DECISIONS[0])


# --------------------------------------------------------------------------- udp


def test_udp_datagrams_on_loopback():
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(2.0)
    port = rx.getsockname()[1]
    try:
        s = build_sink(f"udp:host=127.0.0.1,port={port}")
        assert isinstance(s, UdpSink)
        for d in DECISIONS:
            s.emit(d)
        s.summary(SUMMARY)
        s.close()
        got = [json.loads(rx.recvfrom(65536)[0]) for _ in range(4)]      # one object per datagram
    finally:
        rx.close()
    assert got == EXPECTED + [{"summary": SUMMARY_JSON}]
    assert s.stats == {"emitted": 3, "sent": 4, "errors": 0}


# --------------------------------------------------------------------------- mqtt, real broker


def test_mqtt_decisions_in_order_with_qos1(mosquitto):
    sub = Subscriber(mosquitto.port, "edgebrain/#")
    try:
        s = build_sink(f"mqtt:port={mosquitto.port}")
        assert isinstance(s, MqttSink)
        s.set_context(model="motion net/v2", device="watch-7")          # names made topic-safe
        n = 300
        for i in range(n):
            s.emit(decision(i))
        s.summary({"decisions": n})
        s.close()
        assert sub.wait_count(n + 1, timeout=10), f"{len(sub.messages)} of {n + 1} messages"
        msgs = sub.json()
        topic = "edgebrain/watch-7/motion_net_v2/decisions"
        assert [t for t, _ in msgs[:n]] == [topic] * n
        assert [m for _, m in msgs[:n]] == [decision(i).as_dict() for i in range(n)]   # all, in order
        assert set(sub.qos) == {1}
        t, summ = msgs[n]
        assert t == "edgebrain/watch-7/motion_net_v2/summary" and not sub.retained[n]
        assert summ["summary"]["decisions"] == n
        assert summ["summary"]["mqtt"]["acknowledged"] == n and summ["summary"]["mqtt"]["unsent"] == 0
        assert s.stats["acknowledged"] == n + 1 and s.stats["unsent"] == 0 and s.stats["disconnects"] == 0
    finally:
        sub.close()
    # the summary is not retained: a subscriber arriving later gets nothing
    late = Subscriber(mosquitto.port, "edgebrain/#")
    try:
        assert not late.wait_count(1, timeout=0.3)
    finally:
        late.close()


def test_mqtt_default_topic_uses_hostname(mosquitto):
    sub = Subscriber(mosquitto.port, "#")
    try:
        s = MqttSink(port=mosquitto.port, model="m1")
        s.emit(decision(1))
        s.close()
        assert sub.wait_count(1)
        assert sub.messages[0][0] == f"edgebrain/{socket.gethostname()}/m1/decisions"
        s = build_sink(f"mqtt:port={mosquitto.port},topic=fleet/{{model}}/out,qos=1")
        s.set_context(model="m2")
        s.emit(decision(2))
        s.summary({})
        s.close()
        assert sub.wait_count(3)
        assert [t for t, _ in sub.messages[1:]] == ["fleet/m2/out", "fleet/m2/out/summary"]
    finally:
        sub.close()


def test_mqtt_reconnects_after_broker_restart(mosquitto):
    sub = Subscriber(mosquitto.port, "edgebrain/#")
    s = MqttSink(port=mosquitto.port, model="m", device="d", reconnect_min=0.1, reconnect_max=0.5,
                 flush_timeout=WAIT)       # the acks after the reconnection may come late on a busy machine
    try:
        i = 0
        for i in range(20):
            s.emit(decision(i))
        assert sub.wait_count(20)
        mosquitto.stop()                               # SIGKILL: the connection drops
        deadline = time.monotonic() + WAIT                 # a hang guard
        while s.connected and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not s.connected
        for i in range(20, 30):                         # published while the broker is down: queued
            s.emit(decision(i))
        mosquitto.start()
        # keep streaming through the reconnection (one decision every 2 ms), so that new decisions
        # race with the re-sent ones; note the first decision emitted once both clients are back
        i, first_after = 30, None
        deadline = time.monotonic() + WAIT                 # a hang guard
        while time.monotonic() < deadline and (first_after is None or i < first_after + 20):
            if first_after is None and s.connected and sub.subscribed.is_set():
                first_after = i
            s.emit(decision(i))
            i += 1
            time.sleep(0.002)
        assert first_after is not None, "the sink or the test subscriber did not reconnect"
        n = i
        s.summary({"decisions": n})
        s.close()
        assert s.stats["disconnects"] == 1 and s.stats["reconnects"] == 1
        # paho re-sends unacknowledged QoS 1 messages after reconnecting: nothing is left unsent
        assert s.stats["unsent"] == 0 and s.stats["acknowledged"] == n + 1
        assert sub.wait_for(lambda m: any(t.endswith("/summary") for t, _ in m), timeout=10)
        msgs = sub.json()
        ts = [round(m["t"] * 10) for t, m in msgs if t == "edgebrain/d/m/decisions"]
        # everything emitted once both clients were back arrives, in order; those queued while the
        # broker was down arrive unless the broker took them before the subscriber was back (QoS 1
        # is at least once: a re-sent message may come twice, so the order is non-decreasing)
        assert ts[:20] == list(range(20))
        assert [t for t in ts if t >= first_after] == list(range(first_after, n))
        assert ts == sorted(ts), f"decisions overtook each other across the reconnection: {ts} {first_after}"
        summ = next(m for t, m in msgs if t == "edgebrain/d/m/summary")["summary"]
        assert summ["mqtt"]["reconnects"] == 1 and summ["mqtt"]["unsent"] == 0
    finally:
        sub.close()
        s.close()


def test_mqtt_counts_unsent_when_broker_stays_down(mosquitto):
    s = MqttSink(port=mosquitto.port, model="m", device="d", reconnect_min=0.1, reconnect_max=0.2,
                 flush_timeout=0.5)
    for i in range(5):
        s.emit(decision(i))
    assert s.flush(WAIT)                                # acknowledged while the broker is up
    mosquitto.stop()
    deadline = time.monotonic() + WAIT                  # a hang guard
    while s.connected and time.monotonic() < deadline:
        time.sleep(0.01)
    for i in range(5, 12):
        s.emit(decision(i))
    assert not s.flush(0.05)                            # a bounded wait: not acknowledged, no hang
    # summary and close wait at most flush_timeout each: they end although nothing is acknowledged
    done = threading.Thread(target=lambda: (s.summary({"decisions": 12}), s.close()), daemon=True)
    done.start()
    done.join(WAIT)
    assert not done.is_alive() and s.closed, "summary/close did not end with the broker down"
    assert s.stats["published"] == 13 and s.stats["acknowledged"] == 5
    assert s.stats["unsent"] == 8                        # 7 decisions + the summary, reported


def test_mqtt_unreachable_broker_fails_fast():
    port = free_port()                                  # nobody listens: connection refused
    with pytest.raises(SinkError, match=f"127.0.0.1:{port} unreachable"):   # at once, not after a timeout
        build_sink(f"mqtt:host=127.0.0.1,port={port}")
    # a TCP server that accepts but never speaks MQTT: no CONNACK → error after `timeout`
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    conns = []
    stop = threading.Event()

    def accept():
        srv.settimeout(0.1)
        while not stop.is_set():
            try:
                conns.append(srv.accept()[0])
            except OSError:
                pass

    th = threading.Thread(target=accept, daemon=True)
    th.start()
    try:
        with pytest.raises(SinkError, match=r"no MQTT answer \(CONNACK\) within 0.5 s"):   # the given timeout
            build_sink(f"mqtt:port={srv.getsockname()[1]},timeout=0.5")
    finally:
        stop.set()
        th.join(2)
        for c in conns:
            c.close()
        srv.close()
    with pytest.raises(SinkError, match="qos"):
        build_sink("mqtt:qos=3")


# ---------------------------------------------------------------------- console


def _console_text(sink_kw, decisions, summary=None):
    import io

    from rich.console import Console

    from edgebrain.stream.sinks import ConsoleSink

    buf = io.StringIO()
    sink = ConsoleSink(Console(file=buf, width=200), **sink_kw)
    for d in decisions:
        sink.emit(d)
    if summary is not None:
        sink.summary(summary)
    sink.close()
    return buf.getvalue(), sink


def test_console_sink_stream_layout():
    text, sink = _console_text({}, DECISIONS)
    assert text.splitlines() == [
        "t=    0.500 s  walk            0.76    1.234 ms  truth walk ✓",
        "t=    1.000 s  —               0.25",
        "t=    1.500 s  still           1.00    2.000 ms",
    ]
    assert sink.log == []  # kept only when asked


def test_console_sink_demo_layout_with_a_recording_truth():
    text, sink = _console_text({"layout": "demo", "truth": "still", "keep": True}, DECISIONS)
    assert text.splitlines() == [
        "    t=   0.50 s  walk          conf 0.76  truth walk          ✓   1.234 ms",
        "    t=   1.00 s  (no decision) conf 0.25  truth still         ✗  ",
        "    t=   1.50 s  still         conf 1.00  truth still         ✓   2.000 ms",
    ]
    assert sink.log == DECISIONS
    with pytest.raises(ValueError):
        _console_text({"layout": "fancy"}, [])


def test_console_sink_prints_the_summary_when_asked():
    s = {"decisions": 3, "no_decision": 1, "stream_seconds": 1.5, "wall_seconds": 0.25, "realtime_factor": 6.0,
         "throughput_per_s": 400.0, "kind": "samples", "latency_ms": {"n": 0}, "accuracy": 0.5,
         "scored_decisions": 2, "input": {"repaired": 1, "dropped": 0, "reconnects": 0, "messages": ["gap at 3"]},
         "spike_rate": {"lif1": 0.125}, "interrupted": True}
    assert _console_text({}, [], s)[0] == ""
    assert _console_text({"summary": True}, [], s)[0].splitlines() == [
        "summary: 3 decisions (1 without a decision)",
        "  1.50 s of stream in 0.25 s (real-time factor 6.0×, 400 samples/s)",
        "  accuracy against the recording's labels: 50.0 % of 2",
        "  input: 1 repaired, 0 dropped, 0 reconnects",
        "    gap at 3",
        "  spike rate per step: lif1 0.125",
        "  (stopped by Ctrl-C)",
    ]
