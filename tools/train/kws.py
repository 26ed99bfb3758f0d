"""Train the `zoo:kws` model: spoken digits (FSDD) → 10 classes, speaker-independent.

Data: the Free Spoken Digit Dataset (8 kHz WAV, ``recordings/{digit}_{speaker}_{index}.wav``), found
with ``edgebrain.datasets.locate("fsdd")`` and never copied. Train on george, jackson, lucas, nicolas;
test on theo (a speaker the model never heard).

Every WAV goes through edgebrain's own audio front end (a mel-spaced band-pass biquad bank, a
streaming gain control (running peak of the band energy), log compression, fixed per-channel normalisation computed on the training set and written into the
encoder spec), so the model is trained on exactly what it sees when deployed. A feed-forward
spiking MLP (snnTorch Leaky, reset by subtraction) reads the features as input currents; the class
is the output neuron with the most spikes over the utterance; loss: cross-entropy on the spike
counts. Exported with snnTorch's ``export_to_nir``, imported, quantized and evaluated with edgebrain
(float and int8). Baseline beside it: a small GRU on the same features and split.

    python tools/train/kws.py               # full run, writes edgebrain/zoo/kws.{ebm,md}
    python tools/train/kws.py --smoke --out /tmp/kws
"""

from __future__ import annotations

import argparse
import datetime
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from edgebrain.datasets import locate  # noqa: E402

LABELS = [str(d) for d in range(10)]
TRAIN_SPEAKERS = ("george", "jackson", "lucas", "nicolas")
TEST_SPEAKERS = ("theo",)
RATE = 50.0                    # model steps per second (20 ms hop)
CHANNELS = 24
BANK = f"audio:filterbank=bandpass,channels={CHANNELS},hop_ms=20,fmin=100,fmax=3800"
AGC_MS, AGC_FLOOR, K = 1000.0, 1e-7, 1e4   # gain control: running peak of the mean band energy
FRONT = f"{BANK},agc=true,agc_ms={AGC_MS:g},agc_floor={AGC_FLOOR:g},log=log1p,k={K:g}"
ENERGIES = f"{BANK},log=none"              # the same bank's raw energies (training-time augmentation)
DECODER = "count:window=150"   # 3 s: longer than any FSDD utterance, so one file → one decision (at flush)
HIDDEN = (256, 128)
DROPOUT = 0.2
NAME = re.compile(r"^(\d)_([a-z]+)_(\d+)\.wav$")


def files_of(root: Path, speakers) -> list[tuple[Path, int]]:
    out = []
    for f in sorted((root / "recordings").glob("*.wav")):
        m = NAME.match(f.name)
        if m and m.group(2) in speakers:
            out.append((f, int(m.group(1))))
    return out


def encode_all(items, spec):
    return [common.encode_file(f, spec, rate=RATE)[0] for f, _ in items]


def stream_decisions(model_path, wav, precision) -> list:
    """Labels decided by `edgebrain stream <model> --source <wav> --json` (a subprocess, the CLI as deployed)."""
    import json
    import subprocess

    r = subprocess.run([sys.executable, "-m", "edgebrain", "stream", str(model_path), "--source", str(wav),
                        "--json", "--precision", precision], capture_output=True, text=True, cwd=common.ROOT,
                       check=True)
    lines = [json.loads(v) for v in r.stdout.splitlines() if v.startswith("{")]
    return [d["label"] for d in lines if "summary" not in d]


def fmt_list(a) -> str:
    return "|".join(f"{v:.4g}" for v in a)


def pad(xs, T=None):
    """list of (T_i, C) → (T, N, C) zero-padded, mask (T, N)."""
    T = T or max(len(x) for x in xs)
    X = np.zeros((T, len(xs), xs[0].shape[1]), np.float32)
    M = np.zeros((T, len(xs)), np.float32)
    for i, x in enumerate(xs):
        n = min(len(x), T)
        X[:n, i] = x[:n]
        M[:n, i] = 1
    return X, M


