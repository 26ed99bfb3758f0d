"""Train the `zoo:basicmotions` model: UEA BasicMotions (smartwatch IMU) → Standing / Running / Walking /
Badminton. A quick sanity model for the IMU path (trains in about a minute).

Data: ``BasicMotions_TRAIN.ts`` / ``BasicMotions_TEST.ts`` (6 channels: accelerometer and gyroscope x/y/z,
10 Hz, 100 samples = 10 s per case; 40 + 40 cases), found with ``edgebrain.datasets.locate("basicmotions")``
and read by edgebrain's own ``.ts`` source (the cases of a file stream one after another, every sample
labelled with its case's class). The ``direct`` encoder (per-channel offset and scale from the training
set, carried in the model's stream settings) feeds a spiking MLP as input currents; the class is the
output neuron with the most spikes over a case. Exported with snnTorch's ``export_to_nir``, imported,
quantized and evaluated with edgebrain (float and int8). Baseline beside it: a small 1-D CNN.

    python tools/train/basicmotions.py
    python tools/train/basicmotions.py --smoke --out /tmp/bm
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from edgebrain.datasets import locate  # noqa: E402

LABELS = ["Standing", "Running", "Walking", "Badminton"]
RATE = 10.0          # the recordings' rate: one model step per sample
CASE = 100           # samples per case
HIDDEN = (64, 64)
DECODER = f"count:window={CASE}"   # one decision per case when a .ts file streams from its first case


def load(path: Path, spec: str):
    """(x (CASE, n_cases, 6), y (n_cases,)) through edgebrain's .ts source and ``spec`` encoder."""
    x, lab, _ = common.encode_file(path, spec, rate=RATE)
    n = len(x) // CASE
    assert n * CASE == len(x), f"{path}: {len(x)} steps is not a whole number of {CASE}-sample cases"
    x = x.reshape(n, CASE, -1).transpose(1, 0, 2).copy()
    y = np.array([LABELS.index(str(v)) for v in lab.reshape(n, CASE)[:, 0]])
    return x, y


class CNN(torch.nn.Module):
    def __init__(self, n_in=6, c=32, n_out=4):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Conv1d(n_in, c, 5, padding=2), torch.nn.ReLU(),
                                       torch.nn.Conv1d(c, c, 5, padding=2), torch.nn.ReLU(),
                                       torch.nn.AdaptiveAvgPool1d(1), torch.nn.Flatten(), torch.nn.Linear(c, n_out))

    def forward(self, x):  # x (T, B, C)
        return self.net(x.permute(1, 2, 0))


