"""The ``edgebrain`` command line. It only parses arguments and calls the library (models,
:mod:`edgebrain.apps`, :mod:`edgebrain.stream`) and prints with :mod:`edgebrain.report`.

Every user error is printed as one line (file, node or field, what was expected) and the
process exits with code 2; set EDGEBRAIN_DEBUG=1 to see tracebacks.
"""

from __future__ import annotations

import json
from enum import Enum
from typing import List, Optional

import typer

from . import report as R
from .cli_common import EXIT_CODES_HELP, ExitCode, Precision, Quantize, console, load_model, run_app, show
from .cli_groups import data_app, devices_app, firmware_app, zoo_app
from .errors import InputError
from .options import parse_options



class Backend(str, Enum):
    numba = "numba"
    c = "c"


BACKEND_HELP = ("numba, or c: the C runtime through ctypes (integer models; no Numba in the process once the "
                "model's blob is cached, after its first run)")


class Target(str, Enum):
    """The named targets; --target also takes serial://PORT?baud=N (checked by edgebrain.stream.board)."""

    host = "host"
    host_firmware = "host-firmware"
    qemu_m4 = "qemu-m4"
    qemu_rv32 = "qemu-rv32"


TARGET_HELP = ("where the model runs: host (this process, on --backend); host-firmware (the C runtime built as a "
               "board program, a separate process on a pseudo-terminal); qemu-m4 or qemu-rv32 (the firmware on an "
               "emulated Cortex-M4F or RV32 board, under QEMU); or serial://PORT?baud=N (a real board running the "
               "firmware, e.g. serial:///dev/ttyACM0?baud=115200). Boards speak the framed protocol of "
               "docs/protocol.md and run integer models. --target is where the model runs now; --device (profile, "
               "devices fit) names a device profile to estimate for")

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, epilog=EXIT_CODES_HELP,
                  help="Run spiking models trained elsewhere, fast and frugally, on hardware you can buy.")


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
    to_snn: bool = typer.Option(False, "--to-snn", help="a .tflite ANN (ReLU MLP or CNN) to integrate-and-fire "
                                "neurons, thresholds balanced on --calib samples (N, *sample); docs/conversion.md"),
    timesteps: str = typer.Option("8,16,32,64", help="--to-snn: timestep counts to measure (comma-separated)"),
    coding: str = typer.Option("direct", help="--to-snn input: direct (analog, every step) or rate (IF-encoded)"),
    percentile: float = typer.Option(99.9, help="--to-snn: threshold = this percentile of each ReLU's activations"),
    device: str = typer.Option("host", help="--to-snn: device profile for the energy estimate"),
):
    """Convert a NIR file to an edgebrain model (optionally quantized), or a model back to NIR; with --to-snn,
    a TFLite ANN to a spiking model, with a report of accuracy against timesteps, operations and energy."""
    from .apps.convert import convert as do_convert

    if to_snn:
        from .apps.convert_snn import convert_snn, print_convert_snn

        r = convert_snn(model, output, calib=calib, labels=labels, timesteps=timesteps, coding=coding,
                        percentile=percentile, device=device, state_bits=state_bits, per_channel=not per_layer,
                        weight_bits={"int4": 4, "int8": 8, "int16": 16}[quantize.value] if quantize else None,
                        progress=not json_out, encoder=encoder, decoder=decoder, rate=rate,
                        class_names=None if class_names is None else [x.strip() for x in class_names.split(",")])
        return show(r, json_out, print_convert_snn, r)
    result, summary, report = do_convert(
        model, output, dt=dt, dialect=dialect, reset=reset, calib=calib, labels=labels, state_bits=state_bits,
        weight_bits={"int4": 4, "int8": 8, "int16": 16}[quantize.value] if quantize else None,
        per_channel=not per_layer, decay=decay, encoder=encoder, decoder=decoder, rate=rate, progress=not json_out,
        class_names=None if class_names is None else [x.strip() for x in class_names.split(",")])
    show(result, json_out, R.print_convert, model, result, summary, report)


