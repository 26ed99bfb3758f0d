"""What every zoo training script shares: data through edgebrain's own sources and encoders (so the
model is trained on exactly what it will see when deployed), snnTorch LIF populations, export to NIR,
conversion and int8 quantization with edgebrain, evaluation with edgebrain (never with the training
framework), measurements for the model card, and writing the zoo entry (``.ebm`` + ``MODEL.md``).

Needs the ``train`` extra (torch CPU, snnTorch).
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
ZOO = ROOT / "edgebrain" / "zoo"

import torch  # noqa: E402

import snntorch as snn  # noqa: E402
from snntorch import surrogate  # noqa: E402

from edgebrain import ops  # noqa: E402
from edgebrain.model import Model  # noqa: E402
from edgebrain.progress import bar  # noqa: E402
from edgebrain.quant import quantize  # noqa: E402
from edgebrain.stream.pipeline import encode_file  # noqa: E402,F401 - used by the training scripts


def setup(seed: int, threads: int = 2) -> np.random.Generator:
    """Deterministic training: one seed for Python, NumPy and torch; torch's deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    return np.random.default_rng(seed)


# ---------------------------------------------------------------------- data through edgebrain


# encode_file(path, encoder, rate=None, input_shape=None, **source_options) -> (x, labels, t): see
# edgebrain.stream.pipeline.encode_file (imported above), the deployed pre-processing


# ---------------------------------------------------------------------- snnTorch building blocks


def lif(n: int, beta: float = 0.9, threshold: float = 1.0, learn: bool = True) -> snn.Leaky:
    """A population of n snnTorch Leaky neurons (reset by subtraction), per-neuron β and threshold."""
    return snn.Leaky(beta=torch.full((n,), float(beta)), threshold=torch.full((n,), float(threshold)),
                     learn_beta=learn, learn_threshold=learn, spike_grad=surrogate.fast_sigmoid(slope=5),
                     init_hidden=False, reset_mechanism="subtract")


class _FastSigmoid(torch.autograd.Function):
    """Heaviside forward, fast-sigmoid surrogate backward: snnTorch's surrogate.fast_sigmoid(slope)."""

    @staticmethod
    def forward(ctx, x, slope):
        ctx.save_for_backward(x)
        ctx.slope = slope
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g / (ctx.slope * x.abs() + 1.0) ** 2, None


def leaky_step(mod: snn.Leaky, cur: torch.Tensor, mem: torch.Tensor, slope: float = 5.0):
    """One step of snnTorch's Leaky (reset by subtraction, reset from the previous membrane,
    detached), written out: the same numbers as ``mod(cur, mem)`` with a fraction of its Python
    overhead, which dominates for populations this small. Returns (spikes, membrane)."""
    thr = mod.threshold
    reset = (mem - thr > 0).to(mem.dtype)
    mem = mod.beta.clamp(0, 1) * mem + cur - reset * thr
    return _FastSigmoid.apply(mem - thr, slope), mem


def cuba(n: int, alpha: float = 0.8, beta: float = 0.9, threshold: float = 1.0, learn: bool = True) -> snn.Synaptic:
    """A population of n snnTorch Synaptic (current-based LIF) neurons: the input filtered by a synaptic current
    that decays by α, feeding a membrane that decays by β (reset by subtraction); per-neuron α, β, threshold."""
    return snn.Synaptic(alpha=torch.full((n,), float(alpha)), beta=torch.full((n,), float(beta)),
                        threshold=torch.full((n,), float(threshold)), learn_alpha=learn, learn_beta=learn,
                        learn_threshold=learn, spike_grad=surrogate.fast_sigmoid(slope=5), init_hidden=False,
                        reset_mechanism="subtract")


