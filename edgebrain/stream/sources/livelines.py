"""The Edge Impulse data-forwarder line protocol on a live link: :class:`LineSource`.

The device prints one sample per line, numbers separated by commas, tabs or spaces, no header
(Edge Impulse ``data-forwarder``). The channel count is fixed by the first lines that agree
(or ``channels=``); the rate is given (``rate=100``) or measured from the arrival times of the
first ``detect_lines`` lines like the data forwarder does, and snapped to a common sensor rate
when within 3 % (``info.extra["rate_detected"]``, ``["rate_measured"]``). Opening a source waits
for those first lines, so that its ``info`` is complete when the stream starts: at most
4 × max(``detect_seconds``, ``timeout``) of wall-clock time (20 s by default), whatever arrives
meanwhile (blank lines, garbage, lines that never agree), and keeping at most the last
:data:`START_LINES` lines (:data:`START_BYTES` bytes) that arrived meanwhile, to be streamed
once it is open (older ones are dropped and counted).

Sample times are stream time, sample index / rate; each chunk carries the wall-clock time it
arrived (``now()``; ``clock=`` gives another :class:`~edgebrain.stream.links.Clock` for the arrivals,
the start-up limit and the link's waits). Chunks hold what has arrived, at most ``chunk_ms`` (10 ms) of samples, so
that latency stays low.

Damage is counted in ``stats`` and logged, and the stream resynchronises at the next newline:
garbage and non-UTF-8 bytes, lines with the wrong number of fields, over-long lines (the line
buffer is bounded by ``max_line``); NaN/inf or out-of-range values (``valid=lo|hi``) are repaired
by the IMU files' policy (:mod:`.imu_repair`) as a live stream can: the line is skipped, or with
``repair=hold`` the channel's last valid value is used. The bytes come from
:class:`~edgebrain.stream.links.LinkReader` (drops, reconnection); the URLs are opened by
:mod:`.live`.
"""

from __future__ import annotations

import re
from typing import Iterator

import numpy as np

from ...errors import InputError
from ...options import positive_number
from ..base import Samples, Source, SourceInfo, log
from ..links import Link, LinkReader
from .imu_repair import Conditioner, Rows, check_repair, invalid, live_bounds, snap_rate

_SEP = re.compile(rb"[,\t ]+")
START_LINES = 4096       # lines kept while opening (at least 2 × detect_lines)
START_BYTES = 1 << 20    # and their bytes


