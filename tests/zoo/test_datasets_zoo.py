"""Dataset location and `edgebrain data fetch` (against a local file:// mirror built from the shared
datasets, since this machine has no internet), `zoo:` names, `edgebrain zoo list`, and `edgebrain
demo` with and without recordings."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edgebrain import datasets as ds

from tests.conftest import REPO  # noqa: E402  (the repository root)


def cli(args, env=None, cwd=None, timeout=600):
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "edgebrain", *args], capture_output=True, text=True, env=e,
                          cwd=cwd, timeout=timeout)


def test_manifest_matches_the_shared_files(datasets):
    """The shipped manifest describes the real files (sizes and SHA-256 computed here independently)."""
    man = ds.manifests()
    assert set(man) == {"sp-sw-har", "basicmotions", "fsdd", "nmnist-small"}
    assert len(man["fsdd"]) == 2500 and len(man["nmnist-small"]) == 1102
    for name, files in man.items():
        base = datasets / ds.DATASETS[name].path
        for rel in list(files)[:3] + list(files)[-2:]:
            data = (base / rel).read_bytes()
            assert files[rel] == [len(data), hashlib.sha256(data).hexdigest()]


def make_mirror(src_root: Path, dst: Path, name: str) -> Path:
    d = ds.DATASETS[name]
    for rel in ds.manifests()[name]:
        out = dst / d.path / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src_root / d.path / rel, out)
    return dst


def test_fetch_from_a_file_mirror(datasets, tmp_path, monkeypatch):
    mirror = make_mirror(datasets, tmp_path / "mirror", "basicmotions")
    monkeypatch.setenv("EDGEBRAIN_CACHE", str(tmp_path / "cache"))
    r = cli(["data", "fetch", "basicmotions", "--mirror", mirror.as_uri(), "--json"],
            env={"EDGEBRAIN_CACHE": str(tmp_path / "cache")})
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["fetched"] == 2 and res["already_present"] == 0
    dest = Path(res["destination"])
    for rel in ("BasicMotions_TRAIN.ts", "BasicMotions_TEST.ts"):
        assert (dest / rel).read_bytes() == (datasets / "imu/basicmotions" / rel).read_bytes()
    # found there when nothing else has it
    monkeypatch.delenv("EDGEBRAIN_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    assert datasets_find("basicmotions") == dest
    # a second fetch verifies and keeps what is there
    res2 = ds.fetch("basicmotions", mirror=mirror.as_uri())
    assert res2["fetched"] == 0 and res2["already_present"] == 2


def datasets_find(name):
    return ds.find(name)


def test_fetch_rejects_a_tampered_or_missing_file(datasets, tmp_path, monkeypatch):
    mirror = make_mirror(datasets, tmp_path / "mirror", "basicmotions")
    bad = mirror / "imu/basicmotions/BasicMotions_TEST.ts"
    b = bytearray(bad.read_bytes())
    b[1000] ^= 0x01  # one bit
    bad.write_bytes(bytes(b))
    monkeypatch.setenv("EDGEBRAIN_CACHE", str(tmp_path / "cache"))
    r = cli(["data", "fetch", "basicmotions", "--mirror", mirror.as_uri()], env={"EDGEBRAIN_CACHE": str(tmp_path / "cache")})
    assert r.returncode == 2
    assert "BasicMotions_TEST.ts" in r.stderr and "does not match the manifest" in r.stderr
    assert "Traceback" not in r.stderr
    cached = tmp_path / "cache/datasets/imu/basicmotions"
    assert not (cached / "BasicMotions_TEST.ts").exists() and not list(cached.glob("*.part"))
    bad.unlink()
    r = cli(["data", "fetch", "basicmotions", "--mirror", mirror.as_uri()], env={"EDGEBRAIN_CACHE": str(tmp_path / "cache")})
    assert r.returncode == 2 and "could not download" in r.stderr and "BasicMotions_TEST.ts" in r.stderr
    r = cli(["data", "fetch", "no-such-set"])
    assert r.returncode == 2 and "unknown dataset 'no-such-set'" in r.stderr


def test_zoo_names_resolve_and_list():
    from edgebrain import zoo
    from edgebrain.errors import InputError
    from edgebrain.model import Model

    names = zoo.names()
    if not names:
        pytest.skip("no zoo models in this checkout")
    m = Model.load("zoo:" + names[0])
    assert m.path == zoo.path(names[0]) and m.graph.meta.get("card")
    with pytest.raises(InputError, match="no zoo model 'nope'"):
        Model.load("zoo:nope")
    r = cli(["zoo", "list", "--json"])
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert {row["name"] for row in rows} == {"zoo:" + n for n in names}
    for row in rows:
        assert 0 < row["accuracy_int8"] <= 1 and Path(row["card"]).is_file()


def test_demo_without_recordings_says_so_and_runs_synthetic(tmp_path):
    env = {"EDGEBRAIN_CACHE": str(tmp_path / "cache"), "EDGEBRAIN_DATA": ""}
    r = cli(["demo", "har", "--json"], env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "no sp-sw-har recordings found" in r.stderr and "SYNTHETIC" in r.stderr
    res = json.loads(r.stdout)
    assert res["synthetic"] is True and res["accuracy"]["int"] >= 0.75


def test_demo_har_on_real_recordings(datasets):
    from edgebrain import zoo

    if "har-l2mu" not in zoo.names():
        pytest.skip("zoo:har-l2mu not in this checkout")
    r = cli(["demo", "har", "--items", "1", "--json"], env={"EDGEBRAIN_DATA": str(datasets)})
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["synthetic"] is False and res["recordings"][0].endswith("s16_01_sw.csv")
    # the truths are the file's own labels, read independently here
    import csv

    with open(res["recordings"][0]) as f:
        labels = {row["label"] for row in csv.DictReader(f)}
    assert {d["truth"] for d in res["decisions"]} <= labels
    assert len(res["decisions"]) >= 40 and res["accuracy"] is not None
