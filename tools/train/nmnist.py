"""Train the ``zoo:nmnist`` entry: a small convolutional spiking network on the N-MNIST subset.

Every sample is read with edgebrain's own ``.bs2`` source and event-binning encoder (20 ms windows,
polarity split, 34×34), exactly as ``edgebrain stream model.ebm --source sample.bs2`` will see it.
Network (snnTorch, per-neuron learnable β and threshold, reset by subtraction)::

    Conv2d(2→12, 5) → Leaky → AvgPool2d(2) → Conv2d(12→32, 4) → Leaky → AvgPool2d(2)
        → Flatten → Linear(1152→10) → Leaky

readout by output spike count over the sample, cross-entropy on the counts. Exported with
``snntorch.export_nir``, imported and int8-quantized with edgebrain, evaluated with edgebrain on the
100 test samples. A non-spiking baseline (the same convolutions with ReLU, on the frames summed over
the sample) is trained on the same split.

    python tools/train/nmnist.py                 # writes edgebrain/zoo/nmnist.ebm + nmnist.md
    python tools/train/nmnist.py --smoke --out /tmp/z

Needs the ``train`` extra (torch CPU, snnTorch) and the ``nmnist-small`` dataset
(``python -m edgebrain data fetch nmnist-small`` or ``../shared/datasets``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import snntorch as snn  # noqa: E402
from snntorch import surrogate  # noqa: E402
from snntorch.export_nir import export_to_nir  # noqa: E402

from edgebrain import datasets  # noqa: E402

WINDOW_US = 20_000
RATE = 1e6 / WINDOW_US            # model steps per second of sensor time
ENCODER = f"bin:window_us={WINDOW_US},polarity=split"
T_TRAIN = 16                      # samples are 15-16 windows long: zero-padded to 16 for training
DECODER = "count:window=32"       # longer than any sample: the end-of-stream flush decides once per file
LABELS = [str(i) for i in range(10)]
C1, C2 = 12, 32


# ---------------------------------------------------------------------- data


def load_split(root: Path, ids) -> list[np.ndarray]:
    """Each sample through edgebrain's source + binning encoder: list of (T_i, 2, 34, 34)."""
    return [common.encode_file(root / f"{i}.bs2", ENCODER, rate=RATE)[0] for i in ids]


def pad(xs: list[np.ndarray], T: int) -> np.ndarray:
    """(T, N, 2, 34, 34): each sample cropped / zero-padded to T steps."""
    out = np.zeros((T, len(xs)) + xs[0].shape[1:], np.float32)
    for i, x in enumerate(xs):
        n = min(T, len(x))
        out[:n, i] = x[:n]
    return out


def shift(x: torch.Tensor, g: torch.Generator, max_px: int = 2) -> torch.Tensor:
    """Random translation of each sample by up to ±max_px pixels (zero fill); x (T, B, C, H, W)."""
    _, B, _, H, W = x.shape
    p = max_px
    xp = F.pad(x, (p, p, p, p))
    d = torch.randint(0, 2 * p + 1, (B, 2), generator=g)
    out = torch.empty_like(x)
    for b in range(B):
        dy, dx = int(d[b, 0]), int(d[b, 1])
        out[:, b] = xp[:, b, :, dy:dy + H, dx:dx + W]
    return out


# ---------------------------------------------------------------------- models


def leaky(shape, beta: float = 0.9, threshold: float = 1.0) -> snn.Leaky:
    """Per-neuron β and threshold (scalars fail NIR's type check in snnTorch 1.0's exporter), held
    state (``init_hidden``) so that the module exports inside a Sequential."""
    return snn.Leaky(beta=torch.full(shape, float(beta)), threshold=torch.full(shape, float(threshold)),
                     learn_beta=True, learn_threshold=True, spike_grad=surrogate.fast_sigmoid(slope=5),
                     init_hidden=True, reset_mechanism="subtract")


GAINS = (4.0, 3.0, 3.0)  # on PyTorch's default init: initial spike rates ~0.06-0.15 (default: ~0)


