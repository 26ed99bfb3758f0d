"""The emulated boards end to end: the firmware of ``firmware/boards/`` (the device loop with the C
runtime) built by the cross compilers and run under QEMU (``--target qemu-m4``: Cortex-M4F on
``qemu-system-arm -M mps2-an386``; ``--target qemu-rv32``: rv32imac on ``qemu-system-riscv32 -M virt``),
its UART on a TCP socket that pyserial opens.

* ``edgebrain stream`` on a real recording through each board decides exactly as the Python integer
  path (time, label, confidence of every decision, and the summary's counts), both when the host
  encodes and when the board does (``--board-encodes``);
* a :class:`BoardSession` on each board returns the Numba integer session's outputs bit for bit over
  hundreds of steps, for the HAR models;
* ``--target serial://PORT?baud=N`` (a real board's port: here the host board program on a real
  pseudo-terminal) runs the same, and owns no process;
* bad input: QEMU or the cross compiler missing (a real subprocess of the command line with a PATH
  without them), a model too large for the board's RAM, an unknown target, a port that does not
  exist: one line each, exit code 2, no hang;
* ``edgebrain/data/firmware_icount.json`` (instructions per step under ``-icount shift=0``) still true
  for one model, and ``devices fit`` using it.

A missing QEMU or cross compiler skips, naming the Debian packages (CI installs them). Each firmware is
built once per machine into the user cache (``edgebrain.stream.emulated.build_firmware``)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
import tty
from pathlib import Path

import numpy as np
import pytest

from edgebrain import devices as D
from edgebrain.apps.fit import fit
from edgebrain.model import Model
from edgebrain.stream import board as BD
from edgebrain.stream import emulated as E
from tests.conftest import REPO
from tests.firmware import cases

RECORDING = "imu/sp-sw-har/s16/s16_01_sw.csv"
SAME = ("steps", "items", "stream_seconds", "decisions", "no_decision", "flush_decisions", "saturations",
        "accuracy", "confusion", "precision", "gaps")


def need(target: str) -> Path:
    """The target's firmware (built once per machine), or a skip naming the packages to install."""
    b = E.BOARDS[target]
    missing = [(tool, apt) for tool, apt in ((b.qemu, b.qemu_apt), (b.cc, b.cc_apt)) if not shutil.which(tool)]
    if missing:
        pytest.skip(f"{missing[0][0]} is not installed (apt-get install {missing[0][1]})")
    return E.build_firmware(target)


@pytest.fixture(scope="module", params=list(E.BOARDS))
def target(request) -> str:
    need(request.param)
    return request.param


def cli(*args, env=None, timeout=300) -> subprocess.CompletedProcess:
    e = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    e.pop("EDGEBRAIN_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "edgebrain", *args], capture_output=True, text=True, env=e,
                          cwd=REPO, timeout=timeout)


def stream_json(*args) -> tuple[list, dict]:
    r = cli("stream", *args, "--json")
    assert r.returncode == 0, r.stderr
    lines = [json.loads(ln) for ln in r.stdout.splitlines()]
    return [{k: v for k, v in d.items() if k != "latency_ms"} for d in lines[:-1]], lines[-1]["summary"]


@pytest.fixture(scope="module")
def recording(datasets) -> Path:
    src = Path(datasets) / RECORDING
    if not src.is_file():
        pytest.skip(f"{src} not found")
    return src


@pytest.fixture(scope="module")
def host_int(recording):
    """The Python integer path's decisions on the recording (the reference)."""
    return stream_json("zoo:har-lif", "--source", str(recording), "--precision", "int")


# ---------------------------------------------------------------------- end to end


def test_stream_on_the_emulated_board_decides_as_the_integer_path(target, recording, host_int):
    decisions, summary = stream_json("zoo:har-lif", "--source", str(recording), "--target", target)
    want, want_summary = host_int
    assert decisions, "no decisions"
    assert all({"t", "label", "confidence"} <= set(d) for d in decisions)
    assert decisions == want
    assert {k: summary.get(k) for k in SAME} == {k: want_summary.get(k) for k in SAME}
    b = summary["board"]
    assert b["port"].startswith("socket://127.0.0.1:")
    assert b["board"]["steps"] >= summary["steps"] and b["board"]["crc_errors"] == 0
    assert b["board"]["cycles"] > 0  # the board's counter (SysTick, mcycle) ran
    assert b["link"]["crc_errors"] == 0 and b["link"]["timeouts"] == 0