def synaptic_step(mod: snn.Synaptic, cur: torch.Tensor, syn: torch.Tensor, mem: torch.Tensor, slope: float = 5.0):
    """One step of snnTorch's Synaptic written out, as :func:`leaky_step`: syn' = α·syn + cur, mem' = β·mem + syn'
    − reset·θ (reset from the previous membrane). Returns (spikes, synaptic current, membrane)."""
    thr = mod.threshold
    reset = (mem - thr > 0).to(mem.dtype)
    syn = mod.alpha.clamp(0, 1) * syn + cur
    mem = mod.beta.clamp(0, 1) * mem + syn - reset * thr
    return _FastSigmoid.apply(mem - thr, slope), syn, mem


def clamp_lifs(module: torch.nn.Module) -> None:
    """Keep every population's β (and a current-based one's α) in [0, 0.995] and threshold ≥ 0.05 (what the
    exporter can express)."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (snn.Leaky, snn.Synaptic)):
                m.beta.clamp_(0.0, 0.995)
                m.threshold.clamp_(min=0.05)
            if isinstance(m, snn.Synaptic):
                m.alpha.clamp_(0.0, 0.995)


def n_params(module: torch.nn.Module) -> int:
    return int(sum(p.numel() for p in module.parameters() if p.requires_grad))


# ---------------------------------------------------------------------- edgebrain conversion


def to_edgebrain(nir_graph, path: Path) -> Model:
    """Write the framework's NIR graph to ``path`` and import it with edgebrain (conventions detected)."""
    import nir

    path.parent.mkdir(parents=True, exist_ok=True)
    nir.write(str(path), nir_graph)
    m = Model.load(path)
    rep = m.graph.meta.get("import_report") or {}
    print(f"imported {path.name}: dialect {m.graph.meta.get('dialect')} ({rep.get('reason', '')})")
    return m


def quantize_int8(model: Model, calib: np.ndarray, labels=None):
    """int8 weights, int16 state, per-channel scales; ``calib`` (T, B, *input)."""
    return quantize(model, calib, weight_bits=8, state_bits=16, labels=labels, progress=True)


def output_counts(model: Model, xs: np.ndarray, precision: str, batch: int = 50) -> np.ndarray:
    """Summed outputs over time per sample; xs (T, N, *input) → (N, n_out)."""
    T, N = xs.shape[:2]
    out = []
    sess = None
    for i in range(0, N, batch):
        xb = xs[:, i:i + batch]
        b = xb.shape[1]
        if sess is None or sess.batch != b:
            sess = model.session(precision, batch=b)
        sess.reset()
        y, _ = sess.run(xb)
        out.append(np.asarray(y, np.float64).reshape(T, b, -1).sum(0))
    return np.concatenate(out)


def confusion(truth, pred, n: int) -> np.ndarray:
    c = np.zeros((n, n), np.int64)
    for t, p in zip(truth, pred):
        if 0 <= t < n and 0 <= p < n:
            c[t, p] += 1
    return c


def accuracy_of(conf: np.ndarray) -> float:
    return float(np.trace(conf) / max(conf.sum(), 1))


def stream_files(model: Model, files, precision: str) -> dict:
    """Stream each file through edgebrain's pipeline with the model's own stream settings; pooled
    accuracy and confusion over all decisions (truth: the file's labels)."""
    from edgebrain.stream.pipeline import build_pipeline

    labels = model.graph.meta["stream"]["labels"]
    idx = {k: i for i, k in enumerate(labels)}
    conf = np.zeros((len(labels), len(labels)), np.int64)
    nodec = nodec_scored = 0
    steps = 0
    spikes: dict = {}
    pb = bar(len(files), f"stream {precision}", "files")
    for f in files:
        p = build_pipeline(model, str(f), precision=precision)
        s = p.run()
        pb.update(1)
        steps += s["steps"]
        nodec += s["no_decision"]
        for row in s.get("confusion", []):
            if row["truth"] in idx and row["label"] in idx:
                conf[idx[row["truth"]], idx[row["label"]]] += row["n"]
            elif row["truth"] in idx and row["label"] is None:
                nodec_scored += row["n"]  # a labelled window left undecided counts as wrong
        for k, v in s.get("spike_rate", {}).items():
            spikes.setdefault(k, []).append((v, s["steps"]))
    pb.close()
    rate = {k: float(sum(v * n for v, n in vs) / max(sum(n for _, n in vs), 1)) for k, vs in spikes.items()}
    acc = float(np.trace(conf) / max(conf.sum() + nodec_scored, 1))
    return {"accuracy": acc, "confusion": conf.tolist(), "no_decision": int(nodec),
            "decisions": int(conf.sum()), "steps": int(steps), "spike_rate": rate}


