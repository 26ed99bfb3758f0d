"""Event binning: camera events → frames shaped like the model input, one frame per model step.

``bin:window_us=1000,polarity=split,downsample=2,crop=0|0|32|32,refractory_us=500,denoise_us=2000,clip=1``

Per event, in this order (all on sensor pixels, before cropping):

1. **denoise** (``denoise_us > 0``, background-activity filter): the event is kept only if one of
   its 8 neighbouring pixels had an event (kept or not) at most ``denoise_us`` earlier; every
   event then records its time at its own pixel.
2. **refractory** (``refractory_us > 0``): an event less than ``refractory_us`` after the previous
   kept event of the same pixel is dropped.
3. **crop** ``x0|y0|w|h`` (default: the whole sensor), then integer **downsample** (pixel
   ``(x − x0) // f, (y − y0) // f``; the frame is ``ceil(w / f)`` × ``ceil(h / f)``).
4. **polarity**: ``split`` → 2 channels (0 OFF, 1 ON), ``merge`` → 1 channel counting both,
   ``signed`` → 1 channel, ON − OFF.

Frames count events; ``clip`` caps each count (``clip=1``: binary frames; signed frames are
clamped to ±clip). **Time windows** (``window_us``, default the model's dt) are aligned to the
first event (t = 0): window k covers [k·w, (k+1)·w); a window is emitted once an event at or after
its end has been seen (or the chunk's ``t_end`` passes it), empty windows included, and ``flush``
emits the last, partial one. **Count windows** (``count=N``) close after N kept events. Step
time = window end (time mode) or time of the last event (count mode), in seconds; step arrival =
arrival of the chunk that held the window's last kept event (the chunk that closed it, for an
empty window). State carries over chunk boundaries. The frame is (C, H, W), or flattened when the
model input is 1-D.

**Gaps** (``max_gap``, seconds of stream time, default 1): a pause between events of at most
``max_gap`` is stepped with empty frames (more than EMPTY_RUN in a row: one zero frame repeated,
nothing allocated per window). A longer one is not stepped: the frame of the last event before it
is emitted (as :meth:`EventBinner.flush` would), the binner starts over (the filters keep their
memory) and the windows go on from that of the next event, on the same grid. ``Steps.gaps`` lists
each (step index, seconds), and the pipeline resets the model and the decoder there. A chunk's
``t_end`` beyond ``max_gap`` after the latest event closes that event's window only. Windows
start at the first event's window (t = 0 for a source's chunks).
"""

from __future__ import annotations

import math
from typing import Iterator

import numpy as np
from ...jit import njit

from ...errors import InputError
from ...options import positive_number
from ..base import EVENT_DTYPE, Encoder, Events, SourceInfo, Steps
from ..prefetch import prefetch_write
from ..reuse import LOCAL_ONLY, refs

POLARITY = ("split", "merge", "signed")
NEVER = -(1 << 62)

# kernel state slots
S_OPEN, S_NOPEN, S_FLAG, S_LAST = 0, 1, 2, 3  # open window, its kept events, arrival flag, last time
S_NCUR = 4  # bins held in the open frame (cur_idx / cur_val)
NO_LIMIT = 1 << 62
DEFAULT_MAX_GAP = 1.0  # seconds of stream time: longer pauses between events reset the stream (see above)
EMPTY_RUN = 64         # more empty windows in a row than this: stepped as one zero frame repeated


# bin_events configuration slots (an int64 array: one argument instead of nine, since each argument
# of a compiled call costs some dispatch time, paid per chunk)
C_COUNT_MODE, C_WINDOW, C_COUNT, C_POL, C_REFR, C_DENOISE, C_SW, C_SH, C_CLIP = range(9)


