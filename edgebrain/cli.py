"""The ``edgebrain`` command line: convert, inspect, run, demo.

Every user error is printed as one line (file, node or field, what was expected) and the
process exits with code 2; set EDGEBRAIN_DEBUG=1 to see tracebacks.
"""

from __future__ import annotations

import json
import os
import sys
import time
from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer

from .errors import EdgebrainError, InputError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Run spiking models trained elsewhere, fast and frugally, on hardware you can buy.")


class Precision(str, Enum):
    float = "float"
    int = "int"


class Quantize(str, Enum):
    int4 = "int4"
    int8 = "int8"
    int16 = "int16"


def _echo_err(msg: str) -> None:
    typer.echo(f"error: {msg}", err=True)


def _console():
    from rich.console import Console

    return Console()


def _load_model(path: str, dt=None, dialect=None, reset=None):
    from .model import Model

    return Model.load(path, dt=dt, dialect=dialect, reset=reset)


NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK\x03\x04"


def _load_npy(path: str, what: str):
    """A numeric array from a .npy (or single-array .npz) file, checked before any data is read.

    Pickled (object) arrays are refused without being unpickled; a header that promises more
    data than the file holds (truncation) is reported instead of attempting the allocation.
    """
    import numpy as np

    if not os.path.exists(path):
        raise InputError(f"{what} file not found", file=path)
    try:
        with open(path, "rb") as f:
            head = f.read(6)
            if head == NPY_MAGIC:
                f.seek(0)
                _check_npy_header(f, os.fstat(f.fileno()).st_size, path)
                f.seek(0)
                a = np.load(f, allow_pickle=False)
            elif head[:4] == ZIP_MAGIC:
                a = _load_npz(path)
            else:
                raise InputError(f"not a NumPy .npy file: the first bytes are {head!r}; expected the .npy magic "
                                 "b'\\x93NUMPY' at offset 0 (save the array with numpy.save)", file=path)
    except InputError:
        raise
    except IsADirectoryError:
        raise InputError(f"{what} path is a directory; expected a .npy file", file=path) from None
    except (ValueError, OSError, EOFError, MemoryError) as e:
        raise InputError(f"cannot read as a NumPy .npy file ({e}); expected an array saved with numpy.save",
                         file=path) from None
    if a.dtype.kind not in "fiub":
        raise InputError(f"array has dtype {a.dtype}; expected numbers (float, int or bool)", file=path)
    return a


def _check_npy_header(f, size: int, path: str) -> None:
    import numpy as np
    from numpy.lib import format as npf

    try:
        version = npf.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = npf.read_array_header_1_0(f)
        else:
            shape, fortran, dtype = npf.read_array_header_2_0(f)
    except (ValueError, OSError, EOFError, SyntaxError, TypeError) as e:
        raise InputError(f"the .npy header at offset 0 is malformed or truncated ({e})", file=path) from None
    if dtype.hasobject:
        raise InputError(f"the array holds Python objects (dtype {dtype}), stored as a pickle; refused: edgebrain "
                         "never unpickles files. Expected a numeric array", file=path)
    if dtype.kind not in "fiub":
        raise InputError(f"array has dtype {dtype}; expected numbers (float, int or bool)", file=path)
    data0 = f.tell()
    need = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
    have = size - data0
    if have < need:
        raise InputError(f"the .npy header describes a {dtype} array of shape {shape} ({need} bytes from offset "
                         f"{data0}) but the file holds {have} bytes of data (truncated?)", file=path)
    if have > need:
        raise InputError(f"{have - need} unexpected bytes after the array data at offset {data0 + need}",
                         file=path)


def _load_npz(path: str):
    import zipfile

    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as z:
            keys = list(z.keys())
            if len(keys) != 1:
                raise InputError(f"expected a .npy array (or an .npz holding one array), found arrays {keys}",
                                 file=path)
            return z[keys[0]]
    except InputError:
        raise
    except (ValueError, OSError, EOFError, MemoryError, zipfile.BadZipFile, KeyError) as e:
        raise InputError(f"cannot read as a NumPy .npz file ({e}); pickled (object) arrays are refused",
                         file=path) from None


# ---------------------------------------------------------------------- convert


