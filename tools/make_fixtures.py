"""Build tests/data: the small set of real recordings that lets a bare clone run the test suite.

tests/data mirrors the layout of ../shared/datasets (or ``$EDGEBRAIN_DATA``) for the files it holds,
so that tests find them at the same relative paths. Two kinds of files (tests/data/README.md lists
every one with its source and licence):

* **copies**: real recordings whose licence allows redistribution beside Apache-2.0 code (sp-sw-har
  CC BY 4.0, BasicMotions BSD-3, FSDD CC BY-SA 4.0, N-MNIST CC BY-SA 4.0, ``davis346.aedat4`` MIT),
  byte for byte, checked against the SHA-256 of edgebrain/data/manifests.json.gz (or, for
  ``davis346.aedat4``, the one below); the two N-MNIST label lists keep the lines of the samples copied.
* **generated**: equivalents of the format samples that come from GPL/LGPL repositories and are not
  redistributed (``sample.aedat4``, ``evt3_sample.raw``, ``evt2.raw``, ``sample_ncars.dat``,
  ``sample_nmnist.bin``, lauscher's ``spoken_digit.flac``): the *real* events of ``davis346.aedat4``
  and of N-MNIST samples, and a real FSDD recording, written into those formats by the encoders
  below (written from the layouts in the format documentation, not from any GPL code), with the same
  header conventions as the originals (old Prophesee RAW headers that give the sensor size only
  through ``plugin_name``/``system_ID``, a DVXplorer-sized AEDAT 4 stream with IMU packets, ...).

Generation reads only the copies inside the output folder and is deterministic (no clocks, no
randomness): ``--generate-only`` rebuilds the generated files of a bare clone byte for byte, and
tests/test_fixtures.py checks that it does. Facts about each generated file that the tests compare
with (event counts, first events, ...) are taken here from the source events (decoded by the
independent ``aedat`` package and a plain byte parser), not from edgebrain's readers, and written
to tests/data/fixtures.json. One more file needs a third-party program: lauscher's cochlea-model spikes
for the generated FLAC (``audio/lauscher/reference.npz``), remade only with ``--lauscher`` (lauscher
installed; its random sampling seeded).

    python tools/make_fixtures.py [--source ../shared/datasets] [--out tests/data]   # copy + generate
    python tools/make_fixtures.py --generate-only [--out DIR]                        # generate from DIR's copies
    python tools/make_fixtures.py --generate-only --lauscher     # also remake lauscher's reference spikes
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import struct
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "tests" / "data"

# ----------------------------------------------------------------------------------------- what is copied

SPSWHAR = "imu/sp-sw-har"
SPSWHAR_FILES = ["executions_info.csv", "subjects_info.csv",
                 "s01/s01_01_sw.csv", "s01/s01_03_sw.csv",        # training subjects
                 "s03/s03_04_sw.csv", "s12/s12_06_sw.csv",
                 "s13/s13_01_sw.csv",                              # a validation subject
                 "s16/s16_01_sw.csv"]                              # a test subject (the README's example)
BASICMOTIONS = "imu/basicmotions"
BASICMOTIONS_FILES = ["BasicMotions_TRAIN.ts", "BasicMotions_TEST.ts"]
FSDD = "audio/fsdd"
FSDD_FILES = sorted(
    # two speakers' customary test takes (0-4) of every digit: the front end's digit test, kws training
    [f"recordings/{d}_{s}_{i}.wav" for s in ("george", "jackson") for d in range(10) for i in range(5)]
    # the test speaker's first two takes of every digit: the reduced zoo:kws test, kws training's test split
    + [f"recordings/{d}_theo_{i}.wav" for d in range(10) for i in range(2)]
    # single recordings the reader and front-end tests name
    + [f"recordings/{n}.wav" for n in ("3_theo_12", "6_nicolas_7", "9_theo_16", "7_lucas_31", "5_nicolas_2",
                                       "0_george_27", "3_jackson_5", "2_lucas_7")])
NMNIST = "events/nmnist-small"
# the first 33 training samples (two batches of 32: the training smoke run) and one the stream tests name
NMNIST_TRAIN = [*range(1, 34), 881]
NMNIST_TEST = list(range(60001, 60009))     # the first 8 test samples
NMNIST_FILES = [f"{i}.bs2" for i in NMNIST_TRAIN + NMNIST_TEST]
FORMATS = "events/formats"
DAVIS = f"{FORMATS}/davis346.aedat4"
DAVIS_SHA256 = "140ed9a82548ec3c"           # prefix, as in the format documentation (aestream example/davis.aedat4)

MANIFEST_NAMES = {SPSWHAR: "sp-sw-har", BASICMOTIONS: "basicmotions", FSDD: "fsdd", NMNIST: "nmnist-small"}


CUT = [f"{NMNIST}/train1K.txt", f"{NMNIST}/test100.txt"]   # the label lists, cut to the samples copied


def copied_files() -> list[str]:
    """Every file copied byte for byte (paths relative to the data root)."""
    return ([f"{SPSWHAR}/{f}" for f in SPSWHAR_FILES] + [f"{BASICMOTIONS}/{f}" for f in BASICMOTIONS_FILES]
            + [f"{FSDD}/{f}" for f in FSDD_FILES] + [f"{NMNIST}/{f}" for f in NMNIST_FILES] + [DAVIS])


def manifest_entry(rel: str):
    """(size, sha256) of ``rel`` in edgebrain's dataset manifest, or None."""
    man = json.loads(gzip.decompress((ROOT / "edgebrain" / "data" / "manifests.json.gz").read_bytes()))
    for base, name in MANIFEST_NAMES.items():
        if rel.startswith(base + "/"):
            e = man[name].get(rel[len(base) + 1:])
            return tuple(e) if e else None
    return None


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def copy_real(source: Path, out: Path) -> None:
    for rel in copied_files():
        data = (source / rel).read_bytes()
        want = manifest_entry(rel)
        if want is not None and (len(data), sha256(data)) != want:
            raise SystemExit(f"{source / rel}: does not match edgebrain's manifest {want}")
        if rel == DAVIS and not sha256(data).startswith(DAVIS_SHA256):
            raise SystemExit(f"{source / rel}: SHA-256 {sha256(data)[:16]} is not aestream's davis.aedat4")
        dst = out / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(data)
    # the label lists, cut to the samples copied (header line kept)
    for name, ids in (("train1K.txt", NMNIST_TRAIN), ("test100.txt", NMNIST_TEST)):
        lines = (source / NMNIST / name).read_text().splitlines(keepends=True)
        keep = [ln for ln in lines[1:] if ln.split() and int(ln.split()[0]) in ids]
        assert len(keep) == len(ids), name
        (out / NMNIST / name).write_text(lines[0] + "".join(keep))


