"""``edgebrain deploy``: probe the target, build the bundle, copy it, install it, smoke-test it, swap it in.

Each step stops at the first problem with one line (a :class:`.target.DeployError` or an
:class:`~edgebrain.errors.InputError`), and leaves the target as it was: a bundle is copied and
installed beside the active release and only becomes ``current`` (a symlink renamed into place)
once its files match the manifest and its smoke test gave the hashes computed here. Re-running with
an unchanged bundle changes nothing; a release installed before is made current again without copying.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from ..errors import InputError
from . import scripts
from .bundle import build as build_bundle
from .target import MIN_PYTHON, SUPPORTED_ARCH, DeployError, Ssh, Target, norm_arch, parse_ssh_options, parse_target

#: disk a new venv takes (NumPy, Numba, llvmlite, h5py and the rest, installed), with headroom
VENV_BYTES = 450 * 2**20
#: the memory edgebrain's process needs besides the model when no device profile says otherwise
RUNTIME_RAM = 256 * 2**20
PROBE_TIMEOUT_S = 60
INSTALL_TIMEOUT_S = 3600  # a first pip install and Numba compile on a Pi Zero 2 W take minutes
COPY_TIMEOUT_S = 1800


def probe(ssh: Ssh, python: str) -> dict:
    """What the target is: architecture, Python, free disk and memory, board, and what is deployed."""
    res = ssh.run(scripts.PROBE, [ssh.target.path, python], timeout=PROBE_TIMEOUT_S, what="the probe")
    facts: dict = {"releases": [], "venvs": []}
    for line in res.stdout.splitlines():
        key, eq, value = line.partition("=")
        if not eq:
            continue
        if key in ("release", "venv"):
            facts[key + "s"].append(value)
        elif key in ("disk_free_kib", "mem_available_kib"):
            facts[key.replace("_kib", "")] = int(value) * 1024 if value.isdigit() else None
        else:
            facts[key] = value
    if facts.get("probe") != "done":
        err = [ln for ln in res.stderr.splitlines() if ln.strip()]
        raise DeployError(f"{ssh.target}: the probe did not run (the login shell must run POSIX sh)"
                          + (f": {err[-1]}" if err else ""))
    facts.pop("probe")
    facts["arch"] = norm_arch(facts.get("arch", ""))
    for k in ("current", "previous"):
        if k in facts:
            facts[k] = facts[k].rsplit("/", 1)[-1]
    return facts


def _version(s: str) -> tuple:
    return tuple(int(p) for p in s.split(".") if p.isdigit())


def check_target(facts: dict, target: Target, python: str, device, model) -> None:
    """Refuse, with one line, a target that cannot run this model."""
    arch = facts["arch"]
    if device is not None:
        want = norm_arch(str(device.data["cpu"]["arch"]))
        if want != "auto" and want != arch:
            raise DeployError(f"{target}: the target is {arch}, but --device {device.name} is {want}; "
                              "check the host, or pick the right --device")
    if arch not in SUPPORTED_ARCH:
        hint = " (32-bit ARM: install a 64-bit OS, Numba has no armv7l wheels)" if arch.startswith("arm") else ""
        raise DeployError(f"{target}: architecture {arch or 'unknown'} is not supported; edgebrain runs on "
                          f"{' or '.join(SUPPORTED_ARCH)} Linux{hint}")
    if "python" not in facts:
        raise DeployError(f"{target}: no {python} on the target (install Python 3.10 or newer, e.g. "
                          "apt install python3 python3-venv, or name it with --remote-python)")
    if _version(facts["python"]) < MIN_PYTHON:
        raise DeployError(f"{target}: {python} on the target is Python {facts['python']}; edgebrain needs Python "
                          f"{'.'.join(map(str, MIN_PYTHON))} or newer (install one, and name it with --remote-python)")
    if facts.get("writable") != "yes":
        raise DeployError(f"{target}: the folder (or its nearest existing parent) is not writable by this user")
    need = _ram_need(model, device)
    avail = facts.get("mem_available")
    if device is not None and not need["fits"]:
        raise DeployError(f"the model does not fit {device.name}: it needs {need['bytes'] / 2**20:.0f} MiB of "
                          f"{need['available'] / 2**20:.0f} MiB RAM (see edgebrain devices fit)")
    if avail is not None and avail < need["bytes"]:
        raise DeployError(f"{target}: {avail / 2**20:.0f} MiB of memory available, the model and runtime need about "
                          f"{need['bytes'] / 2**20:.0f} MiB")


def _ram_need(model, device) -> dict:
    if device is not None and device.kind != "host":
        from ..apps.fit import fit

        res = fit(model, device)
        return {"bytes": res["ram"]["need"], "available": res["ram"]["available"], "fits": res["fits"]}
    weights = sum(int(getattr(a, "nbytes", 0)) for a in (model.quant or {}).values())
    return {"bytes": RUNTIME_RAM + weights, "available": None, "fits": True}


def detect_device(facts: dict):
    """The profile whose title the board's device-tree model starts with (a Raspberry Pi, a Jetson), or None."""
    board = facts.get("board") or ""
    if not board:
        return None
    from .. import devices
    from ..errors import EdgebrainError

    try:
        profiles = devices.load_all()
    except EdgebrainError:  # a broken profile of the user's: no detection, rather than no deploy
        return None
    best = None
    for d in profiles:
        title = str(d.data.get("title") or "")
        if title and board.startswith(title) and (best is None or len(title) > len(best.data["title"])):
            best = d
    return best


