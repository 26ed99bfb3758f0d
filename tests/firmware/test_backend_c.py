"""``--backend c``: ``edgebrain run`` and ``edgebrain stream`` on the C runtime, through the command
line, bit-identical to ``--precision int`` on the Numba backend (zoo models on real recordings);
the model's blob cache (a model run before is never lowered, so no Numba in the process; a damaged
entry is rebuilt; another file is another entry); bad input as one line and exit code 2; and what
the stream pipeline uses of a session (snapshot and restore with the clock, live output buffers,
recorded nodes) against the Numba session.

Each command runs in a fresh process with ``XDG_CACHE_HOME`` in a folder of the test (the blob
cache and the runtime's build live there; the build is copied from the user's cache, not redone).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgebrain.errors import InputError, ModelError
from edgebrain.model import Model
from tests.conftest import REPO
from tests.firmware import cases


@pytest.fixture(scope="module")
def cache_home(clib, tmp_path_factory) -> Path:
    """An XDG cache folder holding a copy of the runtime's build (so the children do not compile)."""
    from edgebrain import cbuild

    home = tmp_path_factory.mktemp("xdg")
    lib = cbuild.library()
    dst = home / "edgebrain" / "cruntime" / lib.parent.name
    dst.mkdir(parents=True)
    shutil.copy2(lib, dst / lib.name)
    return home


def cli(cache_home, *args, env=None, timeout=300) -> subprocess.CompletedProcess:
    e = {**os.environ, "PYTHONPATH": str(REPO), "XDG_CACHE_HOME": str(cache_home)}
    e.pop("EDGEBRAIN_DEBUG", None)
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "edgebrain", *args], capture_output=True, text=True, env=e,
                          cwd=REPO, timeout=timeout)


def assert_same_npz(a: Path, b: Path):
    A, B = np.load(a), np.load(b)
    assert sorted(A.files) == sorted(B.files)
    for k in A.files:
        assert A[k].dtype == B[k].dtype and A[k].shape == B[k].shape, k
        np.testing.assert_array_equal(A[k], B[k], err_msg=k)


# ---------------------------------------------------------------------- run


@pytest.mark.parametrize("name", list(cases.ZOO))
def test_run_is_bit_identical_to_the_numba_integer_path(cache_home, datasets, tmp_path, name):
    got = cases.zoo_input(name, datasets)
    if got is None:
        pytest.skip(f"recordings {cases.ZOO[name][0]} not all found under {datasets}")
    model, xs = got
    x = tmp_path / "x.npy"
    np.save(x, xs[:400])
    rec = [n for n in model.graph.order if n in model.program("int").spiking][:2]
    args = [f"--record={n}" for n in rec]
    rc = cli(cache_home, "run", f"zoo:{name}", "-i", str(x), "-o", str(tmp_path / "c.npz"), "--backend", "c", *args)
    assert rc.returncode == 0, rc.stderr
    assert "on the C runtime" in rc.stdout
    rn = cli(cache_home, "run", f"zoo:{name}", "-i", str(x), "-o", str(tmp_path / "n.npz"), "--precision", "int", *args)
    assert rn.returncode == 0, rn.stderr
    assert_same_npz(tmp_path / "c.npz", tmp_path / "n.npz")
    assert len(list((cache_home / "edgebrain" / "blobs").glob("*.ebb"))) >= 1


def test_a_batched_input_runs_each_sequence_as_the_batch_would(cache_home, tmp_path):
    m = Model.load("zoo:har-lif")
    xs = (np.random.default_rng(4).standard_normal((120, 3) + tuple(m.input_shape)) * 3).astype(np.float32)
    np.save(tmp_path / "x.npy", xs)
    for backend, out in (("c", "c.npz"), ("numba", "n.npz")):
        r = cli(cache_home, "run", "zoo:har-lif", "-i", str(tmp_path / "x.npy"), "-o", str(tmp_path / out),
                "--backend", backend, "--record", "lif1", "--json")
        assert r.returncode == 0, r.stderr
        s = json.loads(r.stdout)
        assert s["batch"] == 3 and s["backend"] == backend
    assert_same_npz(tmp_path / "c.npz", tmp_path / "n.npz")


CHILD = """
import json, sys
from edgebrain.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
with open("/proc/self/status") as f:
    hwm = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
sys.stderr.write("\\nMODULES " + json.dumps(sorted(m for m in sys.modules if "." not in m)) + f" {hwm}\\n")
"""