# ----------------------------------------------------------------------------------------- sources


def davis_events(out: Path) -> np.ndarray:
    """The DVS events of davis346.aedat4 (x, y, t µs since the epoch, p), decoded by ``aedat``."""
    import aedat

    ev = np.concatenate([p["events"] for p in aedat.Decoder(str(out / DAVIS)) if p["stream_id"] == 0 and "events" in p])
    res = np.zeros(len(ev), [("x", "<i8"), ("y", "<i8"), ("t", "<i8"), ("p", "<i8")])
    res["x"], res["y"], res["t"], res["p"] = ev["x"], ev["y"], ev["t"], ev["on"]
    assert np.all(np.diff(res["t"]) >= 0)
    return res


def davis_packets(out: Path) -> tuple[bytes, list[tuple[int, bytes]]]:
    """The IOHeader buffer and the packets (stream id, compressed body) of davis346.aedat4."""
    raw = (out / DAVIS).read_bytes()
    n = struct.unpack_from("<I", raw, 14)[0]
    hdr = raw[18:18 + n]
    root = struct.unpack_from("<I", hdr, 0)[0]
    vt = root - struct.unpack_from("<i", hdr, root)[0]
    dtp = struct.unpack_from("<q", hdr, root + struct.unpack_from("<H", hdr, vt + 6)[0])[0]
    pos, packets = 18 + n, []
    while pos < dtp:
        sid, size = struct.unpack_from("<ii", raw, pos)
        packets.append((sid, raw[pos + 8:pos + 8 + size]))
        pos += 8 + size
    return hdr, packets


def read_bs2(path: Path) -> np.ndarray:
    """An N-MNIST ``.bs2``/``.bin`` file: 40-bit big-endian events (x, y, p bit 7 of byte 2, 23-bit t)."""
    raw = np.frombuffer(path.read_bytes(), np.uint8).reshape(-1, 5).astype(np.int64)
    ev = np.zeros(len(raw), [("x", "<i8"), ("y", "<i8"), ("t", "<i8"), ("p", "<i8")])
    ev["x"], ev["y"], ev["p"] = raw[:, 0], raw[:, 1], raw[:, 2] >> 7
    ev["t"] = (raw[:, 2] & 0x7F) << 16 | raw[:, 3] << 8 | raw[:, 4]
    return ev