def copy_bundle(ssh: Ssh, src: Path, ident: str, facts: dict, method: str, say) -> str:
    """Copy the bundle folder ``src`` into the target's ``.incoming/ID`` with rsync or scp; the tool used."""
    tool = method if method != "auto" else ("rsync" if facts.get("rsync") == "yes" and shutil.which("rsync")
                                            else "scp")
    ssh.run(scripts.PREPARE, [ssh.target.path, ident, "1" if tool == "scp" else "0"], timeout=PROBE_TIMEOUT_S,
            what="preparing the folder")
    dest = f"{ssh.target.path}/.incoming/{ident}"
    say(f"copying the bundle with {tool}")
    if tool == "rsync":
        shell = " ".join(_rsync_quote(a) for a in ssh.ssh_argv())
        argv = ["rsync", "-a", "--protect-args", "--partial", "-e", shell]
        if facts.get("current"):  # files the active release has already (the wheel) become hard links
            argv.append(f"--link-dest=../../releases/{facts['current']}")
        argv += ["--", f"{src}/", f"{ssh.target.destination}:{dest}/"]
    else:
        argv = [*ssh.scp_argv(), "--", *[str(p) for p in sorted(src.iterdir())], f"{ssh.target.destination}:{dest}/"]
    try:
        res = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=COPY_TIMEOUT_S)
    except FileNotFoundError:
        raise DeployError(f"no '{tool}' command here (install it, or use --copy scp)") from None
    except subprocess.TimeoutExpired:
        raise DeployError(f"{ssh.target}: copying the bundle took over {COPY_TIMEOUT_S} s") from None
    if res.returncode != 0:
        last = [ln for ln in res.stderr.splitlines() if ln.strip()]
        raise DeployError(f"{ssh.target}: {tool} failed: " + (last[-1] if last else f"exit status {res.returncode}"))
    return tool


def _rsync_quote(arg: str) -> str:
    # rsync splits -e on spaces and honours single and double quotes (not backslashes)
    if arg and not any(c in arg for c in " '\"\t"):
        return arg
    return '"' + arg + '"' if '"' not in arg else "'" + arg + "'"


def _remote_fail(res, what: str, target: Target) -> DeployError:
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("edgebrain-deploy: ")]
    if lines:
        return DeployError(f"{target}: {lines[-1][len('edgebrain-deploy: '):]}")
    last = [ln for ln in res.stderr.splitlines() if ln.strip()]
    return DeployError(f"{target}: {what} failed" + (f": {last[-1]}" if last else f" (exit status {res.returncode})"))


