#!/usr/bin/env bash
# Build (once per machine) an x86-64 Ubuntu 22.04 (jammy) root filesystem: JetPack 6's userland and
# its Python 3.10, with an SSH server, so that tests/deploy/test_python310.py deploys edgebrain to a
# real Python 3.10 (tests/deploy/jammy_sshd.py runs its sshd in a chroot). Native x86-64: no emulation.
#
#   sudo tools/jammy/rootfs.sh            # build if needed; a second call is a no-op
#   tools/jammy/rootfs.sh --print-dir     # where it lives (nothing is built)
#   tools/jammy/rootfs.sh --check         # exit 0 when built and up to date, 1 otherwise
#
# Layout, under ${EDGEBRAIN_JAMMY_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/edgebrain/jammy}:
#   rootfs/        the Ubuntu root filesystem: debootstrap --variant=minbase --components=main,universe
#                  --include=$PKGS jammy (python3-venv is in universe, as JetPack enables it),
#                  then every package upgraded from jammy-updates and jammy-security (as a JetPack 6
#                  board that has had its updates: Python 3.10.12, not the release's 3.10.4)
#   keyring/       Ubuntu's archive keyring, when the host has none (see below)
#   READY          what was built (key=value lines); written last, so its presence means done
#   .lock          flock while building
#
# The Ubuntu archive's signatures are checked: debootstrap needs Ubuntu's archive keyring. It is taken
# from, in order: $EDGEBRAIN_JAMMY_KEYRING; /usr/share/keyrings/ubuntu-archive-keyring.gpg (an Ubuntu
# host, or Debian's ubuntu-archive-keyring package installed); a copy fetched earlier into keyring/;
# else the keyring file of Debian's ubuntu-keyring package (in trixie, ubuntu-archive-keyring is an
# empty transitional package depending on it), downloaded with apt from the host's own sources or,
# when they have none (Debian 12 does not carry it), from Debian's trixie suite through a private apt
# configuration whose Release file apt verifies with the host's debian-archive-keyring; the package
# is unpacked under keyring.tmp, never installed on the host. Only with
# EDGEBRAIN_JAMMY_NO_CHECK_GPG=1 does it build without checking (debootstrap --no-check-gpg).
#
# Needs: root (debootstrap, chroot), an amd64 host, debootstrap, unshare and flock; the network
# (archive.ubuntu.com, or $EDGEBRAIN_JAMMY_MIRROR).
set -euo pipefail

FORMAT=1  # bump when the layout or the recipe changes: every machine then rebuilds
SUITE=jammy
MIRROR=${EDGEBRAIN_JAMMY_MIRROR:-http://archive.ubuntu.com/ubuntu}
PKGS=python3,python3-venv,openssh-server,ca-certificates,rsync
DIR=${EDGEBRAIN_JAMMY_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/edgebrain/jammy}
ROOT=$DIR/rootfs
READY=$DIR/READY
KEYRING_NAME=ubuntu-archive-keyring.gpg

say() { printf 'jammy rootfs: %s\n' "$*" >&2; }
die() { printf 'jammy rootfs: error: %s\n' "$*" >&2; exit 1; }

case "${1:-}" in
  --print-dir) echo "$DIR"; exit 0 ;;
  --check|"") ;;
  -h|--help) sed -n '/^set -euo/q;2,$p' "$0"; exit 0 ;;
  *) die "unknown option '$1' (expected --check, --print-dir or nothing)" ;;
esac

WANT="format=$FORMAT
suite=$SUITE
debs=$PKGS"
up_to_date() { [[ -f $READY ]] && [[ "$(grep -E '^(format|suite|debs)=' "$READY")" == "$WANT" ]]; }

if up_to_date; then
  [[ "${1:-}" == --check ]] || say "up to date in $DIR"
  exit 0
fi
[[ "${1:-}" == --check ]] && { say "not built (or out of date) in $DIR"; exit 1; }

