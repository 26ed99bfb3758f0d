"""The fixed-point contract (edgebrain.qparams): multipliers, the parameter schema, its checks."""

import numpy as np
import pytest

from edgebrain import ops, qparams
from edgebrain.errors import ModelError
from edgebrain.quant import quantize
from edgebrain.quant import to_multiplier as quant_to_multiplier
from tests._build import snn_mlp


@pytest.mark.parametrize("M", [1.0, 0.5, 3.7e-5, 0.999999, 123.456, 1e-9, -0.25, 2.0 ** 20 + 0.5])
def test_to_multiplier_is_accurate(M):
    m, s = qparams.to_multiplier(M)
    assert 0 <= s <= 62 and abs(m) < 2 ** 31
    assert m / 2 ** s == pytest.approx(M, rel=2 ** -29)
    if M == 1.0:
        assert (m, s) == (1, 0)


def test_old_import_path_still_works():
    assert quant_to_multiplier is qparams.to_multiplier


def test_storage_widths():
    assert qparams.state_dtype(16) == np.int16 and qparams.state_dtype(32) == np.int32
    assert qparams.weight_dtype(4) == np.int8 and qparams.weight_dtype(8) == np.int8
    assert qparams.weight_dtype(16) == np.int16


def test_is_num():
    assert qparams.is_num(1) and qparams.is_num(2.5)
    assert not any(qparams.is_num(v) for v in (True, float("nan"), float("inf"), "1", None))


def test_schema_lists_what_the_quantizer_writes():
    model, _ = snn_mlp(seed=3)
    qm, _ = quantize(model, np.random.default_rng(0).standard_normal((50, 4, 6)).astype(np.float32))
    g = qm.graph
    for name in g.order:
        op = g.nodes[name]
        fields = qparams.node_fields(op, g.in_shapes.get(name))
        assert bool(fields) == isinstance(op, qparams.QUANTIZED_OPS)
        q = qm.quant["nodes"].get(name, {})
        assert {f.key for f in fields if not f.optional} <= set(q), name
    lif = qparams.node_fields(g.nodes["lif1"], g.in_shapes["lif1"])
    assert [f.key for f in lif][:3] == ["s_v", "dq", "decay"]
    assert {"thr", "v_reset"} <= {f.key for f in lif} and "alpha_m" not in {f.key for f in lif}
    qparams.check_quant(g, qm.quant)  # what the quantizer writes passes


def test_check_quant_names_the_bad_field():
    model, _ = snn_mlp(seed=3)
    qm, _ = quantize(model, np.random.default_rng(0).standard_normal((50, 4, 6)).astype(np.float32))
    q = qm.quant
    q["nodes"]["lif1"]["decay"] = "cube"
    with pytest.raises(ModelError, match=r"node 'lif1' \(LIF\): field 'decay' = 'cube'; expected 'mul' or 'shift'"):
        qparams.check_quant(qm.graph, q)
    q["nodes"]["lif1"]["decay"] = "mul"
    q["nodes"]["fc1"]["rq_m"] = np.zeros(3, np.int32)
    with pytest.raises(ModelError, match=r"field 'rq_m' has shape \(3,\); expected \(32,\)"):
        qparams.check_quant(qm.graph, q)
    assert qparams.node_fields(ops.Flatten(), (3,)) == []


@pytest.fixture(scope="module")
def qmodel():
    model, _ = snn_mlp(seed=3)
    qm, _ = quantize(model, np.random.default_rng(0).standard_normal((50, 4, 6)).astype(np.float32))
    return qm


def _with(quant, node, key, value):
    q = {**quant, "nodes": {**quant["nodes"], node: {**quant["nodes"][node], key: value}}}
    return q


# (node, field, value, what the message must say): values the kernels cannot use (issue 11, item 11).
# Shifts outside [0, 62] and dq outside [0, 30] are undefined or overflow in the kernels' int64
# arithmetic; state-range fields outside int16 would wrap when stored in int16 state.
OUT_OF_RANGE = [
    ("lif1", "gmem_s", np.array([-7], np.int32), "holds -7"),
    ("lif1", "gmem_s", np.array([63], np.int32), "holds 63"),
    ("lif1", "gmem_s", np.array([200], np.int32), "holds 200"),
    ("fc1", "rq_s", np.full(32, 63, np.int32), "'rq_s' holds 63"),
    ("fc1", "rq_s", np.full(32, -1, np.int32), "'rq_s' holds -1"),
    ("lif1", "dq", -2 ** 31, "'dq' = -2147483648; expected an integer from 0 to 30"),
    ("lif1", "dq", 2 ** 31 - 1, "'dq' = 2147483647; expected an integer from 0 to 30"),
    ("lif1", "dq", 31, "'dq' = 31"),
    ("lif1", "beta_m", np.array([2 ** 15 + 1], np.int32), "'beta_m' holds 32769"),
    ("lif1", "beta_m", np.array([-1], np.int32), "'beta_m' holds -1"),
    ("lif1", "v_reset", np.array([40000], np.int32), "'v_reset' holds 40000 (at index (0,)); expected values from -32768 to 32767"),
    ("lif1", "thr", np.array([-40000], np.int32), "'thr' holds -40000"),
    ("fc1", "w", None, "'w' holds 200"),
    ("fc1", "rq_m", np.full(32, -2 ** 31, np.int64), "'rq_m' holds -2147483648"),
    ("fc1", "b", np.full(32, 2 ** 40, np.int64), "'b' holds 1099511627776"),
    ("input", "scale", 1e-300, "'scale' = 1e-300; expected a number from 1e-37 to 1e+37"),
]


