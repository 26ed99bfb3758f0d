"""The command line as a user runs it: convert, inspect, run, demo (real subprocesses)."""

import json
import subprocess
import sys

import numpy as np
import pytest

import edgebrain
from tests._build import snn_mlp


def cli(*args, timeout=300):
    p = subprocess.run([sys.executable, "-m", "edgebrain.cli", *map(str, args)], capture_output=True, text=True,
                       timeout=timeout)
    return p.returncode, p.stdout, p.stderr


@pytest.fixture(scope="module")
def nir_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    model, _ = snn_mlp(seed=31, scale=3.0)
    path = d / "mlp.nir"
    model.export_nir(path)
    return path, model


def test_convert_inspect_run_round_trip(nir_file, tmp_path):
    nir_path, ref_model = nir_file
    rng = np.random.default_rng(0)
    calib = (2 * rng.standard_normal((150, 8, 6))).astype(np.float32)
    np.save(tmp_path / "calib.npy", calib)
    out = tmp_path / "mlp.ebm"
    rc, so, se = cli("convert", nir_path, "-o", out, "--quantize", "int8", "--calib", tmp_path / "calib.npy", "--json")
    assert rc == 0, se
    res = json.loads(so)
    assert res["dialect"] == "snntorch" and res["dt"] == pytest.approx(1e-4)
    assert "r·dt/tau" in res["import"]["reason"]
    layers = {lr["name"]: lr for lr in res["quantization"]["layers"]}
    assert layers["lif1"]["spike_agreement"] > 0.95

    rc, so, se = cli("inspect", out, "--json")
    assert rc == 0, se
    info = json.loads(so)
    kinds = [n["kind"] for n in info["nodes"]]
    assert kinds == ["Input", "Affine", "LIF", "Affine", "LIF", "Output"]
    assert info["quantized"] and info["weight_bits"] == 8
    fc1 = next(n for n in info["nodes"] if n["name"] == "fc1")
    assert fc1["params"] == 6 * 32 + 32 and fc1["int_bytes"] < fc1["float_bytes"]
    rc, so, se = cli("inspect", nir_path)  # human-readable table, NIR file directly
    assert rc == 0 and "snntorch" in so and "lif1" in so

    xs = (2 * rng.standard_normal((100, 6))).astype(np.float32)
    np.save(tmp_path / "x.npy", xs)
    for precision in ("float", "int"):
        rc, so, se = cli("run", out, "--input", tmp_path / "x.npy", "-o", tmp_path / f"{precision}.npz",
                         "--precision", precision, "--record", "lif1", "--json")
        assert rc == 0, se
        z = np.load(tmp_path / f"{precision}.npz")
        assert set(z.files) == {"output", "spikes/lif1", "v/lif1"}
        assert z["output"].shape == (100, 5) and z["v/lif1"].shape == (100, 32)
        m = edgebrain.load(out)
        ref, rec = m.session(precision).run(xs, record=["lif1"])
        np.testing.assert_array_equal(z["output"], ref)
        np.testing.assert_array_equal(z["spikes/lif1"], rec["spikes/lif1"])
    # the float run of the converted file equals the original model's
    np.testing.assert_array_equal(np.load(tmp_path / "float.npz")["output"], ref_model.session().run(xs)[0])

    # batched input (T, B, *shape) and export back to NIR
    np.save(tmp_path / "xb.npy", np.stack([xs, -xs], axis=1))
    rc, so, se = cli("run", nir_path, "--input", tmp_path / "xb.npy", "-o", tmp_path / "b.npz")
    assert rc == 0, se
    assert np.load(tmp_path / "b.npz")["output"].shape == (100, 2, 5)
    rc, so, se = cli("convert", out, "-o", tmp_path / "back.nir")
    assert rc == 0, se
    float_ref = np.load(tmp_path / "float.npz")["output"]
    np.testing.assert_array_equal(edgebrain.load(tmp_path / "back.nir").session().run(xs)[0], float_ref)


def test_dialect_override_is_reported(nir_file, tmp_path):
    nir_path, _ = nir_file
    rc, so, se = cli("convert", nir_path, "-o", tmp_path / "n.ebm", "--dialect", "norse", "--dt", "1e-4", "--json")
    assert rc == 0, se
    res = json.loads(so)
    assert res["dialect"] == "norse" and res["import"]["detected"] == "snntorch"
    assert any("suggested 'snntorch'" in w for w in res["import"]["warnings"])


def test_demo_motion_runs_on_a_fresh_machine():
    """The built-in synthetic example (also the fallback of `edgebrain demo` without recordings)."""
    rc, so, se = cli("demo", "motion", "--json")
    assert rc == 0, se
    res = json.loads(so)
    assert res["dialect"] == "snntorch"
    assert res["accuracy"]["float"] >= 0.75 and res["accuracy"]["int"] >= 0.75
    assert res["float_int_agreement"] >= 0.75
    assert len(res["decisions"]) == res["seconds_streamed"]
