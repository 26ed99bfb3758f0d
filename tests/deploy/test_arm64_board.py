"""``edgebrain deploy`` and ``edgebrain remote`` on an emulated Raspberry Pi 4 (tests/deploy/arm64_sshd.py): an
arm64 Debian root filesystem whose own sshd, shell, Python and pip run as arm64 programs under qemu-aarch64
(binfmt_misc), with a Pi 4's device-tree model and /proc/cpuinfo.

Checked, in order (one board per session; the tests build on each other):

* the probe sees aarch64 and the Pi 4; an MCU profile (rp2040) is refused in one line;
* a deploy from the package index (pip on the board downloads the aarch64 wheels) installs, warms the
  Numba cache on the board and smoke-tests; the board's integer outputs are bit-identical to this x86-64
  machine's (checked here on the arrays, independently of deploy's hashes);
* ``remote bench`` runs on the board (without its cold-start measurement: a cold compile under emulation
  takes minutes); ``remote stream`` of a real recording gives the decisions a local stream gives;
* a re-deploy copies nothing; a changed model is a new release, swapped in with the same venv, and
  ``--rollback`` makes the first current again, its outputs still bit-identical;
* ``deploy --offline`` to a second target on the board whose sessions have no route to any index
  installs from the bundle's aarch64 wheels alone, bit-identical too.

Timings are printed by the last test (pytest -rP).

Skips, saying why, without root, the SSH-capable root filesystem (tools/install-test-deps.sh builds it)
or binfmt_misc; with EDGEBRAIN_REQUIRE_ARM64=1 (.ci/run) it fails instead.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import shlex
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.conftest import REPO, need
from tests.deploy import arm64_sshd
from tests.deploy.conftest import deploy as _deploy

TIMES: dict = {}
#: a first deploy under emulation: pip in a new venv and a cold Numba compile take minutes
TIMEOUT = 1800


def deploy(*args, timeout=TIMEOUT):
    return _deploy(*args, timeout=timeout)


#: the second target, reached through the board's port without a package index
OFFLINE_TARGET = arm64_sshd.TARGET + "-offline"


@pytest.fixture(scope="module")
def board(pi):
    """The session's emulated Pi 4 (conftest.py) with both targets reset to their venvs."""
    t = time.perf_counter()
    TIMES["venvs_kept_from_earlier_runs"] = {p: arm64_sshd.reset_target(pi, p).split()
                                             for p in (arm64_sshd.TARGET, OFFLINE_TARGET)}
    TIMES["reset_s"] = round(time.perf_counter() - t, 1)
    return pi


@pytest.fixture(scope="module")
def har_csv(datasets):
    return need(datasets / "imu" / "sp-sw-har" / "s16" / "s16_01_sw.csv")


def test_the_board_is_arm64_and_a_pi4(board):
    pi = board
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


def test_mcu_profile_is_refused_in_one_line(board):
    pi = board
    path = arm64_sshd.TARGET + "-mcu"
    r = deploy("zoo:har-lif", "--to", pi.url(path), "--device", "rp2040", *pi.options(), timeout=300)
    assert r.returncode == 2, r.stdout + r.stderr
    err = [ln for ln in r.stderr.splitlines() if ln.startswith("error: ")]
    assert len(err) == 1 and "rp2040" in err[0] and "aarch64" in err[0] and "armv6-m" in err[0], r.stderr
    assert "Traceback" not in r.stderr
    assert pi.ssh(f"test -e {shlex.quote(path)} || echo absent").stdout.strip() == "absent"


