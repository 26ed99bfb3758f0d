"""NIR node types not covered by the framework exports, read from files NIR's own writer made."""

import nir
import numpy as np
import pytest

import edgebrain


def _write(tmp_path, graph, name="g.nir"):
    path = tmp_path / name
    nir.write(str(path), graph)
    return path


@pytest.mark.parametrize("padding,stride,dilation,groups", [(1, 1, 1, 1), ("same", 1, 2, 2), ("valid", 2, 1, 1)])
def test_conv1d_matches_torch(tmp_path, padding, stride, dilation, groups):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    cin, cout, k, n = 4, 6, 3, 17
    w = rng.standard_normal((cout, cin // groups, k)).astype(np.float32)
    b = rng.standard_normal(cout).astype(np.float32)
    conv = nir.Conv1d(input_shape=n, weight=w, stride=stride, padding=padding, dilation=dilation, groups=groups,
                      bias=b)
    g = nir.NIRGraph(nodes={"input": nir.Input(input_type=np.array([cin, n])), "conv": conv,
                            "output": nir.Output(output_type=np.array(conv.output_type["output"]))},
                     edges=[("input", "conv"), ("conv", "output")],
                     type_check=False)  # NIR's own check ignores groups when it infers C_in
    model = edgebrain.load(_write(tmp_path, g))
    x = rng.standard_normal((3, cin, n)).astype(np.float32)
    out, _ = model.session().run(x)
    ref = torch.nn.functional.conv1d(torch.tensor(x), torch.tensor(w), torch.tensor(b), stride=stride,
                                     padding=padding, dilation=dilation, groups=groups).numpy()
    assert out.shape == ref.shape
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)


def test_scale_threshold_delay_integrator_cubali(tmp_path):
    """Input → Scale → Delay → I (integrator) and Input → Threshold → CubaLI, both into outputs,
    NIR-dialect forward Euler with dt = 1 ms; compared with the equations written out."""
    dt, n = 1e-3, 3
    s = np.array([0.5, -1.0, 2.0], np.float32)
    th = np.array([0.0, 0.5, -0.5], np.float32)
    delay = np.array([0.0, 2e-3, 5e-3])  # 0, 2 and 5 steps
    tau_syn, tau_mem, r_cuba = np.full(n, 5e-3), np.full(n, 20e-3), np.full(n, 2.0)
    nodes = {
        "input": nir.Input(input_type=np.array([n])),
        "scale": nir.Scale(scale=s), "delay": nir.Delay(delay=delay), "integ": nir.I(r=np.full(n, 100.0)),
        "thresh": nir.Threshold(threshold=th),
        "cuba": nir.CubaLI(tau_syn=tau_syn, tau_mem=tau_mem, r=r_cuba, v_leak=np.full(n, 0.1), w_in=np.full(n, 3.0)),
        "out_i": nir.Output(output_type=np.array([n])), "out_c": nir.Output(output_type=np.array([n])),
    }
    edges = [("input", "scale"), ("scale", "delay"), ("delay", "integ"), ("integ", "out_i"),
             ("input", "thresh"), ("thresh", "cuba"), ("cuba", "out_c")]
    path = _write(tmp_path, nir.NIRGraph(nodes=nodes, edges=edges))
    model = edgebrain.load(path, dt=dt, dialect="nir")
    xs = np.random.default_rng(2).standard_normal((40, n)).astype(np.float32)
    outs, _ = model.session().run(xs)
    # hand-written references
    scaled = xs * s
    delayed = np.zeros_like(scaled)
    for j, d in enumerate((0, 2, 5)):
        delayed[d:, j] = scaled[:40 - d, j]
    integ = np.cumsum(100.0 * dt * delayed, axis=0)  # v += r·dt·x
    z = (xs > th).astype(np.float64)
    i = np.zeros(n)
    v = np.zeros(n)
    cuba = []
    for t in range(40):  # NIR forward Euler: i += dt/τs(−i + w_in z); v += dt/τm(v_leak − v + r i)
        i = i + dt / tau_syn * (-i + 3.0 * z[t])
        v = v + dt / tau_mem * (0.1 - v + r_cuba * i)
        cuba.append(v.copy())
    np.testing.assert_allclose(outs["out_i"], integ, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(outs["out_c"], np.array(cuba), rtol=1e-4, atol=1e-5)
    # and the same after a round trip through edgebrain's NIR export
    model.export_nir(tmp_path / "back.nir")
    back = edgebrain.load(tmp_path / "back.nir", dt=dt, dialect="nir")
    outs2, _ = back.session().run(xs)
    for k in outs:
        np.testing.assert_allclose(outs2[k], outs[k], rtol=1e-6, atol=1e-7)


def test_lif_with_per_channel_conv_parameters_and_reset_override(tmp_path):
    """A conv LIF population whose parameters NIR stores per channel (C, 1, 1) and per pixel."""
    rng = np.random.default_rng(3)
    dt, C, H, W = 1e-4, 2, 5, 5
    w = rng.standard_normal((C, 1, 3, 3)).astype(np.float32)
    conv = nir.Conv2d(input_shape=(H, W), weight=w, stride=1, padding=1, dilation=1, groups=1, bias=np.zeros(C))
    beta = np.array([0.8, 0.95])[:, None, None] * np.ones((C, H, W))
    tau = dt / (1 - beta)
    lif = nir.LIF(tau=tau, r=tau / dt, v_leak=np.zeros((C, H, W)), v_threshold=np.ones((C, H, W)),
                  v_reset=np.zeros((C, H, W)))
    g = nir.NIRGraph(nodes={"input": nir.Input(input_type=np.array([1, H, W])), "conv": conv, "lif": lif,
                            "output": nir.Output(output_type=np.array([C, H, W]))},
                     edges=[("input", "conv"), ("conv", "lif"), ("lif", "output")])
    path = _write(tmp_path, g)
    xs = rng.standard_normal((30, 1, H, W)).astype(np.float32)
    for reset in ("subtract", "zero"):
        model = edgebrain.load(path, reset=reset)
        assert model.graph.meta["reset"] == reset
        out, _ = model.session().run(xs)
        v = np.zeros((C, H, W))
        s = np.zeros((C, H, W))
        ref = []
        xp = np.pad(xs[:, 0], ((0, 0), (1, 1), (1, 1)))
        for t in range(30):
            cur = np.stack([sum(w[c, 0, a, b] * xp[t, a:a + H, b:b + W] for a in range(3) for b in range(3))
                            for c in range(C)])
            if reset == "subtract":  # snnTorch: subtract the threshold one step late
                v = beta * v + cur - s
            else:
                v = beta * v * (1 - s) + cur
            s = (v > 1).astype(np.float64)
            ref.append(s)
        assert 0.02 < np.mean(ref) < 0.7
        assert np.mean(out == np.array(ref)) > 0.999
