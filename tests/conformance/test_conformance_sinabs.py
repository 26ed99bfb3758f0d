"""Conformance with Sinabs: edgebrain's float mode gives the same spikes as Sinabs, step for step.

Each network is built with Sinabs layers, exported with Sinabs' own NIR exporter (``sinabs.nir.to_nir``)
inside the test, written with ``nir.write``, imported by edgebrain (detected dialect, and the "sinabs"
dialect named explicitly) and run on the same inputs as Sinabs; the spike counts of every spiking layer
(and the ExpLeak readout's membrane) are compared element by element.

Sinabs' native update (sinabs 3.1.3, ``layers/functional/lif.py``), per step, tau in steps:
  LIF (norm_input=True, default):   v = a·v + (1 − a)·x,  a = exp(−1/tau) in float32
  ExpLeak (norm_input=False):       v = a·v + x            (no spikes: the output is v)
  IAF:                              v = 1·v + x
  MultiSpike (default spike_fn):    s = (v > 0)·trunc(v/θ), i.e. floor(v/θ) spikes when v >= θ, no cap
  MembraneSubtract (default reset): v −= s·θ;  MembraneReset(0): v = 0 where s > 0
  min_v_mem (default None) would clip v from below after the reset; tau_syn would add
  i = a_s·(i + x) before the membrane — the exporter writes neither.
``to_nir`` writes LIF(tau, r = 1, v_leak = 0, v_threshold), IF(r = 1, v_threshold expanded to the layer
shape), LI(tau, r = 1, v_leak = 0), Affine (a zero bias when there is none), Conv2d, SumPool2d, Flatten.

Strictness: weights are on a 2^-8 grid; with inputs on that grid (random, IMU quantised to 2^-8) or
integer event counts (N-MNIST) every synaptic sum is exact, and IAF layers must then match 100 % bit for
bit. Leaky layers must match 100 % when every imported decay equals Sinabs' own float32 exp(−1/tau) —
torch's vectorised exp is one ulp off the correctly rounded value for ~1 % of time constants, and where
that happens (``param_mismatches``) >= 99.9 % is required instead. Raw float IMU inputs make the first
layer's sums depend on the summation order (MKL vs edgebrain's row loop): >= 99.9 %.
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import IMU_CSV, assert_conformance, compare_spikes, dyadic, find_datasets, load_imu, \
    load_nmnist_frames, need

torch = pytest.importorskip("torch")
pytest.importorskip("nir")
pytest.importorskip("nirtorch")
sinabs = pytest.importorskip("sinabs")
pytest.importorskip("sinabs.nir", reason="sinabs.nir (to_nir) does not import beside this torch/nirtorch")

from tests.conformance import _frameworks_sr as F  # noqa: E402
import edgebrain  # noqa: E402
from edgebrain.model import Model  # noqa: E402
from edgebrain.nir_io import read_nir  # noqa: E402

T_DENSE = 400  # steps of random input / IMU samples (4 s at 100 Hz)
T_CONV = 60  # 5 ms frames
EXACT, NEAR = 1.0, 0.999
SUM_ORDER = "float IMU inputs: first-layer sums rounded in a different order (MKL vs edgebrain)"

# (network, inputs, reset, whether the synaptic sums are exact in any order, why not exact otherwise)
CASES = [
    ("dense_lif", "random", "subtract", True, ""),
    ("dense_lif", "imu8", "subtract", True, ""),
    ("dense_lif", "imu", "subtract", False, SUM_ORDER),
    ("dense_lif", "random", "zero", True, ""),
    ("dense_iaf", "random", "subtract", True, ""),
    ("dense_iaf", "imu8", "subtract", True, ""),
    ("dense_iaf", "imu", "subtract", False, SUM_ORDER),
    ("dense_iaf", "random", "zero", True, ""),
    ("dense_expleak", "random", "subtract", True, ""),
    ("dense_expleak", "imu", "subtract", False, SUM_ORDER),
    ("conv", "random", "subtract", True, ""),
    ("conv", "nmnist", "subtract", True, ""),
]

_tmp = tempfile.TemporaryDirectory(prefix="eb-conformance-sinabs-")


@functools.lru_cache(maxsize=None)
def exported(name: str, reset: str = "subtract") -> F.Net:
    return F.export_sinabs(name, Path(_tmp.name), reset=reset)


def inputs(net_name: str, kind: str, root: Path | None) -> np.ndarray:
    """Time-major inputs in the shape of the NIR file's Input node: (T, 1, 6) for the dense nets
    (the exporter keeps Sinabs' time axis, of length 1), (T, 2, 34, 34) for the conv net."""
    g = np.random.default_rng(1234)
    if net_name == "conv":
        if kind == "random":
            return (g.random((T_CONV, 2, 34, 34)) < 0.08).astype(np.float32)
        return load_nmnist_frames(root, 60001, T_CONV, 5000)
    if kind == "random":
        x = dyadic(g.normal(0.0, 1.0, (T_DENSE, F.N_IN)))
    else:
        x = load_imu(need(root / IMU_CSV), T_DENSE)
        x = dyadic(x) if kind == "imu8" else x
    return x[:, None, :]


def _native_input(net: F.Net, xs):
    return xs if net.name == "conv" else xs[:, 0]


def run_case(net_name, kind, reset, exact_sums, root, dialect=None):
    """(matches, readout (native, edgebrain) or None, min_identical, why, max spike count)."""
    net = exported(net_name, reset)
    graph, rep = read_nir(net.path, dialect=dialect, reset=None if reset == "subtract" else reset)
    xs = inputs(net_name, kind, root)
    native = F.run_sinabs(net, _native_input(net, xs))
    mine = F.run_edgebrain(Model(graph), net, xs)
    matches = [compare_spikes(layer, native[layer], mine[layer], native["v/" + layer], mine["v/" + layer])
               for layer in net.spiking]
    bad, total, notes = F.param_mismatches(graph, F.sinabs_decays(net), ulp_of={"g_mem": "beta"})
    if exact_sums and not bad:
        need_, why = EXACT, ""
    else:
        need_ = NEAR
        why = SUM_ORDER if not exact_sums else f"torch's float32 exp is 1 ulp off for {bad}/{total}: {notes}"
    ro = (native[net.readout], mine[net.readout]) if net.readout else None
    top = max(float(native[layer].max()) for layer in net.spiking)
    return matches, ro, need_, why, top


@pytest.mark.parametrize("net_name,kind,reset,exact_sums,why", CASES,
                         ids=[f"{c[0]}-{c[1]}-{c[2]}" for c in CASES])
def test_spikes_match_sinabs(net_name, kind, reset, exact_sums, why, request):
    root = request.getfixturevalue("datasets") if kind != "random" else None
    matches, ro, min_identical, why2, top = run_case(net_name, kind, reset, exact_sums, root)
    real = kind != "random"
    assert_conformance(matches, min_identical, min_rate=0.02 if real else 0.05, max_rate=0.45 if real else 0.40)
    assert top >= 2, "no neuron fired several spikes in one step: MultiSpike is not exercised"
    if ro is not None:
        a, b = ro
        assert np.abs(a).max() > 1.0, "the readout stays near 0: the comparison would be vacuous"
        if min_identical == EXACT:
            np.testing.assert_array_equal(b, a, err_msg="ExpLeak readout membrane differs")
        else:
            np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6 * np.abs(a).max(), err_msg=why2)


