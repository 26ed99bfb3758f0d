"""``edgebrain deploy MODEL --fleet inventory.yml``: one deploy per inventory host, driven by ``ansible-playbook``.

The playbook (``ansible/playbook.yml``, also written by ``edgebrain deploy --emit-ansible DIR``) runs
``edgebrain deploy MODEL --to ssh://HOST... --json`` for each host on the controller, with the host's
connection variables: every host gets the steps of a single deploy (one implementation of them, in
:mod:`.deploy`), Ansible brings the inventory, the parallelism (``forks``), a failed host that does not
stop the others, and ``changed`` counts (a host whose release was already current reports changed=0).
The edgebrain wheel is built once here and shipped to every host.

With ``--service`` every host also gets the systemd unit of a single ``deploy --service``; the command line's
``--source``, ``--sink``, ``--service-name`` and ``--user-service`` reach the playbook as ``edgebrain_defaults``,
which a host's (or group's) own ``edgebrain_source``, ``edgebrain_sinks``, ... in the inventory override. The
playbook gives each mqtt sink without ``device=`` the inventory name as its device, so the default topic
``edgebrain/{device}/{model}/decisions`` names the host and one subscriber sees the whole fleet.

Values from the command line reach ansible-playbook in a vars file, each string tagged ``!unsafe``: Ansible
never templates them (a ``{{`` in a path stays text), and the playbook's command task passes them as argv
without expanding ``$VAR`` or ``~``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from importlib import resources
from pathlib import Path

from ..errors import InputError

PLAYBOOK = "playbook.yml"
EXAMPLE_INVENTORY = "inventory.example.yml"
#: a whole fleet's run; each host's deploy has its own timeouts inside
FLEET_TIMEOUT_S = 6 * 3600
_RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)")


def data_file(name: str) -> str:
    return resources.files("edgebrain.deploy").joinpath("ansible", name).read_text()


def emit(out_dir: str) -> dict:
    """Write the playbook and an example inventory into ``out_dir`` (an identical file is left as it is)."""
    d = Path(out_dir)
    if d.exists() and not d.is_dir():
        raise InputError("--emit-ansible needs a folder", file=out_dir)
    written = []
    for name in (PLAYBOOK, EXAMPLE_INVENTORY):
        text, p = data_file(name), d / name
        if p.exists() and p.read_text(errors="replace") != text:
            raise InputError(f"{p} exists and differs from edgebrain's {name}: remove it or pick another folder")
        written.append(str(p))
    d.mkdir(parents=True, exist_ok=True)
    for name in (PLAYBOOK, EXAMPLE_INVENTORY):
        (d / name).write_text(data_file(name))
    return {"emitted": written, "run": f"ansible-playbook -i INVENTORY {d / PLAYBOOK} -e edgebrain_model=MODEL"}


def _ansible_playbook() -> str:
    here = Path(sys.executable).parent / "ansible-playbook"
    found = str(here) if os.access(here, os.X_OK) else shutil.which("ansible-playbook")
    if not found:
        raise InputError("--fleet needs ansible-playbook: pip install 'edgebrain[deploy]' (ansible-core)")
    return found


def _yaml_str(s: str) -> str:
    """A YAML double-quoted scalar: printable ASCII as it is, everything else escaped (YAML's \\u and \\U)."""
    out = []
    for ch in s:
        o = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif 32 <= o < 127:
            out.append(ch)
        else:
            out.append(f"\\u{o:04x}" if o < 0x10000 else f"\\U{o:08x}")
    return '"' + "".join(out) + '"'


def unsafe_yaml(v) -> str:
    """``v`` as YAML flow text with every string tagged ``!unsafe`` (Ansible never templates it)."""
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_yaml_str(str(k))}: {unsafe_yaml(x)}" for k, x in v.items()) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(unsafe_yaml(x) for x in v) + "]"
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, int):
        return str(v)
    return "!unsafe " + _yaml_str(str(v))


def _host_entry(host: str, stats: dict, raw: dict | None) -> dict:
    entry = {"host": host, "ok": stats.get("failed", 1) == 0 and stats.get("unreachable", 0) == 0,
             "changed": stats.get("changed", 0)}
    if raw is None:
        entry.update(ok=False, error="no report from this host (see ansible-playbook's output)")
        return entry
    if raw.get("rc") == 0 and entry["ok"]:
        rep = json.loads(raw["stdout"])
        entry.update(target=rep.get("target"), action=rep.get("action"), release=rep.get("release"),
                     smoke=(rep.get("smoke") or {}).get("match"), report=rep)
        svc = rep.get("service")
        if svc:
            entry["service"] = {k: svc.get(k) for k in ("name", "unit", "unit_path", "enabled", "exec_start", "note")}
    else:
        entry["ok"] = False
        lines = [ln.strip() for ln in str(raw.get("stderr") or "").splitlines() if ln.strip()]
        err = lines[-1] if lines else f"exit status {raw.get('rc')}"
        entry["error"] = err.removeprefix("error: ")
    return entry


