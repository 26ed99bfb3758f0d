"""``edgebrain deploy --service``: a systemd unit on the target that runs ``edgebrain stream`` (docs/deploy.md).

The unit runs the deployed venv's ``edgebrain stream PATH/current/model.ebm --source SRC --sink SINK``,
restarts on failure, logs to the journal, and sets ``NUMBA_CACHE_DIR`` to ``PATH/cache/numba``: a folder
the service's user (the SSH user) owns, which the deploy warms as that user by a short ``edgebrain bench``
of the deployed model through the same ``edgebrain`` script (the per-step kernel a stream runs), so a restart loads the compiled kernels instead of compiling them.

A system unit goes to ``/etc/systemd/system`` (root only) with ``User=`` the SSH user; ``--user-service``
writes ``~/.config/systemd/user`` (a user unit runs without a login only with ``loginctl enable-linger``).
Where systemd is not PID 1 (a container, CI) the unit file is written but not enabled, and the report
says so. An unchanged unit is not rewritten; a changed one keeps the one before it in
``PATH/service/NAME.service.previous``, and ``deploy --rollback`` swaps the two back with the releases.
"""

from __future__ import annotations

import re
import time

from ..errors import InputError
from . import scripts
from .target import DeployError, Ssh

SERVICE_TIMEOUT_S = 120
WARM_TIMEOUT_S = 1800  # compiling a model's kernels on a Pi Zero 2 W takes minutes
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

_PRELUDE = r"""
set -u
P=$1
case $P in /*) ;; *) P="$HOME/$P" ;; esac
fail() { printf 'edgebrain-deploy: %s\n' "$*" >&2; exit 3; }
"""

#: $1 path, $2 env file or '': the absolute folder, the user, whether systemd runs the machine, and the
#: env file's permission bits (it must exist: systemd refuses to start a unit whose EnvironmentFile= is missing)
FACTS = _PRELUDE + r"""
E=${2:-}
if [ -n "$E" ]; then
    [ -f "$E" ] || fail "--service-env-file $E: no such file on the target (create it there first, readable by the service's user only)"
    printf 'env_mode=%s\n' "$(stat -c %a -- "$E" 2>/dev/null || echo unknown)"
fi
[ -L "$P/current" ] || fail "nothing is deployed at $P"
[ -x "$P/current/venv/bin/edgebrain" ] || fail "the active release at $P has no venv/bin/edgebrain"
cd -- "$P" && printf 'abs=%s\n' "$(pwd -P)"
printf 'user=%s\n' "$(id -un)"
printf 'pid1=%s\n' "$(tr -d '\n' < /proc/1/comm 2>/dev/null)"
printf 'home=%s\n' "$HOME"
echo facts=done
"""

_UNIT_DIR = r"""
if [ "$MODE" = user ]; then D="${XDG_CONFIG_HOME:-$HOME/.config}/systemd/user"; SC="systemctl --user"
else D=/etc/systemd/system; SC=systemctl; fi
"""

#: $1 path, $2 unit name, $3 mode (system|user), $4 unit text, $5 enable (1/0), $6 restart (1/0):
#: write the unit if it changed (keeping the one before it), then enable and (re)start it where systemd runs
WRITE = _PRELUDE + r"""
NAME=$2; MODE=$3; TEXT=$4; ENABLE=$5; RESTART=$6
""" + _UNIT_DIR + r"""
mkdir -p -- "$D" 2>/dev/null && [ -w "$D" ] || fail "cannot write $D: a system unit needs root (deploy as root, or use --user-service)"
mkdir -p -- "$P/service" || fail "cannot create $P/service"
U="$D/$NAME.service"
H="$P/service/$NAME.service"
printf '%s' "$TEXT" > "$H.new" || fail "cannot write $H.new"
if [ -f "$U" ] && cmp -s -- "$H.new" "$U"; then
    rm -f -- "$H.new"
    echo unit=unchanged
else
    if [ -f "$U" ]; then cp -p -- "$U" "$H.previous" || fail "cannot keep the previous unit"; fi
    cp -- "$H.new" "$U.edgebrain-new" && mv -f -- "$U.edgebrain-new" "$U" || fail "cannot write $U"
    mv -f -- "$H.new" "$H"
    printf '%s\n' "$D" > "$P/service/$NAME.dir"
    echo unit=written
    RESTART=1
fi
printf 'unit_path=%s\n' "$U"
if [ "$ENABLE" = 1 ]; then
    $SC daemon-reload > "$P/service/.log" 2>&1 && $SC enable -- "$NAME.service" >> "$P/service/.log" 2>&1 \
        || fail "systemctl could not enable $NAME.service: $(grep -v '^ *$' "$P/service/.log" | tail -n 1)"
    if [ "$RESTART" = 1 ]; then $SC restart -- "$NAME.service" >> "$P/service/.log" 2>&1; else $SC start -- "$NAME.service" >> "$P/service/.log" 2>&1; fi \
        || fail "systemctl could not start $NAME.service: $(grep -v '^ *$' "$P/service/.log" | tail -n 1)"
    rm -f -- "$P/service/.log"
    echo enabled=yes
fi
"""