def _board_outputs(pi, target: str = arm64_sshd.TARGET) -> np.ndarray:
    code = ("import io, sys, numpy as np; from edgebrain.model import Model; m = Model.load(sys.argv[1]); "
            "x = np.load(sys.argv[2]); out, _ = m.session('int').run(x); b = io.BytesIO(); "
            "np.save(b, np.asarray(out)); sys.stdout.buffer.write(b.getvalue())")
    cur = f"{target}/current"
    # the venv by its own folder, where the warm-up ran (Numba keys its cache on the source's path, and
    # PATH/venv is a symlink: through it, everything would compile again, for over a minute under emulation)
    cmd = " ".join(shlex.quote(a) for a in ["-c", code, f"{cur}/model.ebm", f"{cur}/smoke_input.npy"])
    r = pi.ssh(f"cd / && \"$(readlink -f {cur}/venv)/bin/python\" {cmd} | base64", timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    return np.load(io.BytesIO(base64.b64decode(r.stdout)))


def _local_outputs(pi, model: str, target: str = arm64_sshd.TARGET) -> np.ndarray:
    """This machine's integer outputs of ``model`` on the input the board's current release shipped."""
    from edgebrain.model import Model

    x = np.load(io.BytesIO(base64.b64decode(pi.ssh(f"base64 {target}/current/smoke_input.npy").stdout)))
    assert x.shape[0] == 400 and x.dtype == np.float32
    out, _ = Model.load(model).session("int").run(x)
    return np.asarray(out)


def _readlink(pi, path: str) -> str:
    r = pi.ssh(f"readlink {shlex.quote(path)}")
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def _elf_machine(pi, venv_glob: str) -> str:
    """e_machine of a compiled extension of Numba in the venv (183: AArch64; 62 would be x86-64)."""
    r = pi.ssh(f"f=$(find $(readlink -f {venv_glob})/lib -name '_helperlib*.so' | head -1) && "
               "od -An -tu2 -j18 -N2 \"$f\"")
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def eb(*args, timeout=TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgebrain", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=timeout)


def test_deploy_from_the_index_to_the_pi_is_bit_identical_to_x86(board, har_csv, wheel):
    pi = board
    t = time.perf_counter()
    r = deploy("zoo:har-lif", "--to", pi.url(), "--device", "rpi4b", "--recording", str(har_csv),
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
    assert not res["bundle"]["offline"]
    assert res["smoke"]["match"] and res["smoke"]["exact"] and res["smoke"]["precision"] == "int"
    assert res["smoke_compiles"] == 0  # the smoke test, a new process, loaded what the warm-up compiled
    if res["venv"] == "created":  # a new venv: pip fetched the wheels on the board, the warm-up compiled
        assert res["warmup_compiles"] > 0
    # no wheels travelled: the board's pip took aarch64 builds from the index
    assert pi.ssh(f"test -e {arm64_sshd.TARGET}/current/wheels || echo none").stdout.strip() == "none"
    assert _elf_machine(pi, f"{arm64_sshd.TARGET}/current/venv") == "183"
    # bit-identical, on the arrays: the shipped input run here and on the board
    mine = _local_outputs(pi, "zoo:har-lif")
    t = time.perf_counter()
    theirs = _board_outputs(pi)
    TIMES["board_run_from_warm_cache_s"] = round(time.perf_counter() - t, 1)
    assert theirs.dtype == mine.dtype and theirs.shape == mine.shape
    assert np.array_equal(theirs, mine) and mine.sum() > 0


def _deployed(board):
    if "release" not in TIMES:
        pytest.skip("the first deploy to the board did not succeed")
    return board


def decisions(stdout: str) -> list:
    rows = [json.loads(ln) for ln in stdout.splitlines() if ln.strip()]
    assert "summary" in rows[-1]
    return [(d["t"], d["label"], d["confidence"]) for d in rows[:-1]]


def test_remote_bench_runs_on_the_pi(board):
    pi = _deployed(board)
    t = time.perf_counter()
    r = eb("remote", pi.url(), "bench", "model.ebm", "--steps", "200", "--batch", "1", "--no-cold", "--json",
           *pi.options())
    TIMES["remote_bench_s"] = round(time.perf_counter() - t, 1)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(r.stdout)
    assert res["steps"] == 200 and res["precision"] == "int" and res["model"] == "model.ebm"
    assert res["input_shape"] == [6] and res["latency_us"]["count"] == 200 and res["latency_us"]["p50"] > 0
    TIMES["remote_bench_p50_us_under_emulation"] = round(res["latency_us"]["p50"], 1)


def test_remote_stream_of_a_real_recording_decides_as_here(board, har_csv):
    pi = _deployed(board)
    t = time.perf_counter()
    r = eb("remote", pi.url(), "stream", "model.ebm", "--source", str(har_csv), "--json", *pi.options())
    TIMES["remote_stream_s"] = round(time.perf_counter() - t, 1)
    assert r.returncode == 0, r.stderr[-2000:]
    local = eb("stream", "zoo:har-lif", "--source", str(har_csv), "--json")
    assert local.returncode == 0, local.stderr[-2000:]
    theirs, mine = decisions(r.stdout), decisions(local.stdout)
    assert len(mine) >= 5 and theirs == mine


def test_redeploy_copies_nothing(board, har_csv, wheel):
    pi = _deployed(board)
    stamp = f"{arm64_sshd.TARGET}/current"
    before = pi.ssh(f"find {arm64_sshd.TARGET} -newer {stamp} -print | wc -l").stdout
    t = time.perf_counter()
    r = deploy("zoo:har-lif", "--to", pi.url(), "--device", "rpi4b", "--recording", str(har_csv),
               *pi.options(), "--wheel", wheel, "--json")
    TIMES["redeploy_s"] = round(time.perf_counter() - t, 1)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout)
    assert res["action"] == "unchanged" and not res["copied"] and not res["installed"]
    assert res["release"] == TIMES["release"]
    assert pi.ssh(f"find {arm64_sshd.TARGET} -newer {stamp} -print | wc -l").stdout == before


def test_a_changed_model_swaps_in_and_rollback_restores_the_first(board, har_csv, wheel, tmp_path):
    """The changed model is zoo:har-lif saved again with one more metadata field (a retrain that kept the
    architecture looks the same to deploy: new file bytes, the same kernels, so no compile on the board)."""
    from edgebrain.model import Model

    pi = _deployed(board)
    m = Model.load("zoo:har-lif")
    m.graph.meta["retrained"] = "tests/deploy/test_arm64_board.py"
    v2 = tmp_path / "har-lif-v2.ebm"
    m.save(v2)
    t = time.perf_counter()
    r = deploy(str(v2), "--to", pi.url(), "--device", "rpi4b", "--recording", str(har_csv), *pi.options(),
               "--wheel", wheel, "--json")
    TIMES["changed_model_deploy_s"] = round(time.perf_counter() - t, 1)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout)
    assert res["action"] == "installed" and res["venv"] == "reused" and res["smoke"]["exact"]
    assert res["release"] != TIMES["release"] and res["previous"] == TIMES["release"]
    second = res["release"]
    assert _readlink(pi, f"{arm64_sshd.TARGET}/current") == f"releases/{second}"
    assert np.array_equal(_board_outputs(pi), _local_outputs(pi, str(v2)))

    rb = deploy("--rollback", "--to", pi.url(), *pi.options(), timeout=600)
    assert rb.returncode == 0, rb.stderr[-2000:]
    assert "rolled back" in rb.stdout
    assert _readlink(pi, f"{arm64_sshd.TARGET}/current") == f"releases/{TIMES['release']}"
    assert _readlink(pi, f"{arm64_sshd.TARGET}/previous") == f"releases/{second}"
    assert np.array_equal(_board_outputs(pi), _local_outputs(pi, "zoo:har-lif"))


def test_offline_deploy_to_a_board_without_an_index(board, har_csv, wheel):
    pi = board
    # that port's sessions have no index: pip's index is a closed port there
    r_env = pi.ssh("echo $PIP_INDEX_URL", timeout=120, offline=True)
    assert r_env.stdout.strip() == "http://127.0.0.1:9/simple", r_env.stderr
    t = time.perf_counter()
    r = deploy("zoo:har-lif", "--to", pi.url(OFFLINE_TARGET, offline=True), "--device", "rpi4b", "--offline",
               "--recording", str(har_csv), *pi.options(), "--wheel", wheel, "--json")
    TIMES["offline_deploy_s"] = round(time.perf_counter() - t, 1)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout)
    TIMES["offline_deploy"] = {"venv": res["venv"], "warmup_on_board_s": res["warmup_s"]}
    assert res["action"] == "installed" and res["bundle"]["offline"]
    assert res["smoke"]["match"] and res["smoke"]["exact"]
    wheels = pi.ssh(f"ls {OFFLINE_TARGET}/current/wheels").stdout.split()
    assert any(w.startswith("numba-") and w.endswith("aarch64.whl") for w in wheels), wheels
    assert all(w.endswith("-any.whl") or "aarch64" in w for w in wheels), wheels
    assert _elf_machine(pi, f"{OFFLINE_TARGET}/current/venv") == "183"
    assert np.array_equal(_board_outputs(pi, OFFLINE_TARGET), _local_outputs(pi, "zoo:har-lif", OFFLINE_TARGET))


