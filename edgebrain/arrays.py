"""Arrays from users: safe ``.npy`` / ``.npz`` loading and the time-major input layout.

* :func:`load_array` reads a numeric array from a file a user names (``--input``, ``--calib``,
  ``--labels``), refusing pickles and checking the header against the file before any data is read.
* :func:`time_major` tells the two layouts a model input sequence may have apart:
  ``(T, *input)`` (one sequence) and ``(T, B, *input)`` (a batch of B), time first.
"""

from __future__ import annotations

import os
from tokenize import TokenError  # numpy's .npy header parser raises it on a truncated header

import numpy as np

from .errors import InputError

NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK\x03\x04"


def load_array(path: str, what: str) -> np.ndarray:
    """A numeric array from a .npy (or single-array .npz) file, checked before any data is read.

    Pickled (object) arrays are refused without being unpickled; a header that promises more
    data than the file holds (truncation) is reported instead of attempting the allocation.
    ``what`` names the file in messages ("input", "calibration", ...). Every problem is an
    :class:`InputError` naming the file.
    """
    if not os.path.exists(path):
        raise InputError(f"{what} file not found", file=path)
    try:
        with open(path, "rb") as f:
            head = f.read(6)
            if head == NPY_MAGIC:
                f.seek(0)
                _check_npy_header(f, os.fstat(f.fileno()).st_size, path)
                f.seek(0)
                a = np.load(f, allow_pickle=False)
            elif head[:4] == ZIP_MAGIC:
                a = _load_npz(path)
            else:
                raise InputError(f"not a NumPy .npy file: the first bytes are {head!r}; expected the .npy magic "
                                 "b'\\x93NUMPY' at offset 0 (save the array with numpy.save)", file=path)
    except InputError:
        raise
    except IsADirectoryError:
        raise InputError(f"{what} path is a directory; expected a .npy file", file=path) from None
    except (ValueError, OSError, EOFError, MemoryError) as e:
        raise InputError(f"cannot read as a NumPy .npy file ({e}); expected an array saved with numpy.save",
                         file=path) from None
    if a.dtype.kind not in "fiub":
        raise InputError(f"array has dtype {a.dtype}; expected numbers (float, int or bool)", file=path)
    return a


def _check_npy_header(f, size: int, path: str) -> None:
    from numpy.lib import format as npf

    try:
        version = npf.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = npf.read_array_header_1_0(f)
        else:
            shape, fortran, dtype = npf.read_array_header_2_0(f)
    except (ValueError, OSError, EOFError, SyntaxError, TypeError, TokenError) as e:
        raise InputError(f"the .npy header at offset 0 is malformed or truncated ({e})", file=path) from None
    if dtype.hasobject:
        raise InputError(f"the array holds Python objects (dtype {dtype}), stored as a pickle; refused: edgebrain "
                         "never unpickles files. Expected a numeric array", file=path)
    if dtype.kind not in "fiub":
        raise InputError(f"array has dtype {dtype}; expected numbers (float, int or bool)", file=path)
    data0 = f.tell()
    need = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
    have = size - data0
    if have < need:
        raise InputError(f"the .npy header describes a {dtype} array of shape {shape} ({need} bytes from offset "
                         f"{data0}) but the file holds {have} bytes of data (truncated?)", file=path)
    if have > need:
        raise InputError(f"{have - need} unexpected bytes after the array data at offset {data0 + need}",
                         file=path)


def _load_npz(path: str) -> np.ndarray:
    import zipfile

    try:
        with np.load(path, allow_pickle=False) as z:
            keys = list(z.keys())
            if len(keys) != 1:
                raise InputError(f"expected a .npy array (or an .npz holding one array), found arrays {keys}",
                                 file=path)
            return z[keys[0]]
    except InputError:
        raise
    except (ValueError, OSError, EOFError, MemoryError, zipfile.BadZipFile, KeyError, SyntaxError, TypeError,
            TokenError) as e:
        raise InputError(f"cannot read as a NumPy .npz file ({e}); pickled (object) arrays are refused",
                         file=path) from None


def time_major(x, input_shape, *, batch: int | None = None, what: str = "array", file: str | None = None,
               note: str = " (time-major)") -> int | None:
    """The batch size of a time-major input sequence ``x`` (anything with a ``shape``):
    None for ``(T, *input_shape)`` (one sequence), B for ``(T, B, *input_shape)``.

    ``batch``, when given, is the only batch accepted (a session's), and ``(T, *input_shape)``
    is then accepted only for batch 1. Any other shape is an :class:`InputError`
    "``what`` has shape ...; expected (T, *input) or (T, B, *input)" followed by ``note``,
    naming ``file`` if given.
    """
    shape, inp = tuple(x.shape), tuple(input_shape)
    if shape[1:] == inp and batch in (None, 1):
        return None
    if len(shape) == len(inp) + 2 and shape[2:] == inp and batch in (None, shape[1]):
        return shape[1]
    raise InputError(f"{what} has shape {shape}; expected (T, *{inp}) or (T, {'B' if batch is None else batch}, "
                     f"*{inp}){note}", file=file)