#: $1 path, $2 the release and venv the cache was warmed for: bench the deployed model briefly through the
#: deployed edgebrain script with the service's NUMBA_CACHE_DIR (skipped when already warm for them)
WARM = _PRELUDE + r"""
C="$P/cache/numba"; KEY=$2
mkdir -p -- "$C" || fail "cannot create $C"
if [ -f "$P/cache/warmed" ] && [ "$(cat "$P/cache/warmed")" = "$KEY" ]; then echo warm=already; exit 0; fi
cd -- "$P/current" || fail "no current release"
# bench compiles what a stream runs (the per-step kernel) and the chunked one
NUMBA_CACHE_DIR="$C" "$P/current/venv/bin/edgebrain" bench "$P/current/model.ebm" --steps 20 --batch 2 --no-cold \
    --json > "$P/cache/.warm.out" 2> "$P/cache/.warm.err" \
    || fail "warming the service's Numba cache failed: $(grep -v '^ *$' "$P/cache/.warm.err" | tail -n 1 | cut -c 1-300)"
if grep -q 'compiling kernels' "$P/cache/.warm.err"; then echo warm=compiled; else echo warm=loaded; fi
rm -f -- "$P/cache/.warm.out" "$P/cache/.warm.err"
printf '%s' "$KEY" > "$P/cache/warmed"
"""

#: $1 path, then pairs of (module, requirement): pip-install each requirement whose module the deployed venv
#: cannot import (a sink's own package, e.g. paho-mqtt for mqtt:), else nothing
PACKAGES = _PRELUDE + r"""
shift
PY="$P/current/venv/bin/python"
mkdir -p -- "$P/service" || fail "cannot create $P/service"
while [ $# -ge 2 ]; do
    M=$1; R=$2; shift 2
    if "$PY" -c 'import importlib, sys; importlib.import_module(sys.argv[1])' "$M" 2>/dev/null; then
        printf 'present=%s\n' "$R"; continue
    fi
    "$PY" -m pip install --disable-pip-version-check --no-input -q "$R" > "$P/service/.pip.log" 2>&1 \
        || fail "the service's sinks need $R in the venv, and pip could not install it: $(grep -v '^ *$' "$P/service/.pip.log" | tail -n 1 | cut -c 1-300)"
    rm -f -- "$P/service/.pip.log"
    printf 'installed=%s\n' "$R"
done
"""

#: sink name -> (the module it imports, the distribution that has it): what a unit's sinks need in the venv
SINK_PACKAGES = {"mqtt": ("paho.mqtt.client", "paho-mqtt", ">=2")}

#: $1 path, $2 enable (1/0): after a release rollback, swap each unit with the one it replaced, and restart
ROLLBACK = _PRELUDE + r"""
ENABLE=$2
[ -d "$P/service" ] || exit 0
for H in "$P"/service/*.service; do
    [ -f "$H" ] || continue
    NAME=${H##*/}; NAME=${NAME%.service}
    D=$(cat "$P/service/$NAME.dir" 2>/dev/null) || continue
    case $D in */systemd/user) SC="systemctl --user" ;; *) SC=systemctl ;; esac
    if [ -f "$H.previous" ]; then
        mv -f -- "$H" "$H.swap" && mv -f -- "$H.previous" "$H" && mv -f -- "$H.swap" "$H.previous" \
            || fail "cannot swap $H with the previous unit"
        cp -- "$H" "$D/$NAME.service.edgebrain-new" && mv -f -- "$D/$NAME.service.edgebrain-new" "$D/$NAME.service" \
            || fail "cannot write $D/$NAME.service"
        printf 'restored=%s\n' "$D/$NAME.service"
    fi
    if [ "$ENABLE" = 1 ]; then
        { $SC daemon-reload && $SC restart -- "$NAME.service"; } > /dev/null 2>&1 && printf 'restarted=%s\n' "$NAME"
    fi
done
"""


