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
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import zlib

import numpy as np

from . import ops
from .errors import EdgebrainError, FormatError, ModelError
from .graph import Graph
from .qparams import check_quant, is_num
from .version import __version__

MAGIC = b"EDGEBRN\x00"
VERSION = (1, 0)
ALIGN = 64
DTYPES = {"<f4", "<f8", "|i1", "<i2", "<i4", "<i8", "|u1", "<u2", "<u4", "|b1"}
MAX_HEADER = 64 * 1024 * 1024


class _Buffers:
    def __init__(self):
        self.arrays: list[np.ndarray] = []

    def ref(self, a: np.ndarray) -> dict:
        a = np.ascontiguousarray(a)
        if a.dtype.kind == "f" and a.dtype != np.float64:
            a = a.astype("<f4")
        a = a.astype(a.dtype.newbyteorder("<"), copy=False)
        self.arrays.append(a)
        return {"$buf": len(self.arrays) - 1}


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


def _decode(v, arrays):
    if isinstance(v, dict):
        if set(v) == {"$buf"}:
            i = v["$buf"]
            if not isinstance(i, int) or not 0 <= i < len(arrays):
                raise FormatError(f"reference to buffer {i!r}, but the file has {len(arrays)} buffers")
            return arrays[i]
        return {k: _decode(x, arrays) for k, x in v.items()}
    if isinstance(v, list):
        return [_decode(x, arrays) for x in v]
    return v


def save(path, graph: Graph, quant: dict | None = None) -> None:
    bufs = _Buffers()
    nodes = []
    for name, op in graph.nodes.items():
        nodes.append({"name": name, "kind": op.kind, "attrs": _encode(op.attrs(), bufs),
                      "arrays": {k: bufs.ref(a) for k, a in op.arrays().items()}})
    header = {
        "format": "edgebrain-model",
        "writer": f"edgebrain {__version__}",
        "graph": {"nodes": nodes, "edges": [list(e) for e in graph.edges]},
        "meta": _encode(graph.meta, bufs),
        "quant": _encode(quant, bufs) if quant else None,
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
    pre = MAGIC + struct.pack("<HHI", *VERSION, len(hj)) + hj + struct.pack("<I", zlib.crc32(hj))
    pre += b"\0" * ((-len(pre)) % ALIGN)
    tmp = os.fspath(path) + ".tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(pre)
            pos = 0
            for e, a in zip(entries, bufs.arrays):
                f.write(b"\0" * (e["offset"] - pos))
                f.write(a.tobytes())
                pos = e["offset"] + e["nbytes"]
        os.replace(tmp, path)
    except OSError as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise EdgebrainError(f"cannot write the model file ({e.strerror or e})", file=os.fspath(path)) from None


def load(path) -> tuple[Graph, dict | None]:
    """Read a model file; every problem is a FormatError/ModelError naming the file."""
    path = os.fspath(path)
    try:
        return _load(path)
    except (FormatError, ModelError) as e:
        raise e.with_file(path)


def _load(path):
    try:
        with open(path, "rb") as f:
            blob = f.read()
    except FileNotFoundError:
        raise FormatError("file not found") from None
    except OSError as e:
        raise FormatError(f"cannot read ({e.strerror})") from None
    if len(blob) < 16:
        raise FormatError(f"file is {len(blob)} bytes long; too short for an edgebrain model (truncated?)")
    if blob[:8] != MAGIC:
        raise FormatError("not an edgebrain model file (bad magic bytes at offset 0; expected 'EDGEBRN')")
    major, minor, hlen = struct.unpack_from("<HHI", blob, 8)
    if (major, minor) > VERSION:
        raise FormatError(f"offset 8: written in model format {major}.{minor} by a newer edgebrain; expected "
                          f"format {VERSION[0]}.{VERSION[1]} or older, which this edgebrain reads: upgrade edgebrain")
    if major < 1:
        raise FormatError(f"offset 8: format version {major}.{minor} does not exist; expected "
                          f"{VERSION[0]}.{VERSION[1]} (the file is corrupted)")
    if hlen > MAX_HEADER or 16 + hlen + 4 > len(blob):
        raise FormatError(f"offset 12: header of {hlen} bytes at offset 16 (and its CRC) runs past the end of the "
                          f"{len(blob)}-byte file (truncated?)")
    hj = blob[16:16 + hlen]
    (crc,) = struct.unpack_from("<I", blob, 16 + hlen)
    if zlib.crc32(hj) != crc:
        raise FormatError(f"header checksum mismatch: the CRC-32 at offset {16 + hlen} is {crc:#010x} but header "
                          f"bytes 16..{16 + hlen} give {zlib.crc32(hj):#010x} (the file is corrupted)")
    try:
        header = json.loads(hj)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise FormatError(f"header at offset 16 is not valid JSON ({e})") from None
    if not isinstance(header, dict) or header.get("format") != "edgebrain-model":
        raise FormatError("header at offset 16 does not describe an edgebrain model (expected "
                          "\"format\": \"edgebrain-model\")")
    data0 = 16 + hlen + 4
    data0 += (-data0) % ALIGN
    try:
        return _parse(blob, header, hlen, data0)
    except (FormatError, ModelError):
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError, RecursionError) as e:
        # the CRC matched, so the header was written this way: a writer bug or a hand-made file
        raise FormatError(f"header at offset 16 is malformed ({type(e).__name__}: {e})") from None


