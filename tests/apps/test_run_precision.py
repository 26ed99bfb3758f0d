"""``edgebrain run`` defaults to the precision the model was deployed at (issue 12, item 4), like
``stream``, ``demo``, ``bench`` and ``profile``: int for a quantized model, float otherwise."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from edgebrain import zoo
from edgebrain.model import Model
from edgebrain.synthetic import example_path
from tests.conftest import IMU_CSV, REPO, load_imu


def _run(*args):
    r = subprocess.run([sys.executable, "-m", "edgebrain", "run", *map(str, args)], capture_output=True, text=True,
                       timeout=300, cwd=REPO, check=False)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_quantized_model_runs_in_int_by_default(datasets, tmp_path):
    x = load_imu(datasets / IMU_CSV, 300)
    np.save(tmp_path / "x.npy", x)
    m = Model.load(zoo.path("har-l2mu"))
    s = json.loads(_run("zoo:har-l2mu", "-i", tmp_path / "x.npy", "-o", tmp_path / "d.npz", "--json"))
    assert s["precision"] == "int" == s["deployed_precision"]
    np.testing.assert_array_equal(np.load(tmp_path / "d.npz")["output"], m.session("int").run(x)[0])
    text = _run("zoo:har-l2mu", "-i", tmp_path / "x.npy", "-o", tmp_path / "f.npz", "--precision", "float")
    assert "in float precision in" in text    # not the deployed one: no "(as deployed)"
    np.testing.assert_array_equal(np.load(tmp_path / "f.npz")["output"], m.session("float").run(x)[0])
    assert "in int precision (as deployed)" in _run("zoo:har-l2mu", "-i", tmp_path / "x.npy", "-o", tmp_path / "i.npz")


def test_float_model_runs_in_float_by_default(tmp_path):
    m = Model.load(example_path())
    x = np.random.default_rng(0).standard_normal((50,) + tuple(m.input_shape)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    s = json.loads(_run(example_path(), "-i", tmp_path / "x.npy", "-o", tmp_path / "o.npz", "--json"))
    assert s["precision"] == "float" == s["deployed_precision"]
    np.testing.assert_array_equal(np.load(tmp_path / "o.npz")["output"], m.session("float").run(x)[0])
