"""`zoo:basicmotions` (UEA BasicMotions IMU): the committed model still reaches the accuracy its card
records on the archive's test split, evaluated with edgebrain alone; the training script's --smoke run
produces a loadable model. Skips when the recordings (or, for the smoke run, torch/snnTorch) are absent."""

from pathlib import Path

import numpy as np
import pytest

from edgebrain.model import Model
from edgebrain.stream.pipeline import encode_file
from tests.conftest import run_training_smoke

from tests.conftest import REPO  # noqa: E402  (the repository root)
ZOO_MODEL = REPO / "edgebrain" / "zoo" / "basicmotions.ebm"
DATA = "imu/basicmotions"
CASE = 100


def load_cases(path, spec, rate, labels):
    """The .ts file through edgebrain's source and the model's encoder: (x (CASE, n, 6), y (n,))."""
    x, lab, _ = encode_file(path, spec, rate)
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
    run_training_smoke("basicmotions.py", datasets, tmp_path, datasets / DATA / "BasicMotions_TRAIN.ts", timeout=120)
    m = Model.load(tmp_path / "basicmotions.ebm")
    assert m.graph.meta["stream"]["labels"] == ["Standing", "Running", "Walking", "Badminton"]
    assert m.quant is not None and (tmp_path / "basicmotions.md").is_file()
