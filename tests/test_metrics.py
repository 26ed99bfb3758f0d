"""NeuroBench metrics: edgebrain's native counts agree exactly with the ``neurobench`` package.

Each network is built in snnTorch (random weights on a 2^-8 grid, about 30 % of them zero),
exported with snnTorch's own NIR exporter, loaded by edgebrain; NeuroBench's harness
(``Benchmark`` with the ``SNNTorchModel`` wrapper and the metric classes) runs the snnTorch module
on the same data as edgebrain's :mod:`edgebrain.metrics`. Counts must be equal; the sparsities too
(NeuroBench scales a batch's ratio by batch_size/dataset_len, one float rounding: 1e-12).

Definitional points matched (see docs/metrics.md): one batch holds every sample (NeuroBench decides
AC vs MAC per layer, timestep and batch); the snnTorch model has run one sample before the
benchmark (as after export), so NeuroBench's Footprint counts one sample's state buffers.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import dyadic

torch = pytest.importorskip("torch")
snn = pytest.importorskip("snntorch")
nir = pytest.importorskip("nir")
pytest.importorskip("nirtorch")
pytest.importorskip("neurobench", reason="neurobench is not installed (tools/install-test-deps.sh installs it "
                                         "with --no-deps; it is a test-only dependency)")

from neurobench.benchmarks import Benchmark
from neurobench.metrics.static import ConnectionSparsity, Footprint
from neurobench.metrics.workload import (
    ActivationSparsity,
    MembraneUpdates,
    SynapticOperations,
)
from neurobench.models import SNNTorchModel
from snntorch.export_nir import export_to_nir
from torch.utils.data import DataLoader, TensorDataset

import edgebrain
from edgebrain import metrics as M
from edgebrain import ops
from edgebrain.graph import Graph
from edgebrain.model import Model

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")

N_SAMPLES = 4


def _net(name: str, seed: int = 0):
    """(snnTorch module, exporter sample, exporter kwargs, data (N, T, *input))."""
    g = np.random.default_rng(seed)
    torch.manual_seed(seed)

    def u(shape, lo, hi):
        return torch.as_tensor(g.uniform(lo, hi, shape), dtype=torch.float32)

    def setw(layer, ws, bs):
        with torch.no_grad():
            w = dyadic(g.normal(0.0, ws, tuple(layer.weight.shape)))
            w[g.random(w.shape) < 0.3] = 0.0  # connection sparsity to measure
            layer.weight.copy_(torch.from_numpy(w))
            if layer.bias is not None:
                layer.bias.copy_(torch.from_numpy(dyadic(g.normal(0.0, bs, tuple(layer.bias.shape)))))
        return layer

    def leaky(shape, output=False):
        # per-neuron tensors (scalars fail NIR's type check); the last layer returns (spk, mem), as
        # NeuroBench's SNNTorchModel expects
        return snn.Leaky(beta=u(shape, 0.5, 0.95), threshold=u(shape, 0.5, 1.5), init_hidden=True, output=output)

    lin = torch.nn.Linear
    if name == "ff":
        net = torch.nn.Sequential(setw(lin(6, 32), 0.9, 0.2), leaky(32), setw(lin(32, 10), 0.45, 0.1),
                                  leaky(10, True))
        return net, torch.zeros(6), {}, dyadic(g.normal(0.0, 1.0, (N_SAMPLES, 50, 6)))
    if name == "rleaky":
        rec = snn.RLeaky(beta=u(32, 0.5, 0.95), threshold=u(32, 0.5, 1.5), linear_features=32, all_to_all=True,
                         init_hidden=True)
        setw(rec.recurrent, 0.25, 0.05)
        net = torch.nn.Sequential(setw(lin(6, 32), 0.9, 0.2), rec, setw(lin(32, 10), 0.45, 0.1), leaky(10, True))
        return net, torch.zeros(6), {}, dyadic(g.normal(0.0, 1.0, (N_SAMPLES, 50, 6)))
    if name == "conv":
        c = 8  # stride 2 and padding 1: border positions have fewer synapses than inner ones
        net = torch.nn.Sequential(setw(torch.nn.Conv2d(2, c, 5, stride=2, padding=1), 0.6, 0.1), leaky((c, 16, 16)),
                                  torch.nn.AvgPool2d(2), torch.nn.Flatten(), setw(lin(c * 8 * 8, 10), 0.1, 0.05),
                                  leaky(10, True))
        x = (g.random((N_SAMPLES, 30, 2, 34, 34)) < 0.08).astype(np.float32)
        return net, torch.zeros(1, 2, 34, 34), {"ignore_dims": [0]}, x
    raise KeyError(name)


@pytest.fixture(scope="module", params=["ff", "rleaky", "conv"])
def pair(request, tmp_path_factory):
    net, sample, kw, data = _net(request.param)
    path = tmp_path_factory.mktemp("nb") / f"{request.param}.nir"
    nir.write(path, export_to_nir(net, sample, **kw))
    # the exporter ran one sample through the module: its state buffers hold one sample, as after
    # training, which is what NeuroBench's Footprint counts; make that explicit
    import snntorch.utils

    snntorch.utils.reset(net)
    with torch.no_grad():
        net(sample)
    bench = Benchmark(SNNTorchModel(net), DataLoader(TensorDataset(torch.from_numpy(data), torch.zeros(len(data))),
                                                     batch_size=len(data)),
                      [], [], [[Footprint, ConnectionSparsity], [ActivationSparsity, SynapticOperations, MembraneUpdates]])
    nb = bench.run(quiet=True)
    model = edgebrain.load(path)
    xs = np.ascontiguousarray(np.moveaxis(data, 1, 0))  # (T, N, *input): time-major
    return request.param, nb, M.metrics(model, xs, "float"), model, xs


def test_static_metrics_agree(pair):
    _, nb, eb, _, _ = pair
    assert eb["footprint"]["neurobench_bytes"] == nb["Footprint"]
    assert eb["connection_sparsity"] == nb["ConnectionSparsity"]
    assert 0.2 < eb["connection_sparsity"] < 0.4


def test_workload_metrics_agree(pair):
    _, nb, eb, _, _ = pair
    assert eb["synaptic_operations"] == nb["SynapticOperations"]
    assert eb["membrane_updates"] == nb["MembraneUpdates"]
    assert eb["activation_sparsity"] == pytest.approx(nb["ActivationSparsity"], rel=0, abs=1e-12)
    # the test means something: both kinds of operation occur, and activity is neither 0 nor 1
    so = eb["synaptic_operations"]
    assert so["Effective_ACs"] > 0 and so["Effective_MACs"] > 0 and so["Dense"] > so["Effective_ACs"]
    assert 0.0 < eb["activation_sparsity"] < 1.0


def test_count_ops_keys_and_consistency(pair):
    _, _, eb, model, xs = pair
    c = M.count_ops(model, xs, precision="float")
    for k in ("dense", "eff_macs", "eff_acs", "membrane_updates", "weight_bytes_read", "state_bytes_rw", "steps",
              "precision"):
        assert k in c
    so = eb["synaptic_operations"]
    assert (c["dense"], c["eff_macs"], c["eff_acs"]) == (so["Dense"], so["Effective_MACs"], so["Effective_ACs"])
    assert c["steps"] == xs.shape[0] and c["precision"] == "float"
    assert c["weight_bytes_read"] > 0 and c["state_bytes_rw"] > 0
    w = M.count_ops(model, None, precision="int")  # worst case: one step, every synapse active
    assert w["steps"] == 1
    assert w["eff_macs"] + w["eff_acs"] <= w["dense"] < c["dense"]
    assert w["membrane_updates"] == sum(int(np.prod(model.graph.out_shapes[n])) for n in M.neuron_layers(model))
    assert w["assumed"]  # not quantized: widths assumed, said so


# --------------------------------------------------------------------------- exact fan-out (no torch needed)


def _brute_conv_ops(w, x, stride, pad, dil):
    """Effective synaptic operations of one conv2d application, by enumerating every synapse."""
    co, ci, kh, kw = w.shape
    _, h, wd = x.shape
    oh = ops.conv_out_len(h, kh, stride[0], pad[0], pad[1], dil[0])
    ow = ops.conv_out_len(wd, kw, stride[1], pad[2], pad[3], dil[1])
    n = 0
    for o in range(co):
        for i in range(ci):
            for a in range(kh):
                for b in range(kw):
                    if w[o, i, a, b] == 0:
                        continue
                    for y in range(oh):
                        for z in range(ow):
                            yy = y * stride[0] + a * dil[0] - pad[0]
                            zz = z * stride[1] + b * dil[1] - pad[2]
                            if 0 <= yy < h and 0 <= zz < wd and x[i, yy, zz] != 0:
                                n += 1
    return n


@pytest.mark.parametrize("stride,pad,dil", [((1, 1), (0, 0, 0, 0), (1, 1)), ((2, 1), (1, 2, 0, 1), (1, 2)),
                                            ((3, 2), (2, 2, 2, 2), (2, 1))])
def test_conv_fanout_exact(stride, pad, dil):
    g = np.random.default_rng(3)
    w = g.normal(size=(4, 3, 3, 3)).astype(np.float32)
    w[g.random(w.shape) < 0.4] = 0
    op = ops.Conv2d(weight=w, bias=np.zeros(4), stride=stride, padding=pad, dilation=dil)
    x = (g.random((3, 9, 11)) < 0.3).astype(np.float32)
    fan = M.fanout(op, x.shape)
    assert int((fan * (x != 0)).sum()) == _brute_conv_ops(w, x, stride, pad, dil)
    assert int(M.fanout(op, x.shape, dense=True).sum()) == _brute_conv_ops(np.ones_like(w), np.ones_like(x),
                                                                           stride, pad, dil)


def _tiny_model():
    g = Graph.sequential(ops.Input(shape=(4,)), ops.Affine(weight=[[1, 0, 0, 2], [0, 0, 0, 1]], bias=[0.5, 0]),
                         ops.LIF(beta=0.5, threshold=1.0), ops.Output())
    return Model(g)


def test_hand_counted():
    m = _tiny_model()
    xs = np.array([[1, 0, 0, 1], [0, 0, 0, 0], [1, 1, 0, 0]], np.float32)  # binary: ACs
    w = M.workload(m, xs)
    # fan-out of the inputs: [1, 0, 0, 2]; step 0: 1 + 2, step 1: 0, step 2: 1 + 0
    assert w["synaptic_operations"] == {"Effective_MACs": 0.0, "Effective_ACs": 4.0, "Dense": 24.0}
    assert M.connection_sparsity(m) == 0.625
    w2 = M.workload(m, xs * 0.5)  # non-binary inputs: MACs
    assert w2["synaptic_operations"]["Effective_MACs"] == 4.0
    assert w2["per_step"]["Effective_MACs"] == pytest.approx(4 / 3)


def test_bad_input_shape():
    from edgebrain.errors import InputError

    with pytest.raises(InputError, match="expected"):
        M.workload(_tiny_model(), np.zeros((3, 5), np.float32))
