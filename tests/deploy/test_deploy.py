"""``edgebrain deploy`` against a real sshd on loopback (conftest.py): this x86-64 machine is the target.

The tests run in order on one target folder: a first deploy (venv, pip, Numba warm-up, smoke test),
a re-deploy that changes nothing, a changed model in a new release, a rollback, and the release
made current again without a copy. The smoke test's claim (the target's integer outputs are
bit-identical to this machine's) is checked independently of deploy's own hashes: the test fetches
the shipped input, runs the model here with edgebrain's session, runs the installed edgebrain on the
target through its own ssh call, and compares the arrays.
"""

from __future__ import annotations

import hashlib
import io
import json
import shlex
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import need
from tests.deploy.conftest import deploy, ok_json

TIMES: dict = {}


@pytest.fixture(scope="module")
def target(sshd, tmp_path_factory):
    base = tmp_path_factory.mktemp("deploy-target")
    return {"path": str(base / "app"), "url": sshd.url(str(base / "app"))}


@pytest.fixture(scope="module")
def har_csv(datasets):
    return need(datasets / "imu" / "sp-sw-har" / "s16" / "s16_01_sw.csv")


@pytest.fixture(scope="module")
def motions_ts(datasets):
    return need(datasets / "imu" / "basicmotions" / "BasicMotions_TEST.ts")


def remote_readlink(sshd, path: str) -> str:
    r = sshd.ssh(f"readlink {shlex.quote(path)}")
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def target_outputs(sshd, path: str) -> np.ndarray:
    """The active release's model run on the target by the installed edgebrain, in a process of our own."""
    code = ("import io, sys, numpy as np; from edgebrain.model import Model; m = Model.load(sys.argv[1]); "
            "x = np.load(sys.argv[2]); out, _ = m.session('int').run(x); b = io.BytesIO(); "
            "np.save(b, np.asarray(out)); sys.stdout.buffer.write(b.getvalue())")
    cur = f"{path}/current"
    cmd = " ".join(shlex.quote(a) for a in [f"{path}/venv/bin/python", "-c", code, f"{cur}/model.ebm",
                                            f"{cur}/smoke_input.npy"])
    argv_r = sshd.ssh(f"cd / && {cmd} | base64")
    assert argv_r.returncode == 0, argv_r.stderr[-2000:]
    import base64

    return np.load(io.BytesIO(base64.b64decode(argv_r.stdout)))


def local_outputs(sshd, path: str, model: str) -> tuple[np.ndarray, bytes]:
    from edgebrain.model import Model

    r = sshd.ssh(f"base64 {shlex.quote(path + '/current/smoke_input.npy')}")
    assert r.returncode == 0, r.stderr
    import base64

    x = np.load(io.BytesIO(base64.b64decode(r.stdout)))
    out, _ = Model.load(model).session("int").run(x)
    return np.asarray(out), x


def test_first_deploy_installs_warms_and_smoke_tests_bit_identical(sshd, target, har_csv, wheel):
    t = time.perf_counter()
    r = deploy("zoo:har-lif", "--to", target["url"], "--recording", str(har_csv), *sshd.options(), "--wheel", wheel,
               "--json")
    TIMES["first"] = time.perf_counter() - t
    res = ok_json(r)
    assert res["action"] == "installed" and res["copied"] and res["installed"]
    assert res["venv"] == "created"
    assert res["smoke"]["match"] and res["smoke"]["exact"] and res["smoke"]["precision"] == "int"
    assert res["smoke"]["steps"] == 400 and res["bundle"]["smoke_input"].startswith("s16_01_sw.csv")
    assert res["probe"]["arch"] in ("x86_64", "aarch64") and res["warmup_s"] > 0
    assert res["verified_files"] == res["bundle"]["files"] - 1  # every file but the manifest itself
    TIMES["warmup_on_target"] = res["warmup_s"]
    # the warm-up compiled the kernels on the target; the smoke test, a new process, loaded them from its cache
    assert res["warmup_compiles"] > 0 and res["smoke_compiles"] == 0
    TIMES["first_release"] = res["release"]
    # the active release is the one reported, by symlink, with the zoo model's exact bytes
    assert remote_readlink(sshd, target["path"] + "/current") == f"releases/{res['release']}"
    from edgebrain import zoo

    r2 = sshd.ssh(f"sha256sum {shlex.quote(target['path'] + '/current/model.ebm')}")
    assert r2.stdout.split()[0] == hashlib.sha256(Path(zoo.path("har-lif")).read_bytes()).hexdigest()
    # bit-identical, checked here independently of deploy's hashes: the arrays themselves
    mine, x = local_outputs(sshd, target["path"], "zoo:har-lif")
    assert x.shape[0] == 400 and x.dtype == np.float32
    theirs = target_outputs(sshd, target["path"])
    assert theirs.dtype == mine.dtype and theirs.shape == mine.shape
    assert np.array_equal(theirs, mine)
    assert mine.sum() > 0  # the recording made the model spike: a real run, not all zeros


def test_the_documented_command_runs_from_the_warm_cache(sshd, target, tmp_path):
    """PATH/venv/bin/edgebrain (docs/deploy.md) compiles nothing: its first line names the venv's own folder,
    the one the warm-up ran in. (edgebrain says "compiling kernels" on stderr whenever it compiles.)"""
    from edgebrain.progress import COMPILING

    p = shlex.quote(target["path"])
    r = sshd.ssh(f"cd / && {p}/venv/bin/edgebrain run {p}/current/model.ebm --input {p}/current/smoke_input.npy "
                 f"--output {shlex.quote(str(tmp_path / 'out.npz'))} --json")
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout)["steps"] == 400
    assert COMPILING.split("(")[0].strip() not in r.stderr and "compiled" not in r.stderr, r.stderr


