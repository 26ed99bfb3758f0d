#!/usr/bin/env bash
# Build (once per machine) the arm64 Debian bookworm root filesystem that edgebrain's arm64
# tests run in under qemu-aarch64-static: Python 3.11 plus the aarch64 wheels of numpy,
# numba, llvmlite and edgebrain's other runtime dependencies, at the versions installed on
# this host (so an arm64 run and an x86 run execute the same library versions).
#
#   sudo tools/arm64/rootfs.sh            # build if needed; a second call is a no-op
#   tools/arm64/rootfs.sh --print-dir     # where it lives (nothing is built)
#   tools/arm64/rootfs.sh --check         # exit 0 when built and up to date, 1 otherwise
#
# Layout, under ${EDGEBRAIN_ARM64_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/edgebrain/arm64}:
#   rootfs/        the Debian root filesystem (debootstrap --foreign; the .debs are unpacked
#                  with dpkg-deb -x, since without binfmt_misc the second stage cannot run)
#   site/          the Python packages (pip --target), put on PYTHONPATH
#   numba-cache/   NUMBA_CACHE_DIR of the arm64 runs (made by the tests, kept between runs)
#   READY          what was built (key=value lines); written last, so its presence means done
#   .lock          flock while building
# Run the interpreter as:
#   qemu-aarch64-static -L DIR/rootfs DIR/rootfs/usr/bin/python3.11 ...  with PYTHONPATH=DIR/site
#
# Other users of the same board (the deploy tests of issue 16) add Debian packages with
#   EDGEBRAIN_ARM64_EXTRA_PACKAGES=openssh-server,ca-certificates tools/arm64/rootfs.sh
# The package list is part of READY, so a different list rebuilds the root filesystem. Packages
# are only unpacked: no maintainer script runs (that needs binfmt_misc or a second stage), so
# whatever a package's postinst would do (ca-certificates' bundle, sshd's host keys and user) is
# for its user to do.
#
# Needs: root (debootstrap), debootstrap, qemu-user-static, and a host python with numba
# installed (${PYTHON:-python3}) whose pip can reach an index with aarch64 wheels.
set -euo pipefail

FORMAT=1  # bump when the layout or the recipe changes: every machine then rebuilds
SUITE=bookworm
MIRROR=${EDGEBRAIN_ARM64_MIRROR:-http://deb.debian.org/debian}
PYTHON=${PYTHON:-python3}
BASE_PKGS=python3.11-minimal,libpython3.11-stdlib
PKGS=$BASE_PKGS${EDGEBRAIN_ARM64_EXTRA_PACKAGES:+,$EDGEBRAIN_ARM64_EXTRA_PACKAGES}
DIR=${EDGEBRAIN_ARM64_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/edgebrain/arm64}
ROOT=$DIR/rootfs
SITE=$DIR/site
READY=$DIR/READY
QEMU=${QEMU_AARCH64:-qemu-aarch64-static}

say() { printf 'arm64 rootfs: %s\n' "$*" >&2; }
die() { printf 'arm64 rootfs: error: %s\n' "$*" >&2; exit 1; }

case "${1:-}" in
  --print-dir) echo "$DIR"; exit 0 ;;
  --check|"") ;;
  -h|--help) sed -n '/^set -euo/q;2,$p' "$0"; exit 0 ;;
  *) die "unknown option '$1' (expected --check, --print-dir or nothing)" ;;
esac

command -v "$PYTHON" >/dev/null || die "no host python '$PYTHON' (set PYTHON=...)"

# The Python packages to install, pinned to the host's versions. edgebrain's runtime
# dependencies come from pyproject.toml when it is beside this script.
REPO=$(cd "$(dirname "$0")/../.." && pwd)
PINS=$("$PYTHON" - "$REPO/pyproject.toml" <<'EOF'
import re, sys
from importlib import metadata
names = ["numpy", "numba", "llvmlite"]
try:
    import tomllib
    with open(sys.argv[1], "rb") as f:
        deps = tomllib.load(f)["project"]["dependencies"]
    for d in deps:
        if ";" in d:  # environment markers: only those that hold for Python 3.11
            d, marker = d.split(";", 1)
            if "python_version < '3.11'" in marker.replace('"', "'"):
                continue
        names.append(re.split(r"[<>=!~\[ ]", d.strip(), maxsplit=1)[0])
except FileNotFoundError:
    pass
seen = []
for n in names:
    if n.lower() in (s.lower() for s in seen):
        continue
    seen.append(n)
    try:
        print(f"{n}=={metadata.version(n)}")
    except metadata.PackageNotFoundError:
        sys.exit(f"arm64 rootfs: error: {n} is not installed on the host; install edgebrain's dependencies first")
EOF
) || exit 1
PINS=$(echo "$PINS" | tr '\n' ' ' | sed 's/ $//')
WANT="format=$FORMAT
suite=$SUITE
debs=$PKGS
pins=$PINS"

if [[ -f $READY ]] && [[ "$(grep -E '^(format|suite|debs|pins)=' "$READY")" == "$WANT" ]]; then
  [[ "${1:-}" == --check ]] || say "up to date in $DIR"
  exit 0
