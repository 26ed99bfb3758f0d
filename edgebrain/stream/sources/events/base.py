"""Common machinery of the event-camera file readers.

A reader is an :class:`EventFileSource` subclass that parses its header in ``_open`` and yields
decoded :class:`Batch` es (columns x, y, t, p with the raw timestamps of the format) from
``_batches``; this base class gathers batches into chunks, runs :func:`._finish.finish` on them
(events outside the sensor dropped, timestamps unwrapped and repaired, made relative to the first
event) and yields :class:`~edgebrain.stream.base.Events`. Memory is bounded by the block and chunk
sizes whatever the file length.
"""

from __future__ import annotations

import os
import re

import numpy as np

from ....errors import FormatError, InputError
from ...base import EVENT_DTYPE, Events, Source, SourceInfo, now
from ...reuse import ArrayPool
from . import _finish as K

DEFAULT_CHUNK = 1 << 19     # events per chunk at most (about 6.5 MB of EVENT_DTYPE)
DEFAULT_CHUNK_US = 10_000   # and at most this time span (what an encoder makes of one chunk then stays in cache)
BLOCK = 1 << 22             # bytes read at a time
NO_SIZE = 1 << 16           # "sensor size unknown": only the u16 range limits coordinates

# finished events, for all readers (a file opened after another one reuses its buffers)
_EVENTS = ArrayPool(EVENT_DTYPE, keep=4)


def parse_size(size) -> tuple | None:
    """(width, height) from a tuple/list or a string ``"640x480"`` / ``"640|480"``; None stays None."""
    if size is None:
        return None
    if isinstance(size, str):
        m = re.fullmatch(r"\s*(\d+)\s*[x×,| ]\s*(\d+)\s*", size)
        if not m:
            raise InputError(f"sensor_size '{size}' is not WIDTHxHEIGHT (e.g. 640x480)")
        size = (int(m.group(1)), int(m.group(2)))
    try:
        w, h = (int(v) for v in size)
    except (TypeError, ValueError):
        raise InputError(f"sensor_size {size!r} is not (width, height)") from None
    if not (0 < w <= 65535 and 0 < h <= 65535):
        raise InputError(f"sensor_size {size!r}: width and height must be 1..65535")
    return (w, h)


class Batch:
    """Decoded events with the format's raw timestamps, and where they came from in the file.

    ``src``: columns ``(x, y, t, p)``, or ``(q,)`` with ``q`` the (n, 2) int64 view of AEDAT 4
    event structs (see :func:`._finish._ev`). ``loc(i)`` describes the position of event ``i``
    (e.g. ``"byte 1234"``)."""

    __slots__ = ("src", "_locs")

    def __init__(self, *src, loc=None):
        self.src = tuple(src)
        self._locs = [(0, loc)] if loc is not None else []

    @property
    def t(self):
        return self.src[2] if len(self.src) == 4 else self.src[0][:, 0]

    def __len__(self):
        return len(self.src[0])

    def loc(self, i: int) -> str:
        best = None
        for i0, fn in self._locs:
            if i0 <= i:
                best = (i0, fn)
        if best is None:
            return "?"
        return best[1](i - best[0])

    @staticmethod
    def concat(batches: list) -> "Batch":
        if len(batches) == 1:
            return batches[0]
        b = Batch(*(np.concatenate([q.src[k] for q in batches]) for k in range(len(batches[0].src))))
        i0 = 0
        for q in batches:
            b._locs.extend((i0 + j0, fn) for j0, fn in q._locs)
            i0 += len(q)
        return b

    def tail(self, start: int) -> "Batch":
        b = Batch(*(c[start:] for c in self.src))
        prev = None
        for i0, fn in self._locs:
            if i0 <= start:
                prev = (i0, fn)
            else:
                b._locs.append((i0 - start, fn))
        if prev is not None:
            i0, fn = prev
            shift = start - i0
            b._locs.insert(0, (0, lambda i, fn=fn, s=shift: fn(i + s)))
        return b


def _span(batches) -> int:
    """Raw time span of pending batches (a cheap estimate: last minus first timestamp)."""
    a = batches[0].t
    b = batches[-1].t
    if not len(a) or not len(b):
        return 0
    return int(b[-1]) - int(a[0])


def fixed_loc(byte0: int, stride: int, index=None):
    """A locator for fixed-size records (``index``: record number of each kept event)."""
    if index is None:
        return lambda i: f"byte {byte0 + stride * i}"
    return lambda i: f"byte {byte0 + stride * int(index[i])}"


def range_loc(b0: int, b1: int):
    return lambda i: f"bytes {b0}-{b1}"


