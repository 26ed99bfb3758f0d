"""Numba kernel that finishes the events of every event-camera reader (compiled on first use, cached on disk).

:func:`finish` — the last stage of every reader: drops events outside the sensor, unwraps and
repairs timestamps (backward steps, isolated corrupt timestamps, resets), makes them relative to
the first event and writes ``EVENT_DTYPE`` records; :func:`span_bounds` cuts finished events into
chunks of a time span. The RAW word decoders are in :mod:`._evt`; EVT 3.0's fused decoder keeps
this module's state slots (``F_*``).

State lives in small int64 arrays owned by the caller (indices below), so a kernel call can stop
anywhere (output full, or more input needed to decide) and resume with the next call.
"""

from __future__ import annotations

import numpy as np
from ....jit import njit
from numba.extending import overload

# ---------------------------------------------------------------------------------------- finish

SMALL_STEP = 16  # µs: forward steps up to this are taken without looking at the next event

# finish() state slots
F_INIT, F_T0, F_REF_RAW, F_REF_T = 0, 1, 2, 3
F_OOS, F_CLAMP, F_GLITCH, F_SEG, F_RESET, F_MAXBACK = 4, 5, 6, 7, 8, 9
F_OOS_I, F_OOS_X, F_OOS_Y, F_CLAMP_I, F_GLITCH_I, F_GLITCH_D, F_RESET_I, F_RESET_D = 10, 11, 12, 13, 14, 15, 16, 17
F_GLITCH_LEFT = 18     # events of a glitch segment still to clamp (a segment may span calls)
F_BADP, F_BADP_I = 19, 20  # events with a polarity value other than 0/1 (dropped)
F_FIRST = 21           # raw time of the first event (F_T0, the origin, moves on a fused-path reset)
F_SIZE = 24


def finish_state() -> np.ndarray:
    st = np.zeros(F_SIZE, np.int64)
    for k in (F_OOS_I, F_CLAMP_I, F_GLITCH_I, F_RESET_I, F_BADP_I):
        st[k] = -1
    return st


@njit(cache=True, inline="always")
def _delta(raw, ref_raw, wrap):
    d = raw - ref_raw
    if wrap > 0:
        d = d & (wrap - 1)
        if d >= (wrap >> 1):
            d -= wrap
    return d


def _ev(src, i):
    """(x, y, t, p) of event ``i`` as int64: ``src`` is a tuple of columns (x, y, t, p) or ``(q,)``
    with ``q`` an (n, 2) int64 view of AEDAT 4 event structs (t; x | y << 16 | on << 32)."""


@overload(_ev, inline="always")
def _ev_impl(src, i):
    if len(src) == 4:
        def cols(src, i):
            return np.int64(src[0][i]), np.int64(src[1][i]), np.int64(src[2][i]), np.int64(src[3][i])
        return cols

    def pairs(src, i):
        v = src[0][i, 1]
        x = (v & 0xFFFF) - ((v & 0x8000) << 1)
        y = ((v >> 16) & 0xFFFF) - (((v >> 16) & 0x8000) << 1)
        return x, y, src[0][i, 0], (v >> 32) & 0xFF
    return pairs


@njit(cache=True, inline="always")
def _valid(src, j, width, height):
    xj, yj, tj, pj = _ev(src, j)
    return xj >= 0 and xj < width and yj >= 0 and yj < height and pj <= 1


@njit(cache=True)
def _judge(src, i, n, d, ref_raw, wrap, width, height, jump, window, final):
    """Judge a time step ``d`` (µs, from the last accepted event) of event ``i`` by the following
    valid events. Returns (verdict, j, seen): verdict 1 = the step is real, 0 = event ``i`` starts
    a glitch that ends before event ``j``, -1 = undecided (more events needed); ``seen`` = valid
    events between ``i`` and ``j``.

    Forward step: real as soon as a following event is at least as far ahead; a glitch when the
    next two valid events both come back (to at most ``jump`` before the accepted time) — one
    early event alone is itself the outlier. Backward step (beyond ``jump``): a glitch if the next
    valid event comes back, real (a reset) if it stays back."""
    seen = 0
    first = -1
    first_seen = 0
    j = i + 1
    while seen < window:
        if j >= n:
            if not final:
                return -1, j, seen
            if first >= 0:
                return 0, first, first_seen
            return 1, j, seen
        if _valid(src, j, width, height):
            dj = _delta(_ev(src, j)[2], ref_raw, wrap)
            if d > 0:
                if dj >= d:
                    return 1, j, seen
                if dj >= -jump:
                    if first >= 0:
                        return 0, first, first_seen
                    first = j
                    first_seen = seen
            else:
                if dj >= -jump:
                    return 0, j, seen
                if dj <= d // 2:
                    return 1, j, seen
            seen += 1
        j += 1
    if first >= 0:
        return 0, first, first_seen
    return 1, j, seen


