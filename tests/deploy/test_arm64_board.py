"""``edgebrain deploy`` to an emulated Raspberry Pi 4 (tests/deploy/arm64_sshd.py): an arm64 Debian root
filesystem whose own sshd, shell, Python and pip run as arm64 programs under qemu-aarch64 (binfmt_misc),
with a Pi 4's device-tree model and /proc/cpuinfo. The board has no package index, so the deploy is
``--offline`` (the aarch64 wheels travel in the bundle).

Checked: the probe sees aarch64 and the Pi 4; the deploy installs, warms the Numba cache on the board
and smoke-tests; the board's integer outputs are bit-identical to this x86-64 machine's (checked here on
the arrays, independently of deploy's hashes); a re-deploy copies nothing; an MCU profile (rp2040) is
refused in one line. Timings are printed by the last test (pytest -rP).

Skips, saying why, without root, the SSH-capable root filesystem (tools/install-test-deps.sh builds it)
or binfmt_misc; with EDGEBRAIN_REQUIRE_ARM64=1 (.ci/run) it fails instead.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shlex
import time

import numpy as np
import pytest

from tests.conftest import need
from tests.deploy import arm64_sshd
from tests.deploy.conftest import deploy as _deploy

TIMES: dict = {}
#: a first deploy under emulation: pip in a new venv and a cold Numba compile take minutes
TIMEOUT = 1800


def deploy(*args, timeout=TIMEOUT):
    return _deploy(*args, timeout=timeout)


@pytest.fixture(scope="session")
def pi(tmp_path_factory):
    """The emulated Pi 4, one per session; /opt/eb reset to its venvs (see arm64_sshd.reset_target)."""
    why = arm64_sshd.why_absent()
    if why:
        if os.environ.get("EDGEBRAIN_REQUIRE_ARM64") == "1":
            pytest.fail(f"EDGEBRAIN_REQUIRE_ARM64=1 but {why}")
        pytest.skip(why)
    t = time.perf_counter()
    b = arm64_sshd.start(tmp_path_factory.mktemp("arm64-sshd"))
    try:
        TIMES["board_start_s"] = round(time.perf_counter() - t, 1)
        TIMES["venvs_kept_from_earlier_runs"] = arm64_sshd.reset_target(b).split()
        yield b
    finally:
        b.stop()


@pytest.fixture(scope="module")
def har_csv(datasets):
    return need(datasets / "imu" / "sp-sw-har" / "s16" / "s16_01_sw.csv")


def test_the_board_is_arm64_and_a_pi4(pi):
    from edgebrain.deploy.deploy import detect_device, probe
    from edgebrain.deploy.target import Ssh, parse_ssh_options, parse_target

    r = pi.ssh("uname -m; python3 -c 'import platform; print(platform.machine())'; od -An -tu2 -j18 -N2 /bin/sh")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split("\n")
    assert lines[0] == "aarch64" and lines[1] == "aarch64"
    assert lines[2].split() == ["183"]  # the shell's ELF header: e_machine = EM_AARCH64
    facts = probe(Ssh(parse_target(pi.url()), parse_ssh_options(pi.options()[1::2])), "python3")
    assert facts["arch"] == "aarch64" and facts["python"].startswith("3.11.")
    assert facts["board"] == "Raspberry Pi 4 Model B Rev 1.4" and facts["libc"] == "glibc-2.36"
    assert detect_device(facts).name == "rpi4b"


def test_mcu_profile_is_refused_in_one_line(pi):
    path = arm64_sshd.TARGET + "-mcu"
    r = deploy("zoo:har-lif", "--to", pi.url(path), "--device", "rp2040", *pi.options(), timeout=300)
    assert r.returncode == 2, r.stdout + r.stderr
    err = [ln for ln in r.stderr.splitlines() if ln.startswith("error: ")]
    assert len(err) == 1 and "rp2040" in err[0] and "aarch64" in err[0] and "armv6-m" in err[0], r.stderr
    assert "Traceback" not in r.stderr
    assert pi.ssh(f"test -e {shlex.quote(path)} || echo absent").stdout.strip() == "absent"


def _board_outputs(pi) -> np.ndarray:
    code = ("import io, sys, numpy as np; from edgebrain.model import Model; m = Model.load(sys.argv[1]); "
            "x = np.load(sys.argv[2]); out, _ = m.session('int').run(x); b = io.BytesIO(); "
            "np.save(b, np.asarray(out)); sys.stdout.buffer.write(b.getvalue())")
    cur = f"{arm64_sshd.TARGET}/current"
    # the venv by its own folder, where the warm-up ran (Numba keys its cache on the source's path, and
    # PATH/venv is a symlink: through it, everything would compile again, for over a minute under emulation)
    cmd = " ".join(shlex.quote(a) for a in ["-c", code, f"{cur}/model.ebm", f"{cur}/smoke_input.npy"])
    r = pi.ssh(f"cd / && \"$(readlink -f {cur}/venv)/bin/python\" {cmd} | base64", timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    return np.load(io.BytesIO(base64.b64decode(r.stdout)))


def test_offline_deploy_to_the_pi_is_bit_identical_to_x86(pi, har_csv, wheel):
    t = time.perf_counter()
    r = deploy("zoo:har-lif", "--to", pi.url(), "--device", "rpi4b", "--offline", "--recording", str(har_csv),
               *pi.options(), "--wheel", wheel, "--json")
    TIMES["first_deploy_s"] = round(time.perf_counter() - t, 1)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout)
    TIMES["first_deploy"] = {"venv": res["venv"], "warmup_on_board_s": res["warmup_s"],
                             "warmup_compiles": res["warmup_compiles"], "smoke_on_board_s": res["smoke_s"],
                             **{k: v for k, v in res["times"].items()}}
    TIMES["release"] = res["release"]
    assert res["action"] == "installed" and res["copied"] and res["installed"] and res["device"] == "rpi4b"
    assert res["probe"]["arch"] == "aarch64" and res["probe"]["board"].startswith("Raspberry Pi 4 Model B")
    assert res["bundle"]["offline"]
    assert res["smoke"]["match"] and res["smoke"]["exact"] and res["smoke"]["precision"] == "int"
    assert res["smoke_compiles"] == 0  # the smoke test, a new process, loaded what the warm-up compiled
    if res["venv"] == "created":  # a new venv: the warm-up compiled the kernels on the board
        assert res["warmup_compiles"] > 0
    # the venv holds aarch64 builds, installed from the bundle's wheels alone (the board has no index)
    wheels = pi.ssh(f"ls {arm64_sshd.TARGET}/current/wheels").stdout.split()
    assert any(w.startswith("numba-") and w.endswith("aarch64.whl") for w in wheels), wheels
    assert all(w.endswith("-any.whl") or "aarch64" in w for w in wheels), wheels
    # bit-identical, on the arrays: the shipped input run here and on the board
    from edgebrain.model import Model

    x = np.load(io.BytesIO(base64.b64decode(
        pi.ssh(f"base64 {arm64_sshd.TARGET}/current/smoke_input.npy").stdout)))
    assert x.shape[0] == 400 and x.dtype == np.float32
    mine, _ = Model.load("zoo:har-lif").session("int").run(x)
    mine = np.asarray(mine)
    t = time.perf_counter()
    theirs = _board_outputs(pi)
    TIMES["board_run_from_warm_cache_s"] = round(time.perf_counter() - t, 1)
    assert theirs.dtype == mine.dtype and theirs.shape == mine.shape
    assert np.array_equal(theirs, mine) and mine.sum() > 0


def test_redeploy_copies_nothing(pi, har_csv, wheel):
    if "release" not in TIMES:
        pytest.skip("the first deploy did not succeed")
    stamp = f"{arm64_sshd.TARGET}/current"
    before = pi.ssh(f"find {arm64_sshd.TARGET} -newer {stamp} -print | wc -l").stdout
    t = time.perf_counter()
    r = deploy("zoo:har-lif", "--to", pi.url(), "--device", "rpi4b", "--offline", "--recording", str(har_csv),
               *pi.options(), "--wheel", wheel, "--json")
    TIMES["redeploy_s"] = round(time.perf_counter() - t, 1)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout)
    assert res["action"] == "unchanged" and not res["copied"] and not res["installed"]
    assert res["release"] == TIMES["release"]
    assert pi.ssh(f"find {arm64_sshd.TARGET} -newer {stamp} -print | wc -l").stdout == before


def test_timings_report():
    """Not a check: the timings, in the test log (pytest -rP)."""
    print(json.dumps(TIMES, indent=1))
