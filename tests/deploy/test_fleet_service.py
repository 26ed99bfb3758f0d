"""``edgebrain deploy MODEL --fleet inventory.yml --service --source SRC --sink mqtt:...``: every host gets the
systemd unit of a single ``deploy --service``, with the inventory's per-host overrides, and each board's
stream publishes its decisions to one MQTT broker on a topic naming the host.

The fleet is two inventory hosts on the real sshd on loopback (two deploy folders, as test_fleet.py does),
deployed through a real ``ansible-playbook``; the broker is a real Mosquitto on loopback (tests/stream/_mqtt.py).
Host ``fleet-a`` takes the command line's source (a path with spaces, ``$HOME``, ``{{ … }}`` and ``;``: not
templated by Ansible, not expanded, quoted for systemd) and sinks; host ``fleet-b`` has its own source, unit
name and sinks in the inventory. systemd is not PID 1 here, so each unit's ExecStart is run over ssh as systemd
would run it (test_service.py does the same), streaming a real smartwatch recording: one subscriber receives
both hosts' decisions, each on its own topic, and each host's equal a local ``edgebrain stream`` of the same
model and recording. A re-run changes nothing (changed=0, the units not rewritten). A bad ``--sink`` is one
line and exit code 2 before any host is touched.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from edgebrain.deploy import fleet as F
from tests.conftest import REPO, need
from tests.deploy.conftest import deploy
from tests.deploy.test_service import REC, unit_lines
from tests.stream._mqtt import Broker, Subscriber, find_mosquitto


def _ansible_playbook() -> str:
    here = Path(sys.executable).parent / "ansible-playbook"
    found = str(here) if here.exists() else shutil.which("ansible-playbook")
    if not found:
        pytest.skip("no ansible-playbook: pip install -e '.[deploy]' (tools/install-test-deps.sh)")
    return found


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    binary = find_mosquitto()
    if binary is None:
        pytest.skip("mosquitto broker binary not found (install the Debian package 'mosquitto'; "
                    "tools/install-test-deps.sh does)")
    pytest.importorskip("paho.mqtt.client", reason="paho-mqtt not installed (pip install 'edgebrain[mqtt]')")
    b = Broker(binary, workdir=str(tmp_path_factory.mktemp("mosquitto")))
    b.start()
    try:
        yield b
    finally:
        b.stop()


def _unit_dir(user: bool) -> str:
    return os.path.expanduser("~/.config/systemd/user") if user else "/etc/systemd/system"


@pytest.fixture(scope="module")
def fleet(sshd, wheel, datasets, broker, tmp_path_factory, request):
    _ansible_playbook()
    rec = need(datasets.joinpath(*REC))
    base = tmp_path_factory.mktemp("fleetsvc")
    tok = secrets.token_hex(3)
    # fleet-a streams from the command line's source, a path Ansible must neither template nor expand
    src_a = base / "rec $HOME {{ lookup('pipe', 'touch canary') }};x" / "walk 1.csv"
    src_b = base / "sensor-b" / "s16_01_sw.csv"  # fleet-b: its sensor is elsewhere (the inventory says so)
    for p in (src_a, src_b):
        p.parent.mkdir(parents=True)
        shutil.copyfile(rec, p)
    user = os.geteuid() != 0
    names = {"fleet-a": f"edgebrain-eb-{tok}-a", "fleet-b": f"eb-fleet-{tok}-b"}
    opts = [f"UserKnownHostsFile={sshd.known_hosts}", "GlobalKnownHostsFile=/dev/null", "IdentitiesOnly=yes",
            "IdentityAgent=none", "ConnectTimeout=10"]
    common = {"ansible_host": sshd.host, "ansible_port": sshd.port, "ansible_user": sshd.user,
              "ansible_ssh_private_key_file": str(sshd.key), "edgebrain_ssh_options": opts}
    mqtt = f"mqtt:host={broker.host},port={broker.port}"
    hosts = {"fleet-a": {**common, "edgebrain_path": str(base / f"eb-{tok}-a")},
             "fleet-b": {**common, "edgebrain_path": str(base / f"eb-{tok}-b"), "edgebrain_source": str(src_b),
                         "edgebrain_service_name": names["fleet-b"],
                         "edgebrain_sinks": [f"{mqtt},qos=1,topic=edgebrain/{{device}}/{{model}}/decisions"]}}
    inv = base / "inventory.yml"
    inv.write_text(json.dumps({"all": {"hosts": hosts}}, indent=1))  # JSON is YAML
    args = ["zoo:har-lif", "--fleet", str(inv), "--wheel", wheel, "--service", "--source", str(src_a),
            "--sink", mqtt, "--sink", "csv:path=decisions.csv", *(["--user-service"] if user else []), "--json"]

    def remove_units():
        for n in names.values():
            f = Path(_unit_dir(user)) / f"{n}.service"
            if f.exists():
                f.unlink()

    request.addfinalizer(remove_units)
    first = deploy(*args)
    return {"args": args, "first": first, "base": base, "rec": rec, "src": {"fleet-a": src_a, "fleet-b": src_b},
            "names": names, "user": user, "hosts": hosts, "mqtt": mqtt}


def _unit(fleet, host: str) -> Path:
    return Path(_unit_dir(fleet["user"])) / f"{fleet['names'][host]}.service"


def _exec_argv(text: str) -> list[str]:
    return shlex.split(unit_lines(text)["ExecStart"][0].replace("%%", "%").replace("$$", "$"))


def _sinks(argv: list[str]) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == "--sink"]


def test_every_host_gets_its_unit_with_its_overrides(fleet):
    r = fleet["first"]
    assert r.returncode == 0, r.stderr[-3000:] + r.stdout[-3000:]
    res = json.loads(r.stdout)
    hosts = {h["host"]: h for h in res["hosts"]}
    assert set(hosts) == {"fleet-a", "fleet-b"} and res["failed"] == [] and res["changed"] == 2
    for name, h in hosts.items():
        assert h["ok"] and h["action"] == "installed" and h["smoke"] is True and h["changed"] == 1, h
        assert h["service"]["unit"] == "written" and h["service"]["name"] == fleet["names"][name] + ".service", h
        assert h["service"]["unit_path"] == str(_unit(fleet, name))
        # the mqtt sink's paho-mqtt, pinned to this machine's version in the bundle's requirements, so the
        # venv has it from the install (and an --offline bundle carries its wheel)
        pin = f"paho-mqtt=={metadata.version('paho-mqtt')}"
        assert pin in h["report"]["bundle"]["requirements"], h["report"]["bundle"]["requirements"]
        assert h["report"]["service"]["packages"] == {"present": [pin], "installed": []}
    a, b = (_exec_argv(_unit(fleet, h).read_text()) for h in ("fleet-a", "fleet-b"))
    # the command line's source reached the unit byte for byte: not templated, $HOME not expanded
    assert a[a.index("--source") + 1] == str(fleet["src"]["fleet-a"])
    assert not any(Path(d).joinpath("canary").exists() for d in (REPO, fleet["base"], Path.cwd()))
    assert b[b.index("--source") + 1] == str(fleet["src"]["fleet-b"])  # the inventory's own source
    # the mqtt sink names its host (device=INVENTORY_NAME); fleet-b's own sinks replace the command line's
    assert _sinks(a) == [f"{fleet['mqtt']},device=fleet-a", "csv:path=decisions.csv"]
    assert _sinks(b) == [f"{fleet['mqtt']},qos=1,topic=edgebrain/{{device}}/{{model}}/decisions,device=fleet-b"]
    if shutil.which("systemd-analyze") is None:
        pytest.skip("no systemd-analyze here (apt install systemd): the units' syntax is not verified")
    for h in ("fleet-a", "fleet-b"):
        v = subprocess.run(["systemd-analyze", "verify", str(_unit(fleet, h))], capture_output=True, text=True,
                           timeout=60)
        assert v.returncode == 0 and fleet["names"][h] not in v.stderr, v.stderr


def _decisions(records) -> list:
    return [(d["t"], d["label"], d["confidence"]) for d in records if "summary" not in d]


def test_one_subscriber_sees_every_hosts_decisions_equal_to_a_local_stream(fleet, sshd, broker):
    """Each host's ExecStart, run over ssh as systemd would run it (its WorkingDirectory and Environment=),
    publishes to the broker on edgebrain/HOST/model/decisions; the decisions equal a local stream's."""
    assert fleet["first"].returncode == 0, fleet["first"].stderr[-2000:]
    sub = Subscriber(broker.port, topic="edgebrain/#")
    try:
        for host in ("fleet-a", "fleet-b"):
            u = unit_lines(_unit(fleet, host).read_text())
            env = " ".join(shlex.quote(e) for e in u["Environment"])
            cmd = f"cd {shlex.quote(u['WorkingDirectory'][0])} && env {env} " \
                  + " ".join(shlex.quote(a) for a in _exec_argv(_unit(fleet, host).read_text())) + " > /dev/null"
            r = sshd.ssh(cmd, timeout=300)
            assert r.returncode == 0, r.stderr[-2000:]
            assert "compiling kernels" not in r.stderr  # the fleet warmed each service's cache
        summaries = {f"edgebrain/{h}/model/summary" for h in ("fleet-a", "fleet-b")}
        assert sub.wait_for(lambda m: summaries <= {t for t, _ in m}, timeout=30), sorted({t for t, _ in sub.messages})
        got = sub.json()
    finally:
        sub.close()
    lr = subprocess.run([sys.executable, "-m", "edgebrain", "stream", "zoo:har-lif", "--source", str(fleet["rec"]),
                         "--json"], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert lr.returncode == 0, lr.stderr[-2000:]
    mine = _decisions(json.loads(ln) for ln in lr.stdout.splitlines() if ln.strip())
    assert len(mine) > 10
    assert {t for t, _ in got} == {f"edgebrain/{h}/model/{k}" for h in ("fleet-a", "fleet-b")
                                   for k in ("decisions", "summary")}
    for host in ("fleet-a", "fleet-b"):
        theirs = _decisions(p for t, p in got if t == f"edgebrain/{host}/model/decisions")
        assert theirs == mine, host
        (summary,) = [p["summary"] for t, p in got if t == f"edgebrain/{host}/model/summary"]
        assert summary["mqtt"]["unsent"] == 0 and summary["decisions"] == len(mine)


def test_a_rerun_changes_nothing_and_leaves_the_units(fleet):
    assert fleet["first"].returncode == 0, fleet["first"].stderr[-2000:]
    before = {h: _unit(fleet, h).stat().st_mtime_ns for h in ("fleet-a", "fleet-b")}
    r = deploy(*fleet["args"])
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout)
    assert res["changed"] == 0  # ansible counted changed=0 on every host
    for h in res["hosts"]:
        assert h["ok"] and h["action"] == "unchanged" and h["changed"] == 0, h
        assert h["service"]["unit"] == "unchanged" and not h["report"]["copied"], h
        assert h["report"]["service"]["packages"] == {"present": [f"paho-mqtt=={metadata.version('paho-mqtt')}"],
                                                      "installed": []}
    t = deploy(*[a for a in fleet["args"] if a != "--json"])
    assert t.returncode == 0, t.stderr[-2000:]
    lines = t.stdout.splitlines()
    for h in ("fleet-a", "fleet-b"):
        assert any(ln.startswith(f"ok       {h}: ") and f"unit {fleet['names'][h]}.service unchanged" in ln
                   for ln in lines), t.stdout
    assert "2 of 2 hosts deployed, 0 changed" in lines[-1], t.stdout
    assert {h: _unit(fleet, h).stat().st_mtime_ns for h in ("fleet-a", "fleet-b")} == before