@njit(cache=True)
def bin_events(ev, n, cfg, t_end, ordered, xmap, ymap, last_any, last_kept, cur_idx, cur_val, st, out, out_t,
               out_flag, touched, n_clear):
    """Bin ``ev[0:n]``; returns (rows of ``out`` completed, bins of ``out`` to clear before its next use,
    rows ``out`` needs, ``st[S_NCUR]``, ``st[S_FLAG]``, ``out_flag[0]`` (0 without rows)): when ``out``
    has fewer rows than needed, nothing is done and the third value says how many it must have (the
    first two are then 0 and ``n_clear``). The last three save the caller reading them back one by one.

    ``cfg`` (slots C_*): count_mode, window, count, pol (0 split, 1 merge, 2 signed), refractory,
    denoise, sensor width and height, clip. ``t_end``: no later event will be earlier than this
    (-1: unknown). ``ordered``: the caller knows that the events are in time order (a source's
    chunk), so the latest time is that of ``ev[n - 1]``; else it is found by a pass over them (a
    chunk that turns out not to be in order stops the call with a third value of -1). ``xmap``/``ymap``: frame column/row of each sensor column/row
    (crop and downsampling), -1 outside the crop. Between calls the open frame — the open window
    (time mode) or the frame being filled (count mode) — is held sparsely: its ``st[S_NCUR]`` nonzero
    bins (flat index in the frame, count) in ``cur_idx`` / ``cur_val`` (room needed: the bins of the
    frame, or ``st[S_NCUR]`` + ``n`` if fewer).
    Time mode: ``out`` row r is window ``st[S_OPEN]`` (at entry) + r and ``k_final`` (the window
    open at the end of this call: that of the latest event time or ``t_end``) - ``st[S_OPEN]`` rows
    are completed.
    out_flag per row: 0 no kept event, 1 last kept event in this call, 2 in an earlier call (only
    row 0 can be).
    Counts are capped at ``clip`` as they are added (split/merge); signed frames are clamped by the
    caller.

    All events are added straight into ``out`` (one row more than the rows completed: the open
    frame is put into its row at entry and taken back out at exit), by flat index. ``out`` is reused
    across calls: the bins ``touched[:n_clear]`` (written by the previous call on this ``out``;
    every other bin is zero) are cleared first; the bin of each event added is listed in
    ``touched`` (room needed: ``n`` + ``st[S_NCUR]``)."""
    count_mode = cfg[C_COUNT_MODE] != 0
    window = cfg[C_WINDOW]
    count = cfg[C_COUNT]
    pol = cfg[C_POL]
    refr = cfg[C_REFR]
    denoise = cfg[C_DENOISE]
    sw = cfg[C_SW]
    sh = cfg[C_SH]
    clip = cfg[C_CLIP]
    k_final = np.int64(0)
    if count_mode:
        need = (st[S_NOPEN] + n) // count + 1
    else:
        t_max = t_end
        if ordered:
            if n > 0 and ev[n - 1]["t"] > t_max:
                t_max = ev[n - 1]["t"]
        else:
            for i in range(n):
                ti = ev[i]["t"]
                if ti > t_max:
                    t_max = ti
        k_final = st[S_OPEN]
        if t_max >= 0 and t_max // window > k_final:
            k_final = t_max // window
        need = k_final - st[S_OPEN] + 1
    if out.shape[0] < need:
        return 0, n_clear, need, st[S_NCUR], st[S_FLAG], 0
    fo = out.reshape(-1)
    for j in range(n_clear):
        fo[touched[j]] = 0
    C = out.shape[1]
    H = out.shape[2]
    W = out.shape[3]
    frame = C * H * W
    m = 0
    ncur = st[S_NCUR]
    for q in range(ncur):  # the open frame into row 0
        j = cur_idx[q]
        fo[j] = cur_val[q]
        touched[m] = j
        m += 1
    ncur_in = m
    m_open = 0  # touched[m_open:] are bins of the open row
    k_open = st[S_OPEN]
    k_base = k_open
    n_open = st[S_NOPEN]
    flag = 2 if n_open > 0 else 0
    last_t = st[S_LAST]
    rows = 0
    base = 0  # the open row starts at fo[base]
    capped = clip > 0 and pol != 2
    split = 1 if pol == 0 else 0
    t_next = NO_LIMIT if count_mode else (k_open + 1) * window  # end of the open window
    n_lim = count if count_mode else NO_LIMIT
    for i in range(n):
        t = ev[i]["t"]
        x = np.int64(ev[i]["x"])
        y = np.int64(ev[i]["y"])
        if x >= sw or y >= sh:
            continue
        if t >= t_next:
            w = t // window
            if w > k_open:
                if not count_mode and w > k_final:  # later than the chunk's last event: not in time order
                    return rows, n_clear, -1, 0, 0, 0
                out_t[k_open - k_base] = (k_open + 1) * window
                out_flag[k_open - k_base] = flag
                for kk in range(k_open + 1, w):
                    out_t[kk - k_base] = (kk + 1) * window
                    out_flag[kk - k_base] = 0
                rows = w - k_base
                k_open = w
                flag = 0
                n_open = 0
                base = rows * frame
                m_open = m
                t_next = (k_open + 1) * window
        if denoise > 0:
            lim = t - denoise
            ok = False
            if y > 0:
                r0 = y - 1
                if (x > 0 and last_any[r0, x - 1] >= lim) or last_any[r0, x] >= lim or \
                        (x + 1 < sw and last_any[r0, x + 1] >= lim):
                    ok = True
            if not ok and ((x > 0 and last_any[y, x - 1] >= lim) or (x + 1 < sw and last_any[y, x + 1] >= lim)):
                ok = True
            if not ok and y + 1 < sh:
                r2 = y + 1
                if (x > 0 and last_any[r2, x - 1] >= lim) or last_any[r2, x] >= lim or \
                        (x + 1 < sw and last_any[r2, x + 1] >= lim):
                    ok = True
            last_any[y, x] = t
            if not ok:
                continue
        if refr > 0:
            if t - last_kept[y, x] < refr:
                continue
            last_kept[y, x] = t
        xc = xmap[x]
        yc = ymap[y]
        if xc < 0 or yc < 0:
            continue
        p = ev[i]["p"]
        j = base + ((split if p else 0) * H + yc) * W + xc
        if pol == 2:
            fo[j] += 1 if p else -1
        prefetch_write(fo, j)  # its line is then (mostly) in the cache when the count is added below
        touched[m] = j  # every event (a test of v == 0 here would cost more than the extra clears)
        m += 1
        flag = 1
        last_t = t
        n_open += 1
        if n_open >= n_lim:  # count mode: the frame is complete
            out_t[rows] = t
            out_flag[rows] = 1
            rows += 1
            n_open = 0
            flag = 0
            base = rows * frame
            m_open = m
    if not count_mode and k_final > k_open:
        out_t[k_open - k_base] = (k_open + 1) * window
        out_flag[k_open - k_base] = flag
        for kk in range(k_open + 1, k_final):
            out_t[kk - k_base] = (kk + 1) * window
            out_flag[kk - k_base] = 0
        rows = k_final - k_base
        k_open = k_final
        flag = 0
        n_open = 0
        m_open = m
    # split/merge: the counts are added here, in a tight loop over touched[ncur_in:m] rather than in
    # the loop above (the frames are mostly far out of the cache: a short loop keeps many more of
    # their cache misses in flight at once). Counting is order-free (capped counts too), so the
    # frames are the same.
    if pol != 2:
        if capped:
            for q in range(ncur_in, m):
                j = touched[q]
                v = fo[j]
                if v < clip:
                    fo[j] = v + 1
        else:
            for q in range(ncur_in, m):
                fo[touched[q]] += 1
    # the open frame (bins touched[m_open:]) out of its row, back into cur
    ncur = 0
    for q in range(m_open, m):
        j = touched[q]
        v = fo[j]
        if v != 0:
            cur_idx[ncur] = j - base
            cur_val[ncur] = v
            ncur += 1
            fo[j] = 0
    st[S_NCUR] = ncur
    st[S_OPEN] = k_open
    st[S_NOPEN] = n_open
    st[S_FLAG] = flag
    st[S_LAST] = last_t
    return rows, m_open, 0, ncur, flag, out_flag[0] if rows > 0 else 0