class LineSource(Source):
    """Samples from a live line link (see the module). Options: rate, channels, names, labels_col,
    timeout, reconnect, backoff, backoff_max, give_up, connect_timeout, detect_lines, detect_seconds,
    max_line, chunk_ms, valid, repair."""

    live = True

    def __init__(self, link: Link, url: str, *, rate=None, channels=None, names=None, labels_col=None,
                 timeout=5.0, reconnect=10, backoff=0.1, backoff_max=2.0, give_up=None, connect_timeout=30.0,
                 detect_lines=50, detect_seconds=5.0, max_line=4096, chunk_ms=10.0, valid=None, repair="skip",
                 poll=0.02, clock=None):
        super().__init__()
        self.link, self.url = link, url
        if isinstance(names, str):
            names = [x for x in re.split(r"[,|]", names) if x]
        self.names = list(names) if names else None
        self.C = int(channels) if channels is not None else (len(self.names) if self.names else None)
        if self.names and self.C != len(self.names):
            raise InputError(f"{url}: {len(self.names)} names for channels={self.C}")
        if self.C is not None and not 0 < self.C <= 4096:
            raise InputError(f"{url}: channels={channels}; expected 1 to 4096")
        if rate is not None:
            rate = positive_number(rate, f"{url}: rate", "samples per second")
        self.labels_col = None if labels_col is None else int(labels_col)
        self.timeout = positive_number(timeout, f"{url}: timeout", "seconds")
        self.detect_lines = int(detect_lines)
        self.detect_seconds = positive_number(detect_seconds, f"{url}: detect_seconds", "seconds")
        self.max_line, self.poll = int(max_line), float(poll)
        self.repair = check_repair(repair, url, live=True)
        self.lo, self.hi = live_bounds(valid, url)
        self.link_reader = LinkReader(link, url, self.stats, timeout=timeout, reconnect=reconnect, backoff=backoff,
                                       backoff_max=backoff_max, give_up=give_up, poll=poll, on_drop=self._dropped,
                                       clock=clock)
        self._now = self.link_reader.clock.now
        self._buf = b""
        self._discarding = False
        self._n = 0                      # samples emitted (stream time = n / rate)
        self._pending: list = []         # (arrival, lines) read while opening (bounded: START_LINES/BYTES)
        self._extra = {"link": link.kind, "protocol": "edge-impulse data-forwarder lines"}
        try:
            self.link_reader.connect_first(float(connect_timeout))
            self._reader = self._reads()
            rate, detected, measured = self._prime(rate)
        except BaseException:
            self.close()
            raise
        self.rate = rate
        self._cond = Conditioner(self.stats, url, self.C, rate, self.repair, False, None, None, live=True)
        self.per_chunk = max(1, int(rate * float(chunk_ms) / 1000.0))
        self._extra["rate_detected"] = detected
        if measured is not None:
            self._extra["rate_measured"] = round(measured, 3)
        if hasattr(link, "port") and isinstance(link.port, int):
            self._extra["port"] = link.port
        self.info = SourceInfo(format="lines", kind="samples", path=url, rate=rate, channels=self.C,
                               channel_names=self.names or [f"ch{j}" for j in range(self.C)], extra=self._extra)
        log.info("%s: %d channels at %g Hz%s", url, self.C, rate,
                 f" (detected: measured {measured:.2f} Hz)" if detected else "")

    # -------------------------------------------------------------- connection
    def _where(self) -> str:
        return self.url

    def _dropped(self) -> None:
        if self._buf or self._discarding:
            self.stats.note("repaired", self.url, "partial line discarded when the link dropped")
            self._buf, self._discarding = b"", False

    def _reads(self) -> Iterator[tuple[float, list]]:
        """(arrival, complete lines) as they come, across drops and reconnections; also (now, []) for
        a read without a complete line, and (now, None) every ``poll`` seconds without data, so that
        waits can end on time."""
        for t, data in self.link_reader.reads(idle=True):
            yield t, (self._split(data) if data else None)

    def _split(self, data: bytes) -> list:
        if self.link.datagram:
            parts = data.split(b"\n")
        else:
            parts = (self._buf + data).split(b"\n")
            tail = parts.pop()
            if self._discarding:
                if not parts:
                    return []
                parts.pop(0)
                self._discarding = False
            if len(tail) > self.max_line:
                self.stats.note("repaired", self.url, f"line longer than {self.max_line} bytes; discarded up to the "
                                                      "next newline")
                tail, self._discarding = b"", True
            self._buf = tail
        out = []
        for p in parts:
            if len(p) > self.max_line:
                self.stats.note("repaired", self.url, f"line longer than {self.max_line} bytes; discarded")
                continue
            p = p.strip()
            if p:
                out.append(p)
        return out

    # -------------------------------------------------------------- the first lines
    def _fields(self, line: bytes):
        f = _SEP.split(line)
        return [x for x in f if x]

    def _keep(self, t: float, lines: list, held: list) -> None:
        """Hold ``lines`` (arrived at ``t``) for the stream. ``held`` = [lines, bytes, dropped] so far."""
        self._pending.append((t, lines))
        held[0] += len(lines)
        held[1] += sum(len(ln) for ln in lines)

    def _trim(self, held: list) -> None:
        """Still waiting: drop the oldest lines held beyond START_LINES and START_BYTES."""
        max_lines = max(START_LINES, 2 * self.detect_lines)
        while held[0] > max_lines or held[1] > START_BYTES:
            t0, old = self._pending[0]
            k = max(1, min(len(old), held[0] - max_lines))
            gone, rest = old[:k], old[k:]
            held[0] -= len(gone)
            held[1] -= sum(len(ln) for ln in gone)
            held[2] += len(gone)
            if rest:
                self._pending[0] = (t0, rest)
            else:
                self._pending.pop(0)

    def _prime(self, rate):
        """Read the first lines: fix the channel count and measure the rate if not given, within the
        wall-clock start-up limit (see the module)."""
        need_rate = rate is None
        held = [0, 0, 0]        # lines and bytes held in _pending, lines dropped from it
        t_start = self._now()
        limit = max(self.detect_seconds, self.timeout) * 4
        give_up = self.link_reader.give_up  # reconnecting while opening ends with the limit too
        self.link_reader.give_up = limit if give_up is None else min(give_up, limit)
        try:
            result = self._detect(rate, need_rate, t_start, limit, held)
        finally:
            self.link_reader.give_up = give_up
        if held[2]:
            self.stats.note("dropped", self.url, f"{held[2]} lines received while opening not kept (more than "
                                                 f"{max(START_LINES, 2 * self.detect_lines)} lines or "
                                                 f"{START_BYTES >> 20} MiB before the stream was open)", held[2])
        return result

    def _detect(self, rate, need_rate, t_start, limit, held):
        first = last = None     # (arrival, number of lines) of the first and the latest read with lines
        n_lines = n_reads = 0   # for rate detection
        n_blank = 0             # reads of data without a line (blank lines, partial lines)
        run_len, run_count = 0, None
        for t, lines in self._reader:
            if self._now() - t_start > limit:
                break
            if not lines:
                n_blank += lines is not None
                continue
            self._keep(t, lines, held)
            n_reads += 1
            n_lines += len(lines)
            first = first or (t, len(lines))
            last = (t, len(lines))
            if self.C is None:
                for ln in lines:
                    f = self._fields(ln)
                    if self.labels_col is not None and len(f) > 0:
                        try:
                            f.pop(self.labels_col)
                        except IndexError:
                            continue
                    try:
                        [float(x) for x in f]
                    except ValueError:
                        run_len = 0
                        continue
                    if f and len(f) == run_count:
                        run_len += 1
                    else:
                        run_count, run_len = len(f), 1
                    if run_len >= 3:
                        self.C = run_count
                        break
            if self.C is not None and not need_rate:
                return rate, False, None
            span = last[0] - first[0]
            if self.C is not None and n_reads >= 3 and span > 0 and (
                    n_lines >= self.detect_lines or self._now() - t_start >= self.detect_seconds):
                measured = (n_lines - first[1]) / span
                return snap_rate(measured), True, measured
            self._trim(held)
        got = n_lines
        if not got:
            if n_blank:
                raise InputError(f"{self.url}: no line of samples within the start-up limit of {limit:g} s "
                                 f"({n_blank} reads of blank or unfinished lines); expected lines of numbers")
            raise InputError(f"{self.url}: no data received (waited {self._now() - t_start:.1f} s)")
        if self.C is None:
            raise InputError(f"{self.url}: cannot tell the number of channels: no three consecutive lines of "
                             f"numbers agree among the first {got} lines; pass channels=")
        raise InputError(f"{self.url}: cannot detect the sample rate from {got} lines arriving in {n_reads} "
                         "bursts; pass rate=")

    # -------------------------------------------------------------- streaming
    def _parse(self, lines: list):
        """Values (n, C) float32 and labels of the lines of samples, counting the others; invalid values
        are repaired by the IMU repair policy (:class:`~.imu_repair.Conditioner`, live). The notes
        keep the order of the lines: the rows between two damaged lines are repaired together."""
        C, lc = self.C, self.labels_col
        rows, labels = [], []
        notes = []              # (rows read before it, what): damaged lines, noted in order below
        for ln in lines:
            if ln.startswith(b"ERR") or ln.startswith(b"<ERR"):
                notes.append((len(rows), f"device reported an error: {ln[:60].decode('utf-8', 'replace')}"))
                continue
            f = self._fields(ln)
            lab = None
            if lc is not None:
                try:
                    lab = f.pop(lc).decode("utf-8", "replace")
                except IndexError:
                    pass
            if len(f) != C:
                notes.append((len(rows), f"line with {len(f)} fields, expected {C}: "
                                         f"{ln[:40].decode('utf-8', 'replace')!r}; skipped"))
                continue
            try:
                v = [float(x) for x in f]
            except ValueError:
                notes.append((len(rows), f"unparsable line {ln[:40].decode('utf-8', 'replace')!r}; skipped"))
                continue
            rows.append(v)
            labels.append(lab)
        vals = np.array(rows, np.float64).reshape(len(rows), C)
        bad = invalid(vals, self.lo, self.hi)
        labs = np.array(labels, dtype=object) if lc is not None else None
        out, a = [], 0
        for i, what in notes + [(len(rows), None)]:
            if i > a:
                r = self._cond.push(Rows(np.zeros(i - a, np.int64), np.zeros(i - a), vals[a:i], bad[a:i],
                                         None if labs is None else labs[a:i]))
                if r is not None and len(r):
                    out.append(r)
                a = i
            if what is not None:
                self.stats.note("repaired", self.url, what)
        if not out:
            return None, None
        out = Rows.cat(out)
        return out.vals.astype(np.float32), out.labels

    def chunks(self) -> Iterator[Samples]:
        def batches():
            while self._pending:
                yield self._pending.pop(0)
            yield from self._reader

        try:
            for arrival, lines in batches():
                if not lines:
                    continue
                vals, labels = self._parse(lines)
                if vals is None:
                    continue
                for a in range(0, len(vals), self.per_chunk):
                    v = vals[a:a + self.per_chunk]
                    t = (self._n + np.arange(len(v))) / self.rate
                    self._n += len(v)
                    yield Samples(t, v, None if labels is None else labels[a:a + self.per_chunk], arrival)
        finally:
            self.close()

    def close(self) -> None:
        reader = getattr(self, "link_reader", None)
        if reader is not None:
            reader.close()
