"""The POSIX ``sh`` scripts ``deploy`` runs on the target (through :meth:`.target.Ssh.run`).

They take every value as a positional parameter (``$1``...), never pasted into their text, and quote
every expansion, so a path with spaces, quotes or ``$(...)`` is only ever a path. They use what a
minimal Debian, Raspberry Pi OS, JetPack or BusyBox system has: ``sh``, ``uname``, ``df``, ``awk``,
``readlink``, ``ln``, ``mv``, ``rm`` and the target's own Python (atomic renames, SHA-256).

The layout under the target folder ``P`` (docs/deploy.md)::

    P/releases/ID/     one bundle per manifest hash ID, with .ok once installed and smoke-tested
    P/venvs/ENV/       one venv per (edgebrain wheel, pinned requirements, Python), .ok once installed
    P/current          symlink to releases/ID (swapped by rename: never half-installed)
    P/previous         symlink to the release before it (--rollback swaps the two)
    P/venv             symlink to current/venv (the venv of the active release)
    P/.incoming/ID/    a bundle being copied and checked; removed on failure
"""

from __future__ import annotations

# every script starts with this: P absolute, a fail() that says one line on stderr
_PRELUDE = r"""
set -u
P=$1
case $P in /*) ;; *) P="$HOME/$P" ;; esac
fail() { printf 'edgebrain-deploy: %s\n' "$*" >&2; exit 3; }
swap() { "$PY" -c 'import os, sys; os.replace(sys.argv[1], sys.argv[2])' "$1" "$2"; }
"""

#: $1 path, $2 python: one ``key=value`` line per fact (sizes in KiB: awk may print big numbers oddly)
PROBE = _PRELUDE + r"""
PY=$2
printf 'arch=%s\n' "$(uname -m)"
printf 'kernel=%s\n' "$(uname -sr)"
if command -v "$PY" >/dev/null 2>&1; then
    "$PY" -c 'import sys, platform; print("python=%d.%d.%d" % tuple(sys.version_info[:3])); print("libc=%s-%s" % platform.libc_ver())' 2>/dev/null
fi
d=$P
while [ ! -d "$d" ]; do d=$(dirname -- "$d"); done
df -Pk -- "$d" 2>/dev/null | awk 'NR == 2 {print "disk_free_kib=" $4}'
if [ -w "$d" ]; then echo writable=yes; fi
awk '/^MemAvailable:/ {print "mem_available_kib=" $2}' /proc/meminfo 2>/dev/null
# /proc/device-tree is a link to the device tree in sysfs; either may be all a container or chroot shows
for f in /proc/device-tree/model /sys/firmware/devicetree/base/model; do
    if [ -r "$f" ]; then printf 'board=%s\n' "$(tr -d '\000\n' < "$f")"; break; fi
done
if [ -r /etc/nv_tegra_release ]; then printf 'tegra=%s\n' "$(head -n 1 /etc/nv_tegra_release | tr -d '\n')"; fi
if command -v rsync >/dev/null 2>&1; then echo rsync=yes; fi
if [ -d "$P/releases" ]; then
    for r in "$P"/releases/*; do if [ -f "$r/.ok" ]; then printf 'release=%s\n' "${r##*/}"; fi; done
fi
if [ -d "$P/venvs" ]; then
    for v in "$P"/venvs/*; do if [ -f "$v/.ok" ]; then printf 'venv=%s\n' "${v##*/}"; fi; done
fi
if [ -L "$P/current" ]; then printf 'current=%s\n' "$(readlink -- "$P/current")"; fi
if [ -L "$P/previous" ]; then printf 'previous=%s\n' "$(readlink -- "$P/previous")"; fi
echo probe=done
"""

