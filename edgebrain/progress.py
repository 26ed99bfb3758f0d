"""Progress on stderr: a bar for long work (rich, shown only on an interactive terminal), and the
notice that Numba is compiling kernels (:func:`compile_notice`, shown everywhere: a first run can be
long and would otherwise be silent)."""

from __future__ import annotations

import contextlib
import sys
import threading
import time


class _Closing:
    """``with bar(...) as b:`` closes the bar however the block ends."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _NoBar(_Closing):
    def update(self, n):
        pass

    def close(self):
        pass


class _Bar(_Closing):
    def __init__(self, total, label, unit):
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self._p = Progress(TextColumn(label), BarColumn(), TextColumn(f"{{task.completed}}/{{task.total}} {unit}"),
                           TimeRemainingColumn(), transient=True)
        self._p.start()
        self._task = self._p.add_task(label, total=total)

    def update(self, n):
        self._p.advance(self._task, n)

    def close(self):
        self._p.stop()


def bar(total: int, label: str = "running", unit: str = "steps", enabled: bool = True):
    """A bar with ``update(n)`` and ``close()`` (or use it in a ``with``); a silent one when disabled or not on a terminal."""
    if not enabled or not sys.stderr.isatty():
        return _NoBar()
    return _Bar(total, label, unit)


#: the first line of a burst of compiles; its end is ``note: compiled N kernels in T s``
COMPILING = "note: compiling kernels for this CPU (first run only) ..."
#: compiles less than this apart (seconds) are one burst, so one notice: decoders compiled one after another
QUIET_S = 0.5


def _timer(seconds, fn):
    t = threading.Timer(seconds, fn)
    t.daemon = True
    t.start()
    return t


class CompileNotice:
    """Says on stderr that kernels are being compiled, then how many and how long it took.

    ``started()`` / ``ended()`` bracket each outermost compile (:func:`edgebrain.jit.watch_compiles`);
    compiles less than ``quiet_s`` apart are one burst with one notice. Not on a terminal (logs): one
    start line and one end line per burst. On a terminal: one line that shows while compiling and is
    replaced by the end line. The end line comes ``quiet_s`` after the burst (``timer``) or at
    :meth:`close`. ``stream`` is looked up on each write (``sys.stderr`` by default, so redirections
    and rich's live displays see it); ``clock`` and ``timer`` are injectable for tests."""

    def __init__(self, stream=None, clock=time.monotonic, timer=_timer, quiet_s: float = QUIET_S,
                 tty: bool | None = None):
        self._stream = stream
        self._clock, self._timer, self.quiet_s, self._tty = clock, timer, quiet_s, tty
        self._lock = threading.RLock()
        self._pending = None      # the timer that ends the burst
        self._n = 0               # outermost compiles in this burst
        self._spent = 0.0         # seconds spent in them
        self._t0 = None           # start of the compile in progress
        self._names: list[str] = []  # what this burst compiled (outermost functions)

    def _file(self):
        return self._stream if self._stream is not None else sys.stderr

    def _on_terminal(self) -> bool:
        if self._tty is not None:
            return self._tty
        f = self._file()
        if type(f).__name__ == "FileProxy":  # a rich progress bar holds the terminal: whole lines only
            return False
        try:
            return bool(f.isatty())
        except (AttributeError, OSError, ValueError):
            return False

    def _write(self, text: str) -> None:
        f = self._file()
        try:
            f.write(text)
            f.flush()
        except (OSError, ValueError):  # stderr closed or a broken pipe: compiling goes on, unannounced
            pass

    def started(self) -> None:
        with self._lock:
            if self._pending is not None:
                self._pending.cancel()
                self._pending = None
            if self._on_terminal():
                so_far = f" {self._n} done, {self._spent:.1f} s" if self._n else ""
                self._write(f"\r{COMPILING}{so_far}\x1b[K")
            elif self._n == 0:
                self._write(COMPILING + "\n")
            self._t0 = self._clock()

    def compiling(self, name: str) -> None:
        with self._lock:
            if name not in self._names:
                self._names.append(name)
            if self._on_terminal() and self._t0 is not None:
                so_far = f" {self._n} done, {self._spent:.1f} s;" if self._n else ""
                self._write(f"\r{COMPILING}{so_far} {name}\x1b[K")

    def ended(self) -> None:
        with self._lock:
            if self._t0 is None:
                return
            self._spent += self._clock() - self._t0
            self._n += 1
            self._t0 = None
            if self._on_terminal():
                self._write("\r\x1b[K")  # the command may print before the burst is over
            self._pending = self._timer(self.quiet_s, self._quiet)

    def _quiet(self) -> None:
        with self._lock:
            if self._t0 is None:  # (else a compile started as the timer fired: the burst goes on)
                self.flush()

    def flush(self) -> None:
        """End the burst: the end line, if anything was compiled since the last one."""
        with self._lock:
            if self._pending is not None:
                self._pending.cancel()
                self._pending = None
            if self._t0 is not None:  # interrupted while compiling
                if self._on_terminal():
                    self._write("\r\x1b[K")
                self._t0 = None
            if self._n:
                what = f": {', '.join(self._names)}" if self._names else ""
                self._write(f"note: compiled {self._n} kernel{'s' if self._n > 1 else ''} in {self._spent:.1f} s{what}\n")
            self._n, self._spent, self._names = 0, 0.0, []

    close = flush


@contextlib.contextmanager
def compile_notice(stream=None):
    """While inside, every burst of Numba compiles is announced on stderr (:class:`CompileNotice`)."""
    from . import jit

    notice = CompileNotice(stream)
    jit.watch_compiles(notice)
    try:
        yield notice
    finally:
        jit.unwatch_compiles(notice)
        notice.close()