# ---------------------------------------------------------------------- measurements for the card


def activity_and_synops(model: Model, x: np.ndarray, rate_hz: float) -> dict:
    """Run one input sequence x (T, *input) in float; spike activity per spiking population and
    synaptic operations per second of input: for each weighted layer, (non-zero inputs) × (fan-out),
    counted as accumulates (AC) when the input is spikes and multiply-accumulates (MAC) otherwise.
    Convolution fan-out is out_channels · kh · kw / (stride_h · stride_w) per input (borders ignored)."""
    g = model.graph
    spiking = [n for n in g.order if isinstance(g.nodes[n], ops.Neuron) and g.nodes[n].spiking]
    sess = model.session("float")
    _, rec = sess.run(x, record=spiking)
    T = x.shape[0]
    act = {n: float(np.mean(rec[f"spikes/{n}"] != 0)) for n in spiking}
    preds = {}
    for a, b in g.edges:
        preds.setdefault(b, []).append(a)
    ac = mac = 0.0
    for name in g.order:
        op = g.nodes[name]
        if not isinstance(op, (ops.Affine, ops.Conv1d, ops.Conv2d)):
            continue
        w = np.asarray(op.weight)
        if isinstance(op, ops.Affine):
            fan = w.shape[0]
        elif isinstance(op, ops.Conv2d):
            st = np.broadcast_to(np.asarray(op.stride), (2,))
            fan = w.shape[0] * w.shape[2] * w.shape[3] / float(st[0] * st[1])
        else:
            fan = w.shape[0] * w.shape[2] / float(np.asarray(op.stride).reshape(-1)[0])
        for p in preds.get(name, []):
            src = p
            while src not in spiking and src in preds and len(preds[src]) == 1 and \
                    not isinstance(g.nodes[src], (ops.Affine, ops.Conv1d, ops.Conv2d)) and src not in g.inputs:
                src = preds[src][0]  # through flatten / pooling: count the spikes that feed them
            if src in spiking:
                ac += float(np.count_nonzero(rec[f"spikes/{src}"])) * fan
            else:
                n_in = int(np.prod(g.out_shapes[p]))
                mac += n_in * fan * T
    sec = T / rate_hz
    return {"spike_activity": act, "mean_spike_activity": float(np.mean(list(act.values()))) if act else 0.0,
            "synaptic_ac_per_s": ac / sec, "synaptic_mac_per_s": mac / sec}


def step_latency_us(model: Model, x: np.ndarray, precision: str, repeats: int = 3) -> dict:
    """Per-timestep latency of session.step at batch 1 (after one warm-up pass)."""
    sess = model.session(precision)
    for v in x[:50]:
        sess.step(v)
    times = []
    for _ in range(repeats):
        sess.reset()
        for v in x:
            t0 = time.perf_counter_ns()
            sess.step(v)
            times.append(time.perf_counter_ns() - t0)
    a = np.array(times) / 1e3
    return {"p50": round(float(np.percentile(a, 50)), 2), "p99": round(float(np.percentile(a, 99)), 2)}


def footprint(model: Model) -> dict:
    s = model.summary()["totals"]
    return {"params": int(s["params"]), "weights_int8_bytes": int(s["int_bytes"]),
            "state_int16_bytes": int(s["state_int_bytes"]), "weights_float32_bytes": int(s["float_bytes"])}


