"""A real OpenSSH server on loopback for the deploy tests: ``/usr/sbin/sshd -D -e`` on 127.0.0.1 with a
throwaway host key and user key in a temporary folder, logging in as the current user (root in CI:
``PermitRootLogin prohibit-password``), killed at the end of the session. Clients use the system
``ssh``/``scp``/``rsync`` with ``UserKnownHostsFile`` naming the fixture's known_hosts: the host key
is verified, never skipped."""

from __future__ import annotations

import getpass
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.deploy.chroot_board import (  # noqa: F401
    free_port,
    keygen,
    known_hosts,
    launch,
    running,
    sshd_config,
    stop,
)

SSHD = "/usr/sbin/sshd"


@dataclass
class Server:
    host: str
    port: int
    user: str
    dir: Path
    key: Path
    known_hosts: Path
    log: Path
    #: a second port whose sessions cannot reach any package index (pip's index set to a closed port)
    offline_port: int

    def url(self, path: str, port: int | None = None) -> str:
        return f"ssh://{self.user}@{self.host}:{port or self.port}{path}"

    def options(self, key: Path | None = None, known_hosts: Path | None = None) -> list[str]:
        """--ssh-option arguments: this server's key and known_hosts, nothing from ~/.ssh."""
        out = []
        for o in (f"IdentityFile={key or self.key}", f"UserKnownHostsFile={known_hosts or self.known_hosts}",
                  "GlobalKnownHostsFile=/dev/null", "IdentitiesOnly=yes", "IdentityAgent=none"):
            out += ["--ssh-option", o]
        return out

    def ssh(self, command: str, timeout: float = 120) -> subprocess.CompletedProcess:
        """Run ``command`` on the server through the real ssh client (the tests' own view of the target)."""
        argv = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", f"IdentityFile={self.key}",
                "-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
                "-p", str(self.port), "-n", f"{self.user}@{self.host}", command]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)


def deploy(*args, timeout=1200) -> subprocess.CompletedProcess:
    """``edgebrain deploy ARGS`` in a new process (the command line as users run it)."""
    return subprocess.run([sys.executable, "-m", "edgebrain", "deploy", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=timeout)


def ok_json(r: subprocess.CompletedProcess) -> dict:
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout)


@pytest.fixture(scope="session")
def sshd(tmp_path_factory):
    for tool in ("ssh", "scp", "ssh-keygen"):
        if shutil.which(tool) is None:
            pytest.skip(f"no '{tool}' here: install openssh-client (tools/install-test-deps.sh)")
    if not os.access(SSHD, os.X_OK):
        pytest.skip(f"no {SSHD}: install openssh-server (tools/install-test-deps.sh)")
    if os.geteuid() == 0 and not os.path.isdir("/run/sshd"):
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation folder
    d = tmp_path_factory.mktemp("sshd")
    keygen(d / "host_key")
    user_key = keygen(d / "user_key")
    auth = d / "authorized_keys"
    auth.write_text((d / "user_key.pub").read_text())
    auth.chmod(0o600)
    user = getpass.getuser()
    log = d / "sshd.log"

    def write_config(offline_port: int) -> None:
        (d / "sshd_config").write_text(sshd_config(str(d), offline_port))

    try:
        proc, port, offline_port = launch(lambda port, offline_port: [
            SSHD, "-D", "-e", "-f", str(d / "sshd_config"), "-p", str(port), "-p", str(offline_port)],
            write_config, log, "the loopback", timeout=10)
    except RuntimeError as e:
        pytest.skip(f"sshd did not start on loopback: {e}")
    kh = known_hosts(d / "known_hosts", d / "host_key.pub", port, offline_port)
    server = Server("127.0.0.1", port, user, d, user_key, kh, log, offline_port)
    try:
        r = server.ssh("echo ok", timeout=30)
        if r.stdout.strip() != "ok":
            pytest.skip(f"cannot log in to the test sshd as {user}: {r.stderr.strip()[-300:]}")
        yield server
    finally:
        stop(proc)


@pytest.fixture(scope="session")
def wheel(tmp_path_factory):
    """The edgebrain wheel, built once (deploy's own builder) and frozen for the session: other work in
    the same checkout must not turn a re-deploy into a new release halfway through the tests."""
    import shutil

    from edgebrain.deploy.bundle import build_wheel

    whl = build_wheel()
    out = tmp_path_factory.mktemp("wheel") / whl.name
    shutil.copyfile(whl, out)
    return str(out)


@pytest.fixture(scope="session")
def pi(tmp_path_factory):
    """The emulated Raspberry Pi 4 (arm64_sshd.py), one per session, shared by the tests that deploy to it
    (test_arm64_board.py, test_fleet.py). Skips, saying why, where it cannot run; fails instead with
    EDGEBRAIN_REQUIRE_ARM64=1 (.ci/run)."""
    from tests.deploy import arm64_sshd

    yield from running(arm64_sshd, "EDGEBRAIN_REQUIRE_ARM64", tmp_path_factory.mktemp("arm64-sshd"))
