"""TensorFlow Lite models through the TFLite interpreter (docs/tflite.md): ``edgebrain run | inspect |
bench MODEL.tflite`` on .tflite files written by TensorFlow's own converter (tests/tflite/data, made by
tools/tflite/make_tflite_fixtures.py), checked against LiteRT's interpreter invoked directly, against an
independent NumPy forward pass of the float MLP from the weights edgebrain reads out of the file, and
against MAC counts worked out by hand. Needs the ``tflite`` extra (ai-edge-litert)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO, cli, load_imu, need, one_error_line  # noqa: F401 - cli, one_error_line: shared with the tests here
from tests.test_extras import assert_names_the_extra, without

litert = pytest.importorskip("ai_edge_litert.interpreter", reason="the tflite extra is not installed: "
                             "pip install 'edgebrain[tflite]' (ai-edge-litert)")

DATA = Path(__file__).parent / "data"
MODELS = ["har_mlp_float", "har_mlp_int8", "har_cnn_float", "har_cnn_int8"]
#: the residual MLPs (ADD), for the ANN → SNN conversion's tests (no stream sidecar)
RESIDUAL = ["har_res_float", "har_res_int8"]
FACTS = json.loads((DATA / "models.json").read_text())
#: the zoo's HAR test subjects (tools/tflite/make_tflite_fixtures.py); the fixture set holds s16's first recording
TEST_FILES = ("s16/s16_01_sw.csv", "s17/s17_01_sw.csv", "s18/s18_01_sw.csv")


@pytest.fixture(scope="module")
def windows(datasets):
    """(N, 50, 6) windows of real smartwatch recordings of the test subjects, standardised per file as the
    models were trained (tests/conftest.load_imu), every 25 samples."""
    root = datasets / "imu" / "sp-sw-har"
    files = [root / f for f in TEST_FILES if (root / f).is_file()] or [need(root / TEST_FILES[0])]
    out = []
    for f in files:
        x = load_imu(f)
        out += [x[a:a + 50] for a in range(0, len(x) - 49, 25)]
    return np.stack(out)


def sample_input(name, windows):
    return windows.reshape(len(windows), -1) if "mlp" in name else windows


def litert_invoke(path, xs):
    """LiteRT's own outputs for each sample: quantized with the input's scale and zero point for an
    integer input (round half to even, saturated), dequantized with the output's."""
    it = litert.Interpreter(model_path=str(path), num_threads=1)
    it.allocate_tensors()
    i, o = it.get_input_details()[0], it.get_output_details()[0]
    outs = []
    for x in xs:
        if i["dtype"] == np.int8:
            s, z = i["quantization"]
            x = np.clip(np.round(x.astype(np.float64) / s) + z, -128, 127).astype(np.int8)
        it.set_tensor(i["index"], x[None])
        it.invoke()
        y = it.get_tensor(o["index"])[0]
        if o["dtype"] == np.int8:
            s, z = o["quantization"]
            y = ((y.astype(np.float64) - z) * s).astype(np.float32)
        outs.append(y)
    return np.stack(outs)


def test_fixtures_are_the_files_recorded_and_documented():
    readme = (DATA / "README.md").read_text()
    assert "source" in readme.lower() and "licen" in readme.lower()
    files = sorted(p.name for p in DATA.iterdir() if p.is_file() and p.name != "README.md")
    assert files == sorted([f"{m}.tflite" for m in MODELS + RESIDUAL] + [f"{m}.tflite.json" for m in MODELS]
                           + ["models.json"])
    for name in files:
        assert name in readme, f"README.md does not name {name}"
    for m in MODELS + RESIDUAL:
        data = (DATA / f"{m}.tflite").read_bytes()
        f = FACTS["files"][f"{m}.tflite"]
        assert (len(data), hashlib.sha256(data).hexdigest()) == (f["bytes"], f["sha256"]), m
        assert data[4:8] == b"TFL3" and f["test_accuracy"] > 0.7   # trained, not random
    assert sum((DATA / f"{m}.tflite").stat().st_size for m in MODELS + RESIDUAL) < 200_000


@pytest.mark.parametrize("name", MODELS)
def test_run_equals_litert_invoke(name, windows, tmp_path):
    xs = sample_input(name, windows)
    np.save(tmp_path / "x.npy", xs)
    rc, out, err = cli("run", DATA / f"{name}.tflite", "-i", tmp_path / "x.npy", "-o", tmp_path / "y.npz", "--json")
    assert rc == 0, err
    assert err == ""   # the interpreter's "INFO: Created ... delegate" is held back
    s = json.loads(out)
    assert (s["steps"], s["threads"], s["precision"]) == (len(xs), 1, "int8" if "int8" in name else "float32")
    with np.load(tmp_path / "y.npz") as z:
        assert list(z) == ["output"]
        y = z["output"]
    assert y.shape == (len(xs), 5) and y.dtype == np.float32
    np.testing.assert_array_equal(y, litert_invoke(DATA / f"{name}.tflite", xs))


