"""A Python 3.10 board on loopback for the deploy tests: the x86-64 Ubuntu 22.04 (jammy) root filesystem
of tools/jammy/rootfs.sh (JetPack 6's userland and Python, 3.10.12), its own OpenSSH server (8.9) in a
chroot, and every program a session starts (``sh``, ``python3``, the venv, ``pip``) from that root
filesystem. Native x86-64: no emulation, so a deploy takes about as long as on the host.

How it runs (root only):

* ``unshare --mount`` gives the board its own mount namespace, so nothing it mounts is visible outside
  or outlives it: ``/proc``, ``/dev``, ``/sys``, a tmpfs ``/tmp`` and ``/run``; this session's sshd
  files (config, host key, authorized_keys) bound at ``/etc/ssh/edgebrain-test``, this session's
  target folder at :data:`TARGET` and an empty home at ``/root`` (no pip cache from an earlier run: every
  session's first deploy downloads what a new board would). Sessions running at the same time (other
  checkouts) share the root filesystem without writing to it, each with its own keys, ports and folders.
* ``chroot ROOTFS /usr/sbin/sshd -D -e`` on two loopback ports, with a throwaway host key and user key,
  logging in as root with the key only.
* The first port reaches the package index as the host does: the root filesystem gets the host's
  ``/etc/resolv.conf``, ``/etc/hosts`` and CA bundle (``/etc/ssl/certs/ca-certificates.crt``), so an
  online deploy's ``pip`` fetches the cp310 wheels from PyPI on the board. The second port's sessions
  have every pip index set to a closed port (sshd ``SetEnv``, as the arm64 board), for ``--offline``.

The network is the host's (no network namespace). Not a Jetson: no Tegra kernel, no
``/etc/nv_tegra_release``, no device tree, and x86-64, not aarch64.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import REPO
from tests.deploy import chroot_board

#: Ubuntu packages of the board (tools/jammy/rootfs.sh's PKGS)
PACKAGES = "python3,python3-venv,openssh-server,ca-certificates,rsync"
#: where this session's target folder appears on the board
TARGET = "/srv/edgebrain"
SCRIPT = REPO / "tools" / "jammy" / "rootfs.sh"


def board_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(os.environ.get("EDGEBRAIN_JAMMY_DIR") or os.path.join(base, "edgebrain", "jammy"))


def rootfs() -> Path:
    return board_dir() / "rootfs"


def ready() -> dict:
    """The READY stamp's key=value lines ({} when not built)."""
    try:
        text = (board_dir() / "READY").read_text()
    except OSError:
        return {}
    return dict(ln.split("=", 1) for ln in text.splitlines() if "=" in ln)


def why_absent() -> str | None:
    """None when the board can run here, else why not (with what to do)."""
    if os.geteuid() != 0:
        return "the Python 3.10 (Ubuntu 22.04) board needs root (chroot, mounts)"
    r = subprocess.run(["bash", str(SCRIPT), "--check"], capture_output=True, text=True, timeout=60, check=False)
    if r.returncode != 0:
        return (f"the Ubuntu 22.04 root filesystem is not built in {board_dir()} (sudo tools/jammy/rootfs.sh, "
                "or tools/install-test-deps.sh as root)")
    if not (rootfs() / "usr" / "sbin" / "sshd").is_file():
        return f"no usr/sbin/sshd in {rootfs()} (rebuild: rm {board_dir()}/READY; sudo tools/jammy/rootfs.sh)"
    for tool in ("unshare", "chroot", "ssh", "ssh-keygen", "rsync"):
        if shutil.which(tool) is None:
            return f"no '{tool}' here (tools/install-test-deps.sh installs it)"
    return None


