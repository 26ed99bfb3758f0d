"""An emulated Raspberry Pi 4 on loopback for the deploy tests: the arm64 Debian root filesystem of
tools/arm64/rootfs.sh (built with ``EDGEBRAIN_ARM64_EXTRA_PACKAGES=`` :data:`PACKAGES`), its own
OpenSSH server running as an arm64 program, and every program that server starts (``sh``,
``python3``, ``pip``, the venv's Python) arm64 too, run by ``qemu-aarch64`` through binfmt_misc.

How it runs (root only):

* binfmt_misc: mounted at ``/proc/sys/fs/binfmt_misc`` if it is not, then ``update-binfmts --enable
  qemu-aarch64``. Debian's entry has the ``F`` flag (the interpreter is opened when it is registered),
  so arm64 programs run inside a chroot without a copy of qemu in it. Without binfmt_misc the board
  cannot run an SSH server (every program sshd starts would have to be wrapped) and the tests skip.
* ``unshare --mount`` gives the board its own mount namespace, so nothing it mounts is visible
  outside or outlives it: ``/proc`` (procfs, with a Pi 4's ``/proc/cpuinfo`` bound over the host's:
  LLVM reads the CPU from it, so Numba compiles for a Cortex-A72 as on the real board), ``/dev``,
  a tmpfs ``/tmp`` and ``/run``, and ``/sys`` as a tmpfs holding only the device tree's ``model``
  (``/sys/firmware/devicetree/base/model``, where ``/proc/device-tree`` points on a real Pi; procfs
  cannot be given that link on an x86 kernel, so the probe reads either).
* ``chroot ROOTFS /usr/sbin/sshd -D -e`` on a loopback port, with a throwaway host key and user key,
  logging in as root with the key only. ``uname -m`` says ``aarch64`` because qemu-aarch64 reports the
  architecture of what it runs; nothing about the architecture is faked.
* The board listens on two ports. Sessions on :attr:`Board.port` reach the package index as the host
  does: the root filesystem gets the host's ``/etc/resolv.conf`` and ``/etc/hosts`` and its CA bundle
  (``/etc/ssl/certs/ca-certificates.crt``), as for any chroot behind a proxy, and pip inside the board
  downloads the aarch64 wheels itself. Sessions on :attr:`Board.offline_port` have no route to any index
  (sshd sets pip's index to a closed port, a board on a factory floor): there only ``deploy --offline``,
  with the aarch64 wheels in the bundle, can install.

The target folder ``/opt/eb`` lives in the root filesystem, which persists under the user cache: the
venvs a deploy created there, with the Numba cache that deploy's warm-up filled in them, are kept
between runs (see :func:`reset_target`), so the slow compile under emulation happens once per
machine and edgebrain source, not once per run.
"""

from __future__ import annotations

import fcntl
import os
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.arm64 import board
from tests.deploy import chroot_board

#: Debian packages the SSH-capable board adds to tools/arm64/rootfs.sh's (EDGEBRAIN_ARM64_EXTRA_PACKAGES)
PACKAGES = "python3,python3-venv,openssh-server,ca-certificates,rsync"
#: where the tests deploy on the board
TARGET = "/opt/eb"
BINFMT = Path("/proc/sys/fs/binfmt_misc")
#: qemu-user-static's registration for systemd-binfmt (used when binfmt-support's update-binfmts is absent)
SYSTEMD_CONF = Path("/usr/lib/binfmt.d/qemu-aarch64.conf")

#: a Raspberry Pi 4 Model B's /proc/cpuinfo under its 64-bit OS (four Cortex-A72: implementer 0x41, part 0xd08)
PI4_CPUINFO = "".join(
    f"processor\t: {i}\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\nCPU implementer\t: 0x41\n"
    "CPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\nCPU revision\t: 3\n\n" for i in range(4)
) + "Hardware\t: BCM2835\nRevision\t: c03114\nSerial\t\t: 10000000e3b5a5c0\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4\n"
#: its device tree's model (NUL-terminated, as the kernel shows it)
PI4_MODEL = "Raspberry Pi 4 Model B Rev 1.4\0"

_PASSWD = "root:x:0:0:root:/root:/bin/sh\nsshd:x:100:65534::/run/sshd:/usr/sbin/nologin\n" \
          "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
_GROUP = "root:x:0:\nnogroup:x:65534:\n"
_SHADOW = "root:*:20000:0:99999:7:::\nsshd:*:20000:0:99999:7:::\nnobody:*:20000:0:99999:7:::\n"


def rootfs() -> Path:
    return board.board_dir() / "rootfs"