def test_one_sample_is_a_batch_of_one(windows, tmp_path):
    np.save(tmp_path / "x.npy", windows[3])
    rc, _, err = cli("run", DATA / "har_cnn_int8.tflite", "-i", tmp_path / "x.npy", "-o", tmp_path / "y.npz")
    assert rc == 0, err
    with np.load(tmp_path / "y.npz") as z:
        np.testing.assert_array_equal(z["output"], litert_invoke(DATA / "har_cnn_int8.tflite", windows[3:4]))


def test_float_mlp_equals_a_numpy_forward_pass_of_the_weights_read(windows, tmp_path):
    """relu(x W1ᵀ + b1) W2ᵀ + b2 in NumPy (float64) from the tensors edgebrain's reader takes out of the
    file (each equal to what the interpreter holds for that tensor) matches edgebrain run's outputs."""
    from edgebrain.tflite_io import read_tflite

    path = DATA / "har_mlp_float.tflite"
    f = read_tflite(path)
    assert [op.name for op in f.operators] == ["FULLY_CONNECTED", "FULLY_CONNECTED"]
    it = litert.Interpreter(model_path=str(path))
    it.allocate_tensors()
    layers = []
    for op in f.operators:
        w, b = (f.tensor(k) for k in op.inputs[1:3])
        for t in (w, b):
            np.testing.assert_array_equal(t.data, it.get_tensor(t.index))
        layers.append((w.data.astype(np.float64), b.data.astype(np.float64), op.options["fusedActivationFunction"]))
    assert [a for _, _, a in layers] == [1, 0]   # RELU, then none (schema's ActivationFunctionType)
    x = windows.reshape(len(windows), -1).astype(np.float64)
    assert layers[0][0].shape == (32, 300) and layers[1][0].shape == (5, 32)
    h = np.maximum(x @ layers[0][0].T + layers[0][1], 0)
    ref = h @ layers[1][0].T + layers[1][1]
    np.save(tmp_path / "x.npy", x.astype(np.float32))
    rc, _, err = cli("run", path, "-i", tmp_path / "x.npy", "-o", tmp_path / "y.npz")
    assert rc == 0, err
    with np.load(tmp_path / "y.npz") as z:
        np.testing.assert_allclose(z["output"], ref, rtol=1e-4, atol=1e-4)


def test_int8_mlp_equals_an_integer_numpy_pass_of_what_is_read(windows, tmp_path):
    """TFLite's int8 FULLY_CONNECTED (docs of its quantization spec) in NumPy from the int8 weights, int32
    biases, per-channel scales and zero points edgebrain reads out of the file: acc = Σ (x_q − z_x) w_q + b_q,
    y_q = round(acc · s_x s_w[c] / s_y) + z_y, clamped (to [z_y, 127] for a fused ReLU). The interpreter
    requantizes in fixed point (or XNNPACK in float), so a value may differ by one step; most are equal."""
    from edgebrain.tflite_io import read_tflite

    path = DATA / "har_mlp_int8.tflite"
    f = read_tflite(path)
    x = windows.reshape(len(windows), -1)
    t_in = f.tensor(f.inputs[0])
    q = np.clip(np.round(x.astype(np.float64) / t_in.scale[0]) + t_in.zero_point[0], -128, 127)
    for op in f.operators:
        xt, w, b, yt = (f.tensor(k) for k in (*op.inputs[:3], op.outputs[0]))
        assert (w.dtype, b.dtype, w.scale.size, w.quantized_dimension) == ("int8", "int32", w.shape[0], 0)
        np.testing.assert_allclose(b.scale, xt.scale[0] * w.scale, rtol=1e-6)   # the spec's bias scale
        acc = (q - xt.zero_point[0]) @ w.data.T.astype(np.float64) + b.data
        v = acc * (xt.scale[0] * w.scale.astype(np.float64) / yt.scale[0])
        lo = max(-128, int(yt.zero_point[0])) if op.options["fusedActivationFunction"] == 1 else -128
        q = np.clip(np.sign(v) * np.floor(np.abs(v) + 0.5) + yt.zero_point[0], lo, 127)
    t_out = f.tensor(f.outputs[0])
    ref = (q - t_out.zero_point[0]) * t_out.scale[0]
    np.save(tmp_path / "x.npy", x)
    rc, _, err = cli("run", path, "-i", tmp_path / "x.npy", "-o", tmp_path / "y.npz")
    assert rc == 0, err
    with np.load(tmp_path / "y.npz") as z:
        steps = np.round((z["output"] - ref) / t_out.scale[0])
    assert np.abs(steps).max() <= 1 and (steps == 0).mean() > 0.95, np.unique(steps, return_counts=True)