def spiking_net() -> torch.nn.Sequential:
    net = torch.nn.Sequential(
        torch.nn.Conv2d(2, C1, 5), leaky((C1, 30, 30)), torch.nn.AvgPool2d(2),
        torch.nn.Conv2d(C1, C2, 4), leaky((C2, 12, 12)), torch.nn.AvgPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(C2 * 6 * 6, 10), leaky((10,)))
    with torch.no_grad():
        for m, k in zip((net[0], net[3], net[7]), GAINS):
            m.weight.mul_(k)
    return net


def reset(net) -> None:
    for m in net.modules():
        if isinstance(m, snn.Leaky):
            m.reset_hidden()


def run_spiking(net: torch.nn.Sequential, x: torch.Tensor, record: bool = False):
    """x (T, B, 2, 34, 34) → output spike counts (B, 10). The stateless layers run on all steps at
    once (T·B batch), the Leaky layers step by step: the same computation as calling the Sequential
    once per step (checked against it and against edgebrain in ``check_export``)."""
    T, B = x.shape[:2]
    reset(net)
    h = x.reshape(T * B, *x.shape[2:])
    rec = {}
    for i, m in enumerate(net):
        if isinstance(m, snn.Leaky):
            h = h.reshape(T, B, *h.shape[1:])
            h = torch.stack([m(h[t]) for t in range(T)])
            if record:
                rec[i] = h.detach()
            h = h.reshape(T * B, *h.shape[2:])
        else:
            h = m(h)
    out = h.reshape(T, B, -1)
    return (out.sum(0), rec) if record else out.sum(0)


def run_stepwise(net: torch.nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """Reference: the Sequential called once per step; x (T, B, ...) → spikes (T, B, 10)."""
    reset(net)
    return torch.stack([net(x[t]) for t in range(x.shape[0])])


def clamp(net) -> None:
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, snn.Leaky):
                m.beta.clamp_(0.0, 0.995)
                m.threshold.clamp_(min=0.05)


class Baseline(torch.nn.Module):
    """The same convolutional architecture with ReLU, on the frames summed over the sample."""

    def __init__(self):
        super().__init__()
        self.f = torch.nn.Sequential(
            torch.nn.Conv2d(2, C1, 5), torch.nn.ReLU(), torch.nn.AvgPool2d(2),
            torch.nn.Conv2d(C1, C2, 4), torch.nn.ReLU(), torch.nn.AvgPool2d(2),
            torch.nn.Flatten(), torch.nn.Linear(C2 * 6 * 6, 10))

    def forward(self, x):  # (T, B, ...) → logits
        return self.f(x.sum(0) / 10.0)


# ---------------------------------------------------------------------- training