def measured(model: Model, res: dict, x: np.ndarray, rate_hz: float) -> dict:
    """The card fields every zoo model measures the same way: confusion matrices from ``res`` (the
    evaluation's {"float": ..., "int": ...}), footprint, activity and synaptic operations, and step
    latency in both precisions on the input ``x`` (timesteps × inputs)."""
    return {"confusion_int8": res["int"]["confusion"], "confusion_float": res["float"]["confusion"],
            "footprint": footprint(model), "activity": activity_and_synops(model, x, rate_hz),
            "latency_us": {"float": step_latency_us(model, x, "float"), "int": step_latency_us(model, x, "int")}}


# ---------------------------------------------------------------------- the zoo entry


def fmt_conf(conf, labels) -> str:
    conf = np.asarray(conf)
    w = max(6, max(len(x) for x in labels) + 1)
    head = "| truth \\ decided | " + " | ".join(labels) + " | recall |"
    rows = [head, "|" + "---|" * (len(labels) + 2)]
    for i, lab in enumerate(labels):
        r = conf[i]
        rec = r[i] / r.sum() if r.sum() else float("nan")
        rows.append(f"| {lab:<{w}} | " + " | ".join(str(int(v)) for v in r) + f" | {rec:.2f} |")
    return "\n".join(rows)


