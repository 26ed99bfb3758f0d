"""IMU file readers (CSV / sp-sw-har, WISDM raw lines, UEA .ts) against independent parsing of the same
real recordings: numpy.loadtxt and the csv module on the whole (small) file, a plain-Python .ts
parser. Chunked reading equals whole-file reading, and memory stays constant on a 10x longer
recording. Damaged files are in test_imu_damage.py."""

from __future__ import annotations

import csv
import gc
import tracemalloc

import numpy as np
import pytest

from edgebrain.errors import FormatError, InputError
from edgebrain.stream import Samples, detect_format, open_source
from edgebrain.stream.sources.imu import SPSWHAR_LABELS, WISDM_ACTIVITIES, write_csv
from tests.conftest import IMU_CSV, need

SPSWHAR_FILES = [IMU_CSV, "imu/sp-sw-har/s03/s03_04_sw.csv", "imu/sp-sw-har/s12/s12_06_sw.csv"]
BASICMOTIONS = ["imu/basicmotions/BasicMotions_TRAIN.ts", "imu/basicmotions/BasicMotions_TEST.ts"]


def read_all(src):
    """Concatenate a source's chunks: t, values, labels, number of chunks."""
    ch = list(src.chunks())
    assert all(isinstance(c, Samples) for c in ch)
    t = np.concatenate([c.t for c in ch])
    v = np.concatenate([c.values for c in ch])
    lab = None if ch[0].labels is None else np.concatenate([c.labels for c in ch])
    return t, v, lab, len(ch)


def reference_spswhar(path):
    """Independent reading: numpy.loadtxt for the numbers, the csv module for the labels."""
    a = np.loadtxt(path, delimiter=",", skiprows=1, usecols=range(7), dtype=np.float64)
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["x_acc", "y_acc", "z_acc", "x_gyro", "y_gyro", "z_gyro", "timestamp", "label"]
    labels = [r[7] for r in rows[1:]]
    return a[:, :6].astype(np.float32), (a[:, 6] - a[0, 6]) / 1000.0, labels


# ---------------------------------------------------------------------- sp-sw-har CSV


@pytest.mark.parametrize("rel", SPSWHAR_FILES)
def test_spswhar_equals_loadtxt(datasets, rel):
    path = need(datasets / rel)
    assert detect_format(str(path)).name == "csv"
    ref_v, ref_t, ref_l = reference_spswhar(path)
    src = open_source(str(path))
    info = src.info
    assert (info.format, info.kind, info.rate, info.channels) == ("csv", "samples", 100.0, 6)
    assert info.channel_names == ["x_acc", "y_acc", "z_acc", "x_gyro", "y_gyro", "z_gyro"]
    assert info.label_names == SPSWHAR_LABELS
    assert info.extra["layout"] == "sp-sw-har" and info.extra["time_unit"] == "ms"
    assert info.n_items == len(ref_v)
    t, v, lab, _ = read_all(src)
    assert v.dtype == np.float32 and v.shape == ref_v.shape
    np.testing.assert_array_equal(v, ref_v)
    np.testing.assert_allclose(t, ref_t, rtol=0, atol=1e-9)
    assert list(lab) == ref_l
    assert src.stats.repaired == 0 and src.stats.dropped == 0, src.stats.messages


def test_chunked_reading_equals_whole_file(datasets):
    path = str(need(datasets / IMU_CSV))
    whole = read_all(open_source(path, block=1 << 24))
    small = read_all(open_source(path, block=700))      # about 5 lines per block
    assert whole[3] <= 2 and small[3] > 200     # (the last row waits for the end: timestamp look-ahead)
    for a, b in zip(whole[:3], small[:3]):
        np.testing.assert_array_equal(a, b)


def _concatenated(src_path, dst_path, times: int) -> int:
    """``times`` copies of a recording one after the other, with continuous timestamps."""
    a = np.loadtxt(src_path, delimiter=",", skiprows=1, usecols=6, dtype=np.int64)
    span = int(a[-1] - a[0]) + 10
    with open(src_path, "rb") as f:
        lines = f.read().rstrip(b"\n").split(b"\n")
    with open(dst_path, "wb") as out:
        out.write(lines[0] + b"\n")
        for k in range(times):
            for ln in lines[1:]:
                fld = ln.split(b",")
                fld[6] = b"%d" % (int(fld[6]) + k * span)
                out.write(b",".join(fld) + b"\n")
    return times * (len(lines) - 1)