def agc_log(e, decay: float):
    """The front end's gain control and log1p on band energies e (T, N, C) (torch or NumPy, float64):
    m_t = max(mean_c e_t, decay·m_{t−1}, floor), f = log1p(K·e/m_t)."""
    if isinstance(e, np.ndarray):
        return agc_log(torch.from_numpy(e), decay).numpy()
    m = torch.full(e.shape[1:2], AGC_FLOOR, dtype=e.dtype)
    fl = torch.tensor(AGC_FLOOR, dtype=e.dtype)
    out = []
    for t in range(e.shape[0]):
        m = torch.maximum(e[t].mean(1), torch.maximum(decay * m, fl))
        out.append(torch.log1p(K * e[t] / m[:, None]))
    return torch.stack(out) if out else e.clone()


class Augment:
    """Exact gain change on the raw band energies (a linear filterbank scales them by g²), then the
    front end's gain control, log1p and fixed normalisation; plus a little feature noise. The gain
    control removes most of the gain change: what is left is the level relative to its floor."""

    def __init__(self, mean, scale, decay, db=20.0, noise=0.05):
        self.mean = torch.tensor(mean, dtype=torch.float32)
        self.scale = torch.tensor(scale, dtype=torch.float32)
        self.decay, self.db, self.noise = decay, db, noise

    def __call__(self, raw, g: torch.Generator, train: bool):
        if train and self.db > 0:
            gain_db = (torch.rand(1, raw.shape[1], 1, generator=g, dtype=raw.dtype) * 2 - 1) * self.db
            raw = raw * 10.0 ** (gain_db / 10.0)
        x = ((agc_log(raw, self.decay) - self.mean) * self.scale).float()
        if train and self.noise > 0:
            x = x + self.noise * torch.randn(x.shape, generator=g)
        return x


class GRUNet(torch.nn.Module):
    def __init__(self, n_in, n_hidden=64, n_out=10):
        super().__init__()
        self.gru = torch.nn.GRU(n_in, n_hidden)
        self.out = torch.nn.Linear(n_hidden, n_out)

    def forward(self, x, mask):  # logits from the masked mean of the hidden states
        h, _ = self.gru(x)
        return self.out((h * mask[..., None]).sum(0) / mask.sum(0)[:, None])


def snn_run(net, x, mask, dropout: float = 0.0):
    """net.run (SpikingMLP) with common.leaky_step (the same numbers, less Python overhead) and
    dropout on the hidden spikes while training; returns the masked output spike counts."""
    cur = net.fcs[0](x)              # the input layer's currents for all steps at once
    mems = [torch.zeros(()) for _ in net.lifs]
    counts = 0.0
    for t in range(x.shape[0]):
        h, mems[0] = common.leaky_step(net.lifs[0], cur[t], mems[0])
        for k in range(1, len(net.fcs)):
            if net.training and dropout > 0:
                h = torch.nn.functional.dropout(h, dropout)
            h, mems[k] = common.leaky_step(net.lifs[k], net.fcs[k](h), mems[k])
        counts = counts + h * mask[t, :, None]
    return counts


