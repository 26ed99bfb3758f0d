"""Buffers handed out again once nothing else holds them.

At camera event rates a reader fills a fresh buffer of a few hundred kB to a few MB per batch. Memory
fresh from the system costs a page fault per 4 kB on first write, which on sparse recordings was a
larger share of decoding than the decoding itself. An :class:`ArrayPool` keeps a few such buffers
and lends one out again only when CPython's reference count says that no array, view, chunk or
memoryview outside the pool still refers to it: a caller that keeps its chunks keeps its data, and
the pool then simply allocates a new buffer. The counts are compared with baselines measured at
import in the same way (:func:`refs`), not with fixed numbers, since interpreters count differently.
"""

from __future__ import annotations

import sys
import threading

import numpy as np


def refs(obj) -> int:
    """``sys.getrefcount(obj)`` through one call level, so that a caller compares it with a
    baseline measured the same way (below) rather than with a number that depends on the
    interpreter: Python 3.14 borrows references of local variables passed to a call, which makes
    counts smaller than in 3.10-3.13."""
    return sys.getrefcount(obj)


def _held_by_one_local() -> int:
    probe = np.empty(1)
    return refs(probe)


def _held_by_list_and_local() -> int:
    arrays = [np.empty(1)]
    a = arrays[0]
    return refs(a)


LOCAL_ONLY = _held_by_one_local()          # refs(x) for an x that only the caller's local variable holds
IN_LIST_ONLY = _held_by_list_and_local()   # refs(a) for an a held by a list and the caller's local


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
                # a free buffer is held only by the list and `a`
                if a.shape[0] >= n and (best < 0 or a.shape[0] < self._arrays[best].shape[0]) and \
                        refs(a) == IN_LIST_ONLY:
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
            if refs(a) == IN_LIST_ONLY and (best is None or a.shape[0] < self._arrays[best].shape[0]):
                best = k
        a = None  # noqa: F841
        del self._arrays[0 if best is None else best]

    def clear(self) -> None:
        with self._lock:
            self._arrays.clear()
