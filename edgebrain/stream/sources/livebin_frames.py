"""A board's sensor over a live link, in edgebrain's framed protocol (``format=eb``); see :mod:`.livebin`.

    serial:///dev/ttyACM0?baud=921600&format=eb        SENSOR frames of docs/protocol.md
    tcp://board:5000?format=eb&names=ax,ay,az

A board running the edgebrain C runtime streams raw sensor samples with ``eb_device_send_sensor``:
COBS frames with a CRC, each a SENSOR message holding the channel count, the sample rate, the
physical units per count of each channel, the number of its first sample since the sensor started,
and int16 counts, sample-major. Each frame becomes one chunk of :class:`~..base.Samples`: values
``count × unit`` (float64 product, stored as float32), times ``index / rate``.

The frames make damage visible, where lines would only look odd: a frame with a bad CRC, bad COBS
or a wrong length is dropped and counted (``repaired``, as the frame's samples cannot be trusted,
and the stream resynchronises at the next zero byte); samples lost in between (the next frame's
``index`` skips ahead) are counted as ``dropped`` and the stream's times keep the gap; a board that
restarts (it announces itself with INFO, or its index goes back) starts a new segment that follows
the last one in stream time. Frames of other types (a board also answering a host) are skipped and
counted. A frame whose channel count or rate differs from the first one's ends the stream with one
line: the sensor is not the one the stream was opened for.
"""

from __future__ import annotations

import numpy as np

from ... import proto as P
from ...errors import FormatError, InputError
from ..base import Samples, Source, SourceInfo, log
from ..links import Link
from .livebin import LiveBinary, split_link_options


class LinkFrameSource(LiveBinary, Source):
    """SENSOR frames from a live link (see the module). Options: names (comma or | separated
    channel names), and the link options."""

    def __init__(self, link: Link, url: str, *, names=None, **opts):
        Source.__init__(self)
        link_opts, _ = split_link_options(opts)
        self.deframer = P.Deframer()
        self._base = 0          # samples before this segment (a board that restarted)
        self._next = None       # the index the next frame should start at
        self._seen = 0          # frames of other types skipped
        if isinstance(names, str):
            names = [x for x in names.replace("|", ",").split(",") if x]
        try:
            self._start(link, url, link_opts)
            first, buf, t = self._wait(self._first_sensor, "SENSOR frame")
        except BaseException:
            self.close()
            raise
        self._held.append((t, buf))  # decoded again by the stream, from its first byte
        self.C, self.rate, self.units = first
        if names is not None and len(names) != self.C:
            self.close()
            raise InputError(f"{url}: {len(names)} names for a sensor of {self.C} channels")
        self._extra.update(protocol="edgebrain frames (docs/protocol.md)", units=[float(u) for u in self.units])
        self.info = SourceInfo(format="eb", kind="samples", path=url, rate=self.rate, channels=self.C,
                               channel_names=list(names) if names else [f"ch{j}" for j in range(self.C)],
                               extra=self._extra)
        log.info("%s: board sensor, %d channels at %g Hz", url, self.C, self.rate)

    @staticmethod
    def _sensor(f: P.Frame):
        """(channels, index, rate, units, counts (n, channels)) of a SENSOR frame; FormatError if inconsistent."""
        d = P.unpack("SENSOR", f.payload)
        c, n = d["channels"], d["n"]
        if c < 1 or len(d["tail"]) != 4 * c + 2 * n * c:
            raise FormatError(f"SENSOR frame {f.seq}: {len(d['tail'])} bytes after its fixed part; expected "
                              f"{4 * c + 2 * n * c} for {n} samples of {c} channels")
        units = np.frombuffer(d["tail"], "<f4", c).astype(np.float64)
        counts = np.frombuffer(d["tail"], "<i2", n * c, 4 * c).reshape(n, c)
        rate = float(d["rate"])
        if not (np.all(np.isfinite(units)) and 0 < rate < float("inf")):
            raise FormatError(f"SENSOR frame {f.seq}: rate {rate:g} and units {units.tolist()}; expected a positive "
                              "rate and finite units")
        return c, d["index"], rate, units, counts

    def _first_sensor(self, buf: bytes, final: bool):
        """(channels, rate, units) of the first intact SENSOR frame in ``buf`` (None: none yet)."""
        for f in P.Deframer().feed(buf):
            if f.type == P.MSG["SENSOR"]:
                c, _, rate, units, _ = self._sensor(f)
                return c, rate, units
        return None

    def _on_drop(self) -> None:
        if self.deframer.buf:
            self.stats.note("repaired", self.url, "partial frame discarded when the link dropped")
        self.deframer = _carry(self.deframer)

    def _count_damage(self, before: int) -> None:
        n = self.deframer.dropped - before
        if n:
            self.stats.note("repaired", self.url, f"{n} damaged frame{'s' if n > 1 else ''} dropped "
                                                  f"({self.deframer.last_error})", n)

    def chunks(self):
        try:
            for t, data in self._data():
                before = self.deframer.dropped
                frames = self.deframer.feed(data)
                self._count_damage(before)
                for f in frames:
                    x = self._chunk(f, t)
                    if x is None:
                        continue
                    if x is False:
                        return
                    yield x
        finally:
            self.close()

    def _chunk(self, f: P.Frame, arrival: float):
        """The Samples of frame ``f``; None to skip it, False to end the stream."""
        if f.type == P.MSG["INFO"]:
            if self._next is not None:
                self.stats.note("link", self.url, "the board restarted (it announced itself again): a new segment "
                                                  "follows the last one", 0)
                self._base, self._next = self._base + self._next, None
            return None
        if f.type != P.MSG["SENSOR"]:
            self._seen += 1
            self.info.extra["other_frames"] = self._seen
            return None
        try:
            c, index, rate, units, counts = self._sensor(f)
        except FormatError as e:
            self.stats.note("repaired", self.url, str(e))
            return None
        if c != self.C or rate != self.rate:
            self.stats.note("link", self.url, f"a SENSOR frame of {c} channels at {rate:g} Hz after {self.C} at "
                                              f"{self.rate:g} Hz: another sensor; stream ends", 0)
            return False
        if self._next is not None and index < self._next:  # the board restarted without announcing itself
            self._base, self._next = self._base + self._next, None
        if self._next is not None and index > self._next:
            self.stats.note("dropped", self.url, f"samples {self._next}..{index - 1} lost on the link "
                                                 "(the stream's times keep the gap)", index - self._next)
        if self._next is None and self._base == 0 and index:
            self._base = -index  # the stream starts at its first sample received
        self._next = index + len(counts)
        values = (counts.astype(np.float64) * units).astype(np.float32)
        t = (self._base + index + np.arange(len(counts), dtype=np.float64)) / rate
        return Samples(t=t, values=values, arrival=arrival)


def _carry(old: P.Deframer) -> P.Deframer:
    """A fresh deframer after a drop, keeping the counts."""
    d = P.Deframer()
    d.frames, d.crc_errors, d.frame_errors, d.overlong = old.frames, old.crc_errors, old.frame_errors, old.overlong
    d.last_error = old.last_error
    return d
