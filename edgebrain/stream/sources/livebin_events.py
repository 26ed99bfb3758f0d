"""Event cameras over a live link: Prophesee EVT words (``format=evt3|evt2|evt21|raw``) and AEDAT 4
packets (``format=aedat4``); see :mod:`.livebin`. Each source is the file reader of its format
(:class:`~.events.prophesee.RawSource`, :class:`~.events.aedat4.Aedat4Source`) fed from a link."""

from __future__ import annotations

import io
import struct

from ...errors import FormatError, InputError
from ..base import Events, Source, SourceInfo
from ..links import Link
from .events.aedat4 import LZ4_MAGIC, ZSTD_MAGIC, Aedat4Source
from .events.base import EventFileSource, is_text, parse_size
from .events.prophesee import RawDecoder, RawSource
from .livebin import MAX_HEADER, LiveBinary, split_link_options

MAX_PACKET = 64 << 20     # AEDAT 4 packet size beyond which a packet header is judged corrupt
AEDAT4_MAGIC = b"#!AER-DAT4.0\r\n"


def raw_header_length(buf: bytes, final: bool = False) -> int | None:
    """Bytes of ``% key value`` header lines at the start of a RAW stream, or None while the next
    bytes could still be a header line (``final``: nothing more will come). A line must be text; the
    header ends at the first byte of a line that is not ``%`` or after ``% end``."""
    pos = 0
    while True:
        if pos >= len(buf):
            return pos if final else None
        if buf[pos:pos + 1] != b"%":
            return pos
        nl = buf.find(b"\n", pos)
        if nl < 0:
            if final or len(buf) - pos > 65536:
                return pos
            return None
        line = buf[pos:nl].rstrip(b"\r")
        if not is_text(line):
            return pos
        pos = nl + 1
        if line.strip().lower() == b"% end":
            return pos


class LiveEvents(LiveBinary):
    """An event-file reader (a subclass of it follows in the MRO) whose bytes come from a link:
    the options common to the event formats, and chunks stamped with their bytes' arrival."""

    def _init_events(self, link, url, fmt, sensor_size, width, height, chunk_events, chunk_us, max_jump_us,
                     link_opts):
        Source.__init__(self)
        self.path = url
        self._f = None
        self.chunk_events = max(1, int(chunk_events))
        self.chunk_us = max(1, int(chunk_us)) if chunk_us else None
        self.jump = int(max_jump_us) if max_jump_us is not None else self.jump_us
        if (width is None) != (height is None):
            raise InputError(f"{url}: give both width= and height= (or sensor_size=WIDTHxHEIGHT)")
        if width is not None:
            if sensor_size is not None:
                raise InputError(f"{url}: give either width=/height= or sensor_size=, not both")
            sensor_size = (width, height)
        self.sensor_given = parse_size(sensor_size)
        self.info = SourceInfo(format=fmt, kind="events", path=url)
        self._start(link, url, link_opts)

    def _split(self, ev) -> list:
        """Chunks of at most ``chunk_us`` and ``chunk_events``, stamped with the arrival of their bytes."""
        out = []
        for e in super()._split(ev):
            e.arrival = self._arrival
            n = len(e)
            if n <= self.chunk_events:
                out.append(e)
                continue
            t = e.events["t"]
            for a in range(0, n, self.chunk_events):
                b = min(n, a + self.chunk_events)
                out.append(Events(e.events[a:b], arrival=self._arrival, t_end=int(t[b]) if b < n else e.t_end))
        return out

    def _datagram_end(self, dec, n_bytes: int) -> None:
        n = dec.discard_partial()
        if n:
            self.stats.note("repaired", self.url, f"datagram of {n_bytes} bytes ends inside a word: its last {n} "
                                                  "bytes dropped")

    def close(self) -> None:
        LiveBinary.close(self)

    def __repr__(self):
        return f"<{type(self).__name__} {self.url}>"