def _buffer_owners(header: dict) -> dict:
    """Buffer index -> what it holds (e.g. "node 'fc1' field 'weight'"), for error messages."""
    owners: dict = {}

    def walk(v, label):
        if isinstance(v, dict):
            if set(v) == {"$buf"} and isinstance(v["$buf"], int):
                owners.setdefault(v["$buf"], label)
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


def _check_zero(blob: bytes, lo: int, hi: int, what: str) -> None:
    if lo < hi and blob.count(0, lo, hi) != hi - lo:
        bad = next(i for i in range(lo, hi) if blob[i])
        raise FormatError(f"non-zero byte at offset {bad} in the padding {what} (bytes {lo}..{hi}; expected "
                          "zeros): the file is corrupted")


def _parse(blob: bytes, header: dict, hlen: int, data0: int):
    _check_zero(blob, 16 + hlen + 4, min(data0, len(blob)), "after the header")
    try:
        entries = header["buffers"]
        data_size = int(header["data_size"])
        gnodes, gedges = header["graph"]["nodes"], header["graph"]["edges"]
    except (KeyError, TypeError, ValueError) as e:
        raise FormatError(f"header is missing field {e}") from None
    end = data0 + data_size
    if len(blob) < end:
        raise FormatError(f"file is {len(blob)} bytes but its data ends at byte {end} (truncated)")
    if len(blob) > end:
        raise FormatError(f"{len(blob) - end} unexpected bytes after the end of the data at offset {end}")
    arrays = []
    for k, e in enumerate(entries):
        try:
            dt, shape, off, nb, digest = e["dtype"], tuple(e["shape"]), int(e["offset"]), int(e["nbytes"]), e["sha256"]
        except (KeyError, TypeError, ValueError):
            raise FormatError(f"buffer {k}: malformed entry in the header") from None
        if dt not in DTYPES:
            raise FormatError(f"buffer {k}: dtype '{dt}' is not allowed (expected one of {sorted(DTYPES)})")
        if any((not isinstance(s, int)) or s < 0 for s in shape) or int(np.prod(shape)) * np.dtype(dt).itemsize != nb:
            raise FormatError(f"buffer {k}: shape {list(shape)} and dtype {dt} do not make {nb} bytes")
        if off < 0 or off + nb > data_size:
            raise FormatError(f"buffer {k}: bytes {off}..{off + nb} lie outside the data section")
        raw = blob[data0 + off:data0 + off + nb]
        if hashlib.sha256(raw).hexdigest() != digest:
            owner = _buffer_owners(header).get(k)
            raise FormatError(f"buffer {k}{f' ({owner})' if owner else ''}, bytes {data0 + off}..{data0 + off + nb}: "
                              "SHA-256 does not match the header (the file is corrupted)")
        arrays.append(np.frombuffer(raw, dtype=dt).reshape(shape).copy())
    # the bytes between buffers are alignment padding and must be zero
    pos = 0
    for e in sorted(entries, key=lambda e: int(e["offset"])):
        _check_zero(blob, data0 + pos, data0 + int(e["offset"]), "between buffers")
        pos = max(pos, int(e["offset"]) + int(e["nbytes"]))
    _check_zero(blob, data0 + pos, end, "at the end of the data")
    g = Graph(meta=_decode(header.get("meta") or {}, arrays))
    for nd in gnodes:
        try:
            name, kind = nd["name"], nd["kind"]
            attrs = _decode(nd.get("attrs", {}), arrays)
            arrs = _decode(nd.get("arrays", {}), arrays)
        except (KeyError, TypeError):
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
    _check_meta(g.meta)
    quant = _decode(header.get("quant"), arrays) if header.get("quant") is not None else None
    if quant is not None:
        try:
            check_quant(g, quant)
        except ModelError as e:
            raise FormatError(f"quantization parameters: {e.detail}") from None
    return g, quant


# ---------------------------------------------------------------------- header content checks
# The CRC only proves the header is as written; these make sure a hand-made or buggy header
# cannot reach the runtime (wrong types would crash, wrong shapes would read past buffers).


def _check_meta(meta) -> None:
    if not isinstance(meta, dict):
        raise FormatError(f"header field 'meta' is a {type(meta).__name__}; expected an object")
    dt = meta.get("dt")
    if dt is not None and not (is_num(dt) and dt > 0):
        raise FormatError(f"header field 'meta.dt' = {dt!r}; expected a positive number of seconds")
    for k in ("dialect", "reset"):
        if meta.get(k) is not None and not isinstance(meta[k], str):
            raise FormatError(f"header field 'meta.{k}' = {meta[k]!r}; expected a string")
    rep = meta.get("import_report")
    if rep is not None and not (isinstance(rep, dict) and isinstance(rep.get("warnings", []), list)):
        raise FormatError("header field 'meta.import_report' is malformed; expected an object with a "
                          "'warnings' list")
