"""Damaged IMU files built from real recordings: truncated, bit-flipped, padded with garbage, NaN and
out-of-range values, timestamps going backwards, gaps; structural damage. Each case must give a
FormatError naming the file, the line and what was expected, or counted repairs with every valid
sample around the damage kept (checked against the undamaged file)."""

from __future__ import annotations

import numpy as np
import pytest

from edgebrain.errors import FormatError
from edgebrain.stream import open_source
from tests.conftest import IMU_CSV, need
from tests.stream.sources.test_imu import make_wisdm, read_all, reference_spswhar


@pytest.fixture(scope="module")
def real(datasets):
    """(path, raw bytes, lines, reference values, times, labels) of the real sp-sw-har file."""
    path = need(datasets / IMU_CSV)
    raw = path.read_bytes()
    v, t, lab = reference_spswhar(path)
    return path, raw, raw.rstrip(b"\n").split(b"\n"), v, t, lab


def write(tmp_path, name, data: bytes) -> str:
    p = tmp_path / name
    p.write_bytes(data)
    return str(p)


def rows_of(v):
    return [tuple(r) for r in np.asarray(v, np.float32).tolist()]


# ---------------------------------------------------------------------- truncated


def test_truncated_mid_line(real, tmp_path):
    path, raw, lines, ref_v, ref_t, ref_l = real
    rng = np.random.default_rng(3)
    cuts = sorted(rng.integers(len(lines[0]) + 200, len(raw) - 10, 12).tolist())
    # and cuts inside the last field of a line (the label) and right after a newline
    nl = raw.index(b"\n", 50000)
    cuts += [nl - 3, nl + 1]
    for cut in cuts:
        data = raw[:cut]
        complete = data.count(b"\n") - 1             # full data lines
        partial = not data.endswith(b"\n")
        src = open_source(write(tmp_path, "cut.csv", data))
        t, v, lab, _ = read_all(src)
        np.testing.assert_array_equal(v[:complete], ref_v[:complete])
        np.testing.assert_allclose(t[:complete], ref_t[:complete], atol=1e-9)
        assert list(lab[:complete]) == ref_l[:complete]
        # the partial last line is either skipped (counted) or, cut inside its label, kept with its
        # values and the previous label (counted)
        assert len(v) in (complete, complete + 1)
        assert src.stats.repaired == int(partial), (cut, src.stats.messages)
        if len(v) == complete + 1:
            np.testing.assert_array_equal(v[-1], ref_v[complete])
            assert lab[-1] == ref_l[complete - 1] and "unknown label" in src.stats.messages[0]


# ---------------------------------------------------------------------- bit flips


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bit_flips(real, tmp_path, seed):
    path, raw, lines, ref_v, ref_t, ref_l = real
    rng = np.random.default_rng(seed)
    data = bytearray(raw)
    body = len(lines[0]) + 1
    for i in rng.integers(body, len(raw), 40):
        data[i] ^= 1 << int(rng.integers(0, 8))
    dlines = bytes(data).rstrip(b"\n").split(b"\n")
    src = open_source(write(tmp_path, "flip.csv", bytes(data)))
    t, v, lab, _ = read_all(src)
    assert src.stats.repaired > 0
    assert np.all(np.diff(t) >= 0), "stream time must not go backwards"
    assert np.isfinite(v).all() and np.abs(v).max() <= 160
    # every line that the flips did not touch is a sample of the output, in order
    if len(dlines) == len(lines):                 # (a flipped newline merges or splits lines)
        intact = [i - 1 for i in range(1, len(lines)) if dlines[i] == lines[i]]
        out = rows_of(v)
        pos = 0
        for i in intact:
            want = tuple(ref_v[i].tolist())
            while pos < len(out) and out[pos] != want:
                pos += 1
            assert pos < len(out), f"intact line {i + 2} missing from the output"
        assert len(v) >= len(intact)
    else:
        assert len(v) >= len(lines) - 1 - 45


# ---------------------------------------------------------------------- garbage


def test_padded_with_garbage(real, tmp_path):
    path, raw, lines, ref_v, ref_t, ref_l = real
    rng = np.random.default_rng(5)
    junk = rng.bytes(20000)
    middle = b"\n".join(lines[:700]) + b"\n" + rng.bytes(6000) + b"\n" + b"\n".join(lines[700:]) + b"\n"
    for name, data in {"tail.csv": raw + junk, "middle.csv": middle,
                       "text.csv": raw + b"this is not,a sample\n" * 50 + b"\xff\xfe\x00garbage\n"}.items():
        src = open_source(write(tmp_path, name, data))
        t, v, lab, _ = read_all(src)
        np.testing.assert_array_equal(v, ref_v)
        np.testing.assert_allclose(t, ref_t, atol=1e-9)
        assert list(lab) == ref_l
        assert src.stats.repaired > 0 and src.stats.messages, name
        assert all(str(src.info.path) in m for m in src.stats.messages if "further" not in m)


