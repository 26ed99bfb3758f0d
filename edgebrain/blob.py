"""The firmware blob: an integer :class:`~edgebrain.program.Program` as one versioned, checksummed,
little-endian byte string, the form the C runtime (``edgebrain/cruntime/``) reads from flash.

The layout is defined here once; :func:`c_header` generates the C header
``edgebrain/cruntime/eb_layout.h`` from it and from :data:`edgebrain.kernels.layout.FIELDS`
(``python tools/firmware/gen_header.py`` rewrites it, a test keeps the committed copy current).

    header   HEADER_FIELDS, packed without padding, then zeros up to HEADER_SIZE
    prog     n_rows × row_width int64 (the instruction table, unchanged)
    ipar     ipar_n int32
    fpar     fpar_n float32
    wbuf     wbuf_n int8 or int16 (weight_bits)
    outputs  n_outputs × OUTPUT_FIELDS records (column, size, shape, scale, name)

``format_version`` is the oldest layout that describes the blob: 1 unless a row uses what version 2
added (a sparse row, ``OP_SPARSE``, or a dense row with 4-bit weights, ``int4``; kernels/compact.py),
so that a model without compact weights keeps the bytes it had, and a runtime that reads version 1
only refuses a compact blob by its version instead of misreading it.

Every section starts at a multiple of :data:`ALIGN` bytes from the blob's start (the C runtime
reads the int64 rows in place, so the blob itself must be 8-byte aligned). ``crc32`` is the
CRC-32 (zlib's, IEEE 802.3) of the whole blob with the ``crc32`` field read as zero.

This module imports NumPy and nothing that compiles (no Numba): the C session loads blobs
without it. Packing takes any object with a Program's attributes.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np

from .errors import FormatError, ModelError
from .kernels import compact as C
from .kernels import layout as L
from .version import __version__

MAGIC = b"EBBL"
#: the newest layout; bump when anything below changes meaning. A blob carries the oldest version that
#: describes it (:func:`format_version`); readers refuse versions outside FORMAT_VERSIONS
FORMAT_VERSION = 2
#: the versions this edgebrain reads: 1 (every dense synapse stored dense, int8/int16), 2 (adds sparse
#: rows and dense rows with 4-bit weights)
FORMAT_VERSIONS = (1, 2)
#: section alignment in bytes
ALIGN = 8
#: dims of the input shape and of each output shape the header has room for
MAX_DIMS = 4
#: bytes of an output's name (UTF-8, NUL-padded, at least one NUL)
NAME_BYTES = 48

#: the header, in order: (field, struct code, meaning)
HEADER_FIELDS = (
    ("magic", "4s", "the bytes EBBL"),
    ("format_version", "I", "this layout's version (FORMAT_VERSION)"),
    ("header_size", "I", "bytes before the first section"),
    ("total_size", "I", "bytes of the whole blob"),
    ("crc32", "I", "CRC-32 of the whole blob with this field read as 0"),
    ("edgebrain_version", "16s", "version of edgebrain that wrote it (ASCII, NUL-padded)"),
    ("row_width", "I", "columns per instruction row"),
    ("n_rows", "I", "instruction rows (and saturation counters)"),
    ("state_bits", "I", "neuron state element: 16 (int16) or 32 (int32)"),
    ("weight_bits", "I", "weight buffer element: 8 (int8) or 16 (int16)"),
    ("state_size", "I", "neuron state elements"),
    ("act_size", "I", "activation (int32) elements"),
    ("acc_size", "I", "accumulator (int64) elements of the scratch"),
    ("n_in", "I", "float32 inputs per step"),
    ("n_out", "I", "float32 outputs per step"),
    ("input_ndim", "I", "dims of the input shape"),
    ("input_shape", f"{MAX_DIMS}I", "the input shape (unused dims 0)"),
    ("input_scale", "f", "real value of one input step after quantization"),
    ("n_outputs", "I", "output records"),
    ("prog_off", "I", "byte offset of the rows"),
    ("ipar_off", "I", "byte offset of ipar"),
    ("ipar_n", "I", "int32 elements of ipar"),
    ("fpar_off", "I", "byte offset of fpar"),
    ("fpar_n", "I", "float32 elements of fpar"),
    ("wbuf_off", "I", "byte offset of wbuf"),
    ("wbuf_n", "I", "elements of wbuf"),
    ("outputs_off", "I", "byte offset of the output records"),
)

#: one output record
OUTPUT_FIELDS = (
    ("column", "I", "first column in the step's output row"),
    ("size", "I", "values"),
    ("ndim", "I", "dims of its shape"),
    ("shape", f"{MAX_DIMS}I", "its shape (unused dims 0)"),
    ("scale", "f", "dequantization scale"),
    ("name", f"{NAME_BYTES}s", "node name (UTF-8, NUL-padded)"),
)

#: return codes of the C runtime (eb_status), in order from 0; blob errors name a field or row
STATUS = (
    ("OK", "ok"),
    ("ERR_ARG", "a null pointer or a buffer too small for the model"),
    ("ERR_ALIGN", "the blob is not 8-byte aligned"),
    ("ERR_ENDIAN", "this machine is not little-endian"),
    ("ERR_TRUNCATED", "the blob is shorter than its header says"),
    ("ERR_MAGIC", "not an edgebrain blob"),
    ("ERR_FORMAT_VERSION", "blob format version differs from the runtime's"),
    ("ERR_EDGEBRAIN_VERSION", "blob written by another edgebrain version"),
    ("ERR_CHECKSUM", "CRC-32 mismatch: the blob is corrupted"),
    ("ERR_HEADER", "a header field is inconsistent"),
    ("ERR_ROW", "an instruction row is invalid (bad opcode, flag or out-of-bounds offset)"),
    ("ERR_NONFINITE", "the input holds NaN or infinity; the step was not taken"),
)
STATUS_CODE = {name: k for k, (name, _) in enumerate(STATUS)}

#: the neuron flag bits (their values are edgebrain.kernels.neuron's); the C runtime refuses others.
#: NARROW and SIMPLE only pick a Numba fast path with the same results: the C runtime ignores them
NEURON_FLAGS = ("CUBA", "SPIKING", "SUBTRACT", "RESET_DELAY", "CURRENT_LAG", "THRESHOLD_GE", "MULTISPIKE",
                "SHIFT_DECAY", "GSYN_IDENTITY", "GMEM_IDENTITY", "NARROW", "SIMPLE")


def _fmt(fields) -> str:
    return "<" + "".join(code for _, code, _ in fields)


def _offsets(fields) -> dict[str, tuple[int, int, str]]:
    """field -> (byte offset, bytes, struct code)."""
    out, off = {}, 0
    for name, code, _ in fields:
        n = struct.calcsize("<" + code)
        out[name] = (off, n, code)
        off += n
    return out


HEADER_OFFSETS = _offsets(HEADER_FIELDS)
_HEADER_PACKED = struct.calcsize(_fmt(HEADER_FIELDS))
HEADER_SIZE = _HEADER_PACKED + (-_HEADER_PACKED) % ALIGN
OUTPUT_OFFSETS = _offsets(OUTPUT_FIELDS)
OUTPUT_SIZE = struct.calcsize(_fmt(OUTPUT_FIELDS))
_CRC = HEADER_OFFSETS["crc32"][0]


def _up(n: int) -> int:
    return n + (-n) % ALIGN


@dataclass
class Blob:
    """A parsed blob: the header's values and the sections as NumPy arrays (read-only views of
    the bytes)."""

    header: dict
    prog: np.ndarray
    ipar: np.ndarray
    fpar: np.ndarray
    wbuf: np.ndarray
    outputs: dict  # name -> (column, size, shape, scale)

    @property
    def input_shape(self) -> tuple:
        return tuple(self.header["input_shape"][:self.header["input_ndim"]])

    @property
    def state_dtype(self) -> np.dtype:
        return np.dtype(np.int16 if self.header["state_bits"] == 16 else np.int32)


def _dims(shape, what: str) -> tuple:
    shape = tuple(int(d) for d in shape)
    if len(shape) > MAX_DIMS:
        raise ModelError(f"{what} has {len(shape)} dims; the blob holds at most {MAX_DIMS}")
    return shape + (0,) * (MAX_DIMS - len(shape))


def compact_rows(prog: np.ndarray) -> np.ndarray:
    """Indices of the rows only format version 2 describes: sparse rows, dense rows with 4-bit weights."""
    ops = prog[:, L.OP]
    return np.flatnonzero((ops == L.OP_SPARSE) | ((ops == L.OP_DENSE) & (prog[:, L.DENSE_INT4] != 0)))


def format_version(prog: np.ndarray) -> int:
    """The format version a blob of these rows carries: the oldest that describes them."""
    return 2 if compact_rows(prog).size else 1


def pack(program) -> bytes:
    """The blob of an integer program (any object with a Program's attributes)."""
    p = program
    if p.precision != "int":
        raise ModelError(f"a blob holds an integer program; this one is {p.precision} (quantize the model first)")
    prog = np.ascontiguousarray(p.prog, dtype="<i8")
    if prog.ndim != 2 or prog.shape[1] != L.WIDTH:
        raise ModelError(f"instruction table of shape {prog.shape}; expected (rows, {L.WIDTH})")
    ipar = np.ascontiguousarray(p.ipar, dtype="<i4").reshape(-1)
    fpar = np.ascontiguousarray(p.fpar, dtype="<f4").reshape(-1)
    wdt = np.dtype(p.wbuf.dtype)
    if wdt not in (np.dtype(np.int8), np.dtype(np.int16)):
        raise ModelError(f"weights of dtype {wdt}; a blob holds int8 or int16 weights")
    wbuf = np.ascontiguousarray(p.wbuf, dtype=wdt.newbyteorder("<")).reshape(-1)
    sdt = np.dtype(p.state_dtype)
    if sdt not in (np.dtype(np.int16), np.dtype(np.int32)):
        raise ModelError(f"state of dtype {sdt}; a blob holds int16 or int32 state")
    n_in = int(np.prod(p.input_shape)) if len(p.input_shape) else 1
    records = b""
    for name, (col, n, shape) in p.outputs.items():
        raw = name.encode("utf-8")
        if len(raw) >= NAME_BYTES:
            raise ModelError(f"output '{name}': its name has {len(raw)} bytes; the blob holds at most {NAME_BYTES - 1}")
        shape = tuple(shape)
        records += struct.pack(_fmt(OUTPUT_FIELDS), int(col), int(n), len(shape), *_dims(shape, f"output '{name}'"),
                               float(p.scales.get(name, 1.0)), raw)
    off = HEADER_SIZE
    sections = {}
    for key, data in (("prog", prog.tobytes()), ("ipar", ipar.tobytes()), ("fpar", fpar.tobytes()),
                      ("wbuf", wbuf.tobytes()), ("outputs", records)):
        sections[key] = (off, data)
        off = _up(off + len(data))
    total = off
    ver = __version__.encode("ascii")  # c_header() refuses a version too long for the field
    head = struct.pack(
        _fmt(HEADER_FIELDS), MAGIC, format_version(prog), HEADER_SIZE, total, 0, ver, L.WIDTH, prog.shape[0],
        sdt.itemsize * 8, wdt.itemsize * 8, int(p.state_size), int(p.act_size), int(p.acc_size), n_in,
        int(p.n_out), len(p.input_shape), *_dims(p.input_shape, "the input"),
        float(p.scales.get(p.input_name, 1.0)), len(p.outputs), sections["prog"][0], sections["ipar"][0],
        ipar.size, sections["fpar"][0], fpar.size, sections["wbuf"][0], wbuf.size, sections["outputs"][0])
    buf = bytearray(total)
    buf[:len(head)] = head
    for o, data in sections.values():
        buf[o:o + len(data)] = data
    struct.pack_into("<I", buf, _CRC, zlib.crc32(bytes(buf)))
    return bytes(buf)


def checksum(data: bytes) -> int:
    """The CRC-32 a blob should carry (its crc32 field read as zero)."""
    return zlib.crc32(data[:_CRC] + b"\0\0\0\0" + data[_CRC + 4:])


def _bad(what: str, field: str | None = None, file=None) -> FormatError:
    where = None if field is None else f"field '{field}' (byte {HEADER_OFFSETS[field][0]})"
    return FormatError(what, file=file, where=where)


def read_header(data: bytes, file=None) -> dict:
    """The header's values, after the checks every reader makes in this order: length, magic,
    format version, edgebrain version, sizes, checksum. Errors are :class:`FormatError` naming the
    field and its byte offset."""
    data = bytes(data)
    if len(data) < _HEADER_PACKED:
        raise _bad(f"truncated blob: {len(data)} bytes, its header alone needs {HEADER_SIZE}", file=file)
    vals = struct.unpack_from(_fmt(HEADER_FIELDS), data)
    h, k = {}, 0
    for name, code, _ in HEADER_FIELDS:
        n = int(code[:-1]) if code[:-1].isdigit() and not code.endswith("s") else 1
        h[name] = vals[k] if n == 1 else tuple(vals[k:k + n])
        k += n
    if h["magic"] != MAGIC:
        raise _bad(f"not an edgebrain blob: first bytes {h['magic']!r}, expected {MAGIC!r}", "magic", file)
    if h["format_version"] not in FORMAT_VERSIONS:
        older = ", ".join(str(v) for v in FORMAT_VERSIONS if v != FORMAT_VERSION)
        raise _bad(f"blob format version {h['format_version']}; this edgebrain ({__version__}) reads format "
                   f"version {FORMAT_VERSION} (and {older}): export the model again with this version",
                   "format_version", file)
    ver = h["edgebrain_version"].rstrip(b"\0").decode("ascii", "replace")
    h["edgebrain_version"] = ver
    if ver != __version__:
        raise _bad(f"blob written by edgebrain {ver}; this is edgebrain {__version__}: export the model again "
                   "with this version", "edgebrain_version", file)
    if h["header_size"] != HEADER_SIZE:
        raise _bad(f"header_size {h['header_size']}; format version {FORMAT_VERSION} has {HEADER_SIZE}",
                   "header_size", file)
    if h["total_size"] != len(data):
        what = "truncated blob" if len(data) < h["total_size"] else "blob with trailing bytes"
        raise _bad(f"{what}: {len(data)} bytes, its header says {h['total_size']}", "total_size", file)
    crc = checksum(data)
    if h["crc32"] != crc:
        raise _bad(f"checksum mismatch: stored 0x{h['crc32']:08x}, computed 0x{crc:08x}: the blob is corrupted",
                   "crc32", file)
    return h


def _section(data, h, key, n_key, itemsize, file):
    off = h[f"{key}_off"]
    n = h[n_key] if isinstance(n_key, str) else n_key
    if off % ALIGN or off < HEADER_SIZE or off + n * itemsize > len(data):
        raise _bad(f"section {key} at byte {off} with {n * itemsize} bytes lies outside the blob's "
                   f"{len(data)} bytes (or is not {ALIGN}-byte aligned)", f"{key}_off", file)
    return off, n


def unpack(data: bytes, file=None) -> Blob:
    """Parse and check a blob (:func:`read_header`, then every section's place and size)."""
    data = bytes(data)
    h = read_header(data, file)
    if h["row_width"] != L.WIDTH:
        raise _bad(f"row_width {h['row_width']}; this edgebrain's rows have {L.WIDTH} columns", "row_width", file)
    if h["state_bits"] not in (16, 32):
        raise _bad(f"state_bits {h['state_bits']}; expected 16 or 32", "state_bits", file)
    if h["weight_bits"] not in (8, 16):
        raise _bad(f"weight_bits {h['weight_bits']}; expected 8 or 16", "weight_bits", file)
    if not 0 <= h["input_ndim"] <= MAX_DIMS or int(np.prod(h["input_shape"][:h["input_ndim"]])) != h["n_in"]:
        raise _bad(f"input shape {h['input_shape'][:h['input_ndim']]} does not hold n_in = {h['n_in']} values",
                   "input_shape", file)
    o, n = _section(data, h, "prog", h["n_rows"] * L.WIDTH, 8, file)
    prog = np.frombuffer(data, "<i8", n, o).reshape(h["n_rows"], L.WIDTH)
    o, n = _section(data, h, "ipar", "ipar_n", 4, file)
    ipar = np.frombuffer(data, "<i4", n, o)
    o, n = _section(data, h, "fpar", "fpar_n", 4, file)
    fpar = np.frombuffer(data, "<f4", n, o)
    o, n = _section(data, h, "wbuf", "wbuf_n", h["weight_bits"] // 8, file)
    wbuf = np.frombuffer(data, "<i1" if h["weight_bits"] == 8 else "<i2", n, o)
    o, n = _section(data, h, "outputs", "n_outputs", OUTPUT_SIZE, file)
    outputs = {}
    for k in range(n):
        col, size, ndim, *rest = struct.unpack_from(_fmt(OUTPUT_FIELDS), data, o + k * OUTPUT_SIZE)
        shape, scale, raw = rest[:MAX_DIMS], rest[MAX_DIMS], rest[MAX_DIMS + 1]
        if ndim > MAX_DIMS or int(np.prod(shape[:ndim])) != size or col + size > h["n_out"]:
            raise _bad(f"output record {k} (column {col}, size {size}, shape {shape[:ndim]}) does not fit "
                       f"n_out = {h['n_out']}", "outputs_off", file)
        outputs[raw.rstrip(b"\0").decode("utf-8", "replace")] = (col, size, tuple(shape[:ndim]), scale)
    check_compact_rows(prog, ipar, wbuf, h, file)
    return Blob(header=h, prog=prog, ipar=ipar, fpar=fpar, wbuf=wbuf, outputs=outputs)


def _row_error(r: int, opcode: int, col: int, what: str, file) -> FormatError:
    name = (L.HEADER + L.FIELDS[opcode])[col]
    return FormatError(f"{what}: the blob is corrupted or was not written by edgebrain", file=file,
                       where=f"row {r} ({'sparse' if opcode == L.OP_SPARSE else 'dense'}), column '{name}'")


def check_compact_rows(prog, ipar, wbuf, h: dict, file=None) -> None:
    """The rows of format version 2, checked as the C runtime checks them (eb_model_load): a
    version-1 blob has none; a 4-bit row needs an int8 wbuf; a sparse row's parts lie inside their
    buffers and its row pointers and output indices are those of a CSR (kernels/compact.py).
    A :class:`FormatError` names the row, its column and what is wrong."""
    rows = compact_rows(prog)
    for r in rows:
        p = prog[r]
        op = int(p[L.OP])
        if h["format_version"] < 2:
            raise _row_error(r, op, L.OP if op == L.OP_SPARSE else L.DENSE_INT4,
                             "a sparse or 4-bit row in a blob of format version 1 (which has neither)", file)
        i4 = L.DENSE_INT4 if op == L.OP_DENSE else L.SPARSE_INT4
        if p[i4] not in (0, 1) or (p[i4] and h["weight_bits"] != 8):
            raise _row_error(r, op, i4, f"int4 = {int(p[i4])} with {h['weight_bits']}-bit weight storage "
                             "(expected 0, or 1 with 8-bit storage)", file)
        if op == L.OP_SPARSE:
            _check_sparse_row(r, p, ipar, wbuf, file)


def _check_sparse_row(r: int, p, ipar, wbuf, file) -> None:
    n_in, n_out, nnz = int(p[L.SPARSE_N_IN]), int(p[L.SPARSE_N_OUT]), int(p[L.SPARSE_NNZ])
    bad = lambda col, what: _row_error(r, L.OP_SPARSE, col, what, file)  # noqa: E731
    if not 0 <= n_in < 2 ** 32:
        raise bad(L.SPARSE_N_IN, f"n_in = {n_in}")
    if not 0 <= n_out <= C.MAX_SPARSE_OUT:
        raise bad(L.SPARSE_N_OUT, f"n_out = {n_out}; expected 0 to {C.MAX_SPARSE_OUT}")
    if not 0 <= nnz <= n_in * n_out:
        raise bad(L.SPARSE_NNZ, f"nnz = {nnz}; expected 0 to n_in·n_out = {n_in * n_out}")
    pw, cw = int(p[L.SPARSE_PTR_BYTES]), int(p[L.SPARSE_IDX_BYTES])
    if pw not in (2, 4) or (pw == 2 and nnz > 0xFFFF):
        raise bad(L.SPARSE_PTR_BYTES, f"ptr_bytes = {pw}; expected 4, or 2 for at most 65535 entries")
    if cw not in (1, 2) or (cw == 1 and n_out > 256):
        raise bad(L.SPARSE_IDX_BYTES, f"idx_bytes = {cw}; expected 2, or 1 for at most 256 outputs")
    nv = (nnz + 1) // 2 if p[L.SPARSE_INT4] else nnz
    w0 = int(p[L.SPARSE_W])
    if not (0 <= w0 and w0 + nv <= wbuf.size):
        raise bad(L.SPARSE_W, f"{nv} weights at element {w0} lie outside wbuf's {wbuf.size}")
    ib = ipar.view(np.uint8)
    parts = {}
    for col, width, count, dt in ((L.SPARSE_PTR, pw, n_in + 1, {2: "<u2", 4: "<u4"}[pw]),
                                  (L.SPARSE_IDX, cw, nnz, {1: "|u1", 2: "<u2"}[cw])):
        o = int(p[col])
        if not (0 <= o and 4 * o + width * count <= ib.size):
            raise bad(col, f"{count} entries of {width} bytes at ipar element {o} lie outside ipar's {ipar.size}")
        parts[col] = np.frombuffer(ib[4 * o:4 * o + width * count].tobytes(), dt)
    msg = C.check_csr(parts[L.SPARSE_PTR], parts[L.SPARSE_IDX], n_in, n_out)
    if msg is not None:
        raise bad(L.SPARSE_IDX if msg.startswith("output ind") else L.SPARSE_PTR, msg)


# ---------------------------------------------------------------------- the C header


def _c_name(s: str) -> str:
    return s.upper()


def c_header() -> str:
    """The text of ``edgebrain/cruntime/eb_layout.h``: blob offsets, status codes, opcodes, row
    columns and neuron flags, all from their one Python definition."""
    from .kernels import neuron  # the flags live beside the kernel (imports Numba: generation only)

    if len(__version__.encode("ascii")) >= HEADER_OFFSETS["edgebrain_version"][1]:
        raise ModelError(f"version {__version__!r} does not fit the blob's edgebrain_version field")

    out = ["/* eb_layout.h: GENERATED by edgebrain.blob.c_header() (python tools/firmware/gen_header.py).",
           " * Do not edit: the blob layout lives in edgebrain/blob.py, the row columns in",
           " * edgebrain/kernels/layout.py, the neuron flags in edgebrain/kernels/neuron.py. */",
           "#ifndef EB_LAYOUT_H", "#define EB_LAYOUT_H", "",
           f'#define EB_EDGEBRAIN_VERSION "{__version__}"',
           f"#define EB_FORMAT_VERSION {FORMAT_VERSION}u",
           f"#define EB_FORMAT_VERSION_MIN {min(FORMAT_VERSIONS)}u",
           "#define EB_MAGIC \"" + MAGIC.decode("ascii") + "\"",
           f"#define EB_ALIGN {ALIGN}u", f"#define EB_MAX_DIMS {MAX_DIMS}u", f"#define EB_NAME_BYTES {NAME_BYTES}u",
           "", "/* header: byte offsets (and element counts of arrays) */",
           f"#define EB_HEADER_SIZE {HEADER_SIZE}u"]
    for name, (off, n, code) in HEADER_OFFSETS.items():
        out.append(f"#define EB_H_{_c_name(name)} {off}u")
    out += ["", "/* output record: byte offsets */", f"#define EB_OUTPUT_SIZE {OUTPUT_SIZE}u"]
    for name, (off, n, code) in OUTPUT_OFFSETS.items():
        out.append(f"#define EB_O_{_c_name(name)} {off}u")
    out += ["", "/* status codes (eb_status) */", "typedef enum {"]
    out += [f"    EB_{name} = {k},  /* {meaning} */" for k, (name, meaning) in enumerate(STATUS)]
    out += ["} eb_status;", "", "/* instruction rows */", f"#define EB_ROW_WIDTH {L.WIDTH}"]
    opnames = {v: k for k, v in vars(L).items() if k.startswith("OP_") and isinstance(v, int)}
    for code in sorted(opnames):
        out.append(f"#define EB_{opnames[code]} {code}")
    out.append(f"#define EB_OP_MAX {max(opnames)}")
    for k, name in enumerate(L.HEADER):
        out.append(f"#define EB_COL_{_c_name(name)} {k}")
    for code in sorted(L.FIELDS):
        prefix = opnames[code][3:]
        for k, name in enumerate(L.FIELDS[code]):
            out.append(f"#define EB_{prefix}_{_c_name(name)} {len(L.HEADER) + k}")
    out += ["", "/* neuron flags */"]
    flags = [(k, getattr(neuron, k)) for k in NEURON_FLAGS if hasattr(neuron, k)]
    for k, v in flags:
        out.append(f"#define EB_NF_{k} {v}")
    out.append(f"#define EB_NF_ALL {sum(v for _, v in flags)}")
    out += ["", "#endif /* EB_LAYOUT_H */", ""]
    return "\n".join(out)