[[ $(id -u) == 0 ]] || die "must run as root (debootstrap, chroot); try: sudo $0"
arch=$(dpkg --print-architecture 2>/dev/null || uname -m)
[[ $arch == amd64 || $arch == x86_64 ]] || die "the jammy board is x86-64 and runs natively: this host is $arch"
for tool in debootstrap unshare chroot flock dpkg-deb; do
  command -v "$tool" >/dev/null || die "'$tool' not found; install: apt-get install -y debootstrap util-linux"
done
[[ -e /usr/share/debootstrap/scripts/$SUITE ]] || die "this debootstrap does not know $SUITE (install a newer debootstrap)"

mkdir -p "$DIR"
exec 9>"$DIR/.lock"
if ! flock -n 9; then
  say "another build holds $DIR/.lock; waiting for it"
  flock 9
fi
if up_to_date; then
  say "up to date in $DIR (built by the run we waited for)"
  exit 0
fi

# Ubuntu's archive keyring (see the header); prints its path, or nothing
find_keyring() {
  local k
  for k in "${EDGEBRAIN_JAMMY_KEYRING:-}" "/usr/share/keyrings/$KEYRING_NAME" "$DIR/keyring/$KEYRING_NAME"; do
    [[ -n $k && -s $k ]] && { echo "$k"; return 0; }
  done
  local t=$DIR/keyring.tmp
  rm -rf "$t"
  mkdir -p "$t/lists/partial" "$t/cache/archives/partial" "$t/debs" "$t/x"
  local -a O=(-o "Dir::State::Lists=$t/lists" -o "Dir::Cache=$t/cache" -o Acquire::Languages=none
              -o "Dir::Etc::SourceParts=$t/none" -o APT::Get::List-Cleanup=false)
  local got=
  # the host's own sources first (its lists as they are), then Debian trixie, verified by debian-archive-keyring
  if (cd "$t/debs" && apt-get download -qq ubuntu-keyring >/dev/null 2>&1); then
    got=host
  elif [[ -s /usr/share/keyrings/debian-archive-keyring.gpg ]]; then
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main" \
      > "$t/sources.list"
    if apt-get "${O[@]}" -o "Dir::Etc::SourceList=$t/sources.list" update -qq >"$t/apt.log" 2>&1 \
        && (cd "$t/debs" && apt-get "${O[@]}" -o "Dir::Etc::SourceList=$t/sources.list" download -qq \
              ubuntu-keyring) >>"$t/apt.log" 2>&1; then
      got="Debian trixie"
    fi
  fi
  local deb
  deb=$(ls "$t"/debs/ubuntu-keyring_*.deb 2>/dev/null | head -1 || true)
  if [[ -n $got && -n $deb ]] && dpkg-deb -x "$deb" "$t/x" && [[ -s $t/x/usr/share/keyrings/$KEYRING_NAME ]]; then
    mkdir -p "$DIR/keyring"
    cp "$t/x/usr/share/keyrings/$KEYRING_NAME" "$DIR/keyring/$KEYRING_NAME"
    say "Ubuntu's archive keyring from Debian's package ${deb##*/} (apt, $got)"
    rm -rf "$t"
    echo "$DIR/keyring/$KEYRING_NAME"
    return 0
  fi
  say "could not get Debian's ubuntu-keyring package: $(grep -E '^E:' "$t/apt.log" 2>/dev/null | tail -n 1 || true)"
  rm -rf "$t"
}

start=$(date +%s)
rm -f "$READY"
rm -rf "$ROOT" "$DIR/rootfs.tmp"
tmp=$DIR/rootfs.tmp
keyring=$(find_keyring)
if [[ -n $keyring ]]; then
  gpg=(--keyring="$keyring")
  checked="$keyring"
elif [[ ${EDGEBRAIN_JAMMY_NO_CHECK_GPG:-} == 1 ]]; then
  say "WARNING: no Ubuntu archive keyring: building WITHOUT checking the archive's signatures (EDGEBRAIN_JAMMY_NO_CHECK_GPG=1)"
  gpg=(--no-check-gpg)
  checked=no