@app.command()
def inspect(
    model: str = typer.Argument(..., help=".ebm, .nir, .tflite or .onnx file"),
    dt: Optional[float] = typer.Option(None, help="timestep (NIR files)"),
    dialect: Optional[str] = typer.Option(None, help="exporter convention (NIR files)"),
    reset: Optional[str] = typer.Option(None, help="zero or subtract (NIR files)"),
    json_out: bool = typer.Option(False, "--json", help="print as JSON"),
):
    """Show nodes, shapes, parameters, memory footprint and the detected NIR dialect (a .tflite model: its
    operators, tensors, quantization, MACs and tensor bytes)."""
    m = load_model(model, dt, dialect, reset, tflite=True)
    s = m.summary()
    if s.get("format") == "tflite":
        from .apps.tflite import print_inspect

        return show(s, json_out, print_inspect, s)
    if s.get("format") == "onnx":  # docs/onnx.md
        from .apps.onnx import print_inspect as print_onnx

        return show(s, json_out, print_onnx, s)
    show(s, json_out, R.print_inspect, model, s, m.graph.meta, default=str)


@app.command()
def run(
    model: str = typer.Argument(..., help=".ebm, .nir, .tflite or .onnx file"),
    input: str = typer.Option(..., "--input", "-i", help=".npy input, time-major: (T, *input) or (T, B, *input); "
                              "a .tflite or stateless .onnx model: (N, *sample), one inference per sample"),
    output: str = typer.Option(..., "-o", "--output", help="output .npz"),
    precision: Optional[Precision] = typer.Option(None, help="float or int (default: the model's deployed "
                                                  "precision: int when it is quantized)"),
    record: List[str] = typer.Option([], "--record", help="node whose spikes and membrane to save (repeatable)"),
    backend: Backend = typer.Option(Backend.numba, "--backend", help=BACKEND_HELP),
    dt: Optional[float] = typer.Option(None, help="timestep (NIR files)"),
    dialect: Optional[str] = typer.Option(None, help="exporter convention (NIR files)"),
    reset: Optional[str] = typer.Option(None, help="zero or subtract (NIR files)"),
    json_out: bool = typer.Option(False, "--json", help="print a JSON summary"),
):
    """Run a model over a whole input sequence and save outputs (and recorded nodes) to .npz."""
    from .apps.run import format_run, run_file

    m = load_model(model, dt, dialect, reset, tflite=True)
    summary = run_file(m, input, output, precision.value if precision else None, record, progress=not json_out,
                       model_name=model, backend=backend.value)
    typer.echo(json.dumps(summary, indent=1) if json_out else format_run(summary))


@app.command()
def demo(
    name: str = typer.Argument("har", help="har (smartwatch activity), kws (spoken digits), nmnist (event camera), "
                               "or motion (built-in synthetic example)"),
    precision: str = typer.Option("int", help="int (fixed point, as deployed) or float"),
    items: int = typer.Option(0, "--items", help="recordings to stream (0: the demo's default)"),
    realtime: bool = typer.Option(False, help="pace playback at the recorded rate"),
    json_out: bool = typer.Option(False, "--json", help="print the result as JSON"),
    plot: Optional[str] = typer.Option(None, "--plot", help="write a timeline figure (input, spikes, decisions, "
                                       "confidence, latency) to this PNG (needs matplotlib)"),
):
    """Stream real recordings through a zoo model and print decisions against the truth, then a summary.
    Without recordings (no EDGEBRAIN_DATA, ../shared/datasets or cache), runs the synthetic example."""
    from .apps.demo import run_demo as motion_demo
    from .apps.demo import run_zoo_demo

    if name == "motion":
        motion_demo(json_out=json_out, plot=plot)
    else:
        run_zoo_demo(name, precision=precision, items=items, realtime=realtime, json_out=json_out, plot=plot)


