"""EventBinner against a numpy histogram and tonic's ``to_frame_numpy`` on real events (N-MNIST,
AEDAT 4), across chunk boundaries, its filters against straightforward Python loops, and frame
reuse only when no caller holds a frame.
"""

from __future__ import annotations

import numpy as np
import pytest

from edgebrain.errors import InputError
from edgebrain.stream.base import Events
from edgebrain.stream.encoders.binning import EventBinner
from edgebrain.stream.registry import open_source

from tests.stream.sources.events._helpers import decode


def histogram(ev, window, shape_cfg, n_frames=None):
    """Reference frames: numpy add.at over windows [k·w, (k+1)·w)."""
    pol, f, crop, size, clip = shape_cfg
    w, h = size
    x0, y0, cw, ch = crop or (0, 0, w, h)
    x, y, t, p = (ev[k].astype(np.int64) for k in "xytp")
    keep = (x >= x0) & (x < x0 + cw) & (y >= y0) & (y < y0 + ch)
    x, y, t, p = (x[keep] - x0) // f, (y[keep] - y0) // f, t[keep], p[keep]
    C = 2 if pol == "split" else 1
    H, W = -(-ch // f), -(-cw // f)
    nb = n_frames if n_frames is not None else int(ev["t"][-1] // window) + 1
    fr = np.zeros((nb, C, H, W), np.float64)
    c = p if pol == "split" else np.zeros_like(p)
    v = np.where(p == 1, 1.0, -1.0) if pol == "signed" else np.ones(len(p))
    b = t // window
    ok = b < nb
    np.add.at(fr, (b[ok], c[ok], y[ok], x[ok]), v[ok])
    if clip:
        fr = np.clip(fr, -clip, clip)
    return fr.astype(np.float32)


def run_binner(enc, chunks):
    xs, ts, arr = [], [], []
    for c in chunks:
        s = enc.encode(c)
        xs.append(s.x), ts.append(s.t), arr.append(s.arrival)
    f = enc.flush()
    if f is not None:
        xs.append(f.x), ts.append(f.t), arr.append(f.arrival)
    return np.concatenate(xs), np.concatenate(ts), np.concatenate(arr)


def rechunk(ev, sizes, seed=0):
    """Events split into chunks of varying size, each with a distinct arrival time."""
    rng = np.random.default_rng(seed)
    out, i, k = [], 0, 0
    while i < len(ev):
        n = int(rng.integers(1, sizes))
        out.append(Events(ev[i:i + n], arrival=1000.0 + k, t_end=int(ev["t"][min(i + n, len(ev)) - 1])))
        i += n
        k += 1
    return out


def reference_filters(ev, size, refractory_us=0, denoise_us=0):
    """The filters as the binner documents them, one event at a time in plain Python."""
    w, h = size
    last_any = {}
    last_kept = {}
    keep = []
    for x, y, t in zip(ev["x"].tolist(), ev["y"].tolist(), ev["t"].tolist()):
        ok = True
        if denoise_us:
            ok = any(t - last_any.get((x + dx, y + dy), -10 ** 18) <= denoise_us
                     for dx in (-1, 0, 1) for dy in (-1, 0, 1) if (dx or dy))
            last_any[(x, y)] = t
        if ok and refractory_us:
            if t - last_kept.get((x, y), -10 ** 18) < refractory_us:
                ok = False
            else:
                last_kept[(x, y)] = t
        keep.append(ok)
    return np.array(keep)


def run_binner_dropping(enc, chunks):
    """As run_binner, but like the pipeline: each call's frames are copied and the Steps dropped,
    so the binner reuses its output frames (clearing only the bins it wrote)."""
    xs, ts = [], []
    for c in chunks:
        s = enc.encode(c)
        xs.append(np.array(s.x, copy=True)), ts.append(np.array(s.t, copy=True))
        del s
    f = enc.flush()
    if f is not None:
        xs.append(f.x.copy()), ts.append(f.t.copy())
    return np.concatenate(xs), np.concatenate(ts)


def test_binner_time_windows_match_histogram_and_tonic(nm_events):
    import tonic.functional as F

    ev, src = nm_events
    enc = EventBinner(window_us=5000)
    enc.configure(src.info, (2, 34, 34), None)
    x, t, arr = run_binner(enc, rechunk(ev, 700))
    ref = histogram(ev, 5000, ("split", 1, None, (34, 34), None))
    assert x.shape == ref.shape and np.array_equal(x, ref)
    assert np.allclose(t, (np.arange(len(ref)) + 1) * 5000 / 1e6)
    tev = np.zeros(len(ev), [("x", "<i2"), ("y", "<i2"), ("t", "<i8"), ("p", "<i1")])
    for k in "xytp":
        tev[k] = ev[k]
    tf = F.to_frame_numpy(tev, sensor_size=(34, 34, 2), time_window=5000, include_incomplete=True)
    assert np.array_equal(x[:len(tf)], tf.astype(np.float32)) and len(tf) == len(x)
    # one chunk or many: the same frames; the model dt sets the window when none is given
    enc2 = EventBinner()
    enc2.configure(src.info, (2, 34, 34), 0.005)
    x2, t2, _ = run_binner(enc2, [Events(ev, arrival=1.0, t_end=int(ev["t"][-1]))])
    assert np.array_equal(x2, ref) and np.array_equal(t2, t)


def test_binner_arrival_and_t_end(nm_events):
    ev, src = nm_events
    chunks = rechunk(ev, 300, seed=5)
    enc = EventBinner(window_us=3000)
    enc.configure(src.info, None, None)
    x, t, arr = run_binner(enc, chunks)
    # reference: the arrival of the chunk holding the window's last event (the closing chunk if empty)
    owner = np.concatenate([np.full(len(c), c.arrival) for c in chunks])
    win = ev["t"] // 3000
    exp = []
    for k in range(len(x)):
        inw = np.flatnonzero(win == k)
        if len(inw):
            exp.append(owner[inw[-1]])
        else:
            nxt = np.flatnonzero(win > k)[0]
            exp.append(owner[nxt])
    assert np.array_equal(arr, np.array(exp))
    # t_end closes windows without waiting for the next event
    enc = EventBinner(window_us=1000)
    enc.configure(src.info, None, None)
    s = enc.encode(Events(ev[:10], arrival=1.0, t_end=int(ev["t"][9]) + 5000))
    assert len(s) == (int(ev["t"][9]) + 5000) // 1000 and enc.flush() is None


@pytest.mark.parametrize("cfg", [
    dict(polarity="merge", downsample=3, clip=None),
    dict(polarity="signed", downsample=2, crop=(3, 5, 25, 20), clip=None),
    dict(polarity="split", downsample=1, crop=(10, 0, 24, 34), clip=1),
    dict(polarity="signed", downsample=4, clip=2),
])
def test_binner_polarity_downsample_crop_clip(nm_events, cfg):
    ev, src = nm_events
    enc = EventBinner(window_us=10000, **cfg)
    enc.configure(src.info, None, None)
    x, t, _ = run_binner(enc, rechunk(ev, 900, seed=2))
    ref = histogram(ev, 10000, (cfg["polarity"], cfg["downsample"], cfg.get("crop"), (34, 34), cfg["clip"]))
    assert x.shape == ref.shape and np.array_equal(x, ref)


def test_binner_count_mode(fmt):
    ev, src = decode(fmt / "evt2.raw")
    ev = ev[:100_003]
    enc = EventBinner(count=5000, downsample=8)
    enc.configure(src.info, None, None)
    x, t, _ = run_binner(enc, rechunk(ev, 20000, seed=1))
    n = len(ev)
    assert len(x) == n // 5000 + 1  # the last, partial frame from flush
    for k in (0, 7, len(x) - 1):
        seg = ev[k * 5000:(k + 1) * 5000]
        ref = np.zeros((2, 60, 80), np.float32)
        np.add.at(ref, (seg["p"].astype(int), seg["y"] // 8, seg["x"] // 8), 1)
        assert np.array_equal(x[k], ref) and t[k] == seg["t"][-1] / 1e6


@pytest.mark.parametrize("filt", [dict(refractory_us=2000), dict(denoise_us=3000),
                                  dict(refractory_us=1000, denoise_us=5000)])

def test_binner_filters_match_python_reference(fmt, filt):
    ev, src = decode(fmt / "evt3_sample.raw")
    ev = ev[:60000]
    keep = reference_filters(ev, (1280, 720), **filt)
    assert 0.05 < keep.mean() < 0.98  # the filter does something on real events, not everything
    enc = EventBinner(window_us=500, downsample=4, **filt)
    enc.configure(src.info, None, None)
    x, t, _ = run_binner(enc, rechunk(ev, 4000, seed=3))
    ref = histogram(ev[keep], 500, ("split", 4, None, (1280, 720), None), n_frames=len(x))
    assert np.array_equal(x, ref)


def test_binner_shape_checks(nm_events):
    ev, src = nm_events
    enc = EventBinner(window_us=1000)
    enc.configure(src.info, (2 * 34 * 34,), None)  # 1-D model input: flattened frames
    s = enc.encode(Events(ev[:2000], arrival=0.0))
    assert s.x.shape[1:] == (2312,)
    with pytest.raises(InputError, match="downsample=2"):
        EventBinner(window_us=1000).configure(src.info, (2, 17, 17), None)
    with pytest.raises(InputError, match="polarity=merge"):
        EventBinner(window_us=1000).configure(src.info, (1, 34, 34), None)
    with pytest.raises(InputError, match="window_us"):
        EventBinner().configure(src.info, (2, 34, 34), None)
    with pytest.raises(InputError, match="sensor size"):
        EventBinner(window_us=1).configure(type(src.info)(format="x", kind="events"), None, None)
    assert EventBinner(window_us=1000, downsample=2, crop="1|2|30|30").spec() == \
        "bin:window_us=1000,downsample=2,crop=1|2|30|30"


@pytest.mark.parametrize("cfg", [dict(window_us=1000), dict(window_us=7000, polarity="signed", crop=(3, 5, 25, 20)),
                                 dict(count=333, downsample=2), dict(window_us=2000, clip=1)])

def test_binner_reused_frames_match_histogram(nm_events, cfg):
    ev, src = nm_events
    enc = EventBinner(**cfg)
    enc.configure(src.info, None, None)
    x, t = run_binner_dropping(enc, rechunk(ev, 500, seed=7))
    enc2 = EventBinner(**cfg)  # the same chunks, frames kept by the caller (fresh every call)
    enc2.configure(src.info, None, None)
    x2, t2, _ = run_binner(enc2, rechunk(ev, 500, seed=7))
    assert np.array_equal(x, x2) and np.array_equal(t, t2)
    if "count" not in cfg:
        ref = histogram(ev, cfg["window_us"], (cfg.get("polarity", "split"), 1, cfg.get("crop"), (34, 34),
                                               cfg.get("clip")))
        assert np.array_equal(x, ref)
    # a Steps the caller still holds is never written by later calls
    enc3 = EventBinner(**cfg)
    enc3.configure(src.info, None, None)
    chunks = rechunk(ev, 500, seed=7)
    held = enc3.encode(chunks[0])
    snap = held.x.copy()
    for c in chunks[1:]:
        enc3.encode(c)
    assert np.array_equal(held.x, snap)


def test_binner_reuses_frames_only_when_free(fmt):
    """Frames left by a binner that is gone are reused by the next one, never while the Steps of
    the old one are still held; results are the same either way."""
    with open_source(str(fmt / "sample.aedat4")) as s:
        chunks = list(s.chunks())
        info = s.info

    def run(hold):
        enc = EventBinner(window_us=1000, downsample=2)
        enc.configure(info, None, None)
        out, held = [], []
        for c in chunks:
            st = enc.encode(c)
            out.append(st.x.copy())
            if hold:
                held.append(st)
        return np.concatenate(out), held

    ref, held = run(True)
    snapshot = [h.x.copy() for h in held]
    for _ in range(3):
        got, _ = run(False)
        assert np.array_equal(got, ref)
        got, _ = run(True)
        assert np.array_equal(got, ref)
    assert all(np.array_equal(h.x, x) for h, x in zip(held, snapshot)), "held Steps were overwritten"


def test_binner_time_order(nm_events):
    """A source's chunks are in time order, so the binner takes the latest time from the last event;
    a plain array is not trusted to be (its latest time is searched for), and an Events chunk that
    breaks the order is a clear error, never frames written past the end of the output."""
    ev, src = nm_events
    shuffled = ev.copy()
    np.random.default_rng(2).shuffle(shuffled)
    enc = EventBinner(window_us=5000)
    enc.configure(src.info, None, None)
    frames = enc.encode(shuffled).x  # a plain array, unordered
    # by hand: a late event joins the window open when it comes; windows open up to the latest time
    assert len(frames) == int(ev["t"].max()) // 5000
    assert frames.sum() + enc.flush().x.sum() == len(ev)
    enc = EventBinner(window_us=5000)
    enc.configure(src.info, None, None)
    late_first = np.concatenate([ev[-1:], ev[:len(ev) // 2]])  # the latest event first
    with pytest.raises(InputError, match="not in time order"):
        enc.encode(Events(late_first, arrival=1.0, t_end=None))
    enc.reset()
    ordered = enc.encode(Events(ev, arrival=1.0, t_end=int(ev["t"][-1])))
    assert np.array_equal(ordered.x, histogram(ev, 5000, ("split", 1, None, (34, 34), None))[:len(ordered.x)])


# ---------------------------------------------------------------------- gaps in event time (issue 11, item 1)


def gapped(ev, shift_us):
    """The events with their second half ``shift_us`` later (a pause in the middle)."""
    g = ev.copy()
    h = len(g) // 2
    g["t"][h:] += shift_us
    return g, h


def source_chunks(ev, n=400):
    """Chunks as a file source makes them: each chunk's t_end is the next chunk's first time."""
    t = ev["t"]
    return [Events(ev[i:i + n], arrival=1.0 + i, t_end=int(t[i + n]) if i + n < len(ev) else int(t[-1]))
            for i in range(0, len(ev), n)]


def run_binner_gaps(enc, chunks):
    """As run_binner, with the gaps the binner reported, as (global step index, seconds)."""
    xs, ts, gaps, done = [], [], [], 0
    for c in chunks:
        s = enc.encode(c)
        gaps += [(done + i, sec) for i, sec in s.gaps]
        xs.append(np.array(s.x)), ts.append(np.array(s.t))
        done += len(s)
    f = enc.flush()
    if f is not None:
        xs.append(f.x), ts.append(f.t)
    return np.concatenate(xs), np.concatenate(ts), gaps


@pytest.mark.parametrize("chunking", ["source", "one", "plain_shuffled"])
def test_binner_long_gap_starts_over_without_a_frame_per_window(nm_events, chunking):
    """A 10-minute pause costs no frame per empty window: the frames are those of each half on its own
    (the second on the same window grid, from its first event's window) and the gap is reported at the
    step where it lies, with its exact length."""
    ev, src = nm_events
    w = 5000
    g, h = gapped(ev, 600_000_000)
    first, second = g[:h], g[h:]
    k1 = int(first["t"][-1]) // w                 # the last window of the first half
    a2, k2 = int(second["t"][0]) // w, int(second["t"][-1]) // w
    ref1 = histogram(first, w, ("split", 1, None, (34, 34), None), n_frames=k1 + 1)
    sh = second.copy()
    sh["t"] -= a2 * w
    ref2 = histogram(sh, w, ("split", 1, None, (34, 34), None), n_frames=k2 - a2 + 1)
    enc = EventBinner(window_us=w)
    enc.configure(src.info, None, None)
    if chunking == "source":
        chunks = source_chunks(g)
    elif chunking == "one":
        chunks = [Events(g, arrival=1.0, t_end=int(g["t"][-1]))]
    else:
        shuffled = g.copy()
        np.random.default_rng(3).shuffle(shuffled)
        chunks = [shuffled]
    x, t, gaps = run_binner_gaps(enc, chunks)
    assert len(x) == (k1 + 1) + (k2 - a2 + 1), "a frame per window of the gap"
    assert gaps == [(k1 + 1, (int(second["t"][0]) - int(first["t"][-1])) / 1e6)]
    if chunking != "plain_shuffled":  # a shuffled array's late events join the open window (see test_binner_time_order)
        assert np.array_equal(x[:k1 + 1], ref1) and np.array_equal(x[k1 + 1:], ref2)
    assert np.allclose(t[:k1 + 1], (np.arange(k1 + 1) + 1) * w / 1e6)
    assert np.allclose(t[k1 + 1:], (np.arange(a2, k2 + 1) + 1) * w / 1e6)
    assert x.sum() == len(ev)


def test_binner_gap_up_to_max_gap_is_stepped_with_empty_frames(nm_events):
    """A pause of at most max_gap (default 1 s) is stepped, as every pause was before: the frames are
    the histogram of the shifted events, empty windows included, and no gap is reported; max_gap=
    sets the limit."""
    ev, src = nm_events
    g, _ = gapped(ev, 700_000)
    enc = EventBinner(window_us=5000)
    enc.configure(src.info, None, None)
    x, t, gaps = run_binner_gaps(enc, source_chunks(g))
    ref = histogram(g, 5000, ("split", 1, None, (34, 34), None))
    assert gaps == [] and np.array_equal(x, ref)
    enc = EventBinner(window_us=5000, max_gap=0.5)
    enc.configure(src.info, None, None)
    x, t, gaps = run_binner_gaps(enc, source_chunks(g))
    assert len(gaps) == 1 and len(x) < len(ref) - 100 and x.sum() == len(ev)
    assert EventBinner(max_gap=0.25).spec() == "bin:max_gap=0.25"
    # the pause's 140 empty windows: one part, one zero frame repeated (no memory per window)
    enc = EventBinner(window_us=5000)
    enc.configure(src.info, None, None)
    parts = [(len(p), p.x.strides[0], float(np.abs(p.x).sum())) for c in source_chunks(g) for p in enc.encode_parts(c)]
    empty = [p for p in parts if p[1] == 0 and p[0] > 0]  # (a part of no steps may have stride 0 too)
    assert len(empty) == 1 and empty[0][0] > 64 and empty[0][2] == 0
    assert sum(p[0] for p in parts) + len(enc.flush() or ()) == len(ref)


@pytest.mark.parametrize("bad", [0, -1, "nan", "inf", float("inf"), "soon", True])
def test_binner_max_gap_must_be_a_positive_duration(bad):
    with pytest.raises(InputError, match="max_gap"):
        EventBinner(max_gap=bad)


def test_binner_count_mode_gap_closes_the_partial_frame(nm_events):
    """Count windows: the partial frame before a long pause is emitted, then counting starts over."""
    ev, src = nm_events
    g, h = gapped(ev, 600_000_000)
    enc = EventBinner(count=1000)
    enc.configure(src.info, None, None)
    x, t, gaps = run_binner_gaps(enc, source_chunks(g))
    n1, n2 = h, len(ev) - h
    sizes = [1000] * (n1 // 1000) + [n1 % 1000] * bool(n1 % 1000) + [1000] * (n2 // 1000) + [n2 % 1000] * bool(n2 % 1000)
    assert x.reshape(len(x), -1).sum(1).tolist() == sizes
    assert [i for i, _ in gaps] == [-(-n1 // 1000)]
