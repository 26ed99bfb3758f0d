"""``edgebrain deploy --service`` against the real sshd on loopback (conftest.py).

systemd is not PID 1 here (a container), so the deploy writes the unit and says it did not enable it.
The tests check the unit with ``systemd-analyze verify``, run its ExecStart line over ssh exactly as
systemd would (in its WorkingDirectory, with its Environment=) and compare the decisions with a local
``edgebrain stream`` of the same model and recording; then idempotence (an unchanged unit is not
rewritten), a changed unit with a new release, and ``--rollback`` restoring the unit before it.

The first deploy is shared with test_remote.py (:func:`first_deploy`): one venv and pip install per run.
"""

from __future__ import annotations

import csv
import io
import json
import os
import secrets
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, need
from tests.deploy.conftest import deploy, ok_json

_FIRST: dict = {}
REC = ("imu", "sp-sw-har", "s16", "s16_01_sw.csv")


def first_deploy(sshd, wheel, datasets, tmp_path_factory, request) -> dict:
    """zoo:har-lif deployed once per session with --service streaming a real recording into a CSV sink
    (a system unit as root, else a user unit); the unit is removed at the end of the session."""
    if not _FIRST:
        rec = need(datasets.joinpath(*REC))
        base = tmp_path_factory.mktemp("svc-target")
        path = str(base / "app")
        name = f"edgebrain-test-{secrets.token_hex(4)}"
        user = os.geteuid() != 0
        args = ["zoo:har-lif", "--to", sshd.url(path), "--recording", str(rec), *sshd.options(), "--wheel", wheel,
                "--service", "--source", str(rec), "--sink", "csv:path=decisions.csv", "--service-name", name,
                *(["--user-service"] if user else []), "--json"]
        r = deploy(*args)

        def remove_unit():
            unit_dir = os.path.expanduser("~/.config/systemd/user") if user else "/etc/systemd/system"
            for f in (f"{unit_dir}/{name}.service",):
                if os.path.exists(f):
                    os.remove(f)

        request.config.add_cleanup(remove_unit)
        _FIRST.update(path=path, url=sshd.url(path), name=name, rec=rec, args=args, user=user, result=r)
    return _FIRST


@pytest.fixture(scope="module")
def first(sshd, wheel, datasets, tmp_path_factory, request):
    return first_deploy(sshd, wheel, datasets, tmp_path_factory, request)


def unit_path(first) -> str:
    return (os.path.expanduser("~/.config/systemd/user") if first["user"] else "/etc/systemd/system") \
        + f"/{first['name']}.service"


def unit_lines(text: str) -> dict:
    out: dict = {}
    for line in text.splitlines():
        k, eq, v = line.partition("=")
        if eq and not line.startswith("#"):
            out.setdefault(k, []).append(v)
    return out


def test_first_deploy_writes_the_unit_and_says_systemd_is_not_pid1(first):
    res = ok_json(first["result"])
    assert res["action"] == "installed" and res["smoke"]["match"]
    s = res["service"]
    assert s["unit"] == "written" and s["unit_path"] == unit_path(first)
    assert s["name"] == first["name"] + ".service" and s["scope"] == ("user" if first["user"] else "system")
    with open("/proc/1/comm") as f:
        pid1 = f.read().strip()
    if pid1 != "systemd":  # here: a container; the unit is written, not enabled, and the report says why
        assert not s["enabled"] and "systemd is not PID 1" in s["note"] and pid1 in s["note"]
    # the cache the service will use was warmed as the service's user, and compiled there
    assert s["cache"] == "compiled" and s["numba_cache_dir"].endswith("/app/cache/numba")
    assert os.stat(s["numba_cache_dir"]).st_uid == os.geteuid()
    assert any(f.endswith(".nbi") for _, _, fs in os.walk(s["numba_cache_dir"]) for f in fs)


