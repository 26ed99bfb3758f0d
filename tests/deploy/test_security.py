"""Security of ``deploy``: a target path and a model name full of shell syntax stay names (every remote
command is quoted; the copy tools get them through their own protocols), both copy tools included; a
bundle that does not match its manifest is refused on the target before anything is installed; and
host-key checking is never turned off by deploy itself."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.conftest import need
from tests.deploy.conftest import deploy

NASTY = "it's a \"dir\" `id` $(touch {canary}) ; $HOME && x"


@pytest.fixture(scope="module")
def canary(tmp_path_factory):
    return tmp_path_factory.mktemp("canary") / "pwned"


def test_nasty_path_and_model_name_with_rsync_then_scp(sshd, tmp_path, canary, datasets, wheel):
    from edgebrain import zoo

    models = tmp_path / "models"
    models.mkdir()
    nasty_name = NASTY.format(canary=canary).replace("/", "_")
    model = models / f"{nasty_name}.ebm"
    shutil.copyfile(zoo.path("har-lif"), model)
    rec = need(datasets / "imu" / "sp-sw-har" / "s16" / "s16_01_sw.csv")
    path = str(tmp_path / NASTY.format(canary=canary) / "app")
    r = deploy(str(model), "--to", sshd.url(path), "--recording", str(rec), *sshd.options(), "--wheel", wheel,
               "--json")
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout)
    assert res["copy_tool"] == "rsync" and res["smoke"]["match"] and res["bundle"]["model"] == model.name
    assert Path(path, "current", "model.ebm").read_bytes() == model.read_bytes()
    assert not canary.exists(), "a $(...) in the path or model name was run"

    # a second release into the same folder, copied with scp (SFTP: paths are not shell text either)
    basic = models / f"{nasty_name} 2.ebm"
    shutil.copyfile(zoo.path("basicmotions"), basic)
    r = deploy(str(basic), "--to", sshd.url(path), "--copy", "scp", *sshd.options(), "--wheel", wheel, "--json")
    assert r.returncode == 0, r.stderr[-3000:]
    res2 = json.loads(r.stdout)
    assert res2["copy_tool"] == "scp" and res2["smoke"]["match"] and res2["venv"] == "reused"
    assert res2["previous"] == res["release"]
    assert Path(path, "current", "model.ebm").read_bytes() == basic.read_bytes()
    assert Path(path, "venv", "bin", "python").exists()
    assert not canary.exists(), "a $(...) in the path or model name was run"


def test_a_bundle_that_does_not_match_its_manifest_is_not_installed(sshd, tmp_path, wheel):
    """The copied files are checked by SHA-256 on the target before install: one changed byte (here, the
    requirements, as a tampered copy would) stops the install, and the copy is removed."""
    from edgebrain.deploy import scripts
    from edgebrain.deploy.bundle import build
    from edgebrain.deploy.target import Ssh, parse_ssh_options, parse_target
    from edgebrain.model import Model

    opts = sshd.options()
    ssh = Ssh(parse_target(sshd.url(str(tmp_path / "app"))), parse_ssh_options(opts[1::2]))
    with tempfile.TemporaryDirectory() as work:
        b = build(Model.load("zoo:har-lif"), "zoo:har-lif", Path(work), python="3.11.0", arch="x86_64", wheel=wheel)
        staged = tmp_path / "app" / ".incoming" / b["id"]
        shutil.copytree(work, staged)
    with open(staged / "requirements.txt", "a") as f:
        f.write("evil-package==6.6.6\n")
    res = ssh.run(scripts.INSTALL, [ssh.target.path, b["id"], b["env"], "python3", "0", b["wheel"]], timeout=120)
    assert res.returncode == 3
    assert "SHA-256 mismatch after the copy: requirements.txt" in res.stderr
    assert not staged.exists() and not (tmp_path / "app" / "venvs").exists()


def test_deploy_never_turns_host_key_checking_off():
    from edgebrain.deploy.target import Ssh, parse_target

    ssh = Ssh(parse_target("ssh://pi@raspberrypi.local/~/edgebrain"))
    argv = " ".join(ssh.ssh_argv() + ssh.scp_argv())
    assert "StrictHostKeyChecking" not in argv and "UserKnownHostsFile=/dev/null" not in argv
    assert "BatchMode=yes" in argv and "ConnectTimeout=" in argv and "ServerAliveInterval=" in argv
    # the user's own choice comes first (ssh keeps the first value of an option)
    mine = Ssh(ssh.target, ["StrictHostKeyChecking=accept-new"]).ssh_argv()
    assert mine.index("StrictHostKeyChecking=accept-new") < mine.index("BatchMode=yes")
