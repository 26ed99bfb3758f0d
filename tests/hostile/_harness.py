"""The hostile suite's harness: run the real command line in a child process and measure it.

* :func:`run_cli` runs ``python -m edgebrain.cli ARGS`` in its own process group with a wall-clock
  limit (on timeout the whole group is killed and the test fails saying the command hung) and
  returns a :class:`Result`: exit code, stdout, stderr, wall time and the child's **own** peak RSS
  (``ru_maxrss`` from ``os.wait4`` on that pid; ``RUSAGE_CHILDREN`` would be a maximum over every
  child the test process ever had, so it is not used).
* :func:`assert_user_error`: exit code 2, exactly one ``error:`` line, no traceback, no
  ``internal error``.
* :func:`assert_rss_close`: peak RSS no more than ``slack_mib`` above a baseline run of the same
  command on a valid input of the same kind (:func:`baseline`, cached per session).
* :func:`tree_hash` / :func:`assert_unchanged`: a directory's files (sha256 and mode; symlinks by
  their target, never followed; FIFOs and devices by kind, never opened) before and after.
* :func:`valid_inputs` (and the ``valid`` fixture in ``conftest.py``): small valid files of each
  kind, from ``../shared/datasets`` (skip when absent) or written here from them.

Usage::

    from tests.hostile._harness import run_cli, assert_user_error, assert_rss_close, baseline

    def test_gap(tmp_path, valid):
        r = run_cli(["stream", "zoo:nmnist", "--source", str(bad), "--json"], timeout=60)
        assert_user_error(r, contains="gap")
        assert_rss_close(r, baseline("events_npy"))
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import resource
import signal
import stat
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO, find_datasets

#: stderr lines besides the one ``error:`` line that a failing command may print.
ALLOWED_STDERR_PREFIXES = ("error:", "warning:", "note:")
#: bytes of each stream kept in a Result (the rest is drained and counted, not stored).
MAX_CAPTURE = 8 << 20


# --------------------------------------------------------------------------- running a command


@dataclass
class Result:
    """One finished command."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    wall_s: float
    peak_rss_kib: int  # the child's own ru_maxrss (KiB on Linux)
    stdout_bytes: int = 0  # total bytes written, including any not kept
    stderr_bytes: int = 0
    signal: int | None = None  # the signal that ended the child, if any
    extra: dict = field(default_factory=dict)

    @property
    def peak_rss_mib(self) -> float:
        return self.peak_rss_kib / 1024.0

    def describe(self) -> str:
        return (f"`edgebrain {' '.join(self.args)}` -> exit {self.returncode}, {self.wall_s:.2f} s, "
                f"peak RSS {self.peak_rss_mib:.1f} MiB\n--- stderr (last 3000 chars):\n{self.stderr[-3000:]}"
                f"\n--- stdout (last 1500 chars):\n{self.stdout[-1500:]}")


class _Drain(threading.Thread):
    """Read a pipe to its end, keeping the first MAX_CAPTURE bytes."""

    def __init__(self, f):
        super().__init__(daemon=True)
        self.f, self.chunks, self.kept, self.total = f, [], 0, 0

    def run(self):
        try:
            while True:
                b = self.f.read1(1 << 16) if hasattr(self.f, "read1") else self.f.read(1 << 16)
                if not b:
                    break
                self.total += len(b)
                if self.kept < MAX_CAPTURE:
                    b = b[: MAX_CAPTURE - self.kept]
                    self.chunks.append(b)
                    self.kept += len(b)
        except (OSError, ValueError):
            pass
        finally:
            try:
                self.f.close()
            except OSError:
                pass

    def text(self) -> str:
        return b"".join(self.chunks).decode("utf-8", errors="replace")


#: A small launcher between this (large) test process and the command. Linux carries a process's
#: peak RSS across exec, so a command forked straight from pytest would report pytest's size as
#: its own; forked from this ~10 MiB launcher, its ru_maxrss (from wait4) is its own. The launcher
#: writes that number to the fd given first, then exits as the command did.
_LAUNCHER = r"""
import os, signal, sys
fd = int(sys.argv[1])
pid = os.fork()
if pid == 0:
    os.close(fd)
    try:
        os.execvp(sys.argv[2], sys.argv[2:])
    finally:
        os._exit(127)
signal.signal(signal.SIGINT, signal.SIG_IGN)
_, status, ru = os.wait4(pid, 0)
os.write(fd, str(ru.ru_maxrss).encode())
os.close(fd)
if os.WIFSIGNALED(status):
    signal.signal(os.WTERMSIG(status), signal.SIG_DFL)
    os.kill(os.getpid(), os.WTERMSIG(status))
os._exit(os.WEXITSTATUS(status))
"""


