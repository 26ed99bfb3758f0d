#!/usr/bin/env python
"""Writes the ONNX test fixtures (tests/onnx/data/): the zoo's HAR LIF network (``zoo:har-lif``) exported
from PyTorch by ``torch.onnx.export``, as the L2MU paper's deployment path runs a model on a Raspberry Pi
with ONNX Runtime.

This runs in a tools-only environment with PyTorch (the ``train`` extra), never in edgebrain's runtime or
tests, which need only onnxruntime (the ``onnx`` extra):

    pip install torch==2.13.0 onnx onnxruntime
    python tools/onnx/make_onnx_fixtures.py [--out tests/onnx/data]

The weights are the zoo model's float graph (``Model.load("zoo:har-lif").graph``: ``fc1``, ``lif1``, ...,
``fc3``, ``lif3``, float32), so the exported files compute what edgebrain's float session computes:

* ``har_lif_step.onnx``: ONE timestep, stateful. Inputs ``x`` (1, 6) and each LIF layer's membrane
  ``mem1_in`` (1, 160), ``mem2_in`` (1, 160), ``mem3_in`` (1, 5); outputs ``spikes`` (1, 5) (the output
  layer's spikes) and the new membranes ``mem1_out``, ``mem2_out``, ``mem3_out``: the ``*_in`` / ``*_out``
  naming edgebrain pairs as state (docs/onnx.md). One layer, as snnTorch's ``Leaky`` computes it with
  ``reset_mechanism="subtract"`` and ``reset_delay=True`` (what ``zoo:har-lif`` was trained with)::

      cur   = W x + b                      (torch.nn.Linear: Gemm)
      reset = (mem_in > θ)                 (the spike of the previous step, from the membrane it left)
      mem   = β ⊙ mem_in + cur − reset ⊙ θ
      spk   = (mem > θ)

  in the order of edgebrain's float kernel (``kernels/neuron.py``: ``v = β·v + g·x + bias; v -= s·θ``; here
  g = 1 and the neuron bias 0, checked), so only the matrix products' summation order differs.
* ``har_lif_window.onnx``: stateless. Input ``x`` (1, 25, 6): a window of 25 encoded steps (0.5 s at the
  model's 50 steps/s); output ``counts`` (1, 5): the output layer's spike counts over the window, from zero
  membranes (the same timestep unrolled 25 times by the exporter, the weights shared).

Each gets a sidecar JSON (``*.onnx.json``) with the zoo model's stream settings (encoder, rate, labels;
the count decoder for the step model; 25-step windows every 12 steps for the window model), and
``models.json`` records the tool versions, each file's size and SHA-256, and how far ONNX Runtime's
outputs are from edgebrain's float session on a real recording (checked here before writing).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

WINDOW, HOP = 25, 12
LAYERS = (("fc1", "lif1"), ("fc2", "lif2"), ("fc3", "lif3"))
RECORDING = "imu/sp-sw-har/s16/s16_01_sw.csv"


def layers_of(model):
    """[(W, b, β, θ)] float32 of each Affine → LIF pair of the zoo model's float graph."""
    from edgebrain import ops

    g = model.graph
    want = ["input", *[n for pair in LAYERS for n in pair], "output"]
    if list(g.order) != want:
        raise SystemExit(f"zoo:har-lif is {g.order}; this script exports {want}")
    out = []
    for fc, lif in LAYERS:
        a, n = g.nodes[fc], g.nodes[lif]
        assert isinstance(a, ops.Affine) and type(n) is ops.LIF, (fc, lif)
        assert n.reset == "subtract" and n.reset_delay and not n.threshold_ge and not n.multispike, lif
        assert np.all(n.g_mem == 1) and np.all(n.bias == 0), f"{lif}: g_mem 1 and bias 0 expected"
        f32 = np.float32
        out.append((a.weight.astype(f32), a.bias.astype(f32), np.broadcast_to(n.beta, a.bias.shape).astype(f32),
                    np.broadcast_to(n.threshold, a.bias.shape).astype(f32)))
    return out


def modules(layers):
    import torch

    class Step(torch.nn.Module):
        """One timestep: forward(x, mem1, mem2, mem3) -> (spikes, mem1', mem2', mem3')."""

        def __init__(self):
            super().__init__()
            self.fcs = torch.nn.ModuleList()
            for k, (W, b, beta, thr) in enumerate(layers):
                fc = torch.nn.Linear(W.shape[1], W.shape[0])
                with torch.no_grad():
                    fc.weight.copy_(torch.from_numpy(W))
                    fc.bias.copy_(torch.from_numpy(b))
                self.fcs.append(fc)
                self.register_buffer(f"beta{k}", torch.from_numpy(beta.copy()))
                self.register_buffer(f"thr{k}", torch.from_numpy(thr.copy()))

        def forward(self, x, *mems):
            h, new = x, []
            for k, fc in enumerate(self.fcs):
                beta, thr = getattr(self, f"beta{k}"), getattr(self, f"thr{k}")
                reset = (mems[k] > thr).to(x.dtype)
                mem = beta * mems[k] + fc(h) - reset * thr
                h = (mem > thr).to(x.dtype)
                new.append(mem)
            return (h, *new)

    class Window(torch.nn.Module):
        """forward(x (1, T, 6)) -> the output spike counts (1, 5) over the T steps, from zero membranes."""

        def __init__(self, step):
            super().__init__()
            self.step = step

        def forward(self, x):
            mems = [torch.zeros(1, W.shape[0]) for W, *_ in layers]
            counts = torch.zeros(1, layers[-1][0].shape[0])
            for t in range(x.shape[1]):
                s, *mems = self.step(x[:, t], *mems)
                counts = counts + s
            return counts

    step = Step().eval()
    return step, Window(step).eval()


