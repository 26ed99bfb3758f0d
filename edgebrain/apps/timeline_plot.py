"""The timeline figure of ``edgebrain stream --plot FILE.png`` and ``edgebrain demo --plot FILE.png``:
what a stream did, drawn from a :class:`~edgebrain.stream.timeline.TimelineRecorder`.

One figure, four panels on one time axis (stream seconds, 0 to the stream's duration) and two beside:

1. the model's input: every channel of a small input (IMU axes as lines; audio features as a
   heat map), or the events binned per step for an event camera (the sum of a larger input);
2. a spike raster of the spiking layers, one dot per neuron and step with a spike, the layers stacked
   top (first) to bottom (output) with separators; a big layer is shown through every k-th neuron,
   and a long stream through every k-th step, and the panel's title says so;
3. the decisions over time (class index, names on the axis; "no decision" below them) against the
   recording's labels where it has them: a dot is green when it matches the truth, red when not,
   blue when there is no truth; a ring marks a decision on a partial window (end of stream, gap);
4. the confidence of each decision;
5. beside them: the numbers in words, and the latency histogram (its own axis, milliseconds).

:func:`draw_timeline` returns the matplotlib figure and the arrays it plotted, so that a test can
compare them with the stream's own record; :func:`write_timeline` writes the PNG with the project's
atomic writer. Needs matplotlib (``pip install 'edgebrain[plot]'``).
"""

from __future__ import annotations

import os

import numpy as np

from ..energy.plot import require_matplotlib, save_png
from ..errors import InputError
from ..safeio import check_output, local_path, reading
from ..stream.timeline import TimelineRecorder

FIGSIZE = (13.0, 9.6)
DPI = 100
#: at most this many lines in the input panel (more channels: a heat map)
MAX_LINES = 12
#: above this many dots the raster's dots get smaller
MANY_DOTS = 20000
#: a layer's band in the raster is at least this share of all rows shown
MIN_BAND = 0.07
OK, WRONG, UNSCORED = "tab:green", "tab:red", "tab:blue"


def check_plot_path(path, *inputs) -> None:
    """Fail before a stream starts when its figure could not be written: matplotlib missing, not a
    .png, no such folder, or what the atomic writer refuses (a link, a directory, one of ``inputs``)."""
    require_matplotlib()
    path = os.fspath(path)
    if not path.lower().endswith(".png"):
        raise InputError("--plot: expected a .png file name", file=path)
    d = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(d):
        raise InputError(f"--plot: directory {d} does not exist", file=path)
    with reading(*(local_path(p) for p in inputs if p is not None)):
        check_output(path, "plot")


def source_channel_names(source, n_inputs: int | None, encoder_spec: str | None = None, format: str | None = None,
                options: dict | None = None) -> list[str] | None:
    """The source's channel names when they are the model's inputs one for one (a local sample file
    whose encoder keeps every channel in order, e.g. IMU axes), else None. Best effort: reads the
    file's header only, and any problem just means no names."""
    path = local_path(source)
    if path is None or not os.path.isfile(path) or (encoder_spec and "channels=" in encoder_spec):
        return None
    try:
        from ..stream.registry import open_source

        src = open_source(path, format=format, **(options or {}))
        try:
            info = src.info
        finally:
            src.close()
    except Exception:  # noqa: BLE001 - names are a nicety; the stream reports real problems
        return None
    names = info.channel_names
    if info.kind != "samples" or not names or n_inputs is None or len(names) != n_inputs:
        return None
    return [str(n) for n in names]


class TimelineFigure:
    """``--plot PATH`` of ``stream`` and ``demo``: the path is checked before anything streams (see
    :func:`check_plot_path`), :attr:`recorder` watches the stream(s) (pass :attr:`observers` to the
    pipeline; :meth:`TimelineRecorder.begin` before each of several recordings), and :meth:`write`
    draws the figure at the end. ``inputs``: the files being read (never overwritten by the plot);
    ``names_from``: a recording whose channel names label the input panel (see :func:`source_channel_names`,
    with the model's encoder), when ``input_names`` is not given."""

    def __init__(self, path, model, *, inputs=(), title: str | None = None, input_names=None, labels=None,
                 names_from: str | None = None):
        from ..card import StreamConfig
        from ..stream.pipeline import n_outputs

        check_plot_path(path, getattr(model, "path", None), *inputs)
        cfg = StreamConfig.from_meta(model.graph.meta)
        if input_names is None and names_from is not None:
            input_names = source_channel_names(names_from, int(np.prod(model.input_shape)), cfg.encoder)
        self.path, self.title, self.input_names = os.fspath(path), title, input_names
        if labels is None:
            labels = cfg.class_names(n_outputs(model))
        self.recorder = TimelineRecorder(labels)

    @property
    def observers(self) -> list:
        return [self.recorder]

    def write(self) -> dict:
        """Draw and write the PNG; returns what :func:`write_timeline` returns."""
        return write_timeline(self.recorder, self.path, title=self.title, input_names=self.input_names)


