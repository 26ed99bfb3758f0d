"""Numba kernels decoding Prophesee RAW words (compiled on first use, cached on disk).

:func:`evt2_decode`, :func:`evt21_decode` — Prophesee RAW word streams (formats.md §7–8) into
columns, and :func:`evt3_fused` — EVT 3.0 (§9) decoded and finished in one pass (the part of
:func:`._finish.finish` that a word stream needs, with its state slots); all stateful across calls.
A TIME_HIGH word that does not follow the previous one (0 or +1 step) is taken only when the next
TIME_HIGH word continues from it; an EVT 3.0 TIME_LOW step beyond 64 µs only when the next time
word does not return to the old time line.

State lives in small int64 arrays owned by the caller (indices below), so a kernel call can stop
anywhere (output full, or more input needed to decide) and resume with the next call.
"""

from __future__ import annotations

import numpy as np
from ....jit import njit

from ._finish import (F_CLAMP, F_CLAMP_I, F_FIRST, F_INIT, F_MAXBACK, F_OOS, F_OOS_I, F_OOS_X, F_OOS_Y, F_REF_T,
                      F_RESET, F_RESET_D, F_RESET_I, F_T0)

# ---------------------------------------------------------------------------------------- RAW decoders

# trailing-zero count of 0..4095 (vector masks)
_CTZ12 = np.array([0] + [(v & -v).bit_length() - 1 for v in range(1, 4096)], np.int64)

# decoder state slots (shared by the EVT 2.0 / 2.1 / 3.0 kernels)
D_HAVE_HIGH, D_HIGH, D_LOW, D_Y, D_BASE, D_POL, D_CD = 0, 1, 2, 3, 4, 5, 6
D_UNKNOWN, D_UNKNOWN_I, D_REJECT, D_REJECT_I, D_REJECT_V, D_TRIG, D_BEFORE, D_NONCD, D_JUMP, D_JUMP_I = (
    7, 8, 9, 10, 11, 12, 13, 14, 15, 16)
D_SKIP = 17            # EVT 2.0: payload words of an IMU word still to skip
D_REJECT_L, D_REJECT_L_I = 18, 19   # EVT 3.0: TIME_LOW words ignored as outliers
D_SIZE = 24


def decoder_state() -> np.ndarray:
    st = np.zeros(D_SIZE, np.int64)
    st[D_UNKNOWN_I] = -1
    st[D_REJECT_I] = -1
    st[D_REJECT_L_I] = -1
    st[D_JUMP_I] = -1
    st[D_CD] = 1
    return st


@njit(cache=True, inline="always")
def _mod_delta(v, cur, bits):
    m = (np.int64(1) << bits) - 1
    d = (v - cur) & m
    if d >= (np.int64(1) << (bits - 1)):
        d -= m + 1
    return d


@njit(cache=True)
def _judge_high(h, i, words, n, final, st, bits, shift, tmask, tval, legacy):
    """Decide on a TIME_HIGH value ``h`` (``bits`` wide) read at word ``i``: 1 accept, 0 ignore,
    -1 undecided (need more words). A step of 0 or +1 from the current value is accepted; any other
    value only when the next TIME_HIGH word continues from it (0 or +1). ``shift``/``tmask``/``tval`` find the type of the next words
    (``(word >> shift) & tmask == tval``); for EVT 2.1 ``legacy`` says which half holds the type."""
    m = (np.int64(1) << bits) - 1
    have = st[D_HAVE_HIGH]
    cur = st[D_HIGH] & m
    if have == 1:
        d = _mod_delta(h, cur, bits)
        if d == 0 or d == 1:
            return 1
    # find the next TIME_HIGH word
    j = i + 1
    while j < n:
        wj = np.uint64(words[j])
        if legacy == 1:
            wj = ((wj & np.uint64(0xFFFFFFFF)) << np.uint64(32)) | (wj >> np.uint64(32))
        if (np.int64(wj >> np.uint64(shift)) & tmask) == tval:
            break
        j += 1
    if j >= n:
        if not final:
            return -1
        return 1 if have == 0 else 0  # nothing confirms a step at the very end: keep the old time line
    wj = np.uint64(words[j])
    if legacy == 1:
        wj = ((wj & np.uint64(0xFFFFFFFF)) << np.uint64(32)) | (wj >> np.uint64(32))
    if bits == 12:
        h2 = np.int64(wj) & 0xFFF
    elif shift == 60:
        h2 = np.int64(wj >> np.uint64(32)) & 0xFFFFFFF
    else:
        h2 = np.int64(wj) & 0xFFFFFFF
    # a step is real when the next TIME_HIGH continues from it; otherwise this word is an outlier
    # (the next one continuing the old time line, or both being garbage)
    d2 = _mod_delta(h2, h, bits)
    return 1 if (d2 == 0 or d2 == 1) else 0


