"""ONNX models through ONNX Runtime (docs/onnx.md): ``edgebrain run | inspect | bench MODEL.onnx`` on files written
by PyTorch's exporter (tests/onnx/data, made by tools/onnx/make_onnx_fixtures.py) and on small models built here
with the ``onnx`` package, the state convention, and bad input: one line, exit code 2. Needs the ``onnx`` extra
(onnxruntime); the models built here also need the ``onnx`` package."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest

from tests.conftest import REPO, need
from tests.onnx.helpers import (
    DATA,
    FACTS,
    FIRST,
    HAR,
    STEP,
    WINDOW,
    accumulator,
    cli,
    encoded,
    flat_window,
    one_error_line,
)
from tests.test_extras import assert_names_the_extra, without

ort = pytest.importorskip("onnxruntime", reason="the onnx extra is not installed: pip install 'edgebrain[onnx]'")

FILES = ["har_lif_step.onnx", "har_lif_window.onnx", "har_lif_step.onnx.json", "har_lif_window.onnx.json",
         "models.json"]


def test_fixtures_are_the_files_recorded_and_documented():
    readme = (DATA / "README.md").read_text()
    assert "- **Source:**" in readme and "- **Licence:**" in readme
    assert sorted(p.name for p in DATA.iterdir() if p.is_file() and p.name != "README.md") == sorted(FILES)
    for name in FILES:
        assert f"`{name}`" in readme, f"README.md does not name {name}"
    for name, f in FACTS["files"].items():
        data = (DATA / name).read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (f["bytes"], f["sha256"]), name
    assert FACTS["source_model"]["sha256"] == hashlib.sha256((REPO / "edgebrain" / "zoo" / "har-lif.ebm")
                                                             .read_bytes()).hexdigest()  # the weights exported
    assert sum((DATA / n).stat().st_size for n in FILES) < 400_000


def test_run_a_stateful_model_steps_through_time(datasets, tmp_path):
    """``run`` of the per-step model: one timestep per row, states fed back; the output spikes are edgebrain's
    float session's on a real recording (tests/onnx/test_onnx_step.py: why they may be), and the membranes
    saved as state/NAME are the session's within float32 rounding."""
    model, xs = encoded(need(datasets / HAR / FIRST))
    y, rec = model.session("float").run(xs, record=["lif1", "lif2", "lif3"])
    np.save(tmp_path / "x.npy", xs)
    rc, out, err = cli("run", STEP, "-i", tmp_path / "x.npy", "-o", tmp_path / "y.npz", "--json")
    assert rc == 0 and err == "", err
    s = json.loads(out)
    assert (s["format"], s["stateful"], s["steps"], s["threads"], s["precision"]) == ("onnx", True, len(xs), 1,
                                                                                        "float32")
    with np.load(tmp_path / "y.npz") as z:
        assert sorted(z) == ["output", "state/mem1_out", "state/mem2_out", "state/mem3_out"]
        np.testing.assert_array_equal(z["output"], y)
        for k in (1, 2, 3):
            assert z[f"state/mem{k}_out"].shape == rec[f"v/lif{k}"].shape
            np.testing.assert_allclose(z[f"state/mem{k}_out"], rec[f"v/lif{k}"], atol=1e-4, rtol=0)
    rc, out, err = cli("run", STEP, "-i", tmp_path / "x.npy", "-o", tmp_path / "y.npz")
    assert rc == 0 and "timesteps (states fed back)" in out and "onnxruntime" in out, err


def test_run_a_stateless_window_model(datasets, tmp_path):
    """``run`` of the window model: one inference per (25, 6) window; its spike counts are those of edgebrain's
    float session run over each window from reset."""
    model, xs = encoded(need(datasets / HAR / FIRST))
    wins = np.stack([xs[a:a + 25] for a in range(0, len(xs) - 24, 12)])
    ref = []
    for w in wins:
        s = model.session("float")
        ref.append(s.run(w)[0].sum(0))
    np.save(tmp_path / "x.npy", wins)
    rc, out, err = cli("run", WINDOW, "-i", tmp_path / "x.npy", "-o", tmp_path / "y.npz", "--json")
    assert rc == 0, err
    assert json.loads(out)["stateful"] is False
    with np.load(tmp_path / "y.npz") as z:
        assert list(z) == ["output"]
        np.testing.assert_array_equal(z["output"], np.stack(ref))


