"""How each framework turns NIR's continuous-time neurons into per-step updates.

NIR stores time constants, resistances and leak potentials but no timestep, and every
framework discretises them differently (docs/nir.md). A :class:`Dialect` states one
framework's rules; :func:`detect` guesses which framework wrote a file from its
parameters, and reports why.

Membrane rules (k = dt/tau):
  euler     v ← (1−k)·v + k·r·x + k·v_leak                      snnTorch, Norse, NIR reference
  exp       v ← e^(−dt/tau)·v + r·dt·e^(dt/tau)/tau·x + ...       Rockpool (r = tau·e^(−dt/tau)/dt ⇒ gain 1)
  exp_norm  v ← a·v + (1−a)·r·x + (1−a)·v_leak,  a = e^(−dt/tau)   Sinabs (norm_input, tau in steps)
Current rules (k_s = dt/tau_syn):
  euler     i ← (1−k_s)·i + k_s·w_in·x                            snnTorch (w_in = tau_syn/dt ⇒ gain 1)
  jump      i ← (1−k_s)·i + w_in·x                                Norse (input spikes jump the current)
  exp_jump  i ← a_s·(i + w_in·x),  a_s = e^(−dt/tau_syn)          Rockpool, Sinabs
Integrators (I, IF): v ← v + r·dt·x ("r_dt") or v ← v + r·x ("r", frameworks that ignore dt).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from .errors import ModelError


@dataclass(frozen=True)
class Dialect:
    name: str
    membrane: str = "euler"
    current: str = "euler"
    integrator: str = "r_dt"
    reset: str = "zero"
    reset_delay: bool = False
    current_lag: bool = False
    threshold_ge: bool = False
    multispike: bool = False
    max_spikes: int = 1
    #: timestep the framework always uses, if any (None: the user must say)
    fixed_dt: float | None = None
    note: str = ""

    def flags(self) -> dict:
        return dict(reset=self.reset, reset_delay=self.reset_delay and self.reset == "subtract",
                    current_lag=self.current_lag, threshold_ge=self.threshold_ge,
                    multispike=self.multispike, max_spikes=self.max_spikes)

    # ------------------------------------------------------------------ NIR → discrete
    def discretize(self, kind: str, p: dict, dt: float) -> dict:
        """Discrete fields of :class:`edgebrain.ops.Neuron` from NIR fields ``p``."""
        f64 = lambda k: np.asarray(p[k], dtype=np.float64)  # noqa: E731
        out = {}
        if kind in ("I", "IF"):
            r = f64("r")
            out["beta"] = np.ones_like(r)
            out["g_mem"] = r * dt if self.integrator == "r_dt" else r
            out["bias"] = np.zeros_like(r)
        else:
            tau = f64("tau_mem" if kind.startswith("Cuba") else "tau")
            r, v_leak = f64("r"), f64("v_leak")
            if (tau <= 0).any():
                raise ModelError("field 'tau' must be > 0")
            if self.membrane == "euler":
                k = dt / tau
                if (k > 1).any():
                    raise ModelError(
                        f"dt={dt:g} exceeds the smallest time constant {tau.min():g}: forward Euler would be "
                        "unstable (decay per step < 0); use a smaller --dt or another --dialect")
                out["beta"], out["g_mem"], out["bias"] = 1 - k, k * r, k * v_leak
            elif self.membrane == "exp":
                a = np.exp(-dt / tau)
                out["beta"], out["g_mem"], out["bias"] = a, r * dt / (tau * a), (1 - a) * v_leak
            elif self.membrane == "exp_norm":
                a = np.exp(-dt / tau)
                out["beta"], out["g_mem"], out["bias"] = a, (1 - a) * r, (1 - a) * v_leak
            else:
                raise ValueError(self.membrane)
        if kind.startswith("Cuba"):
            ts, w_in = f64("tau_syn"), f64("w_in")
            if (ts <= 0).any():
                raise ModelError("field 'tau_syn' must be > 0")
            if self.current in ("euler", "jump"):
                ks = dt / ts
                if (ks > 1).any():
                    raise ModelError(
                        f"dt={dt:g} exceeds the smallest synaptic time constant {ts.min():g}; use a smaller --dt")
                out["alpha"] = 1 - ks
                out["g_syn"] = ks * w_in if self.current == "euler" else w_in * np.ones_like(ks)
            elif self.current == "exp_jump":
                a = np.exp(-dt / ts)
                out["alpha"], out["g_syn"] = a, a * w_in
            else:
                raise ValueError(self.current)
        if kind in ("LIF", "CubaLIF", "IF"):
            out["threshold"] = f64("v_threshold")
            out["v_reset"] = f64("v_reset") if "v_reset" in p else np.zeros_like(out["threshold"])
        return out

    # ------------------------------------------------------------------ discrete → NIR
    def continuous(self, op, dt: float) -> dict:
        """NIR fields for a neuron op (the inverse of :meth:`discretize`)."""
        beta = op.beta.astype(np.float64)
        g, bias = op.g_mem.astype(np.float64), op.bias.astype(np.float64)
        out = {}
        if op.kind in ("I", "IF"):
            out["r"] = g / dt if self.integrator == "r_dt" else g
        else:
            b = np.clip(beta, 0.0, 1 - 1e-12)
            if self.membrane == "euler":
                k = 1 - b
                tau = dt / k
                out.update(tau=tau, r=g / k, v_leak=bias / k)
            elif self.membrane == "exp":
                tau = -dt / np.log(np.maximum(b, 1e-300))
                out.update(tau=tau, r=g * tau * b / dt, v_leak=bias / (1 - b))
            else:
                tau = -dt / np.log(np.maximum(b, 1e-300))
                out.update(tau=tau, r=g / (1 - b), v_leak=bias / (1 - b))
            if op.cuba:
                out["tau_mem"] = out.pop("tau")
        if op.cuba:
            a = np.clip(op.alpha.astype(np.float64), 1e-12, 1 - 1e-12)
            gs = op.g_syn.astype(np.float64)
            if self.current in ("euler", "jump"):
                ts = dt / (1 - a)
                out["tau_syn"] = ts
                out["w_in"] = gs * ts / dt if self.current == "euler" else gs
            else:
                out["tau_syn"] = -dt / np.log(a)
                out["w_in"] = gs / a
        if op.spiking:
            out["v_threshold"] = op.threshold.astype(np.float64)
            out["v_reset"] = op.v_reset.astype(np.float64)
        return out


DIALECTS: dict[str, Dialect] = {
    "snntorch": Dialect(
        "snntorch", membrane="euler", current="euler", integrator="r_dt", reset="subtract", reset_delay=True,
        note="snnTorch Leaky/Synaptic: beta = 1 - dt/tau, unit input gain (r = tau/dt, w_in = tau_syn/dt), "
             "reset by subtraction applied one step late (reset_delay=True), spike when v > threshold"),
    "norse": Dialect(
        "norse", membrane="euler", current="jump", integrator="r", reset="zero",
        note="Norse LIFBox/LIF/LI/IAF: forward Euler with r = 1, input spikes jump the synaptic current, "
             "reset to v_reset, IAF adds its input directly"),
    "rockpool": Dialect(
        "rockpool", membrane="exp", current="exp_jump", integrator="r", reset="subtract", threshold_ge=True,
        multispike=True, max_spikes=65536,
        note="Rockpool LIFTorch: exact exponential decays, I = a_syn(I + x), V = a_mem V + I, "
             "several spikes per step (floor(V/threshold)), subtractive reset"),
    "sinabs": Dialect(
        "sinabs", membrane="exp_norm", current="exp_jump", integrator="r", reset="subtract", threshold_ge=True,
        multispike=True, max_spikes=65536, fixed_dt=1.0,
        note="Sinabs LIF/IAF: time constants in steps (dt = 1), v = a v + (1 - a) x, MultiSpike with "
             "MembraneSubtract"),
    "nir": Dialect(
        "nir", membrane="euler", current="euler", integrator="r_dt", reset="zero",
        note="NIR's continuous-time equations integrated by forward Euler, reset to v_reset"),
}


def get(name: str, reset: str | None = None) -> Dialect:
    try:
        d = DIALECTS[name]
    except KeyError:
        raise ModelError(f"unknown dialect '{name}'; expected one of {', '.join(DIALECTS)}") from None
    if reset is not None:
        if reset not in ("zero", "subtract"):
            raise ModelError(f"unknown reset '{reset}'; expected zero or subtract")
        d = replace(d, reset=reset)
    return d


# ---------------------------------------------------------------------- detection


@dataclass
class Detection:
    dialect: str
    dt: float | None
    reason: str
    confident: bool


def _common(values: np.ndarray, rtol=1e-3) -> float | None:
    v = values[np.isfinite(values)]
    if v.size == 0:
        return None
    m = float(np.median(v))
    if m <= 0 or np.max(np.abs(v - m)) > rtol * m:
        return None
    return m


def _round_dt(dt: float) -> float:
    """Snap to a round decimal (1e-4, 5e-4, 0.001 ...) when within 0.1 %."""
    e = math.floor(math.log10(dt))
    for mant in (1, 2, 2.5, 5, 10):
        c = mant * 10 ** e
        if abs(c - dt) <= 1e-3 * dt:
            return float(f"{c:.6g}")
    return dt


def _rockpool_dt(tau: float, r: float) -> float | None:
    """Solve r = tau·exp(−dt/tau)/dt for dt (monotonic in dt)."""
    if r <= 0 or tau <= 0:
        return None
    lo, hi = 1e-12 * tau, 50 * tau
    f = lambda dt: tau * math.exp(-dt / tau) / dt - r  # noqa: E731
    if f(lo) < 0 or f(hi) > 0:
        return None
    for _ in range(200):
        mid = math.sqrt(lo * hi)
        if f(mid) > 0:
            lo = mid
        else:
            hi = mid
    return math.sqrt(lo * hi)


def detect(neurons: list[tuple[str, str, dict]]) -> Detection:
    """Guess the exporter from the neuron parameters: ``neurons`` holds (name, kind, NIR fields)."""
    if not neurons:
        return Detection("nir", None, "no neuron nodes; the timestep does not matter", True)
    leaky = [(n, k, p) for n, k, p in neurons if k not in ("I", "IF")]
    rs = np.concatenate([np.ravel(np.asarray(p["r"], np.float64)) for _, _, p in neurons])
    w_ins = [np.ravel(np.asarray(p["w_in"], np.float64)) for _, k, p in neurons if k.startswith("Cuba")]
    w_in = np.concatenate(w_ins) if w_ins else np.ones(1)
    if np.allclose(rs, 1.0) and np.allclose(w_in, 1.0):
        taus = [np.ravel(np.asarray(p["tau_mem" if k.startswith("Cuba") else "tau"], np.float64)) for _, k, p in leaky]
        tau = np.concatenate(taus) if taus else np.ones(1)
        if leaky and tau.min() >= 1.0:
            return Detection("sinabs", 1.0,
                             f"r = 1 on every neuron and time constants >= 1 (min {tau.min():g}): Sinabs writes "
                             "tau in timesteps, so dt = 1", True)
        if not leaky:
            return Detection("norse", None,
                             "only integrate-and-fire neurons with r = 1 (Norse or Sinabs); dt is not recoverable "
                             "and does not change IF dynamics", False)
        return Detection("norse", None,
                         f"r = 1 and w_in = 1 on every neuron and time constants < 1 s (min {tau.min():g}): "
                         "Norse writes r = 1; dt cannot be recovered from the file (Norse uses 0.001 by default)",
                         True)
    if not leaky:
        return Detection("nir", None, "integrators only; no exporter convention to detect", False)
    # snnTorch / ecosystem convention: r·dt/tau = 1 with one common dt
    dts, dts_syn, rock = [], [], []
    for _, k, p in leaky:
        tau = np.ravel(np.asarray(p["tau_mem" if k.startswith("Cuba") else "tau"], np.float64))
        r = np.ravel(np.asarray(p["r"], np.float64)) * np.ones_like(tau)
        dts.append(tau / r)
        if k.startswith("Cuba"):
            ts = np.ravel(np.asarray(p["tau_syn"], np.float64))
            wi = np.ravel(np.asarray(p["w_in"], np.float64)) * np.ones_like(ts)
            dts_syn.append(ts / wi)
        for t_, r_ in zip(tau[:64], r[:64]):
            rock.append(_rockpool_dt(float(t_), float(r_)) or np.nan)
    dt_euler = _common(np.concatenate(dts))
    if dt_euler is not None and dts_syn:
        syn = _common(np.concatenate(dts_syn))
        if syn is None or abs(syn - dt_euler) > 1e-3 * dt_euler:
            dt_euler = None
    dt_rock = _common(np.asarray(rock))
    if dt_euler is not None and (dt_rock is None or _round_dt(dt_euler) == dt_euler or _round_dt(dt_rock) != dt_rock):
        dt = _round_dt(dt_euler)
        who = "snnTorch (it always writes dt = 1e-4)" if abs(dt - 1e-4) < 1e-9 else "snnTorch's convention"
        return Detection("snntorch", dt, f"r·dt/tau = 1 on every neuron with one common dt = {dt:g}: {who}", True)
    if dt_rock is not None:
        dt = _round_dt(dt_rock)
        return Detection("rockpool", dt,
                         f"r = tau·exp(-dt/tau)/dt on every neuron with one common dt = {dt:g}: Rockpool", True)
    return Detection("nir", None, "the neuron parameters match no known exporter convention; using NIR's "
                                  "forward-Euler reading", False)