def modules_of_run(cache_home, *args) -> tuple[set, int]:
    e = {**os.environ, "PYTHONPATH": str(REPO), "XDG_CACHE_HOME": str(cache_home)}
    r = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True, env=e, cwd=REPO,
                       timeout=300)
    line = [ln for ln in r.stderr.splitlines() if ln.startswith("MODULES ")][-1]
    mods, hwm = line[len("MODULES "):].rsplit(" ", 1)
    return set(json.loads(mods)), int(hwm)


def test_a_model_run_before_is_not_lowered_and_numba_stays_out(cache_home, tmp_path):
    m = Model.load("zoo:kws")
    np.save(tmp_path / "x.npy", np.zeros((50,) + tuple(m.input_shape), np.float32))
    args = ("run", "zoo:kws", "-i", str(tmp_path / "x.npy"), "-o", str(tmp_path / "y.npz"), "--backend", "c")
    modules_of_run(cache_home, *args)  # the first run may lower (and so import Numba) and fills the cache
    mods, hwm = modules_of_run(cache_home, *args)
    assert "edgebrain" in mods and (tmp_path / "y.npz").is_file()
    assert not mods & {"numba", "llvmlite"}, sorted(mods & {"numba", "llvmlite"})
    assert hwm > 0  # peak RSS: measured by tools/bench/firmware.py, not asserted here


# ---------------------------------------------------------------------- the blob cache


def test_the_cache_is_keyed_by_the_files_bytes_and_rebuilds_a_damaged_entry(clib, tmp_path, monkeypatch):
    from edgebrain import csession as C

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    path = tmp_path / "m.ebm"
    shutil.copy(Model.load("zoo:har-lif").path, path)
    m1 = Model.load(path)
    data1, table1, hit = C.model_blob(m1)
    assert not hit and C.model_blob(Model.load(path))[2]  # lowered once, then from the cache
    (entry,) = C.cache_dir().glob("*.ebb")
    raw = bytearray(entry.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # a flipped byte: the checksum refuses it, so it is a miss, rewritten
    entry.write_bytes(bytes(raw))
    data, table, hit = C.model_blob(Model.load(path))
    assert not hit and data == data1 and table == table1 and entry.read_bytes() == data1
    shutil.copy(Model.load("zoo:basicmotions").path, path)  # another model under the same name
    m2 = Model.load(path)
    s = m2.session("int", backend="c")
    assert s.program.input_shape == tuple(m2.input_shape) and len(list(C.cache_dir().glob("*.ebb"))) == 2
    assert C.model_blob(m2, cache=False)[0] == C.model_blob(m2)[0]


def test_an_unwritable_cache_only_costs_the_lowering(clib, tmp_path, monkeypatch):
    from edgebrain import csession as C

    (tmp_path / "file").write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "file" / "below"))
    m = Model.load("zoo:har-lif")
    data, _, hit = C.model_blob(m)
    assert not hit and C.model_blob(m)[2] is False and len(data) > 0


# ---------------------------------------------------------------------- stream


STREAMS = {
    "har-lif": "imu/sp-sw-har/s16/s16_01_sw.csv",
    "basicmotions": "imu/basicmotions/BasicMotions_TEST.ts",
    "kws": "audio/fsdd/recordings/0_theo_0.wav",
    "nmnist": "events/nmnist-small/1.bs2",
}
SAME = ("steps", "items", "stream_seconds", "decisions", "no_decision", "flush_decisions", "spike_rate",
        "saturations", "accuracy", "confusion", "precision", "gaps")


@pytest.mark.parametrize("name", list(STREAMS))
def test_stream_is_bit_identical_to_the_numba_integer_path(cache_home, datasets, name):
    src = Path(datasets) / STREAMS[name]
    if not src.is_file():
        pytest.skip(f"{src} not found")
    runs = {}
    for backend in ("c", "numba"):
        r = cli(cache_home, "stream", f"zoo:{name}", "--source", str(src), "--json", "--backend", backend,
                "--precision", "int")
        assert r.returncode == 0, r.stderr
        lines = [json.loads(ln) for ln in r.stdout.splitlines()]
        decisions = [{k: v for k, v in d.items() if k != "latency_ms"} for d in lines[:-1]]
        summary = lines[-1]["summary"]
        runs[backend] = decisions, {k: summary.get(k) for k in SAME}
    assert runs["c"][0], "no decisions"
    assert runs["c"] == runs["numba"]


# ---------------------------------------------------------------------- bad input


