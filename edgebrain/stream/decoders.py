"""Decoders: model outputs per timestep → decisions (label, confidence, or no decision).

Two decoders, built from spec strings such as ``"count:window=50,hop=10,alpha=0.5,hysteresis=0.1"``:

``count``
    score of class *i* = sum of output *i* (spikes) over the window.
``vmax``
    score of class *i* = maximum of output *i* (membrane potential) over the window.

Windows are counted in model timesteps: window *k* covers steps ``[k·hop, k·hop + window)`` of the
stream (``hop`` defaults to ``window``; ``hop < window`` gives sliding windows, ``hop > window``
skips steps). Windows span :meth:`update` calls; :meth:`reset` starts over.

Per window, in this order:

1. **smoothing** (``alpha``, default 1 = none): ``S_k = alpha·s_k + (1 − alpha)·S_{k−1}`` with
   ``S_0 = s_0``; an exponential moving average of the raw scores over successive windows.
2. **confidence** per class, from the smoothed scores: for ``count`` the class's share of all
   (smoothed) spikes, ``p_i = S_i / Σ S`` (all 0 when ``Σ S = 0``; the sum taken in float64 from
   class 0 up, as the board's C decoder does); for ``vmax`` a softmax, ``p = softmax(S / temperature)``.
3. **evidence**: a ``count`` window with fewer than ``min_spikes`` raw spikes (default 1), or with
   no smoothed spikes at all, carries no evidence: it is a no decision and leaves the hysteresis
   state alone (it only breaks a ``hold`` streak). ``vmax`` windows always carry evidence.
4. **hysteresis**: the winner is ``w = argmax p`` (ties: lowest index). The held class ``c`` starts
   as the first winner; it changes to ``w ≠ c`` only when ``p_w − p_c > hysteresis`` or when ``w``
   has been the winner for ``hold`` consecutive windows with evidence. With neither option
   given, ``c = w`` every window.
5. **no decision** when ``p_c < min_confidence`` (or no evidence): label None, index −1. The
   decision's confidence is ``p_c`` either way (0 when there is no held class yet).

``Decision.t`` is the stream time of the window's last step, ``Decision.latency`` is
``now() − arrival`` of that step measured when the decision is made (None when the step carries no
arrival time, i.e. 0 or NaN), ``Decision.truth`` the most frequent ground-truth label among the
window's labelled steps (ties: the model's class with the lowest index, else the label met first),
and ``Decision.scores`` the smoothed scores. At the end of a stream, :meth:`WindowDecoder.flush`
decides the last, partial window if it holds steps no decision has covered.

Class names come from ``labels=a|b|c``, else from the model (the pipeline passes them with
:meth:`WindowDecoder.set_labels`), else they are the indices as strings. Ground-truth labels given
as integers are class indices; as strings, names; negative integers, NaN, None and "" mean
"unlabelled".
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from .base import Decision, Decoder, Steps, now


class WindowDecoder(Decoder):
    """Common machinery of the windowed decoders (see the module docstring)."""

    name = "window"

    def __init__(self, labels=None, window: int = 50, hop: int | None = None, min_confidence: float = 0.0,
                 alpha: float = 1.0, hysteresis: float | None = None, hold: int | None = None):
        self.window = _int(window, "window", 1)
        self.hop = self.window if hop is None else _int(hop, "hop", 1)
        self.min_confidence = _float(min_confidence, "min_confidence", 0.0, 1.0)
        self.alpha = _float(alpha, "alpha", 0.0, 1.0)
        if self.alpha == 0.0:
            raise InputError(f"decoder '{self.name}': alpha must be in (0, 1] (1 = no smoothing), got 0")
        self.hysteresis = None if hysteresis is None else _float(hysteresis, "hysteresis", 0.0, None)
        self.hold = None if hold is None else _int(hold, "hold", 1)
        self.labels: list[str] | None = None
        self._explicit_labels = labels is not None
        if labels is not None:
            self._set_labels(labels)
        self.reset()

    # ------------------------------------------------------------------ configuration

    def set_labels(self, labels, force: bool = False) -> None:
        """Class names from the model. Labels given in the spec take precedence unless ``force``."""
        if labels is None or (self._explicit_labels and not force):
            return
        self._set_labels(labels)
        self._explicit_labels = self._explicit_labels or force

    def _set_labels(self, labels) -> None:
        if isinstance(labels, str):
            labels = labels.split("|")
        labels = [str(x) for x in labels]
        if not labels:
            raise InputError(f"decoder '{self.name}': empty labels")
        if len(set(labels)) != len(labels):
            raise InputError(f"decoder '{self.name}': duplicate labels in {labels}")
        if getattr(self, "_n_out", None) is not None and len(labels) != self._n_out:
            raise InputError(f"decoder '{self.name}': {len(labels)} labels for a model with {self._n_out} outputs")
        self.labels = labels
        self._codes = {name: i for i, name in enumerate(labels)}

    def spec(self) -> str:
        parts = [f"window={self.window}", f"hop={self.hop}"]
        for k in self._spec_keys():
            v = getattr(self, k)
            if v is not None:
                parts.append(f"{k}={v}")
        if self.labels is not None and self._explicit_labels:
            parts.append("labels=" + "|".join(self.labels))
        return f"{self.name}:" + ",".join(parts)

    def _spec_keys(self):
        return ("min_confidence", "alpha", "hysteresis", "hold")

    def reset(self) -> None:
        """Forget everything seen (buffered steps, smoothing, hysteresis); keep the configuration."""
        self._n_out = None
        self._vals = None                          # (B, n_out) buffered outputs, from step self._start
        self._t = np.zeros(0)
        self._arr = np.zeros(0)
        self._truth = np.zeros(0, np.int64)        # truth code per buffered step, -1 = unlabelled
        self._start = 0                            # stream index of the first buffered step
        self._total = 0                            # steps seen
        self._next = 0                             # stream index where the next window starts
        self._covered = 0                          # end of the last decided window
        self._ema = None
        self._held = None                          # hysteresis: the class being emitted
        self._challenger = None
        self._streak = 0
        if self.labels is None:
            self._codes = {}
        else:
            self._codes = {name: i for i, name in enumerate(self.labels)}
        self._code_names: dict[int, str] = {}
        self._memo: dict = {}                      # truth label value -> code (small updates)

    # ------------------------------------------------------------------ streaming

    def update(self, outputs: np.ndarray, steps: Steps) -> list[Decision]:
        out = np.asarray(outputs, dtype=np.float64)
        T = len(steps)
        if out.ndim == 0 or out.shape[0] != T:
            raise InputError(f"decoder '{self.name}': outputs of shape {out.shape} for {T} steps; expected (T, n_out)")
        out = out.reshape(T, -1) if out.ndim != 2 else out
        if T == 0:
            return []
        n = out.shape[1]
        if self._n_out is None:
            if self.labels is not None and len(self.labels) != n:
                raise InputError(f"decoder '{self.name}': {len(self.labels)} labels "
                                 f"({'|'.join(self.labels)}) for a model with {n} outputs")
            self._n_out = n
            self._vals = np.zeros((0, n))
        elif n != self._n_out:
            raise InputError(f"decoder '{self.name}': {n} outputs in this run, {self._n_out} before")
        truth = self._truth_codes(steps.labels, T)
        self._vals = np.concatenate([self._vals, out])
        self._t = np.concatenate([self._t, np.asarray(steps.t, np.float64).reshape(T)])
        self._arr = np.concatenate([self._arr, np.asarray(steps.arrival, np.float64).reshape(T)])
        self._truth = np.concatenate([self._truth, truth])
        self._total += T

        decisions = []
        last = self._total - self.window              # last possible window start
        if self._next <= last:
            starts = np.arange(self._next, last + 1, self.hop)
            decisions = self._decide(starts - self._start, np.full(len(starts), self.window))
            self._next = int(starts[-1]) + self.hop
            self._covered = int(starts[-1]) + self.window
        self._trim()
        return decisions

    def flush(self) -> list[Decision]:
        """At the end of a stream: one decision over the partial window that has started but not
        ended (steps from the next window's start to the last step seen), if it holds steps that
        no decision has covered yet; else nothing."""
        if self._vals is None or self._total <= self._covered or self._next >= self._total:
            return []
        s = self._next - self._start
        decisions = self._decide(np.array([s]), np.array([self._total - self._next]))
        self._covered = self._total
        self._next = self._total
        self._trim()
        return decisions

    def _trim(self) -> None:
        keep = min(self._next, self._total) - self._start
        if keep > 0:
            self._vals = self._vals[keep:]
            self._t = self._t[keep:]
            self._arr = self._arr[keep:]
            self._truth = self._truth[keep:]
            self._start += keep

    # ------------------------------------------------------------------ per window

    def _raw_scores(self, starts: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(K, n_out) raw scores of the windows at buffer offsets ``starts``, and their spike totals
        (None when the decoder does not count spikes)."""
        raise NotImplementedError

    def _confidences(self, S: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _evidence(self, S: np.ndarray, total) -> bool:
        return True

    def _decide(self, starts: np.ndarray, lengths: np.ndarray) -> list[Decision]:
        raw, totals = self._raw_scores(starts, lengths)
        ends = starts + lengths                       # exclusive, buffer offsets
        truths = [self._majority(int(s), int(e)) for s, e in zip(starts, ends)]
        out = []
        a = self.alpha
        for k in range(len(starts)):
            s = raw[k]
            S = s if self._ema is None else a * s + (1.0 - a) * self._ema
            self._ema = S
            p = self._confidences(S)
            total = None if totals is None else totals[k]
            if self._evidence(S, total):
                self._hysteresis_step(p)
                conf = float(p[self._held])
                decided = conf >= self.min_confidence
            else:
                self._challenger, self._streak = None, 0
                conf = float(p[self._held]) if self._held is not None else 0.0
                decided = False
            e = int(ends[k]) - 1
            idx = self._held if decided else -1
            arrival = float(self._arr[e])
            latency = now() - arrival if arrival > 0 and np.isfinite(arrival) else None   # 0: not measured
            out.append(Decision(t=float(self._t[e]), label=self._name(idx) if decided else None, index=idx,
                                confidence=conf, scores=S.copy(), latency=latency, truth=truths[k]))
        return out

    def _hysteresis_step(self, p: np.ndarray) -> None:
        w = int(np.argmax(p))
        c = self._held
        if c is None or w == c:
            self._held, self._challenger, self._streak = w, None, 0
            return
        if self._challenger == w:
            self._streak += 1
        else:
            self._challenger, self._streak = w, 1
        if self.hysteresis is None and self.hold is None:
            switch = True
        else:
            switch = ((self.hysteresis is not None and p[w] - p[c] > self.hysteresis)
                      or (self.hold is not None and self._streak >= self.hold))
        if switch:
            self._held, self._challenger, self._streak = w, None, 0

    def _name(self, idx: int) -> str:
        return self.labels[idx] if self.labels is not None else str(idx)

    # ------------------------------------------------------------------ ground truth

    def _code(self, name: str) -> int:
        c = self._codes.get(name)
        if c is None:
            c = max(len(self.labels or ()), max(self._codes.values(), default=-1) + 1)
            self._codes[name] = c
        self._code_names[c] = name
        return c

    def _truth_codes(self, labels, T: int) -> np.ndarray:
        """Per step, the code of its truth label (model class index when it names one), -1 when
        unlabelled. Vectorised: Python runs once per distinct label value, not per step."""
        if labels is None:
            return np.full(T, -1, np.int64)
        lab = np.asarray(labels).reshape(-1)
        if lab.shape[0] != T:
            raise InputError(f"decoder '{self.name}': {lab.shape[0]} truth labels for {T} steps")
        if T <= 8:  # live streams deliver a step or two at a time: skip np.unique's set-up
            return np.array([self._scalar_code(v, lab.dtype.kind) for v in lab.tolist()], np.int64)
        if lab.dtype.kind in "iub":
            uniq, inv = np.unique(lab.astype(np.int64), return_inverse=True)
            names = [None if u < 0 else self._index_name(int(u)) for u in uniq]
        elif lab.dtype.kind == "f":
            bad = ~np.isfinite(lab) | (lab < 0)
            li = np.where(bad, -1, lab).astype(np.int64)
            uniq, inv = np.unique(li, return_inverse=True)
            names = [None if u < 0 else self._index_name(int(u)) for u in uniq]
        elif lab.dtype.kind == "O":
            try:                                   # homogeneous objects sort: one key per distinct value
                uniq, inv = np.unique(lab, return_inverse=True)
            except TypeError:                      # mixed (e.g. None among strings): key every step
                uniq, inv = np.unique(np.array([_label_key(v) for v in lab], dtype=str), return_inverse=True)
            names = [_name_of_key(_label_key(u), self) for u in uniq]
        else:
            uniq, inv = np.unique(lab.astype(str), return_inverse=True)
            names = [None if u == "" else str(u) for u in uniq]
        codes = np.array([-1 if nm is None else self._code(nm) for nm in names], np.int64)
        return codes[inv.reshape(-1)]

    def _scalar_code(self, v, kind: str) -> int:
        """The code of one truth label, by the same rules as the vectorised path."""
        memo = self._memo
        key = (kind, v)
        try:
            return memo[key]
        except KeyError:
            pass
        except TypeError:  # unhashable object label
            key = None
        if kind in "iubf":
            name = None if (kind == "f" and not np.isfinite(v)) or v < 0 else self._index_name(int(v))
        elif kind == "O":
            name = _name_of_key(_label_key(v), self)
        else:
            name = None if str(v) == "" else str(v)
        code = -1 if name is None else self._code(name)
        if key is not None and len(memo) < 4096:
            memo[key] = code
        return code

    def _index_name(self, i: int) -> str:
        return self.labels[i] if self.labels is not None and i < len(self.labels) else str(i)

    def _majority(self, s: int, e: int) -> str | None:
        codes = self._truth[s:e]
        codes = codes[codes >= 0]
        if codes.size == 0:
            return None
        return self._code_names[int(np.argmax(np.bincount(codes)))]


def _label_key(v) -> str:
    """Object-array truth labels: ints/floats become index keys, strings stay names, None → ""."""
    if v is None:
        return ""
    if isinstance(v, (bool, np.bool_)):
        return f"\x00{int(v)}"
    if isinstance(v, (int, np.integer)):
        return "" if v < 0 else f"\x00{int(v)}"
    if isinstance(v, (float, np.floating)):
        return "" if not np.isfinite(v) or v < 0 else f"\x00{int(v)}"
    if isinstance(v, bytes):
        v = v.decode("utf-8", "replace")
    return str(v)


def _name_of_key(key: str, dec: WindowDecoder) -> str | None:
    if key == "":
        return None
    if key.startswith("\x00"):
        return dec._index_name(int(key[1:]))
    return key


class CountDecoder(WindowDecoder):
    """Spike count over the window; confidence = the class's share of the window's spikes."""

    name = "count"

    def __init__(self, labels=None, window: int = 50, hop: int | None = None, min_confidence: float = 0.0,
                 min_spikes: int = 1, alpha: float = 1.0, hysteresis: float | None = None, hold: int | None = None):
        self.min_spikes = _int(min_spikes, "min_spikes", 0)
        super().__init__(labels=labels, window=window, hop=hop, min_confidence=min_confidence, alpha=alpha,
                         hysteresis=hysteresis, hold=hold)

    def _spec_keys(self):
        return ("min_confidence", "min_spikes", "alpha", "hysteresis", "hold")

    def _raw_scores(self, starts, lengths):
        v = self._vals
        cs = np.zeros((len(v) + 1, v.shape[1]))
        np.cumsum(v, axis=0, out=cs[1:])
        # spike counts are integers: differences of the running sum are exact
        sums = cs[starts + lengths] - cs[starts]
        return sums, sums.sum(axis=1)

    def _confidences(self, S):
        tot = _total(S)
        if tot <= 0:
            return np.zeros_like(S)
        return S / tot

    def _evidence(self, S, total):
        return _total(S) > 0 and total >= self.min_spikes


class VmaxDecoder(WindowDecoder):
    """Maximum membrane potential over the window; confidence = softmax(scores / temperature)."""

    name = "vmax"

    def __init__(self, labels=None, window: int = 50, hop: int | None = None, min_confidence: float = 0.0,
                 temperature: float = 1.0, alpha: float = 1.0, hysteresis: float | None = None,
                 hold: int | None = None):
        self.temperature = _float(temperature, "temperature", 0.0, None)
        if self.temperature == 0:
            raise InputError("decoder 'vmax': temperature must be > 0")
        super().__init__(labels=labels, window=window, hop=hop, min_confidence=min_confidence, alpha=alpha,
                         hysteresis=hysteresis, hold=hold)

    def _spec_keys(self):
        return ("min_confidence", "temperature", "alpha", "hysteresis", "hold")

    def _raw_scores(self, starts, lengths):
        v = self._vals
        if len(starts) > 4 and np.all(lengths == self.window):
            win = np.lib.stride_tricks.sliding_window_view(v, self.window, axis=0)   # (B-w+1, n, w), a view
            return win[starts].max(axis=-1), None
        return np.stack([v[s:s + n].max(axis=0) for s, n in zip(starts, lengths)]), None

    def _confidences(self, S):
        z = S / self.temperature
        z = np.exp(z - z.max())
        return z / z.sum()


def _total(S: np.ndarray) -> float:
    """The sum of a window's (smoothed) scores, added from class 0 up: one defined order (NumPy's
    reductions leave it open), which the board's C decoder (cruntime/eb_codec.c) follows bit for bit."""
    tot = 0.0
    for v in S.tolist():
        tot += v
    return tot


def _int(v, what: str, lo: int) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer, float)) or int(v) != v or v < lo:
        raise InputError(f"decoder option {what}={v!r}: expected an integer ≥ {lo}")
    return int(v)


def _float(v, what: str, lo: float, hi: float | None) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not np.isfinite(v) \
            or v < lo or (hi is not None and v > hi):
        rng = f"in [{lo}, {hi}]" if hi is not None else f"≥ {lo}"
        raise InputError(f"decoder option {what}={v!r}: expected a number {rng}")
    return float(v)


DECODERS = {"count": CountDecoder, "vmax": VmaxDecoder}
