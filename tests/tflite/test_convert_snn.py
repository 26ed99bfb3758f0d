"""``edgebrain convert MODEL.tflite --to-snn`` (docs/conversion.md): TFLite ANNs written by TensorFlow's
converter (tests/tflite/data) as integrate-and-fire networks, checked against LiteRT's interpreter on real
smartwatch windows (its accuracy, its decisions, its intermediate tensors), and a tiny model written here
with LiteRT's own schema module whose spike rates are worked out by hand. Needs the ``tflite`` extra."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.tflite.test_tflite import (
    DATA,
    cli,
    litert,
    litert_invoke,
    one_error_line,
)

schema = pytest.importorskip("ai_edge_litert.schema_py_generated")
flatbuffers = pytest.importorskip("flatbuffers")


def _write_model(path, s, tensors, inputs, outputs, ops, codes, bufs):
    """A one-subgraph TFLite model of these tensors and operators, written with LiteRT's schema module."""
    import flatbuffers

    g = s.SubGraphT()
    g.tensors, g.inputs, g.outputs, g.operators, g.name = tensors, inputs, outputs, ops, "main"
    m = s.ModelT()
    m.version, m.operatorCodes, m.subgraphs, m.buffers, m.description = 3, codes, [g], bufs, "edgebrain test"
    b = flatbuffers.Builder(0)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    path.write_bytes(bytes(b.Output()))
    return path

def preserved_activations(path, xs, tensors):
    """LiteRT's own values of ``tensors`` (dequantized) for every sample, with all intermediate tensors kept."""
    it = litert.Interpreter(model_path=str(path), experimental_preserve_all_tensors=True)
    it.allocate_tensors()
    i = it.get_input_details()[0]
    details = {d["index"]: d for d in it.get_tensor_details()}
    out = {t: [] for t in tensors}
    for x in xs:
        if i["dtype"] == np.int8:
            s, z = i["quantization"]
            x = np.clip(np.round(x.astype(np.float64) / s) + z, -128, 127).astype(np.int8)
        it.set_tensor(i["index"], x[None])
        it.invoke()
        for t in tensors:
            v = it.get_tensor(t).astype(np.float64)
            s, z = details[t]["quantization"]
            out[t].append((v - z) * s if s else v)
    return {t: np.stack(v) for t, v in out.items()}


# --------------------------------------------------------------------------- a tiny model, written here

W1 = np.array([[1.0, -0.5, 0.25], [0.5, 0.5, 0.5], [-1.0, 0.0, 0.75], [0.2, 0.3, -0.1]], np.float32)
B1 = np.array([0.1, -0.2, 0.05, 0.3], np.float32)
W2 = np.array([[1.0, -1.0, 0.5, 0.0], [-0.5, 1.0, 0.0, 1.0]], np.float32)
B2 = np.array([0.0, 0.1], np.float32)


def write_tflite(path, ops_spec, n_in=3):
    """A float TFLite flatbuffer built with LiteRT's schema module (object API) and flatbuffers:
    ``ops_spec`` is a list of (builtin name, weight or None, bias or None, fused activation code)."""
    s = schema
    bufs, tensors = [s.BufferT()], []

    def tensor(name, shape, data=None):
        t = s.TensorT()
        t.name, t.shape, t.type = name, list(shape), 0
        t.buffer = 0
        if data is not None:
            b = s.BufferT()
            b.data = np.frombuffer(np.asarray(data, np.float32).tobytes(), np.uint8)
            bufs.append(b)
            t.buffer = len(bufs) - 1
        tensors.append(t)
        return len(tensors) - 1

    codes, ops = [], []
    cur = tensor("input", (1, n_in))
    first = cur
    width = n_in
    for k, (name, w, b, act) in enumerate(ops_spec):
        code = getattr(s.BuiltinOperator, name)
        if code not in [c.builtinCode for c in codes]:
            c = s.OperatorCodeT()
            c.builtinCode, c.deprecatedBuiltinCode, c.version = code, min(code, 127), 1
            codes.append(c)
        op = s.OperatorT()
        op.opcodeIndex = [c.builtinCode for c in codes].index(code)
        if name == "FULLY_CONNECTED":
            width = w.shape[0]
            op.inputs = [cur, tensor(f"w{k}", w.shape, w), tensor(f"b{k}", b.shape, b)]
            op.builtinOptionsType = s.BuiltinOptions.FullyConnectedOptions
            op.builtinOptions = s.FullyConnectedOptionsT()
            op.builtinOptions.fusedActivationFunction = act
        elif name == "ADD":
            op.inputs = [cur, cur]
            op.builtinOptionsType = s.BuiltinOptions.AddOptions
            op.builtinOptions = s.AddOptionsT()
            op.builtinOptions.fusedActivationFunction = act
        else:
            op.inputs = [cur]
        cur = tensor(f"t{k}", (1, width))
        op.outputs = [cur]
        ops.append(op)
    return _write_model(path, s, tensors, [first], [cur], ops, codes, bufs)


