"""Python 3.10 honesty: pyproject.toml says ``requires-python = ">=3.10"`` and JetPack 6 ships 3.10, but no 3.10
interpreter can be installed on this kind of machine; so a static check (vermin, in the ``dev`` extra)
reads every module of the package and fails on any syntax, module or function newer than 3.10.

Two 3.11 names are used behind a fallback, and excluded here by name: ``tomllib`` (``tomli`` on 3.10,
devices/catalog.py) and ``hashlib.file_digest`` (model.py reads the file itself without it). The test
checks that those fallbacks are still in place, so the exclusions cannot hide a real use.

Then a real Python 3.10: ``edgebrain deploy`` to an x86-64 Ubuntu 22.04 root filesystem (JetPack 6's userland
and Python 3.10.12; tools/jammy/rootfs.sh, tests/deploy/jammy_sshd.py) through its own sshd. Online (pip on
the board fetches from PyPI) and ``--offline`` (cp310 wheels in the bundle; that port's sessions reach no
index): the bundle pins :data:`edgebrain.deploy.bundle.FALLBACK_PINS` for 3.10 (NumPy 2.2.6: this machine's
NumPy needs 3.11), the venv holds exactly those versions, and the smoke test's integer outputs are
bit-identical to this machine's. A Python 3.9 is refused in one line. Not a Jetson, and not aarch64.
Skips without root or the root filesystem; fails instead with EDGEBRAIN_REQUIRE_JAMMY=1 (.ci/run)."""

from __future__ import annotations

import base64
import io
import json
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from edgebrain.deploy.bundle import FALLBACK_PINS, pinned_requirements
from tests.conftest import REPO
from tests.deploy import chroot_board, jammy_sshd
from tests.deploy.conftest import deploy as _deploy

#: (name excluded from vermin's check, file, the fallback that makes it safe on 3.10)
GUARDED = [("tomllib", "edgebrain/devices/catalog.py", "import tomli as tomllib"),
           ("hashlib.file_digest", "edgebrain/model.py", 'hasattr(hashlib, "file_digest")')]


def test_fallbacks_for_3_11_names_are_in_place():
    for name, path, fallback in GUARDED:
        assert fallback in (REPO / path).read_text(), f"{path}: {name} is used without its 3.10 fallback"


def test_package_needs_nothing_newer_than_python_3_10():
    vermin = shutil.which("vermin")
    if vermin is None:
        pytest.skip("vermin is not installed (pip install vermin, or the dev extra)")
    excl = [a for name, _, _ in GUARDED for a in ("--exclude", name)]
    r = subprocess.run([vermin, "--target=3.10-", "--no-tips", "--violations", *excl, "edgebrain"], cwd=REPO,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]


# --- a real Python 3.10: deploy to an Ubuntu 22.04 userland (tests/deploy/jammy_sshd.py) -------------------

TIMES: dict = {}
#: JetPack 6's Python; the board's, checked below
PY310_PINS = {name: version for name, (version, _) in FALLBACK_PINS[(3, 10)].items()}


def deploy(*args, timeout=1200):
    return _deploy(*args, timeout=timeout)


@pytest.fixture(scope="module")
def jammy(tmp_path_factory):
    """The Python 3.10 board, one per module. Skips, saying why, without root or the root filesystem
    (tools/install-test-deps.sh builds it); fails instead with EDGEBRAIN_REQUIRE_JAMMY=1 (.ci/run)."""
    yield from chroot_board.running(jammy_sshd, "EDGEBRAIN_REQUIRE_JAMMY", tmp_path_factory.mktemp("jammy-sshd"))


def _freeze(board, path: str) -> dict:
    r = board.ssh(f"{shlex.quote(path)}/venv/bin/python -m pip freeze --disable-pip-version-check")
    assert r.returncode == 0, r.stderr
    return dict(line.split("==") for line in r.stdout.split() if "==" in line)