def run(model: str, inventory: str, *, device: str | None = None, offline: bool = False, wheel: str | None = None,
        service: dict | None = None, limit: str | None = None, forks: int = 5, say=lambda text: None) -> dict:
    """Deploy ``model`` to every host of ``inventory`` through ansible-playbook; a report per host. ``service``
    (source, sinks, name, user: the defaults a host's inventory variables override) adds each host's unit."""
    if service is not None:  # a bad --sink is refused here, before any host is touched
        from .service import check_options

        check_options(service.get("source"), service.get("sinks") or [], service.get("name"))
    if not Path(inventory).is_file():
        raise InputError("the fleet's inventory is not a file", file=inventory)
    playbook_cmd = _ansible_playbook()
    if wheel is None:
        from .bundle import build_wheel

        say("building the edgebrain wheel (once, for every host)")
        wheel = str(build_wheel())
    elif not Path(wheel).is_file():
        raise InputError("the wheel is not a file", file=wheel)
    model_arg = model if model.startswith("zoo:") else str(Path(model).resolve())
    with tempfile.TemporaryDirectory(prefix="edgebrain-fleet-") as tmp:
        t = Path(tmp)
        (t / PLAYBOOK).write_text(data_file(PLAYBOOK))
        reports = t / "reports"
        reports.mkdir()
        extra = {"edgebrain_model": model_arg, "edgebrain_wheel": str(Path(wheel).resolve()),
                 "edgebrain_command": [sys.executable, "-m", "edgebrain"], "edgebrain_report_dir": str(reports)}
        if device:
            extra["edgebrain_device"] = device
        if offline:
            extra["edgebrain_offline"] = True
        if service is not None:
            extra["edgebrain_defaults"] = {
                "service": True, **({"source": service["source"]} if service.get("source") else {}),
                **({"sinks": list(service["sinks"])} if service.get("sinks") else {}),
                **({"service_name": service["name"]} if service.get("name") else {}),
                **({"service_env_file": service["env_file"]} if service.get("env_file") else {}),
                "user_service": bool(service.get("user"))}
        (t / "vars.yml").write_text(unsafe_yaml(extra) + "\n")
        argv = [playbook_cmd, "-i", str(Path(inventory).resolve()), str(t / PLAYBOOK), "-e", f"@{t / 'vars.yml'}",
                "--forks", str(forks), *(["--limit", limit] if limit else [])]
        env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", ANSIBLE_RETRY_FILES_ENABLED="0",
                   ANSIBLE_LOCAL_TEMP=str(t / "ansible-tmp"), ANSIBLE_STDOUT_CALLBACK="default",
                   ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0")
        say(f"running ansible-playbook on {inventory}")
        try:
            res = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=FLEET_TIMEOUT_S, cwd=tmp,
                                 check=False)
        except subprocess.TimeoutExpired as e:
            raise InputError(f"ansible-playbook did not finish in {FLEET_TIMEOUT_S} s") from e
        stats = {}
        for line in res.stdout.splitlines():
            m = _RECAP.match(line)
            if m:
                stats[m[1]] = dict(zip(("ok", "changed", "unreachable", "failed"), map(int, m.groups()[1:])))
        if not stats:
            errs = [ln.strip() for ln in res.stderr.splitlines()
                    if ln.strip().startswith(("ERROR", "[ERROR]")) or "Failed to parse" in ln or "Unable to parse" in ln]
            why = errs[-1] if errs else ("no hosts matched" if "no hosts matched" in res.stdout + res.stderr
                                         else f"exit status {res.returncode}")
            raise InputError(f"ansible-playbook ran no host of {inventory}: {why}")
        hosts = []
        for host in sorted(stats):
            p = reports / f"{host}.json"
            hosts.append(_host_entry(host, stats[host], json.loads(p.read_text()) if p.is_file() else None))
    failed = [h["host"] for h in hosts if not h["ok"]]
    return {"fleet": inventory, "model": model, "hosts": hosts, "succeeded": len(hosts) - len(failed),
            "failed": failed, "changed": sum(1 for h in hosts if h["changed"]), "ansible_rc": res.returncode}


def format_fleet(r: dict) -> str:
    """One line per host, then the count."""
    lines = []
    for h in r["hosts"]:
        if h["ok"]:
            what = {"unchanged": "unchanged (nothing copied)", "reactivated": "reactivated without copying"}.get(
                h.get("action"), h.get("action"))
            smoke = "" if h.get("action") != "installed" else (
                ", smoke test bit-identical" if h.get("smoke") else ", smoke test differs")
            svc = h.get("service")
            unit = f"; unit {svc['name']} {svc['unit']}" if svc else ""
            lines.append(f"ok       {h['host']}: release {h.get('release')} {what}{smoke}{unit}")
        else:
            lines.append(f"FAILED   {h['host']}: {h['error']}")
    lines.append(f"fleet    {r['succeeded']} of {len(r['hosts'])} hosts deployed, {r['changed']} changed"
                 + (f", failed: {', '.join(r['failed'])}" if r["failed"] else ""))
    return "\n".join(lines)
