"""``edgebrain deploy MODEL --fleet inventory.yml`` through a real ``ansible-playbook`` (ansible-core, the
deploy extra). The fleet has three hosts: a deploy folder on the x86-64 sshd on loopback (conftest.py),
the emulated Raspberry Pi 4 (arm64_sshd.py: an arm64 sshd, Python and pip under qemu-aarch64), and a
second folder on the x86-64 sshd whose inventory names a key the server refuses. The first two deploy,
with the smoke test bit-identical on both architectures; the third is reported in one line; the exit
code is 4 (a partial failure). A re-run changes nothing on the two (ansible's changed=0).
``--emit-ansible`` writes a playbook that ``ansible-playbook --syntax-check`` accepts.

The Pi's host deploys to the folder test_arm64_board.py used (when it ran first in the session), so the
venv and the Numba cache warmed there are reused: a second cold compile under emulation would add minutes.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy import arm64_sshd
from tests.deploy.conftest import deploy, keygen


def _ansible_playbook() -> str:
    here = Path(sys.executable).parent / "ansible-playbook"
    found = str(here) if here.exists() else shutil.which("ansible-playbook")
    if not found:
        pytest.skip("no ansible-playbook: pip install -e '.[deploy]' (tools/install-test-deps.sh)")
    return found


def _inventory(sshd, pi, base: Path) -> Path:
    wrong_key = keygen(base / "not_authorized_key")

    def conn(server, known_hosts) -> dict:
        return {"ansible_host": server.host, "ansible_port": server.port, "ansible_user": server.user,
                "edgebrain_ssh_options": [f"UserKnownHostsFile={known_hosts}", "GlobalKnownHostsFile=/dev/null",
                                          "IdentitiesOnly=yes", "IdentityAgent=none", "ConnectTimeout=30"]}

    x86 = conn(sshd, sshd.known_hosts)
    hosts = {"board-a": {**x86, "ansible_ssh_private_key_file": str(sshd.key), "edgebrain_path": str(base / "a")},
             "pi4": {**conn(pi, pi.known_hosts), "ansible_ssh_private_key_file": str(pi.key),
                     "edgebrain_path": arm64_sshd.TARGET},
             "board-refuses-key": {**x86, "ansible_ssh_private_key_file": str(wrong_key),
                                   "edgebrain_path": str(base / "c")}}
    inv = base / "inventory.yml"
    inv.write_text(json.dumps({"all": {"hosts": hosts}}, indent=1))  # JSON is YAML
    return inv


@pytest.fixture(scope="module")
def fleet(sshd, pi, wheel, tmp_path_factory):
    _ansible_playbook()
    base = tmp_path_factory.mktemp("fleet")
    inv = _inventory(sshd, pi, base)
    first = deploy("zoo:har-lif", "--fleet", str(inv), "--wheel", wheel, "--json")
    return {"inv": inv, "base": base, "first": first, "wheel": wheel}


def test_two_hosts_deploy_and_the_refused_one_is_reported(fleet, sshd, pi):
    r = fleet["first"]
    assert r.returncode == 4, r.stderr[-3000:] + r.stdout[-3000:]
    res = json.loads(r.stdout)
    hosts = {h["host"]: h for h in res["hosts"]}
    assert set(hosts) == {"board-a", "pi4", "board-refuses-key"}
    for name in ("board-a", "pi4"):
        h = hosts[name]
        # the Pi's folder may hold this very release already (test_arm64_board.py): then it is made current
        assert h["ok"] and h["action"] in ("installed", "reactivated") and h["smoke"] is True, h
        assert h["changed"] == 1 and h["report"]["smoke"]["exact"], h
    assert hosts["board-a"]["action"] == "installed" and hosts["board-a"]["report"]["copied"]
    assert hosts["board-a"]["report"]["probe"]["arch"] == "x86_64"
    assert hosts["pi4"]["report"]["probe"]["arch"] == "aarch64" and hosts["pi4"]["report"]["device"] == "rpi4b"
    assert sshd.ssh(f"test -L {fleet['base'] / 'a'}/current && echo yes").stdout.strip() == "yes"
    assert pi.ssh(f"test -L {arm64_sshd.TARGET}/current && echo yes").stdout.strip() == "yes"
    bad = hosts["board-refuses-key"]
    assert not bad["ok"] and "\n" not in bad["error"] and bad["error"], bad
    assert res["failed"] == ["board-refuses-key"] and res["succeeded"] == 2
    # nothing was created on the refused host's folder
    assert sshd.ssh(f"test -e {fleet['base'] / 'c'} && echo yes || echo no").stdout.strip() == "no"


def test_a_rerun_changes_nothing_and_reports_in_text(fleet):
    r = deploy("zoo:har-lif", "--fleet", str(fleet["inv"]), "--wheel", fleet["wheel"], "--json")
    assert r.returncode == 4, r.stderr[-3000:]
    res = json.loads(r.stdout)
    hosts = {h["host"]: h for h in res["hosts"]}
    for name in ("board-a", "pi4"):
        assert hosts[name]["ok"] and hosts[name]["action"] == "unchanged" and hosts[name]["changed"] == 0
        assert not hosts[name]["report"]["copied"]
    assert res["changed"] == 0  # ansible counted changed=0 on every host
    assert hosts["board-refuses-key"]["changed"] == 0
    t = deploy("zoo:har-lif", "--fleet", str(fleet["inv"]), "--wheel", fleet["wheel"])
    assert t.returncode == 4
    lines = t.stdout.splitlines()
    failed = [ln for ln in lines if ln.startswith("FAILED")]
    assert len(failed) == 1 and "board-refuses-key" in failed[0] and "refused" in failed[0], t.stdout
    assert sum("unchanged (nothing copied)" in ln for ln in lines) == 2, t.stdout
    assert "2 of 3 hosts deployed" in lines[-1], t.stdout


def test_emit_ansible_writes_a_playbook_ansible_accepts(tmp_path, fleet):
    out = tmp_path / "ansible"
    r = deploy("--emit-ansible", str(out))
    assert r.returncode == 0, r.stderr
    assert (out / "playbook.yml").is_file() and (out / "inventory.example.yml").is_file()
    c = subprocess.run([_ansible_playbook(), "--syntax-check", "-i", str(fleet["inv"]), str(out / "playbook.yml"),
                        "-e", "edgebrain_model=zoo:har-lif"], capture_output=True, text=True, timeout=120, check=False)
    assert c.returncode == 0, c.stdout + c.stderr
    again = deploy("--emit-ansible", str(out))  # the same files: nothing to refuse
    assert again.returncode == 0, again.stderr
    (out / "playbook.yml").write_text("# ours\n")
    refused = deploy("--emit-ansible", str(out))
    assert refused.returncode == 2 and len(refused.stderr.splitlines()) == 1, refused.stderr


def test_fleet_bad_input_is_one_line(tmp_path, wheel):
    _ansible_playbook()
    bad = tmp_path / "bad.yml"
    bad.write_text("all: [\n")
    r = deploy("zoo:har-lif", "--fleet", str(bad), "--wheel", wheel)
    assert r.returncode == 2 and r.stderr.splitlines()[-1].startswith("error: "), r.stderr
    assert "inventory" in r.stderr.splitlines()[-1] and "Traceback" not in r.stderr, r.stderr
    r = deploy("zoo:har-lif", "--fleet", str(tmp_path / "missing.yml"))
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1 and "inventory" in r.stderr, r.stderr
    r = deploy("zoo:har-lif", "--fleet", str(tmp_path / "missing.yml"), "--to", "ssh://h/x")
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1, r.stderr
