"""iniVation AEDAT files: 1.0/2.0 (jAER) and 3.1 (cAER) — formats.md §3–4 (AEDAT 4.0: :mod:`.aedat4`).

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

Damage: an AEDAT 3.1 packet whose header is implausible is skipped and the next packet found by
scanning (counted); truncated files keep every whole event.
"""

from __future__ import annotations

import re
import struct

import numpy as np

from ....errors import InputError
from .base import Batch, EventFileSource, fixed_loc, read_text_header

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
