"""The safe on-disk cache behind :func:`edgebrain.jit.njit` (see there for what it does).

Built on Numba's own caching classes, some of them private to Numba: :mod:`edgebrain.jit`
imports this module inside a ``try``, so a Numba whose internals differ falls back to Numba's
plain cache instead of breaking every command.
"""

from __future__ import annotations

import functools
import hashlib
import os
import pickle
import stat
import sys
import tempfile
import threading

import numba
from numba.core import caching
from numba.core.serialize import dumps

_MAGIC = b"EBNC1"  #: leads every sealed cache payload: format 1, then SHA-256, then the pickle
_VERSION = f"{numba.__version__}+edgebrain-sealed-1"  #: an index another tool wrote is stale, not damaged
_said = threading.Event()


def _say_once(text: str) -> None:
    """One ``warning:`` line on stderr, the first time anything is wrong with the cache."""
    if _said.is_set():
        return
    _said.set()
    try:
        sys.stderr.write(f"warning: Numba cache {text}\n")
        sys.stderr.flush()
    except (OSError, ValueError):  # stderr closed: nothing to say it on
        pass


def _why(e: BaseException) -> str:
    text = " ".join(str(e).split())[:160]
    if isinstance(e, _Damaged):
        return text
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


class _Damaged(Exception):
    """A cache file whose contents do not match their checksum."""


def _seal(payload: bytes) -> bytes:
    return _MAGIC + hashlib.sha256(payload).digest() + payload


def _unseal(blob: bytes) -> bytes:
    head = len(_MAGIC) + 32
    if len(blob) < head or not blob.startswith(_MAGIC):
        raise _Damaged(f"{len(blob)} bytes, not a sealed cache file")
    payload = blob[head:]
    if hashlib.sha256(payload).digest() != blob[len(_MAGIC):head]:
        raise _Damaged("checksum mismatch")
    return payload


def private_temp_root() -> str | None:
    """``<tmp>/edgebrain-numba-<uid>``, created 0700; None if it cannot be made or is not safely ours
    (another user's folder, a link, or one others can write to: loading from it would run their code)."""
    try:
        path = os.path.join(tempfile.gettempdir(), f"edgebrain-numba-{os.getuid()}")
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        st = os.lstat(path)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o022:
            return None
        return path
    except (OSError, AttributeError):  # AttributeError: no getuid on this platform
        return None


class _PrivateTempLocator(caching._SourceFileBackedLocatorMixin, caching._CacheLocator):
    """The last resort before compiling in memory: a private folder in the temporary directory."""

    def __init__(self, py_func, py_file, root):
        self._py_file = py_file
        self._lineno = py_func.__code__.co_firstlineno
        self._cache_path = os.path.join(root, self.get_suitable_cache_subpath(py_file))

    def get_cache_path(self):
        return self._cache_path

    @classmethod
    def from_function(cls, py_func, py_file):
        root = private_temp_root()
        if root is None or not os.path.exists(py_file):
            return None
        self = cls(py_func, py_file, root)
        try:
            self.ensure_cache_path()
        except OSError:
            return None
        return self


@functools.lru_cache(maxsize=None)
def _installed_roots() -> tuple[str, ...]:
    """The folders pip installs packages into (site-packages, the user's site-packages)."""
    import site
    import sysconfig

    roots = set()
    for get in (lambda: site.getsitepackages(), lambda: [site.getusersitepackages()],
                lambda: [sysconfig.get_paths()[k] for k in ("purelib", "platlib")]):
        try:
            roots.update(os.path.realpath(r) for r in get() if r)
        except (AttributeError, KeyError, OSError):  # e.g. site.getsitepackages missing in a virtualenv
            pass
    return tuple(r.rstrip(os.sep) + os.sep for r in roots)


class _InTreeUnlessInstalled(caching.InTreeCacheLocator):
    """``__pycache__`` beside the module in a source checkout, but never inside site-packages:
    pip does not know of the cache files, so uninstalling would leave the folders behind, and
    an ``edgebrain`` folder left in site-packages hides a later editable install of the
    checkout ("No module named edgebrain.kernels.dense"). Installed, the user's cache is used."""

    @classmethod
    def from_function(cls, py_func, py_file):
        if os.path.realpath(py_file).startswith(_installed_roots()):
            return None
        return super().from_function(py_func, py_file)


class _Impl(caching.CompileResultCacheImpl):
    _locator_classes = [caching.UserProvidedCacheLocator, _InTreeUnlessInstalled,
                        caching.UserWideCacheLocator, _PrivateTempLocator]


@functools.lru_cache(maxsize=None)
def _jitted_sources_digest() -> str:
    """:func:`sources_digest` of edgebrain itself. Numba keys a cached function on its own file
    only, but the executor inlines the kernels of other files: after a change to
    ``kernels/neuron.py`` alone, the cached executor would still run the old neuron code (seen
    while developing). Folded into the index version, any such change recompiles everything."""
    return sources_digest(os.path.dirname(os.path.abspath(__file__)))