@njit(cache=True)
def _set_high(h, i, st, bits):
    m = (np.int64(1) << bits) - 1
    if st[D_HAVE_HIGH] == 0:
        st[D_HAVE_HIGH] = 1
        st[D_HIGH] = h
        return
    d = _mod_delta(h, st[D_HIGH] & m, bits)
    if d < 0 or d > 1:
        st[D_JUMP] += 1
        if st[D_JUMP_I] < 0:
            st[D_JUMP_I] = i
    st[D_HIGH] += d


@njit(cache=True, inline="always")
def _unknown(st, i):
    st[D_UNKNOWN] += 1
    if st[D_UNKNOWN_I] < 0:
        st[D_UNKNOWN_I] = i


@njit(cache=True, inline="always")
def _reject(st, i, h):
    st[D_REJECT] += 1
    if st[D_REJECT_I] < 0:
        st[D_REJECT_I] = i
        st[D_REJECT_V] = h


LOW_STEP = 64  # µs: EVT 3.0 TIME_LOW steps beyond this are checked against the next time word


@njit(cache=True)
def _judge_low(v, i, w, n, final, high, low):
    """An EVT 3.0 TIME_LOW value ``v`` at word ``i`` that moves the time by more than LOW_STEP:
    1 accept, 0 ignore (the next time word returns to the old time line), -1 undecided."""
    cur = (high << 12) | low
    cand = (high << 12) | v
    j = i + 1
    lim = i + 8192
    while j < n and j < lim:
        wj = np.int64(w[j])
        tj = wj >> 12
        if tj == 0x8:
            h2 = wj & 0xFFF
            dh = _mod_delta(h2, high & 0xFFF, 12)
            if dh != 0:
                return 1  # TIME_HIGH moves on: no verdict on the low bits, keep the value
        elif tj == 0x6:
            nxt = (high << 12) | (wj & 0xFFF)
            if cand > cur:
                if nxt >= cand - LOW_STEP:
                    return 1
                return 0 if nxt >= cur - LOW_STEP else 1
            if nxt >= cur - LOW_STEP:
                return 0
            return 1
        j += 1
    if j >= n and not final:
        return -1
    return 1


@njit(cache=True)
def evt2_decode(w, n, final, st, ox, oy, ot, op):
    """EVT 2.0 32-bit words → events. Returns (words consumed, events written)."""
    cap = ox.shape[0] - 1
    k = 0
    i = 0
    while i < n:
        if k > cap:
            break
        v = np.int64(w[i])
        if st[D_SKIP] > 0:
            st[D_SKIP] -= 1
            i += 1
            continue
        typ = v >> 28
        if typ == 0x0 or typ == 0x1:
            if st[D_HAVE_HIGH] == 1:
                ox[k] = (v >> 11) & 0x7FF
                oy[k] = v & 0x7FF
                ot[k] = (st[D_HIGH] << 6) | ((v >> 22) & 0x3F)
                op[k] = typ
                k += 1
            else:
                st[D_BEFORE] += 1
        elif typ == 0x8:
            h = v & 0xFFFFFFF
            ok = _judge_high(h, i, w, n, final, st, 28, 28, 0xF, 0x8, 0)
            if ok < 0:
                break
            if ok == 1:
                _set_high(h, i, st, 28)
            else:
                _reject(st, i, h)
        elif typ == 0xA:
            st[D_TRIG] += 1
        elif typ == 0xD:
            st[D_SKIP] = 5  # IMU: 1 + 5 words
        elif typ == 0xE or typ == 0xF:
            pass
        else:
            _unknown(st, i)
        i += 1
    return i, k


