"""``edgebrain remote ssh://user@host[:port]/path bench|stream|profile|devices-show ...``: one command run on the
target by the deployed venv's ``edgebrain`` (docs/deploy.md).

The command runs in the active release's folder (so ``model.ebm`` is the deployed model and
``smoke_input.npy`` its shipped input), through ``PATH/venv/bin/edgebrain``, the script whose Numba cache
the deploy warmed. Its standard output comes back as it is printed (JSON with ``--json``, the same text
as the local command otherwise), its standard error after it, and its exit status is this command's.
A MODEL, ``--source`` or ``--input`` (and profile's ``--device`` profile) that names a file here is copied to
a temporary folder on the target first; a ``--plot`` figure is written there and copied back to the path given
here (and the target's path for it in the output is replaced by that one). The temporary folder is removed
afterwards. An ``error:`` line of the remote command comes back naming the target it came from.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from .target import DeployError, Ssh, connection_error, parse_ssh_options, parse_target

#: the commands ``remote`` runs, and the edgebrain arguments they stand for
COMMANDS = {"bench": ["bench"], "stream": ["stream"], "profile": ["profile"], "devices-show": ["devices", "show"]}
RUN_TIMEOUT_S = 600
STEP_TIMEOUT_S = 60
#: exit status of the run script when nothing is deployed (edgebrain's own codes are below 128)
_NOT_DEPLOYED = 97

_PRELUDE = r"""
set -u
P=$1
case $P in /*) ;; *) P="$HOME/$P" ;; esac
"""

_CHECK = r"""
if [ ! -L "$P/current" ] || [ ! -x "$P/venv/bin/edgebrain" ]; then
    printf 'edgebrain-remote: nothing is deployed at %s\n' "$P" >&2; exit 97
fi
"""

#: $1 path, $2 id: the temporary folder for this run's files (its absolute path on stdout)
MKTEMP = _PRELUDE + _CHECK + r"""
T="$P/.remote/$2"
mkdir -p -- "$T" && cd -- "$T" && pwd -P
"""

#: $1 path, $2... the edgebrain arguments: run in the active release's folder
RUN = _PRELUDE + _CHECK + r"""
shift
cd -- "$P/current" || exit 97
PYTHONUNBUFFERED=1 exec "$P/venv/bin/edgebrain" "$@"
"""

#: $1 path, $2 id: remove this run's temporary folder
CLEAN = _PRELUDE + r"""
rm -rf -- "$P/.remote/$2"
rmdir -- "$P/.remote" 2>/dev/null
exit 0
"""

_UPLOAD_OPTS = ("--source", "-s", "--input", "-i")
#: options of the commands that take a value (so that the value is not taken for the MODEL)
_VALUE_OPTS = {"--steps", "-n", "--batch", "-b", "--precision", "--threads", "--format", "-f", "--encoder", "--decoder",
               "--sink", "--option", "-O", "--backend", "--target", "--duration", "--dt", "--dialect", "--meter", "-m",
               "--device", "-d", "--baseline"}
_MODEL_COMMANDS = ("bench", "stream", "profile")


@dataclass
class Outcome:
    """What a remote command did: its exit status, and its standard output when captured."""

    rc: int
    stdout: str | None = None


def _not_deployed(ssh: Ssh) -> DeployError:
    return DeployError(f"{ssh.target}: nothing is deployed there: run edgebrain deploy MODEL --to {ssh.target} first")


def plan(command: str, args: list[str]) -> tuple[list[str], list[tuple[int, Path]], list[tuple[int, Path]]]:
    """The edgebrain argv for ``command``, the positions of arguments that name files here (copied to the
    target: the MODEL, ``--source``, ``--input``, and profile's ``--device`` profile) and of ``--plot`` outputs
    (copied back)."""
    if command not in COMMANDS:
        raise InputError(f"remote {command!r}: expected one of {', '.join(COMMANDS)}")
    argv = [*COMMANDS[command], *args]
    ups, downs = [], []
    first = len(COMMANDS[command])
    positional_seen = False
    i = first
    while i < len(argv):
        a = argv[i]
        opt, eq, val = a.partition("=")
        uploads = (*_UPLOAD_OPTS, "--device", "-d") if command == "profile" else _UPLOAD_OPTS
        if a.startswith("-") and eq and opt in (*uploads, "--plot"):
            argv[i:i + 1] = [opt, val]  # --source=X as two arguments, so X can be rewritten
            continue
        if a in uploads and i + 1 < len(argv):
            if Path(argv[i + 1]).is_file():
                ups.append((i + 1, Path(argv[i + 1])))
            i += 2
            continue
        if a == "--plot" and i + 1 < len(argv):
            downs.append((i + 1, Path(argv[i + 1])))
            i += 2
            continue
        if a in _VALUE_OPTS and command in _MODEL_COMMANDS:
            i += 2
            continue
        if not a.startswith("-") and not positional_seen and command in _MODEL_COMMANDS:
            positional_seen = True
            if Path(a).is_file():
                ups.append((i, Path(a)))
        i += 1
    return argv, ups, downs


def _remote(script: str, args) -> str:
    return " ".join(shlex.quote(a) for a in ["sh", "-c", script, "edgebrain-remote", *map(str, args)])


def connect(to: str, ssh_options=()) -> Ssh:
    """The :class:`Ssh` of the target ``to`` (``ssh://...``), checked."""
    try:
        target = parse_target(to)
    except InputError as e:  # parse_target speaks of deploy's --to
        raise InputError(str(e).replace("--to ", "remote ", 1)) from None
    return Ssh(target, parse_ssh_options(ssh_options))


def run(to: str, command: str, args: list[str], *, ssh_options=(), timeout: float = RUN_TIMEOUT_S,
        say=lambda text: None) -> int:
    """Run ``edgebrain COMMAND ARGS`` on the target ``to``; its output printed here, its exit status returned."""
    return execute(to, command, args, ssh_options=ssh_options, timeout=timeout, say=say).rc


def execute(to: str, command: str, args: list[str], *, ssh_options=(), timeout: float = RUN_TIMEOUT_S,
            say=lambda text: None, capture: bool = False) -> Outcome:
    """:func:`run`, with its standard output returned instead of printed when ``capture``."""
    ssh = connect(to, ssh_options)
    target = ssh.target
    argv, ups, downs = plan(command, list(args))
    if timeout <= 0:
        raise InputError(f"--timeout {timeout:g}: give a number of seconds above 0")
    for _, p in downs:
        if not p.parent.is_dir():
            raise InputError("the folder of --plot does not exist", file=str(p))
    ident = secrets.token_hex(8)
    tmp = None
    rewrite = []
    try:
        if ups or downs:
            res = ssh.run(MKTEMP, [target.path, ident], timeout=STEP_TIMEOUT_S, what="preparing the target")
            if res.returncode == _NOT_DEPLOYED:
                raise _not_deployed(ssh)
            if res.returncode != 0 or not res.stdout.strip():
                raise DeployError(f"{target}: cannot create a temporary folder there")
            tmp = res.stdout.strip().splitlines()[-1]
            names = set()
            for pos, p in ups:
                name = p.name if p.name not in names else f"{len(names)}-{p.name}"
                names.add(name)
                say(f"copying {p} to the target")
                scp(ssh, [str(p)], f"{target.destination}:{tmp}/{name}", timeout)
                argv[pos] = f"{tmp}/{name}"
            for k, (pos, p) in enumerate(downs):
                argv[pos] = f"{tmp}/plot{k}{p.suffix or '.png'}"
                rewrite.append((argv[pos], str(p)))
        rc, out = _run(ssh, argv, timeout, capture=capture, rewrite=rewrite)
        if rc == 0:
            for k, (_, p) in enumerate(downs):
                scp(ssh, [f"{target.destination}:{tmp}/plot{k}{p.suffix or '.png'}"], str(p), timeout)
                say(f"copied the figure back to {p}")
        return Outcome(rc, out)
    finally:
        if tmp is not None:
            try:
                ssh.run(CLEAN, [target.path, ident], timeout=STEP_TIMEOUT_S, what="cleaning up")
            except DeployError:
                pass


def _replace(text: str, rewrite) -> str:
    for old, new in rewrite:  # as printed, and inside a JSON string
        text = text.replace(old, new).replace(json.dumps(old)[1:-1], json.dumps(new)[1:-1])
    return text


def _from_target(stderr: str, ssh: Ssh) -> str:
    """The remote command's stderr, its ``error:`` lines naming the target they came from."""
    tag = f"error: on {ssh.target.destination}: "
    return "".join(tag + ln[len("error: "):] if ln.startswith("error: ") else ln
                   for ln in stderr.splitlines(keepends=True))


def _run(ssh: Ssh, argv: list[str], timeout: float, *, capture: bool = False, rewrite=()) -> tuple[int, str | None]:
    """The remote edgebrain, its stdout passed through as it comes (or captured), its stderr after it; its exit
    status. ``rewrite``: (text, replacement) pairs applied to both outputs (the target's temporary paths)."""
    cmd = [*ssh.ssh_argv(), "-n", "--", ssh.target.destination, _remote(RUN, [ssh.target.path, *argv])]
    sys.stdout.flush()
    out = subprocess.PIPE
    if not capture and not rewrite:
        try:
            out = sys.stdout.fileno()
        except (AttributeError, OSError, ValueError):  # a stdout without a file (a test runner's): copied
            pass
    expired = []
    captured = [] if capture else None
    with tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        except FileNotFoundError:
            raise DeployError("no 'ssh' command here: install the OpenSSH client (e.g. apt install openssh-client)") \
                from None

        def kill():
            expired.append(True)
            proc.kill()

        timer = threading.Timer(timeout, kill)
        timer.daemon = True
        timer.start()
        try:
            if out == subprocess.PIPE:
                for raw in proc.stdout:  # line by line: stream's decisions still arrive live
                    line = _replace(raw.decode("utf-8", "replace"), rewrite)
                    if captured is not None:
                        captured.append(line)
                    else:
                        sys.stdout.write(line)
                        sys.stdout.flush()
                proc.stdout.close()
            rc = proc.wait()
        finally:
            timer.cancel()
        if expired:
            raise DeployError(f"{ssh.target}: the remote command did not finish within {timeout:g} s "
                              "(--timeout to allow longer)")
        err.seek(0)
        stderr = _replace(err.read().decode("utf-8", "replace"), rewrite)
    if rc == 255:
        raise DeployError(connection_error(ssh.target, stderr))
    if rc == _NOT_DEPLOYED and "edgebrain-remote: nothing is deployed" in stderr:
        raise _not_deployed(ssh)
    if stderr:
        sys.stderr.write(_from_target(stderr, ssh))
        sys.stderr.flush()
    return rc, None if captured is None else "".join(captured)


def scp(ssh: Ssh, sources: list[str], dest: str, timeout: float = STEP_TIMEOUT_S) -> None:
    """Copy with the system scp (``HOST:PATH`` for the target's side); one line on failure."""
    argv = [*ssh.scp_argv(), "--", *sources, dest]
    try:
        res = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise DeployError("no 'scp' command here: install the OpenSSH client") from None
    except subprocess.TimeoutExpired:
        raise DeployError(f"{ssh.target}: copying {os.path.basename(sources[0])} took over {timeout:g} s") from None
    if res.returncode == 255 and "lost connection" not in res.stderr:
        raise DeployError(connection_error(ssh.target, res.stderr))
    if res.returncode != 0:
        last = [ln for ln in res.stderr.splitlines() if ln.strip()]
        raise DeployError(f"{ssh.target}: scp failed: " + (last[-1] if last else f"exit status {res.returncode}"))
