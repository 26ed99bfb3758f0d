"""Bad input: a clear one-line error, never a traceback, a hang, or silently wrong numbers.

Every case is a real file. Valid NIR graphs are written with the ``nir`` package (snnTorch-style
parameters: tau = dt/(1-beta), r = tau/dt, dt = 1e-4) and then damaged with h5py or at the byte
level; valid ``.ebm`` model files are written with ``Model.save`` and damaged byte by byte; bad
inputs are real ``.npy`` files. The library must raise an :class:`EdgebrainError` subclass whose
message names the file, the node or field (or the byte offset / buffer) and what was expected; the
command line, run as a real subprocess with a timeout (a hang fails the test), must exit with
code 2 and print exactly one line ``error: ...`` on stderr and no traceback.
"""

from __future__ import annotations

import io
import os
import shutil
import struct
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import h5py
import nir
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import edgebrain
from edgebrain import ebm
from edgebrain.errors import EdgebrainError, FormatError, InputError, ModelError

REPO = Path(__file__).resolve().parent.parent
CLI_TIMEOUT = 60  # seconds; a CLI call that takes longer is a hang
DT = 1e-4
N_IN, N_H, N_OUT = 4, 8, 3


# --------------------------------------------------------------------------- valid files


def _snntorch_lif(n, beta):
    tau = DT / (1 - beta)
    return nir.LIF(tau=np.full(n, tau), r=np.full(n, tau / DT), v_leak=np.zeros(n), v_threshold=np.ones(n),
                   v_reset=np.zeros(n))