def default_name(path: str) -> str:
    """``edgebrain`` for a folder named edgebrain, else ``edgebrain-FOLDER`` (systemd's safe characters only)."""
    base = re.sub(r"[^A-Za-z0-9_.-]+", "-", path.rstrip("/").rsplit("/", 1)[-1]).strip("-.") or "app"
    return "edgebrain" if base == "edgebrain" else f"edgebrain-{base}"[:64]


def check_spec(source: str | None, sinks, name: str | None, user: bool) -> None:
    """Refuse service options that cannot make a unit, before anything reaches the network."""
    if not source:
        raise InputError("--service needs --source SRC: the sensor or link the service streams from")
    check_options(source, sinks, name)


def check_options(source: str | None, sinks, name: str | None) -> None:
    """The checks of :func:`check_spec` on what is given (a fleet's hosts may each bring their own source)."""
    check_sinks(sinks)
    for v in ([source] if source is not None else []):
        if any(c in v for c in "\n\r\0") or not v.strip():
            raise InputError(f"--source {v!r}: empty, or has a newline or NUL")
    if name is not None and not _NAME.match(name):
        raise InputError(f"--service-name {name!r}: use letters, digits, '_', '.' and '-' (at most 64)")


def check_sinks(sinks) -> None:
    """Refuse a ``--sink`` the target's ``edgebrain stream`` would refuse: an unknown sink, an option the sink
    does not take, or text where it takes a number. The sink is not opened here: a broker or a path is as the
    target sees it."""
    import inspect

    from ..stream.base import parse_spec
    from ..stream.registry import sinks as registry

    known = registry()
    for spec in sinks:
        if not isinstance(spec, str) or any(c in spec for c in "\n\r\0") or not spec.strip():
            raise InputError(f"--sink {spec!r}: empty, or has a newline or NUL")
        try:
            name, kw = parse_spec("stdout" if spec.strip() == "-" else spec)
        except InputError as e:
            raise InputError(f"--sink: {e}") from None
        cls = known.get(name)
        if cls is None:
            raise InputError(f"--sink {spec!r}: unknown sink '{name}'; expected one of {', '.join(sorted(known))}")
        params = inspect.signature(cls).parameters
        for k, v in kw.items():
            p = params.get(k)
            if p is None or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or k == "stream":
                takes = ", ".join(n for n, q in params.items() if n != "stream" and q.kind == q.POSITIONAL_OR_KEYWORD)
                raise InputError(f"--sink {spec!r}: the {name} sink has no option '{k}' (it takes {takes})")
            d = p.default
            want = (int,) if isinstance(d, int) and not isinstance(d, bool) else (int, float) \
                if isinstance(d, float) else None
            if want and (isinstance(v, bool) or not isinstance(v, want)):
                raise InputError(f"--sink {spec!r}: {k}={v!r} is not a number")
            if k == "password":  # the spec itself is not echoed: it holds the secret
                raise InputError(f"--sink {name}:…password=…: a password in a unit is readable by every user of the "
                                 "board (in the unit file and the process list); write PASSWORD=… into a file on the "
                                 "board only the service's user can read, and give password_env=PASSWORD with "
                                 "--service-env-file FILE")


def sink_packages(sinks) -> list[tuple[str, str]]:
    """(module, requirement) for each package the ``sinks`` need beyond edgebrain's core dependencies,
    pinned to the version installed here (as the bundle pins the rest), else the mqtt extra's range."""
    from importlib import metadata

    from ..stream.base import parse_spec

    out = []
    for spec in sinks:
        name = parse_spec("stdout" if spec.strip() == "-" else spec)[0]
        if name in SINK_PACKAGES:
            module, dist, fallback = SINK_PACKAGES[name]
            try:
                req = f"{dist}=={metadata.version(dist)}"
            except metadata.PackageNotFoundError:
                req = f"{dist}{fallback}"
            if (module, req) not in out:
                out.append((module, req))
    return out


