"""Pruned and 4-bit weights (kernels/compact.py): stored compactly, run by kernels that skip the zeros,
with the dense result.

* the layout: CSR of the transposed weights and 4-bit packing round-trip exactly; a CSR's checks
  name what is wrong; the size rule picks the smaller form (hand-computed sizes);
* the kernels, called as the executor calls them: ``sparse_int`` equals ``dense_int`` and the pure
  Python reference (tests/reference/intref.py) exactly, and ``dense_int4`` equals ``dense_int`` on the
  same 4-bit values, for random matrices with 0, 50, 80, 90 and 100 % zeros, int8, int16 and 4-bit
  weights, both index widths and both row-pointer widths, 32- and 64-bit accumulators, over many
  steps of spikes and of real-valued inputs; ``sparse_f32`` equals ``dense_f32`` (the same terms in
  the same order per output; a zero weight adds nothing) and stays within the float32 summation
  bound of an independent float64 sum;
* whole programs: ``zoo:har-lif`` pruned by magnitude to 50/80/90 % and quantized again (int8 and
  int4) runs identically (outputs, state, activations, saturation counts) with its weights stored
  compactly and stored dense, on a real recording, in fixed point and in float; the executor
  variant compiled for a compact program equals the one with every family; a dense model lowers
  byte for byte as before;
* the metrics: the footprint counts the compact bytes (hand-computed), the operation counts only
  non-zero weights.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgebrain import blob as B
from edgebrain import metrics as M
from edgebrain import ops, program
from edgebrain.kernels import compact as C
from edgebrain.kernels import engine as E
from edgebrain.kernels import layout as L
from edgebrain.kernels.dense import dense_f32, dense_int, dense_int4, sparse_f32, sparse_int
from edgebrain.model import Model
from edgebrain.session import Session
from tests.conftest import REPO
from tests.firmware import cases
from tests.reference import intref as R

SPARSITIES = (0.0, 0.5, 0.8, 0.9, 1.0)


# ------------------------------------------------------------------ helpers


def pruned(rng, n_out, n_in, sparsity, bits):
    """A random (n_out, n_in) integer weight matrix of ``bits`` (4: values in [-7, 7], int8) with
    exactly round(sparsity · size) zeros, at random positions."""
    hi = {4: 7, 8: 127, 16: 32767}[bits]
    w = rng.integers(1, hi + 1, (n_out, n_in)) * rng.choice([-1, 1], (n_out, n_in))
    flat = w.reshape(-1)
    flat[rng.permutation(flat.size)[:int(round(sparsity * flat.size))]] = 0
    return w.astype(np.int16 if bits == 16 else np.int8)


def le_bytes(a) -> np.ndarray:
    return np.frombuffer(np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes(), np.uint8).copy()


def csr_args(W, int4=False):
    """(vals, ptr bytes, ptr width, index bytes, index width) of W (n_out, n_in) as the executor hands
    them to sparse_int: the CSR of W.T, values in the weights' dtype or packed two per byte."""
    ptr, cols, vals = C.to_csr(W.T)
    v = C.pack_int4(vals).view(np.int8) if int4 else vals
    return np.ascontiguousarray(v), le_bytes(ptr), ptr.itemsize, le_bytes(cols), cols.itemsize


def run_dense(x, W, b, m, s, identity, acc_dtype):
    y = np.full(W.shape[0], 12345, np.int32)  # garbage: the kernel must overwrite everything
    dense_int(x, np.ascontiguousarray(W.T), b, y, np.zeros(max(x.size, 1), np.int64),
              np.full(W.shape[0], 77, acc_dtype), m, s, identity)
    return y


def run_sparse(x, args, n_out, b, m, s, identity, acc_dtype, int4=False):
    vals, pb, pw, cb, cw = args
    y = np.full(n_out, -999, np.int32)
    sparse_int(x, vals, pb, pw, cb, cw, b, y, np.zeros(max(x.size, 1), np.int64), np.full(n_out, 77, acc_dtype),
               m, s, identity, int(int4))
    return y


def run_int4(x, W, b, m, s, identity, acc_dtype):
    y = np.full(W.shape[0], 4242, np.int32)
    wp = C.pack_int4_rows(W.T).view(np.int8)
    dense_int4(x, wp, b, y, np.zeros(max(x.size, 1), np.int64), np.full(W.shape[0], 77, acc_dtype), m, s, identity)
    return y