def test_states_named_in_the_sidecar_and_an_initial_state(tmp_path):
    """A model whose state names follow no convention (acc → acc2) with a batch dimension of unknown size: two
    data inputs until the sidecar's ``state`` pairs them; then y_t = initial + x_1 + ... + x_t."""
    pytest.importorskip("onnx")
    path = accumulator(tmp_path / "acc.onnx")
    xs = np.arange(12, dtype=np.float32).reshape(4, 3)
    np.save(tmp_path / "x.npy", xs)
    args = ("run", path, "-i", tmp_path / "x.npy", "-o", tmp_path / "y.npz")
    one_error_line(*cli(*args)[::2], str(path), "2 inputs that are not states (x, acc; outputs: y, acc2)",
                   "'state'")
    (tmp_path / "acc.onnx.json").write_text(json.dumps({"state": {"acc": "acc2"}, "initial_state": {"acc": 10}}))
    rc, out, err = cli(*args, "--json")
    assert rc == 0 and json.loads(out)["stateful"], err
    with np.load(tmp_path / "y.npz") as z:
        np.testing.assert_array_equal(z["output"], 10 + np.cumsum(xs, 0))
        np.testing.assert_array_equal(z["state/acc2"], z["output"])
    rc, out, err = cli("inspect", path, "--json")
    s = json.loads(out)
    assert rc == 0 and (s["state"], s["state_from"], s["initial_state"]) == ({"acc": "acc2"}, "sidecar", "sidecar")
    (tmp_path / "acc.onnx.json").write_text(json.dumps({"state": {"acc": "y2"}}))
    one_error_line(*cli(*args)[::2], "acc.onnx.json", "'y2'", "outputs: y, acc2")
    (tmp_path / "acc.onnx.json").write_text(json.dumps({"state": {"acc": "acc2"}, "initial_state": {"acc": [1, 2]}}))
    one_error_line(*cli(*args)[::2], "acc.onnx.json", "initial_state.acc", "[1, 3]")


@pytest.mark.parametrize("names", [("h_in", "h_out"), ("state_in", "state_out"), ("h0", "hn"), ("v", "v_new"),
                                   ("in_c", "out_c")])
def test_states_paired_by_name(tmp_path, names):
    pytest.importorskip("onnx")
    from edgebrain.onnx_session import OnnxModel

    m = OnnxModel.load(accumulator(tmp_path / "m.onnx", *names))
    assert (m.stateful, m.states, m.data_name, m.output_names, m.input_shape) == (True, {names[0]: names[1]}, "x",
                                                                                  ["y"], (3,))


def test_inspect_reads_roles_operators_and_macs():
    rc, out, err = cli("inspect", STEP, "--json")
    assert rc == 0, err
    s = json.loads(out)
    assert (s["format"], s["producer"], s["opset"], s["state_from"]) == ("onnx", "pytorch 2.13.0", {"ai.onnx": 17},
                                                                         "names")
    assert s["state"] == {"mem1_in": "mem1_out", "mem2_in": "mem2_out", "mem3_in": "mem3_out"}
    assert [(r["name"], r["role"]) for r in s["inputs"]] == [("x", "data"), ("mem1_in", "state"), ("mem2_in", "state"),
                                                              ("mem3_in", "state")]
    assert [r["role"] for r in s["outputs"]] == ["output", "state", "state", "state"]
    assert s["operator_counts"]["Gemm"] == 3
    assert s["totals"]["macs"] == 6 * 160 + 160 * 160 + 160 * 5   # the three Gemms, worked out by hand
    assert s["totals"]["parameters"] == 6 * 160 + 160 * 160 + 160 * 5 + 160 + 160 + 5
    assert s["totals"]["state_bytes"] == 4 * (160 + 160 + 5)
    rc, out, err = cli("inspect", WINDOW)
    assert rc == 0 and "stateless" in out and f"{25 * (6 * 160 + 160 * 160 + 160 * 5)} MACs" in out, err


