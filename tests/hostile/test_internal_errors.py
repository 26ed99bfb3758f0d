"""Issue 11, item 11 (and 12): no input a user can give reaches the command line's generic
``internal error`` handler (exit 1). Every command that reads a file is run on real recordings and
models from ``../shared/datasets`` and the package, each damaged several ways (emptied, cut, bytes
flipped, garbage after the magic number), and must end with exit 0 (the damage was stepped over)
or exit 2 with exactly one ``error:`` line, never a traceback, never a hang.

The many small runs share one child process that calls the real ``edgebrain.cli.main`` once per
case (per case: a wall-clock alarm; stdout and stderr captured), so the whole matrix costs seconds.

Then the specific cases the issue names, as real separate commands: a FLAC file with one byte
changed (libsndfile's failing seek), events ``.npy`` with NaN/infinite float fields, ``stream
--json`` with standard output closed, and a CSV with 10⁶ columns (called "empty file" before).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO
from tests.hostile._harness import (
    DATASET_FILES,
    ZOO_FOR,
    assert_ok,
    example_model,
    run_cli,
    run_command,
    valid_input,
)

#: in the child: run each argv through the real CLI entry point and report exit code and stderr
DRIVER = r'''
import contextlib, io, json, signal, sys
from edgebrain.cli import main

class Hang(BaseException):
    pass

def on_alarm(*_):
    raise Hang()

signal.signal(signal.SIGALRM, on_alarm)
cases = json.load(open(sys.argv[1]))
results = []
for argv in cases:
    err, out = io.StringIO(), io.StringIO()
    code = 0
    signal.alarm(int(sys.argv[3]))
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            try:
                main(argv)
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except Hang:
        code = "hung"
    except BaseException as e:  # anything main() let through
        code = "escaped " + type(e).__name__ + ": " + str(e)[:300]
    finally:
        signal.alarm(0)
    results.append({"argv": argv, "code": code, "stderr": err.getvalue()[-3000:]})
    with open(sys.argv[2], "w") as f:  # after every case: a crash still leaves the ones before
        json.dump(results, f)
'''

DAMAGES = ("empty", "header only", "cut", "flipped head", "flipped body", "garbage")
#: output suffix of `record` for each kind of input
RECORD_AS = {"imu_csv": ".csv", "uea_ts": ".csv", "wav": ".wav", "flac": ".wav"}
MAX_BYTES = 200_000  # larger recordings are cut to this first (the damage is what matters)


def damaged(data: bytes, how: str, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    if how == "empty":
        return b""
    if how == "header only":
        return data[:40]
    if how == "cut":  # at an odd place inside the data
        return data[: max(1, len(data) * 2 // 5 + 3)]
    if how.startswith("flipped"):  # bytes changed in the header region, or only after it
        b = bytearray(data)
        lo, hi = (0, min(len(b), 512)) if how == "flipped head" else (len(b) // 4, len(b))
        for pos in rng.integers(lo, hi, 8):
            b[int(pos)] ^= int(rng.integers(1, 256))
        return bytes(b)
    if how == "garbage":  # the magic number kept (so the format is still detected), then noise
        keep = min(len(data), 16)
        return data[:keep] + rng.integers(0, 256, len(data) - keep, dtype=np.uint8).tobytes()
    raise KeyError(how)


def _cases(tmp: Path) -> list[list[str]]:
    cases = []
    out = tmp / "out"
    out.mkdir()
    kinds = {}
    for kind in [*DATASET_FILES, "events_npy"]:
        try:
            kinds[kind] = valid_input(kind)
        except pytest.skip.Exception:
            continue
    if not kinds:
        pytest.skip("no recordings found")
    for i, (kind, src) in enumerate(sorted(kinds.items())):
        data = Path(src).read_bytes()[:MAX_BYTES]
        for how in DAMAGES:
            f = tmp / f"{kind}-{how.replace(' ', '-')}{Path(src).suffix}"
            f.write_bytes(damaged(data, how, seed=i))
            cases += [["data", "info", str(f), "--json"], ["data", "info", str(f)]]
            cases.append(["stream", ZOO_FOR.get(kind, "zoo:nmnist"), "--source", str(f), "--json"])
            if kind in RECORD_AS:
                cases.append(["record", "--source", str(f), "-o", str(out / f"{f.stem}{RECORD_AS[kind]}")])
    models = {"ebm": REPO / "edgebrain" / "zoo" / "har-lif.ebm", "nir": Path(example_model())}
    samples = valid_input("samples_npy")
    for kind, src in models.items():
        data = src.read_bytes()
        for how in DAMAGES:
            f = tmp / f"model-{how.replace(' ', '-')}.{kind}"
            f.write_bytes(damaged(data, how, seed=len(kind)))
            cases += [["inspect", str(f), "--json"],
                      ["run", str(f), "-i", str(samples), "-o", str(out / f"run-{f.stem}-{kind}.npz")],
                      ["convert", str(f), "-o", str(out / f"conv-{f.stem}.{'nir' if kind == 'ebm' else 'ebm'}")],
                      ["stream", str(f), "--source", str(valid_input("imu_csv")), "--json"],
                      ["devices", "fit", str(f), "--device", "rp2040"]]
    data = Path(samples).read_bytes()
    for how in DAMAGES:
        f = tmp / f"input-{how.replace(' ', '-')}.npy"
        f.write_bytes(damaged(data, how, seed=7))
        cases.append(["run", str(example_model()), "-i", str(f), "-o", str(out / f"run-{f.stem}.npz")])
    return cases


def test_no_damaged_input_reaches_the_internal_error_handler(tmp_path):
    cases = _cases(tmp_path)
    spec, res = tmp_path / "cases.json", tmp_path / "results.json"
    spec.write_text(json.dumps(cases))
    r = run_command([sys.executable, "-c", DRIVER, str(spec), str(res), "60"], timeout=900, label=["(driver)"])
    results = json.loads(res.read_text()) if res.exists() else []
    assert len(results) == len(cases), f"the driver stopped after {len(results)} of {len(cases)} cases\n{r.describe()}"
    bad = []
    for x in results:
        errors = [ln for ln in x["stderr"].splitlines() if ln.startswith("error:")]
        if (x["code"] not in (0, 2) or "internal error" in x["stderr"] or "Traceback" in x["stderr"]
                or (x["code"] == 2 and len(errors) != 1)):
            bad.append(f"edgebrain {' '.join(x['argv'])} -> {x['code']}: {x['stderr'][-400:]}")
    assert not bad, f"{len(bad)} of {len(results)} cases not handled:\n" + "\n".join(bad)


# --------------------------------------------------------------------------- the cases the issue names


def _one_error_line(r, contains=None):
    """Exit 2, exactly one `error:` line, no traceback or internal error (repairs logged before the
    error may add lines of their own)."""
    d = r.describe()
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr, d
    assert r.returncode == 2, d
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, d
    if contains:
        assert contains.lower() in errors[0].lower(), d
    return errors[0]


def _flac_with(tmp_path, pos):
    src = valid_input("flac")
    b = bytearray(Path(src).read_bytes())
    b[pos] ^= 0xFF
    f = tmp_path / f"byte{pos}.flac"
    f.write_bytes(bytes(b))
    return src, f


def test_flac_with_a_damaged_metadata_byte_decodes_every_sample(tmp_path):
    """Byte 84 is inside the VORBIS_COMMENT block of this file: libsndfile then fails seek(0), which
    was outside the error handling (internal error); the audio frames are intact, so every sample
    must come out, equal to the undamaged file's."""
    from edgebrain.stream.sources.audio import FlacSource

    src, f = _flac_with(tmp_path, 84)
    clean, damaged_ = FlacSource(src).read_all(), FlacSource(f).read_all()
    assert clean.shape == damaged_.shape and np.array_equal(clean, damaged_)
    r = run_cli(["data", "info", str(f), "--json"], timeout=60)
    assert_ok(r)
    assert json.loads(r.stdout)["n_items"] == len(clean)


