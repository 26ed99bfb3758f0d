"""Human-readable reports on a rich console: what the command line prints.

Each function takes a result (a model summary, a quantization report, a device profile, a
recording's info, ...) and a :class:`rich.console.Console`, and prints it; computing the result
is left to the library. ``--json`` prints the same results as JSON instead.
"""

from __future__ import annotations

import logging
import sys

from .card import ModelCard, StreamConfig


class _WarningLines(logging.Handler):
    """The library's log records as ``warning: ...`` lines on the stderr of the moment."""

    def emit(self, record):
        try:
            sys.stderr.write(f"warning: {' '.join(record.getMessage().split())}\n")
        except Exception:  # noqa: BLE001 - logging must never end the command
            self.handleError(record)


def log_warnings_to_stderr() -> None:
    """Repairs and notices the library logs (damaged input skipped, a link reconnected, a
    Numba cache rebuilt) reach stderr as one ``warning:`` line each, like every other notice
    of the command line, instead of bare lines from Python's fallback handler."""
    lg = logging.getLogger("edgebrain")
    if not any(isinstance(h, _WarningLines) for h in lg.handlers):
        h = _WarningLines(logging.WARNING)
        lg.addHandler(h)


#: the width of a console that is not a terminal: wide enough that no line or table row is cut
PIPE_WIDTH = 100_000


def console(stderr: bool = False):
    """The rich console every command prints on (stdout, or stderr). On a terminal it wraps at the
    terminal's width; anywhere else (a pipe, a file, a log) it never wraps or truncates, so that
    names can be copied and a table row stays one line."""
    from rich.console import Console

    c = Console(stderr=stderr)
    if c.is_terminal:
        return c
    return Console(stderr=stderr, soft_wrap=True, width=PIPE_WIDTH)


def _table():
    from rich.table import Table

    return Table


# ---------------------------------------------------------------------- models


def print_import(c, model_name: str, summary: dict) -> None:
    """How a NIR file was read (``Model.summary()["import"]``): dialect, why, dt, reset, warnings."""
    imp = summary.get("import") or {}
    if imp:
        c.print(f"[bold]{model_name}[/]: dialect [cyan]{summary['dialect']}[/] (detected {imp.get('detected')}: "
                f"{imp.get('reason')}); dt = {summary['dt']:g} s ({imp.get('dt_source')}); reset = {summary['reset']}")
        for w in imp.get("warnings", []):
            c.print(f"[yellow]warning:[/] {w}")


def print_convert(c, model_name: str, result: dict, summary: dict, rep) -> None:
    """What ``edgebrain convert`` did (:func:`edgebrain.apps.convert.convert`): how the file was
    read, the quantization report if any, and the file written."""
    from pathlib import Path

    print_import(c, model_name, summary)
    if rep:
        print_quant(c, rep)
    out = Path(result["output"])
    c.print(f"wrote {out} ({out.stat().st_size} bytes, {result['nodes']} nodes, {result['params']} parameters)")


def print_quant(c, rep) -> None:
    """A :class:`edgebrain.quant.QuantReport`: per layer scales, clipping, saturation, agreement."""
    t = _table()(title=f"quantization: int{rep.weight_bits} weights, int{rep.state_bits} state, "
                       f"{'per-channel' if rep.per_channel else 'per-layer'}, {rep.decay} decay, {rep.steps} steps")
    for col in ("node", "kind", "out scale", "weight scale", "state scale", "clipped", "saturated", "spike agreement"):
        t.add_column(col)
    for lr in rep.layers:
        if lr.kind in ("Input", "Output", "Flatten"):
            continue
        ws = f"{lr.weight_scale[0]:.3g}..{lr.weight_scale[1]:.3g}" if lr.weight_scale else ""
        t.add_row(lr.name, lr.kind, f"{lr.out_scale:.3g}", ws, f"{lr.state_scale:.3g}" if lr.state_scale else "",
                  str(lr.clipped_weights + lr.clipped_bias), str(lr.saturations),
                  f"{100 * lr.spike_agreement:.2f} %" if lr.spike_agreement is not None else "")
    c.print(t)
    line = f"decisions agreeing with float: {100 * rep.output_agreement:.1f} %"
    if rep.float_accuracy is not None:
        line += f"; accuracy float {100 * rep.float_accuracy:.1f} % vs fixed point {100 * rep.int_accuracy:.1f} %"
    c.print(line)