def child_env(env: dict | None = None) -> dict:
    """The environment for a child: this one (or ``env`` on top of it), the checkout on
    PYTHONPATH, no EDGEBRAIN_DEBUG (which would turn internal errors into tracebacks), wide lines."""
    e = dict(os.environ)
    e.pop("EDGEBRAIN_DEBUG", None)
    e["PYTHONPATH"] = os.pathsep.join([str(REPO)] + ([e["PYTHONPATH"]] if e.get("PYTHONPATH") else []))
    e.setdefault("COLUMNS", "200")
    e.setdefault("PYTHONUNBUFFERED", "1")
    if env:
        for k, v in env.items():
            if v is None:
                e.pop(k, None)
            else:
                e[k] = str(v)
    return e


def run_command(argv: list[str], *, cwd=None, env: dict | None = None, timeout: float = 60, stdin=None,
                close_stdout: bool = False, limit_as_mib: int | None = None, expect_hang: bool = False,
                label: list[str] | None = None) -> Result:
    """Run ``argv`` (a full command line) as :func:`run_cli` does; see there."""
    if isinstance(stdin, str):
        stdin = stdin.encode()
    feed = stdin if isinstance(stdin, (bytes, bytearray)) else None
    stdin_arg = subprocess.PIPE if feed is not None else (subprocess.DEVNULL if stdin is None else stdin)

    def pre():
        if limit_as_mib:
            lim = limit_as_mib << 20
            resource.setrlimit(resource.RLIMIT_AS, (lim, lim))
        if close_stdout:
            os.close(1)

    t0 = time.monotonic()
    rss_r, rss_w = os.pipe()
    p = subprocess.Popen([sys.executable, "-S", "-c", _LAUNCHER, str(rss_w), *[str(a) for a in argv]], cwd=cwd,
                         env=child_env(env), stdin=stdin_arg, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         start_new_session=True, pass_fds=(rss_w,),
                         preexec_fn=pre if (limit_as_mib or close_stdout) else None)
    os.close(rss_w)
    out, err = _Drain(p.stdout), _Drain(p.stderr)
    out.start()
    err.start()
    if feed is not None:
        def write():
            try:
                p.stdin.write(feed)
                p.stdin.close()
            except OSError:  # the child stopped reading
                pass
        threading.Thread(target=write, daemon=True).start()

    waited: dict = {}

    def reap():  # the child's own rusage: wait4 on its pid (Popen must not reap it first)
        _, status, ru = os.wait4(p.pid, 0)
        waited.update(status=status, ru=ru, t=time.monotonic())

    w = threading.Thread(target=reap, daemon=True)
    w.start()
    w.join(timeout)
    hung = w.is_alive()
    if hung:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        w.join(30)
    out.join(10)
    err.join(10)
    with os.fdopen(rss_r, "rb") as f:  # the launcher's report of the command's own rusage
        reported = f.read().decode().strip()
    status = waited.get("status", 0)
    p.returncode = os.waitstatus_to_exitcode(status) if waited else -9  # keep Popen from waiting again
    res = Result(list(label if label is not None else argv), p.returncode, out.text(), err.text(),
                 waited.get("t", time.monotonic()) - t0, int(reported) if reported else 0,
                 out.total, err.total, os.WTERMSIG(status) if waited and os.WIFSIGNALED(status) else None)
    if hung and not expect_hang:
        pytest.fail(f"hung: still running after {timeout:g} s (process group killed)\n{res.describe()}")
    res.extra["hung"] = hung
    return res


def run_cli(args, *, cwd=None, env: dict | None = None, timeout: float = 60, stdin=None,
            close_stdout: bool = False, limit_as_mib: int | None = None, expect_hang: bool = False) -> Result:
    """Run ``python -m edgebrain.cli ARGS`` in a child process (own session and process group).

    ``stdin``: None (``/dev/null``), bytes/str (fed through a pipe), or a file object / fd.
    ``env``: variables set on top of this environment (a value of None removes one).
    ``timeout``: wall-clock seconds; past it the process group is killed and the test fails with
    "hung" (unless ``expect_hang``, then ``Result.extra['hung']`` is True).
    ``close_stdout``: start the child with file descriptor 1 closed (as ``>&-`` in a shell).
    ``limit_as_mib``: an RLIMIT_AS for the child (a hard memory ceiling, besides the measurement).
    """
    args = [str(a) for a in args]
    return run_command([sys.executable, "-m", "edgebrain.cli", *args], cwd=cwd, env=env, timeout=timeout,
                       stdin=stdin, close_stdout=close_stdout, limit_as_mib=limit_as_mib,
                       expect_hang=expect_hang, label=args)


