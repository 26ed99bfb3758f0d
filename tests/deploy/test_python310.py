"""Python 3.10 honesty: pyproject.toml says ``requires-python = ">=3.10"`` and JetPack 6 ships 3.10, but no 3.10
interpreter can be installed on this kind of machine; so a static check (vermin, in the ``dev`` extra)
reads every module of the package and fails on any syntax, module or function newer than 3.10.

Two 3.11 names are used behind a fallback, and excluded here by name: ``tomllib`` (``tomli`` on 3.10,
devices/catalog.py) and ``hashlib.file_digest`` (model.py reads the file itself without it). The test
checks that those fallbacks are still in place, so the exclusions cannot hide a real use."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.conftest import REPO

#: (name excluded from vermin's check, file, the fallback that makes it safe on 3.10)
GUARDED = [("tomllib", "edgebrain/devices/catalog.py", "import tomli as tomllib"),
           ("hashlib.file_digest", "edgebrain/model.py", 'hasattr(hashlib, "file_digest")')]


def test_fallbacks_for_3_11_names_are_in_place():
    for name, path, fallback in GUARDED:
        assert fallback in (REPO / path).read_text(), f"{path}: {name} is used without its 3.10 fallback"


def test_package_needs_nothing_newer_than_python_3_10():
    vermin = shutil.which("vermin")
    if vermin is None:
        pytest.skip("vermin is not installed (pip install vermin, or the dev extra)")
    excl = [a for name, _, _ in GUARDED for a in ("--exclude", name)]
    r = subprocess.run([vermin, "--target=3.10-", "--no-tips", "--violations", *excl, "edgebrain"], cwd=REPO,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