def test_a_float_model_with_the_c_backend_is_one_line_and_exit_2(cache_home, tmp_path):
    m = Model.load("zoo:har-lif")
    m.quant = None
    m.save(tmp_path / "float.ebm")
    np.save(tmp_path / "x.npy", np.zeros((5,) + tuple(m.input_shape), np.float32))
    for model, extra in ((str(tmp_path / "float.ebm"), ()), ("zoo:har-lif", ("--precision", "float"))):
        r = cli(cache_home, "run", model, "-i", str(tmp_path / "x.npy"), "-o", str(tmp_path / "y.npz"),
                "--backend", "c", *extra)
        assert r.returncode == 2, r.stderr
        (line,) = r.stderr.strip().splitlines()
        assert line.startswith("error: ") and "integer" in line and "Traceback" not in r.stderr
        assert not (tmp_path / "y.npz").exists()
    r = cli(cache_home, "stream", str(tmp_path / "float.ebm"), "--source", str(REPO / "tests" / "data" / STREAMS["har-lif"]),
            "--backend", "c")
    assert r.returncode == 2 and r.stderr.strip().startswith("error: ") and len(r.stderr.strip().splitlines()) == 1


def test_no_c_compiler_is_one_line_and_exit_2(cache_home, tmp_path):
    m = Model.load("zoo:har-lif")
    np.save(tmp_path / "x.npy", np.zeros((5,) + tuple(m.input_shape), np.float32))
    r = cli(cache_home, "run", "zoo:har-lif", "-i", str(tmp_path / "x.npy"), "-o", str(tmp_path / "y.npz"),
            "--backend", "c", env={"CC": "no-such-cc-xyz"})
    assert r.returncode == 2
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("error: ") and "no-such-cc-xyz" in line
    assert not (tmp_path / "y.npz").exists()


def test_the_library_refuses_what_the_c_runtime_cannot_run(clib):
    m = Model.load("zoo:har-lif")
    with pytest.raises(ModelError, match="integer"):
        m.session("float", backend="c")
    with pytest.raises(InputError, match="batch 1"):
        m.session("int", batch=2, backend="c")
    with pytest.raises(ModelError, match="backend 'gpu'"):
        m.session("int", backend="gpu")


# ---------------------------------------------------------------------- what the pipeline uses


def test_the_session_interface_the_stream_uses_matches_the_numba_session(clib):
    m = Model.load("zoo:har-l2mu")  # has several spiking layers and (with 32-bit state) the general neuron
    c, s = m.session("int", backend="c"), m.session("int")
    assert c.spiking_nodes == s.spiking_nodes and c.output_size == s.output_size
    assert c.program.input_shape == tuple(s.program.input_shape) and c.batch == 1 and c.precision == "int"
    xs = (np.random.default_rng(2).standard_normal((60,) + tuple(m.input_shape)) * 3).astype(np.float32)
    views = {n: c.output_buffer(n) for n in c.spiking_nodes}
    for t in range(10):
        np.testing.assert_array_equal(c.step(xs[t]), s.step(xs[t]))
        for n, v in views.items():  # live views, rewritten in place by every step
            np.testing.assert_array_equal(v, s.output_buffer(n))
    snap, snap_n = c.snapshot(), s.snapshot()
    a, ra = c.run(xs[10:40], record=c.spiking_nodes)
    b, rb = s.run(xs[10:40], record=s.spiking_nodes)
    np.testing.assert_array_equal(a, b)
    assert list(ra) == list(rb)
    for k in ra:
        assert ra[k].dtype == rb[k].dtype
        np.testing.assert_array_equal(ra[k], rb[k], err_msg=k)
    c.restore(snap)  # the clock too (delays read it)
    s.restore(snap_n)
    assert c.clock == int(s.clock[0]) == 10
    np.testing.assert_array_equal(c.run(xs[10:60])[0], s.run(xs[10:60])[0])
    np.testing.assert_array_equal(c.saturations, s.saturations)
    with pytest.raises(InputError, match="no node named 'nope'"):
        c.run(xs[:2], record=["nope"])


def test_a_node_table_that_does_not_fit_the_blob_is_a_miss(clib, tmp_path, monkeypatch):
    from edgebrain import csession as C

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    m = Model.load("zoo:har-lif")
    _, table, _ = C.model_blob(m)
    (entry,) = C.cache_dir().glob("*.json")
    bad = json.loads(entry.read_text())
    bad["nodes"]["lif1"]["act"][0] = 10**9
    entry.write_text(json.dumps(bad))
    data, got, hit = C.model_blob(Model.load("zoo:har-lif"))
    assert not hit and got == table and json.loads(entry.read_text()) == table