# --------------------------------------------------------------------------- assertions


def assert_user_error(result: Result, *, contains: str | tuple | list | None = None) -> str:
    """Exit code 2, exactly one stderr line starting with ``error:`` (other stderr lines only
    ``warning:``/``note:``), no ``Traceback`` anywhere, no ``internal error``. ``contains``: text (or
    texts) the error line must hold, case-insensitive. Returns the error line."""
    d = result.describe()
    assert result.signal is None, f"killed by signal {result.signal}\n{d}"
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout, f"traceback shown\n{d}"
    assert "internal error" not in result.stderr.lower(), f"internal error instead of a clear line\n{d}"
    assert result.returncode == 2, f"expected exit code 2, got {result.returncode}\n{d}"
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert len(errors) == 1, f"expected exactly one 'error:' line, got {len(errors)}\n{d}"
    stray = [ln for ln in lines if not ln.startswith(ALLOWED_STDERR_PREFIXES)]
    assert not stray, f"stderr lines that are not error:/warning:/note: (a message over several lines?): {stray}\n{d}"
    line = errors[0]
    assert len(line) > len("error: ") + 5, f"an empty error line\n{d}"
    if contains is not None:
        for c in ([contains] if isinstance(contains, str) else contains):
            assert c.lower() in line.lower(), f"the error line does not mention {c!r}\n{d}"
    return line


def assert_ok(result: Result) -> None:
    """Exit code 0 and no traceback / internal error."""
    d = result.describe()
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr.lower(), d
    assert result.returncode == 0, f"expected exit code 0\n{d}"


def assert_rss_close(result: Result, baseline: Result, slack_mib: float = 64) -> None:
    """The command's peak RSS is at most ``slack_mib`` above the baseline's (the same command on a
    valid input of the same kind)."""
    assert baseline.peak_rss_kib > 0 and result.peak_rss_kib > 0, "no RSS measured"
    over = result.peak_rss_mib - baseline.peak_rss_mib
    assert over <= slack_mib, (
        f"peak RSS {result.peak_rss_mib:.1f} MiB is {over:.1f} MiB above the baseline "
        f"({baseline.peak_rss_mib:.1f} MiB, `edgebrain {' '.join(baseline.args)}`), allowed {slack_mib} MiB\n"
        f"{result.describe()}")


def assert_fast(result: Result, limit_s: float) -> None:
    assert result.wall_s <= limit_s, f"took {result.wall_s:.1f} s, allowed {limit_s} s\n{result.describe()}"


# --------------------------------------------------------------------------- directory hashing


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def tree_hash(path) -> dict:
    """Relative path -> (what, mode) for everything under ``path`` (and ``"."`` for ``path``
    itself). ``what`` is the sha256 of a regular file's bytes, ``"dir"``, ``"link:" + target`` for
    a symlink (not followed), or the kind of a FIFO, socket or device (never opened, so hashing
    never blocks). Mode is the permission and file-type bits (``st_mode``)."""
    root = os.fspath(path)
    out: dict = {}

    def entry(full: str, rel: str):
        st = os.lstat(full)
        m = st.st_mode
        if stat.S_ISLNK(m):
            out[rel] = ("link:" + os.readlink(full), m)
        elif stat.S_ISREG(m):
            out[rel] = (_sha256(full), m)
        elif stat.S_ISDIR(m):
            out[rel] = ("dir", m)
        elif stat.S_ISFIFO(m):
            out[rel] = ("fifo", m)
        elif stat.S_ISSOCK(m):
            out[rel] = ("socket", m)
        elif stat.S_ISCHR(m) or stat.S_ISBLK(m):
            out[rel] = (f"device:{os.major(st.st_rdev)},{os.minor(st.st_rdev)}", m)
        else:
            out[rel] = ("other", m)

    entry(root, ".")
    for d, dirs, files in os.walk(root, followlinks=False):
        for n in dirs + files:
            full = os.path.join(d, n)
            entry(full, os.path.relpath(full, root))
    return out


def assert_unchanged(before: dict, after: dict, allowed=()) -> None:
    """Nothing appeared, vanished or changed between two :func:`tree_hash` results, except the
    relative paths matching a pattern in ``allowed`` (``fnmatch`` patterns, e.g. ``"out.csv"``,
    ``"cache/*"``)."""
    allowed = [allowed] if isinstance(allowed, str) else list(allowed)

    def ok(rel):
        return any(fnmatch.fnmatchcase(rel, pat) for pat in allowed)

    changed = sorted(k for k in before.keys() & after.keys() if before[k] != after[k] and not ok(k))
    added = sorted(k for k in after.keys() - before.keys() if not ok(k))
    removed = sorted(k for k in before.keys() - after.keys() if not ok(k))
    assert not (changed or added or removed), (
        f"files changed outside the requested output: changed {changed}, added {added}, removed {removed}")


