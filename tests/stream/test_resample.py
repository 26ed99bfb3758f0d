"""The streaming resampler (edgebrain.stream.resample) against scipy.signal.resample_poly on real
recordings and synthetic signals: same output over the whole signal, edges included; any chunking
gives exactly the same output; ratios it refuses."""

from __future__ import annotations

import numpy as np
import pytest

from edgebrain.errors import InputError
from edgebrain.stream.resample import Resampler
from tests.stream._audio_helpers import FLAC, FSDD

sf = pytest.importorskip("soundfile")
signal = pytest.importorskip("scipy.signal")


def resample_cases(datasets):
    cases = []
    p = datasets / FSDD / "3_theo_12.wav"
    if p.exists():
        cases.append(("fsdd 8k→16k", sf.read(str(p), dtype="float32", always_2d=True)[0], 8000, 16000))
    p = datasets / FLAC
    if p.exists():
        cases.append(("flac 48k→16k", sf.read(str(p), dtype="float32", always_2d=True)[0], 48000, 16000))
    rng = np.random.default_rng(3)
    t = np.arange(20000) / 44100
    chirp = (0.5 * np.sin(2 * np.pi * (200 + 8000 * t) * t) + 0.01 * rng.standard_normal(len(t)))[:, None]
    cases.append(("chirp 44.1k→16k", np.hstack([chirp, -chirp]).astype(np.float32), 44100, 16000))
    cases.append(("noise 16k→44.1k", rng.uniform(-1, 1, (3000, 1)).astype(np.float32), 16000, 44100))
    return cases


def run_resampler(r, x, sizes):
    out, i = [], 0
    for n in sizes:
        out.append(r.process(x[i:i + n]))
        i += n
    out.append(r.process(x[i:]))
    out.append(r.flush())
    return np.concatenate(out)


def test_resampler_matches_resample_poly(datasets):
    """Same filter and alignment as scipy: agreement to float32 rounding over every sample, edges
    included (both pad with zeros); the stated tolerance is 2e-6 absolute."""
    for name, x, rin, rout in resample_cases(datasets):
        r = Resampler(rin, rout, x.shape[1])
        y = run_resampler(r, x, [])
        ref = signal.resample_poly(x.astype(np.float64), r.up, r.down, axis=0)
        assert y.shape == ref.shape, name
        err = np.abs(y - ref).max()
        assert err < 2e-6, f"{name}: max |difference| {err:.3g}"
        # and away from the edges a pure tone passes with its amplitude (a sanity check on the filter)
    r = Resampler(8000, 16000)
    tone = np.sin(2 * np.pi * 1000 * np.arange(8000) / 8000).astype(np.float32)
    y = run_resampler(r, tone, [])[100:-100, 0]
    assert abs(np.abs(y).max() - 1.0) < 1e-3


def test_resampler_chunking_is_exact(datasets):
    rng = np.random.default_rng(4)
    for name, x, rin, rout in resample_cases(datasets):
        whole = run_resampler(Resampler(rin, rout, x.shape[1]), x, [])
        for trial in range(3):
            sizes = rng.integers(0, 700, 40) if trial else np.ones(300, int)
            chunked = run_resampler(Resampler(rin, rout, x.shape[1]), x, sizes)
            np.testing.assert_array_equal(chunked, whole, err_msg=name)


def test_resampler_rejects_bad_ratios():
    with pytest.raises(InputError, match="simpler ratio"):
        Resampler(44100, 16001)
    with pytest.raises(InputError):
        Resampler(0, 16000)
