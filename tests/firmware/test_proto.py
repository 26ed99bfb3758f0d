"""The board link's framing (edgebrain/proto.py and its C twin, edgebrain/cruntime/eb_proto.c):
CRC-16/CCITT-FALSE against its standard check value and a bitwise reference written here; COBS
against hand-computed vectors (Cheshire & Baker's examples); frames Python → C and C → Python,
byte for byte; the C parser's handling of corrupted, partial and overlong input; the generated
C header (eb_proto_layout.h) is the committed one. The C code is the runtime's shared library
(every cruntime/*.c, built with the system compiler), called through ctypes."""

from __future__ import annotations

import ctypes
import struct
import subprocess
import sys

import numpy as np
import pytest

from edgebrain import proto as P
from tests.conftest import REPO


@pytest.fixture(scope="module")
def lib(clib):
    c = clib
    vp, sz, u8p = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p
    for name, res, args in (("eb_proto_crc16", ctypes.c_uint16, (ctypes.c_uint16, u8p, sz)),
                            ("eb_cobs_encode", sz, (u8p, sz, vp)), ("eb_cobs_decode", ctypes.c_long, (u8p, sz, vp)),
                            ("eb_proto_encode", sz, (ctypes.c_uint8, ctypes.c_uint16, u8p, sz, vp)),
                            ("eb_rx_sizeof", sz, ()), ("eb_rx_init", None, (vp,)),
                            ("eb_rx_feed", ctypes.c_int, (vp, ctypes.c_uint8)),
                            ("eb_rx_frame", vp, (vp, ctypes.POINTER(ctypes.c_uint32)))):
        f = getattr(c, name)
        f.restype, f.argtypes = res, list(args)
    return c