def test_inspect_counts_macs_and_reads_tensors_as_the_interpreter_does():
    rc, out, err = cli("inspect", DATA / "har_cnn_int8.tflite", "--json")
    assert rc == 0, err
    s = json.loads(out)
    ops = s["operators"]
    assert [o["op"] for o in ops] == ["RESHAPE", "CONV_2D", "MAX_POOL_2D", "CONV_2D", "RESHAPE", "MEAN",
                                      "FULLY_CONNECTED"]
    # by hand: a 5-tap convolution over 50 samples, 'valid' → 46 positions, 8 filters, 6 channels each
    assert ops[1]["output_shape"] == [1, 1, 46, 8] and ops[1]["macs"] == 46 * 8 * (5 * 6)
    # pooled to 23, 3 taps → 21 positions × 16 filters × (3 × 8); then 16 → 5 dense
    assert ops[3]["macs"] == 21 * 16 * (3 * 8) and ops[6]["macs"] == 16 * 5
    assert s["totals"]["macs"] == 46 * 8 * 30 + 21 * 16 * 24 + 80
    assert s["operator_counts"] == {"RESHAPE": 2, "CONV_2D": 2, "MAX_POOL_2D": 1, "MEAN": 1, "FULLY_CONNECTED": 1}
    # every tensor's shape, dtype and quantization as LiteRT's interpreter reports them
    it = litert.Interpreter(model_path=str(DATA / "har_cnn_int8.tflite"))
    it.allocate_tensors()
    details = {d["index"]: d for d in it.get_tensor_details()}
    for t in s["tensors"]:
        d = details[t["index"]]
        assert t["name"] == d["name"] and t["shape"] == d["shape"].tolist(), t
        assert t["dtype"] == np.dtype(d["dtype"]).name
        qp = d["quantization_parameters"]
        if qp["scales"].size:
            np.testing.assert_allclose(t["quantization"]["scale"], qp["scales"], rtol=1e-7)
            assert t["quantization"]["zero_point"] == qp["zero_points"].tolist()
        else:
            assert t["quantization"] is None
    assert s["inputs"][0]["shape"] == [1, 50, 6] and s["inputs"][0]["dtype"] == "int8"
    # bytes: the weights and biases, and the largest pair of activations alive together (two (1,21,16) int8)
    assert s["totals"]["parameters"] == 8 * 5 * 6 + 8 + 16 * 3 * 8 + 16 + 5 * 16 + 5
    assert s["totals"]["activation_peak_bytes"] == 2 * 21 * 16
    rc, out, err = cli("inspect", DATA / "har_mlp_float.tflite")
    assert rc == 0 and "FULLY_CONNECTED" in out and f"{300 * 32 + 32 * 5} MACs" in out, err


def test_bench_reports_like_a_spiking_model_with_threads_set(tmp_path):
    rc, out, err = cli("bench", DATA / "har_mlp_int8.tflite", "-n", "50", "--threads", "2", "--json")
    assert rc == 0, err
    r = json.loads(out)
    spiking = {"model", "precision", "input_shape", "steps", "batch", "warmup_steps", "input", "model_file_bytes",
               "init_us", "first_step_us", "warmup", "latency_us", "throughput", "memory", "footprint", "cold_start"}
    assert spiking <= set(r) and (r["threads"], r["steps"], r["input_shape"]) == (2, 50, [300])
    assert set(r["latency_us"]) >= {"count", "avg", "p50", "p90", "p99"} and r["latency_us"]["count"] == 50
    assert set(r["throughput"]) == {"steps_per_s_step_loop", "steps_per_s_batch1", "steps_per_s_batch",
                                    "samples_per_s_batch"}
    assert r["footprint"]["param_bytes"] > 300 * 32   # int8 weights of the first layer alone
    rc, out, err = cli("bench", DATA / "har_mlp_int8.tflite", "-n", "20")
    assert rc == 0 and "Num threads: [1]" in out, err
    one_error_line(*cli("bench", DATA / "har_mlp_int8.tflite", "--threads", "0")[::2], "--threads 0")