def _peak_while_streaming(path) -> tuple[int, int]:
    gc.collect()
    tracemalloc.start()
    try:
        n = 0
        src = open_source(str(path))
        for ch in src.chunks():
            n += len(ch)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak, n


def test_memory_constant_in_file_length(datasets, tmp_path):
    src = need(datasets / IMU_CSV)
    one, ten = tmp_path / "x1.csv", tmp_path / "x10.csv"
    n1 = _concatenated(src, one, 1)
    n10 = _concatenated(src, ten, 10)
    _peak_while_streaming(one)          # warm up: imports and first-call allocations are not the reader's
    p1, got1 = _peak_while_streaming(one)
    p10, got10 = _peak_while_streaming(ten)
    assert (got1, got10) == (n1, n10)
    assert ten.stat().st_size > 9 * one.stat().st_size
    # the 10x file must not need more memory than the 1x one (beyond allocator noise)
    assert p10 < 1.25 * p1 + 64 * 1024, f"peak {p1} B for 1x, {p10} B for 10x"
    assert p10 < 4 * 1024 * 1024, f"peak {p10} B"


def test_generic_csv_layouts(datasets, tmp_path):
    """The same real samples written as other CSV dialects: header names with a time column in s / µs /
    ns, tab- and semicolon-separated, headerless with columns by number, rate given."""
    path = need(datasets / IMU_CSV)
    ref_v, ref_t, ref_l = reference_spswhar(path)
    with open(path, newline="") as f:
        rows = list(csv.reader(f))[1:]
    ts_ms = np.array([int(r[6]) for r in rows])
    variants = {
        "sec.csv": (["ax", "ay", "az", "gx", "gy", "gz", "time", "activity"], ",",
                    [f"{(x - ts_ms[0]) / 1000:.3f}" for x in ts_ms], {}),
        "us.tsv": (["ax", "ay", "az", "gx", "gy", "gz", "timestamp_us", "label"], "\t",
                   [str(x * 1000) for x in ts_ms], {"delimiter": "tab"}),
        "ns.csv": (["ax", "ay", "az", "gx", "gy", "gz", "ts", "label"], ";", [str(x * 1000000) for x in ts_ms], {}),
    }
    for name, (header, sep, times, opts) in variants.items():
        p = tmp_path / name
        with open(p, "w") as f:
            f.write(sep.join(header) + "\n")
            for r, tm in zip(rows, times):
                f.write(sep.join(r[:6] + [tm, r[7]]) + "\n")
        src = open_source(str(p), format="csv", **opts)
        assert src.info.rate == 100.0, name
        assert src.info.channel_names == header[:6]
        t, v, lab, _ = read_all(src)
        np.testing.assert_array_equal(v, ref_v)
        np.testing.assert_allclose(t, ref_t, atol=1e-6)
        assert list(lab) == ref_l

    # headerless, channels chosen and reordered by number, no time column: rate needed
    p = tmp_path / "nohdr.csv"
    with open(p, "w") as f:
        f.writelines(",".join(r) + "\n" for r in rows)
    with pytest.raises(FormatError, match="line 1: expected a header line"):
        open_source(str(p))
    with pytest.raises(InputError, match="no time column and no rate"):
        open_source(str(p), columns=[3, 4, 5], time="none", label=7)
    src = open_source(str(p), columns=[5, 0], time="none", label="none", rate=100)
    t, v, lab, _ = read_all(src)
    np.testing.assert_array_equal(v, ref_v[:, [5, 0]])
    np.testing.assert_allclose(t, np.arange(len(rows)) / 100.0)
    assert lab is None
    src = open_source(str(p), columns=[0, 1, 2], time=6, label=7)
    t, v, lab, _ = read_all(src)
    assert src.info.rate == 100.0 and src.info.extra["time_unit"] == "ms"
    np.testing.assert_array_equal(v, ref_v[:, :3])
    # columns by name, and clear errors for names that are not there
    src = open_source(str(path), columns=["z_gyro", "x_acc"])
    np.testing.assert_array_equal(read_all(src)[1], ref_v[:, [5, 0]])
    with pytest.raises(InputError, match="no channel column 'q_acc'"):
        open_source(str(path), columns=["q_acc"])
    with pytest.raises(InputError, match="unknown option"):
        open_source(str(path), colums=["x_acc"])