@app.command()
def stream(
    model: str = typer.Argument(..., help=".ebm or .nir model, or .tflite or .onnx with its sidecar JSON"),
    source: str = typer.Option(..., "--source", "-s", help="file, or serial://DEV?baud=N, tcp://host:port, udp://:port, mic://default"),
    format: Optional[str] = typer.Option(None, "--format", "-f", help="source format (default: detected)"),
    encoder: Optional[str] = typer.Option(None, help="NAME:key=value,... replaces the encoder (default: the model's, "
                                          "else by source kind); key=value,... alone sets those options and keeps the "
                                          "rest, e.g. --encoder \"crop=143|103|34|34\""),
    decoder: Optional[str] = typer.Option(None, help="decoder spec, e.g. count:window=25,hop=5"),
    sink: List[str] = typer.Option([], "--sink", help="extra sink (repeatable): csv:path=F, file:path=F, udp:host=H,port=P, mqtt:host=H"),
    option: List[str] = typer.Option([], "--option", "-O", help="source option key=value (repeatable), e.g. rate=100"),
    precision: Optional[Precision] = typer.Option(None, help="float or int (default: the model's deployed "
                                                  "precision: int when it is quantized)"),
    backend: Backend = typer.Option(Backend.numba, "--backend", help=BACKEND_HELP),
    target: str = typer.Option(Target.host.value, "--target", help=TARGET_HELP),
    board_encodes: bool = typer.Option(False, "--board-encodes", help="with a board --target: the board encodes "
                                       "and decodes too (direct/delta encoders, count decoder): the host forwards raw "
                                       "int16 sensor counts (the encoder's unit=, else a default said in the log) and "
                                       "prints the board's decisions"),
    realtime: bool = typer.Option(False, help="play files back at their recorded rate"),
    duration: Optional[float] = typer.Option(None, help="stop at exactly this many seconds of stream time"),
    json_out: bool = typer.Option(False, "--json", help="one JSON object per decision, then {'summary': ...}"),
    plot: Optional[str] = typer.Option(None, "--plot", help="write a timeline figure (input, spikes, decisions, "
                                       "confidence, latency) to this PNG (needs matplotlib)"),
    dt: Optional[float] = typer.Option(None, help="timestep (NIR models)"),
    dialect: Optional[str] = typer.Option(None, help="exporter convention (NIR models)"),
):
    """Stream a sensor file or live link through a model and print its decisions."""
    from .apps.timeline_plot import stream_figure
    from .stream.base import now
    from .stream.pipeline import run_stream
    from .stream.registry import build_sink
    from .stream.sinks import ConsoleSink, print_stream_summary

    c = console()
    t0 = now()  # set-up starts with loading the model
    m, opts = load_model(model, dt, dialect, None, tflite="stream"), parse_options(option)
    fig = stream_figure(plot, m, source, model_name=model, encoder=encoder, format=format, options=opts)  # checked now
    summary = run_stream(m, source, sinks=[build_sink("stdout") if json_out else ConsoleSink(c)], sink_specs=sink,
                         format=format, encoder=encoder, decoder=decoder, precision=precision.value if precision else None,
                         realtime=realtime, source_options=opts, max_seconds=duration,
                         setup_start=t0, observers=fig.observers if fig else (), backend=backend.value,
                         target=target, board_encodes=board_encodes)
    if not json_out:  # after the sinks closed, as ever
        print_stream_summary(c, summary)
    if fig:  # on stderr with --json: stdout stays JSON lines
        typer.echo(f"timeline: wrote {fig.write()['path']}", err=json_out)
    if summary.get("interrupted"):  # Ctrl-C: the summary so far, then the documented exit code
        raise typer.Exit(ExitCode.INTERRUPTED)


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

    res = do_record(source, output, format=format, options=parse_options(option), duration=duration)
    typer.echo(json.dumps(res, indent=1) if json_out else R.format_record(res))
    if res.get("interrupted"):  # what was captured is kept; the exit code says it was cut short
        raise typer.Exit(ExitCode.INTERRUPTED)


app.add_typer(data_app, name="data")
app.add_typer(zoo_app, name="zoo")
app.add_typer(devices_app, name="devices")
app.add_typer(firmware_app, name="firmware")
from .cli_deploy import REMOTE_CONTEXT, bench_remote, profile_remote  # noqa: E402 - remote, bench/profile --remote
from .cli_deploy import deploy as deploy_command  # noqa: E402 - edgebrain deploy (edgebrain/cli_deploy.py)
from .cli_deploy import remote as remote_command  # noqa: E402

app.command("deploy", epilog=EXIT_CODES_HELP)(deploy_command)
app.command("remote", epilog=EXIT_CODES_HELP, context_settings=REMOTE_CONTEXT)(remote_command)


