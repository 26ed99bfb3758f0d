"""Writes the TFLite test fixtures (tests/tflite/data/): small Keras models trained on the smartwatch HAR
recordings and converted by TensorFlow's own TFLite converter, float and full-integer int8.

This runs in a tools-only environment with TensorFlow, never in edgebrain's runtime or tests:

    python -m venv /tmp/tfvenv && /tmp/tfvenv/bin/pip install tensorflow-cpu==2.21.0
    /tmp/tfvenv/bin/python tools/tflite/make_tflite_fixtures.py [--data DIR] [--out tests/tflite/data] [--models mlp,cnn,res]

Data: ``imu/sp-sw-har`` under ``--data`` ($EDGEBRAIN_DATA, else ../shared/datasets beside the checkout,
else the fixture subset tests/data). The zoo's subject-disjoint split: train s01–s12, test s16–s18.
Each file is standardised per channel over the file (as ``tests/conftest.load_imu`` does), cut into
windows of 50 samples (0.5 s at 100 Hz) every 25 samples, labelled by the window's most frequent label.

Models (logits out, no softmax):

* ``har_mlp_*``: the window flattened (300 values) → Dense 32 + ReLU → Dense 5;
* ``har_cnn_*``: (50, 6) → Conv1D 8×5 + ReLU → MaxPool 2 → Conv1D 16×3 + ReLU → global average → Dense 5;
* ``har_res_*``: a residual MLP, the window flattened (300) → Dense 16 + ReLU (h1) → ReLU(h1 + Dense 16 (h1))
  (h2: ADD with a fused ReLU) → Dense 16 + ReLU (h3) → h2 + h3 (ADD, no activation) → Dense 5: both forms of
  residual sum the ANN → SNN conversion takes (docs/conversion.md).

``*_float.tflite``: ``TFLiteConverter.from_keras_model`` with no optimisation; ``*_int8.tflite``:
``Optimize.DEFAULT`` with 200 training windows as the representative dataset, int8 ops only, int8
input and output tensors. ``--models`` builds a subset (the other files and their ``models.json`` entries are
kept). ``models.json`` records the tool versions, the files' SHA-256 and sizes and
the test accuracy of each file as run by TensorFlow's own ``tf.lite.Interpreter``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
LABELS = ["SEATED", "STANDING_UP", "WALKING", "TURNING", "SITTING_DOWN"]
TRAIN, TEST = range(1, 13), range(16, 19)
WINDOW, HOP = 50, 25


def data_root(arg: str | None) -> Path:
    for c in (arg, os.environ.get("EDGEBRAIN_DATA"), REPO.parent / "shared" / "datasets", REPO / "tests" / "data"):
        if c and (Path(c) / "imu" / "sp-sw-har").is_dir():
            return Path(c)
    raise SystemExit("no imu/sp-sw-har recordings found (--data DIR)")


def load_file(path: Path):
    """(T, 6) float32 standardised per channel over the file (tests/conftest.load_imu) and (T,) labels."""
    raw = np.loadtxt(path, delimiter=",", skiprows=1, usecols=range(6), dtype=np.float64)
    lab = np.loadtxt(path, delimiter=",", skiprows=1, usecols=[7], dtype=str)
    x = ((raw - raw.mean(0)) / np.maximum(raw.std(0), 1e-9)).astype(np.float32)
    return x, np.array([LABELS.index(v) for v in lab])


def windows(root: Path, subjects):
    xs, ys = [], []
    for s in subjects:
        for f in sorted((root / "imu" / "sp-sw-har" / f"s{s:02d}").glob(f"s{s:02d}_*_sw.csv")):
            x, y = load_file(f)
            for a in range(0, len(x) - WINDOW + 1, HOP):
                xs.append(x[a:a + WINDOW])
                ys.append(np.bincount(y[a:a + WINDOW], minlength=len(LABELS)).argmax())
    return np.stack(xs), np.array(ys)


def build_res(tf, batch_size):
    """The residual MLP (functional: Keras's Add, then ReLU, which the converter fuses into the ADD)."""
    L = tf.keras.layers
    x = tf.keras.Input((WINDOW * 6,), batch_size=batch_size)
    h1 = L.Dense(16, activation="relu")(x)
    h2 = L.ReLU()(L.Add()([h1, L.Dense(16)(h1)]))
    h3 = L.Dense(16, activation="relu")(h2)
    return tf.keras.Model(x, L.Dense(len(LABELS))(L.Add()([h2, h3])))


def build(kind: str, tf):
    L = tf.keras.layers
    if kind == "res":
        return build_res(tf, 1)
    if kind == "mlp":
        layers = [tf.keras.Input((WINDOW * 6,), batch_size=1), L.Dense(32, activation="relu"), L.Dense(len(LABELS))]
    else:
        layers = [tf.keras.Input((WINDOW, 6), batch_size=1), L.Conv1D(8, 5, activation="relu"), L.MaxPooling1D(2),
                  L.Conv1D(16, 3, activation="relu"), L.GlobalAveragePooling1D(), L.Dense(len(LABELS))]
    return tf.keras.Sequential(layers)


def tflite_accuracy(tf, content: bytes, x, y) -> float:
    it = tf.lite.Interpreter(model_content=content)
    it.allocate_tensors()
    i, o = it.get_input_details()[0], it.get_output_details()[0]
    right = 0
    for xi, yi in zip(x, y):
        v = xi[None]
        if i["dtype"] == np.int8:
            s, z = i["quantization"]
            v = np.clip(np.round(v / s) + z, -128, 127).astype(np.int8)
        it.set_tensor(i["index"], v)
        it.invoke()
        right += int(it.get_tensor(o["index"])[0].argmax() == yi)
    return right / len(y)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data")
    ap.add_argument("--out", default=str(REPO / "tests" / "tflite" / "data"))
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--models", default="mlp,cnn,res", help="which models to build (comma-separated)")
    a = ap.parse_args(argv)
    import tensorflow as tf

    tf.keras.utils.set_random_seed(0)
    root = data_root(a.data)
    xtr, ytr = windows(root, TRAIN)
    xte, yte = windows(root, TEST)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    old = json.loads((out / "models.json").read_text()) if (out / "models.json").is_file() else {}
    facts = {"tool": f"tensorflow-cpu {tf.__version__} (tf.lite.TFLiteConverter), keras {tf.keras.__version__}",
             "data": "imu/sp-sw-har: train s01-s12, test s16-s18, windows of 50 samples every 25",
             "train_windows": int(len(ytr)), "test_windows": int(len(yte)), "labels": LABELS,
             "files": dict(old.get("files", {}))}
    kinds = [k.strip() for k in a.models.split(",")]
    for kind in [k for k in ("mlp", "cnn", "res") if k in kinds]:
        xt, xe = (xtr, xte) if kind == "cnn" else (xtr.reshape(len(xtr), -1), xte.reshape(len(xte), -1))
        if kind == "res":
            tf.keras.utils.set_random_seed(0)         # seeded on its own: the same file with or without the others
        m = build(kind, tf)
        m.compile(optimizer=tf.keras.optimizers.Adam(3e-3),
                  loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
        # trained at batch 32 in a twin without the fixed batch dimension, then the weights copied
        if kind == "res":
            t = build_res(tf, None)
        else:
            t = tf.keras.Sequential([tf.keras.Input(m.input_shape[1:])] + [type(ly).from_config(ly.get_config())
                                                                           for ly in m.layers])
        t.compile(optimizer=tf.keras.optimizers.Adam(3e-3),
                  loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
        t.fit(xt, ytr, batch_size=32, epochs=a.epochs, verbose=0, shuffle=True)
        m.set_weights(t.get_weights())
        conv = tf.lite.TFLiteConverter.from_keras_model(m)
        flt = conv.convert()
        conv = tf.lite.TFLiteConverter.from_keras_model(m)
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        rep = xt[np.random.default_rng(0).choice(len(xt), 200, replace=False)]
        conv.representative_dataset = lambda: ([r[None]] for r in rep)
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
        q = conv.convert()
        keras_acc = float((t.predict(xe, verbose=0).argmax(1) == yte).mean())
        for prec, content in (("float", flt), ("int8", q)):
            name = f"har_{kind}_{prec}.tflite"
            (out / name).write_bytes(content)
            facts["files"][name] = {"bytes": len(content), "sha256": hashlib.sha256(content).hexdigest(),
                                    "test_accuracy": tflite_accuracy(tf, content, xe, yte),
                                    "keras_test_accuracy": keras_acc}
            print(name, facts["files"][name])
    (out / "models.json").write_text(json.dumps(facts, indent=1) + "\n")


if __name__ == "__main__":
    main()