def requant(rng, n_out, identity):
    if identity:
        return np.ones(n_out, np.int32), np.zeros(n_out, np.int32)
    return rng.integers(1 << 29, 1 << 31, n_out).astype(np.int32), rng.integers(20, 40, n_out).astype(np.int32)


def inputs(rng, n_in, kind, steps):
    """``steps`` input rows: 0/1 spikes at 10-40 % density, or real values (integers of either sign,
    some zero), or values near the int32 limits (64-bit accumulators only)."""
    if kind == "spikes":
        return (rng.random((steps, n_in)) < rng.uniform(0.1, 0.4)).astype(np.int32)
    if kind == "values":
        x = rng.integers(-300, 300, (steps, n_in))
        x[rng.random((steps, n_in)) < 0.3] = 0
        return x.astype(np.int32)
    x = rng.choice([-(2 ** 31), 2 ** 31 - 1, -5, 0, 7], (steps, n_in))
    return x.astype(np.int32)


# ------------------------------------------------------------------ the layout


def test_csr_round_trip_and_index_widths():
    rng = np.random.default_rng(0)
    for n_out, n_in, cw in ((5, 7, 1), (256, 3, 1), (257, 3, 2), (300, 400, 2)):
        W = pruned(rng, n_out, n_in, 0.8, 8)
        ptr, cols, vals = C.to_csr(W.T)
        assert cols.itemsize == cw and ptr.itemsize == (2 if vals.size <= 65535 else 4)
        assert ptr[0] == 0 and ptr[-1] == vals.size == np.count_nonzero(W)
        assert C.check_csr(ptr, cols, n_in, n_out) is None
        np.testing.assert_array_equal(C.from_csr(ptr, cols, vals, n_in, n_out), W.T)
    big = pruned(rng, 300, 1200, 0.8, 8)  # 72000 stored weights: 32-bit row pointers
    ptr, _, vals = C.to_csr(big.T)
    assert vals.size == 72000 and ptr.dtype == np.uint32
    assert C.col_bytes(65536) == 2 and C.col_bytes(65537) is None


def test_int4_packing_round_trips_every_value():
    v = np.arange(-8, 8, dtype=np.int8)
    for a in (v, np.append(v, 3), np.repeat(v, 3)[::-1]):
        packed = C.pack_int4(a)
        assert packed.dtype == np.uint8 and packed.size == (a.size + 1) // 2
        np.testing.assert_array_equal(C.unpack_int4(packed, a.size), a)
    assert C.pack_int4(np.array([-1, 2], np.int8)).tolist() == [0x2F]  # low nibble first, two's complement
    wt = np.array([[1, -2, 3], [-8, 7, 0]], np.int8)
    assert C.pack_int4_rows(wt).tolist() == [[0xE1, 0x03], [0x78, 0x00]]  # each row on its own bytes


@pytest.mark.parametrize("ptr,cols,n_in,n_out,words", [
    ([0, 2, 1, 3], [0, 1, 2], 3, 4, "row pointers decrease: ptr[2] = 1 < ptr[1] = 2"),
    ([1, 2, 3], [0, 1, 2], 2, 4, "row pointer 0 is 1"),
    ([0, 1, 2], [0, 1, 2], 2, 4, "last row pointer ptr[2] = 2; expected the 3 stored entries"),
    ([0, 3], [0, 1, 9], 1, 4, "output index 9 (entry 2) is out of range; expected < n_out = 4"),
    ([0, 3], [0, 2, 2], 1, 4, "output indices of input row 0 do not increase: entry 2 is 2 after 2"),
    ([0, 2], [0, 1], 2, 4, "row pointers: 2 entries; expected n_in + 1 = 3"),
])
def test_a_bad_csr_is_named(ptr, cols, n_in, n_out, words):
    assert words in C.check_csr(np.array(ptr), np.array(cols), n_in, n_out)
    assert C.check_csr(np.array([0, 2, 2, 3]), np.array([3, 1, 0]), 3, 4) is not None
    assert C.check_csr(np.array([0, 2, 2, 3]), np.array([1, 3, 0]), 3, 4) is None  # a new row may go down


