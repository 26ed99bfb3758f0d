"""zoo:har-l2mu and zoo:har-lif on the real smartwatch recordings of the test subjects (s16–s18), and the
training pipeline end to end on a tiny subset."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import need, need_full, run_training_smoke

from tests.conftest import REPO  # noqa: E402  (the repository root)


def zoo_model(name):
    from edgebrain import zoo
    from edgebrain.model import Model

    if name not in zoo.names():
        pytest.skip(f"zoo:{name} not in this checkout")
    return Model.load("zoo:" + name)


def har_test_files(datasets):
    root = datasets / "imu" / "sp-sw-har"
    files = sorted(p for s in (16, 17, 18) for p in (root / f"s{s}").glob(f"s{s}_*_sw.csv"))
    if not files:
        pytest.skip(f"no test-subject recordings under {root}")
    return files


def read_labels(path):
    """(seconds from the first sample, label) read straight from the CSV, independently of edgebrain."""
    with open(path) as f:
        rows = list(csv.DictReader(f))
    t = np.array([float(r["timestamp"]) for r in rows]) / 1e3
    return t - t[0], np.array([r["label"] for r in rows])


@pytest.mark.parametrize("name", ["har-l2mu", "har-lif"])
def test_zoo_accuracy_on_test_subjects(datasets, name):
    """Streaming every test recording through edgebrain reproduces the accuracy the card records."""
    from edgebrain.stream.pipeline import build_pipeline

    m = zoo_model(name)
    card = m.graph.meta["card"]
    need_full(datasets, "the accuracy over all 30 recordings of the test subjects")
    files = har_test_files(datasets)
    for precision, key in (("float", "float"), ("int", "int8")):
        correct = scored = 0
        for f in files:
            s = build_pipeline(m, str(f), precision=precision).run()
            correct += round(s.get("accuracy", 0) * s.get("scored_decisions", 0))
            scored += s.get("scored_decisions", 0)
        acc = correct / scored
        assert acc >= card["accuracy"][key] - 0.01, (precision, acc, card["accuracy"][key])
        assert acc > 0.5  # five classes: far above chance


def score_by_hand(decisions, path) -> float:
    """The fraction of decisions (t, label) equal to the majority label of the file's samples in the
    half second up to t (decisions with no sample in that window are not scored)."""
    t, lab = read_labels(path)
    hits = n = 0
    for dt, label in decisions:
        inwin = (t > dt - 0.5) & (t <= dt + 1e-9)
        if not inwin.any():
            continue
        vals, counts = np.unique(lab[inwin], return_counts=True)
        n += 1
        hits += int(label == vals[counts.argmax()])
    return hits / n


@pytest.mark.parametrize("name", ["har-l2mu", "har-lif"])
def test_zoo_accuracy_on_a_test_subject_recording(datasets, name):
    """The test above on the one test-subject recording of the fixture set (s16_01, in the full datasets
    too): in both precisions every decision scored by hand against the file's own labels gives the
    accuracy the pipeline reports, within 0.1 of the card's accuracy over all test subjects."""
    from edgebrain.stream.base import Sink
    from edgebrain.stream.pipeline import build_pipeline

    m = zoo_model(name)
    card = m.graph.meta["card"]
    f = need(datasets / "imu/sp-sw-har/s16/s16_01_sw.csv")

    class Collect(Sink):
        def __init__(self):
            self.got = []

        def emit(self, d):
            self.got.append((float(d.t), d.label))

    for precision, key in (("float", "float"), ("int", "int8")):
        p = build_pipeline(m, str(f), precision=precision)
        sink = Collect()
        p.sinks.append(sink)
        s = p.run()
        mine = score_by_hand(sink.got, f)
        assert len(sink.got) == s["decisions"] >= 0.9 * s["stream_seconds"] / 0.24   # one every 0.24 s
        assert abs(mine - s["accuracy"]) <= 0.03, (precision, mine, s["accuracy"])
        assert mine >= card["accuracy"][key] - 0.1, (precision, mine, card["accuracy"][key])


def test_cli_stream_json_can_be_scored_against_the_file(datasets):
    """`edgebrain stream zoo:har-l2mu --source s16_01_sw.csv --json` scored by hand against the file's labels."""
    zoo_model("har-l2mu")
    f = har_test_files(datasets)[0]
    r = subprocess.run([sys.executable, "-m", "edgebrain", "stream", "zoo:har-l2mu", "--source", str(f), "--json"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines() if x.strip()]
    summary = lines[-1]["summary"]
    decisions = lines[:-1]
    t, lab = read_labels(f)
    assert len(decisions) == summary["decisions"] and len(decisions) >= 0.9 * t[-1] / 0.24
    hits = n = 0
    for d in decisions:
        inwin = (t > d["t"] - 0.5) & (t <= d["t"] + 1e-9)
        if not inwin.any():
            continue
        vals, counts = np.unique(lab[inwin], return_counts=True)
        n += 1
        hits += int(d["label"] == vals[counts.argmax()])
    mine = hits / n
    assert abs(mine - summary["accuracy"]) <= 0.03, (mine, summary["accuracy"])


def test_training_pipeline_smoke(datasets, tmp_path):
    """tools/train/har.py on a tiny subset: trains, exports NIR, converts, quantizes, evaluates, writes cards."""
    r = run_training_smoke("har.py", datasets, tmp_path, datasets / "imu" / "sp-sw-har", timeout=900)
    assert "output spikes identical: 100.00 %" in r.stdout
    from edgebrain.model import Model

    for name in ("har-l2mu", "har-lif"):
        m = Model.load(tmp_path / f"{name}.ebm")
        assert m.quant and m.graph.meta["stream"]["labels"][0] == "SEATED"
        assert (tmp_path / f"{name}.md").read_text().startswith(f"# `zoo:{name}`")
    # the L2MU's recurrent populations became delayed edges, nothing else special
    m = Model.load(tmp_path / "har-l2mu.ebm")
    delayed = {tuple(e) for e in m.summary()["delayed_edges"]}
    assert delayed and all(a in ("lif_h", "lif_m") for a, _ in delayed)
