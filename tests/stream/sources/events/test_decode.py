"""Event-camera readers against independent decoders, event for event: every sample file of
``events/formats`` and every ``.bs2`` of ``nmnist-small`` (``evt3``, ``expelliarmus``, ``aedat``,
``tonic``, the golden first events of formats.md §2), and the formats without a real sample
(AEDAT 1.0/2.0, AEDAT 3.1, EVT 2.1) built here from real events by writers written from the
documented layouts; tonic reads the AEDAT 2.0 and 3.1 ones too and must agree.
"""

from __future__ import annotations

import numpy as np
import pytest

from edgebrain.errors import FormatError
from edgebrain.stream.base import EVENT_DTYPE
from edgebrain.stream.sources.events import write_events_npy
from edgebrain.stream.registry import detect_format, open_source

from tests.conftest import expected
from tests.stream.sources.events._helpers import (
    NMNIST,
    _rewrite_aedat4,
    absolute,
    aedat4_events,
    assert_events,
    decode,
    evt3_reference,
    need_file,
    tonic_aer,
)


def test_detection(fmt):
    expect = {"sample.aedat4": "aedat4", "davis346.aedat4": "aedat4", "evt3_sample.raw": "evt3",
              "evt2.raw": "evt2", "sample_ncars.dat": "dat", "sample_nmnist.bin": "nmnist"}
    for name, f in expect.items():
        assert detect_format(str(fmt / name)).name == f, name


def test_evt3_matches_evt3_and_golden(fmt):
    import evt3

    path = fmt / "evt3_sample.raw"
    ev, src = decode(path)
    e = evt3.decode_file(str(path))
    assert_events(ev, e.x, e.y, e.timestamp, e.polarity, "EVT 3.0 vs evt3 0.4.1")
    assert src.info.sensor_size == (1280, 720) == (e.sensor_width, e.sensor_height)
    # golden first events, formats.md §2 (D6), absolute sensor time (the fixture's: its source events)
    g = expected(path, events=219596, first_events=[(874, 200, 11718656, 0), (806, 200, 11718656, 1),
                                                    (882, 201, 11718656, 0), (1085, 201, 11718656, 1)])
    assert [tuple(r) for r in absolute(ev[:4], src)] == g["first_events"]
    assert len(ev) == g["events"]


def test_evt3_time_wrap_is_not_a_false_wrap(fmt, tmp_path):
    """D6 with its TIME_HIGH values moved to 4094, 4095, 0: the 24-bit time wraps inside the
    recording; decoded exactly like evt3 (which unwraps it), no repair reported."""
    import evt3

    path = fmt / "evt3_sample.raw"
    with open_source(str(path)) as s:
        start = s.start
    raw = path.read_bytes()
    w = np.frombuffer(raw[start:], "<u2").copy()
    th = (w >> 12) == 8
    hv = (w[th] & 0xFFF).astype(np.int64)
    w[th] = (0x8000 | ((hv + 4095 - 2862) & 0xFFF)).astype(np.uint16)
    p = tmp_path / "wrap.raw"
    p.write_bytes(raw[:start] + w.tobytes())
    ev, src = decode(p)
    e = evt3.decode_file(str(p))
    assert set((w[th] & 0xFFF).tolist()) == {4094, 4095, 0}
    assert_events(ev, e.x, e.y, e.timestamp, e.polarity, "EVT 3.0 across the 2^24 µs wrap vs evt3")
    assert src.stats.repaired == src.stats.dropped == 0
    assert ev["t"][-1] == expected(path, last_t_relative=8801)["last_t_relative"]