def _pins(board, path: str) -> dict:
    text = board.host_path(f"{path}/current/requirements.txt").read_text()
    return dict(line.split("==") for line in text.split())


def test_pins_for_python_3_10_are_the_tested_fallbacks(wheel):
    """No board needed: what the bundle pins for 3.10 and 3.11 (NumPy 2.3+ has no 3.10 wheels)."""
    from importlib import metadata

    fb: dict = {}
    pins = dict(r.split("==") for r in pinned_requirements(Path(wheel), "3.10.12", fb))
    this = ".".join(map(str, sys.version_info[:3]))
    here = dict(r.split("==") for r in pinned_requirements(Path(wheel), this))
    for name, version in PY310_PINS.items():
        assert pins[name] == version
    # the others stay at this machine's versions; the fallbacks are those this Python cannot use
    def others(d):
        return {k: v for k, v in d.items() if k not in PY310_PINS}

    assert others(pins) == others(here)
    assert set(fb) <= set(PY310_PINS) and "tomli" in fb
    if sys.version_info >= (3, 11):
        assert "tomli" not in here
        assert ("numpy" in fb) == (metadata.version("numpy") != pins["numpy"])


def test_the_board_is_ubuntu_22_04_with_python_3_10(jammy):
    from edgebrain.deploy.deploy import detect_device, probe
    from edgebrain.deploy.target import Ssh, parse_ssh_options, parse_target

    r = jammy.ssh(". /etc/os-release && echo \"$VERSION_ID\" && uname -m && python3 -V")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split("\n")
    assert lines[:2] == ["22.04", "x86_64"] and lines[2].startswith("Python 3.10."), lines
    facts = probe(Ssh(parse_target(jammy.url("probe")), parse_ssh_options(jammy.options()[1::2])), "python3")
    assert facts["arch"] == "x86_64" and facts["python"].startswith("3.10.") and facts["libc"] == "glibc-2.35"
    assert "board" not in facts and "tegra" not in facts and detect_device(facts) is None  # not a Jetson


def test_online_deploy_to_python_3_10_is_bit_identical(jammy, wheel):
    path = f"{jammy_sshd.TARGET}/online"
    t = time.perf_counter()
    r = deploy("zoo:har-lif", "--to", jammy.url(path), *jammy.options(), "--wheel", wheel, "--json")
    TIMES["first_deploy_online_s"] = round(time.perf_counter() - t, 1)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout)
    TIMES["first_deploy_online"] = {**res["times"], "warmup_on_board_s": res["warmup_s"]}
    assert res["probe"]["python"].startswith("3.10.") and res["probe"]["arch"] == "x86_64"
    assert res["action"] == "installed" and res["venv"] == "created" and not res["bundle"]["offline"]
    # the bundle's requirements: the 3.10 pins where this machine's versions need 3.11
    reqs = dict(r.split("==") for r in res["bundle"]["requirements"])
    assert reqs == _pins(jammy, path)
    for name, version in PY310_PINS.items():
        assert reqs[name] == version, (name, reqs)
    assert set(res["bundle"]["fallback_pins"]) <= set(PY310_PINS)
    # the venv, installed from the index on the board, holds exactly them
    got = _freeze(jammy, path)
    for name, version in reqs.items():
        assert got.get(name) == version, (name, version, got.get(name))
    # the smoke test on the board: integer path, bit-identical to this machine, nothing compiled again
    assert res["smoke"]["match"] and res["smoke"]["exact"] and res["smoke"]["precision"] == "int"
    assert res["warmup_compiles"] > 0 and res["smoke_compiles"] == 0
    # and independently of deploy's hashes: the board's output array equals this machine's
    assert np.array_equal(_board_outputs(jammy, path), _local_outputs(jammy, path))


