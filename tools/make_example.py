"""Train the built-in example model (edgebrain/examples/motion_snntorch.nir) with snnTorch.

3 accelerometer channels at 50 Hz → 48 LIF → 3 LIF, inputs fed as currents (no encoding),
classification by output spike count over a 1 s window. Needs the `train` extra
(torch, snntorch). Deterministic with --seed; about a minute on 2 CPU cores.

    python tools/make_example.py
"""

import argparse
from pathlib import Path

import numpy as np
import torch

import snntorch as snn
from snntorch import surrogate
from snntorch import utils as sutils
from snntorch.export_nir import export_to_nir

from edgebrain.synthetic import synthetic_motion


class Net(torch.nn.Module):
    def __init__(self, n_hidden=48):
        super().__init__()
        grad = surrogate.fast_sigmoid(slope=10)
        self.fc1 = torch.nn.Linear(3, n_hidden)
        self.lif1 = snn.Leaky(beta=torch.full((n_hidden,), 0.85), threshold=torch.ones(n_hidden),
                              learn_beta=True, spike_grad=grad, init_hidden=True)
        self.fc2 = torch.nn.Linear(n_hidden, 3)
        self.lif2 = snn.Leaky(beta=torch.full((3,), 0.9), threshold=torch.ones(3), learn_beta=True,
                              spike_grad=grad, init_hidden=True, output=True)

    def forward(self, x):
        spk, mem = self.lif2(self.fc2(self.lif1(self.fc1(x))))
        return spk


def run(net, xs):  # xs (T, B, 3) -> spike counts (B, 3)
    sutils.reset(net)
    return sum(net(x) for x in xs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "edgebrain/examples/motion_snntorch.nir"))
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    net = Net()
    opt = torch.optim.Adam(net.parameters(), lr=5e-3)
    for ep in range(a.epochs):
        labels = rng.integers(0, 3, 64)
        xs = torch.tensor(np.stack([synthetic_motion([lab], rng) for lab in labels], axis=1))
        counts = run(net, xs)
        loss = torch.nn.functional.cross_entropy(counts, torch.tensor(labels))
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            for lif in (net.lif1, net.lif2):
                lif.beta.clamp_(0.0, 0.99)
        if ep % 50 == 0 or ep == a.epochs - 1:
            acc = (counts.argmax(1).numpy() == labels).mean()
            print(f"epoch {ep}: loss {loss.item():.3f} acc {acc:.2f}")
    labels = rng.integers(0, 3, 300)
    xs = torch.tensor(np.stack([synthetic_motion([lab], rng) for lab in labels], axis=1))
    with torch.no_grad():
        acc = (run(net, xs).argmax(1).numpy() == labels).mean()
    print(f"held-out accuracy (snnTorch): {acc:.3f}")
    import nir

    graph = export_to_nir(net, torch.zeros(3))
    nir.write(a.out, graph)
    print("wrote", a.out)


if __name__ == "__main__":
    main()