def train_model(kind, net, X, y, Xte, yte, epochs, lr, batch, seed, noise=0.05):
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    X, y, Xte = torch.tensor(X), torch.tensor(y), torch.tensor(Xte)
    N = X.shape[1]

    def fwd(x):
        return net.run(x) if kind == "snn" else net(x)

    def evaluate():
        net.eval()
        with torch.no_grad():
            acc = float((fwd(Xte).argmax(1).numpy() == yte).mean())
        net.train()
        return acc

    for ep in range(epochs):
        t0 = time.time()
        perm = torch.randperm(N, generator=g)
        tot = correct = 0.0
        for i in range(0, N, batch):
            idx = perm[i:i + batch]
            x = X[:, idx]
            x = x + noise * torch.randn(x.shape, generator=g)
            out = fwd(x)
            loss = torch.nn.functional.cross_entropy(out * (0.2 if kind == "snn" else 1.0), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            if kind == "snn":
                common.clamp_lifs(net)
            tot += float(loss.detach()) * len(idx)
            correct += float((out.argmax(1) == y[idx]).sum())
        if ep % 5 == 0 or ep == epochs - 1:
            print(f"[{kind}] epoch {ep + 1}/{epochs}: loss {tot / N:.3f} train acc {correct / N:.3f} "
                  f"test acc {evaluate():.3f} ({time.time() - t0:.2f} s)", flush=True)
    return evaluate()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--smoke", action="store_true", help="tiny subset, one short epoch; writes to --out")
    ap.add_argument("--out", default=None, help="output folder (default edgebrain/zoo)")
    a = ap.parse_args(argv)
    t_start = time.time()
    common.setup(a.seed, threads=1)
    if a.smoke and not a.out:
        ap.error("--smoke needs --out (the zoo is written by full runs only)")
    out_dir = Path(a.out) if a.out else common.ZOO
    epochs = 1 if a.smoke else a.epochs

    root = locate("basicmotions")
    f_train, f_test = root / "BasicMotions_TRAIN.ts", root / "BasicMotions_TEST.ts"
    raw_tr, y_tr = load(f_train, "direct")
    flat = raw_tr.reshape(-1, raw_tr.shape[-1]).astype(np.float64)
    offset = [float(f"{v:.4g}") for v in flat.mean(0)]
    scale = [float(f"{v:.4g}") for v in 1.0 / np.maximum(flat.std(0), 1e-6)]
    spec = "direct:offset=" + "|".join(f"{v:g}" for v in offset) + ",scale=" + "|".join(f"{v:g}" for v in scale)
    X_tr, _ = load(f_train, spec)
    X_te, y_te = load(f_test, spec)
    if a.smoke:
        X_tr, y_tr, X_te, y_te = X_tr[:, ::5], y_tr[::5], X_te[:, ::5], y_te[::5]
    print(f"BasicMotions at {root}: {X_tr.shape[1]} train / {X_te.shape[1]} test cases of {CASE} steps, "
          f"{X_tr.shape[2]} channels; encoder {spec}", flush=True)

    t0 = time.time()
    torch.manual_seed(a.seed)
    net = common.SpikingMLP([X_tr.shape[2], *HIDDEN, 4], beta=0.9, beta_out=0.9)
    acc_torch = train_model("snn", net, X_tr, y_tr, X_te, y_te, epochs, 3e-3, 8, a.seed)
    snn_minutes = (time.time() - t0) / 60
    t0 = time.time()
    torch.manual_seed(a.seed)
    cnn = CNN(X_tr.shape[2])
    acc_base = train_model("cnn", cnn, X_tr, y_tr, X_te, y_te, epochs, 3e-3, 8, a.seed)
    base_minutes = (time.time() - t0) / 60
    print(f"snnTorch test accuracy {acc_torch:.4f}; baseline CNN {acc_base:.4f}", flush=True)

    work = out_dir / "_work" if a.smoke else Path(common.ROOT / "build" / "zoo")
    model = common.export_mlp(net, work / "basicmotions.nir")
    model.graph.meta["stream"] = {"encoder": spec, "decoder": DECODER, "labels": LABELS, "rate": RATE}
    qmodel, _ = common.quantize_int8(model, X_tr)

    res = {}
    for prec in ("float", "int"):
        c = common.output_counts(qmodel, X_te, prec)
        pred = np.where(c.sum(1) > 0, c.argmax(1), -1)
        res[prec] = {"accuracy": float((pred == y_te).mean()), "confusion": common.confusion(y_te, pred, 4).tolist()}
        print(f"edgebrain {prec}: accuracy {res[prec]['accuracy']:.4f}", flush=True)
    # the whole test file streamed as deployed: cases back to back, the network's state carried over
    streamed = {} if a.smoke else {p: common.stream_files(qmodel, [f_test], p) for p in ("float", "int")}
    for p, s in streamed.items():
        print(f"edgebrain stream {f_test.name} ({p}): accuracy {s['accuracy']:.4f} over {s['decisions']} decisions")

    minutes = (time.time() - t_start) / 60
    diff_base = res["float"]["accuracy"] - acc_base
    diff_q = res["int"]["accuracy"] - res["float"]["accuracy"]
    note = (f"Spiking float vs. CNN baseline: {100 * diff_base:+.2f} points (target ≥ −2); int8 vs. float: "
            f"{100 * diff_q:+.2f} points (target ≥ −1). Accuracy per case: each case run from reset over its "
            "100 steps, decision = most output spikes.")
    if streamed:
        note += (f" Streaming the whole test file with `edgebrain stream` (cases back to back, state carried "
                 f"from one case into the next, count decoder window = one case): float "
                 f"{100 * streamed['float']['accuracy']:.2f} %, int8 {100 * streamed['int']['accuracy']:.2f} %.")
    card = {
        "title": "BasicMotions activities (smartwatch IMU)",
        "summary": ("A small sanity model for the IMU path: 6-axis smartwatch IMU at 10 Hz → Standing, Running, "
                    f"Walking or Badminton. The `direct` encoder (per-channel offset and scale from the training "
                    f"set) feeds a spiking MLP 6→{HIDDEN[0]}→{HIDDEN[1]}→4 (LIF, reset by subtraction) as input "
                    "currents; the decision is the output neuron with the most spikes over a 10 s case."),
        "data": ("UEA BasicMotions (via sktime, BSD-3-Clause): 4 students, accelerometer + gyroscope, 10 Hz, "
                 "100 samples per case, the archive's own split of 40 training and 40 test cases, read from "
                 "`BasicMotions_TRAIN.ts` / `BasicMotions_TEST.ts` by edgebrain's `.ts` source. Located with "
                 "`edgebrain.datasets.locate(\"basicmotions\")`."),
        "stream": {"encoder": spec, "decoder": DECODER, "rate": RATE},
        "labels": LABELS,
        "results": [
            {"model": f"spiking MLP 6-{HIDDEN[0]}-{HIDDEN[1]}-4", "precision": "float32",
             "accuracy": res["float"]["accuracy"]},
            {"model": f"spiking MLP 6-{HIDDEN[0]}-{HIDDEN[1]}-4", "precision": "int8 weights / int16 state",
             "accuracy": res["int"]["accuracy"]},
            {"model": f"baseline: 1-D CNN (2 × conv k5, 32 channels, {common.n_params(cnn)} parameters), torch",
             "precision": "float32", "accuracy": acc_base},
        ],
        "results_note": note,
        **common.measured(qmodel, res, X_te[:, 0], RATE),
        "training": (f"snnTorch {common.snn.__version__}, Adam (lr 3e-3), batch 8, {epochs} epochs; loss: "
                     "cross-entropy on 0.2 × output spike counts over the case; learnable per-neuron β (init "
                     "0.9) and threshold (init 1), fast-sigmoid surrogate gradient; Gaussian input noise σ = 0.05. "
                     "Export: snnTorch export_to_nir, imported by edgebrain (snntorch dialect); post-training "
                     "quantization to int8 weights and int16 state on the 40 training cases. Baseline: 1-D CNN, "
                     f"same inputs and noise, Adam (lr 3e-3), {epochs} epochs. Spiking training "
                     f"{snn_minutes:.1f} min, baseline {base_minutes:.1f} min."),
        "command": "python tools/train/basicmotions.py" + (f" --seed {a.seed}" if a.seed else ""),
        "seed": a.seed,
        "train_minutes": minutes,
        "machine": common.machine(),
        "date": datetime.date.today().isoformat(),
    }
    path = common.write_entry("basicmotions", qmodel, card, out_dir)
    print(f"done in {minutes:.1f} min: spiking float {res['float']['accuracy']:.4f}, int8 "
          f"{res['int']['accuracy']:.4f}, baseline {acc_base:.4f}; {path}")
    return path


if __name__ == "__main__":
    main()
