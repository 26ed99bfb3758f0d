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
