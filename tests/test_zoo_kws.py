"""`zoo:kws` (spoken digits, FSDD): the committed model still reaches the accuracy its card records on
the real test speaker, evaluated with edgebrain alone; the training script's --smoke run produces a
loadable model. Skips when the FSDD recordings (or, for the smoke run, torch/snnTorch) are absent."""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgebrain.model import Model
from edgebrain.stream.registry import build_encoder, open_source

REPO = Path(__file__).resolve().parent.parent
ZOO_MODEL = REPO / "edgebrain" / "zoo" / "kws.ebm"
FSDD = "audio/fsdd"
TEST_SPEAKER = "theo"


def encode(path, spec, rate):
    """One recording through edgebrain's source and encoder (as tools/train/common.encode_file)."""
    src = open_source(str(path))
    enc = build_encoder(spec)
    enc.configure(src.info, None, 1.0 / rate)
    xs = []
    with src:
        for chunk in src.chunks():
            s = enc.encode(chunk)
            if s is not None and len(s):
                xs.append(np.asarray(s.x, np.float32))
    s = enc.flush()
    if s is not None and len(s):
        xs.append(np.asarray(s.x, np.float32))
    return np.concatenate(xs)


def decide(model, xs, precision):
    """One decision per recording: the output with the most spikes, each recording run from reset
    over its own steps (recordings of equal length batched together). −1 when no output spiked."""
    pred = np.full(len(xs), -1)
    by_len = {}
    for i, x in enumerate(xs):
        by_len.setdefault(len(x), []).append(i)
    for T, idx in by_len.items():
        sess = model.session(precision, batch=len(idx))
        y, _ = sess.run(np.stack([xs[i] for i in idx], axis=1))
        c = np.asarray(y, np.float64).reshape(T, len(idx), -1).sum(0)
        pred[idx] = np.where(c.sum(1) > 0, c.argmax(1), -1)
    return pred


def test_zoo_kws_accuracy(datasets):
    root = datasets / FSDD / "recordings"
    if not root.is_dir():
        pytest.skip(f"FSDD recordings not found at {root}")
    assert ZOO_MODEL.is_file(), "edgebrain/zoo/kws.ebm is missing: run python tools/train/kws.py"
    model = Model.load(ZOO_MODEL)
    cfg, card = model.graph.meta["stream"], model.graph.meta["card"]
    files = sorted(f for f in root.glob("*.wav") if re.match(rf"^\d_{TEST_SPEAKER}_\d+\.wav$", f.name))
    assert len(files) >= 100
    truth = np.array([int(f.name[0]) for f in files])
    xs = [encode(f, cfg["encoder"], cfg["rate"]) for f in files]
    recorded = {r["precision"].split()[0]: r["accuracy"] for r in card["results"][:2]}
    for precision, key in (("float", "float32"), ("int", "int8")):
        acc = float((decide(model, xs, precision) == truth).mean())
        assert acc >= recorded[key] - 0.01, f"{precision}: {acc:.4f} < card {recorded[key]:.4f} − 1 point"


def test_kws_smoke_training(datasets, tmp_path):
    pytest.importorskip("torch", reason="torch not installed (pip install 'edgebrain[train]')")
    pytest.importorskip("snntorch", reason="snnTorch not installed (pip install 'edgebrain[train]')")
    if not (datasets / FSDD / "recordings").is_dir():
        pytest.skip(f"FSDD recordings not found under {datasets}")
    env = dict(os.environ, EDGEBRAIN_DATA=str(datasets))
    p = subprocess.run([sys.executable, str(REPO / "tools/train/kws.py"), "--smoke", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=120, env=env, cwd=REPO)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    m = Model.load(tmp_path / "kws.ebm")
    assert m.graph.meta["stream"]["labels"] == [str(d) for d in range(10)]
    assert m.quant is not None and (tmp_path / "kws.md").is_file()
