"""The timeline figure of ``stream --plot`` and ``demo --plot`` (issue 12, item 13), tested on what it
draws, against independent references: the raster's dots are the spikes of an independent run of the
encoded recording (``session.run`` with ``record``), the decisions drawn are those the sinks and
``--json`` print, the truth drawn is the recording's own labels, the time axis is the stream's
duration; the recorder stays within its bounds on a long stream; a path the atomic writer refuses is
refused before anything streams; without matplotlib, one clear error."""

from __future__ import annotations

import itertools
import json
import math
import os
import threading

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from edgebrain import zoo
from edgebrain.apps import timeline_plot as TP
from edgebrain.apps.timeline_plot import draw_timeline
from edgebrain.cli import main
from edgebrain.model import Model
from edgebrain.stream.base import Sink
from edgebrain.stream.pipeline import build_pipeline, encode_file
from edgebrain.stream.timeline import TimelineRecorder
from tests.conftest import need
from tests.test_extras import EXTRAS, without

IMU = "imu/sp-sw-har/s16/s16_01_sw.csv"
NMNIST = "events/nmnist-small/1.bs2"
PLOT_ERROR = "error: --plot needs matplotlib, an optional dependency: pip install 'edgebrain[plot]'"


@pytest.fixture(scope="module")
def har():
    return Model.load(zoo.path("har-l2mu"))


@pytest.fixture(scope="module")
def nmnist():
    return Model.load(zoo.path("nmnist"))


class Keep(Sink):
    def __init__(self):
        self.decisions = []

    def emit(self, d):
        self.decisions.append(d)


def _stream(model, path, **kw):
    cfg = model.graph.meta["stream"]
    rec, keep = TimelineRecorder(cfg["labels"], **kw), Keep()
    summary = build_pipeline(model, str(path), sinks=[keep], observers=[rec]).run()
    return rec, keep.decisions, summary


def _independent(model, path):
    """The encoded recording run through a fresh session with every spiking layer recorded."""
    cfg = model.graph.meta["stream"]
    x, labels, t = encode_file(path, cfg["encoder"], rate=cfg["rate"], input_shape=model.input_shape)
    sess = model.session("int")
    _, rec = sess.run(x, record=sess.spiking_nodes)
    return x, labels, t, {n: rec[f"spikes/{n}"].reshape(len(x), -1) for n in sess.spiking_nodes}


def _dots(t, spikes, every=None):
    """(time, row) of every spike, layers stacked in order; ``every``: node -> neuron stride."""
    out, row0 = [], 0
    for n, a in spikes.items():
        k = (every or {}).get(n, 1)
        a = a[:, ::k]
        s, c = np.nonzero(a)
        out += list(zip(t[s].tolist(), (c + row0).tolist()))
        row0 += a.shape[1]
    return sorted(out)


def _time_axes(plotted):
    return [plotted["axes"][k] for k in ("input", "raster", "decisions", "confidence")]


def test_figure_of_a_labelled_imu_recording(har, datasets):
    """s16_01 through zoo:har-l2mu: every spike of an independent run is one dot at its step's time and
    its neuron's row, the decisions drawn are the sink's, the truth drawn is the file's labels, and the
    time axis runs from 0 to the stream's duration."""
    path = need(datasets / IMU)
    rec, decisions, summary = _stream(har, path)
    x, labels, t, spikes = _independent(har, path)
    fig, p = draw_timeline(rec)
    try:
        # the raster: the collection drawn holds one dot per (step, neuron) with a spike
        raster = [c for c in p["axes"]["raster"].collections if c.get_gid() == "raster"]
        assert len(raster) == 1
        offsets = raster[0].get_offsets()
        expected = _dots(t, spikes)
        assert len(offsets) == len(expected) == sum(int(np.count_nonzero(a)) for a in spikes.values()) > 1000
        assert sorted(zip(p["raster"]["t"].tolist(), p["raster"]["row"].tolist())) == expected
        np.testing.assert_array_equal(np.sort(offsets[:, 0]), np.sort(p["raster"]["t"]))
        # binary spikes: the dots are also the pipeline's spike totals
        assert sum(lay["spikes"] for lay in rec.data()["layers"]) == len(expected)
        # time axis: the stream's duration, on every time panel
        for ax in _time_axes(p):
            assert ax.get_xlim() == pytest.approx((0.0, summary["stream_seconds"]), abs=1e-12)
        assert summary["stream_seconds"] == pytest.approx(t[-1])
        # decisions: those the sink received, at their times and class indices
        dec = next(c for c in p["axes"]["decisions"].collections if c.get_gid() == "decisions").get_offsets()
        assert len(dec) == len(decisions) == summary["decisions"]
        np.testing.assert_allclose(dec[:, 0], [d.t for d in decisions])
        np.testing.assert_array_equal(dec[:, 1], [d.index for d in decisions])
        # truth: the recording's own labels per step, as class indices
        names = har.graph.meta["stream"]["labels"]
        truth_line = next(ln for ln in p["axes"]["decisions"].lines if ln.get_gid() == "truth")
        np.testing.assert_allclose(truth_line.get_xdata(), t)
        np.testing.assert_array_equal(truth_line.get_ydata(), [names.index(v) for v in labels])
        # the input panel: the encoded axes, one line per channel, named after the file's columns
        lines = p["axes"]["input"].lines
        assert len(lines) == x.shape[1]
        np.testing.assert_allclose(np.stack([ln.get_ydata() for ln in lines], 1), x, rtol=1e-6)
        # confidence: each decision's
        np.testing.assert_allclose(p["confidence"]["confidence"], [d.confidence for d in decisions])
        assert p["latency"]["steady"].sum() + p["latency"]["flush"].sum() == len(decisions)
    finally:
        fig.clf()


