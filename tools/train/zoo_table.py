"""Write docs/zoo.md: the results table of every zoo model, from the cards stored in the models.

    python tools/train/zoo_table.py
"""

from pathlib import Path

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
    out = ROOT / "docs" / "zoo.md"
    out.write_text("\n".join(lines))
    print("wrote", out)


if __name__ == "__main__":
    main()
