"""The board link end to end: the host board program (firmware/host/eb_host_board.c with the C
runtime, built with the system compiler) as a separate process on a real pseudo-terminal, and
:class:`edgebrain.stream.board.BoardSession` talking to it through pyserial.

* outputs bit-identical to the Numba integer session on zoo models with real recordings;
* frames damaged on the way (bit flips, dropped, duplicated and reordered bytes), in both
  directions, by a relay between two real ptys: every damaged frame detected and counted on the side that received
  it, every intact frame delivered, the outputs still bit-identical (a lost answer is asked for
  again and the board resends it rather than stepping twice);
* the host's deframer over a real pty with a writer injecting damage of every kind and reordering
  whole frames: counters exact;
* a board killed mid-stream, a board that restarts (announces itself again), a model larger than
  the board's buffer: one clear error each, within a bounded time, no hang.
"""

from __future__ import annotations

import itertools
import os
import select
import signal
import threading
import time
import tty

import numpy as np
import pytest

from edgebrain import blob as B
from edgebrain import proto as P
from edgebrain.csession import model_blob
from edgebrain.model import Model
from edgebrain.stream import board as BD
from tests.firmware import cases
from tests.firmware.test_proto import KINDS, corrupt


@pytest.fixture(scope="module")
def exe(clib):
    return BD.build_board()


@pytest.fixture(scope="module")
def har():
    m = Model.load("zoo:har-lif")
    return m, model_blob(m, cache=False)[0]


def open_session(exe, data, args=(), **kw) -> BD.BoardSession:
    board = BD.HostBoard(args, exe=exe)
    return BD.BoardSession(data, board.link, board=board, **kw)


def har_inputs(datasets, n=300):
    got = cases.zoo_input("har-lif", datasets)
    if got is None:
        pytest.skip("the har-lif recording is not in the test datasets")
    return got[1][:n]


# ---------------------------------------------------------------------- bit for bit


@pytest.mark.parametrize("name", ["har-lif", "kws", "basicmotions", "nmnist"])
def test_board_outputs_are_bit_identical_to_the_numba_integer_session(exe, datasets, name):
    got = cases.zoo_input(name, datasets)
    if got is None:
        pytest.skip(f"recordings of {name} not in the test datasets")
    model, xs = got
    xs = xs[:400]
    want, _ = model.session("int").run(xs)
    s = open_session(exe, model_blob(model, cache=False)[0])
    try:
        got_run, rec = s.run(xs)
        assert rec == {}
        s.reset()
        k = min(len(xs), 40)
        stepped = [np.array(s.step(x)) for x in xs[:k]]
        stats = s.board_stats()
    finally:
        s.close()
    np.testing.assert_array_equal(np.asarray(got_run), np.asarray(want))
    np.testing.assert_array_equal(np.stack(stepped), np.asarray(want)[:k])
    assert stats["steps"] == len(xs) + k and stats["errors"] == 0 and stats["crc_errors"] == 0
    assert s.link_stats()["crc_errors"] == 0 and s.link_stats()["seq_gaps"] == 0


def test_hello_reports_the_board_and_its_model(exe, har):
    m, data = har
    s = open_session(exe, data)
    try:
        info = s.info
        assert info["proto"] == P.VERSION and info["blob_format"] == B.FORMAT_VERSION and info["loaded"] == 1
        assert info["model_hash"] == B.unpack(data).header["crc32"] and info["model_bytes"] == len(data)
        assert (info["n_in"], info["input_ndim"], info["shape0"]) == (6, 1, 6)
        assert info["fw_version"] == P.FIRMWARE_VERSION and info["max_payload"] == P.MAX_PAYLOAD
        assert s.ping(b"\x00\x01edge\x00") == b"\x00\x01edge\x00"
    finally:
        s.close()


# ---------------------------------------------------------------------- damage on the way