def print_inspect(c, model_name: str, s: dict, meta: dict) -> None:
    """A model's summary (``Model.summary()``): shapes, dialect, one row per node, footprint,
    recurrent edges, then the model card if ``meta`` (the graph's metadata) holds one."""
    imp = s.get("import") or {}
    c.print(f"[bold]{model_name}[/]  input {tuple(s['input_shape'])} → outputs "
            f"{', '.join(f'{k} {tuple(v)}' for k, v in s['outputs'].items())}")
    if s["dialect"]:
        c.print(f"dialect [cyan]{s['dialect']}[/], dt = {s['dt']:g} s, reset = {s['reset']}")
    if imp:
        c.print(f"  detected: {imp.get('detected')} — {imp.get('reason')}; dt {imp.get('dt_source')}")
        for w in imp.get("warnings", []):
            c.print(f"  [yellow]warning:[/] {w}")
    t = _table()()
    cols = ("#", "node", "kind", "input", "output", "params", "state", "bytes (float32)")
    for col in cols + (("bytes (fixed)",) if s["quantized"] else ()):
        t.add_column(col, justify="right" if col in ("#", "params", "state") or col.startswith("bytes") else "left")
    for i, r in enumerate(s["nodes"]):
        row = [str(i), r["name"], r["kind"], str(tuple(r["in"])), str(tuple(r["out"])), str(r["params"]),
               str(r["state"]), str(r["float_bytes"])]
        if s["quantized"]:
            row.append(str(r["int_bytes"]))
        t.add_row(*row)
    c.print(t)
    tot = s["totals"]
    c.print(f"{tot['params']} parameters; footprint float32: {tot['float_bytes']} B weights + "
            f"{tot['state_float_bytes']} B state" + (
                f"; fixed point (int{s['weight_bits']} weights, int{s['state_bits']} state): {tot['int_bytes']} B "
                f"weights + {tot['state_int_bytes']} B state" if s["quantized"] else "; not quantized"))
    if s["delayed_edges"]:
        c.print("recurrent edges (one-step delay): " + ", ".join(f"{a}→{b}" for a, b in s["delayed_edges"]))
    card = ModelCard.from_meta(meta)
    if card:
        print_card(c, card, StreamConfig.from_meta(meta))


def print_card(c, card: ModelCard, stream: StreamConfig) -> None:
    """The model card stored in a (zoo) model: data, pre-processing, accuracy, cost."""
    c.print(f"[bold]model card[/]: {card.title}")
    c.print(f"  data: {card.data}")
    c.print(f"  encoder {stream.encoder}; decoder {stream.decoder}; rate {stream.rate} steps/s; "
            f"classes {', '.join(map(str, stream.labels or []))}")
    for r in card.results:
        c.print(f"  {r['model']}, {r['precision']}: accuracy {100 * r['accuracy']:.2f} %")
    if card.confusion_int8 and card.labels:
        c.print("  int8 confusion (rows truth, columns decision): " + "; ".join(
            f"{lab} " + "/".join(str(v) for v in row) for lab, row in zip(card.labels, card.confusion_int8)))
    act = card.activity
    if act:
        c.print(f"  spike activity {act.get('mean_spike_activity', 0):.3f} (mean over populations); synaptic operations "
                f"per second of input {act.get('synaptic_ac_per_s', 0):.3g} AC + {act.get('synaptic_mac_per_s', 0):.3g} MAC")
    lat = card.latency_us
    if lat:
        c.print(f"  latency per timestep on {card.machine}: float p50 {lat['float']['p50']} µs, "
                f"int8 p50 {lat['int']['p50']} µs")


def print_zoo(c, rows: list) -> None:
    """The zoo's models (``edgebrain.zoo.entries()``) as a table."""
    t = _table()()
    for col in ("model", "task", "accuracy float", "accuracy int8", "params", "int8 bytes"):
        t.add_column(col)
    pct = (lambda v: f"{100 * v:.1f} %" if v is not None else "—")
    for r in rows:
        t.add_row(r["name"], r["title"], pct(r["accuracy_float"]), pct(r["accuracy_int8"]), str(r["params"]),
                  str(r["int8_bytes"]))
    c.print(t)


