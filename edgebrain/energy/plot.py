"""The energy timeline of ``edgebrain profile --plot FILE.png``. Needs matplotlib (an optional
dependency: ``pip install 'edgebrain[plot]'``); without it :func:`require_matplotlib` raises a
one-line error.

With a sensor the curve is the measured power over the run (for an energy counter, the power
between consecutive reads), with the idle baseline and the inference windows marked.

With the ``model`` meter nothing was measured, and the plot shows the *analytical estimate* over
time, its title saying so: when the result has an ``estimate_timeline`` (``edgebrain profile``
makes one with ``--plot``, counting every step's operations from the model's activity), the
estimated energy of each decision (or, for an input array, of each inference) with their mean, and
below it the energy per step by component (synaptic operations, membrane updates, memory). Without
one, the estimated dynamic power of each inference window (its inferences' estimated energy over its
duration).
"""

from __future__ import annotations

from ..errors import InputError
from ..safeio import atomic_write
from .units import fmt_j

#: at most this many window spans are drawn; closer windows are merged (back-to-back calls)
MAX_SPANS = 400
FIGSIZE = (10.0, 4.2)
DPI = 100


def require_matplotlib():
    """The pyplot module on the Agg backend, or a one-line error saying how to install it."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt
    except ImportError:
        raise InputError("--plot needs matplotlib, an optional dependency: pip install 'edgebrain[plot]'") from None
    return plt


def save_png(fig, path) -> tuple[int, int]:
    """Write ``fig`` to ``path`` as a PNG through the atomic writer, then close it; its size in pixels."""
    import matplotlib.pyplot as plt

    try:
        with atomic_write(path, "plot") as f:
            fig.savefig(f, format="png", dpi=DPI)
        w, h = fig.canvas.get_width_height()
    finally:
        plt.close(fig)
    return int(w), int(h)


def merge_windows(windows, span: float, max_spans: int = MAX_SPANS) -> list[list[float]]:
    """Merge inference windows ``[[start, end, n], ...]`` whose gap is below ``span / max_spans``
    (back-to-back calls), so that at most about ``max_spans`` spans remain. Returns ``[[start, end, n], ...]``
    with ``n`` summed."""
    ws = sorted(([float(a), float(b), float(n)] for a, b, n in windows), key=lambda w: w[0])
    if not ws:
        return []
    gap = span / max_spans if span > 0 else 0.0
    out = [ws[0]]
    for a, b, n in ws[1:]:
        last = out[-1]
        if a - last[1] <= gap or (b - last[0]) < gap:
            last[1] = max(last[1], b)
            last[2] += n
        else:
            out.append([a, b, n])
    if len(out) > max_spans:  # still too many (gaps as long as the windows): coarser
        return merge_windows(out, span * 2, max_spans)
    return out


def _si_power(values) -> tuple[float, str]:
    m = max((abs(v) for v in values), default=0.0)
    for unit, f in (("W", 1.0), ("mW", 1e-3), ("µW", 1e-6), ("nW", 1e-9), ("pW", 1e-12)):
        if m >= f:
            return f, unit
    return 1e-12, "pW"


def _si_energy(values) -> tuple[float, str]:
    m = max((abs(float(v)) for v in values), default=0.0)
    for unit, f in (("J", 1.0), ("mJ", 1e-3), ("µJ", 1e-6), ("nJ", 1e-9), ("pJ", 1e-12)):
        if m >= f:
            return f, unit
    return 1e-12, "pJ"


def plot_profile(result: dict, path: str) -> dict:
    """Write the timeline of a :func:`edgebrain.apps.profile.profile` result to ``path`` (PNG).
    Returns ``{"path", "width", "height", "estimate"}`` (and ``per``: "decision" or "inference" when
    the estimate is drawn over time)."""
    plt = require_matplotlib()
    if not result["measured"].get("measured") and result.get("estimate_timeline"):
        fig, drawn = draw_estimate_timeline(result)
        w, h = save_png(fig, path)
        return {"path": path, "width": w, "height": h, "estimate": True, "per": drawn["per"]}

    m = result["measured"]
    win = m.get("windows") or {}
    infs = win.get("inferences") or []
    run = win.get("run") or [0.0, 0.0]
    fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI)
    try:
        if m.get("measured"):
            estimate = False
            _plot_measured(ax, result, m, win, infs, run)
        else:
            estimate = True
            _plot_estimate(ax, result, infs, run)
        ax.set_xlabel("time (s)" + (" from the start of the idle baseline" if not estimate else " from the start of the run"))
        ax.grid(True, alpha=0.3)
        lo, hi = ax.get_ylim()
        ax.set_ylim(min(lo, 0.0), hi + 0.45 * (hi - min(lo, 0.0)))  # room for the legend above the curve
        ax.legend(loc="upper left", fontsize=8, framealpha=0.85)
        e = result["estimate"]
        if estimate:
            title = (f"ESTIMATE (no sensor): {result['model']} on {e['device']} — estimated dynamic power per "
                     f"inference window, {fmt_j(e['per_inference_j'])}/inference (analytical)")
        else:
            title = (f"measured: {result['model']} with {result['meter']['name']} — "
                     f"{fmt_j(m.get('energy_per_inference_j'))} ± {fmt_j(m.get('energy_per_inference_uncertainty_j'))}"
                     f"/inference (estimate for {e['device']}: {fmt_j(e['per_inference_j'])})")
            flags = [f for f in ("partial", "too_short") if m.get(f)]
            if flags:
                title += "  [" + ", ".join(f.upper().replace("_", " ") for f in flags) + "]"
        ax.set_title(title, fontsize=9)
        fig.tight_layout()
        with atomic_write(path, "plot") as f:
            fig.savefig(f, format="png", dpi=DPI)
        w, h = fig.canvas.get_width_height()
    finally:
        plt.close(fig)
    return {"path": path, "width": int(w), "height": int(h), "estimate": estimate}


def _plot_measured(ax, result, m, win, infs, run):
    tl = m.get("timeline") or {}
    t, p = list(tl.get("t") or []), list(tl.get("power_w") or [])
    f, unit = _si_power(p + [m.get("baseline_power_w") or 0.0])
    base = win.get("baseline")
    if base:
        ax.axvspan(base[0], base[1], color="0.85", alpha=0.6, lw=0, label=f"idle baseline window ({base[1] - base[0]:.1f} s)")
    spans = merge_windows(infs, (run[1] - run[0]) or 1.0)
    for k, (a, b, n) in enumerate(spans):
        ax.axvspan(a, b, color="tab:orange", alpha=0.18, lw=0,
                   label=(f"inference windows ({len(infs)} calls, {int(sum(w[2] for w in infs))} inferences"
                          + (", merged at this scale)" if len(spans) < len(infs) else ")")) if k == 0 else None)
    ax.axvline(run[0], color="tab:orange", lw=0.8, ls=":")
    ax.axvline(run[1], color="tab:orange", lw=0.8, ls=":")
    if t:
        ax.plot(t, [v / f for v in p], color="tab:blue", lw=1.0, marker="." if len(t) < 300 else None, ms=3,
                label=f"power ({m['meter']['name']}, {len(t)} points)")
    pb = m.get("baseline_power_w")
    if pb is not None:
        ax.axhline(pb / f, color="0.3", ls="--", lw=1.0, label=f"idle power {pb:.4g} W")
    if m.get("partial"):
        ax.axvline(run[1], color="tab:red", lw=1.2, label="meter stopped (partial)")
    ax.set_ylabel(f"power ({unit})")


def _plot_estimate(ax, result, infs, run):
    e = result["estimate"]
    per_inf = float(e["per_inference_j"])
    spans = merge_windows(infs, (run[1] - run[0]) or 1.0)
    pw = [n * per_inf / max(b - a, 1e-12) for a, b, n in spans]
    f, unit = _si_power(pw)
    xs, ys = [run[0]], [0.0]
    for (a, b, _), v in zip(spans, pw):
        xs += [a, a, b, b]
        ys += [0.0, v / f, v / f, 0.0]
    xs.append(run[1])
    ys.append(0.0)
    for k, (a, b, n) in enumerate(spans):
        ax.axvspan(a, b, color="tab:orange", alpha=0.18, lw=0,
                   label=(f"inference windows ({len(infs)} calls, {int(sum(w[2] for w in infs))} inferences"
                          + (", merged at this scale)" if len(spans) < len(infs) else ")")) if k == 0 else None)
    ax.plot(xs, ys, color="tab:purple", lw=1.2, label="estimated dynamic power (estimated energy of the window's inferences / its duration here)")
    ax.axhline(0.0, color="0.3", ls="--", lw=1.0,
               label=f"idle baseline (profile idle power {e['idle_power_w']:g} W, not drawn)")
    ax.set_ylabel(f"estimated power above idle ({unit})")


def draw_estimate_timeline(result: dict):
    """The figure of a result's ``estimate_timeline`` (no sensor): the estimated energy per decision
    (or per inference) over time, and the energy per step by component. Returns ``(fig, drawn)``:
    ``drawn`` has the axes (``per_decision``, ``per_step``) and the arrays plotted (``t``, ``energy_j``,
    ``step_t``, ``step_j``). The caller closes the figure."""
    import numpy as np

    plt = require_matplotlib()
    tl, e = result["estimate_timeline"], result["estimate"]
    per = tl["per"]
    t, en = np.asarray(tl["t"], float), np.asarray(tl["energy_j"], float)
    st = tl["step"]
    step_t = np.asarray(st["t"], float)
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(10.0, 6.4), dpi=DPI, height_ratios=[1.3, 1.0])
    ax.set_label("per_decision")
    ax2.set_label("per_step")
    f, unit = _si_energy(list(en) + [tl["mean_j"], e["per_inference_j"]])
    if per == "decision":
        # each decision is charged the stretch since the one before: a bar over that stretch
        dt = float(np.median(np.diff(step_t))) if len(step_t) > 1 else 0.0
        t0 = (float(step_t[0]) - dt) if len(step_t) else 0.0
        left = np.concatenate([[t0], t[:-1]]) if len(t) else t
        bars = ax.bar(left, en / f, width=t - left, align="edge", color="tab:purple", alpha=0.55,
                      edgecolor="tab:purple", linewidth=0.6, label=f"estimated energy per decision ({len(t)})")
        ax.set_xlabel("stream time (s); each bar spans the steps since the previous decision")
        ax2.sharex(ax)
        ax2.set_xlabel("stream time (s)")
    else:
        bars = ax.bar(t, en / f, width=0.8, color="tab:purple", alpha=0.6,
                      label=f"estimated energy per inference ({len(t)} sample{'s' if len(t) != 1 else ''})")
        ax.set_xlabel("sample (one inference each)")
        ax.set_xticks(t if len(t) <= 20 else ax.get_xticks())
        ax2.set_xlabel("step of the pass")
    for b in bars:
        b.set_gid("energy")
    ax.axhline(tl["mean_j"] / f, color="0.2", ls="--", lw=1.0,
               label=f"mean {fmt_j(tl['mean_j'])}; the estimate per inference {fmt_j(e['per_inference_j'])}")
    ax.set_ylabel(f"energy ({unit})")
    ax.set_ylim(0.0, max(ax.get_ylim()[1], 1e-30) * 1.3)
    ax.legend(loc="upper left", fontsize=8, framealpha=0.85)
    ax.grid(True, alpha=0.3)
    comps = [("synaptic_j", "synaptic operations (MACs, ACs)", "tab:blue"),
             ("membrane_j", "membrane updates", "tab:green"),
             ("memory_j", "memory (weights read, neuron state)", "tab:gray")]
    ys = [np.asarray(st[k], float) for k, _, _ in comps]
    whole = float(sum(y.sum() for y in ys)) or 1.0
    comps = [(k, f"{n} {100 * y.sum() / whole:.3g} %", c) for (k, n, c), y in zip(comps, ys)]
    f2, unit2 = _si_energy([float(np.max(sum(ys)))] if len(step_t) else [])
    if len(step_t):  # step k spans (t[k-1], t[k]]: the first one starts a step earlier
        d0 = float(step_t[1] - step_t[0]) if len(step_t) > 1 else 1.0
        x = np.concatenate([[step_t[0] - d0], step_t])
        ax2.stackplot(x, *[np.concatenate([y[:1], y]) / f2 for y in ys], labels=[n for _, n, _ in comps],
                      colors=[c for _, _, c in comps], alpha=0.75, step="pre")
    ax2.set_ylabel(f"energy per step ({unit2})")
    ax2.legend(loc="upper left", fontsize=8, framealpha=0.85, ncol=3)
    ax2.grid(True, alpha=0.3)
    ax2.set_ylim(0.0, ax2.get_ylim()[1] * 1.25)
    ax.set_title(f"ESTIMATE (no sensor): {result['model']} on {e['device']}, {e['precision']} — analytical energy "
                 f"per {per}, counted from the model's activity", fontsize=9)
    ax2.set_title(f"where it goes, step by step ({tl['note']})", fontsize=8)
    fig.tight_layout()
    return fig, {"per": per, "axes": {"per_decision": ax, "per_step": ax2}, "t": t, "energy_j": en,
                 "step_t": step_t, "step_j": np.asarray(st["total_j"], float)}
