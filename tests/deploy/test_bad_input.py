"""``edgebrain deploy`` refuses what cannot work with one ``error:`` line, exit code 2 and no traceback, and
leaves nothing on the target: an unreachable port, a refused key, an unknown host key, no Python or an
old one, the wrong architecture for --device, a model that does not fit, a full disk, bad arguments."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.deploy.conftest import deploy as _deploy
from tests.deploy.conftest import keygen


def deploy(*args, timeout=300):
    return _deploy(*args, timeout=timeout)


def refused(r: subprocess.CompletedProcess, *words: str) -> str:
    """One ``error:`` line, the last on stderr (after at most the progress lines naming the steps), exit 2."""
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    errors = [ln for ln in lines if ln.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""
    for w in words:
        assert w in errors[0], errors[0]
    return errors[0]


@pytest.fixture
def app(tmp_path):
    return tmp_path / "app"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_port(sshd, app):
    refused(deploy("zoo:har-lif", "--to", sshd.url(str(app), port=_closed_port()), *sshd.options()),
            "connection refused")
    assert not app.exists()


def test_refused_key(sshd, app, tmp_path):
    stranger = keygen(tmp_path / "stranger")
    refused(deploy("zoo:har-lif", "--to", sshd.url(str(app)), *sshd.options(key=stranger)), "login was refused")
    assert not app.exists()


def test_unknown_host_key_is_not_accepted(sshd, app, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    refused(deploy("zoo:har-lif", "--to", sshd.url(str(app)), *sshd.options(known_hosts=empty)),
            "host key is not known")
    assert not app.exists() and empty.read_text() == ""  # nothing was accepted on the user's behalf


def test_changed_host_key_is_refused(sshd, app, tmp_path):
    other = keygen(tmp_path / "other_host_key")
    kh = tmp_path / "known_hosts"
    kh.write_text(f"[127.0.0.1]:{sshd.port} {' '.join(Path(str(other) + '.pub').read_text().split()[:2])}\n")
    refused(deploy("zoo:har-lif", "--to", sshd.url(str(app)), *sshd.options(known_hosts=kh)), "CHANGED")
    assert not app.exists()


def test_no_python_on_the_target(sshd, app):
    refused(deploy("zoo:har-lif", "--to", sshd.url(str(app)), *sshd.options(), "--remote-python",
                   "/nonexistent/python3"), "no /nonexistent/python3 on the target")
    assert not app.exists()


def test_python_older_than_3_10_is_refused(sshd, app, tmp_path):
    old = tmp_path / "python3.9"  # answers the probe as a Python 3.9 would
    old.write_text("#!/bin/sh\necho python=3.9.18\necho libc=glibc-2.36\n")
    old.chmod(0o755)
    refused(deploy("zoo:har-lif", "--to", sshd.url(str(app)), *sshd.options(), "--remote-python", str(old)),
            "Python 3.9.18", "needs Python 3.10 or newer")
    assert not app.exists()


def test_wrong_architecture_for_the_device(sshd, app):
    arch = platform.machine()
    other = "rpi4b" if arch == "x86_64" else "host"
    if arch not in ("x86_64", "aarch64") or other == "host":
        pytest.skip(f"this check needs an x86-64 target (this machine is {arch})")
    refused(deploy("zoo:har-lif", "--to", sshd.url(str(app)), *sshd.options(), "--device", other),
            "the target is x86_64, but --device rpi4b is aarch64")
    assert not app.exists()


def test_model_that_does_not_fit_the_device(sshd, app, tmp_path):
    text = (REPO / "devices" / "rpi4b.toml").read_text()
    tiny = (text.replace('name = "rpi4b"', 'name = "tiny-board"')
            .replace('arch = "aarch64"', f'arch = "{platform.machine()}"')
            .replace("value = 4294967296", "value = 1048576"))
    assert "1048576" in tiny
    prof = tmp_path / "tiny-board.toml"
    prof.write_text(tiny)
    refused(deploy("zoo:har-lif", "--to", sshd.url(str(app)), *sshd.options(), "--device", str(prof)),
            "does not fit tiny-board")
    assert not app.exists()


def test_full_disk(sshd, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("a small full disk needs a tmpfs mount (root)")
    small = tmp_path / "small"
    small.mkdir()
    m = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(small)], capture_output=True, text=True,
                       timeout=30)
    if m.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {m.stderr.strip()}")
    try:
        refused(deploy("zoo:har-lif", "--to", sshd.url(str(small / "app")), *sshd.options()), "not enough disk")
        assert list(small.iterdir()) == []
    finally:
        subprocess.run(["umount", str(small)], capture_output=True, timeout=30)


def test_rollback_with_nothing_deployed(sshd, app):
    refused(deploy("--rollback", "--to", sshd.url(str(app)), *sshd.options()), "nothing is deployed")
    assert not app.exists()


@pytest.mark.parametrize("args,words", [
    (["zoo:har-lif", "--to", "http://example.org/x"], ["expected ssh://"]),
    (["zoo:har-lif", "--to", "ssh://127.0.0.1:99999/x"], ["port"]),
    (["zoo:har-lif", "--to", "ssh://127.0.0.1/"], ["give a folder"]),
    (["zoo:har-lif", "--to", "ssh://127.0.0.1/x", "--ssh-option", "NoEquals"], ["expected KEY=VALUE"]),
    (["--to", "ssh://127.0.0.1/x"], ["give a MODEL"]),
    (["zoo:har-lif", "--rollback", "--to", "ssh://127.0.0.1/x"], ["--rollback takes no MODEL"]),
    (["zoo:no-such-model", "--to", "ssh://127.0.0.1/x"], ["no zoo model"]),
    (["zoo:har-lif", "--to", "ssh://127.0.0.1/x", "--device", "no-such-board"], ["no device profile"]),
    (["zoo:har-lif", "--to", "ssh://127.0.0.1/x", "--recording", "/nonexistent.csv"], ["not a file"]),
])
def test_bad_arguments_fail_before_the_network(args, words):
    refused(deploy(*args), *words)