def test_big_layers_are_subsampled_and_say_so(nmnist, datasets):
    """N-MNIST's convolutional layers (10,800 and 4,608 neurons) are drawn through every k-th neuron:
    the dots are exactly the spikes of those neurons, the title says which, the events panel is the
    events binned per step."""
    path = need(datasets / NMNIST)
    rec, _, summary = _stream(nmnist, path)
    x, _, t, spikes = _independent(nmnist, path)
    every = {n: math.ceil(a.shape[1] / 256) for n, a in spikes.items()}
    assert every == {"1": 43, "4": 18, "8": 1}
    fig, p = draw_timeline(rec)
    try:
        assert sorted(zip(p["raster"]["t"].tolist(), p["raster"]["row"].tolist())) == _dots(t, spikes, every)
        title = p["axes"]["raster"].get_title(loc="left")
        assert "node 1: every 43rd neuron" in title and "node 4: every 18th neuron" in title
        total = sum(int(np.count_nonzero(a)) for a in spikes.values())
        assert f"{total:,}" in title   # the spikes of every neuron, beside the dots drawn
        assert [lay["active"] for lay in rec.data()["layers"]] == [int(np.count_nonzero(a)) for a in spikes.values()]
        np.testing.assert_allclose(p["input"]["values"], x.reshape(len(x), -1).sum(1), rtol=1e-6)
        assert p["axes"]["input"].get_title(loc="left").startswith("events binned per step")
        assert p["axes"]["raster"].get_xlim() == (0.0, summary["stream_seconds"])
    finally:
        fig.clf()


