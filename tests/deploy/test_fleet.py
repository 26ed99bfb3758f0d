"""``edgebrain deploy MODEL --fleet inventory.yml`` through a real ``ansible-playbook`` (ansible-core, the
deploy extra) against the real sshd on loopback (conftest.py). The fleet has three hosts: two deploy
folders on the loopback sshd (two inventory hosts with their own paths) and one whose inventory names
a key the server refuses. The two deploy, with the smoke test bit-identical; the third is reported in
one line; the exit code is 4 (a partial failure). A re-run changes nothing on the two (ansible's
changed=0). ``--emit-ansible`` writes a playbook that ``ansible-playbook --syntax-check`` accepts."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.conftest import deploy, keygen


def _ansible_playbook() -> str:
    here = Path(sys.executable).parent / "ansible-playbook"
    found = str(here) if here.exists() else shutil.which("ansible-playbook")
    if not found:
        pytest.skip("no ansible-playbook: pip install -e '.[deploy]' (tools/install-test-deps.sh)")
    return found


def _inventory(sshd, base: Path) -> Path:
    wrong_key = keygen(base / "not_authorized_key")
    opts = [f"UserKnownHostsFile={sshd.known_hosts}", "GlobalKnownHostsFile=/dev/null", "IdentitiesOnly=yes",
            "IdentityAgent=none", "ConnectTimeout=10"]
    common = {"ansible_host": sshd.host, "ansible_port": sshd.port, "ansible_user": sshd.user,
              "edgebrain_ssh_options": opts}
    hosts = {"board-a": {**common, "ansible_ssh_private_key_file": str(sshd.key), "edgebrain_path": str(base / "a")},
             "board-b": {**common, "ansible_ssh_private_key_file": str(sshd.key), "edgebrain_path": str(base / "b")},
             "board-refuses-key": {**common, "ansible_ssh_private_key_file": str(wrong_key),
                                   "edgebrain_path": str(base / "c")}}
    inv = base / "inventory.yml"
    inv.write_text(json.dumps({"all": {"hosts": hosts}}, indent=1))  # JSON is YAML
    return inv


@pytest.fixture(scope="module")
def fleet(sshd, wheel, tmp_path_factory):
    _ansible_playbook()
    base = tmp_path_factory.mktemp("fleet")
    inv = _inventory(sshd, base)
    first = deploy("zoo:har-lif", "--fleet", str(inv), "--wheel", wheel, "--json")
    return {"inv": inv, "base": base, "first": first, "wheel": wheel}


def test_two_hosts_deploy_and_the_refused_one_is_reported(fleet, sshd):
    r = fleet["first"]
    assert r.returncode == 4, r.stderr[-3000:] + r.stdout[-3000:]
    res = json.loads(r.stdout)
    hosts = {h["host"]: h for h in res["hosts"]}
    assert set(hosts) == {"board-a", "board-b", "board-refuses-key"}
    for name in ("board-a", "board-b"):
        h = hosts[name]
        assert h["ok"] and h["action"] == "installed" and h["smoke"] is True and h["changed"] == 1, h
        assert h["report"]["smoke"]["exact"] and h["report"]["copied"]
        path = str(fleet["base"] / name[-1])
        assert sshd.ssh(f"test -L {path}/current && echo yes").stdout.strip() == "yes"
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
    for name in ("board-a", "board-b"):
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
