"""Compact storage of a dense synapse's weights: sparse (CSR) and 4-bit (two weights per byte).

NumPy only, no Numba: the ``.ebm`` reader and writer (:mod:`edgebrain.ebm`), the blob
(:mod:`edgebrain.blob`), the metrics and the lowering (:mod:`edgebrain.kernels.dense`) share these
definitions without compiling anything.

**CSR of the transposed weights.** The kernels read the weights transposed, ``wt[j, c] = W[c, j]``
(shape (n_in, n_out)): one input's synapses are one row. Its CSR form keeps the non-zero entries
row by row, in increasing (j, c):

* ``ptr``  n_in + 1 row pointers, ``ptr[0] = 0``, non-decreasing, ``ptr[n_in] = nnz``: the
  entries of input j are ``ptr[j] .. ptr[j+1] - 1`` (uint16 when nnz <= 65535, else uint32);
* ``cols`` nnz output indices c, strictly increasing within a row, each < n_out (uint8 when
  n_out <= 256, else uint16; a layer with more than 65536 outputs is never stored sparse);
* ``vals`` nnz weights (the weights' own type, or 4-bit: see below).

**4-bit weights** (``weight_bits`` 4: values in [-8, 7]) are packed two per byte, the even element
in the low nibble and the odd one in the high nibble, each a two's-complement nibble. A flat
array of n values takes ceil(n / 2) bytes; the kernels' dense layout packs each input row on its
own (``ceil(n_out / 2)`` bytes per row, the last high nibble 0 when n_out is odd).

Whether the compact form is used is a size decision only (:func:`sparse_saves`): the integer sums
are exact, so skipping zero weights changes no result.
"""

from __future__ import annotations

import numpy as np

#: largest n_out whose output indices fit uint16 (a wider layer stays dense)
MAX_SPARSE_OUT = 1 << 16
#: a CSR whose dense size exceeds ``MAX_EXPANSION`` × its non-zeros (plus ``MIN_EXPANSION`` elements)
#: is refused by a reader and never written (such a layer, over 98 % zeros, is stored dense): a small
#: file cannot declare a huge matrix
MAX_EXPANSION = 64
MIN_EXPANSION = 1 << 20


def col_bytes(n_out: int) -> int | None:
    """Bytes of one output index for a layer of ``n_out`` outputs, or None (too wide for CSR)."""
    return 1 if n_out <= 256 else 2 if n_out <= MAX_SPARSE_OUT else None


def ptr_bytes(nnz: int) -> int:
    """Bytes of one row pointer for ``nnz`` stored entries."""
    return 2 if nnz <= 0xFFFF else 4


def padded(n: int, align: int) -> int:
    """``n`` rounded up to a multiple of ``align``."""
    return n + (-n) % align if align > 1 else n


def value_bytes(n: int, value_bits: int) -> int:
    """Bytes of ``n`` weights of ``value_bits`` (4: packed two per byte)."""
    return (n * value_bits + 7) // 8


def dense_nbytes(n_in: int, n_out: int, value_bits: int) -> int:
    """Bytes of the kernels' dense (n_in, n_out) layout (4-bit rows each padded to a whole byte)."""
    return n_in * value_bytes(n_out, value_bits)


def csr_parts(n_in: int, n_out: int, nnz: int, value_bits: int) -> tuple[int, int, int] | None:
    """Bytes of (ptr, cols, vals) of a CSR, or None when the layer is too wide for one."""
    cb = col_bytes(n_out)
    if cb is None:
        return None
    return (n_in + 1) * ptr_bytes(nnz), nnz * cb, value_bytes(nnz, value_bits)


def expansion_ok(n_in: int, n_out: int, nnz: int) -> bool:
    """Whether a reader accepts a CSR of this size (see :data:`MAX_EXPANSION`)."""
    return n_in * n_out <= MAX_EXPANSION * nnz + MIN_EXPANSION


def sparse_saves(n_in: int, n_out: int, nnz: int, value_bits: int, align: int = 1, index_align: int | None = None,
                 overhead: int = 0) -> bool:
    """True when the CSR of a (n_in, n_out) matrix with ``nnz`` non-zero weights is smaller than its
    dense layout: the weights (dense or the CSR's values) padded to ``align`` bytes and the row
    pointers and indices each to ``index_align`` (default ``align``), as their buffers place them,
    the CSR charged ``overhead`` bytes more (its extra buffers' bookkeeping)."""
    parts = csr_parts(n_in, n_out, nnz, value_bits)
    if parts is None or not expansion_ok(n_in, n_out, nnz):
        return False
    ia = align if index_align is None else index_align
    csr = padded(parts[0], ia) + padded(parts[1], ia) + padded(parts[2], align) + overhead
    return csr < padded(dense_nbytes(n_in, n_out, value_bits), align)


def stored_nbytes(n_in: int, n_out: int, nnz: int, value_bits: int, align: int = 1,
                  index_align: int | None = None) -> int:
    """Bytes the weights take in the form :func:`sparse_saves` picks (without padding)."""
    if sparse_saves(n_in, n_out, nnz, value_bits, align, index_align):
        return sum(csr_parts(n_in, n_out, nnz, value_bits))
    return dense_nbytes(n_in, n_out, value_bits)


