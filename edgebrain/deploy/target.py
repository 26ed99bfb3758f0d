"""The target of a deploy: its ``ssh://`` address, the OpenSSH command lines that reach it, and what it is.

Every remote command goes through the system ``ssh`` client, so ``~/.ssh/config``, agents, ``ProxyJump``
and host aliases work as they do for the user. Host keys are verified by ssh itself: nothing here
turns checking off (a user who wants that passes ``--ssh-option StrictHostKeyChecking=...``). Every
call has a connect timeout, keep-alives and a subprocess timeout, and runs in batch mode (never a
password prompt). Remote commands are ``sh -c SCRIPT NAME ARG...`` with each piece quoted by
:func:`shlex.quote`: values reach the script as positional parameters, never as shell text.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from ..errors import EdgebrainError, InputError


class DeployError(EdgebrainError):
    """The target cannot be reached or cannot run edgebrain; one line says why."""


#: Python older than this cannot run edgebrain (pyproject.toml's requires-python)
MIN_PYTHON = (3, 10)
#: architectures Numba ships wheels for (Linux)
SUPPORTED_ARCH = ("x86_64", "aarch64")
_ARCH_ALIASES = {"arm64": "aarch64", "amd64": "x86_64", "x64": "x86_64", "armv8": "aarch64"}
CONNECT_TIMEOUT_S = 10
_SSH_DEFAULTS = ("BatchMode=yes", f"ConnectTimeout={CONNECT_TIMEOUT_S}", "ServerAliveInterval=5",
                 "ServerAliveCountMax=3")
_OPTION_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")


def norm_arch(arch: str) -> str:
    a = (arch or "").strip().lower()
    return _ARCH_ALIASES.get(a, a)


@dataclass(frozen=True)
class Target:
    """``ssh://[user@]host[:port]/path``: ``path`` is absolute, or relative to the user's home
    (``ssh://host/~/edgebrain``)."""

    host: str
    path: str
    user: str | None = None
    port: int | None = None

    @property
    def destination(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host

    def __str__(self) -> str:
        port = f":{self.port}" if self.port else ""
        path = self.path if self.path.startswith("/") else "~/" + self.path
        return f"ssh://{self.destination}{port}{path}"


def parse_target(url: str) -> Target:
    """The :class:`Target` of ``ssh://[user@]host[:port]/path`` (percent-escapes allowed in the path)."""
    if not url.startswith("ssh://"):
        raise InputError(f"--to {url!r}: expected ssh://[user@]host[:port]/path")
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        raise InputError(f"--to {url!r}: the port is not a number from 1 to 65535") from None
    host = parts.hostname
    if not host or host.startswith("-"):
        raise InputError(f"--to {url!r}: no host name (expected ssh://[user@]host[:port]/path)")
    user = unquote(parts.username) if parts.username else None
    if user is not None and (not user or user.startswith("-") or any(c in user for c in "\n\r\0@")):
        raise InputError(f"--to {url!r}: the user name {user!r} is not valid")
    path = unquote(parts.path)
    if parts.query or parts.fragment:  # '?' and '#' belong to the path, as the user typed them
        path = unquote(url.split(parts.netloc, 1)[1])
    if path.startswith("/~/"):
        path = path[3:]
    elif path in ("/~", "/"):
        raise InputError(f"--to {url!r}: give a folder to deploy into, e.g. ssh://{parts.netloc}/~/edgebrain")
    path = path.rstrip("/") if path != "/" else path
    if not path or "\0" in path or "\n" in path:
        raise InputError(f"--to {url!r}: the path is empty or has a newline or NUL")
    return Target(host=host, path=path, user=user, port=port)


def parse_ssh_options(options) -> list[str]:
    """``KEY=VALUE`` strings as ``-o`` arguments for ssh (checked: one line each, a plain key)."""
    out = []
    for o in options or ():
        key, eq, value = o.partition("=")
        if not eq or not _OPTION_KEY.match(key.strip()) or "\n" in value or "\r" in value:
            raise InputError(f"--ssh-option {o!r}: expected KEY=VALUE, e.g. IdentityFile=~/.ssh/id_pi")
        out.append(f"{key.strip()}={value}")
    return out


@dataclass
class Ssh:
    """The OpenSSH command lines for one target: ``ssh``, ``scp`` and rsync's ``-e``."""

    target: Target
    options: list[str] = field(default_factory=list)

    def _opts(self) -> list[str]:
        # ssh keeps the first value it is given for an option: the user's come first and win
        args = []
        for o in list(self.options) + list(_SSH_DEFAULTS):
            args += ["-o", o]
        return args

    def ssh_argv(self) -> list[str]:
        return ["ssh", *self._opts(), *(["-p", str(self.target.port)] if self.target.port else [])]

    def scp_argv(self) -> list[str]:
        return ["scp", "-q", "-r", *self._opts(), *(["-P", str(self.target.port)] if self.target.port else [])]

    def run(self, script: str, args=(), timeout: float = 60.0, what: str = "ssh") -> subprocess.CompletedProcess:
        """Run the POSIX sh ``script`` on the target with positional ``args``; a connection failure
        (ssh's own exit status 255) is a :class:`DeployError` naming the cause."""
        remote = " ".join(shlex.quote(a) for a in ["sh", "-c", script, "edgebrain-deploy", *map(str, args)])
        argv = [*self.ssh_argv(), "-n", "--", self.target.destination, remote]
        try:
            res = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
        except FileNotFoundError:
            raise DeployError("no 'ssh' command here: install the OpenSSH client (e.g. apt install openssh-client)") \
                from None
        except subprocess.TimeoutExpired:
            raise DeployError(f"{self.target}: {what} did not finish within {timeout:g} s") from None
        if res.returncode == 255:
            raise DeployError(connection_error(self.target, res.stderr))
        return res


def connection_error(target: Target, stderr: str) -> str:
    """One line for ssh's failure to connect or log in, from its stderr."""
    err = stderr or ""
    where = f"{target.destination}" + (f" port {target.port}" if target.port else "")
    if "REMOTE HOST IDENTIFICATION HAS CHANGED" in err:
        return (f"{where}: the host key has CHANGED since it was recorded in known_hosts (a reinstalled board, or "
                "someone in between); check it, then remove the old key with ssh-keygen -R")
    if "Host key verification failed" in err or "No ED25519 host key is known" in err or "host key is known" in err:
        return (f"{where}: the host key is not known (not in known_hosts); connect once with ssh to check and "
                "accept it, or add it with ssh-keyscan after checking its fingerprint")
    if "Permission denied" in err or "Too many authentication failures" in err:
        return (f"{where}: the login was refused (permission denied: the key is not authorised for this user; "
                "ssh-copy-id, or --ssh-option IdentityFile=KEY)")
    for pat, why in (("Connection refused", "connection refused (no SSH server on that port?)"),
                     ("timed out", f"no answer within {CONNECT_TIMEOUT_S} s (host down or unreachable?)"),
                     ("No route to host", "no route to host"),
                     ("Could not resolve hostname", "unknown host name"),
                     ("Name or service not known", "unknown host name"),
                     ("Network is unreachable", "network unreachable"),
                     ("Connection closed", "the connection was closed by the server"),
                     ("Connection reset", "the connection was reset")):
        if pat in err:
            return f"{where}: cannot connect: {why}"
    last = [ln.strip() for ln in err.splitlines() if ln.strip()]
    return f"{where}: ssh failed" + (f": {last[-1]}" if last else "")