def test_write_csv_round_trip(datasets, tmp_path):
    path = str(need(datasets / IMU_CSV))
    src = open_source(path)
    out = tmp_path / "rec.csv"
    n = write_csv(out, src.chunks(), src.info.channel_names, src.info.rate)
    ref_v, ref_t, ref_l = reference_spswhar(path)
    assert n == len(ref_v)
    assert detect_format(str(out)).name == "csv"
    back = open_source(str(out))
    assert back.info.rate == 100.0 and back.info.channel_names == src.info.channel_names
    assert back.info.extra["time_unit"] == "s"
    t, v, lab, _ = read_all(back)
    np.testing.assert_array_equal(v, ref_v)        # 9 significant digits: float32 round trip
    np.testing.assert_allclose(t, ref_t, atol=1e-6)
    assert list(lab) == ref_l
    assert back.stats.repaired == 0


# ---------------------------------------------------------------------- UEA .ts


def reference_ts(path):
    """A plain-Python .ts parser: the header's class labels, then per case the dimensions and label."""
    classes, cases = None, []
    with open(path) as f:
        in_data = False
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if not in_data:
                if line.lower().startswith("@classlabel"):
                    classes = line.split()[2:]
                in_data = line.lower() == "@data"
                continue
            *dims, label = line.split(":")
            cases.append((np.array([[float(x) for x in d.split(",")] for d in dims]).T, label))
    return classes, cases


@pytest.mark.parametrize("rel", BASICMOTIONS)
def test_uea_ts_equals_plain_parser(datasets, rel):
    path = str(need(datasets / rel))
    classes, cases = reference_ts(path)
    assert detect_format(path).name == "uea_ts"
    src = open_source(path)
    info = src.info
    assert info.label_names == classes == ["Standing", "Running", "Walking", "Badminton"]
    assert info.extra["n_cases"] == len(cases) == 40 and info.extra["series_length"] == 100
    assert info.channels == 6 and info.rate == 10.0 and info.n_items == 4000
    t, v, lab, _ = read_all(src)
    np.testing.assert_array_equal(v, np.concatenate([c[0] for c in cases]).astype(np.float32))
    assert list(lab) == [c[1] for c in cases for _ in range(len(c[0]))]
    np.testing.assert_allclose(t, np.arange(4000) / 10.0)
    assert src.stats.repaired == 0
    # chunked: a block of 2 kB holds less than half a case
    t2, v2, lab2, n = read_all(open_source(path, block=2048, rate=50))
    assert n > 30
    np.testing.assert_array_equal(v2, v)
    assert list(lab2) == list(lab)
    np.testing.assert_allclose(t2, np.arange(4000) / 50.0)


# ---------------------------------------------------------------------- WISDM raw lines


WISDM_CODE = {"SEATED": "D", "STANDING_UP": "E", "WALKING": "A", "TURNING": "M", "SITTING_DOWN": "C"}


def make_wisdm(src_csv, dst, with_timestamp: bool, subject=1600, n=None):
    """Real accelerometer samples (text as printed) in WISDM raw lines."""
    with open(src_csv, newline="") as f:
        rows = list(csv.reader(f))[1:n and n + 1]
    with open(dst, "w") as f:
        for k, r in enumerate(rows):
            ts = [str(90426708196641 + 50_000_000 * k)] if with_timestamp else []
            f.write(",".join([str(subject), WISDM_CODE[r[7]]] + ts + r[:3]) + ";\n")
    return rows


