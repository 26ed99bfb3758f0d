"""Building the C runtime (``edgebrain/cruntime/*.c``) as a host shared library, on first use.

The library is compiled with the system C compiler (``$CC``, else ``cc``, ``gcc`` or ``clang``)
into the user's cache, ``${XDG_CACHE_HOME:-~/.cache}/edgebrain/cruntime/<key>/``, where the key
is a hash of the compiler, the flags, the CPU and every source file: editing a source, changing
the compiler or sharing the cache with another machine builds a new library beside the old one,
never over a library another process has loaded. The build writes a temporary file and renames
it into place (atomic), under a file lock, so concurrent first uses compile once. An unwritable
cache falls back to the system's temporary folder.

The C sources are package data (``pyproject.toml``), so a wheel carries them; ``firmware/`` at
the top of a checkout holds the Makefile, the test driver and the docs, and builds from here.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .errors import EdgebrainError

#: the runtime's sources (C files and headers), installed with the package
SOURCE_DIR = Path(__file__).resolve().parent / "cruntime"
#: flags of the host library: C99, no fused multiply-add (the input quantization is defined in
#: float32 without it), position-independent, and tuned for this machine's instruction set as Numba
#: is (the kernels' int32 loops vectorize: 1.4-1.9x faster on x86-64 with AVX2 than baseline SSE2).
#: The CPU is part of the build key; a compiler that refuses -march=native builds without it.
NATIVE = "-march=native"
CFLAGS = ("-std=c99", "-O3", NATIVE, "-ffp-contract=off", "-fPIC", "-shared")
#: compilers tried when $CC is unset, in this order
COMPILERS = ("cc", "gcc", "clang")
INSTALL_HINT = ("no C compiler found (tried $CC, cc, gcc, clang); the C runtime is built with one on first use: "
                "install one (Debian/Ubuntu: sudo apt-get install gcc; Fedora: sudo dnf install gcc; "
                "macOS: xcode-select --install) or set CC")


def sources() -> list[Path]:
    """The runtime's C files and headers, sorted."""
    return sorted(p for p in SOURCE_DIR.iterdir() if p.suffix in (".c", ".h"))


def compiler() -> list[str]:
    """The compiler command: ``$CC`` (split as a shell would) or the first of :data:`COMPILERS`
    on the PATH. Raises :class:`EdgebrainError` with how to install one when there is none."""
    cc = os.environ.get("CC", "").strip()
    if cc:
        cmd = shlex.split(cc)
        if not shutil.which(cmd[0]):
            raise EdgebrainError(f"$CC is '{cc}', which is not found: set CC to an installed C compiler, or unset it "
                                 "to use cc, gcc or clang")
        return cmd
    for name in COMPILERS:
        path = shutil.which(name)
        if path:
            return [path]
    raise EdgebrainError(INSTALL_HINT)


def _cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "edgebrain" / "cruntime"


def _lib_name() -> str:
    return "libebruntime.dylib" if sys.platform == "darwin" else "libebruntime.so"


def cpu_id() -> str:
    """What ``-march=native`` depends on: the CPU's model and features (``/proc/cpuinfo`` on Linux),
    else the platform's description of the machine."""
    try:
        with open("/proc/cpuinfo") as f:
            keys = ("model name", "flags", "Features", "CPU implementer", "CPU part", "isa")
            return "\n".join(sorted({ln.strip() for ln in f if ln.split(":")[0].strip() in keys}))
    except OSError:
        u = platform.uname()
        return f"{u.system} {u.release} {u.machine} {u.processor}"


def build_key(cmd: list[str], flags=CFLAGS) -> str:
    """Hash of the compiler command, the flags, the CPU and the sources' names and bytes."""
    h = hashlib.sha256()
    for part in (*cmd, "\0", *flags, "\0", cpu_id(), "\0"):
        h.update(part.encode() + b"\0")
    for p in sources():
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:20]


def _lock(path: Path):
    """An exclusive lock on ``path`` (held until the returned file is closed); no-op without fcntl."""
    f = open(path, "a+b")
    try:
        import fcntl

        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
    except ImportError:  # pragma: no cover - Windows: no lock, the rename stays atomic
        pass
    return f


def _compile(cmd: list[str], flags, out: Path) -> None:
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    srcs = [str(p) for p in sources() if p.suffix == ".c"]
    args = [*cmd, *flags, "-I", str(SOURCE_DIR), "-o", str(tmp), *srcs]
    try:
        r = subprocess.run(args, capture_output=True, text=True)
    except OSError as e:
        raise EdgebrainError(f"cannot run the C compiler {cmd[0]}: {e.strerror or e}") from None
    if r.returncode != 0 and NATIVE in flags:  # a compiler without -march=native (older clang on arm64)
        r = subprocess.run([a for a in args if a != NATIVE], capture_output=True, text=True)
    if r.returncode != 0:
        tmp.unlink(missing_ok=True)
        first = next((ln for ln in r.stderr.splitlines() if "error" in ln), r.stderr.strip()[:300])
        raise EdgebrainError(f"building the C runtime failed ({' '.join(args[:2])} ...): {first}")
    os.replace(tmp, out)


def library(flags=CFLAGS) -> Path:
    """The path of the built shared library, compiling it first if the cache has none for these
    sources, compiler and flags."""
    cmd = compiler()
    key = build_key(cmd, flags)
    uid = getattr(os, "getuid", lambda: 0)()
    for root in (_cache_root(), Path(tempfile.gettempdir()) / f"edgebrain-cruntime-{uid}"):
        d = root / key
        lib = d / _lib_name()
        if lib.is_file():
            return lib
        try:
            d.mkdir(parents=True, exist_ok=True)
            with _lock(d / ".lock"):
                if not lib.is_file():  # another process may have built it while we waited
                    _compile(cmd, flags, lib)
            return lib
        except OSError:
            continue  # an unwritable cache (permissions, a read-only file system): the temporary folder next
    raise EdgebrainError(f"cannot write the C runtime's build anywhere (tried {_cache_root()} and the "
                         "temporary folder)")
