"""`edgebrain stream`, `record` and `data info` as a user runs them, on each modality, from files
and from live links (real subprocesses, a real TCP link, a real MQTT broker)."""

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgebrain import ops
from edgebrain.graph import Graph
from edgebrain.model import Model
from tests.stream._mqtt import Subscriber, mosquitto_fixture  # noqa: F401

from tests.conftest import REPO  # noqa: E402  (the repository root)
IMU = "imu/sp-sw-har/s16/s16_01_sw.csv"
HAR_LABELS = ["SEATED", "STANDING_UP", "WALKING", "TURNING", "SITTING_DOWN"]


def cli(*args, timeout=180, **kw):
    p = subprocess.run([sys.executable, "-m", "edgebrain.cli", *map(str, args)], capture_output=True, text=True,
                       timeout=timeout, **kw)
    return p.returncode, p.stdout, p.stderr


def jsonl(text):
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert "summary" in rows[-1], "the JSON stream ends with a summary object"
    return rows[:-1], rows[-1]["summary"]


def _mlp(n_in, n_h, n_out, seed, gain=3.0, readout="LIF"):
    rng = np.random.default_rng(seed)

    def aff(o, i, g):
        return ops.Affine(weight=(rng.standard_normal((o, i)) * g / np.sqrt(i)).astype(np.float32),
                          bias=(0.1 * rng.standard_normal(o)).astype(np.float32))

    lif = lambda n: ops.LIF(beta=np.full(n, 0.9, np.float32), threshold=np.ones(n, np.float32))  # noqa: E731
    out = lif(n_out) if readout == "LIF" else ops.LI(beta=np.full(n_out, 0.9, np.float32))
    g = Graph.sequential(ops.Input(shape=(n_in,)), aff(n_h, n_in, gain), lif(n_h), aff(n_out, n_h, gain), out,
                         ops.Output())
    return Model(g.prepare())


@pytest.fixture(scope="module")
def har_model(tmp_path_factory):
    """A smartwatch-size spiking model (random weights: the pipeline, not accuracy, is under test)
    that carries its pre-processing, decision rule and class names."""
    m = _mlp(6, 64, 5, seed=1)
    m.graph.meta["stream"] = {"encoder": "direct:scale=0.1|0.1|0.1|1|1|1", "decoder": "count:window=25",
                              "labels": HAR_LABELS, "rate": 100.0}
    path = tmp_path_factory.mktemp("models") / "har.ebm"
    m.save(path)
    return path