def _write(path: Path, data: bytes) -> None:
    """Atomically (another session may read it): a regular file, replacing a link."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def prepare_rootfs(root: Path) -> None:
    """The host's name resolution and CA bundle (an online deploy fetches from PyPI on the board), and the
    mount points of :func:`start`. Idempotent."""
    for name in ("resolv.conf", "hosts"):
        src = Path("/etc") / name
        if src.is_file():
            _write(root / "etc" / name, src.read_bytes())
    ca = Path("/etc/ssl/certs/ca-certificates.crt")  # the host's trusted CAs (with any it added locally)
    if ca.is_file():
        (root / "etc" / "ssl" / "certs").mkdir(parents=True, exist_ok=True)
        _write(root / "etc" / "ssl" / "certs" / "ca-certificates.crt", ca.read_bytes())
    for d in ("etc/ssh/edgebrain-test", TARGET.lstrip("/"), "root", "run", "tmp", "proc", "sys", "dev"):
        (root / d).mkdir(parents=True, exist_ok=True)


@dataclass
class Board(chroot_board.Endpoint):
    host: str
    port: int
    offline_port: int
    dir: Path
    target_dir: Path
    key: Path
    known_hosts: Path
    log: Path
    proc: subprocess.Popen
    user: str = "root"

    def url(self, path: str, offline: bool = False) -> str:
        """``ssh://`` of ``path`` on the board (under :data:`TARGET` when relative)."""
        path = path if path.startswith("/") else f"{TARGET}/{path}"
        return f"ssh://{self.user}@{self.host}:{self.offline_port if offline else self.port}{path}"

    def host_path(self, path: str) -> Path:
        """Where a path under :data:`TARGET` on the board is on this machine."""
        p = Path(path)
        return self.target_dir / (p.relative_to(TARGET) if p.is_absolute() else p)

    def stop(self) -> None:
        chroot_board.stop(self.proc)
        # what the board's root wrote in this session's folders (venvs and pip's cache: hundreds of MiB)
        shutil.rmtree(self.target_dir, ignore_errors=True)
        shutil.rmtree(self.dir / "root", ignore_errors=True)


#: run by ``unshare --mount`` as root: the board's mounts, private to it, then sshd in the chroot
_START = r"""
set -e
R=$1; ETC=$2; SRV=$3; TARGET=$4; PORT=$5; OFFLINE_PORT=$6; HOME_DIR=$7
mount --make-rprivate /
mount -t proc proc "$R/proc"
mount --rbind /dev "$R/dev"
mount -t sysfs -o ro sysfs "$R/sys" || mount --rbind /sys "$R/sys"
mount -t tmpfs -o mode=1777 tmpfs "$R/tmp"
mount -t tmpfs -o mode=0755 tmpfs "$R/run"
mkdir -m 0755 "$R/run/sshd"
mount --bind "$ETC" "$R/etc/ssh/edgebrain-test"
mount --bind "$SRV" "$R$TARGET"
mount --bind "$HOME_DIR" "$R/root"
exec chroot "$R" /usr/sbin/sshd -D -e -f /etc/ssh/edgebrain-test/sshd_config -p "$PORT" -p "$OFFLINE_PORT"
"""


def start(work: Path, timeout: float = 60.0) -> Board:
    """Start the board's sshd (see the module docstring); its files (keys, config, log, target) under ``work``."""
    root = rootfs()
    prepare_rootfs(root)
    etc = work / "etc"  # seen by sshd, after the chroot, as /etc/ssh/edgebrain-test
    etc.mkdir()
    srv = work / "srv"
    srv.mkdir()
    home = work / "root"
    home.mkdir(mode=0o700)
    chroot_board.keygen(etc / "host_key", "edgebrain-jammy-test")
    chroot_board.keygen(work / "user_key", "edgebrain-jammy-test")
    (etc / "authorized_keys").write_text((work / "user_key.pub").read_text())
    (etc / "authorized_keys").chmod(0o600)

    def write_config(offline_port: int) -> None:
        (etc / "sshd_config").write_text(chroot_board.sshd_config("/etc/ssh/edgebrain-test", offline_port))

    def argv_for(port: int, offline_port: int) -> list[str]:
        return ["unshare", "--mount", "sh", "-c", _START, "edgebrain-jammy-board", str(root), str(etc), str(srv),
                TARGET, str(port), str(offline_port), str(home)]

    log = work / "sshd.log"
    proc, port, offline_port = chroot_board.launch(argv_for, write_config, log, "the Python 3.10 board", timeout)
    kh = chroot_board.known_hosts(work / "known_hosts", etc / "host_key.pub", port, offline_port)
    return Board("127.0.0.1", port, offline_port, work, srv, work / "user_key", kh, log, proc)
