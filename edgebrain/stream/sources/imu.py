"""IMU recordings as streams of :class:`~edgebrain.stream.base.Samples`: CSV, WISDM raw lines, UEA ``.ts``.

Every reader reads its file in blocks of bytes (``block=``, 64 KiB) and yields one chunk per block,
so memory stays constant in file length. Sample times ``t`` are seconds from the first sample,
values are float32 ``(n, channels)``, labels (when the file has them) are Python strings.

Damage is handled the same way by all three readers:

* a line that does not have the expected form (wrong number of fields, binary garbage, an
  over-long line) is skipped and counted; it is not a sample and does not advance the time;
* a sample with an invalid value (unparsable number, NaN, ±inf, outside the valid range
  ``valid=lo|hi``; a WISDM line cut before its ``;``) is repaired per ``repair=``:
  ``skip`` (default) drops the sample, ``hold`` repeats the channel's last valid value,
  ``interp`` interpolates the channel linearly in time between the valid values around it
  (at the very start: the next valid value; at the very end: the last one);
* timestamps (CSV with a time column) that go backwards or jump: a single out-of-sequence
  timestamp (its neighbours agree with each other) drops the line (``skip``) or gets the time
  halfway between its neighbours (``hold``/``interp``); a clock that steps back and stays back
  continues the stream time from the last sample plus one period, and so does a jump forward by
  more than ``max_fill`` samples (default 10 s); a gap longer than ``max_gap`` seconds (default 10
  periods) but within ``max_fill`` keeps its times (``skip``) or is filled with held/interpolated
  samples at the nominal rate (``hold``/``interp``).

Every repair is counted in ``source.stats`` and logged with the line numbers; all valid samples
around the damage are kept. Damage that leaves nothing to read (no header where one is needed,
no line of the expected form among the first ones, binary data, an empty file) is a
:class:`~edgebrain.errors.FormatError` naming the file, the line and what was expected.

The reading in blocks is :mod:`.imu_text`'s, the repairs are :mod:`.imu_repair`'s (the live line
source, :mod:`.livelines`, repairs with the same policy).
"""

from __future__ import annotations

import os
import re
from contextlib import nullcontext

import numpy as np

from ...errors import FormatError, InputError
from ...safeio import open_stream
from ..base import SourceInfo
from ..registry import FileFormat
from .imu_repair import Conditioner, Rows, invalid, runs, span, valid_bounds
from .imu_text import (BLOCK, MAX_LINE, PROBE, Lines, TextSource, check_rate, count_lines, is_number, source_rate,
                       split_fields, texts, to_float, to_time)

SPSWHAR_COLUMNS = ["x_acc", "y_acc", "z_acc", "x_gyro", "y_gyro", "z_gyro", "timestamp", "label"]
SPSWHAR_LABELS = ["SEATED", "STANDING_UP", "WALKING", "TURNING", "SITTING_DOWN"]
SPSWHAR_VALID = (-160.0, 160.0)   # 16 g in m/s² (accelerometer); ±160 rad/s is far beyond any watch gyroscope

WISDM_ACTIVITIES = {
    "A": "walking", "B": "jogging", "C": "stairs", "D": "sitting", "E": "standing", "F": "typing",
    "G": "brushing teeth", "H": "eating soup", "I": "eating chips", "J": "eating pasta", "K": "drinking from cup",
    "L": "eating sandwich", "M": "kicking (soccer ball)", "O": "playing catch (tennis ball)",
    "P": "dribbling (basketball)", "Q": "writing", "R": "clapping", "S": "folding clothes",
}

TIME_NAMES = ("timestamp", "timestamps", "time", "t", "ts", "time_s", "time_ms", "time_us", "timestamp_ms",
              "timestamp_s", "timestamp_us", "timestamp_ns", "seconds", "ms", "epoch")
LABEL_NAMES = ("label", "labels", "activity", "class", "target", "y", "gesture")
UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