def test_the_size_rule_by_hand():
    # 160 x 160 int8 at 80 % zeros: 5120 values + 5120 one-byte indices + 161 two-byte pointers
    assert C.csr_parts(160, 160, 5120, 8) == (322, 5120, 5120)
    assert C.dense_nbytes(160, 160, 8) == 25600 and C.dense_nbytes(160, 5, 4) == 160 * 3
    assert C.sparse_saves(160, 160, 5120, 8) and C.stored_nbytes(160, 160, 5120, 8) == 322 + 5120 + 5120
    # at 50 % the indices cost what the zeros save: dense
    assert not C.sparse_saves(160, 160, 12800, 8) and C.stored_nbytes(160, 160, 12800, 8) == 25600
    # 4-bit: two weights per byte; 300 outputs need two-byte indices, so 80 % is not enough there
    assert C.csr_parts(300, 300, 18000, 4) == (602, 36000, 9000) and not C.sparse_saves(300, 300, 18000, 4)
    assert C.sparse_saves(300, 300, 9000, 4)
    # padding: each part rounded up to the alignment
    assert not C.sparse_saves(4, 4, 1, 8, align=64) and C.sparse_saves(4, 4, 1, 8)
    # a CSR that would expand too far is never chosen (and refused by readers)
    assert not C.expansion_ok(1 << 20, 65536, 0) and not C.sparse_saves(1 << 20, 65536, 0, 8)


# ------------------------------------------------------------------ the kernels


@pytest.mark.parametrize("bits", [8, 16, 4])
@pytest.mark.parametrize("sparsity", SPARSITIES)
def test_sparse_int_equals_dense_int_and_the_reference(bits, sparsity):
    rng = np.random.default_rng(round(sparsity * 100) + bits)
    for n_out, n_in in ((1, 1), (5, 37), (16, 64), (33, 130), (257, 40), (70, 300)):
        W = pruned(rng, n_out, n_in, sparsity, bits)
        args = csr_args(W, int4=bits == 4)
        b = rng.integers(-(1 << 16), 1 << 16, n_out).astype(np.int32) if rng.random() < 0.7 else np.zeros(0, np.int32)
        for identity in (0, 1):
            m, s = requant(rng, n_out, identity)
            for kind in ("spikes", "values", "limits"):
                accs = (np.int64,) if kind == "limits" else (np.int32, np.int64)
                for step, x in enumerate(inputs(rng, n_in, kind, 12)):
                    want = run_dense(x, W, b, m, s, identity, np.int64)
                    if step < 2 and n_out * n_in <= 5000:  # the independent reference, exact
                        assert want.tolist() == R.dense(x, W, b, m, s, identity)
                    for acc in accs:
                        np.testing.assert_array_equal(run_sparse(x, args, n_out, b, m, s, identity, acc, bits == 4),
                                                      want)
                        if bits == 4:
                            np.testing.assert_array_equal(run_int4(x, W, b, m, s, identity, acc), want)


def test_row_pointers_of_32_bits():
    """More than 65535 stored weights: 32-bit row pointers, 16-bit indices."""
    rng = np.random.default_rng(3)
    W = pruned(rng, 300, 1200, 0.8, 8)
    args = csr_args(W)
    assert (args[2], args[4]) == (4, 2)
    b = np.zeros(0, np.int32)
    m, s = requant(rng, 300, 0)
    for x in inputs(rng, 1200, "spikes", 5):
        np.testing.assert_array_equal(run_sparse(x, args, 300, b, m, s, 0, np.int32), run_dense(x, W, b, m, s, 0,
                                                                                                 np.int64))


def _float_ref_bound(x, W, b):
    """(float64 sum, its float32 error bound γ_n·Σ|terms|) per output (tests/kernels/test_kernels_float.py)."""
    x64, w64 = x.astype(np.float64), W.astype(np.float64)
    terms = np.abs(w64 * x64[None, :])
    n = W.shape[1] + 1
    u = 2.0 ** -24
    ref = w64 @ x64 + (b.astype(np.float64) if b.size else 0)
    return ref, n * u / (1 - n * u) * (terms.sum(axis=1) + (np.abs(b) if b.size else 0))