class LinkRawSource(LiveEvents, RawSource):
    """Prophesee RAW words (``format=evt3|evt2|evt21|raw``) from a live link; see the module."""

    def __init__(self, link: Link, url: str, fmt: str, *, sensor_size=None, width=None, height=None,
                 chunk_events=4096, chunk_us=10_000, max_jump_us=None, evt21_order="auto", **opts):
        link_opts, _ = split_link_options(opts)
        self._dec = None
        self._hbuf = b""
        self._init_events(link, url, fmt, sensor_size, width, height, chunk_events, chunk_us, max_jump_us, link_opts)
        try:
            _, buf, t = self._wait(lambda b, final: raw_header_length(b, final), "RAW header lines or data")
            self._f = io.BytesIO(buf)
            self.size = len(buf)
            self._open(encoding=None if fmt == "raw" else fmt, evt21_order=evt21_order)
            self._f = None
            if self.sensor_given is not None:
                self.info.sensor_size = self.sensor_given
            self.info.extra.update(self._extra)
            if len(buf) > self.start:
                self._held.append((t, buf[self.start:]))
        except BaseException:
            self.close()
            raise

    def _decoder(self, **kw):
        dec = RawDecoder(self, self.encoding, offset=self.start, cap=self.chunk_events, legacy=self.legacy,
                         what="stream", **kw)
        self._dstate = dec.st
        self._dec = dec
        return dec

    def close(self) -> None:
        LiveEvents.close(self)
        self._dec = None  # the decoder holds this source: no cycle left for the garbage collector

    def _on_drop(self) -> None:
        if self._dec is not None:
            n = self._dec.discard_partial()
            if n:
                self.stats.note("repaired", f"{self.url}: byte {self._dec.off + len(self._dec.buf)}",
                                f"link dropped inside a {self._dec.ws}-byte word: {n} bytes discarded")
        self._hbuf = b""

    def _bytes(self):
        """The link's bytes, without header lines sent again after a reconnection."""
        for t, data in self._data():
            if self._fresh:
                buf = self._hbuf + data
                n = raw_header_length(buf)
                if n is None:
                    self._hbuf = buf
                    continue
                self._hbuf, self._fresh = b"", False
                if n:
                    self.info.extra["headers_after_reconnect"] = self.info.extra.get("headers_after_reconnect", 0) + 1
                data = buf[n:]
                if not data:
                    continue
            yield t, data

    def _batches(self):
        dec = self._decoder()
        dg = self.link.datagram
        for t, data in self._bytes():
            self._arrival = t
            yield from dec.batches(data)
            if dg:
                self._datagram_end(dec, len(data))
            yield None
        yield from dec.batches(final=True)

    def chunks(self):
        try:
            if self.encoding != "evt3":
                yield from EventFileSource.chunks(self)
                return
            dec = self._decoder(size=self._limits(), jump=self.jump)
            dg = self.link.datagram
            for t, data in self._bytes():
                self._arrival = t
                for ev in dec.events(data):
                    yield from self._emit(ev)
                if dg:
                    self._datagram_end(dec, len(data))
                ev = dec.take()
                if ev is not None:
                    yield from self._emit(ev)
            yield from self._drain_evt3(dec)
        finally:
            self.close()