def stream_figure(path, model, source: str, *, model_name: str | None = None, encoder: str | None = None,
                  format: str | None = None, options: dict | None = None) -> TimelineFigure | None:
    """The figure of ``edgebrain stream MODEL --source SOURCE --plot PATH`` (None without a path)."""
    if not path:
        return None
    from ..card import StreamConfig

    spec = encoder or StreamConfig.from_meta(model.graph.meta).encoder
    n_in = int(np.prod(model.input_shape))
    return TimelineFigure(path, model, inputs=(source,), title=f"edgebrain stream: {model_name or model.path} on {source}",
                          input_names=source_channel_names(source, n_in, spec, format, options))


def _nth(k: int) -> str:
    return f"{k}{'th' if 10 <= k % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(k % 10, 'th')}"


def draw_timeline(rec, *, title: str | None = None, input_names=None):
    """The figure of a recorder (or of its :meth:`~TimelineRecorder.data`). Returns ``(fig, plotted)``:
    ``plotted`` holds the axes by name (``input``, ``raster``, ``decisions``, ``confidence``,
    ``info``, ``latency``) and the arrays drawn (``raster``: dot times and rows, ``decisions``: times
    and class indices, ``truth``, ``confidence``, ``xlim``). The caller closes the figure."""
    plt = require_matplotlib()
    from matplotlib.gridspec import GridSpec

    d = rec.data() if isinstance(rec, TimelineRecorder) else rec
    dur = float(d["duration"])
    xlim = (0.0, dur if dur > 0 else 1.0)
    fig = plt.figure(figsize=FIGSIZE, dpi=DPI)
    gs = GridSpec(4, 2, figure=fig, width_ratios=[5.0, 1.35], height_ratios=[1.25, 2.6, 1.35, 0.85],
                  hspace=0.32, wspace=0.16, left=0.085, right=0.985, top=0.915, bottom=0.06)
    ax_in = fig.add_subplot(gs[0, 0])
    ax_r = fig.add_subplot(gs[1, 0], sharex=ax_in)
    ax_d = fig.add_subplot(gs[2, 0], sharex=ax_in)
    ax_c = fig.add_subplot(gs[3, 0], sharex=ax_in)
    ax_info = fig.add_subplot(gs[0:2, 1])
    ax_lat = fig.add_subplot(gs[2:4, 1])
    axes = {"input": ax_in, "raster": ax_r, "decisions": ax_d, "confidence": ax_c, "info": ax_info,
            "latency": ax_lat}
    for name, ax in axes.items():
        ax.set_label(name)
    plotted = {"axes": axes, "xlim": xlim}
    kind = (d["summary"] or {}).get("kind")
    plotted["input"] = _input_panel(ax_in, d, kind, input_names)
    plotted["raster"] = _raster_panel(ax_r, d)
    plotted.update(_decision_panels(ax_d, ax_c, d))
    for ax in (ax_in, ax_r, ax_d, ax_c):
        ax.set_xlim(*xlim)
        ax.grid(True, axis="x", alpha=0.25)
        for seg in d["segments"][1:]:
            ax.axvline(seg["t0"], color="0.45", lw=0.8, ls="--", zorder=0)
        if ax is not ax_c:
            ax.tick_params(labelbottom=False)
    _segment_names(ax_in, d)
    ax_c.set_xlabel("stream time (s)" + (" — recordings one after another" if len(d["segments"]) > 1 else ""))
    plotted["latency"] = _latency_panel(ax_lat, d)
    _info_panel(ax_info, d)
    fig.suptitle(title or "edgebrain stream timeline", fontsize=11)
    return fig, plotted