def test_overlong_line_is_bounded(real, tmp_path):
    path, raw, lines, ref_v, ref_t, ref_l = real
    data = b"\n".join(lines[:500]) + b"\n" + b"7" * 300000 + b"\n" + b"\n".join(lines[500:]) + b"\n"
    src = open_source(write(tmp_path, "long.csv", data), max_line=4096)
    t, v, lab, _ = read_all(src)
    np.testing.assert_array_equal(v, ref_v)
    assert src.stats.repaired == 1 and "longer than 4096 bytes" in src.stats.messages[0]
    assert "line 501" in src.stats.messages[0]


# ---------------------------------------------------------------------- invalid values


def _with_values(lines, edits):
    out = list(lines)
    for i, (col, val) in edits.items():
        f = out[i].split(b",")
        f[col] = val
        out[i] = b",".join(f)
    return b"\n".join(out) + b"\n"


def test_nan_and_out_of_range_values(real, tmp_path):
    path, raw, lines, ref_v, ref_t, ref_l = real
    edits = {101: (0, b"nan"), 102: (0, b"NaN"), 250: (3, b"inf"), 400: (2, b"1e9"), 401: (5, b"-4e3"),
             800: (1, b"12..5")}
    damaged = sorted(i - 1 for i in edits)           # sample indices
    p = write(tmp_path, "nan.csv", _with_values(lines, edits))
    good = np.setdiff1d(np.arange(len(ref_v)), damaged)

    src = open_source(p)                              # skip (default)
    t, v, lab, _ = read_all(src)
    np.testing.assert_array_equal(v, ref_v[good])
    np.testing.assert_allclose(t, ref_t[good], atol=1e-9)
    assert src.stats.repaired == len(edits)
    assert any("lines 102-103: 2 samples with invalid values" in m and "skipped" in m for m in src.stats.messages)

    # hold: the damaged channel takes the last valid value of that channel; the others are kept
    src = open_source(p, repair="hold")
    t, v, lab, _ = read_all(src)
    want = ref_v.copy()
    for i, (col, _) in sorted(edits.items()):
        c = col if col < 6 else None
        want[i - 1, c] = want[i - 2, c]
    np.testing.assert_array_equal(v, want)
    np.testing.assert_allclose(t, ref_t, atol=1e-9)
    assert src.stats.repaired == len(edits)

    # interp: linear in time between the valid values around it
    src = open_source(p, repair="interp", block=1024)      # across blocks, too
    t, v, lab, _ = read_all(src)
    want = ref_v.astype(np.float64)
    for c in range(6):
        bad = [i - 1 for i, (col, _) in edits.items() if col == c]
        if bad:
            ok = np.setdiff1d(np.arange(len(ref_v)), bad)
            want[bad, c] = np.interp(ref_t[bad], ref_t[ok], ref_v[ok, c])
    np.testing.assert_allclose(v, want.astype(np.float32), rtol=1e-6)
    assert src.stats.repaired == len(edits)

    # a narrower valid range given as an option
    src = open_source(str(path), valid=[-12, 12])
    t, v, lab, _ = read_all(src)
    inside = np.all(np.abs(ref_v) <= 12, axis=1)
    np.testing.assert_array_equal(v, ref_v[inside])
    assert src.stats.repaired == int((~inside).sum()) > 0


# ---------------------------------------------------------------------- timestamps


def test_timestamp_going_back_once(real, tmp_path):
    path, raw, lines, ref_v, ref_t, ref_l = real
    edits = {300: (6, b"%d" % (int(lines[300].split(b",")[6]) - 5000)),   # one line 5 s in the past
             900: (6, b"%d" % (int(lines[900].split(b",")[6]) + 40))}      # one line 40 ms late
    p = write(tmp_path, "ts.csv", _with_values(lines, edits))
    src = open_source(p)
    t, v, lab, _ = read_all(src)
    good = np.setdiff1d(np.arange(len(ref_v)), [299, 899])
    np.testing.assert_array_equal(v, ref_v[good])
    np.testing.assert_allclose(t, ref_t[good], atol=1e-9)
    assert src.stats.repaired == 2 and all("out of sequence" in m for m in src.stats.messages)
    src = open_source(p, repair="interp")
    t, v, lab, _ = read_all(src)
    np.testing.assert_array_equal(v, ref_v)                       # the values were fine: all kept
    want = ref_t.copy()
    for i in (299, 899):
        want[i] = 0.5 * (ref_t[i - 1] + ref_t[i + 1])
    np.testing.assert_allclose(t, want, atol=1e-9)


