"""iniVation AEDAT 4.0 files (DV) — formats.md §5.

An IOHeader flatbuffer (compression, data-table position, XML stream description), then packets
(stream id, size) compressed with LZ4 frames or zstd, each a size-prefixed flatbuffer; the event
packets of the first (or ``stream=``) event stream are decoded, others skipped and counted. LZ4
files are read by a compiled scan (:mod:`._aedat4_scan`) with this module's Python reader for any
packet that is not plain.

Damage: a packet whose header is implausible or whose body does not decode is skipped and the next
packet found by scanning (counted); a packet that decodes to garbage is skipped whole (counted);
truncated files keep every whole event.
"""

from __future__ import annotations

import struct
import xml.etree.ElementTree as ET

import numpy as np
from ....jit import njit

from ....errors import InputError
from ...reuse import ArrayPool
from . import _aedat4_scan as _scan
from . import _lz4
from ._aedat4_scan import END as SCAN_END
from ._aedat4_scan import FULL as SCAN_FULL
from ._aedat4_scan import NEED as SCAN_NEED
from .base import BLOCK, Batch, EventFileSource

AEDAT4_EVENT = np.dtype([("t", "<i8"), ("x", "<i2"), ("y", "<i2"), ("on", "u1"), ("pad", "V3")])
COMPRESSION = {0: "none", 1: "lz4", 2: "lz4_high", 3: "zstd", 4: "zstd_high"}
LZ4_MAGIC = b"\x04\x22\x4d\x18"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
AEDAT4_BATCH = 1 << 16  # events per batch at most (see Aedat4Source._batches)
_HDR = struct.Struct("<II4s").unpack_from  # EVTS packet body: size prefix, root table offset, identifier
_I32 = struct.Struct("<i").unpack_from
_U32 = struct.Struct("<I").unpack_from
_VT = struct.Struct("<HHH").unpack_from    # vtable: its size, the table's size, field 0 offset


class _FB:
    """Minimal bounds-checked flatbuffer table reader."""

    def __init__(self, buf: bytes, table: int):
        self.b = buf
        if not (0 <= table <= len(buf) - 4):
            raise ValueError("table offset out of range")
        vt = table - struct.unpack_from("<i", buf, table)[0]
        if not (0 <= vt <= len(buf) - 4):
            raise ValueError("vtable offset out of range")
        vsize = struct.unpack_from("<H", buf, vt)[0]
        if vsize < 4 or vt + vsize > len(buf):
            raise ValueError("vtable size out of range")
        self.t, self.vt, self.vsize = table, vt, vsize

    def field(self, i: int) -> int | None:
        o = 4 + 2 * i
        if o + 2 > self.vsize:
            return None
        fo = struct.unpack_from("<H", self.b, self.vt + o)[0]
        if fo == 0:
            return None
        if self.t + fo > len(self.b):
            raise ValueError("field offset out of range")
        return self.t + fo

    def scalar(self, i: int, fmt: str, default):
        p = self.field(i)
        if p is None:
            return default
        if p + struct.calcsize(fmt) > len(self.b):
            raise ValueError("scalar out of range")
        return struct.unpack_from(fmt, self.b, p)[0]

    def ref(self, i: int) -> int | None:
        p = self.field(i)
        if p is None:
            return None
        if p + 4 > len(self.b):
            raise ValueError("offset out of range")
        q = p + struct.unpack_from("<I", self.b, p)[0]
        if q + 4 > len(self.b):
            raise ValueError("reference out of range")
        return q

    def vector(self, i: int, elem: int) -> tuple[int, int]:
        """(start, count) of a vector field."""
        q = self.ref(i)
        if q is None:
            return 0, 0
        n = struct.unpack_from("<I", self.b, q)[0]
        if q + 4 + n * elem > len(self.b):
            raise ValueError("vector out of range")
        return q + 4, n

    def string(self, i: int) -> str | None:
        s, n = self.vector(i, 1)
        return None if not n and s == 0 else self.b[s:s + n].decode("utf-8")


