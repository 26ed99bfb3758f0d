"""Building the C runtime: the host library in the user cache (keyed by sources, compiler and
flags; built once, atomically), the sources found in the package (so wheels carry them), one clear
line without a compiler, and ``make -C firmware test`` (strict warnings, then sanitizers) passing
on golden vectors written by the Numba integer path."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from edgebrain import cbuild
from edgebrain.errors import EdgebrainError
from tests.conftest import REPO
from tests.firmware.conftest import need_compiler


def test_no_compiler_is_one_clear_line(monkeypatch, tmp_path):
    monkeypatch.setenv("CC", "")
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no cc, gcc or clang
    with pytest.raises(EdgebrainError) as e:
        cbuild.compiler()
    msg = str(e.value)
    assert "\n" not in msg and "no C compiler found" in msg and "apt-get install gcc" in msg


def test_cc_is_honoured(monkeypatch):
    cc = need_compiler()
    monkeypatch.setenv("CC", f"{cc[0]} -O1")
    assert cbuild.compiler() == [cc[0], "-O1"]
    monkeypatch.setenv("CC", "no-such-cc-xyz")
    with pytest.raises(EdgebrainError, match="CC is 'no-such-cc-xyz', which is not found"):
        cbuild.compiler()


def test_an_unwritable_cache_falls_back_to_the_temporary_folder(monkeypatch, tmp_path):
    need_compiler()
    blocker = tmp_path / "file"
    blocker.write_text("")  # a file where the cache folder should be: mkdir fails
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    lib = cbuild.library()
    assert lib.is_file() and str(lib).startswith(str(tmp_path / "tmp"))


def test_sources_are_package_data():
    """The C files live in the package (edgebrain/cruntime/) and pyproject.toml ships them."""
    names = {p.name for p in cbuild.sources()}
    assert {"eb_runtime.h", "eb_runtime.c", "eb_layout.h", "eb_fixed.h", "eb_neuron.c", "eb_dense.c",
            "eb_conv.c", "eb_elementwise.c", "eb_kernels.h"} <= names
    assert cbuild.SOURCE_DIR == REPO / "edgebrain" / "cruntime"
    text = (REPO / "pyproject.toml").read_text()
    assert '"edgebrain.cruntime" = ["*.c", "*.h"]' in text


def test_the_library_is_built_once_into_the_user_cache(monkeypatch, tmp_path):
    need_compiler()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    lib = cbuild.library()
    assert lib.is_file() and lib.parent.parent == tmp_path / "cache" / "edgebrain" / "cruntime"
    assert lib.parent.name == cbuild.build_key(cbuild.compiler())
    mtime = lib.stat().st_mtime_ns
    assert cbuild.library() == lib and lib.stat().st_mtime_ns == mtime  # not rebuilt
    assert not [p for p in lib.parent.iterdir() if p.name.endswith(".tmp")]
    other = cbuild.library(cbuild.CFLAGS + ("-DEB_TEST_FLAG=1",))  # other flags: another key, beside it
    assert other != lib and other.is_file() and lib.is_file()


def test_concurrent_first_uses_build_once(tmp_path):
    """Two processes building at once both get a working library (the lock and the rename)."""
    need_compiler()
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    code = "from edgebrain.cbuild import library; import ctypes; print(ctypes.CDLL(str(library())) is not None)"
    procs = [subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert [o.strip() for o, _ in outs] == ["True", "True"]
    libs = list((tmp_path / "cache" / "edgebrain" / "cruntime").glob("*/libebruntime.*"))
    assert len(libs) == 1


def test_a_compile_error_is_reported(monkeypatch, tmp_path):
    need_compiler()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(EdgebrainError, match="building the C runtime failed"):
        cbuild.library(cbuild.CFLAGS + ("-DEB_FIXED_H", "-Werror", "-Wall"))  # hides the primitives


def test_make_firmware_test(tmp_path):
    """``make -C firmware test`` with one golden vector of each kind (the full set runs in CI):
    the driver built with -Wall -Wextra -Werror -std=c99, then under address and UB sanitizers."""
    need_compiler()
    if shutil.which("make") is None:
        pytest.skip("make not found (apt-get install make)")
    build = tmp_path / "build"
    r = subprocess.run(["make", "-C", str(REPO / "firmware"), "test", "GOLDEN=--quick", f"BUILD={build}",
                        f"PYTHON={sys.executable}"], capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert r.stdout.count("golden vectors, 0 failed") == 2
    assert "-Werror" in r.stdout and "-fsanitize=address,undefined" in r.stdout
    assert len(list((build / "golden").glob("*.ebgv"))) >= 5
