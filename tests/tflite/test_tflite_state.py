"""Per-step stateful TFLite models (docs/tflite.md, "Stateful models"): a small RNN step exported with its state
as an input and an output, h' = relu(W·x + b + U·h), y = V·h' (FULLY_CONNECTED, ADD, RELU), hand-built with
LiteRT's schema module (tests/tflite/tflite_builder.py), float and int8. References independent of edgebrain's
step session: a NumPy recurrence for the float model; for the int8 model, LiteRT's interpreter stepped by this
test, which feeds the state back itself (requantized by the test's own rule), and the float recurrence within
the quantization's error. Needs the ``tflite`` extra (ai-edge-litert)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import cli, need, one_error_line
from tests.tflite.tflite_builder import TFLiteBuilder

litert = pytest.importorskip("ai_edge_litert.interpreter", reason="the tflite extra is not installed: "
                             "pip install 'edgebrain[tflite]' (ai-edge-litert)")

IN, H, OUT = 6, 8, 5
REC = "imu/sp-sw-har/s16/s16_01_sw.csv"
LABELS = ["a", "b", "c", "d", "e"]


def weights():
    r = np.random.default_rng(17)
    W = (r.normal(0, 0.4, (H, IN))).astype(np.float32)
    U = (r.normal(0, 0.3, (H, H))).astype(np.float32)
    b = (r.normal(0, 0.2, H)).astype(np.float32)
    V = (r.normal(0, 0.5, (OUT, H))).astype(np.float32)
    return W, U, b, V


#: tensor names: (data input, state input, output, state output), as TensorFlow's converter writes them
BY_NAME = ("serving_default_x:0", "serving_default_h_in:0", "StatefulPartitionedCall:0", "h_out:0")
OPAQUE = ("serving_default_x:0", "serving_default_hidden:0", "StatefulPartitionedCall:0", "StatefulPartitionedCall:1")


def float_rnn(path, names=BY_NAME):
    """The float step: inputs (x, h), outputs (y, h')."""
    W, U, b, V = weights()
    g = TFLiteBuilder()
    x, h = g.name(g.tensor((1, IN)), names[0]), g.name(g.tensor((1, H)), names[1])
    a = g.dense(x, W, b)
    c = g.dense(h, U, np.zeros(H, np.float32))
    hn = g.name(g.op("RELU", [g.add(a, c, (1, H))], (1, H)), names[3])
    y = g.name(g.dense(hn, V, np.zeros(OUT, np.float32)), names[2])
    return g.write(path, [x, h], [y, hn])


def float_reference(xs, h0=None):
    """The NumPy recurrence (float32), from h = 0: (ys, hs)."""
    W, U, b, V = weights()
    h = np.zeros(H, np.float32) if h0 is None else np.asarray(h0, np.float32)
    ys, hs = [], []
    for x in np.asarray(xs, np.float32):
        h = np.maximum(W @ x + b + U @ h, 0).astype(np.float32)
        ys.append(V @ h)
        hs.append(h)
    return np.stack(ys), np.stack(hs)


# the int8 model's quantization: the state's input and output have different scales and zero points
SX, ZX = 0.05, 3          # x
SH_IN, ZH_IN = 0.05, -100  # the state input h
SA, ZA = 0.06, 2          # W·x + b
SC, ZC = 0.08, -1         # U·h
SS, ZS = 0.045, -128      # h' = relu(a + c): the state output (RELU keeps its input's parameters)
SY, ZY = 0.08, 4          # y


def qweights():
    W, U, b, V = weights()
    sw, su, sv = (float(np.abs(m).max() / 127) for m in (W, U, V))
    q = lambda m, s: np.clip(np.round(m / s), -127, 127).astype(np.int8)
    return (q(W, sw), sw, np.round(b / (SX * sw)).astype(np.int32), q(U, su), su, q(V, sv), sv)


def int8_rnn(path, names=BY_NAME):
    Wq, sw, bq, Uq, su, Vq, sv = qweights()
    g = TFLiteBuilder()
    x = g.name(g.qtensor((1, IN), SX, ZX), names[0])
    h = g.name(g.qtensor((1, H), SH_IN, ZH_IN), names[1])
    a = g.qdense(x, Wq, sw, bq, SX * sw, SA, ZA)
    c = g.qdense(h, Uq, su, np.zeros(H, np.int32), SH_IN * su, SC, ZC)
    s = g.qop("ADD", [a, c], (1, H), SS, ZS, "AddOptions", fusedActivationFunction=0)
    hn = g.name(g.qop("RELU", [s], (1, H), SS, ZS), names[3])
    y = g.name(g.qdense(hn, Vq, sv, np.zeros(OUT, np.int32), SS * sv, SY, ZY), names[2])
    return g.write(path, [x, h], [y, hn])


def requant_half_away(q, s0, z0, s1, z1):
    """The test's own requantization of the state (docs/tflite.md): dequantize with the output's parameters,
    quantize with the input's, round half away from zero, saturate to int8."""
    v = (q.astype(np.float64) - z0) * s0 / s1
    return np.clip(np.trunc(v + np.copysign(0.5, v)) + z1, -128, 127).astype(np.int8)


def litert_stepped(path, xs, feed=requant_half_away):
    """LiteRT's interpreter stepped by this test: x quantized (half to even, as edgebrain's input), the state
    fed back by ``feed`` (raw int8 → int8), outputs dequantized: (ys, states dequantized)."""
    it = litert.Interpreter(model_path=str(path), num_threads=1)
    it.allocate_tensors()
    ins = {d["name"]: d for d in it.get_input_details()}
    outs = {d["name"]: d for d in it.get_output_details()}
    dx, dh, dy, dhn = ins[BY_NAME[0]], ins[BY_NAME[1]], outs[BY_NAME[2]], outs[BY_NAME[3]]
    (sx, zx), (sh, zh), (sy, zy), (sn, zn) = (d["quantization"] for d in (dx, dh, dy, dhn))
    h = np.full((1, H), zh, np.int8)
    ys, hs = [], []
    for x in xs:
        it.set_tensor(dx["index"], np.clip(np.round(x.astype(np.float64) / sx) + zx, -128, 127).astype(np.int8)[None])
        it.set_tensor(dh["index"], h)
        it.invoke()
        y, hn = it.get_tensor(dy["index"]), it.get_tensor(dhn["index"])
        ys.append((y[0].astype(np.float64) - zy) * sy)
        hs.append((hn[0].astype(np.float64) - zn) * sn)
        h = feed(hn, sn, zn, sh, zh)
    return np.stack(ys).astype(np.float32), np.stack(hs).astype(np.float32)


def inputs(n=40, seed=0):
    return np.random.default_rng(seed).normal(0, 1.5, (n, IN)).astype(np.float32)


# ------------------------------------------------------------------------------------------------ the float model
def test_float_step_session_equals_the_numpy_recurrence(tmp_path):
    from edgebrain.tflite_session import TFLiteModel

    m = TFLiteModel.load(float_rnn(tmp_path / "rnn.tflite"))
    assert (m.stateful, m.states, m.state_from, m.data_name, list(m.output_shapes)) == (
        True, {BY_NAME[1]: BY_NAME[3]}, "names", BY_NAME[0], [BY_NAME[2]])
    xs = inputs()
    ys, hs = float_reference(xs)
    s = m.step_session()
    got = np.stack([s.step(x) for x in xs])
    np.testing.assert_allclose(got, ys, rtol=0, atol=1e-5)
    assert (hs > 0).any() and (hs == 0).any()  # the ReLU both passes and cuts
    np.testing.assert_allclose(s.state[BY_NAME[1]][0], hs[-1], rtol=0, atol=1e-5)
    out, states = m.run_steps(xs)
    np.testing.assert_allclose(out[BY_NAME[2]], ys, rtol=0, atol=1e-5)
    np.testing.assert_allclose(states[BY_NAME[3]], hs, rtol=0, atol=1e-5)
    s.reset()  # from the initial state again
    np.testing.assert_allclose(s.run(xs)[0], ys, rtol=0, atol=1e-5)
    snap = s.snapshot()
    a = s.step(xs[0])
    s.restore(snap)
    np.testing.assert_array_equal(s.step(xs[0]), a)


def test_run_of_a_stateful_model_on_the_command_line(tmp_path):
    path = float_rnn(tmp_path / "rnn.tflite")
    xs = inputs()
    np.save(tmp_path / "x.npy", xs)
    rc, out, err = cli("run", path, "--input", tmp_path / "x.npy", "-o", tmp_path / "y.npz", "--json")
    assert rc == 0, err
    s = json.loads(out)
    assert s["stateful"] is True and s["steps"] == len(xs) and s["format"] == "tflite"
    ys, hs = float_reference(xs)
    with np.load(tmp_path / "y.npz") as z:
        assert sorted(z) == ["output", f"state/{BY_NAME[3]}"]
        np.testing.assert_allclose(z["output"], ys, rtol=0, atol=1e-5)
        np.testing.assert_allclose(z[f"state/{BY_NAME[3]}"], hs, rtol=0, atol=1e-5)
    rc, out, err = cli("run", path, "--input", tmp_path / "x.npy", "-o", tmp_path / "y2.npz")
    assert rc == 0 and "40 timesteps (states fed back)" in out, out + err


def test_inspect_says_which_inputs_are_states(tmp_path):
    path = float_rnn(tmp_path / "rnn.tflite")
    rc, out, err = cli("inspect", path, "--json")
    assert rc == 0, err
    s = json.loads(out)
    assert (s["state"], s["state_from"], s["initial_state"]) == ({BY_NAME[1]: BY_NAME[3]}, "names", "zeros")
    assert [(r["name"], r["role"]) for r in s["inputs"]] == [(BY_NAME[0], "data"), (BY_NAME[1], "state")]
    assert [(r["name"], r["role"]) for r in s["outputs"]] == [(BY_NAME[2], "output"), (BY_NAME[3], "state")]
    assert s["inputs"][1]["fed_from"] == BY_NAME[3] and s["outputs"][1]["feeds"] == BY_NAME[1]
    assert [op["op"] for op in s["operators"]] == ["FULLY_CONNECTED", "FULLY_CONNECTED", "ADD", "RELU",
                                                   "FULLY_CONNECTED"]
    rc, out, err = cli("inspect", path)
    text = " ".join(out.split())  # (rich wraps long lines)
    assert rc == 0 and "stateful" in text and "paired by their names" in text, out + err
    assert f"{BY_NAME[1]} (1, 8) float32 (state, from {BY_NAME[3]})" in text


def test_states_named_in_the_sidecar_and_an_initial_state(tmp_path):
    """Names that pair by no convention (``StatefulPartitionedCall:1``): two data inputs until the sidecar's
    ``state`` pairs them (by full name, or by the name without ``serving_default_`` and ``:N``); the
    sidecar's ``initial_state`` is the state at step 0."""
    path = float_rnn(tmp_path / "rnn.tflite", OPAQUE)
    xs = inputs(12)
    np.save(tmp_path / "x.npy", xs)
    args = ("run", path, "-i", tmp_path / "x.npy", "-o", tmp_path / "y.npz")
    one_error_line(*cli(*args)[::2], "rnn.tflite", f"2 inputs that are not states ({OPAQUE[0]}, {OPAQUE[1]}",
                   "sidecar's 'state'", "docs/tflite.md")
    side = tmp_path / "rnn.tflite.json"
    h0 = np.linspace(0, 1, H).tolist()
    for state in ({OPAQUE[1]: OPAQUE[3]}, {"hidden": OPAQUE[3]}):
        side.write_text(json.dumps({"state": state, "initial_state": {next(iter(state)): [h0]}}))
        rc, out, err = cli(*args, "--json")
        assert rc == 0 and json.loads(out)["stateful"], err
        with np.load(tmp_path / "y.npz") as z:
            np.testing.assert_allclose(z["output"], float_reference(xs, h0)[0], rtol=0, atol=1e-5)
    side.write_text(json.dumps({"state": {OPAQUE[1]: "StatefulPartitionedCall:7"}}))
    one_error_line(*cli(*args)[::2], "rnn.tflite.json", "'StatefulPartitionedCall:7'", "outputs:")
    side.write_text(json.dumps({"state": {"h_missing": OPAQUE[3]}}))
    one_error_line(*cli(*args)[::2], "rnn.tflite.json", "'h_missing'", "inputs:")
    side.write_text(json.dumps({"state": {OPAQUE[1]: OPAQUE[2]}}))  # (1, 8) fed from (1, 5)
    one_error_line(*cli(*args)[::2], "rnn.tflite.json", "same shape")
    side.write_text(json.dumps({"state": {OPAQUE[1]: OPAQUE[3]}, "initial_state": {OPAQUE[1]: [1, 2]}}))
    one_error_line(*cli(*args)[::2], "rnn.tflite.json", f"initial_state.{OPAQUE[1]}")


# ------------------------------------------------------------------------------------------------ the int8 model
def test_requantize_rounds_half_away_from_zero():
    from edgebrain.tflite_session import requantize

    q = np.array([-128, -3, -1, 0, 1, 3, 127], np.int8)
    # scales 0.25 → 0.5: every odd value falls on a half exactly
    np.testing.assert_array_equal(requantize(q, (0.25, 0), (0.5, 0), np.int8), [-64, -2, -1, 0, 1, 2, 64])
    np.testing.assert_array_equal(requantize(q, (0.25, 0), (0.5, 0), np.int8),
                                  requant_half_away(q, 0.25, 0, 0.5, 0))
    np.testing.assert_array_equal(requantize(q, (0.5, 1), (0.25, -2), np.int8), [-128, -10, -6, -4, -2, 2, 127])
    assert requantize(q, (0.5, 1), (0.5, 1), np.int8) is q  # the same parameters: as is


def test_int8_state_is_requantized_as_litert_stepped_by_hand(tmp_path):
    from edgebrain.tflite_session import TFLiteModel

    path = int8_rnn(tmp_path / "rnn8.tflite")
    m = TFLiteModel.load(path)
    ins = {d["name"]: d for d in m.inputs}
    outs = {d["name"]: d for d in m.all_outputs}
    assert m.states == {BY_NAME[1]: BY_NAME[3]} and m.precision == "int8"
    assert np.allclose(ins[BY_NAME[1]]["quantization"], (SH_IN, ZH_IN))
    assert np.allclose(outs[BY_NAME[3]]["quantization"], (SS, ZS))
    xs = inputs(60)
    ref, ref_h = litert_stepped(path, xs)
    s = m.step_session()
    got = np.stack([s.step(x) for x in xs])
    np.testing.assert_array_equal(got, ref)
    out, states = m.run_steps(xs)
    np.testing.assert_array_equal(out[BY_NAME[2]], ref)
    np.testing.assert_array_equal(states[BY_NAME[3]], ref_h)
    # the requantization matters: the raw int8 state fed back as it is gives other outputs
    raw, _ = litert_stepped(path, xs, feed=lambda q, *a: q)
    assert not np.array_equal(raw, ref)
    # and the int8 model follows the float recurrence within its quantization's error
    ys, _ = float_reference(xs)
    assert np.abs(got - ys).max() < 0.05 * np.abs(ys).max()
    np.save(tmp_path / "x.npy", xs)
    rc, _, err = cli("run", path, "-i", tmp_path / "x.npy", "-o", tmp_path / "y.npz", "--json")
    assert rc == 0, err
    with np.load(tmp_path / "y.npz") as z:
        np.testing.assert_array_equal(z["output"], ref)


# ------------------------------------------------------------------------------------------------ stream
def _stream(model, source, *extra):
    rc, out, err = cli("stream", model, "--source", source, "--json", *extra)
    assert rc == 0, err
    rows = [json.loads(ln) for ln in out.splitlines() if ln.strip()]
    return [r for r in rows if "summary" not in r], rows[-1]["summary"]


def vmax_reference(ys, window=25, hop=12):
    """The sidecar's decoder (``vmax:window=25,hop=12``) worked out on the reference outputs: for each full
    window (its last step, label index, confidence = the softmax's largest value of the window's maxima)."""
    out = []
    for a in range(0, len(ys) - window + 1, hop):
        m = ys[a:a + window].max(0).astype(np.float64)
        p = np.exp(m - m.max())
        p /= p.sum()
        out.append((a + window - 1, int(np.argmax(p)), float(p.max())))
    return out


def test_stream_decides_as_the_reference_recurrence_decoded(tmp_path, datasets):
    """``edgebrain stream`` of the float step model over a real recording (6 channels through the ``direct``
    encoder, 100 steps/s as recorded): one step per sample, its state kept, the outputs through the sidecar's
    decoder. Its decisions on full windows are those of the NumPy recurrence's outputs decoded by hand."""
    from edgebrain.stream.pipeline import encode_file

    csv = need(datasets / REC)
    path = float_rnn(tmp_path / "rnn.tflite")
    (tmp_path / "rnn.tflite.json").write_text(json.dumps(
        {"encoder": "direct", "rate": 100, "decoder": "vmax:window=25,hop=12", "labels": LABELS}))
    xs, _, ts = encode_file(csv, "direct", 100.0, (IN,))
    ys, _ = float_reference(xs)
    ref = vmax_reference(ys)
    got, summary = _stream(path, csv)
    full = [d for d in got if not d.get("flush")]
    assert summary["steps"] == len(xs) and summary["precision"] == "float"
    assert len(full) == len(ref) == (len(xs) - 25) // 12 + 1 > 50
    assert summary["decisions"] == len(got) == len(ref) + summary["flush_decisions"]
    assert [d["label"] for d in full] == [LABELS[k] for _, k, _ in ref]
    assert len({d["label"] for d in full}) > 1
    np.testing.assert_allclose([d["confidence"] for d in full], [c for _, _, c in ref], atol=2e-4)  # JSON: 4 digits
    np.testing.assert_allclose([d["t"] for d in full], [ts[e] for e, _, _ in ref], atol=1e-3)
    again, _ = _stream(path, csv)
    keys = ("t", "label", "confidence", "truth", "flush")
    assert [[d.get(k) for k in keys] for d in again] == [[d.get(k) for k in keys] for d in got]


def test_stream_of_the_int8_model_is_deterministic(tmp_path, datasets):
    csv = need(datasets / REC)
    path = int8_rnn(tmp_path / "rnn8.tflite")
    (tmp_path / "rnn8.tflite.json").write_text(json.dumps(
        {"encoder": "direct", "rate": 100, "decoder": "vmax:window=25,hop=12", "labels": LABELS}))
    got, summary = _stream(path, csv)
    again, _ = _stream(path, csv)
    keys = ("t", "label", "confidence", "truth", "flush")
    assert summary["precision"] == "int" and summary["steps"] > 1000
    assert len(got) == summary["decisions"] == (summary["steps"] - 25) // 12 + 1 + summary["flush_decisions"]
    assert [[d.get(k) for k in keys] for d in again] == [[d.get(k) for k in keys] for d in got]


def test_stream_refusals(tmp_path, datasets):
    csv = need(datasets / REC)
    path = float_rnn(tmp_path / "rnn.tflite")
    one_error_line(*cli("stream", path, "--source", csv)[::2], "needs a sidecar", "rnn.tflite.json", '"state"')
    side = tmp_path / "rnn.tflite.json"
    side.write_text(json.dumps({"hop": 12}))
    one_error_line(*cli("stream", path, "--source", csv)[::2], "rnn.tflite.json", "'hop'", "stateful")
    side.write_text(json.dumps({"labels": ["a", "b"]}))
    one_error_line(*cli("stream", path, "--source", csv)[::2], "rnn.tflite.json", "labels")
    side.write_text(json.dumps({"rate": 100, "state": {"h_nope": "h_out:0"}}))
    one_error_line(*cli("stream", path, "--source", csv)[::2], "rnn.tflite.json", "'h_nope'")
    side.write_text(json.dumps({"rate": 100}))
    for extra in (("--precision", "int"), ("--plot", str(tmp_path / "x.png"))):
        one_error_line(*cli("stream", path, "--source", csv, *extra)[::2], extra[0])
    two = float_rnn(tmp_path / "two.tflite", OPAQUE)
    (tmp_path / "two.tflite.json").write_text(json.dumps({"rate": 100}))
    one_error_line(*cli("stream", two, "--source", csv)[::2], "2 inputs that are not states", OPAQUE[1],
                   "sidecar's 'state'")


def test_bench_steps_with_the_state_fed_back(tmp_path):
    from edgebrain.tflite_session import TFLiteModel

    path = float_rnn(tmp_path / "rnn.tflite")
    m = TFLiteModel.load(path)
    xs = inputs(5)
    got = np.stack([m.invoke(x)[0] for x in xs])  # what bench times: one timestep each, its state kept
    np.testing.assert_allclose(got, float_reference(xs)[0], rtol=0, atol=1e-5)
    rc, out, err = cli("bench", path, "-n", "30", "--json")
    assert rc == 0, err
    assert json.loads(out)["latency_us"]["count"] >= 30