def test_memory_stays_bounded_on_a_long_stream(har, datasets):
    """Twenty passes of s16_01 (about 4 minutes of stream) into one recorder with small bounds: it never
    keeps more than its bounds; what it keeps is every stride-th step, with exactly the spikes an
    independent run gives at those steps; its totals still count everything."""
    path = need(datasets / IMU)
    cfg = har.graph.meta["stream"]
    _, _, t, spikes = _independent(har, path)
    one = {n: a for n, a in spikes.items()}
    T = len(t)
    rec = TimelineRecorder(cfg["labels"], max_steps=700, max_dots=6000, max_decisions=100)
    all_decisions = []
    passes = 20
    for k in range(passes):
        rec.begin(f"pass {k}")
        keep = Keep()
        s = build_pipeline(har, str(path), sinks=[keep], observers=[rec]).run()
        all_decisions += [(rec.segments[-1]["t0"] + d.t, d.index) for d in keep.decisions]
        d = rec.data()
        assert len(d["t"]) <= 700 and len(d["dots_t"]) <= 6000 and len(d["decisions"]["t"]) <= 100
    d = rec.data()
    assert d["steps"] == passes * T and rec.stride >= 16 and rec.stride & (rec.stride - 1) == 0
    assert d["stride"] == rec.stride
    np.testing.assert_array_equal(d["step"], np.arange(0, passes * T, rec.stride))
    assert d["duration"] == pytest.approx(passes * s["stream_seconds"])
    # the dots: every spike at a kept step (fresh session each pass: the same spikes every pass)
    whole = {n: np.concatenate([a] * passes) for n, a in one.items()}
    kept = {n: a[d["step"]] for n, a in whole.items()}
    assert len(d["dots_t"]) == sum(int(np.count_nonzero(a)) for a in kept.values())
    assert [lay["active"] for lay in d["layers"]] == [passes * int(np.count_nonzero(a)) for a in one.values()]
    # decisions: every stride-th, the count of all of them kept
    assert d["n_decisions"] == len(all_decisions) == passes * s["decisions"]
    kept_dec = all_decisions[::d["decision_stride"]]
    np.testing.assert_allclose(d["decisions"]["t"], [a for a, _ in kept_dec])
    np.testing.assert_array_equal(d["decisions"]["index"], [b for _, b in kept_dec])
    assert int(d["latency_hist"]["steady"].sum() + d["latency_hist"]["flush"].sum()) == len(all_decisions)
    fig, p = draw_timeline(rec)
    try:
        assert p["axes"]["raster"].get_xlim() == pytest.approx((0.0, d["duration"]))
        nth = f"{rec.stride}{'nd' if rec.stride % 10 == 2 and rec.stride % 100 != 12 else 'th'}"  # a power of 2
        assert f"every {nth} step" in p["axes"]["raster"].get_title(loc="left")
    finally:
        fig.clf()


# ----------------------------------------------------------------------------- the command line


def cli(args, capsys, timeout=600):
    """The CLI in this process; returns (exit code, stdout, stderr)."""
    box = {}

    def run():
        try:
            main([str(a) for a in args])
            box["code"] = 0
        except SystemExit as e:
            box["code"] = e.code
        except BaseException as e:  # noqa: BLE001 - re-raised below
            box["exc"] = e

    th = threading.Thread(target=run, daemon=True)
    th.start()
    th.join(timeout)
    assert not th.is_alive(), f"edgebrain {' '.join(map(str, args))} did not finish"
    if "exc" in box:
        raise box["exc"]
    out = capsys.readouterr()
    return box["code"], out.out, out.err


@pytest.fixture
def figures(monkeypatch):
    """The TimelineFigure objects the command writes (the real ones, kept to be looked at)."""
    seen = []
    real = TP.TimelineFigure.write

    def write(self):
        seen.append(self)
        return real(self)

    monkeypatch.setattr(TP.TimelineFigure, "write", write)
    return seen


def _png_size(path):
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_stream_json_and_plot(datasets, tmp_path, capsys, figures):
    """``stream --json --plot``: stdout stays JSON lines; the figure written draws the JSON's decisions
    at their times and classes, over the summary's stream seconds."""
    path = need(datasets / IMU)
    png = tmp_path / "timeline.png"
    code, out, err = cli(["stream", "zoo:har-l2mu", "--source", path, "--json", "--plot", png], capsys)
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    decisions, summary = rows[:-1], rows[-1]["summary"]
    assert f"timeline: wrote {png}" in err
    assert _png_size(png) == (1300, 960)
    (figure,) = figures
    fig, p = draw_timeline(figure.recorder)
    try:
        names = p["axes"]["decisions"].get_yticklabels()
        labels = figure.recorder.labels
        assert [x.get_text() for x in names][1:len(labels) + 1] == labels
        np.testing.assert_allclose(p["decisions"]["t"], [d["t"] for d in decisions], atol=1e-6)
        np.testing.assert_array_equal(p["decisions"]["index"],
                                      [labels.index(d["label"]) if d["label"] else -1 for d in decisions])
        truth = [labels.index(d["truth"]) for d in decisions]
        np.testing.assert_array_equal(figure.recorder.data()["decisions"]["truth"], truth)
        assert p["xlim"] == (0.0, summary["stream_seconds"])
        assert len(p["raster"]["t"]) == sum(lay["active"] for lay in figure.recorder.data()["layers"])
    finally:
        fig.clf()


