"""``edgebrain demo har|kws|nmnist``: test recordings of a dataset (never seen in training)
streamed through a zoo model, each decision printed against the truth as it happens, then the
accuracy, latency, speed against real time and the analytical energy per decision. Without the
recordings, the built-in synthetic example runs instead (:mod:`.motion`), and says so.
"""

from __future__ import annotations

import json
import time

import numpy as np

from .energy import energy_per_decision
from .motion import run_demo
from .printing import SYNTHETIC_BANNER, print_zoo_summary
from .scoring import latency_percentiles_ms, score_decisions


ZOO_DEMOS = {
    # name: (zoo model, dataset, default number of recordings)
    "har": ("har-l2mu", "sp-sw-har", 3),
    "kws": ("kws", "fsdd", 10),
    "nmnist": ("nmnist", "nmnist-small", 10),
}


def demo_recordings(name: str, root, n: int) -> list[tuple[str, str | None]]:
    """(file, truth or None when the file carries per-sample labels) for demo ``name``: test-split
    recordings only (never seen in training)."""
    from pathlib import Path

    root = Path(root)
    if name == "har":  # test subjects s16–s18; labels are inside the files
        files = sorted(p for s in (16, 17, 18) for p in (root / f"s{s}").glob(f"s{s}_*_sw.csv"))
        return [(str(f), None) for f in files[:n]]
    if name == "kws":  # speaker theo, one recording per digit in turn
        out = []
        for i in range(50):
            for d in range(10):
                f = root / "recordings" / f"{d}_theo_{i}.wav"
                if f.is_file():
                    out.append((str(f), str(d)))
                if len(out) >= n:
                    return out
        return out
    if name == "nmnist":  # the 100 test samples, labels in test100.txt
        from ...datasets import nmnist_labels

        files = [(root / f"{i}.bs2", d) for i, d in nmnist_labels(root / "test100.txt").items()]
        return [(str(f), str(d)) for f, d in files if f.is_file()][:n]
    raise ValueError(name)


def run_zoo_demo(name: str, precision: str = "int", items: int = 0, realtime: bool = False,
                 json_out: bool = False, plot: str | None = None) -> dict:
    """Stream test recordings through zoo model ``name`` and score its decisions (see `edgebrain demo`);
    ``plot``: a PNG path for the timeline of all of them, one after another (:mod:`..timeline_plot`)."""
    from ... import datasets, zoo
    from ...errors import InputError
    from ...model import Model
    from ...report import console
    from ...stream.pipeline import build_pipeline
    from ...stream.sinks import ConsoleSink

    if name not in ZOO_DEMOS:
        raise InputError(f"unknown demo '{name}'; expected one of {', '.join(ZOO_DEMOS)} or motion")
    if precision not in ("int", "float"):
        raise InputError(f"--precision {precision}; expected int or float")
    model_name, ds, n_default = ZOO_DEMOS[name]
    c = console(stderr=json_out)
    root = datasets.find(ds)
    if root is None:
        c.print(f"[yellow]no {ds} recordings found[/] (looked in {datasets.searched(ds)}); set EDGEBRAIN_DATA to "
                f"the folder holding {datasets.DATASETS[ds].path}, or `edgebrain data fetch {ds}` downloads them. "
                "Running the built-in synthetic example instead.", highlight=False)
        if json_out:  # (the text printout starts with the banner)
            c.print(SYNTHETIC_BANNER, highlight=False)
        return run_demo(json_out=json_out, extra={"demo": name, "fallback_reason": f"no {ds} recordings found"},
                        plot=plot)
    model = Model.load(zoo.path(model_name))
    recs = demo_recordings(name, root, items or n_default)
    figure = None
    if plot:
        from ..timeline_plot import TimelineFigure

        figure = TimelineFigure(plot, model, inputs=[f for f, _ in recs], names_from=recs[0][0] if recs else None,
                                title=f"edgebrain demo {name}: zoo:{model_name}, {precision} precision, "
                                      f"{len(recs)} test recording{'s' if len(recs) != 1 else ''}")
    card = model.graph.meta.get("card") or {}
    c.print(f"[bold]edgebrain demo {name}[/]: zoo:{model_name} ({card.get('title', '')}), {precision} precision, "
            f"{len(recs)} test recording{'s' if len(recs) != 1 else ''} from {root}")
    # the first use compiles the kernels (Numba caches them on disk): do it before timing anything
    t0 = time.perf_counter()
    build_pipeline(model, recs[0][0], precision=precision, max_seconds=0.5, activity=False).run()
    c.print(f"  (first-use compile and warm-up: {time.perf_counter() - t0:.1f} s)")
    decisions, lat, lat_end = [], [], []
    stream_s = wall_s = 0.0
    steps_total = 0
    for f, truth in recs:
        c.print(f"  [cyan]{f}[/]" + (f"  (truth {truth})" if truth is not None else ""))
        sink = ConsoleSink(c, truth, layout="demo", keep=True)
        if figure:
            figure.recorder.begin(f, truth)
        p = build_pipeline(model, f, precision=precision, realtime=realtime, sinks=[sink],
                           observers=figure.observers if figure else ())
        s = p.run()
        wall_s += s["wall_seconds"]  # the stream itself: the pipeline's set-up and warm-up left out
        stream_s += s["stream_seconds"]
        steps_total += s["steps"]
        lat += list(np.array(p.latencies) * 1e3)
        lat_end += list(np.array(p.flush_latencies) * 1e3)  # decided when the recording ended
        for d in sink.log:
            t = d.truth if d.truth is not None else truth
            decisions.append({"file": f, "t": round(float(d.t), 4), "label": d.label,
                              "confidence": round(float(d.confidence), 4), "truth": t})
    # a keyword or N-MNIST recording holds one sample: its last decision (the window covering it) counts
    scored, correct = score_decisions(decisions, last_per_file=name != "har")
    energy = energy_per_decision(model, precision, steps_total / max(len(decisions), 1))
    result = {
        "demo": name, "model": f"zoo:{model_name}", "precision": precision, "recordings": [f for f, _ in recs],
        "decisions": decisions, "accuracy": round(correct / scored, 4) if scored else None, "scored": scored,
        "latency_ms": latency_percentiles_ms(lat), "end_of_recording_latency_ms": latency_percentiles_ms(lat_end),
        "stream_seconds": round(stream_s, 3), "wall_seconds": round(wall_s, 3),
        "realtime_factor": round(stream_s / wall_s, 1) if wall_s > 0 else None,
        "energy_per_decision": energy, "synthetic": False,
    }
    if figure:
        result["plot"] = figure.write()
    if json_out:
        print(json.dumps(result, indent=1))
        return result
    print_zoo_summary(c, result, realtime, stream_s, wall_s)
    if figure:
        c.print(f"timeline: wrote {result['plot']['path']}", highlight=False)
    return result
