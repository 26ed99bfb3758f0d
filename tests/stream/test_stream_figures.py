"""What the stream's figures cover (issue 12): set-up apart from the steady state, end-of-stream and
gap flushes and reconnection waits kept out of the latency, the deployed precision by default, and
the pipeline's observers. Real recordings and zoo models; time comes from an injected clock, never
from how fast this machine happens to be."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys

import numpy as np
import pytest

from edgebrain import zoo
from edgebrain.model import Model
from edgebrain.session import Session
from edgebrain.stream import decoders as decoders_mod
from edgebrain.stream import pipeline as pipeline_mod
from edgebrain.stream.base import Events, Samples, Sink, Source, Steps, build
from edgebrain.stream.pipeline import Pipeline, build_pipeline, encode_file
from edgebrain.stream.registry import build_encoder, decoders, open_source
from tests.conftest import REPO

IMU = "imu/sp-sw-har/s16/s16_01_sw.csv"
NMNIST_SAMPLE = "events/nmnist-small/881.bs2"


@pytest.fixture(scope="module")
def har():
    return Model.load(zoo.path("har-l2mu"))


@pytest.fixture(scope="module")
def nmnist():
    return Model.load(zoo.path("nmnist"))


class Clock:
    """An injected wall clock: time moves only when the test says so."""

    def __init__(self, t: float = 100.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock(monkeypatch):
    c = Clock()
    monkeypatch.setattr(pipeline_mod, "now", c)   # set-up, the clock start, decision times
    monkeypatch.setattr(decoders_mod, "now", c)   # the decoders' latency
    return c


class Replay(Source):
    """A real recording handed over in the given pieces, as a live link would: ``plan`` is a list of
    (piece, action) where action(clock) runs before the piece is handed over and returns its arrival."""

    live = True

    def __init__(self, info, plan):
        super().__init__()
        self.info, self.plan = info, plan

    def chunks(self):
        for piece, arrive in self.plan:
            arrival = arrive(self)
            if isinstance(piece, Events):
                yield Events(piece.events, arrival, piece.t_end)
            else:
                yield Samples(piece.t, piece.values, piece.labels, arrival)


def _read(path):
    """(info, the whole recording as one chunk) of a real file."""
    src = open_source(str(path))
    with src:
        chunks = [c for c in src.chunks() if len(c)]
    if isinstance(chunks[0], Events):
        return src.info, Events(np.concatenate([c.events for c in chunks]))
    labels = None if chunks[0].labels is None else np.concatenate([c.labels for c in chunks])
    return src.info, Samples(np.concatenate([c.t for c in chunks]), np.concatenate([c.values for c in chunks]), labels)


def _cut(s: Samples, a, b) -> Samples:
    return Samples(s.t[a:b], s.values[a:b], None if s.labels is None else s.labels[a:b])


class Keep(Sink):
    def __init__(self):
        self.decisions = []

    def emit(self, d):
        self.decisions.append(d)


def _decoder(spec, labels):
    name, _, rest = spec.partition(":")
    return build(decoders(), f"{name}:{rest},labels={'|'.join(labels)}" if rest else spec, "decoder")


# ----------------------------------------------------------------------------- set-up and latency


class CountingSession(Session):
    """A real session that notes, for each model call, how many chunks the source had handed over."""

    def __init__(self, program, source_box):
        super().__init__(program)
        self.box, self.calls = source_box, []
        fast = self.step

        def step(x):
            self.calls.append(("step", self.box["chunks"], int(self.clock[0]), float(np.abs(x).sum())))
            return fast(x)

        self.step = step

    def run(self, xs, record=(), progress=False, chunk=0):
        self.calls.append(("run", self.box["chunks"], int(self.clock[0]), float(np.abs(xs).sum())))
        return super().run(xs, record=record, progress=progress, chunk=chunk)


def test_warm_up_runs_before_the_first_chunk_and_leaves_the_results_unchanged(har, datasets):
    """Both model paths are called once on zero input before the source hands over anything, the
    session is back at step 0 for the real data, and the decisions equal an independent run of the
    same encoded recording through a fresh session and decoder."""
    cfg = har.graph.meta["stream"]
    info, rec = _read(datasets / IMU)
    box = {"chunks": 0}

    def arrive(src):
        box["chunks"] += 1
        return pipeline_mod.now()

    pieces = [_cut(rec, 0, 2), _cut(rec, 2, 500), _cut(rec, 500, len(rec))]  # step() path, then run()
    sess = CountingSession(har.program("int"), box)
    keep = Keep()
    pipe = Pipeline(Replay(info, [(p, arrive) for p in pieces]), build_encoder(cfg["encoder"]), sess,
                    _decoder(cfg["decoder"], cfg["labels"]), [keep], dt=1 / cfg["rate"])
    s = pipe.run()
    warm = [c for c in sess.calls if c[1] == 0]
    assert [c[0] for c in warm] == ["step", "run"] and all(c[3] == 0.0 for c in warm)  # zero input, no data yet
    first_real = next(c for c in sess.calls if c[1] > 0)
    assert first_real[2] == 0  # the session was put back: the stream starts at step 0
    assert s["setup_seconds"] >= 0 and "wall_seconds" in s and "setup_seconds" in s["covers"]
    # independent reference: the whole recording encoded at once, one fresh session, one decoder
    x, _, _ = encode_file(datasets / IMU, cfg["encoder"], rate=cfg["rate"], input_shape=har.input_shape)
    out, _ = har.session("int").run(x)
    dec = _decoder(cfg["decoder"], cfg["labels"])
    ref = dec.update(np.asarray(out).reshape(len(x), -1), Steps(x, np.arange(len(x)) / cfg["rate"], np.zeros(len(x))))
    ref += dec.flush()
    assert [(d.label, round(d.confidence, 6)) for d in keep.decisions] == [(d.label, round(d.confidence, 6))
                                                                          for d in ref]
    assert s["steps"] == len(x)


def test_latency_is_steady_state_only(har, datasets, clock):
    """Samples that arrived while the stream was being set up (a live link's first lines) and the
    last, partial window decided because the stream ended are counted apart from the latency.
    Direct encoding at the recording's own rate: one step per sample, a decision every 10."""
    info, rec = _read(datasets / IMU)
    n = len(rec)
    cfg = har.graph.meta["stream"]

    def early(src):
        return clock.t - 10.0          # held while the link was opening, 10 s before set-up ended

    def later(src):
        clock.t += 1.0                 # handed over after set-up, received just now
        return clock.t

    keep = Keep()
    pipe = Pipeline(Replay(info, [(_cut(rec, 0, 95), early), (_cut(rec, 95, n), later)]),
                    build_encoder(cfg["encoder"]), har.session("int"), _decoder("count:window=10", cfg["labels"]),
                    [keep])
    s = pipe.run()
    assert n % 10 and s["steps"] == n
    assert s["decisions"] == n // 10 + 1 and s["flush_decisions"] == 1
    assert s["latency_excluded"] == {"flush": 1, "setup": 9, "reconnect": 0}   # decisions at steps 10..90
    assert s["latency_ms"]["n"] == n // 10 - 9
    assert s["latency_ms"]["max"] == 0.0                                      # the clock did not move meanwhile
    assert [d.flush for d in keep.decisions] == [None] * (n // 10) + ["end"]
    assert keep.decisions[0].latency == 10.0                                  # measured, just not steady state
    assert json.loads(json.dumps(s["covers"]))["latency_ms"].startswith("arrival of a decision's newest sample")


def test_reconnection_wait_is_not_latency(nmnist, datasets, clock):
    """An event camera link drops after 60 ms of events and comes back 7 s later: the frame holding
    the last events before the drop is closed by the first events after it, so its decision waited
    7 s; it is counted apart, and every other decision is steady state."""
    info, rec = _read(datasets / NMNIST_SAMPLE)
    ev = rec.events
    cut = int(np.searchsorted(ev["t"], 60_000))   # a 20-ms window boundary: the window [40, 60) ms stays open

    def first(src):
        return clock.t

    def after_reconnect(src):
        clock.t += 7.0
        src.stats.note("reconnect", "tcp://camera", "reconnected after 7.00 s (1 attempt)")
        return clock.t

    keep = Keep()
    pipe = Pipeline(Replay(info, [(Events(ev[:cut]), first), (Events(ev[cut:]), after_reconnect)]),
                    build_encoder("bin:window_us=20000,polarity=split"), nmnist.session("int"),
                    _decoder("count:window=1", [str(i) for i in range(10)]), [keep])
    s = pipe.run()
    windows = int(ev["t"][-1]) // 20_000 + 1
    assert s["steps"] == windows and s["decisions"] == windows
    # one-step windows: the encoder's last frame is a whole decoder window, so nothing is flushed
    assert s["latency_excluded"] == {"flush": 0, "setup": 0, "reconnect": 1}
    assert s["latency_ms"]["n"] == windows - 1 and s["latency_ms"]["max"] == 0.0
    waited = [d for d in keep.decisions if d.latency == 7.0]
    assert len(waited) == 1 and waited[0].t == pytest.approx(0.06)
    assert s["input"]["reconnects"] == 1


def test_console_summary_says_what_each_figure_covers():
    from rich.console import Console

    from edgebrain.stream.sinks import print_stream_summary

    s = {"decisions": 48, "no_decision": 0, "flush_decisions": 1, "stream_seconds": 11.68, "setup_seconds": 0.41,
         "wall_seconds": 0.04, "realtime_factor": 292.0, "throughput_per_s": 30475.0, "kind": "samples",
         "latency_ms": {"p50": 1.5, "p90": 2.0, "p99": 2.5, "max": 3.0, "n": 46},
         "latency_excluded": {"flush": 1, "setup": 0, "reconnect": 1}, "precision": "int",
         "deployed_precision": "int", "input": {"repaired": 0, "dropped": 0, "reconnects": 1, "messages": []},
         "spike_rate": {}}
    c = Console(record=True, width=400, force_terminal=False)
    print_stream_summary(c, s)
    assert c.export_text().splitlines() == [
        ("summary: 48 decisions (0 without a decision; 1 on a partial window at the end or before a gap), "
         "int precision (as deployed)"),
        "  set-up 0.41 s (model load, source opening, compile or cache load, warm-up; not in the figures below)",
        "  11.68 s of stream in 0.04 s (real-time factor 292.0×, 30475 samples/s)",
        ("  latency (newest sample's arrival → decision, steady state, n=46): p50 1.500 ms, p90 2.000 ms, "
         "p99 2.500 ms, max 3.000 ms"),
        "    not in it: 1 on a partial window, 1 that waited through a reconnection",
        "  input: 0 repaired, 0 dropped, 1 reconnects",
    ]
    c = Console(record=True, width=400, force_terminal=False)
    print_stream_summary(c, dict(s, precision="float", latency_ms={"n": 0}, latency_excluded={"flush": 1},
                                 decisions=1))
    text = c.export_text()
    assert "float precision (deployed: int)" in text
    assert "latency: no steady-state decision to measure; not counted: 1 on a partial window" in text


# ----------------------------------------------------------------------------- precision


def test_a_quantized_model_streams_at_its_deployed_precision(har, datasets):
    """No --precision: int for an int8 zoo model, as demo, bench and profile; the summary says so."""
    s = build_pipeline(har, str(datasets / IMU), max_seconds=2).run()
    assert s["precision"] == "int" == s["deployed_precision"] and "saturations" in s
    s = build_pipeline(har, str(datasets / IMU), max_seconds=2, precision="float").run()
    assert s["precision"] == "float" and s["deployed_precision"] == "int"
    r = subprocess.run([sys.executable, "-m", "edgebrain", "stream", "zoo:har-l2mu", "--source", str(datasets / IMU),
                        "--duration", "2"], capture_output=True, text=True, timeout=300, cwd=REPO, check=False)
    assert r.returncode == 0, r.stderr
    assert "int precision (as deployed)" in r.stdout and "set-up" in r.stdout


def test_a_float_model_streams_in_float(datasets):
    from edgebrain.synthetic import example_path

    m = Model.load(example_path())
    assert not m.quant
    s = build_pipeline(m, str(datasets / IMU), encoder="direct:channels=0|1|2", decoder="count:window=10",
                       max_seconds=1).run()
    assert s["precision"] == "float" == s["deployed_precision"]


# ----------------------------------------------------------------------------- observers


class Watcher:
    wants_spikes = True

    def __init__(self):
        self.steps, self.outputs, self.spikes, self.decisions, self.summary = [], [], {}, [], None

    def on_steps(self, steps, outputs, spikes):
        self.steps.append(np.array(steps.t))
        self.outputs.append(np.array(outputs))
        for n, a in spikes.items():
            assert a.shape[0] == len(steps)
            self.spikes.setdefault(n, []).append(np.array(a))

    def on_decision(self, d):
        self.decisions.append(d)

    def on_summary(self, s):
        self.summary = s


def test_observer_sees_every_step_spike_and_decision(har, datasets):
    """Per-step spike counts an observer receives (through the one-step path for small pieces and
    the many-step path for large ones) add up to the pipeline's totals, and to those of an
    independent run of the encoded recording; its outputs are the model's, its decisions the sinks'."""
    cfg = har.graph.meta["stream"]
    info, rec = _read(datasets / IMU)
    sizes = [1, 2, 3, 4, 200, 1, 300]
    bounds = np.cumsum([0] + sizes).tolist() + [len(rec)]
    plan = [(_cut(rec, a, b), lambda src: pipeline_mod.now()) for a, b in itertools.pairwise(bounds)]
    w, keep = Watcher(), Keep()
    pipe = Pipeline(Replay(info, plan), build_encoder(cfg["encoder"]), har.session("int"),
                    _decoder(cfg["decoder"], cfg["labels"]), [keep], dt=1 / cfg["rate"], activity=False,
                    observers=[w])
    s = pipe.run()
    spiking = har.session("int").spiking_nodes
    assert set(w.spikes) == set(spiking) and set(s["spike_rate"]) == set(spiking)
    x, _, _ = encode_file(datasets / IMU, cfg["encoder"], rate=cfg["rate"], input_shape=har.input_shape)
    out, recd = har.session("int").run(x, record=spiking)
    for n in spiking:
        per_step = np.concatenate(w.spikes[n])
        assert per_step.shape[0] == s["steps"] == len(x)
        assert per_step.sum() == pipe.spike_sum[n] == recd[f"spikes/{n}"].sum()
        np.testing.assert_array_equal(per_step, recd[f"spikes/{n}"].reshape(len(x), -1))
    np.testing.assert_array_equal(np.concatenate(w.outputs), np.asarray(out).reshape(len(x), -1))
    assert w.decisions == keep.decisions and len(w.decisions) == s["decisions"]
    assert w.summary is s


def test_no_observer_no_spikes_collected(har, datasets):
    """Without observers (and without activity statistics) nothing is recorded per step."""
    pipe = build_pipeline(har, str(datasets / IMU), activity=False, max_seconds=2)
    s = pipe.run()
    assert s["spike_rate"] == {} and pipe.spike_sum == {}