class EventFileSource(Source):
    """Base class of the event file readers (see the module docstring)."""

    format_name = "events"
    wrap_bits = 0          # raw timestamps are this many bits wide and wrap (0: full 64-bit times)
    jump_us = 1000         # time steps larger than this are checked for being outliers
    window = 64            # ... against this many following events
    options: tuple = ()    # format-specific keyword options accepted by _open

    def __init__(self, path, *, sensor_size=None, chunk_events: int = DEFAULT_CHUNK,
                 chunk_us: int = DEFAULT_CHUNK_US, max_jump_us=None, **options):
        super().__init__()
        self.path = os.fspath(path)
        bad = sorted(set(options) - set(self.options))
        if bad:
            raise InputError(f"{self.format_name} reader: unknown option(s) {', '.join(bad)}; expected "
                             f"{', '.join(('sensor_size', 'chunk_events', 'chunk_us', 'max_jump_us') + tuple(self.options))}")
        self.chunk_events = max(1, int(chunk_events))
        self.chunk_us = max(1, int(chunk_us)) if chunk_us else None
        self.jump = int(max_jump_us) if max_jump_us is not None else self.jump_us
        self.sensor_given = parse_size(sensor_size)
        self.info = SourceInfo(format=self.format_name, kind="events", path=self.path)
        try:
            self._f = open(self.path, "rb")
        except FileNotFoundError:
            raise FormatError("file not found", file=self.path) from None
        except OSError as e:
            raise FormatError(f"cannot read ({e.strerror})", file=self.path) from None
        self.size = os.fstat(self._f.fileno()).st_size
        try:
            self._open(**options)
            if self.sensor_given is not None:
                self.info.sensor_size = self.sensor_given
        except Exception:
            self._f.close()
            raise

    # ---------------------------------------------------------------- subclass interface

    def _open(self, **options) -> None:
        raise NotImplementedError

    def _batches(self):
        """Decoded :class:`Batch` es; a live reader also yields None when a read from its link is
        decoded, so that the events are handed over without waiting for a full chunk."""
        raise NotImplementedError

    # ---------------------------------------------------------------- helpers

    def error(self, what: str, offset: int | None = None) -> FormatError:
        return FormatError(what, file=self.path, where=None if offset is None else f"byte {offset}")

    def note(self, kind: str, where: str, what: str, n: int = 1) -> None:
        self.stats.note(kind, f"{self.path}: {where}", what, n)

    def read_at(self, offset: int, n: int) -> bytes:
        self._f.seek(offset)
        return self._f.read(n)

    def blocks(self, start: int, end: int | None = None, align: int = 1, block: int = BLOCK):
        """Yield (file offset, bytes) of the region [start, end) in blocks of a multiple of
        ``align`` bytes; a trailing partial record is reported as truncation."""
        end = self.size if end is None else min(end, self.size)
        block = max(align, block - block % align)
        pos = start
        self._f.seek(pos)
        while pos < end:
            data = self._f.read(min(block, end - pos))
            if not data:
                break
            usable = len(data) - len(data) % align
            if usable < len(data) and pos + len(data) >= end:
                self.note("repaired", f"byte {pos + usable}",
                          f"file ends inside a {align}-byte record: last {len(data) - usable} bytes ignored "
                          "(truncated file)")
            if usable:
                yield pos, data[:usable] if usable < len(data) else data
            pos += len(data)
            if usable < len(data) and pos < end:  # a short read in the middle: re-align
                self._f.seek(pos - (len(data) - usable))
                pos -= len(data) - usable

    # ---------------------------------------------------------------- streaming

    def _limits(self):
        s = self.info.sensor_size
        return (s[0], s[1]) if s else (NO_SIZE, NO_SIZE)

    def chunks(self):
        st = K.finish_state()
        width, height = self._limits()
        pending, npend = [], 0
        carry = None
        for batch in self._batches():
            if batch is None:  # a live source's read ended: hand over what can be finished now
                if pending:
                    carry, evs = self._finish(st, carry, pending, width, height, final=False)
                    pending, npend = [], 0
                    yield from evs
                continue
            if not len(batch):
                continue
            pending.append(batch)
            npend += len(batch)
            if npend >= self.chunk_events or (self.chunk_us and npend and _span(pending) > self.chunk_us):
                carry, evs = self._finish(st, carry, pending, width, height, final=False)
                pending, npend = [], 0
                yield from evs
        carry, evs = self._finish(st, carry, pending, width, height, final=True)
        yield from evs
        self._after(st)

    def _finish(self, st, carry, pending, width, height, final):
        parts = ([carry] if carry is not None else []) + pending
        if not parts:
            return None, []
        b = Batch.concat(parts)
        n = len(b)
        out = _EVENTS.take(n)
        before = st.copy()
        for k in (K.F_OOS_I, K.F_CLAMP_I, K.F_GLITCH_I, K.F_RESET_I, K.F_BADP_I):
            st[k] = -1
        consumed, k = K.finish(b.src, n, width, height, self.wrap_bits, self.jump, self.window, final, st, out, 0)
        self._note_finish(before, st, b, width, height)
        if st[K.F_INIT] and "t0_us" not in self.info.extra:
            self.info.extra["t0_us"] = int(st[K.F_FIRST])
        carry = b.tail(consumed) if consumed < n else None
        if k == 0:
            return carry, []
        # few events kept (a damaged stretch): a copy, so that the chunks do not pin the whole buffer
        ev = out[:k] if 4 * k > 3 * n else out[:k].copy()
        return carry, self._split(ev)

    def _split(self, ev) -> list:
        """Events chunks of at most ``chunk_us`` each (``t_end`` = the next chunk's first time)."""
        t = ev["t"]
        arrival = now()
        if not self.chunk_us or int(t[-1]) - int(t[0]) <= self.chunk_us:
            return [Events(ev, arrival=arrival, t_end=int(t[-1]))]
        bounds = K.span_bounds(t, self.chunk_us).tolist()
        n = len(t)
        return [Events(ev[a:b], arrival=arrival, t_end=int(t[b]) if b < n else int(t[-1]))
                for a, b in zip(bounds[:-1], bounds[1:])]

    def _note_finish(self, before, st, b, width, height):
        d = st - before
        if d[K.F_OOS]:
            size = f"{width}x{height} sensor" if self.info.sensor_size else "coordinate range"
            self.note("dropped", b.loc(int(st[K.F_OOS_I])),
                      f"{d[K.F_OOS]} events outside the {size} dropped (first x={st[K.F_OOS_X]}, "
                      f"y={st[K.F_OOS_Y]})", int(d[K.F_OOS]))
        if d[K.F_BADP]:
            self.note("dropped", b.loc(int(st[K.F_BADP_I])),
                      f"{d[K.F_BADP]} events with a polarity value other than 0/1 dropped", int(d[K.F_BADP]))
        if d[K.F_CLAMP]:
            self.note("repaired", b.loc(int(st[K.F_CLAMP_I])),
                      f"{d[K.F_CLAMP]} events earlier than the previous event (by up to {st[K.F_MAXBACK]} µs) "
                      "set to the previous event's time", int(d[K.F_CLAMP]))
        if d[K.F_GLITCH]:
            where = b.loc(int(st[K.F_GLITCH_I])) if st[K.F_GLITCH_I] >= 0 else "continued"
            self.note("repaired", where,
                      f"{d[K.F_GLITCH]} events with corrupt timestamps (a jump of {st[K.F_GLITCH_D]} µs and back) "
                      "set to the preceding event's time", int(d[K.F_GLITCH]))
        if d[K.F_RESET]:
            self.note("repaired", b.loc(int(st[K.F_RESET_I])),
                      f"time goes back by {-st[K.F_RESET_D]} µs and stays there (reset or splice): later "
                      "timestamps continue from the previous event's time", int(d[K.F_RESET]))

    def _after(self, st) -> None:
        """Called when the file is exhausted (subclasses add their counters to info.extra)."""

    def close(self) -> None:
        f = getattr(self, "_f", None)
        if f is not None:
            f.close()

    def __repr__(self):
        return f"<{type(self).__name__} {self.path}>"