def why_absent() -> str | None:
    """None when the board can run here, else why not (with what to do)."""
    if os.geteuid() != 0:
        return "the emulated arm64 board needs root (chroot, mounts, binfmt_misc)"
    why = board.why_absent()
    if why:
        return why + f" with EDGEBRAIN_ARM64_EXTRA_PACKAGES={PACKAGES}"
    ready = (board.board_dir() / "READY").read_text()
    debs = next((ln[5:] for ln in ready.splitlines() if ln.startswith("debs=")), "")
    if "openssh-server" not in debs.split(",") or not (rootfs() / "usr" / "sbin" / "sshd").is_file():
        return (f"the arm64 root filesystem in {board.board_dir()} has no SSH server (rebuild: sudo "
                f"EDGEBRAIN_ARM64_EXTRA_PACKAGES={PACKAGES} tools/arm64/rootfs.sh)")
    for tool in ("unshare", "chroot", "ssh", "ssh-keygen", "rsync"):
        if shutil.which(tool) is None:
            return f"no '{tool}' here (tools/install-test-deps.sh installs it)"
    return enable_binfmt()


def enable_binfmt() -> str | None:
    """Make arm64 programs run through qemu-aarch64 (binfmt_misc); None, or why that is not possible."""
    if not (BINFMT / "register").exists():
        r = subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT)], capture_output=True,
                           text=True, timeout=30, check=False)
        if r.returncode != 0:
            return f"cannot mount binfmt_misc at {BINFMT}: {r.stderr.strip()[-200:]}"
    entry = BINFMT / "qemu-aarch64"
    if not entry.is_file() or "enabled" not in entry.read_text():
        if shutil.which("update-binfmts") is not None:
            r = subprocess.run(["update-binfmts", "--enable", "qemu-aarch64"], capture_output=True, text=True,
                               timeout=30, check=False)
            if r.returncode != 0 or not entry.is_file():
                return f"update-binfmts --enable qemu-aarch64 failed: {(r.stderr or r.stdout).strip()[-200:]}"
        elif SYSTEMD_CONF.is_file() and not entry.is_file():
            # no binfmt-support: register qemu-user-static's own systemd-binfmt line, as systemd-binfmt would
            try:
                (BINFMT / "register").write_text(SYSTEMD_CONF.read_text().strip() + "\n")
            except OSError as e:
                return f"cannot register qemu-aarch64 with binfmt_misc: {e}"
        else:
            return "no update-binfmts (apt-get install binfmt-support qemu-user-static)"
    text = entry.read_text()
    if "enabled" not in text:
        return f"binfmt_misc's qemu-aarch64 entry is disabled ({entry})"
    flags = next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("flags:")), "")
    if "F" not in flags:
        return (f"binfmt_misc's qemu-aarch64 entry lacks the F flag (flags: {flags!r}), so arm64 programs cannot "
                "run inside a chroot (Debian's qemu-user-static registers it with F)")
    return None


def prepare_rootfs(root: Path) -> None:
    """What the packages' maintainer scripts would have done (rootfs.sh only unpacks them): users, the
    folders sshd needs, the host's name resolution and CA bundle. Idempotent."""
    etc = root / "etc"
    (etc / "passwd").write_text(_PASSWD)
    (etc / "group").write_text(_GROUP)
    (etc / "shadow").write_text(_SHADOW)
    (etc / "shadow").chmod(0o640)
    for name in ("resolv.conf", "hosts"):
        src = Path("/etc") / name
        dst = etc / name
        if dst.is_symlink():
            dst.unlink()
        if src.is_file():
            dst.write_bytes(src.read_bytes())
    ca = Path("/etc/ssl/certs/ca-certificates.crt")  # the host's trusted CAs (with any it added locally)
    if ca.is_file():
        (etc / "ssl" / "certs").mkdir(parents=True, exist_ok=True)
        (etc / "ssl" / "certs" / "ca-certificates.crt").write_bytes(ca.read_bytes())
    (root / "root").mkdir(mode=0o700, exist_ok=True)
    for d in ("run", "tmp", "proc", "sys", "dev", "opt"):
        (root / d).mkdir(exist_ok=True)
    (root / "var" / "empty").mkdir(parents=True, exist_ok=True)


@dataclass
class Board(chroot_board.Endpoint):
    host: str
    port: int
    dir: Path
    key: Path
    known_hosts: Path
    log: Path
    proc: subprocess.Popen
    config_dir: Path | None = None
    lock: object = None
    user: str = "root"
    #: a port whose sessions cannot reach any package index (see the module docstring)
    offline_port: int = 0

    def url(self, path: str = TARGET, offline: bool = False) -> str:
        return f"ssh://{self.user}@{self.host}:{self.offline_port if offline else self.port}{path}"

    def stop(self) -> None:
        chroot_board.stop(self.proc)
        if self.config_dir is not None:
            shutil.rmtree(self.config_dir, ignore_errors=True)
        if self.lock is not None:
            self.lock.close()  # releases the flock


