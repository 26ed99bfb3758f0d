"""``--duration`` stops at the exact stream time (issue 12): the chunk that crosses it is cut before it
is encoded, on every kind of source, file or live, with and without ``--realtime``, for ``stream``
and ``record``. The expected counts are taken from the recordings themselves, independently of the
stream's readers."""

from __future__ import annotations

import json
import math
import socket
import subprocess
import sys
import wave

import numpy as np
import pytest

from edgebrain import zoo
from edgebrain.model import Model
from edgebrain.stream.pipeline import build_pipeline
from edgebrain.stream.recording import record
from tests.conftest import REPO, read_bs2

IMU = "imu/sp-sw-har/s16/s16_01_sw.csv"
WAV = "audio/fsdd/recordings/3_theo_1.wav"
BS2 = "events/nmnist-small/881.bs2"
REPLAY = REPO / "tests" / "stream" / "sources" / "_replay.py"


def imu_times(path) -> np.ndarray:
    """Seconds from the first sample, from the CSV's own Unix-ms timestamp column."""
    ts = np.loadtxt(path, delimiter=",", skiprows=1, usecols=6)
    return (ts - ts[0]) / 1000.0


def step_of(model) -> float:
    return 1.0 / model.graph.meta["stream"]["rate"]


@pytest.fixture(scope="module")
def zoo_models():
    return {n: Model.load(zoo.path(n)) for n in ("har-l2mu", "kws", "nmnist")}


@pytest.mark.parametrize("seconds", [1, 3, 6])
def test_imu_file_stops_at_the_duration(zoo_models, datasets, seconds):
    """Before: --duration 1 and 3 both streamed 4.46 s (the first block), 6 streamed 9.04 s."""
    m = zoo_models["har-l2mu"]
    s = build_pipeline(m, str(datasets / IMU), max_seconds=seconds).run()
    t = imu_times(datasets / IMU)
    assert s["items"] == int((t < seconds).sum())
    assert seconds - step_of(m) <= s["stream_seconds"] < seconds
    assert s["duration_limit_s"] == seconds


def test_imu_realtime_stops_at_the_duration(zoo_models, datasets):
    m = zoo_models["har-l2mu"]
    s = build_pipeline(m, str(datasets / IMU), max_seconds=0.5, realtime=True).run()
    assert s["items"] == int((imu_times(datasets / IMU) < 0.5).sum())
    assert 0.5 - step_of(m) <= s["stream_seconds"] < 0.5


@pytest.mark.parametrize("seconds", [0.1, 0.25])
def test_audio_file_stops_at_the_duration(zoo_models, datasets, seconds):
    m = zoo_models["kws"]
    with wave.open(str(datasets / WAV)) as w:
        rate, n = w.getframerate(), w.getnframes()
    assert n / rate > seconds
    s = build_pipeline(m, str(datasets / WAV), max_seconds=seconds).run()
    assert s["items"] == math.ceil(seconds * rate)   # samples k with k / rate < seconds
    assert s["stream_seconds"] == pytest.approx(seconds, abs=step_of(m))


@pytest.mark.parametrize("realtime", [False, True])
def test_events_stop_at_the_duration(zoo_models, datasets, realtime):
    m = zoo_models["nmnist"]
    ev = read_bs2(datasets / BS2)
    t = ev["t"] - ev["t"].min()
    s = build_pipeline(m, str(datasets / BS2), max_seconds=0.15, realtime=realtime).run()
    assert s["items"] == int((t < 150_000).sum()) < len(ev)
    assert s["stream_seconds"] == pytest.approx(0.15, abs=step_of(m))


def test_stream_command_json_says_the_duration(datasets):
    r = subprocess.run([sys.executable, "-m", "edgebrain", "stream", "zoo:har-l2mu", "--source", str(datasets / IMU),
                        "--duration", "1", "--json"], capture_output=True, text=True, timeout=300, cwd=REPO,
                       check=False)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    s = rows[-1]["summary"]
    assert s["items"] == int((imu_times(datasets / IMU) < 1).sum()) and 0.98 <= s["stream_seconds"] < 1
    assert all(d["t"] < 1 for d in rows[:-1])


def test_record_stops_at_the_duration(datasets, tmp_path):
    t = imu_times(datasets / IMU)
    res = record(str(datasets / IMU), str(tmp_path / "a.csv"), duration=1)
    kept = np.loadtxt(tmp_path / "a.csv", delimiter=",", skiprows=2, usecols=6)
    assert res["items"] == len(kept) == int((t < 1).sum()) and kept.max() < 1
    ev = read_bs2(datasets / BS2)
    res = record(str(datasets / BS2), str(tmp_path / "e.npy"), duration=0.1)
    got = np.load(tmp_path / "e.npy")
    assert res["items"] == len(got) == int((ev["t"] - ev["t"].min() < 100_000).sum()) and got["t"].max() < 100_000


# ----------------------------------------------------------------------------- live links


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


@pytest.fixture
def serve_imu(datasets):
    """A device serving the recording over TCP as fast as it can, then keeping the link open (so
    only the duration can end the stream)."""
    procs = []

    def start():
        port = _free_port()
        p = subprocess.Popen([sys.executable, str(REPLAY), "tcp-serve", str(port), "--file", str(datasets / IMU),
                              "--rate", "0", "--hold", "120"], stdout=subprocess.PIPE, text=True)
        procs.append(p)
        assert p.stdout.readline().strip() == "ready"
        return f"tcp://127.0.0.1:{port}?rate=100"

    yield start
    for p in procs:
        p.kill()
        p.wait()


def test_live_stream_stops_at_the_duration(serve_imu):
    """A live link at 100 samples/s that does not end: exactly the samples before 1 s are streamed."""
    r = subprocess.run([sys.executable, "-m", "edgebrain", "stream", "zoo:har-l2mu", "--source", serve_imu(),
                        "--duration", "1", "--json"], capture_output=True, text=True, timeout=120, cwd=REPO,
                       check=False)
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout.splitlines()[-1])["summary"]
    assert s["items"] == 100 and 0.98 <= s["stream_seconds"] < 1


def test_live_record_stops_at_the_duration(serve_imu, tmp_path):
    res = record(serve_imu(), str(tmp_path / "live.csv"), duration=1)
    kept = np.loadtxt(tmp_path / "live.csv", delimiter=",", skiprows=2, usecols=6)
    assert res["items"] == len(kept) == 100 and kept.max() < 1


def test_ctrl_c_ends_a_live_stream_with_its_summary_and_exit_code_130(serve_imu):
    """Ctrl-C is how a live stream is ended by hand: the decisions so far and the summary are
    printed, and the exit code is the documented 130 (was 0), so a script can tell."""
    import signal

    main = ("import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
            "from edgebrain.cli import main; main(sys.argv[1:])")
    p = subprocess.Popen([sys.executable, "-c", main, "stream", "zoo:har-l2mu", "--source", serve_imu(), "--json"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        first = json.loads(p.stdout.readline())  # a decision: the stream is running
        assert "label" in first
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 130, err
    s = json.loads(out.splitlines()[-1])["summary"]
    assert s["interrupted"] is True and s["decisions"] >= 1
