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
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ..errors import InputError
from .base import Encoder, Events, SourceInfo, Steps

POLARITY = ("split", "merge", "signed")
NEVER = -(1 << 62)

# kernel state slots
S_OPEN, S_NOPEN, S_FLAG, S_LAST = 0, 1, 2, 3  # open window, its kept events, arrival flag, last time


@njit(cache=True)
def _move(cur, row):
    """Add the open window's counts (``cur``) into ``row`` and clear ``cur``."""
    C, H, W = cur.shape
    for c in range(C):
        for y in range(H):
            for x in range(W):
                v = cur[c, y, x]
                if v != 0:
                    row[c, y, x] += v
                    cur[c, y, x] = 0


@njit(cache=True)
def bin_events(ev, n, count_mode, window, count, pol, xmap, ymap, refr, denoise, sw, sh,
               last_any, last_kept, cur, st, out, out_t, out_flag, clip, k_final):
    """Bin ``ev[0:n]``; returns the number of rows of ``out`` completed.

    pol: 0 split, 1 merge, 2 signed. ``xmap``/``ymap``: frame column/row of each sensor column/row
    (crop and downsampling), -1 outside the crop. ``cur`` holds the open window (time mode) or the frame being
    filled (count mode) between calls. Time mode: ``out`` row r is window ``st[S_OPEN]`` (at entry)
    + r and ``k_final`` is the window open at the end of this call (rows go up to
    ``k_final - st[S_OPEN]``); events of earlier windows are added straight into their rows.
    out_flag per row: 0 no kept event, 1 last kept event in this call, 2 in an earlier call.
    Counts are capped at ``clip`` as they are added (split/merge); signed frames are clamped by the
    caller."""
    k_open = st[S_OPEN]
    k_base = k_open
    n_open = st[S_NOPEN]
    flag = 2 if n_open > 0 else 0
    last_t = st[S_LAST]
    rows = 0
    if count_mode:
        tgt = cur
    elif k_final > k_open:
        _move(cur, out[0])
        tgt = out[0]
    else:
        tgt = cur
    capped = clip > 0 and pol != 2
    t_next = (k_open + 1) * window  # end of the open window
    for i in range(n):
        t = ev[i]["t"]
        x = np.int64(ev[i]["x"])
        y = np.int64(ev[i]["y"])
        if x >= sw or y >= sh:
            continue
        if not count_mode and t >= t_next:
            w = t // window
            if w > k_open:
                out_t[k_open - k_base] = (k_open + 1) * window
                out_flag[k_open - k_base] = flag
                for kk in range(k_open + 1, w):
                    out_t[kk - k_base] = (kk + 1) * window
                    out_flag[kk - k_base] = 0
                rows = w - k_base
                k_open = w
                flag = 0
                n_open = 0
                tgt = cur if w >= k_final else out[w - k_base]
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
        if pol == 0:
            c = 1 if p else 0
            if not capped or tgt[c, yc, xc] < clip:
                tgt[c, yc, xc] += 1
        elif pol == 1:
            if not capped or tgt[0, yc, xc] < clip:
                tgt[0, yc, xc] += 1
        else:
            tgt[0, yc, xc] += 1 if p else -1
        flag = 1
        last_t = t
        n_open += 1
        if count_mode and n_open >= count:
            _move(cur, out[rows])
            out_t[rows] = t
            out_flag[rows] = 1
            rows += 1
            n_open = 0
            flag = 0
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
    st[S_OPEN] = k_open
    st[S_NOPEN] = n_open
    st[S_FLAG] = flag
    st[S_LAST] = last_t
    return rows


