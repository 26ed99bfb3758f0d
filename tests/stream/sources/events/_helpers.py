"""Helpers shared by the event-reader and binner tests: decoding under a deadline, comparison
against references, writers of the formats without a real sample (written from the documented
layouts with ``struct``), and damaged copies. The fixtures are in tests/stream/conftest.py."""

from __future__ import annotations

import contextlib
import signal
import struct
from pathlib import Path

import numpy as np

from edgebrain.errors import FormatError
from edgebrain.stream.base import EVENT_DTYPE
from edgebrain.stream.registry import open_source

FORMATS = "events/formats"
NMNIST = "events/nmnist-small"


@contextlib.contextmanager
def deadline(seconds: float = 30.0):
    """Fail (instead of hanging) when the body takes longer than ``seconds``."""
    def on_alarm(signum, frame):
        raise TimeoutError(f"decoding took longer than {seconds} s (a hang)")
    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def decode(path, **options):
    """All events of a file (EVENT_DTYPE, t relative) and the source (closed)."""
    with deadline(60):
        with open_source(str(path), **options) as src:
            chunks = list(src.chunks())
    for c in chunks:
        assert c.events.dtype == EVENT_DTYPE
        assert len(c) > 0
        assert np.all(np.diff(c.events["t"]) >= 0), "events within a chunk must be time-ordered"
        assert c.t_end is None or c.t_end >= c.events["t"][-1]
    ev = np.concatenate([c.events for c in chunks]) if chunks else np.zeros(0, EVENT_DTYPE)
    assert np.all(np.diff(ev["t"]) >= 0), "events must be time-ordered across chunks"
    return ev, src


def absolute(ev, src) -> np.ndarray:
    """x, y, absolute t, p as an int64 (n, 4) array (t relative + the first event's raw time)."""
    t0 = src.info.extra.get("t0_us", 0)
    return np.stack([ev["x"].astype(np.int64), ev["y"].astype(np.int64), ev["t"] + t0,
                     ev["p"].astype(np.int64)], 1)


def assert_events(ev, x, y, t, p, what: str, relative: bool = True):
    """Event for event: x, y, p equal and t equal (t of the reference made relative to its first
    event when ``relative``)."""
    t = np.asarray(t).astype(np.int64)
    if relative and len(t):
        t = t - t[0]
    ref = np.stack([np.asarray(x).astype(np.int64), np.asarray(y).astype(np.int64), t,
                    np.asarray(p).astype(np.int64)], 1)
    got = np.stack([ev["x"].astype(np.int64), ev["y"].astype(np.int64), ev["t"].astype(np.int64),
                    ev["p"].astype(np.int64)], 1)
    assert len(got) == len(ref), f"{what}: {len(got)} events decoded, the reference has {len(ref)}"
    bad = np.flatnonzero((got != ref).any(1))
    assert not len(bad), (f"{what}: {len(bad)} of {len(ref)} events differ; first at #{bad[0]}: "
                          f"edgebrain (x, y, t, p) = {tuple(got[bad[0]])}, reference = {tuple(ref[bad[0]])}")


def common_prefix(a, b) -> int:
    n = min(len(a), len(b))
    d = np.flatnonzero((a[:n] != b[:n]).any(1))
    return int(d[0]) if len(d) else n


def common_suffix(a, b) -> int:
    return common_prefix(a[::-1], b[::-1])


def need_file(datasets: Path, rel: str) -> Path:
    """``datasets / rel``, or skip saying where to get it (tests.conftest.need)."""
    from tests.conftest import need

    return need(datasets / rel)


