"""Audio sources (edgebrain.stream.sources.audio): chunking and sample times, format detection, options,
the ``rate=`` resampling option against scipy.signal.resample_poly, repair of NaN / out-of-range float
samples; FLAC against soundfile (libsndfile), also damaged; mic:// without its optional dependency.
The WAV format itself is tested in test_wav.py, the resampler in tests/stream/test_resample.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from edgebrain.errors import FormatError, InputError
from edgebrain.stream import detect_format, open_source
from tests.conftest import expected
from tests.stream._audio_helpers import FLAC, fixture_signal, fsdd, read

sf = pytest.importorskip("soundfile")
signal = pytest.importorskip("scipy.signal")


# ------------------------------------------------------------------ chunks and options


def test_fsdd_chunking_and_times(datasets):
    p = fsdd(datasets, "3_theo_12.wav")
    whole, _ = read(p, chunk=1 << 20)
    for chunk in (1, 7, 160, 4096):
        src = open_source(str(p), chunk=chunk)
        chunks = list(src.chunks())
        src.close()
        assert all(len(c) <= chunk for c in chunks)
        np.testing.assert_array_equal(np.concatenate([c.values for c in chunks]), whole)
        t = np.concatenate([c.t for c in chunks])
        np.testing.assert_array_equal(t, np.arange(len(whole)) / 8000.0)
        assert all(c.values.dtype == np.float32 and c.values.ndim == 2 for c in chunks)


def test_detect_by_content_and_extension(tmp_path, datasets):
    p = tmp_path / "audio.bin"
    p.write_bytes(fsdd(datasets, "0_george_0.wav").read_bytes())
    assert detect_format(str(p)).name == "wav"
    q = tmp_path / "audio.dat"
    q.write_bytes((datasets / FLAC).read_bytes() if (datasets / FLAC).exists() else b"fLaC" + bytes(40))
    assert detect_format(str(q)).name == "flac"


def test_unknown_option_is_a_clear_error(datasets):
    with pytest.raises(InputError, match="unknown option"):
        open_source(str(fsdd(datasets, "0_george_0.wav")), bogus=1)


def test_source_resampling_option(datasets):
    p = fsdd(datasets, "7_lucas_31.wav")
    x = sf.read(str(p), dtype="float32", always_2d=True)[0]
    y, src = read(p, rate=16000, chunk=500)
    assert src.info.rate == 16000 and src.info.n_items == len(y) == 2 * len(x)
    assert src.info.extra["source_rate"] == 8000
    np.testing.assert_allclose(y, signal.resample_poly(x.astype(np.float64), 2, 1, axis=0), atol=2e-6)
    src = open_source(str(p), rate=16000, chunk=500)
    t = np.concatenate([c.t for c in src.chunks()])
    np.testing.assert_array_equal(t, np.arange(len(y)) / 16000.0)


# ------------------------------------------------------------------ FLAC


def test_flac_matches_soundfile(datasets):
    p = datasets / FLAC
    if not p.exists():
        pytest.skip(f"recording {p} not found")
    ref = sf.read(str(p), dtype="float32", always_2d=True)[0]
    for chunk in (1000, 4096, 1 << 20):
        x, src = read(p, chunk=chunk)
        np.testing.assert_array_equal(x, ref)
    n = expected(p, samples=38172)["samples"]
    assert src.info.rate == 48000 and src.info.n_items == n and src.info.format == "flac"


def test_flac_fixture_stereo_24bit(tmp_path):
    p = tmp_path / "s.flac"
    sf.write(str(p), fixture_signal(5000, 2), 44100, subtype="PCM_24")
    x, _ = read(p, chunk=333)
    np.testing.assert_array_equal(x, sf.read(str(p), dtype="float32", always_2d=True)[0])


@pytest.mark.parametrize("damage", ["truncated", "bitflip"])
def test_flac_damage_keeps_samples_before_it(tmp_path, datasets, damage):
    p = datasets / FLAC
    if not p.exists():
        pytest.skip(f"recording {p} not found")
    d = bytearray(p.read_bytes())
    if damage == "truncated":
        d = d[: len(d) // 2]
    else:
        d[len(d) // 2] ^= 0xFF
    q = tmp_path / "bad.flac"
    q.write_bytes(bytes(d))
    ref = sf.read(str(p), dtype="float32", always_2d=True)[0]
    x, src = read(q)
    assert 10000 < len(x) < len(ref)       # the damage is near the middle: everything before it is kept
    np.testing.assert_array_equal(x, ref[: len(x)])
    assert src.stats.dropped == len(ref) - len(x)
    assert "FLAC decoding stopped" in src.stats.messages[0]


def test_flac_bad_header(tmp_path):
    q = tmp_path / "bad.flac"
    q.write_bytes(b"fLaC" + bytes(60))
    with pytest.raises(FormatError, match="bad.flac"):
        open_source(str(q))


# ------------------------------------------------------------------ microphone


def test_mic_without_sounddevice_is_a_clear_error():
    try:
        import sounddevice  # noqa: F401
    except (ImportError, OSError):
        pass
    else:
        pytest.skip("sounddevice is installed; this test checks the message given without it")
    with pytest.raises(InputError, match=r"pip install 'edgebrain\[mic\]'"):
        open_source("mic://default?rate=16000&channels=1")


# ------------------------------------------------------------------ repairs


def test_float_wav_nan_inf_and_out_of_range_are_repaired(tmp_path):
    x = fixture_signal(1000, 2, seed=7).astype(np.float32)
    x[10, 0], x[20, 1], x[30, 0], x[40, 1] = np.nan, np.inf, 1.5, -3.0
    p = tmp_path / "f.wav"
    sf.write(str(p), x, 16000, subtype="FLOAT")
    y, src = read(p, chunk=16)
    expect = np.clip(np.where(np.isfinite(x), x, 0), -1, 1)
    np.testing.assert_array_equal(y, expect)
    # one repair per kind and chunk of 16 samples: NaN (chunk 0), inf and 1.5 (chunk 1), -3 (chunk 2)
    assert src.stats.repaired == 4
    assert any("NaN" in m for m in src.stats.messages)
    y2, src2 = read(p, clip=False)
    assert y2[30, 0] == 1.5 and y2[10, 0] == 0