def write_timeline(rec, path, *, title: str | None = None, input_names=None) -> dict:
    """Draw the timeline and write it to ``path`` (PNG) through the atomic writer. Returns ``{"path",
    "width", "height", "duration_s", "dots", "decisions"}``."""
    require_matplotlib()
    fig, p = draw_timeline(rec, title=title, input_names=input_names)
    w, h = save_png(fig, path)
    return {"path": os.fspath(path), "width": w, "height": h, "duration_s": p["xlim"][1],
            "dots": len(p["raster"]["t"]), "decisions": len(p["decisions"]["t"])}


# ---------------------------------------------------------------------- panels


def _empty(ax, text):
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="0.4", fontsize=9)


def _input_panel(ax, d, kind, names):
    t, x, xs = d["t"], d["x"], d["x_sum"]
    stride = d["stride"]
    every = f", every {_nth(stride)} step" if stride > 1 else ""
    if len(t) == 0:
        _empty(ax, "no steps")
        ax.set_title("input", fontsize=9, loc="left")
        return {"t": t, "values": np.zeros((0, 0))}
    if x is not None and x.shape[1] <= MAX_LINES:
        C = x.shape[1]
        names = names if names is not None and len(names) == C else [f"input {k}" for k in range(C)]
        for k in range(C):
            ax.plot(t, x[:, k], lw=0.8, label=names[k])
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.02), fontsize=7, frameon=False, handlelength=1.2)
        ax.set_ylabel("model input")
        ax.set_title(f"model input per step ({C} channel{'s' if C != 1 else ''}, after the encoder{every})",
                     fontsize=9, loc="left")
        return {"t": t, "values": x}
    if x is not None:  # many channels: a heat map, one row per channel
        C = x.shape[1]
        dt = float(np.median(np.diff(t))) if len(t) > 1 else 1.0
        edges = np.concatenate([[t[0] - dt], t])
        ax.pcolormesh(edges, np.arange(C + 1) - 0.5, x.T, shading="flat", cmap="magma", rasterized=True)
        ax.set_ylim(-0.5, C - 0.5)
        what = "audio features" if kind == "samples" else "model input"
        ax.set_ylabel("feature" if kind == "samples" else "input value")
        ax.set_title(f"{what} per step ({C} channels after the encoder; colour = value{every})",
                     fontsize=9, loc="left")
        return {"t": t, "values": x}
    n = d["input_size"]
    if kind == "events":  # step k covers (t[k-1], t[k]]
        dt = float(np.median(np.diff(t))) if len(t) > 1 else float(t[0]) or 1.0
        ax.stairs(xs, np.concatenate([[t[0] - dt], t]), fill=True, color="tab:purple", alpha=0.45)
        ax.set_ylabel("events")
        ax.set_title(f"events binned per step (sum of the {n}-value frame the model sees{every})",
                     fontsize=9, loc="left")
    else:
        ax.plot(t, xs / max(n, 1), color="tab:purple", lw=0.8)
        ax.set_ylabel("mean input")
        ax.set_title(f"mean of the model's {n} input values per step{every}", fontsize=9, loc="left")
    return {"t": t, "values": xs}


def _raster_panel(ax, d):
    t, rows = d["dots_t"], d["dots_row"]
    layers = d["layers"]
    out = {"t": t, "row": rows}
    if not layers:
        _empty(ax, "no spiking layers recorded")
        ax.set_title("spike raster", fontsize=9, loc="left")
        return out
    # each layer gets a band at least MIN_BAND of the panel high (a 10-neuron output layer stays
    # visible beside a 10,000-neuron one); within it, its neurons are evenly spaced
    total = d["rows"]
    bands = [max(lay["shown"], MIN_BAND * total) for lay in layers]
    y0 = np.concatenate([[0.0], np.cumsum(bands)])
    colours = np.zeros(len(rows), np.int64)
    y = np.zeros(len(rows))
    for k, lay in enumerate(layers):
        m = (rows >= lay["row0"]) & (rows < lay["row0"] + lay["shown"])
        colours[m] = k
        y[m] = y0[k] + (rows[m] - lay["row0"] + 0.5) * bands[k] / lay["shown"]
    out["y"] = y
    from matplotlib.colors import ListedColormap

    many = len(t) > MANY_DOTS
    sc = ax.scatter(t, y, s=0.6 if many else 2.5, c=colours, cmap=ListedColormap(plt_colors(len(layers))),
                    vmin=-0.5, vmax=len(layers) - 0.5, marker="s" if many else "o", linewidths=0, rasterized=True)
    sc.set_gid("raster")
    ticks, names = [], []
    for k, lay in enumerate(layers):
        n = lay["shown"]
        if k > 0:
            ax.axhline(y0[k], color="0.3", lw=0.7)
        ticks.append((y0[k] + y0[k + 1]) / 2)
        sub = f"{n} of {lay['size']}" if lay["every"] > 1 else f"{lay['size']}"
        names.append(f"{_node(lay['name'])}\n({sub})")
    ax.set_yticks(ticks, names, fontsize=7 if len(layers) <= 8 else 6)
    ax.set_ylim(y0[-1], 0.0)  # the first layer on top
    ax.set_ylabel("layer (neurons shown)")
    notes = [f"{_node(lay['name'])}: every {_nth(lay['every'])} neuron" for lay in layers if lay["every"] > 1]
    if d["stride"] > 1:
        notes.append(f"every {_nth(d['stride'])} step")
    shown = sum(lay["active"] for lay in layers)
    ax.set_title(f"spike raster: {len(t):,} dots, one per neuron and step with a spike"
                 + (f" (of {shown:,} in all)" if len(t) != shown else "")
                 + (f" — shown: {'; '.join(notes)}" if notes else ""), fontsize=9, loc="left")
    return out