@pytest.mark.parametrize("with_ts", [True, False])
def test_wisdm_equals_csv_module(datasets, tmp_path, with_ts):
    path = tmp_path / "data_1600_accel_watch.txt"
    make_wisdm(need(datasets / IMU_CSV), path, with_ts)
    # independent reading: csv module, trailing ';' stripped
    with open(path, newline="") as f:
        ref = [r for r in csv.reader(line.rstrip().rstrip(";") for line in f)]
    ref_v = np.array([[float(x) for x in r[-3:]] for r in ref], np.float32)
    ref_l = [r[1] for r in ref]
    assert detect_format(str(path)).name == "wisdm"
    src = open_source(str(path))
    info = src.info
    assert info.rate == 20.0 and info.channels == 3
    assert info.channel_names == ["accel_x", "accel_y", "accel_z"]
    assert info.extra["subject"] == "1600" and info.extra["sensor"] == "accel" and info.extra["device"] == "watch"
    assert info.extra["variant"].startswith("6" if with_ts else "5")
    assert info.extra["activities"]["A"] == "walking" and "N" not in info.extra["activities"]
    t, v, lab, _ = read_all(src)
    np.testing.assert_array_equal(v, ref_v)
    assert list(lab) == ref_l
    np.testing.assert_allclose(t, np.arange(len(ref)) / 20.0)
    assert src.stats.repaired == 0
    # names instead of codes, another rate, small blocks
    t, v2, lab, n = read_all(open_source(str(path), labels="name", rate=25, block=512))
    assert n > 50
    np.testing.assert_array_equal(v2, ref_v)
    assert list(lab) == [WISDM_ACTIVITIES[c] for c in ref_l]
    np.testing.assert_allclose(t, np.arange(len(ref)) / 25.0)


# ---------------------------------------------------------------------- rate= against the timestamps (issue 11, item 5)


def test_rate_must_agree_with_the_timestamps(datasets, tmp_path):
    """A rate given beside a time column is checked against the timestamps' median spacing (10 ms in
    sp-sw-har, Unix milliseconds): within 5 % it is accepted; beyond, the error states both. rate=0.001
    used to read the milliseconds as seconds (a 10-s recording became 2.9 hours of stream)."""
    path = str(need(datasets / IMU_CSV))
    for ok in (100, 95.5, 104.9):
        with open_source(path, rate=ok) as src:
            assert src.info.rate == ok and src.info.extra["time_unit"] == "ms"
            t, v, _, _ = read_all(src)
            assert t[-1] < 60  # the recording's own duration, whatever the rate
    for bad, shown in ((0.001, "0.1 Hz"), (106, "100 Hz"), (94, "100 Hz"), (1000, "100 Hz")):
        with pytest.raises(InputError, match=rf"rate={bad:g} Hz contradicts the time column 'timestamp'.*"
                                             rf"{shown}.*within 5%"):
            open_source(path, rate=bad)
    # relative seconds with a nominal rate: the same rule; an explicit time_unit is checked too
    p = tmp_path / "rel.csv"
    p.write_text("t,a\n" + "".join(f"{0.02 * i:.2f},{i}\n" for i in range(100)))
    with open_source(str(p), rate=50) as src:
        assert src.info.rate == 50
    with pytest.raises(InputError, match=r"rate=5 Hz contradicts .*0.02 s, i.e. 50 Hz"):
        open_source(str(p), rate=5)
    q = tmp_path / "ms.csv"
    q.write_text("t,a\n" + "".join(f"{20 * i},{i}\n" for i in range(100)))
    with pytest.raises(InputError, match=r"20 ms, i.e. 50 Hz"):
        open_source(str(q), rate=100, time_unit="ms")
    # no time column: the rate alone decides
    with open_source(str(p), rate=5, time="none") as src:
        assert src.info.rate == 5


@pytest.mark.parametrize("rate", [0, -5, float("inf"), float("nan"), "fast", True])
@pytest.mark.parametrize("fmt", ["csv", "wisdm", "uea_ts"])
def test_rate_option_must_be_positive_and_finite(datasets, tmp_path, rate, fmt):
    p = tmp_path / "x.csv"
    p.write_text("a,b\n" + "".join(f"{i},{i}\n" for i in range(20)))
    files = {"csv": str(p), "wisdm": str(tmp_path / "w.txt"), "uea_ts": str(need(datasets / BASICMOTIONS[1]))}
    (tmp_path / "w.txt").write_text("".join(f"1,A,{i},0.1,0.2,0.3;\n" for i in range(20)))
    with pytest.raises(InputError, match="rate=.*expected a finite number of samples per second > 0"):
        open_source(files[fmt], format=fmt, rate=rate)