@app.command()
def bench(
    model: str = typer.Argument(..., help=".ebm, .nir, .tflite or .onnx file (or zoo:NAME)"),
    steps: int = typer.Option(1000, "--steps", "-n", help="timed steps (batch 1), also the length of the throughput runs"),
    batch: int = typer.Option(8, "--batch", "-b", help="batch size for the throughput run"),
    precision: Optional[Precision] = typer.Option(None, help="float or int (default: int for a quantized model)"),
    cold: bool = typer.Option(False, "--cold/--no-cold", help="also measure start-up in fresh processes (empty "
                              "and warm Numba cache; adds 10-60 s)"),
    threads: int = typer.Option(1, "--threads", help="a .tflite or .onnx model: the interpreter's thread count "
                                "(ONNX Runtime's intra-op threads)"),
    json_out: bool = typer.Option(False, "--json", help="print as JSON"),
    remote: Optional[str] = typer.Option(None, "--remote", help="ssh://USER@HOST:PORT/PATH of a deploy: bench "
                                         "there (edgebrain remote URL bench ...)"),
    ssh_option: List[str] = typer.Option([], "--ssh-option", help="with --remote: ssh option KEY=VALUE"),
    write_profile: Optional[str] = typer.Option(None, "--write-profile", help="write the measured figures into this "
                                                "device profile's perf table (a name: a copy in your profile folder; "
                                                "a .toml path: updated), marked measured"),
):
    """Per-step latency p50/p90/p99, throughput, peak memory and footprint, and with --cold the start-up time
    (empty and warm Numba cache), printed like TFLite's benchmark_model."""
    if remote is not None or write_profile is not None:
        return bench_remote(remote, ssh_option, model, steps=steps, batch=batch, cold=cold, threads=threads,
                            precision=precision.value if precision else None, json_out=json_out,
                            write_profile=write_profile)
    from .apps import bench as B

    res = B.run(model, steps=steps, batch=batch, precision=precision.value if precision else None, cold=cold,
                progress=not json_out and steps >= 20000, say=lambda text: typer.echo(text, err=True), threads=threads)
    typer.echo(json.dumps(res, indent=1) if json_out else B.format_report(res))


@app.command()
def profile(
    model: str = typer.Argument(..., help=".ebm or .nir model, zoo:NAME, or a .tflite/.onnx model"),
    input: Optional[str] = typer.Option(None, "--input", "-i", help=".npy input, time-major (T, *input) or (T, B, *input): "
                                        "one inference = one pass over the T steps, per sample (a stateless "
                                        ".tflite/.onnx model: (N, *sample), one inference per sample)"),
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
    remote: Optional[str] = typer.Option(None, "--remote", help="ssh://USER@HOST:PORT/PATH of a deploy: profile "
                                         "there, the meter opened on the board (edgebrain remote URL profile ...)"),
    ssh_option: List[str] = typer.Option([], "--ssh-option", help="with --remote: ssh option KEY=VALUE"),
):
    """Energy per inference measured with a power meter, the analytical estimate for a device beside it, and
    NeuroBench's metrics (footprint, sparsity, synaptic operations, membrane updates) on the actual input."""
    from .apps import profile as P

    if remote is not None:
        return profile_remote(remote, ssh_option, model, input=input, source=source, meter=meter, device=device,
                              precision=precision.value if precision else None, baseline=baseline,
                              duration=duration, format=format, option=option, json_out=json_out, plot=plot)

    if (input is None) == (source is None):
        raise InputError("give exactly one of --input X.npy or --source SRC")
    m = load_model(model, tflite="stream" if source else True)  # a TFLite/ONNX model streams with its sidecar
    res = P.profile_files(m, input=input, source=source, plot=plot, meter=meter, device=device,
                          precision=precision.value if precision else None, baseline_s=baseline, duration_s=duration,
                          source_format=format, source_options=parse_options(option), model_name=model)
    typer.echo(json.dumps(res, indent=1, default=str) if json_out else P.format_report(res))
    for w in P.measurement_warnings(res):  # on stderr, one line each, also with --json
        typer.echo(f"warning: {w}", err=True)


def main(argv=None):
    from .progress import compile_notice

    R.log_warnings_to_stderr()
    with compile_notice():  # a first run compiles for a while: say so on stderr
        run_app(app, argv)


if __name__ == "__main__":  # pragma: no cover
    main()