def test_redeploy_unchanged_copies_and_installs_nothing(sshd, target, har_csv, wheel):
    before = sshd.ssh(f"find {shlex.quote(target['path'])} -newer {shlex.quote(target['path'] + '/current')}"
                      " -print | wc -l").stdout
    t = time.perf_counter()
    res = ok_json(deploy("zoo:har-lif", "--to", target["url"], "--recording", str(har_csv), *sshd.options(),
                         "--wheel", wheel, "--json"))
    TIMES["redeploy"] = time.perf_counter() - t
    assert res["action"] == "unchanged" and not res["copied"] and not res["installed"]
    assert res["release"] == TIMES["first_release"]
    after = sshd.ssh(f"find {shlex.quote(target['path'])} -newer {shlex.quote(target['path'] + '/current')}"
                     " -print | wc -l").stdout
    assert before == after  # nothing on the target was written


def test_redeploy_report_for_people(sshd, target, har_csv, wheel):
    r = deploy("zoo:har-lif", "--to", target["url"], "--recording", str(har_csv), *sshd.options(), "--wheel", wheel)
    assert r.returncode == 0, r.stderr
    assert f"release  {TIMES['first_release']} is already current: nothing copied or installed" in r.stdout
    assert r.stdout.startswith("target   ssh://") and "Python 3." in r.stdout


def test_changed_model_is_a_new_release_and_rollback_restores_the_previous(sshd, target, motions_ts, wheel):
    res = ok_json(deploy("zoo:basicmotions", "--to", target["url"], "--recording", str(motions_ts),
                         *sshd.options(), "--wheel", wheel, "--json"))
    assert res["action"] == "installed" and res["venv"] == "reused" and res["smoke"]["match"]
    assert res["release"] != TIMES["first_release"] and res["previous"] == TIMES["first_release"]
    second = res["release"]
    assert remote_readlink(sshd, target["path"] + "/current") == f"releases/{second}"
    assert remote_readlink(sshd, target["path"] + "/previous") == f"releases/{TIMES['first_release']}"
    # the new release's outputs, bit-identical here and there
    mine, _ = local_outputs(sshd, target["path"], "zoo:basicmotions")
    assert np.array_equal(target_outputs(sshd, target["path"]), mine)

    rb = deploy("--rollback", "--to", target["url"], *sshd.options())
    assert rb.returncode == 0, rb.stderr
    assert "rolled back" in rb.stdout
    assert remote_readlink(sshd, target["path"] + "/current") == f"releases/{TIMES['first_release']}"
    assert remote_readlink(sshd, target["path"] + "/previous") == f"releases/{second}"
    mine, _ = local_outputs(sshd, target["path"], "zoo:har-lif")
    assert np.array_equal(target_outputs(sshd, target["path"]), mine)

    # deploying the newer model again: installed already, made current without a copy
    res = ok_json(deploy("zoo:basicmotions", "--to", target["url"], "--recording", str(motions_ts),
                         *sshd.options(), "--wheel", wheel, "--json"))
    assert res["action"] == "reactivated" and not res["copied"] and res["release"] == second
    assert remote_readlink(sshd, target["path"] + "/current") == f"releases/{second}"
    # at most the current and the previous release are kept, and the one venv they share
    listing = sshd.ssh(f"cd {shlex.quote(target['path'])} && ls releases && echo -- && ls venvs").stdout.split()
    assert listing[:2] == sorted([second, TIMES["first_release"]]) and len(listing) == 4


def test_outputs_that_differ_are_not_activated(sshd, target, motions_ts, wheel, tmp_path):
    """The install's last gate: the target's smoke hashes against the expected ones. Here the expectation
    is changed after the bundle is built (as a kernel that computes differently on the board would look):
    the release is not activated, its copy is removed, the active release and its venv are untouched."""
    from edgebrain.deploy import deploy as D
    from edgebrain.deploy.bundle import build
    from edgebrain.deploy.target import (
        DeployError,
        Ssh,
        parse_ssh_options,
        parse_target,
    )
    from edgebrain.model import Model

    ssh = Ssh(parse_target(target["url"]), parse_ssh_options(sshd.options()[1::2]))
    facts = D.probe(ssh, "python3")
    before = remote_readlink(sshd, target["path"] + "/current")
    work = tmp_path / "bundle"
    work.mkdir()
    b = build(Model.load("zoo:har-lif"), "zoo:har-lif", work, python=facts["python"], arch=facts["arch"], wheel=wheel)
    assert b["env"] in facts["venvs"] and b["id"] not in facts["releases"]  # seeded input: a new release
    D.copy_bundle(ssh, work, b["id"], facts, "auto", lambda text: None)
    b["expected"] = {**b["expected"], "output_sha256": "0" * 64}
    with pytest.raises(DeployError, match="output_sha256 differ from this machine's"):
        D.install_bundle(ssh, b, "python3", offline=False)
    assert remote_readlink(sshd, target["path"] + "/current") == before
    left = sshd.ssh(f"ls -A {shlex.quote(target['path'])}; ls {shlex.quote(target['path'] + '/venvs')}").stdout.split()
    assert ".incoming" not in left and b["env"] in left


def test_timings_report():
    """Not a check: the timings, in the test log (pytest -rP)."""
    print(json.dumps(TIMES, indent=1))