def _arg(a: str, variables: bool = True) -> str:
    """One ExecStart argument (or Environment= assignment), quoted for systemd: specifiers (%) and, in
    ExecStart, variables ($) taken literally."""
    a = a.replace("%", "%%")
    if variables:
        a = a.replace("$", "$$")
    if a and not re.search(r"[\s\"'\\;]", a):
        return a
    return '"' + a.replace("\\", "\\\\").replace('"', '\\"') + '"'


def check_exec_path(abs_path: str) -> None:
    """systemd refuses an executable whose path has a quote, a backslash or a control character: say so."""
    bad = sorted({c for c in abs_path if c in "'\"\\" or ord(c) < 32 or ord(c) == 127})
    if bad:
        raise DeployError(f"systemd cannot run a program from a folder whose path contains {' '.join(map(repr, bad))} "
                          f"({abs_path!r}): deploy --service into a folder without quotes or backslashes")


def exec_argv(abs_path: str, source: str, sinks) -> list[str]:
    """The command the unit runs: the deployed venv's edgebrain streaming the active release's model."""
    cur = f"{abs_path}/current"
    argv = [f"{cur}/venv/bin/edgebrain", "stream", f"{cur}/model.ebm", "--source", source]
    for s in sinks:
        argv += ["--sink", s]
    return argv


def render(abs_path: str, user: str, source: str, sinks, *, user_unit: bool, name: str,
           env_file: str | None = None) -> str:
    """The unit file's text (the same bytes for the same inputs: an unchanged unit is not rewritten).
    ``env_file``: an ``EnvironmentFile=`` on the target holding secrets (a sink's ``password_env=``)."""
    cache = f"{abs_path}/cache/numba"
    lines = ["# written by edgebrain deploy --service; edit the deploy command, not this file",
             "[Unit]", f"Description=edgebrain stream from {source.replace('%', '%%')} ({name})",
             "After=network-online.target", "Wants=network-online.target", "", "[Service]", "Type=simple"]
    if not user_unit:
        lines.append(f"User={user}")
    lines += [f"WorkingDirectory={abs_path.replace('%', '%%')}",
              "Environment=" + _arg(f"NUMBA_CACHE_DIR={cache}", variables=False), "Environment=PYTHONUNBUFFERED=1",
              *([f"EnvironmentFile={_arg(env_file, variables=False)}"] if env_file else []),
              "ExecStart=" + " ".join(_arg(a, variables=k > 0) for k, a in enumerate(exec_argv(abs_path, source, sinks))),
              "Restart=on-failure", "RestartSec=5", "StandardOutput=journal", "StandardError=journal",
              f"SyslogIdentifier={name}", "", "[Install]",
              f"WantedBy={'default.target' if user_unit else 'multi-user.target'}", ""]
    return "\n".join(lines)


def _fail(res, what: str, ssh: Ssh) -> DeployError:
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("edgebrain-deploy: ")]
    last = [ln for ln in res.stderr.splitlines() if ln.strip()]
    why = lines[-1][len("edgebrain-deploy: "):] if lines else (last[-1] if last else f"exit status {res.returncode}")
    return DeployError(f"{ssh.target}: {what}: {why}")