def sources_digest(root: str) -> str:
    """SHA-256 (16 hex digits) over the ``.py`` files under ``root`` that compile with Numba."""
    h = hashlib.sha256()
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                try:
                    with open(path, "rb") as f:
                        data = f.read()
                except OSError:
                    continue
                if b"njit" in data:
                    h.update(os.path.relpath(path, root).encode() + b"\0" + data)
    return h.hexdigest()[:16]


class _SealedFiles(caching.IndexDataCacheFile):
    """Numba's index and data files, each sealed with a SHA-256; a damaged one reads as empty."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self._version = f"{_VERSION}+{_jitted_sources_digest()}"

    def _dump(self, obj):
        return _seal(dumps(obj))

    def _load_index(self):
        try:
            with open(self._index_path, "rb") as f:
                version = pickle.load(f)
                if version != self._version:
                    return {}  # another Numba, or plain Numba: stale, and overwritten on the next save
                stamp, overloads = pickle.loads(_unseal(f.read()))
        except FileNotFoundError:
            return {}
        except Exception as e:  # noqa: BLE001 - any damage is a miss, and the next save rewrites the index
            _say_once(f"index {self._index_path} is damaged ({_why(e)}); rebuilding the damaged entries")
            return {}
        return overloads if stamp == self._source_stamp else {}

    def _load_data(self, name):
        path = self._data_path(name)
        with open(path, "rb") as f:
            blob = f.read()
        try:
            return pickle.loads(_unseal(blob))
        except Exception as e:  # noqa: BLE001
            _say_once(f"entry {path} is damaged ({_why(e)}); rebuilding the damaged entries")
            return None


def _calls_runtime(data) -> bool:
    """Whether a cache entry's object code refers to Numba's runtime (its symbols are NRT_*)."""
    if isinstance(data, (bytes, bytearray)):
        return b"NRT_" in data
    if isinstance(data, (tuple, list)):
        return any(_calls_runtime(x) for x in data)
    return False


class _SafeCache(caching.FunctionCache):
    """Numba's per-function cache, where nothing that goes wrong with the files is fatal."""

    _impl_class = _Impl

    def __init__(self, py_func):
        super().__init__(py_func)
        self._cache_file = _SealedFiles(cache_path=self._cache_path, filename_base=self._impl.filename_base,
                                        source_stamp=self._impl.locator.get_source_stamp())

    def load_overload(self, sig, target_context):
        if isinstance(self._impl.locator, _PrivateTempLocator):
            _say_once(f"cannot be written beside edgebrain or in the user's cache; using {self._cache_path}, "
                      "which may not survive a reboot (set NUMBA_CACHE_DIR to a writable directory)")
        try:
            return self._load_light(sig, target_context)
        except Exception as e:  # noqa: BLE001 - e.g. code that no longer links: compile it again
            _say_once(f"entry for {self._name} in {self._cache_path} is unusable ({_why(e)}); "
                      "rebuilding the damaged entries")
            return None

    def _load_light(self, sig, target_context):
        """Numba's load_overload without its ``target_context.refresh()``: that imports every
        lowering registry Numba has (about 65 MiB and 0.2 s), which compiling needs and loading
        compiled code does not (a miss compiles, and compiling refreshes the context itself).
        Numba's runtime (NRT: reference counts, allocation; compiling it costs about 30 MiB of
        LLVM) is started only for code that calls into it."""
        if not self._enabled:
            return None
        with self._guard_against_spurious_io_errors():
            data = self._cache_file.load(self._index_key(sig, target_context.codegen()))
            if data is None:
                return None
            if _calls_runtime(data):
                from numba.core.runtime import rtsys

                rtsys.initialize(target_context)
            return self._impl.rebuild(target_context, data)

    def save_overload(self, sig, data):
        try:
            super().save_overload(sig, data)
        except Exception as e:  # noqa: BLE001 - disk full, permissions changed: keep the code in memory
            _say_once(f"cannot be written in {self._cache_path} ({_why(e)}); compiled code is kept in memory only")


class _InMemory(caching.NullCache):
    """No usable cache folder at all: compile in memory, and say why on the first compile."""

    def __init__(self, reason: str):
        self._reason = reason

    def load_overload(self, sig, target_context):
        _say_once(f"is unusable ({self._reason}); compiling in memory, every run "
                  "(set NUMBA_CACHE_DIR to a writable directory)")
        return None


def cache_for(func):
    try:
        return _SafeCache(func)
    except Exception as e:  # noqa: BLE001 - "no locator available", or a Numba whose internals differ
        return _InMemory(_why(e))
