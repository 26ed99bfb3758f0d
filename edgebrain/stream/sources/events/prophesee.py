"""Prophesee RAW files (EVT 2.0, EVT 2.1, EVT 3.0; formats.md §6–9) and legacy ``.dat`` (§10).

RAW: optional ``% key value`` header lines (old recordings have no ``format``/``geometry``/``end``
line: the sensor size then comes from ``plugin_name``/``system_ID``, or the caller's
``sensor_size``), then little-endian words decoded by the Numba kernels in :mod:`._evt`.
Timestamps are the sensor's µs clock (unwrapped: no false wraps, a TIME_HIGH word out of sequence
is checked against the next one and ignored when it is an outlier).
"""

from __future__ import annotations

import re

import numpy as np

from ....errors import InputError
from . import _evt as E
from . import _finish as K
from .base import BLOCK, Batch, EventFileSource, fixed_loc, range_loc, read_text_header

# plugin_name / system_ID → (width, height) for RAW headers without format/geometry (formats.md §6)
PLUGIN_SIZES = [
    (re.compile(r"genx320", re.I), (320, 320)),
    (re.compile(r"gen3|gen31", re.I), (640, 480)),
    (re.compile(r"gen4|imx636|imx646|imx8|evk4|evk3", re.I), (1280, 720)),
]
SYSTEM_ID_SIZES = {21: (640, 480), 28: (640, 480), 48: (1280, 720)}

EVT_NAMES = {"2.0": "evt2", "2.1": "evt21", "3.0": "evt3", "evt2": "evt2", "evt21": "evt21", "evt3": "evt3",
             "evt2.0": "evt2", "evt2.1": "evt21", "evt3.0": "evt3"}


def parse_raw_header(lines: list[str]) -> dict:
    """Key/values of ``% key value`` lines; ``format`` is split into its ``;key=value`` parts."""
    h = {}
    for line in lines:
        s = line[1:].strip()
        if not s:
            continue
        key, _, val = s.partition(" ")
        key = key.strip().lower()
        val = val.strip()
        h.setdefault(key, val)
        if key == "format":
            parts = val.split(";")
            h["format_name"] = parts[0].strip().upper()
            for part in parts[1:]:
                k, _, v = part.partition("=")
                h["format_" + k.strip().lower()] = v.strip()
    return h


def raw_encoding(h: dict) -> str | None:
    if "evt" in h:
        return EVT_NAMES.get(h["evt"].strip().lower())
    fn = h.get("format_name", "")
    return {"EVT2": "evt2", "EVT21": "evt21", "EVT3": "evt3"}.get(fn)


def raw_size(h: dict) -> tuple[tuple | None, str]:
    """(sensor size, where it came from) from a RAW header."""
    try:
        if "format_width" in h and "format_height" in h:
            return (int(h["format_width"]), int(h["format_height"])), "format"
        if "geometry" in h:
            m = re.fullmatch(r"\s*(\d+)\s*x\s*(\d+)\s*", h["geometry"])
            if m:
                return (int(m.group(1)), int(m.group(2))), "geometry"
        if "width" in h and "height" in h:
            return (int(h["width"]), int(h["height"])), "width/height"
    except ValueError:
        pass
    plugin = h.get("plugin_name", "")
    for rx, size in PLUGIN_SIZES:
        if plugin and rx.search(plugin):
            return size, f"plugin_name {plugin}"
    try:
        sid = int(h.get("system_id", ""))
        if sid in SYSTEM_ID_SIZES:
            return SYSTEM_ID_SIZES[sid], f"system_ID {sid}"
    except ValueError:
        pass
    return None, ""


def _has_line(head: bytes, rx: bytes) -> bool:
    return re.search(rx, head, re.M) is not None


def sniff_raw(head: bytes, version: str) -> bool:
    """A RAW header naming this EVT version (``% evt 3.0`` or ``% format EVT3...``)."""
    if not head.startswith(b"%"):
        return False
    v = {"evt2": rb"2\.0", "evt21": rb"2\.1", "evt3": rb"3\.0"}[version]
    f = {"evt2": rb"EVT2\b", "evt21": rb"EVT21\b", "evt3": rb"EVT3\b"}[version]
    return _has_line(head, rb"^% evt " + v + rb"\s*$") or _has_line(head, rb"^% format " + f)