def test_board_encoded_stream_on_the_emulated_board_decides_as_the_integer_path(target, recording):
    """--board-encodes: the board encodes the raw int16 samples, runs and decodes; the reference is the
    host's integer path with the same sample unit (as tests/firmware/test_codec.py for host-firmware)."""
    decisions, summary = stream_json("zoo:har-lif", "--source", str(recording), "--target", target, "--board-encodes")
    unit = summary["board"]["codec"]["unit"]
    want, want_summary = stream_json("zoo:har-lif", "--source", str(recording), "--encoder",
                                     "unit=" + "|".join(repr(u) for u in unit))
    assert len(decisions) >= 40 and decisions == want
    assert summary["accuracy"] == want_summary["accuracy"] and summary["precision"] == "int"
    assert summary["board"]["board"]["errors"] == 0 and summary["board"]["link"]["crc_errors"] == 0


@pytest.mark.parametrize("name", ["har-lif", "har-l2mu"])
def test_board_session_is_bit_identical_to_the_numba_integer_session(target, datasets, name):
    got = cases.zoo_input(name, datasets)
    if got is None:
        pytest.skip(f"the recording of {name} is not in the test datasets")
    model, xs = got
    xs = xs[:300]
    want, _ = model.session("int").run(xs)
    t0 = time.monotonic()
    s = BD.board_session(model, target, on_reset="error")
    try:
        assert s.info["loaded"] and s.info["model_buf"] == 1 << 20
        out, _ = s.run(xs)
        s.reset()
        stepped = [np.array(s.step(x)) for x in xs[:20]]
        stats = s.board_stats()
        qemu = s.board
    finally:
        s.close()
    np.testing.assert_array_equal(np.asarray(out), np.asarray(want))
    np.testing.assert_array_equal(np.stack(stepped), np.asarray(want)[:20])
    assert stats["steps"] == len(xs) + 20 and stats["cycles"] > 0 and stats["crc_errors"] == 0
    assert s.link_stats()["timeouts"] == 0 and s.link_stats()["resends"] == 0
    assert not qemu.alive(), "closing the session leaves QEMU running"
    assert time.monotonic() - t0 < 120


def test_a_model_too_large_for_the_boards_ram_is_one_line(target):
    from edgebrain import ops
    from edgebrain.graph import Graph
    from edgebrain.quant import quantize

    rng = np.random.default_rng(0)
    n_in, n_out = 1024, 1100  # 1.1 MB of int8 weights: more than the board's 1 MiB model buffer
    g = Graph.sequential(ops.Input(shape=(n_in,)),
                         ops.Linear(weight=(rng.standard_normal((n_out, n_in)) * 0.05).astype(np.float32)),
                         ops.LIF(beta=np.full(1, 0.9, np.float32), threshold=np.ones(1, np.float32)), ops.Output())
    big, _ = quantize(Model(g.prepare()), rng.random((8, n_in)).astype(np.float32))
    t0 = time.monotonic()
    with pytest.raises(BD.BoardError) as e:
        BD.board_session(big, target)
    msg = str(e.value)
    assert "\n" not in msg and "the board's model buffer holds 1048576" in msg, msg
    assert time.monotonic() - t0 < 60


# ---------------------------------------------------------------------- a real board's port


