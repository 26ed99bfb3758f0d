"""Shared fixtures and helpers for edgebrain's tests.

* ``datasets``: the folder of real recordings: ``$EDGEBRAIN_DATA``, else ``../shared/datasets`` beside the
  repository, else the small fixture set committed in ``tests/data`` (the same layout, a few files of
  each dataset; tools/make_fixtures.py builds it, tests/data/README.md lists its sources and licences;
  when it is used, ``$EDGEBRAIN_DATA`` names it for the session so that the commands tests run find it).
  A test that needs a file the fixture set lacks skips saying where to get the full recordings
  (:func:`need`, :func:`need_full`); :func:`expected` gives the facts a test compares a sample file with
  (those measured on the real file, or those recorded for the fixture that stands in for it).
* Readers for the recordings the conformance tests feed: the sp-sw-har smartwatch IMU CSVs and SLAYER's
  ``.bs2`` N-MNIST event files (decoded here, binned into frames).
* ``compare_spikes`` / ``LayerMatch``: step-for-step comparison of two spike trains.

The helpers are plain functions so that ``tools/conformance_report.py`` can import this module too.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pytest

from edgebrain.datasets import find_root

REPO = Path(__file__).resolve().parent.parent

# Property tests draw the same examples on every run (reproducible CI); set
# HYPOTHESIS_PROFILE=explore to draw fresh random examples while developing.
try:
    from hypothesis import settings as _hsettings

    _hsettings.register_profile("repeatable", derandomize=True, deadline=None)
    _hsettings.register_profile("explore", derandomize=False, deadline=None)
    _hsettings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))
except ImportError:  # pragma: no cover
    pass

# --------------------------------------------------------------------------- data location


FIXTURES = REPO / "tests" / "data"
FULL_DATA = ("the full recordings are in ../shared/datasets beside the checkout or wherever $EDGEBRAIN_DATA "
             "points (`edgebrain data fetch NAME` downloads the zoo datasets)")


def on_fixtures(path) -> bool:
    """Whether ``path`` (a data root or a file under one) lies in the fixture set tests/data."""
    try:
        Path(path).resolve().relative_to(FIXTURES.resolve())
        return True
    except ValueError:
        return False


def _env_data() -> str:
    return os.environ.get("EDGEBRAIN_DATA", "")


def find_full_datasets() -> tuple[Path | None, str]:
    """The full datasets folder ($EDGEBRAIN_DATA, else ../shared/datasets beside this checkout) and,
    when there is none, why."""
    if _env_data() and on_fixtures(_env_data()):
        return None, f"EDGEBRAIN_DATA names the fixture set tests/data; {FULL_DATA}"
    p, why = find_root(REPO)
    if p is None and not _env_data():
        why = f"real recordings not found in {REPO.parent / 'shared' / 'datasets'} (nor EDGEBRAIN_DATA); {FULL_DATA}"
    return p, why


def find_datasets() -> tuple[Path | None, str]:
    """The folder of real recordings the tests use: the full datasets when present, else the fixture
    set in tests/data. None (and why) only when $EDGEBRAIN_DATA names something that is not a folder."""
    p, why = find_full_datasets()
    if p is not None or (_env_data() and not on_fixtures(_env_data())):
        return p, why
    if FIXTURES.is_dir():
        return FIXTURES, ""
    return None, why


def pytest_configure(config):
    """When the tests use the fixture set, so do the commands they run (``edgebrain demo`` looks for
    recordings in $EDGEBRAIN_DATA, ../shared/datasets and the user cache): $EDGEBRAIN_DATA names it
    for the whole session, as ../shared/datasets would be found beside a checkout that has it."""
    root, _ = find_datasets()
    if root is not None and on_fixtures(root):
        os.environ["EDGEBRAIN_DATA"] = str(FIXTURES)


@pytest.fixture(scope="session")
def datasets() -> Path:
    p, why = find_datasets()
    if p is None:
        pytest.skip(why)
    return p


def need(path: Path) -> Path:
    """``path``, or skip the test when that file or folder is absent (saying where to get it)."""
    if not path.exists():
        if on_fixtures(path):
            pytest.skip(f"{Path(path).resolve().relative_to(FIXTURES.resolve())} is not in the fixture set "
                        f"tests/data; {FULL_DATA}")
        pytest.skip(f"recording {path} not found")
    return path


def need_full(root: Path, what: str) -> Path:
    """``root``, or skip when it is the fixture set: ``what`` needs the full recordings."""
    if on_fixtures(root):
        pytest.skip(f"{what} needs the full recordings, not the fixture subset in tests/data; {FULL_DATA}")
    return root


def fixture_facts() -> dict:
    """tests/data/fixtures.json: the copied files' hashes; per generated file its source and the facts
    tools/make_fixtures.py took from the source events; per dataset cut to a subset, its counts."""
    import json

    return json.loads((FIXTURES / "fixtures.json").read_text())


def expected(path, **real) -> dict:
    """What a test compares the sample file ``path`` with: ``real`` (facts measured on the real file of
    that name) or, when ``path`` is the generated file of the fixture set that stands in for it, the
    same facts recorded for that file in tests/data/fixtures.json (lists of events as tuples)."""
    if not on_fixtures(path):
        return real
    rel = str(Path(path).resolve().relative_to(FIXTURES.resolve()))
    f = fixture_facts()
    facts = f["generated"].get(rel) or f["subsets"][rel]
    missing = sorted(set(real) - set(facts))
    assert not missing, f"tests/data/fixtures.json has no {missing} for {rel}: rerun tools/make_fixtures.py"
    return {k: ([tuple(e) for e in facts[k]] if k == "first_events" else facts[k]) for k in real}


def run_training_smoke(script: str, datasets: Path, out: Path, needs: Path, *args: str, timeout: float = 300):
    """``tools/train/SCRIPT --smoke --out OUT [ARGS]`` on the recordings in ``datasets`` (a finished
    process, its return code checked); skips without torch, snnTorch and NIR (the train extra) or
    without the file or folder ``needs``."""
    import importlib.util
    import subprocess
    import sys

    for mod in ("torch", "snntorch", "nir"):
        if importlib.util.find_spec(mod) is None:
            pytest.skip(f"{mod} not installed (the train extra: pip install -e '.[train]')")
    if not needs.exists():
        pytest.skip(f"recordings not found: {needs}")
    env = dict(os.environ, EDGEBRAIN_DATA=str(datasets))
    r = subprocess.run([sys.executable, str(REPO / "tools" / "train" / script), "--smoke", "--out", str(out), *args],
                       capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r


# --------------------------------------------------------------------------- real recordings

IMU_CSV = "imu/sp-sw-har/s01/s01_01_sw.csv"
NMNIST = "events/nmnist-small"


def load_imu(path, n: int | None = None) -> np.ndarray:
    """(T, 6) float32: accelerometer x/y/z (m/s²) and gyroscope x/y/z (rad/s) of one sp-sw-har file,
    each channel standardised to zero mean and unit variance over the file."""
    a = np.loadtxt(path, delimiter=",", skiprows=1, usecols=range(6), dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != 6 or not np.isfinite(a).all():
        raise ValueError(f"{path}: expected 6 finite numeric columns, got shape {a.shape}")
    a = (a - a.mean(0)) / np.maximum(a.std(0), 1e-9)
    return a[:n].astype(np.float32)


BS2_DTYPE = np.dtype([("x", np.int16), ("y", np.int16), ("p", np.uint8), ("t", np.int64)])


def read_bs2(path) -> np.ndarray:
    """Decode a SLAYER ``.bs2`` (= N-MNIST ``.bin``) file: 5 bytes per event, one 40-bit big-endian word
    (byte 0 x, byte 1 y, byte 2 bit 7 polarity, bits 22-0 timestamp in µs)."""
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size % 5:
        raise ValueError(f"{path}: {raw.size} bytes is not a whole number of 5-byte events")
    raw = raw.reshape(-1, 5).astype(np.int64)
    ev = np.empty(raw.shape[0], BS2_DTYPE)
    ev["x"], ev["y"] = raw[:, 0], raw[:, 1]
    ev["p"] = raw[:, 2] >> 7
    ev["t"] = ((raw[:, 2] & 0x7F) << 16) | (raw[:, 3] << 8) | raw[:, 4]
    return ev


def events_to_frames(ev: np.ndarray, n_bins: int, bin_us: int, size=(34, 34)) -> np.ndarray:
    """(n_bins, 2, H, W) float32 event counts per polarity (channel 0 OFF, 1 ON) in bins of ``bin_us``
    µs from the first event; events after the last bin are dropped."""
    h, w = size
    frames = np.zeros((n_bins, 2, h, w), np.float32)
    b = (ev["t"] - ev["t"].min()) // bin_us
    keep = (b < n_bins) & (ev["x"] < w) & (ev["y"] < h)
    np.add.at(frames, (b[keep], ev["p"][keep].astype(np.int64), ev["y"][keep], ev["x"][keep]), 1.0)
    return frames


def load_nmnist_frames(root: Path, sample: int = 60001, n_bins: int = 60, bin_us: int = 5000) -> np.ndarray:
    return events_to_frames(read_bs2(need(root / NMNIST / f"{sample}.bs2")), n_bins, bin_us)


# --------------------------------------------------------------------------- comparison


@dataclass
class LayerMatch:
    """How one layer's spike train in edgebrain compares with the framework's."""

    layer: str
    total: int  # neuron-steps compared
    mismatched: int
    rate_native: float  # fraction of neuron-steps with a spike, framework
    rate_edgebrain: float
    first_mismatch: tuple | None  # (t, *neuron index) of the earliest differing neuron-step
    max_dv: float | None = None  # largest |membrane difference| over all steps (None: not compared)
    v_scale: float | None = None  # largest |membrane| in the framework's run

    @property
    def identical(self) -> float:
        return 1.0 - self.mismatched / self.total if self.total else 1.0

    def as_dict(self) -> dict:
        d = asdict(self)
        d["identical"] = self.identical
        d["first_mismatch"] = list(self.first_mismatch) if self.first_mismatch else None
        return d

    def __str__(self):
        s = (f"{self.layer}: {self.identical:.6%} identical ({self.mismatched}/{self.total} differ), "
             f"spike rate {self.rate_native:.3f} native / {self.rate_edgebrain:.3f} edgebrain")
        if self.max_dv is not None:
            s += f", max |membrane difference| {self.max_dv:.3g} (max |v| {self.v_scale:.3g})"
        if self.first_mismatch:
            s += f", first difference at (t, neuron) = {self.first_mismatch}"
        return s


def compare_spikes(layer: str, native, edgebrain, v_native=None, v_edgebrain=None) -> LayerMatch:
    """Compare two spike trains of shape (T, *neurons) element by element (and, when given, the
    membrane potentials after each step)."""
    a = np.asarray(native, np.float32)
    b = np.asarray(edgebrain, np.float32)
    if a.shape != b.shape:
        raise AssertionError(f"{layer}: spike trains differ in shape: native {a.shape}, edgebrain {b.shape}")
    diff = a != b
    first = tuple(int(i) for i in np.argwhere(diff)[0]) if diff.any() else None
    dv = vs = None
    if v_native is not None:
        va = np.asarray(v_native, np.float32)
        vb = np.asarray(v_edgebrain, np.float32).reshape(va.shape)
        dv = float(np.max(np.abs(va.astype(np.float64) - vb), initial=0.0))
        vs = float(np.max(np.abs(va), initial=0.0))
    return LayerMatch(layer, int(a.size), int(diff.sum()), float((a != 0).mean()), float((b != 0).mean()),
                      first, dv, vs)


def assert_conformance(matches: list[LayerMatch], min_identical: float = 1.0,
                       min_rate: float = 0.02, max_rate: float = 0.5, dv_rel: float = 1e-5) -> None:
    """Every layer at least ``min_identical`` identical (1.0: bit for bit, membranes included; else,
    where the spikes agree, membranes within ``dv_rel`` × the largest |membrane|, float32 rounding),
    and every layer spiking at a rate within [min_rate, max_rate] so that the test is not vacuous."""
    report = "\n  ".join(str(m) for m in matches)
    for m in matches:
        assert m.identical >= min_identical, (
            f"{m.layer} differs from the framework beyond the allowed {1 - min_identical:.2%}:\n  {report}")
        if m.max_dv is not None and m.mismatched == 0:
            # with the same spikes the membranes may differ only by float32 rounding (not at all when exact)
            tol = 0.0 if min_identical >= 1.0 else dv_rel * max(1.0, m.v_scale)
            assert m.max_dv <= tol, f"{m.layer}: membrane differs by {m.max_dv:.3g} > {tol:.3g}:\n  {report}"
        assert min_rate <= m.rate_native <= max_rate, (
            f"{m.layer} spikes at rate {m.rate_native:.4f}, outside [{min_rate}, {max_rate}]: the test "
            f"inputs or weights do not exercise this layer properly:\n  {report}")


def dyadic(x, bits: int = 8) -> np.ndarray:
    """Round to multiples of 2**-bits (float32). Weights and inputs on such a grid make every sum in
    a dense or convolutional layer exact in float32, whatever the summation order, so that edgebrain
    and the framework see bit-identical synaptic input and any spike difference is a semantic one."""
    return (np.round(np.asarray(x, np.float64) * 2.0 ** bits) / 2.0 ** bits).astype(np.float32)


def cli(*args, timeout=300) -> tuple[int, str, str]:
    """``python -m edgebrain.cli ARGS`` in a new process from the checkout: (exit code, stdout, stderr)."""
    p = subprocess.run([sys.executable, "-m", "edgebrain.cli", *map(str, args)], capture_output=True, text=True,
                       timeout=timeout, cwd=REPO)
    return p.returncode, p.stdout, p.stderr


def one_error_line(rc, err, *words) -> str:
    """Bad input's contract: exit code 2 and one ``error:`` line (holding each of ``words``), no traceback."""
    lines = err.splitlines()
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]