WORD_BYTES = {"evt2": 4, "evt21": 8, "evt3": 2}
MAX_BUFFER = 64 << 20   # undecided words buffered at most (then decoded as if the input ended)


class RawDecoder:
    """Prophesee RAW words (EVT 2.0 / 2.1 / 3.0) fed as byte blocks of any size, decoded by the
    kernels of :mod:`._evt`: the decoding shared by :class:`RawSource` (file blocks) and the live
    link readers (``tcp://…?format=evt3``, :mod:`edgebrain.stream.sources.livebin_events`).

    A block may end inside a word (the bytes wait for the next block) or before the words that
    decide on a time word (they are decoded with the next block): the kernels' state carries
    across calls, so the output does not depend on how the bytes were split.

    * EVT 2.0 / 2.1: :meth:`batches` yields :class:`Batch` es with raw timestamps (finished by the
      source's chunking, :meth:`EventFileSource.chunks`).
    * EVT 3.0: :meth:`events` decodes and finishes in one pass (:func:`._evt.evt3_fused`) and
      yields full ``EVENT_DTYPE`` arrays of ``cap`` events; :meth:`take` hands over the rest.

    ``final=True`` says that no more bytes follow. Damage is noted through ``src`` (its
    ``_note_decoder`` / ``_note_fused`` / ``note``) with byte offsets from ``offset``; ``what`` names
    the input in those notes ("file", "stream")."""

    def __init__(self, src, encoding: str, *, offset: int = 0, cap: int = 1 << 20, legacy: int = 0,
                 size: tuple | None = None, jump: int = 1000, what: str = "file"):
        self.src, self.enc, self.legacy, self.what = src, encoding, int(legacy), what
        self.ws = WORD_BYTES[encoding]
        self.dt = {2: "<u2", 4: "<u4", 8: "<u8"}[self.ws]
        self.st = E.decoder_state()
        self.buf = b""
        self.off = offset            # input offset of buf[0]
        self.cap = int(cap)
        if encoding == "evt3":
            from ...base import EVENT_DTYPE
            from .base import NO_SIZE

            self._dtype = EVENT_DTYPE
            self.width, self.height = size or (NO_SIZE, NO_SIZE)
            self.jump = int(jump)
            self.fst = K.finish_state()
            self.out = np.empty(self.cap + 16, EVENT_DTYPE)
            self.ko = 0

    def _append(self, data, final: bool) -> bytes:
        if not isinstance(data, bytes):
            data = bytes(data)
        buf = self.buf + data if self.buf else data
        usable = len(buf) - len(buf) % self.ws
        if final and usable < len(buf):
            n = len(buf) - usable
            if self.ws == 2:
                what = f"{self.what} ends inside a 2-byte word: last byte ignored (truncated {self.what})"
            else:
                what = (f"{self.what} ends inside a {self.ws}-byte word: last {n} bytes ignored (truncated "
                        f"{self.what})")
            self.src.note("repaired", f"byte {self.off + usable}", what)
            buf = buf[:usable]
        self.buf = buf
        return buf

    def discard_partial(self) -> int:
        """Drop the bytes of an incomplete word (the link dropped, a datagram ended); their number.
        Whole words waiting for a decision are kept."""
        n = len(self.buf) % self.ws
        if n:
            self.buf = self.buf[:len(self.buf) - n]
        return n

    def batches(self, data=b"", final: bool = False):
        """EVT 2.0 / 2.1: decode ``data`` after the bytes before it; yield :class:`Batch` es."""
        st, ws = self.st, self.ws
        buf = self._append(data, final)
        cap = min(self.cap, 1 << 20) + 64
        while True:
            n = len(buf) // ws
            if n == 0:
                break
            fin = final or len(buf) > MAX_BUFFER
            words = np.frombuffer(buf, self.dt, count=n)
            ox = np.empty(cap, np.uint16)
            oy = np.empty(cap, np.uint16)
            ot = np.empty(cap, np.int64)
            op = np.empty(cap, np.uint8)
            before = st.copy()
            st[E.D_UNKNOWN_I] = st[E.D_REJECT_I] = st[E.D_JUMP_I] = st[E.D_REJECT_L_I] = -1
            if self.enc == "evt2":
                used, k = E.evt2_decode(words, n, fin, st, ox, oy, ot, op)
            else:
                used, k = E.evt21_decode(words, n, fin, self.legacy, st, ox, oy, ot, op)
            off = self.off
            self.src._note_decoder(before, st, off, ws)
            buf = buf[used * ws:]
            self.buf, self.off = buf, off + used * ws
            if k:
                yield Batch(ox[:k], oy[:k], ot[:k], op[:k], loc=range_loc(off, off + used * ws))
            if k < cap - 64:
                break  # all decoded, or the rest waits for more input

    def events(self, data=b"", final: bool = False):
        """EVT 3.0: decode and finish ``data`` after the bytes before it; yield full arrays."""
        st, fst = self.st, self.fst
        buf = self._append(data, final)
        while True:
            n = len(buf) // 2
            if n == 0:
                break
            fin = final or len(buf) > MAX_BUFFER
            words = np.frombuffer(buf, "<u2", count=n)
            before, fbefore = st.copy(), fst.copy()
            st[E.D_UNKNOWN_I] = st[E.D_REJECT_I] = st[E.D_JUMP_I] = st[E.D_REJECT_L_I] = -1
            fst[K.F_OOS_I] = fst[K.F_CLAMP_I] = fst[K.F_RESET_I] = -1
            used, k = E.evt3_fused(words, n, fin, st, fst, self.width, self.height, self.jump, self.out, self.ko)
            self.src._note_decoder(before, st, self.off, 2)
            self.src._note_fused(fbefore, fst, self.off, self.width, self.height)
            self.ko += k
            buf = buf[used * 2:]
            self.buf, self.off = buf, self.off + used * 2
            if self.ko >= self.cap:
                full, self.ko = self.out[:self.ko], 0
                self.out = np.empty(self.cap + 16, self._dtype)
                yield full
                continue
            break  # all decoded, or the rest waits for more input

    def first_time(self) -> int | None:
        """EVT 3.0: the raw time (µs) of the first event decoded, the origin of the output times
        (``info.extra["t0_us"]``); None before any event."""
        return int(self.fst[K.F_FIRST]) if self.fst[K.F_INIT] else None

    def take(self):
        """EVT 3.0: the events decoded but not yet handed over (None if there are none)."""
        if not self.ko:
            return None
        ko, self.ko = self.ko, 0
        if ko > 0.75 * self.cap:
            ev = self.out[:ko]
            self.out = np.empty(self.cap + 16, self._dtype)
            return ev
        return self.out[:ko].copy()