def train(net, xs: np.ndarray, ys: np.ndarray, epochs: int, lr: float, seed: int, batch: int,
          forward, spiking: bool, label: str, augment: bool = True, test=None):
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    steps = epochs * ((xs.shape[1] + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(steps, 1), pct_start=0.15)
    X = torch.from_numpy(xs)
    Y = torch.from_numpy(ys.astype(np.int64))
    N = X.shape[1]
    for ep in range(epochs):
        t0 = time.time()
        net.train()
        perm = torch.randperm(N, generator=g)
        tot = correct = 0
        loss_sum = 0.0
        for i in range(0, N, batch):
            idx = perm[i:i + batch]
            xb = X[:, idx]
            if augment:
                xb = shift(xb, g)
            out = forward(net, xb)
            loss = F.cross_entropy(out, Y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            if spiking:
                clamp(net)
            loss_sum += float(loss.detach()) * len(idx)
            correct += int((out.argmax(1) == Y[idx]).sum())
            tot += len(idx)
        msg = f"[{label}] epoch {ep + 1}/{epochs}: loss {loss_sum / tot:.3f}, train acc {correct / tot:.3f}"
        if test is not None:
            net.eval()
            with torch.no_grad():
                o = forward(net, torch.from_numpy(test[0]))
            msg += f", test acc {float((o.argmax(1).numpy() == test[1]).mean()):.3f} (torch)"
        print(msg + f" ({time.time() - t0:.1f} s)", flush=True)
    net.eval()
    return net


# ---------------------------------------------------------------------- evaluation with edgebrain


def decide(counts: np.ndarray) -> np.ndarray:
    """The count decoder's decision: argmax of the counts (first on ties), -1 (no decision, scored
    wrong) when no output spiked."""
    return np.where(counts.sum(1) > 0, counts.argmax(1), -1)


def eval_edgebrain(model, xs: list[np.ndarray], precision: str) -> np.ndarray:
    """Output spike counts per sample over its full length (as a stream of the file decides), samples
    grouped by length: (N, 10)."""
    out = np.zeros((len(xs), 10))
    lens = np.array([len(x) for x in xs])
    for T in np.unique(lens):
        idx = np.flatnonzero(lens == T)
        out[idx] = common.output_counts(model, np.stack([xs[i] for i in idx], axis=1), precision)
    return out


def check_export(net, model, x: np.ndarray) -> float:
    """edgebrain float output = snnTorch's (stepwise Sequential and the batched training forward) on one
    sample x (T, ...): returns the fraction of identical output spikes."""
    xt = torch.from_numpy(x[:, None])
    with torch.no_grad():
        ref = run_stepwise(net, xt)[:, 0].numpy()
        counts = run_spiking(net, xt)[0].numpy()
    y, _ = model.session("float").run(x)
    y = np.asarray(y).reshape(ref.shape)
    same = float((y == ref).mean())
    print(f"export check: {ref.sum():.0f} output spikes in snnTorch, {y.sum():.0f} in edgebrain float, "
          f"{same:.4%} identical; batched forward counts {'=' if np.allclose(counts, ref.sum(0)) else '!='} "
          "stepwise", flush=True)
    return same


def stream_check(path_ebm: Path, files, expect: list[int], precision: str) -> list[dict]:
    """``edgebrain stream <model> --source <file> --json [--precision int]``: one decision per file, the
    same as the one from the output counts."""
    import subprocess

    rows = []
    for f, e in zip(files, expect):
        r = subprocess.run([sys.executable, "-m", "edgebrain", "stream", str(path_ebm), "--source", str(f), "--json",
                            "--precision", precision],
                           capture_output=True, text=True, cwd=common.ROOT, timeout=120, check=False)
        dec = []
        for line in r.stdout.splitlines():
            try:
                d = json.loads(line)
            except ValueError:
                continue
            if isinstance(d, dict) and "label" in d and "confidence" in d:
                dec.append(d.get("label"))
        ok = len(dec) == 1 and dec[0] == (LABELS[e] if e >= 0 else None)
        rows.append({"file": Path(f).name, "decisions": dec, "expected": LABELS[e] if e >= 0 else None, "ok": ok})
        print(f"stream {precision} {Path(f).name}: decisions {dec}, counts say {LABELS[e] if e >= 0 else None}"
              f" -> {'ok' if ok else 'MISMATCH'}" + ("" if r.returncode == 0 else f" (exit {r.returncode}: "
                                                      f"{r.stderr.strip()[-300:]})"), flush=True)
    return rows


# ---------------------------------------------------------------------- main


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=None, help="spiking epochs (default 30; smoke 1)")
    ap.add_argument("--baseline-epochs", type=int, default=None, help="default 40; smoke 1")
    ap.add_argument("--smoke", action="store_true", help="tiny subset, one short epoch; writes to --out")
    ap.add_argument("--out", default=str(common.ZOO))
    ap.add_argument("--no-stream-check", action="store_true")
    a = ap.parse_args(argv)
    t_start = time.time()
    common.setup(a.seed, threads=1)
    epochs = a.epochs or (1 if a.smoke else 30)
    b_epochs = a.baseline_epochs or (1 if a.smoke else 40)
    out_dir = Path(a.out)

    root = datasets.locate("nmnist-small")
    tr_lab = datasets.nmnist_labels(root / "train1K.txt")
    te_lab = datasets.nmnist_labels(root / "test100.txt")
    tr_ids, te_ids = sorted(tr_lab), sorted(te_lab)
    if a.smoke:
        tr_ids, te_ids = tr_ids[:64], te_ids[:20]
    t0 = time.time()
    tr = load_split(root, tr_ids)
    te = load_split(root, te_ids)
    ytr = np.array([tr_lab[i] for i in tr_ids])
    yte = np.array([te_lab[i] for i in te_ids])
    Xtr, Xte = pad(tr, T_TRAIN), pad(te, T_TRAIN)
    print(f"encoded {len(tr)} training + {len(te)} test samples with edgebrain ({ENCODER}) in "
          f"{time.time() - t0:.1f} s; lengths {min(map(len, tr + te))}-{max(map(len, tr + te))} steps", flush=True)

    # ---- spiking network
    t_train0 = time.time()
    torch.manual_seed(a.seed)
    net = spiking_net()
    with torch.no_grad():
        _, rec = run_spiking(net, torch.from_numpy(Xtr[:, :32]), record=True)
    print("initial spike rates: " + ", ".join(f"layer {k} {float(v.mean()):.3f}" for k, v in rec.items()), flush=True)
    train(net, Xtr, ytr, epochs, 2e-3, a.seed, 32, run_spiking, True, "spiking", test=(Xte, yte))
    train_minutes = (time.time() - t_train0) / 60

    # ---- baseline
    t_b = time.time()
    torch.manual_seed(a.seed + 1)
    base = Baseline()
    train(base, Xtr, ytr, b_epochs, 3e-3, a.seed + 1, 32, lambda m, x: m(x), False, "baseline", test=(Xte, yte))
    with torch.no_grad():
        base_acc = float((base(torch.from_numpy(Xte)).argmax(1).numpy() == yte).mean())
    print(f"baseline (ReLU CNN on summed frames, torch): test acc {base_acc:.3f} "
          f"({(time.time() - t_b) / 60:.1f} min)", flush=True)

    # ---- export, import, check
    tmp = out_dir / "_nmnist_build"
    graph = export_to_nir(net, torch.zeros(1, 2, 34, 34), ignore_dims=[0])
    model = common.to_edgebrain(graph, tmp / "nmnist.nir")
    dialect = model.graph.meta.get("dialect")
    if dialect != "snntorch":
        raise SystemExit(f"edgebrain imported the export with dialect {dialect!r}, expected 'snntorch'")
    same = check_export(net, model, te[0])
    model.graph.meta["stream"] = {"encoder": ENCODER, "decoder": DECODER, "labels": LABELS, "rate": RATE}

    # ---- float and int8 with edgebrain
    cf = eval_edgebrain(model, te, "float")
    pf = decide(cf)
    rng = np.random.default_rng(a.seed)
    calib = Xtr[:, rng.choice(Xtr.shape[1], min(100, Xtr.shape[1]), replace=False)]
    qmodel, _ = common.quantize_int8(model, calib)
    cq = eval_edgebrain(qmodel, te, "int")
    pq = decide(cq)
    conf_f = common.confusion(yte, pf, 10)
    conf_q = common.confusion(yte, pq, 10)
    acc_f = float((pf == yte).mean())
    acc_q = float((pq == yte).mean())
    agree = float((pf == pq).mean())
    print(f"edgebrain: float {acc_f:.3f}, int8 {acc_q:.3f} (decisions agree on {agree:.0%}); "
          f"no decision float {int((pf < 0).sum())}, int8 {int((pq < 0).sum())}; baseline {base_acc:.3f}", flush=True)

    # ---- card
    x0 = te[0]
    footprint = common.footprint(qmodel)
    activity = common.activity_and_synops(model, x0, RATE)
    latency = {"float": common.step_latency_us(model, x0, "float"), "int": common.step_latency_us(qmodel, x0, "int")}
    gap_base = 100 * (base_acc - acc_f)
    gap_q = 100 * (acc_f - acc_q)
    note = [(f"Spiking and baseline on the same 1,000 / 100 split; 100 test samples, so one sample is 1 point. "
             f"Float and int8 decisions agree on {agree:.0%} of the test samples; edgebrain's float output matched "
             f"snnTorch's spike for spike ({same:.2%} of output spike-steps identical) on a test sample. The "
             f"baseline is evaluated in torch (edgebrain runs spiking graphs).")]
    if gap_base > 2:
        note.append(f"Target missed: the spiking network is {gap_base:.0f} points below the non-spiking baseline "
                    f"(target: within 2).")
    if gap_q > 1:
        note.append(f"Target missed: int8 is {gap_q:.0f} points below float (target: within 1).")
    card = {
        "title": "N-MNIST digits from an event camera (convolutional SNN)",
        "summary": ("Classifies a 34×34 event-camera recording of a handwritten digit (N-MNIST: the sensor "
                    "saccades over an MNIST digit for ~300 ms) into 0-9. Conv2d(2→12, 5) → LIF → AvgPool(2) → "
                    "Conv2d(12→32, 4) → LIF → AvgPool(2) → Linear(1152→10) → LIF, one step per 20 ms window of "
                    "events; the class is the output neuron that spikes most over the recording. Streaming one "
                    "`.bs2` file gives one decision (made by the end-of-stream flush over the whole sample)."),
        "data": ("`nmnist-small` (SLAYER's N-MNIST subset, CC BY-SA 4.0): 1,000 training samples (1-1000.bs2, "
                 "labels train1K.txt) and 100 test samples (60001-60100.bs2, labels test100.txt) from the original "
                 "N-MNIST train/test split. All 1,000 used for training (random ±2 px shifts), the 100 test samples "
                 "only for the results below. Inputs are made by edgebrain's own `.bs2` source and binning encoder."),
        "stream": {"encoder": ENCODER, "decoder": DECODER, "rate": RATE},
        "labels": LABELS,
        "results": [
            {"model": "spiking CNN (this model)", "precision": "float", "accuracy": acc_f},
            {"model": "spiking CNN (this model)", "precision": "int8", "accuracy": acc_q},
            {"model": "non-spiking baseline: same conv net with ReLU on the summed frames", "precision": "float",
             "accuracy": base_acc},
        ],
        "results_note": " ".join(note),
        "accuracy": {"float": acc_f, "int8": acc_q, "baseline": base_acc},
        "confusion_int8": conf_q.tolist(),
        "confusion_float": conf_f.tolist(),
        "footprint": footprint,
        "activity": activity,
        "latency_us": latency,
        "training": (f"snnTorch {snn.__version__}, per-neuron learnable β (init 0.9, clamped to [0, 0.995]) and "
                     f"threshold (init 1), reset by subtraction, fast-sigmoid surrogate (slope 5). {epochs} epochs, "
                     f"batch 32, Adam with one-cycle learning rate (max 2e-3), cross-entropy on output spike counts "
                     f"over {T_TRAIN} steps (samples zero-padded), random ±2 px shifts. Exported with "
                     f"`snntorch.export_nir.export_to_nir` (batched sample, ignore_dims=[0]), imported by edgebrain "
                     f"(dialect snntorch), int8 weights / int16 state, per-channel scales, calibrated on "
                     f"{calib.shape[1]} training samples. Baseline: {b_epochs} epochs, same optimiser (max 3e-3)."),
        "command": "python tools/train/nmnist.py" + (f" --seed {a.seed}" if a.seed else "")
                   + (f" --epochs {a.epochs}" if a.epochs else "") + (" --smoke" if a.smoke else ""),
        "seed": a.seed,
        "train_minutes": round(train_minutes, 2),
        "total_minutes": round((time.time() - t_start) / 60, 2),
        "machine": common.machine(),
        "date": datetime.date.today().isoformat(),
    }
    path = common.write_entry("nmnist", qmodel, card, out_dir)
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    if not a.no_stream_check:
        n = 3 if a.smoke else 5
        files = [root / f"{i}.bs2" for i in te_ids[:n]]
        rows = stream_check(path, files, list(pf[:n]), "float") + stream_check(path, files, list(pq[:n]), "int")
        if not all(r["ok"] for r in rows):
            print("WARNING: edgebrain stream disagrees with the evaluated decisions on some files")
    print(f"done in {(time.time() - t_start) / 60:.1f} min (spiking training {train_minutes:.1f} min)")


if __name__ == "__main__":
    main()
