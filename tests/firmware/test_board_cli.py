"""``edgebrain stream MODEL --source FILE --target host-firmware`` through the command line: the host
encodes, the board (the host board program on a pseudo-terminal) runs the model, the host decodes;
the decisions (time, label, confidence) are identical to ``--precision int`` in this process, on
real recordings (zoo:har-lif on an IMU recording, zoo:kws on a WAV). Bad requests are one line and
exit code 2. Each command runs in a fresh process, with ``XDG_CACHE_HOME`` in a folder of the test
holding copies of the runtime's and the board's builds (nothing is compiled again)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

STREAMS = {
    "har-lif": "imu/sp-sw-har/s16/s16_01_sw.csv",
    "kws": "audio/fsdd/recordings/0_theo_0.wav",
}
SAME = ("steps", "items", "stream_seconds", "decisions", "no_decision", "flush_decisions", "saturations",
        "accuracy", "confusion", "precision", "gaps")


@pytest.fixture(scope="module")
def cache_home(clib, tmp_path_factory) -> Path:
    from edgebrain import cbuild
    from edgebrain.stream.board import build_board

    home = tmp_path_factory.mktemp("xdg")
    for built, sub in ((cbuild.library(), "cruntime"), (build_board(), "board")):
        dst = home / "edgebrain" / sub / built.parent.name
        dst.mkdir(parents=True)
        shutil.copy2(built, dst / built.name)
    return home


def cli(cache_home, *args, timeout=300) -> subprocess.CompletedProcess:
    e = {**os.environ, "PYTHONPATH": str(REPO), "XDG_CACHE_HOME": str(cache_home)}
    e.pop("EDGEBRAIN_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "edgebrain", *args], capture_output=True, text=True, env=e,
                          cwd=REPO, timeout=timeout)


@pytest.mark.parametrize("name", list(STREAMS))
def test_stream_on_the_host_firmware_board_decides_as_the_integer_path(cache_home, datasets, name):
    src = Path(datasets) / STREAMS[name]
    if not src.is_file():
        pytest.skip(f"{src} not found")
    runs = {}
    for extra in (("--target", "host-firmware"), ("--precision", "int")):
        r = cli(cache_home, "stream", f"zoo:{name}", "--source", str(src), "--json", *extra)
        assert r.returncode == 0, r.stderr
        lines = [json.loads(ln) for ln in r.stdout.splitlines()]
        decisions = [{k: v for k, v in d.items() if k != "latency_ms"} for d in lines[:-1]]
        summary = lines[-1]["summary"]
        runs[extra[0]] = decisions, {k: summary.get(k) for k in SAME}, summary
    board, host = runs["--target"], runs["--precision"]
    assert board[0], "no decisions"
    assert all({"t", "label", "confidence"} <= set(d) for d in board[0])
    assert board[:2] == host[:2]
    b = board[2]["board"]
    assert b["board"]["steps"] >= board[2]["steps"] and b["board"]["crc_errors"] == 0  # plus the warm-up steps
    assert b["link"]["crc_errors"] == 0 and b["link"]["timeouts"] == 0
    assert "board" not in host[2]


def test_a_float_precision_on_the_board_is_one_line_and_exit_2(cache_home, datasets):
    src = Path(datasets) / STREAMS["har-lif"]
    r = cli(cache_home, "stream", "zoo:har-lif", "--source", str(src), "--target", "host-firmware",
            "--precision", "float")
    assert r.returncode == 2
    assert "runs integer programs only" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_help_says_how_target_relates_to_device(cache_home):
    r = cli(cache_home, "stream", "--help")
    text = " ".join(r.stdout.replace("│", " ").split())
    assert "host-firmware" in text and "--device" in text