def test_a_serial_target_runs_on_a_port_and_owns_no_process(clib, datasets):
    got = cases.zoo_input("har-lif", datasets)
    if got is None:
        pytest.skip("the har-lif recording is not in the test datasets")
    model, xs = got
    xs = xs[:200]
    want, _ = model.session("int").run(xs)
    master, slave = os.openpty()  # the host board program on a pty stands in for a board's /dev/ttyACM0
    tty.setraw(slave)
    path = os.ttyname(slave)
    proc = subprocess.Popen([str(BD.build_board())], stdin=master, stdout=master, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        s = BD.board_session(model, f"serial://{path}?baud=115200")
        try:
            assert s.board is None and s.link.url == path
            out, _ = s.run(xs)
        finally:
            s.close()
        np.testing.assert_array_equal(np.asarray(out), np.asarray(want))
        assert proc.poll() is None or proc.returncode == 0  # ours to stop, not the session's
    finally:
        os.close(slave)
        os.close(master)
        proc.kill()
        proc.wait(5)


def test_a_port_that_does_not_exist_is_one_line_and_exit_2(recording):
    r = cli("stream", "zoo:har-lif", "--source", str(recording), "--target", "serial:///dev/eb-no-such-port?baud=9600",
            timeout=120)
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "cannot open the board's link /dev/eb-no-such-port" in r.stderr


@pytest.mark.parametrize("spec, words", [("qemu-m5", ("unknown target 'qemu-m5'; expected one of: host, host-firmware, "
                                                      "qemu-m4, qemu-rv32, serial://PORT?baud=N")),
                                         ("serial:///dev/ttyACM0?bauds=9600", "unknown option 'bauds'"),
                                         ("serial:///dev/ttyACM0?baud=fast", "baud 'fast' is not a positive whole number")])
def test_a_bad_target_is_one_line_and_exit_2(recording, spec, words):
    r = cli("stream", "zoo:har-lif", "--source", str(recording), "--target", spec, timeout=120)
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and words in r.stderr, r.stderr


def test_missing_qemu_or_cross_compiler_is_one_line_naming_the_package(recording, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # no QEMU on the PATH at all
    r = cli("stream", "zoo:har-lif", "--source", str(recording), "--target", "qemu-rv32",
            env={"PATH": str(bin_dir)}, timeout=120)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip() == ("error: --target qemu-rv32 needs qemu-system-riscv32, which is not installed "
                                "(apt-get install qemu-system-misc)")
    # QEMU there, the cross compiler not (a fresh cache: the firmware must be built)
    qemu = shutil.which("qemu-system-arm")
    if not qemu:
        pytest.skip("qemu-system-arm is not installed (apt-get install qemu-system-arm)")
    (bin_dir / "qemu-system-arm").symlink_to(qemu)
    r = cli("stream", "zoo:har-lif", "--source", str(recording), "--target", "qemu-m4",
            env={"PATH": str(bin_dir), "XDG_CACHE_HOME": str(tmp_path / "cache")}, timeout=120)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip() == ("error: --target qemu-m4 needs the cross compiler arm-none-eabi-gcc, which is not "
                                "installed (apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi)")
    assert not any(p.name.endswith(".elf") for p in tmp_path.rglob("*"))


def test_help_names_every_target_and_how_target_relates_to_device():
    r = cli("stream", "--help")
    text = " ".join(r.stdout.replace("│", " ").split())
    for word in ("qemu-m4", "qemu-rv32", "serial://PORT?baud=N", "--device"):
        assert word in text


# ---------------------------------------------------------------------- instructions per step


def _icount_tool():
    spec = importlib.util.spec_from_file_location("eb_icount", REPO / "tools" / "firmware" / "icount.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


COMMITTED = json.loads((REPO / "edgebrain" / "data" / "firmware_icount.json").read_text())


def test_the_committed_instruction_count_is_still_true(datasets):
    need("qemu-m4")
    tool = _icount_tool()
    name = "basicmotions"  # the smallest model: ~2 s
    if cases.zoo_input(name, datasets) is None:
        pytest.skip(f"the recording of {name} is not in the test datasets")
    old = COMMITTED["models"][f"zoo:{name}"]
    cc = subprocess.run([E.BOARDS["qemu-m4"].cc, "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    if cc != COMMITTED["cc"]:
        pytest.skip(f"counted with {COMMITTED['cc']}; installed {cc}")
    got = tool.measure(name, old["steps"], datasets)
    assert abs(got["instructions_per_step"] - old["instructions_per_step"]) <= COMMITTED["tolerance"] * \
        old["instructions_per_step"], f"stale ({got} vs {old}): run python tools/firmware/icount.py"


def test_fit_estimates_latency_from_the_counted_instructions():
    model = Model.load("zoo:har-lif")
    n = COMMITTED["models"]["zoo:har-lif"]["instructions_per_step"]
    r = fit(model, D.load("stm32f446"))
    lat = r["latency_from_instructions"]
    assert lat["instructions_per_step"] == n and lat["source"] == "estimate"
    assert lat["seconds"] == pytest.approx(n * lat["cpi"] / 180e6)
    assert lat["seconds_range"][0] == pytest.approx(n * 1.0 / 180e6)
    assert any("instructions counted on the emulated Cortex-M4F" in a and "estimate" in a for a in r["assumptions"])
    # a core of another instruction set: no such estimate, and fit says why
    r = fit(model, D.load("rp2040"))
    assert r["latency_from_instructions"] is None


def test_a_port_in_use_by_another_program_is_one_line_and_exit_2(recording):
    """A board's port already opened by another program (here a pyserial with the port locked, as
    edgebrain itself opens one) is refused, not shared: two readers would each get half the bytes."""
    import serial

    master, slave = os.openpty()
    tty.setraw(slave)
    path = os.ttyname(slave)
    other = serial.Serial(path, exclusive=True)
    try:
        r = cli("stream", "zoo:har-lif", "--source", str(recording), "--target", f"serial://{path}?baud=115200",
                timeout=120)
    finally:
        other.close()
        os.close(slave)
        os.close(master)
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "is in use by another program" in r.stderr, r.stderr
