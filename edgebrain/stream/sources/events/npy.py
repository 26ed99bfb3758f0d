"""NumPy structured arrays of events (``.npy``): reader and streaming writer.

Reader: fields x, y, t, p in any order and width (aliases ts/timestamp/time for t, pol/polarity/on
for p), t in µs (``time_unit`` s/ms/us/ns otherwise); loaded without pickle and memory-mapped, read
in chunks, so memory stays constant. A file shorter than its header says is read up to its last
whole record (a counted repair). Without ``sensor_size`` the size is the largest x and y + 1
(found by one pass over the file).

Writer: :func:`write_events_npy` appends chunks to a ``.npy`` of ``EVENT_DTYPE`` records and fixes
the header's shape at the end.
"""

from __future__ import annotations

import ast
import os

import numpy as np

from ....errors import FormatError, InputError
from ....safeio import atomic_write
from ...base import EVENT_DTYPE, Events
from .base import Batch, EventFileSource, fixed_loc

ALIASES = {"x": ("x",), "y": ("y",), "t": ("t", "ts", "timestamp", "time"), "p": ("p", "pol", "polarity", "on")}
UNITS = {"us": 1.0, "µs": 1.0, "ms": 1e3, "s": 1e6, "ns": 1e-3}
MAGIC = b"\x93NUMPY"


def _fields(dtype: np.dtype) -> dict | None:
    names = {n.lower(): n for n in (dtype.names or ())}
    out = {}
    for k, al in ALIASES.items():
        for a in al:
            if a in names:
                out[k] = names[a]
                break
        else:
            return None
    return out


def read_npy_header(head: bytes):
    """(dtype, shape, fortran, data offset) of an .npy header, or raise ValueError."""
    if not head.startswith(MAGIC) or len(head) < 10:
        raise ValueError("not an .npy file (no \\x93NUMPY magic)")
    major = head[6]
    if major == 1:
        hlen = int.from_bytes(head[8:10], "little")
        start = 10
    elif major in (2, 3):
        hlen = int.from_bytes(head[8:12], "little")
        start = 12
    else:
        raise ValueError(f"unsupported .npy version {major}")
    text = head[start:start + hlen]
    if len(text) < hlen:
        raise ValueError("header truncated")
    d = ast.literal_eval(text.decode("latin1" if major < 3 else "utf-8"))
    if not isinstance(d, dict) or set(d) != {"descr", "fortran_order", "shape"}:
        raise ValueError("header is not a dict with keys descr, fortran_order, shape")
    dtype = np.lib.format.descr_to_dtype(d["descr"])
    shape = tuple(int(s) for s in d["shape"])
    return dtype, shape, bool(d["fortran_order"]), start + hlen


def sniff_npy(head: bytes, path: str) -> bool:
    try:
        dtype, *_ = read_npy_header(head)
    except Exception:  # noqa: BLE001
        return False
    return _fields(dtype) is not None


class NpySource(EventFileSource):
    format_name = "npy"
    options = ("time_unit",)

    def _open(self, time_unit="us"):
        if time_unit not in UNITS:
            raise InputError(f"time_unit '{time_unit}': expected one of {', '.join(UNITS)}")
        self.scale = UNITS[time_unit]
        head = self.read_at(0, 1 << 16)
        try:
            dtype, shape, fortran, start = read_npy_header(head)
        except (ValueError, SyntaxError, TypeError, KeyError, OverflowError, RecursionError, MemoryError) as e:
            # (numpy's dtype parser raises TypeError for a descr like '<!f4'; literal_eval more)
            raise self.error(f"not a readable .npy header ({type(e).__name__}: {e})", 0) from None
        if dtype.hasobject:
            raise self.error("the array holds Python objects; expected a structured array of numbers with fields "
                             "x, y, t, p (objects are not loaded: no pickle)", 0)
        f = _fields(dtype)
        if f is None:
            raise self.error(f"dtype {dtype} has no fields x, y, t, p (t may be ts/timestamp, p pol/polarity/on)", 0)
        for k, name in f.items():  # each a plain number (not bytes, complex, a date or a sub-array)
            fd = dtype.fields[name][0]
            if fd.kind not in ("iu" + ("b" if k == "p" else "") + "f") or fd.shape:
                raise self.error(f"field '{name}' is {fd}; expected a number ({k} of each event)", 0)
        self.fields = f
        self.dtype = dtype
        n = int(np.prod(shape)) if shape else 1
        if len(shape) > 1 and sorted(shape)[-2] > 1:
            raise self.error(f"array shape {shape}: expected a 1-D array of events", 0)
        self.start = start
        avail = (self.size - start) // dtype.itemsize if dtype.itemsize else 0
        if avail < n:
            self.note("dropped", f"byte {start + avail * dtype.itemsize}",
                      f"file holds {avail} of the {n} events its header announces (truncated): reading those",
                      n - avail)
            n = avail
        elif (self.size - start) > n * dtype.itemsize:
            extra = self.size - start - n * dtype.itemsize
            self.note("repaired", f"byte {start + n * dtype.itemsize}",
                      f"{extra} bytes after the {n} events the header announces ignored")
        self.n = n
        self.info.n_items = n
        self.mm = np.memmap(self.path, dtype=dtype, mode="r", offset=start, shape=(n,)) if n else np.zeros(0, dtype)
        if n:
            t0, t1 = self._t(self.mm[:1])[0], self._t(self.mm[n - 1:])[0]
            if t1 >= t0:
                self.info.duration = (int(t1) - int(t0)) / 1e6
        if self.sensor_given is None and n:
            mx = my = -1  # over the coordinates kept (_coord marks NaN, infinite and out-of-range ones 65535)
            for i in range(0, n, self.chunk_events):
                c = self.mm[i:i + self.chunk_events]
                mx = max(mx, _largest_kept(_coord(c[f["x"]])))
                my = max(my, _largest_kept(_coord(c[f["y"]])))
            if 0 <= mx < 65535 and 0 <= my < 65535:
                self.info.sensor_size = (mx + 1, my + 1)
                self.info.extra["sensor_size_from"] = "largest x and y in the file"

    def _t(self, c) -> np.ndarray:
        t = c[self.fields["t"]]
        if t.dtype.kind == "f":
            t = t.astype(np.float64) * self.scale
            bad = _bad_time(t)
            if bad.any():  # (their events are dropped in _batches)
                t = np.where(bad, 0.0, t)
            return np.rint(t).astype(np.int64)
        t = t.astype(np.int64)
        return t if self.scale == 1.0 else np.rint(t * self.scale).astype(np.int64)

    def _batches(self):
        f = self.fields
        step = self.chunk_events
        isz = self.dtype.itemsize
        for i in range(0, self.n, step):
            c = self.mm[i:i + step]
            x = _coord(c[f["x"]])
            y = _coord(c[f["y"]])
            t = self._t(c)
            tf = c[f["t"]]
            if tf.dtype.kind == "f":
                bad = _bad_time(tf.astype(np.float64) * self.scale)
                if bad.any():
                    x = x.copy()
                    x[bad] = 65535  # dropped as outside the sensor
                    first = int(np.flatnonzero(bad)[0])
                    self.note("dropped", f"byte {self.start + (i + first) * isz}",
                              f"{int(bad.sum())} events with a NaN, infinite or out-of-range timestamp", 0)
            pv = c[f["p"]]
            p = (pv > 0).astype(np.uint8)
            yield Batch(x, y, t, p, loc=fixed_loc(self.start + i * isz, isz))

    def close(self):
        self.mm = None
        super().close()


