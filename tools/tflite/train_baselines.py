"""Trains honest TFLite baselines (issue 17) for the ANN → SNN conversion (docs/conversion.md, "Honest
baselines"): ReLU models that ``edgebrain convert --to-snn`` accepts, trained to convergence with early
stopping on held-out subjects, written float and full-integer int8 by TensorFlow's own TFLite converter.

This runs in a tools-only environment with TensorFlow, never in edgebrain's runtime or tests:

    python -m venv /tmp/tfvenv && /tmp/tfvenv/bin/pip install tensorflow-cpu==2.21.0 numpy
    /tmp/tfvenv/bin/python tools/tflite/train_baselines.py --models har_base --float-out /tmp/float
    /tmp/tfvenv/bin/python tools/tflite/train_baselines.py --models nmnist_base --patience 40 --float-out /tmp/float

Data under ``--data`` ($EDGEBRAIN_DATA, else ../shared/datasets beside the checkout):

* ``imu/sp-sw-har``, the zoo's subject-disjoint split (docs/zoo.md, ``tools/train/har.py``): train s01–s12,
  validation s13–s15 (early stopping only), test s16–s18. Decisions as the TFLite fixtures cut them
  (``tools/tflite/make_tflite_fixtures.py``): each file standardised per channel over the file, a decision
  every 25 samples on the window of 50 samples (0.5 s at 100 Hz) ending there, labelled with its most
  frequent label. ``har_base`` reads ``--context`` (400) samples ending at the window's end, the window and
  the 3.5 s before it (zeros before the file's start): the same decisions and labels, with past context as
  the zoo's GRU has (it reads the whole stream); ``har_win50`` reads the window alone (tried: 83.7 %).
* ``events/nmnist-small``: training samples 1–900, validation 901–1000 (early stopping), test 60001–60100;
  each sample's events counted per pixel and polarity over its first 320 ms, divided by 10 (the zoo
  baseline's summed frames).

Models (logits out, no softmax, ReLU elsewhere, no BatchNorm; what ``edgebrain convert --to-snn`` takes):

* ``har_base``: (400, 6) → AveragePooling1D 2 → Conv1D 16×5 stride 2 → Conv1D 32×5 stride 2 → Conv1D 32×3
  stride 2 → Conv1D 32×3 stride 2 (each + ReLU) → Flatten → Dense 64 + ReLU → Dense 5 (TFLite: RESHAPE,
  AVERAGE_POOL_2D, CONV_2D ×4 with height 1, RESHAPE, FULLY_CONNECTED ×2); training twin: Gaussian input
  noise 0.1, dropout 0.3 before each dense layer;
* ``nmnist_base``: the zoo baseline's architecture (``tools/train/nmnist.py``): (34, 34, 2) → Conv2D 12×5 +
  ReLU → AveragePooling2D 2 → Conv2D 32×4 + ReLU → AveragePooling2D 2 → Flatten → Dense 10; training twin:
  random shifts of ±2 pixels.

Training: Adam (``--lr`` 1e-3), batch 64, up to ``--max-epochs`` epochs, stopped when the validation accuracy
has not improved for ``--patience`` epochs, the best validation epoch's weights kept (the training twin's
noise, dropout and shifts have no weights: the written model has none of them). Seeded
(``tf.keras.utils.set_random_seed(--seed)``, default 0).

``*_float.tflite``: ``TFLiteConverter.from_keras_model``, no optimisation; ``*_int8.tflite``:
``Optimize.DEFAULT``, 500 training samples (seeded choice) as the representative dataset, int8 ops only, int8
input and output tensors. Writes ``models.json`` in ``--out`` (merged: other keys, such as the ``snn``
entries added from ``edgebrain convert --to-snn --json``, are kept): per model the epochs, the validation
curve, each file's size, SHA-256, validation and test accuracy run by ``tf.lite.Interpreter`` and its right
test decisions. ``--save-npy DIR`` also writes the test (and training) inputs and test labels as ``.npy``
(``NAME_test_x.npy``, ``NAME_test_y.npy``, ``NAME_train_x.npy``) for ``edgebrain convert --to-snn``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
# the fixtures' class names, windows and per-file standardisation, so the baselines see the same windows
from make_tflite_fixtures import HOP, LABELS, WINDOW, load_file  # noqa: I001 - after the path above
SPLIT = {"train": range(1, 13), "val": range(13, 16), "test": range(16, 19)}


def data_root(arg: str | None) -> Path:
    for c in (arg, os.environ.get("EDGEBRAIN_DATA"), REPO.parent / "shared" / "datasets"):
        if c and (Path(c) / "imu" / "sp-sw-har").is_dir():
            return Path(c)
    raise SystemExit("no imu/sp-sw-har recordings found (--data DIR)")


def windows(root: Path, subjects, context: int = WINDOW):
    """The fixtures' windows: (N, context, 6) and their labels (N,). With ``context`` > 50 each input also
    holds the ``context − 50`` samples before the window (zeros, the standardised mean, before the file's
    start): the same decisions and labels, more of the past (as the zoo's GRU, which reads the whole stream)."""
    xs, ys = [], []
    pad = context - WINDOW
    for s in subjects:
        for f in sorted((root / "imu" / "sp-sw-har" / f"s{s:02d}").glob(f"s{s:02d}_*_sw.csv")):
            x, y = load_file(f)
            xp = np.concatenate([np.zeros((pad, 6), np.float32), x])
            for a in range(0, len(x) - WINDOW + 1, HOP):
                xs.append(xp[a:a + context])
                ys.append(np.bincount(y[a:a + WINDOW], minlength=len(LABELS)).argmax())
    return np.stack(xs), np.array(ys)


def build_har(tf, batch_size, train: bool, a=None):
    """``har_win50``: the 50-sample window alone (tried: 83.7 % on the test windows); ``train=True``: the training twin with input noise and dropout (no weights of their own,
    so the weights copy one to one)."""
    L = tf.keras.layers
    lay = [tf.keras.Input((WINDOW, 6), batch_size=batch_size)]
    if train:
        lay.append(L.GaussianNoise(0.1))
    lay += [L.Conv1D(16, 5, activation="relu"), L.Conv1D(32, 5, strides=2, activation="relu"),
            L.Conv1D(32, 3, strides=2, activation="relu"), L.Flatten()]
    if train:
        lay.append(L.Dropout(0.2))
    lay.append(L.Dense(64, activation="relu"))
    if train:
        lay.append(L.Dropout(0.2))
    lay.append(L.Dense(len(LABELS)))
    return tf.keras.Sequential(lay)


def rotation_layer(tf, max_deg: float):
    """The training twin's rotation of the sensor frame (issue 18's augmentation for other wearers and watches):
    each sample's accelerometer and gyroscope triads turned by one random rotation of at most ``max_deg`` about a
    random axis (Rodrigues' formula). No weights, so the weights still copy one to one; identity at inference."""

    class RandomFrameRotation(tf.keras.layers.Layer):
        def call(self, x, training=None):
            if not training:
                return x
            n = tf.shape(x)[0]
            axis = tf.math.l2_normalize(tf.random.normal((n, 3)), axis=1)
            ang = tf.random.uniform((n, 1, 1), -1.0, 1.0) * (max_deg * np.pi / 180)
            ax, ay, az = axis[:, 0], axis[:, 1], axis[:, 2]
            z = tf.zeros_like(ax)
            K = tf.stack([tf.stack([z, -az, ay], 1), tf.stack([az, z, -ax], 1), tf.stack([-ay, ax, z], 1)], 1)
            R = tf.eye(3, batch_shape=[n]) + tf.sin(ang) * K + (1 - tf.cos(ang)) * tf.matmul(K, K)
            acc = tf.matmul(x[..., :3], R, transpose_b=True)
            gyr = tf.matmul(x[..., 3:], R, transpose_b=True)
            return tf.concat([acc, gyr], -1)
    return RandomFrameRotation()


def build_ctx(tf, batch_size, train: bool, a):
    """``har_base``: ``context`` samples (the window and the samples before it) → Conv1D 16×5 stride 2 →
    Conv1D 32×5 stride 2 → Conv1D 32×3 stride 2 → Conv1D 32×3 stride 2 (all + ReLU) → Flatten → Dense 64 +
    ReLU → Dense 5; the training twin adds input noise and dropout."""
    context, pool, width, hidden, stride1 = a.context, a.pool, a.width, a.hidden, a.stride1
    L = tf.keras.layers
    lay = [tf.keras.Input((context, 6), batch_size=batch_size)]
    if train and getattr(a, "rotate", 0):
        lay.append(rotation_layer(tf, a.rotate))
    if train:
        lay.append(L.GaussianNoise(0.1))
    if pool > 1:
        lay.append(L.AveragePooling1D(pool))
    lay += [L.Conv1D(width // 2, 5, strides=stride1 or (2 if pool == 1 else 1), activation="relu"),
            L.Conv1D(width, 5, strides=2, activation="relu"),
            L.Conv1D(width, 3, strides=2, activation="relu"), L.Conv1D(width, 3, strides=2, activation="relu"),
            L.Flatten()]
    if train:
        lay.append(L.Dropout(0.3))
    lay.append(L.Dense(hidden, activation="relu"))
    if train:
        lay.append(L.Dropout(0.3))
    lay.append(L.Dense(len(LABELS)))
    return tf.keras.Sequential(lay)


def build_nmnist(tf, batch_size, train: bool, a=None):
    """``nmnist_base``: the zoo's N-MNIST baseline architecture (tools/train/nmnist.py ``Baseline``) in Keras:
    (34, 34, 2) event counts / 10 → Conv 12×5 + ReLU → AvgPool 2 → Conv 32×4 + ReLU → AvgPool 2 → Flatten →
    Dense 10; the training twin shifts the frames by up to ±2 pixels (as the zoo's training does)."""
    L = tf.keras.layers
    lay = [tf.keras.Input((34, 34, 2), batch_size=batch_size)]
    if train:
        lay.append(L.RandomTranslation(2 / 34, 2 / 34, fill_mode="constant", interpolation="nearest"))
    lay += [L.Conv2D(12, 5, activation="relu"), L.AveragePooling2D(2), L.Conv2D(32, 4, activation="relu"),
            L.AveragePooling2D(2), L.Flatten(), L.Dense(10)]
    return tf.keras.Sequential(lay)


def nmnist_frames(root: Path, ids) -> np.ndarray:
    """(N, 34, 34, 2): each sample's events counted per pixel and polarity over its first 320 ms (the zoo's
    16 windows of 20 ms, ``bin:window_us=20000,polarity=split`` summed), divided by 10 as the zoo's baseline."""
    out = np.zeros((len(ids), 34, 34, 2), np.float32)
    for k, i in enumerate(ids):
        raw = np.fromfile(root / f"{i}.bs2", dtype=np.uint8).reshape(-1, 5).astype(np.int64)
        x, y, p = raw[:, 0], raw[:, 1], raw[:, 2] >> 7
        t = ((raw[:, 2] & 0x7F) << 16) | (raw[:, 3] << 8) | raw[:, 4]
        ok = (t < 320_000) & (x < 34) & (y < 34)
        np.add.at(out[k], (y[ok], x[ok], p[ok]), 1.0)
    return out / 10.0


def nmnist_data(root: Path):
    """Train samples 1–900, validation 901–1000 (early stopping), test 60001–60100 (SLAYER's NMNISTsmall)."""
    d = root / "events" / "nmnist-small"

    def labels(f):
        return {int(a): int(float(b)) for a, b in (ln.split()[:2] for ln in (d / f).read_text().splitlines()
                                                    if ln.split() and ln.split()[0].isdigit())}
    tr, te = labels("train1K.txt"), labels("test100.txt")
    ids_tr, ids_te = sorted(tr), sorted(te)
    split = [ids_tr[:900], ids_tr[900:], ids_te]
    lab = {**tr, **te}
    return tuple((nmnist_frames(d, ids), np.array([lab[i] for i in ids])) for ids in split)


def tflite_predict(tf, content: bytes, x) -> np.ndarray:
    """Decisions of ``tf.lite.Interpreter`` on ``x``, one sample at a time."""
    it = tf.lite.Interpreter(model_content=content)
    it.allocate_tensors()
    i, o = it.get_input_details()[0], it.get_output_details()[0]
    out = []
    for xi in x:
        v = xi[None]
        if i["dtype"] == np.int8:
            s, z = i["quantization"]
            v = np.clip(np.round(v / s) + z, -128, 127).astype(np.int8)
        it.set_tensor(i["index"], v)
        it.invoke()
        out.append(int(it.get_tensor(o["index"])[0].argmax()))
    return np.array(out)


def train(tf, name, build, data, a):
    (xtr, ytr), (xva, yva), (xte, yte) = data
    tf.keras.utils.set_random_seed(a.seed)
    t = build(tf, None, True, a)
    t.compile(optimizer=tf.keras.optimizers.Adam(a.lr),
              loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    stop = tf.keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=a.patience, restore_best_weights=True,
                                            mode="max")
    calls = [stop]
    if a.plateau:
        calls.append(tf.keras.callbacks.ReduceLROnPlateau(monitor="val_accuracy", mode="max", factor=0.5,
                                                          patience=a.plateau, min_lr=1e-5))
    t0 = time.time()
    if a.refit_epochs:
        # the final fit of the search protocol: training and validation subjects together, for the epoch count
        # chosen on validation (no early stopping: nothing is held out any more)
        t.fit(np.concatenate([xtr, xva]), np.concatenate([ytr, yva]), batch_size=64, epochs=a.refit_epochs,
              verbose=0, shuffle=True)
        h = type("H", (), {"history": {"loss": [0] * a.refit_epochs, "val_accuracy": [float("nan")]}})()
    else:
        h = t.fit(xtr, ytr, batch_size=64, epochs=a.max_epochs, validation_data=(xva, yva), callbacks=calls,
                  verbose=0, shuffle=True)
    ran = len(h.history["loss"])
    best = a.refit_epochs or int(np.argmax(h.history["val_accuracy"])) + 1
    if a.trials:  # the search: the validation facts only, no files
        return {"best_epoch": best, "epochs_run": ran, "minutes": round((time.time() - t0) / 60, 2),
                "val_accuracy": float(max(h.history["val_accuracy"])),
                "test_accuracy": float((t.predict(xte, verbose=0).argmax(1) == yte).mean())}
    m = build(tf, 1, False, a)
    m.set_weights(t.get_weights())
    conv = tf.lite.TFLiteConverter.from_keras_model(m)
    flt = conv.convert()
    conv = tf.lite.TFLiteConverter.from_keras_model(m)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    rep = xtr[np.random.default_rng(a.seed).choice(len(xtr), min(500, len(xtr)), replace=False)]
    conv.representative_dataset = lambda: ([r[None]] for r in rep)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    q = conv.convert()
    facts = {"val_accuracy_per_epoch": [round(v, 4) for v in h.history["val_accuracy"]] if not a.refit_epochs
             else [], "epochs_run": ran, "best_epoch": best, "minutes": round((time.time() - t0) / 60, 2),
             "keras_val_accuracy": float((m.predict(xva, verbose=0).argmax(1) == yva).mean()),
             "keras_test_accuracy": float((m.predict(xte, verbose=0).argmax(1) == yte).mean()),
             "params": int(m.count_params()), "files": {}}
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    for prec, content in (("float", flt), ("int8", q)):
        fname = f"{name}_{prec}.tflite"
        (Path(a.float_out) if prec == "float" and a.float_out else out).mkdir(parents=True, exist_ok=True)
        ((Path(a.float_out) if prec == "float" and a.float_out else out) / fname).write_bytes(content)
        right = int((tflite_predict(tf, content, xte) == yte).sum())
        facts["files"][fname] = {
            "bytes": len(content), "sha256": hashlib.sha256(content).hexdigest(),
            "committed": not (prec == "float" and a.float_out),
            "val_accuracy": float((tflite_predict(tf, content, xva) == yva).mean()),
            "test_accuracy": right / len(yte), "test_right": right}
    facts["int8"] = f"{name}_int8.tflite"
    if a.refit_epochs:
        facts["refit"] = {"epochs": a.refit_epochs, "trained_on": "training and validation subjects (s01-s15)",
                          "note": "val_accuracy of the files is on subjects it was trained on (not held out)"}
        if a.search_file and Path(a.search_file).is_file():
            facts["refit"]["search"] = {"file": Path(a.search_file).name, **choose(Path(a.search_file))}
    facts["test_windows" if name.startswith("har") else "test_samples"] = len(yte)
    return facts


def search(tf, a, data) -> None:
    """The model selection behind ``har_base``: every configuration of ``--grid`` trained with each of
    ``--seeds`` and early stopping on the validation subjects, one JSON line each in ``--trials``. The test
    accuracy is recorded beside, for the report, and never read to choose: ``choose`` reads validation only."""
    import itertools

    grid = [(k, [type(getattr(a, k))(v) for v in vs.split(",")]) for k, vs in
            (item.split("=") for item in a.grid.split(";"))]
    path = Path(a.trials)
    runs = [json.loads(ln) for ln in (path.read_text().splitlines() if path.is_file() else [])]
    seen = {json.dumps(r["config"], sort_keys=True) + str(r["seed"]) for r in runs}
    for values in itertools.product(*(vs for _, vs in grid)):
        for k, v in zip((k for k, _ in grid), values):
            setattr(a, k, v)
        config = {k: getattr(a, k) for k in ("context", "pool", "stride1", "width", "hidden", "lr", "plateau")}
        config.update({k: getattr(a, k) for k in ("rotate",) if getattr(a, k)})  # older lines lack it
        for seed in (int(s) for s in a.seeds.split(",")):
            if json.dumps(config, sort_keys=True) + str(seed) in seen:
                continue
            a.seed = seed
            r = {"config": config, "seed": seed, **train(tf, "har_base", build_ctx, data[a.context], a)}
            with path.open("a") as f:
                f.write(json.dumps(r) + "\n")
            print(json.dumps(r), flush=True)
    print(json.dumps(choose(path)), flush=True)


def choose(path: Path) -> dict:
    """The configuration with the best mean validation accuracy over its seeds, and the median of their best
    epochs (the refit's epoch count)."""
    runs: dict[str, list] = {}
    for ln in path.read_text().splitlines():
        r = json.loads(ln)
        runs.setdefault(json.dumps(r["config"], sort_keys=True), []).append(r)
    key = max(runs, key=lambda k: np.mean([r["val_accuracy"] for r in runs[k]]))
    rs = runs[key]
    return {"chosen": json.loads(key), "seeds": len(rs), "mean_val_accuracy": float(np.mean([r["val_accuracy"] for r in rs])),
            "refit_epochs": int(np.median([r["best_epoch"] for r in rs])), "configs": len(runs)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data")
    ap.add_argument("--out", default=str(REPO / "tests" / "tflite" / "data" / "baselines"))
    ap.add_argument("--float-out", help="write the float files here instead of --out (they are not committed)")
    ap.add_argument("--models", default="har_base")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--max-epochs", type=int, default=300)
    ap.add_argument("--patience", type=int, default=30)
    ap.add_argument("--context", type=int, default=400, help="har_base: input samples per decision (≥ 50)")
    ap.add_argument("--pool", type=int, default=2, help="har_base: average pooling of the input (1: none)")
    ap.add_argument("--width", type=int, default=32, help="har_base: channels of the later convolutions")
    ap.add_argument("--hidden", type=int, default=64, help="har_base: units of the hidden dense layer")
    ap.add_argument("--stride1", type=int, default=2, help="har_base: stride of the first convolution (0: 2 "
                    "without input pooling, else 1)")
    ap.add_argument("--plateau", type=int, default=0, help="halve the learning rate after this many epochs "
                    "without a better validation accuracy (0: constant rate)")
    ap.add_argument("--rotate", type=float, default=0.0, help="har_base: rotate each training sample's sensor "
                    "frame by up to this many degrees (augmentation)")
    ap.add_argument("--no-json", action="store_true", help="do not write models.json (trials)")
    ap.add_argument("--trials", help="har_base search: append one JSON line per (configuration, seed) of the "
                    "grid to this file (resumable: lines already there are skipped); writes no model")
    ap.add_argument("--seeds", default="0,1,2", help="--trials: the seeds of each configuration")
    ap.add_argument("--grid", default="width=32,48,64;hidden=64,128;context=400,600",
                    help="--trials: NAME=V1,V2;… over the har_base options (context, pool, width, hidden, rotate, "
                    "stride1, lr, plateau)")
    ap.add_argument("--search-file", help="with --refit-epochs: the --trials file the configuration was chosen "
                    "from (its choice is recorded in models.json)")
    ap.add_argument("--refit-epochs", type=int, default=0, help="train on the training and validation "
                    "subjects together for this many epochs (the search's chosen count), no early stopping")
    ap.add_argument("--save-npy", help="also write the test windows and labels as .npy files here")
    a = ap.parse_args(argv)
    if a.refit_epochs and a.plateau:
        ap.error("--refit-epochs has no validation subjects for --plateau to watch")
    import tensorflow as tf

    root = data_root(a.data)
    names = a.models.split(",")
    contexts = {n: (a.context if n == "har_base" else WINDOW) for n in names if n.startswith("har")}
    cache = {c: tuple(windows(root, SPLIT[k], c) for k in ("train", "val", "test")) for c in set(contexts.values())}
    if "nmnist_base" in names:
        cache["nmnist"] = nmnist_data(root)
        contexts["nmnist_base"] = "nmnist"
    tool = f"tensorflow-cpu {tf.__version__} (tf.lite.TFLiteConverter), keras {tf.keras.__version__}"
    if a.save_npy:
        Path(a.save_npy).mkdir(parents=True, exist_ok=True)
        for n in names:
            np.save(Path(a.save_npy) / f"{n}_test_x.npy", cache[contexts[n]][2][0])
            np.save(Path(a.save_npy) / f"{n}_test_y.npy", cache[contexts[n]][2][1].astype(np.int64))
            np.save(Path(a.save_npy) / f"{n}_train_x.npy", cache[contexts[n]][0][0])
    builders = {"har_win50": build_har, "har_base": build_ctx, "nmnist_base": build_nmnist}
    if a.trials:
        cache = {c: tuple(windows(root, SPLIT[k], c) for k in ("train", "val", "test"))
                 for c in {int(v) for item in a.grid.split(";") if item.startswith("context=")
                           for v in item.split("=")[1].split(",")} | {a.context}}
        return search(tf, a, cache)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    mj = out / "models.json"
    facts = json.loads(mj.read_text()) if mj.is_file() else {}
    facts.update({"tool": tool, "labels": LABELS})
    for name in names:
        f = train(tf, name, builders[name], cache[contexts[name]], a)
        f["seed"] = a.seed
        if name.startswith("har"):
            f.update({"context_samples": contexts[name], "windows": {k: len(d[1]) for k, d in zip(
                ("train", "val", "test"), cache[contexts[name]])},
                "test_files": len(list((root / "imu" / "sp-sw-har").glob("s1[678]/s1[678]_*_sw.csv"))),
                "data": ("imu/sp-sw-har: trained on s01-s15 (the search's training and validation subjects), "
                         "test s16-s18; " if a.refit_epochs else
                         "imu/sp-sw-har: train s01-s12, validation s13-s15 (early stopping), test s16-s18; ") +
                        "a decision every 25 samples on the 50-sample window ending there (its most frequent "
                        "label), files standardised per channel over the file",
                "args": {k: getattr(a, k) for k in ("context", "pool", "stride1", "width", "hidden", "lr",
                                                    "patience", "max_epochs", "plateau", "rotate",
                                                    "refit_epochs")}})
        else:
            f["data"] = ("events/nmnist-small: train 1-900, validation 901-1000 (early stopping), test "
                         "60001-60100; event counts per pixel and polarity over the first 320 ms, / 10")
        key = {"har_base": "har", "nmnist_base": "nmnist"}.get(name, name)
        facts[key] = {**facts.get(key, {}), **f}
        print(json.dumps({name: f}), flush=True)
    if not a.no_json:
        mj.write_text(json.dumps(facts, indent=1) + "\n")

if __name__ == "__main__":
    main()