@njit(cache=True)
def evt21_decode(w, n, final, legacy, st, ox, oy, ot, op):
    """EVT 2.1 64-bit words → events (``legacy``: the two 32-bit halves swapped, IMX636).
    Returns (words consumed, events written)."""
    cap = ox.shape[0] - 32
    k = 0
    i = 0
    while i < n:
        if k > cap:
            break
        u = np.uint64(w[i])
        if legacy == 1:
            u = ((u & np.uint64(0xFFFFFFFF)) << np.uint64(32)) | (u >> np.uint64(32))
        hi = np.int64(u >> np.uint64(32))
        typ = hi >> 28
        if typ == 0x0 or typ == 0x1:
            if st[D_HAVE_HIGH] == 1:
                mask = np.int64(u & np.uint64(0xFFFFFFFF))
                x0 = (hi >> 11) & 0x7FF
                yy = hi & 0x7FF
                tt = (st[D_HIGH] << 6) | ((hi >> 22) & 0x3F)
                while mask != 0:
                    b = 0
                    mm = mask
                    while (mm & 1) == 0:
                        mm >>= 1
                        b += 1
                    ox[k] = x0 + b
                    oy[k] = yy
                    ot[k] = tt
                    op[k] = typ
                    k += 1
                    mask &= mask - 1
            else:
                st[D_BEFORE] += 1
        elif typ == 0x8:
            h = hi & 0xFFFFFFF
            ok = _judge_high(h, i, w, n, final, st, 28, 60, 0xF, 0x8, legacy)
            if ok < 0:
                break
            if ok == 1:
                _set_high(h, i, st, 28)
            else:
                _reject(st, i, h)
        elif typ == 0xA:
            st[D_TRIG] += 1
        elif typ == 0xE or typ == 0xF:
            pass
        else:
            _unknown(st, i)
        i += 1
    return i, k


@njit(cache=True, inline="always")
def _oos(fst, i, xx, yy, n):
    fst[F_OOS] += n
    if fst[F_OOS_I] < 0:
        fst[F_OOS_I] = i
        fst[F_OOS_X] = xx
        fst[F_OOS_Y] = yy


@njit(cache=True)
def _restamp(tnow, fst, i, jump):
    """The relative time of events stamped ``tnow`` (called when the time changed, before the next
    event): the first event sets the origin; a time earlier than the latest by at most ``jump`` µs
    is clamped to it; further back (the decoder has already checked it against the next time word,
    so the stream's time really restarts) later times continue from the latest (a reset).
    Returns (relative time, clamped?)."""
    if fst[F_INIT] == 0:
        fst[F_INIT] = 1
        fst[F_T0] = tnow
        fst[F_FIRST] = tnow
        fst[F_REF_T] = tnow
        return 0, False
    ref = fst[F_REF_T]
    if tnow < ref - jump:
        fst[F_RESET] += 1
        if fst[F_RESET_I] < 0:
            fst[F_RESET_I] = i
            fst[F_RESET_D] = tnow - ref
        fst[F_T0] -= ref - tnow
        fst[F_REF_T] = tnow
        return tnow - fst[F_T0], False
    if tnow < ref:
        if ref - tnow > fst[F_MAXBACK]:
            fst[F_MAXBACK] = ref - tnow
        if fst[F_CLAMP_I] < 0:
            fst[F_CLAMP_I] = i
        return ref - fst[F_T0], True
    fst[F_REF_T] = tnow
    return tnow - fst[F_T0], False


