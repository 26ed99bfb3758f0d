"""Hostile model files (issue 11, items 2, 11 and 12): NIR datasets that declare more than they
hold, hand-made ``.ebm`` headers with a valid CRC, and model paths that are not regular files.
Each runs the real command line in a child process: one ``error:`` line, exit code 2, no
traceback, no hang, peak RSS within 64 MiB of inspecting a valid model, nothing written."""

from __future__ import annotations

import json
import os
import struct
import zlib
from pathlib import Path

import h5py
import nir
import numpy as np
import pytest

from edgebrain import ebm
from tests.hostile._harness import assert_rss_close, assert_unchanged, assert_user_error, baseline, run_cli, tree_hash

ZOO_EBM = Path(ebm.__file__).parent / "zoo" / "har-lif.ebm"


def _good_nir(path: Path) -> Path:
    rng = np.random.default_rng(0)
    nodes = {"input": nir.Input(input_type=np.array([4])),
             "fc": nir.Affine(weight=rng.standard_normal((3, 4)).astype(np.float32), bias=np.zeros(3, np.float32)),
             "lif": nir.LIF(tau=np.full(3, 1e-3), r=np.full(3, 10.0), v_leak=np.zeros(3), v_threshold=np.ones(3)),
             "output": nir.Output(output_type=np.array([3]))}
    nir.write(path, nir.NIRGraph(nodes=nodes, edges=[("input", "fc"), ("fc", "lif"), ("lif", "output")]))
    return path


def _unwritten_weight(path: Path, shape, bias: int) -> Path:
    """A valid NIR file whose Affine weight is replaced by a gzip-compressed dataset of ``shape``
    that was never written (HDF5 reads it back as zeros), and its bias by ``bias`` zeros."""
    _good_nir(path)
    with h5py.File(path, "r+") as f:
        g = f["node/nodes/fc"]
        del g["weight"], g["bias"]
        g.create_dataset("weight", shape=shape, dtype="<f4", chunks=(min(shape[0], 1024), min(shape[1], 1024)),
                         compression="gzip")
        g.create_dataset("bias", data=np.zeros(bias, np.float32), compression="gzip")
    return path


def _check(r, before, after, *must):
    assert_user_error(r, contains=must)
    assert_rss_close(r, baseline("model"))
    assert_unchanged(before, after)


@pytest.mark.parametrize("bias", [3, 62500], ids=["bias-mismatch", "bias-consistent"])
def test_nir_with_a_huge_never_written_weight_is_refused_before_reading(tmp_path, bias):
    """The issue's 57 KB file: a (62500, 4000) float32 weight (1 GB) that was never written. Before,
    ``inspect`` read it (4 GB peak) and then failed on the bias shape."""
    bad = _unwritten_weight(tmp_path / "bomb.nir", (62500, 4000), bias)
    assert bad.stat().st_size < 100_000
    before = tree_hash(tmp_path)
    r = run_cli(["inspect", bad], timeout=60, limit_as_mib=2048)
    _check(r, before, tree_hash(tmp_path), "bomb.nir", "/node/nodes/fc/weight", "(62500, 4000)")


def test_nir_dataset_shapes_are_checked_against_the_node_before_reading(tmp_path):
    """Below the stored-size check, a weight's declared shape is checked against its bias (and a
    neuron's fields against each other) before either is read."""
    bad = _unwritten_weight(tmp_path / "mismatch.nir", (250, 1000), 7)
    before = tree_hash(tmp_path)
    r = run_cli(["inspect", bad], timeout=60)
    _check(r, before, tree_hash(tmp_path), "node 'fc' (Affine)", "'bias' declares shape (7,)", "expected (250,)")


def _rehead(mutate) -> bytes:
    blob = ZOO_EBM.read_bytes()
    (hlen,) = struct.unpack_from("<I", blob, 12)
    data0 = 16 + hlen + 4
    data0 += (-data0) % ebm.ALIGN
    h = json.loads(blob[16:16 + hlen])
    mutate(h)
    hj = json.dumps(h).encode()
    pre = blob[:12] + struct.pack("<I", len(hj)) + hj + struct.pack("<I", zlib.crc32(hj))
    return pre + b"\0" * ((-len(pre)) % ebm.ALIGN) + blob[data0:]