def test_tiny_model_rates_are_relu_over_threshold_within_one_over_t(tmp_path):
    """Hidden layer ReLU(W1 x + b1), balanced to λ = the 99.9th percentile of those activations (by hand, in
    NumPy): after T steps each IF neuron's spike count / T equals min(1, ReLU(W1 x + b1)/λ) within 1/T; the
    readout membrane / T equals (W2 · rates·λ + b2)/λ_out within Σ|W2|·λ/(T·λ_out)."""
    path = write_tflite(tmp_path / "tiny.tflite", [("FULLY_CONNECTED", W1, B1, 1), ("FULLY_CONNECTED", W2, B2, 0)])
    xs = np.array([[1.0, 0.0, 0.5], [0.2, 0.4, -0.3], [-0.5, 1.0, 1.0], [0.3, -0.2, 0.1], [0.9, 0.9, 0.0]],
                  np.float32)
    # the interpreter reads the file written here as the NumPy forward pass says (so the file is what we think)
    h = np.maximum(xs.astype(np.float64) @ W1.T + B1, 0)
    logits = h @ W2.T + B2
    np.testing.assert_allclose(litert_invoke(path, xs), logits, rtol=1e-5, atol=1e-6)
    lam = float(np.percentile(h, 99.9))
    lam_out = float(np.percentile(np.abs(logits), 99.9))
    np.save(tmp_path / "x.npy", xs)
    T = 500
    rc, out, err = cli("convert", path, "--to-snn", "--calib", tmp_path / "x.npy", "--timesteps", T, "-o",
                       tmp_path / "tiny.ebm", "--json")
    assert rc == 0, err
    r = json.loads(out)
    assert r["thresholds"]["if0"]["lambda"] == pytest.approx(lam, rel=1e-6)
    assert r["output_lambda"] == pytest.approx(lam_out, rel=1e-6)
    from edgebrain.model import Model

    m = Model.load(tmp_path / "tiny.ebm")
    assert m.graph.meta["card"]["conversion"]["source"] == "tflite"
    v, rec = m.session("float", batch=len(xs)).run(np.repeat(xs[None], T, 0), record=["if0"])
    rates = rec["spikes/if0"].sum(0) / T
    want = np.minimum(1.0, h / lam)
    assert np.abs(rates - want).max() <= 1.0 / T + 1e-6, (rates, want)
    assert (h > 0).sum() >= 10 and (h == 0).any() and (h >= lam).any()     # firing, silent and saturated neurons
    bound = np.abs(W2).sum(1) * lam / (T * lam_out) + 1e-5
    assert (np.abs(v[-1] / T - (rates * lam @ W2.T + B2) / lam_out) <= bound).all()
    # and so the readout's decision is the ANN's wherever the hidden layer does not saturate
    ok = (h < lam).all(1)
    assert (v[-1].argmax(1)[ok] == logits.argmax(1)[ok]).all()