def train_model(kind, net, Xr, M, y, Xr_te, M_te, y_te, aug, epochs, lr, batch, seed):
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=max(1, epochs * -(-Xr.shape[1] // batch)))
    N = Xr.shape[1]
    Xr_t, M_t, y_t = torch.tensor(Xr), torch.tensor(M), torch.tensor(y)

    def forward(xr, m, train):
        x = aug(xr, g, train)
        if kind == "snn":
            return snn_run(net, x, m, DROPOUT)
        return net(x, m)

    def evaluate(Xe, Me, ye):
        net.eval()
        with torch.no_grad():
            out = torch.cat([forward(torch.tensor(Xe[:, i:i + 100]), torch.tensor(Me[:, i:i + 100]), False)
                             for i in range(0, Xe.shape[1], 100)])
        net.train()
        return float((out.argmax(1).numpy() == ye).mean())

    for ep in range(epochs):
        t0 = time.time()
        perm = torch.randperm(N, generator=g)
        tot = correct = 0.0
        for i in range(0, N, batch):
            idx = perm[i:i + batch]
            m = M_t[:, idx]
            T = int(m.sum(0).max())
            out = forward(Xr_t[:T, idx], m[:T], True)
            loss = torch.nn.functional.cross_entropy(out * (0.5 if kind == "snn" else 1.0), y_t[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            if kind == "snn":
                common.clamp_lifs(net)
            tot += float(loss.detach()) * len(idx)
            correct += float((out.argmax(1) == y_t[idx]).sum())
        te = evaluate(Xr_te, M_te, y_te) if Xr_te is not None else float("nan")
        print(f"[{kind}] epoch {ep + 1}/{epochs}: loss {tot / N:.3f} train acc {correct / N:.3f} "
              f"test acc {te:.3f} ({time.time() - t0:.1f} s)", flush=True)
    return evaluate(Xr_te, M_te, y_te) if Xr_te is not None else float("nan")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--beta", type=float, default=0.9, help="initial membrane decay of every population")
    ap.add_argument("--baseline-epochs", type=int, default=None, help="default: --epochs")
    ap.add_argument("--smoke", action="store_true", help="tiny subset, one short epoch; writes to --out")
    ap.add_argument("--out", default=None, help="output folder (default edgebrain/zoo)")
    a = ap.parse_args(argv)
    t_start = time.time()
    common.setup(a.seed, threads=1)
    out_dir = Path(a.out) if a.out else common.ZOO
    if a.smoke and not a.out:
        ap.error("--smoke needs --out (the zoo is written by full runs only)")
    epochs = 1 if a.smoke else a.epochs
    b_epochs = 1 if a.smoke else (a.baseline_epochs or a.epochs)

    root = locate("fsdd")
    train_items, test_items = files_of(root, TRAIN_SPEAKERS), files_of(root, TEST_SPEAKERS)
    if a.smoke:
        rng = np.random.default_rng(a.seed)
        train_items = [train_items[i] for i in sorted(rng.choice(len(train_items), 60, replace=False))]
        test_items = [test_items[i] for i in sorted(rng.choice(len(test_items), 20, replace=False))]
    print(f"FSDD at {root}: {len(train_items)} train files ({', '.join(TRAIN_SPEAKERS)}), "
          f"{len(test_items)} test files ({', '.join(TEST_SPEAKERS)})", flush=True)

    # ---- features through edgebrain's front end: raw log1p first, then the training-set statistics
    t0 = time.time()
    en_tr = [e.astype(np.float64) for e in encode_all(train_items, ENERGIES)]
    en_te = [e.astype(np.float64) for e in encode_all(test_items, ENERGIES)]
    decay = float(np.exp(-(1.0 / RATE) / (AGC_MS / 1e3)))
    raw_tr = [agc_log(e[:, None], decay)[:, 0] for e in en_tr]
    raw_te = [agc_log(e[:, None], decay)[:, 0] for e in en_te]
    allf = np.concatenate(raw_tr).astype(np.float64)
    mean = np.array([float(f"{v:.4g}") for v in allf.mean(0)])
    scale = np.array([float(f"{v:.4g}") for v in 1.0 / np.maximum(allf.std(0), 1e-3)])
    spec = f"{FRONT},mean={fmt_list(mean)},scale={fmt_list(scale)}"
    y_tr = np.array([d for _, d in train_items])
    y_te = np.array([d for _, d in test_items])
    norm = lambda r: ((r - mean) * scale).astype(np.float32)  # noqa: E731 - what the encoder does
    x_te = [norm(r) for r in raw_te]
    chk = common.encode_file(test_items[0][0], spec, rate=RATE)[0]
    assert np.allclose(chk, x_te[0], atol=1e-4), "normalisation outside the encoder differs from the encoder's"
    x_te = [common.encode_file(f, spec, rate=RATE)[0] for f, _ in test_items]  # evaluation: the deployed path
    lens = np.array([len(r) for r in raw_tr + raw_te])
    print(f"encoded {len(lens)} files in {time.time() - t0:.1f} s: {CHANNELS} channels at {RATE:g} steps/s, "
          f"{lens.min()}–{lens.max()} steps (median {np.median(lens):.0f})", flush=True)
    Xr_tr, M_tr = pad(en_tr)
    Xr_te, M_te = pad(en_te)
    Xr_tr, Xr_te = Xr_tr.astype(np.float64), Xr_te.astype(np.float64)
    aug = Augment(mean, scale, decay)

    # ---- spiking model
    t0 = time.time()
    torch.manual_seed(a.seed)
    net = common.SpikingMLP([CHANNELS, *HIDDEN, 10], beta=a.beta, beta_out=a.beta)
    print(f"spiking MLP {[CHANNELS, *HIDDEN, 10]}: {common.n_params(net)} trainable parameters", flush=True)
    acc_torch = train_model("snn", net, Xr_tr, M_tr, y_tr, Xr_te, M_te, y_te, aug, epochs, 2e-3, 32, a.seed)
    snn_minutes = (time.time() - t0) / 60
    print(f"spiking test accuracy (snnTorch, masked): {acc_torch:.4f}", flush=True)

    # ---- baseline
    t0 = time.time()
    torch.manual_seed(a.seed)
    gru = GRUNet(CHANNELS, 64)
    acc_base = train_model("gru", gru, Xr_tr, M_tr, y_tr, Xr_te, M_te, y_te, aug, b_epochs, 3e-3, 32, a.seed)
    print(f"baseline GRU test accuracy: {acc_base:.4f} ({common.n_params(gru)} parameters)", flush=True)
    base_minutes = (time.time() - t0) / 60

    # ---- export, import, stream settings, quantize
    work = out_dir / "_work" if a.smoke else Path(common.ROOT / "build" / "zoo")
    model = common.export_mlp(net, work / "kws.nir")
    model.graph.meta["stream"] = {"encoder": spec, "decoder": DECODER, "labels": LABELS, "rate": RATE}
    rng = np.random.default_rng(a.seed)
    cal_idx = rng.choice(len(raw_tr), min(64, len(raw_tr)), replace=False)
    calib, _ = pad([norm(raw_tr[i]) for i in cal_idx])
    qmodel, _ = common.quantize_int8(model, calib)

    # ---- evaluation with edgebrain: one decision per utterance, each run from reset over its own steps
    res = {}
    for prec in ("float", "int"):
        c = common.counts_by_length(qmodel, x_te, prec)
        pred = np.where(c.sum(1) > 0, c.argmax(1), -1)
        conf = common.confusion(y_te, pred, 10)
        res[prec] = {"accuracy": float((pred == y_te).mean()), "confusion": conf.tolist(),
                     "silent": int((c.sum(1) == 0).sum())}
        print(f"edgebrain {prec}: accuracy {res[prec]['accuracy']:.4f} ({res[prec]['silent']} utterances "
              "without output spikes)", flush=True)

    # ---- `edgebrain stream <model.ebm> --source <wav> --json` on a few files gives the same decision
    work.mkdir(parents=True, exist_ok=True)
    probe_model = work / "kws_probe.ebm"
    qmodel.save(probe_model)
    agree = 0
    probe = list(range(0, len(test_items), max(1, len(test_items) // 5)))[:1 if a.smoke else 5]
    for i in probe:
        for prec in ("float", "int"):
            got = stream_decisions(probe_model, test_items[i][0], prec)
            c = common.counts_by_length(qmodel, [x_te[i]], prec)[0]
            want = LABELS[int(c.argmax())] if c.sum() else None
            agree += int(got == [want])
            print(f"edgebrain stream {test_items[i][0].name} --precision {prec}: {got} (batch evaluation: {want})")
    print(f"stream decisions agree with the batch evaluation on {agree}/{2 * len(probe)} (file, precision) "
          "pairs", flush=True)

    x0 = x_te[int(np.argmax([len(x) for x in x_te]))]
    minutes = (time.time() - t_start) / 60
    diff_base = res["float"]["accuracy"] - acc_base
    diff_q = res["int"]["accuracy"] - res["float"]["accuracy"]
    note = (f"Spiking float vs. GRU baseline: {100 * diff_base:+.2f} points (target ≥ −2); int8 vs. float: "
            f"{100 * diff_q:+.2f} points (target ≥ −1). Test speaker theo is never seen in training, so this "
            "is speaker-independent accuracy; one decision per recording (count decoder, window longer than "
            f"any utterance, decided at the end of the file). snnTorch's own masked evaluation of the same "
            f"network gave {100 * acc_torch:.2f} %. `edgebrain stream` agreed with this evaluation on "
            f"{agree}/{2 * len(probe)} checked (file, precision) pairs.")
    note += (" History: with plain log1p (k = 1e7) features, no gain control, a 24-128-128-10 network and "
             "random gain ±20 dB, the spiking model reached 72.2 % float / 71.6 % int8 against a GRU baseline of "
             "83.2 % on the same features (theo records ~20 dB quieter than the training speakers). The front "
             "end's gain control (agc=true) made the features level-independent; on a held-out training speaker "
             "(nicolas, training on the other three) it and dropout with a wider first layer raised the spiking "
             "model's validation accuracy, and the GRU baseline gained from the same features too (it is "
             "retrained on them here).")
    if diff_base < -0.02:
        note += (f" The spiking model misses the baseline target by {100 * (-0.02 - diff_base):.1f} points beyond "
                 "the 2-point allowance (the gap is speaker generalisation: training accuracy reaches ~99 %). "
                 "Also tried: log1p with k = 1e4 without gain control (~20 % test accuracy), feature noise, "
                 "one-cycle learning rate, initial β 0.9 and 0.95, random gain ±30 dB. Not tried for lack of "
                 "time: a recurrent spiking layer (RLeaky), more channels, model selection on a held-out "
                 "training speaker.")
    card = {
        "title": "spoken digits (FSDD), speaker-independent",
        "summary": ("Keyword spotting of the spoken digits 0–9 from 8 kHz audio. edgebrain's band-pass "
                    f"filterbank front end ({CHANNELS} mel-spaced biquads, a streaming gain control that divides "
                    "the energies by a running peak of their mean (instant attack, 1 s release), log compression, "
                    "fixed per-channel "
                    f"normalisation) feeds a spiking MLP {CHANNELS}→{HIDDEN[0]}→{HIDDEN[1]}→10 (LIF, reset by "
                    "subtraction) as input currents; the decision is the output neuron with the most spikes "
                    "over the recording. `edgebrain stream zoo:kws --source digit.wav` gives one decision per file."),
        "data": ("Free Spoken Digit Dataset (Jakobovski et al., CC BY-SA 4.0), 8 kHz WAV, 6 speakers × 10 digits × "
                 "50 recordings in this copy. Train: george, jackson, lucas, nicolas "
                 f"({len(train_items)} recordings); test: theo ({len(test_items)} recordings), a speaker the model "
                 "never heard. Located with `edgebrain.datasets.locate(\"fsdd\")`."),
        "stream": {"encoder": spec, "decoder": DECODER, "rate": RATE},
        "labels": LABELS,
        "results": [
            {"model": f"spiking MLP {CHANNELS}-{HIDDEN[0]}-{HIDDEN[1]}-10", "precision": "float32",
             "accuracy": res["float"]["accuracy"]},
            {"model": f"spiking MLP {CHANNELS}-{HIDDEN[0]}-{HIDDEN[1]}-10", "precision": "int8 weights / int16 state",
             "accuracy": res["int"]["accuracy"]},
            {"model": f"baseline: GRU (64 units, {common.n_params(gru)} parameters, mean-pooled readout), torch",
             "precision": "float32", "accuracy": acc_base},
        ],
        "results_note": note,
        **common.measured(qmodel, res, x0, RATE),
        "training": (f"snnTorch {common.snn.__version__}, Adam with a one-cycle learning rate (max 2e-3), "
                     f"batch 32, {epochs} epochs; loss: cross-entropy on 0.5 × output spike counts (summed over "
                     f"each utterance's own steps; padded steps masked); learnable per-neuron β (init {a.beta:g}) and "
                     f"threshold (init 1), fast-sigmoid surrogate gradient, dropout {DROPOUT:g} on the hidden spikes "
                     "feeding the second and output layers. Augmentation: random gain ±20 dB (applied exactly to "
                     "the band energies, before the gain control) and Gaussian feature noise σ = 0.05. Export: "
                     "snnTorch export_to_nir, imported by edgebrain (snntorch dialect); post-training "
                     "quantization to int8 weights and int16 state on 64 training utterances. Baseline: "
                     f"GRU, same features, split and augmentation, Adam (max lr 3e-3), {b_epochs} epochs. "
                     f"Spiking training {snn_minutes:.1f} min, baseline {base_minutes:.1f} min."),
        "command": "python tools/train/kws.py" + (f" --seed {a.seed}" if a.seed else "")
                   + (f" --epochs {a.epochs}" if a.epochs != ap.get_default("epochs") else "")
                   + (f" --beta {a.beta:g}" if a.beta != ap.get_default("beta") else ""),
        "seed": a.seed,
        "train_minutes": minutes,
        "machine": common.machine(),
        "date": datetime.date.today().isoformat(),
    }
    path = common.write_entry("kws", qmodel, card, out_dir)
    print(f"done in {minutes:.1f} min: spiking float {res['float']['accuracy']:.4f}, int8 "
          f"{res['int']['accuracy']:.4f}, baseline {acc_base:.4f}; {path}")
    return path


if __name__ == "__main__":
    main()
