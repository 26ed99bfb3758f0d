"""Print the worked example of docs/energy.md: a zoo HAR model on every device profile.

    python tools/energy_table.py [--model zoo:har-l2mu] [--recording FILE.csv] [--no-host]

For every profile (``edgebrain devices list``): the verdict of ``edgebrain devices fit`` (RAM and
flash at the deployed precision, with the margin), the estimated latency per timestep, and the
analytical energy per timestep and per decision (``edgebrain.energy.estimate``: counted operations ×
the profile's energies per operation, plus memory accesses; no static power), both

* in the worst case ``devices fit`` uses (one timestep with every synapse active), and
* on a real recording (default: ``imu/sp-sw-har/s16/s16_01_sw.csv``, a test-split subject, found
  through ``$EDGEBRAIN_DATA`` or ``../shared/datasets``), streamed through the model as
  ``edgebrain profile --source`` does: the operations counted on the input the model actually
  received, one decision per decoder hop.

The model is ``zoo:har-l2mu`` when present, else ``zoo:har-lif``. The output is Markdown; paste it into
docs/energy.md. Every number is an analytical estimate; the ``host`` row describes the machine that
ran the script.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from edgebrain import devices as D
from edgebrain import metrics as M
from edgebrain import zoo
from edgebrain.energy.profile import estimate_for, source_workload
from edgebrain.model import Model

DEFAULT_RECORDING = "imu/sp-sw-har/s16/s16_01_sw.csv"


def default_model() -> str:
    for name in ("har-l2mu", "har-lif"):
        if name in zoo.names():
            return "zoo:" + name
    raise SystemExit("no zoo HAR model (har-l2mu or har-lif) is installed")


def default_recording() -> Path | None:
    env = os.environ.get("EDGEBRAIN_DATA")
    root = Path(env) if env else (REPO.parent / "shared" / "datasets")
    p = root / DEFAULT_RECORDING
    return p if p.is_file() else None


def fmt_j(x: float) -> str:
    for unit, f in (("J", 1.0), ("mJ", 1e-3), ("µJ", 1e-6), ("nJ", 1e-9), ("pJ", 1e-12)):
        if abs(x) >= f:
            return f"{x / f:.3g} {unit}"
    return f"{x:.3g} J"


def fmt_s(x: float) -> str:
    for unit, f in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if abs(x) >= f:
            return f"{x / f:.3g} {unit}"
    return f"{x * 1e9:.3g} ns"


def verdict(r: dict) -> str:
    ram = r["ram"]
    s = f"{'yes' if r['fits'] else '**no**'} (RAM {D.fmt_bytes(ram['need'])} of {D.fmt_bytes(ram['available'])}"
    fl = r["flash"]
    if fl.get("checked") is not False:
        s += f"; flash {D.fmt_bytes(fl['need'])} of {D.fmt_bytes(fl['available'])}"
    return s + ")"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="default: zoo:har-l2mu, else zoo:har-lif")
    ap.add_argument("--recording", default=None, help=f"default: <datasets>/{DEFAULT_RECORDING}")
    ap.add_argument("--no-host", action="store_true", help="leave out the host profile (machine-dependent)")
    a = ap.parse_args(argv)
    name = a.model or default_model()
    model = Model.load(name)
    rec = Path(a.recording) if a.recording else default_recording()
    devs = [d for d in D.load_all() if not (a.no_host and d.kind == "host")]
    devs.sort(key=lambda d: ({"host": 0, "sbc": 1, "mcu": 2}[d.kind], d.name))

    # the recording through the model, once per precision needed
    typical = {}
    for precision in sorted({("int" if (model.quant or d.is_mcu) else "float") for d in devs}):
        if rec is None:
            break
        wl = source_workload(model, str(rec), precision)
        typical[precision] = (M.count_ops(model, wl.xs, precision), wl.steps_per_inference, wl.info)

    win = D.decision_window(model)
    rate = (model.graph.meta.get("stream") or {}).get("rate")
    out = []
    head = ["device", "precision", "fits", "latency / step (worst case)", "energy / step (worst case)"]
    if typical:
        head += ["latency / step (recording)", "energy / step (recording)", "energy / decision (recording)",
                 "device energy / decision (active power × latency)"]
    out.append("| " + " | ".join(head) + " |")
    out.append("|" + "---|" * len(head))
    for d in devs:
        r = D.fit(model, d)
        p = r["precision"]
        row = [f"`{d.name}`", p, verdict(r), fmt_s(r["latency_s"]), fmt_j(r["energy"]["per_step_j"])]
        if typical:
            counts, spd, _ = typical[p]
            e = estimate_for(model, counts, d, p, spd)
            row += [fmt_s(e["latency_per_step_s"]), fmt_j(e["per_step_j"]), fmt_j(e["per_inference_j"]),
                    fmt_j(e["device_per_inference_j"])]
        out.append("| " + " | ".join(row) + " |")

    print(f"Model `{name}` ({model.summary()['totals'].get('params', M.metrics(model)['parameter_count'])} "
          f"parameters; decoder `{win['decoder'] if win else '?'}`; {rate:g} steps/s). "
          f"Generated by `python tools/energy_table.py{' --no-host' if a.no_host else ''}`.")
    print()
    if typical:
        for p, (counts, spd, info) in typical.items():
            print(f"Recording `{DEFAULT_RECORDING if not a.recording else rec.name}` ({p}): "
                  f"{info['steps_per_pass']} steps, {info['decisions_per_pass']} decisions "
                  f"({spd:.4g} steps per decision); per sample over the recording: "
                  f"{counts['eff_macs']:.0f} effective MACs, {counts['eff_acs']:.0f} effective ACs, "
                  f"{counts['membrane_updates']:.0f} membrane updates, {counts['dense']:.0f} dense synaptic operations.")
        print()
    else:
        print("(No recording found: worst-case columns only. Set EDGEBRAIN_DATA or pass --recording.)")
        print()
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