def write_cnn(path, rng):
    """A small float CNN in TFLite's layout, written with the schema module: (1, 6, 10, 2) NHWC → CONV_2D 3
    filters 3×3, SAME, stride 1×2, ReLU → DEPTHWISE_CONV_2D 1×3 ×2, VALID, ReLU → AVERAGE_POOL_2D 2×1 →
    RESHAPE (flatten, HWC order) → FULLY_CONNECTED 4. Returns the path and the weights."""
    s = schema
    bufs, tensors, codes, ops = [s.BufferT()], [], [], []

    def tensor(shape, data=None, ttype=0):
        t = s.TensorT()
        t.name, t.shape, t.type, t.buffer = f"t{len(tensors)}", list(shape), ttype, 0
        if data is not None:
            b = s.BufferT()
            b.data = np.frombuffer(np.asarray(data, np.int32 if ttype == 2 else np.float32).tobytes(), np.uint8)
            bufs.append(b)
            t.buffer = len(bufs) - 1
        tensors.append(t)
        return len(tensors) - 1

    def op(name, inputs, out_shape, opt_type=None, **opts):
        code = getattr(s.BuiltinOperator, name)
        if code not in [c.builtinCode for c in codes]:
            c = s.OperatorCodeT()
            c.builtinCode, c.deprecatedBuiltinCode, c.version = code, min(code, 127), 1
            codes.append(c)
        o = s.OperatorT()
        o.opcodeIndex = [c.builtinCode for c in codes].index(code)
        o.inputs, o.outputs = inputs, [tensor(out_shape)]
        if opt_type:
            o.builtinOptionsType = getattr(s.BuiltinOptions, opt_type)
            o.builtinOptions = getattr(s, opt_type + "T")()
            for k, v in opts.items():
                setattr(o.builtinOptions, k, v)
        ops.append(o)
        return o.outputs[0]

    w1 = rng.normal(0, 0.5, (3, 3, 3, 2)).astype(np.float32)       # (cout, kh, kw, cin)
    b1 = rng.normal(0.2, 0.1, 3).astype(np.float32)
    w2 = rng.normal(0, 0.5, (1, 1, 3, 6)).astype(np.float32)       # (1, kh, kw, cin × 2)
    b2 = rng.normal(0.1, 0.1, 6).astype(np.float32)
    w3 = rng.normal(0, 0.5, (4, 3 * 3 * 6)).astype(np.float32)
    b3 = rng.normal(0, 0.1, 4).astype(np.float32)
    x = tensor((1, 6, 10, 2))
    h = op("CONV_2D", [x, tensor(w1.shape, w1), tensor(b1.shape, b1)], (1, 6, 5, 3), "Conv2DOptions", padding=0,
           strideH=1, strideW=2, dilationHFactor=1, dilationWFactor=1, fusedActivationFunction=1)
    h = op("DEPTHWISE_CONV_2D", [h, tensor(w2.shape, w2), tensor(b2.shape, b2)], (1, 6, 3, 6),
           "DepthwiseConv2DOptions", padding=1, strideH=1, strideW=1, depthMultiplier=2, dilationHFactor=1,
           dilationWFactor=1, fusedActivationFunction=1)
    h = op("AVERAGE_POOL_2D", [h], (1, 3, 3, 6), "Pool2DOptions", padding=1, strideH=2, strideW=1, filterHeight=2,
           filterWidth=1, fusedActivationFunction=0)
    h = op("RESHAPE", [h, tensor((2,), [1, 54], ttype=2)], (1, 54))
    y = op("FULLY_CONNECTED", [h, tensor(w3.shape, w3), tensor(b3.shape, b3)], (1, 4), "FullyConnectedOptions",
           fusedActivationFunction=0)
    return _write_model(path, s, tensors, [x], [y], ops, codes, bufs)


def test_conv_depthwise_avgpool_flatten_layouts_match_the_interpreter(tmp_path):
    """A CNN with SAME padding, strides, a depthwise convolution with a depth multiplier, average pooling and a
    flatten (TFLite's HWC order): the float NumPy pass of the layers edgebrain reads equals LiteRT's outputs,
    and the converted spiking model's decisions at T=256 are the interpreter's on nearly every sample."""
    from edgebrain.model import Model
    from edgebrain.tflite_convert import read_ann
    from edgebrain.tflite_io import read_tflite

    rng = np.random.default_rng(3)
    path = write_cnn(tmp_path / "cnn.tflite", rng)
    xs = rng.normal(0, 1, (64, 6, 10, 2)).astype(np.float32)
    ref = litert_invoke(path, xs)
    ann = read_ann(read_tflite(path))
    assert ann.input_shape == (2, 6, 10) and [ly.kind for ly in ann.layers] == ["conv", "conv", "avgpool", "dense"]
    logits, _ = ann.forward(ann.snn_input(xs))
    np.testing.assert_allclose(logits, ref, rtol=1e-4, atol=1e-4)
    np.save(tmp_path / "x.npy", xs)
    rc, out, err = cli("convert", path, "--to-snn", "--calib", tmp_path / "x.npy", "--timesteps", "256", "-o",
                       tmp_path / "cnn.ebm", "--json")
    assert rc == 0, err
    assert json.loads(out)["evaluated"][0]["agreement"] >= 0.95
    m = Model.load(tmp_path / "cnn.ebm")
    v, _ = m.session("float", batch=len(xs)).run(np.repeat(ann.snn_input(xs)[None], 256, 0))
    assert (v[-1].argmax(1) == ref.argmax(1)).mean() >= 0.95


