"""Graph semantics: scheduling, recurrence, sums, delays, nested NIR graphs, sessions."""

import nir
import numpy as np
import pytest

import edgebrain
from edgebrain import ops
from edgebrain.errors import InputError, ModelError
from edgebrain.graph import Graph
from edgebrain.model import Model
from tests._build import ref_mlp, snn_mlp


def test_feedforward_matches_hand_written_equations():
    model, p = snn_mlp(seed=1, scale=3.0)
    xs = np.random.default_rng(2).standard_normal((300, 6)).astype(np.float32)
    out, rec = model.session().run(xs, record=["lif1"])
    ref_out, ref_s1 = ref_mlp(p, xs)
    assert 0.03 < ref_s1.mean() < 0.6, "the test input must make the hidden layer spike"
    assert np.mean(rec["spikes/lif1"] == ref_s1) > 0.999
    assert np.mean(out == ref_out) > 0.999


def test_li_readout_membrane_matches_reference():
    model, p = snn_mlp(seed=3, scale=3.0, readout="LI")
    xs = np.random.default_rng(4).standard_normal((200, 6)).astype(np.float32)
    out, _ = model.session().run(xs)
    ref_out, _ = ref_mlp(p, xs, readout="LI")
    np.testing.assert_allclose(out, ref_out, rtol=1e-4, atol=1e-4)


def test_step_equals_run_and_snapshot_restore_reset():
    model, _ = snn_mlp(seed=5, scale=3.0)
    xs = np.random.default_rng(6).standard_normal((120, 6)).astype(np.float32)
    ref, _ = model.session().run(xs)
    s = model.session()
    stepped = np.array([s.step(x).copy() for x in xs[:60]])
    snap = s.snapshot()
    rest = np.array([s.step(x).copy() for x in xs[60:]])
    np.testing.assert_array_equal(np.concatenate([stepped, rest]), ref)
    s.restore(snap)
    again = np.array([s.step(x).copy() for x in xs[60:]])
    np.testing.assert_array_equal(again, rest)
    s.reset()
    np.testing.assert_array_equal(np.array([s.step(x).copy() for x in xs[:60]]), stepped)


@pytest.mark.parametrize("precision", ["float", "int"])
def test_monitoring_a_session_through_its_public_views(precision):
    """spiking_nodes / output_buffer / output_size: what a stream pipeline reads after each step."""
    from edgebrain.quant import quantize

    model, _ = snn_mlp(seed=5, scale=3.0)
    xs = np.random.default_rng(6).standard_normal((50, 6)).astype(np.float32)
    if precision == "int":
        model, _ = quantize(model, xs[:, None])
    s = model.session(precision)
    assert s.spiking_nodes == ["lif1", "lif2"] and s.output_size == 5
    view = s.output_buffer("lif1")
    _, rec = model.session(precision).run(xs, record=["lif1"])
    for t, x in enumerate(xs):
        s.step(x)
        np.testing.assert_array_equal(view[0], rec["spikes/lif1"][t])  # spike counts, live, both precisions
    with pytest.raises(InputError, match="no node named 'nope'"):
        s.output_buffer("nope")


def test_batch_equals_separate_runs():
    model, _ = snn_mlp(seed=7, scale=3.0)
    xs = np.random.default_rng(8).standard_normal((80, 3, 6)).astype(np.float32)
    batched, rec = model.session(batch=3).run(xs, record=["lif1"])
    assert batched.shape == (80, 3, 5) and rec["v/lif1"].shape == (80, 3, 32)
    for b in range(3):
        single, _ = model.session().run(xs[:, b])
        np.testing.assert_array_equal(batched[:, b], single)
    # step with a batch dimension
    s = model.session(batch=3)
    np.testing.assert_array_equal(np.array([s.step(x).copy() for x in xs]), batched)


