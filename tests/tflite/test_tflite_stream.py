"""``edgebrain stream MODEL.tflite --source REC.csv``: a TFLite model over windows of the encoded stream,
with its sidecar JSON (docs/tflite.md, "Streaming"), checked against LiteRT's own interpreter invoked on
windows cut by NumPy from the same real recording with the same normalisation."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from tests.conftest import need
from tests.tflite.test_tflite import DATA, FACTS, TEST_FILES, cli, one_error_line

litert = pytest.importorskip("ai_edge_litert.interpreter", reason="the tflite extra is not installed: "
                             "pip install 'edgebrain[tflite]' (ai-edge-litert)")

WINDOW, HOP = 50, 25


def sidecar(name):
    return json.loads((DATA / f"{name}.tflite.json").read_text())


def spec_values(spec, key):
    opts = dict(kv.split("=") for kv in spec.split(":", 1)[1].split(","))
    return np.array([float(v) for v in opts[key].split("|")])


def per_file(raw):
    """The fixture script's normalisation (per channel over the file) as an --encoder setting:
    offset = mean, scale = 1 / std."""
    m, s = raw.mean(0), np.maximum(raw.std(0), 1e-9)
    return m, 1.0 / s, "offset=" + "|".join(repr(float(v)) for v in m) + ",scale=" + "|".join(
        repr(float(v)) for v in 1.0 / s)


def read_csv(path):
    raw = np.loadtxt(path, delimiter=",", skiprows=1, usecols=range(6), dtype=np.float64)
    ts = np.loadtxt(path, delimiter=",", skiprows=1, usecols=[6], dtype=np.float64)
    return raw, (ts - ts[0]) / 1000.0


def reference(name, raw, offset, scale):
    """LiteRT's interpreter, invoked directly on each window (50 samples every 25), after the
    normalisation ``(value - offset) · scale`` on the float32 sensor values: (window end index, label index,
    softmax confidence)."""
    it = litert.Interpreter(model_path=str(DATA / f"{name}.tflite"), num_threads=1)
    it.allocate_tensors()
    i, o = it.get_input_details()[0], it.get_output_details()[0]
    x = ((raw.astype(np.float32).astype(np.float64) - offset) * scale).astype(np.float32)
    out = []
    for a in range(0, len(x) - WINDOW + 1, HOP):
        v = x[a:a + WINDOW].reshape(i["shape"])
        if i["dtype"] == np.int8:
            s, z = i["quantization"]
            v = np.clip(np.round(v.astype(np.float64) / s) + z, -128, 127).astype(np.int8)
        it.set_tensor(i["index"], v)
        it.invoke()
        y = it.get_tensor(o["index"])[0]
        if o["dtype"] == np.int8:
            s, z = o["quantization"]
            y = ((y.astype(np.float64) - z) * s).astype(np.float32)
        z64 = y.astype(np.float64)
        p = np.exp(z64 - z64.max())
        p /= p.sum()
        out.append((a + WINDOW - 1, int(np.argmax(p)), float(p.max())))
    return out


def stream_json(model, source, *extra):
    rc, out, err = cli("stream", model, "--source", source, "--json", *extra)
    assert rc == 0, err
    rows = [json.loads(ln) for ln in out.splitlines() if ln.strip()]
    return [r for r in rows if "summary" not in r], rows[-1]["summary"]


@pytest.mark.parametrize("name,normalisation", [("har_mlp_float", "sidecar"), ("har_mlp_int8", "sidecar"),
                                                ("har_mlp_int8", "per-file")])
def test_stream_decisions_equal_litert_on_numpy_windows(name, normalisation, datasets):
    path = need(datasets / "imu" / "sp-sw-har" / TEST_FILES[0])
    raw, t = read_csv(path)
    enc = sidecar(name)["encoder"]
    if normalisation == "sidecar":
        offset, scale, extra = spec_values(enc, "offset"), spec_values(enc, "scale"), ()
    else:
        offset, scale, setting = per_file(raw)
        extra = ("--encoder", setting)
    ds, summary = stream_json(DATA / f"{name}.tflite", path, *extra)
    ref = reference(name, raw, offset, scale)
    assert len(ds) == len(ref) == summary["decisions"] > 10
    labels = sidecar(name)["labels"]
    for d, (end, k, conf) in zip(ds, ref):
        assert d["label"] == labels[k]
        assert d["confidence"] == round(conf, 4)
        assert abs(d["t"] - t[end]) <= 0.0105  # within a sample period (100 Hz)
    assert len({d["label"] for d in ds}) > 1  # a real recording with more than one activity


def test_stream_accuracy_matches_the_fixtures_test_accuracy(datasets):
    """The int8 and float MLP streamed over the test subjects' recordings (s16–s18; the fixture set holds
    one of them) with the fixture script's per-file normalisation: accuracy of the decisions against the
    recordings' labels (the window's most frequent label) near models.json's test accuracy."""
    from edgebrain.stream.pipeline import run_stream
    from edgebrain.tflite_stream import WindowedTFLite

    root = datasets / "imu" / "sp-sw-har"
    files = sorted(f for s in ("s16", "s17", "s18") for f in (root / s).glob(f"{s}_*_sw.csv"))
    assert files
    full = len(files) > 3
    for name in ("har_mlp_float", "har_mlp_int8"):
        m = WindowedTFLite(str(DATA / f"{name}.tflite"))
        right = scored = 0
        for f in files:
            raw, _ = read_csv(f)
            s = run_stream(m, str(f), encoder=per_file(raw)[2], activity=False)
            right += round(s["accuracy"] * s["scored_decisions"])
            scored += s["scored_decisions"]
        acc = right / scored
        want = FACTS["files"][f"{name}.tflite"]["test_accuracy"]
        print(f"{name}: streamed accuracy {acc:.4f} over {scored} windows of {len(files)} recordings; "
              f"models.json test accuracy {want:.4f}")
        if full:
            assert scored == FACTS["test_windows"]
            assert abs(acc - want) <= 0.01
        else:
            assert acc >= want - 0.15


def test_stream_without_a_sidecar_says_what_to_write(tmp_path, datasets):
    path = need(datasets / "imu" / "sp-sw-har" / TEST_FILES[0])
    m = tmp_path / "m.tflite"
    shutil.copy(DATA / "har_mlp_float.tflite", m)
    rc, out, err = cli("stream", m, "--source", path)
    one_error_line(rc, err, "sidecar", "m.tflite.json", '"encoder"', "docs/tflite.md")


def test_stream_with_a_sidecar_of_the_wrong_channel_count(tmp_path, datasets):
    path = need(datasets / "imu" / "sp-sw-har" / TEST_FILES[0])
    for name, ch, words in (("har_cnn_float", 3, ("'channels' = 3", "takes 6 per step")),
                            ("har_mlp_float", 7, ("'channels' = 7", "does not divide"))):
        m = tmp_path / f"{name}.tflite"
        shutil.copy(DATA / f"{name}.tflite", m)
        d = sidecar(name)
        d["channels"] = ch
        (tmp_path / f"{name}.json").write_text(json.dumps(d))  # the second name a sidecar may have
        one_error_line(*cli("stream", m, "--source", path)[::2], *words)
    # channels = 3 divides the MLP's 300 inputs (100 steps of 3) but the recording has 6 channels per step
    m = tmp_path / "har_mlp_float.tflite"
    d = sidecar("har_mlp_float")
    d["channels"] = 3
    (tmp_path / "har_mlp_float.json").write_text(json.dumps(d))
    one_error_line(*cli("stream", m, "--source", path)[::2], "6 values per step", "(3,)")
