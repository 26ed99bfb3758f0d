"""Optional dependencies: every extra in pyproject.toml, and what happens without each one. The
command runs in a child where the extra's package cannot be imported (as on a base install): one
``error:`` line naming the extra to install, exit code 2, never a traceback."""

from __future__ import annotations

import subprocess
import sys
import tomllib

import numpy as np
import pytest

from tests.conftest import REPO, need

#: extra → (the modules it provides, as imported by edgebrain)
EXTRAS = {"audio": ["soundfile"], "mic": ["sounddevice"], "mqtt": ["paho"], "plot": ["matplotlib"],
          "train": ["torch", "snntorch"], "tflite": ["ai_edge_litert", "tflite_runtime"],
          "deploy": ["ansible"],  # deploy --fleet runs ansible-playbook (tests/deploy/test_fleet.py)
          "onnx": ["onnxruntime"]}  # .onnx models (tests/onnx/test_onnx.py runs without it)


def without(modules, *args):
    """``edgebrain ARGS`` in a child process where importing any of ``modules`` fails."""
    code = ("import sys\nfor m in sys.argv[1].split(','): sys.modules[m] = None  # import m: ImportError\n"
            "from edgebrain.cli import main\nmain(sys.argv[2:])")
    return subprocess.run([sys.executable, "-c", code, ",".join(modules), *map(str, args)], capture_output=True,
                          text=True, cwd=REPO, timeout=600)


def assert_names_the_extra(r, extra):
    assert r.returncode == 2, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in r.stderr, r.stderr
    assert f"edgebrain[{extra}]" in lines[0], lines[0]


def test_the_extras_are_the_documented_ones():
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = meta["optional-dependencies"]
    assert set(extras) == set(EXTRAS) | {"dev", "bench"}  # bench: tools/bench only, nothing in edgebrain needs it
    names = {e: {d.split(">")[0].split("=")[0].split("<")[0].strip().lower() for d in deps} for e, deps in extras.items()}
    assert names["plot"] == {"matplotlib"} and names["audio"] == {"soundfile"} and names["mqtt"] == {"paho-mqtt"}
    assert names["mic"] == {"sounddevice"} and names["bench"] == {"onnxruntime", "onnx"}
    assert names["tflite"] == {"ai-edge-litert"}  # (tests/tflite/test_tflite.py runs without it)
    assert names["onnx"] == {"onnxruntime", "onnx"}  # onnx: the MACs inspect and profile count
    readme = (REPO / "README.md").read_text()
    for extra in extras:
        assert f"edgebrain[{extra}]" in readme or f".[{extra}]" in readme, extra
    base = {d.split(">")[0].strip().lower() for d in meta["dependencies"]}
    assert not base & {"matplotlib", "soundfile", "sounddevice", "paho-mqtt", "torch"}  # the base stays light


def test_flac_without_the_audio_extra(datasets, tmp_path):
    sf = pytest.importorskip("soundfile")
    wav = need(datasets / "audio" / "fsdd" / "recordings" / "0_theo_0.wav")
    data, rate = sf.read(str(wav), dtype="int16")
    flac = tmp_path / "0_theo_0.flac"
    sf.write(str(flac), data, rate, format="FLAC")
    assert_names_the_extra(without(EXTRAS["audio"], "data", "info", flac), "audio")


def test_microphone_without_the_mic_extra():
    assert_names_the_extra(without(EXTRAS["mic"], "stream", "zoo:kws", "--source", "mic://default"), "mic")


def test_mqtt_sink_without_the_mqtt_extra(datasets):
    csv = need(datasets / "imu" / "sp-sw-har" / "s16" / "s16_01_sw.csv")
    r = without(EXTRAS["mqtt"], "stream", "zoo:har-l2mu", "--source", csv, "--sink", "mqtt:host=127.0.0.1")
    assert_names_the_extra(r, "mqtt")


def test_plot_without_the_plot_extra(tmp_path):
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((20, 6), np.float32))
    r = without(EXTRAS["plot"], "profile", "zoo:har-l2mu", "--input", x, "--plot", tmp_path / "energy.png")
    assert_names_the_extra(r, "plot")
    assert not (tmp_path / "energy.png").exists()