def write_entry(name: str, qmodel: Model, card: dict, out_dir: Path = ZOO) -> Path:
    """Save the quantized model (float parameters kept beside the integer ones) with the card in its
    metadata, and MODEL.md beside it. Returns the .ebm path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if "accuracy" not in card:  # the headline numbers `zoo list` shows: the first float and int8 rows
        rows = [r for r in card["results"] if "baseline" not in r["model"].lower()]
        card["accuracy"] = {"float": next(r["accuracy"] for r in rows if "int" not in r["precision"]),
                            "int8": next(r["accuracy"] for r in rows if "int" in r["precision"])}
    qmodel.graph.meta["card"] = card
    path = out_dir / f"{name}.ebm"
    qmodel.save(path)
    (out_dir / f"{name}.md").write_text(render_card(name, card))
    print(f"wrote {path} ({path.stat().st_size} bytes) and {name}.md")
    return path


def render_card(name: str, c: dict) -> str:
    labels = c["labels"]
    fp = c["footprint"]
    lines = [f"# `zoo:{name}` — {c['title']}", "", c["summary"], "",
             "## Data and split", "", c["data"], "",
             "## Pre-processing (carried by the model)", "",
             f"- encoder: `{c['stream']['encoder']}`", f"- decoder: `{c['stream']['decoder']}`",
             f"- model rate: {c['stream']['rate']:g} steps per second of sensor time", "",
             "## Results (test split, evaluated with edgebrain)", "",
             "| model | precision | accuracy |", "|---|---|---|"]
    for row in c["results"]:
        lines.append(f"| {row['model']} | {row['precision']} | {100 * row['accuracy']:.2f} % |")
    lines += ["", c.get("results_note", ""), "",
              "### Confusion, int8 (rows: truth, columns: decision)", "", fmt_conf(c["confusion_int8"], labels), "",
              "### Confusion, float", "", fmt_conf(c["confusion_float"], labels), "",
              "## Size and cost", "",
              f"- parameters: {fp['params']:,}",
              f"- footprint at int8: {fp['weights_int8_bytes']:,} B of weights + {fp['state_int16_bytes']:,} B of "
              f"int16 state (float32: {fp['weights_float32_bytes']:,} B)",
              "- spike activity (fraction of neurons spiking per step): "
              + ", ".join(f"{k} {v:.3f}" for k, v in c["activity"]["spike_activity"].items()),
              f"- synaptic operations per second of input: {c['activity']['synaptic_ac_per_s']:.3g} AC + "
              f"{c['activity']['synaptic_mac_per_s']:.3g} MAC (counted on a test recording; approximations in "
              "`tools/train/common.py`)",
              f"- latency per timestep on {c['machine']}: float p50 {c['latency_us']['float']['p50']} µs, "
              f"int8 p50 {c['latency_us']['int']['p50']} µs (batch 1, `session.step`)", "",
              "## Training", "", c["training"], "",
              f"Reproduce: `{c['command']}` (seed {c['seed']}; {c['train_minutes']:.1f} min on {c['machine']}; "
              f"trained {c['date']}).", ""]
    return "\n".join(lines)


def machine() -> str:
    import platform

    return f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}, torch {torch.__version__}"


def save_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=1, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


# ---------------------------------------------------------------------- feed-forward spiking MLPs
# (added for the kws / basicmotions zoo scripts; nothing above depends on them)


class SpikingMLP(torch.nn.Module):
    """Linear → LIF → … → Linear → LIF (the last population is the readout). Inputs are currents
    (no encoding inside the model); run() steps it over a (T, B, n_in) sequence and returns the
    output spike counts, summed over the steps where ``mask`` (T, B) is 1 (all steps without one)."""

    def __init__(self, sizes, beta: float = 0.9, beta_out: float | None = None, threshold: float = 1.0):
        super().__init__()
        self.sizes = list(sizes)
        self.fcs = torch.nn.ModuleList(torch.nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        n = len(self.fcs)
        self.lifs = torch.nn.ModuleList(
            lif(b, beta if (k < n - 1 or beta_out is None) else beta_out, threshold)
            for k, b in enumerate(sizes[1:]))

    def run(self, x, mask=None, record: bool = False):
        mems = [m.init_leaky() for m in self.lifs]
        counts = 0.0
        hidden = [0.0] * (len(self.lifs) - 1)
        for t in range(x.shape[0]):
            h = x[t]
            for k, (fc, lf) in enumerate(zip(self.fcs, self.lifs)):
                h, mems[k] = lf(fc(h), mems[k])
                if record and k < len(hidden):
                    hidden[k] = hidden[k] + (h if mask is None else h * mask[t, :, None]).mean()
            counts = counts + (h if mask is None else h * mask[t, :, None])
        if record:
            return counts, hidden
        return counts

    def sequential(self) -> torch.nn.Sequential:
        """The same layers as one Sequential (what snnTorch's exporter traces): the Linear modules
        themselves, and Leaky copies with the same β and threshold but ``init_hidden=True`` (a Leaky
        without hidden state returns (spikes, membrane), which a Sequential cannot pass on)."""
        mods = []
        for fc, lf in zip(self.fcs, self.lifs):
            cp = snn.Leaky(beta=lf.beta.detach().clone(), threshold=lf.threshold.detach().clone(),
                           spike_grad=lf.spike_grad, init_hidden=True, reset_mechanism="subtract")
            mods += [fc, cp]
        return torch.nn.Sequential(*mods)


def export_mlp(net: SpikingMLP, path: Path) -> Model:
    """Export with snnTorch's export_to_nir (unbatched sample), write the NIR file, import with edgebrain."""
    from snntorch.export_nir import export_to_nir

    import nir

    seq = net.sequential().eval()
    with torch.no_grad():
        graph = export_to_nir(seq, torch.zeros(net.sizes[0]))
    path.parent.mkdir(parents=True, exist_ok=True)
    nir.write(str(path), graph)
    # the dialect is named: with equal β everywhere (e.g. an untrained --smoke net) the parameters
    # fit several frameworks' conventions and detection could pick another one
    m = Model.load(path, dt=1e-4, dialect="snntorch")  # snnTorch always writes dt = 1e-4
    print(f"imported {path.name}: dialect {m.graph.meta.get('dialect')}")
    return m


def counts_by_length(model: Model, xs: list, precision: str, batch: int = 50) -> np.ndarray:
    """Output spike counts per sequence for sequences of different lengths (list of (T_i, *input)):
    sequences of equal length are run together, each one from reset and only over its own steps,
    exactly as streaming that one recording would. Returns (N, n_out)."""
    out = [None] * len(xs)
    by_len: dict = {}
    for i, x in enumerate(xs):
        by_len.setdefault(len(x), []).append(i)
    for T, idx in sorted(by_len.items()):
        arr = np.stack([xs[i] for i in idx], axis=1).astype(np.float32)
        c = output_counts(model, arr, precision, batch)
        for j, i in enumerate(idx):
            out[i] = c[j]
    return np.stack(out)
