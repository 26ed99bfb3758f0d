"""`zoo:basicmotions` (UEA BasicMotions IMU): the committed model still reaches the accuracy its card
records on the archive's test split, evaluated with edgebrain alone; the training script's --smoke run
produces a loadable model. Skips when the recordings (or, for the smoke run, torch/snnTorch) are absent."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgebrain.model import Model
from edgebrain.stream.registry import build_encoder, open_source

REPO = Path(__file__).resolve().parent.parent
ZOO_MODEL = REPO / "edgebrain" / "zoo" / "basicmotions.ebm"
DATA = "imu/basicmotions"
CASE = 100


def load_cases(path, spec, rate, labels):
    """The .ts file through edgebrain's source and the model's encoder: (x (CASE, n, 6), y (n,))."""
    src = open_source(str(path))
    enc = build_encoder(spec)
    enc.configure(src.info, None, 1.0 / rate)
    xs, ls = [], []
    with src:
        for chunk in src.chunks():
            s = enc.encode(chunk)
            if s is not None and len(s):
                xs.append(np.asarray(s.x, np.float32))
                ls.append(np.asarray(s.labels, object))
    x, lab = np.concatenate(xs), np.concatenate(ls)
    n = len(x) // CASE
    assert n * CASE == len(x)
    y = np.array([labels.index(str(v)) for v in lab.reshape(n, CASE)[:, 0]])
    return x.reshape(n, CASE, -1).transpose(1, 0, 2).copy(), y


def test_zoo_basicmotions_accuracy(datasets):
    f = datasets / DATA / "BasicMotions_TEST.ts"
    if not f.is_file():
        pytest.skip(f"BasicMotions not found at {f}")
    assert ZOO_MODEL.is_file(), "edgebrain/zoo/basicmotions.ebm is missing: run python tools/train/basicmotions.py"
    model = Model.load(ZOO_MODEL)
    cfg, card = model.graph.meta["stream"], model.graph.meta["card"]
    x, y = load_cases(f, cfg["encoder"], cfg["rate"], cfg["labels"])
    assert x.shape[1] == 40
    recorded = {r["precision"].split()[0]: r["accuracy"] for r in card["results"][:2]}
    for precision, key in (("float", "float32"), ("int", "int8")):
        sess = model.session(precision, batch=x.shape[1])
        out, _ = sess.run(x)
        c = np.asarray(out, np.float64).reshape(CASE, x.shape[1], -1).sum(0)
        pred = np.where(c.sum(1) > 0, c.argmax(1), -1)
        acc = float((pred == y).mean())
        assert acc >= recorded[key] - 0.01, f"{precision}: {acc:.4f} < card {recorded[key]:.4f} − 1 point"


def test_basicmotions_smoke_training(datasets, tmp_path):
    pytest.importorskip("torch", reason="torch not installed (pip install 'edgebrain[train]')")
    pytest.importorskip("snntorch", reason="snnTorch not installed (pip install 'edgebrain[train]')")
    if not (datasets / DATA / "BasicMotions_TRAIN.ts").is_file():
        pytest.skip(f"BasicMotions not found under {datasets}")
    env = dict(os.environ, EDGEBRAIN_DATA=str(datasets))
    p = subprocess.run([sys.executable, str(REPO / "tools/train/basicmotions.py"), "--smoke", "--out",
                        str(tmp_path)], capture_output=True, text=True, timeout=120, env=env, cwd=REPO)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    m = Model.load(tmp_path / "basicmotions.ebm")
    assert m.graph.meta["stream"]["labels"] == ["Standing", "Running", "Walking", "Badminton"]
    assert m.quant is not None and (tmp_path / "basicmotions.md").is_file()