@njit(cache=True)
def evt3_fused(w, n, final, st, fst, width, height, jump, out, o0):
    """EVT 3.0 words → finished ``EVENT_DTYPE`` records in ``out[o0:]`` in one pass: the decoder of
    the EVT 3.0 decoder (formats.md §9; TIME_HIGH / TIME_LOW outliers ignored) with the part of :func:`finish`
    that a word stream needs — events outside ``width`` × ``height`` dropped, a time earlier than the
    previous event's clamped, times made relative to the first event (``fst``: finish state; its
    ``*_I`` slots receive word indices). Returns (words consumed, events written)."""
    cap = out.shape[0] - 12
    have = st[D_HAVE_HIGH]
    high = st[D_HIGH]
    low = st[D_LOW]
    y = st[D_Y]
    base = st[D_BASE]
    pol = st[D_POL]
    cd = st[D_CD]
    dirty = True          # the time changed since `rel` was computed
    rel = np.int64(0)
    clamped = False
    nclamp = 0
    k = o0
    i = 0
    while i < n:
        if k > cap:
            break
        v = np.int64(w[i])
        typ = v >> 12
        if typ == 0x2:  # EVT_ADDR_X
            if have == 1 and cd == 1:
                xx = v & 0x7FF
                if xx >= width or y >= height:
                    _oos(fst, i, xx, y, 1)
                else:
                    if dirty:
                        rel, clamped = _restamp((high << 12) | low, fst, i, jump)
                        dirty = False
                    if clamped:
                        nclamp += 1
                    out[k]["x"] = np.uint16(xx)
                    out[k]["y"] = np.uint16(y)
                    out[k]["t"] = rel
                    out[k]["p"] = np.uint8((v >> 11) & 1)
                    k += 1
            elif have == 0:
                st[D_BEFORE] += 1
            else:
                st[D_NONCD] += 1
        elif typ == 0x4 or typ == 0x5:  # VECT_12 / VECT_8
            nb = 12 if typ == 0x4 else 8
            mask = v & ((1 << nb) - 1)
            if have == 1 and cd == 1 and mask != 0:
                if y >= height or base + nb > width:
                    while mask != 0:
                        xx = base + _CTZ12[mask]
                        mask &= mask - 1
                        if xx >= width or y >= height:
                            _oos(fst, i, xx, y, 1)
                            continue
                        if dirty:
                            rel, clamped = _restamp((high << 12) | low, fst, i, jump)
                            dirty = False
                        if clamped:
                            nclamp += 1
                        out[k]["x"] = np.uint16(xx)
                        out[k]["y"] = np.uint16(y)
                        out[k]["t"] = rel
                        out[k]["p"] = np.uint8(pol)
                        k += 1
                else:
                    if dirty:
                        rel, clamped = _restamp((high << 12) | low, fst, i, jump)
                        dirty = False
                    yy = np.uint16(y)
                    pp = np.uint8(pol)
                    while mask != 0:
                        out[k]["x"] = np.uint16(base + _CTZ12[mask])
                        out[k]["y"] = yy
                        out[k]["t"] = rel
                        out[k]["p"] = pp
                        k += 1
                        mask &= mask - 1
                        if clamped:
                            nclamp += 1
            base += nb
        elif typ == 0x0 or typ == 0x1:
            y = v & 0x7FF
            cd = 1 if typ == 0 else 0
        elif typ == 0x3:
            base = v & 0x7FF
            pol = (v >> 11) & 1
        elif typ == 0x6:
            lv = v & 0xFFF
            step = lv - low
            if have == 1 and (step > LOW_STEP or step < -LOW_STEP):
                ok = _judge_low(lv, i, w, n, final, high, low)
                if ok < 0:
                    break
                if ok == 1:
                    low = lv
                    dirty = True
                else:
                    st[D_REJECT_L] += 1
                    if st[D_REJECT_L_I] < 0:
                        st[D_REJECT_L_I] = i
            elif lv != low:
                low = lv
                dirty = True
        elif typ == 0x8:
            h = v & 0xFFF
            st[D_HAVE_HIGH] = have
            st[D_HIGH] = high
            ok = _judge_high(h, i, w, n, final, st, 12, 12, 0xF, 0x8, 0)
            if ok < 0:
                break
            if ok == 1:
                _set_high(h, i, st, 12)
                have = 1
                if st[D_HIGH] != high:
                    high = st[D_HIGH]
                    dirty = True
            else:
                _reject(st, i, h)
        elif typ == 0xA:
            st[D_TRIG] += 1
        elif typ == 0x7 or typ == 0xD or typ == 0xE or typ == 0xF:
            pass
        else:
            _unknown(st, i)
        i += 1
    st[D_HAVE_HIGH] = have
    st[D_HIGH] = high
    st[D_LOW] = low
    st[D_Y] = y
    st[D_BASE] = base
    st[D_POL] = pol
    st[D_CD] = cd
    fst[F_CLAMP] += nclamp
    return i, k - o0