def _stream(k, v):
    return lambda h: h["meta"]["stream"].__setitem__(k, v)


def _qnode(node, k, v):
    return lambda h: h["quant"]["nodes"][node].__setitem__(k, v)


def _huge_buffer(h):
    e = h["buffers"][0]
    e.update(shape=[62500, 4000], dtype="<f4", nbytes=62500 * 4000 * 4)
    h["data_size"] += 10 ** 9


# name: (header change, texts the error line must hold). Each loaded before (exit 0, or an
# "internal error" later); rate -5 streamed 199 samples as 0 steps.
EBM_CASES = {
    "card-without-precision": (lambda h: [r.pop("precision") for r in h["meta"]["card"]["results"]],
                               ["meta.card.results[0]", "precision"]),
    "card-not-an-object": (lambda h: h["meta"].__setitem__("card", [1, 2]), ["meta.card", "expected an object"]),
    "rate-fast": (_stream("rate", "fast"), ["meta.stream.rate", "'fast'"]),
    "rate-1e300": (_stream("rate", 1e300), ["meta.stream.rate", "1e+300"]),
    "rate-negative": (_stream("rate", -5), ["meta.stream.rate", "-5"]),
    "encoder-5": (_stream("encoder", 5), ["meta.stream.encoder", "5"]),
    "dq-2**31": (_qnode("lif1", "dq", 2 ** 31), ["lif1", "'dq'", "from 0 to 30"]),
    "dq--2**31": (_qnode("lif2", "dq", -2 ** 31), ["lif2", "'dq'", "from 0 to 30"]),
    "input-lo-above-hi": (lambda h: h["quant"]["nodes"]["input"].update(lo=127, hi=-127), ["'lo' = 127", "lo <= hi"]),
    "declared-1GB-buffer": (_huge_buffer, ["data ends at byte", "truncated"]),
}


@pytest.mark.parametrize("name", list(EBM_CASES))
def test_hand_made_ebm_headers_with_a_valid_crc(tmp_path, name):
    mutate, must = EBM_CASES[name]
    bad = tmp_path / "hand_made.ebm"
    bad.write_bytes(_rehead(mutate))
    before = tree_hash(tmp_path)
    r = run_cli(["inspect", bad], timeout=60)
    _check(r, before, tree_hash(tmp_path), "hand_made.ebm", *must)


def test_ebm_shifts_outside_the_contract_are_refused(tmp_path):
    """Shift amounts of -7, 63 and 200 in a quantized model's arrays: written by a buggy writer
    (right shape and dtype, valid checksums), refused on load (they ran before)."""
    import edgebrain

    m = edgebrain.load(ZOO_EBM)
    for shift in (-7, 63, 200):
        q = m.quant["nodes"]["fc1"]
        m.quant["nodes"]["fc1"] = {**q, "rq_s": np.full_like(q["rq_s"], shift)}
        bad = tmp_path / f"shift{shift}.ebm"
        m.save(bad)
        m.quant["nodes"]["fc1"] = q
        before = tree_hash(tmp_path)
        r = run_cli(["inspect", bad], timeout=60)
        _check(r, before, tree_hash(tmp_path), "fc1", "'rq_s'", f"holds {shift}", "from 0 to 62")


@pytest.mark.parametrize("kind", ["fifo", "dev-zero-link", "directory"])
@pytest.mark.parametrize("suffix", [".ebm", ".nir"])
def test_model_path_that_is_not_a_regular_file(tmp_path, kind, suffix):
    """A FIFO given as the model path blocked forever; a .ebm linked to /dev/zero was read until
    memory ran out. Both are refused before a byte is read."""
    p = tmp_path / f"model{suffix}"
    if kind == "fifo":
        os.mkfifo(p)
    elif kind == "dev-zero-link":
        os.symlink("/dev/zero", p)
    else:
        p.mkdir()
    before = tree_hash(tmp_path)
    r = run_cli(["inspect", p], timeout=30, limit_as_mib=2048)
    what = {"fifo": "FIFO", "dev-zero-link": "character device", "directory": "directory"}[kind]
    _check(r, before, tree_hash(tmp_path), f"model{suffix}", what, "not a regular file")