def test_demo_plot_puts_the_recordings_one_after_another(datasets, tmp_path, capsys, figures):
    """``demo nmnist --plot``: three recordings on one time axis, each starting where the previous one
    ended; the decisions drawn are the demo's JSON decisions; the truth drawn is each file's label."""
    need(datasets / NMNIST)
    png = tmp_path / "demo.png"
    code, out, err = cli(["demo", "nmnist", "--items", 3, "--json", "--plot", png], capsys)
    assert code == 0, err
    res = json.loads(out)
    assert res["plot"]["path"] == str(png) and res["plot"]["decisions"] == len(res["decisions"])
    _png_size(png)
    (figure,) = figures
    d = figure.recorder.data()
    segs = d["segments"]
    assert [s["name"] for s in segs] == res["recordings"]
    assert segs[0]["t0"] == 0.0 and all(a["t1"] == b["t0"] for a, b in itertools.pairwise(segs))
    assert d["duration"] == pytest.approx(res["stream_seconds"], abs=1e-3)
    start = {s["name"]: s["t0"] for s in segs}
    np.testing.assert_allclose(d["decisions"]["t"], [start[x["file"]] + x["t"] for x in res["decisions"]], atol=1e-4)
    labels = figure.recorder.labels
    np.testing.assert_array_equal(d["decisions"]["index"], [labels.index(x["label"]) for x in res["decisions"]])
    np.testing.assert_array_equal(d["decisions"]["truth"], [labels.index(x["truth"]) for x in res["decisions"]])
    for s in segs:  # every step of a file carries that file's truth
        m = (d["t"] > s["t0"]) & (d["t"] <= s["t1"])
        assert m.any() and set(d["truth"][m].tolist()) == {labels.index(s["truth"])}


def test_demo_motion_plot(tmp_path, capsys, figures):
    """The built-in synthetic example draws its fixed-point stream too: its decisions and truth."""
    png = tmp_path / "motion.png"
    code, out, err = cli(["demo", "motion", "--json", "--plot", png], capsys)
    assert code == 0, err
    res = json.loads(out)
    _png_size(png)
    (figure,) = figures
    d = figure.recorder.data()
    classes = figure.recorder.labels
    assert d["duration"] == res["seconds_streamed"] == res["plot"]["duration_s"]
    np.testing.assert_allclose(d["decisions"]["t"], [x["t"] for x in res["decisions"]])
    np.testing.assert_array_equal(d["decisions"]["index"],
                                  [classes.index(x["int"]) if x["int"] else -1 for x in res["decisions"]])
    np.testing.assert_array_equal(d["decisions"]["truth"], [classes.index(x["truth"]) for x in res["decisions"]])


@pytest.mark.parametrize("kind", ["symlink", "directory"])
def test_plot_path_refused_before_streaming(datasets, tmp_path, capsys, kind):
    """A link or a directory at the --plot path: one error line naming it (the atomic writer's rule),
    exit code 2, before any decision; the link and its target stay as they were."""
    path = need(datasets / IMU)
    target = tmp_path / "target.png"
    target.write_bytes(b"keep")
    png = tmp_path / "plot.png"
    if kind == "symlink":
        os.symlink(target, png)
    else:
        png.mkdir()
    code, out, err = cli(["stream", "zoo:har-l2mu", "--source", path, "--json", "--plot", png], capsys)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and str(png) in lines[0], err
    assert ("symbolic link" in lines[0]) if kind == "symlink" else ("directory" in lines[0])
    assert target.read_bytes() == b"keep" and (png.is_symlink() if kind == "symlink" else png.is_dir())


def test_plot_over_the_source_is_refused(datasets, tmp_path, capsys):
    """The figure may not replace one of the inputs (here: a copy of the recording named .png)."""
    src = tmp_path / "rec.png"
    src.write_bytes(need(datasets / IMU).read_bytes())
    code, out, err = cli(["stream", "zoo:har-l2mu", "--source", src, "--format", "csv", "--plot", src], capsys)
    assert code == 2 and out == "" and "is the same file as an input" in err, err
    assert src.read_bytes() == need(datasets / IMU).read_bytes()


@pytest.mark.parametrize("args", [["stream", "zoo:har-l2mu", "--source", "REC"], ["demo", "har"], ["demo", "motion"]])
def test_plot_without_matplotlib(datasets, tmp_path, args):
    """Without the plot extra: the one documented error line, exit code 2, nothing written."""
    rec = need(datasets / IMU)
    png = tmp_path / "t.png"
    r = without(EXTRAS["plot"], *[str(rec) if a == "REC" else a for a in args], "--plot", png)
    assert r.returncode == 2 and r.stderr.strip() == PLOT_ERROR, r.stderr
    assert not png.exists()
