"""Buffers handed out again once nothing else holds them.

At camera event rates a reader fills a fresh buffer of a few hundred kB to a few MB per batch. Memory
fresh from the system costs a page fault per 4 kB on first write, which on sparse recordings was a
larger share of decoding than the decoding itself. An :class:`ArrayPool` keeps a few such buffers
and lends one out again only when CPython's reference count says that no array, view, chunk or
memoryview outside the pool still refers to it: a caller that keeps its chunks keeps its data, and
the pool then simply allocates a new buffer.
"""

from __future__ import annotations

import sys
import threading

import numpy as np


class ArrayPool:
    """Up to ``keep`` arrays of ``dtype`` (rows of shape ``row``), each at most ``max_bytes``."""

    def __init__(self, dtype, row: tuple = (), keep: int = 3, max_bytes: int = 32 << 20):
        self.dtype = np.dtype(dtype)
        self.row = tuple(row)
        self.keep = keep
        self.max_bytes = max_bytes
        self._arrays: list = []
        self._lock = threading.Lock()

    def take(self, n: int) -> np.ndarray:
        """An array of exactly ``n`` rows: a view of a pooled buffer that nothing else holds, or a
        new buffer (pooled if it is small enough). Its contents are undefined."""
        n = int(n)
        with self._lock:
            best = -1
            for k in range(len(self._arrays)):  # the smallest free buffer that is large enough
                a = self._arrays[k]
                # references to a free buffer: the list, `a`, getrefcount's argument
                if a.shape[0] >= n and (best < 0 or a.shape[0] < self._arrays[best].shape[0]) and \
                        sys.getrefcount(a) == 3:
                    best = k
            a = None  # noqa: F841 - this reference would make a buffer look held
            if best >= 0:
                return self._arrays[best][:n]
            rows = max(n, 1)
            new = np.empty((rows,) + self.row, self.dtype)
            if new.nbytes <= self.max_bytes:
                self._arrays.append(new)
                if len(self._arrays) > self.keep:
                    self._drop_one()
            return new[:n]

    def _drop_one(self) -> None:
        """Forget the smallest free buffer (or the oldest one, still in use, if none is free)."""
        best = None
        for k in range(len(self._arrays) - 1):  # not the one just made
            a = self._arrays[k]
            if sys.getrefcount(a) == 3 and (best is None or a.shape[0] < self._arrays[best].shape[0]):
                best = k
        a = None  # noqa: F841
        del self._arrays[0 if best is None else best]

    def clear(self) -> None:
        with self._lock:
            self._arrays.clear()