class Relay:
    """Forwards bytes between a session (the slave end of a new pty, ``path``) and a board's link,
    frame by frame (split at zero bytes). ``damage_up(k)`` / ``damage_down(k)`` name the damage
    (one of test_proto.KINDS: "flip", "drop", "dup", "reorder") for the k-th frame host → board / board → host, or None."""

    def __init__(self, board_link, damage_up=lambda k: None, damage_down=lambda k: None):
        self.board_link, self.damage_up, self.damage_down = board_link, damage_up, damage_down
        self.master, slave = os.openpty()
        tty.setraw(slave)
        self.path = os.ttyname(slave)
        self._slave = slave
        self.up = self.down = self.damaged_up = self.damaged_down = 0
        self.rng = np.random.default_rng(5)
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.error = None
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def swap(self, board_link):
        with self.lock:
            self.board_link = board_link

    def _split(self, buf: bytearray):
        while 0 in buf:
            z = buf.index(0)
            frame = bytes(buf[:z + 1])
            del buf[:z + 1]
            yield frame

    def _loop(self):
        up, down = bytearray(), bytearray()
        try:
            while not self.stop.is_set():
                r, _, _ = select.select([self.master], [], [], 0.005)
                if r:
                    up += os.read(self.master, 65536)
                    for f in self._split(up):
                        kind = self.damage_up(self.up)
                        self.up += 1
                        if kind:
                            f, self.damaged_up = corrupt(f, kind, self.rng), self.damaged_up + 1
                        with self.lock:
                            self.board_link.write(f)
                with self.lock:
                    link = self.board_link
                try:
                    down += link.read(0.005)
                except BD.BoardError:
                    time.sleep(0.005)  # a board that is gone (until swapped)
                    continue
                for f in self._split(down):
                    kind = self.damage_down(self.down)
                    self.down += 1
                    if kind:
                        f, self.damaged_down = corrupt(f, kind, self.rng), self.damaged_down + 1
                    os.write(self.master, f)
        except Exception as e:  # pragma: no cover - reported by close()
            self.error = e

    def close(self):
        self.stop.set()
        self.thread.join(5)
        os.close(self.master)
        os.close(self._slave)
        assert self.error is None, self.error


def test_damaged_frames_both_ways_are_detected_counted_and_recovered(exe, har, datasets):
    m, data = har
    xs = har_inputs(datasets, 200)
    want = np.asarray(m.session("int").run(xs)[0])
    board = BD.HostBoard(exe=exe)
    # every 9th frame up (after the load), every 7th down (not the boot announcement) is damaged
    relay = Relay(board.link, damage_up=lambda k: KINDS[k % 4] if k > 6 and k % 9 == 4 else None,
                  damage_down=lambda k: KINDS[k % 4] if k > 0 and k % 7 == 3 else None)
    kinds_up = {KINDS[k % 4] for k in range(7, 400) if k % 9 == 4}
    kinds_down = {KINDS[k % 4] for k in range(1, 400) if k % 7 == 3}
    assert kinds_up == kinds_down == set(KINDS)  # every kind, both ways
    link = BD.SerialLink(relay.path)
    s = BD.BoardSession(data, link, timeout=0.15, retries=10)
    try:
        got = [np.array(s.step(x)) for x in xs[:80]]
        rest, _ = s.run(xs[80:])
        relay.damage_up = relay.damage_down = lambda k: None
        stats = s.board_stats()
        host = s.link_stats()
    finally:
        s.close()
        relay.close()
        board.close()
    np.testing.assert_array_equal(np.concatenate([np.stack(got), np.asarray(rest)]), want)
    assert relay.damaged_up >= 8 and relay.damaged_down >= 8
    # every damaged frame was detected where it arrived, and nothing else was dropped
    assert stats["crc_errors"] + stats["frame_errors"] == relay.damaged_up
    assert host["crc_errors"] + host["frame_errors"] + host["overlong"] == relay.damaged_down
    # each damaged frame cost one timeout and one resend; a lost answer was resent, not rerun
    assert host["timeouts"] >= relay.damaged_up + relay.damaged_down
    assert stats["duplicates"] >= relay.damaged_down
    assert stats["steps"] == len(xs)
    assert host["seq_gaps"] == 0 and stats["seq_gaps"] == 0


