"""Measured energy per inference: a sampling thread and the measurement recipe.

    from edgebrain.energy.meters import open_meter
    from edgebrain.energy.measure import measure

    r = measure(lambda: session.run(x) or 1, open_meter("rapl"), baseline_s=30, min_duration_s=10)
    print(r.summary()); json.dump(r.as_dict(), f)

The recipe (docs/energy-meters.md):

1. **Idle baseline**: the sampler runs for ``baseline_s`` with nothing else happening; the idle
   power ``P_idle`` is the baseline energy over its duration, its noise the spread of the samples.
2. **Loaded run**: ``run_fn`` is called back to back (each call returns how many inferences it
   did; ``None`` counts 1) until at least ``min_duration_s`` have passed, with the same sampler
   running; each call's start and end are kept as inference windows.
3. **Integration** over the run window: power samples with the trapezoid rule over the
   piecewise-linear power curve (cut exactly at the window edges); cumulative energy counters by
   difference (the meter unwraps counter wraparound, e.g. RAPL's ``max_energy_range_uj``).
4. **Report** ``E/inference = E_window / N`` and the dynamic part ``(E_window − P_idle·T) / N``,
   each with a 1-σ uncertainty combining the sensor resolution, the sampling (power fluctuation
   seen at the sampling rate, and the window edges falling between samples) and the baseline
   noise.

Flags: ``partial`` -- the meter dropped (disconnected, stopped answering, garbage only) during the
run: the result covers the calls that finished before the last sample and says why;
``too_short`` -- the run spans fewer than ``min_periods`` sensor periods: the result says how
long it should be. A meter that fails before or during the baseline raises its
:class:`~edgebrain.energy.meters.MeterError`. Nothing waits longer than the meter's timeout.
"""

from __future__ import annotations

import math
import threading
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

from .meters.base import Meter, MeterError, MeterGarbage, MeterTimeout, Sample
from .units import fmt_j

__all__ = ["Sampler", "Trace", "EnergyResult", "measure", "integrate_power", "energy_between"]


# ------------------------------------------------------------------------------------------ sampler


@dataclass
class Trace:
    """What a sampler recorded."""

    samples: list[Sample]
    garbage: int = 0                        # readings skipped as undecodable
    error: MeterError | None = None         # why sampling stopped early (None: stopped by request)
    started: float = 0.0
    stopped: float = 0.0


