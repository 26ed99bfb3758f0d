"""What the demos say about their data: ``demo motion`` and the no-data fallback both carry the
SYNTHETIC banner; the fallback names EDGEBRAIN_DATA and every folder it looked in, as absolute
paths; ``../shared/datasets`` is found beside the checkout whatever the working directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgebrain import datasets
from edgebrain.apps.demo import run_zoo_demo

from tests.conftest import REPO


def test_roots_are_absolute_and_include_the_checkouts_shared_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    roots = datasets.roots()
    assert all(p.is_absolute() for _, p in roots)
    assert ("beside the checkout", REPO.parent / "shared" / "datasets") in roots


def test_demo_motion_has_the_synthetic_banner():
    r = subprocess.run([sys.executable, "-m", "edgebrain.cli", "demo", "motion"], capture_output=True, text=True,
                       cwd=REPO, timeout=600)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0].startswith("SYNTHETIC: a generated motion stream")


@pytest.mark.parametrize("json_out", [False, True])
def test_no_data_message_names_edgebrain_data_and_absolute_folders(tmp_path, monkeypatch, capsys, json_out):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv("EDGEBRAIN_DATA", raising=False)
    monkeypatch.setenv("EDGEBRAIN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(datasets, "checkout", lambda: None)  # as for a package installed from a wheel
    res = run_zoo_demo("kws", json_out=json_out)
    cap = capsys.readouterr()
    out = cap.err if json_out else cap.out  # with --json, notices go to stderr and stdout is JSON alone
    if json_out:
        assert json.loads(cap.out) == res
    first = out.splitlines()[0]
    assert first.startswith("no fsdd recordings found (looked in EDGEBRAIN_DATA not set; ")
    for p in (tmp_path / "shared" / "datasets" / "audio" / "fsdd", tmp_path / "cache" / "datasets" / "audio" / "fsdd"):
        assert str(p) in first and Path(str(p)).is_absolute()
    assert "set EDGEBRAIN_DATA to the folder holding audio/fsdd" in first
    assert "edgebrain data fetch fsdd" in first
    assert out.splitlines()[1].startswith("SYNTHETIC: ")
    assert res["synthetic"] is True and res["fallback_reason"] == "no fsdd recordings found"
    assert not os.path.exists(tmp_path / "cache")  # looking writes nothing