@pytest.mark.parametrize("net_name", ["dense_lif", "dense_iaf", "dense_expleak", "conv"])
def test_detects_sinabs(net_name):
    net = exported(net_name)
    graph, rep = read_nir(net.path)
    assert rep.detected == "sinabs" and rep.dialect == "sinabs", rep.reason
    assert rep.dt == 1.0 and not rep.warnings
    assert graph.meta["dialect"] == "sinabs"


@pytest.mark.parametrize("net_name", ["dense_lif", "conv"])
def test_explicit_dialect(net_name):
    """Naming the dialect (and dt = 1 step) gives the same model and spikes as detection, no warning."""
    net = exported(net_name)
    g1, rep = read_nir(net.path, dialect="sinabs", dt=1.0)
    assert rep.dialect == "sinabs" and rep.dt == 1.0 and not rep.warnings
    g2, _ = read_nir(net.path)
    for n, op in g1.nodes.items():
        for k, a in op.arrays().items():
            np.testing.assert_array_equal(a, g2.nodes[n].arrays()[k], err_msg=f"{n}.{k}")
    matches, _, need_, _, _ = run_case(net_name, "random", "subtract", True, None, dialect="sinabs")
    assert_conformance(matches, need_)
    assert edgebrain.load(net.path, dialect="sinabs").graph.meta["dialect"] == "sinabs"