def test_bench_reports_the_keys_of_a_spiking_model(tmp_path):
    rc, out, err = cli("bench", "zoo:har-lif", "-n", "30", "-b", "2", "--json", timeout=600)
    assert rc == 0, err
    spiking = json.loads(out)
    rc, out, err = cli("bench", STEP, "-n", "50", "--json")
    assert rc == 0, err
    r = json.loads(out)
    assert set(r) == set(spiking) | {"runtime", "threads", "stateful"}
    for k in ("latency_us", "throughput", "memory", "footprint", "warmup"):
        assert set(r[k]) == set(spiking[k]), k
    assert (r["stateful"], r["threads"], r["steps"], r["input_shape"], r["latency_us"]["count"]) == (True, 1, 50, [6],
                                                                                                       50)
    assert r["footprint"]["state_bytes"] == 4 * 325 and r["footprint"]["param_bytes"] > 4 * 27685
    rc, out, err = cli("bench", WINDOW, "-n", "20", "--threads", "2")
    assert rc == 0 and "Num threads: [2]" in out and "onnxruntime" in out, err
    one_error_line(*cli("bench", STEP, "--threads", "0")[::2], "--threads 0")
    one_error_line(*cli("bench", STEP, "--cold")[::2], "Numba")


def test_not_an_onnx_file(tmp_path):
    bad = tmp_path / "model.onnx"
    shutil.copy(REPO / "tests" / "data" / "imu" / "sp-sw-har" / "s16" / "s16_01_sw.csv", bad)
    for cmd in (("inspect", bad), ("bench", bad), ("stream", bad, "--source", bad)):
        one_error_line(*cli(*cmd)[::2], str(bad), "cannot load it as an ONNX model")
    (tmp_path / "empty.onnx").write_bytes(b"")
    one_error_line(*cli("inspect", tmp_path / "empty.onnx")[::2], "empty.onnx", "0 bytes")
    one_error_line(*cli("inspect", tmp_path / "missing.onnx")[::2], "missing.onnx", "not found")