def deploy(model_spec: str, to: str, *, device: str | None = None, ssh_options=(), offline: bool = False,
           recording: str | None = None, python: str = "python3", wheel: str | None = None, copy: str = "auto",
           service: dict | None = None, say=lambda text: None) -> dict:
    """Deploy ``model_spec`` to ``to`` (``ssh://[user@]host[:port]/path``); the report as a dict. ``service``
    (source, sinks, user, name) also writes and enables a systemd unit that streams it (:mod:`.service`)."""
    t0 = time.perf_counter()
    times = {}
    target = parse_target(to)
    ssh = Ssh(target, parse_ssh_options(ssh_options))
    if copy not in ("auto", "rsync", "scp"):
        raise InputError(f"--copy {copy!r}: expected auto, rsync or scp")
    from .. import devices
    from ..model import Model

    dev = devices.load(device) if device else None
    model = Model.load(model_spec)  # a bad model, profile or recording fails here, before the network
    if recording is not None and not Path(recording).is_file():
        raise InputError("the recording for the smoke test is not a file", file=recording)
    if service is not None:
        from .service import check_spec

        check_spec(service.get("source"), service.get("sinks") or [], service.get("name"), bool(service.get("user")))
    # what the service's sinks import beyond the core (paho-mqtt for mqtt:), pinned and shipped like the rest
    extra = []
    if service is not None:
        from .service import sink_packages

        extra = [req for _, req in sink_packages(service.get("sinks") or [])]
    say(f"probing {target}")
    facts = probe(ssh, python)
    times["probe_s"] = time.perf_counter() - t0
    if dev is None:
        dev = detect_device(facts)
    check_target(facts, target, python, dev, model)
    report = {"target": str(target), "device": dev.name if dev is not None else None,
              "probe": {k: v for k, v in facts.items() if k not in ("releases", "venvs")}, "copied": False,
              "installed": False}
    with tempfile.TemporaryDirectory(prefix="edgebrain-deploy-") as tmp:
        t = time.perf_counter()
        say("building the bundle")
        b = build_bundle(model, model_spec, Path(tmp), python=facts["python"], arch=facts["arch"],
                         libc=facts.get("libc", ""), device=dev, recording=recording, offline=offline, wheel=wheel,
                         extra_requirements=extra, say=say)
        times["bundle_s"] = time.perf_counter() - t
        ident = b["id"]
        report["bundle"] = {"id": ident, "files": b["n_files"], "bytes": b["bytes"], "wheel": b["wheel"],
                            "model": b["model"]["name"], "offline": b["offline"], "smoke_input": b["smoke_input"],
                            "requirements": b["requirements"], "fallback_pins": b.get("fallback_pins", {})}
        report["expected"] = b["expected"]
        if facts.get("current") == ident:
            report.update(action="unchanged", release=ident, previous=facts.get("previous"))
        elif ident in facts["releases"]:
            report.update(action="reactivated", **_activate(ssh, ident, b["env"], python))
        else:
            need = b["bytes"] + (0 if b["env"] in facts["venvs"] else VENV_BYTES)
            free = facts.get("disk_free")
            if free is not None and free < need:
                raise DeployError(f"{target}: not enough disk: {free / 2**20:.0f} MiB free, the bundle"
                                  + ("" if b["env"] in facts["venvs"] else " and its venv")
                                  + f" need about {need / 2**20:.0f} MiB")
            t = time.perf_counter()
            try:
                report["copy_tool"] = copy_bundle(ssh, Path(tmp), ident, facts, copy, say)
            except DeployError:
                _discard(ssh, ident)  # a partial copy is not left behind
                raise
            report["copied"] = True
            times["copy_s"] = time.perf_counter() - t
            t = time.perf_counter()
            say("checking, installing and smoke-testing on the target (the first time compiles the kernels there)")
            report.update(install_bundle(ssh, b, python, offline))
            times["install_s"] = time.perf_counter() - t
            report["installed"] = True
            report.update(action="installed", **_activate(ssh, ident, b["env"], python))
        if service is not None:  # the hook of --service: after the release is current
            from .service import install as install_service

            t = time.perf_counter()
            report["service"] = install_service(ssh, service, restart=report["action"] != "unchanged",
                                                release_key=f"{report['release']}:{b['env']}", say=say)
            times["service_s"] = time.perf_counter() - t
    times["total_s"] = time.perf_counter() - t0
    report["times"] = {k: round(v, 3) for k, v in times.items()}
    return report


