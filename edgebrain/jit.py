"""``njit`` for every kernel of edgebrain: Numba's, with an on-disk cache that cannot brick the tool.

``from edgebrain.jit import njit`` is used wherever edgebrain defines a compiled function. It is
``numba.njit`` (nothing compiles on import; the first call compiles, or loads the compiled code
from the cache), except that ``cache=True`` gets a cache that treats every failure as a miss:

* **where.** ``$NUMBA_CACHE_DIR`` if set and writable, else ``__pycache__`` beside the module
  in a source checkout (never inside site-packages, where an uninstall would leave the files
  behind), else the user's cache (``~/.cache/numba``), else a private temporary folder
  (``<tmp>/edgebrain-numba-<uid>``, mode 0700, refused unless this user owns it). With none of
  them writable (a read-only install run by a user without a home), it compiles in memory.
* **damage.** Every index (``.nbi``) and data (``.nbc``) file edgebrain writes carries a SHA-256
  of its contents. A file that is empty (a power cut between rename and write-back), truncated,
  corrupted, or written by another tool is a cache miss: the function is compiled again and the
  file rewritten. A cache that cannot be written (disk full, permissions) keeps the code in
  memory.

Each of these says so once per process, as one ``warning: Numba cache ...`` line on stderr, and
the command goes on. The user never has to find and delete a cache folder. docs/security.md
says what is trusted: the cache folders are the user's own (compiled code is loaded from them).

:func:`watch_compiles` tells a watcher when Numba starts and ends compiling, and what (the
command line says so on stderr, :mod:`edgebrain.progress`). Numba itself is imported on the first ``njit``,
so that importing this module (and commands that compile nothing) stay light.
"""

from __future__ import annotations

import sys

_cache_for = None  #: edgebrain._numba_cache.cache_for, or False where Numba's internals differ
_watchers: list = []  #: objects with started() / ended(), told of each outermost compile
_listening = False


def njit(func=None, /, **options):
    """``numba.njit``, with ``cache=True`` meaning the safe cache of this module.

    Used bare (``@njit``) or with options (``@njit(cache=True, inline="always")``); explicit
    signatures are not accepted, so that nothing ever compiles on import.
    """
    if func is not None:
        return njit(**options)(func)
    import numba
    from numba.core.dispatcher import Dispatcher

    global _cache_for
    if _cache_for is None:
        try:  # Numba's caching internals as this version has them; otherwise its plain cache
            from ._numba_cache import cache_for as _cache_for
        except Exception:  # noqa: BLE001 - any mismatch with Numba's internals
            _cache_for = False
    if _watchers:
        _listen()
    cache = options.pop("cache", False)
    numba_jit = numba.njit(**options)

    def decorate(f):
        disp = numba_jit(f)
        if cache and isinstance(disp, Dispatcher):  # (NUMBA_DISABLE_JIT returns the function itself)
            if not _cache_for:
                disp.enable_caching()  # Numba's own cache, as numba.njit(cache=True) would have it
            else:
                disp._cache = _cache_for(f)
        return disp

    return decorate


def watch_compiles(watcher) -> None:
    """Call ``watcher.started()`` and ``watcher.ended()`` around each compile by Numba, in the thread
    that compiles, and ``watcher.compiling(name)`` after ``started`` if the watcher has that method. Only the outermost compile counts (callees compiled for it are part of it);
    loading compiled code from the cache is not compiling, so a warm run calls neither."""
    if watcher not in _watchers:
        _watchers.append(watcher)
    if "numba" in sys.modules:  # else on the first njit, which imports Numba
        _listen()


def unwatch_compiles(watcher) -> None:
    if watcher in _watchers:
        _watchers.remove(watcher)


def _compiled_name(ev) -> str | None:
    """The name of the function an event compiles, as a user could recognise it: ``step1_int`` for
    the executor's ``_step1_int__core``, with its variant, ``step1_int [core]``."""
    try:
        name = ev.data["dispatcher"].py_func.__qualname__
    except (AttributeError, KeyError, TypeError):
        return None
    name, _, variant = name.lstrip("_").partition("__")
    return f"{name} [{variant}]" if variant else name


def _listen() -> None:
    """Numba's event API, hooked once per process; it fires only while compiling."""
    global _listening
    if _listening:
        return
    from numba.core import event

    class Outermost(event.Listener):
        depth = 0  # compiles hold Numba's global compiler lock: one thread at a time

        def on_start(self, ev):
            self.depth += 1
            if self.depth == 1:
                name = _compiled_name(ev)
                for w in list(_watchers):
                    w.started()
                    if name and hasattr(w, "compiling"):
                        w.compiling(name)

        def on_end(self, ev):
            self.depth -= 1
            if self.depth == 0:
                for w in list(_watchers):
                    w.ended()

    event.register("numba:compile", Outermost())
    _listening = True
