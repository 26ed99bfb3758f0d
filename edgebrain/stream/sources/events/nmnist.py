"""N-MNIST / N-Caltech101 ``.bin`` and SLAYER ``.bs2`` (formats.md §11).

5 bytes per event, one 40-bit big-endian word: byte 0 x, byte 1 y, byte 2 bit 7 polarity,
bits 22–0 timestamp (µs, 23 bits: unwrapped modulo 2^23). No header: the sensor size is
34×34 (N-MNIST) unless given (N-Caltech101: ``sensor_size=240x180``). With
``overflow_marker=True`` an event with y = 240 is a time-overflow marker that adds 2^13 µs to later
timestamps (the convention of tonic / event-Python); by default it is an event outside the sensor.
"""

from __future__ import annotations

import numpy as np

from .base import Batch, EventFileSource, fixed_loc


class NmnistSource(EventFileSource):
    format_name = "nmnist"
    wrap_bits = 23
    options = ("overflow_marker",)

    def _open(self, overflow_marker=False):
        self.overflow_marker = bool(overflow_marker)
        if self.overflow_marker:
            self.wrap_bits = 0
        self.info.sensor_size = (34, 34)
        self.info.n_items = self.size // 5
        if self.size % 5:
            self.info.extra["trailing_bytes"] = self.size % 5
        if self.info.n_items and not self.overflow_marker:
            a = _ts(self.read_at(0, 5))
            b = _ts(self.read_at(5 * (self.info.n_items - 1), 5))
            if b >= a:
                self.info.duration = (b - a) / 1e6
        self._ovf = 0

    def _batches(self):
        for off, data in self.blocks(0, align=5):
            r = np.frombuffer(data, np.uint8).reshape(-1, 5)
            x = r[:, 0].astype(np.uint16)
            y = r[:, 1].astype(np.uint16)
            b2 = r[:, 2]
            t = ((b2.astype(np.int64) & 0x7F) << 16) | (r[:, 3].astype(np.int64) << 8) | r[:, 4]
            p = (b2 >> 7).astype(np.uint8)
            idx = None
            if self.overflow_marker:
                mark = y == 240
                if mark.any() or self._ovf:
                    t += (self._ovf + np.cumsum(mark)) << 13
                    self._ovf += int(mark.sum())
                    idx = np.flatnonzero(~mark)
                    x, y, t, p = x[idx], y[idx], t[idx], p[idx]
            yield Batch(x, y, t, p, loc=fixed_loc(off, 5, idx))

    def _after(self, st):
        if self._ovf:
            self.info.extra["overflow_markers"] = self._ovf


def _ts(b: bytes) -> int:
    return ((b[2] & 0x7F) << 16) | (b[3] << 8) | b[4]