@pytest.mark.parametrize("sparsity", SPARSITIES)
def test_sparse_f32_equals_dense_f32(sparsity):
    rng = np.random.default_rng(int(sparsity * 10))
    for n_out, n_in in ((1, 3), (5, 37), (15, 64), (16, 20), (40, 130), (257, 33)):
        W = rng.standard_normal((n_out, n_in)).astype(np.float32)
        W.reshape(-1)[rng.permutation(W.size)[:int(round(sparsity * W.size))]] = 0
        ptr, cols, vals = C.to_csr(W.T)
        b = rng.standard_normal(n_out).astype(np.float32) if rng.random() < 0.7 else np.zeros(0, np.float32)
        for kind in ("spikes", "values"):
            xs = inputs(rng, n_in, kind, 10).astype(np.float32) * (1 if kind == "spikes" else np.float32(0.01))
            for x in xs:
                idx = np.zeros(n_in, np.int32)
                yd, ys = np.full(n_out, np.nan, np.float32), np.full(n_out, np.nan, np.float32)
                dense_f32(x, np.ascontiguousarray(W.T), b, yd, idx)
                sparse_f32(x, vals, le_bytes(ptr), ptr.itemsize, le_bytes(cols), cols.itemsize, b, ys, idx)
                np.testing.assert_array_equal(ys, yd)  # the same terms, in the same order per output
                ref, bound = _float_ref_bound(x, W, b)
                assert np.all(np.abs(ys - ref) <= bound)


# ------------------------------------------------------------------ whole programs


@pytest.fixture(scope="module")
def har(datasets):
    got = cases.zoo_input("har-lif", datasets)
    if got is None:
        pytest.skip("the har-lif recording is not in the test datasets")
    return got[1][:500]


def _same_run(p_a, p_b, xs):
    """Both programs on ``xs`` from reset: every output, recorded spike train, final state, activation
    and saturation count equal. Returns the number of spikes of the hidden layers (> 0 asserted)."""
    a, b = Session(p_a), Session(p_b)
    rec = sorted(n for n in p_a.spiking if n in p_a.out_regions)
    ya, ra = a.run(xs, record=rec)
    yb, rb = b.run(xs, record=rec)
    np.testing.assert_array_equal(ya, yb)
    assert sorted(ra) == sorted(rb)
    for k in ra:
        np.testing.assert_array_equal(ra[k], rb[k], err_msg=k)
    np.testing.assert_array_equal(a.state, b.state)
    np.testing.assert_array_equal(a.act, b.act)
    np.testing.assert_array_equal(a.saturations, b.saturations)
    spikes = sum(int(np.count_nonzero(ra[k])) for k in ra if k.startswith("spikes/"))
    assert spikes > 0, "no spike anywhere: the comparison would mean little"
    return spikes


@pytest.mark.parametrize("bits", [8, 4])
@pytest.mark.parametrize("sparsity", [0.5, 0.8, 0.9])
def test_pruned_har_lif_runs_as_its_dense_twin(datasets, har, bits, sparsity):
    qm = cases.pruned_zoo("har-lif", sparsity, bits, datasets)
    for n in ("fc1", "fc2", "fc3"):  # at least the pruned share is zero, in float and in fixed point
        assert np.count_nonzero(qm.graph.nodes[n].weight == 0) >= round(sparsity * qm.graph.nodes[n].weight.size)
        assert np.count_nonzero(qm.quant["nodes"][n]["w"] == 0) >= round(sparsity * qm.graph.nodes[n].weight.size)
    compact = program.build(qm.graph, "int", qm.quant)
    dense = program.build(qm.graph, "int", qm.quant, compact=False)
    ops_ = compact.prog[:, L.OP]
    if sparsity >= 0.8:  # fc2 (160 x 160) is stored sparse from 80 % on
        assert L.OP_SPARSE in ops_
    if bits == 4:
        assert any(r[L.OP] == L.OP_SPARSE and r[L.SPARSE_INT4] or r[L.OP] == L.OP_DENSE and r[L.DENSE_INT4]
                   for r in compact.prog)
    assert L.OP_SPARSE not in dense.prog[:, L.OP] and not dense.prog[dense.prog[:, L.OP] == L.OP_DENSE, L.DENSE_INT4].any()
    _same_run(compact, dense, har)
    # float: the same network, its float weights sparse where smaller
    fc, fd = program.build(qm.graph, "float"), program.build(qm.graph, "float", compact=False)
    assert (L.OP_SPARSE in fc.prog[:, L.OP]) == (sparsity >= 0.5)
    _same_run(fc, fd, har)