class Sampler:
    """Reads ``meter`` in a background thread every ``period_s`` (default: the meter's nominal
    period; streaming meters are read back to back) until :meth:`stop`.

    Garbage readings are skipped and counted; more than ``max_garbage`` in a row stop the sampler.
    Any other :class:`MeterError` (timeout, disconnection, permission) stops it too and is kept in
    ``error``; the samples before it are kept. Every wait is on the meter's clock (``meter.clock``)."""

    def __init__(self, meter: Meter, period_s: float | None = None, max_garbage: int = 20):
        self.meter = meter
        self.clock = meter.clock
        self.period_s = float(period_s if period_s is not None else meter.period_s)
        self.max_garbage = int(max_garbage)
        self.samples: list[Sample] = []
        self.garbage = 0
        self.last_garbage: MeterError | None = None
        self.error: MeterError | None = None
        self._stop = threading.Event()
        self._tick = threading.Event()    # set after each sample, and when the thread ends
        self._done = threading.Event()    # set when the thread ends
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.started = self.stopped = 0.0

    # -- control
    def start(self) -> "Sampler":
        if not self.meter.is_open:
            self.meter.open()
        self.started = self.clock.now()
        self._thread = self.clock.start(self._run, f"sampler-{self.meter.name}")
        return self

    def stop(self) -> Trace:
        self._stop.set()
        th = self._thread
        if th is not None:
            self.clock.wait(self._done, self.meter.timeout + 2.0)
            if not self._done.is_set() and self.error is None:   # a read overran its own timeout: do not wait for it
                self.error = self.meter.error(MeterTimeout, f"a read did not return within {self.meter.timeout:g} s")
            else:
                th.join(1.0)
        self.stopped = self.clock.now()
        with self._lock:
            return Trace(list(self.samples), self.garbage, self.error, self.started, self.stopped)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def running(self) -> bool:
        return self._thread is not None and not self._done.is_set()

    @property
    def count(self) -> int:
        return len(self.samples)

    def wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``predicate()`` holds or the sampler stopped (or ``timeout``); returns predicate()."""
        deadline = self.clock.now() + timeout
        while True:
            self._tick.clear()
            if predicate():
                return True
            left = deadline - self.clock.now()
            if left <= 0 or self.error is not None or not self.running:
                return predicate()
            self.clock.wait(self._tick, left)

    def sleep(self, seconds: float) -> None:
        """Sleep ``seconds``, waking early if the sampler stops."""
        self.clock.wait(self._done, seconds)

    # -- thread
    def _run(self) -> None:
        try:
            self._sample()
        finally:
            self._done.set()
            self._tick.set()

    def _sample(self) -> None:
        meter, clock, consecutive = self.meter, self.clock, 0
        while not self._stop.is_set():
            t0 = clock.now()
            try:
                s = meter.read()
            except MeterGarbage as e:
                self.garbage += 1
                self.last_garbage = e
                consecutive += 1
                if consecutive > self.max_garbage:
                    self.error = meter.error(MeterGarbage, f"{consecutive} undecodable readings in a row "
                                                           f"(last: {e.detail})")
                    return
            except MeterError as e:
                self.error = e
                return
            except Exception as e:  # noqa: BLE001 - a meter bug must not kill the measurement silently
                self.error = meter.error(MeterError, f"read failed: {type(e).__name__}: {e}")
                return
            else:
                consecutive = 0
                with self._lock:
                    self.samples.append(s)
                self._tick.set()
            if not meter.streaming:
                clock.wait(self._stop, self.period_s - (clock.now() - t0))


# ------------------------------------------------------------------------------------- integration


def _trapz(y: np.ndarray, x: np.ndarray) -> float:
    if len(x) < 2:
        return 0.0
    return float(np.sum((y[1:] + y[:-1]) * 0.5 * np.diff(x)))


def integrate_power(t, p, a: float, b: float) -> float:
    """∫ P dt over [a, b] of the piecewise-linear curve through the samples (t, p), held
    constant before the first and after the last sample (joules)."""
    t = np.asarray(t, float)
    p = np.asarray(p, float)
    if b <= a or len(t) == 0:
        return 0.0
    inner = t[(t > a) & (t < b)]
    ts = np.concatenate([[a], inner, [b]])
    return _trapz(np.interp(ts, t, p), ts)


def energy_between(t, e, a: float, b: float) -> float:
    """E(b) − E(a) of a cumulative (already unwrapped) energy series, linear between samples."""
    t = np.asarray(t, float)
    e = np.asarray(e, float)
    if b <= a or len(t) == 0:
        return 0.0
    return float(np.interp(b, t, e) - np.interp(a, t, e))


# ------------------------------------------------------------------------------------------ result


@dataclass
class EnergyResult:
    """A measurement. Energies in joules, powers in watts, times in seconds; uncertainties are 1 σ.
    Fields are ``None`` when not measured (meter ``model``, or a partial run with no complete call)."""

    meter: dict
    measured: bool
    inferences: int = 0
    calls: int = 0
    duration_s: float = 0.0
    baseline_duration_s: float = 0.0
    energy_j: float | None = None
    energy_uncertainty_j: float | None = None
    energy_per_inference_j: float | None = None
    energy_per_inference_uncertainty_j: float | None = None
    mean_power_w: float | None = None
    baseline_power_w: float | None = None
    baseline_power_std_w: float | None = None
    dynamic_energy_j: float | None = None
    dynamic_energy_uncertainty_j: float | None = None
    dynamic_per_inference_j: float | None = None
    dynamic_per_inference_uncertainty_j: float | None = None
    uncertainty: dict = field(default_factory=dict)      # the components (J over the window)
    samples: int = 0                                      # samples inside the run window
    baseline_samples: int = 0
    sample_period_s: float | None = None                  # measured mean interval
    garbage: int = 0
    partial: bool = False
    partial_reason: str | None = None
    too_short: bool = False
    too_short_reason: str | None = None
    required_duration_s: float | None = None
    notes: list[str] = field(default_factory=list)
    timeline: dict = field(default_factory=dict)          # {"t": [...], "power_w": [...]}, t from baseline start
    windows: dict = field(default_factory=dict)           # baseline/run [start, end], inferences [[s, e, n], ...]

    def as_dict(self) -> dict:
        return _clean(asdict(self))

    def summary(self) -> str:
        """A few human-readable lines."""
        m = self.meter
        lines = [f"meter {m.get('name')} ({m.get('scope')}), {self.inferences} inferences in {self.duration_s:.2f} s"]
        if not self.measured:
            lines.append("no measured energy (no sensor): see the analytical estimate")
        elif self.energy_per_inference_j is None:
            lines.append("no complete inference was measured")
        else:
            lines.append(f"energy/inference {fmt_j(self.energy_per_inference_j)} ± "
                         f"{fmt_j(self.energy_per_inference_uncertainty_j)} (mean power {self.mean_power_w:.3f} W)")
            if self.dynamic_per_inference_j is not None:
                lines.append(f"above idle       {fmt_j(self.dynamic_per_inference_j)} ± "
                             f"{fmt_j(self.dynamic_per_inference_uncertainty_j)} (idle {self.baseline_power_w:.3f} W)")
        if self.partial:
            lines.append(f"PARTIAL: {self.partial_reason}")
        if self.too_short:
            lines.append(f"TOO SHORT: {self.too_short_reason}")
        lines.extend(self.notes)
        return "\n".join(lines)


def _clean(x):
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, (np.floating, float)):
        x = float(x)
        return x if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


# ------------------------------------------------------------------------------------------ measure


def measure(run_fn: Callable[[], int | None], meter: Meter, *, baseline_s: float = 30.0,
            min_duration_s: float | None = None, min_periods: int = 100, max_duration_s: float | None = None,
            min_calls: int = 1, period_s: float | None = None, max_garbage: int = 20,
            keep_timeline: bool = True) -> EnergyResult:
    """Measure the energy per inference of ``run_fn`` with ``meter`` (see the module docstring).

    ``run_fn()`` does one or more inferences and returns how many (``None``: one). It is called
    until ``min_duration_s`` have passed (default: the recipe's max(10 s, ``min_periods`` sensor
    periods)) and at least ``min_calls`` times, or until ``max_duration_s``. ``baseline_s`` of idle
    sampling come first (0: no baseline, no dynamic energy). The meter is opened if it is not open
    (and then closed again). Raises :class:`MeterError` when the meter cannot be used at all or
    fails during the baseline. Every time stamp and wait is on the meter's clock (``meter.clock``:
    real time, or a simulated clock in tests)."""
    if baseline_s < 0:
        raise MeterError(f"baseline_s must be ≥ 0, got {baseline_s}")
    period = float(period_s if period_s is not None else meter.period_s)
    required = min_periods * period
    if min_duration_s is None:
        min_duration_s = max(10.0, required)
    clock = meter.clock
    own = not meter.is_open
    meter.open()
    try:
        if meter.kind == "none":
            return _unmeasured(run_fn, meter, min_duration_s, max_duration_s, min_calls)
        sampler = Sampler(meter, period, max_garbage=max_garbage).start()
        marks: list[tuple[float, float, int]] = []
        try:
            tb0 = clock.now()
            # a first sample before anything else, so the windows never start before the data
            sampler.wait(lambda: sampler.count > 0, meter.timeout + period + 1.0)
            if sampler.count == 0:
                trace = sampler.stop()
                err = trace.error or meter.error(MeterTimeout, "no sample at all")
                raise _annotate(err, "before the idle baseline")
            if baseline_s > 0:
                sampler.sleep(baseline_s)
                if sampler.error is not None:
                    sampler.stop()
                    raise _annotate(sampler.error, f"during the idle baseline ({sampler.count} samples)")
            tb1 = clock.now()
            tw0 = clock.now()
            calls = 0
            while True:
                a = clock.now()
                k = run_fn()
                b = clock.now()
                k = 1 if k is None else int(k)
                marks.append((a, b, k))
                calls += 1
                if sampler.error is not None:
                    break
                el = b - tw0
                if calls >= min_calls and el >= min_duration_s:
                    break
                if max_duration_s is not None and el >= max_duration_s:
                    break
            tw1 = clock.now()
            # one sample after the window so its end is interpolated, not extrapolated
            sampler.wait(lambda: sampler.samples[-1].t >= tw1, max(2 * period, 0.05) + meter.timeout)
        finally:
            trace = sampler.stop()
        return _analyse(trace, meter, period, min_periods, required, (tb0, tb1), (tw0, tw1), marks,
                        baseline_s > 0, keep_timeline)
    finally:
        if own:
            meter.close()


def _annotate(err: MeterError, when: str) -> MeterError:
    return type(err)(f"{err.detail} ({when})", file=err.file, where=err.where)


def _unmeasured(run_fn, meter, min_duration_s, max_duration_s, min_calls) -> EnergyResult:
    clock = meter.clock
    t0 = clock.now()
    n = calls = 0
    marks = []
    while True:
        a = clock.now()
        k = run_fn()
        b = clock.now()
        k = 1 if k is None else int(k)
        n, calls = n + k, calls + 1
        marks.append([a - t0, b - t0, k])
        if calls >= min_calls and (b - t0 >= min_duration_s or (max_duration_s and b - t0 >= max_duration_s)):
            break
    return EnergyResult(meter=meter.describe(), measured=False, inferences=n, calls=calls,
                        duration_s=clock.now() - t0,
                        notes=["no sensor: only the analytical estimate is available"],
                        windows={"run": [0.0, marks[-1][1]], "inferences": marks})


def _analyse(trace: Trace, meter: Meter, period: float, min_periods: int, required: float,
             base: tuple[float, float], run: tuple[float, float], marks, with_baseline: bool,
             keep_timeline: bool) -> EnergyResult:
    ss = trace.samples
    t = np.array([s.t for s in ss], float)
    energy_kind = meter.kind == "energy"
    if energy_kind:
        e = np.array([s.energy_j for s in ss], float)
        tp = (t[1:] + t[:-1]) / 2 if len(t) > 1 else t
        pp = np.diff(e) / np.maximum(np.diff(t), 1e-9) if len(t) > 1 else np.zeros(len(t))
    else:
        p = np.array([s.power_w for s in ss], float)
        tp, pp = t, p
    tb0, tb1 = base
    tw0, tw1 = run
    res = EnergyResult(meter=meter.describe(), measured=True, garbage=trace.garbage)
    notes = res.notes
    if trace.garbage:
        notes.append(f"{trace.garbage} undecodable reading(s) skipped")

    # -- the run window; cut short when the meter dropped
    a, b = tw0, tw1
    done = marks
    t_last = float(t[-1])
    if trace.error is not None and t_last < tw1:
        res.partial = True
        done = [m for m in marks if m[1] <= t_last]
        b = done[-1][1] if done else a
        res.partial_reason = (f"the meter stopped during the run ({trace.error.detail}); the result covers "
                              f"{len(done)} of {len(marks)} calls ({b - a:.2f} of {tw1 - a:.2f} s) measured "
                              "before the last sample")
    res.calls = len(done)
    res.inferences = int(sum(m[2] for m in done))
    T = b - a
    res.duration_s = T
    in_run = (t >= a) & (t <= b)
    res.samples = int(in_run.sum())
    dts = np.diff(t)
    res.sample_period_s = float(np.mean(dts)) if len(dts) else None
    eff_period = max(period, res.sample_period_s or 0.0)

    # -- baseline
    t_first = float(t[0])
    P_idle = sd_idle = None
    n_idle = 0
    if with_baseline:
        b0 = max(tb0, t_first)
        res.baseline_duration_s = tb1 - b0
        # the idle power from the samples inside the baseline only (interpolating across its end
        # would mix in the first loaded samples)
        inb = t[(t >= b0) & (t <= tb1)]
        if len(inb) >= 2 and inb[-1] > inb[0]:
            c0, c1 = float(inb[0]), float(inb[-1])
            E_idle = energy_between(t, e, c0, c1) if energy_kind else integrate_power(t, p, c0, c1)
            P_idle = E_idle / (c1 - c0)
        elif len(inb) == 1 and not energy_kind:
            P_idle = float(p[(t >= b0) & (t <= tb1)][0])
        if P_idle is not None:
            sel = (tp >= b0) & (tp <= tb1)
            n_idle = int(sel.sum())
            sd_idle = float(np.std(pp[sel], ddof=1)) if n_idle > 1 else 0.0
            res.baseline_power_w, res.baseline_power_std_w = P_idle, sd_idle
        else:
            notes.append("the baseline held fewer than two samples: no idle power, no dynamic energy; "
                         "make baseline_s longer than two sensor periods")
        res.baseline_samples = n_idle

    # -- timeline and windows (relative to the baseline start)
    if keep_timeline:
        res.timeline = {"t": (tp - tb0).tolist(), "power_w": pp.tolist()}
    res.windows = {"baseline": [0.0, tb1 - tb0] if with_baseline else None, "run": [a - tb0, b - tb0],
                   "inferences": [[m[0] - tb0, m[1] - tb0, m[2]] for m in marks]}

    # -- too short?
    need = max(required, min_periods * eff_period)
    res.required_duration_s = need
    periods = T / eff_period if eff_period > 0 else float("inf")
    if T < min_periods * eff_period or res.samples < 2:
        res.too_short = True
        res.too_short_reason = (f"the run lasted {T:.2f} s, {periods:.0f} sensor periods of {eff_period * 1e3:.3g} ms "
                                f"({res.samples} samples); the average needs at least {min_periods} periods: "
                                f"run for at least {need:.1f} s (min_duration_s={need:.1f})")
    if done:
        per_call = T / len(done)
        if per_call < eff_period:
            notes.append(f"one call ({per_call * 1e3:.3g} ms) is shorter than a sensor period "
                         f"({eff_period * 1e3:.3g} ms): per-inference values are long-window averages")

    if T <= 0 or not done:
        notes.append("no complete call was measured: no energy per inference")
        return res

    # -- energy over the window
    if energy_kind:
        E = energy_between(t, e, a, b)
    else:
        E = integrate_power(t, p, a, b)
    N = res.inferences
    P_run = E / T
    res.energy_j, res.mean_power_w = E, P_run
    sel = (tp >= a) & (tp <= b)
    n_run = max(int(sel.sum()), 1)
    sd_run = float(np.std(pp[sel], ddof=1)) if sel.sum() > 1 else 0.0

    # -- uncertainty (1 σ)
    if energy_kind:
        u_res = meter.resolution_j * math.sqrt(2.0)
        u_fluct = 0.0                       # a counter integrates between reads: nothing is missed
        res_w = 0.0
    else:
        res_w = meter.resolution_w
        u_res = res_w / math.sqrt(12.0) * T / math.sqrt(n_run)
        u_fluct = sd_run * T / math.sqrt(n_run)
    dP = abs(P_run - (P_idle if P_idle is not None else P_run)) + sd_run
    u_edge = eff_period * dP / math.sqrt(2.0)   # each edge falls anywhere within a sample interval
    u_E = math.sqrt(u_res ** 2 + u_fluct ** 2 + u_edge ** 2)
    res.energy_uncertainty_j = u_E
    res.energy_per_inference_j = E / N if N else None
    res.energy_per_inference_uncertainty_j = u_E / N if N else None
    res.uncertainty = {"resolution_j": u_res, "sampling_j": math.sqrt(u_fluct ** 2 + u_edge ** 2),
                       "baseline_j": None}
    if P_idle is not None:
        u_Pidle = math.sqrt((sd_idle or 0.0) ** 2 / max(n_idle, 1) + res_w ** 2 / 12.0)
        if energy_kind:
            u_Pidle = math.sqrt(u_Pidle ** 2 + (u_res / max(res.baseline_duration_s, 1e-9)) ** 2)
        u_base = u_Pidle * T
        D = E - P_idle * T
        u_D = math.sqrt(u_E ** 2 + u_base ** 2)
        res.dynamic_energy_j, res.dynamic_energy_uncertainty_j = D, u_D
        res.dynamic_per_inference_j = D / N if N else None
        res.dynamic_per_inference_uncertainty_j = u_D / N if N else None
        res.uncertainty["baseline_j"] = u_base
        if D < -2 * u_D:
            notes.append("the run drew less than the idle baseline: the idle state changed (clocks, other load)")
    notes.append("uncertainties treat samples as independent and assume the idle power stayed constant; "
                 "repeat the measurement (≥ 5×) for the spread between runs")
    return res
