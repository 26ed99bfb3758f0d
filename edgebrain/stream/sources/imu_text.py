"""Text recordings read in blocks: the line reader, cell parsing, and the base of the IMU file readers.

:class:`Lines` yields a binary file's lines in blocks of bytes (memory constant in file length;
over-long lines are reported, not held); :func:`to_float` / :func:`to_time` parse columns of
byte strings, flagging the cells that do not parse; :class:`TextSource` is the reader the
formats of :mod:`edgebrain.stream.sources.imu` subclass: it reads ahead for the header, parses
each block into :class:`~.imu_repair.Rows` and hands them to its
:class:`~.imu_repair.Conditioner`.
"""

from __future__ import annotations

import os
from typing import Iterator

import numpy as np

from ...errors import FormatError, InputError
from ...options import positive_number
from ..base import Samples, Source, now
from .imu_repair import Conditioner, Rows, check_repair, runs, span

BLOCK = 1 << 16           # bytes read at a time
MAX_LINE = 1 << 16        # longest line kept (longer: skipped as damage); UEA cases may be longer
PROBE = 200               # data lines looked at to decide that a file is not of the expected form
RATE_TOLERANCE = 0.05     # a rate= given beside a time column agrees with the timestamps within this


# ---------------------------------------------------------------------- reading lines in blocks


class Lines:
    """The lines of a binary file in blocks of about ``block`` bytes: yields (number of the first
    line, list of lines without their end-of-line). A line longer than ``max_line`` bytes is
    reported to ``on_long(line_number)`` and dropped without being held in memory."""

    def __init__(self, f, block: int, max_line: int, on_long, first_line: int = 1):
        self.f, self.block, self.max_line, self.on_long = f, int(block), int(max_line), on_long
        self.lineno = first_line
        self.pos = f.tell()

    def __iter__(self) -> Iterator[tuple[int, list]]:
        tail, skipping = b"", False
        while True:
            data = self.f.read(self.block)
            if not data:
                if tail and not skipping:
                    line = tail[:-1] if tail.endswith(b"\r") else tail
                    yield self.lineno, [line]
                    self.lineno += 1
                elif skipping:
                    self.lineno += 1
                return
            self.pos += len(data)
            parts = (tail + data).split(b"\n")
            tail = parts.pop()
            if skipping:
                if not parts:
                    tail = b""        # still inside the over-long line
                    continue
                parts.pop(0)          # its end
                self.lineno += 1
                skipping = False
            if len(tail) > self.max_line:
                self.on_long(self.lineno + len(parts), len(tail))
                tail, skipping = b"", True
            if parts:
                first = self.lineno
                self.lineno += len(parts)
                yield first, [p[:-1] if p.endswith(b"\r") else p for p in parts]