def to_csr(wt: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ptr, cols, vals) of the 2-D array ``wt`` (n_in, n_out), with the index types above."""
    wt = np.asarray(wt)
    n_in, n_out = wt.shape
    rows, cols = np.nonzero(wt)  # row-major: increasing (j, c)
    nnz = rows.size
    ptr = np.zeros(n_in + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=n_in), out=ptr[1:])
    cb = col_bytes(n_out)
    if cb is None:
        raise ValueError(f"{n_out} outputs: too many for a sparse layout (at most {MAX_SPARSE_OUT})")
    return (ptr.astype(np.uint16 if ptr_bytes(nnz) == 2 else np.uint32), cols.astype(np.uint8 if cb == 1 else np.uint16),
            wt[rows, cols])


def check_csr(ptr: np.ndarray, cols: np.ndarray, n_in: int, n_out: int) -> str | None:
    """What is wrong with a CSR's row pointers and output indices (read from a file), or None.
    Checked: ``ptr`` holds n_in + 1 entries, starts at 0, never decreases and ends at len(cols);
    every index is below n_out and the indices of a row increase strictly."""
    ptr = np.asarray(ptr).reshape(-1).astype(np.int64)
    cols = np.asarray(cols).reshape(-1).astype(np.int64)
    nnz = cols.size
    if ptr.size != n_in + 1:
        return f"row pointers: {ptr.size} entries; expected n_in + 1 = {n_in + 1}"
    if ptr[0] != 0:
        return f"row pointer 0 is {int(ptr[0])}; expected 0"
    d = np.diff(ptr)
    if d.size and d.min() < 0:
        j = int(np.argmax(d < 0))
        return (f"row pointers decrease: ptr[{j + 1}] = {int(ptr[j + 1])} < ptr[{j}] = {int(ptr[j])} "
                "(expected non-decreasing)")
    if ptr[-1] != nnz:
        return f"last row pointer ptr[{n_in}] = {int(ptr[-1])}; expected the {nnz} stored entries"
    if nnz:
        if cols.max() >= n_out:
            e = int(np.argmax(cols >= n_out))
            return f"output index {int(cols[e])} (entry {e}) is out of range; expected < n_out = {n_out}"
        inc = np.diff(cols) > 0
        # entries e and e+1 of the same row must increase; a row boundary may go down
        starts = np.zeros(nnz, bool)
        starts[ptr[1:-1][ptr[1:-1] < nnz]] = True
        bad = ~inc & ~starts[1:]
        if bad.any():
            e = int(np.argmax(bad)) + 1
            j = int(np.searchsorted(ptr, e, side="right")) - 1
            return (f"output indices of input row {j} do not increase: entry {e} is {int(cols[e])} after "
                    f"{int(cols[e - 1])}")
    return None


def from_csr(ptr: np.ndarray, cols: np.ndarray, vals: np.ndarray, n_in: int, n_out: int) -> np.ndarray:
    """The dense (n_in, n_out) array of a CSR that passed :func:`check_csr`."""
    ptr = np.asarray(ptr).astype(np.int64)
    out = np.zeros((n_in, n_out), np.asarray(vals).dtype)
    rows = np.repeat(np.arange(n_in), np.diff(ptr))
    out[rows, np.asarray(cols).astype(np.int64)] = vals
    return out


def fits_int4(a: np.ndarray) -> bool:
    a = np.asarray(a)
    return a.dtype.kind in "iu" and (a.size == 0 or (int(a.min()) >= -8 and int(a.max()) <= 7))


def pack_int4(a: np.ndarray) -> np.ndarray:
    """The values of ``a`` (integers in [-8, 7]), flattened, two per byte: ceil(n / 2) uint8."""
    v = np.asarray(a).reshape(-1).astype(np.int64) & 15
    if v.size % 2:
        v = np.append(v, 0)
    return (v[0::2] | (v[1::2] << 4)).astype(np.uint8)


def unpack_int4(b: np.ndarray, n: int) -> np.ndarray:
    """``n`` int8 values of the packed bytes ``b`` (the inverse of :func:`pack_int4`)."""
    b = np.asarray(b).reshape(-1).astype(np.int16)
    out = np.empty(2 * b.size, np.int16)
    out[0::2] = b & 15
    out[1::2] = b >> 4
    return (((out[:n] ^ 8) - 8)).astype(np.int8)


def pack_int4_rows(wt: np.ndarray) -> np.ndarray:
    """The kernels' dense 4-bit layout of ``wt`` (n_in, n_out): each row packed on its own,
    (n_in, ceil(n_out / 2)) uint8."""
    wt = np.asarray(wt)
    n_in, n_out = wt.shape
    if n_out % 2:
        wt = np.concatenate([wt, np.zeros((n_in, 1), wt.dtype)], axis=1)
    v = wt.astype(np.int64) & 15
    return (v[:, 0::2] | (v[:, 1::2] << 4)).astype(np.uint8)