_NO_EVENTS = np.zeros(0, EVENT_DTYPE)

# Output frames of binners that are gone, for the next binner of the same frame shape: a new
# binner (a new stream, a file opened again) would otherwise allocate and zero them again, which
# at 1 ms windows costs as much as binning a few hundred thousand events. At most _POOL_MAX entries
# of at most _POOL_BYTES each are kept.
_POOL: list = []
_POOL_MAX = 2
_POOL_BYTES = 64 << 20


def _pool_put(out, out_t, out_flag, touched, n_clear) -> None:
    if out.nbytes <= _POOL_BYTES:
        _POOL.append((out, out_t, out_flag, touched, n_clear))
        while len(_POOL) > _POOL_MAX:
            _POOL.pop(0)


def _pool_get(shape, rows):
    """(out, out_t, out_flag, touched, n_clear) from the pool with frames of ``shape`` and at least
    ``rows`` rows that nothing else holds (frames the Steps of the binner that left them still use
    are dropped from the pool), or None."""
    shape = tuple(shape)
    best = None
    for e in _POOL:  # the smallest that is large enough
        if e[0].shape[1:] == shape and e[0].shape[0] >= rows and (best is None or e[0].shape[0] < best[0].shape[0]):
            best = e
    if best is None:
        return None
    for k in range(len(_POOL)):
        if _POOL[k] is best:
            del _POOL[k]
            break
    else:
        return None  # taken meanwhile (another thread)
    out, out_t, out_flag, touched, n_clear = best
    best = e = None
    if refs(out) > LOCAL_ONLY:  # held by more than this local: a caller still uses it
        return None  # still in use: dropped
    return out, out_t, out_flag, touched, n_clear


