"""Leave-subjects-out cross-validation of the smartwatch activity models (issue 18): what a new wearer gets.

Six folds of three subjects over s01–s18. Fold k tests on subjects 3k+1..3k+3, stops early on the fold before
it (validation: subjects 3(k−1)+1..3(k−1)+3, cyclically) and trains on the other twelve, so fold 5 (test s16–s18,
validation s13–s15, training s01–s12) is the zoo's fixed split. Each run trains one model kind with one seed on
one fold, exactly as ``tools/train/har.py`` does (its models, standardisation with the training subjects'
statistics, training loop), then scores it as ``edgebrain stream`` decides: every test recording streamed
through edgebrain's pipeline (float and int8 for the spiking models; the GRU baseline by the decoder's rule in
torch), per-decision accuracy pooled over the fold's decisions.

**Resumable, one result file per run**: ``--results DIR`` (default ``tools/train/results/har-cv``) gets
``KIND[-VARIANT]-fFOLD-sSEED.json`` when a run finishes; a run whose file exists is skipped, so an interrupted
sweep continues where it stopped. ``tools/train/zoo_table.py`` reads the files (mean ± standard deviation over
folds, per seed and pooled). **Never two trainings at once**: a lock file in the results folder refuses a second
sweep (the machine has 2 cores; two would halve both and change nothing else).

    python tools/train/har_cv.py --models gru,lif,l2mu --folds 0-5 --seeds 0 [--variant NAME --config JSON]
    python tools/train/har_cv.py --models lif --folds 5 --seeds 0 --epochs 1 --results /tmp/cv   # a smoke run

``--variant NAME --config JSON`` trains a variant (a lever of issue 18: augmentation, longer training, model
hyper-parameters, compression) under its own name: ``{"model": {...}, "train": {...}, "augment": {...},
"compress": {...}}``; ``model`` goes to the model's constructor, ``train`` to the training loop (``epochs``,
``lr``), ``augment`` to :func:`augment` (rotation in degrees, gain and offset jitter, time warp, mirror
probability), ``compress`` to :func:`compress` (magnitude pruning to each sparsity with fine-tuning, int4).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

import common as C  # noqa: I100  (tools/train on sys.path when run as a script)
import har as H
import torch

from edgebrain.datasets import locate

SUBJECTS = list(range(1, 19))
FOLDS = 6
RESULTS = Path(__file__).resolve().parent / "results" / "har-cv"


def fold_split(k: int) -> dict:
    """Subjects of fold ``k`` (0–5): test 3k+1..3k+3, validation the previous fold's, training the rest."""
    test = SUBJECTS[3 * k:3 * k + 3]
    val = SUBJECTS[3 * ((k - 1) % FOLDS):3 * ((k - 1) % FOLDS) + 3]
    return {"train": [s for s in SUBJECTS if s not in test + val], "val": val, "test": test}


# ---------------------------------------------------------------------- augmentation


def _rotation(rng, max_deg: float) -> np.ndarray:
    """A random rotation of the sensor frame by at most ``max_deg`` about a random axis (Rodrigues)."""
    axis = rng.standard_normal(3)
    axis /= np.linalg.norm(axis)
    a = np.deg2rad(rng.uniform(-max_deg, max_deg))
    K = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(a) * K + (1 - np.cos(a)) * K @ K


def augment(x: np.ndarray, rng, rotate_deg=0.0, gain=0.0, offset=0.0, warp=0.0, mirror=0.0,
            stats=None) -> np.ndarray:
    """One training crop ``x`` (T, 6: accelerometer xyz, gyroscope xyz, standardised with ``stats``) as another
    wearer and watch might give it: the frame rotated (the same rotation for both sensors), per-channel gain
    ``1 ± gain`` and offset ``± offset`` (in standard deviations), time warped by ``1 ± warp`` (resampled), and
    with probability ``mirror`` the other wrist (x axis of the accelerometer and the y, z axes of the gyroscope
    negated: a reflection through the y–z plane). The rotation and mirroring act on the raw axes: the crop is
    un-standardised first and standardised again after."""
    off, sc = stats
    raw = x / sc + off
    if rotate_deg:
        R = _rotation(rng, rotate_deg)
        raw = np.concatenate([raw[:, :3] @ R.T, raw[:, 3:] @ R.T], 1)
    if mirror and rng.random() < mirror:
        raw = raw * np.array([-1, 1, 1, 1, -1, -1], np.float32)
    x = (raw - off) * sc
    if gain:
        x = x * rng.uniform(1 - gain, 1 + gain, 6)
    if offset:
        x = x + rng.uniform(-offset, offset, 6)
    if warp:
        f = rng.uniform(1 - warp, 1 + warp)
        t = np.arange(len(x)) * f
        t = t[t <= len(x) - 1]
        x = np.stack([np.interp(t, np.arange(len(x)), x[:, c]) for c in range(6)], 1)
    return x.astype(np.float32)


