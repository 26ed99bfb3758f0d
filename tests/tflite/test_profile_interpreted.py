"""``edgebrain profile MODEL.tflite|MODEL.onnx`` (edgebrain/apps/profile/interpreted.py): the counts against
the files as LiteRT and the ``onnx`` package read them, the estimate against the device profile's energies by
hand, the decisions of a streamed recording against ``edgebrain stream``'s, the energy of an emulated INA3221
(the JetPack 6 hwmon files) against volts × amps × time, and bad input in one line."""

from __future__ import annotations

import json
import tomllib

import numpy as np
import pytest

from tests.conftest import REPO, cli, one_error_line
from tests.energy.test_meters import jetson_jp6

litert = pytest.importorskip("ai_edge_litert.interpreter", reason="the tflite extra is not installed: "
                             "pip install 'edgebrain[tflite]' (ai-edge-litert)")

DATA = REPO / "tests" / "tflite" / "data"
ONNX = REPO / "tests" / "onnx" / "data"
REC = REPO / "tests" / "data" / "imu" / "sp-sw-har" / "s01" / "s01_01_sw.csv"   # a real recording (fixture set)
P_IN = 5.072 * 1.150  # the emulated Orin Nano's VDD_IN, W


def device_energies(name: str) -> dict:
    """The profile's picojoules per operation, read from its TOML (a value or ``{value = ...}``)."""
    e = tomllib.loads((REPO / "devices" / f"{name}.toml").read_text())["energy"]
    return {k: v["value"] if isinstance(v, dict) else v for k, v in e.items() if k not in ("source", "estimated")}


def profile_json(*args) -> dict:
    rc, out, err = cli("profile", *args, "--json")
    assert rc == 0, err
    return json.loads(out)