@app.command()
def convert(
    model: str = typer.Argument(..., help="NIR file (.nir) or edgebrain model (.ebm)"),
    output: str = typer.Option(..., "-o", "--output", help="output file: .ebm (edgebrain) or .nir (export)"),
    dt: Optional[float] = typer.Option(None, help="timestep in seconds (default: what the exporter's convention implies)"),
    dialect: Optional[str] = typer.Option(None, help="exporter convention: snntorch, norse, rockpool, sinabs, nir"),
    reset: Optional[str] = typer.Option(None, help="reset where the file cannot say it: zero or subtract"),
    quantize: Optional[Quantize] = typer.Option(None, help="quantize weights: int8 (default choice), int4, int16"),
    calib: Optional[str] = typer.Option(None, help=".npy calibration input, (T, *input) or (T, B, *input)"),
    labels: Optional[str] = typer.Option(None, help=".npy class labels, one per calibration sequence"),
    state_bits: int = typer.Option(16, help="integer state width: 16 or 32"),
    per_layer: bool = typer.Option(False, help="one weight scale per layer instead of per output channel"),
    decay: str = typer.Option("mul", help="integer decay: mul (multiply-shift) or shift (bit shift)"),
    encoder: Optional[str] = typer.Option(None, help="stream pre-processing the model carries, e.g. 'delta:threshold=0.1'"),
    decoder: Optional[str] = typer.Option(None, help="decision rule the model carries, e.g. 'count:window=25'"),
    class_names: Optional[str] = typer.Option(None, "--class-names", help="comma-separated class names, in output order"),
    rate: Optional[float] = typer.Option(None, help="model steps per second of sensor time (for streaming)"),
    json_out: bool = typer.Option(False, "--json", help="print the result as JSON"),
):
    """Convert a NIR file to an edgebrain model (optionally quantized), or a model back to NIR."""
    m = _load_model(model, dt, dialect, reset)
    _set_stream_config(m, encoder, decoder, class_names, rate)
    report = None
    if quantize:
        if not calib:
            raise InputError("quantization needs calibration data: pass --calib FILE.npy (inputs the model will see)")
        from .quant import quantize as q

        xs = _load_npy(calib, "calibration")
        lab = _load_npy(labels, "labels") if labels else None
        bits = {"int4": 4, "int8": 8, "int16": 16}[quantize.value]
        try:
            m, report = q(m, xs, weight_bits=bits, state_bits=state_bits, per_channel=not per_layer,
                          decay=decay, labels=lab, progress=not json_out)
        except EdgebrainError as e:
            raise e.with_file(calib) if isinstance(e, InputError) else e
    out = Path(output)
    if out.suffix.lower() == ".nir":
        m.export_nir(out)
    else:
        m.save(out)
    summary = m.summary()
    result = {"input": model, "output": str(out), "import": summary.get("import"), "dt": summary["dt"],
              "dialect": summary["dialect"], "nodes": len(summary["nodes"]), "params": summary["totals"]["params"],
              "quantization": report.as_dict() if report else None}
    if json_out:
        typer.echo(json.dumps(result, indent=1))
        return
    c = _console()
    imp = summary.get("import") or {}
    if imp:
        c.print(f"[bold]{model}[/]: dialect [cyan]{summary['dialect']}[/] (detected {imp.get('detected')}: "
                f"{imp.get('reason')}); dt = {summary['dt']:g} s ({imp.get('dt_source')}); reset = {summary['reset']}")
        for w in imp.get("warnings", []):
            c.print(f"[yellow]warning:[/] {w}")
    if report:
        _print_quant(c, report)
    c.print(f"wrote {out} ({out.stat().st_size} bytes, {result['nodes']} nodes, {result['params']} parameters)")


def _set_stream_config(m, encoder, decoder, class_names, rate) -> None:
    """Store stream settings in the model, after checking that they can be built."""
    if not any(v is not None for v in (encoder, decoder, class_names, rate)):
        return
    from .stream.registry import build_decoder, build_encoder

    cfg = dict(m.graph.meta.get("stream") or {})
    if encoder is not None:
        build_encoder(encoder)
        cfg["encoder"] = encoder
    if class_names is not None:
        names = [x.strip() for x in class_names.split(",")]
        n_out = sum(int(__import__("numpy").prod(sh)) for sh in m.output_shapes.values())
        if len(names) != n_out or not all(names):
            raise InputError(f"--class-names gives {len(names)} names; the model has {n_out} outputs")
        cfg["labels"] = names
    if decoder is not None:
        from .stream.pipeline import _with_labels, default_labels

        name, kw = _with_labels(decoder, default_labels(m, cfg))
        build_decoder({"type": name, **kw})
        cfg["decoder"] = decoder
    if rate is not None:
        if not rate > 0:
            raise InputError(f"--rate {rate}; expected steps per second > 0")
        cfg["rate"] = float(rate)
    m.graph.meta["stream"] = cfg