class CsvSource(TextSource):
    """A CSV (or tab/semicolon/space separated) IMU recording.

    columns: channel columns (names or numbers; default: every column but time and label);
    time: time column (name or number; ``auto``: found by name; ``none``: no time column, then
    ``rate`` is needed and times are sample index / rate); time_unit: ``s``, ``ms``, ``us``, ``ns``
    or ``auto`` (from the column name, else the rate, else the magnitude and step of the values);
    label: label column (``auto``: found by name; ``none``); rate: samples per second (default:
    from the median timestep of the first rows); delimiter: ``,``, ``;``, ``tab``, ``space`` or
    ``auto``; header: ``auto`` (a first line with no number in it), ``true`` or ``false``;
    valid: valid value range ``lo|hi``; repair, max_gap (s), max_fill (samples): see the module.

    The sp-sw-har smartwatch layout (``x_acc,y_acc,z_acc,x_gyro,y_gyro,z_gyro,timestamp,label``,
    Unix milliseconds, 100 Hz) is recognised from its header.
    """

    FORMAT = "csv"

    def __init__(self, path, columns=None, time="auto", label="auto", rate=None, time_unit="auto",
                 delimiter="auto", header="auto", valid=None, repair="skip", max_gap=None, max_fill=None,
                 block=BLOCK, max_line=MAX_LINE):
        super().__init__(path, repair, block, max_line)
        try:
            self._open(columns, time, label, rate, time_unit, delimiter, header, valid, max_gap, max_fill)
        except BaseException:
            self.close()
            raise

    def _open(self, columns, time, label, rate, time_unit, delimiter, header, valid, max_gap, max_fill):
        head = self._peek(PROBE + 64)
        if not head:  # (a blank line is kept: a file with bytes but no line had only over-long ones)
            raise FormatError(f"{f'every line is longer than {self.max_line} bytes' if self.size else 'empty file'}"
                              "; expected a CSV header line and samples", file=self.path)
        self._binary_check(head, "CSV text")
        # leading comments and blank lines; '# ... rate=100 ...' gives the rate
        k, hint = 0, None
        while k < len(head) and (not head[k][1].strip() or head[k][1].lstrip().startswith(b"#")):
            m = re.search(rb"rate\s*=\s*([0-9.]+)", head[k][1])
            if m and is_number(m.group(1)):
                hint = float(m.group(1))
            k += 1
        if k == len(head):
            raise FormatError("no data lines; expected a CSV header line and samples", file=self.path)
        hline, htext = head[k]
        self._delim = d = self._delimiter(delimiter, htext)
        fields = split_fields(htext, d)
        if header == "auto":
            has_header = not any(is_number(x) for x in fields)
        else:
            has_header = bool(header)
        names = [x.decode("utf-8", "replace").strip().strip('"').strip("'") for x in fields] if has_header else None
        self._ncols = ncols = len(fields)
        data = [(ln, t) for ln, t in head[k + 1 if has_header else k:] if t.strip()]
        self._drop(k + 1 if has_header else k)
        layout = "sp-sw-har" if names and [n.lower() for n in names] == SPSWHAR_COLUMNS else None
        dname = {b",": "','", b";": "';'", b"\t": "tab", None: "whitespace"}[d]
        self._expected = f"{ncols} fields separated by {dname}"

        def col(spec, what):
            if isinstance(spec, (int, np.integer)) and not isinstance(spec, bool):
                if not 0 <= spec < ncols:
                    raise InputError(f"{what} column {spec} does not exist; the file has columns 0..{ncols - 1}",
                                     file=self.path)
                return int(spec)
            if names is None:
                raise FormatError(f"expected a header line naming the columns ({what} '{spec}' is a name), found "
                                  "data; give the columns by number instead", file=self.path, where=f"line {hline}")
            low = [n.lower() for n in names]
            if str(spec).lower() not in low:
                raise InputError(f"no {what} column '{spec}'; the header (line {hline}) names "
                                 f"{', '.join(names)}", file=self.path)
            return low.index(str(spec).lower())

        def auto(spec, candidates):
            if spec is None or spec is False or (isinstance(spec, str) and spec.lower() == "none"):
                return None
            if isinstance(spec, str) and spec.lower() == "auto":
                if names is None:
                    return None
                for j, n in enumerate(names):
                    if n.lower() in candidates:
                        return j
                return None
            return col(spec, "time" if candidates is TIME_NAMES else "label")

        self._tcol = tcol = auto(time, TIME_NAMES)
        self._lcol = lcol = auto(label, LABEL_NAMES)
        if columns is None:
            chans = [j for j in range(ncols) if j not in (tcol, lcol)]
        else:
            chans = [col(c, "channel") for c in (columns if isinstance(columns, (list, tuple)) else [columns])]
            if len(set(chans)) != len(chans):
                raise InputError(f"columns={columns!r} names a column twice", file=self.path)
        if not chans:
            raise InputError("no channel columns left (all are time or label)", file=self.path)
        if tcol in chans or (lcol is not None and lcol in chans):
            raise InputError("a channel column is also the time or label column", file=self.path)
        self._chans = chans
        # the first data lines must be of the expected form, with numbers where numbers belong
        rowsf = [(ln, split_fields(t, d)) for ln, t in data[:PROBE]]
        good = [(ln, f) for ln, f in rowsf if len(f) == ncols]
        if not good:
            if not rowsf:
                raise FormatError("no data lines after the header; expected samples", file=self.path)
            ln, f = rowsf[0]
            raise FormatError(f"expected {self._expected} (as on line {hline}), found {len(f)}; none of the first "
                              f"{len(rowsf)} data lines has that form", file=self.path, where=f"line {ln}")
        M = np.array([f for _, f in good], dtype=bytes)
        for j in chans + ([tcol] if tcol is not None else []):
            v, b = to_float(M[:, j])
            if b.mean() > 0.5:
                eg = M[b, j][0].decode("utf-8", "replace")[:24]
                if names is None:
                    raise FormatError(f"expected a header line naming the columns, found data with text in column {j} "
                                      f"(e.g. {eg!r}); without a header give columns=, time= and label= by number",
                                      file=self.path, where=f"line {hline}")
                raise FormatError(f"column {j} ('{names[j]}') is not numeric (e.g. {eg!r}); expected numbers; name the "
                                  "label column with label=, or choose the channels with columns=", file=self.path,
                                  where=f"line {good[int(np.argmax(b))][0]}")
        # time: unit and rate
        self._unit = None
        if rate is not None:
            rate = source_rate(rate, self.path)
        if tcol is not None:
            ts, tb = to_time(M[:, tcol])
            ts = ts[~tb]
            dt = np.diff(ts)
            dt = dt[dt > 0]
            step = float(np.median(dt)) if len(dt) else None
            self._unit = self._time_unit(time_unit, names[tcol] if names else "", ts, step, rate)
            if rate is not None and step is not None:
                check_rate(rate, step, self._unit, names[tcol] if names else tcol, len(ts), self.path, good[0][0])
            if rate is None:
                if step is None:
                    rate = hint
                    if rate is None:
                        raise InputError("cannot derive the rate: fewer than two increasing timestamps in the first "
                                         "lines; pass rate=", file=self.path)
                else:
                    rate = float(f"{1.0 / (step * self._unit):.6g}")
        elif rate is None:
            rate = hint
            if rate is None:
                raise InputError("no time column and no rate; pass rate= (samples per second) or time=<column>",
                                 file=self.path)
        self._rate = rate
        self._t0 = None
        self._slot = 0
        self._lo, self._hi = valid_bounds(SPSWHAR_VALID if valid is None and layout else valid, len(chans),
                                           f"{self.path}: csv")
        self._known = SPSWHAR_LABELS if layout and lcol is not None else None
        self._prev_label = None
        nlines = count_lines(self.path)
        n_items = None if nlines is None else max(0, nlines - hline + (0 if has_header else 1))
        if names is not None:
            ch_names = [names[j] for j in chans]
        else:
            ch_names = [f"ch{j}" for j in chans]
        extra = {"layout": layout or "generic", "repair": self.repair,
                 "time_column": None if tcol is None else (names[tcol] if names else tcol),
                 "time_unit": None if tcol is None else {1.0: "s", 1e-3: "ms", 1e-6: "us", 1e-9: "ns"}[self._unit],
                 "label_column": None if lcol is None else (names[lcol] if names else lcol)}
        if valid is not None or layout:
            extra["valid"] = [float(self._lo.min()), float(self._hi.max())]
        self.info = SourceInfo(format="csv", kind="samples", path=self.path, rate=rate, channels=len(chans),
                               channel_names=ch_names, label_names=list(self._known) if self._known else None,
                               n_items=n_items, duration=None if n_items is None else n_items / rate, extra=extra)
        self._cond = Conditioner(self.stats, self.path, len(chans), rate, self.repair, tcol is not None, max_gap,
                                 max_fill)

    @staticmethod
    def _delimiter(spec, line: bytes) -> bytes | None:
        named = {",": b",", "comma": b",", ";": b";", "semicolon": b";", "tab": b"\t", "\t": b"\t",
                 "space": None, "whitespace": None, " ": None}
        if spec != "auto":
            if spec not in named:
                raise InputError(f"delimiter={spec!r}; expected ',', ';', tab, space or auto")
            return named[spec]
        counts = {c: line.count(c) for c in (b",", b";", b"\t")}
        best = max(counts, key=counts.get)
        return best if counts[best] else None

    def _time_unit(self, spec, name: str, ts: np.ndarray, step: float | None, rate: float | None) -> float:
        if spec != "auto":
            if spec not in UNITS:
                raise InputError(f"time_unit={spec!r}; expected s, ms, us, ns or auto", file=self.path)
            return UNITS[spec]
        low = name.lower()
        for suf, u in (("_ms", 1e-3), ("_us", 1e-6), ("_ns", 1e-9), ("_s", 1.0), ("(ms)", 1e-3), ("(s)", 1.0),
                       ("[ms]", 1e-3), ("[s]", 1.0)):
            if low.endswith(suf) or low.replace(" ", "").endswith(suf):
                return u
        if low in ("ms",):
            return 1e-3
        if low in ("seconds", "time_s"):
            return 1.0
        if step is not None and rate:
            return min(UNITS.values(), key=lambda u: abs(np.log(step * u * rate)))
        first = float(np.abs(ts[0])) if len(ts) else 0.0
        # Unix times (from 2001 on) in s, ms, µs or ns
        for lim, u in ((1e17, 1e-9), (1e14, 1e-6), (1e11, 1e-3), (1e9, 1.0)):
            if first >= lim:
                return u
        # relative times: the step decides (s below 1, ms up to 1000, µs beyond)
        if step is None or step < 1:
            return 1.0
        return 1e-3 if step < 1000 else 1e-6

    def _parse(self, first: int, lines: list) -> Rows | None:
        d, ncols = self._delim, self._ncols
        fields, lnums, junk = [], [], []
        for k, ln in enumerate(lines):
            f = split_fields(ln, d)
            if len(f) == ncols:
                fields.append(f)
                lnums.append(first + k)
            elif ln.strip() and not ln.lstrip().startswith(b"#"):
                junk.append(first + k)
        if junk:
            self._garbage(junk, self._expected)
        if not fields:
            return None
        M = np.array(fields, dtype=bytes)
        lnums = np.array(lnums, np.int64)
        vals, bad = to_float(M[:, self._chans])
        bad |= invalid(vals, self._lo, self._hi)
        vals[bad] = np.nan
        labels = None
        if self._lcol is not None:
            labels = np.array(texts(M[:, self._lcol]), dtype=object)
            if self._known is not None:
                labels = self._check_labels(labels, lnums)
        if self._tcol is not None:
            ts, tb = to_time(M[:, self._tcol])
            if tb.any():
                for a, b, n in runs(lnums[tb]):
                    self.stats.note("repaired", f"{self.path}: {span(a, b)}",
                                    f"{n} line{'s' if n > 1 else ''} with an unparsable timestamp; skipped", n)
                keep = ~tb
                ts, vals, bad, lnums = ts[keep], vals[keep], bad[keep], lnums[keep]
                labels = None if labels is None else labels[keep]
                if not len(ts):
                    return None
            if self._t0 is None:
                self._t0 = ts[0]
            # integer timestamps (Unix ms, µs, ns) are subtracted as integers: ns do not fit a float64
            if ts.dtype == np.int64 and isinstance(self._t0, np.integer):
                t = (ts - self._t0).astype(np.float64) * self._unit
            else:
                t = (ts.astype(np.float64) - float(self._t0)) * self._unit
        else:
            t = (self._slot + np.arange(len(vals))) / self._rate
            self._slot += len(vals)
        return Rows(lnums, t, vals, bad, labels)

    def _check_labels(self, labels: np.ndarray, lnums: np.ndarray) -> np.ndarray:
        known = set(self._known)
        unknown = np.array([x not in known for x in labels], bool)
        if unknown.any():
            for i in np.flatnonzero(unknown):
                prev = labels[i - 1] if i > 0 else self._prev_label
                self.stats.note("repaired", f"{self.path}: line {lnums[i]}",
                                f"unknown label {labels[i][:24]!r} (expected one of {', '.join(self._known)}); "
                                + ("the previous sample's label kept" if prev is not None else "left as is"))
                if prev is not None:
                    labels[i] = prev
        if len(labels):
            self._prev_label = labels[-1]
        return labels


