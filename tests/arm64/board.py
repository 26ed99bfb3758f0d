"""The emulated arm64 board: the root filesystem that tools/arm64/rootfs.sh builds, and a way to run
edgebrain's Python in it under qemu-aarch64-static (no binfmt_misc needed: qemu is called
explicitly, with ``-L`` so that the arm64 program finds its loader and libraries in the root
filesystem; for files absent there qemu falls back to the host's, which is how PYTHONPATH reaches
the edgebrain source and the test's inputs).

Shared with the deploy tests (issue 16), which add an SSH server to the same root filesystem.

The Numba cache of the arm64 runs lives in ``DIR/numba-cache``. Numba keys a cached function on its
source file's path, modification time and size, so a cache filled by one checkout would be a miss
for the next clone (another path, another checkout time). The board therefore imports edgebrain
from a snapshot of the source, ``DIR/src/<content hash>/edgebrain``, with fixed modification times:
every checkout of the same source uses the same path and stamps, and the cache warmed by the first
run on a machine serves the later ones. Any change to the source is a new snapshot (cold again).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ROOTFS_SH = REPO / "tools" / "arm64" / "rootfs.sh"
#: the CPU the board emulates and Numba compiles for: a Raspberry Pi 4's
CPU = "cortex-a72"
#: modification time given to every file of a source snapshot (any fixed value would do)
_FIXED_MTIME = 1_700_000_000
#: snapshots kept besides the current one (other branches on the same machine)
_KEEP = 3


def board_dir() -> Path:
    """Where tools/arm64/rootfs.sh builds (the same rule as the script)."""
    if os.environ.get("EDGEBRAIN_ARM64_DIR"):
        return Path(os.environ["EDGEBRAIN_ARM64_DIR"])
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "edgebrain" / "arm64"


def qemu() -> str | None:
    return shutil.which(os.environ.get("QEMU_AARCH64", "qemu-aarch64-static"))


def why_absent() -> str | None:
    """None when the board can run, else why not (with what to do)."""
    d = board_dir()
    if qemu() is None:
        return "qemu-aarch64-static not found (apt-get install qemu-user-static)"
    if not (d / "READY").is_file():
        return f"no arm64 root filesystem in {d} (build it with: sudo tools/arm64/rootfs.sh)"
    if not (d / "rootfs" / "usr" / "bin" / "python3.11").is_file() or not (d / "site").is_dir():
        return f"the arm64 root filesystem in {d} is incomplete (rebuild: sudo tools/arm64/rootfs.sh)"
    return None


def _source_files(pkg: Path):
    for folder, dirs, files in os.walk(pkg):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if not name.endswith((".pyc", ".pyo")) and not name.startswith(".nfs"):
                yield Path(folder) / name


def source_snapshot(pkg: Path = REPO / "edgebrain") -> Path:
    """A folder holding a copy of ``pkg`` (as ``edgebrain/``) at a path fixed by its contents, with
    fixed modification times (see the module docstring); made once, atomically."""
    h = hashlib.sha256()
    files = list(_source_files(pkg))
    for p in files:
        h.update(str(p.relative_to(pkg)).encode() + b"\0" + p.read_bytes() + b"\0")
    root = board_dir() / "src"
    dest = root / h.hexdigest()[:16]
    if (dest / "edgebrain").is_dir():
        os.utime(dest)  # most recently used: kept by the clean-up below
        return dest
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=".tmp-"))
    for p in files:
        out = tmp / "edgebrain" / p.relative_to(pkg)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(p, out)
        os.utime(out, (_FIXED_MTIME, _FIXED_MTIME))
    try:
        tmp.rename(dest)
    except OSError:  # another run made the same snapshot meanwhile
        shutil.rmtree(tmp, ignore_errors=True)
    # keep the few most recently used snapshots; their cache entries go stale with them
    old = sorted((p for p in root.iterdir() if not p.name.startswith(".") and p != dest),
                 key=lambda p: p.stat().st_mtime, reverse=True)
    for p in old[_KEEP:]:
        _drop_snapshot(p)
    return dest


def _drop_snapshot(snap: Path) -> None:
    """Remove a snapshot and its entries in the board's Numba cache (Numba names a folder's
    entries ``<folder name>_<SHA-1 of its absolute path>``, see numba.core.caching)."""
    cache = board_dir() / "numba-cache"
    for folder, dirs, files in os.walk(snap):
        if any(f.endswith(".py") for f in files):
            path = os.path.abspath(folder)
            sub = f"{os.path.basename(path)}_{hashlib.sha1(path.encode()).hexdigest()}"
            shutil.rmtree(cache / sub, ignore_errors=True)
    shutil.rmtree(snap, ignore_errors=True)


def python_command(*args: str) -> list[str]:
    """argv running the board's python3.11 with ``args`` under qemu."""
    d = board_dir()
    return [qemu(), "-cpu", CPU, "-L", str(d / "rootfs"), str(d / "rootfs" / "usr" / "bin" / "python3.11"), "-s", *args]


def python_env(src: Path, extra_path: tuple[str, ...] = ()) -> dict:
    """Environment of a board process: the snapshot and the wheels on the path, the board's Numba
    cache, and Numba told the CPU (under qemu-user LLVM cannot read the emulated CPU's name, and the
    host's /proc/cpuinfo shows through: compiled for a named CPU, the code and the cache key are fixed)."""
    d = board_dir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "NUMBA_", "QEMU_"))}
    env.update(PYTHONPATH=os.pathsep.join([str(src), str(d / "site"), *extra_path]), PYTHONNOUSERSITE="1",
               NUMBA_CACHE_DIR=str(d / "numba-cache"), NUMBA_CPU_NAME=CPU,
               NUMBA_CPU_FEATURES="+neon")
    return env


def run_python(args: list[str], src: Path, timeout: float, extra_path: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    return subprocess.run(python_command(*args), env=python_env(src, extra_path), capture_output=True, text=True,
                          timeout=timeout)
