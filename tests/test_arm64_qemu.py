"""The integer path is exact across instruction sets: zoo models run in integer mode on an emulated
arm64 board (qemu-aarch64, a Cortex-A72 as in a Raspberry Pi 4, with Numba's aarch64 wheels at the
host's versions) give bit-identical outputs, final state and saturation counters to the same run
on this machine, over real recordings.

The board is tools/arm64/rootfs.sh's root filesystem (tests/arm64/board.py). Without it the test
skips, saying how to build it; with EDGEBRAIN_REQUIRE_ARM64=1 (CI, which builds it) it fails instead.

Cost: one board process runs every model (one import of Numba, and one compile of the executor that
all zoo models share, plus the N-MNIST convolutions): about 2-4 minutes with an empty cache on two
busy cores, dominated by compiling under emulation. Its Numba cache persists in the board folder,
keyed by a snapshot of the source (tests/arm64/board.py), so a later run of the same source on the
machine, from any clone, loads instead of compiling (a few seconds).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.arm64 import board
from tests.conftest import REPO

RUNNER = Path(__file__).resolve().parent / "arm64" / "run_int.py"
#: zoo model -> its recording in the fixture set (or the full datasets), relative to the data root
RECORDINGS = {
    "har-lif": "imu/sp-sw-har/s16/s16_01_sw.csv",
    "har-l2mu": "imu/sp-sw-har/s16/s16_01_sw.csv",
    "kws": "audio/fsdd/recordings/0_george_0.wav",
    "basicmotions": "imu/basicmotions/BasicMotions_TEST.ts",
    "nmnist": "events/nmnist-small/1.bs2",
}
#: steps kept of each recording: all of them, except BasicMotions' 40 cases of 100 steps (4 kept)
MAX_STEPS = {"basicmotions": 400}
COLD_TIMEOUT = 1800  # seconds; an empty cache compiles everything under emulation


@pytest.fixture(scope="module")
def runs(datasets, tmp_path_factory):
    """(native results, arm64 results, jobs, output folders, seconds on the board)."""
    why = board.why_absent()
    if why:
        if os.environ.get("EDGEBRAIN_REQUIRE_ARM64") == "1":
            pytest.fail(f"EDGEBRAIN_REQUIRE_ARM64=1 but {why}")
        pytest.skip(why)
    from edgebrain import zoo
    from edgebrain.model import Model
    from edgebrain.stream.pipeline import encode_file

    tmp = tmp_path_factory.mktemp("arm64")
    jobs = []
    for name, rel in RECORDINGS.items():
        path = datasets / rel
        if name not in zoo.names() or not path.is_file():
            continue  # reported by test_every_zoo_model_ran
        m = Model.load("zoo:" + name)
        cfg = m.graph.meta["stream"]
        # the input is made here, on x86, and read by both runs
        xs = encode_file(path, cfg["encoder"], float(cfg["rate"]), m.input_shape)[0][:MAX_STEPS.get(name)]
        np.save(tmp / f"{name}.npy", np.ascontiguousarray(xs, np.float32))
        jobs.append({"model": "zoo:" + name, "input": str(tmp / f"{name}.npy")})
    (tmp / "jobs.json").write_text(json.dumps(jobs))
    out_x86, out_arm = tmp / "x86", tmp / "arm64"
    out_x86.mkdir(), out_arm.mkdir()

    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    r = subprocess.run([sys.executable, str(RUNNER), str(tmp / "jobs.json"), str(out_x86)], env=env,
                       capture_output=True, text=True, timeout=COLD_TIMEOUT)
    assert r.returncode == 0, r.stderr[-4000:]

    src = board.source_snapshot()
    t = time.perf_counter()
    r = board.run_python([str(RUNNER), str(tmp / "jobs.json"), str(out_arm)], src, timeout=COLD_TIMEOUT)
    seconds = time.perf_counter() - t
    assert r.returncode == 0, f"the arm64 run failed:\n{r.stderr[-4000:]}"
    native = json.loads((out_x86 / "result.json").read_text())
    arm = json.loads((out_arm / "result.json").read_text())
    print(f"\narm64 board: {len(jobs)} models in {seconds:.1f} s under qemu "
          f"(import {arm['import_s']} s; first runs {[j['first_run_s'] for j in arm['jobs']]} s)")
    return native, arm, jobs, (out_x86, out_arm), seconds


def test_the_board_is_arm64(runs):
    native, arm, *_ = runs
    assert arm["machine"] == "aarch64" and native["machine"] != "aarch64"


def test_every_zoo_model_ran(runs, datasets):
    _, arm, jobs, *_ = runs
    from edgebrain import zoo

    missing = [n for n in RECORDINGS if n in zoo.names() and not (datasets / RECORDINGS[n]).is_file()]
    assert not missing, f"no recording for {missing} under {datasets}"
    assert [j["model"] for j in arm["jobs"]] == [j["model"] for j in jobs] and jobs


@pytest.mark.parametrize("name", list(RECORDINGS))
def test_int_outputs_and_state_bit_identical_on_arm64(runs, name):
    native, arm, jobs, (out_x86, out_arm), _ = runs
    i = next((k for k, j in enumerate(jobs) if j["model"] == "zoo:" + name), None)
    if i is None:
        pytest.skip(f"zoo:{name} or its recording is not in this checkout")
    a, b = native["jobs"][i], arm["jobs"][i]
    ya, yb = np.load(out_x86 / f"{i}.out.npy"), np.load(out_arm / f"{i}.out.npy")
    assert ya.shape == yb.shape and ya.dtype == yb.dtype
    diff = np.argwhere(ya != yb)
    assert not len(diff), f"zoo:{name}: outputs differ first at (step, ...) {tuple(diff[0])}: x86 {ya[tuple(diff[0])]}, arm64 {yb[tuple(diff[0])]}"
    assert a["out"] == b["out"]
    for key in ("state", "act", "saturations", "clock", "saturated"):
        assert a[key] == b[key], f"zoo:{name}: final {key} differs between x86 and arm64"
    assert a["rerun_same"] and b["rerun_same"]
    assert a["steps"] == b["steps"] > 0
    # the outputs are not trivially equal: the model reacted to the recording
    assert np.ptp(ya) > 0, f"zoo:{name}: constant outputs over the recording"
