"""Decoders (edgebrain.stream.decoders) against hand-computed expectations on crafted output
sequences, and against a straightforward per-step Python reference of the documented semantics
(window/hop arithmetic, EMA smoothing, confidence, no decision, hysteresis/hold) on random streams
fed in random chunk sizes."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgebrain.errors import InputError
from edgebrain.stream.base import Steps, now
from edgebrain.stream.decoders import CountDecoder, VmaxDecoder
from edgebrain.stream.registry import build_decoder

DT = 0.01


def steps_for(T, start=0, labels=None, arrival=None):
    t = (np.arange(start, start + T) + 1) * DT
    arr = np.full(T, now()) if arrival is None else np.asarray(arrival, float)
    return Steps(x=np.zeros((T, 1), np.float32), t=t, arrival=arr,
                 labels=None if labels is None else np.asarray(labels))


def feed(dec, outputs, chunks=None, labels=None):
    """Feed ``outputs`` (T, n) in chunks of the given sizes (default: one call); all decisions."""
    outputs = np.asarray(outputs, float)
    T = len(outputs)
    sizes = chunks or [T]
    out, pos = [], 0
    for n in sizes:
        lab = None if labels is None else np.asarray(labels)[pos:pos + n]
        out += dec.update(outputs[pos:pos + n], steps_for(n, pos, lab))
        pos += n
    assert pos == T
    return out


def rows(*counts):
    """One window per argument: a list of per-class spike counts → spike rows (T=max count or 1)."""
    out = []
    for c in counts:
        w = max(max(c), 1)
        blk = np.zeros((w, len(c)))
        for i, k in enumerate(c):
            blk[:k, i] = 1
        out.append(blk)
    return out


def windows_of(counts, window):
    """Spike rows for consecutive windows of ``window`` steps with the given per-class counts."""
    blocks = []
    for c in counts:
        blk = np.zeros((window, len(c)))
        for i, k in enumerate(c):
            assert k <= window
            blk[:k, i] = 1
        blocks.append(blk)
    return np.concatenate(blocks)


# --------------------------------------------------------------------------- window arithmetic


@pytest.mark.parametrize("T,window,hop,ends", [
    (10, 4, 3, [3, 6, 9]),           # sliding: [0,4) [3,7) [6,10)
    (10, 4, 4, [3, 7]),              # tumbling; the last 2 steps wait for more
    (12, 2, 5, [1, 6, 11]),          # hop > window: steps 2-4 and 7-9 belong to no window
    (5, 5, 1, [4]),
    (7, 3, 1, [2, 3, 4, 5, 6]),
])
def test_window_hop_arithmetic(T, window, hop, ends):
    out = np.ones((T, 2))
    out[:, 1] = 0
    d = CountDecoder(window=window, hop=hop)
    dec = feed(d, out)
    assert [x.t for x in dec] == pytest.approx([(e + 1) * DT for e in ends])
    # every window holds `window` steps: the count of class 0 is exactly the window
    assert all(x.scores[0] == window and x.scores[1] == 0 for x in dec)
    # the same stream one step at a time, or in uneven chunks, gives the same windows
    for chunks in ([1] * T, [2, T - 2], [T - 1, 1]):
        d2 = CountDecoder(window=window, hop=hop)
        assert [x.t for x in feed(d2, out, chunks)] == pytest.approx([x.t for x in dec])


def test_sliding_windows_span_update_calls():
    # class 0 spikes at steps 0..5, class 1 at 6..11; window 4, hop 2 → windows end at 3,5,7,9,11
    out = np.zeros((12, 2))
    out[:6, 0] = 1
    out[6:, 1] = 1
    expect_scores = [[4, 0], [4, 0], [2, 2], [0, 4], [0, 4]]
    for chunks in ([12], [3, 3, 3, 3], [1] * 12, [5, 7], [11, 1]):
        d = CountDecoder(window=4, hop=2, labels=["a", "b"])
        dec = feed(d, out, chunks)
        assert [list(x.scores) for x in dec] == expect_scores, chunks
        assert [x.label for x in dec] == ["a", "a", "a", "b", "b"]          # tie [2,2] → lowest index
        assert [x.confidence for x in dec] == pytest.approx([1, 1, 0.5, 1, 1])
        assert [x.t for x in dec] == pytest.approx([0.04, 0.06, 0.08, 0.10, 0.12])


def test_reset_clears_state():
    d = CountDecoder(window=4, alpha=0.5, labels=["a", "b"])
    feed(d, windows_of([[4, 0]], 4))
    feed(d, np.ones((2, 2)))                 # half a window buffered
    d.reset()
    dec = feed(d, windows_of([[0, 3]], 4))
    # no leftover steps (the window is exactly the new 4 steps) and no smoothing memory
    assert len(dec) == 1 and list(dec[0].scores) == [0, 3] and dec[0].label == "b"
    assert dec[0].t == pytest.approx(0.04)


def test_flush_decides_partial_window():
    d = CountDecoder(window=4, labels=["a", "b"])
    out = np.zeros((6, 2))
    out[:4, 0] = 1
    out[4:, 1] = 1
    dec = feed(d, out)
    assert len(dec) == 1
    tail = d.flush()
    assert len(tail) == 1 and tail[0].label == "b" and list(tail[0].scores) == [0, 2]
    assert tail[0].t == pytest.approx(0.06)
    assert d.flush() == []                   # nothing new since
    d2 = CountDecoder(window=2, labels=["a", "b"])
    feed(d2, windows_of([[1, 0]], 2))
    assert d2.flush() == []                  # every step already decided


# --------------------------------------------------------------------------- confidence, no decision


def test_count_confidence_is_winner_share():
    d = CountDecoder(window=4, labels=["a", "b", "c"])
    dec = feed(d, windows_of([[3, 1, 0], [1, 1, 2], [0, 0, 4], [2, 2, 0]], 4))
    assert [x.label for x in dec] == ["a", "c", "c", "a"]
    assert [x.index for x in dec] == [0, 2, 2, 0]
    assert [x.confidence for x in dec] == pytest.approx([0.75, 0.5, 1.0, 0.5])


def test_count_no_decision():
    d = CountDecoder(window=4, labels=["a", "b"])
    dec = feed(d, windows_of([[0, 0], [1, 0]], 4))
    assert dec[0].label is None and dec[0].index == -1 and dec[0].confidence == 0.0   # nothing seen
    assert dec[1].label == "a" and dec[1].confidence == 1.0                          # min_spikes=1 default
    d = CountDecoder(window=6, min_spikes=5, labels=["a", "b"])
    dec = feed(d, windows_of([[3, 1], [4, 1]], 6))
    assert dec[0].label is None and dec[0].index == -1             # 4 spikes < 5
    assert dec[1].label == "a" and dec[1].confidence == pytest.approx(0.8)
    d = CountDecoder(window=4, min_confidence=0.8, labels=["a", "b"])
    dec = feed(d, windows_of([[3, 1], [4, 0], [2, 2]], 4))
    assert [x.label for x in dec] == [None, "a", None]
    assert [x.confidence for x in dec] == pytest.approx([0.75, 1.0, 0.5])   # the failing confidence is kept


def test_vmax_softmax_confidence():
    out = np.array([[0.2, -1.0], [1.0, 0.0], [0.5, -0.5],      # window 1: max [1.0, 0.0]
                    [0.0, 2.0], [-1.0, 0.5], [0.0, 0.0]])      # window 2: max [0.0, 2.0]
    d = VmaxDecoder(window=3, labels=["a", "b"])
    dec = feed(d, out)
    assert [list(x.scores) for x in dec] == [[1.0, 0.0], [0.0, 2.0]]
    assert [x.label for x in dec] == ["a", "b"]
    assert dec[0].confidence == pytest.approx(math.e / (math.e + 1))           # 0.7311
    assert dec[1].confidence == pytest.approx(math.e ** 2 / (math.e ** 2 + 1))  # 0.8808
    d = VmaxDecoder(window=3, temperature=0.5, labels=["a", "b"], min_confidence=0.9)
    dec = feed(d, out)
    assert dec[0].confidence == pytest.approx(math.e ** 2 / (math.e ** 2 + 1))  # 1/0.5 → e²
    assert dec[0].label is None                                               # 0.8808 < 0.9
    assert dec[1].confidence == pytest.approx(math.e ** 4 / (math.e ** 4 + 1))  # 0.982
    assert dec[1].label == "b"


# --------------------------------------------------------------------------- smoothing and hysteresis


def test_ema_smoothing_by_hand():
    d = CountDecoder(window=4, alpha=0.5, labels=["a", "b"])
    dec = feed(d, windows_of([[4, 0], [0, 4], [0, 4], [0, 0]], 4))
    # S1=[4,0]; S2=.5[0,4]+.5[4,0]=[2,2]; S3=.5[0,4]+.5[2,2]=[1,3]; S4=.5[0,0]+.5[1,3]=[.5,1.5]
    assert [list(x.scores) for x in dec] == [[4, 0], [2, 2], [1, 3], [0.5, 1.5]]
    assert [x.label for x in dec] == ["a", "a", "b", None]      # tie → index 0; S4 window had no spikes
    assert [x.confidence for x in dec] == pytest.approx([1, 0.5, 0.75, 0.75])


def test_hysteresis_margin_by_hand():
    d = CountDecoder(window=5, hysteresis=0.3, labels=["a", "b"])
    dec = feed(d, windows_of([[3, 1], [2, 3], [1, 4], [2, 3], [3, 2]], 5))
    # p: [.75,.25] → a; [.4,.6]: .6-.4=.2 ≤ .3 → stay a (.4); [.2,.8]: .6 > .3 → b (.8);
    #    [.4,.6] → b (.6); [.6,.4]: .2 ≤ .3 → stay b (.4)
    assert [x.label for x in dec] == ["a", "a", "b", "b", "b"]
    assert [x.confidence for x in dec] == pytest.approx([0.75, 0.4, 0.8, 0.6, 0.4])


def test_hold_by_hand():
    d = CountDecoder(window=4, hold=2, labels=["a", "b"])
    dec = feed(d, windows_of([[3, 1], [1, 3], [1, 3], [1, 3], [3, 1], [0, 0], [3, 1], [3, 1]], 4))
    # a; b challenges (1) → a .25; b (2) → switch b .75; b; a challenges (1) → b .25;
    # silent window: no decision, breaks the streak; a (1 again) → b .25; a (2) → a .75
    assert [x.label for x in dec] == ["a", "a", "b", "b", "b", None, "b", "a"]
    assert [x.confidence for x in dec] == pytest.approx([0.75, 0.25, 0.75, 0.75, 0.25, 0.0, 0.25, 0.75])


def test_hysteresis_with_smoothing_and_min_confidence():
    d = CountDecoder(window=4, alpha=0.5, hysteresis=0.2, min_confidence=0.6, labels=["a", "b"])
    dec = feed(d, windows_of([[4, 0], [0, 4], [0, 4], [0, 4]], 4))
    # S: [4,0] p=[1,0] a; [2,2] p=[.5,.5] stay a .5 (<.6: none); [1,3] p=[.25,.75] .5>.2 → b .75;
    #    [.5,3.5] p=[.125,.875] b
    assert [x.label for x in dec] == ["a", None, "b", "b"]
    assert [x.confidence for x in dec] == pytest.approx([1, 0.5, 0.75, 0.875])


# --------------------------------------------------------------------------- reference comparison


def reference(outputs, n, mode, window, hop, labels, alpha=1.0, min_confidence=0.0, min_spikes=1,
              hysteresis=None, hold=None, temperature=1.0, truth=None):
    """Per-step Python loops, straight from the documented definitions. Returns
    (end step, label, index, confidence, scores, truth) per decision."""
    T = len(outputs)
    out = []
    ema = None
    held, chall, streak = None, None, 0
    start = 0
    while start + window <= T:
        win = outputs[start:start + window]
        if mode == "count":
            raw = [sum(float(r[i]) for r in win) for i in range(n)]
        else:
            raw = [max(float(r[i]) for r in win) for i in range(n)]
        S = raw if ema is None else [alpha * s + (1 - alpha) * e for s, e in zip(raw, ema)]
        ema = S
        if mode == "count":
            tot = sum(S)
            p = [s / tot for s in S] if tot > 0 else [0.0] * n
            evidence = tot > 0 and sum(raw) >= min_spikes
        else:
            m = max(S)
            ex = [math.exp(s / temperature - m / temperature) for s in S]
            p = [e / sum(ex) for e in ex]
            evidence = True
        if evidence:
            w = max(range(n), key=lambda i: (p[i], -i))
            if held is None or w == held:
                held, chall, streak = w, None, 0
            else:
                streak = streak + 1 if chall == w else 1
                chall = w
                if hysteresis is None and hold is None:
                    switch = True
                else:
                    switch = (hysteresis is not None and p[w] - p[held] > hysteresis) or \
                             (hold is not None and streak >= hold)
                if switch:
                    held, chall, streak = w, None, 0
            conf = p[held]
            ok = conf >= min_confidence
        else:
            chall, streak = None, 0
            conf = p[held] if held is not None else 0.0
            ok = False
        tr = None
        if truth is not None:
            seen = [x for x in truth[start:start + window] if x >= 0]
            if seen:
                counts = {}
                for x in seen:
                    counts[x] = counts.get(x, 0) + 1
                best = max(counts.values())
                tr = labels[min(k for k, v in counts.items() if v == best)]
        out.append((start + window - 1, labels[held] if ok else None, held if ok else -1, conf, S, tr))
        start += hop
    return out


def _chunks(draw, T):
    sizes = []
    left = T
    while left > 0:
        k = draw(st.integers(1, max(1, min(left, 17))))
        sizes.append(k)
        left -= k
    return sizes


@st.composite
def stream_case(draw):
    mode = draw(st.sampled_from(["count", "vmax"]))
    n = draw(st.integers(1, 4))
    T = draw(st.integers(0, 90))
    window = draw(st.integers(1, 12))
    hop = draw(st.integers(1, 14))
    if mode == "count":
        data = draw(st.lists(st.lists(st.sampled_from([0.0, 0.0, 1.0]), min_size=n, max_size=n),
                             min_size=T, max_size=T))
    else:
        data = draw(st.lists(st.lists(st.integers(-8, 8).map(lambda v: v / 4), min_size=n, max_size=n),
                             min_size=T, max_size=T))
    opts = dict(alpha=draw(st.sampled_from([1.0, 0.5, 0.25, 0.75])),
                min_confidence=draw(st.sampled_from([0.0, 0.0, 0.4, 0.6])),
                hysteresis=draw(st.sampled_from([None, None, 0.1, 0.3])),
                hold=draw(st.sampled_from([None, None, 1, 2, 3])))
    if mode == "count":
        opts["min_spikes"] = draw(st.sampled_from([0, 1, 1, 3]))
    else:
        opts["temperature"] = draw(st.sampled_from([1.0, 0.5, 2.0]))
    truth = draw(st.lists(st.integers(-1, n - 1), min_size=T, max_size=T))
    return mode, n, T, window, hop, data, opts, truth, _chunks(draw, T)


@given(stream_case())
def test_matches_python_reference(case):
    mode, n, T, window, hop, data, opts, truth, chunks = case
    labels = [f"c{i}" for i in range(n)]
    outputs = np.array(data, float).reshape(T, n)
    cls = CountDecoder if mode == "count" else VmaxDecoder
    d = cls(window=window, hop=hop, labels=labels, **opts)
    got = feed(d, outputs, chunks or None, labels=np.array(truth, np.int64))
    ref = reference(outputs.tolist(), n, mode, window, hop, labels, truth=truth, **opts)
    assert len(got) == len(ref)
    for g, (end, label, index, conf, S, tr) in zip(got, ref):
        assert g.t == pytest.approx((end + 1) * DT)
        assert (g.label, g.index, g.truth) == (label, index, tr)
        assert g.confidence == pytest.approx(conf, abs=1e-12)
        assert list(g.scores) == pytest.approx(S, abs=1e-12)


# --------------------------------------------------------------------------- truth, latency, labels


def test_truth_majority_and_label_mapping():
    out = windows_of([[1, 0, 0]] * 3, 4)
    idx = [0, 1, 1, 2,    2, 2, -1, -1,    -1, -1, -1, -1]
    dec = feed(CountDecoder(window=4, labels=["a", "b", "c"]), out, labels=np.array(idx))
    assert [x.truth for x in dec] == ["b", "c", None]
    # names and indices for the same classes give the same truths, also split across calls
    names = np.array(["a", "b", "b", "c", "c", "c", "", "", None, None, "", ""], dtype=object)
    dec = feed(CountDecoder(window=4, labels=["a", "b", "c"]), out, [2, 5, 5], labels=names)
    assert [x.truth for x in dec] == ["b", "c", None]
    # float labels with NaN for unlabelled
    fl = np.array([0, 1, 1, 2, 2, 2, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan])
    dec = feed(CountDecoder(window=4, labels=["a", "b", "c"]), out, labels=fl)
    assert [x.truth for x in dec] == ["b", "c", None]
    # without model labels, indices are named by their number; tie → lowest class index
    dec = feed(CountDecoder(window=4), out, labels=np.array([2, 2, 1, 1] * 3))
    assert [x.truth for x in dec] == ["1", "1", "1"] and dec[0].label == "0"
    # truth names outside the model's classes are kept as they are
    dec = feed(CountDecoder(window=4, labels=["a", "b", "c"]), out,
               labels=np.array(["jog", "jog", "a", "jog"] * 3))
    assert [x.truth for x in dec] == ["jog"] * 3


def test_latency_measured_from_window_last_arrival():
    d = CountDecoder(window=4, labels=["a", "b"])
    t0 = now()
    arrival = np.array([t0 - 5.0, t0 - 5.0, t0 - 5.0, t0 - 0.2])   # only the last step counts
    dec = d.update(windows_of([[2, 0]], 4), steps_for(4, arrival=arrival))
    after = now()
    assert len(dec) == 1
    assert 0.2 <= dec[0].latency <= 0.2 + (after - t0)
    # a real wait between arrival and decision shows up in the latency
    d2 = CountDecoder(window=2)
    a = now()
    time.sleep(0.02)
    dec = d2.update(np.ones((2, 1)), steps_for(2, arrival=[a, a]))
    after = now()
    assert 0.02 <= dec[0].latency <= after - a               # bounded by what was measured around it
    assert dec[0].as_dict()["latency_ms"] >= 20
    # steps without an arrival time (0, the chunk default) give no latency rather than a wrong one
    dec = CountDecoder(window=2).update(np.ones((2, 1)), steps_for(2, arrival=[0.0, 0.0]))
    assert dec[0].latency is None and "latency_ms" not in dec[0].as_dict()


def test_labels_from_spec_model_and_errors():
    d = build_decoder("count:window=4,labels=x|y")
    d.set_labels(["a", "b"])                       # the model's labels do not override the spec's
    assert d.labels == ["x", "y"]
    d = build_decoder("vmax:window=4,hop=2,temperature=0.5,alpha=0.5")
    assert isinstance(d, VmaxDecoder) and (d.window, d.hop, d.temperature, d.alpha) == (4, 2, 0.5, 0.5)
    d.set_labels(["a", "b"])
    assert feed(d, windows_of([[0, 1]], 4))[0].label == "b"
    d = CountDecoder(window=2, labels=["a", "b", "c"])
    with pytest.raises(InputError, match="3 labels.*2 outputs"):
        d.update(np.zeros((2, 2)), steps_for(2))
    with pytest.raises(InputError, match="outputs of shape"):
        CountDecoder(window=2).update(np.zeros((3, 2)), steps_for(2))
    for bad in ("count:window=0", "count:hop=-1", "count:alpha=0", "count:alpha=2", "count:min_confidence=1.5",
                "vmax:temperature=0", "count:window=2.5", "count:min_spikes=x", "vmax:min_spikes=2",
                "count:labels=a|a", "count:nonsense=1"):
        with pytest.raises(InputError):
            build_decoder(bad)


def test_outputs_of_other_shapes():
    d = CountDecoder(window=2)
    dec = d.update(np.array([1.0, 1.0]), steps_for(2))           # (T,) → one output
    assert dec[0].label == "0" and dec[0].confidence == 1.0
    d = CountDecoder(window=2, labels=list("abcd"))
    dec = d.update(np.ones((2, 2, 2)), steps_for(2))             # (T, 2, 2) → 4 outputs
    assert len(dec[0].scores) == 4
    assert d.update(np.zeros((0, 4)), steps_for(0)) == []


def test_long_stream_is_fast():
    """O(T) numpy per update: 200 000 steps in one call, windows of 50 with hop 25, cost about ten
    times 20 000 steps (a loop over the stream per window would cost about a hundred times). The
    cost is this thread's CPU time, the least of three calls: the ratio does not depend on how fast
    or how loaded the machine is."""
    rng = np.random.default_rng(0)
    out = (rng.random((200_000, 5)) < 0.1).astype(np.float32)

    def cost(n):
        best = float("inf")
        for _ in range(3):
            d, steps = CountDecoder(window=50, hop=25), steps_for(n)
            a = time.thread_time()
            dec = d.update(out[:n], steps)
            best = min(best, time.thread_time() - a)
        return best, dec

    small, _ = cost(20_000)
    big, dec = cost(200_000)
    assert len(dec) == (200_000 - 50) // 25 + 1
    sums = np.add.reduceat(out.astype(float), np.arange(0, 200_000, 50), axis=0)
    assert np.array_equal(np.array([x.scores for x in dec[::2]]), sums)   # every other window tiles the stream
    assert big < 30 * small, (big, small)