def install_bundle(ssh: Ssh, b: dict, python: str, offline: bool) -> dict:
    """Check the copied bundle ``b`` on the target, install it, warm up and smoke-test; refuse outputs that
    differ from ``b["expected"]`` on the integer path (the copy is removed, nothing is activated)."""
    args = [ssh.target.path, b["id"], b["env"], python, "1" if offline else "0", b["wheel"]]
    try:
        res = ssh.run(scripts.INSTALL, args, timeout=INSTALL_TIMEOUT_S, what="the install")
    except DeployError:
        _discard(ssh, b["id"])
        raise
    if res.returncode != 0:
        raise _remote_fail(res, "the install", ssh.target)
    kv = scripts.key_values(res.stdout)
    try:
        warm, smoke = json.loads(kv["warmup"]), json.loads(kv["smoke"])
    except (KeyError, ValueError):
        _discard(ssh, b["id"])
        raise DeployError(f"{ssh.target}: the smoke test printed no result") from None
    exp = b["expected"]
    keys = ("model_sha256", "output_sha256", "state_sha256")
    match = all(smoke.get(k) == exp.get(k) for k in keys) and all(warm.get(k) == exp.get(k) for k in keys)
    if not match and exp.get("precision") == "int":
        _discard(ssh, b["id"], b["env"] if kv.get("venv") == "created" else "")
        diff = [k for k in keys if smoke.get(k) != exp.get(k)] or ["warm-up run"]
        raise DeployError(f"{ssh.target}: the smoke test's {', '.join(diff)} differ from this machine's on the "
                          "integer path, which must be bit-identical; the release was not activated")
    return {"venv": kv.get("venv"), "verified_files": int(kv.get("verified", "0") or 0),
            "warmup_s": warm.get("seconds"), "warmup_compiles": warm.get("compiles"), "smoke_s": smoke.get("seconds"),
            "smoke_compiles": smoke.get("compiles"),
            "smoke": {**{k: smoke.get(k) for k in (*keys, "precision", "steps")}, "match": match,
                      "exact": exp.get("precision") == "int"}}


def _discard(ssh: Ssh, ident: str, env: str = "") -> None:
    try:
        ssh.run(scripts.DISCARD, [ssh.target.path, ident, env], timeout=PROBE_TIMEOUT_S, what="cleaning up")
    except DeployError:
        pass


def _activate(ssh: Ssh, ident: str, env: str, python: str) -> dict:
    res = ssh.run(scripts.ACTIVATE, [ssh.target.path, ident, env, python], timeout=PROBE_TIMEOUT_S,
                  what="activating the release")
    if res.returncode != 0:
        raise _remote_fail(res, "activating the release", ssh.target)
    kv = scripts.key_values(res.stdout)
    return {"release": kv.get("current", ident), "previous": kv.get("previous") or None}


def rollback(to: str, *, ssh_options=(), python: str = "python3") -> dict:
    """Make the previous release current again (and the current one previous)."""
    target = parse_target(to)
    ssh = Ssh(target, parse_ssh_options(ssh_options))
    res = ssh.run(scripts.ROLLBACK, [target.path, python], timeout=PROBE_TIMEOUT_S, what="the rollback")
    if res.returncode != 0:
        raise _remote_fail(res, "the rollback", target)
    kv = scripts.key_values(res.stdout)
    out = {"target": str(target), "action": "rolled back", "release": kv.get("current"), "previous": kv.get("previous")}
    from .service import after_rollback  # the hook of --service: the unit before the last one, restarted

    svc = after_rollback(ssh)
    if svc:
        out["service"] = svc
    return out