def install(ssh: Ssh, spec: dict, *, restart: bool, release_key: str, say=lambda text: None) -> dict:
    """Write (if changed), warm and enable the unit of ``spec`` (source, sinks, user, name) on the target."""
    env_file = spec.get("env_file") or None
    res = ssh.run(FACTS, [ssh.target.path, env_file or ""], timeout=SERVICE_TIMEOUT_S, what="the service's probe")
    facts = scripts.key_values(res.stdout)
    if res.returncode != 0 or facts.get("facts") != "done":
        raise _fail(res, "the service step", ssh)
    check_exec_path(facts["abs"])
    name = spec.get("name") or default_name(facts["abs"])
    user_unit = bool(spec.get("user"))
    systemd = facts.get("pid1") == "systemd"
    text = render(facts["abs"], facts["user"], spec["source"], spec.get("sinks") or [], user_unit=user_unit,
                  name=name, env_file=env_file)
    packages = {"present": [], "installed": []}
    need = sink_packages(spec.get("sinks") or [])
    if need:  # the bundle ships edgebrain's core dependencies; a sink's own package is added to the venv here
        say("checking the sinks' packages in the target's venv: " + ", ".join(r for _, r in need))
        pk = ssh.run(PACKAGES, [ssh.target.path, *[x for pair in need for x in pair]], timeout=WARM_TIMEOUT_S,
                     what="installing the sinks' packages")
        if pk.returncode != 0:
            raise _fail(pk, "the service step", ssh)
        for line in pk.stdout.splitlines():
            k, eq, v = line.partition("=")
            if eq and k in packages:
                packages[k].append(v)
    t = time.perf_counter()
    say(f"warming the service's Numba cache as {facts['user']}")
    warm = ssh.run(WARM, [ssh.target.path, release_key], timeout=WARM_TIMEOUT_S, what="warming the service's cache")
    if warm.returncode != 0:
        raise _fail(warm, "the service step", ssh)
    warm_s = time.perf_counter() - t
    w = ssh.run(WRITE, [ssh.target.path, name, "user" if user_unit else "system", text, "1" if systemd else "0",
                        "1" if restart else "0"], timeout=SERVICE_TIMEOUT_S, what="writing the unit")
    kv = scripts.key_values(w.stdout)
    if w.returncode != 0 or "unit" not in kv:
        raise _fail(w, "the service step", ssh)
    out = {"name": f"{name}.service", "scope": "user" if user_unit else "system", "unit_path": kv.get("unit_path"),
           "unit": kv["unit"], "user": facts["user"], "numba_cache_dir": f"{facts['abs']}/cache/numba",
           "cache": scripts.key_values(warm.stdout).get("warm"), "cache_s": round(warm_s, 3), "enabled": kv.get("enabled") == "yes",
           "exec_start": exec_argv(facts["abs"], spec["source"], spec.get("sinks") or [])}
    if need:
        out["packages"] = packages
    if env_file:
        out["env_file"] = env_file
        mode = facts.get("env_mode", "unknown")
        if mode == "unknown" or int(mode, 8) & 0o077:
            out["warning"] = (f"--service-env-file {env_file} has mode {mode} on the target: anyone who can read it "
                              "reads the secrets; chmod 600 it there")
    if not systemd:
        out["note"] = (f"systemd is not PID 1 on the target (PID 1 is {facts.get('pid1') or 'unknown'}): the unit "
                       "file is written but not enabled")
    elif user_unit:
        out["note"] = (f"a user unit runs without a login session only with lingering: sudo loginctl enable-linger "
                       f"{facts['user']}")
    return out


def after_rollback(ssh: Ssh) -> dict | None:
    """Swap each unit written by ``--service`` with the one before it and restart it (where systemd runs)."""
    res = ssh.run(FACTS, [ssh.target.path], timeout=SERVICE_TIMEOUT_S, what="the service's probe")
    facts = scripts.key_values(res.stdout)
    if res.returncode != 0:
        return None
    r = ssh.run(ROLLBACK, [ssh.target.path, "1" if facts.get("pid1") == "systemd" else "0"],
                timeout=SERVICE_TIMEOUT_S, what="restoring the previous unit")
    if r.returncode != 0:
        raise _fail(r, "restoring the previous unit", ssh)
    restored = [ln.split("=", 1)[1] for ln in r.stdout.splitlines() if ln.startswith("restored=")]
    restarted = [ln.split("=", 1)[1] for ln in r.stdout.splitlines() if ln.startswith("restarted=")]
    return {"restored": restored, "restarted": restarted} if restored or restarted else None


def format_lines(report: dict) -> str:
    """The service's lines for the deploy and rollback reports for people ('' without --service)."""
    s = report.get("service")
    if not s:
        return ""
    if "restored" in s:
        return "".join(f"\nservice  restored the previous unit {p}" for p in s["restored"]) + \
            "".join(f"\nservice  restarted {n}" for n in s["restarted"])
    lines = [f"service  {s['scope']} unit {s['unit_path']} {s['unit']}"
             + ("; enabled and started" if s["enabled"] else "; not enabled"),
             f"         runs as {s['user']} with NUMBA_CACHE_DIR={s['numba_cache_dir']} ({s['cache']} in "
             f"{s['cache_s']:.1f} s)"]
    if (s.get("packages") or {}).get("installed"):
        lines.append(f"         installed in the venv for the sinks: {', '.join(s['packages']['installed'])}")
    if s.get("env_file"):
        lines.append(f"         secrets from EnvironmentFile={s['env_file']}")
    for k in ("warning", "note"):
        if s.get(k):
            lines.append(f"         {s[k]}")
    return "\n" + "\n".join(lines)