fi
[[ "${1:-}" == --check ]] && { say "not built (or out of date) in $DIR"; exit 1; }

[[ $(id -u) == 0 ]] || die "must run as root (debootstrap); try: sudo $0"
for tool in debootstrap dpkg-deb flock "$QEMU"; do
  command -v "$tool" >/dev/null || die "'$tool' not found; install: apt-get install -y debootstrap qemu-user-static"
done

mkdir -p "$DIR"
exec 9>"$DIR/.lock"
if ! flock -n 9; then
  say "another build holds $DIR/.lock; waiting for it"
  flock 9
fi
# the other build may have finished the same thing
if [[ -f $READY ]] && [[ "$(grep -E '^(format|suite|debs|pins)=' "$READY")" == "$WANT" ]]; then
  say "up to date in $DIR (built by the run we waited for)"
  exit 0
fi

start=$(date +%s)
old_debs=$(sed -n 's/^debs=//p' "$READY" 2>/dev/null || true)
old_format=$(sed -n 's/^format=//p' "$READY" 2>/dev/null || true)
rm -f "$READY"

# 1. Debian: reused when only the Python pins changed
if [[ -x $ROOT/usr/bin/python3.11 && -f $DIR/rootfs.debs && "$(cat "$DIR/rootfs.debs")" == "$PKGS" \
      && "$old_format" == "$FORMAT" ]]; then
  say "Debian root filesystem already unpacked ($PKGS)"
else
  [[ -n $old_debs ]] && say "package list changed ($old_debs -> $PKGS): rebuilding"
  rm -rf "$ROOT" "$DIR/rootfs.debs" "$DIR/rootfs.tmp"
  tmp=$DIR/rootfs.tmp
  say "debootstrap --arch=arm64 --foreign $SUITE from $MIRROR (about 20 s)"
  debootstrap --arch=arm64 --foreign --variant=minbase --include="$PKGS" "$SUITE" "$tmp" "$MIRROR" \
    > "$DIR/debootstrap.log" 2>&1 \
    || die "debootstrap failed ($(grep -E '^E:' "$DIR/debootstrap.log" | tail -1)); see $DIR/debootstrap.log"
  # without binfmt_misc the second stage (which runs arm64 maintainer scripts) cannot run:
  # unpack every package instead, which is all a Python interpreter needs
  n=0
  for deb in "$tmp"/var/cache/apt/archives/*.deb; do
    dpkg-deb -x "$deb" "$tmp" || die "dpkg-deb -x $deb failed"
    n=$((n + 1))
  done
  say "unpacked $n packages"
  rm -f "$tmp"/var/cache/apt/archives/*.deb
  [[ -x $tmp/usr/bin/python3.11 ]] || die "no usr/bin/python3.11 in the unpacked root filesystem"
  "$QEMU" -L "$tmp" "$tmp/usr/bin/python3.11" -c 'import platform; assert platform.machine() == "aarch64"' \
    || die "python3.11 of the root filesystem does not run under $QEMU"
  mv "$tmp" "$ROOT"
  echo "$PKGS" > "$DIR/rootfs.debs"
fi

# 2. Python packages: the aarch64 wheels for CPython 3.11, at the host's versions
rm -rf "$SITE" "$SITE.tmp"
plats=(--platform manylinux2014_aarch64)
for v in $(seq 17 36); do plats+=(--platform "manylinux_2_${v}_aarch64"); done  # glibc 2.36: bookworm's
say "pip: $PINS (aarch64 wheels)"
# shellcheck disable=SC2086
"$PYTHON" -m pip install --quiet --disable-pip-version-check --no-warn-conflicts --target "$SITE.tmp" \
  --python-version 3.11 --implementation cp --abi cp311 "${plats[@]}" --only-binary=:all: $PINS \
  > "$DIR/pip.log" 2>&1 \
  || die "pip could not install the aarch64 wheels ($(grep -E 'ERROR' "$DIR/pip.log" | tail -1)); see $DIR/pip.log"
mv "$SITE.tmp" "$SITE"

say "checking numba under qemu"
PYTHONPATH=$SITE PYTHONNOUSERSITE=1 NUMBA_CACHE_DIR=$DIR/numba-cache "$QEMU" -cpu cortex-a72 -L "$ROOT" \
  "$ROOT/usr/bin/python3.11" -c '
import numba, numpy, platform
@numba.njit
def f(a):
    return (a * 3).sum()
assert f(numpy.arange(10)) == 135, "numba gave a wrong result"
print("arm64 rootfs: ok:", platform.machine(), "numpy", numpy.__version__, "numba", numba.__version__)
' >&2 || die "numba does not run under $QEMU in $ROOT"

{ echo "$WANT"; echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ)"; echo "seconds=$(( $(date +%s) - start ))"; } > "$READY.tmp"
mv "$READY.tmp" "$READY"
say "built in $(( $(date +%s) - start )) s: $DIR ($(du -sh "$DIR" | cut -f1))"