#: $1 path, $2 release id: make the folder the bundle is copied into (emptied if a copy was cut short
#: and the tool cannot resume: scp)
PREPARE = _PRELUDE + r"""
ID=$2; FRESH=$3
mkdir -p -- "$P/.incoming" || fail "cannot create $P/.incoming"
for old in "$P"/.incoming/*; do
    case ${old##*/} in "$ID") ;; '*') ;; *) rm -rf -- "$old" ;; esac
done
if [ "$FRESH" = 1 ]; then rm -rf -- "$P/.incoming/$ID"; fi
mkdir -p -- "$P/.incoming/$ID" || fail "cannot create $P/.incoming/$ID"
"""

# the bundle's own check, in the target's Python: the manifest hashes to ID, each file to its SHA-256
_VERIFY = r"""
import hashlib, json, sys
ident = sys.argv[1]
raw = open("manifest.json", "rb").read()
if hashlib.sha256(raw).hexdigest()[:len(ident)] != ident:
    sys.exit("the manifest does not hash to the release id " + ident)
bad = []
for name, digest in sorted(json.loads(raw.decode("utf-8"))["files"].items()):
    h = hashlib.sha256()
    try:
        with open(name, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError:
        bad.append(name + " (missing)")
        continue
    if h.hexdigest() != digest:
        bad.append(name)
if bad:
    sys.exit("SHA-256 mismatch after the copy: " + ", ".join(bad))
print("verified=%d" % len(json.loads(raw.decode("utf-8"))["files"]))
"""

#: $1 path, $2 release id, $3 venv id, $4 python, $5 offline (1/0), $6 wheel file name:
#: check the copied bundle, create the venv if needed, warm the Numba cache and run the smoke test
INSTALL = _PRELUDE + r"""
ID=$2; ENV=$3; PY=$4; OFFLINE=$5; WHEEL=$6
S="$P/.incoming/$ID"
V="$P/venvs/$ENV"
L="$P/.incoming/$ID.log"
fail() {
    printf 'edgebrain-deploy: %s\n' "$*" >&2
    rm -rf -- "$S" "$L"
    if [ ! -f "$V/.ok" ]; then rm -rf -- "$V"; fi
    rmdir -- "$P/venvs" "$P/.incoming" 2>/dev/null  # only when empty: what this deploy created
    exit 3
}
cd -- "$S" 2>/dev/null || fail "the copied bundle is not at $S"
rm -rf -- "$L" && mkdir -p -- "$L" || fail "cannot write in $P/.incoming"
"$PY" -c '""" + _VERIFY + r"""' "$ID" > "$L/verify" 2>&1 || fail "$(tail -n 1 "$L/verify")"
cat "$L/verify"
if [ -f "$V/.ok" ]; then
    echo venv=reused
else
    rm -rf -- "$V"
    mkdir -p -- "$P/venvs" || fail "cannot create $P/venvs"
    "$PY" -m venv -- "$V" > "$L/venv" 2>&1 || fail "cannot create a venv with $PY: $(tail -n 1 "$L/venv" | cut -c 1-200) (on Debian, Ubuntu or Raspberry Pi OS: sudo apt install python3-venv)"
    if [ "$OFFLINE" = 1 ]; then
        set -- --no-index --find-links ./wheels
    else
        set --
    fi
    # relative names (the current folder is the bundle): pip reads '; ' in a path as a requirement's marker
    "$V/bin/python" -m pip install --disable-pip-version-check --no-input -q "$@" -r ./requirements.txt "./$WHEEL" > "$L/pip" 2>&1 \
        || fail "pip install failed on the target: $(grep -v '^ *$' "$L/pip" | tail -n 1 | cut -c 1-300)"
    : > "$V/.ok"
    echo venv=created
fi
run_smoke() {
    "$V/bin/python" -m edgebrain.deploy.smoke "$S/model.ebm" "$S/smoke_input.npy" > "$L/$1" 2> "$L/$1.err" \
        || fail "the smoke test failed on the target: $(grep -v '^ *$' "$L/$1.err" | tail -n 1 | cut -c 1-300)"
    printf '%s=%s\n' "$1" "$(cat "$L/$1")"
}
run_smoke warmup
run_smoke smoke
rm -rf -- "$L"
"""

