"""The event readers' fast paths against their checked Python twins: the AEDAT 4 packet parse, data
table kernel, compiled event vector and packet scan (on real and damaged files), chunk bounds
by hand, and reused event buffers never overwritten while a caller holds a chunk.
"""

from __future__ import annotations

import numpy as np
from edgebrain.errors import FormatError
from edgebrain.stream.base import EVENT_DTYPE
from edgebrain.stream.registry import open_source

from tests.stream.sources.events._helpers import (
    _aedat4_bodies,
    _aedat4_variants,
    _damaged_bodies,
    deadline,
)


def test_aedat4_packet_fast_parse_matches_checked(fmt):
    """The per-packet flatbuffer fast path gives the checked reader's answer, error or not, on
    packets with damaged headers and truncated bodies."""
    s, bodies = _aedat4_bodies(fmt / "sample.aedat4")
    rng = np.random.default_rng(5)

    def parse(fn, b):
        try:
            return fn(b)
        except ValueError:
            return "error"

    for body in bodies[:4]:
        assert s._events(body) == s._events_checked(body)
        for c in _damaged_bodies(body, rng):
            assert parse(s._events, c) == parse(s._events_checked, c)
    s.close()


def test_aedat4_data_table_kernel(fmt):
    """n_items and duration from the data table agree with the decoded events; a damaged table is
    reported as unreadable, not raised."""
    from edgebrain.stream.sources.events.aedat4 import Aedat4Source, aedat4_table

    for name in ("sample.aedat4", "davis346.aedat4"):
        with Aedat4Source(fmt / name) as s:
            n = sum(len(c) for c in s.chunks())
            assert s.info.n_items == n
            assert s.info.duration and s.info.duration > 0
    b = np.zeros(64, np.uint8)
    res = np.zeros(4, np.int64)
    b[0:4] = [200, 0, 0, 0]  # entry offset beyond the buffer
    assert aedat4_table(b, 0, 1, 0, res) == 1
    b[0:4] = [8, 0, 0, 0]    # table at 8, its vtable (soffset 0) at 8 too: vtable size 0 -> no fields
    assert aedat4_table(b, 0, 1, 0, res) == 2


def test_aedat4_compiled_event_vector_matches_checked(fmt):
    """The compiled scan's flatbuffer parse finds the checked reader's event vector on the real
    packets, and on damaged ones either the checked answer or "not the usual layout" (then the
    Python path decides), never another vector."""
    from edgebrain.stream.sources.events._aedat4_scan import event_vector

    s, bodies = _aedat4_bodies(fmt / "davis346.aedat4")
    rng = np.random.default_rng(11)
    for body in bodies[:4]:
        assert event_vector(np.frombuffer(body, np.uint8), len(body)) == s._events_checked(body)
        for c in _damaged_bodies(body, rng):
            got = event_vector(np.frombuffer(c, np.uint8), len(c))
            if got[0] >= 0:
                assert got == s._events_checked(c)
    s.close()


