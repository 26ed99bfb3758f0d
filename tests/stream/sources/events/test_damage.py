"""Damaged event files: real files truncated, bit-flipped, padded with garbage, with events outside
the sensor and with time going backwards, and corrupt headers → a FormatError naming file and
offset, or a counted repair, with every valid event around the damage unchanged (compared with
the undamaged decode), never a hang (every decode runs under a deadline).
"""

from __future__ import annotations

import struct
import numpy as np
import pytest

from edgebrain.errors import FormatError
from edgebrain.stream.registry import open_source

from tests.stream.sources.events._helpers import (
    CASES,
    FIXED,
    _evt3_words,
    _modify_fixed,
    _packet_boundary,
    _packet_events,
    _rewrite_aedat4,
    common_prefix,
    common_suffix,
    damaged,
    deadline,
    decode,
    decode_damaged,
    decode_damaged_opts,
)


@pytest.mark.parametrize("key", CASES)
def test_truncated(cases, key):
    c = cases[key]
    full = c["abs"]
    data = c["path"].read_bytes()
    start, size = c["start"], c["size"]
    for frac in (0.13, 0.5, 0.77, 0.999):
        cut = start + int((size - start) * frac) // 520 * 520 + 7  # inside a record/word of any size
        got, src = decode_damaged(damaged(cases, key, f"cut{frac}", data[:cut]), key)
        assert got is not None, f"{key} cut at {cut}: {src}"
        n = common_prefix(got, full)
        assert n == len(got), f"{key} cut at byte {cut}: decoded events differ from the undamaged decode at #{n}"
        # every event stored before the cut is kept (up to one packet / a few words at the cut)
        expect = len(full) * (cut - start) / (size - start)
        slack = {"aedat4": 12000, "aedat3": 4100}.get(key, 64)
        assert len(got) >= expect - slack - 0.02 * len(full), f"{key} cut at {cut}: only {len(got)} events kept"
        assert src.stats.repaired + src.stats.dropped >= 1 or key in ("aedat4", "aedat3"), \
            f"{key}: a cut inside a record must be reported"
    if start > 20:  # cut inside the header: a clear error (or no events), never a crash
        got, err = decode_damaged(damaged(cases, key, "cuthead", data[:start // 2 + 1]), key)
        if got is not None:
            assert len(got) == 0
        else:
            assert "byte" in str(err) or "header" in str(err)


@pytest.mark.parametrize("key", CASES)
def test_bit_flips(cases, key):
    c = cases[key]
    full = c["abs"]
    data = bytearray(c["path"].read_bytes())
    start, size = c["start"], c["size"]
    rng = np.random.default_rng(7)
    slack = {"aedat4": 12000, "aedat3": 4200, "evt3": 600, "evt2": 200, "evt21": 600}.get(key, 4)
    for trial in range(6):
        pos = int(rng.integers(start + (size - start) // 50, size))
        bit = int(rng.integers(0, 8))
        bad = bytearray(data)
        bad[pos] ^= 1 << bit
        got, src = decode_damaged(damaged(cases, key, f"flip{trial}", bytes(bad)), key)
        if got is None:
            continue  # a clear error naming the file (checked in decode_damaged)
        pre, suf = common_prefix(got, full), common_suffix(got, full)
        lost = len(full) - min(len(full), pre + suf)
        assert lost <= slack, (f"{key}: bit {bit} of byte {pos} flipped: events before ({pre}) and after ({suf}) "
                               f"the damage should be intact; {lost} of {len(full)} differ")
        if key in FIXED:
            assert len(got) == len(full) - src.stats.dropped, f"{key}: a lost event must be counted"


@pytest.mark.parametrize("key", CASES)
def test_garbage_padding(cases, key):
    c = cases[key]
    full = c["abs"]
    data = c["path"].read_bytes()
    garbage = np.random.default_rng(3).integers(0, 256, 4001, dtype=np.uint8).tobytes()
    got, src = decode_damaged(damaged(cases, key, "garbage", data + garbage), key)
    assert got is not None, f"{key}: {src}"
    assert len(got) >= len(full) and np.array_equal(got[:len(full)], full), \
        f"{key}: every event before the garbage must be decoded unchanged"
    assert src.stats.repaired + src.stats.dropped >= 1, f"{key}: garbage must be reported"
    if key in ("aedat4", "aedat3"):  # packets: garbage between packets is skipped, later packets kept
        pos = _packet_boundary(c, data)
        got, src = decode_damaged(damaged(cases, key, "garbage_mid", data[:pos] + garbage + data[pos:]), key)
        assert got is not None
        assert np.array_equal(got[:len(full)], full), f"{key}: events after the garbage must be found again"
        assert src.stats.repaired >= 1


@pytest.mark.parametrize("key", ["dat", "nmnist", "bs2", "aedat2", "npy"])
def test_fixed_records_outside_sensor_and_time_backwards(cases, key):
    c = cases[key]
    full = c["abs"]
    n = len(full)
    w = c["sensor"][0] if c["sensor"] else 1 << 14
    xo = {"dat": 16000, "nmnist": 200, "bs2": 200, "aedat2": 1000, "npy": 60000}[key]
    # no sensor size in the N-CARS header, and a .npy's is inferred from its largest x: give one
    opts = {"dat": dict(sensor_size=(120, 100)), "npy": dict(sensor_size=(34, 34))}.get(key, {})
    assert xo >= w or key in ("dat", "npy")
    idx = [n // 5, n // 2, n // 2 + 1, 4 * n // 5]
    data = c["path"].read_bytes()
    for i in idx:
        data = _modify_fixed(dict(c, path=damaged(cases, key, "tmp", data)), key, i, x=xo)
    got, src = decode_damaged_opts(damaged(cases, key, "outside", data), key, opts)
    keep = np.ones(n, bool)
    keep[idx] = False
    assert np.array_equal(got, full[keep]), f"{key}: exactly the events outside the sensor are dropped"
    assert src.stats.dropped == len(idx) and src.stats.repaired == 0
    assert any("outside" in m for m in src.stats.messages)

    # one event slightly earlier than its predecessor → clamped to the previous time
    i = n // 3
    step = int(full[i, 2] - full[i - 1, 2]) + 300
    got, src = decode_damaged(damaged(cases, key, "back", _modify_fixed(c, key, i, t_delta=-step)), key)
    exp = full.copy()
    exp[i, 2] = full[i - 1, 2]
    assert np.array_equal(got, exp) and src.stats.repaired == 1, f"{key}: small backward step"
    # one event far in the future (a corrupt timestamp) → set to the previous time
    got, src = decode_damaged(damaged(cases, key, "spike", _modify_fixed(c, key, i, t_delta=1 << 21)), key)
    assert np.array_equal(got, exp) and src.stats.repaired == 1, f"{key}: isolated corrupt timestamp"
    # time restarts (a splice): later events keep their spacing, continuing from the last time
    data = bytearray(c["path"].read_bytes())
    m = n // 2
    back = int(full[m, 2] - full[0, 2]) + 1000
    p = damaged(cases, key, "tmp2", bytes(data))
    for j in range(m, n):
        data = bytearray(_modify_fixed(dict(c, path=p), key, j, t_delta=-back))
        p.write_bytes(data)
    got, src = decode_damaged(damaged(cases, key, "splice", bytes(data)), key)
    exp = full.copy()
    exp[m:, 2] = full[m:, 2] - full[m, 2] + full[m - 1, 2]
    assert np.array_equal(got, exp), f"{key}: a time reset continues the time line"
    assert src.stats.repaired == 1 and any("goes back" in msg for msg in src.stats.messages)


def test_evt3_outside_sensor_and_time_high_damage(cases):
    c = cases["evt3"]
    full = c["abs"]
    head, w = _evt3_words(c)
    typ = w >> 12
    # three single-event words (EVT_ADDR_X) moved outside the 1280-wide sensor
    ax = np.flatnonzero(typ == 2)
    pick = ax[[len(ax) // 200, len(ax) // 4, len(ax) * 3 // 4]]   # early, middle, late
    bad = w.copy()
    bad[pick] = (bad[pick] & 0xF800) | 1500
    got, src = decode_damaged(damaged(cases, "evt3", "outside", head + bad.tobytes()), "evt3")
    assert src.stats.dropped == 3 and len(got) == len(full) - 3
    ref, _ = decode(c["path"])
    # the dropped ones are exactly those words' events: rebuild by removing events at those (x, y, t)
    assert common_prefix(got, full) > 0 and common_suffix(got, full) > 0
    # one TIME_HIGH word with a wrong value (far back, or a flipped high bit): ignored, nothing changes
    th = np.flatnonzero(typ == 8)
    for k, val in ((len(th) // 3, 5), (len(th) // 2, None)):
        bad = w.copy()
        j = th[k]
        bad[j] = 0x8000 | (val if val is not None else ((bad[j] & 0xFFF) ^ 0x400))
        got, src = decode_damaged(damaged(cases, "evt3", f"th{k}", head + bad.tobytes()), "evt3")
        assert np.array_equal(got, full), "an outlier TIME_HIGH must not change any event"
        assert src.stats.repaired == 1 and "TIME_HIGH" in src.stats.messages[0]
    # one TIME_LOW word 300 µs ahead (a flipped bit): ignored; the events up to the next TIME_LOW keep
    # the previous time (early by that word's own step, a few µs at most), none is lost
    tl = np.flatnonzero(typ == 6)
    j = tl[len(tl) // 2]
    bad = w.copy()
    bad[j] = 0x6000 | (((bad[j] & 0xFFF).astype(np.int64) + 300) & 0xFFF)
    got, src = decode_damaged(damaged(cases, "evt3", "tl", head + bad.tobytes()), "evt3")
    assert src.stats.repaired == 1 and "TIME_LOW" in src.stats.messages[0]
    assert np.array_equal(got[:, [0, 1, 3]], full[:, [0, 1, 3]])
    step = int((w[tl[len(tl) // 2]] & 0xFFF) - (w[tl[len(tl) // 2 - 1]] & 0xFFF))
    assert 0 <= (full[:, 2] - got[:, 2]).min() and (full[:, 2] - got[:, 2]).max() <= max(step, 0)
    # time really goes back from some point on (a splice): all events kept, the time line continues
    bad = w.copy()
    j0 = th[len(th) // 2]
    sel = th[th >= j0]
    bad[sel] = 0x8000 | (((bad[sel] & 0xFFF).astype(np.int64) - 1000) & 0xFFF).astype(np.uint16)
    got, src = decode_damaged(damaged(cases, "evt3", "splice", head + bad.tobytes()), "evt3")
    assert len(got) == len(full) and np.array_equal(got[:, [0, 1, 3]], full[:, [0, 1, 3]])
    assert np.all(np.diff(got[:, 2]) >= 0) and src.stats.repaired >= 1
    k = common_prefix(got, full)
    d_full, d_got = np.diff(full[k:, 2]), np.diff(got[k:, 2])
    assert np.array_equal(d_full[1:], d_got[1:]), "after the reset the events keep their spacing"


def test_evt2_outside_sensor_and_time_high_damage(cases):
    c = cases["evt2"]
    full = c["abs"]
    data = c["path"].read_bytes()
    head, w = data[:c["start"]], np.frombuffer(data[c["start"]:], "<u4").copy()
    typ = w >> 28
    cd = np.flatnonzero(typ <= 1)
    which = [10, len(cd) * 2 // 5, len(cd) * 4 // 5]   # early, middle, late
    pick = cd[which]
    bad = w.copy()
    bad[pick] = (bad[pick] & ~np.uint32(0x7FF << 11)) | np.uint32(700 << 11)
    got, src = decode_damaged(damaged(cases, "evt2", "outside", head + bad.tobytes()), "evt2")
    keep = np.ones(len(full), bool)
    keep[which] = False  # CD words before the first TIME_HIGH: none in this file
    assert np.array_equal(got, full[keep]) and src.stats.dropped == 3
    # a TIME_HIGH word with a wrong value: ignored. When it repeated the previous value nothing
    # changes; when it was the one that stepped the time up, the events up to the next TIME_HIGH
    # (64 µs at most) come out early and are clamped, counted, but none is lost.
    th = np.flatnonzero(typ == 8)
    val = w[th] & 0xFFFFFFF
    k_same = len(th) // 2 + int(np.flatnonzero(np.diff(val[len(th) // 2:]) == 0)[0]) + 1
    k_step = len(th) // 2 + int(np.flatnonzero(np.diff(val[len(th) // 2:]) == 1)[0]) + 1
    for k, exact in ((k_same, True), (k_step, False)):
        bad = w.copy()
        bad[th[k]] = np.uint32(0x8 << 28) | np.uint32(12345)
        got, src = decode_damaged(damaged(cases, "evt2", f"th{k}", head + bad.tobytes()), "evt2")
        assert "TIME_HIGH" in src.stats.messages[0]
        if exact:
            assert np.array_equal(got, full) and src.stats.repaired == 1
        else:
            assert np.array_equal(got[:, [0, 1, 3]], full[:, [0, 1, 3]])
            assert np.abs(got[:, 2] - full[:, 2]).max() < 64 and src.stats.repaired > 1


def test_aedat4_outside_sensor_time_and_packets(cases):
    c = cases["aedat4"]
    full = c["abs"]
    d = cases["dir"]
    same = _rewrite_aedat4(c["path"], d / "same.aedat4", lambda k, e: None)
    got, src = decode_damaged(same, "aedat4")
    assert np.array_equal(got, full)  # the rewriting itself changes nothing

    def outside(k, e):
        if k == 5:
            e["x"][[3, 10]] = [400, -2]
            e["y"][20] = 300
    got, src = decode_damaged(_rewrite_aedat4(c["path"], d / "out.aedat4", outside), "aedat4")
    assert src.stats.dropped == 3 and len(got) == len(full) - 3

    t_first = {}

    def back(k, e):
        if k == 6:
            t_first["i"] = len(e) // 2
            e["t"][len(e) // 2] = e["t"][len(e) // 2 - 1] - 200
    got, src = decode_damaged(_rewrite_aedat4(c["path"], d / "back.aedat4", back), "aedat4")
    assert len(got) == len(full) and src.stats.repaired == 1
    diff = np.flatnonzero((got != full).any(1))
    assert len(diff) == 1 and got[diff[0], 2] == full[diff[0] - 1, 2]

    # a corrupt compressed payload (not decodable): that packet is skipped, every other one kept
    data = bytearray(c["path"].read_bytes())
    pos = _packet_boundary(c, data)
    while struct.unpack_from("<i", data, pos)[0] != 0:
        pos += 8 + struct.unpack_from("<i", data, pos + 4)[0]
    size = struct.unpack_from("<i", data, pos + 4)[0]
    lost = _packet_events(data, pos)
    bad = bytearray(data)
    bad[pos + 8:pos + 8 + 40] = bytes(40)  # frame header zeroed: LZ4 rejects it
    got, src = decode_damaged(damaged(cases, "aedat4", "payload", bytes(bad)), "aedat4")
    assert src.stats.repaired >= 1 and len(got) == len(full) - lost
    pre = common_prefix(got, full)
    assert np.array_equal(got[pre:], full[pre + lost:]), "events after the bad packet are kept"
    # a corrupt packet header (size) → resynchronised on the next packet
    bad = bytearray(data)
    struct.pack_into("<i", bad, pos + 4, size + 1_000_000)
    got, src = decode_damaged(damaged(cases, "aedat4", "hdr", bytes(bad)), "aedat4")
    assert src.stats.repaired >= 1 and len(got) == len(full) - lost
    assert np.array_equal(got[pre:], full[pre + lost:])


def test_aedat31_corrupt_packet_header(cases):
    c = cases["aedat3"]
    full = c["abs"]
    data = bytearray(c["path"].read_bytes())
    pos = _packet_boundary(c, data)
    cap = struct.unpack_from("<i", data, pos + 20)[0]
    bad = bytearray(data)
    struct.pack_into("<i", bad, pos + 4, 77)  # eventSize of a polarity packet must be 8
    got, src = decode_damaged(damaged(cases, "aedat3", "hdr", bytes(bad)), "aedat3")
    assert src.stats.repaired == 1 and "corrupt packet header" in src.stats.messages[0]
    assert len(got) == len(full) - cap
    pre = common_prefix(got, full)
    assert np.array_equal(got[pre:], full[pre + cap:])


@pytest.mark.parametrize("key, patch, match", [
    ("aedat4", lambda d: d[:14] + struct.pack("<I", 10 ** 8) + d[18:], "byte 14"),
    ("aedat4", lambda d: d.replace(b"<dv version", b"<dv versi\xffn", 1), "XML"),
    ("aedat4", lambda d: d.replace(b">346<", b">3x6<", 1), "sizeX"),
    ("dat", lambda d: d.replace(b"\n\x00\x08", b"\n\x07\x08", 1), "expected type 0x00"),
    ("aedat3", lambda d: d.replace(b"#!END-HEADER\r\n", b"#!END-HEADEX\r\n", 1), "END-HEADER"),
    ("npy", lambda d: d[:20] + b"\x00" * 30 + d[50:], "header"),
    ("evt3", lambda d: d.replace(b"% evt 3.0\n", b"% evx 3.0\n", 1).replace(b"plugin_name", b"plugin_nome"),
     "pass --format"),
])
def test_corrupt_headers_are_clear_errors(cases, key, patch, match):
    data = cases[key]["path"].read_bytes()
    p = damaged(cases, key, "badhdr", patch(data))
    fmt_name = {"npy": "npy", "evt3": None, "aedat3": "aedat3"}.get(key)
    with deadline(20), pytest.raises(FormatError) as e:
        with open_source(str(p), format=fmt_name) as s:
            list(s.chunks())
    assert str(p) in str(e.value) and match in str(e.value)