def write_good_nir(path: Path) -> Path:
    """Input → Affine → LIF → Affine → LIF → Output as snnTorch's NIR export writes it."""
    rng = np.random.default_rng(7)
    nodes = {
        "input": nir.Input(input_type=np.array([N_IN])),
        "fc1": nir.Affine(weight=(rng.standard_normal((N_H, N_IN)) * 1.5).astype(np.float32),
                          bias=(0.1 * rng.standard_normal(N_H)).astype(np.float32)),
        "lif1": _snntorch_lif(N_H, 0.9),
        "fc2": nir.Affine(weight=(rng.standard_normal((N_OUT, N_H)) * 1.5).astype(np.float32),
                          bias=np.zeros(N_OUT, np.float32)),
        "lif2": _snntorch_lif(N_OUT, 0.8),
        "output": nir.Output(output_type=np.array([N_OUT])),
    }
    edges = [("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "lif2"), ("lif2", "output")]
    nir.write(path, nir.NIRGraph(nodes=nodes, edges=edges))
    return path


def _inputs(T=60, seed=3):
    return ((np.random.default_rng(seed).random((T, N_IN)) < 0.4) * 2.0).astype(np.float32)


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("bad_input")


@pytest.fixture(scope="module")
def good_nir(work) -> Path:
    path = write_good_nir(work / "good.nir")
    m = edgebrain.load(path)  # the undamaged file is fine
    assert m.graph.meta["dialect"] == "snntorch" and m.dt == pytest.approx(DT)
    return path


@pytest.fixture(scope="module")
def models(good_nir, work):
    """(float .ebm path, quantized .ebm path, float model, quantized model)."""
    from edgebrain.quant import quantize

    m = edgebrain.load(good_nir)
    fpath = work / "good.ebm"
    m.save(fpath)
    qm, _ = quantize(m, _inputs(200, seed=1))
    qpath = work / "good_q.ebm"
    qm.save(qpath)
    return fpath, qpath, m, qm


def _outputs(model, precision="float"):
    return model.session(precision).run(_inputs())[0].copy()


# --------------------------------------------------------------------------- checks


def says_expected(msg: str) -> bool:
    return any(w in msg for w in ("expected", "must", "needs"))


def check_error(err: EdgebrainError, path, *must):
    msg = str(err)
    assert "\n" not in msg, f"message is not one line: {msg!r}"
    assert str(path) in msg, f"message does not name the file {path}: {msg}"
    for w in must:
        assert w in msg, f"message does not mention {w!r}: {msg}"
    assert says_expected(msg), f"message does not say what was expected: {msg}"


def _env():
    env = dict(os.environ)
    env.pop("EDGEBRAIN_DEBUG", None)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def cli(*args, cwd=None, module="edgebrain.cli"):
    try:
        p = subprocess.run([sys.executable, "-m", module, *map(str, args)], capture_output=True, text=True,
                           timeout=CLI_TIMEOUT, env=_env(), cwd=cwd)
    except subprocess.TimeoutExpired:
        pytest.fail(f"edgebrain {' '.join(map(str, args))} hung (no exit within {CLI_TIMEOUT} s)")
    return p


def cli_many(calls: list[tuple]) -> list:
    """Run several CLI invocations (each a real process) a few at a time; results in order."""
    with ThreadPoolExecutor(max_workers=4) as ex:
        return list(ex.map(lambda a: cli(*a), calls))


def cli_inproc(*args):
    """The same command through ``edgebrain.cli.main`` in this process (the code path of the console
    script, minus the interpreter start-up): cheap enough to run every case this way."""
    from edgebrain.cli import main

    out, err = io.StringIO(), io.StringIO()
    code = 0
    with redirect_stdout(out), redirect_stderr(err):
        try:
            main([str(a) for a in args])
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def cli_error_problems(p, args, *must) -> list[str]:
    """What is wrong with a CLI run that should have failed cleanly (empty list: nothing)."""
    cmd = "edgebrain " + " ".join(map(str, args))
    probs = []
    if p.returncode != 2:
        probs.append(f"{cmd}: exit code {p.returncode}, expected 2")
    if "Traceback" in p.stderr or "Traceback" in p.stdout:
        probs.append(f"{cmd}: printed a traceback:\n{p.stderr}")
    lines = p.stderr.splitlines()
    if len(lines) != 1 or not lines[0].startswith("error: "):
        probs.append(f"{cmd}: stderr is not exactly one 'error: ...' line: {p.stderr!r}")
    for w in must:
        if w not in p.stderr:
            probs.append(f"{cmd}: error does not mention {w!r}: {p.stderr.strip()}")
    return probs


def assert_cli_errors(calls, real=None):
    """calls: (args, must-mention...) tuples; every run must fail cleanly. All run in-process; those
    at the indices in ``real`` (default: all) also run as real subprocesses with a timeout."""
    real = range(len(calls)) if real is None else real
    probs = [pr for args, *must in calls for pr in cli_error_problems(cli_inproc(*args), args, *must)]
    sub = [calls[i] for i in real]
    results = cli_many([c[0] for c in sub])
    probs += [pr for (args, *must), p in zip(sub, results) for pr in cli_error_problems(p, args, *must)]
    assert not probs, "\n".join(probs)


# --------------------------------------------------------------------------- damaged NIR


def _replace(f, key, value):
    del f[key]
    f[key] = value


def _edges(*extra, drop=()):
    base = [("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "lif2"), ("lif2", "output")]
    return np.array([e for e in base if e not in drop] + list(extra), dtype="S")


def _set(key, index, value):
    def damage(f):
        d = f[key]
        a = d[()]
        a[index] = value
        d[...] = a
    return damage


N = "node/nodes/"
# name: (damage(h5py.File), error class, words the message must contain)
NIR_DAMAGE = {
    "missing_weight": (lambda f: f.__delitem__(N + "fc1/weight"), ModelError, ["fc1", "'weight'"]),
    "missing_bias": (lambda f: f.__delitem__(N + "fc2/bias"), ModelError, ["fc2", "'bias'"]),
    "missing_tau": (lambda f: f.__delitem__(N + "lif1/tau"), ModelError, ["lif1", "'tau'"]),
    "missing_threshold": (lambda f: f.__delitem__(N + "lif2/v_threshold"), ModelError, ["lif2", "'v_threshold'"]),
    "missing_type": (lambda f: f.__delitem__(N + "lif1/type"), ModelError, ["lif1", "'type'"]),
    "missing_node": (lambda f: f.__delitem__(N + "fc2"), ModelError, ["'fc2'"]),
    "weight_wrong_in": (lambda f: _replace(f, N + "fc2/weight", np.ones((N_OUT, 5), np.float32)), ModelError,
                        ["fc2", "'weight'", "(3, 5)", "(out, 8)"]),
    "weight_3d": (lambda f: _replace(f, N + "fc1/weight", np.ones((N_H, N_IN, 2), np.float32)), ModelError,
                  ["fc1", "'weight'", "(8, 4, 2)"]),
    "bias_wrong": (lambda f: _replace(f, N + "fc1/bias", np.ones(7, np.float32)), ModelError,
                   ["fc1", "'bias'", "(7,)", "(8,)"]),
    "tau_wrong_size": (lambda f: _replace(f, N + "lif1/tau", np.full(5, 1e-3)), ModelError, ["lif1", "'tau'"]),
    "v_leak_wrong_shape": (lambda f: _replace(f, N + "lif1/v_leak", np.zeros((2, 4))), ModelError,
                           ["lif1", "'v_leak'"]),
    "threshold_wrong_size": (lambda f: _replace(f, N + "lif2/v_threshold", np.ones(5)), ModelError, ["lif2"]),
    "weight_is_text": (lambda f: _replace(f, N + "fc1/weight", "0.5"), ModelError, ["fc1", "'weight'", "numeric"]),
    "weight_is_complex": (lambda f: _replace(f, N + "fc1/weight", np.ones((N_H, N_IN), np.complex64)), ModelError,
                          ["fc1", "'weight'", "complex"]),
    "weight_is_group": (lambda f: (f.__delitem__(N + "fc1/weight"), f.create_group(N + "fc1/weight")), ModelError,
                        ["fc1", "'weight'"]),
    "unknown_type": (lambda f: _replace(f, N + "lif1/type", "LeakyBanana"), ModelError,
                     ["lif1", "LeakyBanana", "LIF"]),
    "edge_to_missing_node": (lambda f: _replace(f, "node/edges", _edges(("lif2", "ghost"))), ModelError,
                             ["ghost", "lif2 -> ghost"]),
    "edge_from_missing_node": (lambda f: _replace(f, "node/edges", _edges(("phantom", "fc2"))), ModelError,
                               ["phantom"]),
    "edges_missing": (lambda f: f.__delitem__("node/edges"), ModelError, ["'edges'"]),
    "edges_1d": (lambda f: _replace(f, "node/edges", np.array([b"input", b"fc1"])), ModelError,
                 ["'edges'", "(E, 2)"]),
    "edges_3_columns": (lambda f: _replace(f, "node/edges", np.array([[b"input", b"fc1", b"lif1"]])), ModelError,
                        ["'edges'", "(E, 2)"]),
    "edges_numbers": (lambda f: _replace(f, "node/edges", np.array([[0, 1], [1, 2]])), ModelError, ["edge 0 -> 1"]),
    "edges_group": (lambda f: (f.__delitem__("node/edges"), f.create_group("node/edges")), ModelError, ["'edges'"]),
    "edges_empty": (lambda f: _replace(f, "node/edges", np.zeros((0, 2), "S1")), ModelError, ["fc1"]),
    "edge_twice": (lambda f: _replace(f, "node/edges", _edges(("input", "fc1"))), ModelError, ["input -> fc1"]),
    "affine_self_loop": (lambda f: _replace(f, "node/edges", _edges(("fc1", "fc1"))), ModelError, ["fc1 -> fc1"]),
    "nan_weight": (_set(N + "fc1/weight", (2, 1), np.nan), ModelError, ["fc1", "'weight'", "NaN"]),
    "inf_bias": (_set(N + "fc2/bias", 0, np.inf), ModelError, ["fc2", "'bias'"]),
    "nan_tau": (_set(N + "lif1/tau", 3, np.nan), ModelError, ["lif1", "'tau'"]),
    "inf_r": (_set(N + "lif1/r", 0, np.inf), ModelError, ["lif1", "'r'"]),
    "neg_inf_threshold": (_set(N + "lif2/v_threshold", 1, -np.inf), ModelError, ["lif2", "'v_threshold'"]),
    "nan_v_reset": (_set(N + "lif2/v_reset", 2, np.nan), ModelError, ["lif2", "'v_reset'"]),
    "negative_tau": (_set(N + "lif1/tau", 0, -1e-3), ModelError, ["lif1", "'tau'"]),
    "input_shape_zero": (lambda f: _replace(f, N + "input/shape", np.array([0])), ModelError, ["input", "(0,)"]),
    "input_shape_huge": (lambda f: _replace(f, N + "input/shape", np.array([2 ** 40])), ModelError, ["input"]),
    "input_shape_fraction": (lambda f: _replace(f, N + "input/shape", np.array([4.5])), ModelError,
                             ["input", "'shape'"]),
    "output_shape_wrong": (lambda f: _replace(f, N + "output/shape", np.array([7])), ModelError,
                           ["output", "(7,)", "(3,)"]),
    "top_type_not_graph": (lambda f: _replace(f, "node/type", "LIF"), ModelError, ["NIRGraph"]),
    "no_node_group": (lambda f: f.__delitem__("node"), FormatError, ["'/node'"]),
}


def damaged_nir(good: Path, name: str) -> Path:
    path = good.parent / f"damaged_{name}.nir"
    shutil.copy(good, path)
    with h5py.File(path, "r+") as f:
        NIR_DAMAGE[name][0](f)
    return path


@pytest.mark.parametrize("name", list(NIR_DAMAGE))
def test_damaged_nir_is_rejected_with_a_clear_error(good_nir, name):
    path = damaged_nir(good_nir, name)
    _, cls, must = NIR_DAMAGE[name]
    with pytest.raises(cls) as ei:
        edgebrain.load(path)
    check_error(ei.value, path, *must)


def test_unknown_neuron_field_is_reported_not_silently_ignored(good_nir, work):
    path = work / "extra_field.nir"
    shutil.copy(good_nir, path)
    with h5py.File(path, "r+") as f:
        f[N + "lif1/refractory_period"] = np.full(N_H, 2e-3)
    m = edgebrain.load(path)
    warnings = m.graph.meta["import_report"]["warnings"]
    assert any("lif1" in w and "refractory_period" in w and "ignored" in w for w in warnings), warnings


def _not_hdf5(work):
    p = work / "text.nir"
    p.write_text("input -> fc1 -> lif1 -> output\n")
    return p


def _truncated_nir(good: Path, at: int) -> Path:
    blob = good.read_bytes()
    n = at if at >= 0 else len(blob) + at
    p = good.parent / f"truncated_{n}.nir"
    p.write_bytes(blob[:n])
    return p


TRUNCATE_AT = [0, 8, 100, 512, 3000, 0.5, -100, -1]  # byte offsets (a float: that fraction of the file)


def _truncations(good):
    size = good.stat().st_size
    return [_truncated_nir(good, int(a * size) if isinstance(a, float) else a) for a in TRUNCATE_AT]


def test_files_that_are_not_intact_hdf5_are_rejected(good_nir, work):
    cases = [_not_hdf5(work), work / "empty.nir"] + _truncations(good_nir)
    (work / "empty.nir").write_bytes(b"")
    for path in cases:
        with pytest.raises(FormatError) as ei:
            edgebrain.load(path)
        msg = str(ei.value)
        assert str(path) in msg and "\n" not in msg and says_expected(msg), msg


def test_nir_byte_flips_never_crash_or_hang(good_nir, work):
    """Random corruption of the HDF5 bytes, in a child process with a timeout (the HDF5 library is C
    code: a hang or a crash must fail the test, not take the test run down)."""
    script = textwrap.dedent(f"""
        import sys, numpy as np, edgebrain
        from edgebrain.errors import EdgebrainError
        good = open({str(good_nir)!r}, "rb").read()
        rng = np.random.default_rng(2024)
        path = {str(work / "flipped.nir")!r}
        x = np.ones((5, {N_IN}), np.float32)
        loaded = rejected = 0
        for i in range(160):
            b = bytearray(good)
            for _ in range(1 + i % 3):           # 1..3 flipped bits
                b[int(rng.integers(len(b)))] ^= 1 << int(rng.integers(8))
            if i % 8 == 0:                        # or a run of garbage bytes
                o = int(rng.integers(len(b) - 16))
                b[o:o + 16] = rng.integers(0, 256, 16, dtype=np.uint8).tobytes()
            open(path, "wb").write(bytes(b))
            try:
                edgebrain.load(path).session().run(x)
                loaded += 1
            except EdgebrainError as e:
                assert path in str(e) and "\\n" not in str(e), str(e)
                rejected += 1
        print(loaded, rejected)
    """)
    try:
        p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=_env())
    except subprocess.TimeoutExpired:
        pytest.fail("loading corrupted NIR files hung")
    assert p.returncode == 0, f"a corrupted NIR file raised something else than EdgebrainError:\n{p.stderr}"
    loaded, rejected = map(int, p.stdout.split())
    assert rejected > 0 and loaded + rejected == 160


# also run as real processes: (damage, command)
NIR_CLI_REAL = [("missing_weight", "convert"), ("weight_wrong_in", "inspect"), ("unknown_type", "convert"),
                ("edge_to_missing_node", "inspect"), ("edges_1d", "convert"), ("nan_weight", "inspect"),
                ("inf_bias", "convert")]


def test_cli_rejects_damaged_nir_in_one_line(good_nir, work):
    calls, real = [], []
    for name, (_, _, words) in NIR_DAMAGE.items():
        path = damaged_nir(good_nir, name)
        must = [str(path)] + [w.strip("'") for w in words]
        for cmd in ("convert", "inspect"):
            if (name, cmd) in NIR_CLI_REAL:
                real.append(len(calls))
            args = ("convert", path, "-o", work / f"{name}.ebm") if cmd == "convert" else ("inspect", path)
            calls.append((args, *must))
    size = good_nir.stat().st_size
    for k, path in enumerate([_not_hdf5(work), _truncated_nir(good_nir, 512), _truncated_nir(good_nir, size // 2),
                              _truncated_nir(good_nir, size - 1)]):
        if k in (0, 3):
            real += [len(calls), len(calls) + 1]
        calls.append((("convert", path, "-o", work / "x.ebm"), str(path)))
        calls.append((("inspect", path), str(path)))
    assert_cli_errors(calls, real)
    assert not list(work.glob("missing_*.ebm")) and not (work / "x.ebm").exists()


# --------------------------------------------------------------------------- damaged .ebm


def _layout(path):
    """(header length, data start, [(buffer start, end)]) of a valid model file."""
    import json

    blob = Path(path).read_bytes()
    (hlen,) = struct.unpack_from("<I", blob, 12)
    header = json.loads(blob[16:16 + hlen])
    data0 = 16 + hlen + 4
    data0 += (-data0) % ebm.ALIGN
    bufs = [(data0 + e["offset"], data0 + e["offset"] + e["nbytes"]) for e in header["buffers"]]
    return hlen, data0, bufs, header


def _in_padding(off, hlen, data0, bufs):
    if 16 + hlen + 4 <= off < data0:
        return True
    return off >= data0 and not any(a <= off < b for a, b in bufs)


def _write(work, name, blob) -> Path:
    p = work / name
    p.write_bytes(bytes(blob))
    return p


def _buffer_of(header, node, field):
    nd = next(n for n in header["graph"]["nodes"] if n["name"] == node)
    return nd["arrays"][field]["$buf"]


def ebm_damages(fpath: Path, work: Path):
    """name -> (damaged file, words its error must contain)."""
    blob = fpath.read_bytes()
    hlen, data0, bufs, header = _layout(fpath)
    w = _buffer_of(header, "fc1", "weight")
    wstart = bufs[w][0]

    def flip(off, bit=0):
        b = bytearray(blob)
        b[off] ^= 1 << bit
        return b

    newer = bytearray(blob)
    struct.pack_into("<HH", newer, 8, ebm.VERSION[0] + 1, 0)
    pad = next(o for o in range(16 + hlen + 4, len(blob)) if _in_padding(o, hlen, data0, bufs))
    return {
        "empty": (b"", ["0 bytes"]),
        "truncated_in_magic": (blob[:5], ["5 bytes"]),
        "truncated_in_header": (blob[:16 + hlen // 2], ["offset 16", "truncated"]),
        "truncated_in_crc": (blob[:16 + hlen + 2], ["offset 16", "truncated"]),
        "truncated_in_data": (blob[:wstart + 5], ["truncated", str(len(blob))]),
        "one_byte_short": (blob[:-1], ["truncated", str(len(blob))]),
        "header_bit_flipped": (flip(16 + hlen // 3, 5), ["checksum", f"offset {16 + hlen}"]),
        "crc_bit_flipped": (flip(16 + hlen + 1, 2), ["checksum", f"offset {16 + hlen}"]),
        "header_length_flipped": (flip(13, 1), ["offset"]),
        "weight_bit_flipped": (flip(wstart + 7, 6), [f"buffer {w}", "'fc1'", "'weight'", "SHA-256",
                                                     str(bufs[w][0])]),
        "padding_byte_set": (flip(pad, 0), [f"offset {pad}", "padding", "zeros"]),
        "garbage_appended": (blob + b"\x00garbage", ["8 unexpected bytes", f"offset {len(blob)}"]),
        "newer_version": (newer, [f"{ebm.VERSION[0] + 1}.0", "newer", "upgrade"]),
        "magic_replaced": (b"EDGEBRAX" + blob[8:], ["magic", "offset 0", "EDGEBRN"]),
        "nir_magic": (b"\x89HDF\r\n\x1a\n" + blob[8:], []),
    }


def test_damaged_model_files_are_rejected_with_offsets(models, work):
    fpath = models[0]
    for name, (blob, must) in ebm_damages(fpath, work).items():
        path = _write(work, f"dmg_{name}.ebm", blob)
        with pytest.raises(FormatError) as ei:
            edgebrain.load(path)
        msg = str(ei.value)
        assert str(path) in msg and "\n" not in msg, msg
        for w in must:
            assert w in msg, f"{name}: error does not mention {w!r}: {msg}"
        if name != "nir_magic":  # (that one is read as HDF5, whose library gives its own reason)
            assert says_expected(msg) or "corrupted" in msg or "truncated" in msg, f"{name}: {msg}"


def test_truncations_of_a_model_file_are_rejected(models, work):
    for fpath in models[:2]:
        blob = fpath.read_bytes()
        hlen, data0, bufs, _ = _layout(fpath)
        cuts = set(range(0, 16 + hlen + 8)[::5]) | set(range(len(blob) - 80, len(blob)))  # header, tail
        cuts |= set(range(data0, len(blob), 7))  # throughout the data
        for a, b in bufs:  # around every buffer boundary
            cuts |= {a - 1, a, a + 1, b - 1, b, b + 1}
        path = work / "cut.ebm"
        for n in sorted(c for c in cuts if 0 <= c < len(blob)):
            path.write_bytes(blob[:n])
            try:
                edgebrain.load(path)
            except FormatError as e:
                assert str(path) in str(e) and "\n" not in str(e)
            else:
                pytest.fail(f"{fpath.name} cut to {n} of {len(blob)} bytes was loaded")


@pytest.fixture(scope="module")
def ebm_bytes(models):
    fpath, qpath, m, qm = models
    return {"float": (fpath.read_bytes(), _layout(fpath), _outputs(m)),
            "int": (qpath.read_bytes(), _layout(qpath), _outputs(qm, "int"))}


@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), precision=st.sampled_from(["float", "int"]))
def test_fuzz_model_files(ebm_bytes, work, data, precision):
    """Random truncations, bit flips and appended garbage: loading raises an EdgebrainError, or (only
    for a flip in alignment padding) the model runs exactly as the original. Anything else fails."""
    blob, (hlen, data0, bufs, _), ref = ebm_bytes[precision]
    kind = data.draw(st.sampled_from(["flip", "flip", "truncate", "append"]))
    b = bytearray(blob)
    off = None
    if kind == "flip":
        off = data.draw(st.integers(0, len(b) - 1))
        b[off] ^= 1 << data.draw(st.integers(0, 7))
    elif kind == "truncate":
        b = b[:data.draw(st.integers(0, len(b) - 1))]
    else:
        b += data.draw(st.binary(min_size=1, max_size=64))
    path = work / f"fuzz_{precision}.ebm"
    path.write_bytes(bytes(b))
    try:
        m = edgebrain.load(path)
    except EdgebrainError as e:
        assert str(path) in str(e) and "\n" not in str(e)
        return
    assert kind == "flip" and _in_padding(off, hlen, data0, bufs), f"{kind} at {off} was loaded silently"
    np.testing.assert_array_equal(_outputs(m, precision), ref)


def test_flipped_padding_is_rejected_too(models, work):
    """Stricter than the fuzz property: edgebrain checks that alignment padding is zero, so every
    single-bit flip anywhere in the file is detected."""
    for fpath in models[:2]:
        blob = fpath.read_bytes()
        hlen, data0, bufs, _ = _layout(fpath)
        pads = [o for o in range(16 + hlen + 4, len(blob)) if _in_padding(o, hlen, data0, bufs)]
        assert pads
        for off in pads[:: max(1, len(pads) // 40)] + [pads[-1]]:
            b = bytearray(blob)
            b[off] ^= 0x80
            path = _write(work, "pad.ebm", b)
            with pytest.raises(FormatError, match=f"offset {off}"):
                edgebrain.load(path)


def _rehead(blob: bytes, mutate) -> bytes:
    """A model file whose JSON header was edited and given a matching CRC (a hand-made or buggy file)."""
    import json
    import zlib

    (hlen,) = struct.unpack_from("<I", blob, 12)
    data0 = 16 + hlen + 4
    data0 += (-data0) % ebm.ALIGN
    header = json.loads(blob[16:16 + hlen])
    mutate(header)
    hj = json.dumps(header).encode()
    pre = blob[:12] + struct.pack("<I", len(hj)) + hj + struct.pack("<I", zlib.crc32(hj))
    return pre + b"\0" * ((-len(pre)) % ebm.ALIGN) + blob[data0:]


def _qnode(name, key, value):
    def mutate(h):
        h["quant"]["nodes"][name][key] = value
    return mutate


def test_well_formed_but_wrong_headers_are_rejected(models, work):
    """A header with a valid CRC but contents the runtime cannot use (wrong types, shapes that would
    make the kernels read past a buffer) is refused at load time, naming the node and field."""
    fpath, qpath, _, _ = models
    qblob, fblob = qpath.read_bytes(), fpath.read_bytes()
    h = _layout(qpath)[3]
    w_buf = h["quant"]["nodes"]["fc1"]["w"]
    rq_buf = h["quant"]["nodes"]["fc2"]["rq_m"]
    cases = {
        "weights of another layer": (qblob, _qnode("fc2", "w", w_buf), ["fc2", "'w'", "(3, 8)"]),
        "per-channel multiplier too short": (qblob, _qnode("fc1", "rq_m", rq_buf), ["fc1", "'rq_m'", "(8,)"]),
        "missing quant field": (qblob, lambda h: h["quant"]["nodes"]["lif1"].pop("thr"), ["lif1", "'thr'"]),
        "state scale is text": (qblob, _qnode("lif2", "s_v", "big"), ["lif2", "'s_v'"]),
        "bad weight_bits": (qblob, lambda h: h["quant"].__setitem__("weight_bits", 3), ["weight_bits"]),
        "quant not an object": (qblob, lambda h: h.__setitem__("quant", [1, 2]), ["quant"]),
        "dt is text": (fblob, lambda h: h["meta"].__setitem__("dt", "fast"), ["dt"]),
        "meta not an object": (fblob, lambda h: h.__setitem__("meta", 5), ["meta"]),
        "unknown node kind": (fblob, lambda h: h["graph"]["nodes"][2].__setitem__("kind", "Banana"),
                              ["Banana"]),
        "edge to nowhere": (fblob, lambda h: h["graph"]["edges"].append(["lif2", "nowhere"]), ["nowhere"]),
        "nodes not a list": (fblob, lambda h: h["graph"].__setitem__("nodes", 7), ["malformed"]),
        "buffer reference out of range": (
            fblob, lambda h: h["graph"]["nodes"][1]["arrays"].__setitem__("weight", {"$buf": 999}), ["999"]),
    }
    for name, (blob, mutate, must) in cases.items():
        path = _write(work, "hand_made.ebm", _rehead(blob, mutate))
        with pytest.raises(EdgebrainError) as ei:
            edgebrain.load(path)
        msg = str(ei.value)
        assert str(path) in msg, f"{name}: {msg}"
        for w in must:
            assert w in msg, f"{name}: error does not mention {w!r}: {msg}"


def _stream(key, value):
    def mutate(h):
        h["meta"].setdefault("stream", {})[key] = value
    return mutate


def test_hand_made_metadata_is_checked_against_one_schema(models, work):
    """Stream settings and the model card of a file with a valid CRC are checked on load (issue 11,
    item 11): before, a rate of "fast" or 1e300, an encoder of 5, a non-object card or a result
    row without its precision loaded and failed later as an internal error, and rate -5 ran 0 steps."""
    fblob = models[0].read_bytes()
    cases = {
        "rate is text": (_stream("rate", "fast"), ["meta.stream.rate", "'fast'"]),
        "rate 1e300": (_stream("rate", 1e300), ["meta.stream.rate", "1e+300"]),
        "rate -5": (_stream("rate", -5), ["meta.stream.rate", "-5"]),
        "encoder 5": (_stream("encoder", 5), ["meta.stream.encoder", "5"]),
        "labels for another model": (_stream("labels", list("abcdefg"[:N_OUT + 1])), [
            "meta.stream.labels", f"{N_OUT + 1} class names", f"expected {N_OUT}"]),
        "card not an object": (lambda h: h["meta"].__setitem__("card", [1, 2]), ["meta.card", "[1, 2]"]),
        "result row without precision": (
            lambda h: h["meta"].__setitem__("card", {"results": [{"model": "m", "accuracy": 0.9}]}),
            ["meta.card.results[0]", "precision"]),
    }
    for name, (mutate, must) in cases.items():
        path = _write(work, "hand_made_meta.ebm", _rehead(fblob, mutate))
        with pytest.raises(FormatError) as ei:
            edgebrain.load(path)
        msg = str(ei.value)
        assert msg.startswith(f"{path}: header field") and "expected" in msg, f"{name}: {msg}"
        for w in must:
            assert w in msg, f"{name}: error does not mention {w!r}: {msg}"


def test_out_of_range_fixed_point_fields_in_a_file_are_rejected(models, work):
    """Integer fields written by a buggy writer (valid CRC, right types and shapes) but outside what
    the kernels can compute with: shifts of -7, 63, 200; dq of +-2**31; input lo > hi (issue 11)."""
    from edgebrain.model import Model

    _, _, _, qm = models
    lif = qm.quant["nodes"]["lif1"]

    def with_field(node, key, value):
        q = {**qm.quant, "nodes": {**qm.quant["nodes"], node: {**qm.quant["nodes"][node], key: value}}}
        return q

    cases = {
        "shift -7": (with_field("lif1", "gmem_s", np.full_like(lif["gmem_s"], -7)), ["lif1", "'gmem_s'", "-7"]),
        "shift 63": (with_field("lif1", "gmem_s", np.full_like(lif["gmem_s"], 63)), ["lif1", "'gmem_s'", "63"]),
        "shift 200": (with_field("fc2", "rq_s", np.full_like(qm.quant["nodes"]["fc2"]["rq_s"], 200)),
                      ["fc2", "'rq_s'", "200"]),
        "dq -2**31": (with_field("lif2", "dq", -2 ** 31), ["lif2", "'dq'", "-2147483648"]),
        "dq 2**31-1": (with_field("lif2", "dq", 2 ** 31 - 1), ["lif2", "'dq'", "2147483647"]),
        "input lo > hi": ({**with_field("input", "lo", 100), "nodes": {
            **qm.quant["nodes"], "input": {**qm.quant["nodes"]["input"], "lo": 100, "hi": -100}}},
            ["input", "'lo' = 100", "'hi' = -100", "lo <= hi"]),
    }
    for name, (quant, must) in cases.items():
        path = work / "buggy_writer.ebm"
        Model(qm.graph, quant).save(path)
        with pytest.raises(FormatError) as ei:
            edgebrain.load(path)
        msg = str(ei.value)
        assert msg.startswith(f"{path}: quantization parameters: node "), f"{name}: {msg}"
        for w in must:
            assert w in msg, f"{name}: error does not mention {w!r}: {msg}"


def test_cli_rejects_damaged_model_files_in_one_line(models, work):
    damages = ebm_damages(models[0], work)
    calls = []
    np.save(work / "ok.npy", _inputs(10))
    for name, (blob, must) in damages.items():
        path = _write(work, f"cli_{name}.ebm", blob)
        cmd = ("inspect", path) if len(calls) % 2 else ("run", path, "--input", work / "ok.npy", "-o",
                                                         work / "o.npz")
        calls.append((cmd, str(path), *must))
    real = [i for i, c in enumerate(calls) if any(n in str(c[0][1]) for n in (
        "cli_truncated_in_header", "cli_weight_bit_flipped", "cli_newer_version", "cli_magic_replaced"))]
    assert_cli_errors(calls, real)
    assert not (work / "o.npz").exists()


# --------------------------------------------------------------------------- bad input arrays

BAD_STEPS = {
    "too long": np.ones(N_IN + 1, np.float32),
    "too short": np.ones(N_IN - 1),
    "wrong rank": np.ones((2, N_IN // 2), np.float32),
    "extra batch axis": np.ones((1, 1, N_IN), np.float32),
    "scalar": np.float32(1.0),
    "object dtype": np.array([1.0, None, 2.0, 3.0], dtype=object),
    "str dtype": np.array(["1", "2", "3", "4"]),
    "bytes dtype": np.array([b"1", b"2", b"3", b"4"]),
    "complex dtype": np.ones(N_IN, np.complex64),
    "datetime dtype": np.zeros(N_IN, "datetime64[s]"),
    "ragged list": [[1.0, 2.0], [3.0]],
    "NaN": np.array([0.0, np.nan, 1.0, 0.0], np.float32),
    "inf": np.array([np.inf, 0.0, 0.0, 0.0], np.float32),
    "-inf float64": np.array([0.0, 0.0, -np.inf, 0.0]),
    "beyond float32": np.array([0.0, 1e39, 0.0, 0.0]),
}


def _state(sess):
    return {k: v.copy() for k, v in sess.snapshot().items()} | {"sat": sess.saturations.copy()}


def _same_state(a, b):
    return set(a) == set(b) and all(np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("precision", ["float", "int"])
def test_bad_step_inputs_are_rejected_and_leave_the_session_unchanged(models, precision):
    m = models[2] if precision == "float" else models[3]
    sess = m.session(precision)
    xs = _inputs(12)
    for x in xs[:6]:
        sess.step(x)
    before = _state(sess)
    for name, bad in BAD_STEPS.items():
        with pytest.raises(InputError) as ei:
            sess.step(bad)
        msg = str(ei.value)
        assert "\n" not in msg and says_expected(msg), f"{name}: {msg}"
        if name in ("too long", "too short", "wrong rank", "extra batch axis"):
            assert str(np.shape(bad)) in msg and f"({N_IN},)" in msg, f"{name}: {msg}"
        assert _same_state(before, _state(sess)), f"a rejected step ({name}) changed the session state"
    # the session goes on exactly as one that never saw the bad inputs
    ref = m.session(precision)
    for x in xs[:6]:
        ref.step(x)
    for x in xs[6:]:
        np.testing.assert_array_equal(sess.step(x), ref.step(x))


def test_bad_step_in_a_batched_session(models):
    m = models[2]
    sess = m.session("float", batch=3)
    sess.step(np.ones((3, N_IN), np.float32))
    before = _state(sess)
    x = np.ones((3, N_IN), np.float32)
    x[2, 1] = np.nan  # only the last batch row is bad: no row may advance
    for bad in (x, np.ones(N_IN, np.float32), np.ones((2, N_IN), np.float32)):
        with pytest.raises(InputError, match="expected"):
            sess.step(bad)
        assert _same_state(before, _state(sess))


BAD_RUNS = {
    "wrong feature size": np.ones((10, N_IN + 2), np.float32),
    "missing time axis": np.ones(N_IN, np.float32),
    "wrong batch": np.ones((10, 2, N_IN), np.float32),
    "wrong rank": np.ones((10, 1, 1, N_IN), np.float32),
    "object dtype": np.array([[None] * N_IN] * 5, dtype=object),
    "str dtype": np.ones((5, N_IN)).astype(str),
    "complex dtype": np.ones((5, N_IN), np.complex128),
    "ragged list": [[1.0] * N_IN, [1.0] * (N_IN - 1)],
    "NaN late in the sequence": np.vstack([np.ones((20, N_IN)), [[0, 0, np.nan, 0]]]).astype(np.float32),
    "inf": np.full((3, N_IN), np.inf),
    "beyond float32": np.full((3, N_IN), 1e300),
}


@pytest.mark.parametrize("precision", ["float", "int"])
def test_bad_run_inputs_are_rejected_and_leave_the_session_unchanged(models, precision):
    m = models[2] if precision == "float" else models[3]
    sess = m.session(precision)
    sess.run(_inputs(5))
    before = _state(sess)
    for name, bad in BAD_RUNS.items():
        with pytest.raises(InputError) as ei:
            sess.run(bad)
        msg = str(ei.value)
        assert "\n" not in msg and says_expected(msg), f"{name}: {msg}"
        assert _same_state(before, _state(sess)), f"a rejected run ({name}) changed the session state"
    with pytest.raises(InputError, match="ghost"):
        sess.run(_inputs(5), record=["ghost"])
    assert _same_state(before, _state(sess))
    with pytest.raises(InputError, match=r"index \(20, 2\)"):
        sess.run(BAD_RUNS["NaN late in the sequence"])


class _Trap:
    """Unpickling this creates a file: proof that a pickle was (or was not) executed."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def bad_npy_files(work: Path) -> dict:
    """name -> (path, words the error must contain)."""
    d = work / "npy"
    d.mkdir(exist_ok=True)
    ok = _inputs(10)
    files = {}

    def save(name, a, *must, **kw):
        p = d / f"{name}.npy"
        np.save(p, a, **kw)
        files[name] = (p, list(must))

    save("nan", np.where(ok > 0, np.nan, 0).astype(np.float32), "NaN")
    save("inf", np.full((5, N_IN), -np.inf), "NaN or infinite")
    save("wrong_features", np.ones((10, N_IN + 1), np.float32), "(10, 5)", f"({N_IN},)")
    save("wrong_rank", np.ones((10, 2, 2, N_IN), np.float32), "(10, 2, 2, 4)")
    save("no_time_axis", np.ones(N_IN, np.float32), "(4,)")
    save("complex", ok.astype(np.complex64), "complex64")
    save("strings", ok.astype(str), "<U")
    pickled = d / "pickled.npy"
    with open(pickled, "wb") as f:  # a pickled object array whose unpickling would create a file
        np.save(f, np.array([_Trap(d / "UNPICKLED"), None], dtype=object), allow_pickle=True)
    files["pickled"] = (pickled, ["pickle", "object"])
    blob = (d / "nan.npy").read_bytes()
    (d / "truncated_data.npy").write_bytes(blob[:-10])
    files["truncated_data"] = (d / "truncated_data.npy", ["truncated", "(10, 4)"])
    (d / "truncated_header.npy").write_bytes(blob[:40])
    files["truncated_header"] = (d / "truncated_header.npy", ["header"])
    (d / "text.npy").write_text("0 1 0 1\n1 0 1 0\n")
    files["text"] = (d / "text.npy", ["offset 0", "NUMPY"])
    (d / "empty.npy").write_bytes(b"")
    files["empty"] = (d / "empty.npy", ["offset 0"])
    huge = d / "huge_header.npy"  # a header promising 1.6 TB: refused before any allocation
    with open(huge, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False,
                                                 "shape": (10 ** 11, N_IN)})
        f.write(b"\0" * 64)
    files["huge_header"] = (huge, ["truncated"])
    np.savez(d / "two.npz", a=ok, b=ok)
    files["npz_two_arrays"] = (d / "two.npz", ["'a'", "'b'"])
    return files


def test_cli_rejects_bad_input_files(models, good_nir, work):
    fpath = models[0]
    files = bad_npy_files(work)
    calls = [(("run", fpath, "--input", p, "-o", work / "never.npz"), str(p), *must) for p, must in files.values()]
    calls.append((("run", fpath, "--input", good_nir, "-o", work / "never.npz"), str(good_nir), "NUMPY"))
    calls.append((("run", fpath, "--input", work / "no_such.npy", "-o", work / "never.npz"), "no_such.npy",
                  "not found"))
    real = [i for i, c in enumerate(calls) if Path(c[0][3]).stem in ("pickled", "truncated_data", "text", "nan",
                                                                      "wrong_features")]
    assert len(real) == 5
    assert_cli_errors(calls, real)
    assert not (work / "npy" / "UNPICKLED").exists(), "the pickled input was unpickled"
    assert not (work / "never.npz").exists()


# --------------------------------------------------------------------------- CLI misuse


def test_cli_misuse_is_one_line(models, good_nir, work):
    fpath = models[0]
    np.save(work / "ok.npy", _inputs(10))
    np.save(work / "calib_wrong.npy", np.ones((50, N_IN + 3), np.float32))
    out = work / "misuse.ebm"
    calls = [
        (("convert", good_nir, "-o", out, "--dialect", "pytorch-lightning"), "pytorch-lightning", "snntorch"),
        (("inspect", good_nir, "--dialect", "banana"), "banana"),
        (("convert", good_nir, "-o", out, "--reset", "sideways"), "sideways", "zero", "subtract"),
        (("convert", good_nir, "-o", out, "--dt", "-1e-4"), "dt", "positive"),
        (("convert", good_nir, "-o", out, "--dt", "0"), "dt", "positive"),
        (("inspect", good_nir, "--dt", "nan"), "dt"),
        (("run", fpath, "--input", work / "ok.npy", "-o", work / "o.npz", "--precision", "int"), str(fpath),
         "--quantize"),
        (("convert", good_nir, "-o", out, "--quantize", "int8"), "--calib"),
        (("convert", good_nir, "-o", out, "--quantize", "int8", "--calib", work / "calib_wrong.npy"),
         "calib_wrong.npy", "(50, 7)"),
        (("convert", good_nir, "-o", out, "--quantize", "int8", "--calib", work / "npy_missing.npy"),
         "npy_missing.npy"),
        (("run", fpath, "--input", work / "ok.npy", "-o", work / "o.npz", "--record", "lif9"), "lif9", "lif1"),
        (("run", fpath, "--input", work / "ok.npy", "-o", work / "o.npz", "--precision", "double"), "--precision"),
        (("convert", good_nir, "-o", out, "--quantize", "int3"), "--quantize"),
        (("inspect", fpath, "--dt", "1e-3"), "NIR"),
        (("inspect", work / "does_not_exist.ebm"), "does_not_exist.ebm", "not found"),
        (("convert", good_nir, "-o", work / "no_dir" / "m.ebm"), "no_dir"),
        (("frobnicate",), "frobnicate"),
    ]
    assert_cli_errors(calls, real=[0, 2, 3, 6, 7, 10, 11])
    assert not out.exists()


def test_library_misuse_names_what_was_expected(models, good_nir):
    for kw, must in [({"dialect": "banana"}, "snntorch"), ({"reset": "sideways"}, "subtract"),
                     ({"dt": -1e-4}, "positive"), ({"dt": 0.0}, "positive"), ({"dt": float("inf")}, "positive")]:
        with pytest.raises(ModelError) as ei:
            edgebrain.load(good_nir, **kw)
        check_error(ei.value, good_nir, must)
    with pytest.raises(ModelError) as ei:
        models[2].session("int")
    assert "--quantize" in str(ei.value)
    with pytest.raises(InputError):
        models[2].session("float", batch=0)


def test_python_dash_m_edgebrain_works(good_nir, work):
    p = cli("inspect", good_nir, "--json", module="edgebrain")
    assert p.returncode == 0, p.stderr
    assert '"input_shape"' in p.stdout
    p = cli("inspect", work / "nothing.nir", module="edgebrain")
    assert not cli_error_problems(p, ("inspect",), "nothing.nir")
