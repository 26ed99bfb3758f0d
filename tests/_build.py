"""Small models and hand-written references shared by the core tests (no torch needed)."""

from __future__ import annotations

import numpy as np

from edgebrain import ops
from edgebrain.graph import Graph
from edgebrain.model import Model


def snn_mlp(n_in=6, n_h=32, n_out=5, seed=0, scale=1.0, readout="LIF"):
    """Input → Affine → LIF → Affine → LIF/LI → Output with snnTorch-style discrete params."""
    rng = np.random.default_rng(seed)
    w1 = (rng.standard_normal((n_h, n_in)) * scale / np.sqrt(n_in)).astype(np.float32)
    b1 = (0.1 * rng.standard_normal(n_h)).astype(np.float32)
    w2 = (rng.standard_normal((n_out, n_h)) * 2.0 * scale / np.sqrt(n_h)).astype(np.float32)
    b2 = np.zeros(n_out, np.float32)
    beta1 = rng.uniform(0.5, 0.95, n_h).astype(np.float32)
    beta2 = np.full(n_out, 0.9, np.float32)
    lif = dict(reset="subtract", reset_delay=True)
    out_op = (ops.LIF(beta=beta2, threshold=np.ones(n_out, np.float32), **lif) if readout == "LIF"
              else ops.LI(beta=beta2))
    g = Graph.sequential(
        ops.Input(shape=(n_in,)), ops.Affine(weight=w1, bias=b1),
        ops.LIF(beta=beta1, threshold=np.ones(n_h, np.float32), **lif),
        ops.Affine(weight=w2, bias=b2), out_op, ops.Output(),
        names=["input", "fc1", "lif1", "fc2", "lif2", "output"])
    g.meta.update(dt=1e-4, dialect="snntorch", reset="subtract")
    return Model(g), dict(w1=w1, b1=b1, w2=w2, b2=b2, beta1=beta1, beta2=beta2)


def ref_mlp(p, xs, readout="LIF"):
    """Hand-written snnTorch Leaky equations (delayed subtractive reset), float32."""
    f = np.float32
    v1 = np.zeros_like(p["b1"])
    s1 = np.zeros_like(v1)
    v2 = np.zeros_like(p["b2"])
    s2 = np.zeros_like(v2)
    outs, spk1 = [], []
    for x in xs:
        i1 = p["w1"] @ x + p["b1"]
        v1 = p["beta1"] * v1 + i1 - s1 * f(1)
        s1 = (v1 > 1).astype(f)
        i2 = p["w2"] @ s1 + p["b2"]
        if readout == "LIF":
            v2 = p["beta2"] * v2 + i2 - s2 * f(1)
            s2 = (v2 > 1).astype(f)
            outs.append(s2)
        else:
            v2 = p["beta2"] * v2 + i2
            outs.append(v2.copy())
        spk1.append(s1)
    return np.array(outs), np.array(spk1)