def to_float(cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Parse an array of byte strings as float64; unparsable cells become NaN and are flagged."""
    try:
        return cells.astype(np.float64), np.zeros(cells.shape, bool)
    except ValueError:
        pass
    flat = cells.reshape(-1)
    out = np.empty(flat.shape, np.float64)
    bad = np.zeros(flat.shape, bool)
    for i, c in enumerate(flat.tolist()):
        try:
            out[i] = float(c)
        except ValueError:
            out[i] = np.nan
            bad[i] = True
    return out.reshape(cells.shape), bad.reshape(cells.shape)


def to_time(cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Timestamps: int64 when every cell is a whole number (exact for ns), else float64; and the
    mask of unusable cells (unparsable, NaN, inf)."""
    try:
        return cells.astype(np.int64), np.zeros(cells.shape, bool)
    except (ValueError, OverflowError):
        pass
    v, bad = to_float(cells)
    bad |= ~np.isfinite(v)
    return v, bad


def source_rate(rate, path: str) -> float:
    """A file's ``rate=`` option: a finite number of samples per second > 0, else an InputError naming
    the file."""
    try:
        return positive_number(rate, "rate", "samples per second")
    except InputError as e:
        raise InputError(str(e), file=path) from None


def check_rate(rate: float, step: float, unit: float, column, n: int, path: str, line: int) -> None:
    """A ``rate=`` given beside a time column must agree within RATE_TOLERANCE with the rate of the
    timestamps' median spacing ``step`` (in ``unit`` seconds, over the first ``n``): otherwise one of
    them is wrong (time in ms read as s, say), and the stream would be stretched or squeezed. The
    error states both, and the spacing's rate in the other units that give a sensor-like rate."""
    file_rate = 1.0 / (step * unit)
    if abs(rate / file_rate - 1.0) <= RATE_TOLERANCE:
        return
    units = {1.0: "s", 1e-3: "ms", 1e-6: "us", 1e-9: "ns"}
    alt = [f"{1.0 / (step * u):.6g} Hz in {name}" for u, name in units.items()
           if u != unit and 1e-3 <= 1.0 / (step * u) <= 1e6]
    raise InputError(f"rate={rate:g} Hz contradicts the time column '{column}': the median spacing of its first "
                     f"{n} timestamps is {step:g} {units.get(unit, 'units')}, i.e. {file_rate:.6g} Hz"
                     + (f" ({', '.join(alt)})" if alt else "")
                     + f"; expected the two to agree within {RATE_TOLERANCE:.0%} (give the right rate= or "
                     "time_unit=, or time=none to use the rate alone)", file=path, where=f"line {line}")


def texts(cells) -> list:
    """Byte-string cells as stripped text (undecodable bytes replaced)."""
    return [c.decode("utf-8", "replace").strip() for c in cells]



def split_fields(line: bytes, delim: bytes | None) -> list:
    """The fields of a line split at ``delim`` (None: at runs of whitespace)."""
    return line.split(delim) if delim is not None else line.split()


def is_number(b: bytes) -> bool:
    """Whether a cell parses as a number."""
    try:
        float(b)
        return True
    except ValueError:
        return False


def count_lines(path: str, limit: int = 1 << 29) -> int | None:
    """Number of lines in a file (constant memory), or None for files above ``limit`` bytes."""
    try:
        if os.path.getsize(path) > limit:
            return None
        n, last = 0, b"\n"
        with open(path, "rb") as f:
            while True:
                b = f.read(1 << 16)
                if not b:
                    break
                n += b.count(b"\n")
                last = b[-1:]
        return n + (last != b"\n")
    except OSError:
        return None



# ---------------------------------------------------------------------- the readers


class TextSource(Source):
    """A line-oriented text recording read in blocks; subclasses parse the header (in ``__init__``,
    with :meth:`_peek` / :meth:`_drop`, setting ``info`` and ``_cond``, their
    :class:`~.imu_repair.Conditioner`) and each block (:meth:`_parse`)."""

    FORMAT = ""

    def __init__(self, path, repair: str, block: int, max_line: int):
        super().__init__()
        self.path = str(path)
        self.repair = check_repair(repair, self.FORMAT)
        if int(block) < 256:
            raise InputError(f"{self.FORMAT}: block={block}; expected at least 256 bytes")
        self.max_line = int(max_line)
        try:
            self._f = open(self.path, "rb")
        except FileNotFoundError:
            raise FormatError("file not found", file=self.path) from None
        except OSError as e:
            raise FormatError(f"cannot read ({e.strerror})", file=self.path) from None
        self.size = os.fstat(self._f.fileno()).st_size
        self._lines = Lines(self._f, block, max_line, self._on_long)
        self._it = iter(self._lines)
        self._pre: list = []      # blocks read ahead while reading the header
        self._n_out = 0
        self._started = False
        self._cond: Conditioner | None = None

    # -------------------------------------------------------------- reading ahead
    def _on_long(self, line: int, size: int) -> None:
        self.stats.note("repaired", f"{self.path}: line {line}",
                        f"line longer than {self.max_line} bytes (not of the expected form); skipped")

    def _peek(self, n: int) -> list[tuple[int, bytes]]:
        """The first ``n`` lines not yet consumed, as (number, line), reading blocks ahead as needed."""
        have = sum(len(b[1]) for b in self._pre)
        while have < n:
            blk = next(self._it, None)
            if blk is None:
                break
            self._pre.append(blk)
            have += len(blk[1])
        out = []
        for first, lines in self._pre:
            for k, ln in enumerate(lines):
                if len(out) == n:
                    return out
                out.append((first + k, ln))
        return out

    def _drop(self, k: int) -> None:
        """Consume the first ``k`` read-ahead lines (a header)."""
        while k and self._pre:
            first, lines = self._pre[0]
            if len(lines) <= k:
                k -= len(lines)
                self._pre.pop(0)
            else:
                self._pre[0] = (first + k, lines[k:])
                k = 0

    def _blocks(self):
        while self._pre:
            yield self._pre.pop(0)
        yield from self._it

    def _binary_check(self, lines: list[tuple[int, bytes]], expected: str) -> None:
        head = [(ln, text) for ln, text in lines[:50] if text.strip()]
        nul = [ln for ln, text in head if b"\x00" in text]
        if nul and (nul[0] == head[0][0] or len(nul) > len(head) // 4):
            raise FormatError(f"binary data (NUL bytes); expected {expected}", file=self.path, where=f"line {nul[0]}")

    @property
    def bytes_read(self) -> int:
        return self._lines.pos

    # -------------------------------------------------------------- streaming
    def _parse(self, first: int, lines: list) -> Rows | None:
        raise NotImplementedError

    def _garbage(self, line_numbers, expected: str) -> None:
        for a, b, n in runs(line_numbers):
            self.stats.note("repaired", f"{self.path}: {span(a, b)}",
                            f"{n} line{'s' if n > 1 else ''} not of the form {expected}; skipped", n)

    def chunks(self) -> Iterator[Samples]:
        if self._started:
            raise InputError(f"{self.path}: a source can be read only once; open it again")
        self._started = True
        try:
            for first, lines in self._blocks():
                out = self._cond.push(self._parse(first, lines))
                if out is not None and len(out):
                    yield self._samples(out)
            out = self._cond.push(None, final=True)
            if out is not None and len(out):
                yield self._samples(out)
            if self._n_out == 0:
                raise FormatError("no valid sample in the file"
                                  + (f" ({self.stats.repaired} damaged lines or samples skipped)"
                                     if self.stats.repaired else ""), file=self.path)
        finally:
            self.close()

    def _samples(self, r: Rows) -> Samples:
        self._n_out += len(r)
        return Samples(r.t.astype(np.float64), r.vals.astype(np.float32), r.labels, now())

    def close(self) -> None:
        f = getattr(self, "_f", None)
        if f is not None and not f.closed:
            f.close()
        self._lines = None  # it holds a method of this source: no cycle left for the garbage collector