def test_random_pruned_networks_run_as_their_dense_twins():
    """Every index width, 4-bit sparse and dense rows, 64-bit accumulators (tests/firmware/cases.py)."""
    seen = set()
    for name, qm, xs in cases.pruned_models():
        p = qm.program("int")
        for r in p.prog:
            if r[L.OP] == L.OP_SPARSE:
                seen.add(("ptr", int(r[L.SPARSE_PTR_BYTES])))
                seen.add(("idx", int(r[L.SPARSE_IDX_BYTES])))
                seen.add(("int4", int(r[L.SPARSE_INT4])))
                seen.add(("wide", int(r[L.SPARSE_WIDE])))
            elif r[L.OP] == L.OP_DENSE and r[L.DENSE_INT4]:
                seen.add(("dense int4", 1))
        _same_run(p, program.build(qm.graph, "int", qm.quant, compact=False), xs)
        _same_run(qm.program("float"), program.build(qm.graph, "float", compact=False), xs)
    assert seen == {("ptr", 2), ("ptr", 4), ("idx", 1), ("idx", 2), ("int4", 0), ("int4", 1), ("wide", 0),
                    ("wide", 1), ("dense int4", 1)}


def test_the_executor_variant_of_a_compact_program_equals_the_full_one(datasets, har):
    qm = cases.pruned_zoo("har-lif", 0.8, 4, datasets)  # sparse 4-bit fc1, fc2; dense 4-bit fc3
    s = qm.session("int")
    p = s.program
    assert E.features(p.prog, integer=True) == E.USES_SPARSE | E.USES_INT4 == s._exec.bits  # noqa: SLF001
    assert not E.features(Model.load("zoo:har-lif").program("int").prog, True) & (E.USES_SPARSE | E.USES_INT4)
    assert E.features(qm.program("float").prog, integer=False) == E.USES_SPARSE
    want, _ = s.run(har)
    full = E.executor(E.ALL)
    out = np.zeros((len(har), 1, p.n_out), np.float32)
    sat = np.zeros_like(s.saturations)
    full.run_int(p.prog, p.fpar, p.ipar, p.wbuf, np.zeros_like(s.state), np.zeros_like(s.act),
                 np.zeros_like(s._acc32), np.zeros_like(s._acc64), np.zeros_like(s._idx),  # noqa: SLF001
                 np.zeros(1, np.int64), har.reshape(len(har), 1, -1), out, np.zeros((0, 4), np.int64),
                 np.zeros((1, 1, 1)), sat)
    np.testing.assert_array_equal(out[:, 0], want.reshape(len(har), -1))
    np.testing.assert_array_equal(sat, s.saturations)


CHILD = """
import json, sys, time
import numpy as np
from numba.core import event
from edgebrain.model import Model
m = Model.load(sys.argv[1])
s = m.session(sys.argv[2])
with event.install_recorder("numba:compile") as rec:
    t0 = time.process_time()
    s.step(np.zeros(m.input_shape, np.float32))
    cpu = time.process_time() - t0
print(json.dumps([sorted({ev.data["dispatcher"].py_func.__name__ for _, ev in rec.buffer if ev.is_start}), cpu]))
"""


