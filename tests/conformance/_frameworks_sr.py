"""Sinabs and Rockpool networks, their native runs and edgebrain's, for the conformance tests.

Each network is built with the framework's own layers and random parameters, exported with the
framework's own NIR exporter (``sinabs.nir.to_nir`` / ``rockpool.nn.modules.torch.nir.to_nir``),
written with ``nir.write`` and imported by edgebrain. Weights lie on a 2^-8 grid (``conftest.dyadic``) so
that, with inputs on that grid or integer event counts, every synaptic sum is exact in float32 whatever
the summation order (MKL's in torch, edgebrain's row loop). The only remaining source of rounding
differences is then the decay factors: torch evaluates ``exp(-dt / tau)`` with a vectorised float32
exp that is one ulp away from the correctly rounded value (which edgebrain uses) for about 1 % of the
neurons. :func:`param_mismatches` counts those, and a test demands 100 % identical spikes exactly
when no parameter differs.

Framework imports happen inside the functions, so that this module loads when only one of the two
frameworks is installed.

Exporter facts this module works around (Sinabs 3.1.3, Rockpool 3.1.0, nir 1.0.8, nirtorch 2.6):

* ``sinabs.nir.to_nir`` writes LIF with ``tau`` of the ``tau_mem`` shape but ``v_threshold`` of the
  ``spike_threshold`` shape: a per-neuron tau with the default scalar threshold fails ``nir.LIF``'s
  check ("AssertionError: All parameters must have the same shape"). The networks here give every
  LIF a per-neuron threshold.
* ``sinabs.nir.to_nir`` leaves ``Conv2d.input_shape`` and the input/output types of Conv2d,
  SumPool2d and Flatten as None, and ``nir.write`` then fails with "TypeError: One of data, shape or
  dtype must be specified"; NIR's own ``NIRGraph.infer_types()`` fills them in before writing.
* ``rockpool ... to_nir`` writes ExpSynTorch's ``tau`` without ``detach()``, so ``nir.write`` fails
  with "RuntimeError: Can't call numpy() on Tensor that requires grad" unless the parameters are
  frozen first (:func:`freeze`), which changes no value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tests.conftest import dyadic

N_IN = 6  # IMU channels


# --------------------------------------------------------------------------- helpers


def _t(a):
    import torch

    return torch.as_tensor(np.asarray(a, np.float32))


def _dyadic_uniform(g, shape, lo, hi):
    return _t(dyadic(g.uniform(lo, hi, shape)))


def set_weights(layer, g, w_scale, b_scale=0.0):
    """Random weight (and bias, if the layer has one) on the 2^-8 grid (torch.nn layers)."""
    import torch

    with torch.no_grad():
        layer.weight.copy_(_t(dyadic(g.normal(0.0, w_scale, tuple(layer.weight.shape)))))
        if getattr(layer, "bias", None) is not None:
            layer.bias.copy_(_t(dyadic(g.normal(0.0, b_scale, tuple(layer.bias.shape)))))
    return layer


def freeze(module):
    """requires_grad=False on every torch parameter (Rockpool overrides ``parameters()``)."""
    import torch

    for p in torch.nn.Module.parameters(module):
        p.requires_grad_(False)
    return module


def write_nir(graph, path: Path) -> Path:
    import nir

    nir.write(path, graph)
    return path


@dataclass
class Net:
    """A framework network and what the tests need to know about it."""

    name: str
    module: object
    spiking: list  # names of the spiking layers (= NIR / edgebrain node names)
    readout: str | None = None  # name of a non-spiking leaky readout (LI), if any
    path: Path | None = None  # the exported NIR file
    meta: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- Sinabs

SINABS_NETS = ("dense_lif", "dense_iaf", "dense_expleak", "conv")


def build_sinabs(name: str, seed: int = 0, reset: str = "subtract") -> tuple[Net, object]:
    """(Net, sample input for the exporter).

    dense_*: plain LIF/IAF/ExpLeak layers on (batch, time, channels); the exporter's sample is
    (1, 1, 6), and nirtorch drops only the batch axis, so the NIR input is (1, 6) (time axis of
    length 1). conv: *Squeeze layers with batch_size=1 on (batch·time, C, H, W), sample (1, 2, 34, 34).
    reset: 'subtract' (MembraneSubtract, Sinabs' default) or 'zero' (MembraneReset()).
    """
    import torch
    import sinabs.layers as sl
    from sinabs.activation import MembraneReset, MembraneSubtract

    g = np.random.default_rng(seed)
    torch.manual_seed(seed)
    rf = MembraneReset() if reset == "zero" else MembraneSubtract()
    lin = torch.nn.Linear
    if name == "dense_lif":
        n1, n2 = 32, 10
        net = torch.nn.Sequential(
            set_weights(lin(N_IN, n1), g, 0.9, 0.1),
            sl.LIF(tau_mem=_t(g.uniform(2.0, 20.0, n1)), spike_threshold=_dyadic_uniform(g, n1, 0.15, 0.4),
                   reset_fn=rf),
            set_weights(lin(n1, n2, bias=False), g, 0.5),
            sl.IAF(spike_threshold=torch.tensor(1.0), reset_fn=rf))
        return Net(name, net, ["1", "3"]), torch.zeros(1, 1, N_IN)
    if name == "dense_lif_scalar_threshold":  # per-neuron tau, Sinabs' default scalar threshold
        net = torch.nn.Sequential(
            set_weights(lin(N_IN, 32), g, 0.9, 0.1),
            sl.LIF(tau_mem=_t(g.uniform(2.0, 20.0, 32)), spike_threshold=torch.tensor(0.25), reset_fn=rf),
            set_weights(lin(32, 10, bias=False), g, 0.5),
            sl.IAF(spike_threshold=torch.tensor(1.0), reset_fn=rf))
        return Net(name, net, ["1", "3"]), torch.zeros(1, 1, N_IN)
    if name == "dense_iaf":
        n1, n2 = 32, 10
        net = torch.nn.Sequential(
            set_weights(lin(N_IN, n1), g, 1.0, 0.4),
            sl.IAF(spike_threshold=torch.tensor(1.0), reset_fn=rf),
            set_weights(lin(n1, n2), g, 0.5, 0.05),
            sl.IAF(spike_threshold=torch.tensor(1.0), reset_fn=rf))
        return Net(name, net, ["1", "3"]), torch.zeros(1, 1, N_IN)
    if name == "dense_expleak":
        n1, n2 = 32, 4
        net = torch.nn.Sequential(
            set_weights(lin(N_IN, n1), g, 1.0, 0.4),
            sl.IAF(spike_threshold=torch.tensor(1.0), reset_fn=rf),
            set_weights(lin(n1, n2), g, 0.5, 0.05),
            sl.ExpLeak(tau_mem=_t(g.uniform(3.0, 30.0, n2))))
        return Net(name, net, ["1"], readout="3"), torch.zeros(1, 1, N_IN)
    if name == "conv":
        c = 8
        net = torch.nn.Sequential(
            set_weights(torch.nn.Conv2d(2, c, 3), g, 0.8, 0.05),
            sl.IAFSqueeze(batch_size=1, spike_threshold=torch.tensor(1.0), reset_fn=rf),
            sl.SumPool2d(2),
            torch.nn.Flatten(),
            set_weights(lin(c * 16 * 16, 10), g, 0.08, 0.05),
            sl.IAFSqueeze(batch_size=1, spike_threshold=torch.tensor(1.0), reset_fn=rf))
        return Net(name, net, ["1", "5"]), torch.zeros(1, 2, 34, 34)
    raise KeyError(name)


def export_sinabs(name: str, directory: Path, reset: str = "subtract") -> Net:
    from sinabs.nir import to_nir

    net, sample = build_sinabs(name, reset=reset)
    graph = to_nir(net.module, sample)
    # Conv2d.input_shape and the Conv/SumPool2d/Flatten types are left None, which nir.write cannot store
    # (TypeError: One of data, shape or dtype must be specified); NIR's own inference fills them in
    if any(v is None for n in graph.nodes.values() for v in n.input_type.values()):
        graph.infer_types()
    net.path = write_nir(graph, Path(directory) / f"sinabs_{name}_{reset}.nir")
    return net


def _sinabs_reset(module):
    for m in module.modules():
        if hasattr(m, "reset_states"):
            m.reset_states()


def run_sinabs(net: Net, xs: np.ndarray) -> dict[str, np.ndarray]:
    """Run the Sinabs network on xs (T, *input) (time-major, as edgebrain): the output of every spiking
    layer and of the readout, shape (T, *neurons) with neurons as in the NIR file, and the membrane
    of every spiking layer after each step ("v/<layer>")."""
    import torch

    seq = net.module
    _sinabs_reset(seq)
    conv = net.name == "conv"
    x = torch.from_numpy(np.ascontiguousarray(xs, np.float32))
    x = x if conv else x.reshape(1, xs.shape[0], -1)  # (T, C, H, W) = (batch·time, ...) or (1, T, C)
    out = {}
    for name in net.spiking:
        seq.get_submodule(name).record_states = True
    with torch.no_grad():
        for name, m in seq.named_children():
            x = m(x)
            if name in net.spiking or name == net.readout:
                y = x.numpy().copy()
                out[name] = y if conv else y[0][:, None, :]  # (T, 1, N): the file's (1, N) neurons
            if name in net.spiking:  # membrane after the reset, (batch, T, ...)
                out["v/" + name] = m.recordings["v_mem"].numpy()[0].reshape(out[name].shape).copy()
    _sinabs_reset(seq)
    return out


def sinabs_decays(net: Net) -> dict[str, dict[str, np.ndarray]]:
    """The float32 per-step constants Sinabs uses, per layer: what edgebrain's op should hold."""
    import torch

    out = {}
    for name, m in net.module.named_children():
        if hasattr(m, "tau_mem") and m.tau_mem is not None:
            a = m.alpha_mem_calculated.detach()
            d = {"beta": a.numpy()}
            d["g_mem"] = (1 - a).numpy() if m.norm_input else torch.ones_like(a).numpy()
            out[name] = d
    return out


# --------------------------------------------------------------------------- Rockpool

ROCKPOOL_NETS = ("lif_chain", "lif_readout")


def build_rockpool(name: str, seed: int = 0, frozen: bool = True) -> Net:
    """lif_chain: Linear → LIFTorch → Linear(+bias) → LIFNeuronTorch → Linear → LIFTorch, dt = 1 ms.
    lif_readout: Linear → LIFTorch → Linear → ExpSynTorch (LI readout), dt = 0.5 ms."""
    import torch
    from rockpool.nn.combinators import Sequential
    from rockpool.nn.modules import ExpSynTorch, LIFNeuronTorch, LIFTorch, LinearTorch

    g = np.random.default_rng(seed)
    torch.manual_seed(seed)

    def lin(n_in, n_out, scale, bias=False, b_scale=0.0):
        m = LinearTorch((n_in, n_out), has_bias=bias)
        with torch.no_grad():
            m.weight.copy_(_t(dyadic(g.normal(0.0, scale, (n_in, n_out)))))
            if bias:
                m.bias.copy_(_t(dyadic(g.normal(0.0, b_scale, n_out))))
        return m

    if name == "lif_chain":
        dt = 1e-3
        n1, n2, n3 = 32, 24, 10
        net = Sequential(
            lin(N_IN, n1, 0.07),
            LIFTorch(n1, tau_mem=g.uniform(0.005, 0.05, n1), tau_syn=g.uniform(0.002, 0.02, (n1, 1)),
                     threshold=_dyadic_uniform(g, n1, 0.5, 1.5), dt=dt),
            lin(n1, n2, 0.25, bias=True, b_scale=0.02),
            LIFNeuronTorch(n2, tau_mem=g.uniform(0.005, 0.05, n2), threshold=_dyadic_uniform(g, n2, 0.5, 1.5),
                           dt=dt),
            lin(n2, n3, 0.045),
            LIFTorch(n3, tau_mem=0.02, tau_syn=0.01, dt=dt))
        return Net(name, freeze(net) if frozen else net, ["1_LIFTorch", "3_LIFNeuronTorch", "5_LIFTorch"],
                   meta={"dt": dt})
    if name == "lif_readout":
        dt = 5e-4
        n1, n2 = 32, 4
        net = Sequential(
            lin(N_IN, n1, 0.045),
            LIFTorch(n1, tau_mem=g.uniform(0.005, 0.05, n1), tau_syn=g.uniform(0.002, 0.02, (n1, 1)),
                     threshold=_dyadic_uniform(g, n1, 0.5, 1.5), dt=dt),
            lin(n1, n2, 0.5),
            ExpSynTorch(n2, tau=g.uniform(0.005, 0.03, n2), dt=dt))
        return Net(name, freeze(net) if frozen else net, ["1_LIFTorch"], readout="3_ExpSynTorch",
                   meta={"dt": dt})
    raise KeyError(name)


def export_rockpool(name: str, directory: Path, frozen: bool = True) -> Net:
    from rockpool.nn.modules.torch.nir import to_nir

    net = build_rockpool(name, frozen=frozen)
    graph = to_nir(net.module)  # default sample: zeros((1, size_in)) -> NIR input shape (1, 6)
    net.path = write_nir(graph, Path(directory) / f"rockpool_{name}{'' if frozen else '_trainable'}.nir")
    return net


def run_rockpool(net: Net, xs: np.ndarray) -> dict[str, np.ndarray]:
    """Run the Rockpool network on xs (T, 6): spikes of every spiking layer and the readout, (T, 1, N),
    and the membrane of every spiking layer after each step ("v/<layer>")."""
    import torch

    seq = net.module
    seq.reset_state()
    x = torch.from_numpy(np.ascontiguousarray(xs, np.float32)).reshape(1, xs.shape[0], -1)
    with torch.no_grad():
        _, _, rec = seq(x, record=True)
    seq.reset_state()
    out = {}
    for name in net.spiking + ([net.readout] if net.readout else []):
        out[name] = rec[f"{name}_output"].detach().numpy()[0][:, None, :].copy()
    for name in net.spiking:  # membrane after the reset
        out["v/" + name] = rec[name]["vmem"].detach().numpy()[0][:, None, :].copy()
    return out


def rockpool_decays(net: Net) -> dict[str, dict[str, np.ndarray]]:
    """Rockpool's float32 decays, under the names of the edgebrain fields that should hold them
    (LIFTorch: beta = membrane decay, alpha = synaptic decay, and g_mem = synaptic decay too, since
    edgebrain keeps the current before its decay; ExpSynTorch: beta = g_mem = its decay)."""
    import torch
    from rockpool.nn.modules import ExpSynTorch, LIFNeuronTorch, LIFTorch

    out = {}
    for name, m in net.module.named_children():
        if isinstance(m, LIFTorch):
            a_m, a_s = m.alpha.detach().numpy(), m.beta.detach().numpy().reshape(-1)
            out[name] = {"beta": a_m, "alpha": a_s, "g_mem": a_s}
        elif isinstance(m, LIFNeuronTorch):
            out[name] = {"beta": torch.exp(-m.dt / m.tau_mem).detach().numpy()}
        elif isinstance(m, ExpSynTorch):
            a = torch.exp(-m.dt / m.tau).detach().numpy()
            out[name] = {"beta": a, "g_mem": a}
    return out


# --------------------------------------------------------------------------- edgebrain side


def run_edgebrain(model, net: Net, xs: np.ndarray) -> dict[str, np.ndarray]:
    """edgebrain float run; same keys as the native runs."""
    names = net.spiking + ([net.readout] if net.readout else [])
    _, rec = model.session("float").run(xs, record=names)
    out = {n: rec[f"spikes/{n}"] for n in net.spiking}
    out.update({f"v/{n}": rec[f"v/{n}"] for n in net.spiking})
    if net.readout:
        out[net.readout] = rec[f"out/{net.readout}"]
    return out


def param_mismatches(graph, expected: dict[str, dict[str, np.ndarray]],
                     ulp_of: dict[str, str] | None = None) -> tuple[int, int, list[str]]:
    """Compare an imported graph's per-step constants with the framework's own float32 values:
    (number of values that differ, number compared, descriptions of the differences).

    Differences are counted in ulps of the field itself, or of another field named in ``ulp_of``
    (e.g. ``{"g_mem": "beta"}``): a gain computed as 1 − β inherits β's rounding as an absolute
    error (1 − β is exact in float32 for β in [0.5, 1]), so one ulp of β can be several of 1 − β."""
    bad, total, notes = 0, 0, []
    ulp_of = ulp_of or {}
    for node, fields in expected.items():
        op = graph.nodes[node]
        for f, want in fields.items():
            have = np.broadcast_to(getattr(op, f), graph.in_shapes[node]).reshape(-1)
            want = np.broadcast_to(np.asarray(want, np.float32).reshape(-1) if np.size(want) > 1
                                   else np.asarray(want, np.float32).reshape(()), have.shape)
            diff = have != want
            total += have.size
            if diff.any():
                if f in ulp_of:
                    ref = np.broadcast_to(getattr(op, ulp_of[f]), graph.in_shapes[node]).reshape(-1)
                    gap = np.abs(have.astype(np.float64) - want.astype(np.float64))
                    ulps = np.ceil(gap / np.spacing(np.abs(ref).astype(np.float32)).astype(np.float64))
                    unit = f" of {ulp_of[f]}"
                else:
                    ulps = np.abs(have.view(np.int32).astype(np.int64) - want.view(np.int32).astype(np.int64))
                    unit = ""
                bad += int(diff.sum())
                notes.append(f"{node}.{f}: {int(diff.sum())}/{have.size} differ by up to {int(ulps.max())} ulp{unit}")
    return bad, total, notes