def test_truncated_file(tmp_path):
    bad = tmp_path / "half.tflite"
    data = (DATA / "har_mlp_float.tflite").read_bytes()
    bad.write_bytes(data[:len(data) // 2])
    for cmd in (("run", bad, "-i", tmp_path / "x.npy", "-o", tmp_path / "y.npz"), ("inspect", bad), ("bench", bad)):
        one_error_line(*cli(*cmd)[::2], str(bad), "cannot load")
    assert not (tmp_path / "y.npz").exists()


def test_not_a_tflite_file(tmp_path):
    bad = tmp_path / "model.tflite"
    shutil.copy(REPO / "tests" / "data" / "imu" / "sp-sw-har" / "s16" / "s16_01_sw.csv", bad)
    one_error_line(*cli("inspect", bad)[::2], str(bad), "not a TensorFlow Lite model", "TFL3")
    (tmp_path / "empty.tflite").write_bytes(b"")
    one_error_line(*cli("inspect", tmp_path / "empty.tflite")[::2], "empty.tflite", "too short")


def test_commands_that_do_not_take_tflite_models_yet_say_so(tmp_path):
    csv = REPO / "tests" / "data" / "imu" / "sp-sw-har" / "s16" / "s16_01_sw.csv"
    # profile: test_profile_interpreted.py; stream: test_tflite_stream.py
    for cmd in (("devices", "fit", DATA / "har_mlp_float.tflite", "--device", "rpi4b"),
                ("firmware", "export", DATA / "har_mlp_float.tflite", "--target", "stm32f446", "-o", tmp_path / "fw")):
        one_error_line(*cli(*cmd)[::2], "har_mlp_float.tflite", "run, stream, inspect, bench and profile")
    assert not (tmp_path / "fw").exists()


def test_a_tflite_file_is_known_by_its_identifier_whatever_its_name(tmp_path):
    shutil.copy(DATA / "har_cnn_float.tflite", tmp_path / "model.bin")
    rc, out, err = cli("inspect", tmp_path / "model.bin", "--json")
    assert rc == 0 and json.loads(out)["format"] == "tflite", err


def test_input_of_the_wrong_shape(windows, tmp_path):
    np.save(tmp_path / "x.npy", windows)  # (N, 50, 6): the MLP takes (N, 300)
    rc, _, err = cli("run", DATA / "har_mlp_float.tflite", "-i", tmp_path / "x.npy", "-o", tmp_path / "y.npz")
    one_error_line(rc, err, str(tmp_path / "x.npy"), "[300]")
    assert not (tmp_path / "y.npz").exists()
    rc, _, err = cli("run", DATA / "har_mlp_float.tflite", "-i", tmp_path / "x.npy", "-o", tmp_path / "y.npz",
                     "--record", "lif1")
    one_error_line(rc, err, "--record")
    x = windows.reshape(len(windows), -1)
    x[2, 7] = np.nan   # an int8 input cannot hold it
    np.save(tmp_path / "x.npy", x)
    rc, _, err = cli("run", DATA / "har_mlp_int8.tflite", "-i", tmp_path / "x.npy", "-o", tmp_path / "y.npz")
    one_error_line(rc, err, str(tmp_path / "x.npy"), "NaN")
    assert not (tmp_path / "y.npz").exists()


def test_without_the_interpreter(windows, tmp_path):
    """As on a base install: LiteRT and tflite-runtime cannot be imported in the child."""
    np.save(tmp_path / "x.npy", windows.reshape(len(windows), -1))
    hidden = ["ai_edge_litert", "tflite_runtime"]
    for args in (("run", DATA / "har_mlp_float.tflite", "-i", tmp_path / "x.npy", "-o", tmp_path / "y.npz"),
                 ("inspect", DATA / "har_mlp_float.tflite"), ("bench", DATA / "har_mlp_float.tflite")):
        assert_names_the_extra(without(hidden, *args), "tflite")
    assert not (tmp_path / "y.npz").exists()


def test_tflite_runtime_under_numpy_2_says_to_install_litert(windows, tmp_path):
    """The fallback where only tflite-runtime is installed: its 2.14 build for NumPy 1 cannot make an
    interpreter under NumPy 2 ("_ARRAY_API not found"), which is one line naming the extra to install."""
    import importlib.util

    if importlib.util.find_spec("tflite_runtime") is None:
        pytest.skip("tflite-runtime is not installed (pip install --no-deps tflite-runtime==2.14.0 to test the "
                    "fallback's NumPy 2 failure)")
    if int(np.__version__.split(".")[0]) < 2:
        pytest.skip("NumPy 1: tflite-runtime 2.14 works here")
    np.save(tmp_path / "x.npy", windows.reshape(len(windows), -1))
    r = without(["ai_edge_litert"], "run", DATA / "har_mlp_float.tflite", "-i", tmp_path / "x.npy", "-o",
                tmp_path / "y.npz")
    assert_names_the_extra(r, "tflite")
    assert "NumPy 2" in r.stderr and not (tmp_path / "y.npz").exists()