def export(net, args, path: Path, names_in, names_out):
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(net, args, str(path), dynamo=False, input_names=names_in, output_names=names_out,
                          opset_version=17, do_constant_folding=True)


def check(step_path: Path, window_path: Path, model, xs) -> dict:
    """ONNX Runtime against edgebrain's float session on the encoded recording ``xs``."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = so.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(step_path), so, providers=["CPUExecutionProvider"])
    names = ["lif1", "lif2", "lif3"]
    y_eb, rec = model.session("float").run(xs, record=names)
    feeds = {f"mem{k + 1}_in": np.zeros((1, n), np.float32) for k, n in enumerate((160, 160, 5))}
    ys, vs = [], [[] for _ in names]
    for x in xs:
        feeds["x"] = x[None]
        o = sess.run(None, feeds)
        ys.append(o[0][0])
        for k in range(3):
            feeds[f"mem{k + 1}_in"] = o[k + 1]
            vs[k].append(o[k + 1][0])
    ys = np.stack(ys)
    dv = {n: float(np.abs(np.stack(v) - rec[f"v/{n}"]).max()) for n, v in zip(names, vs)}
    sp = {n: int((np.stack(v) > 0).sum()) for n, v in zip(names, vs)}  # (a sanity figure, not spikes)
    win = ort.InferenceSession(str(window_path), so, providers=["CPUExecutionProvider"])
    s = model.session("float")
    agree = 0
    starts = range(0, len(xs) - WINDOW + 1, HOP)
    for a in starts:
        s.reset()
        counts = s.run(xs[a:a + WINDOW])[0].sum(0)
        got = win.run(None, {"x": xs[None, a:a + WINDOW]})[0][0]
        agree += int(np.array_equal(got, counts))
    return {"recording": RECORDING, "steps": len(xs),
            "output_spikes_identical_steps": int((ys == y_eb).all(1).sum()),
            "max_abs_membrane_difference": dv, "positive_membranes": sp,
            "window_counts_identical": f"{agree} of {len(starts)} windows"}


def sidecars(cfg: dict) -> tuple[dict, dict]:
    base = {"encoder": cfg["encoder"], "rate": cfg["rate"], "labels": cfg["labels"]}
    step = {**base, "decoder": cfg["decoder"]}
    window = {**base, "hop": HOP, "output": "logits"}
    return step, window


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(REPO / "tests" / "onnx" / "data"))
    ap.add_argument("--data", default=None, help="datasets folder (default: as the tests find it)")
    a = ap.parse_args(argv)
    import onnx
    import onnxruntime
    import torch

    from edgebrain.model import Model
    from edgebrain.stream.pipeline import encode_file
    from tests.conftest import find_datasets

    torch.set_num_threads(1)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    model = Model.load("zoo:har-lif")
    layers = layers_of(model)
    step, window = modules(layers)
    sizes = [W.shape[0] for W, *_ in layers]
    step_path, window_path = out / "har_lif_step.onnx", out / "har_lif_window.onnx"
    export(step, (torch.zeros(1, 6), *[torch.zeros(1, n) for n in sizes]), step_path,
           ["x", "mem1_in", "mem2_in", "mem3_in"], ["spikes", "mem1_out", "mem2_out", "mem3_out"])
    export(window, (torch.zeros(1, WINDOW, 6),), window_path, ["x"], ["counts"])
    for p in (step_path, window_path):
        onnx.checker.check_model(onnx.load(str(p)))
    cfg = model.graph.meta["stream"]
    for p, side in zip((step_path, window_path), sidecars(cfg)):
        Path(str(p) + ".json").write_text(json.dumps(side, indent=1) + "\n")
    root = Path(a.data) if a.data else find_datasets()[0]
    xs = encode_file(root / RECORDING, cfg["encoder"], float(cfg["rate"]), model.input_shape)[0]
    facts = {"tools": {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__,
                       "exporter": "torch.onnx.export(dynamo=False, opset_version=17)"},
             "source_model": {"zoo": "har-lif", "sha256": hashlib.sha256(Path(model.path).read_bytes()).hexdigest()},
             "files": {p.name: {"bytes": p.stat().st_size, "sha256": hashlib.sha256(p.read_bytes()).hexdigest()}
                       for p in (step_path, window_path)},
             "check": check(step_path, window_path, model, xs)}
    (out / "models.json").write_text(json.dumps(facts, indent=1) + "\n")
    print(json.dumps(facts, indent=1))


if __name__ == "__main__":
    main()