class AugmentedSeqs(list):
    """Training sequences that :func:`har.crops` draws from, each draw passed through :func:`augment` (the
    label track warped with it, nearest sample)."""

    def __init__(self, seqs, rng, stats, **aug):
        super().__init__(seqs)
        self.rng, self.stats, self.aug = rng, stats, aug

    def __getitem__(self, i):
        x, y = super().__getitem__(i)
        if not isinstance(i, (int, np.integer)) or not self.aug:
            return x, y
        xa = augment(x, self.rng, stats=self.stats, **self.aug)
        if len(xa) != len(x):
            idx = np.minimum(np.round(np.linspace(0, len(x) - 1, len(xa))).astype(int), len(x) - 1)
            y = y[idx]
        return xa, y


# ---------------------------------------------------------------------- compression


def prunable(net) -> dict:
    """The trainable dense weights a pruned model zeroes: every ``nn.Linear`` whose weight is trained (the
    L2MU's fixed Legendre matrices Ā, B̄ are not), by name."""
    return {n: m for n, m in net.named_modules() if isinstance(m, torch.nn.Linear) and m.weight.requires_grad}


def prune_masks(net, sparsity: float, mode: str = "global") -> dict:
    """Magnitude pruning: masks keeping the largest |w|, ``sparsity`` of the weights zero, over all prunable
    layers together (``global``) or in each layer (``layer``). The L2MU's per-channel input layer counts only its
    block-diagonal weights (the others are zero by construction)."""
    layers = prunable(net)

    def live(name, m):
        w = m.weight.detach()
        return w * net.mask if name == "enc0" and hasattr(net, "mask") else w
    masks = {}
    if mode == "global":
        allw = torch.cat([live(n, m).abs().flatten()[live(n, m).flatten() != 0] for n, m in layers.items()])
        k = int(round(sparsity * allw.numel()))
        thr = torch.kthvalue(allw, k).values if k > 0 else torch.tensor(-1.0)
        for n, m in layers.items():
            masks[n] = (live(n, m).abs() > thr).float()
    elif mode == "layer":
        for n, m in layers.items():
            w = live(n, m)
            nz = w.abs().flatten()[w.flatten() != 0]
            k = int(round(sparsity * nz.numel()))
            thr = torch.kthvalue(nz, k).values if k > 0 else torch.tensor(-1.0)
            masks[n] = (w.abs() > thr).float()
    else:
        raise ValueError(f"prune mode {mode!r}; expected global or layer")
    return masks


def apply_masks(net, masks: dict) -> None:
    with torch.no_grad():
        for n, m in prunable(net).items():
            if n in masks:
                m.weight.mul_(masks[n])


def weight_sparsity(net) -> float:
    """Zeros among the prunable weights (the L2MU's input layer: among its block-diagonal ones)."""
    zero = total = 0
    for n, m in prunable(net).items():
        w = m.weight.detach() * (net.mask if n == "enc0" and hasattr(net, "mask") else 1)
        live = (net.mask.numel() and int(net.mask.sum())) if n == "enc0" and hasattr(net, "mask") else w.numel()
        zero += live - int((w != 0).sum())
        total += live
    return zero / max(total, 1)