#: run by ``unshare --mount`` as root: the board's mounts, private to it, then sshd in the chroot
_START = r"""
set -e
R=$1; CFG=$2; PORT=$3; CPUINFO=$4; MODEL=$5; OFFLINE_PORT=$6
mount --make-rprivate /
mount -t proc proc "$R/proc"
mount --bind "$CPUINFO" "$R/proc/cpuinfo"
mount --rbind /dev "$R/dev"
mount -t tmpfs -o mode=1777 tmpfs "$R/tmp"
mount -t tmpfs -o mode=0755 tmpfs "$R/run"
mkdir -m 0755 "$R/run/sshd"
mount -t tmpfs -o mode=0755 tmpfs "$R/sys"
mkdir -p "$R/sys/firmware/devicetree/base"
cp "$MODEL" "$R/sys/firmware/devicetree/base/model"
mount -o remount,ro,bind "$R/sys"
exec chroot "$R" /usr/sbin/sshd -D -e -f "$CFG" -p "$PORT" -p "$OFFLINE_PORT"
"""


def _lock(wait_s: float = 1800.0):
    """One board session at a time per machine (they share /opt/eb): an flock, waited for."""
    f = open(board.board_dir() / ".deploy-board.lock", "w")  # noqa: SIM115 - held until Board.stop
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return f
        except OSError:
            if time.monotonic() > deadline:
                f.close()
                raise RuntimeError(f"another test session has held the arm64 board for over {wait_s:g} s") from None
            time.sleep(2)


def start(work: Path, timeout: float = 120.0) -> Board:
    """Start the board's sshd (see the module docstring); its files (keys, config, log) under ``work``."""
    lock = _lock()
    try:
        return _start(work, timeout, lock)
    except BaseException:
        lock.close()
        raise


def _start(work: Path, timeout: float, lock) -> Board:
    root = rootfs()
    prepare_rootfs(root)
    # the server's own files: inside the root filesystem (sshd reads them after the chroot), made afresh
    shutil.rmtree(root / "etc" / "ssh" / "edgebrain-test", ignore_errors=True)  # an earlier session's
    inside = root / "etc" / "ssh" / "edgebrain-test"
    inside.mkdir(parents=True)
    chroot_board.keygen(inside / "host_key", "edgebrain-arm64-test")
    chroot_board.keygen(work / "user_key", "edgebrain-arm64-test")
    (inside / "authorized_keys").write_text((work / "user_key.pub").read_text())
    (inside / "authorized_keys").chmod(0o600)
    (work / "cpuinfo").write_text(PI4_CPUINFO)
    (work / "model").write_text(PI4_MODEL)
    cfg = "/etc/ssh/edgebrain-test/sshd_config"

    def write_config(offline_port: int) -> None:
        (inside / "sshd_config").write_text(chroot_board.sshd_config("/etc/ssh/edgebrain-test", offline_port,
                                                                      ("LoginGraceTime 300",)))

    def argv_for(port: int, offline_port: int) -> list[str]:
        return ["unshare", "--mount", "sh", "-c", _START, "edgebrain-arm64-board", str(root), cfg, str(port),
                str(work / "cpuinfo"), str(work / "model"), str(offline_port)]

    log = work / "sshd.log"
    proc, port, offline_port = chroot_board.launch(argv_for, write_config, log, "the arm64 board", timeout)
    kh = chroot_board.known_hosts(work / "known_hosts", inside / "host_key.pub", port, offline_port)
    return Board("127.0.0.1", port, work, work / "user_key", kh, log, proc, config_dir=inside, lock=lock,
                 offline_port=offline_port)


def reset_target(b: Board, path: str = TARGET) -> str:
    """Remove what earlier runs deployed at ``path`` but keep its venvs (with their warm Numba caches): a
    board that had edgebrain deployed before. The first deploy of a run is then a new release; it reuses
    a venv when edgebrain's source (so its wheel) and the pins are those of an earlier run on this
    machine, and builds one (pip, then a cold compile) otherwise. What was kept, as one line."""
    p = shlex.quote(path)
    r = b.ssh(f"mkdir -p {p} && cd {p} && rm -rf current previous venv releases .incoming .current.new "
              ".previous.new && for v in venvs/*; do [ -f \"$v/.ok\" ] || rm -rf \"$v\"; done; ls venvs 2>/dev/null; true")
    if r.returncode != 0:
        raise RuntimeError(f"cannot reset {path} on the board: {r.stderr.strip()[-300:]}")
    return r.stdout.strip()