def test_offline_deploy_to_python_3_10_uses_cp310_wheels(jammy, wheel):
    path = f"{jammy_sshd.TARGET}/offline"
    url = jammy.url(path, offline=True)
    # the control: that port's sessions reach no index
    r = deploy("zoo:har-lif", "--to", url, *jammy.options(), "--wheel", wheel)
    assert r.returncode == 2, r.stderr[-2000:]
    err = [ln for ln in r.stderr.splitlines() if ln.startswith("error: ")]
    assert len(err) == 1 and "pip install failed on the target" in err[0] and "Traceback" not in r.stderr
    assert list(jammy.host_path(path).iterdir()) == []

    t = time.perf_counter()
    r = deploy("zoo:har-lif", "--to", url, *jammy.options(), "--wheel", wheel, "--offline", "--json")
    TIMES["first_deploy_offline_s"] = round(time.perf_counter() - t, 1)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout)
    assert res["action"] == "installed" and res["bundle"]["offline"] and res["probe"]["python"].startswith("3.10.")
    assert res["smoke"]["match"] and res["smoke"]["exact"]
    wheels = sorted(p.name for p in jammy.host_path(f"{path}/current/wheels").iterdir())
    for name, version in PY310_PINS.items():
        assert any(w.startswith(f"{name}-{version}-") for w in wheels), (name, wheels)
    for dep in ("numba-", "llvmlite-", "h5py-"):
        assert any(w.startswith(dep) and "-cp310-cp310-" in w and w.endswith("_x86_64.whl") for w in wheels), wheels
    binary = [w for w in wheels if not w.endswith("-none-any.whl")]
    assert all("-cp310-" in w or "-abi3-" in w for w in binary), binary  # CPython 3.10's ABI, nothing for 3.11
    pins = _pins(jammy, path)
    got = _freeze(jammy, path)
    for name, version in pins.items():
        assert got.get(name) == version, (name, version, got.get(name))


def test_older_python_on_the_board_is_refused_in_one_line(jammy):
    path = f"{jammy_sshd.TARGET}/old"
    # a python3.9 that answers the probe as one would (Ubuntu 22.04 has no older interpreter)
    r = jammy.ssh("printf '#!/bin/sh\\necho python=3.9.18\\necho libc=glibc-2.35\\n' > /tmp/python3.9 && "
                  "chmod +x /tmp/python3.9")
    assert r.returncode == 0, r.stderr
    r = deploy("zoo:har-lif", "--to", jammy.url(path), *jammy.options(), "--remote-python", "/tmp/python3.9",
               timeout=300)
    assert r.returncode == 2, r.stdout + r.stderr
    err = [ln for ln in r.stderr.splitlines() if ln.startswith("error: ")]
    assert len(err) == 1 and "Python 3.9.18" in err[0] and "needs Python 3.10 or newer" in err[0], r.stderr
    assert "Traceback" not in r.stderr
    assert not jammy.host_path(path).exists()  # nothing created
    print("python 3.10 board timings:", json.dumps(TIMES, sort_keys=True))


def _board_outputs(board, path: str) -> np.ndarray:
    code = ("import io, sys, numpy as np; from edgebrain.model import Model; m = Model.load(sys.argv[1]); "
            "x = np.load(sys.argv[2]); out, _ = m.session('int').run(x); b = io.BytesIO(); "
            "np.save(b, np.asarray(out)); sys.stdout.buffer.write(b.getvalue())")
    cur = f"{path}/current"
    # the venv by its own folder, where the warm-up ran (Numba keys its cache on the source's path)
    cmd = " ".join(shlex.quote(a) for a in ["-c", code, f"{cur}/model.ebm", f"{cur}/smoke_input.npy"])
    r = board.ssh(f"cd / && \"$(readlink -f {cur}/venv)/bin/python\" {cmd} | base64", timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    return np.load(io.BytesIO(base64.b64decode(r.stdout)))


def _local_outputs(board, path: str) -> np.ndarray:
    from edgebrain.model import Model

    x = np.load(board.host_path(f"{path}/current/smoke_input.npy"))
    out, _ = Model.load("zoo:har-lif").session("int").run(x)
    return np.asarray(out)
