"""Fixtures of the TFLite tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import need

#: the zoo's HAR test subjects' first recordings (as tests/tflite/test_tflite.py reads them)
TEST_FILES = ("s16/s16_01_sw.csv", "s17/s17_01_sw.csv", "s18/s18_01_sw.csv")
LABELS = json.loads((Path(__file__).parent / "data" / "models.json").read_text())["labels"]


@pytest.fixture(scope="module")
def labelled(datasets):
    """Real windows of the test subjects, (N, 50, 6) standardised per file, and their labels (the most
    frequent label of each window), as tools/tflite/make_tflite_fixtures.py cut them."""
    root = datasets / "imu" / "sp-sw-har"
    files = [root / f for f in TEST_FILES if (root / f).is_file()] or [need(root / TEST_FILES[0])]
    xs, ys = [], []
    for f in files:
        raw = np.loadtxt(f, delimiter=",", skiprows=1, usecols=range(6), dtype=np.float64)
        lab = np.loadtxt(f, delimiter=",", skiprows=1, usecols=[7], dtype=str)
        x = ((raw - raw.mean(0)) / np.maximum(raw.std(0), 1e-9)).astype(np.float32)
        y = np.array([LABELS.index(v) for v in lab])
        for a in range(0, len(x) - 49, 25):
            xs.append(x[a:a + 50])
            ys.append(np.bincount(y[a:a + 50], minlength=5).argmax())
    return np.stack(xs), np.array(ys)