def aedat4_header_length(buf: bytes, final: bool = False):
    """(header bytes on the link, the header as a file starts: ``#!AER-DAT4.0`` line, u32 size,
    IOHeader) or None while more bytes are needed. DV's network output sends the size-prefixed
    IOHeader without the version line; a file sent as is has it. Raises FormatError otherwise."""
    if buf.startswith(AEDAT4_MAGIC[:12]):
        if len(buf) < 18:
            return None
        n = struct.unpack_from("<I", buf, 14)[0]
        if n > MAX_HEADER:
            raise FormatError(f"IOHeader of {n} bytes is implausible (corrupt length)", where="byte 14")
        return (18 + n, bytes(buf[:18 + n])) if len(buf) >= 18 + n else None
    if AEDAT4_MAGIC.startswith(buf[:14]) or len(buf) < 12:
        return None
    if buf[8:12] == b"IOHE":
        n = struct.unpack_from("<I", buf, 0)[0]
        if n > MAX_HEADER:
            raise FormatError(f"IOHeader of {n} bytes is implausible (corrupt length)", where="byte 0")
        return (4 + n, AEDAT4_MAGIC + bytes(buf[:4 + n])) if len(buf) >= 4 + n else None
    raise FormatError("expected an AEDAT 4 header ('#!AER-DAT4.0' or a size-prefixed IOHeader flatbuffer), "
                      f"found {bytes(buf[:16])!r}", where="byte 0")