#: $1 path, $2 release id, $3 venv id, $4 python: move a checked bundle into releases/ and make it current
#: (or make an installed release current again); prune releases other than current and previous
ACTIVATE = _PRELUDE + r"""
ID=$2; ENV=$3; PY=$4
R="$P/releases/$ID"
if [ ! -f "$R/.ok" ]; then
    S="$P/.incoming/$ID"
    [ -d "$S" ] || fail "the checked bundle is missing from $S"
    rm -f -- "$S/venv"
    ln -s -- "../../venvs/$ENV" "$S/venv" || fail "cannot link the venv"
    : > "$S/.ok"
    mkdir -p -- "$P/releases" || fail "cannot create $P/releases"
    rm -rf -- "$R"
    mv -- "$S" "$R" || fail "cannot move the release into $P/releases"
fi
cur=
if [ -L "$P/current" ]; then cur=$(readlink -- "$P/current"); fi
if [ "$cur" != "releases/$ID" ]; then
    if [ -n "$cur" ]; then
        rm -f -- "$P/.previous.new"
        ln -s -- "$cur" "$P/.previous.new" && swap "$P/.previous.new" "$P/previous" || fail "cannot update $P/previous"
    fi
    rm -f -- "$P/.current.new"
    ln -s -- "releases/$ID" "$P/.current.new" && swap "$P/.current.new" "$P/current" || fail "cannot update $P/current"
    echo swapped=yes
fi
if [ ! -L "$P/venv" ] && [ ! -e "$P/venv" ]; then ln -s -- current/venv "$P/venv"; fi
prev=
if [ -L "$P/previous" ]; then prev=$(readlink -- "$P/previous"); fi
keep_envs=
for r in "$P"/releases/*; do
    [ -d "$r" ] || continue
    case "releases/${r##*/}" in
        "releases/$ID"|"$prev") keep_envs="$keep_envs $(readlink -- "$r/venv" | sed 's,.*/,,')" ;;
        *) rm -rf -- "$r"; printf 'pruned=%s\n' "${r##*/}" ;;
    esac
done
for v in "$P"/venvs/*; do
    [ -d "$v" ] || continue
    case " $keep_envs " in *" ${v##*/} "*) ;; *) rm -rf -- "$v" ;; esac
done
rm -rf -- "$P/.incoming"
printf 'current=%s\n' "$ID"
printf 'previous=%s\n' "${prev#releases/}"
"""

#: $1 path, $2 python: the previous release becomes current, and current becomes previous
ROLLBACK = _PRELUDE + r"""
PY=$2
[ -L "$P/current" ] || fail "nothing is deployed at $P (no current release)"
[ -L "$P/previous" ] || fail "no previous release at $P to roll back to"
cur=$(readlink -- "$P/current")
prev=$(readlink -- "$P/previous")
[ -f "$P/$prev/.ok" ] || fail "the previous release $prev is not complete; nothing changed"
rm -f -- "$P/.current.new" "$P/.previous.new"
ln -s -- "$prev" "$P/.current.new" && swap "$P/.current.new" "$P/current" || fail "cannot update $P/current"
ln -s -- "$cur" "$P/.previous.new" && swap "$P/.previous.new" "$P/previous" || fail "cannot update $P/previous"
printf 'current=%s\n' "${prev#releases/}"
printf 'previous=%s\n' "${cur#releases/}"
"""

#: $1 path, $2 release id, $3 a venv id to remove too (one this deploy created) or '': remove a bundle that failed
DISCARD = _PRELUDE + r"""
rm -rf -- "$P/.incoming/$2" "$P/.incoming/$2.log"
rmdir -- "$P/.incoming" 2>/dev/null
if [ -n "${3:-}" ]; then rm -rf -- "$P/venvs/$3"; rmdir -- "$P/venvs" 2>/dev/null; fi
exit 0
"""


def key_values(stdout: str) -> dict:
    """The ``key=value`` lines a script printed (the first of each key; other lines ignored)."""
    out = {}
    for line in stdout.splitlines():
        k, eq, v = line.partition("=")
        if eq:
            out.setdefault(k, v)
    return out
