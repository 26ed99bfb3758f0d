"""The energy timeline of ``edgebrain profile --plot FILE.png``: power over the run, with the idle
baseline and the inference windows marked. Needs matplotlib (an optional dependency:
``pip install matplotlib``); without it :func:`require_matplotlib` raises a one-line error.

With a sensor the curve is the measured power (for an energy counter, the power between
consecutive reads). With the ``model`` meter nothing was measured: the plot shows the *estimated*
dynamic power of the counted operations in each inference window (the estimated energy of the
window's inferences over its duration), above a zero line that stands for the device's idle power,
and its title says it is an estimate.
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
        raise InputError("--plot needs matplotlib, an optional dependency: pip install matplotlib") from None
    return plt


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


def plot_profile(result: dict, path: str) -> dict:
    """Write the timeline of a :func:`edgebrain.apps.profile.profile` result to ``path`` (PNG).
    Returns ``{"path", "width", "height", "estimate"}``."""
    plt = require_matplotlib()

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