@pytest.mark.filterwarnings("ignore:Warning. Enabling .experimental_preserve_all_tensors")
def test_thresholds_are_the_percentile_of_the_interpreters_activations(labelled, tmp_path):
    """λ of each ReLU layer equals np.percentile(·, 99.9) of that layer's output tensor as LiteRT's
    interpreter computes it (intermediate tensors preserved): to float precision for the float models, within
    two quantization steps of the tensor for the int8 model (edgebrain's NumPy pass is not requantized)."""
    from edgebrain.tflite_io import read_tflite

    xs, _ = labelled
    for name, tol in (("har_mlp_float", 0), ("har_cnn_float", 0), ("har_mlp_int8", 2)):
        path = DATA / f"{name}.tflite"
        f = read_tflite(path)
        relu = [op.outputs[0] for op in f.operators if op.options.get("fusedActivationFunction") == 1]
        inp = xs.reshape(len(xs), -1) if "mlp" in name else xs
        acts = preserved_activations(path, inp, relu)
        np.save(tmp_path / "x.npy", inp)
        rc, out, err = cli("convert", path, "--to-snn", "--calib", tmp_path / "x.npy", "--timesteps", "4",
                           "-o", tmp_path / f"{name}.ebm", "--json")
        assert rc == 0, err
        got = [v["lambda"] for v in json.loads(out)["thresholds"].values()]
        assert len(got) == len(relu)
        for g, t in zip(got, relu):
            want = float(np.percentile(acts[t], 99.9))
            step = float(f.tensors[t].scale[0]) if f.tensors[t].scale.size else 0.0
            assert abs(g - want) <= max(tol * step, 1e-5 * want), (name, t, g, want)


@pytest.mark.parametrize("name,quant", [("har_mlp_float", False), ("har_cnn_int8", True)])
def test_snn_accuracy_approaches_the_interpreters_as_t_grows(name, quant, labelled, tmp_path):
    """On real windows: the interpreter's accuracy is the one measured with LiteRT here; the spiking
    model's agreement with its decisions grows with T, and at T=64 its accuracy is within 3 points of it (the
    CNN on the int path too, quantized to int8, and run again by `edgebrain run` on the C runtime)."""
    xs, y = labelled
    inp = xs.reshape(len(xs), -1) if "mlp" in name else xs
    np.save(tmp_path / "x.npy", inp)
    np.save(tmp_path / "y.npy", y)
    path = DATA / f"{name}.tflite"
    args = ["convert", path, "--to-snn", "--calib", tmp_path / "x.npy", "--labels", tmp_path / "y.npy",
            "--timesteps", "8,16,64", "--device", "rpi4b", "-o", tmp_path / "snn.ebm", "--json"]
    rc, out, err = cli(*args, *(["--quantize", "int8"] if quant else []))
    assert rc == 0, err
    r = json.loads(out)
    ref = litert_invoke(path, inp).argmax(1)
    assert r["tflite"]["accuracy"] == pytest.approx((ref == y).mean())
    for prec in (["float", "int"] if quant else ["float"]):
        rows = {row["timesteps"]: row for row in r["evaluated"] if row["precision"] == prec}
        assert rows[8]["agreement"] < rows[64]["agreement"] and rows[64]["agreement"] >= 0.95, rows
        assert abs(rows[64]["accuracy"] - r["tflite"]["accuracy"]) <= 0.03, rows
        assert all(0 < v < 0.5 for v in rows[64]["spike_rates"].values())
    costs = r["costs"]
    assert costs["ann"]["macs"] == FACTS_MACS[name]
    snn = {c["timesteps"]: c for c in costs["snn"]}
    assert snn[64]["membrane_updates"] > snn[8]["membrane_updates"] and snn[64]["energy_j"] > snn[8]["energy_j"] > 0
    # the first layer reads the analog input (direct coding): MACs; the layers after it read spikes: ACs
    assert snn[8]["eff_acs"] > 0 and snn[8]["eff_macs"] > 0
    card = json.loads(json.dumps(__import__("edgebrain.model", fromlist=["Model"]).Model.load(
        tmp_path / "snn.ebm").graph.meta["card"]))
    assert card["conversion"]["timesteps"] == r["timesteps"] and card["conversion"]["decoder"].startswith("membrane")
    if quant:   # the saved int8 model on the C runtime, one window at a time, as `edgebrain run` runs it
        from edgebrain.tflite_convert import read_ann
        from edgebrain.tflite_io import read_tflite

        x1 = read_ann(read_tflite(path)).snn_input(inp[:3])
        agree = 0
        for k in range(3):
            np.save(tmp_path / "s.npy", np.repeat(x1[k:k + 1][None], 64, 0))
            rc, _, err = cli("run", tmp_path / "snn.ebm", "-i", tmp_path / "s.npy", "-o", tmp_path / "o.npz",
                             "--backend", "c")
            assert rc == 0, err
            with np.load(tmp_path / "o.npz") as z:
                agree += int(z["output"][-1].reshape(-1).argmax() == ref[k])
        assert agree >= 2


