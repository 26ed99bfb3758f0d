"""How each framework turns NIR's continuous-time neurons into per-step updates.

NIR stores time constants, resistances and leak potentials but no timestep, and every
framework discretises them differently (docs/nir.md). A :class:`Dialect` states one
framework's rules; :func:`detect` guesses which framework wrote a file from its
parameters, and reports why.

Membrane rules (k = dt/tau):
  euler     v ← (1−k)·v + k·r·x + k·v_leak                      snnTorch, Norse, NIR reference
  exp       v ← a·v + u·x + v_leak,  u = r·dt/(tau·a)              Rockpool LIF/CubaLIF (r = tau·a/dt ⇒ u = 1)
  exp_jump  v ← a·(v + u·x)  (LI only)                          Rockpool ExpSynTorch
  exp_norm  v ← a·v + (1−a)·r·x + (1−a)·v_leak,  a = e^(−dt/tau)   Sinabs LIF (norm_input, tau in steps)
  exp_raw   v ← a·v + r·x + (1−a)·v_leak  (LI only)             Sinabs ExpLeak (norm_input=False)
Current rules (k_s = dt/tau_syn):
  euler     i ← (1−k_s)·i + k_s·w_in·x                            snnTorch (w_in = tau_syn/dt ⇒ gain 1)
  jump      i ← (1−k_s)·i + w_in·x                                Norse (input spikes jump the current)
  exp_jump  i ← a_s·(i + w_in·x),  a_s = e^(−dt/tau_syn)          Rockpool, Sinabs
            (held as j = i + w_in·x: j ← a_s·j + w_in·x, the membrane gets a_s·j)
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
    #: membrane rule for LI nodes where it differs from ``membrane`` (Rockpool ExpSynTorch, Sinabs ExpLeak)
    membrane_li: str | None = None
    #: exponential decays computed as torch computes ``exp(-dt / tau)`` on float32 parameters, and
    #: 1 − a and the gains in float32 as well, so float runs match the framework bit for bit
    torch_f32: bool = False
    #: timestep the framework always uses, if any (None: the user must say)
    fixed_dt: float | None = None
    #: the exporter wrote tau = dt/(1 − decay) and r = tau/dt (w_in = tau_syn/dt) in float32 from the
    #: float32 decays its neurons use, which multiply the state and add the input with gain 1: recover
    #: those decays bit for bit and make gains that are 1 up to float32 rounding exactly 1
    f32_decays: bool = False
    note: str = ""

    def flags(self) -> dict:
        return dict(reset=self.reset, reset_delay=self.reset_delay and self.reset == "subtract",
                    current_lag=self.current_lag, threshold_ge=self.threshold_ge,
                    multispike=self.multispike, max_spikes=self.max_spikes)

    # ------------------------------------------------------------------ exponential rules (Rockpool, Sinabs)
    def _membrane_rule(self, kind: str) -> str:
        return self.membrane_li if kind == "LI" and self.membrane_li else self.membrane

    def _decay(self, tau: np.ndarray, dt: float) -> np.ndarray:
        """a = e^(−dt/tau). With ``torch_f32`` exactly as torch evaluates ``exp(-dt / tau)`` for a float32
        tau and a Python float dt: the argument is float32(1/tau)·float32(−dt) in float32 (a Python number
        divided by a tensor is reciprocal-then-multiply), and the exponential is rounded once to float32
        (torch's own exp is within 1 ulp of that; they differ for about 1 decay in 100)."""
        if not self.torch_f32:
            return np.exp(-dt / tau)
        t32 = np.asarray(tau, np.float64).astype(np.float32)
        arg = (np.float32(1) / t32) * np.float32(-dt)
        return np.exp(arg.astype(np.float64)).astype(np.float32).astype(np.float64)

    def _f32_mul(self, a, b) -> np.ndarray:
        if not self.torch_f32:
            return a * b
        return (np.asarray(a, np.float64).astype(np.float32) * np.asarray(b, np.float64).astype(np.float32)
                ).astype(np.float64)

    def _exp_membrane(self, rule: str, tau, r, v_leak, dt) -> dict:
        a = self._decay(tau, dt)
        if rule in ("exp", "exp_jump"):
            # Rockpool writes r = tau·e^(−dt/tau)/dt, in float32, for a native gain of exactly 1
            u = r * dt / (tau * a)
            u = np.where(np.abs(u - 1) <= _UNIT_GAIN_TOL, 1.0, u)
            if rule == "exp":  # V ← a·V + u·x + b; Rockpool's from_nir reads v_leak as its bias b
                return dict(beta=a, g_mem=u * np.ones_like(a), bias=v_leak * np.ones_like(a))
            # LI (ExpSynTorch): v ← a·(v + u·x) = a·v + a·u·x
            return dict(beta=a, g_mem=self._f32_mul(a, u), bias=(1 - a) * v_leak)
        one_minus = (np.float32(1) - a.astype(np.float32)).astype(np.float64) if self.torch_f32 else 1 - a
        if rule == "exp_norm":  # Sinabs LIF (norm_input=True): v ← a·v + (1 − a)·r·x
            return dict(beta=a, g_mem=self._f32_mul(one_minus, r), bias=one_minus * v_leak)
        if rule == "exp_raw":  # Sinabs ExpLeak (norm_input=False): v ← a·v + r·x
            return dict(beta=a, g_mem=r * np.ones_like(a), bias=one_minus * v_leak)
        raise ValueError(rule)

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
                if self.f32_decays:
                    out["beta"] = _f32_decay(tau, dt, out["beta"])
                    out["g_mem"] = _unit_gain(out["g_mem"])
            elif self.membrane in _EXP_RULES:
                out.update(self._exp_membrane(self._membrane_rule(kind), tau, r, v_leak, dt))
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
                if self.f32_decays and self.current == "euler":
                    out["alpha"] = _f32_decay(ts, dt, out["alpha"])
                    out["g_syn"] = _unit_gain(out["g_syn"])
            elif self.current == "exp_jump":
                # i ← a_s·(i + w_in·x) is held as the current before its decay, j = i + w_in·x:
                # j ← a_s·j + w_in·x and the membrane receives a_s·j. Same values, and the same float32
                # operations as Rockpool/Sinabs (a product a_s·j and a sum), so runs are bit-identical.
                a = self._decay(ts, dt)
                out["alpha"], out["g_syn"] = a, w_in * np.ones_like(a)
                out["g_mem"] = self._f32_mul(out["g_mem"], a)
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
        if op.cuba and self.current == "exp_jump":  # the membrane gain carries a_s (see discretize)
            g = g / np.clip(op.alpha.astype(np.float64), 1e-12, 1.0)
        out = {}
        if op.kind in ("I", "IF"):
            out["r"] = g / dt if self.integrator == "r_dt" else g
        else:
            b = np.clip(beta, 0.0, 1 - 1e-12)
            if self.membrane == "euler":
                k = 1 - b
                tau = dt / k
                out.update(tau=tau, r=g / k, v_leak=bias / k)
            else:
                out.update(_exp_membrane_inverse(self._membrane_rule(op.kind), b, g, bias, dt))
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
                out["w_in"] = gs
        if op.spiking:
            out["v_threshold"] = op.threshold.astype(np.float64)
            out["v_reset"] = op.v_reset.astype(np.float64)
        return out


_EXP_RULES = ("exp", "exp_jump", "exp_norm", "exp_raw")
#: |gain − 1| below which a Rockpool gain r·dt/(tau·a) is exactly 1 (float32 rounding of r, tau and a)
_UNIT_GAIN_TOL = 2e-6


def _exp_membrane_inverse(rule: str, b: np.ndarray, g: np.ndarray, bias: np.ndarray, dt: float) -> dict:
    """NIR tau, r, v_leak for the exponential membrane rules (the inverse of Dialect._exp_membrane)."""
    tau = -dt / np.log(np.maximum(b, 1e-300))
    one_minus = 1 - b
    if rule == "exp":
        return dict(tau=tau, r=g * tau * b / dt, v_leak=bias * np.ones_like(b))
    if rule == "exp_jump":
        return dict(tau=tau, r=g * tau / dt, v_leak=bias / one_minus)
    if rule == "exp_norm":
        return dict(tau=tau, r=g / one_minus, v_leak=bias / one_minus)
    if rule == "exp_raw":
        return dict(tau=tau, r=g * np.ones_like(b), v_leak=bias / one_minus)
    raise ValueError(rule)


def _f32_decay(tau: np.ndarray, dt: float, decay: np.ndarray) -> np.ndarray:
    """The float32 decay d that an exporter computing tau = dt/(1 − d) in float32 started from.

    float32 rounding of tau loses the last bit of about one decay in five, so 1 − dt/tau rounded
    to float32 is one ulp off the framework's value; of the float32 neighbours of that estimate,
    take the one that reproduces the stored tau exactly. Where tau is not a float32 value (a float64
    writer, which keeps the decay anyway) or no neighbour reproduces it (another dt), keep ``decay``.
    """
    tau = np.asarray(tau, np.float64)
    decay = np.broadcast_to(np.asarray(decay, np.float64), tau.shape)
    tau32 = tau.astype(np.float32)
    if not np.array_equal(tau32.astype(np.float64), tau):
        return decay
    dt32, one = np.float32(dt), np.float32(1)
    est = decay.astype(np.float32)
    best, found = est.copy(), np.zeros(est.shape, bool)
    cands, up, down = [est], est, est
    for _ in range(2):
        up, down = np.nextafter(up, one), np.nextafter(down, -one)
        cands += [up, down]
    with np.errstate(divide="ignore", over="ignore"):
        for cand in cands:
            ok = ~found & (dt32 / (one - cand) == tau32)
            best[ok] = cand[ok]
            found |= ok
    return best.astype(np.float64)


def _unit_gain(g: np.ndarray) -> np.ndarray:
    """Gains within float32 rounding of 1 (r = tau/dt written in float32) are exactly 1."""
    g = np.asarray(g, np.float64)
    return np.where(np.abs(g - 1) <= 4e-7, 1.0, g)


DIALECTS: dict[str, Dialect] = {
    "snntorch": Dialect(
        "snntorch", membrane="euler", current="euler", integrator="r_dt", reset="subtract", reset_delay=True,
        f32_decays=True,
        note="snnTorch Leaky/Synaptic: beta = 1 - dt/tau, unit input gain (r = tau/dt, w_in = tau_syn/dt), "
             "reset by subtraction applied one step late (reset_delay=True), spike when v > threshold; "
             "the float32 beta/alpha the exporter started from are recovered exactly"),
    "norse": Dialect(
        "norse", membrane="euler", current="jump", integrator="r", reset="zero",
        note="Norse LIFBox/LIF/LI/IAF: forward Euler with r = 1, input spikes jump the synaptic current, "
             "reset to v_reset, IAF adds its input directly"),
    "rockpool": Dialect(
        "rockpool", membrane="exp", membrane_li="exp_jump", current="exp_jump", integrator="r", reset="subtract",
        threshold_ge=True, multispike=True, max_spikes=65536, torch_f32=True,
        note="Rockpool LIFTorch (CubaLIF): I = a_s (I + x), V = a_m V + I + b; LIFNeuronTorch (LIF): "
             "V = a_m V + x + b; ExpSynTorch (LI): I = a (I + x); a = exp(-dt/tau) in float32, input gain 1 "
             "(r = tau exp(-dt/tau)/dt), n = floor(V/threshold) spikes when V >= threshold (at most 2^16), "
             "V -= n threshold"),
    "sinabs": Dialect(
        "sinabs", membrane="exp_norm", membrane_li="exp_raw", current="exp_jump", integrator="r",
        reset="subtract", threshold_ge=True, multispike=True, max_spikes=65536, fixed_dt=1.0, torch_f32=True,
        note="Sinabs LIF (norm_input=True): v = a v + (1 - a) x; ExpLeak (LI, norm_input=False): v = a v + x; "
             "IAF: v = v + x; tau in steps (dt = 1), a = exp(-1/tau) in float32; MultiSpike (trunc(v/threshold) "
             "spikes when v >= threshold) with MembraneSubtract; no min_v_mem"),
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
        if not leaky and all(k == "IF" and np.size(p["r"]) > 1 for _, k, p in neurons):
            return Detection("sinabs", 1.0,
                             "only integrate-and-fire neurons with r = 1, written for every neuron of each layer: "
                             "Sinabs expands r and v_threshold to the layer shape (Norse writes its IAF "
                             "parameters as they are, usually scalars); dt does not change IF dynamics", False)
        if not leaky:
            return Detection("norse", None,
                             "only integrate-and-fire neurons with r = 1 (Norse or Sinabs); dt is not recoverable "
                             "and does not change IF dynamics", False)
        reason = (f"r = 1 and w_in = 1 on every neuron and time constants < 1 s (min {tau.min():g}): "
                  "Norse writes r = 1; dt cannot be recovered from the file (Norse uses 0.001 by default)")
        if tau.max() < 1e-3:
            # norse#411: Norse <= 1.1 to_nir(module, sample, dt=0.001) writes tau = dt/tau_inv, not 1/tau_inv
            reason += (f"; every time constant is below 1 ms (max {tau.max():g}), as Norse <= 1.1 writes them "
                       "(tau = dt·tau_true with to_nir's dt = 0.001): such a file runs as in Norse with "
                       "dt = Norse's dt × to_nir's dt (1e-6 for the defaults)")
        return Detection("norse", None, reason, True)
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
