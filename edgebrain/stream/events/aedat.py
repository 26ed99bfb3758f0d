"""iniVation AEDAT files: 1.0/2.0 (jAER), 3.1 (cAER) and 4.0 (DV) — formats.md §3–5.

* AEDAT 1.0/2.0: ``#`` header lines (the header ends at the first line that is not a ``#`` text
  line), then big-endian records (1.0: i16 address + i32 time; 2.0: u32 + u32). The address layout
  depends on the chip: ``layout=dvs128`` (iniVation document: x bits 7–1, y bits 14–8, p bit 0),
  ``dvs128-tonic`` (x and y swapped, as tonic reads them) or ``davis`` (type bit 31, y bits 30–22,
  x bits 21–12, p bit 11, external-event bit 10; APS/IMU words skipped and counted). The origin is
  lower-left: ``flip_y=True`` (default) turns it into the image convention used by every other
  reader (origin top-left); ``flip_x`` mirrors x as well (tonic's DAVIS346 reader does both).
* AEDAT 3.1: header up to ``#!END-HEADER``, then 28-byte packet headers; polarity packets decoded
  (valid events only, time = overflow << 31 | ts), others skipped and counted; TIMESTAMP_RESET
  continues the time line.
* AEDAT 4.0: IOHeader flatbuffer (compression, data-table position, XML stream description), then
  packets (stream id, size) compressed with LZ4 frames or zstd, each a size-prefixed flatbuffer;
  event packets of the first (or ``stream=``) event stream decoded, others skipped and counted.

Damage: an AEDAT 3.1/4.0 packet whose header is implausible or whose body does not decode is
skipped and the next packet found by scanning (counted); truncated files keep every whole event.
"""

from __future__ import annotations

import re
import struct
import xml.etree.ElementTree as ET

import numpy as np
from numba import njit

from ...errors import InputError
from ._base import BLOCK, Batch, EventFileSource, fixed_loc, read_text_header

# chip name pattern → (layout, (width, height))
CHIPS = [
    (re.compile(r"dvs128|tmpdiff128", re.I), "dvs128", (128, 128)),
    (re.compile(r"346", re.I), "davis", (346, 260)),
    (re.compile(r"240", re.I), "davis", (240, 180)),
    (re.compile(r"640", re.I), "davis", (640, 480)),
    (re.compile(r"208", re.I), "davis", (208, 192)),
    (re.compile(r"davis128", re.I), "davis", (128, 128)),
]
LAYOUTS = ("dvs128", "dvs128-tonic", "davis")


def chip_info(name: str):
    for rx, layout, size in CHIPS:
        if rx.search(name):
            return layout, size
    return None, None


# --------------------------------------------------------------------------------------------- AEDAT 2