def test_clock_steps_back_and_stays(real, tmp_path):
    path, raw, lines, ref_v, ref_t, ref_l = real
    out = list(lines)
    for i in range(600, len(lines)):                              # from line 601 on: 2 s earlier
        f = out[i].split(b",")
        f[6] = b"%d" % (int(f[6]) - 2000)
        out[i] = b",".join(f)
    src = open_source(write(tmp_path, "back.csv", b"\n".join(out) + b"\n"))
    t, v, lab, _ = read_all(src)
    np.testing.assert_array_equal(v, ref_v)                       # every sample kept
    assert np.all(np.diff(t) >= 0)
    assert src.stats.repaired == 1 and "go back by 1.99" in src.stats.messages[0]
    np.testing.assert_allclose(t[599] - t[598], 0.01, atol=1e-9)  # one period after the previous
    np.testing.assert_allclose(np.diff(t[599:]), np.diff(ref_t[599:]), atol=1e-9)


def test_gap(real, tmp_path):
    path, raw, lines, ref_v, ref_t, ref_l = real
    keep = np.r_[0:400, 450:len(ref_v)]                          # 50 samples (0.5 s) missing
    data = b"\n".join([lines[0]] + [lines[i + 1] for i in keep]) + b"\n"
    p = write(tmp_path, "gap.csv", data)
    src = open_source(p)
    t, v, lab, _ = read_all(src)
    np.testing.assert_array_equal(v, ref_v[keep])
    np.testing.assert_allclose(t, ref_t[keep], atol=1e-9)          # times kept
    assert src.stats.repaired == 1 and "gap of 0.4" in src.stats.messages[0] and "times kept" in src.stats.messages[0]
    for mode in ("hold", "interp"):
        src = open_source(p, repair=mode)
        t, v, lab, _ = read_all(src)
        k = len(v) - len(keep)
        assert 45 <= k <= 52, k
        filled = slice(400, 400 + k)
        assert np.all(np.diff(t) >= 0)
        np.testing.assert_array_equal(v[:400], ref_v[:400])
        np.testing.assert_array_equal(v[400 + k:], ref_v[450:])
        if mode == "hold":
            assert np.all(v[filled] == ref_v[399])
        else:
            want = [np.interp(t[filled], [ref_t[399], ref_t[450]], [ref_v[399, c], ref_v[450, c]]) for c in range(6)]
            np.testing.assert_allclose(v[filled], np.array(want).T, rtol=1e-5, atol=1e-6)
        assert set(lab[filled]) == {ref_l[399]}
        assert src.stats.repaired == k


# ---------------------------------------------------------------------- structural damage: errors


def test_structural_damage_is_a_format_error(real, tmp_path):
    path, raw, lines, ref_v, ref_t, ref_l = real
    import gzip

    cases = {
        "noheader.csv": (b"\n".join(lines[1:]) + b"\n", "line 1: expected a header line naming the columns"),
        "fields.csv": (b"\n".join([lines[0]] + [ln.rsplit(b",", 3)[0] for ln in lines[1:]]) + b"\n",
                       "line 2: expected 8 fields separated by ','"),
        "binary.csv": (gzip.compress(raw), "binary data"),
        "empty.csv": (b"", "empty file"),
        "header.csv": (lines[0] + b"\n", "no data lines after the header"),
        "allbad.csv": (b"\n".join([lines[0]] + [b"nan" + ln[ln.index(b","):] for ln in lines[1:300]]) + b"\n",
                       "no valid sample in the file (299 damaged"),
    }
    for name, (data, msg) in cases.items():
        p = write(tmp_path, name, data)
        with pytest.raises(FormatError) as e:
            src = open_source(p, format="csv")
            read_all(src)
        assert msg in str(e.value), (name, str(e.value))
        assert e.value.file == p
        assert "\n" not in str(e.value)


# ---------------------------------------------------------------------- WISDM and UEA .ts damage