def c_cobs_encode(lib, data: bytes) -> bytes:
    out = ctypes.create_string_buffer(len(data) + len(data) // 254 + 2)
    n = lib.eb_cobs_encode(data, len(data), out)
    return out.raw[:n]


def c_cobs_decode(lib, data: bytes):
    out = ctypes.create_string_buffer(len(data) + 1)
    n = lib.eb_cobs_decode(data, len(data), out)
    return None if n < 0 else out.raw[:n]


class CParser:
    """The C frame parser (eb_rx) fed byte by byte: intact frames (type, seq, payload) and the
    status of each dropped one."""

    def __init__(self, lib):
        self.lib, self.rx = lib, ctypes.create_string_buffer(lib.eb_rx_sizeof())
        lib.eb_rx_init(self.rx)
        self.frames, self.errors = [], []

    def feed(self, data: bytes):
        for b in data:
            st = self.lib.eb_rx_feed(self.rx, b)
            if st == 1:
                n = ctypes.c_uint32()
                p = self.lib.eb_rx_frame(self.rx, ctypes.byref(n))
                raw = ctypes.string_at(p, n.value)
                self.frames.append((raw[1], struct.unpack_from("<H", raw, 2)[0], raw[6:]))
            elif st >= 3:
                self.errors.append(st)


def crc16_reference(data: bytes) -> int:
    """CRC-16/CCITT-FALSE bit by bit, from its definition: poly 0x1021, init 0xFFFF, MSB first."""
    crc = 0xFFFF
    for byte in data:
        for bit in range(7, -1, -1):
            top = (crc >> 15) & 1
            crc = (crc << 1) & 0xFFFF
            if top ^ ((byte >> bit) & 1):
                crc ^= 0x1021
    return crc


# ---------------------------------------------------------------------- CRC


def test_crc16_check_value_in_python_and_c(lib):
    assert P.CRC_CHECK == 0x29B1
    assert P.crc16(b"123456789") == 0x29B1 == crc16_reference(b"123456789")
    assert lib.eb_proto_crc16(0xFFFF, b"123456789", 9) == 0x29B1


def test_crc16_matches_the_bitwise_reference_on_random_data(lib):
    rng = np.random.default_rng(1)
    for n in (0, 1, 2, 7, 64, 255, 1000):
        d = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        want = crc16_reference(d)
        assert P.crc16(d) == want and lib.eb_proto_crc16(0xFFFF, d, n) == want


# ---------------------------------------------------------------------- COBS

#: (data, encoding) worked by hand from the definition (and Cheshire & Baker's examples)
COBS_VECTORS = [
    (b"", b"\x01"),
    (b"\x00", b"\x01\x01"),
    (b"\x00\x00", b"\x01\x01\x01"),
    (b"\x11\x22\x00\x33", b"\x03\x11\x22\x02\x33"),
    (b"\x11\x22\x33\x44", b"\x05\x11\x22\x33\x44"),
    (b"\x11\x00\x00\x00", b"\x02\x11\x01\x01\x01"),
    (bytes(range(1, 255)), b"\xff" + bytes(range(1, 255))),                        # 254 non-zero: no extra block
    (bytes(range(0, 255)), b"\x01\xff" + bytes(range(1, 255))),
    (bytes(range(1, 256)), b"\xff" + bytes(range(1, 255)) + b"\x02\xff"),
    (bytes(range(2, 256)) + b"\x00", b"\xff" + bytes(range(2, 256)) + b"\x01\x01"),
]


@pytest.mark.parametrize("data,enc", COBS_VECTORS, ids=range(len(COBS_VECTORS)))
def test_cobs_hand_vectors_python_and_c(lib, data, enc):
    assert P.cobs_encode(data) == enc
    assert c_cobs_encode(lib, data) == enc
    assert P.cobs_decode(enc) == data
    assert c_cobs_decode(lib, enc) == data


def test_cobs_round_trip_random_python_equals_c(lib):
    rng = np.random.default_rng(2)
    for n in list(range(0, 600, 7)) + [253, 254, 255, 508, 509, 4104]:
        for zeros in (0.0, 0.05, 0.5):
            d = rng.integers(1, 256, n, dtype=np.uint8)
            d[rng.random(n) < zeros] = 0
            d = d.tobytes()
            e = P.cobs_encode(d)
            assert 0 not in e and len(e) <= n + n // 254 + 1
            assert c_cobs_encode(lib, d) == e
            assert P.cobs_decode(e) == d == c_cobs_decode(lib, e)


@pytest.mark.parametrize("bad", [b"\x00", b"\x05\x11\x22", b"\x03\x11\x00", b"\x03\x11"])
def test_cobs_decode_refuses_malformed_blocks(lib, bad):
    with pytest.raises(ValueError):
        P.cobs_decode(bad)
    assert c_cobs_decode(lib, bad) is None


# ---------------------------------------------------------------------- frames


def frames_sample(rng, k=40):
    out = []
    for i in range(k):
        n = int(rng.choice([0, 1, 5, 100, 300, P.MAX_PAYLOAD]))
        out.append((int(rng.choice(list(P.MSG.values()))), (i * 37) & 0xFFFF, rng.integers(0, 256, n, np.uint8).tobytes()))
    return out


def test_frames_python_to_c_and_c_to_python_byte_for_byte(lib):
    rng = np.random.default_rng(3)
    sample = frames_sample(rng)
    wire = b"".join(P.encode_frame(t, s, p) for t, s, p in sample)
    c = CParser(lib)
    c.feed(wire)
    assert c.frames == sample and c.errors == []
    d = P.Deframer()
    for t, s, p in sample:
        out = ctypes.create_string_buffer(P.MAX_ENCODED + 1)
        n = lib.eb_proto_encode(t, s, p, len(p), out)
        assert out.raw[:n] == P.encode_frame(t, s, p)
        assert n <= P.MAX_ENCODED + 1
    got = d.feed(wire)
    assert [(f.type, f.seq, f.payload) for f in got] == sample and d.dropped == 0


def test_a_payload_over_the_maximum_is_refused(lib):
    with pytest.raises(ValueError):
        P.encode_frame(1, 0, bytes(P.MAX_PAYLOAD + 1))
    out = ctypes.create_string_buffer(P.MAX_ENCODED + 1)
    assert lib.eb_proto_encode(1, 0, bytes(P.MAX_PAYLOAD + 1), P.MAX_PAYLOAD + 1, out) == 0


#: the damage corrupt() does: a bit flipped, a byte dropped, a byte duplicated, bytes reordered
KINDS = ("flip", "drop", "dup", "reorder")


def corrupt(frame: bytes, kind: str, rng) -> bytes:
    """``frame`` (with its delimiter) damaged by one bit flip, a dropped or a duplicated byte, or a
    reordering (two adjacent bytes swapped, or two adjacent runs of 2-16 bytes), never touching the
    delimiter nor making a new zero (one damaged frame stays one zero-delimited block) and never
    leaving it as it was."""
    body = bytearray(frame[:-1])
    i = int(rng.integers(0, len(body)))
    if kind == "flip":
        bits = [b for b in range(8) if body[i] ^ (1 << b)]
        body[i] ^= 1 << int(rng.choice(bits))
    elif kind == "drop":
        del body[i]
    elif kind == "dup":
        body.insert(i, body[i])
    elif kind == "reorder":
        if len(set(body)) < 2:
            raise ValueError("a frame of one repeated byte cannot be reordered")
        while True:
            if len(body) >= 4 and rng.random() < 0.5:  # two adjacent runs exchanged
                a = int(rng.integers(2, min(16, len(body) // 2) + 1))
                b = int(rng.integers(2, min(16, len(body) - a) + 1))
                j = int(rng.integers(0, len(body) - a - b + 1))
                new = body[:j] + body[j + a:j + a + b] + body[j:j + a] + body[j + a + b:]
            else:  # two adjacent bytes swapped
                j = int(rng.integers(0, len(body) - 1))
                new = body[:j] + body[j + 1:j + 2] + body[j:j + 1] + body[j + 2:]
            if new != body:
                body = new
                break
    else:
        raise ValueError(f"unknown damage {kind!r}")
    return bytes(body) + b"\0"


def test_corrupted_frames_are_dropped_and_intact_ones_delivered_python_and_c(lib):
    rng = np.random.default_rng(4)
    sample = frames_sample(rng, 120)
    wire, intact, damaged = bytearray(b"\x07\x33garbage-before-the-first-delimiter\0"), [], 1
    for k, (t, s, p) in enumerate(sample):
        f = P.encode_frame(t, s, p)
        if k % 3 == 1:
            wire += corrupt(f, KINDS[k % 12 // 3], rng)
            damaged += 1
        else:
            wire += f
            intact.append((t, s, p))
    wire += b"\x05partial"  # a partial frame at the end: neither delivered nor counted yet
    for chunks in (1, 7, 4096):
        d = P.Deframer()
        got = []
        for a in range(0, len(wire), chunks):
            got += d.feed(bytes(wire[a:a + chunks]))
        assert [(f.type, f.seq, f.payload) for f in got] == intact
        assert d.dropped == damaged and d.frames == len(intact)
    c = CParser(lib)
    c.feed(bytes(wire))
    assert c.frames == intact and len(c.errors) == damaged


@pytest.mark.parametrize("kind", KINDS)
def test_every_damaged_frame_of_each_kind_is_detected_python_and_c(lib, kind):
    """600 frames of every size class (empty, short, around COBS's 254-byte blocks, maximal), each
    sent intact and damaged: every damaged copy dropped and counted by both parsers, every intact
    one delivered, the counters exact (dropped = damaged, frames = intact)."""
    rng = np.random.default_rng(["flip", "drop", "dup", "reorder"].index(kind) + 40)
    wire, intact = bytearray(), []
    for k in range(600):
        n = int(rng.choice([0, 1, 3, 40, 246, 247, 248, 252, 253, 500, 1000, P.MAX_PAYLOAD]))
        lo = 1 if k % 2 else 0  # half without zero bytes: long COBS blocks
        t, s, p = int(rng.choice(list(P.MSG.values()))), k, rng.integers(lo, 256, n, np.uint8).tobytes()
        f = P.encode_frame(t, s, p)
        wire += corrupt(f, kind, rng) + f
        intact.append((t, s, p))
    d = P.Deframer()
    got = d.feed(bytes(wire))
    assert [(f.type, f.seq, f.payload) for f in got] == intact
    assert d.dropped == 600 and d.frames == 600
    c = CParser(lib)
    c.feed(bytes(wire))
    assert c.frames == intact and len(c.errors) == 600


def test_reorder_damage_swaps_bytes_or_runs_and_keeps_one_block():
    rng = np.random.default_rng(8)
    f = P.encode_frame(P.MSG["STEPS"], 3, bytes(range(1, 200)))
    seen = set()
    for _ in range(200):
        g = corrupt(f, "reorder", rng)
        assert len(g) == len(f) and g != f and g.count(0) == 1 and g[-1] == 0
        assert sorted(g) == sorted(f)  # the same bytes, another order
        diff = [i for i in range(len(f)) if f[i] != g[i]]
        seen.add(diff[-1] - diff[0] + 1 == 2)
    assert seen == {True, False}  # both adjacent bytes and longer runs


def _frame_ending_in_a_full_cobs_block_and_0x01(rng):
    """A PING whose COBS encoding ends with a full (0xFF) block whose last byte is 0x01."""
    while True:
        p = rng.integers(1, 256, 252, np.uint8).tobytes()
        f = P.encode_frame(P.MSG["PING"], 0x0101, p)
        if len(f) == 262 and f[-256] == 0xFF and f[-2] == 1:
            return f, p


def test_a_non_canonical_cobs_tail_is_refused_by_the_c_parser(lib):
    """A fuzzer finding (firmware/fuzz/regressions/rx/cobs-non-canonical-tail): an empty last COBS
    block after a full one decodes to nothing, so a frame with one byte 0x01 inserted before its
    delimiter — what a duplicated last byte makes of a frame that ends so — decoded to the intact
    frame and was delivered. Canonical COBS only, now: dropped as BAD_COBS."""
    f, p = _frame_ending_in_a_full_cobs_block_and_0x01(np.random.default_rng(9))
    damaged = f[:-1] + f[-2:]  # the last byte (0x01) duplicated
    assert damaged != f and c_cobs_decode(lib, damaged[:-1]) is None
    c = CParser(lib)
    c.feed(damaged + f)
    assert c.errors == [3] and c.frames == [(P.MSG["PING"], 0x0101, p)]
    reg = (REPO / "firmware" / "fuzz" / "regressions" / "rx" / "cobs-non-canonical-tail").read_bytes()
    c = CParser(lib)
    c.feed(reg)
    assert c.frames == [] and c.errors == [3]


def test_a_non_canonical_cobs_tail_is_refused_by_the_python_deframer():
    f, p = _frame_ending_in_a_full_cobs_block_and_0x01(np.random.default_rng(9))
    damaged = f[:-1] + f[-2:]
    d = P.Deframer()
    assert [x.payload for x in d.feed(damaged + f)] == [p] and d.frame_errors == 1


def _frame_over_the_maximum(n=4100):
    """A well-formed frame (length field and CRC right) with a payload over MAX_PAYLOAD: mostly zero
    bytes, so that its encoding is still within MAX_ENCODED."""
    raw = P.HEADER.pack(P.VERSION, P.MSG["PING"], 7, n) + bytes(n)
    block = P.cobs_encode(raw + struct.pack("<H", P.crc16(raw)))
    assert len(block) <= P.MAX_ENCODED
    return block + b"\0"


def test_a_payload_over_the_maximum_is_dropped_by_the_c_parser(lib):
    c = CParser(lib)
    c.feed(_frame_over_the_maximum() + P.encode_frame(P.MSG["PING"], 8, b"ok"))
    assert c.errors == [3] and c.frames == [(P.MSG["PING"], 8, b"ok")]


def test_a_payload_over_the_maximum_is_dropped_by_the_python_deframer():
    d = P.Deframer()
    assert [f.payload for f in d.feed(_frame_over_the_maximum() + P.encode_frame(P.MSG["PING"], 8, b"ok"))] == [b"ok"]
    assert d.frame_errors == 1


def test_a_block_that_decodes_past_the_frame_buffer_is_refused_c(lib):
    """A fuzzer finding (firmware/fuzz/regressions/rx/cobs-decode-past-raw): a block of
    EB_PROTO_MAX_ENCODED bytes made of many short COBS blocks decodes to up to 4120 bytes, and
    eb_rx decoded it into its 4104-byte frame buffer before checking the length, writing past it
    (into the parser's own counters, or the next object). Now refused while decoding, and the
    parser's state is intact: the frame after it is delivered."""
    block = b"\x01" * (P.MAX_ENCODED - 6) + b"\x06" + b"\x07" * 5
    assert len(block) == P.MAX_ENCODED
    good = P.encode_frame(P.MSG["PING"], 5, b"after")
    c = CParser(lib)
    c.feed(block + b"\0" + good)
    assert c.errors == [3] and c.frames == [(P.MSG["PING"], 5, b"after")]
    with pytest.raises(ValueError):  # the Python side: too long once decoded, so no frame either
        P.decode_frame(block)
    reg = (REPO / "firmware" / "fuzz" / "regressions" / "rx" / "cobs-decode-past-raw").read_bytes()
    c = CParser(lib)
    c.feed(reg)
    assert c.errors[0] == 3


def test_overlong_input_is_skipped_to_the_next_zero(lib):
    good = P.encode_frame(P.MSG["PING"], 9, b"ok")
    wire = bytes([7]) * (P.MAX_ENCODED + 500) + b"\0" + good
    d = P.Deframer()
    got = d.feed(wire)
    assert [f.payload for f in got] == [b"ok"] and d.overlong == 1 and len(d.buf) == 0
    c = CParser(lib)
    c.feed(wire)
    assert [p for _, _, p in c.frames] == [b"ok"] and c.errors == [7]


def test_another_protocol_version_is_refused(lib):
    raw = P.HEADER.pack(P.VERSION + 1, 1, 0, 0)
    wire = P.cobs_encode(raw + struct.pack("<H", P.crc16(raw))) + b"\0"
    d = P.Deframer()
    assert d.feed(wire) == [] and d.frame_errors == 1 and "version" in d.last_error
    c = CParser(lib)
    c.feed(wire)
    assert c.frames == [] and c.errors == [6]


# ---------------------------------------------------------------------- layouts


def test_message_layouts_pack_and_unpack():
    b = P.pack("OUTPUTS", b"\1\2\3\4", n=1, clock=7, saturations=3)
    assert len(b) == P.STRUCTS["OUTPUTS"].size + 4
    u = P.unpack("OUTPUTS", b)
    assert (u["n"], u["clock"], u["saturations"], u["tail"]) == (1, 7, 3, b"\1\2\3\4")
    assert len({c for c, *_ in P.MESSAGES.values()}) == len(P.MESSAGES)  # distinct type codes
    assert all((c < 0x80) == (d == "host") for c, d, *_ in P.MESSAGES.values())


def test_the_committed_c_header_is_generated_from_proto_py():
    path = REPO / "edgebrain" / "cruntime" / "eb_proto_layout.h"
    assert path.read_text() == P.c_header(), "stale: run python tools/firmware/gen_header.py"
    r = subprocess.run([sys.executable, str(REPO / "tools" / "firmware" / "gen_header.py"), "--check"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    text = path.read_text()
    assert f"#define EB_PROTO_MAX_PAYLOAD {P.MAX_PAYLOAD}u" in text and "#define EB_MSG_STEPS 0x06u" in text
