"""``deploy --offline`` onto a board with no route to the package index (the fixture's second sshd port:
pip's index is a closed port there). Without --offline the install fails there, with one line, and
leaves nothing behind; with --offline the dependency wheels travel in the bundle (``pip download
--only-binary=:all: --platform manylinux..._x86_64 --python-version ...``) and the install uses them alone."""

from __future__ import annotations

import json
import platform
import subprocess

import pytest

from tests.deploy.conftest import deploy as _deploy

TIMEOUT = 1200


def deploy(*args, timeout=TIMEOUT):
    return _deploy(*args, timeout=timeout)


def test_offline_bundle_installs_without_an_index(sshd, tmp_path, wheel):
    if platform.machine() not in ("x86_64", "aarch64"):
        pytest.skip(f"no manylinux wheels of Numba for {platform.machine()}")
    app = tmp_path / "app"
    url = sshd.url(str(app), port=sshd.offline_port)
    # the control: online, this board cannot install
    r = deploy("zoo:har-lif", "--to", url, *sshd.options(), "--wheel", wheel)
    assert r.returncode == 2, r.stderr[-2000:]
    err = [ln for ln in r.stderr.splitlines() if ln.startswith("error: ")]
    assert len(err) == 1 and "pip install failed on the target" in err[0] and "Traceback" not in r.stderr
    assert list(app.iterdir()) == []  # no release, no venv, no copy left behind

    r = deploy("zoo:har-lif", "--to", url, *sshd.options(), "--wheel", wheel, "--offline", "--json")
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout)
    assert res["action"] == "installed" and res["bundle"]["offline"] and res["smoke"]["match"]
    wheels = sorted(p.name for p in (app / "current" / "wheels").iterdir())
    for dep in ("numpy-", "numba-", "llvmlite-", "typer-"):
        assert any(w.startswith(dep) for w in wheels), wheels
    arch = res["probe"]["arch"]
    assert all(w.endswith("-any.whl") or arch in w for w in wheels), wheels
    # the venv holds exactly the pinned versions
    pins = dict(line.split("==") for line in (app / "current" / "requirements.txt").read_text().split())
    freeze = subprocess.run([str(app / "venv" / "bin" / "python"), "-m", "pip", "freeze"], capture_output=True,
                            text=True, timeout=120).stdout
    got = dict(line.split("==") for line in freeze.split() if "==" in line)
    for name, version in pins.items():
        assert got.get(name) == version, (name, version, got.get(name))