def test_wisdm_damage(real, datasets, tmp_path):
    good = tmp_path / "good.txt"
    rows = make_wisdm(need(datasets / IMU_CSV), good, True)
    lines = good.read_bytes().rstrip(b"\n").split(b"\n")
    ref = np.array([[float(x) for x in r[:3]] for r in rows], np.float32)
    out = list(lines)
    out[10] = out[10][:-1]                                   # no ';': cut short
    out[20] = out[20][: len(out[20]) // 2]                   # half a line
    out[30] = b"1600,A,123,nan,1,2;"                          # NaN
    out.insert(40, b"\x00\xff garbage \x13")                  # garbage line (before sample 40)
    p = write(tmp_path, "bad.txt", b"\n".join(out) + b"\n" + b"1600,A,9042670,7.09")   # truncated at the end
    src = open_source(p)
    t, v, lab, _ = read_all(src)
    dropped = {10, 20, 30}
    keep = [i for i in range(len(rows)) if i not in dropped]
    np.testing.assert_array_equal(v, ref[keep])
    np.testing.assert_allclose(t, np.array(keep) / 20.0)      # a damaged sample keeps its time slot
    assert src.stats.repaired == 5
    with pytest.raises(FormatError, match="expected WISDM lines"):
        open_source(write(tmp_path, "notwisdm.txt", b"\n".join(lines).replace(b";", b"|").replace(b",", b" ")),
                    format="wisdm")


def test_uea_ts_damage(datasets, tmp_path):
    path = need(datasets / "imu/basicmotions/BasicMotions_TEST.ts")
    raw = path.read_bytes()
    lines = raw.rstrip(b"\n").split(b"\n")
    first = next(i for i, ln in enumerate(lines) if ln.strip().lower() == b"@data") + 1
    ref = read_all(open_source(str(path)))
    # truncated inside the last case, a missing value, a damaged label, a case with a dimension short
    out = list(lines)
    d = out[first + 2].split(b":")
    d[0] = b"?," + d[0].split(b",", 1)[1]
    out[first + 2] = b":".join(d)
    out[first + 5] = out[first + 5].rsplit(b":", 1)[0] + b":Stnding"
    d = out[first + 7].split(b":")
    d[3] = d[3].rsplit(b",", 1)[0]
    out[first + 7] = b":".join(d)
    data = b"\n".join(out)
    data = data[: len(data) - 900]
    p = write(tmp_path, "bad.ts", data)
    src = open_source(p)
    t, v, lab, _ = read_all(src)
    # cases 5 and 7 (0-based) and the truncated last one skipped; case 2 loses its first sample
    cases = [k for k in range(40) if k not in (5, 7, 39)]
    want = np.concatenate([ref[1][100 * k:100 * (k + 1)][1 if k == 2 else 0:] for k in cases])
    np.testing.assert_array_equal(v, want)
    assert src.stats.repaired == 4, src.stats.messages
    assert any("unknown class label 'Stnding'" in m for m in src.stats.messages)
    assert any("different lengths" in m for m in src.stats.messages)
    # hold keeps case 2 whole: its first sample of dimension 0 takes the last valid value (end of case 1)
    t, v, lab, _ = read_all(open_source(p, repair="hold"))
    assert len(v) == 37 * 100
    np.testing.assert_array_equal(v[200, 0], ref[1][199, 0])
    np.testing.assert_array_equal(v[200, 1:], ref[1][200, 1:])
    # header damage
    for data, msg in ((raw.replace(b"@data", b"@dota"), "line 14: expected a header tag .* or '@data'"),
                      (raw[:raw.index(b"@data")], "no '@data' line"),
                      (raw.replace(b"@dimensions 6", b"@dimensions six"), "@dimensions needs a whole number"),
                      (raw.replace(b"@timeStamps false", b"@timeStamps true"), "not supported"),
                      (raw.replace(b"@problemName", b"problemName"), "expected a header tag")):
        with pytest.raises(FormatError, match=msg) as e:
            open_source(write(tmp_path, "hdr.ts", data))
        assert "line" in str(e.value) or "@data" in msg


def test_live_repair_policy():
    """The repair policy as the live line source uses it (no waiting): a sample with an invalid value
    is skipped, or with hold gets each channel's last valid value once a whole sample was given out
    (before that it is skipped); every repair is one note."""
    from edgebrain.stream.base import RepairStats
    from edgebrain.stream.sources.imu_repair import Conditioner, Rows, invalid

    nan = np.nan
    vals = np.array([[nan, 1.0], [2.0, nan], [3.0, 4.0], [nan, 5.0], [6.0, 99.0], [7.0, 8.0]])

    def run(repair, blocks):
        stats = RepairStats()
        cond = Conditioner(stats, "tcp://dev:1", 2, 100.0, repair, False, None, None, live=True)
        out = []
        for a, b in blocks:
            v = vals[a:b]
            r = cond.push(Rows(np.zeros(b - a, np.int64), np.zeros(b - a), v, invalid(v, -10, 10), None))
            if r is not None and len(r):
                out.append(r.vals)
        return np.concatenate(out), stats

    v, st = run("skip", [(0, 6)])
    np.testing.assert_array_equal(v, [[3, 4], [7, 8]])
    assert st.repaired == 4 and all(m.endswith("line skipped") for m in st.messages)
    for blocks in ([(0, 6)], [(0, 1), (1, 3), (3, 6)], [(k, k + 1) for k in range(6)]):
        v, st = run("hold", blocks)             # the same however the lines arrive
        np.testing.assert_array_equal(v, [[3, 4], [3, 5], [6, 5], [7, 8]])
        assert st.repaired == 4
        assert sum(m.endswith("line skipped") for m in st.messages) == 2
        assert sum(m.endswith("held at the last valid value") for m in st.messages) == 2