def _decompressor(code: int):
    if code == 0:
        return bytes
    if code in (1, 2):
        import lz4.frame
        from lz4.frame._frame import create_decompression_context, decompress_chunk, reset_decompression_context

        ctx = create_decompression_context()

        def dl(b):
            # one decompression context for all packets (lz4.frame.decompress makes one per call,
            # which cost as much as decompressing the small packets of sparse recordings), used
            # directly: LZ4FrameDecompressor.decompress copies a memoryview input first
            try:
                out, _, ok = decompress_chunk(ctx, b)
            except Exception:  # noqa: BLE001
                ok = False
            if ok:
                return out
            reset_decompression_context(ctx)
            return lz4.frame.decompress(b)  # a damaged frame: lz4's own verdict (and error message)
        return dl
    if code in (3, 4):
        import zstandard

        z = zstandard.ZstdDecompressor()

        def dz(b):
            return z.decompressobj().decompress(b)
        return dz
    raise ValueError(code)


@njit(cache=True)
def aedat4_check(q, starts, w, h, bad, back):
    """Per packet k (events starts[k]..starts[k+1] of ``q``, AEDAT 4 event structs as int64 pairs:
    t; x | y << 16 | on << 32) the number of events outside the sensor or with a polarity byte other
    than 0/1, and of steps back in time (counted without branches). Returns the number of packets
    that hold garbage (more than max(2, 1 %) of either)."""
    wx = min(w, 0x8000)
    hy = min(h, 0x8000)
    njunk = 0
    for k in range(starts.shape[0] - 1):
        nb = 0
        nback = 0
        if starts[k + 1] > starts[k]:
            prev = q[starts[k], 0]
            for i in range(starts[k], starts[k + 1]):
                ti = q[i, 0]
                v = q[i, 1]  # x, y: int16 (negative: bit 15 set, so >= 0x8000 as unsigned)
                nb += ((v & 0xFFFF) >= wx) | (((v >> 16) & 0xFFFF) >= hy) | (((v >> 32) & 0xFF) > 1)
                nback += ti < prev
                prev = ti
        bad[k] = nb
        back[k] = nback
        lim = max(2, (starts[k + 1] - starts[k]) // 100)
        if nb > lim or nback > lim:
            njunk += 1
    return njunk


@njit(cache=True, inline="always")
def _le(b, p, width, signed):
    """The little-endian integer of ``width`` bytes at ``b[p]``."""
    v = np.int64(0)
    for k in range(width):
        v |= np.int64(b[p + k]) << (8 * k)
    if signed and width < 8 and v >= (np.int64(1) << (8 * width - 1)):
        v -= np.int64(1) << (8 * width)
    return v


@njit(cache=True)
def aedat4_table(b, start, count, stream, res):
    """The FileDataTable entries (a flatbuffer vector of ``count`` tables at ``b[start]``; fields
    1 stream id (i32), 2 element count, 3 first and 4 last timestamp (i64)) of stream ``stream``:
    res = (elements, first time, last time, entries). Returns 0, 1 (an offset out of range) or 2
    (an entry without one of these fields)."""
    size = b.shape[0]
    n_items = np.int64(0)
    t_first = np.int64(0)
    t_last = np.int64(0)
    found = 0
    for k in range(count):
        p = start + 4 * k
        if p < 0 or p + 4 > size:
            return 1
        tpos = p + _le(b, p, 4, False)
        if tpos + 4 > size:
            return 1
        vt = tpos - _le(b, tpos, 4, True)
        if vt < 0 or vt + 2 > size:
            return 1
        vsize = _le(b, vt, 2, False)
        sid = np.int64(0)
        n = np.int64(0)
        a = np.int64(0)
        e = np.int64(0)
        for i in range(1, 5):
            if vsize < 6 + 2 * i:
                return 2
            fo = _le(b, min(vt + 4 + 2 * i, size - 2), 2, False)
            if fo == 0:
                return 2
            w = 4 if i == 1 else 8
            if tpos + fo + w > size:
                return 1
            v = _le(b, tpos + fo, w, True)
            if i == 1:
                sid = v
            elif i == 2:
                n = v
            elif i == 3:
                a = v
            else:
                e = v
        if sid == stream:
            n_items += n
            if found == 0 or a < t_first:
                t_first = a
            if found == 0 or e > t_last:
                t_last = e
            found += 1
    res[0] = n_items
    res[1] = t_first
    res[2] = t_last
    res[3] = found
    return 0


# event structs of the packets of a batch, copied out of their decompressed bodies
_STRUCTS = ArrayPool(np.int64, row=(2,), keep=3)
# decompressed packet bodies of the compiled scan (a packet whose body is larger takes the Python path)
SCRATCH_BYTES = 1 << 20
_SCRATCH = ArrayPool(np.uint8, keep=2)
PACKETS_PER_BATCH = 4096
_II = struct.Struct("<ii").unpack_from


class _FastScan:
    """The compiled scan of one reader (see :mod:`._aedat4_scan`): its LZ4 context (``lz`` is None
    when the lz4 package's C functions cannot be reached), scratch buffer and stream tables."""

    def __init__(self, src, limit):
        self.src = src
        self.limit = limit
        self.lz = _lz4.load()
        if self.lz is None:
            return
        self.sizes = np.zeros(2, np.int64)
        self.scratch = _SCRATCH.take(SCRATCH_BYTES)
        nk = min(max(src.streams) + 1, 1024) if src.streams else 0
        self.known = np.zeros(nk, np.uint8)
        for sid in src.streams:
            if 0 <= sid < nk:
                self.known[sid] = 1
        self.skipped = np.zeros(nk, np.int64)
        w, h = src.info.sensor_size or (65536, 65536)
        self.w, self.h = int(w), int(h)

    def run(self, pos, end):
        """Scan from ``pos``: (status, the offset it stopped at)."""
        src = self.src
        buf, boff = src._buf
        arr = np.frombuffer(src._rbuf, np.uint8, count=len(buf))
        status, o, src._n, src._npk = _scan.scan(
            arr, pos - boff, end - boff, src.stream, self.known, self.skipped, self.lz.decompress, self.lz.reset,
            self.lz.ctx, self.sizes, self.scratch, src._q, src._n, self.limit, src._pk_first, src._pk_pos, src._npk,
            boff, self.w, self.h)
        return status, boff + int(o)

    def close(self):
        """Add the skipped packets it counted to the reader's and free the LZ4 context."""
        if self.lz is None:
            return
        for sid in np.flatnonzero(self.skipped):
            kind = self.src.streams[int(sid)]["typeIdentifier"]
            self.src.skipped[kind] = self.src.skipped.get(kind, 0) + int(self.skipped[sid])
        self.skipped[:] = 0
        self.lz.close()
        self.lz = None

# Read buffers of AEDAT 4 readers that are done, for the next one (a file opened again, the next
# file): a new buffer of a few MB costs a page fault per 4 kB when it is first filled, more than
# reading the file into it. At most two are kept.
_READ_POOL: list = []


def _take_buffer(n: int) -> bytearray:
    for k in range(len(_READ_POOL) - 1, -1, -1):
        try:
            if len(_READ_POOL[k]) >= n:
                return _READ_POOL.pop(k)
        except IndexError:  # taken meanwhile (another thread)
            break
    return bytearray(n)


def _give_buffer(b: bytearray) -> None:
    if len(b):
        _READ_POOL.append(b)
        if len(_READ_POOL) > 2:
            _READ_POOL.remove(min(_READ_POOL, key=len))


class _PacketLoc:
    """Locator of the events of a batch: packet file offsets by first event index."""

    __slots__ = ("starts", "pos")

    def __init__(self, starts, pos):
        self.starts, self.pos = starts, pos

    def __call__(self, i: int) -> str:
        k = max(0, int(np.searchsorted(self.starts, i, "right")) - 1)
        return f"packet at byte {self.pos[k]}, event {i - int(self.starts[k])}"


class Aedat4Source(EventFileSource):
    """AEDAT 4.0 (DV). Option ``stream``: the event stream id (default: the lowest EVTS id)."""

    format_name = "aedat4"
    options = ("stream",)
    _rbuf = bytearray()  # the read buffer while packets are read (see _view)

    def _open(self, stream=None):
        head = self.read_at(0, 18)
        if not head.startswith(b"#!AER-DAT4.0"):
            raise self.error("expected '#!AER-DAT4.0\\r\\n' at the start", 0)
        if len(head) < 18:
            raise self.error("file ends before the IOHeader length (truncated)", len(head))
        n = struct.unpack_from("<I", head, 14)[0]
        if 18 + n > self.size:
            raise self.error(f"IOHeader of {n} bytes does not fit in the file (truncated or corrupt length)", 14)
        hdr = self.read_at(18, n)
        try:
            fb = _FB(hdr, struct.unpack_from("<I", hdr, 0)[0])
            comp = fb.scalar(0, "<i", 0)
            dtp = fb.scalar(1, "<q", -1)
            s, n_xml = fb.vector(2, 1)
        except (ValueError, struct.error) as e:
            raise self.error(f"IOHeader flatbuffer is corrupt ({e})", 18) from None
        try:
            xml = hdr[s:s + n_xml].decode("utf-8")
        except UnicodeDecodeError as e:
            raise self.error(f"stream description XML (infoNode) is not UTF-8 text ({e.reason} at its byte "
                             f"{e.start})", 18 + s + e.start) from None
        if comp not in COMPRESSION:
            raise self.error(f"IOHeader compression {comp}: expected 0-4 (none, LZ4, LZ4 high, zstd, zstd high)", 18)
        self.compression = comp
        self.decompress = _decompressor(comp)
        self.start = 18 + n
        self.dtp = dtp if self.start <= dtp < self.size else -1
        if dtp != -1 and self.dtp == -1:
            self.info.extra["data_table"] = f"position {dtp} outside the file: ignored"
        if not xml:
            raise self.error("IOHeader has no stream description (infoNode)", 18)
        try:
            root = ET.fromstring(xml)
        except ET.ParseError as e:
            raise self.error(f"stream description XML does not parse ({e})", 18) from None
        self.streams = {}
        for node in root.iter("node"):
            name = node.get("name", "")
            if not name.isdigit() or "outInfo" not in (node.get("path") or ""):
                continue
            attrs = {a.get("key"): (a.text or "") for a in node.findall("attr")}
            info = node.find("node[@name='info']")
            if info is not None:
                attrs.update({a.get("key"): (a.text or "") for a in info.findall("attr")})
            if "typeIdentifier" in attrs:
                self.streams[int(name)] = attrs
        ev = sorted(i for i, a in self.streams.items() if a["typeIdentifier"] == "EVTS")
        if stream is not None:
            if int(stream) not in ev:
                raise InputError(f"stream {stream} is not an event stream of {self.path}; event streams: {ev}")
            ev = [int(stream)]
        if not ev:
            raise self.error("the file has no event stream (typeIdentifier EVTS)", 18)
        self.stream = ev[0]
        a = self.streams[self.stream]
        try:
            self.info.sensor_size = (int(a["sizeX"]), int(a["sizeY"]))
        except (KeyError, ValueError):
            if self.sensor_given is None:
                raise self.error(f"event stream {self.stream} has no valid sizeX/sizeY: pass sensor_size", 18) from None
        self.info.extra.update(compression=COMPRESSION[comp], stream=self.stream,
                               streams={i: s["typeIdentifier"] for i, s in self.streams.items()})
        if "source" in a:
            self.info.extra["camera"] = a["source"]
        self._table()
        self.skipped = {}

    def _table(self):
        """n_items and duration from the file data table. A table that does not decode means its
        position is wrong (the file was damaged or edited): it is then ignored and packets are read up
        to the end of the file. Bytes after a good table are reported."""
        if self.dtp < 0:
            return
        try:
            body, rest = self._decompress_prefix(self.read_at(self.dtp, self.size - self.dtp))
            if body[8:12] != b"FTAB":
                raise ValueError("no FTAB identifier")
        except Exception as e:  # noqa: BLE001
            self.info.extra["data_table"] = f"none at position {self.dtp} ({type(e).__name__}): ignored"
            self.dtp = -1
            return
        if rest:
            self.note("repaired", f"byte {self.size - rest}", f"{rest} bytes after the file data table ignored")
        try:
            self._table_entries(body)
        except Exception as e:  # noqa: BLE001 - the table is only a shortcut for info
            self.info.extra["data_table"] = f"unreadable ({type(e).__name__})"

    def _table_entries(self, body: bytes) -> None:
        """Sum the elements and span the times of this stream's packets in the data table (the
        flatbuffer tables of all entries read by :func:`aedat4_table`, bounds-checked)."""
        fb = _FB(body, 4 + struct.unpack_from("<I", body, 4)[0])
        start, count = fb.vector(0, 4)
        if not count:
            return
        res = np.zeros(4, np.int64)
        err = aedat4_table(np.frombuffer(body, np.uint8), start, count, self.stream, res)
        if err:
            raise ValueError("data table entry out of range" if err == 1 else "data table entry without a field")
        n, a, e, m = (int(v) for v in res)
        self.info.n_items = n
        if m and e >= a:
            self.info.duration = (e - a) / 1e6

    def _decompress_prefix(self, data: bytes) -> tuple[bytes, int]:
        """Decompress one frame at the start of ``data``: (body, number of bytes after the frame)."""
        if self.compression in (1, 2):
            import lz4.frame

            d = lz4.frame.LZ4FrameDecompressor()
            body = d.decompress(data)
            if not d.eof:
                raise ValueError("truncated frame")
            return body, len(d.unused_data or b"")
        if self.compression in (3, 4):
            import zstandard

            d = zstandard.ZstdDecompressor().decompressobj()
            body = d.decompress(data)
            return body, len(d.unused_data or b"")
        return data, 0

    def _header_ok(self, sid: int, size: int, pos: int) -> bool:
        end = self.dtp if self.dtp >= 0 else self.size
        return sid in self.streams and 0 < size and pos + 8 + size <= end

    def _resync(self, pos: int) -> int | None:
        """Offset of the next packet header after ``pos`` (found by its compressed-frame magic)."""
        magic = {1: LZ4_MAGIC, 2: LZ4_MAGIC, 3: ZSTD_MAGIC, 4: ZSTD_MAGIC}.get(self.compression)
        end = self.dtp if self.dtp >= 0 else self.size
        step = 1 << 20
        p = pos + 1
        while p < end:
            data = self.read_at(p, step + 16)
            q = 0
            while True:
                if magic is not None:
                    q = data.find(magic, q)
                    cand = p + q - 8
                else:  # uncompressed: find a flatbuffer identifier 8 bytes into the body
                    q = min((x for x in (data.find(s, q) for s in (b"EVTS", b"IMUS", b"FRME", b"TRIG")) if x >= 0),
                            default=-1)
                    cand = p + q - 16
                if q < 0 or q >= step:
                    break
                if cand > pos:
                    hdr = self.read_at(cand, 8)
                    if len(hdr) == 8:
                        sid, size = struct.unpack("<ii", hdr)
                        if self._header_ok(sid, size, cand):
                            return cand
                q += 1
            p += step
        return None

    def _events(self, body: bytes):
        """(start, count) of the event vector in a decompressed EVTS packet body, or raise ValueError."""
        # the usual layout, read with few calls (per packet); anything else: _events_checked
        n = len(body)
        if n >= 16:
            size, root, ident = _HDR(body, 0)
            t = 4 + root
            if size == n - 4 and ident == b"EVTS" and t <= n - 4:
                vt = t - _I32(body, t)[0]
                if 0 <= vt <= n - 6:
                    vsize, _, f0 = _VT(body, vt)
                    p = t + f0
                    if vsize >= 6 and vt + vsize <= n and f0 and p + 4 <= n:
                        q = p + _U32(body, p)[0]
                        if q + 4 <= n:
                            cnt = _U32(body, q)[0]
                            if q + 4 + 16 * cnt <= n:
                                return q + 4, cnt
        return self._events_checked(body)

    def _events_checked(self, body: bytes):
        if len(body) < 12:
            raise ValueError("body shorter than a flatbuffer header")
        size = struct.unpack_from("<I", body, 0)[0]
        if size != len(body) - 4:
            raise ValueError(f"size prefix {size} != body length {len(body) - 4}")
        if body[8:12] != b"EVTS":
            raise ValueError(f"identifier {body[8:12]!r}, expected b'EVTS'")
        fb = _FB(body, 4 + struct.unpack_from("<I", body, 4)[0])
        return fb.vector(0, 16)

    def _view(self, pos: int, n: int) -> memoryview:
        """Bytes [pos, pos+n) of the file (fewer at its end), from a block read ahead into the read
        buffer (``self._rbuf``, reused: memory fresh from the system costs more than the read)."""
        buf, boff = self._buf
        if not (boff <= pos and pos + n <= boff + len(buf)):
            want = max(n, min(BLOCK, self.size - pos))
            if len(self._rbuf) < want:
                self._rbuf = bytearray(want)
            self._f.seek(pos)
            got = self._f.readinto(memoryview(self._rbuf)[:want])
            buf = memoryview(self._rbuf)[:got]
            boff = pos
            self._buf = (buf, boff)
        return buf[pos - boff:pos - boff + n]

    def _batches(self):
        pos = self.start
        end = self.dtp if self.dtp >= 0 else self.size
        # batches of a few packets rather than of a whole chunk: the event structs then go through
        # finish and binning while they are still in the cache, and the buffers of one batch are
        # reused by the next (large buffers come fresh from the system: page faults)
        limit = min(self.chunk_events, AEDAT4_BATCH)
        self._buf = (b"", 0)
        self._rbuf = _take_buffer(min(BLOCK, self.size - pos))
        fast = _FastScan(self, limit) if self.compression in (1, 2) else None
        if fast is not None and fast.lz is None:
            fast = None
        self._new_batch()
        try:
            yield from self._packets(pos, end, limit, fast)
        finally:
            if fast is not None:
                fast.close()
            self._buf = (b"", 0)
            _give_buffer(self._rbuf)
            self._rbuf = bytearray()
            self._q = None

    def _packets(self, pos, end, limit, fast):
        """Batches of the events of the packets from ``pos`` to ``end``: runs of well-formed packets
        through the compiled scan (``fast``, see :mod:`._aedat4_scan`), every other packet through
        :meth:`_packet`."""
        refilled = -1
        while pos < end:
            if self._q is None:  # taken only now: the last batch's buffer is free again once it has been finished
                self._q = _STRUCTS.take(limit + SCRATCH_BYTES // 16)
            buf, boff = self._buf
            o = pos - boff
            if o < 0 or o + 8 > len(buf):
                self._view(pos, 8)
                buf, boff = self._buf
                o = pos - boff
                if o + 8 > len(buf):
                    if len(buf) > o:
                        self.note("repaired", f"byte {pos}", f"file ends inside a packet header: last {len(buf) - o} "
                                  "bytes ignored (truncated file)")
                    break
            if fast is not None:
                status, pos = fast.run(pos, end)
                if status == SCAN_END:
                    break
                if status == SCAN_FULL:
                    yield self._take_batch()
                    continue
                if status == SCAN_NEED and refilled != pos:  # read on from this packet (else: the Python path)
                    refilled = pos
                    buf, boff = self._buf
                    o = pos - boff
                    size = _II(buf, o)[1] if 0 <= o and o + 8 <= len(buf) else 0
                    self._view(pos, 8 + max(size, 0))
                    continue
            nxt = self._packet(pos, end)
            if nxt is None:
                break
            pos = nxt
            if self._n >= limit or self._npk >= len(self._pk_first):
                yield self._take_batch()
        if self._n:
            yield self._take_batch()

    def _packet(self, pos, end):
        """The packet at ``pos`` (its header is in the read buffer) the Python way: decoded, checked
        and its events added to the batch, or skipped with a note saying why. Returns the offset of
        the next packet, or None when nothing more can be read."""
        buf, boff = self._buf
        sid, size = _II(buf, pos - boff)
        if sid == self.stream and 0 < size and pos + 8 + size <= end:
            data = self._view(pos + 8, size)
            try:
                body = self.decompress(data)
                s, cnt = self._events(body)
            except Exception as e:  # noqa: BLE001 - any decoder error means a damaged packet
                self.note("repaired", f"byte {pos}", f"event packet does not decode ({type(e).__name__}: "
                          f"{str(e)[:80]}): skipped")
                nxt = self._resync(pos)
                if nxt is not None and nxt != pos + 8 + size:
                    self.note("repaired", f"byte {pos + 8}", f"bytes {pos + 8}-{nxt} skipped to the next packet")
                return nxt
            if cnt:
                self._add(body, s, cnt, pos)
            return pos + 8 + size
        if not self._header_ok(sid, size, pos):
            if sid in self.streams and size > 0 and pos + 8 + size > self.size and self.dtp < 0:
                self.note("repaired", f"byte {pos}", f"file ends inside a packet ({self.size - pos - 8} of {size} "
                          "bytes; truncated file): packet skipped")
                return None
            nxt = self._resync(pos)
            self.note("repaired", f"byte {pos}",
                      f"corrupt packet header (stream {sid}, size {size}): bytes {pos}-{nxt if nxt else end} "
                      "skipped to the next packet" if nxt else
                      f"corrupt packet header (stream {sid}, size {size}) and no valid packet after it: "
                      f"bytes {pos}-{end} skipped")
            return nxt
        kind = self.streams[sid]["typeIdentifier"]
        self.skipped[kind] = self.skipped.get(kind, 0) + 1
        return pos + 8 + size

    # ---------------------------------------------------------------- the batch being filled

    def _new_batch(self):
        """An empty batch: event structs ``_q`` (int64 pairs; taken when the first packet is read:
        by then the last batch has been finished and its buffer is free again), and per packet its
        first event and file offset."""
        self._q = None
        self._n = 0
        if getattr(self, "_pk_first", None) is None:  # (a batch's packet list is copied when it is taken)
            self._pk_first = np.empty(PACKETS_PER_BATCH, np.int64)
            self._pk_pos = np.empty(PACKETS_PER_BATCH, np.int64)
        self._npk = 0

    def _add(self, body, s, cnt, pos):
        """Add the ``cnt`` events at ``body[s:]`` of the packet at ``pos``, unless they are garbage
        (LZ4 frames carry no checksum here: most events outside the sensor, invalid polarity values
        or time running backwards), in which case the packet is skipped whole (counted) rather than
        passing random events on."""
        n = self._n
        if self._q is None:
            self._q = _STRUCTS.take(max(cnt, AEDAT4_BATCH))
        elif n + cnt > len(self._q):
            q = np.empty((n + cnt, 2), np.int64)
            q[:n] = self._q[:n]
            self._q = q
        q = self._q[n:n + cnt]
        q.reshape(-1).view(np.uint8)[:] = np.frombuffer(body, np.uint8, count=16 * cnt, offset=s)
        w, h = self.info.sensor_size or (65536, 65536)
        bad = np.empty(1, np.int64)
        back = np.empty(1, np.int64)
        if aedat4_check(q, np.array([0, cnt], np.int64), w, h, bad, back):
            self.note("dropped", f"packet at byte {pos}",
                      f"event packet holds garbage ({bad[0]} of {cnt} events outside the sensor or with bad "
                      f"polarity, {back[0]} times going back): its {cnt} events skipped", int(cnt))
            return
        if self._npk == len(self._pk_first):  # (only a live link's reads are not cut at this many)
            self._pk_first = np.concatenate([self._pk_first, np.empty_like(self._pk_first)])
            self._pk_pos = np.concatenate([self._pk_pos, np.empty_like(self._pk_pos)])
        self._pk_first[self._npk] = n
        self._pk_pos[self._npk] = pos
        self._npk += 1
        self._n = n + cnt

    def _take_batch(self) -> Batch:
        b = Batch(self._q[:self._n])
        k = self._npk
        if k:
            b._locs = [(0, _PacketLoc(self._pk_first[:k].copy(), self._pk_pos[:k].copy()))]
        self._new_batch()
        return b

    def _after(self, st):
        if self.skipped:
            self.info.extra["skipped_packets"] = dict(self.skipped)