def test_a_bad_sink_is_one_line_before_any_host_is_touched(sshd, tmp_path):
    _ansible_playbook()
    inv = tmp_path / "inventory.yml"
    inv.write_text(json.dumps({"all": {"hosts": {"h": {"ansible_host": sshd.host, "ansible_port": sshd.port,
                                                       "edgebrain_path": str(tmp_path / "never")}}}}))
    for sink, why in (("nosuch:x=1", "unknown sink 'nosuch'"), ("mqtt:host=b,bogus=1", "no option 'bogus'"),
                      ("mqtt:host=b,port=abc", "not a number"), ("mqtt:host", "not key=value")):
        r = deploy("zoo:har-lif", "--fleet", str(inv), "--service", "--source", "udp://:9000", "--sink", sink)
        assert r.returncode == 2 and len(r.stderr.splitlines()) == 1, r.stderr
        assert r.stderr.startswith("error: ") and "--sink" in r.stderr and why in r.stderr, r.stderr
    assert not (tmp_path / "never").exists()
    r = deploy("zoo:har-lif", "--fleet", str(inv), "--sink", "mqtt:host=b")  # a sink without --service
    assert r.returncode == 2 and "go with --service" in r.stderr and len(r.stderr.splitlines()) == 1, r.stderr


def test_the_playbook_passes_each_hosts_values_as_they_are(tmp_path):
    """The playbook alone, with a stand-in for edgebrain that prints its argv: a host's own variables win over
    the command line's (edgebrain_defaults); an mqtt sink gets device=HOST unless it names one; values are
    passed without templating or expansion; a host with edgebrain_service false gets no unit."""
    playbook = _ansible_playbook()
    fake = tmp_path / "fake_edgebrain.py"
    fake.write_text("import json, sys\nprint(json.dumps({'action': 'unchanged', 'argv': sys.argv[1:]}))\n")
    inv = tmp_path / "inventory.yml"
    inv.write_text(json.dumps({"all": {"vars": {"edgebrain_path": "/opt/eb"}, "hosts": {
        "a": {"ansible_host": "127.0.0.1"},
        "b": {"ansible_host": "127.0.0.1", "edgebrain_source": "serial:///dev/ttyUSB1?baud=115200",
              "edgebrain_sinks": ["mqtt", "mqtt:host=x,device=mine", "csv:path=b.csv"],
              "edgebrain_service_name": "eb-b", "edgebrain_user_service": True},
        "c": {"ansible_host": "127.0.0.1", "edgebrain_service": False}}}}))
    (tmp_path / "reports").mkdir()
    extra = {"edgebrain_model": "zoo:har-lif", "edgebrain_command": [sys.executable, str(fake)],
             "edgebrain_report_dir": str(tmp_path / "reports"),
             "edgebrain_defaults": {"service": True, "source": "/data/{{ lookup('pipe', 'touch canary') }} $HOME ~",
                                    "sinks": ["mqtt:host=broker,topic=f/{device}/{model}/decisions"],
                                    "user_service": False}}
    (tmp_path / "vars.yml").write_text(F.unsafe_yaml(extra))
    r = subprocess.run([playbook, "-i", str(inv), str(Path(F.__file__).parent / "ansible" / F.PLAYBOOK), "-e",
                        f"@{tmp_path / 'vars.yml'}"], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                       env=dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_RETRY_FILES_ENABLED="0"))
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    argv = {h: json.loads(json.loads((tmp_path / "reports" / f"{h}.json").read_text())["stdout"])["argv"]
            for h in "abc"}
    assert argv["a"][argv["a"].index("--service"):] == [
        "--service", "--source=/data/{{ lookup('pipe', 'touch canary') }} $HOME ~",
        "--sink=mqtt:host=broker,topic=f/{device}/{model}/decisions,device=a"]
    assert argv["b"][argv["b"].index("--service"):] == [
        "--service", "--source=serial:///dev/ttyUSB1?baud=115200", "--sink=mqtt:,device=b",
        "--sink=mqtt:host=x,device=mine", "--sink=csv:path=b.csv", "--service-name=eb-b", "--user-service"]
    assert "--service" not in argv["c"] and argv["c"][:4] == ["deploy", "zoo:har-lif", "--to", "ssh://127.0.0.1:22/opt/eb"]
    assert not (tmp_path / "canary").exists()
