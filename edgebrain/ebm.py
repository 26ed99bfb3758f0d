"""The ``.ebm`` model file: one self-describing file, no pickle.

Layout (all integers little-endian)::

    0   8 bytes   magic  b"EDGEBRN\\0"
    8   u16, u16  format version (major, minor)
    12  u32       H = length of the JSON header in bytes
    16  H bytes   JSON header (UTF-8)
    16+H u32      CRC-32 of the JSON header
    ... zero padding to a multiple of 64
    data          the array buffers, each at a 64-byte aligned offset from the start of data

The header holds the graph (nodes with their kind, scalar fields and references to
buffers; edges), the model metadata, the fixed-point parameters when quantized, and one
entry per buffer: dtype (a fixed list of little-endian numeric types), shape, offset,
size and SHA-256. A reader checks the magic, the version, the header CRC, that every
buffer lies inside the file and matches its hash, and that nothing follows the data.

Format 1.1 adds two compact forms of an array reference (kernels/compact.py), used by the writer
only where they make the file smaller, and only then is the file marked 1.1 (a model without them
is written as 1.0, byte for byte as before):

* ``{"$csr": {"shape": [out, in], "ptr": ref, "idx": ref, "val": ref, "int4": bool}}``: the weight
  (out, in) of a dense synapse (Affine, Linear; the float weight and the quantized one), stored as
  the CSR of its transpose (in, out), as the kernels read it: ``in + 1`` row pointers (uint16 or
  uint32), the output index of every non-zero (uint8 or uint16) and the non-zero values (the
  array's dtype, or with ``int4`` two 4-bit values per byte);
* ``{"$int4": {"shape": [...], "data": ref}}``: the quantized weights of a model of
  ``weight_bits`` 4, two per byte (the flattened array, even elements in the low nibble).

A reader checks them like any buffer, then their structure (pointers from 0, never decreasing,
ending at the number of values; indices in range and increasing within a row), and refuses one
that would expand a small file into a huge matrix.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import struct
import zlib

import numpy as np

from . import ops
from .errors import FormatError, ModelError
from .card import ModelCard, StreamConfig
from .graph import Graph
from .infile import open_regular, read_at
from .kernels import compact as C
from .qparams import check_quant, is_num
from .safeio import atomic_write
from .version import __version__

MAGIC = b"EDGEBRN\x00"
#: the newest format this edgebrain writes and reads; a file without compact weights is written as 1.0
VERSION = (1, 1)
PLAIN_VERSION = (1, 0)
#: header bytes a compact entry costs beyond a plain one (two more buffer entries and the reference):
#: the CSR is written only where its buffers save more than this
CSR_OVERHEAD = 320
ALIGN = 64
_SYNAPSES = (ops.Affine, ops.Conv1d, ops.Conv2d)  # nodes whose quantized weights 'w' a 4-bit model packs
DTYPES = {"<f4", "<f8", "|i1", "<i2", "<i4", "<i8", "|u1", "<u2", "<u4", "|b1"}
MAX_HEADER = 8 * 1024 * 1024  # bytes of JSON header (the zoo's are under 32 KiB)


class _Buffers:
    def __init__(self):
        self.arrays: list[np.ndarray] = []
        #: whether a compact reference was written (the file is then format 1.1)
        self.compact = False

    def ref(self, a: np.ndarray) -> dict:
        a = np.ascontiguousarray(a)
        if a.dtype.kind == "f" and a.dtype != np.float64:
            a = a.astype("<f4")
        a = a.astype(a.dtype.newbyteorder("<"), copy=False)
        self.arrays.append(a)
        return {"$buf": len(self.arrays) - 1}

    def weight(self, a: np.ndarray, sparse: bool, int4: bool) -> dict:
        """A reference to a synapse's weight ``a``: the CSR of its transpose when ``sparse`` is
        allowed (a 2-D dense synapse weight) and that makes the file smaller, packed two per byte
        when ``int4`` (a quantized weight of a 4-bit model, values in [-8, 7]), else plain."""
        a = np.asarray(a)
        if a.dtype.kind == "f" and a.dtype != np.float64:
            a = a.astype("<f4")
        int4 = int4 and C.fits_int4(a)
        if sparse and a.ndim == 2:
            n_out, n_in = a.shape
            bits = 4 if int4 else a.dtype.itemsize * 8
            nnz = int(np.count_nonzero(a))
            parts = C.csr_parts(n_in, n_out, nnz, bits)
            dense = C.padded(C.value_bytes(a.size, bits), ALIGN)
            if parts is not None and C.expansion_ok(n_in, n_out, nnz) and \
                    sum(C.padded(p, ALIGN) for p in parts) + CSR_OVERHEAD < dense:
                ptr, idx, val = C.to_csr(a.T)
                self.compact = True
                return {"$csr": {"shape": [n_out, n_in], "ptr": self.ref(ptr), "idx": self.ref(idx),
                                 "val": self.ref(C.pack_int4(val) if int4 else val), "int4": bool(int4)}}
        if int4:
            self.compact = True
            return {"$int4": {"shape": list(a.shape), "data": self.ref(C.pack_int4(a))}}
        return self.ref(a)


def _encode(v, bufs: _Buffers):
    if isinstance(v, np.ndarray):
        return bufs.ref(v)
    if isinstance(v, dict):
        return {str(k): _encode(x, bufs) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_encode(x, bufs) for x in v]
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v


def _decode(v, arrays, where: str = "", compact: bool = False):
    """The header value ``v`` with its buffer references replaced by arrays; ``where`` names it in
    errors; ``compact``: compact references are allowed (format 1.1)."""
    if isinstance(v, dict):
        if set(v) == {"$buf"}:
            i = v["$buf"]
            if not isinstance(i, int) or not 0 <= i < len(arrays):
                raise FormatError(f"reference to buffer {i!r}, but the file has {len(arrays)} buffers")
            return arrays[i]
        if len(v) == 1 and next(iter(v)) in ("$csr", "$int4"):
            key = next(iter(v))
            if not compact:
                raise FormatError(f"{where}: a compact weight ('{key}') where none may be (only a synapse's weights, "
                                  "in a file of model format 1.1; the file is corrupted or not written by edgebrain)")
            return _decode_compact(key, v[key], arrays, where)
        return {k: _decode(x, arrays, f"{where}.{k}" if where else str(k), compact) for k, x in v.items()}
    if isinstance(v, list):
        return [_decode(x, arrays, f"{where}[{i}]", compact) for i, x in enumerate(v)]
    return v


def _decode_compact(key: str, spec, arrays, where: str) -> np.ndarray:
    """A ``$csr`` or ``$int4`` reference as the dense array it stands for, after checking it."""
    def bad(msg):
        return FormatError(f"{where}: {'sparse (CSR)' if key == '$csr' else '4-bit'} weight: {msg} (the file is "
                           "corrupted or not written by edgebrain)")

    parts = ("shape", "ptr", "idx", "val", "int4") if key == "$csr" else ("shape", "data")
    if not isinstance(spec, dict) or set(spec) != set(parts):
        raise bad(f"entry {spec!r:.80}; expected an object with {', '.join(parts)}")
    shape = spec["shape"]
    if not (isinstance(shape, list) and len(shape) <= 32 and all(_int(d) and d >= 0 for d in shape)
            and (key == "$int4" or len(shape) == 2)):
        raise bad(f"shape {shape!r:.80}; expected {'2 sizes' if key == '$csr' else 'a list of sizes'} >= 0")
    bufs = {}
    for k in parts[1:]:
        if k == "int4":
            continue
        ref = spec[k]
        if not (isinstance(ref, dict) and set(ref) == {"$buf"} and _int(ref["$buf"])
                and 0 <= ref["$buf"] < len(arrays)):
            raise bad(f"'{k}' = {ref!r:.80}; expected a reference to one of the file's {len(arrays)} buffers")
        a = arrays[ref["$buf"]]
        if a.ndim != 1 or (k != "val" and a.dtype.kind != "u"):
            raise bad(f"'{k}' is a {a.ndim}-D {a.dtype} buffer; expected 1-D"
                      + (" unsigned integers" if k != "val" else ""))
        bufs[k] = a
    if key == "$int4":
        n = math.prod(shape)
        if bufs["data"].dtype != np.uint8 or bufs["data"].size != (n + 1) // 2:
            raise bad(f"'data' holds {bufs['data'].size} {bufs['data'].dtype} values; expected (n + 1) / 2 = "
                      f"{(n + 1) // 2} bytes for {n} weights")
        return C.unpack_int4(bufs["data"], n).reshape(shape)
    if not isinstance(spec["int4"], bool):
        raise bad(f"'int4' = {spec['int4']!r:.40}; expected true or false")
    n_out, n_in = shape
    ptr, idx, val = bufs["ptr"], bufs["idx"], bufs["val"]
    nnz = idx.size
    if n_out > C.MAX_SPARSE_OUT or not C.expansion_ok(n_in, n_out, nnz):
        raise bad(f"a ({n_out}, {n_in}) matrix from {nnz} stored values: more than edgebrain writes")
    want = (nnz + 1) // 2 if spec["int4"] else nnz
    if val.size != want or (spec["int4"] and val.dtype != np.uint8):
        raise bad(f"'val' holds {val.size} {val.dtype} values; expected {want}"
                  + (" bytes (two 4-bit values each)" if spec["int4"] else " (one per index)"))
    msg = C.check_csr(ptr, idx, n_in, n_out)
    if msg is not None:
        raise bad(msg)
    vals = C.unpack_int4(val, nnz) if spec["int4"] else val
    return np.ascontiguousarray(C.from_csr(ptr, idx, vals, n_in, n_out).T)


def save(path, graph: Graph, quant: dict | None = None) -> None:
    bufs = _Buffers()
    nodes = []
    for name, op in graph.nodes.items():
        dense = isinstance(op, ops.Affine)  # (and Linear): its weight may be stored sparse
        nodes.append({"name": name, "kind": op.kind, "attrs": _encode(op.attrs(), bufs),
                      "arrays": {k: bufs.weight(a, True, False) if dense and k == "weight" else bufs.ref(a)
                                 for k, a in op.arrays().items()}})
    header = {
        "format": "edgebrain-model",
        "writer": f"edgebrain {__version__}",
        "graph": {"nodes": nodes, "edges": [list(e) for e in graph.edges]},
        "meta": _encode(graph.meta, bufs),
        "quant": _encode_quant(quant, graph, bufs) if quant else None,
    }
    entries, off = [], 0
    for a in bufs.arrays:
        off += (-off) % ALIGN
        entries.append({"dtype": a.dtype.str, "shape": list(a.shape), "offset": off, "nbytes": int(a.nbytes),
                        "sha256": hashlib.sha256(a.tobytes()).hexdigest()})
        off += a.nbytes
    header["buffers"] = entries
    header["data_size"] = off
    hj = json.dumps(header, separators=(",", ":"), allow_nan=False).encode()
    version = VERSION if bufs.compact else PLAIN_VERSION
    pre = MAGIC + struct.pack("<HHI", *version, len(hj)) + hj + struct.pack("<I", zlib.crc32(hj))
    pre += b"\0" * ((-len(pre)) % ALIGN)
    with atomic_write(path, "model file") as f:  # a new file renamed into place; never through a link
        f.write(pre)
        pos = 0
        for e, a in zip(entries, bufs.arrays):
            f.write(b"\0" * (e["offset"] - pos))
            f.write(a.tobytes())
            pos = e["offset"] + e["nbytes"]


def _encode_quant(quant: dict, graph: Graph, bufs: _Buffers):
    """``quant`` encoded as :func:`_encode` does, the synapses' integer weights ``w`` in compact form
    where it is smaller (sparse: dense synapses; 4-bit: every synapse of a model of weight_bits 4)."""
    nodes = quant.get("nodes") if isinstance(quant, dict) else None
    if not isinstance(nodes, dict):
        return _encode(quant, bufs)
    int4 = quant.get("weight_bits") == 4
    out = {}
    for k, v in quant.items():
        if k != "nodes":
            out[str(k)] = _encode(v, bufs)
            continue
        enc = {}
        for n, q in v.items():
            op = graph.nodes.get(n)
            if isinstance(q, dict) and isinstance(q.get("w"), np.ndarray) and isinstance(op, _SYNAPSES):
                enc[str(n)] = {str(f): (bufs.weight(x, isinstance(op, ops.Affine), int4 and x.dtype.kind == "i")
                                        if f == "w" else _encode(x, bufs)) for f, x in q.items()}
            else:
                enc[str(n)] = _encode(q, bufs)
        out[k] = enc
    return out


def load(path) -> tuple[Graph, dict | None]:
    """Read a model file; every problem is a FormatError/ModelError naming the file."""
    path = os.fspath(path)
    try:
        return _load(path)
    except (FormatError, ModelError) as e:
        raise e.with_file(path)


def _load(path):
    f, size = open_regular(path, "an edgebrain model (.ebm)")
    with f:
        return _load_open(f, size, path)


def _load_open(f, size: int, path):
    if size < 16:
        raise FormatError(f"file is {size} bytes long; too short for an edgebrain model (truncated?)")
    head = read_at(f, 0, 16)
    if head[:8] != MAGIC:
        raise FormatError("not an edgebrain model file (bad magic bytes at offset 0; expected 'EDGEBRN')")
    major, minor, hlen = struct.unpack_from("<HHI", head, 8)
    if (major, minor) > VERSION:
        raise FormatError(f"offset 8: written in model format {major}.{minor} by a newer edgebrain; expected "
                          f"format {VERSION[0]}.{VERSION[1]} or older, which this edgebrain reads: upgrade edgebrain")
    if major < 1:
        raise FormatError(f"offset 8: format version {major}.{minor} does not exist; expected "
                          f"{VERSION[0]}.{VERSION[1]} (the file is corrupted)")
    if hlen > MAX_HEADER:
        raise FormatError(f"offset 12: header of {hlen} bytes; expected at most {MAX_HEADER} (the file is corrupted "
                          "or not written by edgebrain)")
    if 16 + hlen + 4 > size:
        raise FormatError(f"offset 12: header of {hlen} bytes at offset 16 (and its CRC) runs past the end of the "
                          f"{size}-byte file (truncated?)")
    hj = read_at(f, 16, hlen + 4)
    (crc,) = struct.unpack_from("<I", hj, hlen)
    hj = hj[:hlen]
    if zlib.crc32(hj) != crc:
        raise FormatError(f"header checksum mismatch: the CRC-32 at offset {16 + hlen} is {crc:#010x} but header "
                          f"bytes 16..{16 + hlen} give {zlib.crc32(hj):#010x} (the file is corrupted)")
    try:
        header = json.loads(hj)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise FormatError(f"header at offset 16 is not valid JSON ({e})") from None
    del hj
    if not isinstance(header, dict) or header.get("format") != "edgebrain-model":
        raise FormatError("header at offset 16 does not describe an edgebrain model (expected "
                          "\"format\": \"edgebrain-model\")")
    data0 = 16 + hlen + 4
    data0 += (-data0) % ALIGN
    try:
        return _parse(_Blob(f, size), header, hlen, data0, (major, minor) >= VERSION)
    except (FormatError, ModelError):
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError, RecursionError) as e:
        # the CRC matched, so the header was written this way: a writer bug or a hand-made file
        raise FormatError(f"header at offset 16 is malformed ({type(e).__name__}: {e})") from None


class _Blob:
    """The open model file, read by byte ranges (never whole: memory stays the buffers' size)."""

    CHUNK = 1 << 20

    def __init__(self, f, size: int):
        self.f, self.size = f, size

    def read(self, lo: int, hi: int) -> bytes:
        return read_at(self.f, lo, hi - lo)

    def read_array(self, lo: int, hi: int) -> bytearray:
        """Bytes [lo, hi) in a new writable buffer (the array is made over it without a copy)."""
        buf = bytearray(hi - lo)
        self.f.seek(lo)
        if self.f.readinto(buf) != len(buf):
            raise FormatError(f"file ends before byte {hi} (truncated, or changed while being read)")
        return buf

    def first_nonzero(self, lo: int, hi: int) -> int | None:
        """The offset of the first non-zero byte in [lo, hi), read a chunk at a time."""
        pos = lo
        while pos < hi:
            b = self.read(pos, min(hi, pos + self.CHUNK))
            if b.count(0) != len(b):
                return pos + next(i for i, x in enumerate(b) if x)
            pos += len(b)
        return None


def _buffer_owners(header: dict) -> dict:
    """Buffer index -> what it holds (e.g. "node 'fc1' field 'weight'"), for error messages."""
    owners: dict = {}

    def walk(v, label):
        if isinstance(v, dict):
            if set(v) == {"$buf"} and isinstance(v["$buf"], int):
                owners.setdefault(v["$buf"], label)
                return
            if len(v) == 1 and next(iter(v)) in ("$csr", "$int4") and isinstance(v[next(iter(v))], dict):
                kind = "sparse" if "$csr" in v else "4-bit"
                for k, x in v[next(iter(v))].items():
                    walk(x, f"{label} ({kind}: '{k}')")
                return
            for k, x in v.items():
                walk(x, f"{label}.{k}" if label else str(k))
        elif isinstance(v, list):
            for i, x in enumerate(v):
                walk(x, f"{label}[{i}]")

    try:
        for nd in header["graph"]["nodes"]:
            for key in ("arrays", "attrs"):
                for f, v in (nd.get(key) or {}).items():
                    walk(v, f"node '{nd.get('name')}' field '{f}'")
        walk(header.get("quant"), "quantization parameters")
        walk(header.get("meta"), "metadata")
    except (KeyError, TypeError, AttributeError):
        pass
    return owners


def _check_zero(blob: _Blob, lo: int, hi: int, what: str) -> None:
    bad = blob.first_nonzero(lo, hi) if lo < hi else None
    if bad is not None:
        raise FormatError(f"non-zero byte at offset {bad} in the padding {what} (bytes {lo}..{hi}; expected "
                          "zeros): the file is corrupted")


def _int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _buffer_entries(entries, data_size: int) -> list[tuple]:
    """(dtype, shape, offset, nbytes, sha256) per header buffer entry, each checked against the
    data section's size before a byte of it is read."""
    if not isinstance(entries, list):
        raise FormatError(f"header field 'buffers' is a {type(entries).__name__}; expected a list")
    out = []
    for k, e in enumerate(entries):
        try:
            dt, shape, off, nb, digest = e["dtype"], e["shape"], e["offset"], e["nbytes"], e["sha256"]
        except (KeyError, TypeError):
            raise FormatError(f"buffer {k}: malformed entry in the header") from None
        if dt not in DTYPES:
            raise FormatError(f"buffer {k}: dtype '{dt}' is not allowed (expected one of {sorted(DTYPES)})")
        if not (isinstance(shape, list) and len(shape) <= 32 and all(_int(s) and s >= 0 for s in shape)):
            raise FormatError(f"buffer {k}: shape {shape!r}; expected a list of at most 32 sizes >= 0")
        if not (_int(off) and _int(nb) and off >= 0 and nb >= 0 and isinstance(digest, str)):
            raise FormatError(f"buffer {k}: offset {off!r}, nbytes {nb!r}; expected integers >= 0 and a SHA-256")
        if math.prod(shape) * np.dtype(dt).itemsize != nb:
            raise FormatError(f"buffer {k}: shape {list(shape)} and dtype {dt} do not make {nb} bytes")
        if off + nb > data_size:
            raise FormatError(f"buffer {k}: bytes {off}..{off + nb} lie outside the data section")
        out.append((dt, tuple(shape), off, nb, digest))
    return out


def _parse(blob: _Blob, header: dict, hlen: int, data0: int, compact: bool = False):
    _check_zero(blob, 16 + hlen + 4, min(data0, blob.size), "after the header")
    try:
        entries = header["buffers"]
        data_size = header["data_size"]
        gnodes, gedges = header["graph"]["nodes"], header["graph"]["edges"]
    except (KeyError, TypeError) as e:
        raise FormatError(f"header is missing field {e}") from None
    if not (_int(data_size) and data_size >= 0):
        raise FormatError(f"header field 'data_size' = {data_size!r}; expected an integer >= 0")
    end = data0 + data_size
    if blob.size < end:
        raise FormatError(f"file is {blob.size} bytes but its data ends at byte {end} (truncated)")
    if blob.size > end:
        raise FormatError(f"{blob.size - end} unexpected bytes after the end of the data at offset {end}")
    entries = _buffer_entries(entries, data_size)
    arrays = []
    for k, (dt, shape, off, nb, digest) in enumerate(entries):
        raw = blob.read_array(data0 + off, data0 + off + nb)
        if hashlib.sha256(raw).hexdigest() != digest:
            owner = _buffer_owners(header).get(k)
            raise FormatError(f"buffer {k}{f' ({owner})' if owner else ''}, bytes {data0 + off}..{data0 + off + nb}: "
                              "SHA-256 does not match the header (the file is corrupted)")
        arrays.append(np.frombuffer(raw, dtype=dt).reshape(shape))
    # the bytes between buffers are alignment padding and must be zero
    pos = 0
    for _, _, off, nb, _ in sorted(entries, key=lambda e: e[2]):
        _check_zero(blob, data0 + pos, data0 + off, "between buffers")
        pos = max(pos, off + nb)
    _check_zero(blob, data0 + pos, end, "at the end of the data")
    g = Graph(meta=_decode(header.get("meta") or {}, arrays, "metadata"))
    for nd in gnodes:
        try:
            name, kind = nd["name"], nd["kind"]
            attrs = _decode(nd.get("attrs", {}), arrays, f"node '{name}' attrs")
            arrs = {k: _decode(v, arrays, f"node '{name}' field '{k}'", compact)
                    for k, v in (nd.get("arrays") or {}).items()}
        except (KeyError, TypeError, AttributeError):
            raise FormatError("malformed node entry in the header") from None
        try:
            g.add(name, ops.make_op(kind, attrs, arrs))
        except ModelError as e:
            e.where = f"node '{name}'"
            e.args = (e._format(),)
            raise
    for ed in gedges:
        if not (isinstance(ed, list) and len(ed) == 2 and all(isinstance(x, str) for x in ed)):
            raise FormatError(f"malformed edge {ed!r} in the header")
        g.connect(*ed)
    g.prepare()
    _check_meta(g.meta, sum(math.prod(g.in_shapes[n]) for n in g.outputs))
    quant = _decode(header.get("quant"), arrays, "quantization parameters", compact) \
        if header.get("quant") is not None else None
    if quant is not None:
        try:
            check_quant(g, quant)
        except ModelError as e:
            raise FormatError(f"quantization parameters: {e.detail}") from None
    return g, quant


# ---------------------------------------------------------------------- header content checks
# The CRC only proves the header is as written; these make sure a hand-made or buggy header
# cannot reach the runtime (wrong types would crash, wrong shapes would read past buffers).


def _check_meta(meta, n_outputs: int) -> None:
    if not isinstance(meta, dict):
        raise FormatError(f"header field 'meta' is a {type(meta).__name__}; expected an object")
    dt = meta.get("dt")
    if dt is not None and not (is_num(dt) and dt > 0):
        raise FormatError(f"header field 'meta.dt' = {dt!r}; expected a positive number of seconds")
    for k in ("dialect", "reset"):
        if meta.get(k) is not None and not isinstance(meta[k], str):
            raise FormatError(f"header field 'meta.{k}' = {meta[k]!r}; expected a string")
    rep = meta.get("import_report")
    if rep is not None and not (isinstance(rep, dict) and isinstance(rep.get("warnings", []), list)
                                and all(isinstance(w, str) for w in rep.get("warnings", []))):
        raise FormatError("header field 'meta.import_report' is malformed; expected an object with a "
                          "'warnings' list of strings")
    src = meta.get("source")
    if src is not None and not (isinstance(src, dict) and all(isinstance(v, str) for v in src.values())):
        raise FormatError("header field 'meta.source' is malformed; expected an object of strings")
    # the stream settings and the model card: their one schema is in card.py
    try:
        StreamConfig.check_meta(meta.get("stream"), n_outputs)
        ModelCard.check_meta(meta.get("card"))
    except ModelError as e:
        raise FormatError(f"header {e.detail}") from None
