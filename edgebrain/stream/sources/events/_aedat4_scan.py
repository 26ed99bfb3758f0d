"""The compiled fast path of the AEDAT 4 reader: whole runs of well-formed LZ4 packets in one call.

:func:`scan` walks the packet headers in the reader's buffer, decompresses each event packet
(``LZ4F_decompress`` through :mod:`._lz4`) into a scratch buffer, finds its event vector, and
copies the events into the batch while counting those outside the sensor, with a bad polarity
byte or going back in time. Packets of other known streams are counted and skipped. Anything else
— a header or packet that is not fully in the buffer, a frame that does not decode whole, a body
laid out otherwise than usual, a packet holding garbage, an unknown stream — stops the scan at that
packet, so that the reader's Python path, which explains and repairs damage, handles it exactly
as it handles every packet when this fast path is not available.
"""

from __future__ import annotations

import numpy as np
from ....jit import njit

from ._lz4 import lz4f_decompress, lz4f_reset

# scan results
END, NEED, FULL, SLOW = 0, 1, 2, 3
EVTS = 0x53545645  # b"EVTS" as a little-endian u32


@njit(cache=True, inline="always")
def _u32(b, p):
    return np.int64(b[p]) | (np.int64(b[p + 1]) << 8) | (np.int64(b[p + 2]) << 16) | (np.int64(b[p + 3]) << 24)


@njit(cache=True, inline="always")
def _i32(b, p):
    v = _u32(b, p)
    return v - (np.int64(1) << 32) if v >= (np.int64(1) << 31) else v


@njit(cache=True, inline="always")
def _u16(b, p):
    return np.int64(b[p]) | (np.int64(b[p + 1]) << 8)


@njit(cache=True)
def event_vector(b, n):
    """(start, count) of the event vector of the EVTS packet body ``b[:n]`` when it has the usual
    flatbuffer layout (the checks of the reader's ``_events`` fast path), else (-1, 0)."""
    if n < 16 or _u32(b, 0) != n - 4 or _u32(b, 8) != EVTS:
        return -1, 0
    t = 4 + _u32(b, 4)
    if t > n - 4:
        return -1, 0
    vt = t - _i32(b, t)
    if vt < 0 or vt > n - 6:
        return -1, 0
    vsize = _u16(b, vt)
    f0 = _u16(b, vt + 4)
    p = t + f0
    if vsize < 6 or vt + vsize > n or f0 == 0 or p + 4 > n:
        return -1, 0
    q = p + _u32(b, p)
    if q + 4 > n:
        return -1, 0
    cnt = _u32(b, q)
    if q + 4 + 16 * cnt > n:
        return -1, 0
    return q + 4, cnt


@njit(cache=True)
def scan(buf, o, o_end, stream, known, skipped, fn, fn_reset, ctx, sizes, scratch, q, n, limit, pk_first, pk_pos,
         npk, boff, w, h):
    """Packets from ``buf[o:]`` (``buf`` holds the file from byte ``boff``; packets end at
    ``o_end``). Returns (status, o, n, npk): the offset of the packet the scan stopped at, the
    events now in ``q`` (int64 pairs: t; x | y << 16 | on << 32), the packets now listed in
    ``pk_first`` / ``pk_pos`` (first event index, file offset). Status: END (``o_end`` reached),
    NEED (the header or packet at ``o`` is not all in ``buf``), FULL (``n >= limit``, or a list is
    full), SLOW (the packet at ``o`` needs the Python path). ``known[sid]``: 1 for the file's
    streams; ``skipped[sid]`` counts the packets of other streams passed over. ``q`` has room for
    ``limit`` + ``scratch.size // 16`` events."""
    blen = buf.shape[0]
    wx = min(w, 0x8000)
    hy = min(h, 0x8000)
    s64 = scratch.view(np.int64)
    nk = known.shape[0]
    while True:
        if o >= o_end:
            return END, o, n, npk
        if n >= limit or npk >= pk_first.shape[0]:
            return FULL, o, n, npk
        if o + 8 > blen:
            return NEED, o, n, npk
        sid = _i32(buf, o)
        size = _i32(buf, o + 4)
        if sid < 0 or sid >= nk or known[sid] == 0 or size <= 0 or o + 8 + size > o_end:
            return SLOW, o, n, npk
        if sid != stream:
            skipped[sid] += 1
            o += 8 + size
            continue
        if o + 8 + size > blen:
            return NEED, o, n, npk
        sizes[0] = scratch.shape[0]
        sizes[1] = size
        r = lz4f_decompress(fn, ctx, scratch.ctypes.data, sizes.ctypes.data, buf.ctypes.data + o + 8,
                            sizes.ctypes.data + 8)
        if r != 0 or sizes[1] != size:  # not one whole frame (damaged, or larger than the scratch)
            lz4f_reset(fn_reset, ctx)
            return SLOW, o, n, npk
        s, cnt = event_vector(scratch, sizes[0])
        if s < 0 or s % 8 != 0:
            return SLOW, o, n, npk
        if cnt:
            e = s // 8
            nb = 0
            nback = 0
            prev = s64[e]
            for i in range(cnt):
                ti = s64[e + 2 * i]
                v = s64[e + 2 * i + 1]
                q[n + i, 0] = ti
                q[n + i, 1] = v
                # (as aedat4_check) x, y: int16, negative ones have bit 15 set
                nb += ((v & 0xFFFF) >= wx) | (((v >> 16) & 0xFFFF) >= hy) | (((v >> 32) & 0xFF) > 1)
                nback += ti < prev
                prev = ti
            lim = max(2, cnt // 100)
            if nb > lim or nback > lim:  # garbage: the Python path says so and skips it
                return SLOW, o, n, npk
            pk_first[npk] = n
            pk_pos[npk] = boff + o
            npk += 1
            n += cnt
        o += 8 + size