def read_text_header(src: EventFileSource, prefix: bytes, *, max_bytes: int = 16 << 20,
                     crlf_only: bool = False) -> tuple[list[str], int]:
    """Header lines starting with ``prefix`` at the start of the file: (lines without the line end,
    offset of the first data byte). A line must be text (a binary record that happens to start
    with the prefix byte ends the header)."""
    lines = []
    pos = 0
    buf = b""
    f = src._f
    f.seek(0)
    while True:
        if len(buf) < 65536:
            more = f.read(1 << 20)
            buf += more
        if not buf.startswith(prefix):
            break
        nl = buf.find(b"\n")
        if nl < 0:
            if len(buf) >= max_bytes or not more:
                if not more and is_text(buf):
                    raise src.error("file ends inside the header (no data after it)", pos + len(buf))
                break
            continue
        line = buf[:nl + 1]
        if not is_text(line[:-1].rstrip(b"\r")):
            break
        lines.append(line.rstrip(b"\r\n").decode("utf-8", "replace"))
        pos += nl + 1
        buf = buf[nl + 1:]
        if pos > max_bytes:
            raise src.error(f"header longer than {max_bytes} bytes", pos)
    return lines, pos


def is_text(b: bytes) -> bool:
    """Whether ``b`` can be a line of a text header: no control bytes but tab, newline, CR, VT, FF
    (the test that ends a header when a binary record starts with the header's prefix byte)."""
    if not b:
        return True
    bad = sum(1 for c in b if c < 9 or 13 < c < 32 or c == 127)
    return bad == 0