def first_events(ev, n) -> list:
    return [[int(e["x"]), int(e["y"]), int(e["t"]), int(e["p"])] for e in ev[:n]]


# ----------------------------------------------------------------------------------------- encoders

RAW_HEADER = ("% Date {date}\n% evt {evt}\n% firmware_version 0.0.0\n% integrator_name Prophesee\n"
              "% plugin_name {plugin}\n% serial_number 00000000\n% system_ID {sid}\n")


def encode_evt3(ev, marker_period: int = 1000, marker_lead: int = 11) -> tuple[bytes, dict]:
    """EVT 3.0 words (16-bit LE, formats.md §9) for events ``ev`` (t: 24-bit sensor time, increasing).

    Runs of events with the same t, y and polarity whose x fit in 12 (or 8) columns become one
    VECT_BASE_X + VECT_12 (VECT_8) pair, other events one EVT_ADDR_X each. Like the Gen4.1 recording
    this stands in for, the stream carries a time marker every ``marker_period`` µs: TIME_HIGH
    repeated and a TIME_LOW ``marker_lead`` µs ahead of the events that follow, so that TIME_LOW steps
    back under an unchanged TIME_HIGH (the case expelliarmus takes for a wrap)."""
    words: list[int] = []
    high = low = y_cur = None
    next_marker = (int(ev["t"][0]) // marker_period + 1) * marker_period
    x, y, t, p = (ev[k].astype(np.int64).tolist() for k in "xytp")
    i, n = 0, len(x)
    lows: list[tuple[int, int]] = []   # (TIME_LOW value, TIME_HIGH then) in stream order
    ev_low_index: list[int] = []       # per event: number of TIME_LOW words before it

    def time_low(v):
        words.append(0x6000 | v)
        lows.append((v, high))

    while i < n:
        if t[i] >= next_marker:
            m = next_marker + marker_lead
            if m >> 12 == high:
                words.append(0x8000 | high)
                time_low(m & 0xFFF)
                low = None
            next_marker += marker_period
            continue
        if t[i] >> 12 != high:
            high = t[i] >> 12
            words.append(0x8000 | high)
            low = None
        if t[i] & 0xFFF != low:
            low = t[i] & 0xFFF
            time_low(low)
        if y[i] != y_cur:
            y_cur = y[i]
            words.append(0x0000 | y_cur)
        j = i + 1
        while (j < n and t[j] == t[i] and y[j] == y[i] and p[j] == p[i] and x[j] > x[j - 1]
               and x[j] - x[i] < 12):
            j += 1
        if j - i >= 2:
            span = x[j - 1] - x[i]
            mask = 0
            for k in range(i, j):
                mask |= 1 << (x[k] - x[i])
            words.append(0x3000 | p[i] << 11 | x[i])
            words.append((0x5000 | mask) if span < 8 else (0x4000 | mask))
            y_cur = y[i]
        else:
            words.append(0x2000 | p[i] << 11 | x[i])
        ev_low_index.extend([len(lows)] * (j - i))
        i = j
    # TIME_LOW decreases: all of them, and those under an unchanged TIME_HIGH
    dec = [k for k in range(1, len(lows)) if lows[k][0] < lows[k - 1][0]]
    same = [k for k in dec if lows[k][1] == lows[k - 1][1]]
    first_dec = dec[0] if dec else len(lows)
    facts = {"time_low_decreases": len(dec), "time_low_decreases_same_high": len(same),
             "events_after_first_time_low_decrease": int(sum(1 for c in ev_low_index if c > first_dec)),
             "vector_words": int(sum(1 for w in words if w >> 12 in (4, 5)))}
    return struct.pack(f"<{len(words)}H", *words), facts


def encode_evt2(ev, period: int = 16) -> bytes:
    """EVT 2.0 words (32-bit LE, formats.md §7): one CD_OFF/CD_ON word per event (6 low time bits,
    x, y), each preceded by a TIME_HIGH word (t >> 6) when ``period`` µs have begun since the last one:
    like the Gen3 recording this stands in for, TIME_HIGH is repeated four times per 64 µs step."""
    words, tick = [], None
    for x, y, t, p in zip(*(ev[k].astype(np.int64).tolist() for k in "xytp")):
        if t // period != tick:
            tick = t // period
            words.append(0x8 << 28 | ((t >> 6) & 0xFFFFFFF))
        words.append(p << 28 | (t & 0x3F) << 22 | x << 11 | y)
    return struct.pack(f"<{len(words)}I", *words)


def encode_dat(ev, header: bytes) -> bytes:
    """Prophesee ``.dat`` v2 (formats.md §10): header lines, event type 0 and size 8, then per event
    u32 t and u32 x | y << 14 | p << 28, little-endian."""
    rec = np.zeros(len(ev), [("t", "<u4"), ("d", "<u4")])
    rec["t"] = ev["t"]
    rec["d"] = ev["x"] | ev["y"] << 14 | ev["p"] << 28
    return header + b"\x00\x08" + rec.tobytes()


# AEDAT 4.0 (formats.md §5): flatbuffers written front to back (offsets forward, vtables before tables)

def _fb_event_packet(ev) -> bytes:
    """A size-prefixed ``EventPacket`` flatbuffer (identifier EVTS) of 16-byte Event structs."""
    a = np.zeros(len(ev), [("t", "<i8"), ("x", "<i2"), ("y", "<i2"), ("on", "u1"), ("pad", "V3")])
    a["t"], a["x"], a["y"], a["on"] = ev["t"], ev["x"], ev["y"], ev["p"]
    # [size][root=16][EVTS][2 pad][vtable 6,8,4][table: soffset 6, uoffset 4][count][events at 32]
    body = (struct.pack("<I4s", 16, b"EVTS") + b"\0\0" + struct.pack("<HHH", 6, 8, 4) + struct.pack("<iI", 6, 4)
            + struct.pack("<I", len(a)) + a.tobytes())
    return struct.pack("<I", len(body)) + body


def _fb_io_header(compression: int, table_pos: int, xml: str) -> bytes:
    """The ``IOHeader`` flatbuffer (identifier IOHE): compression, dataTablePosition, infoNode."""
    s = xml.encode()
    head = struct.pack("<I4s", 24, b"IOHE") + b"\0" * 6 + struct.pack("<HHHHH", 10, 24, 4, 12, 8)
    table = struct.pack("<iiIq", 10, compression, 16, table_pos) + b"\0" * 4
    out = head + table + struct.pack("<I", len(s)) + s + b"\0"
    return out + b"\0" * (-len(out) % 4)


def _fb_data_table(entries) -> bytes:
    """A size-prefixed ``FileDataTable`` (identifier FTAB): per packet byte offset (of its body),
    stream id and size, number of elements, first and last timestamp."""
    n = len(entries)
    # after the size prefix: [root offset = 16][FTAB][vtable 6, 8, 4][2 pad][root table: soffset 6,
    # uoffset 4][vector: count, n offsets][entries]
    body = bytearray(struct.pack("<I4s", 16, b"FTAB") + struct.pack("<HHH", 6, 8, 4) + b"\0\0")
    body += struct.pack("<iI", 8, 4)
    vec_at = len(body)
    body += struct.pack("<I", n) + b"\0" * 4 * n
    tables = []
    for byte_offset, sid, size, count, t0, t1 in entries:
        # vtable (14 bytes) then, aligned so that the table's int64 fields sit on 8 bytes (relative to
        # the buffer start, size prefix included), the 44-byte table: soffset, PacketHeader{sid, size},
        # byteOffset, numElements, timestampStart, timestampEnd
        while (len(body) + 4 + 14 + 4 + 8) % 8:
            body += b"\0"
        vt = len(body)
        body += struct.pack("<7H", 14, 44, 12, 4, 20, 28, 36)
        tpos = len(body)
        assert (tpos + 4 + 12) % 8 == 0
        body += struct.pack("<iiiqqqq", tpos - vt, sid, size, byte_offset, count, t0, t1)
        tables.append(tpos)
    for k, tpos in enumerate(tables):
        slot = vec_at + 4 + 4 * k
        struct.pack_into("<I", body, slot, tpos - slot)
    return struct.pack("<I", len(body)) + bytes(body)


DV_XML = """<dv version="2.0">
    <node name="outInfo" path="/mainloop/Recorder/outInfo/">
        <node name="0" path="/mainloop/Recorder/outInfo/0/">
            <attr key="compression" type="string">LZ4</attr>
            <attr key="originalModuleName" type="string">capture</attr>
            <attr key="originalOutputName" type="string">events</attr>
            <attr key="typeDescription" type="string">Array of events (polarity ON/OFF).</attr>
            <attr key="typeIdentifier" type="string">EVTS</attr>
            <node name="info" path="/mainloop/Recorder/outInfo/0/info/">
                <attr key="sizeX" type="int">{w}</attr>
                <attr key="sizeY" type="int">{h}</attr>
                <attr key="source" type="string">{source}</attr>
                <attr key="tsOffset" type="long">{ts_offset}</attr>
            </node>
        </node>
        <node name="1" path="/mainloop/Recorder/outInfo/1/">
            <attr key="compression" type="string">LZ4</attr>
            <attr key="originalModuleName" type="string">capture</attr>
            <attr key="originalOutputName" type="string">imu</attr>
            <attr key="typeDescription" type="string">Inertial Measurement Unit data samples.</attr>
            <attr key="typeIdentifier" type="string">IMUS</attr>
            <node name="info" path="/mainloop/Recorder/outInfo/1/info/">
                <attr key="source" type="string">{source}</attr>
                <attr key="tsOffset" type="long">{ts_offset}</attr>
            </node>
        </node>
    </node>
</dv>
"""


def encode_aedat4(ev, imu_packets, size, source, ts_offset, packet_us) -> tuple[bytes, dict]:
    """AEDAT 4.0, LZ4: event packets of ``packet_us`` µs each (stream 0) and the given, already
    compressed IMU packets (stream 1: (first t, last t, count, body)) in time order, then the file
    data table."""
    import lz4
    import lz4.frame

    t = ev["t"]
    edges = np.arange(int(t[0]) // packet_us * packet_us, int(t[-1]) + packet_us + 1, packet_us)
    cuts = np.searchsorted(t, edges)
    packets = []   # (first t, stream, compressed body, count, t0, t1)
    for a, b in zip(cuts[:-1], cuts[1:], strict=True):
        if b > a:
            packets.append((int(t[a]), 0, lz4.frame.compress(_fb_event_packet(ev[a:b])), int(b - a), int(t[a]),
                            int(t[b - 1])))
    for t0, t1, count, body in imu_packets:
        packets.append((t0, 1, body, count, t0, t1))
    packets.sort(key=lambda q: (q[0], q[1]))
    xml = DV_XML.format(w=size[0], h=size[1], source=source, ts_offset=ts_offset)
    hdr_len = len(_fb_io_header(1, 0, xml))
    pos = 18 + hdr_len
    out, entries = [], []
    for _, sid, body, count, t0, t1 in packets:
        out.append(struct.pack("<ii", sid, len(body)) + body)
        entries.append((pos + 8, sid, len(body), count, t0, t1))
        pos += 8 + len(body)
    table = lz4.frame.compress(_fb_data_table(entries))
    hdr = _fb_io_header(1, pos, xml)
    assert len(hdr) == hdr_len
    data = b"#!AER-DAT4.0\r\n" + struct.pack("<I", len(hdr)) + hdr + b"".join(out) + table
    facts = {"event_packets": sum(1 for q in packets if q[1] == 0), "imu_packets": sum(1 for q in packets if q[1] == 1),
             "lz4_library": lz4.library_version_number()}   # another LZ4 version may pack the same bytes differently
    return data, facts


# FLAC (the FLAC format specification): fixed-predictor subframes, Rice-coded residuals

def _crc8(data: bytes) -> int:
    c = 0
    for b in data:
        c ^= b
        for _ in range(8):
            c = ((c << 1) ^ 0x07) & 0xFF if c & 0x80 else (c << 1) & 0xFF
    return c


def _crc16(data: bytes) -> int:
    c = 0
    for b in data:
        c ^= b << 8
        for _ in range(8):
            c = ((c << 1) ^ 0x8005) & 0xFFFF if c & 0x8000 else (c << 1) & 0xFFFF
    return c


class _Bits:
    def __init__(self):
        self.acc, self.n, self.out = 0, 0, bytearray()

    def put(self, value: int, bits: int):
        self.acc = (self.acc << bits) | (value & ((1 << bits) - 1))
        self.n += bits
        while self.n >= 8:
            self.n -= 8
            self.out.append((self.acc >> self.n) & 0xFF)
        self.acc &= (1 << self.n) - 1

    def align(self):
        if self.n:
            self.put(0, 8 - self.n)


def _utf8_number(v: int) -> bytes:
    if v < 0x80:
        return bytes([v])
    return chr(v).encode("utf-8")  # frame numbers here stay far below 2^16


def _subframe(bw: _Bits, x: list[int], bps: int):
    """A FIXED subframe of the order with the smallest residual (orders 0-4), Rice parameter chosen
    for the block (partition order 0); VERBATIM when no Rice parameter below 15 fits."""
    best = None
    for order in range(min(5, len(x))):
        r = list(x)
        for _ in range(order):
            r = [r[i] - r[i - 1] for i in range(1, len(r))]
        res = r  # residuals of samples order.. end
        cost = sum(abs(v) for v in res)
        if best is None or cost < best[0]:
            best = (cost, order, res)
    _, order, res = best
    z = [(v << 1) ^ (v >> 63) for v in res]
    mean = sum(z) / max(1, len(z))
    k = max(0, int(mean).bit_length() - 1) if mean >= 1 else 0
    if k >= 15:
        bw.put(0b0000010, 8)  # pad bit, VERBATIM (000001), no wasted bits
        for v in x:
            bw.put(v, bps)
        return
    bw.put(0, 1)
    bw.put(0b001000 | order, 6)
    bw.put(0, 1)
    for v in x[:order]:
        bw.put(v, bps)
    bw.put(0, 2)       # Rice, 4-bit parameter
    bw.put(0, 4)       # partition order 0
    bw.put(k, 4)
    for u in z:
        q = u >> k
        for _ in range(q // 32):
            bw.put(0, 32)
        bw.put(1, q % 32 + 1)
        if k:
            bw.put(u, k)


def encode_flac(samples: np.ndarray, rate: int, block: int = 4096) -> bytes:
    """Mono 16-bit FLAC: STREAMINFO (with the MD5 of the samples), then frames of ``block`` samples."""
    assert rate == 48000 and samples.dtype == np.int16
    n = len(samples)
    frames = []
    for f, a in enumerate(range(0, n, block)):
        x = [int(v) for v in samples[a:a + block]]
        hb = bytearray(b"\xff\xf8")
        code = 12 if len(x) == 4096 else 7           # 4096, or a 16-bit block size at the end of the header
        hb.append(code << 4 | 10)                      # 48 kHz
        hb.append(0 << 4 | 4 << 1)                     # mono, 16 bits per sample
        hb += _utf8_number(f)
        if code == 7:
            hb += struct.pack(">H", len(x) - 1)
        hb.append(_crc8(hb))
        bw = _Bits()
        _subframe(bw, x, 16)
        bw.align()
        fr = bytes(hb) + bytes(bw.out)
        frames.append(fr + struct.pack(">H", _crc16(fr)))
    md5 = hashlib.md5(samples.astype("<i2").tobytes()).digest()
    sizes = [len(fr) for fr in frames]
    si = struct.pack(">HH", block, block) + min(sizes).to_bytes(3, "big") + max(sizes).to_bytes(3, "big")
    si += ((rate << 44) | (0 << 41) | (15 << 36) | n).to_bytes(8, "big") + md5
    # STREAMINFO, then a VORBIS_COMMENT block with a 32-byte vendor string and no comments (the last
    # block): the first frame starts at byte 86, as in the file this stands in for
    vendor = b"edgebrain tools/make_fixtures.py"
    vc = struct.pack("<I", len(vendor)) + vendor + struct.pack("<I", 0)
    meta = bytes([0]) + len(si).to_bytes(3, "big") + si + bytes([0x80 | 4]) + len(vc).to_bytes(3, "big") + vc
    assert 4 + len(meta) == 86
    return b"fLaC" + meta + b"".join(frames)


def upsample6(x: np.ndarray) -> np.ndarray:
    """8 kHz → 48 kHz by linear interpolation in integers (exact, the same on every machine)."""
    a = x.astype(np.int64)
    b = np.append(a[1:], a[-1])
    k = np.arange(6)
    y = (a[:, None] * (6 - k) + b[:, None] * k + 3) // 6
    return np.clip(y.reshape(-1), -32768, 32767).astype(np.int16)


# ----------------------------------------------------------------------------------------- generation

EVT3_START = 2861 << 12      # the original sample's first TIME_HIGH (so its 8.8 ms span covers 2861-2863)
EVT3_SPAN_US = 8802          # as long as the original (219,596 events in 8.8 ms)
EVT2_SPAN_US = 45_000
AEDAT4_SPAN_US = 30_000
AEDAT4_SIZE = (320, 240)     # the DVXplorer of the original sample
AEDAT4_CROP = (13, 10)       # the 320x240 window of the 346x260 DAVIS events kept (left, top)
FLAC_SOURCE = f"{FSDD}/recordings/6_jackson_0.wav"   # 0.83 s, about as long as the original
NCARS_SOURCE = f"{NMNIST}/60003.bs2"
NMNIST_BIN_SOURCE = f"{NMNIST}/60002.bs2"

GENERATED = {
    f"{FORMATS}/evt3_sample.raw": f"{DAVIS} (its first {EVT3_SPAN_US / 1000:g} ms of DVS events)",
    f"{FORMATS}/evt2.raw": f"{DAVIS} (its first {EVT2_SPAN_US // 1000} ms of DVS events)",
    f"{FORMATS}/sample.aedat4": f"{DAVIS} (DVS events of its first {AEDAT4_SPAN_US // 1000} ms in a 320x240 window, "
                                "and its IMU packets)",
    f"{FORMATS}/sample_ncars.dat": NCARS_SOURCE,
    f"{FORMATS}/sample_nmnist.bin": NMNIST_BIN_SOURCE,
    "audio/lauscher/spoken_digit.flac": FLAC_SOURCE + " (upsampled to 48 kHz)",
}


def generate(out: Path) -> dict:
    """Write the generated files into ``out`` from the copies there; returns their facts."""
    facts: dict = {}
    dav = davis_events(out)
    t0_dav = int(dav["t"][0])
    _, packets = davis_packets(out)
    ts_offset = 1633953629213182   # the davis346 recording's tsOffset (its infoNode): camera start, µs

    # --- EVT 3.0 (Gen4.1 1280x720 header, no format/geometry line)
    ev = dav[dav["t"] - t0_dav < EVT3_SPAN_US].copy()
    ev["t"] = ev["t"] - t0_dav + EVT3_START
    words, f3 = encode_evt3(ev)
    hdr3 = RAW_HEADER.format(date="2021-10-11 14:02:31", evt="3.0", plugin="hal_plugin_gen41_evk3", sid=48).encode()
    _write(out, f"{FORMATS}/evt3_sample.raw", hdr3 + words)
    facts[f"{FORMATS}/evt3_sample.raw"] = dict(
        events=len(ev), sensor_size=[1280, 720], first_events=first_events(ev, 4),
        last_t_relative=int(ev["t"][-1] - ev["t"][0]), header_bytes=len(hdr3), **f3)

    # --- EVT 2.0 (Gen3 640x480 header, no format/geometry line); time since the camera started
    ev = dav[dav["t"] - t0_dav < EVT2_SPAN_US].copy()
    ev["t"] = ev["t"] - ts_offset
    hdr2 = RAW_HEADER.format(date="2021-10-11 14:02:31", evt="2.0", plugin="hal_plugin_gen3_fx3", sid=21).encode()
    body = encode_evt2(ev)
    _write(out, f"{FORMATS}/evt2.raw", hdr2 + body)
    w = np.frombuffer(body, "<u4") >> 28
    facts[f"{FORMATS}/evt2.raw"] = dict(
        events=len(ev), sensor_size=[640, 480], first_events=first_events(ev, 3),
        word_counts={"cd_off": int((w == 0).sum()), "cd_on": int((w == 1).sum()), "time_high": int((w == 8).sum())})

    # --- AEDAT 4.0, DVXplorer-sized: a 320x240 window of the DAVIS events, the recording's IMU packets
    x0, y0 = AEDAT4_CROP
    sel = ((dav["t"] - t0_dav < AEDAT4_SPAN_US) & (dav["x"] >= x0) & (dav["x"] < x0 + AEDAT4_SIZE[0])
           & (dav["y"] >= y0) & (dav["y"] < y0 + AEDAT4_SIZE[1]))
    ev = dav[sel].copy()
    ev["x"] -= x0
    ev["y"] -= y0
    import aedat

    imu = []
    t_end = t0_dav + AEDAT4_SPAN_US
    decoded = list(aedat.Decoder(str(out / DAVIS)))
    assert len(decoded) == len(packets) and all(d["stream_id"] == sid for d, (sid, _) in zip(decoded, packets))
    for d, (sid, body) in zip(decoded, packets):
        if "imus" in d and len(d["imus"]) and int(d["imus"]["t"][0]) < t_end:
            ts = d["imus"]["t"]
            imu.append((int(ts[0]), int(ts[-1]), len(ts), body))
    data, f4 = encode_aedat4(ev, imu, AEDAT4_SIZE, "DVXplorer_DXA00000", ts_offset, packet_us=600)
    _write(out, f"{FORMATS}/sample.aedat4", data)
    facts[f"{FORMATS}/sample.aedat4"] = dict(events=len(ev), sensor_size=list(AEDAT4_SIZE),
                                              first_events=first_events(ev, 3), **f4)

    # --- Prophesee .dat from real N-MNIST events (no Width/Height lines, like the N-CARS sample)
    ev = read_bs2(out / NCARS_SOURCE)
    hdr_dat = b"% Data file containing Event2D events.\n% Version 2\n% Date 2015-06-01 00:00:00\n"
    _write(out, f"{FORMATS}/sample_ncars.dat", encode_dat(ev, hdr_dat))
    facts[f"{FORMATS}/sample_ncars.dat"] = dict(events=len(ev), first_events=first_events(ev, 3),
                                                 last_t=int(ev["t"][-1]))

    # --- N-MNIST .bin: the same 40-bit layout as SLAYER's .bs2, so a copy of a test sample
    data = (out / NMNIST_BIN_SOURCE).read_bytes()
    _write(out, f"{FORMATS}/sample_nmnist.bin", data)
    ev = read_bs2(out / NMNIST_BIN_SOURCE)
    facts[f"{FORMATS}/sample_nmnist.bin"] = dict(events=len(ev), first_events=first_events(ev, 3),
                                                  last_t=int(ev["t"][-1]), max_x=int(ev["x"].max()),
                                                  max_y=int(ev["y"].max()))

    # --- FLAC, 48 kHz mono 16-bit: a real FSDD recording (8 kHz WAV) upsampled by 6
    wav = (out / FLAC_SOURCE).read_bytes()
    assert wav[:4] == b"RIFF" and wav[36:40] == b"data"
    pcm = np.frombuffer(wav[44:44 + struct.unpack_from("<I", wav, 40)[0]], "<i2")
    y = upsample6(pcm)
    _write(out, "audio/lauscher/spoken_digit.flac", encode_flac(y, 48000))
    facts["audio/lauscher/spoken_digit.flac"] = dict(rate=48000, samples=len(y), channels=1, first_frame_offset=86)

    for rel, source in GENERATED.items():
        facts[rel]["source"] = source
        facts[rel]["sha256"] = sha256((out / rel).read_bytes())
    return facts


LAUSCHER_REF = "audio/lauscher/reference.npz"


def make_lauscher_reference(out: Path) -> dict:
    """lauscher's cochlea model (Wave2Spike, 70 channels; numpy's global generator seeded with 0 for its
    random spike sampling) run on the generated FLAC, saved as its SpikeTrain.export writes it: ``arr_0``
    = (spike times in seconds, channel indices). Needs lauscher (pip install lauscher), so it is only
    remade on request (``--lauscher``); it is deterministic on one machine."""
    from importlib.metadata import version

    from lauscher.audiowaves import FileMonoAudioWave
    from lauscher.transformations.wave2spike import Wave2Spike

    np.random.seed(0)
    FileMonoAudioWave(str(out / "audio/lauscher/spoken_digit.flac")).transform(Wave2Spike(num_channels=70)).export(
        str(out / LAUSCHER_REF))
    a = np.load(out / LAUSCHER_REF)["arr_0"]
    return dict(source=f"audio/lauscher/spoken_digit.flac through lauscher {version('lauscher')} (Wave2Spike, "
                       "70 channels, numpy.random.seed(0))", spikes=int(a.shape[1]), channels=70,
                sha256=sha256((out / LAUSCHER_REF).read_bytes()))


def _write(out: Path, rel: str, data: bytes) -> None:
    p = out / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", default=os.environ.get("EDGEBRAIN_DATA") or str(ROOT.parent / "shared" / "datasets"),
                    help="the full datasets (default $EDGEBRAIN_DATA, else ../shared/datasets)")
    ap.add_argument("--out", default=str(DEFAULT_OUT))
    ap.add_argument("--generate-only", action="store_true",
                    help="only rebuild the generated files from the copies in --out")
    ap.add_argument("--lauscher", action="store_true", help=f"also remake {LAUSCHER_REF} (needs lauscher installed)")
    a = ap.parse_args(argv)
    out = Path(a.out)
    old = json.loads((out / "fixtures.json").read_text()) if (out / "fixtures.json").is_file() else {}
    if not a.generate_only:
        copy_real(Path(a.source), out)
    facts = generate(out)
    if a.lauscher:
        facts[LAUSCHER_REF] = make_lauscher_reference(out)
    elif (out / LAUSCHER_REF).is_file() and LAUSCHER_REF in old.get("generated", {}):
        facts[LAUSCHER_REF] = old["generated"][LAUSCHER_REF]     # kept as it was made
    def digest(rels):
        return {rel: {"bytes": (out / rel).stat().st_size, "sha256": sha256((out / rel).read_bytes())} for rel in rels}

    info = {"copied": digest(copied_files()), "cut": digest(CUT),
            "generated": facts,
            "subsets": {NMNIST: {"test_samples": len(NMNIST_TEST), "train_samples": len(NMNIST_TRAIN),
                                 "bs2_files": len(NMNIST_FILES)}}}
    (out / "fixtures.json").write_text(json.dumps(info, indent=1, sort_keys=True) + "\n")
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"{out}: {len(info['copied'])} files copied, {len(facts)} generated; {total / 1e6:.2f} MB in all",
          file=sys.stderr)


if __name__ == "__main__":
    main()
