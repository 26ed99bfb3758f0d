"""Issue 11, item 9: a Numba cache that is damaged, or that cannot be written at all, never stops a
command. Each case runs the real command line (``data info`` on a real EVT 2.0 recording, which
compiles the event decoders) in a fresh process and checks: exit 0, the same output as with a
healthy cache, exactly one ``warning: Numba cache`` line on stderr, and (for damage) that the next
run is clean because the damaged entries were rebuilt.

The read-only install is a copy of the package in a folder that really cannot be written: a
read-only bind mount in a private mount namespace when run as root (root ignores permission
bits), or permission bits otherwise.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.hostile._harness import assert_ok, run_command, valid_input


def _info_args():
    return ["data", "info", str(valid_input("evt2")), "--json"]


def _cli(args, env, *, prefix=(), cwd=None):
    return run_command([*prefix, sys.executable, "-m", "edgebrain.cli", *args], env=env, cwd=cwd, timeout=180,
                       label=list(args))


def _lines(r):
    # (a rebuilt cache compiles again, and says so in "note:" lines: not warnings)
    return [ln for ln in r.stderr.splitlines() if ln.strip() and not ln.startswith("note: ")]


@pytest.fixture(scope="module")
def healthy(tmp_path_factory):
    """A cache filled by one healthy run, and that run's output."""
    cache = tmp_path_factory.mktemp("numba-cache")
    r = _cli(_info_args(), {"NUMBA_CACHE_DIR": str(cache)})
    assert_ok(r)
    assert list(cache.rglob("*.nbi")) and list(cache.rglob("*.nbc"))
    return cache, r.stdout


def _damaged_copy(healthy, tmp_path, damage):
    src, _ = healthy
    cache = tmp_path / "cache"
    shutil.copytree(src, cache)
    if damage == "empty index":  # a power cut between the rename and the write-back: every index empty
        for p in cache.rglob("*.nbi"):
            p.write_bytes(b"")
    else:  # one byte changed in every compiled entry
        for p in cache.rglob("*.nbc"):
            b = bytearray(p.read_bytes())
            b[len(b) // 2] ^= 0x01
            p.write_bytes(bytes(b))
    return cache


@pytest.mark.parametrize("damage", ["empty index", "corrupted entry"])
def test_damaged_cache_is_rebuilt_not_fatal(healthy, tmp_path, damage):
    cache = _damaged_copy(healthy, tmp_path, damage)
    env = {"NUMBA_CACHE_DIR": str(cache)}
    r = _cli(_info_args(), env)  # before: "internal error (Abort: )" / "(UnpicklingError: ...)", exit 1
    assert_ok(r)
    assert r.stdout == healthy[1]
    lines = _lines(r)
    assert len(lines) == 1 and lines[0].startswith("warning: Numba cache") and "damaged" in lines[0], r.stderr
    again = _cli(_info_args(), env)
    assert_ok(again)
    assert _lines(again) == [] and again.stdout == healthy[1]  # rebuilt: no user action needed


# --------------------------------------------------------------------------- a read-only install


def _install_copy(tmp_path) -> Path:
    """A copy of the package with no cache in it, as pip would install it."""
    site = tmp_path / "site"
    shutil.copytree(REPO / "edgebrain", site / "edgebrain", ignore=shutil.ignore_patterns("__pycache__"))
    return site


@functools.lru_cache(maxsize=None)
def _can_mount_read_only() -> bool:
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    d = tempfile.mkdtemp(prefix="edgebrain-ro-probe-")
    r = subprocess.run(["unshare", "-m", "sh", "-c", _RO_SCRIPT + 'touch "$RO_DIRS/x"'], capture_output=True,
                       timeout=30, env={**os.environ, "RO_DIRS": d})
    ok = r.returncode != 0 and b"Read-only" in r.stderr and not os.path.exists(os.path.join(d, "x"))
    shutil.rmtree(d, ignore_errors=True)
    return ok


#: make each folder named in $RO_DIRS read-only in a private mount namespace, then run the command
_RO_SCRIPT = ('mount --make-rprivate / && for d in $RO_DIRS; do mount --bind "$d" "$d" && '
              'mount -o remount,ro,bind "$d" "$d" || exit 97; done; ')


def _read_only_run(tmp_path, ro_dirs, env, *, cwd):
    """Run ``data info`` with ``ro_dirs`` unwritable (mount namespace as root, mode bits otherwise)."""
    if _can_mount_read_only():
        env = {**env, "RO_DIRS": " ".join(str(d) for d in ro_dirs if Path(d).is_dir())}
        return _cli(_info_args(), env, prefix=["unshare", "-m", "sh", "-c", _RO_SCRIPT + 'exec "$@"', "sh"], cwd=cwd)
    if os.geteuid() == 0:
        pytest.skip("running as root without mount namespaces: cannot make a folder read-only for root")
    for d in ro_dirs:
        for p in [d, *Path(d).rglob("*")]:
            if p.is_dir() and not p.is_symlink():
                p.chmod(0o555)
    try:
        return _cli(_info_args(), env, cwd=cwd)
    finally:
        for d in ro_dirs:
            for p in [d, *Path(d).rglob("*")]:
                if p.is_dir() and not p.is_symlink():
                    p.chmod(0o755)


def _base_env(site, home, tmp):
    return {"PYTHONPATH": str(site), "HOME": str(home), "TMPDIR": str(tmp), "NUMBA_CACHE_DIR": None,
            "XDG_CACHE_HOME": None}


def test_read_only_install_caches_in_a_private_temporary_folder(healthy, tmp_path):
    site = _install_copy(tmp_path)
    home, tmp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    tmp.mkdir()
    r = _read_only_run(tmp_path, [site, home], _base_env(site, home, tmp), cwd=site)
    assert_ok(r)  # before: "cannot cache function ...: no locator available", exit 1
    assert r.stdout == healthy[1]
    root = tmp / f"edgebrain-numba-{os.getuid()}"
    lines = _lines(r)
    assert len(lines) == 1 and lines[0].startswith("warning: Numba cache") and str(root) in lines[0], r.stderr
    assert "NUMBA_CACHE_DIR" in lines[0]
    assert list(root.rglob("*.nbc")), "nothing cached in the private temporary folder"
    assert not list(site.rglob("__pycache__/*.nbi"))


def test_nothing_writable_compiles_in_memory(healthy, tmp_path):
    if not _can_mount_read_only():
        pytest.skip("needs root and mount namespaces to make every temporary folder read-only")
    site = _install_copy(tmp_path)
    home, tmp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    tmp.mkdir()
    ro = [site, home, tmp, Path("/tmp"), Path("/var/tmp"), Path("/usr/tmp")]
    r = _read_only_run(tmp_path, ro, _base_env(site, home, tmp), cwd=site)
    assert_ok(r)
    assert r.stdout == healthy[1]
    lines = _lines(r)
    assert len(lines) == 1 and lines[0].startswith("warning: Numba cache is unusable"), r.stderr
    assert "compiling in memory" in lines[0] and "NUMBA_CACHE_DIR" in lines[0]
