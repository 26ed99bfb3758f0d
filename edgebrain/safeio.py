"""Writing files safely: the two kinds of output edgebrain writes, one helper each.

* **One-shot outputs** (``convert``, ``run -o``, NIR export, plots, ``data fetch``, ``record`` of a
  finished file): :func:`atomic_write`. The content goes to a temporary file with an unpredictable
  name in the target's folder (:func:`tempfile.mkstemp`: created exclusively, so a link planted
  there is never followed), is flushed to disk and renamed over the target in one step. A reader
  sees the old file or the new one, never half of one; on any error, Ctrl-C or SIGTERM the
  temporary file is removed. Only a regular file (or nothing) is ever replaced: a FIFO, a
  character device or ``/dev/stdout`` given as the output is written to as a stream, and anything
  else (a directory, a block device, a socket, a symbolic link) is refused with one line.
* **Streaming outputs** (the file and CSV sinks, ``record`` of a live source): :func:`open_stream`.
  The file is written in place as data comes, opened with ``O_NOFOLLOW`` (a symbolic link is
  refused), and flushed and ``fsync``-ed at least once a second, so that a live reader sees every
  line and a power cut loses at most the last second. FIFOs and character devices are accepted.

Both refuse an output that is the same file (same device and inode, whatever its name) as a file
being read: :func:`reading` declares those for the time they are read.

The names ``/dev/stdout``, ``/dev/stderr``, ``/dev/fd/N`` and ``/proc/*/fd/N`` are links the
system makes to an open file descriptor, not links someone planted: they are followed, and what
they lead to is written to as a stream.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import signal
import socket
import stat
import tempfile
import threading
import time
import urllib.parse

from .errors import OutputError
from .infile import kind_of

#: a streaming output is fsync-ed at most this long after a write
SYNC_INTERVAL = 1.0

_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NOCTTY = getattr(os, "O_NOCTTY", 0)
#: errors of writing the output itself (others raised inside atomic_write's block are the caller's)
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EROFS, errno.EPIPE}
_STD_LINK = re.compile(r"^/(dev/(stdout|stderr|fd/\d+)|proc/(self|\d+)/fd/\d+)$")

_inputs: list[tuple[int, int, str]] = []
_inputs_lock = threading.Lock()


# ---------------------------------------------------------------------- inputs


def local_path(spec) -> str | None:
    """The local file a source spec names (a path or ``file:///path``), or None for a URL such as
    ``tcp://host:port``."""
    if spec is None:
        return None
    spec = os.fspath(spec)
    u = urllib.parse.urlsplit(spec)
    if u.scheme == "file":
        return urllib.parse.unquote(u.path)
    if u.scheme and len(u.scheme) > 1:
        return None
    return spec


@contextlib.contextmanager
def reading(*paths):
    """While inside, no output may be the same file (device and inode) as one of ``paths`` (those
    that exist; None is skipped): an output opened then is refused with one line naming both."""
    added = []
    for p in paths:
        if p is None:
            continue
        try:
            st = os.stat(p)
        except (OSError, ValueError):
            continue
        if stat.S_ISREG(st.st_mode):
            added.append((st.st_dev, st.st_ino, os.fspath(p)))
    with _inputs_lock:
        _inputs.extend(added)
    try:
        yield
    finally:
        with _inputs_lock:
            for a in added:
                _inputs.remove(a)


def _check_not_input(st: os.stat_result, path: str) -> None:
    with _inputs_lock:
        for dev, ino, name in _inputs:
            if (st.st_dev, st.st_ino) == (dev, ino):
                same = "" if os.path.abspath(name) == os.path.abspath(path) else f" ({name})"
                raise OutputError(f"is the same file as an input{same}; writing it would destroy the data being "
                                  "read: choose another output", file=path)


# ---------------------------------------------------------------------- shared checks


def _is_std_link(path: str) -> bool:
    return bool(_STD_LINK.match(os.path.abspath(path)))


def _own_fd(path: str) -> int | None:
    """The descriptor ``/dev/stdout``, ``/dev/stderr``, ``/dev/fd/N`` or ``/proc/self/fd/N`` names
    in this process (written to directly, so that its offset is shared with the process's own
    writes, as a shell redirection expects), else None."""
    m = re.match(r"^/(?:dev/(stdout|stderr|fd/(\d+))|proc/(self|\d+)/fd/(\d+))$", os.path.abspath(path))
    if not m:
        return None
    if m.group(1) in ("stdout", "stderr"):
        return 1 if m.group(1) == "stdout" else 2
    if m.group(2) is not None:
        return int(m.group(2))
    if m.group(3) == "self" or int(m.group(3)) == os.getpid():
        return int(m.group(4))
    return None


def _open_own_fd(fd: int) -> int:
    """A duplicate of our descriptor ``fd`` (after flushing Python's own buffers for 1 and 2)."""
    import sys

    for f, n in ((sys.stdout, 1), (sys.stderr, 2)):
        if n == fd and f is not None:
            with contextlib.suppress(Exception):
                f.flush()
    return os.dup(fd)


def _oserror(e: OSError, path: str, doing: str = "cannot write") -> OutputError:
    return OutputError(f"{doing} ({e.strerror or e})", file=path)


def _umask() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


@contextlib.contextmanager
def sigterm_exits():
    """SIGTERM raises SystemExit(143) instead of killing the process outright, so that the
    clean-up of partial files runs (only when SIGTERM has its default action, in the main thread)."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        yield
        return

    def on_term(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _fsync_dir(folder: str) -> None:
    try:
        fd = os.open(folder or ".", os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ---------------------------------------------------------------------- one-shot outputs


def _one_shot_target(path: str):
    """('new' | 'replace' | 'stream', stat of what is there or None); refuses the rest."""
    try:
        lst = os.lstat(path)
    except FileNotFoundError:
        return "new", None
    except OSError as e:
        raise _oserror(e, path) from None
    mode = lst.st_mode
    if stat.S_ISLNK(mode):
        if not _is_std_link(path):
            try:
                where = os.readlink(path)
            except OSError:
                where = "?"
            raise OutputError(f"is a symbolic link (to {where}); edgebrain neither writes through a link nor "
                              "replaces one: give the real path, or remove the link", file=path)
        try:
            st = os.stat(path)
        except OSError as e:
            raise _oserror(e, path) from None
        if stat.S_ISREG(st.st_mode) or stat.S_ISFIFO(st.st_mode) or stat.S_ISCHR(st.st_mode):
            return "stream", st
        raise OutputError(f"leads to {kind_of(st.st_mode)}; expected a regular file, a FIFO or a terminal", file=path)
    if stat.S_ISREG(mode):
        return "replace", lst
    if stat.S_ISFIFO(mode) or stat.S_ISCHR(mode):
        return "stream", lst
    raise OutputError(f"is {kind_of(mode)}, not a regular file; refusing to replace it", file=path)


def check_output(path, what: str = "output") -> None:
    """Fail now, before any work, when :func:`atomic_write` would refuse ``path`` (a link, a
    directory, a device that is not a stream, a file being read)."""
    _checked_target(path, what)


def _checked_target(path, what: str) -> tuple[str, str, os.stat_result | None]:
    """``path`` as a string, what is there (:func:`_one_shot_target`), after refusing an empty
    path and a file being read."""
    path = os.fspath(path)
    if not path:
        raise OutputError(f"no path given for the {what}")
    kind, st = _one_shot_target(path)
    if st is not None:
        _check_not_input(st, path)
    return path, kind, st


@contextlib.contextmanager
def atomic_write(path, what: str = "output"):
    """Write a one-shot output: yields a binary file object (readable, writable, seekable) to fill.

    On leaving the block normally, a new or regular file ``path`` is replaced atomically by what
    was written (its permission bits are kept; a new file gets ``0666 & ~umask``); a FIFO,
    character device or ``/dev/stdout`` receives the content as a stream. On any exception
    (Ctrl-C, and SIGTERM, which raises SystemExit(143) meanwhile, included) nothing at ``path``
    changes and the temporary file is removed. ``what`` names the output in error messages.
    Problems are :class:`~edgebrain.errors.OutputError` s naming ``path``."""
    path, kind, st = _checked_target(path, what)
    with sigterm_exits():
        if kind == "stream":
            with _spooled_stream(path, st) as f:
                yield f
            return
        folder = os.path.dirname(os.path.abspath(path))
        base = os.path.basename(path)[:100]
        try:
            fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix(base) + f"{os.getpid()}-", suffix=".tmp", dir=folder)
        except OSError as e:
            raise _oserror(e, path, f"cannot write the {what} (in {folder})") from None
        _remove_orphans(folder, base)
        try:
            with open(fd, "w+b") as f:
                yield f
                f.flush()
                os.fsync(f.fileno())
                os.fchmod(f.fileno(), stat.S_IMODE(st.st_mode) if st is not None else 0o666 & ~_umask())
            kind2, st2 = _one_shot_target(path)  # what is there now (it may have changed meanwhile)
            if kind2 == "stream":
                raise OutputError(f"became {kind_of(st2.st_mode)} while the {what} was written; not replaced", file=path)
            os.replace(tmp, path)
        except BaseException as e:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            if isinstance(e, OSError) and (e.errno in _WRITE_ERRNOS or getattr(e, "filename", None) == tmp):
                raise _oserror(e, path, f"cannot write the {what}") from None
            raise  # (an error of the writer's own input stays what it is)
        _fsync_dir(folder)


def _tmp_prefix(base: str) -> str:
    """Temporary files of ``base`` are ``.BASE.eb-HOST-PID-RANDOM.tmp``: the host and process that
    own one can be told from its name (a shared folder may be written from several machines)."""
    host = "".join(c for c in socket.gethostname() if c.isalnum())[:32] or "host"
    return f".{base}.eb-{host}-"


def _remove_orphans(folder: str, base: str) -> None:
    """Remove temporary files (and folders: :func:`write_folder`) of ``base`` left in ``folder`` by
    a process of this host that died before it could clean up (SIGKILL, a power cut): those of this
    user whose process no longer exists. Best effort: anything unclear is left alone."""
    prefix = _tmp_prefix(base)
    try:
        names = [n for n in os.listdir(folder) if n.startswith(prefix) and n.endswith(".tmp")]
    except OSError:
        return
    for n in names:
        pid = n[len(prefix):].split("-", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid() or _alive(int(pid)):
            continue
        p = os.path.join(folder, n)
        with contextlib.suppress(OSError):
            st = os.lstat(p)
            if st.st_uid != os.getuid():
                continue
            if stat.S_ISREG(st.st_mode):
                os.unlink(p)
            elif stat.S_ISDIR(st.st_mode):
                shutil.rmtree(p, ignore_errors=True)


def check_output_folder(path: str, force: bool) -> None:
    """Refuse (OutputError) a folder output that is a file or link, or a non-empty folder without
    ``force`` (cheap: call it before the work that fills the folder)."""
    if not path:
        raise OutputError("no output folder given (-o DIR)")
    if os.path.islink(path):
        raise OutputError("is a symbolic link; give the real path", file=path)
    if os.path.exists(path):
        if not os.path.isdir(path):
            raise OutputError("exists and is not a folder; refusing to replace it", file=path)
        if os.listdir(path) and not force:
            raise OutputError("is a folder that is not empty; pass --force to replace it (its files are removed)",
                              file=path)


def write_folder(path: str, files: dict, force: bool, what: str = "export") -> None:
    """Write ``files`` (name -> str or bytes) as the folder ``path``, whole or not at all: they go
    to a temporary folder beside it (named like :func:`atomic_write`'s temporary files, so one left
    by a killed process is removed by the next write), which is renamed onto ``path`` in one step.
    With ``force`` an existing folder is replaced, and put back if the replacement fails. Ctrl-C and
    SIGTERM leave ``path`` as it was."""
    check_output_folder(path, force)
    parent = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(os.path.abspath(path))[:100]
    with sigterm_exits():
        try:
            os.makedirs(parent, exist_ok=True)
            tmp = tempfile.mkdtemp(prefix=_tmp_prefix(base) + f"{os.getpid()}-", suffix=".tmp", dir=parent)
        except OSError as e:
            raise _oserror(e, path, f"cannot write the {what} (in {parent})") from None
        _remove_orphans(parent, base)
        old = None
        try:
            for name, content in files.items():
                data = content.encode("utf-8") if isinstance(content, str) else bytes(content)
                with open(os.path.join(tmp, name), "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
            os.chmod(tmp, 0o777 & ~_umask())
            if os.path.isdir(path) and os.listdir(path):  # --force: move the old folder aside first
                old = tempfile.mkdtemp(prefix=_tmp_prefix(base) + f"{os.getpid()}-old-", suffix=".tmp", dir=parent)
                os.rename(path, os.path.join(old, base))
            os.replace(tmp, path)  # onto a missing or empty folder: atomic
        except BaseException as e:
            if old is not None and not os.path.exists(path):
                with contextlib.suppress(OSError):
                    os.rename(os.path.join(old, base), path)
            shutil.rmtree(tmp, ignore_errors=True)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
            if isinstance(e, OSError):
                raise _oserror(e, path, f"cannot write the {what}") from None
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        _fsync_dir(parent)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, but another user's
        return True
    return True


@contextlib.contextmanager
def _spooled_stream(path: str, st):
    """Content for a stream target (FIFO, terminal, /dev/stdout) is produced in an anonymous
    temporary file (writers may seek), then copied to the target in one go."""
    with tempfile.TemporaryFile() as spool:
        yield spool
        spool.flush()
        spool.seek(0)
        flags = os.O_WRONLY | _O_CLOEXEC | _O_NOCTTY
        if stat.S_ISREG(st.st_mode):  # another process's redirected output: add to it, do not truncate
            flags |= os.O_APPEND
        if not _is_std_link(path):
            flags |= _O_NOFOLLOW
        own = _own_fd(path)
        try:
            fd = _open_own_fd(own) if own is not None else os.open(path, flags)
        except OSError as e:
            raise _oserror(e, path) from None
        try:
            with open(fd, "wb") as out:
                shutil.copyfileobj(spool, out, 1 << 20)
        except OSError as e:
            raise _oserror(e, path) from None


# ---------------------------------------------------------------------- streaming outputs


class StreamOutput:
    """A file written in place as data comes (see :func:`open_stream`). ``write`` takes bytes, or
    str in text mode (UTF-8, no newline translation), and hands them to the system at once;
    ``fsync`` follows within :data:`SYNC_INTERVAL` seconds (regular files only)."""

    def __init__(self, fd: int, path: str, text: bool, regular: bool):
        self.path, self.text, self.regular = path, text, regular
        self._f = open(fd, "wb")
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._last_sync = time.monotonic()
        self.closed = False

    def write(self, data) -> int:
        b = data.encode("utf-8") if isinstance(data, str) else data
        try:
            n = self._f.write(b)
            self._f.flush()
        except OSError as e:
            raise _oserror(e, self.path) from None
        if self.regular:
            self._schedule_sync()
        return len(data) if isinstance(data, str) else n

    def _schedule_sync(self) -> None:
        with self._lock:
            if self._timer is not None:
                return
            wait = self._last_sync + SYNC_INTERVAL - time.monotonic()
            if wait <= 0:
                self._sync_locked()
                return
            self._timer = threading.Timer(wait, self._timed_sync)
            self._timer.daemon = True
            self._timer.start()

    def _timed_sync(self) -> None:
        with self._lock:
            self._timer = None
            if not self.closed:
                self._sync_locked()

    def _sync_locked(self) -> None:
        with contextlib.suppress(OSError):
            os.fsync(self._f.fileno())
        self._last_sync = time.monotonic()

    def flush(self) -> None:
        self._f.flush()

    def seekable(self) -> bool:
        return self._f.seekable()

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._f.seek(offset, whence)

    def tell(self) -> int:
        return self._f.tell()

    def fileno(self) -> int:
        return self._f.fileno()

    def close(self) -> None:
        with self._lock:
            if self.closed:
                return
            self.closed = True
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            try:
                self._f.flush()
                if self.regular:
                    with contextlib.suppress(OSError):
                        os.fsync(self._f.fileno())
            finally:
                self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open_stream(path, *, append: bool = False, text: bool = False, what: str = "output") -> StreamOutput:
    """Open a streaming output in place: created if missing, else truncated (``append``: added
    to), with ``O_NOFOLLOW`` (a symbolic link is refused, except the system's ``/dev/stdout``
    family). A FIFO or a character device is written as a stream; anything else that is not a
    regular file is refused, and so is a file being read (see :func:`reading`). Problems are
    :class:`~edgebrain.errors.OutputError` s naming ``path``."""
    path = os.fspath(path)
    if not path:
        raise OutputError(f"no path given for the {what}")
    flags = os.O_WRONLY | os.O_CREAT | _O_CLOEXEC | _O_NOCTTY | (os.O_APPEND if append else 0)
    if not _is_std_link(path):
        flags |= _O_NOFOLLOW
    try:
        lst = os.lstat(path)
    except FileNotFoundError:
        lst = None
    except OSError as e:
        raise _oserror(e, path, f"cannot open the {what}") from None
    if lst is not None and stat.S_ISLNK(lst.st_mode) and not _is_std_link(path):
        raise OutputError(f"is a symbolic link; the {what} is not written through a link: give the real path, "
                          "or remove the link", file=path)
    if lst is not None and not (stat.S_ISLNK(lst.st_mode) or stat.S_ISREG(lst.st_mode)
                                or stat.S_ISFIFO(lst.st_mode) or stat.S_ISCHR(lst.st_mode)):
        raise OutputError(f"is {kind_of(lst.st_mode)}; expected a regular file, a FIFO or a character device", file=path)
    own = _own_fd(path)
    try:
        fd = _open_own_fd(own) if own is not None else os.open(path, flags, 0o666)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise OutputError(f"is a symbolic link; the {what} is not written through a link", file=path) from None
        raise _oserror(e, path, f"cannot open the {what}") from None
    try:
        st = os.fstat(fd)
        regular = stat.S_ISREG(st.st_mode)
        if not (regular or stat.S_ISFIFO(st.st_mode) or stat.S_ISCHR(st.st_mode)):
            raise OutputError(f"is {kind_of(st.st_mode)}; expected a regular file, a FIFO or a character device",
                              file=path)
        _check_not_input(st, path)  # before anything is truncated
        if regular and not append and not _is_std_link(path):
            os.ftruncate(fd, 0)
    except BaseException as e:
        os.close(fd)
        if isinstance(e, OSError):
            raise _oserror(e, path, f"cannot open the {what}") from None
        raise
    return StreamOutput(fd, path, text, regular)


__all__ = ["SYNC_INTERVAL", "StreamOutput", "atomic_write", "check_output", "local_path", "open_stream", "reading"]