class EventBinner(Encoder):
    """Event camera chunks → frames (see the module docstring for the parameters)."""

    name = "bin"

    def __init__(self, window_us=None, count=None, polarity="split", downsample=1, crop=None, refractory_us=0,
                 denoise_us=0, clip=None, sensor_size=None):
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
            raise InputError("bin: the source does not know its sensor size; pass sensor_size=WIDTHxHEIGHT to the "
                             "source (or to the encoder)")
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
        hints = []
        if len(ish) == 3:
            c, h, w = ish
            if c != shape[0]:
                hints.append("polarity=split" if c == 2 else "polarity=merge (or signed)" if c == 1 else
                             f"a model with 1 or 2 input channels (it has {c})")
            x0, y0, cw, ch = self.crop or (0, 0, sw, sh)
            for f in range(1, 65):
                if math.ceil(cw / f) == w and math.ceil(ch / f) == h:
                    if f != self.downsample:
                        hints.append(f"downsample={f}")
                    break
            else:
                # a centred crop of the right size at the current downsampling
                f = self.downsample
                if w * f <= sw and h * f <= sh:
                    hints.append(f"crop={(sw - w * f) // 2}|{(sh - h * f) // 2}|{w * f}|{h * f}")
                else:
                    hints.append(f"a model whose input fits the {sw}x{sh} sensor")
        elif len(ish) == 1:
            hints.append(f"an input of {int(np.prod(shape))} values (C·H·W) or a (C, H, W) model input")
        return msg + (("; use " + ", ".join(hints)) if hints else "")

    # ------------------------------------------------------------------ streaming

    def reset(self) -> None:
        if not self.configured:
            return
        C, H, W = self.shape
        self._cur = np.zeros((C, H, W), np.float32)
        self._st = np.zeros(8, np.int64)
        self._st[S_LAST] = -1
        self._any = np.full((self._sh, self._sw), NEVER, np.int64) if self.denoise_us > 0 else np.zeros((1, 1), np.int64)
        self._kept = (np.full((self._sh, self._sw), NEVER, np.int64) if self.refractory_us > 0
                      else np.zeros((1, 1), np.int64))
        self._open_arrival = 0.0

    def _run(self, ev, k_final, arrival, rows_max):
        C, H, W = self.shape
        out = np.zeros((max(rows_max, 1), C, H, W), np.float32)
        out_t = np.zeros(max(rows_max, 1), np.int64)
        out_flag = np.zeros(max(rows_max, 1), np.int8)
        rows = bin_events(ev, len(ev), self.count is not None, self._window, self.count or 0, self._pol,
                          self._xmap, self._ymap, self.refractory_us,
                          self.denoise_us, self._sw, self._sh, self._any, self._kept, self._cur, self._st, out,
                          out_t, out_flag, self.clip or 0, k_final)
        if self._pol == 2 and self.clip:
            np.clip(out[:rows], -self.clip, self.clip, out=out[:rows])
        arr = np.where(out_flag[:rows] == 2, self._open_arrival, arrival)
        if self._st[S_FLAG] == 1:
            self._open_arrival = arrival
        return self._steps(out[:rows], out_t[:rows], arr)

    def _steps(self, x, t_us, arrival) -> Steps:
        if len(x):
            x = x.reshape((len(x),) + self.out_shape)
        else:
            x = np.zeros((0,) + self.out_shape, np.float32)
        return Steps(x=x, t=t_us.astype(np.float64) / 1e6, arrival=np.asarray(arrival, np.float64), labels=None)

    def encode(self, chunk) -> Steps:
        if not self.configured:
            raise InputError("bin: configure() was not called")
        ev = chunk.events if isinstance(chunk, Events) else chunk
        arrival = getattr(chunk, "arrival", 0.0)
        t_end = getattr(chunk, "t_end", None)
        n = len(ev)
        if self.count is not None:
            rows_max = (int(self._st[S_NOPEN]) + n) // self.count
            return self._run(ev, 0, arrival, rows_max)
        t_max = int(ev["t"].max()) if n else -1
        if t_end is not None:
            t_max = max(t_max, int(t_end))
        k_open = int(self._st[S_OPEN])
        k_final = max(k_open, t_max // self._window) if t_max >= 0 else k_open
        return self._run(ev, k_final, arrival, k_final - k_open)

    def flush(self) -> Steps | None:
        if not self.configured or self._st[S_NOPEN] == 0:
            return None
        C, H, W = self.shape
        out = np.zeros((1, C, H, W), np.float32)
        _move(self._cur, out[0])
        if self._pol == 2 and self.clip:
            np.clip(out, -self.clip, self.clip, out=out)
        t = self._st[S_LAST] if self.count is not None else (self._st[S_OPEN] + 1) * self._window
        arrival = self._open_arrival
        self._st[S_NOPEN] = 0
        self._st[S_FLAG] = 0
        if self.count is None:
            self._st[S_OPEN] += 1
        return self._steps(out, np.array([t], np.int64), np.array([arrival]))

    def spec(self) -> str:
        parts = []
        if self.count is not None:
            parts.append(f"count={self.count}")
        elif self.window_us is not None:
            parts.append(f"window_us={self.window_us}")
        defaults = dict(polarity="split", downsample=1, crop=None, refractory_us=0, denoise_us=0, clip=None,
                        sensor_size=None)
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