def test_stream_imu_file_json(har_model, datasets):
    csv = datasets / IMU
    rc, out, err = cli("stream", har_model, "--source", csv, "--json")
    assert rc == 0, err
    rows, summary = jsonl(out)
    n = sum(1 for _ in open(csv)) - 1
    assert len(rows) == -(-n // 25)  # one per 25 samples, and the partial last window
    for r in rows:
        assert set(r) >= {"t", "label", "confidence", "truth"} and r["label"] in HAR_LABELS + [None]
        assert r["truth"] in HAR_LABELS and 0 <= r["confidence"] <= 1
    assert [r["t"] for r in rows] == sorted(r["t"] for r in rows)
    assert rows[0]["t"] == pytest.approx(24 / 100, abs=0.011)
    assert summary["items"] == n and summary["decisions"] == len(rows)
    ts = np.loadtxt(csv, delimiter=",", skiprows=1, usecols=6)  # Unix ms: the stream keeps the real times
    assert summary["stream_seconds"] == pytest.approx((ts[-1] - ts[0]) / 1000, abs=1e-3)
    assert 0 <= summary["accuracy"] <= 1 and summary["scored_decisions"] == len(rows)
    assert set(summary["spike_rate"]) == {"lif2", "lif4"} and 0 < summary["spike_rate"]["lif2"] < 1
    # the last, partial window is decided because the file ended: not a steady-state latency
    assert [r.get("flush") for r in rows] == [None] * (len(rows) - 1) + ["end"] and summary["flush_decisions"] == 1
    assert summary["latency_ms"]["n"] == len(rows) - 1 and summary["realtime_factor"] > 0


def test_stream_from_a_live_tcp_link_equals_the_file(har_model, datasets, tmp_path):
    """A separate writer process serves the recording over TCP (Edge Impulse line format);
    `edgebrain stream tcp://...` decides exactly as on the file; `record` captures the link to a
    CSV that streams to the same decisions again."""
    csv = datasets / IMU
    rc, out, err = cli("stream", har_model, "--source", csv, "--json")
    file_rows, _ = jsonl(out)
    port = _free_port()
    writer = subprocess.Popen([sys.executable, str(REPO / "tests" / "stream" / "sources" / "_replay.py"), "tcp-serve", str(port),
                               "--file", str(csv), "--rate", "0"], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "ready"
        rc, out, err = cli("stream", har_model, "--source", f"tcp://127.0.0.1:{port}?rate=100&reconnect=0",
                           "--json", timeout=60)
    finally:
        writer.kill()
        writer.wait()
    assert rc == 0, err
    live_rows, summary = jsonl(out)
    assert [(r["label"], r["confidence"]) for r in live_rows] == [(r["label"], r["confidence"]) for r in file_rows]
    assert summary["input"]["repaired"] == 0 and summary["latency_ms"]["p99"] is not None

    port = _free_port()
    writer = subprocess.Popen([sys.executable, str(REPO / "tests" / "stream" / "sources" / "_replay.py"), "tcp-serve", str(port),
                               "--file", str(csv), "--rate", "0"], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "ready"
        rc, out, err = cli("record", "--source", f"tcp://127.0.0.1:{port}?rate=100&reconnect=0", "-o",
                           tmp_path / "cap.csv", "--json", timeout=60)
    finally:
        writer.kill()
        writer.wait()
    assert rc == 0, err
    assert json.loads(out)["items"] == len(open(csv).readlines()) - 1
    rc, out, err = cli("stream", har_model, "--source", tmp_path / "cap.csv", "--json")
    assert rc == 0, err
    rec_rows, _ = jsonl(out)
    assert [(r["label"], r["confidence"]) for r in rec_rows] == [(r["label"], r["confidence"]) for r in file_rows]


def test_ctrl_c_stops_cleanly_with_a_summary(har_model, datasets):
    csv = datasets / IMU
    port = _free_port()
    writer = subprocess.Popen([sys.executable, str(REPO / "tests" / "stream" / "sources" / "_replay.py"), "tcp-serve", str(port),
                               "--file", str(csv), "--rate", "100"], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "ready"
        p = subprocess.Popen([sys.executable, "-m", "edgebrain.cli", "stream", str(har_model), "--source",
                              f"tcp://127.0.0.1:{port}?rate=100", "--json"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        first = p.stdout.readline()  # a decision has been made: the stream is running
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
    finally:
        writer.kill()
        writer.wait()
    assert p.returncode == 130, err  # the documented exit code of an interrupted command
    rows, summary = jsonl(first + out)
    assert summary["interrupted"] is True and summary["items"] > 0 and "Traceback" not in err


def test_stream_to_mqtt_broker(har_model, datasets, mosquitto):
    sub = Subscriber(mosquitto.port)
    try:
        rc, out, err = cli("stream", har_model, "--source", datasets / IMU, "--json", "--sink",
                           f"mqtt:host=127.0.0.1,port={mosquitto.port},device=watch7")
        assert rc == 0, err
        rows, summary = jsonl(out)
        assert sub.wait_count(len(rows) + 1, timeout=10)
        msgs = sub.json()
        decisions = [m for t, m in msgs if t.endswith("/decisions")]
        assert all(t == "edgebrain/watch7/har/decisions" for t, m in msgs if t.endswith("/decisions"))
        assert [(m["t"], m["label"]) for m in decisions] == [(r["t"], r["label"]) for r in rows]
        assert any(t == "edgebrain/watch7/har/summary" for t, _ in msgs)
        assert all(q == 1 for q in sub.qos)
    finally:
        sub.close()


def test_stream_audio_file(tmp_path, datasets):
    m = _mlp(32, 64, 10, seed=2)
    m.graph.meta["stream"] = {"encoder": "audio:filterbank=mel,channels=32,rate=16000,hop_ms=10,output=features",
                              "decoder": "count:window=20", "labels": [str(d) for d in range(10)]}
    m.save(tmp_path / "kws.ebm")
    wav = datasets / "audio/fsdd/recordings/7_jackson_3.wav"
    rc, out, err = cli("stream", tmp_path / "kws.ebm", "--source", wav, "--json")
    assert rc == 0, err
    rows, summary = jsonl(out)
    import soundfile

    seconds = soundfile.info(str(wav)).duration
    assert summary["stream_seconds"] == pytest.approx(seconds, abs=0.011)
    assert summary["steps"] == pytest.approx(seconds / 0.01, abs=1)
    assert len(rows) == -(-summary["steps"] // 20)
    # record converts the recording (8 kHz WAV) and the copy streams identically
    rc, out, err = cli("record", "--source", wav, "-o", tmp_path / "copy.wav")
    assert rc == 0, err
    rc, out2, err = cli("stream", tmp_path / "kws.ebm", "--source", tmp_path / "copy.wav", "--json")
    assert [(r["label"], r["confidence"]) for r in jsonl(out2)[0]] == [(r["label"], r["confidence"]) for r in rows]


def test_data_info(datasets):
    rc, out, err = cli("data", "info", datasets / IMU, "--json")
    assert rc == 0, err
    d = json.loads(out)
    n = sum(1 for _ in open(datasets / IMU)) - 1
    assert d["format"] == "csv" and d["channels"] == 6 and d["rate"] == pytest.approx(100, rel=0.02)
    ts = np.loadtxt(datasets / IMU, delimiter=",", skiprows=1, usecols=6)
    assert d["items"] == n and d["duration"] == pytest.approx((ts[-1] - ts[0]) / 1000, abs=1e-3)
    assert set(d["label_names"]) <= set(HAR_LABELS) and d["damage"]["repaired"] == 0
    rc, out, err = cli("data", "info", datasets / "audio/fsdd/recordings/0_george_0.wav")
    assert rc == 0 and "wav" in out and "8000" in out


def test_stream_bad_source_is_one_line(har_model, tmp_path):
    bad = tmp_path / "junk.csv"
    bad.write_bytes(os.urandom(3000))
    for args in (["--source", bad], ["--source", "ftp://example/x"], ["--source", tmp_path / "missing.csv"],
                 ["--source", bad, "--encoder", "nosuch"], ["--source", bad, "--sink", "mqtt:host=127.0.0.1,port=1"]):
        rc, out, err = cli("stream", har_model, *args)
        assert rc == 2, (args, err)
        assert err.count("\n") == 1 and err.startswith("error:") and "Traceback" not in err, err


def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def test_stream_events_nmnist_and_record(tmp_path, datasets):
    """N-MNIST .bs2 → 5 ms binned frames → a small convolutional SNN; `record` converts the file
    to the NumPy event array, which streams to the same decisions."""
    rng = np.random.default_rng(3)
    g = Graph.sequential(
        ops.Input(shape=(2, 34, 34)), ops.Conv2d(weight=(rng.standard_normal((4, 2, 5, 5)) * 0.6).astype(np.float32),
                                                 stride=(2, 2)),
        ops.IF(threshold=np.ones(1, np.float32)), ops.SumPool2d(kernel_size=3, stride=3), ops.Flatten(0, -1),
        ops.Linear(weight=(rng.standard_normal((10, 100)) * 0.5).astype(np.float32)),
        ops.LIF(beta=np.full(10, 0.95, np.float32)), ops.Output())
    m = Model(g.prepare())
    m.graph.meta["stream"] = {"encoder": "bin:window_us=5000,polarity=split", "decoder": "count:window=20",
                              "labels": [str(d) for d in range(10)]}
    m.save(tmp_path / "nmnist.ebm")
    bs2 = datasets / "events/nmnist-small/60001.bs2"
    rc, out, err = cli("stream", tmp_path / "nmnist.ebm", "--source", bs2, "--json")
    assert rc == 0, err
    rows, summary = jsonl(out)
    n_events = bs2.stat().st_size // 5
    assert summary["items"] == n_events and summary["kind"] == "events"
    assert summary["steps"] == pytest.approx(summary["stream_seconds"] / 0.005, abs=1)
    assert len(rows) == -(-summary["steps"] // 20) and summary["spike_rate"]["if2"] > 0
    rc, out, err = cli("record", "--source", bs2, "-o", tmp_path / "ev.npy", "--json")
    assert rc == 0, err
    ev = np.load(tmp_path / "ev.npy")
    assert set(ev.dtype.names) == {"x", "y", "t", "p"} and len(ev) == n_events and np.all(np.diff(ev["t"]) >= 0)
    rc, out2, err = cli("stream", tmp_path / "nmnist.ebm", "--source", tmp_path / "ev.npy", "--json")
    assert rc == 0, err
    assert [(r["label"], r["confidence"]) for r in jsonl(out2)[0]] == [(r["label"], r["confidence"]) for r in rows]


# ---------------------------------------------------------------------- gaps in event time (issue 11, item 1)


class _ArraySource:
    """Events from arrays, in chunks of 300, times as given (a stand-in for a file source, which would
    make its times relative to its first event)."""

    live = False

    def __init__(self, ev):
        from edgebrain.stream.base import RepairStats, SourceInfo

        self.ev = ev
        self.info = SourceInfo(format="array", kind="events", sensor_size=(34, 34))
        self.stats = RepairStats()

    def chunks(self):
        from edgebrain.stream.base import Events

        for i in range(0, len(self.ev), 300):
            yield Events(self.ev[i:i + 300], arrival=0.0, t_end=int(self.ev["t"][min(i + 300, len(self.ev)) - 1]))

    def close(self):
        pass


class _Keep:
    def __init__(self):
        self.rows = []

    def emit(self, d):
        self.rows.append((round(d.t, 6), d.label, round(d.confidence, 6), None if d.scores is None else d.scores.tolist()))

    def summary(self, s):
        self.summary = s

    def close(self):
        pass


def test_a_long_gap_starts_the_model_and_decoder_over(datasets):
    """Events with a 10-minute pause give the decisions of the two halves streamed separately, each
    through a fresh model and decoder (what the reset promises), and the pause is counted; a pause
    under max_gap gives the decisions of the events streamed as one (stepped with empty frames)."""
    from edgebrain.stream.base import EVENT_DTYPE
    from edgebrain.stream.encoders.binning import EventBinner
    from edgebrain.stream.pipeline import Pipeline
    from edgebrain.stream.decoders import CountDecoder
    from tests.conftest import read_bs2

    raw = read_bs2(datasets / "events/nmnist-small/60001.bs2")
    ev = np.zeros(len(raw), EVENT_DTYPE)
    for k in "xytp":
        ev[k] = raw[k]
    ev = ev[np.argsort(ev["t"], kind="stable")]
    rng = np.random.default_rng(5)
    g = Graph.sequential(
        ops.Input(shape=(2, 34, 34)), ops.Flatten(0, -1),
        ops.Linear(weight=(rng.standard_normal((10, 2312)) * 0.3).astype(np.float32)),
        ops.LIF(beta=np.full(10, 0.98, np.float32), threshold=np.full(10, 0.5, np.float32)), ops.Output())
    model = Model(g.prepare())

    def run(events):
        keep = _Keep()
        pipe = Pipeline(_ArraySource(events), EventBinner(window_us=5000), model.session("float"),
                        CountDecoder(window=8, labels=[str(i) for i in range(10)]), [keep])
        pipe.run()
        return keep

    h = len(ev) // 2
    gapped = ev.copy()
    gapped["t"][h:] += 600_000_000
    both = run(gapped)
    first, second = run(gapped[:h]), run(gapped[h:])
    assert both.summary["gaps"]["count"] == 1 and both.summary["gaps"]["seconds"] > 600
    assert both.rows == first.rows + second.rows and len(second.rows) >= 2
    assert both.summary["steps"] == first.summary["steps"] + second.summary["steps"]
    assert any(r[1] is not None for r in second.rows), "the model never spiked: the test would prove nothing"
    # a pause of 0.5 s (under max_gap): 100 empty 5-ms windows stepped, nothing reset
    short = ev.copy()
    short["t"][h:] += 500_000
    one, stepped = run(ev), run(short)
    assert stepped.summary["gaps"]["count"] == 0
    assert stepped.summary["steps"] == one.summary["steps"] + 100
