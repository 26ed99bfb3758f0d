"""Pruned and 4-bit models stored compactly, in the ``.ebm`` file and in the firmware blob, and run
by the C runtime, bit for bit as the Numba integer session.

* ``zoo:har-lif`` pruned by magnitude to 80 % of each dense synapse's weights and quantized again
  (int8 and int4) runs identically through the Numba session, the C runtime (CSession and
  ``edgebrain run --backend c``) and the emulated Cortex-M4 (``edgebrain stream --target qemu-m4``:
  the same decisions); the random pruned networks of tests/firmware/cases.py (every index width,
  4-bit rows, 64-bit accumulators) too;
* the ``.ebm`` round trip keeps every array exactly (dtype and values), the file is format 1.1 and
  its data section is what the format says it is, by hand (each CSR part a 64-byte aligned
  buffer); a dense model is written byte for byte as before (format 1.0);
* the blob is format 2, its weights section holds what the format says by hand, and it shrinks
  by the weights saved; ``firmware export`` and ``devices fit`` report the compact blob;
* a damaged sparse part (row pointers that decrease, an index out of range, a 4-bit row on int16
  storage, a format-1 blob with a sparse row, a CSR that would expand a small file into a huge
  matrix) is one clear error naming the file and the field, in Python, and a refusal naming the row
  and column in C; random values in a sparse row's columns never crash the runtime.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from edgebrain import blob as B
from edgebrain import ebm, program
from edgebrain.errors import FormatError
from edgebrain.kernels import layout as L
from edgebrain.model import Model
from edgebrain.session import Session
from tests.conftest import REPO, one_error_line
from tests.firmware import cases

RECORDING = "imu/sp-sw-har/s16/s16_01_sw.csv"
DENSE_ZOO = ("har-lif", "kws", "basicmotions", "nmnist")


def cli(*args, env=None, timeout=600) -> subprocess.CompletedProcess:
    e = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    e.pop("EDGEBRAIN_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "edgebrain", *map(str, args)], capture_output=True, text=True, env=e,
                          cwd=REPO, timeout=timeout)


@pytest.fixture(scope="module")
def pruned(datasets, tmp_path_factory) -> dict:
    """(sparsity, weight bits) -> (quantized model, its .ebm path) for zoo:har-lif pruned and quantized
    again, calibrated on its real recording."""
    d = tmp_path_factory.mktemp("pruned")
    out = {}
    for sp, bits in ((0.8, 8), (0.8, 4), (0.5, 8)):
        qm = cases.pruned_zoo("har-lif", sp, bits, datasets)
        path = d / f"har-lif-p{round(sp * 100)}-w{bits}.ebm"
        qm.save(path)
        out[sp, bits] = qm, path
    return out


@pytest.fixture(scope="module")
def har_xs(datasets) -> np.ndarray:
    got = cases.zoo_input("har-lif", datasets)
    if got is None:
        pytest.skip("the har-lif recording is not in the test datasets")
    return got[1][:600]


def _up(n: int, a: int) -> int:
    return n + (-n) % a


# ---------------------------------------------------------------------- the C runtime, bit for bit


@pytest.mark.parametrize("key", [(0.8, 8), (0.8, 4)])
def test_the_c_runtime_runs_the_pruned_model_as_numba_does(clib, pruned, har_xs, key):
    from edgebrain.csession import CSession

    qm, _ = pruned[key]
    p = qm.program("int")
    assert L.OP_SPARSE in p.prog[:, L.OP]
    s, c = Session(p), CSession(p)
    want, _ = s.run(har_xs)
    got, _ = c.run(har_xs)
    np.testing.assert_array_equal(got, want.reshape(got.shape))
    np.testing.assert_array_equal(c.state[:p.state_size], s.state[0, :p.state_size])
    np.testing.assert_array_equal(c.act[:p.act_size], s.act[0, :p.act_size])
    np.testing.assert_array_equal(c.saturations, s.saturations)
    assert np.count_nonzero(s.act) > 0


def test_the_c_runtime_runs_every_pruned_network_as_numba_does(clib):
    from edgebrain.csession import CSession

    for name, p, xs in cases.pruned_cases():
        s, c = Session(p), CSession(p)
        want, _ = s.run(xs)
        got, _ = c.run(xs)
        np.testing.assert_array_equal(got, want.reshape(got.shape), err_msg=name)
        np.testing.assert_array_equal(c.state[:p.state_size], s.state[0, :p.state_size], err_msg=name)
        np.testing.assert_array_equal(c.saturations, s.saturations, err_msg=name)


def test_run_with_the_c_backend_is_bit_identical(clib, pruned, har_xs, tmp_path):
    from edgebrain import cbuild

    lib = cbuild.library()  # the children reuse this build through their own XDG cache
    dst = tmp_path / "xdg" / "edgebrain" / "cruntime" / lib.parent.name
    dst.mkdir(parents=True)
    shutil.copy2(lib, dst / lib.name)
    env = {"XDG_CACHE_HOME": str(tmp_path / "xdg")}
    np.save(tmp_path / "x.npy", har_xs[:400])
    for key in ((0.8, 8), (0.8, 4)):
        _, path = pruned[key]
        outs = {}
        for backend, extra in (("c", ["--backend", "c"]), ("numba", ["--precision", "int"])):
            outs[backend] = tmp_path / f"{backend}.npz"
            r = cli("run", path, "-i", tmp_path / "x.npy", "-o", outs[backend], "--record", "lif1", *extra, env=env)
            assert r.returncode == 0, r.stderr
        a, b = np.load(outs["c"]), np.load(outs["numba"])
        assert sorted(a.files) == sorted(b.files) and "spikes/lif1" in a.files
        for k in a.files:
            assert a[k].dtype == b[k].dtype
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
        assert np.count_nonzero(a["spikes/lif1"]) > 0


def _qemu_m4():
    from edgebrain.stream import emulated as E

    b = E.BOARDS["qemu-m4"]
    for tool, apt in ((b.qemu, b.qemu_apt), (b.cc, b.cc_apt)):
        if not shutil.which(tool):
            pytest.skip(f"{tool} is not installed (apt-get install {apt})")
    return E.build_firmware("qemu-m4")


def _stream(*args) -> tuple[list, dict]:
    r = cli("stream", *args, "--json")
    assert r.returncode == 0, r.stderr
    lines = [json.loads(ln) for ln in r.stdout.splitlines()]
    return [{k: v for k, v in d.items() if k != "latency_ms"} for d in lines[:-1]], lines[-1]["summary"]


@pytest.mark.parametrize("key", [(0.8, 8), (0.8, 4)])
def test_the_emulated_cortex_m4_decides_as_python(pruned, datasets, key):
    """The pruned model streamed through qemu-system-arm's Cortex-M4 board: the same decisions (time,
    label, confidence) as the Python integer path."""
    _qemu_m4()
    src = Path(datasets) / RECORDING
    if not src.is_file():
        pytest.skip(f"{src} not found")
    _, path = pruned[key]
    want, want_sum = _stream(path, "--source", src, "--precision", "int")
    got, got_sum = _stream(path, "--source", src, "--target", "qemu-m4")
    assert len(want) >= 20 and got == want
    assert got_sum["saturations"] == want_sum["saturations"] and got_sum["steps"] == want_sum["steps"]
    assert got_sum["board"]["link"]["crc_errors"] == 0 and got_sum["board"]["board"]["errors"] == 0


def test_the_emulated_cortex_m4_is_bit_identical_over_hundreds_of_steps(pruned, har_xs):
    from edgebrain.stream import board as BD

    _qemu_m4()
    qm, _ = pruned[0.8, 4]
    xs = har_xs[:300]
    want, _ = qm.session("int").run(xs)
    s = BD.board_session(qm, "qemu-m4", on_reset="error")
    try:
        got, _ = s.run(xs)
    finally:
        s.close()
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


# ---------------------------------------------------------------------- the blob


def test_the_blob_is_format_2_and_its_weights_are_what_the_format_says(pruned):
    qm, _ = pruned[0.8, 8]
    compact, dense = qm.program("int"), program.build(qm.graph, "int", qm.quant, compact=False)
    dc, dd = B.pack(compact), B.pack(dense)
    hc, hd = B.unpack(dc).header, B.unpack(dd).header
    assert (hc["format_version"], hd["format_version"]) == (2, 1)
    # by hand: every layer sparse (80 % zeros), its int8 values in wbuf, each part padded to 16 bytes but the last
    nnz = [int(np.count_nonzero(qm.quant["nodes"][n]["w"])) for n in ("fc1", "fc2", "fc3")]
    assert [int(r[L.SPARSE_NNZ]) for r in compact.prog if r[L.OP] == L.OP_SPARSE] == nnz
    assert hc["wbuf_n"] == _up(nnz[0], 16) + _up(nnz[1], 16) + nnz[2]
    assert hd["wbuf_n"] == _up(6 * 160, 16) + _up(160 * 160, 16) + 160 * 5
    # the row pointers (161 or 7 uint16) and indices (nnz uint8) in ipar, each padded to whole int32s
    extra = sum(_up(2 * (n_in + 1), 4) // 4 + _up(k, 4) // 4 for n_in, k in zip((6, 160, 160), nnz))
    assert hd["ipar_n"] + extra <= hc["ipar_n"] <= hd["ipar_n"] + extra + 3 * 16  # (+ the alignment padding moved)
    saved = (hd["wbuf_n"] - hc["wbuf_n"]) - 4 * (hc["ipar_n"] - hd["ipar_n"])
    assert len(dd) - len(dc) == pytest.approx(saved, abs=16) and len(dc) < 0.7 * len(dd)
    qm4, _ = pruned[0.8, 4]
    assert len(B.pack(qm4.program("int"))) < len(dc)  # 4-bit values: half the bytes again


@pytest.mark.parametrize("name", DENSE_ZOO)
def test_a_dense_zoo_model_keeps_its_blob_and_file_bytes(name, tmp_path):
    m = Model.load("zoo:" + name)
    data = B.pack(m.program("int"))
    committed = json.loads((REPO / "edgebrain" / "data" / "firmware_footprint.json").read_text())["zoo_blobs"]
    assert B.unpack(data).header["format_version"] == 1 and len(data) == committed[f"zoo:{name}"]["blob"]
    m.save(tmp_path / "again.ebm")
    assert (tmp_path / "again.ebm").read_bytes() == Path(m.path).read_bytes()  # format 1.0, byte for byte


def test_firmware_export_and_devices_fit_report_the_compact_blob(pruned, tmp_path):
    qm, path = pruned[0.8, 8]
    want = len(B.pack(qm.program("int")))
    r = cli("firmware", "export", path, "-o", tmp_path / "fw", "--target", "stm32f446", "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["sizes"]["blob"] == want and res["blob_format_version"] == 2
    assert f"#define MODEL_BLOB_LEN {want}u" in (tmp_path / "fw" / "model.h").read_text()
    r = cli("devices", "fit", path, "--device", "rp2040", "--json")
    assert r.returncode == 0, r.stderr
    fit = json.loads(r.stdout)
    assert fit["flash"]["items"]["blob"] == want
    dense = len(B.pack(Model.load("zoo:har-lif").program("int")))
    assert want < 0.7 * dense


# ---------------------------------------------------------------------- the .ebm file


def _arrays(m) -> dict:
    out = {}
    for n, op in m.graph.nodes.items():
        for k, a in op.arrays().items():
            out[f"{n}.{k}"] = a
        for k, a in (m.quant or {}).get("nodes", {}).get(n, {}).items():
            if isinstance(a, np.ndarray):
                out[f"{n}.q.{k}"] = a
    return out


def _header(path: Path) -> tuple[dict, int, bytes]:
    raw = path.read_bytes()
    (hlen,) = struct.unpack_from("<I", raw, 12)
    data0 = _up(16 + hlen + 4, ebm.ALIGN)
    return json.loads(raw[16:16 + hlen]), data0, raw


@pytest.mark.parametrize("key", [(0.8, 8), (0.8, 4), (0.5, 8)])
def test_the_ebm_round_trip_is_exact_and_the_file_is_what_the_format_says(pruned, key, tmp_path):
    qm, path = pruned[key]
    back = Model.load(path)
    a, b = _arrays(qm), _arrays(back)
    assert sorted(a) == sorted(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    h, data0, raw = _header(path)
    assert struct.unpack_from("<HH", raw, 8) == (1, 1)
    assert len(raw) == data0 + h["data_size"]
    # the same model written without compact weights: every buffer plain (a 1.0 file)
    dense_path = tmp_path / "dense.ebm"
    plain = ebm._Buffers.weight  # noqa: SLF001 - the writer's one choice, bypassed for the comparison
    try:
        ebm._Buffers.weight = lambda self, w, sparse, int4: self.ref(w)  # noqa: SLF001
        qm.save(dense_path)
    finally:
        ebm._Buffers.weight = plain  # noqa: SLF001
    hd, _, rawd = _header(dense_path)
    assert struct.unpack_from("<HH", rawd, 8) == (1, 0)
    # by hand: a weight (out, in) of b-bit values with k non-zeros is stored as the CSR of its transpose,
    # (in + 1) uint16 pointers, k uint8 indices (160 outputs at most) and its k values (4-bit: two per
    # byte), when those three 64-byte aligned buffers and 320 bytes of header bookkeeping are smaller
    # than the plain buffer; else plain (4-bit: packed two per byte). Every buffer starts 64-byte aligned.
    _, bits = key
    delta = 0
    for n in ("fc1", "fc2", "fc3"):
        for arr, vbits in ((qm.graph.nodes[n].weight, 32), (qm.quant["nodes"][n]["w"], bits)):
            n_out, n_in = arr.shape
            k = int(np.count_nonzero(arr))
            parts = 2 * (n_in + 1), k, (k * vbits + 7) // 8
            plain = arr.size * arr.dtype.itemsize  # what the 1.0 file holds: float32, or int8 even for 4-bit
            packed = (arr.size * vbits + 7) // 8
            if sum(_up(x, 64) for x in parts) + 320 < _up(packed, 64):
                delta += sum(_up(x, 64) for x in parts) - _up(plain, 64)
            else:
                delta += _up(packed, 64) - _up(plain, 64)
    assert h["data_size"] - hd["data_size"] == delta
    assert path.stat().st_size < dense_path.stat().st_size
    if key == (0.8, 8):
        assert path.stat().st_size < 0.5 * Path(Model.load("zoo:har-lif").path).stat().st_size


def test_4_bit_convolutions_are_packed_in_the_file_and_unpacked_in_the_blob(tmp_path):
    """A 4-bit model with convolutions (tests/firmware/cases.py's conv2d network): every synapse's
    integer weights packed two per byte in the .ebm, read back exactly; in the blob only the dense
    rows are 4-bit (the convolution kernels read one weight per byte)."""
    from edgebrain.quant import quantize

    rng = np.random.default_rng(11)
    graph = cases.conv2d_graph(rng)
    calib = rng.standard_normal((80,) + tuple(graph.out_shapes[graph.inputs[0]])).astype(np.float32)
    qm, _ = quantize(Model(graph), calib, weight_bits=4)
    qm.save(tmp_path / "conv4.ebm")
    h, _, raw = _header(tmp_path / "conv4.ebm")
    assert struct.unpack_from("<HH", raw, 8) == (1, 1)
    packed = [n for n, q in h["quant"]["nodes"].items() if isinstance(q, dict) and "$int4" in q.get("w", {})]
    assert {"c1", "c2", "c3", "c4", "fc"} <= set(packed)
    a, b = _arrays(qm), _arrays(Model.load(tmp_path / "conv4.ebm"))
    for k in a:
        assert a[k].dtype == b[k].dtype
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    p = qm.program("int")
    assert all(r[L.DENSE_INT4] == 1 for r in p.prog if r[L.OP] == L.OP_DENSE)
    assert B.unpack(B.pack(p)).header["format_version"] == 2


def test_old_files_still_load_and_a_compact_reference_needs_format_1_1(pruned, tmp_path):
    for name in (*DENSE_ZOO, "har-l2mu"):
        Model.load("zoo:" + name)  # written as 1.0 before compact weights existed
    _, path = pruned[0.8, 8]
    raw = bytearray(path.read_bytes())
    struct.pack_into("<HH", raw, 8, 1, 0)
    bad = tmp_path / "marked-1.0.ebm"
    bad.write_bytes(bytes(raw))
    r = cli("inspect", bad)
    one_error_line(r.returncode, r.stderr, "marked-1.0.ebm", "node 'fc1' field 'weight'", "'$csr'", "format 1.1")


def _rewrite(src: Path, dst: Path, mutate) -> None:
    """``src`` with ``mutate(header, buffers)`` applied (buffers: index -> bytearray), every SHA-256,
    the header CRC and the padding made valid again: a hand-made file, not noise."""
    h, data0, raw = _header(src)
    bufs = {k: bytearray(raw[data0 + e["offset"]:data0 + e["offset"] + e["nbytes"]]) for k, e in enumerate(h["buffers"])}
    mutate(h, bufs)
    data, off = b"", 0
    for k, e in enumerate(h["buffers"]):
        b = bytes(bufs[k])
        off = _up(off, ebm.ALIGN)
        data += b"\0" * (off - len(data)) + b
        e.update(offset=off, nbytes=len(b), sha256=hashlib.sha256(b).hexdigest())
        off += len(b)
    h["data_size"] = len(data)
    hj = json.dumps(h, separators=(",", ":")).encode()
    pre = raw[:12] + struct.pack("<I", len(hj)) + hj + struct.pack("<I", zlib.crc32(hj))
    dst.write_bytes(pre + b"\0" * ((-len(pre)) % ebm.ALIGN) + data)


def _csr_of(h, node: str, quant: bool) -> dict:
    nd = next(n for n in h["graph"]["nodes"] if n["name"] == node)
    return (h["quant"]["nodes"][node]["w"] if quant else nd["arrays"]["weight"])["$csr"]


def _decreasing_ptr(node, quant=False):
    def mutate(h, bufs):
        i = _csr_of(h, node, quant)["ptr"]["$buf"]
        p = np.frombuffer(bytes(bufs[i]), "<u2").copy()
        p[5] = p[6] + 1  # ptr[6] < ptr[5], the first decrease
        bufs[i][:] = p.tobytes()
    return mutate


def _index(node, value, quant=False):
    def mutate(h, bufs):
        bufs[_csr_of(h, node, quant)["idx"]["$buf"]][3] = value
    return mutate


def _repeated_index(node, quant=False):
    def mutate(h, bufs):
        csr = _csr_of(h, node, quant)
        p = np.frombuffer(bytes(bufs[csr["ptr"]["$buf"]]), "<u2")
        e = int(p[next(j for j in range(len(p) - 1) if p[j + 1] - p[j] >= 2)])
        bufs[csr["idx"]["$buf"]][e + 1] = bufs[csr["idx"]["$buf"]][e]
    return mutate


def _bomb(h, bufs):
    _csr_of(h, "fc2", False)["shape"] = [65536, 160]  # 10 M weights from a few thousand stored values


EBM_CASES = {
    "decreasing-row-pointers": (_decreasing_ptr("fc2"), ["node 'fc2' field 'weight'", "sparse (CSR) weight",
                                                          "row pointers decrease: ptr[6]"]),
    "index-out-of-range": (_index("fc2", 200), ["node 'fc2' field 'weight'", "output index 200",
                                                "expected < n_out = 160"]),
    "quantized-index-repeated": (_repeated_index("fc2", quant=True),
                                 ["quantization parameters.nodes.fc2.w", "sparse (CSR) weight", "do not increase"]),
    "expansion": (_bomb, ["node 'fc2' field 'weight'", "more than edgebrain writes"]),
    "int4-flag-not-bool": (lambda h, b: _csr_of(h, "fc2", True).__setitem__("int4", 1),
                           ["quantization parameters.nodes.fc2.w", "'int4' = 1"]),
}


@pytest.mark.parametrize("name", list(EBM_CASES))
def test_a_damaged_sparse_weight_in_an_ebm_is_one_error_line(pruned, tmp_path, name):
    mutate, words = EBM_CASES[name]
    _, path = pruned[0.8, 8]
    bad = tmp_path / "hand_made.ebm"
    _rewrite(path, bad, mutate)
    with pytest.raises(FormatError):
        Model.load(bad)
    r = cli("inspect", bad)
    one_error_line(r.returncode, r.stderr, "hand_made.ebm", *words)


def test_an_unchanged_rewrite_still_loads(pruned, tmp_path):
    """(the helper above makes valid files: only the mutation is refused)"""
    _, path = pruned[0.8, 4]
    _rewrite(path, tmp_path / "same.ebm", lambda h, b: None)
    a, b = _arrays(Model.load(path)), _arrays(Model.load(tmp_path / "same.ebm"))
    assert all(np.array_equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------------- a damaged blob


def _sparse_program(pruned):
    qm, _ = pruned[0.8, 8]
    p = qm.program("int")
    r = int(np.flatnonzero(p.prog[:, L.OP] == L.OP_SPARSE)[1])  # fc2
    return p, r


def _with(p, prog=None, ipar=None):
    return type(p)(**{**p.__dict__, **({"prog": prog} if prog is not None else {}),
                      **({"ipar": ipar} if ipar is not None else {})})


BLOB_CASES = {
    "decreasing-row-pointers": ("ptr", L.SPARSE_PTR, "row pointers decrease"),
    "last-pointer": ("last", L.SPARSE_PTR, "last row pointer"),
    "index-out-of-range": ("idx", L.SPARSE_IDX, "output index 200"),
    "index-repeated": ("dup", L.SPARSE_IDX, "do not increase"),
    "pointer-width-3": ("pw", L.SPARSE_PTR_BYTES, "ptr_bytes = 3"),
    "int4-flag-2": ("int4", L.SPARSE_INT4, "int4 = 2"),
    "values-outside-wbuf": ("w", L.SPARSE_W, "lie outside wbuf"),
    "pointers-outside-ipar": ("ptroff", L.SPARSE_PTR, "lie outside ipar"),
}


def _damage(p, r, kind):
    prog, ipar = p.prog.copy(), p.ipar.copy()
    ib = ipar.view(np.uint8)
    po, io = 4 * int(prog[r, L.SPARSE_PTR]), 4 * int(prog[r, L.SPARSE_IDX])
    if kind == "ptr":
        ib[po:po + 2 * 161].view("<u2")[40] = 60000  # beyond the stored entries, and ptr[41] < ptr[40]
    elif kind == "last":
        ib[po + 2 * 160:po + 2 * 161].view("<u2")[0] -= 1
    elif kind == "idx":
        ib[io + 7] = 200
    elif kind == "dup":
        ptr = ib[po:po + 2 * 161].view("<u2")
        j = next(k for k in range(160) if ptr[k + 1] - ptr[k] >= 2)
        e = int(ptr[j])
        ib[io + e + 1] = ib[io + e]
    elif kind == "pw":
        prog[r, L.SPARSE_PTR_BYTES] = 3
    elif kind == "int4":
        prog[r, L.SPARSE_INT4] = 2
    elif kind == "w":
        prog[r, L.SPARSE_W] = p.wbuf.size - 3
    elif kind == "ptroff":
        prog[r, L.SPARSE_PTR] = p.ipar.size - 10
    return _with(p, prog, ipar)


@pytest.mark.parametrize("name", list(BLOB_CASES))
def test_a_damaged_sparse_row_is_refused_naming_the_row_and_column(clib, pruned, name):
    from edgebrain.csession import CSession, c_load

    kind, col, words = BLOB_CASES[name]
    p, r = _sparse_program(pruned)
    data = B.pack(_damage(p, r, kind))  # a valid checksum: a writer's bug or a hand-made blob
    colname = (L.HEADER + L.FIELDS[L.OP_SPARSE])[col]
    with pytest.raises(FormatError) as e:
        B.unpack(data, file="model.ebb")
    msg = str(e.value)
    assert "\n" not in msg and "model.ebb" in msg and f"row {r} (sparse), column '{colname}'" in msg and words in msg, msg
    assert c_load(data)[0] == B.STATUS_CODE["ERR_ROW"] and c_load(data)[2:] == (r, col)
    with pytest.raises(FormatError, match="model.ebb"):
        CSession(data, file="model.ebb")


def test_a_format_1_blob_with_a_sparse_row_is_refused(clib, pruned):
    from edgebrain.csession import c_load

    p, r = _sparse_program(pruned)
    data = bytearray(B.pack(p))
    struct.pack_into("<I", data, B.HEADER_OFFSETS["format_version"][0], 1)
    struct.pack_into("<I", data, B.HEADER_OFFSETS["crc32"][0], B.checksum(bytes(data)))
    with pytest.raises(FormatError, match=r"row \d+ \(sparse\), column 'op'.*format version 1"):
        B.unpack(bytes(data))
    rc, _, row, col = c_load(bytes(data))
    assert (rc, col) == (B.STATUS_CODE["ERR_ROW"], L.OP) and p.prog[row, L.OP] == L.OP_SPARSE
    # and a blob with 4-bit rows (sparse and dense) marked format 1
    p4 = cases.pruned_zoo("har-lif", 0.8, 4).program("int")
    assert any(row[L.OP] == L.OP_DENSE and row[L.DENSE_INT4] for row in p4.prog)
    d4 = bytearray(B.pack(p4))
    struct.pack_into("<I", d4, B.HEADER_OFFSETS["format_version"][0], 1)
    struct.pack_into("<I", d4, B.HEADER_OFFSETS["crc32"][0], B.checksum(bytes(d4)))
    assert c_load(bytes(d4))[0] == B.STATUS_CODE["ERR_ROW"]
    with pytest.raises(FormatError, match="format version 1"):
        B.unpack(bytes(d4))


def test_random_values_in_sparse_rows_never_crash(clib, pruned):
    """Random values in a sparse row's columns, and in its row pointers and indices, with the checksum
    fixed: refused by both checkers or run without a crash; Python never accepts what C refuses for a
    compact-row reason, and what C accepts, Python accepts."""
    from edgebrain.csession import CSession, c_load

    rng = np.random.default_rng(18)
    p, r = _sparse_program(pruned)
    accepted = 0
    cols = [L.SPARSE_ROWS, L.SPARSE_N_IN, L.SPARSE_N_OUT, L.SPARSE_W, L.SPARSE_NNZ, L.SPARSE_PTR, L.SPARSE_PTR_BYTES,
            L.SPARSE_IDX, L.SPARSE_IDX_BYTES, L.SPARSE_INT4, L.SPARSE_WIDE, L.IN_N, L.OUT_N]
    for trial in range(300):
        prog, ipar = p.prog.copy(), p.ipar.copy()
        if trial % 2:
            prog[r, int(rng.choice(cols))] = int(rng.choice([-1, 0, 1, 2, 3, 4, 255, 256, 65535, 65536, 2 ** 31,
                                                              -(2 ** 40), int(rng.integers(0, 40000))]))
        else:
            ib = ipar.view(np.uint8)
            lo = 4 * int(min(prog[r, L.SPARSE_PTR], prog[r, L.SPARSE_IDX]))
            for _ in range(int(rng.integers(1, 4))):
                ib[lo + int(rng.integers(0, 6000))] = int(rng.integers(0, 256))
        data = B.pack(_with(p, prog, ipar))
        rc = c_load(data)[0]
        try:
            B.unpack(data)
            py_ok = True
        except FormatError:
            py_ok = False
        if rc == 0:
            assert py_ok
            accepted += 1
            CSession(data).run(np.ones((3, 6), np.float32) * 5)
    assert accepted > 0
