"""The ``edgebrain deploy`` command: parses arguments and calls :mod:`edgebrain.deploy` (docs/deploy.md)."""

from __future__ import annotations

import json
from enum import Enum
from typing import List, Optional

import typer

from .errors import InputError


class CopyTool(str, Enum):
    auto = "auto"
    rsync = "rsync"
    scp = "scp"


def deploy(
    model: Optional[str] = typer.Argument(None, help=".ebm model or zoo:NAME (not with --rollback)"),
    to: Optional[str] = typer.Option(None, "--to", help="ssh://USER@HOST:PORT/PATH, user and port optional (a folder "
                                     "under the home folder: ssh://HOST/~/edgebrain)"),
    fleet: Optional[str] = typer.Option(None, "--fleet", help="an Ansible inventory: deploy to each of its hosts "
                                        "through ansible-playbook (the deploy extra); exit code 4 if a host failed"),
    emit_ansible: Optional[str] = typer.Option(None, "--emit-ansible", help="write the fleet's playbook and an "
                                               "example inventory into this folder, and stop"),
    device: Optional[str] = typer.Option(None, "--device", "-d", help="device profile (rpi4b, rpi5, "
                                         "jetson-orin-nano, ...): checks the architecture and that the model fits; "
                                         "default: detected from the board's device-tree model, if any"),
    ssh_option: List[str] = typer.Option([], "--ssh-option", "-o", help="ssh option KEY=VALUE (repeatable), e.g. "
                                         "IdentityFile=~/.ssh/id_pi or ProxyJump=gateway"),
    offline: bool = typer.Option(False, "--offline", help="ship every dependency as a wheel for the target's "
                                 "platform: the target installs without an index"),
    recording: Optional[str] = typer.Option(None, "--recording", help="real recording for the smoke test "
                                            "(default: a seeded input of the model's shape)"),
    remote_python: str = typer.Option("python3", "--remote-python", help="the target's Python 3.10+"),
    wheel: Optional[str] = typer.Option(None, "--wheel", help="the edgebrain wheel to ship (default: built from "
                                        "this checkout)"),
    copy: CopyTool = typer.Option(CopyTool.auto, "--copy", help="copy tool (auto: rsync when both ends have it, "
                                  "else scp)"),
    rollback: bool = typer.Option(False, "--rollback", help="make the previous release current again (and, with "
                                  "--service, the unit before the last one)"),
    service: bool = typer.Option(False, "--service", help="also write and enable a systemd unit that runs edgebrain "
                                 "stream on the target (restart on failure, journal, a warmed NUMBA_CACHE_DIR)"),
    source: Optional[str] = typer.Option(None, "--source", "-s", help="with --service: the source the service "
                                         "streams from, as the target sees it (serial:///dev/ttyUSB0?baud=115200, "
                                         "udp://:9000, a file)"),
    sink: List[str] = typer.Option([], "--sink", help="with --service: a sink of edgebrain stream (repeatable), "
                                   "e.g. mqtt:host=broker or csv:path=decisions.csv"),
    user_service: bool = typer.Option(False, "--user-service", help="with --service: a user unit "
                                      "(~/.config/systemd/user) instead of a system unit (/etc/systemd/system, root)"),
    env_file: Optional[str] = typer.Option(None, "--service-env-file", help="with --service: a file on the "
                                           "target with NAME=VALUE lines the unit loads (EnvironmentFile=): "
                                           "secrets, e.g. a sink's password_env=NAME"),
    service_name: Optional[str] = typer.Option(None, "--service-name", help="with --service: the unit's name "
                                               "(default: edgebrain-FOLDER, or edgebrain)"),
    json_out: bool = typer.Option(False, "--json", help="print the report as JSON"),
):
    """Install a model, edgebrain and its pinned dependencies on a Linux board over SSH, warm the Numba cache
    there and run a smoke test whose integer outputs must be bit-identical to this machine's."""
    from .deploy import deploy as D
    from .deploy.service import format_lines
    from .deploy.text import format_report

    if sum(x is not None for x in (to, fleet, emit_ansible)) != 1:
        raise InputError("give one of --to ssh://HOST/PATH, --fleet INVENTORY or --emit-ansible DIR")
    if emit_ansible is not None or fleet is not None:
        from .cli_common import ExitCode
        from .deploy import fleet as F

        if emit_ansible is not None:
            if model is not None:
                raise InputError("--emit-ansible takes no MODEL: the playbook reads it from edgebrain_model")
            res = F.emit(emit_ansible)
            typer.echo(json.dumps(res, indent=1) if json_out else "\n".join(res["emitted"]) + "\nrun: " + res["run"])
            return
        if model is None or rollback or recording or copy != CopyTool.auto or ssh_option \
                or remote_python != "python3":
            raise InputError("--fleet takes a MODEL, --device, --offline, --wheel, --json and --service (with "
                             "--source, --sink, --service-name, --user-service); per-host ssh options and "
                             "edgebrain_remote_python go in the inventory (ansible_ssh_private_key_file, "
                             "edgebrain_ssh_options)")
        spec = _service_spec(service, source, sink, user_service, service_name, env_file)
        say = (lambda text: None) if json_out else (lambda text: typer.echo(text, err=True))
        res = F.run(model, fleet, device=device, offline=offline, wheel=wheel, service=spec, say=say)
        typer.echo(json.dumps(res, indent=1) if json_out else F.format_fleet(res))
        if res["failed"]:
            raise typer.Exit(ExitCode.PARTIAL)
        return
    if rollback:
        if model is not None:
            raise InputError("--rollback takes no MODEL: it makes the target's previous release current")
        res = D.rollback(to, ssh_options=ssh_option, python=remote_python)
    else:
        if model is None:
            raise InputError("give a MODEL to deploy (an .ebm file or zoo:NAME), or --rollback")
        spec = _service_spec(service, source, sink, user_service, service_name, env_file)
        say = (lambda text: None) if json_out else (lambda text: typer.echo(text, err=True))
        res = D.deploy(model, to, device=device, ssh_options=ssh_option, offline=offline, recording=recording,
                       python=remote_python, wheel=wheel, copy=copy.value, service=spec, say=say)
    typer.echo(json.dumps(res, indent=1) if json_out else format_report(res) + format_lines(res))


