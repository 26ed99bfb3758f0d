"""Whole integer networks composed by hand from tests/reference/intref.py and the quantizer's
integer parameters, without edgebrain's program layout: the reference that
tests/test_network_int.py (Numba) and tests/firmware/test_csession.py (the C runtime) check
against, and the recurrent network both use."""

import numpy as np

from edgebrain import ops
from edgebrain.graph import Graph
from tests.reference import intref as R


def neuron_config(op, q, state_bits):
    return R.NeuronConfig(
        cuba=op.cuba, spiking=op.spiking, subtract=op.spiking and op.reset == "subtract",
        reset_delay=op.spiking and op.reset_delay, current_lag=op.cuba and op.current_lag,
        threshold_ge=op.spiking and op.threshold_ge, multispike=op.spiking and op.multispike,
        max_spikes=op.max_spikes if op.spiking and op.multispike else 1, shift_decay=q["decay"] == "shift",
        gsyn_identity=bool(q.get("gsyn_identity")), gmem_identity=bool(q.get("gmem_identity")), dq=int(q["dq"]),
        state_bits=state_bits)


def neuron_params(q, n):
    return {k: [int(v) for v in np.broadcast_to(np.asarray(q[k]), (n,))] if k in q else [0] * n for k in R.PARAMS}


class RefNeuron:
    def __init__(self, op, q, n, state_bits):
        self.cfg, self.p = neuron_config(op, q, state_bits), neuron_params(q, n)
        self.v, self.i, self.out = [0] * n, [0] * n, [0] * n

    def step(self, x):
        self.v, self.i, self.out, _ = R.neuron_step(self.cfg, x, self.v, self.i, self.out, self.p)
        return self.out


def dense(q, x):
    W = np.asarray(q["w"]).astype(np.int64)
    b = np.asarray(q["b"]) if "b" in q else None
    return R.dense(x, W, b, [int(v) for v in q["rq_m"]], [int(v) for v in q["rq_s"]], bool(q["identity"]))


def quantize_input(qi, x):
    return [R.quantize_input(v, np.float32(1.0 / qi["scale"]), qi["lo"], qi["hi"])[0] for v in x]


def recurrent_cuba_graph(rng, n=20):
    """Input(4) → Affine → CubaLIF (per-neuron g_mem, current lag) with a recurrent Affine back
    edge → Linear → LI(3): a saturating sum of two edges and a one-step delay."""
    g = Graph()
    g.add("input", ops.Input(shape=(4,)))
    g.add("fc", ops.Affine(weight=rng.standard_normal((n, 4)).astype(np.float32),
                           bias=(0.1 * rng.standard_normal(n)).astype(np.float32)))
    g.add("lif", ops.CubaLIF(alpha=rng.uniform(0.5, 0.9, n).astype(np.float32),
                             beta=rng.uniform(0.7, 0.95, n).astype(np.float32),
                             g_mem=rng.uniform(0.3, 0.6, n).astype(np.float32),
                             threshold=np.ones(n, np.float32), reset="subtract", current_lag=True))
    g.add("rec", ops.Affine(weight=(0.4 * rng.standard_normal((n, n))).astype(np.float32),
                            bias=(0.05 * rng.standard_normal(n)).astype(np.float32)))
    g.add("ro", ops.Linear(weight=rng.standard_normal((3, n)).astype(np.float32)))
    g.add("li", ops.LI(beta=np.full(3, 0.8, np.float32)))
    g.add("output", ops.Output())
    for e in [("input", "fc"), ("fc", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "ro"), ("ro", "li"),
              ("li", "output")]:
        g.connect(*e)
    return g