def _chunked_edges(path: Path, compression) -> Path:
    """The example NIR file with its edge list (variable-length strings) rewritten in chunks of
    two rows, as some HDF5 writers store text; nir.write stores it contiguously."""
    src = Path(__file__).resolve().parents[2] / "edgebrain" / "examples" / "motion_snntorch.nir"
    path.write_bytes(src.read_bytes())
    with h5py.File(path, "r+") as f:
        edges = f["node/edges"][()]
        del f["node/edges"]
        f.create_dataset("node/edges", data=edges, dtype=h5py.string_dtype(), chunks=(2, 2), compression=compression)
    return path


@pytest.mark.parametrize("compression", [None, "gzip"])
def test_nir_text_stored_in_chunks_is_checked_before_hdf5_reads_it(tmp_path, compression):
    """Issue 11 item 2, the last case: a variable-length string declares its length, and HDF5
    allocates that much per element before reading it. Contiguous text was checked from the
    file's bytes; text stored in chunks was read unchecked. Now its records are read raw (and
    inflated with a cap) and checked the same way."""
    from edgebrain.errors import FormatError
    from edgebrain.model import Model

    good = _chunked_edges(tmp_path / f"chunked-{compression}.nir", compression)
    assert Model.load(str(good)).graph.edges  # chunked text that is fine still loads
    if compression:
        return  # (patching the length inside a deflated chunk would need re-deflating: the raw case covers it)
    with h5py.File(good, "r") as f:
        off = f["node/edges"].id.get_chunk_info(0).byte_offset
    blob = bytearray(good.read_bytes())
    blob[off:off + 4] = struct.pack("<I", 0x7FFF0000)  # the first string now says it is 2 GB long
    bad = tmp_path / "huge-string.nir"
    bad.write_bytes(bytes(blob))
    with pytest.raises(FormatError, match=r"node/edges declares a string of 2147418112 bytes"):
        Model.load(str(bad))
    r = run_cli(["inspect", str(bad)])
    assert_user_error(r, contains=("node/edges", "declares a string"))


def test_nir_member_name_that_is_not_text_is_a_clear_error(tmp_path):
    """Found by the 100,000-example fuzz run: a flipped byte in a node's name made h5py return the
    name as bytes, and joining it to the graph's prefix was an internal error (TypeError)."""
    from edgebrain.errors import FormatError
    from edgebrain.model import Model

    src = Path(__file__).resolve().parents[2] / "edgebrain" / "examples" / "motion_snntorch.nir"
    p = tmp_path / "bad-name.nir"
    p.write_bytes(src.read_bytes())
    with h5py.File(p, "r+") as f:
        f.move("node/nodes/input", b"node/nodes/in\xffput")
    with pytest.raises(FormatError, match=r"group /node/nodes has a member named b'in\\xffput', which is not UTF-8"):
        Model.load(str(p))
    assert_user_error(run_cli(["inspect", str(p)]), contains=("bad-name.nir", "not UTF-8 text"))


@pytest.mark.parametrize("links", [1, 2], ids=["into-itself", "twice-per-level"])
def test_nir_group_linked_into_itself_is_refused_before_it_is_walked(tmp_path, links):
    """Found by the 100,000-example fuzz run: a damaged link made a node group contain itself, and
    the tree walk went round it until it had taken 466 MB; two such links per group would double
    the walk at every level. Each group is now walked once."""
    from edgebrain.errors import FormatError
    from edgebrain.model import Model

    src = Path(__file__).resolve().parents[2] / "edgebrain" / "examples" / "motion_snntorch.nir"
    p = tmp_path / "loop.nir"
    p.write_bytes(src.read_bytes())
    with h5py.File(p, "r+") as f:
        g = f["node/nodes/lif1"]
        for i in range(links):
            g[f"again{i}"] = g  # a hard link to the group itself
    with pytest.raises(FormatError, match=r"group /node/nodes/lif1/again0 is a group met before"):
        Model.load(str(p))
    r = run_cli(["inspect", str(p)])
    assert_user_error(r, contains=("loop.nir", "met before"))
    assert_rss_close(r, baseline("model"))