def _service_spec(service: bool, source, sinks, user_service: bool, name, env_file) -> dict | None:
    """deploy's ``service`` argument from the --service options (refused without --service)."""
    if not service and (source or sinks or user_service or name or env_file):
        raise InputError("--source, --sink, --user-service, --service-name and --service-env-file go with --service")
    return {"source": source, "sinks": list(sinks), "user": user_service, "name": name,
            "env_file": env_file} if service else None


def remote(
    ctx: typer.Context,
    to: str = typer.Argument(..., help="ssh://USER@HOST:PORT/PATH of a deploy (edgebrain deploy --to)"),
    command: str = typer.Argument(..., help="bench, stream, profile or devices-show, then its own arguments (run on "
                                  "the target in the active release's folder: model.ebm is the deployed model)"),
    ssh_option: List[str] = typer.Option([], "--ssh-option", help="ssh option KEY=VALUE (repeatable)"),
    timeout: float = typer.Option(600.0, "--timeout", help="seconds the remote command may run"),
):
    """Run edgebrain bench, stream, profile or devices show on a deployed target with its venv, and print its output
    here. A MODEL, --source or --input naming a file here is copied there first; a --plot figure comes back.
    profile's --meter is opened on the target (its sysfs, its tegrastats or vcgencmd)."""
    from .deploy.remote import run

    rc = run(to, command, list(ctx.args), ssh_options=ssh_option, timeout=timeout,
             say=lambda text: typer.echo(text, err=True))
    if rc:
        raise typer.Exit(rc)


#: the context ``remote`` needs: the remote command's own options pass through untouched
REMOTE_CONTEXT = {"allow_extra_args": True, "ignore_unknown_options": True}


def bench_remote(to: Optional[str], ssh_options, model: str, *, steps: int, batch: int, precision, cold: bool,
                 threads: int, json_out: bool, write_profile: Optional[str] = None) -> None:
    """``edgebrain bench MODEL --remote URL``: the same as ``edgebrain remote URL bench MODEL ...``. With
    ``--write-profile DEVICE`` the figures are also written into that device profile's [perf] as measured
    (edgebrain/deploy/perf.py); without ``--remote`` (``to`` None) the benchmark runs here."""
    from .deploy import perf as PF
    from .deploy.remote import connect, execute, run

    say = lambda text: typer.echo(text, err=True)  # noqa: E731
    args = [model, "--steps", str(steps), "--batch", str(batch), "--cold" if cold else "--no-cold",
            "--threads", str(threads), *(["--precision", precision] if precision else [])]
    if write_profile is None:
        rc = run(to, "bench", args + (["--json"] if json_out else []), ssh_options=ssh_options, say=say)
        if rc:
            raise typer.Exit(rc)
        return
    from .apps import bench as B

    dest = PF.prepare(write_profile)  # before the benchmark: a profile that cannot be written fails now
    ssh = None
    if to is None:
        board = PF.board_local()
        PF.check_board(dest.device, board)
        res = B.run(model, steps=steps, batch=batch, precision=precision, cold=cold, say=say, threads=threads)
    else:
        ssh = connect(to, ssh_options)
        board = PF.board_remote(ssh, ssh.target.path)
        PF.check_board(dest.device, board)
        out = execute(to, "bench", args + ["--json"], ssh_options=ssh_options, say=say, capture=True)
        if out.rc:
            raise typer.Exit(out.rc)
        try:
            res = json.loads(out.stdout)
        except ValueError:
            raise InputError("the board's bench printed no JSON: " + (out.stdout or "nothing").strip()[-200:]) \
                from None
    with PF.temp_folder() as work:
        res["profile_written"] = PF.write(dest, res, PF.model_here(model, res, ssh, work), model, board)
    typer.echo(json.dumps(res, indent=1) if json_out else B.format_report(res))
    typer.echo(PF.format_written(res["profile_written"]), err=json_out)


def profile_remote(to: str, ssh_options, model: str, *, input, source, meter: str, device: str, precision,
                   baseline, duration, format, option, json_out: bool, plot) -> None:
    """``edgebrain profile MODEL --remote URL``: the same as ``edgebrain remote URL profile MODEL ...`` (the meter
    is opened on the board; --input, --source and a --device file here are copied there, --plot comes back)."""
    from .deploy.remote import run

    args = [model, "--meter", meter, "--device", device]
    for opt, val in (("--input", input), ("--source", source), ("--precision", precision), ("--baseline", baseline),
                     ("--duration", duration), ("--format", format), ("--plot", plot)):
        if val is not None:
            args += [opt, str(val)]
    for o in option:
        args += ["--option", o]
    rc = run(to, "profile", args + (["--json"] if json_out else []), ssh_options=ssh_options,
             say=lambda text: typer.echo(text, err=True))
    if rc:
        raise typer.Exit(rc)