def evt3_reference(words: np.ndarray):
    """A plain Python EVT 3.0 decoder (formats.md §9, openeb semantics: TIME_LOW overwrites the low
    12 bits). Also returns, per event, how many times TIME_LOW has decreased so far, and how many of
    those decreases happened under an unchanged TIME_HIGH (the rest follow a TIME_HIGH step)."""
    out, back = [], []
    high = None
    low = y = base = pol = nback = nsame = 0
    prev_low = prev_high = None
    for w in words.tolist():
        typ = w >> 12
        if typ == 0x8:
            high = w & 0xFFF
        elif typ == 0x6:
            v = w & 0xFFF
            if prev_low is not None and v < prev_low:
                nback += 1
                nsame += high == prev_high
            prev_low, prev_high, low = v, high, v
        elif typ == 0x0:
            y = w & 0x7FF
        elif typ == 0x2 and high is not None:
            out.append((w & 0x7FF, y, (high << 12) | low, (w >> 11) & 1))
            back.append(nback)
        elif typ == 0x3:
            base, pol = w & 0x7FF, (w >> 11) & 1
        elif typ in (0x4, 0x5):
            nb = 12 if typ == 0x4 else 8
            if high is not None:
                for b in range(nb):
                    if (w >> b) & 1:
                        out.append((base + b, y, (high << 12) | low, pol))
                        back.append(nback)
            base += nb
    return np.array(out, np.int64), np.array(back, np.int64), nsame


def aedat4_events(path) -> np.ndarray:
    import aedat

    return np.concatenate([p["events"] for p in aedat.Decoder(str(path)) if p["stream_id"] == 0 and "events" in p])


def nmnist_events(path) -> np.ndarray:
    import tonic.io

    return tonic.io.read_mnist_file(str(path), dtype=tonic.io.events_struct)


JAER_HEADER = (b"#!AER-DAT2.0\r\n"
               b"# This is a raw AE data file - do not edit\r\n"
               b"# Data format is int32 address, int32 timestamp (8 bytes total), repeated for each event\r\n"
               b"# Timestamps tick is 1 us\r\n"
               b"# created Mon Oct 11 14:01:30 CEST 2021 (derived test fixture from real events)\r\n"
               b"# AEChip: %s\r\n"
               b"# Preferences:\r\n"
               b"# <?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\r\n"
               b"# <map MAP_XML_VERSION=\"1.0\"><entry key=\"DVSBias\" value=\"1\"/></map>\r\n"
               b"#End of Preferences for this AEChip\r\n")


def write_aedat2_davis(path, ev, size, t0, extra_words=()):
    """jAER AEDAT 2.0, DAVIS layout (formats.md §3): y stored bottom-up, big-endian u32 address and
    u32 time. ``extra_words``: (time, address) of IMU/APS words merged in time order."""
    w, h = size
    recs = [(int(t) + t0, (h - 1 - int(y)) << 22 | int(x) << 12 | int(p) << 11, 0)
            for x, y, t, p in zip(ev["x"], ev["y"], ev["t"] - ev["t"][0], ev["p"])]
    recs += [(t0 + int(t), a, 1) for t, a in extra_words]
    recs.sort(key=lambda r: r[0])
    with open(path, "wb") as f:
        f.write(JAER_HEADER % b"eu.seebetter.ini.chips.davis.Davis346B")
        f.write(b"".join(struct.pack(">II", a & 0xFFFFFFFF, t & 0xFFFFFFFF) for t, a, _ in recs))
    return path


def write_aedat_dvs128(path, ev, version="2.0", order="inivation"):
    """DVS128 AEDAT 1.0/2.0: x bits 7-1, y bits 14-8 (y bottom-up), p bit 0; ``order="tonic"``
    swaps x and y as tonic's reader expects."""
    out = []
    for x, y, t, p in zip(ev["x"].tolist(), ev["y"].tolist(), ev["t"].tolist(), ev["p"].tolist()):
        yr = 127 - y
        a = (yr << 8 | x << 1 | p) if order == "inivation" else (x << 8 | yr << 1 | p)
        out.append(struct.pack(">II", a, t) if version == "2.0" else struct.pack(">hi", a, t))
    hdr = (JAER_HEADER % b"ch.unizh.ini.jaer.chip.retina.DVS128").replace(b"2.0", version.encode(), 1)
    Path(path).write_bytes(hdr + b"".join(out))
    return path