@njit(cache=True)
def _run(src, i, n, prev, off, width, height, out, k):
    """The fast path of :func:`finish` for a run of valid events whose times do not decrease, from
    event ``i`` (``prev``: the time of the event before it, just accepted): each is accepted (its step
    from the previous event is confirmed by the next one), so all but the last (whose step may need
    events beyond the run) are written, at time ``t + off``, with no per-event state. Returns (the
    index of the run's last event, k). A function of its own: inside finish the loop compiles to
    slower code."""
    xj, yj, tj, pj = _ev(src, i)
    if not (xj >= 0 and xj < width and yj >= 0 and yj < height and pj <= 1 and tj >= prev):
        return i, k
    j = i
    while j + 1 < n:
        x1, y1, t1, p1 = _ev(src, j + 1)
        if not (x1 >= 0 and x1 < width and y1 >= 0 and y1 < height and p1 <= 1 and t1 >= tj):
            break
        out[k]["x"] = np.uint16(xj)
        out[k]["y"] = np.uint16(yj)
        out[k]["t"] = tj + off
        out[k]["p"] = np.uint8(pj)
        k += 1
        j += 1
        xj, yj, tj, pj = x1, y1, t1, p1
    return j, k


@njit(cache=True)
def finish(src, n, width, height, wrap_bits, jump, window, final, st, out, o0):
    """Filter, repair and write events ``0 .. n-1`` of ``src`` (see :func:`_ev`) into ``out[o0:]``.

    Returns (consumed, written). ``consumed < n`` only when not ``final`` and a time step needs
    events beyond ``n`` to be judged: the caller passes events ``consumed..n-1`` again, followed
    by new ones.

    Events outside ``width`` × ``height`` or with a polarity other than 0/1 are dropped (counted).
    Time: ``t`` are raw timestamps (``wrap_bits`` wide and unwrapped by the signed modular
    difference to the last accepted event when ``wrap_bits > 0``). Time never decreases in a
    sound recording, so a step is judged by the next valid events:

    * forward by at most SMALL_STEP µs: taken (a corrupt time this close cannot be told from a
      real one; later events earlier than it are clamped, below);
    * forward by more: real if a following event is at least d ahead too; if instead one comes back
      (to no more than ``jump`` µs before the last accepted time) first, the events up to it carry
      corrupt times and get the last accepted time (a glitch, counted);
    * backward by at most ``jump`` µs: clamped to the last accepted time (counted);
    * further backward: a glitch if a following event comes back, else a reset (a splice or a
      restarted clock): later times continue from the last accepted time (counted).

    ``window`` valid events at most are looked at. Output ``t`` = time − time of the first event.
    """
    init = st[F_INIT]
    t0 = st[F_T0]
    ref_raw = st[F_REF_RAW]
    ref_t = st[F_REF_T]
    glitch_left = st[F_GLITCH_LEFT]
    wrap = np.int64(0)
    if wrap_bits > 0:
        wrap = np.int64(1) << wrap_bits
    k = o0
    i = 0
    wmask = wrap - 1 if wrap > 0 else np.int64(-1)
    whalf = wrap >> 1 if wrap > 0 else np.int64(1) << 62
    while i < n:
        xi, yi, raw, pi = _ev(src, i)
        # fast path: valid, no glitch pending, the same time or a step forward that the next event confirms
        if init == 1 and glitch_left == 0 and xi >= 0 and xi < width and yi >= 0 and yi < height and pi <= 1:
            d = (raw - ref_raw) & wmask
            if d >= whalf:
                d -= wrap
            ok = d >= 0 and d <= SMALL_STEP
            if d > SMALL_STEP and i + 1 < n and _valid(src, i + 1, width, height):
                d1 = (_ev(src, i + 1)[2] - ref_raw) & wmask
                if d1 >= whalf:
                    d1 -= wrap
                ok = d1 >= d
            if ok:
                ref_t += d
                ref_raw = raw
                out[k]["x"] = np.uint16(xi)
                out[k]["y"] = np.uint16(yi)
                out[k]["t"] = ref_t - t0
                out[k]["p"] = np.uint8(pi)
                k += 1
                i += 1
                if wrap == 0 and i + 1 < n:
                    j, k = _run(src, i, n, raw, ref_t - ref_raw - t0, width, height, out, k)
                    if j > i:
                        last = _ev(src, j - 1)[2]
                        ref_t += last - ref_raw
                        ref_raw = last
                        i = j
                continue
        if xi < 0 or xi >= width or yi < 0 or yi >= height:
            st[F_OOS] += 1
            if st[F_OOS_I] < 0:
                st[F_OOS_I] = i
                st[F_OOS_X] = xi
                st[F_OOS_Y] = yi
            i += 1
            continue
        if pi > 1:
            st[F_BADP] += 1
            if st[F_BADP_I] < 0:
                st[F_BADP_I] = i
            i += 1
            continue
        if init == 0:
            init = 1
            ref_raw = raw
            ref_t = raw
            t0 = raw
            st[F_FIRST] = raw
        d = _delta(raw, ref_raw, wrap)
        if glitch_left > 0:
            glitch_left -= 1
            tt = ref_t
            st[F_GLITCH] += 1
        elif d == 0:
            tt = ref_t
        elif d < 0 and -d <= jump:
            tt = ref_t
            st[F_CLAMP] += 1
            if -d > st[F_MAXBACK]:
                st[F_MAXBACK] = -d
            if st[F_CLAMP_I] < 0:
                st[F_CLAMP_I] = i
        else:
            verdict, j, seen = _judge(src, i, n, d, ref_raw, wrap, width, height, jump, window, final)
            if verdict < 0:
                break  # undecided: wait for more events
            if verdict == 0:
                glitch_left = seen  # the valid events after i before the return
                tt = ref_t
                st[F_GLITCH] += 1
                st[F_SEG] += 1
                if st[F_GLITCH_I] < 0:
                    st[F_GLITCH_I] = i
                    st[F_GLITCH_D] = d
            elif d > 0:
                ref_t += d
                ref_raw = raw
                tt = ref_t
            else:
                tt = ref_t  # time restarts: continue from the last accepted time
                ref_raw = raw
                st[F_RESET] += 1
                if st[F_RESET_I] < 0:
                    st[F_RESET_I] = i
                    st[F_RESET_D] = d
        out[k]["x"] = np.uint16(xi)
        out[k]["y"] = np.uint16(yi)
        out[k]["t"] = tt - t0
        out[k]["p"] = np.uint8(pi)
        k += 1
        i += 1
    st[F_INIT] = init
    st[F_T0] = t0
    st[F_REF_RAW] = ref_raw
    st[F_REF_T] = ref_t
    st[F_GLITCH_LEFT] = glitch_left
    return i, k - o0


# ---------------------------------------------------------------------------------------- chunks


@njit(cache=True)
def span_bounds(t, span):
    """Chunk boundaries of the non-decreasing times ``t``: [0, b1, ..., n] with each chunk starting
    at the first time ≥ (start time of the previous chunk) + ``span`` (every chunk holds at least
    one event). Works on the strided ``t`` field of an event array (no copy)."""
    n = t.shape[0]
    out = np.empty(n + 1, np.int64)
    out[0] = 0
    m = 1
    a = 0
    while a < n:
        lim = t[a] + span
        lo = a + 1
        hi = n
        while lo < hi:  # first index in (a, n] whose time is >= lim
            mid = (lo + hi) >> 1
            if t[mid] < lim:
                lo = mid + 1
            else:
                hi = mid
        out[m] = lo
        m += 1
        a = lo
    return out[:m]