def test_the_host_deframer_over_a_real_pty_counts_exactly(tmp_path):
    """A writer on the master end sends 400 frames, every 4th damaged (each kind in turn), some
    pairs of intact frames swapped, plus line noise; the host reads the slave end through pyserial:
    every intact frame delivered, in the order sent, every damaged one counted, nothing else."""
    master, slave = os.openpty()
    tty.setraw(slave)
    link = BD.SerialLink(os.ttyname(slave))
    rng = np.random.default_rng(6)
    wire, intact, damaged = bytearray(b"noise before the first frame\0"), [], 1
    held = None
    for k in range(400):
        p = rng.integers(0, 256, int(rng.choice([0, 5, 200, 252, 600])), np.uint8).tobytes()
        f = P.encode_frame(P.MSG["OUTPUTS"], k, p)
        if k % 4 == 2:
            wire += corrupt(f, KINDS[k // 4 % 4], rng)
            damaged += 1
        elif k % 16 == 0:  # held back, sent after the next intact one: two whole frames reordered
            held = (f, (k, p))
        else:
            wire += f
            intact.append((k, p))
            if held is not None:
                wire += held[0]
                intact.append(held[1])
                held = None

    def write():
        for a in range(0, len(wire), 333):
            os.write(master, bytes(wire[a:a + 333]))

    t = threading.Thread(target=write, daemon=True)
    t.start()
    d, got, deadline = P.Deframer(), [], time.monotonic() + 20
    try:
        while len(got) < len(intact) and time.monotonic() < deadline:
            got += d.feed(link.read(0.1))
    finally:
        t.join(5)
        link.close()
        os.close(master)
        os.close(slave)
    assert [(f.seq, f.payload) for f in got] == intact
    assert d.dropped == damaged and d.frames == len(intact) == 300
    assert d.crc_errors + d.frame_errors == damaged  # noise and damage: none overlong
    assert sum(a > b for (a, _), (b, _) in itertools.pairwise(intact)) == 25  # the swapped pairs, as sent


# ---------------------------------------------------------------------- failures: clear, bounded


def test_a_board_killed_mid_stream_is_a_clear_error_not_a_hang(exe, har, datasets):
    m, data = har
    xs = har_inputs(datasets, 200)
    s = open_session(exe, data, timeout=1.0)
    try:
        s.run(xs[:50])
        os.kill(s.board.proc.pid, signal.SIGKILL)
        s.board.proc.wait(5)
        t0 = time.monotonic()
        with pytest.raises(BD.BoardError) as e:
            for x in xs[50:]:
                s.step(x)
        assert time.monotonic() - t0 < 5
        assert "the board process exited (code -9) at step 50" in str(e.value)
    finally:
        s.close()


def test_a_board_that_restarts_mid_stream_is_detected(exe, har, datasets):
    m, data = har
    xs = har_inputs(datasets, 100)
    first = BD.HostBoard(exe=exe)
    relay = Relay(first.link)
    s = BD.BoardSession(data, BD.SerialLink(relay.path), timeout=0.5)
    second = None
    try:
        s.run(xs[:30])
        first.close()                       # the board goes away...
        second = BD.HostBoard(exe=exe)      # ...and comes back, announcing itself
        relay.swap(second.link)
        t0 = time.monotonic()
        with pytest.raises(BD.BoardReset, match="reset at step 30"):
            s.run(xs[30:])
        assert time.monotonic() - t0 < 5
    finally:
        s.close()
        relay.close()
        if second is not None:
            second.close()


def test_a_board_that_restarts_can_be_resumed_with_a_warning(exe, har, datasets, caplog):
    """on_reset="resume" (what the stream uses): the model is loaded again and the stream goes on
    from the initial state: the outputs after the reset are those of a fresh session."""
    m, data = har
    xs = har_inputs(datasets, 100)
    first = BD.HostBoard(exe=exe)
    relay = Relay(first.link)
    s = BD.BoardSession(data, BD.SerialLink(relay.path), timeout=0.5, on_reset="resume")
    second = None
    try:
        before = np.asarray(s.run(xs[:30])[0])
        first.close()
        second = BD.HostBoard(exe=exe)
        relay.swap(second.link)
        with caplog.at_level("WARNING", logger="edgebrain.stream.board"):
            after = np.asarray(s.run(xs[30:])[0])
        assert s.link_stats()["resets"] == 1 and s.link_stats()["seq_gaps"] == 0
    finally:
        s.close()
        relay.close()
        if second is not None:
            second.close()
    np.testing.assert_array_equal(before, np.asarray(m.session("int").run(xs[:30])[0]))
    np.testing.assert_array_equal(after, np.asarray(m.session("int").run(xs[30:])[0]))
    assert "the board reset at step 30" in caplog.text and "resumed from the initial state" in caplog.text


def test_a_model_larger_than_the_board_buffer_is_refused(exe, har):
    m, data = har
    with pytest.raises(BD.BoardError, match="model buffer holds 1024"):
        open_session(exe, data, args=("--model-bytes", "1024"))


def test_a_work_buffer_too_small_is_refused_by_the_board(exe, har):
    m, data = har
    with pytest.raises(BD.BoardError, match="TOO_LARGE"):
        open_session(exe, data, args=("--work-bytes", "64"))


def test_a_corrupted_blob_is_refused_by_the_board_itself(exe, har):
    """The blob's CRC-32 is checked on the board (eb_model_load) after the load, not only on the host."""
    m, data = har
    s = open_session(exe, data)
    try:
        bad = bytearray(data)
        bad[-3] ^= 0x10
        with pytest.raises(BD.BoardError, match="CHECKSUM"):
            crc = B.unpack(data).header["crc32"]
            s.request("LOAD_BEGIN", P.pack("LOAD_BEGIN", total=len(bad), crc32=crc))
            s.request("LOAD_CHUNK", P.pack("LOAD_CHUNK", bytes(bad[:4000]), offset=0))
            for off in range(4000, len(bad), 4000):
                s.request("LOAD_CHUNK", P.pack("LOAD_CHUNK", bytes(bad[off:off + 4000]), offset=off))
            s.request("LOAD_END", reply="INFO")
        with pytest.raises(BD.BoardError, match="NO_MODEL"):
            s.request("RESET")
    finally:
        s.close()


# ---------------------------------------------------------------------- the device loop under sanitizers


@pytest.fixture(scope="module")
def san_exe(clib, tmp_path_factory):
    """The host board program built with -Werror and under address and UB sanitizers."""
    import subprocess

    from edgebrain import cbuild

    out = tmp_path_factory.mktemp("san") / "eb_host_board_san"
    srcs = [str(p) for p in cbuild.sources() if p.suffix == ".c"]
    args = [*cbuild.compiler(), "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-Wshadow", "-Wconversion",
            "-Wno-sign-conversion", "-ffp-contract=off", "-O1", "-g", "-fsanitize=address,undefined",
            "-fno-sanitize-recover=all", "-DEB_HOST_MODEL_BYTES=(1u<<20)", "-DEB_HOST_WORK_BYTES=(1u<<20)",
            "-I", str(cbuild.SOURCE_DIR), "-o", str(out), str(BD.BOARD_SOURCE), *srcs]
    r = subprocess.run(args, capture_output=True, text=True, timeout=300)
    if r.returncode and "sanitizer" in r.stderr.lower() and "error:" not in r.stderr:
        pytest.skip("this compiler has no address/UB sanitizer runtime")
    assert r.returncode == 0, r.stderr[-3000:]
    return out


def test_the_device_loop_under_asan_and_ubsan_with_bad_frames_and_messages(san_exe, datasets):
    """Bit-identical outputs (har-lif in STEPS frames, nmnist staged in STEP_PARTs) from a board built
    with sanitizers, fed damaged, overlong and malformed frames and refused requests between them; it
    still answers, and exits cleanly (status 0: no sanitizer report) when the link closes."""
    bad = []
    for name in ("har-lif", "nmnist"):
        got = cases.zoo_input(name, datasets)
        if got is None:
            pytest.skip(f"recordings of {name} not in the test datasets")
        model, xs = got
        xs = xs[:60]
        want = np.asarray(model.session("int").run(xs)[0])
        board = BD.HostBoard(exe=san_exe)
        s = BD.BoardSession(model_blob(model, cache=False)[0], board.link, board=board, timeout=5.0)
        try:
            np.testing.assert_array_equal(np.asarray(s.run(xs[:30])[0]), want[:30])
            rng = np.random.default_rng(7)
            noise = [bytes([5]) * (P.MAX_ENCODED + 10) + b"\0", b"\0\0\0", b"\x02\x01\x01\0",
                     corrupt(P.encode_frame(P.MSG["STEPS"], 999, bytes(200)), "flip", rng),
                     P.cobs_encode(P.HEADER.pack(1, 6, 0, 9)) + b"\0",  # too short for its length field
                     # decodes to 4120 bytes: once written past the frame buffer (a fuzzer finding)
                     b"\x01" * (P.MAX_ENCODED - 6) + b"\x06" + b"\x07" * 5 + b"\0"]
            for junk in noise:
                board.link.write(junk)
            for name_, payload in (("STEPS", P.pack("STEPS", bytes(8), n=5)), ("STEP_PART", P.pack("STEP_PART", bytes(8), offset=1 << 30)),
                                   ("LOAD_CHUNK", P.pack("LOAD_CHUNK", bytes(16), offset=64)), ("LOAD_END", b""),
                                   ("PING", bytes(P.MAX_PING + 1)), ("STEP_STAGED", b"x")):
                with pytest.raises(BD.BoardError, match="refused"):
                    s.request(name_, payload)
            errors = s.board_stats()["errors"]
            s.link.write(P.encode_frame(0x42, s.seq, b""))  # an unknown type: the board answers ERROR BAD_TYPE
            s.seq += 1
            assert s.ping(b"after") == b"after"  # that ERROR (about 0x42) arrived first: skipped as stale
            assert s.link_stats()["stale"] == 1 and s.board_stats()["errors"] == errors + 1
            np.testing.assert_array_equal(np.asarray(s.run(xs[30:])[0]), want[30:])
            stats = s.board_stats()
            assert stats["frame_errors"] + stats["crc_errors"] == len(noise) - 1  # "\0\0\0" is idle line
        finally:
            s.close()
        bad.append(board.proc.returncode)
    assert bad == [0, 0]


def test_make_firmware_host_board_builds_the_same_program(exe, har, tmp_path):
    """``make -C firmware host-board`` (-Wall -Wextra -Werror -Wconversion) builds a board that answers."""
    import shutil
    import subprocess
    import sys

    from tests.conftest import REPO

    if shutil.which("make") is None:
        pytest.skip("make not found")
    r = subprocess.run(["make", "-C", str(REPO / "firmware"), "host-board", f"BUILD={tmp_path}", f"PYTHON={sys.executable}"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "-Werror" in r.stdout
    m, data = har
    s = open_session(tmp_path / "eb_host_board", data)
    try:
        assert s.info["loaded"] == 1 and s.ping(b"make") == b"make"
    finally:
        s.close()


# ---------------------------------------------------------------------- a board of another version


def _board_of_version(tmp_path, replace: tuple[str, str]) -> "os.PathLike":
    """The host board program built from a copy of the C runtime with one generated constant changed,
    as a board flashed by another edgebrain would have it."""
    import shutil
    import subprocess

    from edgebrain import cbuild

    src = tmp_path / "cruntime"
    shutil.copytree(cbuild.SOURCE_DIR, src, ignore=shutil.ignore_patterns("__pycache__"))
    for h in src.glob("*.h"):
        text = h.read_text()
        if replace[0] in text:
            h.write_text(text.replace(replace[0], replace[1]))
            break
    else:
        raise AssertionError(f"{replace[0]!r} is in no header")
    exe = tmp_path / "eb_host_board_other"
    subprocess.run([*cbuild.compiler(), *BD.BOARD_FLAGS, "-I", str(src), "-o", str(exe), str(BD.BOARD_SOURCE),
                    *map(str, sorted(src.glob("*.c")))], check=True, capture_output=True, timeout=300)
    return exe


@pytest.mark.parametrize("replace,words", [
    (('#define EB_EDGEBRAIN_VERSION "', '#define EB_EDGEBRAIN_VERSION "9.'), ("runs the C runtime of edgebrain 9.",
                                                                             "update the board's firmware")),
    (("#define EB_FORMAT_VERSION ", "#define EB_FORMAT_VERSION 9"), ("blob format 9", "update the board's firmware")),
])
def test_a_board_of_another_version_is_refused_in_one_line(clib, tmp_path, har, replace, words):
    exe = _board_of_version(tmp_path, replace)
    with pytest.raises(BD.BoardError) as e:
        s = open_session(exe, har[1])
        s.close()
    msg = str(e.value)
    assert "\n" not in msg and all(w in msg for w in words), msg