class LinkAedat4Source(LiveEvents, Aedat4Source):
    """AEDAT 4.0 packets (``format=aedat4``) from a live link; see the module."""

    def __init__(self, link: Link, url: str, *, stream=None, sensor_size=None, width=None, height=None,
                 chunk_events=4096, chunk_us=10_000, max_jump_us=None, **opts):
        link_opts, _ = split_link_options(opts)
        self._pbuf = bytearray()
        self._new_batch()
        self._garbage = None       # (start offset, bytes) of a run of bytes being skipped
        self._init_events(link, url, "aedat4", sensor_size, width, height, chunk_events, chunk_us, max_jump_us,
                          link_opts)
        try:
            (n, hdr), buf, t = self._wait(self._header, "AEDAT 4 header")
            self._hdr = hdr
            self.size = 1 << 62
            self._open(stream=stream)
            self.dtp = -1
            if self.sensor_given is not None:
                self.info.sensor_size = self.sensor_given
            self.info.extra.update(self._extra)
            self.info.extra["header"] = "file" if buf.startswith(AEDAT4_MAGIC[:12]) else "network"
            self._off = n               # link offset of _pbuf[0]
            if len(buf) > n:
                self._held.append((t, buf[n:]))
        except FormatError as e:
            self.close()
            raise e.with_file(url) from None
        except BaseException:
            self.close()
            raise

    def _header(self, buf, final):
        return aedat4_header_length(buf, final)

    # the file reader's header code reads the header through these
    def read_at(self, offset: int, n: int) -> bytes:
        return self._hdr[offset:offset + n]

    def _table(self) -> None:
        pass

    def _plausible(self, sid: int, size: int) -> bool:
        return sid in self.streams and 0 < size <= MAX_PACKET

    def _on_drop(self) -> None:
        if self._pbuf:
            self.stats.note("repaired", f"{self.url}: byte {self._off}",
                            f"link dropped inside a packet: {len(self._pbuf)} bytes discarded")
            self._off += len(self._pbuf)
            self._pbuf = bytearray()
        self._end_garbage()

    def _end_garbage(self, what: str = "skipped to the next packet") -> None:
        if self._garbage is not None:
            a, n = self._garbage
            self._garbage = None
            self.stats.note("repaired", f"{self.url}: byte {a}",
                            f"{n} bytes that are not a valid packet (garbage or a damaged packet header) {what}")

    def _skip(self, buf, pos: int, n: int) -> None:
        if self._garbage is None:
            self._garbage = (self._off + pos, 0)
        a, m = self._garbage
        self._garbage = (a, m + n)

    def _next_header(self, buf, pos: int) -> int | None:
        """Offset of the next plausible packet header after ``pos`` (found by its compressed-frame magic
        or, uncompressed, by the flatbuffer identifier), or None."""
        magic = {1: LZ4_MAGIC, 2: LZ4_MAGIC, 3: ZSTD_MAGIC, 4: ZSTD_MAGIC}.get(self.compression)
        pats, back = ([magic], 8) if magic is not None else ([b"EVTS", b"IMUS", b"FRME", b"TRIG"], 16)
        q = pos + 1 + back
        while True:
            hits = [i for i in (buf.find(p, q) for p in pats) if i >= 0]
            if not hits:
                return None
            i = min(hits)
            cand = i - back
            sid, size = struct.unpack_from("<ii", buf, cand)
            if self._plausible(sid, size):
                return cand
            q = i + 1

    def _data_table(self, buf, pos: int):
        """Bytes of a file data table (a bare compressed FileDataTable) at ``pos``: an int, None if it
        is not one, -1 if more bytes are needed to tell."""
        if bytes(buf[pos:pos + 4]) not in (LZ4_MAGIC, ZSTD_MAGIC):
            return None
        try:
            body, rest = self._decompress_prefix(bytes(buf[pos:]))
        except ValueError as e:
            return -1 if "truncated" in str(e) else None
        except Exception:  # noqa: BLE001 - not a frame
            return None
        if body[8:12] != b"FTAB":
            return None
        return len(buf) - pos - rest

    def _batches(self):
        for t, data in self._data():
            if self._fresh:
                self._pbuf += data
                try:
                    r = aedat4_header_length(self._pbuf)
                except FormatError:
                    r, self._fresh = False, False
                if r is None:
                    if len(self._pbuf) <= MAX_HEADER:
                        continue
                    self._fresh = False
                elif r:
                    self._fresh = False
                    del self._pbuf[:r[0]]
                    self._off += r[0]
                    self.info.extra["headers_after_reconnect"] = self.info.extra.get("headers_after_reconnect", 0) + 1
            else:
                self._pbuf += data
            self._arrival = t
            batch = self._packets()
            if batch is not None:
                yield batch
            yield None
        self._end_garbage()
        if self._pbuf:
            self.stats.note("repaired", f"{self.url}: byte {self._off}",
                            f"stream ended inside a packet: last {len(self._pbuf)} bytes ignored")

    def _packets(self):
        """Decode the whole packets in the buffer; a batch of their events (or None)."""
        buf = self._pbuf
        pos = 0
        unpack = struct.Struct("<ii").unpack_from
        while len(buf) - pos >= 8:
            sid, size = unpack(buf, pos)
            if not self._plausible(sid, size):
                tb = self._data_table(buf, pos) if self._garbage is None else None
                if tb == -1 and len(buf) - pos <= MAX_PACKET:
                    break       # maybe a file data table: wait for the rest of it
                if tb:
                    self.info.extra["data_table"] = "a file's data table arrived after the packets: skipped"
                    pos += tb
                    continue
                nxt = self._next_header(buf, pos)
                if nxt is None:
                    keep = max(pos, len(buf) - 24)   # a header may straddle the next read
                    self._skip(buf, pos, keep - pos)
                    pos = keep
                    break
                self._skip(buf, pos, nxt - pos)
                self._end_garbage()
                pos = nxt
                continue
            if len(buf) - pos < 8 + size:
                break
            if self._garbage is not None:
                self._end_garbage()
            at = self._off + pos
            if sid != self.stream:
                kind = self.streams[sid]["typeIdentifier"]
                self.skipped[kind] = self.skipped.get(kind, 0) + 1
                pos += 8 + size
                continue
            try:
                body = self.decompress(bytes(buf[pos + 8:pos + 8 + size]))
                s, cnt = self._events(body)
            except Exception as e:  # noqa: BLE001 - any decoder error means a damaged packet
                self.stats.note("repaired", f"{self.url}: byte {at}", f"event packet does not decode "
                                f"({type(e).__name__}: {str(e)[:80]}): skipped")
                pos += 8 + size
                continue
            if cnt:
                self._add(body, s, cnt, at)  # (the file reader's: garbage packets skipped and counted)
            pos += 8 + size
        if pos:
            del buf[:pos]
            self._off += pos
        return self._take_batch() if self._n else None

    def chunks(self):
        try:
            yield from EventFileSource.chunks(self)
        finally:
            self.close()