_WISDM_LINE = re.compile(rb"^\s*\d+\s*,\s*[A-Za-z]+\s*,\s*(-?\d+\s*,\s*)?[-+0-9.eE]+\s*,\s*[-+0-9.eE]+\s*,"
                         rb"\s*[-+0-9.eE]+\s*;")


class WisdmSource(TextSource):
    """WISDM raw lines ``subject,activity,timestamp,x,y,z;`` (or without the timestamp: 5 fields).

    The timestamp is not Unix time (see formats.md §14.1), so time is sample index / ``rate``
    (20 Hz). Labels are the activity code letters (``labels=code``) or their names
    (``labels=name``); ``info.extra['activities']`` maps codes to names. A record without its closing
    ``;``, or with fewer fields but starting ``subject,activity,``, is a sample cut short: it keeps its
    time slot and its values are invalid (see ``repair``); other malformed lines are not samples."""

    FORMAT = "wisdm"

    def __init__(self, path, rate=20.0, labels="code", valid=None, repair="skip", block=BLOCK, max_line=MAX_LINE):
        super().__init__(path, repair, block, max_line)
        try:
            self._open(rate, labels, valid)
        except BaseException:
            self.close()
            raise

    def _open(self, rate, labels, valid):
        if labels not in ("code", "name"):
            raise InputError(f"wisdm: labels='{labels}'; expected code or name")
        rate = source_rate(rate, self.path)
        self._rate, self._names = rate, labels == "name"
        head = [x for x in self._peek(PROBE) if x[1].strip()]
        if not head:
            raise FormatError(f"{f'no line of at most {self.max_line} bytes' if self.size else 'empty file'}; "
                              "expected WISDM lines 'subject,activity,timestamp,x,y,z;'", file=self.path)
        self._binary_check(head, "WISDM text lines")
        counts = {}
        for _, t in head:
            if _WISDM_LINE.match(t):
                n = len(t.strip().rstrip(b";").split(b";")[0].split(b","))
                counts[n] = counts.get(n, 0) + 1
        if not counts:
            raise FormatError("expected WISDM lines 'subject,activity,timestamp,x,y,z;' or "
                              f"'subject,activity,x,y,z;'; none of the first {len(head)} lines is one",
                              file=self.path, where=f"line {head[0][0]}")
        self._nf = max(counts, key=counts.get)
        self._expected = ("'subject,activity,timestamp,x,y,z;'" if self._nf == 6 else "'subject,activity,x,y,z;'")
        self._lo, self._hi = valid_bounds(valid, 3, f"{self.path}: wisdm")
        self._slot = 0
        self._prev_label = None
        first = next(t for _, t in head if _WISDM_LINE.match(t))
        m = re.search(r"data_(\d+)_(accel|gyro)_(phone|watch)", os.path.basename(self.path))
        sensor = m.group(2) if m else None
        names = [f"{sensor}_{a}" if sensor else a for a in "xyz"]
        nlines = count_lines(self.path)
        extra = {"variant": f"{self._nf} fields" + (" (with timestamp)" if self._nf == 6 else " (no timestamp)"),
                 "subject": first.split(b",")[0].strip().decode(), "activities": dict(WISDM_ACTIVITIES),
                 "repair": self.repair}
        if m:
            extra.update(sensor=m.group(2), device=m.group(3))
        label_names = list(WISDM_ACTIVITIES.values()) if self._names else list(WISDM_ACTIVITIES)
        self.info = SourceInfo(format="wisdm", kind="samples", path=self.path, rate=rate, channels=3,
                               channel_names=names, label_names=label_names, n_items=nlines,
                               duration=None if nlines is None else nlines / rate, extra=extra)
        self._cond = Conditioner(self.stats, self.path, 3, rate, self.repair, False, None, None)

    def _parse(self, first: int, lines: list) -> Rows | None:
        nf = self._nf
        recs, lnums, cut, junk = [], [], [], []
        for k, ln in enumerate(lines):
            s = ln.strip()
            if not s:
                continue
            parts = s.split(b";")
            complete = [True] * (len(parts) - 1) + [False]
            if not parts[-1].strip():           # ends with ';' (the usual case)
                parts, complete = parts[:-1], complete[:-1]
            for p, c in zip(parts, complete):
                f = p.split(b",")
                if len(f) == nf and f[1].strip().isalpha():
                    recs.append(f)
                    lnums.append(first + k)
                    cut.append(not c)
                elif 2 <= len(f) < nf and f[0].strip().isdigit() and f[1].strip().isalpha():
                    # a record cut short: a sample whose values are lost (it keeps its time slot)
                    recs.append(f + [b"nan"] * (nf - len(f)))
                    lnums.append(first + k)
                    cut.append(True)
                else:
                    junk.append(first + k)
        if junk:
            self._garbage(sorted(set(junk)), self._expected)
        if not recs:
            return None
        M = np.array(recs, dtype=bytes)
        vals, bad = to_float(M[:, nf - 3:])
        bad |= invalid(vals, self._lo, self._hi)
        cut = np.array(cut, bool)
        bad[cut] = True
        vals[bad] = np.nan
        codes = texts(M[:, 1])
        labels = np.array([WISDM_ACTIVITIES.get(c, c) for c in codes] if self._names else codes, dtype=object)
        t = (self._slot + np.arange(len(vals))) / self._rate
        self._slot += len(vals)
        return Rows(np.array(lnums, np.int64), t, vals, bad, labels)


