"""What the loopback boards of the deploy tests share: an OpenSSH server started in a root filesystem of its
own (the emulated Pi 4 of arm64_sshd.py, the Ubuntu 22.04 board of jammy_sshd.py), on two loopback ports,
the second one without a route to any package index.

* :func:`sshd_config`: the server's configuration (key-only root login, a throwaway host key, pip's index
  set to a closed port on the second port);
* :func:`launch`: starts the server through a ``unshare --mount`` script and waits for its SSH banner,
  retrying with other ports when one was taken meanwhile;
* :class:`Endpoint`: the client side the tests use, the real ``ssh`` with the board's key and known_hosts.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

#: pip's index (and extra index) in the sessions of the board's second port: a closed port
OFFLINE_ENV = ("PIP_INDEX_URL=http://127.0.0.1:9/simple PIP_EXTRA_INDEX_URL=http://127.0.0.1:9/simple "
               "PIP_RETRIES=0 PIP_TIMEOUT=5")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keygen(path: Path, comment: str = "edgebrain-test") -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
                   check=True, capture_output=True, timeout=30)
    return path


def sshd_config(conf_dir: str, offline_port: int, extra: tuple = ()) -> str:
    """sshd's configuration; ``conf_dir`` is where the host key and authorized_keys are as sshd sees them."""
    return "\n".join([
        "ListenAddress 127.0.0.1", f"HostKey {conf_dir}/host_key", f"AuthorizedKeysFile {conf_dir}/authorized_keys",
        "PubkeyAuthentication yes", "PasswordAuthentication no", "KbdInteractiveAuthentication no",
        "PermitRootLogin prohibit-password", "UsePAM no", "StrictModes no", "PidFile none",
        "Subsystem sftp internal-sftp", "MaxStartups 100", "MaxSessions 100", "LogLevel VERBOSE", *extra,
        # a board without a route to the package index on the second port: deploy --offline brings the wheels
        f"Match LocalPort {offline_port}", f"    SetEnv {OFFLINE_ENV}", ""])


def launch(argv_for, write_config, log: Path, what: str, timeout: float) -> tuple[subprocess.Popen, int, int]:
    """Start a board's sshd: ``write_config(offline_port)`` writes its configuration, ``argv_for(port,
    offline_port)`` is the command that starts it. Waits for the SSH banner on the second port (under
    emulation sshd takes seconds); (process, port, offline port), or RuntimeError with the log's last lines."""
    for _ in range(3):
        port, offline_port = free_port(), free_port()
        write_config(offline_port)
        with open(log, "ab") as log_file:
            proc = subprocess.Popen(argv_for(port, offline_port), stdin=subprocess.DEVNULL, stdout=log_file,
                                    stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with socket.create_connection(("127.0.0.1", offline_port), timeout=2) as s:
                    s.settimeout(timeout)
                    if s.recv(64).startswith(b"SSH-"):  # sshd listens on both ports once it answers
                        return proc, port, offline_port
                break
            except OSError:
                time.sleep(0.2)
        proc.kill()
        proc.wait(10)
    lines = log.read_text(errors="replace").strip().splitlines()
    raise RuntimeError(f"{what}'s sshd did not start: {lines[-3:]}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(20)


def known_hosts(path: Path, host_pub: Path, *ports: int) -> Path:
    key = " ".join(host_pub.read_text().split()[:2])
    path.write_text("".join(f"[127.0.0.1]:{p} {key}\n" for p in ports))
    return path


class Endpoint:
    """The client side of a board (a dataclass with ``host``, ``port``, ``offline_port``, ``key``,
    ``known_hosts`` and ``user``): deploy's ``--ssh-option`` arguments and the tests' own ``ssh``."""

    def options(self) -> list[str]:
        """--ssh-option arguments: the board's key and known_hosts, nothing from ~/.ssh."""
        out = []
        for o in (f"IdentityFile={self.key}", f"UserKnownHostsFile={self.known_hosts}",
                  "GlobalKnownHostsFile=/dev/null", "IdentitiesOnly=yes", "IdentityAgent=none"):
            out += ["--ssh-option", o]
        return out

    def ssh(self, command: str, timeout: float = 300, offline: bool = False) -> subprocess.CompletedProcess:
        """Run ``command`` on the board (through its second port with ``offline``)."""
        argv = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=30", "-o", f"IdentityFile={self.key}",
                "-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
                "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
                "-p", str(self.offline_port if offline else self.port), "-n", f"{self.user}@{self.host}", command]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


def running(board_module, require_env: str, work: Path):
    """A board of ``board_module`` (``why_absent()``, ``start(work)``) for a fixture to ``yield from``:
    skips saying why where it cannot run, or fails instead when ``require_env`` is 1 (.ci/run sets it);
    stopped at the fixture's end."""
    import os

    import pytest

    why = board_module.why_absent()
    if why:
        if os.environ.get(require_env) == "1":
            pytest.fail(f"{require_env}=1 but {why}")
        pytest.skip(why)
    b = board_module.start(work)
    try:
        yield b
    finally:
        b.stop()
