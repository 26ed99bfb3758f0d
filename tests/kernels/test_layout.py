"""The instruction row layout (edgebrain.kernels.layout) and the per-family lowering registry."""

import numpy as np
import pytest

from edgebrain import ops, program
from edgebrain.kernels import engine as E
from edgebrain.kernels import layout as L


def test_columns_are_named_once_and_fit_the_row():
    opcodes = {v for k, v in vars(L).items() if k.startswith("OP_")}
    assert opcodes == set(L.FIELDS)
    for op, names in L.FIELDS.items():
        assert len(set(names)) == len(names)
        assert len(L.HEADER) + len(names) <= L.WIDTH
    # the executor's constants are the layout's (same objects, one definition)
    assert (E.OP_DENSE, E.DENSE_W, E.NEURON_HI) == (L.OP_DENSE, L.DENSE_W, L.NEURON_HI)
    assert L.FIELDS[L.OP_DENSE][L.DENSE_W - len(L.HEADER)] == "w_off"
    assert L.FIELDS[L.OP_CONV][L.CONV_CO - len(L.HEADER)] == "co"
    assert L.FIELDS[L.OP_POOL][L.POOL_FACTOR - len(L.HEADER)] == "factor_off"


def test_row_places_fields_by_name():
    r = L.row(L.OP_DELAY, 1, 2, 3, 4, ring_len=7, ring_off=5)
    assert len(r) == L.WIDTH
    assert r[:5] == [L.OP_DELAY, 1, 2, 3, 4]
    assert (r[L.DELAY_RING], r[L.DELAY_STEPS], r[L.DELAY_RING_LEN]) == (5, 0, 7)
    with pytest.raises(ValueError):
        L.row(L.OP_DELAY, 0, 0, 0, 0, no_such_column=1)


def test_every_computing_op_kind_has_a_lowering():
    plumbing = {"Input", "Output", "Flatten"}  # handled by program.build itself
    for kind, cls in ops.OPS.items():
        if kind in plumbing:
            continue
        assert any(c.__dict__.get("kind") in program.LOWERING for c in cls.__mro__), kind


def test_program_rows_are_int64_and_full_width():
    from tests._build import snn_mlp

    model, _ = snn_mlp()
    p = model.program("float")
    assert p.prog.dtype == np.int64 and p.prog.shape[1] == L.WIDTH
    assert [int(r[L.OP]) for r in p.prog] == [L.OP_INPUT, L.OP_DENSE, L.OP_NEURON, L.OP_DENSE, L.OP_NEURON,
                                             L.OP_OUTPUT]