def _print_quant(c, rep) -> None:
    from rich.table import Table

    t = Table(title=f"quantization: int{rep.weight_bits} weights, int{rep.state_bits} state, "
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


# ---------------------------------------------------------------------- inspect


@app.command()
def inspect(
    model: str = typer.Argument(..., help=".ebm or .nir file"),
    dt: Optional[float] = typer.Option(None, help="timestep (NIR files)"),
    dialect: Optional[str] = typer.Option(None, help="exporter convention (NIR files)"),
    reset: Optional[str] = typer.Option(None, help="zero or subtract (NIR files)"),
    json_out: bool = typer.Option(False, "--json", help="print as JSON"),
):
    """Show nodes, shapes, parameters, memory footprint and the detected NIR dialect."""
    m = _load_model(model, dt, dialect, reset)
    s = m.summary()
    if json_out:
        typer.echo(json.dumps(s, indent=1, default=str))
        return
    from rich.table import Table

    c = _console()
    imp = s.get("import") or {}
    c.print(f"[bold]{model}[/]  input {tuple(s['input_shape'])} → outputs "
            f"{', '.join(f'{k} {tuple(v)}' for k, v in s['outputs'].items())}")
    if s["dialect"]:
        c.print(f"dialect [cyan]{s['dialect']}[/], dt = {s['dt']:g} s, reset = {s['reset']}")
    if imp:
        c.print(f"  detected: {imp.get('detected')} — {imp.get('reason')}; dt {imp.get('dt_source')}")
        for w in imp.get("warnings", []):
            c.print(f"  [yellow]warning:[/] {w}")
    t = Table()
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
    card = m.graph.meta.get("card")
    if card:
        _print_card(c, card, m.graph.meta.get("stream") or {})


def _print_card(c, card: dict, stream: dict) -> None:
    """The model card stored in a (zoo) model: data, pre-processing, accuracy, cost."""
    c.print(f"[bold]model card[/]: {card.get('title', '')}")
    c.print(f"  data: {card.get('data', '')}")
    c.print(f"  encoder {stream.get('encoder')}; decoder {stream.get('decoder')}; rate {stream.get('rate')} steps/s; "
            f"classes {', '.join(map(str, stream.get('labels') or []))}")
    for r in card.get("results", []):
        c.print(f"  {r['model']}, {r['precision']}: accuracy {100 * r['accuracy']:.2f} %")
    labels = card.get("labels") or []
    conf = card.get("confusion_int8")
    if conf and labels:
        c.print("  int8 confusion (rows truth, columns decision): " + "; ".join(
            f"{lab} " + "/".join(str(v) for v in row) for lab, row in zip(labels, conf)))
    act = card.get("activity") or {}
    if act:
        c.print(f"  spike activity {act.get('mean_spike_activity', 0):.3f} (mean over populations); synaptic operations "
                f"per second of input {act.get('synaptic_ac_per_s', 0):.3g} AC + {act.get('synaptic_mac_per_s', 0):.3g} MAC")
    lat = card.get("latency_us") or {}
    if lat:
        c.print(f"  latency per timestep on {card.get('machine')}: float p50 {lat['float']['p50']} µs, "
                f"int8 p50 {lat['int']['p50']} µs")


# ---------------------------------------------------------------------- run


@app.command()
def run(
    model: str = typer.Argument(..., help=".ebm or .nir file"),
    input: str = typer.Option(..., "--input", "-i", help=".npy input, time-major: (T, *input) or (T, B, *input)"),
    output: str = typer.Option(..., "-o", "--output", help="output .npz"),
    precision: Precision = typer.Option(Precision.float, help="float or int (needs a quantized model)"),
    record: List[str] = typer.Option([], "--record", help="node whose spikes and membrane to save (repeatable)"),
    dt: Optional[float] = typer.Option(None, help="timestep (NIR files)"),
    dialect: Optional[str] = typer.Option(None, help="exporter convention (NIR files)"),
    reset: Optional[str] = typer.Option(None, help="zero or subtract (NIR files)"),
    json_out: bool = typer.Option(False, "--json", help="print a JSON summary"),
):
    """Run a model over a whole input sequence and save outputs (and recorded nodes) to .npz."""
    import numpy as np

    m = _load_model(model, dt, dialect, reset)
    for name in record:
        if name not in m.graph.nodes:
            raise InputError(f"--record {name}: no node of that name; expected one of {', '.join(m.graph.order)}",
                             file=model)
    if precision.value == "int":
        m.program("int")  # a clear error now if the model is not quantized, before reading the input
    xs = _load_npy(input, "input")
    shape = tuple(m.input_shape)
    if xs.shape[1:] == shape:
        batch = 1
    elif xs.ndim == len(shape) + 2 and xs.shape[2:] == shape:
        batch = xs.shape[1]
    else:
        raise InputError(f"array has shape {xs.shape}; expected (T, *{shape}) or (T, B, *{shape}) (time-major)",
                         file=input)
    try:
        sess = m.session(precision.value, batch=batch)
        t0 = time.perf_counter()
        out, rec = sess.run(xs, record=record, progress=(not json_out and xs.shape[0] * batch > 20000
                                                         and sys.stderr.isatty()))
        elapsed = time.perf_counter() - t0
    except InputError as e:
        raise e.with_file(input)
    arrays = {"output": out} if not isinstance(out, dict) else {f"output/{k}": v for k, v in out.items()}
    arrays.update(rec)
    np.savez(output, **arrays)
    spikes = {k: float(np.mean(v)) for k, v in rec.items() if k.startswith("spikes/")}
    summary = {"model": model, "input": input, "output": output, "precision": precision.value,
               "steps": int(xs.shape[0]), "batch": batch, "seconds": elapsed,
               "us_per_step": 1e6 * elapsed / max(1, xs.shape[0]), "arrays": sorted(arrays),
               "spike_rate": spikes}
    if json_out:
        typer.echo(json.dumps(summary, indent=1))
    else:
        typer.echo(f"ran {xs.shape[0]} steps × batch {batch} in {precision.value} precision in {elapsed:.3f} s "
                   f"({summary['us_per_step']:.1f} µs/step, including first-call compile); wrote {output}: "
                   + ", ".join(sorted(arrays)))


# ---------------------------------------------------------------------- demo


@app.command()
def demo(
    name: str = typer.Argument("har", help="har (smartwatch activity), kws (spoken digits), nmnist (event camera), "
                               "or motion (built-in synthetic example)"),
    precision: str = typer.Option("int", help="int (fixed point, as deployed) or float"),
    items: int = typer.Option(0, "--items", help="recordings to stream (0: the demo's default)"),
    realtime: bool = typer.Option(False, help="pace playback at the recorded rate"),
    json_out: bool = typer.Option(False, "--json", help="print the result as JSON"),
):
    """Stream real recordings through a zoo model and print decisions against the truth, then a summary.
    Without recordings (no EDGEBRAIN_DATA, ../shared/datasets or cache), runs the synthetic example."""
    from .demo import run_demo, run_zoo_demo

    if name == "motion":
        run_demo(json_out=json_out)
        return
    run_zoo_demo(name, precision=precision, items=items, realtime=realtime, json_out=json_out)


# ---------------------------------------------------------------------- streaming


def _options(pairs) -> dict:
    from .stream.base import _value

    out = {}
    for p in pairs or ():
        k, eq, v = p.partition("=")
        if not eq or not k:
            raise InputError(f"--option '{p}': expected key=value")
        out[k.strip()] = _value(v.strip())
    return out


class _PrettySink:
    """Human-readable decisions on stdout (the default sink without --json)."""

    name = "pretty"

    def __init__(self, console):
        self.c = console

    def emit(self, d):
        label = d.label if d.label is not None else "—"
        truth = f"  truth {d.truth}" + (" ✓" if d.truth == d.label else " ✗") if d.truth is not None else ""
        lat = f"  {1e3 * d.latency:7.3f} ms" if d.latency is not None else ""
        self.c.print(f"t={d.t:9.3f} s  {label:<14} {d.confidence:5.2f}{lat}{truth}", highlight=False)

    def summary(self, s):
        pass

    def close(self):
        pass


def _print_summary(c, s: dict) -> None:
    lat = s["latency_ms"]
    c.print(f"[bold]summary[/]: {s['decisions']} decisions ({s['no_decision']} without a decision) over "
            f"{s['stream_seconds']:.2f} s of stream in {s['wall_seconds']:.2f} s "
            f"(real-time factor {s['realtime_factor'] or 0:.1f}×, {s['throughput_per_s'] or 0:.0f} {'events' if s['kind'] == 'events' else 'samples'}/s)")
    if lat["n"]:
        c.print(f"  latency from sample arrival to decision: p50 {lat['p50']:.3f} ms, p90 {lat['p90']:.3f} ms, "
                f"p99 {lat['p99']:.3f} ms, max {lat['max']:.3f} ms")
    if "accuracy" in s:
        c.print(f"  accuracy against the recording's labels: {100 * s['accuracy']:.1f} % of {s['scored_decisions']}")
    inp = s["input"]
    c.print(f"  input: {inp['repaired']} repaired, {inp['dropped']} dropped, {inp['reconnects']} reconnects")
    for m in inp["messages"][:5]:
        c.print(f"    {m}")
    if s["spike_rate"]:
        c.print("  spike rate per step: " + ", ".join(f"{k} {v:.3f}" for k, v in s["spike_rate"].items()))
    if s.get("interrupted"):
        c.print("  (stopped by Ctrl-C)")


@app.command()
def stream(
    model: str = typer.Argument(..., help=".ebm or .nir model"),
    source: str = typer.Option(..., "--source", "-s", help="file, or serial://DEV?baud=N, tcp://host:port, udp://:port, mic://default"),
    format: Optional[str] = typer.Option(None, "--format", "-f", help="source format (default: detected)"),
    encoder: Optional[str] = typer.Option(None, help="encoder spec (default: the model's, else by source kind)"),
    decoder: Optional[str] = typer.Option(None, help="decoder spec, e.g. count:window=25,hop=5"),
    sink: List[str] = typer.Option([], "--sink", help="extra sink (repeatable): csv:path=F, file:path=F, udp:host=H,port=P, mqtt:host=H"),
    option: List[str] = typer.Option([], "--option", "-O", help="source option key=value (repeatable), e.g. rate=100"),
    precision: Precision = typer.Option(Precision.float, help="float or int (quantized model)"),
    realtime: bool = typer.Option(False, help="play files back at their recorded rate"),
    duration: Optional[float] = typer.Option(None, help="stop after this many seconds of stream time"),
    json_out: bool = typer.Option(False, "--json", help="one JSON object per decision, then {'summary': ...}"),
    dt: Optional[float] = typer.Option(None, help="timestep (NIR models)"),
    dialect: Optional[str] = typer.Option(None, help="exporter convention (NIR models)"),
):
    """Stream a sensor file or live link through a model and print its decisions."""
    from .stream.pipeline import build_pipeline
    from .stream.registry import build_sink

    m = _load_model(model, dt, dialect, None)
    if precision.value == "int" and not m.quant:
        raise InputError("--precision int needs a quantized model (edgebrain convert --quantize ...)", file=model)
    c = _console()
    sinks = [build_sink("stdout")] if json_out else [_PrettySink(c)]
    try:
        sinks += [build_sink(sp) for sp in sink]
        pipe = build_pipeline(m, source, format=format, encoder=encoder, decoder=decoder, sinks=sinks,
                              precision=precision.value, realtime=realtime, source_options=_options(option),
                              max_seconds=duration)
        from .progress import bar

        total = pipe.source.info.n_items
        pb = bar(total or 0, "streaming", "events" if pipe.source.info.kind == "events" else "samples",
                 enabled=bool(total) and not pipe.source.live)
        last = [0]

        def progress(done):
            pb.update(done - last[0])
            last[0] = done

        try:
            summary = pipe.run(progress=progress)
        finally:
            pb.close()
    finally:
        for k in sinks:
            k.close()
    if not json_out:
        _print_summary(c, summary)


@app.command()
def record(
    source: str = typer.Option(..., "--source", "-s", help="file or live source URL"),
    output: str = typer.Option(..., "-o", "--output", help="output file: .npy (events), .csv (IMU), .wav (audio)"),
    format: Optional[str] = typer.Option(None, "--format", "-f", help="source format (default: detected)"),
    option: List[str] = typer.Option([], "--option", "-O", help="source option key=value (repeatable)"),
    duration: Optional[float] = typer.Option(None, help="stop after this many seconds of stream time"),
    json_out: bool = typer.Option(False, "--json", help="print the result as JSON"),
):
    """Capture a live source to a file, or convert a file to another format."""
    from .stream.recording import record as do_record

    res = do_record(source, output, format=format, options=_options(option), duration=duration)
    if json_out:
        typer.echo(json.dumps(res, indent=1))
    else:
        typer.echo(f"wrote {res['output']}: {res['items']} {res['unit']} ({res['seconds']:.3f} s); "
                   f"{res['input']['repaired']} repaired, {res['input']['dropped']} dropped")


data_app = typer.Typer(add_completion=False, no_args_is_help=True, help="Inspect sensor recordings.")
app.add_typer(data_app, name="data")


@data_app.command("info")
def data_info(
    file: str = typer.Argument(..., help="sensor recording"),
    format: Optional[str] = typer.Option(None, "--format", "-f", help="format (default: detected)"),
    option: List[str] = typer.Option([], "--option", "-O", help="reader option key=value (repeatable)"),
    json_out: bool = typer.Option(False, "--json", help="print as JSON"),
):
    """Format, sensor size or channels, rate, number of events or samples, duration, damage."""
    from .stream.recording import info

    res = info(file, format=format, options=_options(option))
    if json_out:
        typer.echo(json.dumps(res, indent=1, default=str))
        return
    c = _console()
    c.print(f"[bold]{file}[/]: {res['format']} ({res['kind']})")
    for k in ("sensor_size", "channels", "channel_names", "rate", "items", "duration", "label_names"):
        if res.get(k) is not None:
            c.print(f"  {k.replace('_', ' ')}: {res[k]}")
    dmg = res["damage"]
    c.print(f"  damage: {dmg['repaired']} repaired, {dmg['dropped']} dropped" + ("" if dmg["repaired"] or dmg["dropped"]
                                                                                   else " (none found)"))
    for m in dmg["messages"][:10]:
        c.print(f"    {m}")


@data_app.command("list")
def data_list(json_out: bool = typer.Option(False, "--json", help="print as JSON")):
    """The public datasets edgebrain knows (zoo training, demos), and where each was found."""
    from .datasets import roots, status

    rows = status()
    if json_out:
        typer.echo(json.dumps(rows, indent=1))
        return
    c = _console()
    for r in rows:
        where = r["found"] or "[yellow]not found[/] (edgebrain data fetch " + r["name"] + ")"
        c.print(f"[bold]{r['name']}[/] ({r['files']} files, {r['licence']}): {r['description']}\n    {where}")
    c.print("searched: " + "; ".join(f"{w} ({p})" for w, p in roots()))


@data_app.command("fetch")
def data_fetch(
    name: str = typer.Argument(..., help="dataset name (edgebrain data list)"),
    mirror: Optional[str] = typer.Option(None, help="base URL laid out like the datasets folder, e.g. file:///srv/datasets "
                                         "(default $EDGEBRAIN_MIRROR, else the original public location)"),
    json_out: bool = typer.Option(False, "--json", help="print the result as JSON"),
):
    """Download a public dataset into the user cache, checking every file's SHA-256."""
    from .datasets import fetch, manifests
    from .progress import bar

    b = bar(len(manifests().get(name, {})), f"fetch {name}", "files", enabled=not json_out)
    try:
        res = fetch(name, mirror=mirror, progress=b.update)
    finally:
        b.close()
    if json_out:
        typer.echo(json.dumps(res, indent=1))
        return
    _console().print(f"{name}: {res['fetched']} files fetched ({res['bytes_fetched']:,} bytes), "
                     f"{res['already_present']} already present and verified → {res['destination']}")


zoo_app = typer.Typer(add_completion=False, no_args_is_help=True, help="Models trained on real recordings.")
app.add_typer(zoo_app, name="zoo")


@zoo_app.command("list")
def zoo_list(json_out: bool = typer.Option(False, "--json", help="print as JSON")):
    """The bundled models (use them as zoo:NAME wherever a model is accepted), with their test accuracy."""
    from . import zoo

    rows = zoo.entries()
    if json_out:
        typer.echo(json.dumps(rows, indent=1))
        return
    from rich.table import Table

    t = Table()
    for col in ("model", "task", "accuracy float", "accuracy int8", "params", "int8 bytes"):
        t.add_column(col)
    pct = (lambda v: f"{100 * v:.1f} %" if v is not None else "—")
    for r in rows:
        t.add_row(r["name"], r["title"], pct(r["accuracy_float"]), pct(r["accuracy_int8"]), str(r["params"]),
                  str(r["int8_bytes"]))
    _console().print(t)


devices_app = typer.Typer(add_completion=False, no_args_is_help=True,
                          help="Device profiles: list, show, and check whether a model fits a device.")


class FitPrecision(str, Enum):
    auto = "auto"
    float = "float"
    int = "int"


@devices_app.command("list")
def devices_list(json_out: bool = typer.Option(False, "--json", help="print as JSON")):
    """The device profiles edgebrain knows (devices/*.toml, $EDGEBRAIN_DEVICES), with CPU, memory and Python."""
    from . import devices as D

    devs = D.load_all()
    rows = [{"name": d.name, "title": d.data["title"], "kind": d.kind, "cpu": d.data["cpu"]["model"],
             "cores": d.data["cpu"]["cores"], "clock_mhz": d.data["cpu"]["clock_mhz"],
             "ram_bytes": d.data["memory"]["ram_bytes"], "flash_bytes": d.data["memory"]["flash_bytes"],
             "python": d.data["python"]["runtime"], "meters": [s["meter"] for s in d.data["sensors"]], "file": d.path}
            for d in devs]
    if json_out:
        typer.echo(json.dumps(rows, indent=1))
        return
    from rich.table import Table

    t = Table()
    for col in ("device", "kind", "cores", "clock", "RAM", "flash", "Python", "title"):
        t.add_column(col, no_wrap=col != "title")
    for r in rows:
        t.add_row(r["name"], r["kind"], str(r["cores"]), f"{r['clock_mhz']:.0f} MHz", D.fmt_bytes(r["ram_bytes"]),
                  D.fmt_bytes(r["flash_bytes"]) if r["flash_bytes"] else "storage", r["python"], r["title"])
    c = _console()
    c.print(t)
    c.print("searched: " + "; ".join(f"{w} ({p})" for w, p in D.search_dirs()) + "; or pass --device FILE.toml")


@devices_app.command("show")
def devices_show(
    name: str = typer.Argument(..., help="device name or alias (edgebrain devices list), or a .toml profile"),
    json_out: bool = typer.Option(False, "--json", help="print as JSON"),
):
    """Every field of a device profile, with its source; estimated values are marked."""
    from rich.markup import escape

    from . import devices as D

    d = D.load(name)
    if json_out:
        typer.echo(json.dumps(d.as_dict(), indent=1))
        return
    c = _console()
    c.print(f"[bold]{d.name}[/]: {d.data['title']} ({d.kind}) — {d.path}")
    if d.data.get("notes"):
        c.print(f"  {d.data['notes']}", markup=False)
    for sec in ("cpu", "memory", "python", "power", "perf", "runtime", "energy"):
        c.print(f"[bold]{sec}[/]" + ("  (pJ; memory per 64-bit access)" if sec == "energy" else ""))
        for k, v in d.data[sec].items():
            p = d.provenance.get(f"{sec}.{k}")
            if isinstance(v, int) and k.endswith("_bytes") and v:
                v = f"{v} ({D.fmt_bytes(v)})"
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


@devices_app.command("fit")
def devices_fit(
    model: str = typer.Argument(..., help=".ebm or .nir model, or zoo:NAME"),
    device: str = typer.Option(..., "--device", "-d", help="device name or alias, or a .toml profile"),
    precision: FitPrecision = typer.Option(FitPrecision.auto, help="deployed precision (auto: int when the model "
                                           "is quantized or the device is a microcontroller)"),
    json_out: bool = typer.Option(False, "--json", help="print as JSON"),
):
    """Does MODEL fit DEVICE: RAM and flash at the deployed precision, estimated latency and energy."""
    from rich.markup import escape

    from . import devices as D

    dev = D.load(device)
    m = _load_model(model)
    r = D.fit(m, dev, precision.value)
    r["model"] = model
    if json_out:
        typer.echo(json.dumps(r, indent=1, default=str))
        return
    c = _console()
    fb = D.fmt_bytes
    col = "green" if r["fits"] else "red"
    c.print(f"[bold]{model}[/] on [bold]{dev.name}[/] ({dev.data['title']}), {r['precision']} precision: "
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


app.add_typer(devices_app, name="devices")


@app.command()
def bench(
    model: str = typer.Argument(..., help=".ebm or .nir file (or zoo:NAME)"),
    steps: int = typer.Option(1000, "--steps", "-n", help="timed steps (batch 1), also the length of the throughput runs"),
    batch: int = typer.Option(8, "--batch", "-b", help="batch size for the throughput run"),
    precision: Optional[Precision] = typer.Option(None, help="float or int (default: int for a quantized model)"),
    cold: bool = typer.Option(True, "--cold/--no-cold", help="measure start-up in fresh processes (empty and warm "
                              "Numba cache)"),
    json_out: bool = typer.Option(False, "--json", help="print as JSON"),
):
    """Start-up time (cold and warm Numba cache), per-step latency p50/p90/p99, throughput, peak memory and
    footprint, printed like TFLite's benchmark_model."""
    from . import bench as B

    if steps < 1:
        raise InputError(f"--steps {steps}; expected >= 1")
    if batch < 1:
        raise InputError(f"--batch {batch}; expected >= 1")
    res = B.run(model, steps=steps, batch=batch, precision=precision.value if precision else None, cold=cold,
                progress=not json_out and steps >= 20000)
    typer.echo(json.dumps(res, indent=1) if json_out else B.format_report(res))


@app.command()
def profile(
    model: str = typer.Argument(..., help=".ebm or .nir model, or zoo:NAME"),
    input: Optional[str] = typer.Option(None, "--input", "-i", help=".npy input, time-major (T, *input) or (T, B, *input): "
                                        "one inference = one pass over the T steps, per sample"),
    source: Optional[str] = typer.Option(None, "--source", "-s", help="recording or live link (as for edgebrain stream): "
                                         "one inference = one decision"),
    meter: str = typer.Option("model", "--meter", "-m", help="model (no sensor: estimate only), rapl, hwmon, ina3221, "
                              "tegrastats, pi5-pmic, um25c:PORT, fnb58; options as NAME:TARGET?key=value"),
    device: str = typer.Option("host", "--device", "-d", help="device profile for the analytical estimate (name or .toml)"),
    precision: Optional[Precision] = typer.Option(None, help="int or float (default: int for a quantized model)"),
    baseline: Optional[float] = typer.Option(None, "--baseline", help="idle baseline in seconds (default 30 with a "
                                             "sensor, 0 with the model meter)"),
    duration: Optional[float] = typer.Option(None, "--duration", help="measured run in seconds (default: max(10 s, 100 "
                                             "sensor periods); 1 s with the model meter)"),
    format: Optional[str] = typer.Option(None, "--format", "-f", help="source format (default: detected)"),
    option: List[str] = typer.Option([], "--option", "-O", help="source option key=value (repeatable)"),
    json_out: bool = typer.Option(False, "--json", help="print everything as JSON"),
    plot: Optional[str] = typer.Option(None, "--plot", help="write the power timeline to this PNG (needs matplotlib)"),
):
    """Energy per inference measured with a power meter, the analytical estimate for a device beside it, and
    NeuroBench's metrics (footprint, sparsity, synaptic operations, membrane updates) on the actual input."""
    from .energy import profile as P

    if (input is None) == (source is None):
        raise InputError("give exactly one of --input X.npy or --source SRC")
    if plot:
        P.check_plot_path(plot)
    m = _load_model(model)
    xs = _load_npy(input, "input") if input is not None else None
    res = P.profile(m, xs=xs, source=source, meter=meter, device=device,
                    precision=precision.value if precision else None, baseline_s=baseline, duration_s=duration,
                    input_name=input or "input", source_format=format, source_options=_options(option),
                    model_name=model)
    if plot:
        from .energy.plot import plot_profile

        res["plot"] = plot_profile(res, plot)
    if json_out:
        typer.echo(json.dumps(res, indent=1, default=str))
    else:
        typer.echo(P.format_report(res))
        if plot:
            typer.echo(f"\nwrote {plot} ({res['plot']['width']}×{res['plot']['height']} px"
                       + (", estimated power: no sensor)" if res["plot"]["estimate"] else ")"))
    for flag in ("partial", "too_short"):  # on stderr, one line each, also with --json
        if res[flag]:
            typer.echo(f"warning: the measurement is {flag.replace('_', ' ')}: {res['measured'][flag + '_reason']}",
                       err=True)


def _click_exc(name: str) -> tuple:
    """Click's exception class ``name``: both typer's vendored copy (typer >= 0.17) and click's own."""
    out = []
    for mod in ("typer._click.exceptions", "click.exceptions"):
        try:
            m = __import__(mod, fromlist=[name])
        except ImportError:
            continue
        if hasattr(m, name):
            out.append(getattr(m, name))
    return tuple(out)


def main(argv=None):
    try:
        app(args=argv, standalone_mode=False)
    except EdgebrainError as e:
        _echo_err(str(e))
        sys.exit(2)
    except FileNotFoundError as e:
        _echo_err(f"{e.filename}: file not found")
        sys.exit(2)
    except OSError as e:  # cannot write the output, permission denied, disk full...
        _echo_err(f"{e.filename}: {e.strerror or e}" if e.filename else f"{e.strerror or e}")
        sys.exit(2)
    except MemoryError:
        _echo_err("not enough memory for this model and input (try a smaller batch or a shorter input)")
        sys.exit(2)
    except Exception as e:  # noqa: BLE001 - the CLI never shows a traceback unless asked
        if isinstance(e, _click_exc("Exit")):
            sys.exit(e.exit_code)
        if isinstance(e, _click_exc("Abort")):
            _echo_err("aborted")
            sys.exit(130)
        if isinstance(e, _click_exc("NoArgsIsHelpError")):
            help_text = e.format_message()  # (typer's rich help has already been printed)
            if help_text.strip():
                typer.echo(help_text, err=True)
            sys.exit(2)
        if isinstance(e, _click_exc("ClickException")):  # usage errors: one line, like every other error
            msg = " ".join(e.format_message().split())
            ctx = getattr(e, "ctx", None)
            if ctx is not None:
                msg += f" (see '{ctx.command_path} --help')"
            _echo_err(msg)
            sys.exit(2)
        if os.environ.get("EDGEBRAIN_DEBUG"):
            raise
        _echo_err(f"internal error ({type(e).__name__}: {e}); set EDGEBRAIN_DEBUG=1 for a traceback and "
                  "please report it")
        sys.exit(1)
    except KeyboardInterrupt:
        _echo_err("interrupted")
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    main()