class RawSource(EventFileSource):
    """Prophesee RAW (EVT 2.0 / 2.1 / 3.0). Options: ``encoding`` (evt2|evt21|evt3; default from the
    header), ``evt21_order`` (auto|u64|legacy)."""

    format_name = "raw"
    options = ("encoding", "evt21_order")

    def _open(self, encoding=None, evt21_order="auto"):
        lines, start = read_text_header(self, b"%")
        ended = None
        for i, line in enumerate(lines):  # `% end` closes the header even if data starts with '%'
            if line.strip().lower() == "% end":
                ended = i
                break
        if ended is not None:
            start = self._offset_after_end()
            lines = lines[:ended + 1]
        h = parse_raw_header(lines)
        self.header = h
        enc = EVT_NAMES.get(str(encoding).lower()) if encoding else None
        if encoding and enc is None:
            raise InputError(f"encoding '{encoding}': expected evt2, evt21 or evt3")
        hdr_enc = raw_encoding(h)
        self.encoding = enc or hdr_enc
        if self.encoding is None:
            raise self.error("no '% evt' or '% format' header line says which encoding this RAW file uses; "
                             "pass --format evt2|evt21|evt3")
        if enc and hdr_enc and enc != hdr_enc:
            self.info.extra["header_encoding"] = hdr_enc
        self.info.format = self.encoding
        size, origin = raw_size(h)
        if size is not None:
            self.info.sensor_size = size
            self.info.extra["sensor_size_from"] = origin
        self.start = start
        self.word = {"evt2": 4, "evt21": 8, "evt3": 2}[self.encoding]
        if evt21_order not in ("auto", "u64", "legacy"):
            raise InputError(f"evt21_order '{evt21_order}': expected auto, u64 or legacy")
        self.legacy = 0
        if self.encoding == "evt21":
            if evt21_order == "auto":
                if "format_endianness" in h:
                    self.legacy = int(h["format_endianness"].lower() == "legacy")
                else:
                    self.legacy = self._guess_legacy()
            else:
                self.legacy = int(evt21_order == "legacy")
            self.info.extra["evt21_order"] = "legacy" if self.legacy else "u64"
        for k in ("plugin_name", "system_id", "serial_number", "date"):
            if k in h:
                self.info.extra[k] = h[k]

    def _offset_after_end(self) -> int:
        head = self.read_at(0, 1 << 20)
        m = re.search(rb"^% end\r?\n", head, re.M | re.I)
        return m.end() if m else 0

    def _guess_legacy(self) -> int:
        """EVT 2.1 word order from the data: which 32-bit half carries plausible type nibbles and a
        continuous TIME_HIGH sequence."""
        data = self.read_at(self.start, 1 << 20)
        data = data[:len(data) - len(data) % 8]
        if not data:
            return 0
        w = np.frombuffer(data, "<u4").reshape(-1, 2)
        scores = []
        for half in (1, 0):  # 1: u64 order (type in the second u32); 0: legacy
            typ = w[:, half] >> 28
            ok = np.isin(typ, (0, 1, 8, 0xA, 0xE, 0xF)).mean()
            th = (w[typ == 8, half] & 0xFFFFFFF).astype(np.int64)
            cont = (np.isin(np.diff(th), (0, 1)).mean() if len(th) > 2 else 0.0)
            scores.append(ok + cont)
        return int(scores[1] > scores[0])

    def _decoder(self, **kw) -> RawDecoder:
        dec = RawDecoder(self, self.encoding, offset=self.start, cap=self.chunk_events, legacy=self.legacy, **kw)
        self._dstate = dec.st
        return dec

    def _batches(self):
        dec = self._decoder()
        self._f.seek(self.start)
        while True:
            data = self._f.read(BLOCK)
            if not data:
                break
            yield from dec.batches(data)
        yield from dec.batches(final=True)

    def chunks(self):
        if self.encoding != "evt3":
            yield from super().chunks()
            return
        # EVT 3.0: decoded and finished in one pass, straight into the chunk's records
        dec = self._decoder(size=self._limits(), jump=self.jump)
        self._f.seek(self.start)
        while True:
            data = self._f.read(BLOCK)
            if not data:
                break
            for ev in dec.events(data):
                yield from self._emit(ev)
        yield from self._drain_evt3(dec)

    def _drain_evt3(self, dec):
        """The EVT 3.0 decoder's last events once the input has ended, then the stream's first
        time and the closing repair counts."""
        for ev in dec.events(final=True):
            yield from self._emit(ev)
        ev = dec.take()
        if ev is not None:
            yield from self._emit(ev)
        if dec.first_time() is not None:
            self.info.extra.setdefault("t0_us", dec.first_time())
        self._after(dec.fst)

    def _emit(self, ev):
        return self._split(ev)

    def _note_fused(self, before, fst, off, width, height):
        d = fst - before
        if fst[K.F_INIT] and "t0_us" not in self.info.extra:
            self.info.extra["t0_us"] = int(fst[K.F_FIRST])
        if d[K.F_OOS]:
            size = f"{width}x{height} sensor" if self.info.sensor_size else "coordinate range"
            self.note("dropped", f"byte {off + 2 * int(fst[K.F_OOS_I])}",
                      f"{d[K.F_OOS]} events outside the {size} dropped (first x={fst[K.F_OOS_X]}, "
                      f"y={fst[K.F_OOS_Y]})", int(d[K.F_OOS]))
        if d[K.F_RESET]:
            self.note("repaired", f"byte {off + 2 * int(fst[K.F_RESET_I])}",
                      f"time goes back by {-fst[K.F_RESET_D]} µs and stays there (reset or splice): later "
                      "timestamps continue from the previous event's time", int(d[K.F_RESET]))
        if d[K.F_CLAMP]:
            self.note("repaired", f"byte {off + 2 * int(fst[K.F_CLAMP_I])}",
                      f"{d[K.F_CLAMP]} events earlier than the previous event (by up to {fst[K.F_MAXBACK]} µs) "
                      "set to the previous event's time", int(d[K.F_CLAMP]))

    def _note_decoder(self, before, st, off, ws):
        d = st - before
        if d[E.D_UNKNOWN]:
            self.note("repaired", f"byte {off + ws * int(st[E.D_UNKNOWN_I])}",
                      f"{d[E.D_UNKNOWN]} words of unknown type skipped", int(d[E.D_UNKNOWN]))
        if d[E.D_REJECT]:
            self.note("repaired", f"byte {off + ws * int(st[E.D_REJECT_I])}",
                      f"{d[E.D_REJECT]} TIME_HIGH words out of sequence (first value {st[E.D_REJECT_V]}) ignored: "
                      "the next TIME_HIGH continues the previous time line", int(d[E.D_REJECT]))
        if d[E.D_REJECT_L]:
            self.note("repaired", f"byte {off + ws * int(st[E.D_REJECT_L_I])}",
                      f"{d[E.D_REJECT_L]} TIME_LOW words out of sequence ignored: the next time word continues "
                      "the previous time line", int(d[E.D_REJECT_L]))
        if d[E.D_JUMP] and st[E.D_JUMP_I] >= 0:
            self.info.extra.setdefault("time_jumps", []).append(f"byte {off + ws * int(st[E.D_JUMP_I])}")

    def _after(self, st):
        d = getattr(self, "_dstate", None)
        if d is not None:
            if d[E.D_TRIG]:
                self.info.extra["triggers"] = int(d[E.D_TRIG])
            if d[E.D_BEFORE]:
                self.info.extra["events_before_first_time_high"] = int(d[E.D_BEFORE])
            if d[E.D_NONCD]:
                self.info.extra["non_cd_events"] = int(d[E.D_NONCD])