def test_tflite_mlp_counts_and_estimate_by_hand(tmp_path):
    """har_mlp_int8: FULLY_CONNECTED 300→32→5 as LiteRT lists its tensors. Every MAC counted once per call, the
    weights and biases read once; the estimate's MAC and weight terms are the rpi4b profile's energies × those."""
    model = DATA / "har_mlp_int8.tflite"
    it = litert.Interpreter(model_path=str(model))
    it.allocate_tensors()
    det = it.get_tensor_details()
    weights = [d for d in det if len(d["shape"]) == 2 and d["dtype"] == np.int8 and d["shape"][0] != 1]
    biases = [d for d in det if len(d["shape"]) == 1 and d["dtype"] == np.int32]
    macs = sum(int(w["shape"][0] * w["shape"][1]) for w in weights)
    wbytes = sum(int(np.prod(d["shape"])) * np.dtype(d["dtype"]).itemsize for d in weights + biases)
    assert macs == 300 * 32 + 32 * 5
    x = np.random.default_rng(0).standard_normal((20, 300)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    r = profile_json(model, "--input", tmp_path / "x.npy", "--device", "rpi4b")
    assert r["kind"] == "interpreted" and r["format"] == "tflite" and r["precision"] == "int"
    met, est = r["metrics"], r["estimate"]
    assert met["macs_per_call"] == macs and met["macs_per_inference"] == macs
    assert met["parameter_count"] == sum(int(np.prod(d["shape"])) for d in weights + biases)
    e = device_energies("rpi4b")
    b = est["breakdown_per_inference_j"]
    assert b["synaptic_mac_j"] == pytest.approx(macs * (e["int8_mul"] + e["int32_add"]) * 1e-12)
    assert b["weight_memory_j"] == pytest.approx(wbytes / 8 * e["sram_access"] * 1e-12)   # 10 KB: in cache
    assert b["synaptic_ac_j"] == 0 and b["membrane_j"] == 0
    assert est["per_inference_j"] == pytest.approx(sum(b.values()))
    # one inference is one call on one sample: every pass over the array is its 20 samples
    m = r["measured"]
    assert m["inferences"] == 20 * m["calls"] and r["workload"]["steps_per_inference"] == 1
    assert not m["measured"] and r["host_timing"]["seconds_per_inference"] > 0


def test_tflite_window_model_source_decides_as_stream():
    """A window model streamed from a real recording: one inference per decision, as many decisions per pass
    as ``edgebrain stream`` makes on the same recording."""
    model = DATA / "har_cnn_int8.tflite"
    rc, out, err = cli("stream", model, "--source", REC, "--json")
    assert rc == 0, err
    want = json.loads(out.strip().splitlines()[-1])["summary"]["decisions"]
    r = profile_json(model, "--source", REC, "--device", "nrf52840")
    w = r["workload"]
    assert w["decisions_per_pass"] == want > 0 and w["steps_per_inference"] == 1.0
    assert r["measured"]["inferences"] % want == 0
    assert r["metrics"]["macs_per_inference"] == r["metrics"]["macs_per_call"] > 0


def test_tflite_measured_with_ina3221(tmp_path):
    """The meter integrates the emulated rail: energy per inference = 5.072 V × 1.150 A × run time / inferences
    (within the meter's 1 mW resolution), beside the estimate."""
    root = jetson_jp6(tmp_path / "sys")
    x = np.random.default_rng(1).standard_normal((50, 300)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    r = profile_json(DATA / "har_mlp_int8.tflite", "--input", tmp_path / "x.npy", "--meter", f"ina3221:{root}",
                     "--baseline", "1", "--duration", "2", "--device", "jetson-orin-nano")
    m = r["measured"]
    assert m["measured"] and m["inferences"] % 50 == 0
    assert m["mean_power_w"] == pytest.approx(P_IN, abs=1e-3)
    assert m["energy_per_inference_j"] == pytest.approx(P_IN * m["duration_s"] / m["inferences"],
                                                        abs=1e-3 * m["duration_s"] / m["inferences"])
    assert m["dynamic_per_inference_j"] == pytest.approx(0, abs=1e-3 * m["duration_s"] / m["inferences"])
    assert r["estimate"]["per_inference_j"] > 0


def test_onnx_step_model_counts_and_steps_per_decision(tmp_path):
    """The per-step ONNX LIF network: its MACs are its Gemm/MatMul weights' sizes as the onnx package reads
    them; one inference is one decision of the sidecar's decoder, i.e. the stream's steps per decision."""
    pytest.importorskip("onnxruntime", reason="the onnx extra is not installed: pip install 'edgebrain[onnx]'")
    onnx = pytest.importorskip("onnx", reason="the onnx package is needed to count an ONNX model's operations")
    from onnx import numpy_helper

    model = ONNX / "har_lif_step.onnx"
    g = onnx.load(str(model)).graph
    init = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    macs = 0
    for n in g.node:
        if n.op_type in ("Gemm", "MatMul"):
            w = next(init[k] for k in n.input[1:2] if k in init)
            macs += int(w.size)
    r = profile_json(model, "--source", REC, "--device", "rpi4b")
    assert r["format"] == "onnx" and r["precision"] == "float"
    assert r["metrics"]["macs_per_call"] == macs
    w = r["workload"]
    rc, out, err = cli("stream", model, "--source", REC, "--json")
    s = json.loads(out.strip().splitlines()[-1])["summary"]
    assert w["decisions_per_pass"] == s["decisions"] and w["steps_per_pass"] == s["steps"]
    assert w["steps_per_inference"] == pytest.approx(s["steps"] / s["decisions"])
    assert r["metrics"]["macs_per_inference"] == pytest.approx(macs * s["steps"] / s["decisions"])
    e = device_energies("rpi4b")
    assert r["estimate"]["breakdown_per_inference_j"]["synaptic_mac_j"] == pytest.approx(
        macs * s["steps"] / s["decisions"] * (e["fp32_mul"] + e["fp32_add"]) * 1e-12)
    # the same model on an array of timesteps: one inference = one pass over them
    np.save(tmp_path / "x.npy", np.zeros((30, 6), np.float32))
    r = profile_json(model, "--input", tmp_path / "x.npy")
    assert r["workload"]["steps_per_inference"] == 30 and r["measured"]["inferences"] == r["measured"]["calls"]


def test_plot_and_text_report(tmp_path):
    png = tmp_path / "p.png"
    rc, out, err = cli("profile", DATA / "har_cnn_int8.tflite", "--source", REC, "--plot", png)
    assert rc == 0, err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "MACs" in out and "per call" in out and f"wrote {png}" in out


def refused(res, *words) -> None:
    rc, _, err = res
    one_error_line(rc, err, *words)


def test_bad_input_one_line(tmp_path):
    model = DATA / "har_mlp_int8.tflite"
    np.save(tmp_path / "x.npy", np.zeros((4, 299), np.float32))
    refused(cli("profile", model, "--input", tmp_path / "x.npy"), "x.npy", "[300]")
    np.save(tmp_path / "y.npy", np.zeros((4, 300), np.float32))
    refused(cli("profile", model, "--input", tmp_path / "y.npy", "--precision", "float"), "--precision")
    refused(cli("profile", model), "--input")
    refused(cli("profile", DATA / "har_res_int8.tflite", "--source", REC), "sidecar")