def test_aedat4_compiled_scan_matches_python_path(fmt, tmp_path, monkeypatch):
    """Reading through the compiled packet scan gives exactly the events, repairs and counts of the
    Python path (which the oracle tests check against aedat and tonic), on the real recordings and
    on damaged copies; the scan really reads most packets."""
    from edgebrain.stream.sources.events import _lz4
    from edgebrain.stream.sources.events.aedat4 import Aedat4Source

    calls = {"n": 0}
    slow = Aedat4Source._packet

    def counted(self, pos, end):
        calls["n"] += 1
        return slow(self, pos, end)

    def read(path, chunk_events):
        calls["n"] = 0
        try:
            with deadline(60), open_source(str(path), chunk_events=chunk_events) as s:
                ev = [c.events.copy() for c in s.chunks()]
                ev = np.concatenate(ev) if ev else np.zeros(0, EVENT_DTYPE)
                st = s.stats
                return (ev, st.repaired, st.dropped, sorted(st.messages), dict(s.info.extra)), calls["n"]
        except FormatError as e:
            return str(e), calls["n"]

    monkeypatch.setattr(Aedat4Source, "_packet", counted)
    n_fast = 0
    for path in _aedat4_variants(fmt, tmp_path):
        for chunk_events in (1 << 19, 3000):
            fast, slow_calls = read(path, chunk_events)
            with monkeypatch.context() as m:
                m.setattr(_lz4, "load", lambda: None)
                python, all_calls = read(path, chunk_events)
            assert type(fast) is type(python), f"{path.name}: {fast if isinstance(fast, str) else python}"
            if isinstance(fast, str):
                assert fast == python
                continue
            assert np.array_equal(fast[0], python[0]), f"{path.name}, chunk_events={chunk_events}: events differ"
            assert fast[1:] == python[1:], f"{path.name}: repairs differ: {fast[1:]} vs {python[1:]}"
            assert all_calls > 20
            n_fast += slow_calls < all_calls // 4
    assert n_fast >= 20, "the compiled scan should read most packets of most files"


def test_held_event_chunks_are_never_overwritten(fmt):
    """Readers reuse their buffers only once nothing holds them: chunks a caller keeps stay as they
    were handed out, while chunks dropped at once give the same events."""
    from edgebrain.stream.reuse import ArrayPool

    for name, opts in (("sample.aedat4", dict(chunk_events=3000)), ("evt3_sample.raw", dict(chunk_events=5000)),
                       ("davis346.aedat4", {})):
        kept, snaps = [], []
        with open_source(str(fmt / name), **opts) as s:
            for c in s.chunks():
                kept.append(c)
                snaps.append(c.events.copy())
        streamed = []
        with open_source(str(fmt / name), **opts) as s:
            for c in s.chunks():
                streamed.append(c.events.copy())
        for k, (c, snap) in enumerate(zip(kept, snaps)):
            assert np.array_equal(c.events, snap), f"{name}: held chunk {k} was overwritten"
        assert np.array_equal(np.concatenate(snaps), np.concatenate(streamed))

    # the reference-count baselines were measured on this interpreter; one more holder is seen
    from edgebrain.stream.reuse import LOCAL_ONLY, refs
    x = np.empty(3)
    assert refs(x) == LOCAL_ONLY
    y = x[1:]
    assert refs(x) > LOCAL_ONLY and refs(y) == LOCAL_ONLY
    del y
    assert refs(x) == LOCAL_ONLY

    pool = ArrayPool(np.int64, row=(2,), keep=3)
    a = pool.take(100)
    assert pool.take(100).base is not a.base, "a held buffer must not be lent again"
    view = a[10:20]
    field = a[:, 0]
    mv = memoryview(a)
    base = id(a.base)
    del a
    for held in ("view", "field", "mv"):
        assert id(pool.take(50).base) != base, f"a buffer still held through a {held} was lent again"
        if held == "view":
            del view
        elif held == "field":
            del field
        else:
            del mv
    assert id(pool.take(50).base) == base, "a free buffer is lent again"
    assert len(pool._arrays) <= 3


def test_span_bounds_by_hand():
    """Chunk boundaries of times [0, 10, 20, 50, 60, 61, 200] in 50 µs spans, worked out by hand:
    from t=0 the first time >= 50 is #3; from t=50 the first >= 100 is #6; then the end."""
    from edgebrain.stream.sources.events._finish import span_bounds

    ev = np.zeros(7, EVENT_DTYPE)
    ev["t"] = [0, 10, 20, 50, 60, 61, 200]
    assert span_bounds(ev["t"], 50).tolist() == [0, 3, 6, 7]
    assert span_bounds(ev["t"], 1000).tolist() == [0, 7]
    same = np.zeros(4, EVENT_DTYPE)  # equal times: at least one event per chunk, never an empty one
    assert span_bounds(same["t"], 1).tolist() == [0, 4]