def evaluate_spiking(net, tr, test_files, stats, weight_bits: int = 8, keep: Path | None = None) -> dict:
    """Export, convert, quantize (``weight_bits``) and stream the test recordings with edgebrain (float and
    integer); ``keep``: also write the quantized model there (.ebm)."""
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"har-cv-{os.getpid()}.nir"
    model = C.to_edgebrain(net.export(), tmp)
    tmp.unlink(missing_ok=True)
    enc = ("direct:scale=" + "|".join(f"{v:.6g}" for v in stats[1]) + ",offset="
           + "|".join(f"{v:.6g}" for v in stats[0]))
    stream = {"encoder": enc, "decoder": f"count:window={H.WINDOW},hop={H.HOP}", "labels": H.LABELS, "rate": H.RATE}
    calib = H.crops(tr, 250, 16, np.random.default_rng(7))[0].numpy()
    from edgebrain.quant import quantize

    qmodel, _ = quantize(model, calib, weight_bits=weight_bits, state_bits=16, progress=False)
    qmodel.graph.meta["stream"] = dict(stream)
    out = {}
    for prec, key in (("float", "float"), ("int", f"int{weight_bits}")):
        r = C.stream_files(qmodel, test_files, prec)
        out[key] = {k2: r[k2] for k2 in ("accuracy", "confusion", "decisions", "no_decision")}
    out["params"] = C.footprint(qmodel)["params"]
    if keep is not None:
        keep.parent.mkdir(parents=True, exist_ok=True)
        qmodel.save(keep)
        out["model_file"] = keep.name
    return out


# ---------------------------------------------------------------------- one run


def run_one(kind: str, k: int, seed: int, config: dict, root: Path, log=print) -> dict:
    split = fold_split(k)
    rng = C.setup(seed)
    tr, stats = H.load(H.files_of(root, split["train"]))
    va, _ = H.load(H.files_of(root, split["val"]), stats)
    test_files = H.files_of(root, split["test"])
    te, _ = H.load(test_files, stats)
    tcfg = {"epochs": 60, **config.get("train", {})}
    aug = config.get("augment", {})
    train_seqs = AugmentedSeqs(tr, np.random.default_rng(seed + 1000), stats, **aug) if aug else tr
    t0 = time.time()
    torch.manual_seed(seed)
    res = {"kind": kind, "fold": k, "seed": seed, "subjects": split, "config": config,
           "test_files": [f.name for f in test_files]}
    if kind == "gru":
        net = H.GRUNet(**config.get("model", {}))
        res["val_window_accuracy"] = H.train(net, train_seqs, va, tcfg["epochs"], rng, lr=tcfg.get("lr", 3e-3),
                                             spiking=False, log=log)
        acc, conf = H.torch_stream_accuracy(net, te)
        res.update({"float": {"accuracy": acc, "confusion": conf.tolist(), "decisions": int(conf.sum())},
                    "params": C.n_params(net)})
    else:
        net = H.L2MU(**config.get("model", {})) if kind == "l2mu" else H.LIFNet(**config.get("model", {}))
        res["val_window_accuracy"] = H.train(net, train_seqs, va, tcfg["epochs"], rng,
                                             lr=tcfg.get("lr", 2e-3 if kind == "l2mu" else 3e-3), log=log)
        res["torch_accuracy"], _ = H.torch_stream_accuracy(net, te)
        ev = evaluate_spiking(net, tr, test_files, stats)
        res.update({"float": ev["float"], "int8": ev["int8"], "params": ev["params"]})
        comp = config.get("compress")
        if comp:  # the compressed variants of this dense model: each pruned from it and fine-tuned
            res["compressed"] = compress(kind, net, comp, tr, va, test_files, stats, seed, k, log)
    res["minutes"] = (time.time() - t0) / 60
    res["machine"] = C.machine()
    res["date"] = time.strftime("%Y-%m-%d")
    res["torch"] = torch.__version__
    return res