def _bad_time(t_us: np.ndarray) -> np.ndarray:
    """Float timestamps (µs) that are NaN, infinite, or beyond what an int64 of µs holds."""
    with np.errstate(invalid="ignore"):
        return ~(np.abs(t_us) < 2.0 ** 62)


def _largest_kept(v: np.ndarray) -> int:
    """The largest coordinate below 65535 (the mark of one dropped as outside the sensor), or -1."""
    kept = v[v < 65535]
    return int(kept.max()) if len(kept) else -1


def _coord(v: np.ndarray) -> np.ndarray:
    if v.dtype.kind == "f":  # NaN, infinite and out-of-range values become -1 before any cast
        with np.errstate(invalid="ignore"):
            v = np.where((v >= 0) & (v < 65536), np.floor(v), -1.0)
    v = v.astype(np.int64) if v.dtype != np.uint16 else v
    if v.dtype == np.uint16:
        return np.ascontiguousarray(v)
    return np.where((v < 0) | (v > 65535), 65535, v).astype(np.uint16)


# ------------------------------------------------------------------------------------------- writer

_HEADER_LEN = 128  # bytes, room for a 20-digit shape


def _header(n: int) -> bytes:
    d = "{'descr': %r, 'fortran_order': False, 'shape': (%d,), }" % (np.lib.format.dtype_to_descr(EVENT_DTYPE), n)
    body = d.encode("latin1")
    total = _HEADER_LEN
    pad = total - 10 - len(body) - 1
    if pad < 0:
        raise ValueError("npy header too long")
    return MAGIC + b"\x01\x00" + (total - 10).to_bytes(2, "little") + body + b" " * pad + b"\n"


def write_events_npy(path, chunks) -> int:
    """Stream ``chunks`` (:class:`Events` or arrays with fields x, y, t, p; t in µs) into ``path``
    as a 1-D ``.npy`` of ``EVENT_DTYPE`` records, without holding them in memory. ``path``: a file
    name (written atomically, see :func:`~edgebrain.safeio.atomic_write`) or a seekable binary file
    object (the header's length is patched at the end). Returns the number of events."""
    if not hasattr(path, "write"):
        with atomic_write(os.fspath(path), "events file") as f:
            return write_events_npy(f, chunks)
    f, n = path, 0
    start = f.tell()
    f.write(_header(0))
    try:
        for c in chunks:
            ev = c.events if isinstance(c, Events) else c
            if ev is None or len(ev) == 0:
                continue
            if ev.dtype != EVENT_DTYPE:
                ff = _fields(ev.dtype)
                if ff is None:
                    raise InputError(f"chunk dtype {ev.dtype} has no fields x, y, t, p")
                e2 = np.empty(len(ev), EVENT_DTYPE)
                for k in "xytp":
                    e2[k] = ev[ff[k]]
                ev = e2
            f.write(np.ascontiguousarray(ev).tobytes())
            n += len(ev)
    finally:  # also when interrupted: the header counts the events written
        f.seek(start)
        f.write(_header(n))
        f.seek(0, os.SEEK_END)
    return n


__all__ = ["NpySource", "write_events_npy", "sniff_npy", "read_npy_header", "FormatError"]
