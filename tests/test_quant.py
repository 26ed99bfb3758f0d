"""Quantization: multipliers, agreement of fixed point with float, reports, saved models."""

import math

import numpy as np
import pytest

import edgebrain
from edgebrain import ops
from edgebrain.graph import Graph
from edgebrain.model import Model
from edgebrain.quant import quantize
from tests._build import snn_mlp


def _calib(seed, T=200, B=16, n=6, scale=2.0):
    return (scale * np.random.default_rng(seed).standard_normal((T, B, n))).astype(np.float32)


@pytest.mark.parametrize("state_bits", [16, 32])
def test_int8_agrees_with_float(state_bits):
    model, _ = snn_mlp(seed=21, scale=3.0)
    qm, rep = quantize(model, _calib(0), weight_bits=8, state_bits=state_bits)
    by = {lr.name: lr for lr in rep.layers}
    assert by["lif1"].spike_agreement > 0.97
    assert by["lif2"].spike_agreement > 0.9
    assert rep.output_agreement >= 0.9
    assert by["fc1"].clipped_weights == 0 and by["lif1"].saturations == 0
    # held-out data: spike counts per output close to float
    xs = _calib(1, T=300, B=1)[:, 0]
    f, frec = model.session().run(xs, record=["lif1"])
    q, qrec = qm.session("int").run(xs, record=["lif1"])
    assert np.mean(frec["spikes/lif1"] == qrec["spikes/lif1"]) > 0.97
    assert np.abs(f.sum(0) - q.sum(0)).max() <= 0.1 * f.sum(0).max() + 2
    # the membrane follows the float one (dequantized); int8 input rounding dominates the error
    err = np.abs(frec["v/lif1"] - qrec["v/lif1"])
    assert np.median(err) < 0.08
    qm16, _ = quantize(model, _calib(0), weight_bits=8, state_bits=state_bits, input_bits=16)
    _, q16 = qm16.session("int").run(xs, record=["lif1"])
    err16 = np.abs(frec["v/lif1"] - q16["v/lif1"])
    assert np.median(err16) < 0.6 * np.median(err)


def test_snntorch_style_weights_feed_state_without_multiplies():
    """With unit input gain the requantized layer output is already in state units."""
    model, _ = snn_mlp(seed=22, scale=3.0)
    qm, _ = quantize(model, _calib(2))
    q = qm.quant["nodes"]
    assert q["lif1"]["gmem_identity"] and q["lif2"]["gmem_identity"]
    assert not q["fc1"]["wide"], "int8 inputs × int8 weights over 6 inputs fit 32-bit accumulators"


def test_weight_widths_and_shift_decay_run_and_degrade_gracefully():
    model, _ = snn_mlp(seed=23, scale=3.0)
    cal = _calib(3)
    agree = {}
    for bits in (4, 8, 16):
        qm, rep = quantize(model, cal, weight_bits=bits)
        agree[bits] = {lr.name: lr.spike_agreement for lr in rep.layers}["lif1"]
        w = qm.quant["nodes"]["fc1"]["w"]
        assert np.abs(w).max() <= 2 ** (bits - 1) - 1
    assert agree[4] < agree[8] <= agree[16] + 1e-9
    qm, rep = quantize(model, cal, decay="shift")
    beta_k = qm.quant["nodes"]["lif1"]["beta_m"]
    eff = 1 - 2.0 ** -beta_k.astype(float)
    assert np.all(np.abs(eff - model.graph.nodes["lif1"].beta) <= np.maximum(0.2, 0))  # nearest power of two
    assert {lr.name: lr.spike_agreement for lr in rep.layers}["lif1"] > 0.8


def test_saturation_is_counted_and_reported():
    model, _ = snn_mlp(seed=24, scale=3.0, readout="LI")
    qm, rep = quantize(model, _calib(4, scale=0.2))  # calibrated on small inputs
    assert sum(lr.saturations for lr in rep.layers) == 0
    s = qm.session("int")
    s.run(_calib(5, B=1, scale=50.0)[:, 0])  # far beyond the calibrated range
    assert s.saturations.sum() > 0


def test_accuracy_with_labels_and_saved_model_is_bit_identical(tmp_path):
    model, _ = snn_mlp(seed=25, scale=3.0)
    cal = _calib(6, B=12)
    labels = np.argmax(model.session(batch=12).run(cal)[0].sum(0), axis=-1)  # float decisions as labels
    qm, rep = quantize(model, cal, labels=labels)
    assert rep.float_accuracy == 1.0
    assert rep.int_accuracy >= 0.8
    path = tmp_path / "q.ebm"
    qm.save(path)
    back = edgebrain.load(path)
    xs = _calib(7, B=1)[:, 0]
    a, ra = qm.session("int").run(xs, record=["lif1", "lif2"])
    b, rb = back.session("int").run(xs, record=["lif1", "lif2"])
    np.testing.assert_array_equal(a, b)
    for k in ra:
        np.testing.assert_array_equal(ra[k], rb[k])


def test_cuba_recurrent_conv_models_quantize():
    rng = np.random.default_rng(26)
    # current-based neurons with a recurrent loop
    n = 24
    g = Graph()
    g.add("input", ops.Input(shape=(5,)))
    g.add("fc", ops.Affine(weight=(rng.standard_normal((n, 5))).astype(np.float32), bias=np.zeros(n, np.float32)))
    g.add("lif", ops.CubaLIF(alpha=np.full(n, 0.8, np.float32), beta=np.full(n, 0.9, np.float32),
                             threshold=np.ones(n, np.float32), reset="subtract", reset_delay=True))
    g.add("rec", ops.Linear(weight=(0.3 * rng.standard_normal((n, n))).astype(np.float32)))
    g.add("out", ops.Affine(weight=rng.standard_normal((3, n)).astype(np.float32), bias=np.zeros(3, np.float32)))
    g.add("li", ops.LI(beta=np.full(3, 0.9, np.float32)))
    g.add("output", ops.Output())
    for e in [("input", "fc"), ("fc", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "out"), ("out", "li"),
              ("li", "output")]:
        g.connect(*e)
    m = Model(g.prepare())
    cal = (rng.standard_normal((150, 8, 5))).astype(np.float32)
    qm, rep = quantize(m, cal, state_bits=32)
    assert {lr.name: lr.spike_agreement for lr in rep.layers}["lif"] > 0.9
    f, _ = m.session().run(cal[:, 0])
    q, _ = qm.session("int").run(cal[:, 0])
    assert np.corrcoef(f.ravel(), q.ravel())[0, 1] > 0.95
    # a small spiking conv net
    g = Graph.sequential(
        ops.Input(shape=(2, 10, 10)), ops.Conv2d(weight=rng.standard_normal((4, 2, 3, 3)).astype(np.float32)),
        ops.IF(threshold=np.ones(1, np.float32)), ops.SumPool2d(kernel_size=2, stride=2), ops.Flatten(0, -1),
        ops.Linear(weight=rng.standard_normal((3, 64)).astype(np.float32)), ops.LIF(beta=np.full(3, 0.9, np.float32)),
        ops.Output())
    m = Model(g.prepare())
    cal = (rng.random((60, 6, 2, 10, 10)) < 0.2).astype(np.float32)
    qm, rep = quantize(m, cal)
    assert qm.quant["nodes"]["input"]["scale"] == 1.0, "binary event input is taken as exact integers"
    assert {lr.name: lr.spike_agreement for lr in rep.layers}["if2"] > 0.95
    assert math.isclose(qm.quant["scales"]["sumpool2d3"], 1.0)