_UEA_TAGS = (b"@problemname", b"@timestamps", b"@missing", b"@univariate", b"@dimensions", b"@dimension",
             b"@equallength", b"@serieslength", b"@classlabel", b"@targetlabel", b"@data")


class UeaSource(TextSource):
    """A UEA/UCR ``.ts`` time-series classification file (e.g. BasicMotions), its cases streamed one
    after the other as one stream at ``rate`` samples per second (10 Hz for BasicMotions), every
    sample labelled with its case's class. ``info.extra`` holds ``n_cases``, ``series_length``,
    ``problem``. Missing values (``?``) are invalid values (see ``repair``); a case with the wrong
    number of dimensions, dimensions of different lengths or an unknown class is skipped."""

    FORMAT = "uea_ts"

    def __init__(self, path, rate=10.0, valid=None, repair="skip", block=BLOCK, max_line=1 << 26):
        super().__init__(path, repair, block, max_line)
        try:
            self._open(rate, valid)
        except BaseException:
            self.close()
            raise

    def _open(self, rate, valid):
        rate = source_rate(rate, self.path)
        self._rate = rate
        tags, k, data_line = {}, 0, None
        while data_line is None:
            got = self._peek(k + 1)
            if len(got) <= k:
                raise FormatError("no '@data' line; expected header tags (@problemName ... @classLabel ...) "
                                  "then '@data'", file=self.path)
            ln, text = got[k]
            k += 1
            if b"\x00" in text:
                raise FormatError("binary data (NUL bytes); expected a UEA .ts text header", file=self.path,
                                  where=f"line {ln}")
            s = text.strip()
            if not s or s.startswith(b"#"):
                continue
            if not s.startswith(b"@"):
                found = s[:40].decode("utf-8", "replace")
                raise FormatError(f"expected a header tag (@...) or '@data', found {found!r}", file=self.path,
                                  where=f"line {ln}")
            parts = s.decode("utf-8", "replace").split()
            tag = parts[0].lower()
            if tag == "@data":
                data_line = ln
            else:
                tags[tag] = (ln, parts[1:])
        self._drop(k)

        def flag(name, default=False):
            if name not in tags or not tags[name][1]:
                return default
            return tags[name][1][0].lower() == "true"

        if flag("@timestamps"):
            raise FormatError("@timeStamps true (values with time stamps) is not supported; expected @timeStamps "
                              "false", file=self.path, where=f"line {tags['@timestamps'][0]}")
        dims = None
        for key in ("@dimensions", "@dimension"):
            if key in tags:
                try:
                    dims = int(tags[key][1][0])
                except (IndexError, ValueError):
                    raise FormatError(f"{key} needs a whole number", file=self.path,
                                      where=f"line {tags[key][0]}") from None
        if dims is None and flag("@univariate"):
            dims = 1
        self._classes = None
        self._has_label = False
        if flag("@classlabel"):
            self._has_label = True
            self._classes = tags["@classlabel"][1][1:]
        elif flag("@targetlabel"):
            self._has_label = True
        length = None
        if "@serieslength" in tags:
            try:
                length = int(tags["@serieslength"][1][0])
            except (IndexError, ValueError):
                raise FormatError("@seriesLength needs a whole number", file=self.path,
                                  where=f"line {tags['@serieslength'][0]}") from None
        probe = [(ln, t) for ln, t in self._peek(PROBE) if t.strip() and not t.lstrip().startswith(b"#")]
        if dims is None:
            if not probe:
                raise FormatError("no cases after '@data' and no @dimensions", file=self.path)
            dims = len(probe[0][1].split(b":")) - int(self._has_label)
        if dims < 1:
            raise FormatError(f"@dimensions {dims}; expected at least 1", file=self.path)
        self._dims = dims
        self._expected = f"{dims} ':'-separated dimensions" + (" and a class label" if self._has_label else "")
        if probe and not any(len(t.split(b":")) == dims + int(self._has_label) for _, t in probe):
            ln, t = probe[0]
            raise FormatError(f"expected cases of {self._expected}, found {len(t.split(b':'))} ':'-separated fields; "
                              f"none of the first {len(probe)} cases has that form", file=self.path,
                              where=f"line {ln}")
        self._lo, self._hi = valid_bounds(valid, dims, f"{self.path}: uea_ts")
        self._slot = 0
        n_cases = self._count_cases(data_line)
        n_items = n_cases * length if (length and flag("@equallength", True)) else None
        problem = tags.get("@problemname", (0, ["?"]))[1]
        extra = {"n_cases": n_cases, "series_length": length, "problem": " ".join(problem) if problem else None,
                 "repair": self.repair}
        self.info = SourceInfo(format="uea_ts", kind="samples", path=self.path, rate=rate, channels=dims,
                               channel_names=[f"dim{j}" for j in range(dims)], label_names=self._classes,
                               n_items=n_items, duration=None if n_items is None else n_items / rate, extra=extra)
        self._cond = Conditioner(self.stats, self.path, dims, rate, self.repair, False, None, None)

    def _count_cases(self, data_line: int) -> int:
        n = 0
        with open(self.path, "rb") as f:
            for first, lines in Lines(f, 1 << 20, self.max_line, lambda *a: None):
                for k, ln in enumerate(lines):
                    if first + k > data_line and ln.strip() and not ln.lstrip().startswith(b"#"):
                        n += 1
        return n

    def _parse(self, first: int, lines: list) -> Rows | None:
        D, nl = self._dims, int(self._has_label)
        out, junk = [], []
        for k, ln in enumerate(lines):
            s = ln.strip()
            if not s or s.startswith(b"#"):
                continue
            lno = first + k
            parts = s.split(b":")
            if len(parts) != D + nl:
                junk.append(lno)
                continue
            dl = [p.split(b",") for p in parts[:D]]
            L = len(dl[0])
            if any(len(x) != L for x in dl):
                self.stats.note("repaired", f"{self.path}: line {lno}",
                                f"case with dimensions of different lengths ({', '.join(str(len(x)) for x in dl)}); "
                                "skipped")
                continue
            label = None
            if nl:
                label = parts[-1].strip().decode("utf-8", "replace")
                if self._classes is not None and label not in self._classes:
                    self.stats.note("repaired", f"{self.path}: line {lno}",
                                    f"unknown class label {label[:40]!r} (expected one of {', '.join(self._classes)}); "
                                    "case skipped")
                    continue
            vals, bad = to_float(np.array(dl, dtype=bytes).T)
            bad |= invalid(vals, self._lo, self._hi)
            vals[bad] = np.nan
            t = (self._slot + np.arange(L)) / self._rate
            self._slot += L
            out.append(Rows(np.full(L, lno, np.int64), t, vals, bad,
                             None if not nl else np.array([label] * L, dtype=object)))
        if junk:
            self._garbage(junk, f"a case of {self._expected}")
        return Rows.cat(out) if out else None


