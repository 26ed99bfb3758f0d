"""``edgebrain stream MODEL.onnx --source REC.csv`` (docs/onnx.md, "stream"): the per-step ONNX export of
``zoo:har-lif`` gives the decisions of ``edgebrain stream zoo:har-lif --precision float`` on the same real
recording (its output spikes are the float session's: tests/onnx/test_onnx_step.py), through the same encoder and
count decoder read from its sidecar; the stateless window export decides once per window, as edgebrain's float
session run over each window from reset and counted; bad sidecars and sources: one line, exit code 2."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from tests.conftest import need
from tests.onnx.helpers import FIRST, HAR, STEP, WINDOW, cli, encoded, one_error_line

ort = pytest.importorskip("onnxruntime", reason="the onnx extra is not installed: pip install 'edgebrain[onnx]'")


def stream_json(model, source, *extra):
    rc, out, err = cli("stream", model, "--source", source, "--json", *extra)
    assert rc == 0, err
    rows = [json.loads(ln) for ln in out.splitlines() if ln.strip()]
    return [r for r in rows if "summary" not in r], rows[-1]["summary"]


def same(d):
    return {k: d.get(k) for k in ("t", "label", "confidence", "truth", "flush")}


def test_step_model_streams_the_decisions_of_the_float_session(datasets):
    csv = need(datasets / HAR / FIRST)
    got, summary = stream_json(STEP, csv)
    want, ref = stream_json("zoo:har-lif", csv, "--precision", "float")
    assert len(got) == len(want) == ref["decisions"] > 40
    assert [same(d) for d in got] == [same(d) for d in want]
    assert (summary["precision"], summary["steps"], summary["accuracy"]) == ("float", ref["steps"], ref["accuracy"])
    assert summary["latency_ms"]["n"] > 0


def test_window_model_decides_once_per_window(datasets):
    """Windows of 25 steps every 12 (the sidecar's hop), the first ending at step 24: label = argmax of the softmax
    of the window's output spike counts (ties: the lowest index), as edgebrain's float session counts them."""
    csv = need(datasets / HAR / FIRST)
    model, xs = encoded(csv)
    labels = model.graph.meta["stream"]["labels"]
    ref = []
    for a in range(0, len(xs) - 24, 12):
        s = model.session("float")
        c = s.run(xs[a:a + 25])[0].sum(0).astype(np.float64)
        p = np.exp(c - c.max())
        p /= p.sum()
        ref.append((labels[int(np.argmax(p))], float(p.max())))
    got, summary = stream_json(WINDOW, csv)
    assert len(got) == len(ref) == summary["decisions"]
    assert [d["label"] for d in got] == [r[0] for r in ref]
    np.testing.assert_allclose([d["confidence"] for d in got], [r[1] for r in ref], atol=1e-4)  # (JSON's 4 digits)
    steps = np.array([d["t"] for d in got]) * 50  # 50 steps per second: the window's last step
    np.testing.assert_allclose(np.diff(steps), 12, atol=1e-6)


def test_stream_refusals(tmp_path, datasets):
    csv = need(datasets / HAR / FIRST)
    shutil.copy(STEP, tmp_path / "m.onnx")
    one_error_line(*cli("stream", tmp_path / "m.onnx", "--source", csv)[::2], "needs a sidecar", "m.onnx.json")
    (tmp_path / "m.onnx.json").write_text(json.dumps({"hop": 12}))
    one_error_line(*cli("stream", tmp_path / "m.onnx", "--source", csv)[::2], "m.onnx.json", "'hop'", "stateful")
    (tmp_path / "m.onnx.json").write_text(json.dumps({"labels": ["a", "b"]}))
    one_error_line(*cli("stream", tmp_path / "m.onnx", "--source", csv)[::2], "m.onnx.json", "labels")
    (tmp_path / "m.onnx.json").write_text(json.dumps({"rate": -1}))
    one_error_line(*cli("stream", tmp_path / "m.onnx", "--source", csv)[::2], "m.onnx.json", "rate")
    for extra in (("--precision", "int"), ("--backend", "c"), ("--target", "host-firmware"), ("--plot", "x.png")):
        one_error_line(*cli("stream", STEP, "--source", csv, *extra)[::2], extra[0])
    one_error_line(*cli("stream", WINDOW, "--source", csv, "--decoder", "count")[::2], "--decoder")


def test_a_source_that_cannot_feed_the_model(datasets):
    """A mono recording for a model that takes 6 values per step: one line saying what the model expects."""
    wav = need(datasets / "audio" / "fsdd" / "recordings" / "0_theo_0.wav")
    for m in (STEP, WINDOW):
        one_error_line(*cli("stream", m, "--source", wav, "--encoder", "direct:")[::2], "(6,) = 6 values")
