"""The C runtime against the Numba integer session and the pure-Python reference, bit for bit:
every output of every step, the final state and activations, and every saturation counter.

Cases (tests/firmware/cases.py): every neuron flag combination at both state widths; random
networks covering every op at every weight width, state width and decay; the networks of
tests/test_network_int.py against tests/reference/intref.py; every zoo model on a real recording.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from edgebrain import blob
from edgebrain.errors import InputError
from edgebrain.kernels import layout as L
from edgebrain.kernels import neuron as N
from edgebrain.session import Session
from tests.conftest import REPO
from tests.firmware import cases
from tests.reference import intref as R
from tests.reference.intnet import (
    RefNeuron,
    dense,
    quantize_input,
    recurrent_cuba_graph,
)


def _csession(program):
    from edgebrain.csession import CSession

    return CSession(program)


def assert_same_run(program, xs, name=""):
    """Run ``xs`` on both runtimes from reset; every output, the state, activations and saturation
    counters must be identical. Returns the Numba session (for further checks)."""
    s = Session(program)
    ref, _ = s.run(xs)
    c = _csession(program)
    out, rec = c.run(xs)
    assert rec == {}
    if isinstance(ref, dict):
        assert list(out) == list(ref), name
        for k in ref:
            np.testing.assert_array_equal(out[k], ref[k], err_msg=f"{name}: output {k}")
            assert out[k].dtype == ref[k].dtype == np.float32
    else:
        np.testing.assert_array_equal(out, ref, err_msg=f"{name}: outputs")
    np.testing.assert_array_equal(c.state, s.state[0], err_msg=f"{name}: final state")
    assert c.state.dtype == s.state.dtype
    np.testing.assert_array_equal(c.act, s.act[0], err_msg=f"{name}: final activations")
    np.testing.assert_array_equal(c.saturations, s.saturations, err_msg=f"{name}: saturation counters")
    assert c.clock == int(s.clock[0]) == len(xs)
    return s


# ---------------------------------------------------------------------- every neuron flag combination


def _ref_config(q, state_bits):
    f = q["flags"]
    return R.NeuronConfig(
        cuba=bool(f & N.CUBA), spiking=bool(f & N.SPIKING), subtract=bool(f & N.SUBTRACT),
        reset_delay=bool(f & N.RESET_DELAY), current_lag=bool(f & N.CURRENT_LAG),
        threshold_ge=bool(f & N.THRESHOLD_GE), multispike=bool(f & N.MULTISPIKE), max_spikes=q["max_spikes"],
        shift_decay=bool(f & N.SHIFT_DECAY), gsyn_identity=bool(f & N.GSYN_IDENTITY),
        gmem_identity=bool(f & N.GMEM_IDENTITY), dq=q["dq"], state_bits=state_bits)


@pytest.mark.parametrize("state_bits", [16, 32])
def test_every_neuron_flag_combination_matches_numba_and_the_reference(clib, state_bits):
    seen, narrow, sat_rows = set(), 0, 0
    for name, prog, xs, params in cases.neuron_programs(state_bits):
        s = assert_same_run(prog, xs, name)
        # step by step against tests/reference/intref.py: exact integers every step
        c = _csession(prog)
        n = prog.input_shape[0]
        cfgs = [_ref_config(q, state_bits) for q in params]
        pars = [{k: [int(v) for v in q[k]] for k in R.PARAMS} for q in params]
        v = [[0] * n for _ in params]
        i = [[0] * n for _ in params]
        out = [[0] * n for _ in params]
        nsat = [0] * len(params)
        in_sat = 0
        for t, x in enumerate(xs):
            qx = [R.quantize_input(val, np.float32(1.0), -(2 ** 31), 2 ** 31 - 1) for val in x]
            in_sat += sum(clamped for _, clamped in qx)
            xq = [q for q, _ in qx]
            c.step(x)
            assert c.act[:n].tolist() == xq, (name, t)
            for k, q in enumerate(params):
                v[k], i[k], out[k], ns = R.neuron_step(cfgs[k], xq, v[k], i[k], out[k], pars[k])
                nsat[k] += ns
                o, so = q["out_off"], q["state_off"]
                assert c.act[o:o + n].tolist() == out[k], (name, t, k, q["flags"])
                assert c.state[so:so + n].tolist() == v[k], (name, t, k, q["flags"])
                if cfgs[k].cuba:
                    assert c.state[so + n:so + 2 * n].tolist() == i[k], (name, t, k, q["flags"])
        assert c.saturations.tolist() == [in_sat] + nsat + [0] * len(params), name
        assert in_sat > 0
        seen.update(q["flags"] & sum(cases.SEMANTIC_FLAGS) for q in params)
        narrow += sum(bool(q["flags"] & N.NARROW) for q in params)
        sat_rows += sum(x > 0 for x in nsat)
        assert s.saturations.sum() > 0
    assert seen == set(cases.all_flag_combinations())
    assert sat_rows > len(seen) // 4  # the membrane or the current saturated in many rows
    if state_bits == 16:
        assert narrow > 20  # Numba's int32 fast path was taken by some rows, and agreed


# ---------------------------------------------------------------------- random networks


@pytest.mark.parametrize("graph", list(cases.GRAPHS))
def test_random_networks_match_numba(clib, graph):
    ops_seen, wide, wdt, sdt, sats = set(), set(), set(), set(), 0
    for name, prog, xs in cases.networks(graphs=[graph]):
        s = assert_same_run(prog, xs, name)
        p = prog.prog
        ops_seen.update(int(o) for o in p[:, L.OP])
        wide.update(int(w) for w in p[p[:, L.OP] == L.OP_DENSE, L.DENSE_WIDE])
        wide.update(int(w) for w in p[p[:, L.OP] == L.OP_CONV, L.CONV_WIDE])
        wdt.add(prog.wbuf.dtype.itemsize)
        sdt.add(prog.state_dtype.itemsize)
        sats += int(s.saturations[0] > 0)  # the 1e9 step clamps the input
    assert wdt == {1, 2} and sdt == {2, 4}
    assert sats == len(cases.WIDTHS)
    want = {"mlp": {L.OP_INPUT, L.OP_COPY, L.OP_ADD, L.OP_DENSE, L.OP_NEURON, L.OP_DELAY, L.OP_SCALE,
                    L.OP_THRESHOLD, L.OP_OUTPUT},
            "conv2d": {L.OP_INPUT, L.OP_CONV, L.OP_POOL, L.OP_NEURON, L.OP_DENSE, L.OP_OUTPUT},
            "conv1d": {L.OP_INPUT, L.OP_CONV, L.OP_NEURON, L.OP_DENSE, L.OP_OUTPUT}}[graph]
    assert want <= ops_seen


def test_accumulator_widths_are_both_covered(clib):
    """int32 and int64 accumulators (the row's wide flag) both appear among the random networks."""
    wide = set()
    for name, prog, _ in cases.networks():
        p = prog.prog
        for op, col in ((L.OP_DENSE, L.DENSE_WIDE), (L.OP_CONV, L.CONV_WIDE)):
            wide.update(int(w) for w in p[p[:, L.OP] == op, col])
    assert wide == {0, 1}


# ---------------------------------------------------------------------- the reference's networks


@pytest.mark.parametrize("state_bits,decay", [(16, "mul"), (32, "mul"), (16, "shift")])
def test_feedforward_network_matches_the_reference(clib, state_bits, decay):
    """tests/test_network_int.py's feed-forward network: C against intref.py composed by hand."""
    from edgebrain.quant import quantize
    from tests._build import snn_mlp

    model, _ = snn_mlp(seed=41, scale=3.0)
    rng = np.random.default_rng(42)
    qm, _ = quantize(model, (2 * rng.standard_normal((100, 8, 6))).astype(np.float32), state_bits=state_bits,
                     decay=decay)
    q, g = qm.quant["nodes"], qm.graph
    xs = (2.5 * rng.standard_normal((120, 6))).astype(np.float32)
    xs[5] = 1e6  # the input saturates
    prog = qm.program("int")
    s = assert_same_run(prog, xs, "snn_mlp")
    assert s.saturations[0] > 0
    c = _csession(prog)
    lif1 = RefNeuron(g.nodes["lif1"], q["lif1"], 32, state_bits)
    lif2 = RefNeuron(g.nodes["lif2"], q["lif2"], 5, state_bits)
    v1 = prog.state_regions["lif1"][0]
    for t, x in enumerate(xs):
        s2 = lif2.step(dense(q["fc2"], lif1.step(dense(q["fc1"], quantize_input(q["input"], x)))))
        assert c.step(x).tolist() == s2, t
        assert c.state[v1.off:v1.off + v1.n].tolist() == lif1.v, t


def test_recurrent_current_based_network_matches_the_reference(clib):
    """tests/test_network_int.py's recurrent CubaLIF network (saturating sum of two edges, the
    one-step delay of the back edge, output dequantization): C against intref.py."""
    from edgebrain.model import Model
    from edgebrain.quant import quantize

    rng = np.random.default_rng(43)
    n = 20
    g = recurrent_cuba_graph(rng, n)
    qm, _ = quantize(Model(g.prepare()), rng.standard_normal((150, 6, 4)).astype(np.float32), state_bits=32)
    q = qm.quant["nodes"]
    xs = rng.standard_normal((150, 4)).astype(np.float32)
    prog = qm.program("int")
    assert_same_run(prog, xs, "recurrent")
    c = _csession(prog)
    lif = RefNeuron(g.nodes["lif"], q["lif"], n, 32)
    li = RefNeuron(g.nodes["li"], q["li"], 3, 32)
    spikes = [0] * n
    out_scale = np.float32(qm.quant["scales"]["li"])
    total = 0
    for t, x in enumerate(xs):
        summed = R.add_sat(dense(q["fc"], quantize_input(q["input"], x)), dense(q["rec"], spikes))
        spikes = lif.step(summed)
        total += sum(spikes)
        v_li = li.step(dense(q["ro"], spikes))
        np.testing.assert_array_equal(c.step(x), np.float32(np.array(v_li, np.float64)) * out_scale, err_msg=str(t))
    assert total > 0


# ---------------------------------------------------------------------- the zoo on real recordings


@pytest.mark.parametrize("name", list(cases.ZOO))
def test_zoo_model_on_a_real_recording(clib, datasets, name):
    got = cases.zoo_input(name, datasets)
    if got is None:
        pytest.skip(f"recordings {cases.ZOO[name][0]} not all found under {datasets}")
    model, xs = got
    assert len(xs) >= 50
    s = assert_same_run(model.program("int"), xs, name)
    # and step by step, as a stream would drive it
    c = _csession(model.program("int"))
    ref, _ = Session(model.program("int")).run(xs[:20])
    for t in range(20):
        np.testing.assert_array_equal(c.step(xs[t]), ref[t])
    assert s.clock[0] == len(xs)


# ---------------------------------------------------------------------- the session itself


def _small_program():
    from edgebrain.quant import quantize
    from tests._build import snn_mlp

    model, _ = snn_mlp(seed=3)
    qm, _ = quantize(model, np.random.default_rng(0).standard_normal((50, 6)).astype(np.float32))
    return qm.program("int")


def test_step_reset_and_bad_inputs(clib):
    prog = _small_program()
    xs = np.random.default_rng(1).standard_normal((30, 6)).astype(np.float32) * 3
    c = _csession(blob.pack(prog))
    ys = np.array([c.step(x).copy() for x in xs])
    ref, _ = Session(prog).run(xs)
    np.testing.assert_array_equal(ys, ref)
    state = c.state.copy()
    with pytest.raises(InputError, match="step 30 contains NaN or infinite.*not taken"):
        c.step(np.array([0, 0, np.nan, 0, 0, 0], np.float32))
    np.testing.assert_array_equal(c.state, state)
    assert c.clock == 30
    with pytest.raises(InputError, match=r"shape \(5,\); expected \(6,\)"):
        c.step(np.zeros(5, np.float32))
    with pytest.raises(InputError, match="NaN or infinite"):
        c.run(np.full((3, 6), np.inf, np.float32))
    with pytest.raises(InputError, match="expected"):
        c.run(np.zeros((3, 5), np.float32))
    c.reset()
    assert c.clock == 0 and not c.state.any() and not c.act.any() and not c.saturations.any()
    out, _ = c.run(xs.astype(np.float64))  # any numeric dtype, converted as Session does
    np.testing.assert_array_equal(out, ref)


def test_importing_and_running_the_c_session_loads_no_numba(clib, tmp_path):
    """A process that loads a blob and runs it through the C session imports neither Numba nor
    llvmlite (checked in sys.modules of a fresh interpreter)."""
    prog = _small_program()
    f = tmp_path / "m.blob"
    f.write_bytes(blob.pack(prog))
    xs = np.random.default_rng(2).standard_normal((10, 6)).astype(np.float32)
    np.save(tmp_path / "xs.npy", xs)
    code = ("import sys, numpy as np\n"
            "from edgebrain.csession import CSession\n"
            f"s = CSession(open({str(f)!r}, 'rb').read())\n"
            f"y, _ = s.run(np.load({str(tmp_path / 'xs.npy')!r}))\n"
            f"np.save({str(tmp_path / 'y.npy')!r}, y)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('numba', 'llvmlite')))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"
    ref, _ = Session(prog).run(xs)
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), ref)
