"""The blob: its layout defined once (edgebrain/blob.py) with the C header generated from it, a
lossless round trip, and bad blobs (another format or edgebrain version, a bad checksum, a
truncated or inconsistent one) refused with a clear message in Python and a status code in C,
never a crash."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from edgebrain import blob as B
from edgebrain.errors import FormatError
from edgebrain.kernels import layout as L
from edgebrain.version import __version__
from tests.conftest import REPO
from tests.firmware import cases

HEADER = REPO / "edgebrain" / "cruntime" / "eb_layout.h"


def _program():
    rng = np.random.default_rng(5)
    prog, _ = cases.neuron_program([0b11, 0b111, 0b1000111, 1], 16, 4, rng)
    return prog


def _mlp_program():
    from edgebrain.quant import quantize
    from tests._build import snn_mlp

    model, _ = snn_mlp(seed=3)
    qm, _ = quantize(model, np.random.default_rng(0).standard_normal((50, 6)).astype(np.float32))
    return qm.program("int")


def _with_field(data: bytes, field: str, value, fix_crc=True) -> bytes:
    off, _, code = B.HEADER_OFFSETS[field]
    buf = bytearray(data)
    struct.pack_into("<" + code, buf, off, *(value if isinstance(value, tuple) else (value,)))
    if fix_crc:
        struct.pack_into("<I", buf, B.HEADER_OFFSETS["crc32"][0], B.checksum(bytes(buf)))
    return bytes(buf)


def _code(name):
    return B.STATUS_CODE[name]


def test_the_committed_c_header_is_generated_from_the_python_definition():
    assert HEADER.read_text() == B.c_header(), "run python tools/firmware/gen_header.py"
    text = HEADER.read_text()
    assert f"#define EB_DENSE_W_OFF {L.DENSE_W}\n" in text and f"#define EB_NEURON_HI {L.NEURON_HI}\n" in text
    assert f"#define EB_H_CRC32 {B.HEADER_OFFSETS['crc32'][0]}u\n" in text
    assert f'#define EB_EDGEBRAIN_VERSION "{__version__}"' in text


def test_docs_describe_every_field_and_status():
    text = (REPO / "docs" / "firmware.md").read_text()
    for name, _, _ in B.HEADER_FIELDS + B.OUTPUT_FIELDS:
        assert f"`{name}`" in text, name
    for name, _ in B.STATUS:
        assert f"`EB_{name}`" in text, name
    assert f"Format version {B.FORMAT_VERSION}; the header is {B.HEADER_SIZE} bytes" in text


def test_every_neuron_flag_is_in_the_header():
    """A flag bit the builder may set and the C runtime does not know would be refused at load."""
    from edgebrain.kernels import neuron as N

    bits = {k for k, v in vars(N).items() if k.isupper() and isinstance(v, int) and v > 0 and v & (v - 1) == 0
            and v < N.X_CLAMP}
    assert bits <= set(B.NEURON_FLAGS)


def test_round_trip_keeps_every_buffer_and_size():
    p = _mlp_program()
    data = B.pack(p)
    assert len(data) % B.ALIGN == 0 and data[:4] == B.MAGIC
    assert zlib.crc32(data[:B.HEADER_OFFSETS["crc32"][0]] + b"\0" * 4 + data[B.HEADER_OFFSETS["crc32"][0] + 4:]) \
        == struct.unpack_from("<I", data, B.HEADER_OFFSETS["crc32"][0])[0]
    b = B.unpack(data)
    np.testing.assert_array_equal(b.prog, p.prog)
    np.testing.assert_array_equal(b.ipar, p.ipar)
    np.testing.assert_array_equal(b.fpar, p.fpar)
    np.testing.assert_array_equal(b.wbuf, p.wbuf)
    assert b.wbuf.dtype == p.wbuf.dtype and b.state_dtype == p.state_dtype
    h = b.header
    assert (h["state_size"], h["act_size"], h["acc_size"], h["n_out"]) == (p.state_size, p.act_size, p.acc_size,
                                                                          p.n_out)
    assert b.input_shape == tuple(p.input_shape) and h["edgebrain_version"] == __version__
    assert h["input_scale"] == pytest.approx(p.scales[p.input_name], rel=1e-7)
    assert {k: v[:3] for k, v in b.outputs.items()} == {k: (c, n, tuple(s)) for k, (c, n, s) in p.outputs.items()}


def test_float_programs_are_refused():
    from tests._build import snn_mlp

    model, _ = snn_mlp()
    with pytest.raises(Exception, match="integer program"):
        B.pack(model.program("float"))


# ---------------------------------------------------------------------- bad blobs, in Python and in C


def test_another_format_version_names_both_versions(clib):
    from edgebrain.csession import c_load

    bad = _with_field(B.pack(_program()), "format_version", B.FORMAT_VERSION + 1)
    with pytest.raises(FormatError, match=rf"format version {B.FORMAT_VERSION + 1}; this edgebrain .* reads format "
                                          rf"version {B.FORMAT_VERSION}"):
        B.unpack(bad)
    assert c_load(bad)[:2] == (_code("ERR_FORMAT_VERSION"), B.HEADER_OFFSETS["format_version"][0])


def test_another_edgebrain_version_names_both_versions(clib):
    from edgebrain.csession import c_load

    bad = _with_field(B.pack(_program()), "edgebrain_version", b"9.9.9")
    with pytest.raises(FormatError, match=rf"written by edgebrain 9\.9\.9; this is edgebrain {__version__}"):
        B.unpack(bad)
    assert c_load(bad)[0] == _code("ERR_EDGEBRAIN_VERSION")


def test_a_corrupted_blob_fails_its_checksum(clib):
    from edgebrain.csession import CSession, c_load

    data = bytearray(B.pack(_program()))
    data[B.HEADER_SIZE + 9] ^= 0x10  # a row's byte
    with pytest.raises(FormatError, match=r"field 'crc32' \(byte 16\).*checksum mismatch.*corrupted"):
        B.unpack(bytes(data))
    with pytest.raises(FormatError, match="corrupted"):
        CSession(bytes(data))
    assert c_load(bytes(data))[:2] == (_code("ERR_CHECKSUM"), B.HEADER_OFFSETS["crc32"][0])


@pytest.mark.parametrize("keep", [0, 3, B.HEADER_SIZE - 1, B.HEADER_SIZE + 8, -8, -1])
def test_a_truncated_blob_is_refused(clib, keep):
    from edgebrain.csession import c_load

    data = B.pack(_program())
    cut = data[:keep] if keep >= 0 else data[:len(data) + keep]
    with pytest.raises(FormatError, match="truncated blob"):
        B.unpack(cut)
    assert c_load(cut)[0] == _code("ERR_TRUNCATED")


def test_trailing_bytes_are_refused_in_python():
    with pytest.raises(FormatError, match="total_size.*trailing bytes"):
        B.unpack(B.pack(_program()) + b"\0" * 8)


def test_not_a_blob(clib):
    from edgebrain.csession import c_load

    data = b"PK\x03\x04" + B.pack(_program())[4:]
    with pytest.raises(FormatError, match="not an edgebrain blob"):
        B.unpack(data)
    assert c_load(data)[0] == _code("ERR_MAGIC")


@pytest.mark.parametrize("field,value,named", [
    ("state_bits", 8, None), ("weight_bits", 4, None), ("row_width", 31, None), ("input_shape", (3, 0, 0, 0), None),
    ("wbuf_n", 10 ** 6, "wbuf_off"), ("prog_off", 12, None), ("ipar_off", 2 ** 31, None),
    ("n_rows", 10 ** 5, "prog_off")])
def test_inconsistent_sizes_name_the_field(clib, field, value, named):
    """A blob whose checksum is right but whose header does not hold together (a bug in a writer,
    not noise): Python names the field, C returns its byte offset."""
    from edgebrain.csession import c_load, describe

    bad = _with_field(B.pack(_program()), field, value)
    named = named or field  # a section's size out of bounds: its offset field is named
    with pytest.raises(FormatError, match=f"field '{named}'"):
        B.unpack(bad)
    rc, off, row, col = c_load(bad)
    assert rc == _code("ERR_HEADER") and off == B.HEADER_OFFSETS[named][0] and row == -1
    assert f"field '{named}'" in describe(rc, off, row, col)


def test_a_bad_row_names_the_row_and_column(clib):
    """Offsets are checked row by row before the first step: a row pointing outside a buffer is
    refused, naming the row, its op and the column."""
    from edgebrain.csession import CSession, c_load

    p = _mlp_program()
    dense = int(np.flatnonzero(p.prog[:, L.OP] == L.OP_DENSE)[0])
    for col, value in ((L.DENSE_W, 10 ** 9), (L.DENSE_B, -5), (L.IN_OFF, -1), (L.DENSE_RQ_S, 10 ** 9)):
        q = p.prog.copy()
        q[dense, col] = value
        p2 = type(p)(**{**p.__dict__, "prog": q})
        data = B.pack(p2)
        rc, _, row, column = c_load(data)
        assert (rc, row, column) == (_code("ERR_ROW"), dense, col), col
        name = (L.HEADER + L.FIELDS[L.OP_DENSE])[col]
        with pytest.raises(FormatError, match=rf"row {dense}, dense: {name}"):
            CSession(data)
    q = p.prog.copy()
    q[0, L.OP] = 99
    assert c_load(B.pack(type(p)(**{**p.__dict__, "prog": q})))[1:] == (0, 0, L.OP)


def test_random_damage_never_crashes(clib):
    """Random byte flips and cuts of a blob: always refused (the checksum), never a crash. Random
    row values with the checksum fixed: refused or, if accepted, run without a crash."""
    from edgebrain.csession import CSession, c_load

    rng = np.random.default_rng(9)
    data = B.pack(_mlp_program())
    for _ in range(200):
        buf = bytearray(data)
        for _ in range(int(rng.integers(1, 4))):
            buf[int(rng.integers(0, len(buf)))] ^= int(rng.integers(1, 256))
        assert c_load(bytes(buf))[0] != 0
        assert c_load(data[:int(rng.integers(0, len(data)))])[0] != 0
    p = _mlp_program()
    accepted = 0
    for _ in range(300):
        q = p.prog.copy()
        r, c = int(rng.integers(0, len(q))), int(rng.integers(0, L.WIDTH))
        q[r, c] = int(rng.choice([-1, 0, 1, 2, 7, 2 ** 31, -(2 ** 40), int(rng.integers(0, 4096))]))
        blob = B.pack(type(p)(**{**p.__dict__, "prog": q}))
        if c_load(blob)[0] == 0:
            accepted += 1
            CSession(blob).run(np.ones((3, 6), np.float32))
    assert accepted > 0