def test_flac_with_a_damaged_first_frame_is_one_error_line(tmp_path):
    """Byte 86 is the first audio frame's sync code: nothing can be decoded."""
    _, f = _flac_with(tmp_path, 86)
    for args in (["data", "info", str(f)], ["stream", "zoo:kws", "--source", str(f), "--json"]):
        _one_error_line(run_cli(args, timeout=60), contains="flac")


@pytest.mark.parametrize("field", ["x", "y", "t", "p"])
def test_events_npy_with_non_finite_float_fields(tmp_path, field):
    """Float x/y/t/p holding NaN, ±inf or 1e30: those events are dropped (counted), the rest kept;
    before, NaN/inf in x or y was an internal error (int(NaN) while finding the sensor size)."""
    ev = np.load(valid_input("events_npy"))
    dt = np.dtype([("x", "f4"), ("y", "f4"), ("t", "f8"), ("p", "f4")])
    a = np.empty(len(ev), dt)
    for k in "xytp":
        a[k] = ev[k]
    bad_at = [len(a) // 5, len(a) // 3, len(a) // 2, len(a) - 2]
    for i, v in zip(bad_at, [np.nan, np.inf, -np.inf, 1e30]):
        a[field][i] = v
    f = tmp_path / f"nan-{field}.npy"
    np.save(f, a)
    r = run_cli(["data", "info", str(f), "--json"], timeout=60)
    assert_ok(r)
    info = json.loads(r.stdout)
    assert info["sensor_size"] == [34, 34]  # N-MNIST's, from the finite coordinates only
    if field != "p":  # (a NaN polarity is just not positive: the event is kept as OFF)
        assert info["damage"]["dropped"] >= len(bad_at)
    if field not in ("x", "t"):
        return
    r = run_cli(["stream", "zoo:nmnist", "--source", str(f), "--json"], timeout=120)
    assert_ok(r)
    assert json.loads(r.stdout.splitlines()[-1])["summary"]["decisions"] >= 1


def test_stream_json_with_stdout_closed(valid):
    r = run_cli(["stream", "zoo:har-l2mu", "--source", str(valid["imu_csv"]), "--json"], close_stdout=True,
                timeout=120)
    _one_error_line(r, contains="standard output is closed")


def test_csv_with_a_million_columns_is_not_called_empty(tmp_path):
    f = tmp_path / "wide.csv"
    row = ",".join(["0.5"] * 1_000_000)
    f.write_text(",".join(f"c{i}" for i in range(1_000_000)) + "\n" + row + "\n" + row + "\n")
    line = _one_error_line(run_cli(["data", "info", str(f)], timeout=60), contains="longer than")
    assert "empty" not in line
    e = tmp_path / "empty.csv"
    e.write_bytes(b"")
    _one_error_line(run_cli(["data", "info", str(e)], timeout=60), contains="empty file")


@pytest.mark.parametrize("descr", [("x", "S1"), ("t", "c8"), ("t", "M8[us]"), ("y", "(2,)i2")])
def test_events_npy_with_a_field_that_is_not_a_number(tmp_path, descr):
    """x, y, t, p of bytes, complex, dates or sub-arrays: one error line naming the field (the fuzzer
    found bytes: ``int(b'\\x07')`` while finding the sensor size was an internal error)."""
    name, kind = descr
    dt = [(k, kind if k == name else {"x": "i2", "y": "i2", "t": "i8", "p": "u1"}[k]) for k in "xytp"]
    a = np.zeros(20, dt)
    f = tmp_path / "odd.npy"
    np.save(f, a)
    _one_error_line(run_cli(["data", "info", str(f)], timeout=60), contains=f"field '{name}'")
