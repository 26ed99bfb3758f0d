"""The ``edgebrain`` command groups ``data``, ``zoo``, ``devices`` and ``firmware``: they parse arguments, call
the library and print with :mod:`edgebrain.report`."""

from __future__ import annotations

from typing import List, Optional

import typer

from . import report as R
from .cli_common import ExitCode, FitPrecision, load_model, show
from .options import parse_options


data_app = typer.Typer(add_completion=False, no_args_is_help=True, help="Inspect sensor recordings.")


@data_app.command("info")
def data_info(
    file: str = typer.Argument(..., help="sensor recording"),
    format: Optional[str] = typer.Option(None, "--format", "-f", help="format (default: detected)"),
    option: List[str] = typer.Option([], "--option", "-O", help="reader option key=value (repeatable)"),
    json_out: bool = typer.Option(False, "--json", help="print as JSON"),
):
    """Format, sensor size or channels, rate, number of events or samples, duration, damage."""
    from .stream.recording import info

    res = info(file, format=format, options=parse_options(option))
    show(res, json_out, R.print_recording_info, file, res, default=str)


@data_app.command("list")
def data_list(json_out: bool = typer.Option(False, "--json", help="print as JSON")):
    """The public datasets edgebrain knows (zoo training, demos), and where each was found."""
    from .datasets import roots, status

    rows = status()
    show(rows, json_out, R.print_datasets, rows, roots())


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

    with bar(len(manifests().get(name, {})), f"fetch {name}", "files", enabled=not json_out) as b:
        res = fetch(name, mirror=mirror, progress=b.update)
    show(res, json_out, R.print_fetch, name, res)


zoo_app = typer.Typer(add_completion=False, no_args_is_help=True, help="Models trained on real recordings.")


@zoo_app.command("list")
def zoo_list(json_out: bool = typer.Option(False, "--json", help="print as JSON")):
    """The bundled models (use them as zoo:NAME wherever a model is accepted), with their test accuracy."""
    from . import zoo

    rows = zoo.entries()
    show(rows, json_out, R.print_zoo, rows)


devices_app = typer.Typer(add_completion=False, no_args_is_help=True,
                          help="Device profiles: list, show, and check whether a model fits a device.")


@devices_app.command("list")
def devices_list(json_out: bool = typer.Option(False, "--json", help="print as JSON")):
    """The device profiles edgebrain knows (devices/*.toml, $EDGEBRAIN_DEVICES), with CPU, memory and Python."""
    from . import devices as D

    rows = R.device_rows(D.load_all())
    show(rows, json_out, R.print_devices, rows, D.search_dirs())


@devices_app.command("show")
def devicesshow(
    name: str = typer.Argument(..., help="device name or alias (edgebrain devices list), or a .toml profile"),
    json_out: bool = typer.Option(False, "--json", help="print as JSON"),
):
    """Every field of a device profile, with its source; estimated values are marked."""
    from . import devices as D

    d = D.load(name)
    show(d.as_dict(), json_out, R.print_device, d)


@devices_app.command("fit")
def devices_fit(
    model: str = typer.Argument(..., help=".ebm or .nir model, or zoo:NAME"),
    device: str = typer.Option(..., "--device", "-d", help="device name or alias, or a .toml profile"),
    precision: FitPrecision = typer.Option(FitPrecision.auto, help="deployed precision (auto: int when the model "
                                           "is quantized or the device is a microcontroller)"),
    json_out: bool = typer.Option(False, "--json", help="print as JSON"),
):
    """Does MODEL fit DEVICE: RAM and flash at the deployed precision, estimated latency and energy.
    Exits with code 3 when it does not fit (also with --json), so that scripts can gate on it."""
    from . import devices as D
    from .apps.fit import fit

    dev = D.load(device)
    m = load_model(model)
    r = fit(m, dev, precision.value)
    r["model"] = model
    show(r, json_out, R.print_fit, model, dev, r, default=str)
    if not r["fits"]:
        raise typer.Exit(ExitCode.NEGATIVE)


firmware_app = typer.Typer(add_completion=False, no_args_is_help=True,
                           help="The C runtime for microcontrollers: export a model as C source (docs/firmware.md).")


@firmware_app.command("export")
def firmware_export(
    model: str = typer.Argument(..., help="integer model: a quantized .ebm, or zoo:NAME"),
    out: str = typer.Option(..., "--out", "-o", help="folder to write (model_blob.c, model.h, README.md); "
                            "created whole or not at all"),
    target: str = typer.Option(..., "--target", "-t", help="device profile (edgebrain devices list), e.g. rp2040, "
                               "stm32f446; the model must fit its RAM and flash"),
    force: bool = typer.Option(False, "--force", help="replace OUT when it is a folder that is not empty"),
    json_out: bool = typer.Option(False, "--json", help="print the result (sizes, fit) as JSON"),
):
    """Write MODEL as a blob in a const array (flash) and a header of its sizes, shapes, class names and
    versions, after checking that the C runtime implements every op and that it fits TARGET.
    A refusal is one error line and exit code 2, with nothing written."""
    import json

    from . import devices as D
    from .apps.firmware import export, format_export
    from .safeio import check_output_folder

    check_output_folder(out, force)
    dev = D.load(target)
    res = export(load_model(model), dev, out, name=model, force=force)
    typer.echo(json.dumps(res, indent=1) if json_out else format_export(res))