def _node(name) -> str:
    """A layer's name as a label: zoo models exported from snnTorch number their nodes."""
    return f"node {name}" if str(name).isdigit() else str(name)


def plt_colors(n):
    """``n`` distinct colours for the layers."""
    import matplotlib

    cmap = matplotlib.colormaps["tab10"]
    return [cmap(k % 10) for k in range(n)]


def _decision_panels(ax, axc, d):
    dec = d["decisions"]
    labels, other = d["labels"], d["other_truth"]
    n_cls = len(labels)
    names = ["(no decision)"] + list(labels) + [f"{o} (truth only)" for o in other]
    t, idx, conf, truth = dec["t"], dec["index"], dec["confidence"], dec["truth"]
    out = {"decisions": {"t": t, "index": idx}, "confidence": {"t": t, "confidence": conf}}
    # the truth: per kept step, a line where the recording has labels
    tt, tr = d["t"], d["truth"]
    has_truth = len(tr) > 0 and bool(np.any(tr >= 0))
    if has_truth:
        y = np.where(tr >= 0, tr, np.nan).astype(float)
        ax.plot(tt, y, drawstyle="steps-pre", color="0.55", lw=5, alpha=0.35, solid_capstyle="butt",
                label="truth", gid="truth")
    out["truth"] = {"t": tt[tr >= 0] if has_truth else tt[:0], "index": tr[tr >= 0] if has_truth else tr[:0]}
    if len(t):
        col = np.where(truth < 0, UNSCORED, np.where(idx == truth, OK, WRONG))
        sc = ax.scatter(t, idx, c=list(col), s=16 if len(t) < 400 else 6, zorder=3, linewidths=0, clip_on=False)
        sc.set_gid("decisions")
        fl = np.array([f is not None for f in dec["flush"]], bool)
        if fl.any():
            ax.scatter(t[fl], idx[fl], s=70, facecolors="none", edgecolors="0.2", linewidths=0.9, zorder=4,
                       label="partial window", clip_on=False)
        # legend entries for the colours in use
        for c, what in ((OK, "right"), (WRONG, "wrong"), (UNSCORED, "no truth")):
            if np.any(col == c):
                ax.scatter([], [], c=c, s=16, label=what)
        axc.plot(t, conf, color="tab:blue", lw=0.7, alpha=0.6)
        axc.scatter(t, conf, c=list(col), s=10 if len(t) < 400 else 4, zorder=3, linewidths=0, clip_on=False)
    else:
        _empty(ax, "no decisions")
    ax.set_yticks(np.arange(-1, n_cls + len(other)), names, fontsize=7 if len(names) <= 12 else 6)
    ax.set_ylim(-1.6, n_cls + len(other) - 0.4)
    ax.set_ylabel("class")
    every = f", every {_nth(d['decision_stride'])} decision" if d["decision_stride"] > 1 else ""
    acc = _accuracy(idx, truth)
    ax.set_title(f"decisions ({d['n_decisions']}{every})"
                 + (f", {acc:.1%} match the recording's labels" if acc is not None else ""), fontsize=9, loc="left")
    if ax.get_legend_handles_labels()[0]:  # on the title's line, to the right
        ax.legend(loc="lower right", bbox_to_anchor=(1.0, 0.99), ncol=5, fontsize=7, frameon=False,
                  handlelength=1.2, borderaxespad=0.1, columnspacing=1.0)
    axc.set_ylim(0, 1.05)
    axc.set_ylabel("confidence")
    axc.set_title("confidence of each decision", fontsize=9, loc="left")
    return out


