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

from tests.conftest import REPO, fixture_facts, on_fixtures  # noqa: E402  (REPO: the repository root)


def cli(args, env=None, cwd=None, timeout=600):
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "edgebrain", *args], capture_output=True, text=True, env=e,
                          cwd=cwd, timeout=timeout)


def test_manifest_matches_the_shared_files(datasets):
    """The shipped manifest describes the real files (sizes and SHA-256 computed here independently):
    the first and last few of each dataset, or on the fixture set (tests/data) every file it copied."""
    man = ds.manifests()
    assert set(man) == {"sp-sw-har", "basicmotions", "fsdd", "nmnist-small"}
    assert len(man["fsdd"]) == 2500 and len(man["nmnist-small"]) == 1102
    copied = set(fixture_facts()["copied"]) if on_fixtures(datasets) else None
    for name, files in man.items():
        base = datasets / ds.DATASETS[name].path
        rels = (list(files)[:3] + list(files)[-2:] if copied is None
                else [r for r in files if f"{ds.DATASETS[name].path}/{r}" in copied])
        assert len(rels) >= 2, name
        for rel in rels:
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
    monkeypatch.setattr(ds, "checkout", lambda: None)
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
    # the checkout hidden: its shared/datasets would be found from any working directory
    hide = ("import sys, edgebrain.datasets as d; d.checkout = lambda: None; "
            "from edgebrain.cli import main; main(sys.argv[1:])")
    r = subprocess.run([sys.executable, "-c", hide, "demo", "har", "--json"], capture_output=True, text=True,
                       env=dict(os.environ, **env), cwd=tmp_path, timeout=600)
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


# ------------------------------------------------------------------ a hostile mirror (issue 11, items 3 and 7)

import http.server  # noqa: E402
import signal  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

from tests.hostile._harness import (assert_rss_close, assert_unchanged, assert_user_error, child_env,  # noqa: E402
                                    run_cli, tree_hash)

TEST_TS = "BasicMotions_TEST.ts"


class Mirror:
    """A real HTTP server on 127.0.0.1 serving the basicmotions files, with one file misbehaving:
    ``mode`` "zeros" (an endless body of zero bytes, no length), "lying" (zeros under a
    Content-Length of 4.9 GB), "stall" (the right length, half the bytes, then nothing until
    released), or "good". Counts the bytes it managed to send."""

    CAP = 64 << 20  # an endless body ends here (so that a fetch without a limit ends too)

    def __init__(self, root: Path, mode: str):
        self.root, self.mode, self.sent, self.release = root, mode, 0, threading.Event()
        mirror = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *a):
                pass

            def do_GET(self):
                path = mirror.root / self.path.lstrip("/")
                if not path.is_file():
                    self.send_error(404)
                    return
                data = path.read_bytes()
                self.send_response(200)
                bad = path.name == TEST_TS and mirror.mode != "good"
                if not bad or mirror.mode == "stall":
                    self.send_header("Content-Length", str(len(data)))
                elif mirror.mode == "lying":
                    self.send_header("Content-Length", str(4_900_000_000))
                self.end_headers()
                try:
                    if not bad:
                        self.wfile.write(data)
                    elif mirror.mode == "stall":
                        self.wfile.write(data[: len(data) // 2])
                        self.wfile.flush()
                        mirror.release.wait(60)
                    else:
                        block = b"\0" * (1 << 16)
                        while mirror.sent < mirror.CAP:
                            self.wfile.write(block)
                            mirror.sent += len(block)
                except OSError:  # the client hung up
                    pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def basicmotions_root(datasets, tmp_path):
    return make_mirror(datasets, tmp_path / "mirror", "basicmotions")


@pytest.mark.parametrize("mode", ["zeros", "lying"])
def test_fetch_stops_at_the_manifest_size(basicmotions_root, tmp_path, mode):
    size = ds.manifests()["basicmotions"][TEST_TS][0]
    srv = Mirror(basicmotions_root, mode)
    cache = tmp_path / "cache"
    try:
        good = Mirror(basicmotions_root, "good")
        try:
            base = run_cli(["data", "fetch", "basicmotions", "--mirror", good.url],
                           env={"EDGEBRAIN_CACHE": tmp_path / "cache-good"}, timeout=60)
        finally:
            good.close()
        assert base.returncode == 0, base.describe()
        r = run_cli(["data", "fetch", "basicmotions", "--mirror", srv.url], env={"EDGEBRAIN_CACHE": cache},
                    timeout=60)
    finally:
        srv.close()
    line = assert_user_error(r, contains=(TEST_TS, str(size)))
    assert ("more than" in line) if mode == "zeros" else ("4900000000" in line), line
    assert srv.sent < 16 << 20, f"the mirror sent {srv.sent} bytes: the fetch did not stop at {size + 1}"
    assert_rss_close(r, base)
    files = [p for p in cache.rglob("*") if not p.is_dir()]
    assert files == [], f"left behind: {files}"


def test_fetch_never_writes_through_a_planted_part_link(basicmotions_root, tmp_path):
    bad = basicmotions_root / "imu/basicmotions" / TEST_TS
    b = bytearray(bad.read_bytes())
    b[1000] ^= 0x01
    bad.write_bytes(bytes(b))
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious\n")
    cached = tmp_path / "cache/datasets/imu/basicmotions"
    cached.mkdir(parents=True)
    for suffix in (".part", ".tmp"):
        os.symlink(victim, cached / (TEST_TS + suffix))
    before = tree_hash(tmp_path / "cache")
    r = run_cli(["data", "fetch", "basicmotions", "--mirror", basicmotions_root.as_uri()],
                env={"EDGEBRAIN_CACHE": tmp_path / "cache"}, timeout=60)
    assert_user_error(r, contains=(TEST_TS, "does not match the manifest"))
    assert victim.read_bytes() == b"precious\n"
    # the links are as they were; the good file fetched first is the only addition
    assert_unchanged(before, tree_hash(tmp_path / "cache"), allowed=["datasets/imu/basicmotions/BasicMotions_TRAIN.ts"])


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupted_fetch_leaves_no_partial_file(basicmotions_root, tmp_path, sig):
    srv = Mirror(basicmotions_root, "stall")
    cache = tmp_path / "cache"
    try:
        p = subprocess.Popen([sys.executable, "-m", "edgebrain.cli", "data", "fetch", "basicmotions", "--mirror",
                              srv.url], env=child_env({"EDGEBRAIN_CACHE": cache}), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        def written():  # bytes of the first half on disk (the mirror then stalls)
            try:
                return sum(q.stat().st_size for q in cache.rglob("*") if q.is_file())
            except OSError:
                return 0

        deadline = time.monotonic() + 60  # a hang guard
        while time.monotonic() < deadline and p.poll() is None and not written():
            time.sleep(0.05)
        assert written(), "the fetch never started writing"
        p.send_signal(sig)
        _, err = p.communicate(timeout=30)
    finally:
        srv.close()
    left = [q for q in cache.rglob("*") if not q.is_dir()]
    assert left == [], f"left behind: {left}"
    assert p.returncode == (130 if sig == signal.SIGINT else 143), (p.returncode, err)
    assert "Traceback" not in err