def compress(kind, dense, comp: dict, tr, va, test_files, stats, seed: int, k: int, log) -> list:
    """``comp``: ``{"sparsity": [0.5, 0.8, 0.9], "mode": "global"|"layer", "finetune": epochs, "int4": true,
    "keep": DIR}``. Each sparsity is pruned by magnitude from the dense model and fine-tuned with its mask held
    (the zeros stay zero), then scored at int8 and, with ``int4``, int4 weights (the fine-tuned float weights
    quantized to 4 bits). With ``keep`` the quantized models are written there (fold 5 only: the footprints
    are measured on the fixed split's models)."""
    import copy

    out = []
    weights_bits = [8, 4] if comp.get("int4") else [8]
    if comp.get("int4") and 0.0 not in comp.get("sparsity", []):
        levels = [0.0] + list(comp.get("sparsity", []))
    else:
        levels = list(comp.get("sparsity", []))
    for sp in levels:
        net = copy.deepcopy(dense)
        row = {"sparsity_target": sp, "mode": comp.get("mode", "global"), "finetune_epochs": 0}
        if sp > 0:
            masks = prune_masks(net, sp, row["mode"])
            apply_masks(net, masks)
            row["finetune_epochs"] = int(comp.get("finetune", 15))
            H.train(net, tr, va, row["finetune_epochs"], np.random.default_rng(seed + 77),
                    lr=comp.get("lr", 1e-3), log=log, after_step=lambda n: apply_masks(n, masks))
            apply_masks(net, masks)
        row["sparsity"] = weight_sparsity(net)
        for bits in weights_bits:
            keep = None
            if comp.get("keep") and k == 5:
                keep = Path(comp["keep"]) / f"{kind}-sp{int(round(100 * sp))}{row['mode'][0]}-int{bits}-s{seed}.ebm"
            ev = evaluate_spiking(net, tr, test_files, stats, weight_bits=bits, keep=keep)
            row[f"int{bits}"] = ev[f"int{bits}"]
            row.setdefault("float", ev["float"])
            if keep is not None:
                row.setdefault("model_files", []).append(str(keep.name))
        out.append(row)
        log(f"sparsity {row['sparsity']:.3f}: " + ", ".join(f"int{b} {100 * row[f'int{b}']['accuracy']:.2f} %"
                                                             for b in weights_bits))
    return out


def result_path(out: Path, kind: str, variant: str, k: int, seed: int) -> Path:
    return out / f"{kind}{'-' + variant if variant else ''}-f{k}-s{seed}.json"


def _range(spec: str) -> list[int]:
    out = []
    for part in spec.split(","):
        a, _, b = part.partition("-")
        out += list(range(int(a), int(b or a) + 1))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="gru,lif,l2mu")
    ap.add_argument("--folds", default="0-5")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--variant", default="", help="a name for --config's runs (default: the zoo's recipe)")
    ap.add_argument("--config", default="{}", help="JSON: {\"model\": {...}, \"train\": {...}, \"augment\": {...}}")
    ap.add_argument("--epochs", type=int, default=None, help="override the training epochs (smoke runs)")
    ap.add_argument("--results", default=str(RESULTS))
    a = ap.parse_args(argv)
    config = json.loads(a.config)
    if a.epochs:
        config.setdefault("train", {})["epochs"] = a.epochs
    if config and not a.variant:
        ap.error("--config needs --variant NAME (the default recipe's results must stay the default's)")
    out = Path(a.results)
    out.mkdir(parents=True, exist_ok=True)
    lock = open(out / ".training.lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise SystemExit(f"another training holds {out / '.training.lock'}; never two at once on this machine")
    root = locate("sp-sw-har")
    todo = [(kind, k, s) for s in _range(a.seeds) for k in _range(a.folds) for kind in a.models.split(",")]
    for n, (kind, k, s) in enumerate(todo, 1):
        path = result_path(out, kind, a.variant, k, s)
        if path.exists():
            print(f"[{n}/{len(todo)}] {path.name}: done before, skipped", flush=True)
            continue
        print(f"[{n}/{len(todo)}] {kind} fold {k} seed {s} {a.variant or 'zoo recipe'} "
              f"({platform.node()})", flush=True)
        last = [""]

        def log(msg):
            last[0] = msg
        r = run_one(kind, k, s, config, root, log=log)
        r["variant"] = a.variant
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(r, indent=1) + "\n")
        tmp.replace(path)
        acc = r.get("int8", r["float"])["accuracy"]
        print(f"    {last[0]}; test {'int8' if 'int8' in r else 'float'} {100 * acc:.2f} % in {r['minutes']:.1f} min",
              flush=True)


if __name__ == "__main__":
    main()