@pytest.mark.parametrize("node,key,value,must", OUT_OF_RANGE, ids=[f"{n}.{k}-{i}" for i, (n, k, _, m) in
                                                                    enumerate(OUT_OF_RANGE)])
def test_check_quant_range_checks_every_integer_field(qmodel, node, key, value, must):
    if value is None:  # a weight outside int8 (weight_bits 8), still stored as int16
        value = qmodel.quant["nodes"]["fc1"]["w"].astype(np.int16)
        value[0, 0] = 200
    with pytest.raises(ModelError) as ei:
        qparams.check_quant(qmodel.graph, _with(qmodel.quant, node, key, value))
    assert f"node '{node}'" in str(ei.value) and must in str(ei.value), str(ei.value)


def test_check_quant_shift_decay_takes_shift_amounts(qmodel):
    q = _with(qmodel.quant, "lif1", "decay", "shift")
    q = _with(q, "lif1", "beta_m", np.full(32, 62, np.int32))
    qparams.check_quant(qmodel.graph, q)  # a shift of 62 is a decay of 1 - 2**-62: valid
    with pytest.raises(ModelError, match=r"'beta_m' holds 63 .*expected values from 0 to 62"):
        qparams.check_quant(qmodel.graph, _with(q, "lif1", "beta_m", np.full(32, 63, np.int32)))


def test_check_quant_input_range_must_not_be_empty(qmodel):
    q = _with(_with(qmodel.quant, "input", "lo", 5), "input", "hi", -5)
    with pytest.raises(ModelError, match=r"node 'input' \(Input\): fields 'lo' = 5 and 'hi' = -5; expected lo <= hi"):
        qparams.check_quant(qmodel.graph, q)
    qparams.check_quant(qmodel.graph, _with(_with(qmodel.quant, "input", "lo", 0), "input", "hi", 0))


def test_multispike_threshold_must_be_at_least_one():
    op = ops.LIF(beta=np.full(3, 0.9, np.float32), threshold=np.ones(3, np.float32), multispike=True,
                 max_spikes=4)
    thr = next(f for f in qparams.node_fields(op, (3,), {"state_bits": 16}, {"dq": 15}) if f.key == "thr")
    assert thr.range == (1, 2 ** 15 - 1)


def _overflowing_sum_model():
    """Input(600) → Linear(600 → 1, all weights equal) → Output, at 16-bit input: a full-scale
    input sums to 600 · 127 · 32767 ≈ 2.5·10⁹, past what a 32-bit accumulator holds."""
    from edgebrain.graph import Graph
    from edgebrain.model import Model

    g = Graph.sequential(ops.Input(shape=(600,)), ops.Linear(weight=np.full((1, 600), 0.01, np.float32)),
                         ops.Output(), names=["input", "fc", "output"])
    g.meta.update(dt=1e-3)
    qm, _ = quantize(Model(g), np.full((4, 2, 600), 0.5, np.float32), input_bits=16)
    return qm


def test_accumulator_width_is_derived_not_trusted_from_the_file(tmp_path):
    """Issue 11 (found by review): the builder took a node's 'wide' flag from the file, so a
    hand-made file saying false for a sum that can reach 2³¹ made the 32-bit accumulator wrap
    (a negative output for a positive sum, silently). The width is now derived from the weights
    and the input's range; the file can only ask for more."""
    from edgebrain.model import Model

    qm = _overflowing_sum_model()
    q = qm.quant["nodes"]["fc"]
    assert q["wide"] and set(np.unique(q["w"])) == {127}
    q["wide"] = False  # what a hand-made or edited file may say
    p = tmp_path / "narrow.ebm"
    qm.save(str(p))
    m = Model.load(str(p))
    assert m.quant["nodes"]["fc"]["wide"] is False  # the file says narrow ...
    y, _ = m.session("int").run(np.full((3, 600), 0.5, np.float32))
    y = np.asarray(y["output"] if isinstance(y, dict) else y).reshape(-1)
    assert np.all(y > 0), "a 32-bit accumulator wrapped to a negative sum"
    np.testing.assert_allclose(y, 600 * 0.01 * 0.5, rtol=1e-3)  # ... and the sum is still right
    b = qparams.value_bounds(m.graph, m.quant)
    assert b["input"] == 32767 and qparams.needs_wide(q["w"], None, b["input"])
    assert not qparams.needs_wide(q["w"][:, :500], None, 32767)  # 500 · 127 · 32767 < 2³¹