# ---------------------------------------------------------------------- writing


def write_csv(path, chunks, channel_names=None, rate=None) -> int:
    """Write Samples chunks as a CSV that :class:`CsvSource` reads back: a comment line with the rate,
    a header ``<channels>,time_s[,label]``, values with 9 significant digits (float32 round trip),
    time in seconds. ``path``: a file name (written in place, see :func:`~edgebrain.safeio.open_stream`) or a
    text file object. Returns the number of samples written."""
    n = 0
    with (open_stream(path, text=True, what="CSV") if isinstance(path, (str, os.PathLike)) else nullcontext(path)) as f:
        header_done = False
        labelled = False
        for ch in chunks:
            if not len(ch):
                continue
            v = np.asarray(ch.values, np.float32)
            if not header_done:
                C = v.shape[1]
                names = list(channel_names) if channel_names else [f"ch{j}" for j in range(C)]
                if len(names) != C:
                    raise InputError(f"write_csv: {len(names)} channel names for {C} channels")
                labelled = ch.labels is not None
                if rate:
                    f.write(f"# edgebrain record: rate={float(rate):g} Hz\n")
                f.write(",".join(names + ["time_s"] + (["label"] if labelled else [])) + "\n")
                header_done = True
            cols = [[f"{x:.9g}" for x in v[:, j].tolist()] for j in range(v.shape[1])]
            cols.append([f"{x:.6f}" for x in np.asarray(ch.t, np.float64).tolist()])
            if labelled:
                labs = ch.labels if ch.labels is not None else [""] * len(ch)
                cols.append(["" if x is None else str(x).replace(",", " ") for x in labs])
            f.write("".join(",".join(r) + "\n" for r in zip(*cols)))
            n += len(ch)
        if not header_done:
            names = list(channel_names) if channel_names else []
            if rate:
                f.write(f"# edgebrain record: rate={float(rate):g} Hz\n")
            f.write(",".join(names + ["time_s"]) + "\n")
    return n