# --------------------------------------------------------------------------- valid inputs and baselines

#: kind -> path under the datasets folder (small files: baselines stay cheap)
DATASET_FILES = {
    "imu_csv": "imu/sp-sw-har/s01/s01_03_sw.csv",
    "uea_ts": "imu/basicmotions/BasicMotions_TEST.ts",
    "wav": "audio/fsdd/recordings/0_george_0.wav",
    "flac": "audio/lauscher/spoken_digit.flac",
    "bs2": "events/nmnist-small/60001.bs2",
    "nmnist_bin": "events/formats/sample_nmnist.bin",
    "dat": "events/formats/sample_ncars.dat",
    "evt2": "events/formats/evt2.raw",
    "evt3": "events/formats/evt3_sample.raw",
    "aedat4": "events/formats/sample.aedat4",
    "aedat4_davis": "events/formats/davis346.aedat4",
}

#: kind -> the zoo model that streams it
ZOO_FOR = {"imu_csv": "zoo:har-l2mu", "uea_ts": "zoo:basicmotions", "wav": "zoo:kws", "flac": "zoo:kws",
           "bs2": "zoo:nmnist", "nmnist_bin": "zoo:nmnist", "events_npy": "zoo:nmnist"}

_CACHE_DIR: Path | None = None


def _cache_dir() -> Path:
    """A per-process folder for generated inputs (removed at exit by the OS's tmp policy; small)."""
    global _CACHE_DIR
    if _CACHE_DIR is None:
        import atexit
        import shutil
        import tempfile

        _CACHE_DIR = Path(tempfile.mkdtemp(prefix="edgebrain-hostile-"))
        atexit.register(shutil.rmtree, _CACHE_DIR, True)
    return _CACHE_DIR


def datasets_root() -> Path:
    """The datasets folder, or skip the test."""
    p, why = find_datasets()
    if p is None:
        pytest.skip(why)
    return p


def example_model() -> str:
    """The bundled example model (a NIR file shipped in the package: always present)."""
    from edgebrain.synthetic import example_path

    return example_path()


def valid_input(kind: str) -> Path:
    """A small valid input file of ``kind`` (see DATASET_FILES, plus "events_npy": the N-MNIST
    sample 60001 as a structured x/y/p/t .npy, and "samples_npy": (T, 3) float32 samples for the
    example model's ``run``). Skips when the recording is absent."""
    if kind in DATASET_FILES:
        p = datasets_root() / DATASET_FILES[kind]
        if not p.exists():
            pytest.skip(f"recording {p} not found")
        return p
    d = _cache_dir()
    if kind == "events_npy":
        p = d / "events.npy"
        if not p.exists():
            from tests.conftest import read_bs2

            ev = read_bs2(valid_input("bs2"))
            np.save(p, ev)
        return p
    if kind == "samples_npy":
        p = d / "samples.npy"
        if not p.exists():
            rng = np.random.default_rng(0)
            np.save(p, rng.normal(size=(200, 3)).astype(np.float32))
        return p
    raise KeyError(kind)


def valid_inputs() -> dict:
    """Every kind of valid input available here: kind -> path (kinds whose file is absent are left out)."""
    out = {}
    for k in [*DATASET_FILES, "events_npy", "samples_npy"]:
        try:
            out[k] = valid_input(k)
        except pytest.skip.Exception:
            pass
    return out


def baseline_args(kind: str) -> list[str]:
    """The valid command a hostile input of ``kind`` is compared with."""
    if kind in ZOO_FOR:
        return ["stream", ZOO_FOR[kind], "--source", str(valid_input(kind)), "--json"]
    if kind == "samples_npy":
        return ["run", example_model(), "-i", str(valid_input(kind)), "-o", str(_cache_dir() / "baseline-run.npz")]
    if kind in ("model", "nir", "inspect"):
        return ["inspect", example_model()]
    if kind in DATASET_FILES:  # other event formats: data info reads the whole file
        return ["data", "info", str(valid_input(kind))]
    raise KeyError(kind)


_BASELINES: dict = {}


def baseline(kind: str, args: list[str] | None = None, timeout: float = 300) -> Result:
    """The valid command for ``kind`` (or ``args``), run once per test session and cached; it must
    succeed. Kinds: those of :func:`valid_input`, or "model" (``inspect`` of the example model)."""
    key = tuple(args) if args is not None else kind
    if key not in _BASELINES:
        r = run_cli(args if args is not None else baseline_args(kind), timeout=timeout)
        assert_ok(r)
        _BASELINES[key] = r
    return _BASELINES[key]