else
  die "no Ubuntu archive keyring (apt-get install ubuntu-keyring, set EDGEBRAIN_JAMMY_KEYRING=FILE, or EDGEBRAIN_JAMMY_NO_CHECK_GPG=1 to build unchecked)"
fi

# the chroot's mounts (debootstrap's /proc and /sys, ours for apt) live in a private mount namespace:
# nothing is left mounted on the host, whatever happens
say "debootstrap --variant=minbase $SUITE from $MIRROR (a few minutes)"
unshare --mount --propagation private \
  debootstrap --variant=minbase --components=main,universe --include="$PKGS" "${gpg[@]}" "$SUITE" "$tmp" "$MIRROR" \
  > "$DIR/debootstrap.log" 2>&1 \
  || die "debootstrap failed ($(grep -E '^(E|W):' "$DIR/debootstrap.log" | tail -1)); see $DIR/debootstrap.log"

# the updates a JetPack 6 board gets (jammy-updates, jammy-security), then the .debs are dropped
cat > "$tmp/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main universe
deb $MIRROR $SUITE-updates main universe
deb $MIRROR $SUITE-security main universe
EOF
[[ $checked == no ]] && echo 'Acquire::AllowInsecureRepositories "true"; APT::Get::AllowUnauthenticated "true";' \
  > "$tmp/etc/apt/apt.conf.d/99edgebrain-unchecked"
# no service starts in a chroot
printf '#!/bin/sh\nexit 101\n' > "$tmp/usr/sbin/policy-rc.d"
chmod 755 "$tmp/usr/sbin/policy-rc.d"
say "apt-get upgrade from $SUITE-updates and $SUITE-security"
unshare --mount --propagation private sh -c '
  set -e
  R=$1
  mount -t proc proc "$R/proc"
  mount --rbind /dev "$R/dev"
  mount -t tmpfs tmpfs "$R/tmp"
  cp /etc/resolv.conf "$R/etc/resolv.conf" 2>/dev/null || true
  export DEBIAN_FRONTEND=noninteractive LC_ALL=C PATH=/usr/sbin:/usr/bin:/sbin:/bin
  chroot "$R" apt-get update -qq
  chroot "$R" apt-get -y -qq -o Dpkg::Options::=--force-confold upgrade
  chroot "$R" apt-get clean
  rm -rf "$R"/var/lib/apt/lists/*_dists_* 
  # venv and pip work: what a deploy does first
  chroot "$R" python3 -m venv /tmp/venv-check
  chroot "$R" /tmp/venv-check/bin/python -m pip --version
' edgebrain-jammy "$tmp" > "$DIR/upgrade.log" 2>&1 \
  || die "apt-get upgrade or the venv check failed in the chroot ($(grep -E '^(E|W):|Error' "$DIR/upgrade.log" | tail -1)); see $DIR/upgrade.log"

pyver=$(chroot "$tmp" python3 -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])') \
  || die "python3 of the root filesystem does not run"
[[ $pyver == 3.10.* ]] || die "python3 in the jammy root filesystem is $pyver, not 3.10"
libc=$(chroot "$tmp" python3 -c 'import platform; print("-".join(platform.libc_ver()))')
sshd_ver=$(chroot "$tmp" dpkg-query -W -f='${Version}' openssh-server)
mv "$tmp" "$ROOT"

{ echo "$WANT"; echo "python=$pyver"; echo "libc=$libc"; echo "openssh=$sshd_ver"; echo "keyring=$checked"
  echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ)"; echo "seconds=$(( $(date +%s) - start ))"; } > "$READY.tmp"
mv "$READY.tmp" "$READY"
say "built in $(( $(date +%s) - start )) s: $DIR ($(du -sh "$DIR" | cut -f1)), Python $pyver, $libc"