# ---------------------------------------------------------------------- registry


def _opener(cls):
    import inspect

    params = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "path")]

    def open_(path, **options):
        unknown = [k for k in options if k not in params]
        if unknown:
            raise InputError(f"{cls.FORMAT}: unknown option{'s' if len(unknown) > 1 else ''} "
                             f"{', '.join(unknown)}; expected {', '.join(params)}", file=str(path))
        return cls(path, **options)

    open_.__doc__ = cls.__doc__
    return open_


def _first_line(head: bytes) -> bytes:
    for ln in head.split(b"\n"):
        s = ln.strip()
        if s and not s.startswith(b"#"):
            return s
    return b""


def _sniff_csv(head: bytes, path) -> bool:
    if head.startswith(b"# edgebrain record"):
        return True
    return _first_line(head).lower().replace(b" ", b"") == ",".join(SPSWHAR_COLUMNS).encode()


def _sniff_wisdm(head: bytes, path) -> bool:
    return bool(_WISDM_LINE.match(_first_line(head)))


def _sniff_uea(head: bytes, path) -> bool:
    first = _first_line(head).lower()
    return any(first.startswith(t) for t in _UEA_TAGS)


FORMATS = {
    "csv": FileFormat("csv", "samples", (".csv",), _opener(CsvSource), _sniff_csv,
                      "IMU CSV: configurable columns, rate from a timestamp column or given; sp-sw-har layout "
                      "recognised"),
    "wisdm": FileFormat("wisdm", "samples", (".txt",), _opener(WisdmSource), _sniff_wisdm,
                        "WISDM 2019 raw lines subject,activity[,timestamp],x,y,z; (20 Hz)"),
    "uea_ts": FileFormat("uea_ts", "samples", (".ts",), _opener(UeaSource), _sniff_uea,
                         "UEA/UCR .ts multivariate series (e.g. BasicMotions), cases streamed one after another"),
}
