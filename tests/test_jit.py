"""edgebrain.jit: a Numba cache that is damaged, unwritable or missing never stops a program.

Each case runs a fresh Python process on a small module of our own that defines a function with
``edgebrain.jit.njit(cache=True)``, with the cache in a folder of the test, and checks the program's
answer (hand-computed), its stderr (one ``warning:`` line, or nothing), and the cache files left.
The whole tool is checked the same way in tests/hostile/test_cache.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

MODULE = '''
from edgebrain.jit import njit

@njit(cache=True)
def tri(n):
    s = 0
    for i in range(n + 1):
        s += i
    return s
'''


def _run(mod_dir: Path, env: dict) -> subprocess.CompletedProcess:
    e = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_") and k not in ("XDG_CACHE_HOME",)}
    e["PYTHONPATH"] = os.pathsep.join([str(mod_dir), str(REPO)])
    e.update(env)
    return subprocess.run([sys.executable, "-c", "import tri_mod; print(tri_mod.tri(100))"], env=e,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def case(tmp_path):
    mod = tmp_path / "mod"
    mod.mkdir()
    (mod / "tri_mod.py").write_text(MODULE)
    cache = tmp_path / "cache"
    env = {"NUMBA_CACHE_DIR": str(cache), "HOME": str(tmp_path / "home")}

    def run():
        r = _run(mod, env)
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == "5050"  # 0 + 1 + ... + 100
        return [ln for ln in r.stderr.splitlines() if ln.strip()]

    def files(suffix):
        return sorted(cache.rglob(f"tri_mod.tri-*{suffix}"))

    return run, files, env, tmp_path


def test_first_run_writes_sealed_files_and_second_run_reads_them(case):
    run, files, _, _ = case
    assert run() == []
    assert len(files(".nbi")) == 1
    (nbc,) = files(".nbc")
    assert nbc.read_bytes().startswith(b"EBNC1")
    stamp = nbc.stat().st_mtime_ns
    assert run() == []
    assert nbc.stat().st_mtime_ns == stamp  # loaded, not compiled and written again


@pytest.mark.parametrize("damage", ["empty", "garbage"])
def test_damaged_index_is_rebuilt(case, damage):
    run, files, _, _ = case
    run()
    (nbi,) = files(".nbi")
    data = nbi.read_bytes()
    nbi.write_bytes({"empty": b"", "garbage": os.urandom(64), "truncated": data[: len(data) // 2]}[damage])
    (line,) = run()  # before the fix: EOFError / UnpicklingError, and every later run too
    assert line.startswith("warning: Numba cache index") and "damaged" in line and str(nbi) in line
    assert run() == []  # rebuilt: the next run is clean
    assert nbi.read_bytes() != b""


@pytest.mark.parametrize("damage", ["flip", "empty"])
def test_damaged_entry_is_rebuilt(case, damage):
    run, files, _, _ = case
    run()
    (nbc,) = files(".nbc")
    data = bytearray(nbc.read_bytes())
    if damage == "flip":  # one byte in the compiled code: it unpickles fine, so only a checksum sees it
        data[len(data) * 2 // 3] ^= 0x10
    elif damage == "truncated":
        data = data[: len(data) // 2]
    else:
        data = b""
    nbc.write_bytes(bytes(data))
    (line,) = run()
    assert line.startswith("warning: Numba cache entry") and str(nbc) in line
    assert run() == []
    assert nbc.read_bytes().startswith(b"EBNC1")


def test_an_installed_module_caches_in_the_users_cache_not_in_site_packages(tmp_path):
    """pip knows nothing of cache files: written inside site-packages they outlive an uninstall,
    and the ``edgebrain`` folder they leave hides a later editable install ("No module named
    edgebrain.kernels.dense", seen after the README's two commands in a row)."""
    import sysconfig

    base = tmp_path / "userbase"
    site_dir = Path(sysconfig.get_path("purelib", f"{os.name}_user", vars={"userbase": str(base)}))
    site_dir.mkdir(parents=True)
    (site_dir / "tri_mod.py").write_text(MODULE)
    home = tmp_path / "home"
    e = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_") and k not in ("XDG_CACHE_HOME",)}
    e.update(PYTHONUSERBASE=str(base), HOME=str(home), PYTHONPATH=str(REPO))
    e.pop("PYTHONNOUSERSITE", None)
    code = "import site, tri_mod; assert tri_mod.__file__.startswith(site.getusersitepackages()); print(tri_mod.tri(100))"
    r = subprocess.run([sys.executable, "-c", code], env=e, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "5050", r.stderr
    assert r.stderr.strip() == ""
    assert not list(site_dir.rglob("*.nb[ic]")), "cache files written inside site-packages"
    assert len(list(home.rglob("tri_mod.tri-*.nbc"))) == 1  # the user's cache (~/.cache/numba)


def _unwritable_everywhere(tmp_path, env):
    """No __pycache__ beside the module (a file in its place), no NUMBA_CACHE_DIR, a HOME that
    cannot hold ~/.cache, and a temporary folder whose edgebrain-numba-UID entry is not ours to use."""
    (tmp_path / "mod" / "__pycache__").write_text("a file where the cache folder would be")
    (tmp_path / "homefile").write_text("")
    env.pop("NUMBA_CACHE_DIR")
    env["HOME"] = str(tmp_path / "homefile" / "home")
    t = tmp_path / "tmp"
    t.mkdir()
    env["TMPDIR"] = str(t)
    return t


def test_no_writable_cache_directory_compiles_in_memory(case):
    run, _, env, tmp_path = case
    t = _unwritable_everywhere(tmp_path, env)
    planted = t / f"edgebrain-numba-{os.getuid()}"
    planted.mkdir(mode=0o777)
    os.chmod(planted, 0o777)  # writable by anyone: loading code from it would run theirs
    (line,) = run()  # before the fix: "cannot cache function 'tri': no locator available", at import
    assert line.startswith("warning: Numba cache is unusable") and "no locator available" in line
    assert "NUMBA_CACHE_DIR" in line
    assert list(planted.iterdir()) == []


def test_private_temporary_folder_is_the_last_resort(case):
    run, _, env, tmp_path = case
    t = _unwritable_everywhere(tmp_path, env)
    (line,) = run()
    root = t / f"edgebrain-numba-{os.getuid()}"
    assert line.startswith("warning: Numba cache") and str(root) in line and "NUMBA_CACHE_DIR" in line
    assert (root.stat().st_mode & 0o777) == 0o700
    assert len(list(root.rglob("tri_mod.tri-*.nbc"))) == 1
    (line2,) = run()  # still said on every run: the folder may not survive a reboot
    assert line2 == line


def test_unwritable_cache_on_save_keeps_running(case):
    run, files, env, tmp_path = case
    run()
    (nbc,) = files(".nbc")
    nbc.write_bytes(b"")  # a miss, so the next run compiles and saves again...
    # ...into a folder where the index can no longer be replaced: a directory in its place
    (nbi,) = files(".nbi")
    nbi.unlink()
    nbi.mkdir()
    lines = run()
    assert len(lines) == 1 and lines[0].startswith("warning: Numba cache"), lines


def test_njit_without_cache_and_bare_form():
    from edgebrain.jit import njit

    @njit
    def add(a, b):
        return a + b

    @njit(cache=False, inline="never")
    def mul(a, b):
        return a * b

    assert add(2, 3) == 5 and mul(4, 5) == 20
    assert type(add._cache).__name__ == "NullCache"


def test_a_numba_without_the_expected_internals_falls_back_to_its_own_cache(case, tmp_path):
    """edgebrain.jit builds on caching classes private to Numba; a Numba release that renames them
    must leave edgebrain working with Numba's plain cache (files without our seal), not broken."""
    run, files, env, _ = case
    (tmp_path / "mod" / "sitecustomize.py").write_text(
        "import numba.core.caching as c\ndel c._SourceFileBackedLocatorMixin\n")
    assert run() == []
    (nbc,) = files(".nbc")
    assert not nbc.read_bytes().startswith(b"EBNC1")  # Numba's own format
    stamp = nbc.stat().st_mtime_ns
    assert run() == []
    assert nbc.stat().st_mtime_ns == stamp  # and it is loaded from that cache


def test_importing_jit_and_watching_compiles_leaves_numba_unimported():
    """The command line watches for compiles on every command; commands that compile nothing must not
    pay for importing Numba. The first njit imports it and starts listening."""
    code = ("import sys; from edgebrain import jit; w = type('W', (), {'started': lambda s: print('started'), "
            "'ended': lambda s: print('ended')})(); jit.watch_compiles(w); print('numba' in sys.modules); "
            "f = jit.njit(lambda x: x + 1); print('numba' in sys.modules); print(f(1))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["False", "True", "started", "ended", "2"]


def test_a_change_to_any_jitted_module_makes_every_cached_index_stale(tmp_path):
    """The executor inlines kernels from other files, while Numba keys its cache on one file:
    the index version carries a digest of every module that compiles, so a change to any of
    them is a miss everywhere (a stale executor ran old neuron code once, while developing)."""
    from edgebrain import _numba_cache as C

    pkg = tmp_path / "pkg"
    (pkg / "kernels").mkdir(parents=True)
    (pkg / "kernels" / "a.py").write_text("from edgebrain.jit import njit\n@njit(cache=True)\ndef f(x):\n    return x\n")
    (pkg / "plain.py").write_text("X = 1\n")
    first = C.sources_digest(str(pkg))
    (pkg / "plain.py").write_text("X = 2\n")          # no Numba in it: no effect
    assert C.sources_digest(str(pkg)) == first
    (pkg / "kernels" / "a.py").write_text((pkg / "kernels" / "a.py").read_text().replace("return x", "return x + 1"))
    assert C.sources_digest(str(pkg)) != first
    sealed = C._SealedFiles(cache_path=str(tmp_path), filename_base="f", source_stamp=(0, 0))
    assert sealed._version.endswith(C._jitted_sources_digest()) and C._jitted_sources_digest() == C.sources_digest(
        str(Path(C.__file__).parent))


LIGHT_CHILD = """
import json, sys
import numpy as np
from edgebrain.model import Model
m = Model.load("zoo:har-lif")
s = m.session("int")
x = np.random.default_rng(3).standard_normal((30,) + tuple(m.input_shape)).astype(np.float32) * 3
y = [s.step(xi).tolist() for xi in x]
from numba.core.runtime import rtsys
with open("/proc/self/status") as f:
    hwm = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
print(json.dumps({"y": y, "registries": "numba.np.linalg" in sys.modules, "nrt": bool(rtsys._init), "hwm_kib": hwm}))
"""


def test_loading_compiled_code_does_not_load_the_compiler(tmp_path):
    """With the cache filled, a process that steps a model loads compiled code only: Numba's lowering
    registries (imported by its own load path, about 65 MiB) and its runtime (NRT, compiled on start,
    about 30 MiB; this code does not call it) stay out of the process, and the outputs are the same."""
    import json

    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path), "PYTHONPATH": str(REPO)}
    runs = []
    for _ in range(2):
        r = subprocess.run([sys.executable, "-c", LIGHT_CHILD], capture_output=True, text=True, env=env, timeout=600)
        assert r.returncode == 0, r.stderr
        runs.append(json.loads(r.stdout.strip().splitlines()[-1]))
    cold, warm = runs
    assert cold["registries"] and cold["nrt"]  # compiling needs both
    assert not warm["registries"] and not warm["nrt"], warm
    assert warm["y"] == cold["y"]
    assert warm["hwm_kib"] < cold["hwm_kib"] - 40 * 1024