#: the MACs of each fixture, by hand: 300·32 + 32·5; 46·8·30 + 21·16·24 + 16·5
FACTS_MACS = {"har_mlp_float": 300 * 32 + 32 * 5, "har_cnn_int8": 46 * 8 * 30 + 21 * 16 * 24 + 16 * 5}


def test_bad_input_is_one_line(tmp_path):
    ok = write_tflite(tmp_path / "ok.tflite", [("FULLY_CONNECTED", W1, B1, 1), ("FULLY_CONNECTED", W2, B2, 0)])
    np.save(tmp_path / "x.npy", np.zeros((4, 3), np.float32))
    np.save(tmp_path / "bad.npy", np.zeros((4, 7), np.float32))

    def convert(model, calib="x.npy", *extra):
        return cli("convert", model, "--to-snn", "--calib", tmp_path / calib, "-o", tmp_path / "o.ebm", *extra)

    add = write_tflite(tmp_path / "add.tflite", [("FULLY_CONNECTED", W1, B1, 1), ("ADD", None, None, 2),
                                                 ("FULLY_CONNECTED", W2, B2, 0)])     # h + h, RELU_N1_TO_1 fused
    one_error_line(*convert(add)[::2], "operator 1 ADD", "RELU_N1_TO_1")
    clip = write_tflite(tmp_path / "clip.tflite", [("FULLY_CONNECTED", W1, B1, 2), ("FULLY_CONNECTED", W2, B2, 0)])
    one_error_line(*convert(clip)[::2], "operator 0 FULLY_CONNECTED", "RELU_N1_TO_1", "ReLU")
    tanh = write_tflite(tmp_path / "tanh.tflite", [("FULLY_CONNECTED", W1, B1, 1), ("TANH", None, None, 0),
                                                   ("FULLY_CONNECTED", W2, B2, 0)])
    one_error_line(*convert(tanh)[::2], "operator 1 TANH", "not supported")
    linear = write_tflite(tmp_path / "lin.tflite", [("FULLY_CONNECTED", W1, B1, 0), ("FULLY_CONNECTED", W2, B2, 0)])
    one_error_line(*convert(linear)[::2], "operator 0 FULLY_CONNECTED has no ReLU")
    one_error_line(*convert(ok, "bad.npy")[::2], "bad.npy", "[4, 7]", "[3]")
    one_error_line(*cli("convert", ok, "--to-snn", "-o", tmp_path / "o.ebm")[::2], "--calib")
    np.save(tmp_path / "y.npy", np.zeros(5, np.int64))
    one_error_line(*convert(ok, "x.npy", "--labels", tmp_path / "y.npy")[::2], "y.npy", "(4,)")
    one_error_line(*convert(ok, "x.npy", "--timesteps", "8,zero")[::2], "--timesteps")
    one_error_line(*convert(ok, "x.npy", "--coding", "burst")[::2], "--coding", "direct")
    one_error_line(*cli("convert", ok, "-o", tmp_path / "o.ebm")[::2], "--to-snn")
    one_error_line(*cli("convert", ok, "--to-snn", "--calib", tmp_path / "x.npy", "--quantize", "int8", "-o",
                        tmp_path / "o.nir")[::2], "o.nir", "--quantize", ".ebm")
    assert not (tmp_path / "o.ebm").exists()