def test_truncated_file(tmp_path):
    bad = tmp_path / "half.onnx"
    data = STEP.read_bytes()
    bad.write_bytes(data[:len(data) // 2])
    np.save(tmp_path / "x.npy", np.zeros((5, 6), np.float32))
    for cmd in (("run", bad, "-i", tmp_path / "x.npy", "-o", tmp_path / "y.npz"), ("inspect", bad), ("bench", bad)):
        one_error_line(*cli(*cmd)[::2], str(bad), "cannot load it as an ONNX model")
    assert not (tmp_path / "y.npz").exists()


def test_input_of_the_wrong_shape_or_options(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((5, 7), np.float32))
    run = ("run", STEP, "-i", tmp_path / "x.npy", "-o", tmp_path / "y.npz")
    one_error_line(*cli(*run)[::2], str(tmp_path / "x.npy"), "timesteps of shape [6]")
    np.save(tmp_path / "x.npy", np.zeros((5, 6), np.float32))
    one_error_line(*cli(*run, "--record", "lif1")[::2], "--record")
    one_error_line(*cli(*run, "--precision", "int")[::2], "--precision int")
    one_error_line(*cli(*run, "--backend", "c")[::2], "--backend c")
    one_error_line(*cli(*run, "--dt", "0.001")[::2], "--dt")
    np.save(tmp_path / "x.npy", np.zeros((5, 25, 7), np.float32))
    one_error_line(*cli("run", WINDOW, "-i", tmp_path / "x.npy", "-o", tmp_path / "y.npz")[::2], "[25, 6]")
    assert not (tmp_path / "y.npz").exists()


def test_sidecar_that_is_not_json_or_has_an_unknown_field(tmp_path):
    shutil.copy(STEP, tmp_path / "m.onnx")
    (tmp_path / "m.onnx.json").write_text("{not json")
    one_error_line(*cli("inspect", tmp_path / "m.onnx")[::2], "m.onnx.json", "cannot read it as JSON")
    (tmp_path / "m.onnx.json").write_text(json.dumps({"states": {}}))
    one_error_line(*cli("inspect", tmp_path / "m.onnx")[::2], "m.onnx.json", "unknown field 'states'")
    (tmp_path / "m.onnx.json").write_text(json.dumps({"state": {"mem1_in": "spikes"}}))
    one_error_line(*cli("inspect", tmp_path / "m.onnx")[::2], "m.onnx.json", "[1, 160]", "[1, 5]")


def test_commands_that_do_not_take_onnx_models_say_so(tmp_path):
    # profile: tests/tflite/test_profile_interpreted.py
    for cmd in (("devices", "fit", STEP, "--device", "rpi4b"),
                ("firmware", "export", STEP, "--target", "stm32f446", "-o", tmp_path / "fw")):
        one_error_line(*cli(*cmd)[::2], "har_lif_step.onnx", "run, stream, inspect, bench and profile")
    assert not (tmp_path / "fw").exists()


def test_without_onnx_runtime(tmp_path):
    """As on a base install: onnxruntime cannot be imported in the child."""
    np.save(tmp_path / "x.npy", np.zeros((5, 6), np.float32))
    csv = REPO / "tests" / "data" / "imu" / "sp-sw-har" / "s16" / "s16_01_sw.csv"
    for args in (("run", STEP, "-i", tmp_path / "x.npy", "-o", tmp_path / "y.npz"), ("inspect", STEP),
                 ("bench", STEP), ("stream", STEP, "--source", csv)):
        assert_names_the_extra(without(["onnxruntime"], *args), "onnx")
    assert not (tmp_path / "y.npz").exists()


def test_without_the_onnx_package_inspect_still_runs():
    r = without(["onnx"], "inspect", STEP, "--json")
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["operators"] is None and "pip install onnx" in s["note"] and s["state_from"] == "names"


def test_onnx_runtime_is_not_imported_by_other_commands():
    from tests.test_lazy_imports import imported_by

    for args in (["--help"], ["inspect", "zoo:har-lif", "--json"]):
        mods = imported_by(*args)
        assert "edgebrain" in mods and not mods & {"onnxruntime", "onnx"}, args


def test_a_flat_window_model_needs_channels_to_stream(tmp_path):
    pytest.importorskip("onnx")
    path, _ = flat_window(tmp_path / "flat.onnx")
    csv = REPO / "tests" / "data" / "imu" / "sp-sw-har" / "s16" / "s16_01_sw.csv"
    one_error_line(*cli("stream", path, "--source", csv)[::2], "flat.onnx", "needs a sidecar", "flat.onnx.json")
    (tmp_path / "flat.onnx.json").write_text(json.dumps({"labels": ["a", "b"]}))
    one_error_line(*cli("stream", path, "--source", csv)[::2], "flat.onnx.json", "'channels' is missing")
    (tmp_path / "flat.onnx.json").write_text(json.dumps({"labels": ["a", "b"], "channels": 5}))
    one_error_line(*cli("stream", path, "--source", csv)[::2], "flat.onnx.json", "'channels' = 5")
    (tmp_path / "flat.onnx.json").write_text(json.dumps({"labels": ["a", "b", "c"], "channels": 3}))
    one_error_line(*cli("stream", path, "--source", csv)[::2], "flat.onnx.json", "labels")
    (tmp_path / "flat.onnx.json").write_text(json.dumps({"labels": ["a", "b"], "channels": 3, "decoder": "count"}))
    one_error_line(*cli("stream", path, "--source", csv)[::2], "flat.onnx.json", "'decoder'", "per-step")
