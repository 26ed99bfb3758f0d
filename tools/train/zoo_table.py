"""Write docs/zoo.md: the results table of every zoo model, from the cards stored in the models, and the
cross-validation of the smartwatch models from the result files of ``tools/train/har_cv.py``.

    python tools/train/zoo_table.py
"""

import json
from pathlib import Path

import numpy as np

from edgebrain import zoo
from edgebrain.model import Model

ROOT = Path(__file__).resolve().parents[2]


def main():
    lines = ["# Model zoo", "",
             "Models trained on real recordings by the scripts in `tools/train/`, exported to NIR by the training "
             "framework, converted and quantized by edgebrain, and evaluated **with edgebrain** on held-out data "
             "(test split never used for training or model selection). Use them as `zoo:NAME` wherever a model is "
             "accepted, e.g. `edgebrain stream zoo:har-l2mu --source s16_01_sw.csv --json`. Each model's card "
             "(`edgebrain/zoo/NAME.md`, also shown by `edgebrain inspect zoo:NAME`) has the per-class confusion, "
             "footprint, spike activity, synaptic operations and latency.", "",
             "| model | task | data | spiking float | spiking int8 | non-spiking baseline | params | "
             "int8 weights | latency / step (int8) |", "|---|---|---|---|---|---|---|---|---|"]
    notes = []
    for n in zoo.names():
        card = Model.load(zoo.path(n)).graph.meta.get("card") or {}
        res = card.get("results", [])
        base = [r for r in res if "baseline" in r["model"].lower()]
        pct = lambda v: f"{100 * v:.1f} %"  # noqa: E731
        fp = card.get("footprint", {})
        lat = card.get("latency_us", {}).get("int", {})
        lines.append(f"| [`zoo:{n}`](../edgebrain/zoo/{n}.md) | {card.get('title', '')} | "
                     f"{card.get('data', '').split(' (')[0].split(':')[0]} | {pct(card['accuracy']['float'])} | "
                     f"{pct(card['accuracy']['int8'])} | {pct(base[0]['accuracy']) if base else '—'} | "
                     f"{fp.get('params', 0):,} | {fp.get('weights_int8_bytes', 0):,} B | {lat.get('p50', '—')} µs |")
        if card.get("results_note"):
            notes.append(f"- **{n}**: {card['results_note']}")
    lines += ["", "Targets (issue 4): each spiking model within 2 points of its non-spiking baseline or better; "
              "int8 within 1 point of float; the L2MU at least as accurate as the plain LIF network.", "",
              "## Notes per model", ""] + notes + [
              "", "Latency is `session.step` at batch 1 on the training machine (see each card). Regenerate this "
              "page with `python tools/train/zoo_table.py`.", ""]
    lines += cv_section(ROOT / "tools" / "train" / "results" / "har-cv")
    out = ROOT / "docs" / "zoo.md"
    out.write_text("\n".join(lines))
    print("wrote", out)


def cv_runs(folder: Path) -> dict:
    """``{(kind, variant): [result, ...]}`` from the result files of tools/train/har_cv.py."""
    runs: dict = {}
    for f in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        r = json.loads(f.read_text())
        runs.setdefault((r["kind"], r.get("variant", "")), []).append(r)
    return runs


def cv_summary(rs: list) -> dict:
    """Per-decision accuracy (int8 for a spiking model, float for the GRU) per fold, averaged over the seeds of
    that fold; the mean and standard deviation over folds, and the decisions pooled over every run."""
    key = "int8" if "int8" in rs[0] else "float"
    folds: dict = {}
    for r in rs:
        folds.setdefault(r["fold"], []).append(r[key]["accuracy"])
    per_fold = {k: float(np.mean(v)) for k, v in sorted(folds.items())}
    vals = np.array(list(per_fold.values()))
    out = {"precision": key, "folds": per_fold, "seeds": sorted({r["seed"] for r in rs}), "runs": len(rs),
           "mean": float(vals.mean()), "std": float(vals.std(ddof=1)) if len(vals) > 1 else float("nan")}
    if "float" in rs[0] and key == "int8":
        out["float_mean"] = float(np.mean([np.mean([r["float"]["accuracy"] for r in rs if r["fold"] == k])
                                           for k in folds]))
    return out


def cv_section(folder: Path) -> list:
    """docs/zoo.md's cross-validation table (empty until results exist)."""
    runs = cv_runs(folder)
    runs = {k: v for k, v in runs.items() if k[1] != "smoke"}
    if not runs:
        return []
    L = ["", "## Cross-validation on new wearers (issue 18)", "",
         "Six folds of three subjects over s01–s18 (`tools/train/har_cv.py`): each model retrained per fold on "
         "twelve subjects (the weights of its best epoch on three other subjects kept), scored on the fold's "
         "three test subjects by streaming their recordings through edgebrain (per-decision accuracy, as `edgebrain stream` decides; the GRU by "
         "the same decoder rule in torch). Fold 5 is the fixed split of the table above. Mean ± standard "
         "deviation over folds (each fold averaged over its seeds); the result files are in "
         "`tools/train/results/har-cv/`.", "",
         "| model | variant | precision | folds | seeds | mean ± sd | per fold |", "|---|---|---|---|---|---|---|"]
    for (kind, variant), rs in sorted(runs.items()):
        s = cv_summary(rs)
        sd = "" if np.isnan(s["std"]) else f" ± {100 * s['std']:.1f}"
        L.append(f"| {kind} | {variant or 'zoo recipe'} | {s['precision']} | {len(s['folds'])} | "
                 f"{','.join(map(str, s['seeds']))} | {100 * s['mean']:.1f}{sd} % | "
                 + " · ".join(f"f{k} {100 * v:.1f}" for k, v in s["folds"].items()) + " |")
    return L + [""]


if __name__ == "__main__":
    main()