class Aedat2Source(EventFileSource):
    """AEDAT 1.0 / 2.0 (jAER). Options: layout (dvs128|dvs128-tonic|davis; default from the
    ``# AEChip:`` line), flip_y (default True), flip_x (default False)."""

    format_name = "aedat2"
    wrap_bits = 32
    options = ("layout", "flip_y", "flip_x")

    def _open(self, layout=None, flip_y=True, flip_x=False):
        lines, start = read_text_header(self, b"#")
        version = "1.0"
        chip = None
        for line in lines:
            m = re.match(r"#!AER-DAT(\d+\.\d+)", line)
            if m:
                version = m.group(1)
            m = re.match(r"#\s*AEChip:\s*(\S+)", line)
            if m:
                chip = m.group(1)
        if version not in ("1.0", "2.0"):
            raise self.error(f"AEDAT version {version}: this reader handles 1.0 and 2.0", 0)
        self.version = version
        self.rec = 8 if version == "2.0" else 6
        self.start = start
        clayout, csize = chip_info(chip or "")
        if layout is not None and layout not in LAYOUTS:
            raise InputError(f"layout '{layout}': expected one of {', '.join(LAYOUTS)}")
        self.layout = layout or clayout or ("dvs128" if version == "1.0" else None)
        if self.layout is None:
            raise self.error(f"unknown chip {chip!r} (no '# AEChip:' line naming DVS128 or a DAVIS): pass "
                             "layout=dvs128|dvs128-tonic|davis and sensor_size=WIDTHxHEIGHT")
        size = csize if (clayout == "davis") == (self.layout == "davis") else None
        if size is None and self.layout.startswith("dvs128"):
            size = (128, 128)
        if size is None and self.sensor_given is None:
            raise self.error(f"sensor size unknown for chip {chip!r}: pass sensor_size=WIDTHxHEIGHT")
        self.info.sensor_size = self.sensor_given or size
        self.flip_y, self.flip_x = bool(flip_y), bool(flip_x)
        self.info.extra.update(version=version, layout=self.layout, chip=chip, origin="top-left" if flip_y
                               else "bottom-left")
        nrec = (self.size - start) // self.rec
        if self.layout != "davis":
            self.info.n_items = nrec
        if nrec:
            a = self._ts(self.read_at(start, self.rec))
            b = self._ts(self.read_at(start + self.rec * (nrec - 1), self.rec))
            if b >= a:
                self.info.duration = (b - a) / 1e6
        self.n_imu = self.n_aps = self.n_ext = 0

    def _ts(self, rec: bytes) -> int:
        return int.from_bytes(rec[-4:], "big")

    def _batches(self):
        w, h = self.info.sensor_size
        rdt = np.dtype([("a", ">u4"), ("t", ">u4")]) if self.rec == 8 else np.dtype([("a", ">u2"), ("t", ">u4")])
        for off, data in self.blocks(self.start, align=self.rec):
            r = np.frombuffer(data, rdt)
            a = r["a"].astype(np.int64)
            t = r["t"].astype(np.int64)
            keep = None
            if self.layout == "davis":
                special = (a >> 31) & 1
                kind = (a >> 10) & 3
                imu = (special == 1) & (kind == 3)
                ext = (special == 0) & ((a >> 10) & 1 == 1)
                self.n_imu += int(imu.sum())
                self.n_aps += int(special.sum()) - int(imu.sum())
                self.n_ext += int(ext.sum())
                keep = (special == 0) & ~ext
                x = (a >> 12) & 0x3FF
                y = (a >> 22) & 0x1FF
                p = (a >> 11) & 1
            else:
                ext = (a >> 15) & 1 == 1
                self.n_ext += int(ext.sum())
                keep = ~ext
                if self.layout == "dvs128":
                    x = (a >> 1) & 0x7F
                    y = (a >> 8) & 0x7F
                else:
                    x = (a >> 8) & 0x7F
                    y = (a >> 1) & 0x7F
                p = a & 1
            if self.flip_y:
                y = h - 1 - y
            if self.flip_x:
                x = w - 1 - x
            idx = None
            if not keep.all():
                idx = np.flatnonzero(keep)
                x, y, t, p = x[idx], y[idx], t[idx], p[idx]
            x = np.where(x < 0, 65535, x).astype(np.uint16)
            y = np.where(y < 0, 65535, y).astype(np.uint16)
            yield Batch(x, y, t, p.astype(np.uint8), loc=fixed_loc(off, self.rec, idx))

    def _after(self, st):
        for k, v in (("imu_words", self.n_imu), ("aps_words", self.n_aps), ("external_events", self.n_ext)):
            if v:
                self.info.extra[k] = v


# --------------------------------------------------------------------------------------------- AEDAT 3.1

PKT = struct.Struct("<hhiiiiii")
EVENT_SIZES = {0: 8, 1: 8, 3: 36, 4: 48, 5: 8, 6: 8, 7: 16}
TYPE_NAMES = {0: "special", 1: "polarity", 2: "frame", 3: "imu6", 4: "imu9", 5: "sample", 6: "ear",
              7: "config", 8: "point1d", 9: "point2d", 10: "point3d", 11: "point4d", 12: "spike"}
SOURCES = [(re.compile(r"dvs128", re.I), (128, 128)), (re.compile(r"346", re.I), (346, 260)),
           (re.compile(r"240", re.I), (240, 180)), (re.compile(r"640", re.I), (640, 480)),
           (re.compile(r"dvxplorer", re.I), (640, 480))]


