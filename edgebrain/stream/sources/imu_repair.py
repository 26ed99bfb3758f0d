"""The one repair policy of IMU samples, for the file readers and the live line source.

Parsed samples come as :class:`Rows` (line numbers, times, values with NaN where invalid, the
invalid mask, labels); a :class:`Conditioner` checks their times and repairs their values as
``repair=`` says (see :mod:`edgebrain.stream.sources.imu` for the rules):

* a sample with an invalid value (unparsable, NaN, ±inf, outside ``valid=lo|hi``) is dropped
  (``skip``), gets the channel's last valid value (``hold``) or is interpolated in time (``interp``);
  a live stream does not wait for a later value, so it has skip and hold only;
* timestamps out of sequence, clocks that step, and gaps (timestamped files only).

Every repair is counted in the source's ``stats``. :func:`snap_rate` rounds a measured sample
rate to the common sensor rate it is within 3 % of.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ...errors import InputError

REPAIRS = ("skip", "hold", "interp")
LIVE_REPAIRS = ("skip", "hold")
MAX_PENDING = 1 << 14     # samples held back waiting for the next valid value (interp/hold)

#: sensor output data rates a measured rate is snapped to (within 3 %)
COMMON_RATES = (1, 2, 5, 10, 12.5, 16, 20, 25, 26, 30, 32, 40, 50, 52, 60, 62.5, 64, 100, 104, 125, 128, 200, 208,
                250, 256, 400, 416, 500, 512, 800, 833, 1000, 1600, 1666, 2000, 3200, 3333, 4000, 6667, 8000)


def snap_rate(rate: float) -> float:
    """A measured rate as the common sensor rate (:data:`COMMON_RATES`) within 3 % of it, else
    rounded to 3 significant digits."""
    best = min(COMMON_RATES, key=lambda r: abs(math.log(rate / r)))
    if abs(rate / best - 1) <= 0.03:
        return float(best)
    return float(f"{rate:.3g}")


def check_repair(repair: str, where: str, live: bool = False) -> str:
    """``repair`` when it is a repair this stream can make (:data:`REPAIRS`; live: skip or hold),
    else an InputError naming ``where``."""
    if live:
        if repair not in LIVE_REPAIRS:
            raise InputError(f"{where}: repair='{repair}'; expected skip or hold (a live stream does not wait to "
                             "interpolate)")
    elif repair not in REPAIRS:
        raise InputError(f"{where}: repair='{repair}'; expected one of {', '.join(REPAIRS)}")
    return repair


def runs(lines: np.ndarray) -> list[tuple[int, int, int]]:
    """Consecutive runs in sorted line numbers: [(first, last, count)]."""
    if len(lines) == 0:
        return []
    lines = np.asarray(lines, np.int64)
    br = np.flatnonzero(np.diff(lines) > 1)
    starts = np.concatenate(([0], br + 1))
    ends = np.concatenate((br, [len(lines) - 1]))
    return [(int(lines[a]), int(lines[b]), int(b - a + 1)) for a, b in zip(starts, ends)]


def span(a: int, b: int) -> str:
    """``line a`` or ``lines a-b``: where a run of damage is, in a repair note."""
    return f"line {a}" if a == b else f"lines {a}-{b}"


def valid_bounds(valid, n: int, where: str):
    """(lo, hi) arrays of n channels from None, (lo, hi), or a list of (lo, hi) per channel (the
    ``valid=`` option of the file readers)."""
    lo = np.full(n, -np.inf)
    hi = np.full(n, np.inf)
    if valid is None:
        return lo, hi
    v = list(valid) if isinstance(valid, (list, tuple)) else [valid]
    if len(v) == 2 and all(np.isscalar(x) for x in v):
        lo[:], hi[:] = float(v[0]), float(v[1])
    elif len(v) == n and all(isinstance(x, (list, tuple)) and len(x) == 2 for x in v):
        lo[:] = [float(x[0]) for x in v]
        hi[:] = [float(x[1]) for x in v]
    else:
        raise InputError(f"{where}: valid={valid!r}; expected lo|hi (all channels) or one (lo, hi) pair per channel")
    if np.any(lo >= hi):
        raise InputError(f"{where}: valid range {valid!r} is empty (lo must be below hi)")
    return lo, hi



def live_bounds(valid, where: str) -> tuple[float, float]:
    """(lo, hi) of all channels from a live stream's ``valid=lo|hi`` (None: no bounds)."""
    if valid is None:
        return -np.inf, np.inf
    try:
        return float(valid[0]), float(valid[1])
    except (TypeError, IndexError, ValueError):
        raise InputError(f"{where}: valid={valid!r}; expected lo|hi") from None


