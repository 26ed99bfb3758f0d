"""``edgebrain convert MODEL.tflite --to-snn`` beyond chains (docs/conversion.md): residual sums (ADD),
2×2 max pooling, and the converted graph as an ordinary edgebrain model — exported to NIR and read back,
run on the C runtime and on an emulated Cortex-M4 board.

* the residual MLPs of tests/tflite/data (TensorFlow's converter: an ADD with a fused ReLU over a layer
  without ReLU and its input, and an ADD of two ReLU layers without activation): each population's spike
  rate approaches LiteRT's own activation of that tensor (intermediate tensors preserved) over its threshold
  as T grows, within a bound worked out from the weights over T; decisions and accuracy approach the
  interpreter's (the int8 model quantized too);
* hand-built models (tests/tflite/tflite_builder.py; LiteRT says what they compute): a skip connection
  from the analog input (direct and rate coding), and a CNN with a 2×2 max pool whose output is both
  convolved and skipped around the convolution (ADD with ReLU): the pooled spike counts equal the max of
  the four neighbours' counts up to a transient;
* NIR: ``-o model.nir`` (from the TFLite file or from the .ebm) writes reset by subtraction as I →
  Threshold → Scale(−θ) loops; edgebrain reads them back as the same IF neurons, spike for spike, and the
  unfused NIR graph (what another NIR reader runs) gives the same spikes within float rounding;
* the quantized models on the C runtime are bit-exact with the Numba integer session, and on
  ``--target qemu-m4`` (skipped, naming the package, without QEMU or the cross compiler) a board session
  and ``edgebrain stream`` give what the Python integer path gives;
* bad input: ADD of a constant or with broadcasting, a 3×3 or overlapping max pool window (named), two
  linear layers in a row, ``--quantize`` with a ``.nir`` output: one line each, exit code 2.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from tests.tflite.test_convert_snn import preserved_activations
from tests.tflite.test_tflite import DATA, FACTS, cli, litert_invoke, one_error_line

pytest.importorskip("ai_edge_litert.schema_py_generated")
pytest.importorskip("flatbuffers")
from tests.tflite.tflite_builder import TFLiteBuilder


def _snn(path, xs, T, coding="direct", precision="float", record=(), quantize=False, batch=None):
    """Convert ``path`` in Python as the command line does and run the spiking model for T steps on the
    TFLite samples ``xs``: (ann, lambdas, model, outputs (T, N, classes), records)."""
    from edgebrain.apps.convert_snn import _robust_max
    from edgebrain.model import Model
    from edgebrain.tflite_convert import build_snn, read_ann
    from edgebrain.tflite_io import read_tflite

    ann = read_ann(read_tflite(path))
    x = ann.snn_input(xs)
    logits, acts = ann.forward(x)
    lams = [_robust_max(a, 99.9) for a in acts]
    in_lam = _robust_max(np.abs(x), 99.9) if coding == "rate" else 1.0
    m = Model(build_snn(ann, lams, coding, in_lam, _robust_max(np.abs(logits), 99.9)), None, None)
    if quantize:
        from edgebrain.quant import quantize as q

        m, _ = q(m, np.repeat(x[None, :16], T, 0), weight_bits=8, state_bits=16)
    out, rec = m.session(precision, batch=batch or len(x)).run(np.repeat(x[None], T, 0), record=list(record))
    return ann, lams, m, np.asarray(out).reshape(T, len(x), -1), rec


def _bounds(ann, lams) -> list:
    """Per population, B with |rate − min(1, a/λ)| ≤ B/(λ·T) where no neuron saturates: an IF neuron's count
    is its summed input within one spike (λ in value), and an input error of E (value × steps) per source
    neuron moves a sum by at most ‖W_i‖₁·E (identity projections: E)."""
    err = {-1: 0.0}
    out, k = [], 0
    for i, ly in enumerate(ann.layers):
        srcs = [err[s] for s in ly.srcs]
        w = np.abs(ly.weight).reshape(len(ly.weight), -1).sum(1).max() if ly.synaptic else 1.0
        e = w * srcs[0] if ly.synaptic else sum(srcs)
        if ly.rep == "pop":
            e += lams[k]
            out.append(e)
            k += 1
        err[i] = e
    return out


# --------------------------------------------------------------------------- the residual fixtures


@pytest.mark.filterwarnings("ignore:Warning. Enabling .experimental_preserve_all_tensors")
def test_residual_rates_approach_litert_activations_as_t_grows(labelled):
    """har_res_float: ReLU(h1 + W h1) (an ADD population fed the skipped spikes and W's synapses) and h2 +
    h3 (no population: the readout reads both). On the windows where no neuron saturates, each population's
    rate after T steps is LiteRT's activation of that tensor over λ within B/(λT), and the largest error
    shrinks at least 3× from T = 64 to T = 256."""
    xs, _ = labelled
    path = DATA / "har_res_float.tflite"
    x = xs.reshape(len(xs), -1)
    ann, lams, m, out, rec = _snn(path, x, 256, record=["if0", "if1", "if2"])
    assert [(ly.kind, ly.rep) for ly in ann.layers] == [("dense", "pop"), ("dense", "lin"), ("add", "pop"),
                                                        ("dense", "pop"), ("add", "src"), ("dense", "lin")]
    assert [ly.op for ly in ann.relu_layers] == ["FULLY_CONNECTED", "ADD", "FULLY_CONNECTED"]
    kinds = {n: op.kind for n, op in m.graph.nodes.items()}
    assert kinds["skip2"] == "Scale" and {"fc5_0", "fc5_1"} <= set(kinds)    # the skip; h2 + h3 read twice
    assert sorted(m.graph.preds("if1")) == ["fc1", "skip2"] and sorted(m.graph.preds("readout")) == ["fc5_0", "fc5_1"]
    litert_acts = preserved_activations(path, x, [ly.tensor for ly in ann.relu_layers])
    acts = [litert_acts[ly.tensor].reshape(len(x), -1) for ly in ann.relu_layers]
    ok = np.all([(a < lam).all(1) for a, lam in zip(acts, lams)], axis=0)
    assert ok.mean() > 0.8
    for k, (a, lam, bound) in enumerate(zip(acts, lams, _bounds(ann, lams))):
        counts = np.cumsum(rec[f"spikes/if{k}"], 0)[:, ok]
        err = {t: np.abs(counts[t - 1] / t - a[ok] / lam).max() for t in (64, 256)}
        assert err[256] <= bound / (lam * 256) + 1e-6, (k, err, bound / lam)
        assert err[256] * 3 <= err[64], (k, err)
    np.testing.assert_allclose(ann.forward(ann.snn_input(x))[0], litert_invoke(path, x), rtol=1e-4, atol=1e-4)
    assert (out[-1].argmax(1) == litert_invoke(path, x).argmax(1)).mean() >= 0.95


@pytest.mark.parametrize("name", ["har_res_float", "har_res_int8"])
@pytest.mark.filterwarnings("ignore:Warning. Enabling .experimental_preserve_all_tensors")
def test_residual_accuracy_approaches_the_interpreters(name, labelled, tmp_path):
    """The command line on real windows: one threshold per population, the ADD's among them (the float
    model's: the percentile of LiteRT's own ADD tensor); agreement with the interpreter grows with T and at
    T = 64 the accuracy is within 3 points of its own (the int8 model quantized, on the integer path too)."""
    xs, y = labelled
    x = xs.reshape(len(xs), -1)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    path = DATA / f"{name}.tflite"
    quant = ["--quantize", "int8"] if "int8" in name else []
    rc, out, err = cli("convert", path, "--to-snn", "--calib", tmp_path / "x.npy", "--labels", tmp_path / "y.npy",
                       "--timesteps", "8,64", "-o", tmp_path / "snn.ebm", "--json", *quant)
    assert rc == 0, err
    r = json.loads(out)
    assert [(v["operator"], v["op"]) for v in r["thresholds"].values()] == [(0, "FULLY_CONNECTED"), (3, "ADD"),
                                                                           (4, "FULLY_CONNECTED")]
    if "float" in name:      # the int8 interpreter clips the first layer at 26.4 where NumPy does not: not comparable
        acts = preserved_activations(path, x, [13])[13].reshape(len(x), -1)      # the ADD's output, ReLU fused
        assert r["thresholds"]["if1"]["lambda"] == pytest.approx(np.percentile(acts, 99.9), rel=1e-5)
    ref = litert_invoke(path, x).argmax(1)
    assert r["tflite"]["accuracy"] == pytest.approx((ref == y).mean())
    for prec in (["float", "int"] if quant else ["float"]):
        rows = {row["timesteps"]: row for row in r["evaluated"] if row["precision"] == prec}
        assert rows[8]["agreement"] < rows[64]["agreement"] and rows[64]["agreement"] >= 0.9, rows
        assert abs(rows[64]["accuracy"] - r["tflite"]["accuracy"]) <= 0.03, rows
        assert set(rows[64]["spike_rates"]) == {"if0", "if1", "if2"}


# --------------------------------------------------------------------------- hand-built graphs


def _write_input_skip(path, rng, n=6, units=6):
    """x (n) → FULLY_CONNECTED n + ReLU → ADD with x itself, fused ReLU → FULLY_CONNECTED 3."""
    b = TFLiteBuilder()
    w1, b1 = rng.normal(0, 0.6, (n, n)).astype(np.float32), rng.normal(0.1, 0.2, n).astype(np.float32)
    w2, b2 = rng.normal(0, 0.6, (3, n)).astype(np.float32), rng.normal(0, 0.1, 3).astype(np.float32)
    x = b.tensor((1, n))
    h = b.dense(x, w1, b1, act=1)
    s = b.add(x, h, (1, n), act=1)
    return b.write(path, [x], [b.dense(s, w2, b2)])


@pytest.mark.parametrize("coding", ["direct", "rate"])
@pytest.mark.filterwarnings("ignore:Warning. Enabling .experimental_preserve_all_tensors")
def test_a_skip_from_the_analog_input(coding, tmp_path):
    """ReLU(x + ReLU(W x + b)) with x real (negative too): the ADD is a population fed the input through an
    identity Scale (direct coding) or the two encoder populations (rate coding); where nothing saturates its
    rates at T = 512 are LiteRT's activation/λ within B/(λT) (direct coding: the input is exact) or 0.05 (rate
    coding: the encoders' spikes are inexact too), and the decisions are LiteRT's."""
    rng = np.random.default_rng(11)
    path = _write_input_skip(tmp_path / "skip.tflite", rng)
    xs = rng.normal(0, 1, (48, 6)).astype(np.float32)
    ann, lams, m, out, rec = _snn(path, xs, 512, coding=coding, record=["if1"])
    assert [ly.rep for ly in ann.layers] == ["pop", "pop", "lin"] and ann.layers[1].srcs == (-1, 0)
    skip = [n for n in m.graph.nodes if n.startswith("skip1")]
    assert skip and all(m.graph.nodes[n].kind == "Scale" for n in skip)
    assert sorted(p for n in skip for p in m.graph.preds(n)) == (["if0", "input"] if coding == "direct"
                                                                 else ["enc_neg", "enc_pos", "if0"])
    got = preserved_activations(path, xs, [ly.tensor for ly in ann.relu_layers])
    a0, a = (got[ly.tensor].reshape(len(xs), -1) for ly in ann.relu_layers)
    ok = (a0 < lams[0]).all(1) & (a < lams[1]).all(1)
    assert ok.mean() > 0.8
    rate = rec["spikes/if1"].sum(0)[ok] / 512
    tol = _bounds(ann, lams)[1] / (lams[1] * 512) if coding == "direct" else 0.05
    assert np.abs(rate - a[ok] / lams[1]).max() <= tol
    ref = litert_invoke(path, xs).argmax(1)
    assert (out[-1].argmax(1) == ref).mean() >= 0.95


def _write_pool_cnn(path, rng):
    """(8, 10, 2) → CONV_2D 4 3×3 SAME + ReLU → MAX_POOL_2D 2×2 → CONV_2D 4 3×3 SAME (no activation) → ADD
    with the pooled tensor, fused ReLU → RESHAPE (flatten) → FULLY_CONNECTED 3."""
    b = TFLiteBuilder()
    w1, b1 = rng.normal(0, 0.5, (4, 3, 3, 2)).astype(np.float32), rng.normal(0.2, 0.1, 4).astype(np.float32)
    w2, b2 = rng.normal(0, 0.3, (4, 3, 3, 4)).astype(np.float32), rng.normal(0, 0.1, 4).astype(np.float32)
    w3, b3 = rng.normal(0, 0.5, (3, 80)).astype(np.float32), rng.normal(0, 0.1, 3).astype(np.float32)
    x = b.tensor((1, 8, 10, 2))
    h = b.conv(x, w1, b1, (1, 8, 10, 4), act=1)
    p = b.maxpool(h, (1, 4, 5, 4), (2, 2))
    r = b.add(p, b.conv(p, w2, b2, (1, 4, 5, 4)), (1, 4, 5, 4), act=1)
    f = b.op("RESHAPE", [r, b.tensor((2,), [1, 80], ttype=2)], (1, 80))
    return b.write(path, [x], [b.dense(f, w3, b3)])


def test_cnn_with_a_2x2_max_pool_and_a_skip_around_a_convolution(tmp_path):
    """The 2×2 max pool is two stages (H, then W): its value is the even-even neighbour's spikes plus the two
    difference populations', whose counts after T steps equal the max of the four neighbours' counts within
    2 spikes; the skip reads that sum through a stride-2 depthwise selection; the NumPy pass equals LiteRT's
    outputs and the spiking model at T = 256 decides as the interpreter on ≥ 95 % of samples."""
    rng = np.random.default_rng(5)
    path = _write_pool_cnn(tmp_path / "pool.tflite", rng)
    xs = rng.normal(0, 1, (48, 8, 10, 2)).astype(np.float32)
    ann, _, m, out, rec = _snn(path, xs, 256, record=["if0", "pool1_h", "pool1_w"])
    assert ann.layers[1].kind == "maxpool" and ann.layers[1].axes == (1, 2)
    ref = litert_invoke(path, xs)
    np.testing.assert_allclose(ann.forward(ann.snn_input(xs))[0], ref, rtol=1e-4, atol=1e-4)
    assert (out[-1].argmax(1) == ref.argmax(1)).mean() >= 0.95
    n = rec["spikes/if0"].sum(0)
    four = np.maximum(np.maximum(n[:, :, 0::2, 0::2], n[:, :, 0::2, 1::2]), np.maximum(n[:, :, 1::2, 0::2],
                                                                                      n[:, :, 1::2, 1::2]))
    pooled = n[:, :, 0::2, 0::2] + rec["spikes/pool1_h"].sum(0)[:, :, :, 0::2] + rec["spikes/pool1_w"].sum(0)
    assert np.abs(pooled - four).max() <= 2 and four.max() > 100
    skips = [m.graph.nodes[f"skip3_{j}"] for j in range(3)]          # if0 (even-even), pool1_h (even W), pool1_w
    assert [op.kind for op in skips] == ["Conv2d", "Conv2d", "Scale"] and [op.stride for op in skips[:2]] == [
        (2, 2), (1, 2)]


def test_bad_graphs_are_one_line(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "x.npy", rng.normal(0, 1, (4, 6)).astype(np.float32))
    w, bias = rng.normal(0, 1, (6, 6)).astype(np.float32), np.zeros(6, np.float32)

    def convert(path, *extra, out="o.ebm"):
        return cli("convert", path, "--to-snn", "--calib", tmp_path / "x.npy", "-o", tmp_path / out, *extra)[::2]

    b = TFLiteBuilder()
    x = b.tensor((1, 6))
    h = b.dense(x, w, bias, act=1)
    y = b.dense(b.add(h, b.tensor((1, 6), np.ones(6)), (1, 6)), w[:3], bias[:3])
    one_error_line(*convert(b.write(tmp_path / "c.tflite", [x], [y])), "operator 1 ADD", "constant")
    b = TFLiteBuilder()
    x = b.tensor((1, 6))
    h = b.dense(x, w, bias, act=1)
    y = b.dense(b.add(h, b.dense(h, w[:1], bias[:1]), (1, 6)), w[:3], bias[:3])
    one_error_line(*convert(b.write(tmp_path / "bc.tflite", [x], [y])), "operator 2 ADD", "[6] and [1]",
                   "no broadcasting")
    b = TFLiteBuilder()
    x = b.tensor((1, 6))
    y = b.dense(b.dense(b.dense(x, w, bias), w, bias), w[:3], bias[:3])
    one_error_line(*convert(b.write(tmp_path / "lin.tflite", [x], [y])), "operator 0 FULLY_CONNECTED has no ReLU",
                   "ADD")
    np.save(tmp_path / "img.npy", rng.normal(0, 1, (4, 6, 6, 1)).astype(np.float32))
    for window, stride, out in (((3, 3), (3, 3), (1, 2, 2, 2)), ((2, 2), (1, 1), (1, 5, 5, 2))):
        b = TFLiteBuilder()
        x = b.tensor((1, 6, 6, 1))
        h = b.conv(x, rng.normal(0, 1, (2, 1, 1, 1)).astype(np.float32), np.zeros(2, np.float32), (1, 6, 6, 2),
                   act=1)
        p = b.maxpool(h, out, window, stride)
        f = b.op("RESHAPE", [p, b.tensor((2,), [1, int(np.prod(out))], ttype=2)], (1, int(np.prod(out))))
        y = b.dense(f, rng.normal(0, 1, (3, int(np.prod(out)))).astype(np.float32), np.zeros(3, np.float32))
        path = b.write(tmp_path / "pool.tflite", [x], [y])
        rc, err = cli("convert", path, "--to-snn", "--calib", tmp_path / "img.npy", "-o", tmp_path / "o.ebm")[::2]
        one_error_line(rc, err, "operator 1 MAX_POOL_2D", f"{window[0]}×{window[1]} window with stride "
                       f"{stride[0]}×{stride[1]}", "windows of 2")
    ok = _write_input_skip(tmp_path / "ok.tflite", rng)
    one_error_line(*convert(ok, "--quantize", "int8", out="o.nir"), "o.nir", "--quantize", ".ebm")
    assert not (tmp_path / "o.ebm").exists() and not (tmp_path / "o.nir").exists()


# --------------------------------------------------------------------------- NIR


def _spiking(m) -> list:
    return [n for n, op in m.graph.nodes.items() if getattr(op, "spiking", False)]


@pytest.mark.parametrize("name,coding", [("har_res_float", "direct"), ("har_cnn_float", "rate")])
def test_nir_export_reads_back_spike_for_spike(name, coding, labelled, tmp_path, monkeypatch):
    """``convert MODEL.tflite --to-snn -o m.nir`` and ``convert m.ebm -o m2.nir``: every IF neuron (reset
    by subtraction; the max pool's fire at v ≥ 1) is written as NIR's I → Threshold → Scale(−θ) loop, with
    only standard nodes; edgebrain reads both files back as the very same IF neurons (the same spikes and
    outputs, bit for bit), and the NIR graph run unfused (I, Threshold and the loop one step late, as NIR
    reads) gives the same spikes within float rounding."""
    import nir

    from edgebrain import nir_reset
    from edgebrain.model import Model
    from edgebrain.tflite_convert import read_ann
    from edgebrain.tflite_io import read_tflite

    xs, _ = labelled
    x = xs.reshape(len(xs), -1) if "mlp" in name or "res" in name else xs
    np.save(tmp_path / "x.npy", x)
    path = DATA / f"{name}.tflite"
    base = ["convert", path, "--to-snn", "--calib", tmp_path / "x.npy", "--timesteps", "16", "--coding", coding]
    for out in ("m.ebm", "m.nir"):
        rc, _, err = cli(*base, "-o", tmp_path / out)
        assert rc == 0, err
    rc, _, err = cli("convert", tmp_path / "m.ebm", "-o", tmp_path / "m2.nir")
    assert rc == 0, err
    m = Model.load(tmp_path / "m.ebm")
    g = nir.read(str(tmp_path / "m.nir"), type_check=False)
    for n in _spiking(m):
        kinds = (type(g.nodes[n]).__name__, type(g.nodes[f"{n}_v"]).__name__, type(g.nodes[f"{n}_reset"]).__name__)
        assert kinds == ("Threshold", "I", "Scale"), (n, kinds)
        assert (f"{n}_reset", f"{n}_v") in [tuple(e) for e in g.edges]
        theta = np.asarray(g.nodes[n].threshold)
        want = np.nextafter(np.float32(1), np.float32(0)) if m.graph.nodes[n].threshold_ge else np.float32(1)
        assert (theta == want).all() and (np.asarray(g.nodes[f"{n}_reset"].scale) == -1).all()
    nb = min(48, len(x))
    steps = np.repeat(read_ann(read_tflite(path)).snn_input(x[:nb])[None], 32, 0)
    want_out, want = m.session("float", batch=nb).run(steps, record=_spiking(m))
    for f in ("m.nir", "m2.nir"):
        back = Model.load(tmp_path / f)
        assert sorted(_spiking(back)) == sorted(_spiking(m))
        assert all(back.graph.nodes[n].reset == "subtract" and back.graph.nodes[n].threshold_ge
                   == m.graph.nodes[n].threshold_ge for n in _spiking(m))
        out, rec = back.session("float", batch=nb).run(steps, record=_spiking(m))
        np.testing.assert_array_equal(out, want_out)
        for n in _spiking(m):
            np.testing.assert_array_equal(rec[f"spikes/{n}"], want[f"spikes/{n}"])
    monkeypatch.setattr(nir_reset, "fuse", lambda graph: [])
    raw = Model.load(tmp_path / "m.nir")
    assert all(raw.graph.nodes[n].kind == "Threshold" for n in _spiking(m))
    out, rec = raw.session("float", batch=nb).run(steps, record=_spiking(m))
    same = np.mean([np.mean(rec[f"out/{n}"] == want[f"spikes/{n}"]) for n in _spiking(m)])
    assert same >= 0.999 and (np.asarray(out)[-1].argmax(-1) == np.asarray(want_out)[-1].argmax(-1)).mean() >= 0.95


# --------------------------------------------------------------------------- C runtime and an emulated board


@pytest.fixture(scope="module")
def quantized(labelled):
    """The quantized residual int8 model and a hand-built CNN with a 2×2 pool and a skip, each with four
    windows as the spiking model's input (T = 24 steps each)."""
    import tempfile
    from pathlib import Path

    xs, _ = labelled
    out = {}
    x = xs.reshape(len(xs), -1)[:4]
    ann, _, m, _, _ = _snn(DATA / "har_res_int8.tflite", x, 24, precision="int", quantize=True)
    out["res"] = (m, ann.snn_input(x))
    rng = np.random.default_rng(5)
    with tempfile.TemporaryDirectory() as d:
        path = _write_pool_cnn(Path(d) / "pool.tflite", rng)
        xc = rng.normal(0, 1, (4, 8, 10, 2)).astype(np.float32)
        ann, _, m, _, _ = _snn(path, xc, 24, precision="int", quantize=True)
    out["cnn"] = (m, ann.snn_input(xc))
    return out


@pytest.mark.parametrize("which", ["res", "cnn"])
def test_c_runtime_is_bit_exact_with_numba(which, quantized):
    from tests.firmware.conftest import need_compiler

    need_compiler()
    m, x = quantized[which]
    c, n = m.session("int", backend="c"), m.session("int")
    for k in range(len(x)):
        c.reset()
        n.reset()
        steps = np.repeat(x[k:k + 1], 24, 0)
        np.testing.assert_array_equal(np.asarray(c.run(steps)[0]), np.asarray(n.run(steps)[0]))


def _need_qemu_m4():
    from edgebrain.stream import emulated as E

    b = E.BOARDS["qemu-m4"]
    for tool, apt in ((b.qemu, b.qemu_apt), (b.cc, b.cc_apt)):
        if not shutil.which(tool):
            pytest.skip(f"{tool} is not installed (apt-get install {apt})")
    return E.build_firmware("qemu-m4")


@pytest.mark.parametrize("which", ["res", "cnn"])
def test_emulated_board_runs_the_converted_model_as_python(which, quantized):
    """A board session on the emulated Cortex-M4 (mps2-an386): each window presented for 24 steps from the
    initial state gives the Numba integer session's outputs bit for bit, hence its decisions."""
    from edgebrain.stream import board as BD

    _need_qemu_m4()
    m, x = quantized[which]
    n = m.session("int")
    s = BD.board_session(m, "qemu-m4", on_reset="error")
    try:
        for k in range(len(x)):
            s.reset()
            n.reset()
            steps = np.repeat(x[k:k + 1], 24, 0)
            np.testing.assert_array_equal(np.asarray(s.run(steps)[0]), np.asarray(n.run(steps)[0]))
        assert s.board_stats()["errors"] == 0
    finally:
        s.close()


def test_stream_on_qemu_m4_decides_as_the_python_integer_path(quantized, tmp_path):
    """``edgebrain stream`` of the quantized residual model on a CSV of spiking-model inputs (each window
    repeated for 24 steps), decided by ``vmax:window=24``: the emulated board's decisions (time, label,
    confidence, truth) and counts are the Python integer path's."""
    _need_qemu_m4()
    m, x = quantized["res"]
    model = tmp_path / "res.ebm"
    m.save(model)
    rows = np.repeat(x.reshape(len(x), -1), 24, 0)
    names = FACTS["labels"][:4]
    with open(tmp_path / "steps.csv", "w") as f:
        f.write(",".join(f"x{i}" for i in range(rows.shape[1])) + ",label\n")
        f.writelines(",".join(repr(float(v)) for v in r) + f",{names[i // 24]}\n" for i, r in enumerate(rows))
    decoder = "vmax:window=24,labels=" + "|".join(FACTS["labels"])
    common = ["stream", model, "--source", tmp_path / "steps.csv", "-O", "rate=100", "--decoder", decoder, "--json"]
    got = []
    for extra in (["--precision", "int"], ["--target", "qemu-m4"]):
        rc, out, err = cli(*common, *extra)
        assert rc == 0, err
        lines = [json.loads(ln) for ln in out.splitlines()]
        got.append(([{k: v for k, v in d.items() if k != "latency_ms"} for d in lines[:-1]], lines[-1]["summary"]))
    (want, ws), (board, bs) = got
    assert len(want) == 4 and board == want
    for k in ("steps", "decisions", "no_decision", "saturations", "accuracy", "confusion"):
        assert bs.get(k) == ws.get(k), k
    assert bs["board"]["board"]["errors"] == 0 and bs["board"]["link"]["crc_errors"] == 0