def test_the_unit_file(first):
    text = Path(unit_path(first)).read_text()
    u = unit_lines(text)
    assert u["Restart"] == ["on-failure"] and u["StandardOutput"] == ["journal"] and u["StandardError"] == ["journal"]
    assert u["Environment"][0] == f"NUMBA_CACHE_DIR={first['path']}/cache/numba"
    assert u["ExecStart"][0].startswith(f"{first['path']}/current/venv/bin/edgebrain stream "
                                        f"{first['path']}/current/model.ebm --source {first['rec']}")
    assert ("User" in u) != first["user"]
    if shutil.which("systemd-analyze") is None:
        pytest.skip("no systemd-analyze here (apt install systemd): the unit's syntax is not verified")
    r = subprocess.run(["systemd-analyze", "verify", unit_path(first)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and first["name"] not in r.stderr, r.stderr


def test_execstart_run_over_ssh_gives_the_local_decisions(sshd, first, tmp_path):
    """The unit's ExecStart, run as systemd would (its WorkingDirectory and Environment=): the decisions in
    its CSV sink equal those of a local edgebrain stream of the same model and recording."""
    u = unit_lines(Path(unit_path(first)).read_text())
    argv = shlex.split(u["ExecStart"][0].replace("%%", "%").replace("$$", "$"))
    env = u["Environment"][0]
    cmd = f"cd {shlex.quote(u['WorkingDirectory'][0])} && rm -f decisions.csv && env {shlex.quote(env)} " \
          + " ".join(shlex.quote(a) for a in argv) + " > /dev/null && cat decisions.csv"
    r = sshd.ssh(cmd, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "compiling kernels" not in r.stderr  # the warmed cache: a restart compiles nothing
    local = tmp_path / "local.csv"
    lr = subprocess.run([sys.executable, "-m", "edgebrain", "stream", "zoo:har-lif", "--source", str(first["rec"]),
                         "--sink", f"csv:path={local}"], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert lr.returncode == 0, lr.stderr[-2000:]

    def decisions(text):
        return [(row["t"], row["label"], row["confidence"]) for row in csv.DictReader(io.StringIO(text))]

    theirs, mine = decisions(r.stdout), decisions(local.read_text())
    assert len(mine) > 10 and theirs == mine


def test_unchanged_unit_is_not_rewritten(sshd, first):
    before = os.stat(unit_path(first)).st_mtime_ns
    res = ok_json(deploy(*first["args"]))
    assert res["action"] == "unchanged" and res["service"]["unit"] == "unchanged"
    assert res["service"]["cache"] == "already"
    assert os.stat(unit_path(first)).st_mtime_ns == before
    # the report for people says it in one line each
    r = deploy(*[a for a in first["args"] if a != "--json"])
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"service  system unit {unit_path(first)} unchanged" in r.stdout or first["user"]
    with open("/proc/1/comm") as f:
        if f.read().strip() != "systemd":
            assert sum("systemd is not PID 1 on the target" in ln for ln in r.stdout.splitlines()) == 1
    assert os.stat(unit_path(first)).st_mtime_ns == before


def test_changed_unit_then_rollback_restores_the_previous_unit(sshd, first, datasets):
    original = Path(unit_path(first)).read_text()
    ts = need(datasets / "imu" / "basicmotions" / "BasicMotions_TEST.ts")
    args = list(first["args"])
    args[0] = "zoo:basicmotions"
    args[args.index("--recording") + 1] = str(ts)
    args[args.index("--source") + 1] = str(ts)
    res = ok_json(deploy(*args))
    assert res["action"] == "installed" and res["service"]["unit"] == "written"
    # a new release: its model run through the service's cache again (its kernels may be cached already)
    assert res["service"]["cache"] in ("compiled", "loaded")
    changed = Path(unit_path(first)).read_text()
    assert changed != original and f"--source {ts}" in changed
    rb = deploy("--rollback", "--to", first["url"], *sshd.options(), "--json")
    out = ok_json(rb)
    assert out["service"]["restored"] == [unit_path(first)]
    assert Path(unit_path(first)).read_text() == original
    assert sshd.ssh(f"readlink {shlex.quote(first['path'] + '/current')}").stdout.strip() == \
        f"releases/{ok_json(first['result'])['release']}"
    # rolling back again swaps both back
    ok_json(deploy("--rollback", "--to", first["url"], *sshd.options(), "--json"))
    assert Path(unit_path(first)).read_text() == changed
    ok_json(deploy("--rollback", "--to", first["url"], *sshd.options(), "--json"))
    assert Path(unit_path(first)).read_text() == original


def test_service_options_without_service_are_refused():
    r = deploy("zoo:har-lif", "--to", "ssh://127.0.0.1:9/x", "--source", "a.csv")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "go with --service" in r.stderr
    r = deploy("zoo:har-lif", "--to", "ssh://127.0.0.1:9/x", "--service")
    assert r.returncode == 2 and "--service needs --source" in r.stderr and "Traceback" not in r.stderr
    r = deploy("zoo:har-lif", "--to", "ssh://127.0.0.1:9/x", "--service", "--source", "a", "--service-name", "a b")
    assert r.returncode == 2 and "--service-name" in r.stderr


def test_a_unit_for_a_path_with_spaces_quotes_and_specifiers_verifies(tmp_path):
    """A folder with spaces, `$(...)`, `%` and `;`: systemd-analyze finds the quoted ExecStart
    executable at the right path (a wrong quoting names a file that does not exist)."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("no systemd-analyze here (apt install systemd)")
    from edgebrain.deploy.service import check_exec_path, default_name, render
    from edgebrain.deploy.target import DeployError

    for bad in ("/srv/it's", '/srv/a"b', "/srv/a\\b"):  # systemd refuses these in an executable's path
        with pytest.raises(DeployError, match="systemd cannot run a program from a folder"):
            check_exec_path(bad)

    root = tmp_path / "a b $(touch x) 50% ;e"
    exe = root / "current" / "venv" / "bin" / "edgebrain"
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    name = default_name(str(root))
    assert name.startswith("edgebrain-") and " " not in name and "$" not in name
    unit = tmp_path / f"{name}.service"
    unit.write_text(render(str(root), "root", "serial:///dev/ttyUSB0?baud=115200", ["mqtt:host=broker,topic=a b"],
                           user_unit=False, name=name))
    r = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "not executable" not in r.stderr, r.stderr
    exe.unlink()  # the check is real: without the executable, verify fails on that very path
    r = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "not executable" in r.stderr


def test_a_password_never_reaches_the_unit_and_comes_from_an_environment_file(sshd, first, tmp_path):
    """A sink's password= is refused for a unit (readable by every user of the board); password_env=NAME
    with --service-env-file FILE puts it in an EnvironmentFile= the unit loads. The unit's ExecStart, run
    with that file loaded as systemd would, publishes every decision to a broker that refuses anonymous
    clients; without the file it stops with one line naming the variable; the secret appears in no unit
    and no deploy output."""
    from importlib import metadata

    pytest.importorskip("paho.mqtt.client", reason="paho-mqtt not installed (pip install 'edgebrain[mqtt]')")
    from tests.stream._mqtt import Broker, Subscriber, find_mosquitto

    binary = find_mosquitto()
    if binary is None:
        pytest.skip("no mosquitto broker here (tools/install-test-deps.sh installs it)")
    secret = "s3cret-" + secrets.token_hex(6)
    broker = Broker(binary, workdir=str(tmp_path / "broker")).require_password("eb", secret).start()
    try:
        args = list(first["args"])
        name = first["name"] + "-mqtt"
        args[args.index("--service-name") + 1] = name
        i = args.index("--sink")
        refused = deploy(*args[:i], "--sink", f"mqtt:host=127.0.0.1,port={broker.port},username=eb,password={secret}",
                         *args[i + 2:])
        assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
        assert "password_env" in refused.stderr and secret not in refused.stderr + refused.stdout
        env_file = tmp_path / "mqtt.env"
        env_file.write_text(f"EB_MQTT_PASSWORD={secret}\n")
        env_file.chmod(0o600)
        sink = f"mqtt:host=127.0.0.1,port={broker.port},username=eb,password_env=EB_MQTT_PASSWORD,device=pw-test"
        missing = deploy(*args[:i], "--sink", sink, *args[i + 2:], "--service-env-file", str(tmp_path / "none.env"))
        assert missing.returncode != 0 and "--service-env-file" in missing.stderr and "no such file" in missing.stderr
        r = deploy(*args[:i], "--sink", sink, *args[i + 2:], "--service-env-file", str(env_file))
        res = ok_json(r)
        assert secret not in r.stdout + r.stderr
        s = res["service"]
        assert s["env_file"] == str(env_file) and "warning" not in s
        assert f"paho-mqtt=={metadata.version('paho-mqtt')}" in res["bundle"]["requirements"]
        unit = (os.path.expanduser("~/.config/systemd/user") if first["user"] else "/etc/systemd/system") \
            + f"/{name}.service"
        text = Path(unit).read_text()
        assert secret not in text and f"EnvironmentFile={env_file}" in text.splitlines()
        if shutil.which("systemd-analyze"):
            v = subprocess.run(["systemd-analyze", "verify", unit], capture_output=True, text=True, timeout=60)
            assert v.returncode == 0 and name not in v.stderr, v.stderr
        u = unit_lines(text)
        argv = shlex.split(u["ExecStart"][0].replace("%%", "%").replace("$$", "$"))
        run = " ".join(shlex.quote(a) for a in argv)
        cd_env = f"cd {shlex.quote(u['WorkingDirectory'][0])} && env {shlex.quote(u['Environment'][0])} "
        # without the EnvironmentFile: one line naming the variable, nothing published
        no = sshd.ssh(cd_env + run + " > /dev/null", timeout=300)
        assert no.returncode == 2 and "EB_MQTT_PASSWORD is not set" in no.stderr, no.stderr[-1000:]
        sub = Subscriber(broker.port, "edgebrain/pw-test/#", username="eb", password=secret)
        try:
            # as systemd loads EnvironmentFile= (NAME=VALUE lines), then the ExecStart
            ok = sshd.ssh(f"set -a && . {shlex.quote(str(env_file))} && set +a && " + cd_env + run + " > /dev/null",
                          timeout=300)
            assert ok.returncode == 0, ok.stderr[-2000:]
            local = subprocess.run([sys.executable, "-m", "edgebrain", "stream", "zoo:har-lif", "--source",
                                    str(first["rec"]), "--json"], capture_output=True, text=True, cwd=REPO, timeout=300)
            mine = [json.loads(ln) for ln in local.stdout.splitlines() if ln.strip()][:-1]
            assert sub.wait_count(len(mine) + 1, timeout=30), len(sub.messages)
            decisions = [d for t, d in sub.json() if t.endswith("/decisions")]
            assert [(d["t"], d["label"]) for d in decisions] == [(d["t"], d["label"]) for d in mine] and len(mine) > 10
        finally:
            sub.close()
        # the broker really refuses a client without the password
        anon = subprocess.run([sys.executable, "-m", "edgebrain", "stream", "zoo:har-lif", "--source", str(first["rec"]),
                               "--sink", f"mqtt:host=127.0.0.1,port={broker.port}"], capture_output=True, text=True,
                              cwd=REPO, timeout=300)
        assert anon.returncode == 2 and anon.stderr.count("error:") == 1, anon.stderr[-1000:]
    finally:
        broker.stop()
        for f in (f"/etc/systemd/system/{first['name']}-mqtt.service",
                  os.path.expanduser(f"~/.config/systemd/user/{first['name']}-mqtt.service")):
            if os.path.exists(f):
                os.remove(f)