def test_imported_constants():
    """The per-step constants are Sinabs' own: exp(−1/tau) and 1 − a in float32 (to within the ulp
    torch's exp may be off, which 1 − a inherits as an absolute error: counted in ulps of a),
    thresholds bit for bit, unit gains, MultiSpike + subtract flags."""
    for name in ("dense_lif", "dense_expleak"):
        net = exported(name)
        graph, _ = read_nir(net.path)
        bad, total, notes = F.param_mismatches(graph, F.sinabs_decays(net), ulp_of={"g_mem": "beta"})
        assert total > 0 and bad <= 0.05 * total and all("up to 1 ulp" in s for s in notes), notes
        for layer, m in net.module.named_children():
            op = graph.nodes.get(layer)
            if op is None or not hasattr(op, "beta"):
                continue
            if op.spiking:
                want = np.broadcast_to(m.spike_threshold.numpy(), op.threshold.shape)
                np.testing.assert_array_equal(op.threshold.reshape(-1), want.reshape(-1))
                assert op.reset == "subtract" and op.threshold_ge and op.multispike and not op.reset_delay
            if op.kind == "IF":
                assert (op.g_mem == 1).all() and (op.beta == 1).all()
            assert (op.bias == 0).all()
        lif = graph.nodes["1"] if name == "dense_lif" else graph.nodes["3"]
        if name == "dense_lif":  # norm_input: the gain is 1 − a, computed in float32
            np.testing.assert_array_equal(lif.g_mem, (np.float32(1) - lif.beta).astype(np.float32))
        else:  # ExpLeak: norm_input=False, gain 1
            assert (lif.g_mem == 1).all()


def test_lif_with_default_scalar_threshold():
    """Sinabs' exporter writes LIF v_threshold in the shape of spike_threshold and tau in the shape of
    tau_mem; with per-neuron tau and the default scalar threshold nir.LIF rejects the node. When a
    Sinabs release fixes that, this network must conform like the others."""
    try:
        net = exported("dense_lif_scalar_threshold")
    except Exception as e:  # noqa: BLE001 - report whatever the exporter raises
        pytest.skip(f"sinabs {sinabs.__version__} to_nir cannot export LIF(tau_mem=<per neuron>, "
                    f"spike_threshold=<scalar>): {type(e).__name__}: {e}")
    matches, _, need_, _, _ = run_case("dense_lif_scalar_threshold", "random", "subtract", True, None)
    assert_conformance(matches, need_)


def test_bs2_nmnist_frames():
    root, why = find_datasets()
    if root is None:
        pytest.skip(why)
    frames = load_nmnist_frames(root, 60001, T_CONV, 5000)
    assert frames.shape == (T_CONV, 2, 34, 34) and frames.sum() > 1000 and (frames == np.round(frames)).all()


if __name__ == "__main__":  # pragma: no cover - manual report: python -m tests.conformance.test_conformance_sinabs
    r, _ = find_datasets()
    for c in CASES:
        m, ro, need_, why, top = run_case(c[0], c[1], c[2], c[3], r)
        print(f"{c[0]} {c[1]} reset={c[2]} (required {need_:.1%}{'; ' + why if why else ''}), max count {top:g}")
        for x in m:
            print("   ", x)
        if ro is not None:
            a, b = ro
            print(f"    readout: {np.mean(a == b):.2%} bit-identical, max |diff| {np.abs(a - b).max():.3g} "
                  f"(scale {np.abs(a).max():.3g})")
