"""A board that streams its sensor (SENSOR frames, docs/protocol.md) to ``edgebrain record --source
serial://...?format=eb``, over a real pseudo-terminal: the host board program (firmware/host/) replays
int16 counts of a real smartwatch recording through ``eb_device_send_sensor``, and the recorded CSV
holds exactly count × unit at index / rate; damaged frames written onto the link are dropped and
counted, the samples they held are counted as lost, and every intact frame's samples arrive."""

from __future__ import annotations

import csv
import fcntl
import json
import os
import struct
import subprocess
import sys
import termios
import time
import tty

import numpy as np
import pytest

from edgebrain import proto as P
from tests.conftest import REPO
from tests.firmware.test_proto import corrupt

RECORDING = REPO / "tests" / "data" / "imu" / "sp-sw-har" / "s01" / "s01_01_sw.csv"
#: physical units per count: 1/2048 m/s² (±16 m/s² in int16) and 1/4096 rad/s, as an IMU driver would scale
UNITS = np.array([2.0 ** -11] * 3 + [2.0 ** -12] * 3)
RATE = 100.0


def _counts() -> np.ndarray:
    """The recording's accelerometer and gyroscope as int16 counts (1,377 samples)."""
    vals = np.loadtxt(RECORDING, delimiter=",", skiprows=1, usecols=range(6))
    return np.clip(np.rint(vals / UNITS), -32767, 32767).astype("<i2")


def _wait_until_open(proc, master: int, slave: int, limit: float = 60.0) -> None:
    """Return once ``proc`` has opened the pty's slave end and flushed its input (pyserial does on
    open): idle zero bytes are written until one is gone from the slave's input queue, which only
    the recorder's flush or its first read can do (this process keeps the slave open and never reads)."""
    t0 = time.monotonic()
    while True:
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() - t0 < limit, "the recorder did not open the port"
        os.write(master, b"\0")  # an empty block: idle line, ignored by the deframer
        time.sleep(0.05)
        if struct.unpack("i", fcntl.ioctl(slave, termios.FIONREAD, b"\0" * 4))[0] == 0:
            return


def _record(tmp_path, feed, duration: float):
    """``edgebrain record`` on the slave end of a new pty (JSON result, rows of the CSV); ``feed(master)``
    runs once the recorder has the port open (opening a port flushes what it holds)."""
    master, slave = os.openpty()
    tty.setraw(slave)
    path = os.ttyname(slave)
    out = tmp_path / "rec.csv"
    rec = subprocess.Popen([sys.executable, "-m", "edgebrain", "record", "--source",
                            f"serial://{path}?format=eb&timeout=2&give_up=3", "-o", str(out), "--duration",
                            str(duration), "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        _wait_until_open(rec, master, slave)
        helper = feed(master)
        res, err = rec.communicate(timeout=120)
    finally:
        if rec.poll() is None:
            rec.kill()
        os.close(master)
        os.close(slave)
    assert rec.returncode == 0, err
    if helper is not None:
        helper.terminate()
        helper.wait(10)
    with open(out) as f:
        rows = [r for r in csv.reader(f) if r and not r[0].startswith("#")]
    return json.loads(res), rows[0], np.array(rows[1:], dtype=np.float64)


@pytest.fixture(scope="module")
def host_board_exe(clib):
    from edgebrain.stream import board as BD

    return BD.build_board()


def test_a_board_streams_a_real_recording_and_record_writes_count_times_unit(tmp_path, host_board_exe):
    counts = _counts()
    n = len(counts) - 50  # recorded: the samples before the last 50 (--duration stops at exactly that time)
    counts.tofile(tmp_path / "counts.bin")
    args = [str(host_board_exe), "--replay", str(tmp_path / "counts.bin"), "--channels", "6", "--rate", str(RATE),
            "--units", ",".join(repr(float(u)) for u in UNITS), "--per-frame", "7"]
    res, head, got = _record(tmp_path, lambda m: subprocess.Popen(args, stdin=m, stdout=m), n / RATE - 0.005)
    assert head == [f"ch{j}" for j in range(6)] + ["time_s"]
    assert res["input"]["repaired"] == 0 and res["input"]["dropped"] == 0, res
    expected = (counts.astype(np.float64) * UNITS).astype(np.float32)
    assert len(got) == n
    assert np.array_equal(got[:, :6].astype(np.float32), expected[:n])  # every value exact
    assert np.allclose(got[:, 6], np.arange(n) / RATE, atol=1e-6)


def _frame(seq, index, counts) -> bytes:
    tail = UNITS.astype("<f4").tobytes() + counts.astype("<i2").tobytes()
    return P.encode_frame(P.MSG["SENSOR"], seq, P.pack("SENSOR", tail, channels=6, n=len(counts), index=index,
                                                         rate=RATE))


def test_damaged_frames_are_dropped_and_counted_and_every_intact_frame_arrives(tmp_path):
    rng = np.random.default_rng(7)
    counts = _counts()[:1200]
    per = 10
    kinds = ("flip", "drop", "dup", "reorder")
    wire, kept, damaged = b"", [], 0
    for k, i in enumerate(range(0, len(counts), per)):
        f = _frame(k, i, counts[i:i + per])
        if k % 9 == 4:  # every ninth frame damaged, each kind in turn (never the first: it opens the stream)
            f = corrupt(f, kinds[damaged % 4], rng)
            damaged += 1
        else:
            kept.append(i)
        wire += f
    wire += P.encode_frame(P.MSG["PONG"], 999, b"x")  # another type: skipped
    wire += _frame(999, len(counts), _counts()[len(counts):len(counts) + per])  # past --duration: ends the stream

    def feed(master):
        for a in range(0, len(wire), 333):  # in pieces that split frames
            os.write(master, wire[a:a + 333])
        return None

    res, _, got = _record(tmp_path, feed, len(counts) / RATE - 0.005)
    lost = len(counts) - per * len(kept)
    assert res["input"]["repaired"] == damaged and res["input"]["dropped"] == lost, res
    expected = np.concatenate([counts[i:i + per] for i in kept]).astype(np.float64) * UNITS
    assert np.array_equal(got[:, :6].astype(np.float32), expected.astype(np.float32))
    t = np.concatenate([np.arange(i, i + per) for i in kept]) / RATE  # the gaps stay in the times
    assert np.allclose(got[:, 6], t, atol=1e-6)


def test_a_link_that_carries_no_sensor_frames_is_one_line(tmp_path):
    master, slave = os.openpty()
    tty.setraw(slave)
    path = os.ttyname(slave)
    try:
        r = subprocess.run([sys.executable, "-m", "edgebrain", "record", "--source",
                            f"serial://{path}?format=eb&timeout=1&give_up=2", "-o", str(tmp_path / "x.csv")],
                           capture_output=True, text=True, cwd=REPO, timeout=60)
    finally:
        os.close(master)
        os.close(slave)
    assert r.returncode == 2, r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]  # (warnings say it reconnected)
    assert len(errors) == 1 and "no data received" in errors[0] and "SENSOR frame" in errors[0], r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "x.csv").exists()


def test_names_must_match_the_channel_count(tmp_path):
    from edgebrain.errors import InputError
    from edgebrain.stream.sources.livebin import check_options

    check_options("serial://x", "eb", {"names": "a,b"})
    with pytest.raises(InputError, match="unknown option rate for format=eb"):
        check_options("serial://x", "eb", {"rate": 100})
