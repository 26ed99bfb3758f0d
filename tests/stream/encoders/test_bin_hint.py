"""The binner's shape-mismatch hint names the exact command-line text (``--encoder "..."``), and
that text, merged into the model's own encoder spec (edgebrain.options.merge_spec), fixes the
mismatch while keeping the model's other encoder options. Real recordings (AEDAT 4), zoo:nmnist."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from edgebrain.card import StreamConfig
from edgebrain.errors import InputError
from edgebrain.model import Model
from edgebrain.options import merge_spec
from edgebrain.stream.base import parse_spec
from edgebrain.stream.registry import build_encoder, open_source

from tests.conftest import REPO
from tests.stream.sources.events._helpers import FORMATS, need_file

HINT = re.compile(r'; use --encoder "([^"]+)" \(sets these options, keeps the model\'s others\)$')


@pytest.fixture(scope="module")
def nmnist():
    m = Model.load("zoo:nmnist")
    return m, StreamConfig.from_meta(m.graph.meta).encoder, tuple(m.input_shape)


def _configure(spec, path, input_shape):
    src = open_source(str(path))
    try:
        enc = build_encoder(spec)
        enc.configure(src.info, input_shape, None)
        return enc, tuple(src.info.sensor_size)
    finally:
        src.close()


@pytest.mark.parametrize("name", ["sample.aedat4", "davis346.aedat4"])
def test_hint_is_the_exact_flag_and_fixes_the_shape(datasets, nmnist, name):
    path = need_file(datasets, f"{FORMATS}/{name}")
    _, stored, ish = nmnist
    assert ish == (2, 34, 34) and parse_spec(stored)[1]["polarity"] == "split"
    with pytest.raises(InputError) as e:
        _configure(stored, path, ish)
    msg = str(e.value)
    m = HINT.search(msg)
    assert m, msg
    src = open_source(str(path))
    sw, sh = src.info.sensor_size
    src.close()
    # a centred 34x34 crop of this sensor, computed here from the sensor size
    assert m.group(1) == f"crop={(sw - 34) // 2}|{(sh - 34) // 2}|34|34"
    merged = merge_spec(stored, m.group(1))
    enc, _ = _configure(merged, path, ish)
    assert enc.shape == ish
    kw = parse_spec(merged)[1]
    assert {k: kw[k] for k in parse_spec(stored)[1]} == parse_spec(stored)[1]  # the model's options kept


def test_hint_for_polarity_and_downsample_is_one_flag(datasets):
    path = need_file(datasets, f"{FORMATS}/sample.aedat4")  # 320x240: downsample 10 gives 32x24
    with pytest.raises(InputError) as e:
        _configure("bin:window_us=1000,polarity=merge", path, (2, 24, 32))
    m = HINT.search(str(e.value))
    assert m and m.group(1) == "polarity=split,downsample=10", str(e.value)
    enc, _ = _configure(merge_spec("bin:window_us=1000,polarity=merge", m.group(1)), path, (2, 24, 32))
    assert enc.shape == (2, 24, 32)


def test_stream_takes_the_hinted_flag(datasets, nmnist):
    """The command line: the hint's text pasted after ``--encoder`` streams the recording."""
    path = need_file(datasets, f"{FORMATS}/sample.aedat4")
    cmd = [sys.executable, "-m", "edgebrain.cli", "stream", "zoo:nmnist", "--source", str(path), "--json"]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=600)
    assert r.returncode == 2, r.stderr
    flag = HINT.search(r.stderr.strip())
    assert flag, r.stderr
    r = subprocess.run(cmd + ["--encoder", flag.group(1)], capture_output=True, text=True, cwd=REPO, timeout=600)
    assert r.returncode == 0, r.stderr
    assert '"summary"' in r.stdout.splitlines()[-1]