def _accuracy(idx, truth):
    scored = truth >= 0
    return float(np.mean(idx[scored] == truth[scored])) if np.any(scored) else None


def _latency_panel(ax, d):
    h = d["latency_hist"]
    e, steady, flush = h["edges_ms"], h["steady"], h["flush"]
    used = np.flatnonzero((steady + flush) > 0)
    out = {"edges_ms": e, "steady": steady, "flush": flush}
    ax.set_title("latency per decision", fontsize=9, loc="left")
    if not len(used):
        _empty(ax, "no latency measured")
        ax.set_xticks([])
        ax.set_yticks([])
        return out
    a, b = max(used[0] - 1, 0), min(used[-1] + 2, len(e) - 1)
    w = np.diff(e)[a:b]
    ax.bar(e[a:b], steady[a:b], width=w, align="edge", color="tab:blue", alpha=0.8,
           label=f"full window ({int(steady.sum())})" if steady.any() else None)
    if flush.any():
        ax.bar(e[a:b], flush[a:b], width=w, bottom=steady[a:b], align="edge", color="tab:orange", alpha=0.8,
               label=f"partial window ({int(flush.sum())})")
    ax.set_xscale("log")
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0), numticks=12))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("ms (log scale)", fontsize=8)
    ax.set_ylabel("decisions", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.set_ylim(0, (steady + flush).max() * 1.45)  # room for the legend above the bars
    ax.legend(fontsize=7, frameon=False, loc="upper left")
    return out


def _info_panel(ax, d):
    ax.axis("off")
    s = d["summary"] or {}
    lines = []
    if d["recordings"] > 1:
        lines.append(f"{d['recordings']} recordings, {d['duration']:.2f} s of stream")
    elif s:
        lines.append(f"{os.path.basename(str(s.get('source') or ''))[:34]}")
        lines.append(f"{s.get('format')} ({s.get('kind')}), {d['duration']:.2f} s")
    if s.get("precision"):
        lines.append(f"{s['precision']} precision" + (" (as deployed)" if s.get("precision") == s.get(
            "deployed_precision") else f" (deployed: {s.get('deployed_precision')})"))
    lines.append(f"{d['steps']:,} steps" + (f", every {_nth(d['stride'])} drawn" if d["stride"] > 1 else ""))
    nd = d["n_decisions"]
    no = int(np.sum(d["decisions"]["index"] < 0))
    lines.append(f"{nd:,} decision{'s' if nd != 1 else ''}" + (f", {no} without a class" if no else ""))
    acc = _accuracy(d["decisions"]["index"], d["decisions"]["truth"])
    if acc is not None:
        lines.append(f"accuracy against the truth {acc:.1%}")
    lat = s.get("latency_ms") or {}
    if lat.get("p50") is not None and d["recordings"] == 1:
        lines.append(f"latency p50 {lat['p50']:.3g} ms, p99 {lat['p99']:.3g} ms")
    lines.append("")
    lines.append("spikes (per neuron per step)")
    for lay in d["layers"][:12]:
        rate = lay["spikes"] / (max(d["steps"], 1) * lay["size"])
        lines.append(f" {_node(lay['name'])[:10]:<10} {int(lay['spikes']):>9,} ({rate:.3f})")
    if len(d["layers"]) > 12:
        lines.append(f"  … {len(d['layers']) - 12} more")
    ax.text(0.0, 1.0, "\n".join(lines), transform=ax.transAxes, va="top", ha="left", fontsize=7,
            family="monospace")


def _segment_names(ax, d):
    """Each recording's name (and truth) inside the top of the input panel, when there are several."""
    segs = d["segments"]
    if len(segs) < 2 or len(segs) > 40:
        return
    for seg in segs:
        name = os.path.splitext(os.path.basename(str(seg.get("name") or "")))[0]
        if seg.get("truth") is not None:
            name += f" ({seg['truth']})" if name else str(seg["truth"])
        ax.text(seg["t0"], 0.97, name, transform=ax.get_xaxis_transform(), fontsize=6, va="top", ha="left",
                color="0.1", clip_on=True, bbox={"boxstyle": "square,pad=0.15", "fc": "white", "ec": "none",
                                                 "alpha": 0.75})