def first_step(cache: Path, model: str, precision: str) -> tuple[set, float]:
    """(the functions Numba compiles for the first step of ``model`` with the cache ``cache``, CPU
    seconds of that step), in a fresh process."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache), PYTHONPATH=str(REPO))
    r = subprocess.run([sys.executable, "-c", CHILD, model, precision], capture_output=True, text=True, env=env,
                       timeout=900, cwd=REPO)
    assert r.returncode == 0, r.stderr
    names, cpu = json.loads(r.stdout.strip().splitlines()[-1])
    return set(names), cpu


def test_only_a_compact_model_compiles_the_compact_kernels(tmp_path):
    """With an empty cache, the first step of zoo:har-lif compiles no compact kernel; that of har-lif
    pruned to 80 % with 4-bit weights compiles sparse_int and dense_int4 (in float sparse_f32)."""
    pruned = tmp_path / "pruned.ebm"
    cases.pruned_zoo("har-lif", 0.8, 4).save(pruned)
    dense, _ = first_step(tmp_path / "dense", "zoo:har-lif", "int")
    assert "dense_int" in dense and not dense & {"sparse_int", "dense_int4", "sparse_f32"}, dense
    got, _ = first_step(tmp_path / "pruned", str(pruned), "int")
    assert {"sparse_int", "dense_int4"} <= got, got
    got, _ = first_step(tmp_path / "pruned", str(pruned), "float")
    assert "sparse_f32" in got and "sparse_int" not in got, got


@pytest.mark.parametrize("name", ["har-lif", "kws", "basicmotions", "nmnist"])
def test_a_dense_model_lowers_as_before(name):
    """No dense synapse of these zoo models is smaller stored sparse: the rows and buffers are those of
    the dense lowering (the one before compact weights), so their blobs are the same bytes, format 1."""
    m = Model.load("zoo:" + name)
    for precision in ("int", "float"):
        a = program.build(m.graph, precision, m.quant)
        b = program.build(m.graph, precision, m.quant, compact=False)
        for k in ("prog", "fpar", "ipar", "wbuf"):
            np.testing.assert_array_equal(getattr(a, k), getattr(b, k), err_msg=k)
    p = m.program("int")
    assert B.pack(p) == B.pack(program.build(m.graph, "int", m.quant, compact=False))
    assert B.unpack(B.pack(p)).header["format_version"] == 1


def test_har_l2mu_keeps_its_mostly_zero_layers_sparse():
    """zoo:har-l2mu's A and B (64 x 64 and 16 x 64, 94 % zeros) and enc0 (83 %) are smaller sparse; it
    runs as its dense lowering does."""
    m = Model.load("zoo:har-l2mu")
    p = m.program("int")
    sparse = {p.instr_node[r] for r, row in enumerate(p.prog) if row[L.OP] == L.OP_SPARSE}
    assert sparse == {"A", "B", "enc0"}
    dense = program.build(m.graph, "int", m.quant, compact=False)
    assert len(B.pack(p)) < len(B.pack(dense))
    xs = (np.random.default_rng(0).standard_normal((300, 6)) * 3).astype(np.float32)
    _same_run(p, dense, xs)


# ------------------------------------------------------------------ metrics


def test_footprint_counts_the_compact_weights(datasets):
    qm = cases.pruned_zoo("har-lif", 0.8, 8, datasets)
    fp = M.footprint(qm, "int")
    dense = M.footprint(Model.load("zoo:har-lif"), "int")
    saved = 0
    for n in ("fc1", "fc2", "fc3"):
        w = qm.quant["nodes"][n]["w"]
        n_out, n_in = w.shape
        nnz = int(np.count_nonzero(w))
        # by hand: dense n_in·n_out bytes; sparse nnz values + nnz one-byte indices + (n_in + 1) two-byte pointers
        csr = nnz + nnz + 2 * (n_in + 1)
        pad = lambda k: k + (-k) % 16  # noqa: E731  (int8 values padded to 16, indices to 4 bytes)
        sparse = pad(nnz) + (nnz + (-nnz) % 4) + (2 * (n_in + 1) + (-2 * (n_in + 1)) % 4) < pad(n_in * n_out)
        layer = fp["layers"][n]
        assert layer["weights"] == ("sparse" if sparse else "dense")
        stored = csr if sparse else n_in * n_out
        bias = 4 * qm.quant["nodes"][n]["b"].size if "b" in qm.quant["nodes"][n] else 0
        assert layer["param_bytes"] == stored + bias + 8 * n_out
        saved += n_in * n_out - stored
    assert fp["layers"]["fc2"]["weights"] == "sparse" and saved > 0.5 * 27360
    assert fp["param_bytes"] == dense["param_bytes"] - saved
    fp4 = M.footprint(cases.pruned_zoo("har-lif", 0.8, 4, datasets), "int")
    assert fp4["layers"]["fc3"]["weights"] == "dense 4-bit" and fp4["param_bytes"] < fp["param_bytes"]


def test_operation_counts_charge_only_non_zero_weights(datasets):
    qm = cases.pruned_zoo("har-lif", 0.9, 8, datasets)
    c = M.count_ops(qm)  # the worst case: every input non-zero
    nnz = {n: int(np.count_nonzero(qm.quant["nodes"][n]["w"])) for n in ("fc1", "fc2", "fc3")}
    assert c["eff_macs"] == nnz["fc1"] and c["eff_acs"] == nnz["fc2"] + nnz["fc3"]
    assert c["dense"] == 6 * 160 + 160 * 160 + 160 * 5
    for n in nnz:
        assert c["layers"][n]["eff_macs"] + c["layers"][n]["eff_acs"] == nnz[n]
    assert isinstance(qm.graph.nodes["fc2"], ops.Affine)