def write_aedat31(path, ev, t0, per_packet=4096, source="DAVIS346", extras=False):
    """AEDAT 3.1 (formats.md §4): header, then polarity packets (28-byte header, 8-byte events:
    data = x<<17 | y<<2 | p<<1 | valid, ts = t & 0x7FFFFFFF, overflow = t >> 31). ``extras``: an
    IMU6 packet, invalid events and spare capacity, and a TIMESTAMP_RESET special packet in the
    middle (later events restart from 0: the reader must continue the time line)."""
    t = (ev["t"] - ev["t"][0]).astype(np.int64) + t0
    parts = [b"#!AER-DAT3.1\r\n#Format: RAW\r\n#Source 1: %s\r\n#Start-Time: 2021-10-11 14:01:30 (UTC+0200)\r\n"
             b"#!END-HEADER\r\n" % source.encode()]
    reset_at = len(t) // 2 if extras else None
    offset = 0
    for k in range(0, len(t), per_packet):
        if reset_at is not None and k <= reset_at < k + per_packet:
            pass
        sl = slice(k, min(k + per_packet, len(t)))
        if reset_at is not None and k == (reset_at // per_packet) * per_packet:
            # reset at the time of the last event before this packet
            offset = int(t[k - 1]) if k else 0
            parts.append(struct.pack("<hhiiiiii", 0, 1, 8, 4, 0, 1, 1, 1) +
                         struct.pack("<II", 1 << 1 | 1, offset & 0x7FFFFFFF))
        tt = t[sl] - offset
        if extras and k == 0:
            imu = struct.pack("<hhiiiiii", 3, 1, 36, 4, 0, 2, 2, 2)
            for j in range(2):
                imu += struct.pack("<II7f", 1, int(tt[0]) & 0x7FFFFFFF, 0.1, -0.9, 0.2, 1.0, 2.0, 3.0, 30.0)
            parts.append(imu)
        evs = []
        for x, y, ti, p in zip(ev["x"][sl].tolist(), ev["y"][sl].tolist(), tt.tolist(), ev["p"][sl].tolist()):
            evs.append(struct.pack("<II", x << 17 | y << 2 | p << 1 | 1, ti & 0x7FFFFFFF))
        cap = len(evs)
        if extras:  # an invalid event in the middle and two spare slots of capacity
            evs.insert(len(evs) // 2, struct.pack("<II", 5 << 17 | 5 << 2 | 0, int(tt[len(tt) // 2]) & 0x7FFFFFFF))
            cap = len(evs) + 2
        ovf = int(tt[0]) >> 31
        assert all((int(v) >> 31) == ovf for v in tt), "fixture: a packet must not straddle an overflow"
        parts.append(struct.pack("<hhiiiiii", 1, 1, 8, 4, ovf, cap, len(evs), len(evs)) + b"".join(evs)
                     + b"\0" * 8 * (cap - len(evs)))
    Path(path).write_bytes(b"".join(parts))
    return path


def write_evt21(path, ev, legacy=False, header=True, size=(640, 480)):
    """EVT 2.1 (formats.md §8): TIME_HIGH words when t >> 6 changes; consecutive events with the
    same t, y, p in one 32-aligned x block and increasing x share one vector word (so that decoding
    gives back the original order). ``legacy``: the two 32-bit halves swapped (IMX636)."""
    words = []
    high = None
    x, y, t, p = (ev[k].astype(np.int64).tolist() for k in "xytp")
    i, n = 0, len(x)
    while i < n:
        if t[i] >> 6 != high:
            high = t[i] >> 6
            words.append((0x8 << 60) | ((high & 0xFFFFFFF) << 32))
        xb = x[i] & ~31
        mask = 1 << (x[i] - xb)
        j = i + 1
        while j < n and t[j] == t[i] and y[j] == y[i] and p[j] == p[i] and (x[j] & ~31) == xb and x[j] > x[j - 1]:
            mask |= 1 << (x[j] - xb)
            j += 1
        words.append((p[i] << 60) | ((t[i] & 0x3F) << 54) | (xb << 43) | (y[i] << 32) | mask)
        i = j
    if legacy:
        words = [((w & 0xFFFFFFFF) << 32) | (w >> 32) for w in words]
    hdr = b""
    if header:
        hdr = (b"% date 2020-09-25 07:48:31\n% evt 2.1\n"
               + f"% format EVT21;height={size[1]};width={size[0]}".encode()
               + (b";endianness=legacy" if legacy else b"") + b"\n% end\n")
    Path(path).write_bytes(hdr + struct.pack(f"<{len(words)}Q", *words))
    return path


def tonic_aer(path, layout):
    """tonic 1.7's AEDAT 2.0 / 3.1 reading: its header parser and record (packet) reader, then the
    bit fields of its ``read_dvs_128`` / ``read_dvs_ibm``. (Those two functions themselves crash in
    tonic 1.7: they unpack two values from ``read_aedat_header_from_file``, which returns three.)"""
    import tonic.io

    version, start, _ = tonic.io.read_aedat_header_from_file(str(path))
    rec = tonic.io.get_aer_events_from_file(str(path), version, start)
    a, t = rec["address"].astype(np.int64), rec["timeStamp"].astype(np.int64)
    if layout == "dvs128":  # read_dvs_128
        x, y, p = (a >> 8) & 0x007F, (a >> 1) & 0x007F, a & 0x1
    else:  # read_dvs_ibm
        x, y, p = (a >> 17) & 0x00001FFF, (a >> 2) & 0x00001FFF, (a >> 1) & 0x00000001
    return {"x": x, "y": y, "t": t, "p": p}


CASES = ["aedat4", "evt3", "evt2", "dat", "nmnist", "bs2", "aedat2", "aedat3", "evt21", "npy"]
FIXED = {"dat": 8, "nmnist": 5, "bs2": 5, "aedat2": 8, "npy": 13}   # bytes per record


def _data_start(src) -> int:
    return int(getattr(src, "start", 0))


def damaged(cases, key, name, data: bytes) -> Path:
    p = cases["dir"] / f"{key}_{name}{cases[key]['path'].suffix}"
    p.write_bytes(data)
    return p


def decode_damaged(path, key):
    """Decode a damaged file: a FormatError (naming the file) or events + the source's stats."""
    fmt_name = {"bs2": "bs2", "npy": "npy"}.get(key)
    try:
        ev, src = decode(path, format=fmt_name) if fmt_name else decode(path)
    except FormatError as e:
        assert str(path) in str(e), f"the error must name the file: {e}"
        return None, e
    return absolute(ev, src), src


def _packet_boundary(c, data) -> int:
    """The offset of a packet header near the middle of an AEDAT 3.1/4.0 file."""
    pos = c["start"]
    mid = (c["start"] + c["size"]) // 2
    if c["path"].suffix == ".aedat4":
        while True:
            sid, size = struct.unpack_from("<ii", data, pos)
            if pos >= mid:
                return pos
            pos += 8 + size
    while True:
        cap, esize = struct.unpack_from("<i", data, pos + 20)[0], struct.unpack_from("<i", data, pos + 4)[0]
        cap = struct.unpack_from("<i", data, pos + 20)[0]
        if pos >= mid:
            return pos
        pos += 28 + cap * esize


def _records(c, key):
    """(record array view of the file bytes, field setters) for fixed-record formats."""
    data = bytearray(c["path"].read_bytes())
    return data


def _set_nmnist(data, i, x=None, y=None, t=None):
    o = 5 * i
    if x is not None:
        data[o] = x
    if y is not None:
        data[o + 1] = y
    if t is not None:
        data[o + 2] = (data[o + 2] & 0x80) | (t >> 16 & 0x7F)
        data[o + 3] = t >> 8 & 0xFF
        data[o + 4] = t & 0xFF


def _get_nmnist_t(data, i):
    o = 5 * i
    return (data[o + 2] & 0x7F) << 16 | data[o + 3] << 8 | data[o + 4]


def _modify_fixed(c, key, idx, *, x=None, t_delta=None):
    """Copy of a fixed-record file with event ``idx`` moved to x, or its time shifted."""
    data = bytearray(c["path"].read_bytes())
    s = c["start"]
    if key in ("nmnist", "bs2"):
        if x is not None:
            _set_nmnist(data, idx, x=x)
        if t_delta is not None:
            _set_nmnist(data, idx, t=(_get_nmnist_t(data, idx) + t_delta) % 2 ** 23)
    elif key == "dat":
        o = s + 8 * idx
        t, d = struct.unpack_from("<II", data, o)
        if x is not None:
            d = (d & ~0x3FFF) | x
        if t_delta is not None:
            t = (t + t_delta) % 2 ** 32
        struct.pack_into("<II", data, o, t, d)
    elif key == "aedat2":
        o = s + 8 * idx
        a, t = struct.unpack_from(">II", data, o)
        if x is not None:
            a = (a & ~(0x3FF << 12)) | x << 12
        if t_delta is not None:
            t = (t + t_delta) % 2 ** 32
        struct.pack_into(">II", data, o, a, t)
    elif key == "npy":
        o = s + 13 * idx
        if x is not None:
            struct.pack_into("<H", data, o, x)
        if t_delta is not None:
            t = struct.unpack_from("<q", data, o + 4)[0]
            struct.pack_into("<q", data, o + 4, t + t_delta)
    return bytes(data)


def decode_damaged_opts(path, key, opts):
    fmt_name = {"bs2": "bs2", "npy": "npy"}.get(key)
    ev, src = decode(path, format=fmt_name, **opts) if fmt_name else decode(path, **opts)
    return absolute(ev, src), src


def _evt3_words(c):
    data = c["path"].read_bytes()
    return data[:c["start"]], np.frombuffer(data[c["start"]:], "<u2").copy()


def _rewrite_aedat4(path, dst, fn, codec="lz4"):
    """Copy an AEDAT 4.0 file, passing each event packet's events (a structured array) through
    ``fn(k, events)`` (k: event packet number) and recompressing every packet with ``codec``
    (lz4 frames, zstd or none; the IOHeader's compression field set to match)."""
    import lz4.frame
    import zstandard

    from edgebrain.stream.sources.events.aedat4 import _FB, AEDAT4_EVENT

    raw = Path(path).read_bytes()
    n = struct.unpack_from("<I", raw, 14)[0]
    hdr = raw[18:18 + n]
    fb = _FB(hdr, struct.unpack_from("<I", hdr, 0)[0])
    dtp = fb.scalar(1, "<q", -1)
    head = bytearray(raw[:18 + n])
    struct.pack_into("<q", head, 18 + fb.field(1), -1)  # no data table in the copy
    struct.pack_into("<i", head, 18 + fb.field(0), {"lz4": 1, "zstd": 3, "none": 0}[codec])
    pack = {"lz4": lz4.frame.compress, "zstd": zstandard.ZstdCompressor().compress, "none": bytes}[codec]
    out = [bytes(head)]
    pos, k = 18 + n, 0
    while pos < (dtp if dtp > 0 else len(raw)):
        sid, size = struct.unpack_from("<ii", raw, pos)
        body = bytearray(lz4.frame.decompress(raw[pos + 8:pos + 8 + size]))
        if sid == 0:
            b = _FB(bytes(body), 4 + struct.unpack_from("<I", body, 4)[0])
            vs, cnt = b.vector(0, 16)
            ev = np.frombuffer(body, AEDAT4_EVENT, count=cnt, offset=vs).copy()
            fn(k, ev)
            body[vs:vs + 16 * cnt] = ev.tobytes()
            k += 1
        comp = pack(bytes(body))
        out.append(struct.pack("<ii", sid, len(comp)) + comp)
        pos += 8 + size
    Path(dst).write_bytes(b"".join(out))
    return dst


def _packet_events(data, pos) -> int:
    import lz4.frame

    from edgebrain.stream.sources.events.aedat4 import _FB

    size = struct.unpack_from("<i", data, pos + 4)[0]
    body = lz4.frame.decompress(bytes(data[pos + 8:pos + 8 + size]))
    return _FB(body, 4 + struct.unpack_from("<I", body, 4)[0]).vector(0, 16)[1]


def _aedat4_bodies(path):
    from edgebrain.stream.sources.events.aedat4 import Aedat4Source

    s = Aedat4Source(path)
    raw = path.read_bytes()
    end = s.dtp if s.dtp >= 0 else s.size
    pos, bodies = s.start, []
    while pos + 8 <= end:
        sid, size = struct.unpack_from("<ii", raw, pos)
        if sid == s.stream:
            bodies.append(s.decompress(raw[pos + 8:pos + 8 + size]))
        pos += 8 + size
    return s, bodies


def _damaged_bodies(body: bytes, rng, n: int = 1500):
    """``n`` copies of a packet body with 1-3 random bytes of its first 64 changed, a fifth of them
    also truncated at a random length."""
    for _ in range(n):
        c = bytearray(body)
        for _ in range(int(rng.integers(1, 4))):
            c[int(rng.integers(0, 64))] = int(rng.integers(0, 256))
        if rng.random() < 0.2:
            c = c[:int(rng.integers(0, len(c)))]
        yield bytes(c)


def _aedat4_variants(fmt, d: Path) -> list:
    """Real AEDAT 4 recordings and damaged copies of them: truncated, bit-flipped, garbage between
    packets, a packet whose events are garbage, a packet that does not decompress, and packets too
    large for the compiled scan's scratch buffer."""
    from edgebrain.stream.sources.events.aedat4 import SCRATCH_BYTES

    out = [fmt / "sample.aedat4", fmt / "davis346.aedat4"]
    rng = np.random.default_rng(23)
    for name in ("sample.aedat4", "davis346.aedat4"):
        data = (fmt / name).read_bytes()
        start = 18 + struct.unpack_from("<I", data, 14)[0]
        for k in range(3):
            bad = bytearray(data)
            for _ in range(int(rng.integers(1, 6))):
                bad[int(rng.integers(start, len(data)))] ^= 1 << int(rng.integers(0, 8))
            out.append(d / f"flip{k}_{name}")
            out[-1].write_bytes(bytes(bad))
        out.append(d / f"cut_{name}")
        out[-1].write_bytes(data[:start + (len(data) - start) * 2 // 3 + 5])
        pos = start
        while pos < len(data) // 2:
            pos += 8 + struct.unpack_from("<i", data, pos + 4)[0]
        garbage = rng.integers(0, 256, 3001, dtype=np.uint8).tobytes()
        out.append(d / f"garbage_{name}")
        out[-1].write_bytes(data[:pos] + garbage + data[pos:])
        zeroed = bytearray(data)
        while struct.unpack_from("<i", zeroed, pos)[0] != 0:
            pos += 8 + struct.unpack_from("<i", zeroed, pos + 4)[0]
        zeroed[pos + 8:pos + 48] = bytes(40)
        out.append(d / f"zeroed_{name}")
        out[-1].write_bytes(bytes(zeroed))

    def junk(k, e):
        if k == 3:
            e["x"][::2] = 30000
    out.append(_rewrite_aedat4(fmt / "sample.aedat4", d / "junk.aedat4", junk))
    # one packet of more events than the scratch buffer holds, between ordinary ones
    big = SCRATCH_BYTES // 16 + 1000

    def repack(k, e):  # packet 2 at one time, so that repeating its events keeps time ordered
        if k == 2:
            e["t"][:] = e["t"][0]
    p = _rewrite_aedat4(fmt / "sample.aedat4", d / "big_src.aedat4", repack)
    raw = p.read_bytes()
    hdr_end = 18 + struct.unpack_from("<I", raw, 14)[0]
    import lz4.frame

    from edgebrain.stream.sources.events.aedat4 import _FB, AEDAT4_EVENT
    pos, packets = hdr_end, []
    while pos < len(raw):
        sid, size = struct.unpack_from("<ii", raw, pos)
        packets.append(raw[pos:pos + 8 + size])
        pos += 8 + size
    sid, size = struct.unpack_from("<ii", packets[2], 0)
    body = bytearray(lz4.frame.decompress(packets[2][8:]))
    b = _FB(bytes(body), 4 + struct.unpack_from("<I", body, 4)[0])
    vs, cnt = b.vector(0, 16)
    one = np.frombuffer(body, AEDAT4_EVENT, count=cnt, offset=vs)
    many = np.resize(one, big)  # the packet's events repeated (same times: time stays ordered)
    new = bytes(body[:vs - 4]) + struct.pack("<I", big) + many.tobytes()
    new = struct.pack("<I", len(new) - 4) + new[4:]
    comp = lz4.frame.compress(new)
    packets[2] = struct.pack("<ii", sid, len(comp)) + comp
    out.append(d / "big.aedat4")
    out[-1].write_bytes(raw[:hdr_end] + b"".join(packets))
    return out
