"""The C runtime's fast paths against its portable ones, bit for bit.

A dense or conv row whose wide flag is 0 sums in int32 (the builder proved the sum fits), and a
neuron row flagged NARROW runs an int32 loop (kernels/neuron.narrow_ok proved it exact): both are
hints that cannot change a result. Here every program is run twice through the C runtime, once as
built and once with the hints taken away (wide = 1 everywhere, NARROW and SIMPLE cleared: the int64
paths, the contract's arithmetic), and every output, state value, activation and saturation count
must agree. The input quantization's branch-free clamp is checked at its edges against Numba and
tests/reference/intref.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from edgebrain.kernels import layout as L
from edgebrain.kernels import neuron as N
from edgebrain.program import Pack, Program, aligned_empty
from edgebrain.session import Session
from tests.firmware import cases
from tests.reference import intref as R


def _csession(program):
    from edgebrain.csession import CSession

    return CSession(program)


def portable(prog: Program) -> Program:
    """``prog`` with the fast-path hints taken away: int64 accumulators, the general neuron loop."""
    p = prog.prog.copy()
    p[p[:, L.OP] == L.OP_DENSE, L.DENSE_WIDE] = 1
    p[p[:, L.OP] == L.OP_CONV, L.CONV_WIDE] = 1
    neu = p[:, L.OP] == L.OP_NEURON
    p[neu, L.NEURON_FLAGS] &= ~(N.NARROW | N.SIMPLE)
    return type(prog)(**{**prog.__dict__, "prog": p})


def hints(prog: Program) -> tuple[int, int]:
    """(narrow dense/conv rows, NARROW neuron rows) of ``prog``."""
    p = prog.prog
    narrow = int(((p[:, L.OP] == L.OP_DENSE) & (p[:, L.DENSE_WIDE] == 0)).sum()
                 + ((p[:, L.OP] == L.OP_CONV) & (p[:, L.CONV_WIDE] == 0)).sum())
    return narrow, int(((p[:, L.OP] == L.OP_NEURON) & ((p[:, L.NEURON_FLAGS] & N.NARROW) != 0)).sum())


def assert_fast_is_portable(prog: Program, xs, name: str) -> None:
    fast, ref = _csession(prog), _csession(portable(prog))
    a, _ = fast.run(xs)
    b, _ = ref.run(xs)
    for k in (a if isinstance(a, dict) else {"": a}):
        np.testing.assert_array_equal(a[k] if k else a, b[k] if k else b, err_msg=f"{name}: output {k}")
    np.testing.assert_array_equal(fast.state, ref.state, err_msg=f"{name}: state")
    np.testing.assert_array_equal(fast.act, ref.act, err_msg=f"{name}: activations")
    np.testing.assert_array_equal(fast.saturations, ref.saturations, err_msg=f"{name}: saturation counters")


def test_narrow_neurons_equal_the_general_loop(clib):
    """Every flag combination at 16-bit state, parameters at the contract's limits, inputs far
    beyond the state range and beyond int32."""
    narrow = 0
    for name, prog, xs, _ in cases.neuron_programs(16):
        narrow += hints(prog)[1]
        assert_fast_is_portable(prog, xs, name)
    assert narrow > 20


def test_narrow_accumulators_equal_int64_ones(clib):
    """Random networks (dense, conv 1-D and 2-D, pooling) at every weight and state width."""
    seen = np.zeros(2, int)
    for name, prog, xs in cases.networks():
        seen += hints(prog)
        assert_fast_is_portable(prog, xs, name)
    assert seen.min() > 0


@pytest.mark.parametrize("name", list(cases.ZOO))
def test_zoo_fast_paths_equal_portable_ones(clib, datasets, name):
    got = cases.zoo_input(name, datasets)
    if got is None:
        pytest.skip(f"recordings {cases.ZOO[name][0]} not all found under {datasets}")
    model, xs = got
    prog = model.program("int")
    assert sum(hints(prog)) > 0
    assert_fast_is_portable(prog, xs, name)


def _input_program(n: int, inv: float, lo: int, hi: int) -> Program:
    fp = Pack(np.float32)
    fp.add(np.zeros(1))
    inv_off, one = fp.add([inv]), fp.add([1.0])
    rows = [L.row(L.OP_INPUT, 0, n, 0, n, inv_scale_off=inv_off, lo=lo, hi=hi),
            L.row(L.OP_OUTPUT, 0, n, 0, 0, column=0, scale_off=one)]
    return Program(precision="int", prog=np.array(rows, np.int64), fpar=fp.array(), ipar=Pack(np.int32).array(),
                   wbuf=aligned_empty((1,), np.int8), act_size=n, state_size=1, state_dtype=np.dtype(np.int16),
                   act_dtype=np.dtype(np.int32), acc_size=1, idx_size=1, input_name="input", input_shape=(n,),
                   outputs={"q": (0, n, (n,))}, n_out=n, instr_node=["input", "q"], state_regions={})


@pytest.mark.parametrize("lo,hi", [(-127, 127), (0, 3), (-(2 ** 31), 2 ** 31 - 1), (-32768, 32767), (5, 5)])
def test_input_quantization_at_its_edges(clib, lo, hi):
    """The clamp and floor at every edge: ties, just inside and outside lo and hi (and hi + 1),
    -0.0, values beyond int32 and beyond float32 after the scale (x·inv = inf)."""
    edges = []
    for b in (lo, hi, hi + 1, 0):
        edges += [b - 0.5, b + 0.5, b - 0.25, b + 0.25, b, b - 1, b + 1, np.nextafter(np.float32(b - 0.5), -1e30),
                  np.nextafter(np.float32(b - 0.5), 1e30)]
    edges += [-0.0, 1e-30, -1e-30, 3e9, -3e9, 1e30, -1e30, 3.4e38, -3.4e38, 8388607.5, -8388608.5, 2 ** 31, -(2 ** 31)]
    for inv in (1.0, 0.37, 3.0, 1e10):
        xs = np.array(edges, np.float32)
        prog = _input_program(len(xs), inv, lo, hi)
        c = _csession(prog)
        got, _ = c.run(xs[None])
        s = Session(prog)
        want, _ = s.run(xs[None])
        np.testing.assert_array_equal(got, want, err_msg=f"inv {inv}")
        ref = [R.quantize_input(v, np.float32(inv), lo, hi) for v in xs]
        np.testing.assert_array_equal(c.act[:len(xs)], [q for q, _ in ref], err_msg=f"inv {inv}")
        assert int(c.saturations[0]) == sum(k for _, k in ref) == int(s.saturations[0])


# ---------------------------------------------------------------------- the host build


def test_the_host_library_is_tuned_for_this_cpu_and_keyed_by_it(monkeypatch):
    from edgebrain import cbuild
    from tests.firmware.conftest import need_compiler

    cmd = need_compiler()
    assert cbuild.NATIVE in cbuild.CFLAGS
    key = cbuild.build_key(cmd)
    monkeypatch.setattr(cbuild, "cpu_id", lambda: "another cpu")
    assert cbuild.build_key(cmd) != key  # a cache shared with another machine: another library


def test_a_compiler_refusing_march_native_builds_without_it(monkeypatch, tmp_path):
    from edgebrain import cbuild
    from tests.firmware.conftest import need_compiler

    need_compiler()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(cbuild, "NATIVE", "-march=no-such-cpu-xyz")  # refused as an old clang refuses native
    lib = cbuild.library(tuple(cbuild.NATIVE if f == "-march=native" else f for f in cbuild.CFLAGS))
    assert lib.is_file()