class Aedat31Source(EventFileSource):
    """AEDAT 3.1 (cAER). Polarity events, origin top-left."""

    format_name = "aedat3"
    options = ("source",)

    def _open(self, source=None):
        lines, start = read_text_header(self, b"#")
        if not lines or not re.match(r"#!AER-DAT3\.\d", lines[0]):
            raise self.error("expected '#!AER-DAT3.1' as the first line", 0)
        end = [i for i, s in enumerate(lines) if s.strip() == "#!END-HEADER"]
        if not end:
            raise self.error("no '#!END-HEADER' line ends the header", start)
        # data starts right after #!END-HEADER (even if the first packet byte is '#')
        head = self.read_at(0, start + 16)
        m = re.search(rb"#!END-HEADER\r?\n", head)
        self.start = m.end() if m else start
        self.sources = {}
        for s in lines:
            m = re.match(r"#Source\s+(-?\d+):\s*(.*)", s)
            if m:
                self.sources[int(m.group(1))] = m.group(2).strip()
        self.source = source
        size = None
        names = [self.sources[source]] if source is not None and source in self.sources else list(self.sources.values())
        for name in names:
            for rx, sz in SOURCES:
                if rx.search(name):
                    size = sz
                    break
            if size:
                break
        if size is None and self.sensor_given is None:
            raise self.error(f"sensor size unknown for source {names!r}: pass sensor_size=WIDTHxHEIGHT")
        self.info.sensor_size = self.sensor_given or size
        self.info.extra["sources"] = dict(self.sources)
        self.skipped = {}
        self.resets = 0

    def _plausible(self, hdr: bytes, pos: int) -> bool:
        typ, src, size, tso, ovf, cap, num, valid = PKT.unpack(hdr)
        if not (0 <= typ <= 12) or size <= 0 or size > (1 << 20) or not (0 <= tso <= size - 4):
            return False
        if typ in EVENT_SIZES and size != EVENT_SIZES[typ]:
            return False
        if cap < 0 or num < 0 or valid < 0 or num > cap or valid > num or ovf < 0:
            return False
        if cap * size > (1 << 30):
            return False
        return True

    def _resync(self, pos: int) -> int | None:
        """The next offset after ``pos`` holding a plausible polarity/special packet header."""
        pat = re.compile(rb"[\x00\x01]\x00..\x08\x00\x00\x00\x04\x00\x00\x00", re.S)
        step = 1 << 20
        p = pos + 1
        while p < self.size:
            data = self.read_at(p, step + 28)
            for m in pat.finditer(data):
                q = p + m.start()
                hdr = data[m.start():m.start() + 28]
                if len(hdr) < 28:
                    hdr = self.read_at(q, 28)
                if len(hdr) == 28 and self._plausible(hdr, q):
                    nxt = q + 28 + PKT.unpack(hdr)[5] * 8
                    if nxt >= self.size:
                        return q
                    h2 = self.read_at(nxt, 28)
                    if len(h2) < 28 or self._plausible(h2, nxt):
                        return q
            p += step
        return None

    def _batches(self):
        pos = self.start
        base = 0          # added to timestamps after TIMESTAMP_RESET events
        last = 0
        parts, locs, n = [], [], 0
        while pos < self.size:
            hdr = self.read_at(pos, 28)
            if len(hdr) < 28:
                self.note("repaired", f"byte {pos}", f"file ends inside a packet header: last {len(hdr)} bytes "
                          "ignored (truncated file)")
                break
            if not self._plausible(hdr, pos):
                nxt = self._resync(pos)
                end = self.size if nxt is None else nxt
                self.note("repaired", f"byte {pos}",
                          f"corrupt packet header (type/size/capacity fields implausible): bytes {pos}-{end} "
                          "skipped to the next valid packet" if nxt is not None else
                          f"corrupt packet header: no valid packet follows, bytes {pos}-{end} skipped")
                if nxt is None:
                    break
                pos = nxt
                continue
            typ, src, size, tso, ovf, cap, num, valid = PKT.unpack(hdr)
            plen = cap * size
            body = self.read_at(pos + 28, plen)
            if len(body) < plen:
                self.note("repaired", f"byte {pos + 28 + len(body)}",
                          f"file ends inside a packet ({len(body)} of {plen} payload bytes): the whole events in it "
                          "are kept (truncated file)")
            if typ == 1 and (self.source is None or src == self.source):
                ne = min(num, len(body) // 8)
                r = np.frombuffer(body, "<u4", count=2 * ne).reshape(-1, 2)
                d = r[:, 0]
                ok = (d & 1) == 1
                idx = np.flatnonzero(ok) if not ok.all() else None
                if idx is not None:
                    r, d = r[idx], d[idx]
                t = ((np.int64(ovf) << 31) | r[:, 1].astype(np.int64)) + base
                if len(t):
                    last = int(t[-1])
                parts.append(((d >> 17) & 0x7FFF, (d >> 2) & 0x7FFF, t, (d >> 1) & 1))
                locs.append((n, fixed_loc(pos + 28, 8, idx)))
                n += len(t)
            elif typ == 0:
                ne = min(num, len(body) // 8)
                r = np.frombuffer(body, "<u4", count=2 * ne).reshape(-1, 2)
                sub = (r[:, 0] >> 1) & 0x7F
                isreset = ((r[:, 0] & 1) == 1) & (sub == 1)
                if isreset.any():
                    self.resets += int(isreset.sum())
                    base = last
                self.skipped["special"] = self.skipped.get("special", 0) + 1
            else:
                name = TYPE_NAMES.get(typ, str(typ))
                self.skipped[name] = self.skipped.get(name, 0) + 1
            pos += 28 + plen
            if n >= self.chunk_events:
                yield self._batch(parts, locs)
                parts, locs, n = [], [], 0
        if parts:
            yield self._batch(parts, locs)

    @staticmethod
    def _batch(parts, locs):
        cols = [np.concatenate([q[k] for q in parts]) for k in range(4)]
        b = Batch(cols[0].astype(np.uint16), cols[1].astype(np.uint16), cols[2], cols[3].astype(np.uint8))
        b._locs = list(locs)
        return b

    def _after(self, st):
        if self.skipped:
            self.info.extra["skipped_packets"] = dict(self.skipped)
        if self.resets:
            self.info.extra["timestamp_resets"] = self.resets


# --------------------------------------------------------------------------------------------- AEDAT 4

AEDAT4_EVENT = np.dtype([("t", "<i8"), ("x", "<i2"), ("y", "<i2"), ("on", "u1"), ("pad", "V3")])
COMPRESSION = {0: "none", 1: "lz4", 2: "lz4_high", 3: "zstd", 4: "zstd_high"}
LZ4_MAGIC = b"\x04\x22\x4d\x18"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


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

        d = lz4.frame.LZ4FrameDecompressor()

        def dl(b):
            # one decompression context for all packets (lz4.frame.decompress makes one per call,
            # which cost as much as decompressing the small packets of sparse recordings)
            try:
                out = d.decompress(b)
                ok = d.eof
            except Exception:  # noqa: BLE001
                ok = False
            d.reset()
            if ok:
                return out
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
    than 0/1, and of steps back in time (counted without branches)."""
    wx = min(w, 0x8000)
    hy = min(h, 0x8000)
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


class Aedat4Source(EventFileSource):
    """AEDAT 4.0 (DV). Option ``stream``: the event stream id (default: the lowest EVTS id)."""

    format_name = "aedat4"
    options = ("stream",)

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
        flatbuffer tables of all entries read at once with numpy gathers, bounds-checked)."""
        fb = _FB(body, 4 + struct.unpack_from("<I", body, 4)[0])
        start, count = fb.vector(0, 4)
        if not count:
            return
        b = np.frombuffer(body, np.uint8)
        size = len(b)

        def gather(pos, width, dt):
            pos = np.asarray(pos, np.int64)
            if pos.min() < 0 or pos.max() + width > size:
                raise ValueError("data table entry out of range")
            return b[pos[:, None] + np.arange(width)].copy().view(dt).ravel().astype(np.int64)

        tpos = gather(start + 4 * np.arange(count), 4, "<u4") + start + 4 * np.arange(count)
        vt = tpos - gather(tpos, 4, "<i4")
        vsize = gather(vt, 2, "<u2")

        def field(i, width, dt):
            fo = np.where(vsize >= 6 + 2 * i, gather(np.minimum(vt + 4 + 2 * i, size - 2), 2, "<u2"), 0)
            if (fo == 0).any():
                raise ValueError(f"entry without field {i}")
            return gather(tpos + fo, width, dt)

        sid, n, a, e = field(1, 4, "<i4"), field(2, 8, "<i8"), field(3, 8, "<i8"), field(4, 8, "<i8")
        m = sid == self.stream
        self.info.n_items = int(n[m].sum())
        if m.any() and e[m].max() >= a[m].min():
            self.info.duration = (int(e[m].max()) - int(a[m].min())) / 1e6

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
        """Bytes [pos, pos+n) of the file (fewer at its end), from a block read ahead."""
        buf, boff = self._buf
        if not (boff <= pos and pos + n <= boff + len(buf)):
            self._f.seek(pos)
            # not beyond the end of the file: a read allocates what it asks for, and memory fresh
            # from the system costs more than the read itself
            buf = self._f.read(max(n, min(BLOCK, self.size - pos)))
            boff = pos
            self._buf = (buf, boff)
        return memoryview(buf)[pos - boff:pos - boff + n]

    def _batches(self):
        pos = self.start
        end = self.dtp if self.dtp >= 0 else self.size
        parts, locs, n = [], [], 0
        self._buf = (b"", 0)
        unpack = struct.Struct("<ii").unpack_from
        while pos < end:
            hdr = self._view(pos, 8)
            if len(hdr) < 8:
                if len(hdr):
                    self.note("repaired", f"byte {pos}", f"file ends inside a packet header: last {len(hdr)} bytes "
                              "ignored (truncated file)")
                break
            sid, size = unpack(hdr)
            if not self._header_ok(sid, size, pos):
                if sid in self.streams and size > 0 and pos + 8 + size > self.size and self.dtp < 0:
                    self.note("repaired", f"byte {pos}", f"file ends inside a packet ({self.size - pos - 8} of {size} "
                              "bytes; truncated file): packet skipped")
                    break
                nxt = self._resync(pos)
                self.note("repaired", f"byte {pos}",
                          f"corrupt packet header (stream {sid}, size {size}): bytes {pos}-{nxt if nxt else end} "
                          "skipped to the next packet" if nxt else
                          f"corrupt packet header (stream {sid}, size {size}) and no valid packet after it: "
                          f"bytes {pos}-{end} skipped")
                if nxt is None:
                    break
                pos = nxt
                continue
            if sid != self.stream:
                kind = self.streams[sid]["typeIdentifier"]
                self.skipped[kind] = self.skipped.get(kind, 0) + 1
                pos += 8 + size
                continue
            try:
                body = self.decompress(self._view(pos + 8, size))
                s, cnt = self._events(body)
            except Exception as e:  # noqa: BLE001 - any decoder error means a damaged packet
                self.note("repaired", f"byte {pos}", f"event packet does not decode ({type(e).__name__}: "
                          f"{str(e)[:80]}): skipped")
                nxt = self._resync(pos)
                if nxt is None:
                    break
                if nxt != pos + 8 + size:
                    self.note("repaired", f"byte {pos + 8}", f"bytes {pos + 8}-{nxt} skipped to the next packet")
                pos = nxt
                continue
            if cnt:
                parts.append(memoryview(body)[s:s + 16 * cnt])
                locs.append((n, pos))
                n += cnt
            pos += 8 + size
            if n >= self.chunk_events:
                yield self._batch(parts, locs)
                parts, locs, n = [], [], 0
        self._buf = (b"", 0)
        if parts:
            yield self._batch(parts, locs)

    def _batch(self, parts, locs):
        """One batch from the event vectors of several packets; a packet that decompressed but holds
        garbage (LZ4 frames carry no checksum here: most events outside the sensor, invalid polarity
        values or time running backwards) is skipped whole (counted) rather than passing random
        events on."""
        raw = np.frombuffer(b"".join(parts), "<i8").reshape(-1, 2)
        starts = np.array([i0 for i0, _ in locs] + [len(raw)], np.int64)
        w, h = self.info.sensor_size or (65536, 65536)
        bad = np.zeros(len(locs), np.int64)
        back = np.zeros(len(locs), np.int64)
        aedat4_check(raw, starts, w, h, bad, back)
        cnt = np.diff(starts)
        lim = np.maximum(2, cnt // 100)
        junk = (bad > lim) | (back > lim)
        if junk.any():
            keep = np.ones(len(raw), bool)
            for k in np.flatnonzero(junk):
                self.note("dropped", f"packet at byte {locs[k][1]}",
                          f"event packet holds garbage ({bad[k]} of {cnt[k]} events outside the sensor or with bad "
                          f"polarity, {back[k]} times going back): its {cnt[k]} events skipped", int(cnt[k]))
                keep[starts[k]:starts[k + 1]] = False
            raw = raw[keep]
            newstart = np.cumsum(np.where(junk, 0, cnt)) - np.where(junk, 0, cnt)
            locs = [(int(newstart[k]), locs[k][1]) for k in range(len(locs)) if not junk[k]]
        b = Batch(raw)
        b._locs = [(i0, lambda i, pos=pos: f"packet at byte {pos}, event {i}") for i0, pos in locs]
        return b

    def _after(self, st):
        if self.skipped:
            self.info.extra["skipped_packets"] = dict(self.skipped)