def invalid(vals: np.ndarray, lo, hi) -> np.ndarray:
    """Mask of the values a repair must replace: NaN, ±inf, or outside [lo, hi]."""
    return ~np.isfinite(vals) | (vals < lo) | (vals > hi)


# ---------------------------------------------------------------------- rows, and their repair


@dataclass
class Rows:
    """Parsed samples before repair: line numbers, time (seconds: file clock from the first
    timestamp, or slot index / rate), values with NaN where invalid, the invalid mask, labels."""

    line: np.ndarray
    t: np.ndarray
    vals: np.ndarray
    bad: np.ndarray
    labels: np.ndarray | None

    def __len__(self):
        return len(self.t)

    def take(self, idx) -> "Rows":
        return Rows(self.line[idx], self.t[idx], self.vals[idx], self.bad[idx],
                     None if self.labels is None else self.labels[idx])

    @staticmethod
    def cat(parts: list) -> "Rows":
        parts = [p for p in parts if p is not None]
        if len(parts) == 1:
            return parts[0]
        lab = None if parts[0].labels is None else np.concatenate([p.labels for p in parts])
        return Rows(np.concatenate([p.line for p in parts]), np.concatenate([p.t for p in parts]),
                     np.concatenate([p.vals for p in parts]), np.concatenate([p.bad for p in parts]), lab)


