"""A closed source is freed by reference counting alone, with its buffers and its link.

A source that holds itself through a cycle (a link reader calling back the source's bound
methods, a decoder holding its source, a line splitter holding the source's error callback)
stays in memory with everything it still holds until the garbage collector runs, which in a
process that opens many streams (a fleet, a test run, the fuzzer's 100,000 examples) shows up
as growing memory. With the collector off, the last reference going away must free it.

Each source reads a real recording: from the file, or served over TCP on loopback by a thread
that sends the file's bytes and closes the connection.
"""

from __future__ import annotations

import gc
import socket
import threading
import weakref

import pytest

from edgebrain.stream import open_source
from tests.conftest import need

FMT = "events/formats"


@pytest.fixture
def no_gc():
    was = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _serve_once(data: bytes) -> int:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    srv.settimeout(20)

    def run():
        try:
            conn, _ = srv.accept()
            with conn:
                conn.sendall(data)
        finally:
            srv.close()

    threading.Thread(target=run, daemon=True).start()
    return srv.getsockname()[1]


def _drain_and_drop(url: str, **options):
    src = open_source(url, **options)
    n = 0
    try:
        for chunk in src.chunks():
            n += len(chunk)
    finally:
        src.close()
    ref = weakref.ref(src)
    del src
    return ref, n


@pytest.mark.parametrize("rel,query", [
    (f"{FMT}/evt3_sample.raw", "format=evt3&width=1280&height=720"),
    (f"{FMT}/evt2.raw", "format=evt2&width=640&height=480"),
    (f"{FMT}/sample.aedat4", "format=aedat4"),
    ("audio/fsdd/recordings/0_george_0.wav", "format=wav"),
])
def test_a_live_binary_source_is_freed_when_closed(datasets, no_gc, rel, query):
    data = need(datasets / rel).read_bytes()
    port = _serve_once(data)
    ref, n = _drain_and_drop(f"tcp://127.0.0.1:{port}?{query}&reconnect=0&timeout=2")
    assert n > 0
    assert ref() is None, f"{gc.get_referrers(ref())}"


def test_a_live_line_source_is_freed_when_closed(datasets, no_gc):
    rows = need(datasets / "imu/sp-sw-har/s16/s16_01_sw.csv").read_text().splitlines()[1:400]
    data = "".join(",".join(r.split(",")[:6]) + "\n" for r in rows).encode()
    port = _serve_once(data)
    ref, n = _drain_and_drop(f"tcp://127.0.0.1:{port}?rate=100&channels=6&reconnect=0&timeout=2")
    assert n == len(rows)
    assert ref() is None


@pytest.mark.parametrize("rel", ["imu/sp-sw-har/s16/s16_01_sw.csv", f"{FMT}/evt3_sample.raw",
                                 f"{FMT}/sample.aedat4", "audio/fsdd/recordings/0_george_0.wav"])
def test_a_file_source_is_freed_when_closed(datasets, no_gc, rel):
    ref, n = _drain_and_drop(str(need(datasets / rel)))
    assert n > 0
    assert ref() is None