def test_evt3_expelliarmus_divergence_is_its_wrap_bug(fmt):
    """expelliarmus 1.1.12 agrees on x, y, p; its timestamps are the correct ones + 4096 µs for every
    decrease of TIME_LOW seen so far: it takes each one for a TIME_HIGH wrap — the 9 backward steps
    under an unchanged TIME_HIGH of formats.md §9, and also the 2 ordinary returns of TIME_LOW to
    a small value when TIME_HIGH steps up (counted twice then). Our timestamps equal a plain
    decoder's and evt3's, and never decrease."""
    from expelliarmus import Wizard

    path = fmt / "evt3_sample.raw"
    ev, src = decode(path)
    raw = path.read_bytes()[src.start:]
    ref, nback, nsame = evt3_reference(np.frombuffer(raw[:len(raw) // 2 * 2], "<u2"))
    assert_events(ev, ref[:, 0], ref[:, 1], ref[:, 2], ref[:, 3], "EVT 3.0 vs plain Python decoder")
    a = Wizard(encoding="EVT3", fpath=str(path)).read()
    assert np.array_equal(a["x"], ev["x"]) and np.array_equal(a["y"], ev["y"]) and np.array_equal(a["p"], ev["p"])
    g = expected(path, time_low_decreases_same_high=9, time_low_decreases=11,
                 events_after_first_time_low_decrease=199475)  # as formats.md counts
    assert nsame == g["time_low_decreases_same_high"] > 0 and nback.max() == g["time_low_decreases"]
    assert np.array_equal(a["t"].astype(np.int64), ref[:, 2] + 4096 * nback)
    assert int((a["t"] - a["t"][0] != ev["t"]).sum()) == g["events_after_first_time_low_decrease"]
    assert np.all(np.diff(ev["t"]) >= 0) and not np.all(np.diff(a["t"]) <= 4096)


def test_evt2_matches_expelliarmus_and_golden(fmt):
    from expelliarmus import Wizard

    path = fmt / "evt2.raw"
    ev, src = decode(path)
    a = Wizard(encoding="EVT2", fpath=str(path)).read()
    assert_events(ev, a["x"], a["y"], a["t"], a["p"], "EVT 2.0 vs expelliarmus")
    assert src.info.sensor_size == (640, 480)
    g = expected(path, first_events=[(35, 443, 913716224, 1), (36, 443, 913716224, 1), (74, 443, 913716224, 1)],
                 word_counts={"cd_off": 335391, "cd_on": 185861, "time_high": 5992})
    assert [tuple(r) for r in absolute(ev[:3], src)] == g["first_events"]
    w = np.frombuffer(path.read_bytes()[src.start:], "<u4") >> 28
    n_off, n_on, n_th = (g["word_counts"][k] for k in ("cd_off", "cd_on", "time_high"))
    assert ((w == 0).sum(), (w == 1).sum(), (w == 8).sum()) == (n_off, n_on, n_th)
    assert (ev["p"] == 0).sum() == n_off and (ev["p"] == 1).sum() == n_on


def test_dat_matches_expelliarmus_and_golden(fmt):
    from expelliarmus import Wizard

    path = fmt / "sample_ncars.dat"
    ev, src = decode(path)
    a = Wizard(encoding="DAT", fpath=str(path)).read()
    assert_events(ev, a["x"], a["y"], a["t"], a["p"], ".dat vs expelliarmus")
    g = expected(path, first_events=[(25, 8, 0, 0), (67, 35, 35, 0), (56, 27, 152, 1)], last_t=99952, events=2009)
    assert [tuple(r) for r in absolute(ev[:3], src)] == g["first_events"]
    assert absolute(ev[-1:], src)[0, 2] == g["last_t"] and src.info.n_items == g["events"]


@pytest.mark.parametrize("name, inventory", [
    ("sample.aedat4", {"IMUS": 59}),
    ("davis346.aedat4", {"FRME": 3, "IMUS": 13, "TRIG": 11}),
])
def test_aedat4_matches_aedat(fmt, name, inventory):
    import aedat

    path = fmt / name
    ev, src = decode(path)
    d = aedat.Decoder(str(path))
    ref = np.concatenate([p["events"] for p in d if p["stream_id"] == 0 and "events" in p])
    assert_events(ev, ref["x"], ref["y"], ref["t"], ref["on"], f"{name} vs aedat 2.3")
    assert src.info.extra["t0_us"] == int(ref["t"][0])
    if name == "sample.aedat4":  # the fixture that stands in for it has fewer IMU packets
        inventory = {"IMUS": expected(path, imu_packets=59)["imu_packets"]}
    assert src.info.extra["skipped_packets"] == inventory  # formats.md §5 packet inventory
    assert src.info.n_items == len(ref)  # from the file data table
    w, h = src.info.sensor_size
    assert ev["x"].max() < w and ev["y"].max() < h


def test_nmnist_bin_matches_tonic_and_golden(fmt):
    import tonic.io

    path = fmt / "sample_nmnist.bin"
    ev, src = decode(path)
    a = tonic.io.read_mnist_file(str(path), dtype=tonic.io.events_struct)
    assert_events(ev, a["x"], a["y"], a["t"], a["p"], "N-MNIST .bin vs tonic")
    g = expected(path, first_events=[(7, 15, 654, 1), (19, 18, 2999, 0), (21, 17, 3017, 0)], last_t=311175,
                 max_x=33, max_y=33, events=4325)
    assert [tuple(r) for r in absolute(ev[:3], src)] == g["first_events"]
    assert absolute(ev[-1:], src)[0, 2] == g["last_t"]
    assert ev["x"].max() == g["max_x"] and ev["y"].max() == g["max_y"] and len(ev) == g["events"]


def test_bs2_all_files_match_tonic(datasets):
    """All 1,100 SLAYER .bs2 files of nmnist-small (the 100 test samples included) against tonic's
    N-MNIST reader (on the fixture set, all the .bs2 files it has)."""
    import tonic.io

    root = need_file(datasets, NMNIST)
    files = sorted(root.glob("*.bs2"), key=lambda p: int(p.stem))
    tests = [int(line.split()[0]) for line in (root / "test100.txt").read_text().splitlines()[1:] if line.strip()]
    g = expected(root, test_samples=100, bs2_files=1100)
    assert len(tests) == g["test_samples"] and all((root / f"{i}.bs2").exists() for i in tests)
    assert len(files) >= g["bs2_files"]
    for path in files:
        ev, src = decode(path)
        a = tonic.io.read_mnist_file(str(path), dtype=tonic.io.events_struct)
        assert_events(ev, a["x"], a["y"], a["t"], a["p"], path.name)
        assert src.stats.repaired == src.stats.dropped == 0


def test_aedat2_davis_derived_matches_source_and_tonic(derived):
    import tonic.io

    davis = derived["davis"]
    ev, src = decode(derived["aedat2"])
    assert_events(ev, davis["x"], davis["y"], davis["t"], davis["on"], "AEDAT 2.0 DAVIS (derived) vs its source")
    assert src.info.sensor_size == (346, 260) and src.info.extra["layout"] == "davis"
    assert src.stats.repaired == src.stats.dropped == 0  # the u32 wrap is not damage
    # tonic's DAVIS346 reader flips x and y and does not unwrap time: compare with flip_x
    ev2, _ = decode(derived["aedat2"], flip_x=True)
    shape, start, a = tonic.io.read_davis_346(str(derived["aedat2"]))
    t_raw = (davis["t"].astype(np.int64) - int(davis["t"][0]) + derived["aedat2_t0"]) % 2 ** 32
    assert np.array_equal(a["t"].astype(np.int64), t_raw)
    assert_events(ev2, a["x"], a["y"], davis["t"], a["p"], "AEDAT 2.0 DAVIS vs tonic.read_davis_346")
    # IMU and APS words are skipped and counted, the events are the same
    ev3, src3 = decode(derived["aedat2_imu"])
    assert_events(ev3, davis["x"], davis["y"], davis["t"], davis["on"], "AEDAT 2.0 DAVIS with IMU/APS words")
    assert src3.info.extra["imu_words"] == derived["n_imu"] > 0
    assert src3.info.extra["aps_words"] == derived["n_aps"] > 0


def test_aedat2_dvs128_layouts_and_aedat1(derived):

    nm = derived["nmnist"]
    ev, src = decode(derived["dvs128"])
    assert_events(ev, nm["x"], nm["y"], nm["t"], nm["p"], "AEDAT 2.0 DVS128 (iniVation layout)")
    assert src.info.sensor_size == (128, 128)
    # tonic's DVS128 reading (x, y swapped relative to the iniVation document; no y flip)
    a = tonic_aer(derived["dvs128_tonic"], "dvs128")
    ev2, _ = decode(derived["dvs128_tonic"], layout="dvs128-tonic", flip_y=False)
    assert_events(ev2, a["x"], a["y"], a["t"], a["p"], "AEDAT 2.0 DVS128 vs tonic.read_dvs_128")
    assert_events(ev2, nm["x"], 127 - nm["y"].astype(np.int64), nm["t"], nm["p"], "tonic layout vs source")
    ev3, src3 = decode(derived["aedat1"])
    assert src3.info.extra["version"] == "1.0"
    assert_events(ev3, nm["x"], nm["y"], nm["t"], nm["p"], "AEDAT 1.0 DVS128")


def test_aedat31_derived_matches_tonic_and_source(derived):

    davis = derived["davis"]
    ev, src = decode(derived["aedat31_tonic"])
    assert_events(ev, davis["x"], davis["y"], davis["t"], davis["on"], "AEDAT 3.1 (derived) vs its source")
    a = tonic_aer(derived["aedat31_tonic"], "ibm")
    assert_events(ev, a["x"], a["y"], a["t"], a["p"], "AEDAT 3.1 vs tonic.read_dvs_ibm")
    # overflow counter, TIMESTAMP_RESET, an IMU6 packet, invalid events, spare capacity
    small = derived["aedat31_src"]
    ev2, src2 = decode(derived["aedat31"])
    assert_events(ev2, small["x"], small["y"], small["t"], small["on"], "AEDAT 3.1 with extras vs source")
    assert src2.info.extra["timestamp_resets"] == 1
    assert src2.info.extra["skipped_packets"] == {"imu6": 1, "special": 1}
    assert src2.stats.repaired == src2.stats.dropped == 0


def test_evt21_derived_both_word_orders(derived):
    e2 = derived["evt2_src"]
    for key, order in (("evt21", "u64"), ("evt21_legacy", "legacy")):
        ev, src = decode(derived[key])
        assert src.info.format == "evt21" and src.info.extra["evt21_order"] == order
        assert src.info.sensor_size == (640, 480)
        assert_events(ev, e2["x"], e2["y"], e2["t"], e2["p"], f"EVT 2.1 ({order}) vs the EVT 2.0 events it encodes")
    # no header at all: encoding given, word order detected from the data, size given
    ev, src = decode(derived["evt21_bare"], format="evt21", sensor_size="640x480")
    assert src.info.extra["evt21_order"] == "legacy"
    assert_events(ev, e2["x"], e2["y"], e2["t"], e2["p"], "headerless EVT 2.1")


def test_raw_without_header_lines(fmt, tmp_path):
    """A RAW file with no '%' lines at all: --format and sensor_size from the caller; without a size
    the reader still decodes (no sensor limit) and says the size is unknown."""
    import evt3

    path = fmt / "evt3_sample.raw"
    with open_source(str(path)) as s:
        start = s.start
    bare = tmp_path / "bare.raw"
    bare.write_bytes(path.read_bytes()[start:])
    with pytest.raises(FormatError, match="pass --format"):
        open_source(str(bare))
    e = evt3.decode_file(str(path))
    ev, src = decode(bare, format="evt3", sensor_size=(1280, 720))
    assert_events(ev, e.x, e.y, e.timestamp, e.polarity, "headerless EVT 3.0")
    ev2, src2 = decode(bare, format="evt3")
    assert src2.info.sensor_size is None and len(ev2) == len(e)
    # a modern header with format/geometry lines
    modern = tmp_path / "modern.raw"
    modern.write_bytes(b"% evt 3.0\n% format EVT3;height=720;width=1280\n% geometry 1280x720\n% end\n"
                       + path.read_bytes()[start:])
    ev3, src3 = decode(modern)
    assert src3.info.sensor_size == (1280, 720) and src3.info.extra["sensor_size_from"] == "format"
    assert_events(ev3, e.x, e.y, e.timestamp, e.polarity, "EVT 3.0 with a modern header")


def test_npy_roundtrip_and_field_orders(fmt, tmp_path):
    ev, src = decode(fmt / "evt2.raw", chunk_events=100_000)
    # the writer streams chunks (a generator) and fixes the header's shape at the end
    with open_source(str(fmt / "evt2.raw"), chunk_events=100_000) as s:
        n = write_events_npy(tmp_path / "out.npy", s.chunks())
    assert n == len(ev) and not (tmp_path / "out.npy.part").exists()
    back = np.load(tmp_path / "out.npy", allow_pickle=False)
    assert back.dtype == EVENT_DTYPE and np.array_equal(back, ev)
    ev2, src2 = decode(tmp_path / "out.npy")
    assert detect_format(str(tmp_path / "out.npy")).name == "npy"
    assert np.array_equal(ev2, ev) and src2.info.n_items == len(ev)
    with open_source(str(tmp_path / "out.npy")) as s:
        assert isinstance(s.mm, np.memmap)  # memory-mapped, read chunk by chunk
    # other libraries' layouts (formats.md §1): any field order and width, p as bool or ±1
    layouts = {
        "tonic_dvsgesture": [("x", "<i2"), ("y", "<i2"), ("p", "?"), ("t", "<i8")],
        "cifar10dvs": [("t", "<u8"), ("x", "<u2"), ("y", "<u2"), ("p", "?")],
        "expelliarmus": [("t", "<i8"), ("x", "<i2"), ("y", "<i2"), ("p", "u1")],
        "signed_pol": [("ts", "<f8"), ("x", "<i4"), ("y", "<i4"), ("polarity", "<i1")],
    }
    for name, dt in layouts.items():
        a = np.zeros(len(ev), dt)
        tname = "ts" if name == "signed_pol" else "t"
        pname = "polarity" if name == "signed_pol" else "p"
        a["x"], a["y"], a[tname] = ev["x"], ev["y"], ev["t"] + 1000
        a[pname] = np.where(ev["p"] == 1, 1, -1) if name == "signed_pol" else ev["p"]
        np.save(tmp_path / f"{name}.npy", a)
        got, s3 = decode(tmp_path / f"{name}.npy", sensor_size="640x480")
        assert np.array_equal(got, ev), name
    # objects are never unpickled
    np.save(tmp_path / "obj.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(FormatError, match="objects"):
        open_source(str(tmp_path / "obj.npy"), format="npy")


@pytest.mark.parametrize("codec", ["zstd", "none"])
def test_aedat4_zstd_and_uncompressed(fmt, tmp_path, codec):
    """The real recordings re-packed with zstd (or no compression) decode like aedat reads them."""
    for name in ("sample.aedat4", "davis346.aedat4"):
        p = _rewrite_aedat4(fmt / name, tmp_path / f"{codec}_{name}", lambda k, e: None, codec)
        ev, src = decode(p)
        ref = aedat4_events(p)
        assert src.info.extra["compression"] == codec
        assert_events(ev, ref["x"], ref["y"], ref["t"], ref["on"], f"{name} ({codec}) vs aedat")
        assert src.stats.repaired == src.stats.dropped == 0


def test_chunks_bounded_in_events_and_time(fmt):
    ev_all, _ = decode(fmt / "sample.aedat4")
    with open_source(str(fmt / "sample.aedat4"), chunk_events=30000, chunk_us=20000) as s:
        chunks = list(s.chunks())
    assert np.array_equal(np.concatenate([c.events for c in chunks]), ev_all)
    for a, b in zip(chunks[:-1], chunks[1:]):
        assert int(a.events["t"][-1]) - int(a.events["t"][0]) <= 20000 and len(a) <= 30000 + 4096
        assert a.t_end <= b.events["t"][0]  # no event earlier than t_end follows
    assert len(chunks) >= ev_all["t"][-1] // 20000