class EventBinner(Encoder):
    """Event camera chunks → frames (see the module docstring for the parameters)."""

    name = "bin"

    def __init__(self, window_us=None, count=None, polarity="split", downsample=1, crop=None, refractory_us=0,
                 denoise_us=0, clip=None, sensor_size=None, max_gap=None):
        self.max_gap = DEFAULT_MAX_GAP if max_gap is None else positive_number(max_gap, "bin: max_gap", "seconds")
        if window_us is not None and count is not None:
            raise InputError("bin: give window_us or count, not both")
        if polarity not in POLARITY:
            raise InputError(f"bin: polarity '{polarity}': expected one of {', '.join(POLARITY)}")
        self.window_us = None if window_us is None else int(window_us)
        if self.window_us is not None and self.window_us <= 0:
            raise InputError(f"bin: window_us={window_us} must be > 0")
        self.count = None if count is None else int(count)
        if self.count is not None and self.count <= 0:
            raise InputError(f"bin: count={count} must be > 0")
        self.polarity = polarity
        self.downsample = int(downsample)
        if self.downsample < 1:
            raise InputError(f"bin: downsample={downsample} must be an integer >= 1")
        if crop is not None:
            if isinstance(crop, str):
                crop = [int(v) for v in crop.replace("x", "|").replace(",", "|").split("|")]
            crop = tuple(int(v) for v in crop)
            if len(crop) != 4 or crop[2] <= 0 or crop[3] <= 0 or crop[0] < 0 or crop[1] < 0:
                raise InputError(f"bin: crop={crop!r}: expected x0|y0|width|height with width, height > 0")
        self.crop = crop
        self.refractory_us = int(refractory_us or 0)
        self.denoise_us = int(denoise_us or 0)
        self.clip = None if clip in (None, 0) else int(clip)
        if self.clip is not None and self.clip < 0:
            raise InputError(f"bin: clip={clip} must be >= 1")
        self.sensor_size = None if sensor_size is None else _size(sensor_size)
        self.configured = False

    # ------------------------------------------------------------------ configuration

    def frame_shape(self, sensor_size) -> tuple:
        w, h = sensor_size
        x0, y0, cw, ch = self.crop or (0, 0, w, h)
        f = self.downsample
        return (2 if self.polarity == "split" else 1, math.ceil(ch / f), math.ceil(cw / f))

    def configure(self, info: SourceInfo | None, input_shape: tuple | None, dt: float | None) -> None:
        size = self.sensor_size or (tuple(info.sensor_size) if info is not None and info.sensor_size else None)
        if size is None:
            raise InputError("bin: the source does not know its sensor size; give it with -O sensor_size=WIDTHxHEIGHT "
                             '(or --encoder "sensor_size=WIDTHxHEIGHT")')
        sw, sh = int(size[0]), int(size[1])
        if self.crop is not None:
            x0, y0, cw, ch = self.crop
            if x0 + cw > sw or y0 + ch > sh:
                raise InputError(f"bin: crop {x0}|{y0}|{cw}|{ch} goes beyond the {sw}x{sh} sensor")
        else:
            x0, y0, cw, ch = 0, 0, sw, sh
        if self.count is None:
            win = self.window_us
            if win is None:
                if not dt:
                    raise InputError("bin: no window: give window_us=... or count=... (the model has no timestep)")
                win = int(round(dt * 1e6))
                if win <= 0:
                    raise InputError(f"bin: the model timestep {dt} s is shorter than 1 µs; give window_us")
            self._window = win
        else:
            self._window = 0
        shape = self.frame_shape((sw, sh))
        self.shape = shape
        self.flatten = False
        if input_shape is not None:
            ish = tuple(int(v) for v in input_shape)
            n = int(np.prod(shape))
            if ish == shape:
                pass
            elif len(ish) == 1 and ish[0] == n:
                self.flatten = True
            elif len(ish) == 2 and shape[0] == 1 and ish == shape[1:]:
                pass  # (H, W) model input and one channel
            else:
                raise InputError(self._mismatch(shape, ish, (sw, sh)))
            self.out_shape = ish
        else:
            self.out_shape = shape
        self._sw, self._sh = sw, sh
        self._x0, self._y0, self._cw, self._ch = x0, y0, cw, ch
        self._pol = POLARITY.index(self.polarity)
        f = self.downsample
        xs = np.arange(sw) - x0
        ys = np.arange(sh) - y0
        self._xmap = np.where((xs >= 0) & (xs < cw), xs // f, -1).astype(np.int32)
        self._ymap = np.where((ys >= 0) & (ys < ch), ys // f, -1).astype(np.int32)
        self.configured = True
        self.reset()

    def _mismatch(self, shape, ish, size) -> str:
        sw, sh = size
        msg = (f"bin: event frames are {shape} (polarity={self.polarity}, sensor {sw}x{sh}"
               f"{', crop ' + '|'.join(map(str, self.crop)) if self.crop else ''}, downsample={self.downsample}) "
               f"but the model input is {ish}")
        opts, other = [], []  # options go in one --encoder "k=v,..." merged into the model's spec
        if len(ish) == 3:
            c, h, w = ish
            if c != shape[0]:
                (opts if c in (1, 2) else other).append("polarity=split" if c == 2 else "polarity=merge" if c == 1
                                                        else f"a model with 1 or 2 input channels (it has {c})")
            x0, y0, cw, ch = self.crop or (0, 0, sw, sh)
            for f in range(1, 65):
                if math.ceil(cw / f) == w and math.ceil(ch / f) == h:
                    if f != self.downsample:
                        opts.append(f"downsample={f}")
                    break
            else:
                f = self.downsample  # a centred crop of the right size at the current downsampling
                if w * f <= sw and h * f <= sh:
                    opts.append(f"crop={(sw - w * f) // 2}|{(sh - h * f) // 2}|{w * f}|{h * f}")
                else:
                    other.append(f"a model whose input fits the {sw}x{sh} sensor")
        elif len(ish) == 1:
            other.append(f"an input of {int(np.prod(shape))} values (C·H·W) or a (C, H, W) model input")
        hints = [f'--encoder "{",".join(opts)}" (sets these options, keeps the model\'s others)'] if opts else []
        hints += other
        return msg + (("; use " + ", or ".join(hints)) if hints else "")

    # ------------------------------------------------------------------ streaming

    def reset(self) -> None:
        if not self.configured:
            return
        self._release()
        self._st = np.zeros(8, np.int64)
        self._ncur = 0  # = _st[S_NCUR], as the kernel last returned it
        self._st[S_LAST] = -1
        self._cur_idx = np.empty(0, np.int64)    # the open frame, sparse (see bin_events)
        self._cur_val = np.empty(0, np.float32)
        self._any = np.full((self._sh, self._sw), NEVER, np.int64) if self.denoise_us > 0 else np.zeros((1, 1), np.int64)
        self._kept = (np.full((self._sh, self._sw), NEVER, np.int64) if self.refractory_us > 0
                      else np.zeros((1, 1), np.int64))
        self._open_arrival = 0.0
        self._seen = None      # latest event time seen (µs) since the start, or None: windows start at the next event
        self._gap_us = max(1, int(round(positive_number(self.max_gap, "bin: max_gap", "seconds") * 1e6)))
        self._lim = self._gap_us if self.count is not None else min(self._gap_us, EMPTY_RUN * self._window)
        self._out = None       # output frames, reused across calls (see _frames)
        self._n_clear = 0      # bins of _out written by the last call (listed in _touched)
        self._touched = np.empty(0, np.int64)
        self._cfg = np.array([self.count is not None, self._window, self.count or 0, self._pol, self.refractory_us,
                              self.denoise_us, self._sw, self._sh, self.clip or 0], np.int64)
        self._frame_size = int(np.prod(self.shape))
        self._plain = not self.flatten and tuple(self.out_shape) == tuple(self.shape)
        self._no_frames = np.zeros((0,) + tuple(self.shape), np.float32)
        self._out_t = np.empty(0, np.int64)
        self._out_flag = np.empty(0, np.int8)

    def _release(self) -> None:
        """Hand the output frames to the next binner of the same frame shape (see _frames)."""
        out = getattr(self, "_out", None)
        if out is not None:
            self._out = None
            _pool_put(out, self._out_t, self._out_flag, self._touched, self._n_clear)

    def __del__(self):
        try:
            self._release()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    def _frames(self, rows: int):
        """(out, out_t, out_flag, n_clear): output frames for ``rows`` steps, the open one included.

        The frames of the previous call are reused when nothing outside this encoder holds them any
        more (the caller has dropped that call's Steps, and every view of them): the kernel then
        clears only the bins that call wrote (``touched[:n_clear]``) instead of this call allocating
        and zeroing a fresh array of mostly empty frames (at 1 ms windows that zeroing, not the
        events, was most of the binning time). A caller that keeps its Steps gets fresh frames. A
        new encoder takes the frames of one that is gone (same frame shape), if there is one."""
        out = None
        n_clear = 0
        got = _pool_get(self.shape, rows)
        if got is not None:
            out, self._out_t, self._out_flag, touched, n_clear = got
            if self._touched.shape[0] < touched.shape[0]:
                self._touched = touched
            else:
                self._touched[:n_clear] = touched[:n_clear]
        if out is None:
            cap = rows + rows // 8 + 1  # a little room: the next chunk may span one window more
            out = np.zeros((cap,) + tuple(self.shape), np.float32)
            self._out_t = np.empty(cap, np.int64)
            self._out_flag = np.empty(cap, np.int8)
            n_clear = 0
        return out, n_clear

    def _run(self, ev, t_end, arrival, ordered=False):
        n = len(ev)
        ncur = self._ncur
        need = n + ncur
        if self._touched.shape[0] < need:
            touched = np.empty(max(need, 2 * self._touched.shape[0]), np.int64)
            touched[:self._n_clear] = self._touched[:self._n_clear]  # still to clear
            self._touched = touched
        need = min(need, self._frame_size)
        if self._cur_idx.shape[0] < need:
            cap = max(need, min(2 * self._cur_idx.shape[0], self._frame_size))
            idx, val = np.empty(cap, np.int64), np.empty(cap, np.float32)
            idx[:ncur], val[:ncur] = self._cur_idx[:ncur], self._cur_val[:ncur]
            self._cur_idx, self._cur_val = idx, val
        out, self._out = self._out, None  # dropped while the kernel runs (an exception: fresh frames next time)
        n_clear = self._n_clear
        if out is None or refs(out) > LOCAL_ONLY:  # held by more than this local: the caller still uses it
            out, n_clear = self._no_frames, 0  # the kernel says how many rows it needs
        t_end = -1 if t_end is None else int(t_end)
        while True:
            rows, n_clear, need, self._ncur, flag, flag0 = bin_events(
                ev, n, self._cfg, t_end, ordered, self._xmap, self._ymap, self._any, self._kept, self._cur_idx,
                self._cur_val, self._st, out, self._out_t, self._out_flag, self._touched, n_clear)
            if not need:
                break
            if need < 0:
                self.reset()
                raise InputError("bin: an event chunk is not in time order (a source's chunks always are); pass "
                                 "unordered events as a plain array, which is checked")
            out, n_clear = self._frames(need)
        x = out[:rows]
        if out.shape[0] <= 4 * (rows + 1) or out.nbytes <= (32 << 20):  # else: too big to keep after a burst
            self._out, self._n_clear = out, n_clear
        if self._pol == 2 and self.clip:
            np.clip(x, -self.clip, self.clip, out=x)
        arr = np.full(rows, arrival, np.float64)
        if flag0 == 2:  # only the window open at entry can have its events from before
            arr[0] = self._open_arrival
        if flag == 1:
            self._open_arrival = arrival
        return self._steps(x, self._out_t[:rows], arr)

    def _steps(self, x, t_us, arrival) -> Steps:
        if not len(x):
            x = np.zeros((0,) + self.out_shape, np.float32)
        elif not self._plain:
            x = x.reshape((len(x),) + self.out_shape)
        return Steps(x=x, t=t_us / 1e6, arrival=arrival, labels=None)

    def encode(self, chunk) -> Steps:
        """The steps of ``chunk``: the parts of :meth:`encode_parts` in one Steps."""
        parts, gaps, done = list(self.encode_parts(chunk)), [], 0
        if len(parts) == 1:
            return parts[0]
        for p in parts:
            gaps, done = gaps + [(done + i, sec) for i, sec in p.gaps], done + len(p)
        return Steps(np.concatenate([p.x for p in parts]), np.concatenate([p.t for p in parts]),
                     np.concatenate([p.arrival for p in parts]), None, tuple(gaps))

    def encode_parts(self, chunk) -> Iterator[Steps]:
        """The steps of ``chunk`` as they come, in parts: a run of more than EMPTY_RUN empty windows is a
        part whose frames are one zero frame repeated (a read-only view: nothing is allocated per
        window), and the part after a gap longer than max_gap lists it at index 0 of its ``gaps``."""
        if not self.configured:
            raise InputError("bin: configure() was not called")
        if isinstance(chunk, Events):
            ev, t_end, arrival, ordered = chunk.events, chunk.t_end, chunk.arrival, True
        else:
            ev, t_end, arrival, ordered = chunk, getattr(chunk, "t_end", None), getattr(chunk, "arrival", 0.0), False
        if len(ev):
            # pauses: O(1) per chunk unless it spans more than _lim (a source's chunks span 10 ms)
            t = ev["t"]
            lo, hi = (int(t[0]), int(t[-1])) if ordered else (int(t.min()), int(t.max()))
            seen = self._seen
            if (seen is not None and lo - seen > self._lim) or hi - lo > self._lim:
                order = None if ordered else np.argsort(t, kind="stable")
                ts = t if ordered else t[order]
                cuts = np.flatnonzero(np.diff(ts) > self._lim) + 1
                if seen is not None:
                    j = int(np.searchsorted(ts, seen, side="right"))  # the first event after those seen
                    cuts = cuts[cuts > j]
                    if j < len(ev) and int(ts[j]) - seen > self._lim:
                        cuts = np.concatenate([[j], cuts])
                if len(cuts):
                    yield from self._pieces(ev, ts, order, [0] + cuts.tolist() + [len(ev)], t_end, arrival)
                    return
            self._begin(lo, hi)
        yield self._run(ev, self._end(t_end), arrival, ordered)

    def _pieces(self, ev, ts, order, bounds, t_end, arrival) -> Iterator[Steps]:
        """The steps of ``ev`` cut at the pauses before ``ts[bounds[1:-1]]`` (``ts``: times in order;
        ``order``: the positions of ``ev`` in that order, or None when they are)."""
        seen, n = self._seen, len(ev)
        for k in range(len(bounds) - 1):
            a, b = bounds[k], bounds[k + 1]
            gaps = ()
            if k:
                before = seen if a == 0 else (int(ts[a - 1]) if seen is None else max(seen, int(ts[a - 1])))
                pause = int(ts[a]) - before
                if pause > self._gap_us:  # close the open frame, start over
                    tail = self.flush()
                    if tail is not None:
                        yield tail
                    self._restart()
                    gaps = ((0, pause / 1e6),)
                else:
                    yield from self._empty_run(int(ts[a]), arrival)
            s = None
            if b > a:
                seg = ev[a:b] if order is None else ev[np.sort(order[a:b])]
                self._begin(int(ts[a]), int(ts[b - 1]))
                s = self._run(seg, self._end(t_end) if b == n else None, arrival, order is None)
            if gaps:
                s = s or self._steps(self._no_frames, np.zeros(0, np.int64), np.zeros(0))
                s.gaps = gaps
            if s is not None:
                yield s

    def _empty_run(self, t_next: int, arrival: float) -> Iterator[Steps]:
        """The windows from the open one to that of ``t_next`` (time mode, no event between): the open
        one closed by the kernel, the empty ones after it as one zero frame repeated."""
        w, k_open = self._window, int(self._st[S_OPEN])
        k_to = t_next // w
        if k_to - k_open <= EMPTY_RUN:
            return  # the kernel steps them
        s = self._run(_NO_EVENTS, (k_open + 1) * w, arrival, True)
        if len(s):
            yield s
        k0 = k_open + 1
        x = np.broadcast_to(np.zeros((1,) + tuple(self.out_shape), np.float32), (k_to - k0,) + tuple(self.out_shape))
        yield Steps(x, (np.arange(k0, k_to) + 1) * (w / 1e6), np.full(k_to - k0, arrival), None)
        self._st[S_OPEN] = k_to

    def _begin(self, lo: int, hi: int) -> None:
        """Events from ``lo`` to ``hi`` (µs) come: the first ones since the start open their window."""
        if self._seen is None:
            if self.count is None:  # (min: a chunk out of order is still found out by the kernel)
                self._st[S_OPEN] = max(0, min(lo, hi) // self._window)
            self._seen = hi
        elif hi > self._seen:
            self._seen = hi

    def _end(self, t_end):
        """A chunk's ``t_end`` as the kernel may use it: none before the first event, and one beyond the
        gap that must follow closes only the window of the latest event."""
        if t_end is None or self._seen is None:
            return None
        if self.count is None and t_end - self._seen > self._gap_us:
            return (self._seen // self._window + 1) * self._window
        if self.count is None and t_end // self._window - self._st[S_OPEN] > EMPTY_RUN:  # the next event steps
            return (self._st[S_OPEN] + EMPTY_RUN) * self._window                        # the rest, repeated
        return t_end

    def _restart(self) -> None:
        """Start over after a long gap: no open window or frame; the output frames and filters stay."""
        st = self._st
        st[S_OPEN] = st[S_NOPEN] = st[S_FLAG] = st[S_NCUR] = 0
        st[S_LAST] = -1
        self._ncur = 0
        self._open_arrival = 0.0
        self._seen = None

    def flush(self) -> Steps | None:
        if not self.configured or self._st[S_NOPEN] == 0:
            return None
        out = np.zeros((1,) + tuple(self.shape), np.float32)
        ncur = int(self._st[S_NCUR])
        out.reshape(-1)[self._cur_idx[:ncur]] = self._cur_val[:ncur]
        self._st[S_NCUR] = 0
        self._ncur = 0
        if self._pol == 2 and self.clip:
            np.clip(out, -self.clip, self.clip, out=out)
        t = self._st[S_LAST] if self.count is not None else (self._st[S_OPEN] + 1) * self._window
        arrival = self._open_arrival
        self._st[S_NOPEN] = 0
        self._st[S_FLAG] = 0
        if self.count is None:
            self._st[S_OPEN] += 1
        return self._steps(out, np.array([t], np.int64), np.array([arrival], np.float64))

    def spec(self) -> str:
        parts = []
        if self.count is not None:
            parts.append(f"count={self.count}")
        elif self.window_us is not None:
            parts.append(f"window_us={self.window_us}")
        defaults = dict(polarity="split", downsample=1, crop=None, refractory_us=0, denoise_us=0, clip=None,
                        sensor_size=None, max_gap=DEFAULT_MAX_GAP)
        for k, d in defaults.items():
            v = getattr(self, k)
            if v != d:
                sep = "x" if k == "sensor_size" else "|"
                parts.append(f"{k}={sep.join(map(str, v)) if isinstance(v, tuple) else v}")
        return self.name + (":" + ",".join(parts) if parts else "")


def _size(s):
    if isinstance(s, str):
        w, _, h = s.lower().replace("|", "x").partition("x")
        return (int(w), int(h))
    return tuple(int(v) for v in s)


ENCODERS = {"bin": EventBinner}