def test_a_service_on_the_pi_streams_as_here(board, har_csv, wheel, tmp_path):
    """``deploy --service`` to the board: the unit is written in the board's /etc/systemd/system (systemd
    is not PID 1 in the emulated board, so it is not enabled and the report says so); its ExecStart, run
    on the board as systemd would, streams a recording on the board into a CSV whose decisions equal a
    local stream's, and compiles nothing (deploy warmed the service's NUMBA_CACHE_DIR on the board)."""
    pi = _deployed(board)
    name = "edgebrain-test-pi"
    rec = f"{arm64_sshd.TARGET}-data/{har_csv.name}"
    pi.ssh(f"mkdir -p {arm64_sshd.TARGET}-data")
    cp = subprocess.run(["scp", "-q", "-P", str(pi.port), "-o", f"IdentityFile={pi.key}", "-o",
                         f"UserKnownHostsFile={pi.known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null", "-o",
                         "IdentitiesOnly=yes", str(har_csv), f"root@{pi.host}:{rec}"],
                        capture_output=True, text=True, timeout=300)
    assert cp.returncode == 0, cp.stderr
    unit = f"/etc/systemd/system/{name}.service"
    try:
        t = time.perf_counter()
        r = deploy("zoo:har-lif", "--to", pi.url(), "--device", "rpi4b", "--recording", str(har_csv), *pi.options(),
                   "--wheel", wheel, "--service", "--source", rec, "--sink", "csv:path=decisions.csv",
                   "--service-name", name, "--json")
        TIMES["service_deploy_s"] = round(time.perf_counter() - t, 1)
        assert r.returncode == 0, r.stderr[-3000:]
        s = json.loads(r.stdout)["service"]
        TIMES["service_cache"] = s["cache"]
        assert s["unit"] == "written" and s["unit_path"] == unit and s["scope"] == "system"
        assert not s["enabled"] and "systemd is not PID 1" in s["note"]
        assert s["numba_cache_dir"] == f"{arm64_sshd.TARGET}/cache/numba"
        text = pi.ssh(f"cat {unit}").stdout
        u: dict = {}
        for line in text.splitlines():
            k, eq, v = line.partition("=")
            if eq and not line.startswith("#"):
                u.setdefault(k, []).append(v)
        assert u["Restart"] == ["on-failure"] and u["Environment"][0].startswith("NUMBA_CACHE_DIR=")
        argv = shlex.split(u["ExecStart"][0].replace("%%", "%").replace("$$", "$"))
        assert argv[0] == f"{arm64_sshd.TARGET}/current/venv/bin/edgebrain" and rec in argv
        cmd = (f"cd {shlex.quote(u['WorkingDirectory'][0])} && rm -f decisions.csv && env "
               f"{shlex.quote(u['Environment'][0])} " + " ".join(shlex.quote(a) for a in argv)
               + " > /dev/null && cat decisions.csv")
        t = time.perf_counter()
        run = pi.ssh(cmd, timeout=900)
        TIMES["service_execstart_s"] = round(time.perf_counter() - t, 1)
        assert run.returncode == 0, run.stderr[-2000:]
        assert "compiling kernels" not in run.stderr
        local = tmp_path / "local.csv"
        lr = eb("stream", "zoo:har-lif", "--source", str(har_csv), "--sink", f"csv:path={local}")
        assert lr.returncode == 0, lr.stderr[-2000:]

        def rows(text):
            return [(d["t"], d["label"], d["confidence"]) for d in csv.DictReader(io.StringIO(text))]

        theirs, mine = rows(run.stdout), rows(local.read_text())
        assert len(mine) >= 5 and theirs == mine
    finally:
        pi.ssh(f"rm -f {unit}; rm -rf {arm64_sshd.TARGET}-data {arm64_sshd.TARGET}/service")


def test_timings_report():
    """Not a check: the timings, in the test log (pytest -rP)."""
    print(json.dumps(TIMES, indent=1))