# ---------------------------------------------------------------------- data


def print_recording_info(c, file: str, res: dict) -> None:
    """A recording's info (``edgebrain.stream.recording.info``): format, size, rate, damage, with units."""
    from rich.markup import escape

    c.print(f"[bold]{escape(file)}[/]: {res['format']} ({res['kind']})", highlight=False)
    lines = []
    if res.get("sensor_size") is not None:
        lines.append(("sensor size", " × ".join(map(str, res["sensor_size"])) + " pixels"))
    if res.get("channels") is not None:
        names = res.get("channel_names")
        lines.append(("channels", f"{res['channels']}" + (f" ({', '.join(map(str, names))})" if names else "")))
    if res.get("rate") is not None:
        lines.append(("rate", f"{res['rate']:g} Hz"))
    if res.get("items") is not None:
        per = " per channel" if res["kind"] == "samples" else ""
        lines.append((res["kind"] if res["kind"] in ("events", "samples") else "items", f"{res['items']}{per}"))
    if res.get("duration") is not None:
        lines.append(("duration", f"{res['duration']:.6g} s"))
    if res.get("label_names"):
        lines.append(("labels", ", ".join(map(str, res["label_names"]))))
    for k, v in lines:
        c.print(f"  {k}: {v}", highlight=False, markup=False)
    dmg = res["damage"]
    c.print(f"  damage: {dmg['repaired']} repaired, {dmg['dropped']} dropped" + ("" if dmg["repaired"] or dmg["dropped"]
                                                                                   else " (none found)"))
    for m in dmg["messages"][:10]:
        c.print(f"    {m}", highlight=False, markup=False)


def print_datasets(c, rows: list, roots: list) -> None:
    """The known datasets (``edgebrain.datasets.status()``) and the folders searched."""
    for r in rows:
        where = r["found"] or "[yellow]not found[/] (edgebrain data fetch " + r["name"] + ")"
        c.print(f"[bold]{r['name']}[/] ({r['files']} files, {r['licence']}): {r['description']}\n    {where}")
    c.print("searched: " + "; ".join(f"{w} ({p})" for w, p in roots))


def print_fetch(c, name: str, res: dict) -> None:
    """What ``edgebrain data fetch`` did (``edgebrain.datasets.fetch``)."""
    c.print(f"{name}: {res['fetched']} files fetched ({res['bytes_fetched']:,} bytes), "
            f"{res['already_present']} already present and verified → {res['destination']}")


def format_record(res: dict) -> str:
    """The line ``edgebrain record`` prints for a recording written (``edgebrain.stream.recording.record``)."""
    return (f"wrote {res['output']}: {res['items']} {res['unit']} ({res['seconds']:.3f} s); "
            f"{res['input']['repaired']} repaired, {res['input']['dropped']} dropped")


# ---------------------------------------------------------------------- devices


def device_rows(devs: list) -> list[dict]:
    """One summary row per device profile (what ``edgebrain devices list --json`` prints)."""
    return [{"name": d.name, "title": d.data["title"], "kind": d.kind, "cpu": d.data["cpu"]["model"],
             "cores": d.data["cpu"]["cores"], "clock_mhz": d.data["cpu"]["clock_mhz"],
             "ram_bytes": d.data["memory"]["ram_bytes"], "flash_bytes": d.data["memory"]["flash_bytes"],
             "python": d.data["python"]["runtime"], "meters": [s["meter"] for s in d.data["sensors"]], "file": d.path}
            for d in devs]


def print_devices(c, rows: list, search_dirs: list) -> None:
    """The device profiles (rows of :func:`device_rows`) as a table, then where they were searched."""
    from .devices import fmt_bytes

    t = _table()()
    for col in ("device", "kind", "cores", "clock", "RAM", "flash", "Python", "title"):
        t.add_column(col, no_wrap=col != "title")
    for r in rows:
        t.add_row(r["name"], r["kind"], str(r["cores"]), f"{r['clock_mhz']:.0f} MHz", fmt_bytes(r["ram_bytes"]),
                  fmt_bytes(r["flash_bytes"]) if r["flash_bytes"] else "storage", r["python"], r["title"])
    c.print(t)
    c.print("searched: " + "; ".join(f"{w} ({p})" for w, p in search_dirs) + "; or pass --device FILE.toml")


