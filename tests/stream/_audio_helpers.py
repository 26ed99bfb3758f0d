"""Shared helpers of the audio tests (tests/stream/sources/test_wav.py, test_audio.py and
tests/stream/test_resample.py): where the real recordings are, reading a file through
``open_source``, and a full-resolution test signal."""

from __future__ import annotations

import numpy as np

from edgebrain.stream import open_source

FSDD = "audio/fsdd/recordings"
# the shortest and the longest FSDD recordings, and a few in between (different speakers and digits)
FSDD_FILES = ["6_nicolas_7.wav", "9_theo_16.wav", "0_george_0.wav", "1_jackson_0.wav", "3_theo_12.wav",
              "7_lucas_31.wav", "5_nicolas_2.wav"]
FLAC = "audio/lauscher/spoken_digit.flac"


def fsdd(datasets, name):
    """An FSDD recording, or skip saying where to get it (tests.conftest.need)."""
    from tests.conftest import need

    return need(datasets / FSDD / name)


def read(path, **options):
    src = open_source(str(path), **options)
    try:
        return src.read_all(), src
    finally:
        src.close()


def fixture_signal(n=3001, channels=2, seed=0, datasets=None):
    """Full-resolution random values in [-1, 1) with the extremes, or real FSDD audio when given."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (n, channels))
    x[:4, 0] = [-1.0, 1 - 2.0 ** -23, 0.0, -0.5]
    return x