class Conditioner:
    """Turns parsed rows into clean samples: time checks (timestamped files) and value repairs,
    stateful across blocks; repairs are counted in ``stats`` (a source's
    :class:`~edgebrain.stream.base.RepairStats`) at ``where`` (its path or URL). ``push(rows)``
    returns the samples ready so far; ``push(None, final=True)`` returns the rest.

    ``live``: a live stream, whose samples cannot wait for a later value: ``repair`` is skip or
    hold, and hold repeats each channel's last valid value of the samples already given out (a
    sample with an invalid value before the first whole one is skipped); repairs are noted per
    sample, without line numbers (see :meth:`_now`)."""

    def __init__(self, stats, where: str, channels: int, rate: float | None, repair: str, timed: bool,
                 max_gap: float | None, max_fill: int | None, live: bool = False):
        self.stats, self.where = stats, where
        self.live = live
        self.C = channels
        self.period = 1.0 / rate if rate else None
        self.repair = repair
        self.timed = timed
        self.max_gap = max_gap if max_gap is not None else (10 * self.period if self.period else np.inf)
        self.max_fill = (int(max_fill) if max_fill is not None
                         else int(round(10.0 / self.period)) if self.period else 0)
        self._carry: Rows | None = None       # last rows, kept to look ahead (timestamps)
        self._p: float | None = None           # last accepted file time
        self._shift = 0.0                      # stream time = file time + shift (changes when the clock steps back)
        self._prev_label = None
        self._pending: Rows | None = None     # rows waiting for a later valid value (hold/interp)
        self._last_v = np.full(channels, np.nan)   # last valid value per channel and its time
        self._last_t = np.full(channels, np.nan)

    def note(self, line: int | tuple, what: str, n: int = 1) -> None:
        where = span(*line) if isinstance(line, tuple) else f"line {line}"
        self.stats.note("repaired", f"{self.where}: {where}", what, n)

    # -------------------------------------------------------------- entry
    def push(self, rows: Rows | None, final: bool = False) -> Rows | None:
        if self.timed:
            rows = self._time(rows, final)
        elif rows is not None and len(rows) and rows.labels is not None:
            self._prev_label = rows.labels[-1]
        if self.live:
            return self._now(rows)
        if rows is not None and len(rows):
            self._note_bad(rows)
        if self.repair == "skip":
            if rows is None or not len(rows):
                return None
            keep = ~rows.bad.any(axis=1)
            return rows if keep.all() else rows.take(keep)
        return self._fill(rows, final)

    def _note_bad(self, rows: Rows) -> None:
        badrow = rows.bad.any(axis=1) & (rows.line > 0)   # inserted gap samples are noted with the gap
        if not badrow.any():
            return
        what = {"skip": "skipped", "hold": "held at the last valid value", "interp": "interpolated"}[self.repair]
        for a, b, n in runs(rows.line[badrow]):
            self.note((a, b), f"{n} sample{'s' if n > 1 else ''} with invalid values (unparsable, NaN/inf, outside "
                              f"the valid range, or cut short); {what}", n)

    def _now(self, rows: Rows | None) -> Rows | None:
        """Live repair: a sample with an invalid value is skipped, or (hold) gets each channel's last
        valid value when a sample was given out before it (else it is skipped too)."""
        if rows is None or not len(rows):
            return None
        badrow = rows.bad.any(axis=1)
        if not badrow.any():
            if self.repair == "hold":
                self._last_v[:] = rows.vals[-1]
                self._last_t[:] = rows.t[-1]
            return rows
        keep = ~badrow
        if self.repair == "hold":
            if np.isnan(self._last_t).any():      # nothing given out yet: hold from the first whole sample
                whole = np.flatnonzero(keep)
                keep[whole[0] if len(whole) else len(rows):] = True
            else:
                keep[:] = True
        for bad, kept in zip(badrow.tolist(), keep.tolist()):
            if bad:
                self.stats.note("repaired", self.where, "NaN/inf or out-of-range value; "
                                + ("held at the last valid value" if kept else "line skipped"))
        if not keep.all():
            rows = rows.take(keep)
        return self._fill(rows, True) if self.repair == "hold" and len(rows) else rows

    # -------------------------------------------------------------- timestamps
    def _time(self, rows: Rows | None, final: bool) -> Rows | None:
        rows = Rows.cat([self._carry, rows]) if self._carry is not None else rows
        self._carry = None
        if rows is None or not len(rows):
            return None
        n = len(rows)
        m = n if final else max(0, n - 2)
        if not final:
            self._carry = rows.take(slice(m, n))      # two rows of look-ahead
        if m == 0:
            return None
        raw = rows.t
        G = self.max_gap
        p0 = raw[0] if self._p is None else self._p
        d = raw - np.concatenate(([p0], raw[:-1]))          # the look-ahead rows too: they can tell
        out = rows.take(slice(0, m))                          # that a row before them is out of sequence
        if np.all((d >= 0) & (d <= G)):
            out.t = raw[:m] + self._shift
            self._p = float(raw[m - 1])
            if out.labels is not None:
                self._prev_label = out.labels[-1]
            return out
        t = np.empty(m)
        keep = np.ones(m, bool)
        inserts = []          # (before row i, times)
        p = self._p
        period = self.period or 0.0
        for i in range(m):
            ts = float(raw[i])
            nxt = float(raw[i + 1]) if i + 1 < n else None
            nxt2 = float(raw[i + 2]) if i + 2 < n else None
            if self._outlier(p, ts, nxt, nxt2):
                # this timestamp alone is wrong: its neighbours agree with each other, not with it
                dd = ts - p
                ln = int(rows.line[i])
                if self.repair == "skip":
                    keep[i] = False
                    self.note(ln, f"timestamp out of sequence ({dd * 1e3:+.1f} ms from the previous sample, its "
                                  "neighbours agree); line skipped")
                else:
                    mid = p + 0.5 * (nxt - p)
                    t[i] = mid + self._shift
                    p = mid
                    self.note(ln, f"timestamp out of sequence ({dd * 1e3:+.1f} ms from the previous sample); time "
                                  "interpolated between its neighbours")
                continue
            if p is None or 0 <= ts - p <= G:
                t[i] = ts + self._shift
                p = ts
                continue
            dd = ts - p
            ln = int(rows.line[i])
            k = int(round(dd / period)) - 1 if period else 0
            if dd < 0 or k > self.max_fill:
                # the clock stepped (back, or forward by more than max_fill samples) and continues from there
                self._shift += (p - ts) + period
                t[i] = ts + self._shift
                p = ts
                self.note(ln, f"timestamps {'go back' if dd < 0 else 'jump forward'} by {abs(dd):.3f} s and continue "
                              "from there; stream time continues one period after the previous sample")
                continue
            # a gap, after which the timestamps continue
            fill = self.repair != "skip" and k > 0
            how = (f"filled with {k} {'held' if self.repair == 'hold' else 'interpolated'} samples" if fill
                   else "times kept")
            self.note(ln, f"gap of {dd:.3f} s in the timestamps (about {max(k, 0)} samples missing); {how}",
                      k if fill else 1)
            if fill:
                inserts.append((i, p + self._shift + dd * np.arange(1, k + 1) / (k + 1)))
            t[i] = ts + self._shift
            p = ts
        self._p = p
        out.t = t
        segs, start = [], 0
        for i, times in inserts:
            segs.append(out.take(np.flatnonzero(keep[start:i]) + start))
            k = len(times)
            lab = None
            if out.labels is not None:
                prev = out.labels[i - 1] if i > 0 else self._prev_label
                lab = np.array([out.labels[i] if prev is None else prev] * k, dtype=object)
            # inserted samples carry the negated line number of the sample after the gap
            segs.append(Rows(np.full(k, -out.line[i]), times, np.full((k, self.C), np.nan),
                              np.ones((k, self.C), bool), lab))
            start = i
        segs.append(out.take(np.flatnonzero(keep[start:m]) + start))
        out = Rows.cat(segs)
        if out.labels is not None and len(out):
            self._prev_label = out.labels[-1]
        return out

    def _outlier(self, p, ts, nxt, nxt2) -> bool:
        """Is ``ts`` alone out of sequence, between the accepted ``p`` and the next two timestamps?"""
        G = self.max_gap
        if p is None or nxt is None or not 0 <= nxt - p <= 2 * G:
            return False                     # the next one does not agree with the previous one either
        if ts < p:
            return True                      # too early, and the next one continues from the previous
        if nxt >= ts:
            return False
        # the next one goes back from this one: this one is late, or the next one is early
        if nxt2 is None:
            return ts - p > G
        drop_this = p <= nxt <= nxt2 and nxt2 - p <= 3 * G
        drop_next = p <= ts <= nxt2 and nxt2 - p <= 3 * G
        if drop_this and drop_next:          # both fit: keep the more even spacing
            return abs((nxt - p) - (nxt2 - nxt)) < abs((ts - p) - (nxt2 - ts))
        if drop_this != drop_next:
            return drop_this
        return ts - p > G

    # -------------------------------------------------------------- hold / interpolate
    def _fill(self, rows: Rows | None, final: bool) -> Rows | None:
        buf = Rows.cat([self._pending, rows]) if self._pending is not None else rows
        self._pending = None
        if buf is None or not len(buf):
            return None
        n = len(buf)
        bad = buf.bad
        cut = n
        if bad.any() and not final and n <= MAX_PENDING:
            # a bad cell after a channel's last valid value waits for the next block
            for c in np.flatnonzero(bad[-1]):
                good = np.flatnonzero(~bad[:, c])
                if self.repair == "hold" and (len(good) or not np.isnan(self._last_t[c])):
                    continue                  # holding needs nothing from the future
                cut = min(cut, int(good[-1]) + 1 if len(good) else 0)
        if cut == 0:
            self._pending = buf
            return None
        # fill from every valid value in the buffer (also those in rows that wait), emit rows [0, cut)
        vals = buf.vals[:cut].copy()
        for c in range(self.C):
            b = buf.bad[:cut, c]
            g = np.flatnonzero(~buf.bad[:, c])
            if b.any():
                tg, vg = buf.t[g], buf.vals[g, c]
                has_prev = not np.isnan(self._last_t[c])
                if has_prev:
                    tg = np.concatenate(([self._last_t[c]], tg))
                    vg = np.concatenate(([self._last_v[c]], vg))
                bi = np.flatnonzero(b)
                if len(vg) == 0:
                    vals[bi, c] = 0.0
                    self.note((abs(int(buf.line[bi[0]])), abs(int(buf.line[bi[-1]]))),
                              f"channel {c} has no valid value to {self.repair} from; filled with 0", 0)
                elif self.repair == "interp":
                    vals[bi, c] = np.interp(buf.t[bi], tg, vg)
                else:  # hold: the last valid value before, else the first one after
                    pos = np.concatenate(([-1], g)) if has_prev else g
                    k = np.searchsorted(pos, bi, side="right") - 1
                    vals[bi, c] = vg[np.maximum(k, 0)]
            ge = g[g < cut]
            if len(ge):
                self._last_v[c] = buf.vals[ge[-1], c]
                self._last_t[c] = buf.t[ge[-1]]
        if cut < n:
            self._pending = buf.take(slice(cut, n))
            buf = buf.take(slice(0, cut))
        buf.vals = vals
        buf.bad = np.zeros_like(buf.bad)
        return buf