def print_device(c, d) -> None:
    """Every field of a device profile (``edgebrain.devices.load``), with its source; estimated
    values are marked."""
    from rich.markup import escape

    from .devices import fmt_bytes

    c.print(f"[bold]{d.name}[/]: {d.data['title']} ({d.kind}) — {d.path}")
    if d.data.get("notes"):
        c.print(f"  {d.data['notes']}", markup=False)
    for sec in ("cpu", "memory", "python", "power", "perf", "runtime", "energy"):
        c.print(f"[bold]{sec}[/]" + ("  (pJ; memory per 64-bit access)" if sec == "energy" else ""))
        for k, v in d.data[sec].items():
            p = d.provenance.get(f"{sec}.{k}")
            if isinstance(v, int) and k.endswith("_bytes") and v:
                v = f"{v} ({fmt_bytes(v)})"
            tag = ""
            if p:
                tag = f"  [dim]\\[{p['source']}][/]" + ("  [yellow]estimated[/]" if p["estimated"] else "")
                if p.get("note"):
                    tag += f"  [dim]{escape(p['note'])}[/]"
            c.print(f"  {k} = {escape(str(v))}{tag}", highlight=False)
    c.print("[bold]sensors[/]")
    for s in d.data["sensors"]:
        extra = ", ".join(f"{k} {s[k]}" for k in ("scope", "rate_hz", "rails") if k in s)
        c.print(f"  {s['meter']}: {s['how']}" + (f" ({extra})" if extra else ""), highlight=False, markup=False)
    c.print("[bold]sources[/]")
    for k, v in d.data["sources"].items():
        c.print(f"  {k}: {v}", highlight=False, markup=False)


def print_fit(c, model_name: str, dev, r: dict) -> None:
    """Whether a model fits a device (:func:`edgebrain.apps.fit.fit`): RAM and flash with their
    margins, latency and energy estimates, warnings and the assumptions behind them."""
    from rich.markup import escape

    from .devices import fmt_bytes

    fb = fmt_bytes
    col = "green" if r["fits"] else "red"
    c.print(f"[bold]{model_name}[/] on [bold]{dev.name}[/] ({dev.data['title']}), {r['precision']} precision: "
            f"[bold {col}]{r['verdict'].upper()}[/]")
    ram = r["ram"]
    c.print(f"  RAM   {fb(ram['need'])} of {fb(ram['available'])} — margin {fb(ram['margin'])} "
            f"({ram['margin_pct']:.1f} %): " + ", ".join(f"{k} {fb(v)}" for k, v in ram["items"].items()),
            highlight=False)
    fl = r["flash"]
    if fl.get("checked") is False:
        c.print(f"  flash not checked: {fl['reason']} (model weights {fb(fl['need'])})", highlight=False)
    else:
        c.print(f"  flash {fb(fl['need'])} of {fb(fl['available'])} — margin {fb(fl['margin'])} "
                f"({fl['margin_pct']:.1f} %): " + ", ".join(f"{k} {fb(v)}" for k, v in fl["items"].items()),
                highlight=False)
    line = f"  latency per timestep ≈ {r['latency_s'] * 1e6:.3g} µs (analytical estimate)"
    rt = r["realtime"]
    if rt:
        line += (f"; {rt['rate']:g} steps/s leaves {rt['budget_s'] * 1e6:.3g} µs per step → "
                 f"{rt['load_pct']:.3g} % of one core")
    c.print(line, highlight=False)
    e = r["energy"]
    line = (f"  energy per timestep ≈ {e['per_step_j'] * 1e9:.4g} nJ (operations + memory; analytical estimate), "
            f"{e['device_per_step_j'] * 1e6:.4g} µJ at the device's active power")
    c.print(line, highlight=False)
    if "per_window_j" in e:
        c.print(f"  energy per decision ({e['window']['window']} steps) ≈ {e['per_window_j'] * 1e6:.4g} µJ "
                f"(operations + memory), {e['device_per_window_j'] * 1e3:.4g} mJ at active power", highlight=False)
    for w in r["warnings"]:
        c.print("  [yellow]warning:[/] " + escape(w), highlight=False)
    c.print("[bold]assumptions[/]")
    for a in r["assumptions"]:
        c.print(f"  - {a}", highlight=False, markup=False)