class DatSource(EventFileSource):
    """Prophesee ``.dat`` (EventCD / Event2d, 8 bytes per event: u32 t, u32 x:14 y:14 p:4)."""

    format_name = "dat"
    wrap_bits = 32

    def _open(self):
        lines, start = read_text_header(self, b"%")
        h = parse_raw_header(lines)
        self.header = h
        if start + 2 > self.size:
            raise self.error("file ends after the header: expected 2 bytes (event type, event size) and then "
                             "8-byte events", start)
        etype, esize = self.read_at(start, 2)
        if etype not in (0x00, 0x0C) or esize != 8:
            raise self.error(f"event type 0x{etype:02x}, size {esize} after the header: expected type 0x00 "
                             "(Event2d) or 0x0C (EventCD) and size 8", start)
        self.start = start + 2
        size, origin = raw_size(h)
        if size is not None:
            self.info.sensor_size = size
            self.info.extra["sensor_size_from"] = origin
        self.info.n_items = (self.size - self.start) // 8
        if "version" in h:
            self.info.extra["version"] = h["version"]
        if self.info.n_items:
            a = np.frombuffer(self.read_at(self.start, 8), "<u4")[0]
            b = np.frombuffer(self.read_at(self.start + 8 * (self.info.n_items - 1), 8), "<u4")[0]
            if b >= a:
                self.info.duration = (int(b) - int(a)) / 1e6

    def _batches(self):
        bad_total = 0
        for off, data in self.blocks(self.start, align=8):
            r = np.frombuffer(data, "<u4").reshape(-1, 2)
            d = r[:, 1]
            p = d >> 28
            bad = p > 1
            idx = None
            if bad.any():
                nb = int(bad.sum())
                first = int(np.flatnonzero(bad)[0])
                self.note("dropped", f"byte {off + 8 * first}",
                          f"{nb} events with polarity field {int(p[first])} (expected 0 or 1) dropped", nb)
                bad_total += nb
                idx = np.flatnonzero(~bad)
                r, d, p = r[idx], d[idx], p[idx]
            yield Batch((d & 0x3FFF).astype(np.uint16), ((d >> 14) & 0x3FFF).astype(np.uint16),
                        r[:, 0].astype(np.int64), p.astype(np.uint8), loc=fixed_loc(off, 8, idx))
