"""Whole fixed-point networks against the pure-Python reference, bit for bit.

The kernel tests check each integer kernel alone; here the executor's wiring is checked too:
input quantization, saturating sums of several edges, the one-step delay of recurrent edges
(the recurrent weights read the previous step's spikes), output dequantization. The
reference (tests/reference/intnet.py) composes tests/reference/intref.py by hand from the quantizer's integer
parameters, without using edgebrain's program layout.
"""

import numpy as np
import pytest

from edgebrain.model import Model
from edgebrain.quant import quantize
from tests._build import snn_mlp
from tests.reference import intref as R
from tests.reference.intnet import RefNeuron, recurrent_cuba_graph
from tests.reference.intnet import dense as _dense
from tests.reference.intnet import quantize_input as _input


@pytest.mark.parametrize("state_bits,decay", [(16, "mul"), (32, "mul"), (16, "shift")])
def test_feedforward_network_is_bit_exact(state_bits, decay):
    model, _ = snn_mlp(seed=41, scale=3.0)
    rng = np.random.default_rng(42)
    qm, _ = quantize(model, (2 * rng.standard_normal((100, 8, 6))).astype(np.float32), state_bits=state_bits,
                     decay=decay)
    q, g = qm.quant["nodes"], qm.graph
    xs = (2.5 * rng.standard_normal((120, 6))).astype(np.float32)
    xs[5] = 1e6  # far outside the calibrated range: the input saturates
    out, rec = qm.session("int").run(xs, record=["lif1", "lif2"])
    lif1 = RefNeuron(g.nodes["lif1"], q["lif1"], 32, state_bits)
    lif2 = RefNeuron(g.nodes["lif2"], q["lif2"], 5, state_bits)
    s = qm.session("int")
    for t, x in enumerate(xs):
        s1 = lif1.step(_dense(q["fc1"], _input(q["input"], x)))
        s2 = lif2.step(_dense(q["fc2"], s1))
        assert rec["spikes/lif1"][t].tolist() == s1, t
        assert out[t].tolist() == s2, t
        s.step(x)
        raw = s.raw_state("lif1")["v"][0]
        assert raw.tolist() == lif1.v, t
    assert 0.05 < np.mean(rec["spikes/lif1"]) < 0.7


def test_recurrent_current_based_network_is_bit_exact():
    rng = np.random.default_rng(43)
    n = 20
    g = recurrent_cuba_graph(rng, n)
    m = Model(g.prepare())
    qm, _ = quantize(m, rng.standard_normal((150, 6, 4)).astype(np.float32), state_bits=32)
    q = qm.quant["nodes"]
    assert not q["lif"]["gmem_identity"]  # per-neuron g_mem needs the gain multiplier
    xs = rng.standard_normal((150, 4)).astype(np.float32)
    out, rec = qm.session("int").run(xs, record=["lif", "li"])
    lif = RefNeuron(g.nodes["lif"], q["lif"], n, 32)
    li = RefNeuron(g.nodes["li"], q["li"], 3, 32)
    spikes = [0] * n
    out_scale = qm.quant["scales"]["li"]
    for t, x in enumerate(xs):
        rec_in = _dense(q["rec"], spikes)  # recurrent weights see the previous step's spikes
        summed = R.add_sat(_dense(q["fc"], _input(q["input"], x)), rec_in)
        spikes = lif.step(summed)
        v_li = li.step(_dense(q["ro"], spikes))
        assert rec["spikes/lif"][t].tolist() == spikes, t
        np.testing.assert_array_equal(out[t], np.float32(np.array(v_li, np.float64)) * np.float32(out_scale))
    assert 0.05 < np.mean(rec["spikes/lif"]) < 0.7
