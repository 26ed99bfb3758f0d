"""Opening a file the user names as an input: a regular file, or a clear error before any read.

A FIFO given as a model path would block ``open`` until a writer appears, and a link to
``/dev/zero`` would be read until memory runs out. :func:`open_regular` opens without blocking
(``O_NONBLOCK``: opening a FIFO returns at once), asks the open file what it is (``fstat``, so
the answer is about the file actually opened, links followed) and refuses anything but a regular
file. The size it returns is the bound every later read is checked against.
"""

from __future__ import annotations

import os
import stat

from .errors import FormatError

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISLNK, "a symbolic link"))


def kind_of(mode: int) -> str:
    """What a file of ``st_mode`` ``mode`` is, in words ("a FIFO (named pipe)", "a regular file")."""
    if stat.S_ISREG(mode):
        return "a regular file"
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def open_regular(path, expected: str = "a file"):
    """Open ``path`` for binary reading: ``(file object, size in bytes)``. Raises
    :class:`FormatError` naming the file when it is missing, unreadable, or not a regular file
    (``expected`` says what it should have been, e.g. "an edgebrain model (.ebm)")."""
    path = os.fspath(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise FormatError("file not found", file=path) from None
    except OSError as e:
        raise FormatError(f"cannot read ({e.strerror or e})", file=path) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise FormatError(f"is {kind_of(st.st_mode)}, not a regular file; expected {expected}", file=path)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb"), int(st.st_size)
    except BaseException:
        os.close(fd)
        raise


def check_regular(path, expected: str = "a file") -> int:
    """The size of ``path`` after the checks of :func:`open_regular` (the file is closed again)."""
    f, size = open_regular(path, expected)
    f.close()
    return size


def read_at(f, offset: int, n: int, path=None) -> bytes:
    """Exactly ``n`` bytes at ``offset`` (a :class:`FormatError` if the file ends first, e.g. it
    shrank while being read)."""
    f.seek(offset)
    b = f.read(n)
    if len(b) != n:
        raise FormatError(f"file ends at byte {offset + len(b)} while reading bytes {offset}..{offset + n} "
                          "(truncated, or changed while being read)", file=path)
    return b
