"""A progress bar for long work (rich), shown only on an interactive terminal."""

from __future__ import annotations

import sys


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