def _recurrent_graph(w_in, w_rec, b_rec, beta, thr=1.0):
    n = w_rec.shape[0]
    g = Graph()
    g.add("input", ops.Input(shape=(w_in.shape[1],)))
    g.add("fc", ops.Linear(weight=w_in))
    g.add("lif", ops.LIF(beta=beta, threshold=np.full(n, thr, np.float32), reset="subtract", reset_delay=True))
    g.add("w_rec", ops.Affine(weight=w_rec, bias=b_rec))
    g.add("output", ops.Output())
    for e in [("input", "fc"), ("fc", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")]:
        g.connect(*e)
    return g.prepare()


def test_recurrent_loop_delays_the_back_edge_like_rleaky():
    rng = np.random.default_rng(9)
    n, k = 16, 4
    w_in = rng.standard_normal((n, k)).astype(np.float32)
    w_rec = (0.5 * rng.standard_normal((n, n))).astype(np.float32)
    b_rec = (0.2 * rng.standard_normal(n)).astype(np.float32)
    beta = np.full(n, 0.8, np.float32)
    g = _recurrent_graph(w_in, w_rec, b_rec, beta)
    # the recurrent weights run before the neurons and read the previous step's spikes
    assert g.order.index("w_rec") < g.order.index("lif")
    assert ("lif", "w_rec") in g.delayed_edges
    xs = rng.standard_normal((150, k)).astype(np.float32)
    out, _ = Model(g).session().run(xs)
    # snnTorch RLeaky: mem = beta*mem + W_in x + (W_rec s[t-1] + b) - s[t-1]*thr; bias enters at t = 0 too
    v = np.zeros(n, np.float32)
    s = np.zeros(n, np.float32)
    ref = []
    for x in xs:
        v = beta * v + (w_in @ x) + (w_rec @ s + b_rec) - s
        s = (v > 1).astype(np.float32)
        ref.append(s)
    ref = np.array(ref)
    assert 0.05 < ref.mean() < 0.7
    assert np.mean(out == ref) > 0.999


def test_algebraic_loop_is_rejected():
    g = Graph()
    g.add("input", ops.Input(shape=(3,)))
    g.add("a", ops.Linear(weight=np.eye(3, dtype=np.float32)))
    g.add("b", ops.Linear(weight=np.eye(3, dtype=np.float32)))
    g.add("output", ops.Output())
    for e in [("input", "a"), ("a", "b"), ("b", "a"), ("b", "output")]:
        g.connect(*e)
    with pytest.raises(ModelError, match="loop"):
        g.prepare()


def _loop_through(node):
    g = Graph()
    g.add("input", ops.Input(shape=(2,)))
    g.add("a", ops.Scale(scale=np.ones(2, np.float32)))
    g.add("via", node)
    g.add("output", ops.Output())
    for e in [("input", "a"), ("a", "via"), ("via", "a"), ("via", "output")]:
        g.connect(*e)
    return g


@pytest.mark.parametrize("steps", [[0, 0], [0, 2], [0]])
def test_loop_through_a_zero_length_delay_is_rejected_like_one_through_scale(steps):
    """A Delay of 0 steps passes its input through within the step: a loop through it is as
    algebraic as one through Scale (issue 11, item 10), even when only some elements are 0."""
    with pytest.raises(ModelError, match="loop") as via_scale:
        _loop_through(ops.Scale(scale=np.ones(2, np.float32))).prepare()
    with pytest.raises(ModelError, match="loop") as via_delay:
        _loop_through(ops.Delay(steps=np.array(steps, np.int32))).prepare()
    assert "Delay" in str(via_delay.value) and "0 steps" in str(via_delay.value), str(via_delay.value)
    assert "loop without a neuron" in str(via_scale.value)


def test_loop_through_a_delay_of_one_step_or_more_runs():
    g = _loop_through(ops.Delay(steps=np.array([1, 2], np.int32))).prepare()
    out, _ = Model(g).session().run(np.ones((6, 2), np.float32))
    assert np.all(np.isfinite(out)) and out.shape == (6, 2)


def test_shape_mismatch_and_missing_node_are_reported():
    g = Graph.sequential(ops.Input(shape=(4,)), ops.Linear(weight=np.ones((3, 5), np.float32)), ops.Output())
    with pytest.raises(ModelError, match=r"linear1.*input shape \(4,\)"):
        g.prepare()
    g = Graph.sequential(ops.Input(shape=(4,)), ops.Output())
    g.connect("ghost", "output")
    with pytest.raises(ModelError, match="'ghost' does not exist"):
        g.prepare()


def test_fan_in_sums_inputs_and_delay_shifts_them():
    g = Graph()
    g.add("input", ops.Input(shape=(3,)))
    g.add("s1", ops.Scale(scale=np.array([1.0, 2.0, 3.0], np.float32)))
    g.add("s2", ops.Scale(scale=np.array([10.0, 10.0, 10.0], np.float32)))
    g.add("d", ops.Delay(steps=np.array([0, 1, 3], np.int32)))
    g.add("output", ops.Output())
    for e in [("input", "s1"), ("input", "s2"), ("s1", "d"), ("s2", "d"), ("d", "output")]:
        g.connect(*e)
    xs = np.arange(1, 31, dtype=np.float32).reshape(10, 3)
    out, _ = Model(g).session().run(xs)
    summed = xs * np.array([11, 12, 13], np.float32)
    expect = np.zeros_like(summed)
    for j, d in enumerate([0, 1, 3]):
        expect[d:, j] = summed[:10 - d, j]
    np.testing.assert_array_equal(out, expect)


def test_threshold_is_strict():
    g = Graph.sequential(ops.Input(shape=(3,)), ops.Threshold(threshold=np.array([0.5, 1.0, -1.0], np.float32)),
                         ops.Output())
    out, _ = Model(g.prepare()).session().run(np.array([[0.5, 1.5, -1.0], [0.6, 1.0, -0.5]], np.float32))
    np.testing.assert_array_equal(out, [[0, 1, 0], [1, 0, 1]])


def test_conv_pool_flatten_against_numpy():
    rng = np.random.default_rng(11)
    w = rng.standard_normal((4, 2, 3, 3)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    g = Graph.sequential(ops.Input(shape=(2, 9, 8)),
                         ops.Conv2d(weight=w, bias=b, stride=(2, 1), padding=(1, 1, 0, 0), dilation=(1, 2)),
                         ops.AvgPool2d(kernel_size=(2, 2), stride=(2, 2)), ops.Flatten(0, -1), ops.Output())
    g.prepare()
    x = (rng.random((1, 2, 9, 8)) < 0.15).astype(np.float32)  # sparse: the event-driven path
    xd = rng.standard_normal((1, 2, 9, 8)).astype(np.float32)  # dense path
    for inp in (x, xd):
        out, _ = Model(g).session().run(inp)
        xp = np.pad(inp[0], ((0, 0), (1, 1), (0, 0)))
        Ho, Wo = (9 + 2 - 3) // 2 + 1, (8 - 2 * 2 - 1) // 1 + 1
        conv = np.zeros((4, Ho, Wo))
        for co in range(4):
            for i in range(Ho):
                for j in range(Wo):
                    patch = xp[:, 2 * i:2 * i + 3, j:j + 5:2]
                    conv[co, i, j] = b[co] + np.sum(patch * w[co])
        pooled = conv[:, :Ho // 2 * 2, :Wo // 2 * 2].reshape(4, Ho // 2, 2, Wo // 2, 2).mean(axis=(2, 4))
        np.testing.assert_allclose(out[0], pooled.reshape(-1), rtol=1e-5, atol=1e-5)


def test_nested_nir_subgraph_is_flattened(tmp_path):
    rng = np.random.default_rng(12)
    n, dt = 8, 1e-4
    beta = np.full(n, 0.9)
    tau = dt / (1 - beta)
    lif = nir.LIF(tau=tau, r=tau / dt, v_leak=np.zeros(n), v_threshold=np.ones(n), v_reset=np.zeros(n))
    w_rec = (0.3 * rng.standard_normal((n, n))).astype(np.float32)
    inner = nir.NIRGraph(nodes={"input": nir.Input(input_type=np.array([n])), "lif": lif,
                                "w_rec": nir.Linear(weight=w_rec), "output": nir.Output(output_type=np.array([n]))},
                         edges=[("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")])
    w_in = rng.standard_normal((n, 3)).astype(np.float32)
    top = nir.NIRGraph(nodes={"input": nir.Input(input_type=np.array([3])), "fc": nir.Linear(weight=w_in),
                              "rlif": inner, "output": nir.Output(output_type=np.array([n]))},
                       edges=[("input", "fc"), ("fc", "rlif"), ("rlif", "output")])
    path = tmp_path / "nested.nir"
    nir.write(str(path), top)
    model = edgebrain.load(path)
    assert "rlif.lif" in model.graph.nodes and "rlif.w_rec" in model.graph.nodes
    assert "rlif.input" not in model.graph.nodes
    assert model.graph.meta["dialect"] == "snntorch" and model.graph.meta["dt"] == pytest.approx(1e-4)
    xs = rng.standard_normal((100, 3)).astype(np.float32)
    out, _ = model.session().run(xs)
    v = np.zeros(n, np.float32)
    s = np.zeros(n, np.float32)
    ref = []
    for x in xs:
        v = np.float32(0.9) * v + w_in @ x + w_rec @ s - s
        s = (v > 1).astype(np.float32)
        ref.append(s)
    assert np.mean(out == np.array(ref)) > 0.999


def test_nir_export_round_trip(tmp_path):
    model, _ = snn_mlp(seed=13, scale=3.0)
    path = tmp_path / "rt.nir"
    model.export_nir(path)
    back = edgebrain.load(path)
    assert back.graph.meta["dialect"] == "snntorch"
    assert back.graph.meta["dt"] == pytest.approx(1e-4)
    for name in ("lif1", "lif2"):
        np.testing.assert_allclose(back.graph.nodes[name].beta, model.graph.nodes[name].beta, rtol=1e-6)
    xs = np.random.default_rng(14).standard_normal((100, 6)).astype(np.float32)
    np.testing.assert_array_equal(back.session().run(xs)[0], model.session().run(xs)[0])
    g2 = nir.read(str(path))  # NIR's own reader accepts what we wrote
    assert {type(n).__name__ for n in g2.nodes.values()} >= {"Affine", "LIF", "Input", "Output"}


def test_bad_step_input_leaves_state_unchanged():
    model, _ = snn_mlp(seed=15, scale=3.0)
    s = model.session()
    s.step(np.ones(6, np.float32))
    before = s.snapshot()
    with pytest.raises(InputError, match="NaN"):
        s.step(np.array([1, 2, np.nan, 4, 5, 6], np.float32))
    with pytest.raises(InputError, match="shape"):
        s.step(np.ones(7, np.float32))
    after = s.snapshot()
    for k in before:
        np.testing.assert_array_equal(before[k], after[k])
