"""Live line sources over real links: a pseudo-terminal pair (serial://), TCP and UDP on loopback, with a
separate writer process (tests/stream/sources/_replay.py) replaying a real sp-sw-har recording line by line in the
Edge Impulse data-forwarder format. The samples received must equal those read from the same file
(the values as printed); a writer killed mid-stream and restarted gives a reconnection after which
the data still arrives; garbage and partial lines are counted repairs; nothing hangs (every wait
has a timeout)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from edgebrain.errors import InputError
from edgebrain.stream import open_source
from tests.conftest import IMU_CSV, REPO, need

REPLAY = Path(__file__).with_name("_replay.py")
WAIT = 30.0           # seconds any single wait may take before the test fails (never hangs)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pseudo-terminals and /proc: Linux")


@pytest.fixture(scope="module")
def recording(datasets):
    path = need(datasets / IMU_CSV)
    return str(path), np.loadtxt(path, delimiter=",", skiprows=1, usecols=range(6)).astype(np.float32)


class Writers:
    """The writer processes a test starts; all killed at the end."""

    def __init__(self):
        self.procs = []

    def start(self, mode, target, file, *args):
        p = subprocess.Popen([sys.executable, str(REPLAY), mode, str(target), "--file", file, *map(str, args)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.procs.append(p)
        if mode != "tcp-connect":
            line = _readline(p)
            assert line.strip() == "ready", line
        return p

    def kill_all(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait(5)
            for f in (p.stdin, p.stdout):
                f.close()


def _readline(p, timeout=WAIT):
    out = []
    th = threading.Thread(target=lambda: out.append(p.stdout.readline()), daemon=True)
    th.start()
    th.join(timeout)
    assert out, "writer process did not answer"
    return out[0]


def go(p):
    p.stdin.write("go\n")
    p.stdin.flush()


@pytest.fixture
def writers():
    w = Writers()
    yield w
    w.kill_all()


class Reader(threading.Thread):
    """Opens a source in a thread and collects its chunks until ``want`` samples or the end."""

    def __init__(self, url, want=None, **options):
        super().__init__(daemon=True)
        self.url, self.want, self.options = url, want, options
        self.src, self.error, self.chunks = None, None, []
        self.count = 0
        self.ended = False
        self.start()

    def run(self):
        try:
            self.src = open_source(self.url, **self.options)
            for c in self.src.chunks():
                self.chunks.append(c)
                self.count += len(c)
                if self.want is not None and self.count >= self.want:
                    break
            self.ended = True
        except BaseException as e:  # noqa: BLE001 - reported by the test
            self.error = e
        finally:
            if self.src is not None:
                self.src.close()

    def wait_for(self, cond, what, timeout=WAIT):
        t0 = time.perf_counter()
        while not cond():
            if self.error is not None:
                raise self.error
            if time.perf_counter() - t0 > timeout:
                if self.src is not None:
                    self.src.close()
                pytest.fail(f"timed out waiting for {what} ({self.count} items so far)")
            time.sleep(0.005)

    def collect(self, timeout=WAIT):
        """Wait for the reader to end; its chunks (the reader's error raised, a hang a failure)."""
        self.join(timeout)
        if self.is_alive():
            if self.src is not None:
                self.src.close()
            self.join(5)
            pytest.fail(f"reader did not finish within {timeout} s ({self.count} items)")
        if self.error is not None:
            raise self.error
        return self.chunks

    def finish(self, timeout=WAIT):
        self.collect(timeout)
        v = np.concatenate([c.values for c in self.chunks]) if self.chunks else np.zeros((0, 6), np.float32)
        t = np.concatenate([c.t for c in self.chunks]) if self.chunks else np.zeros(0)
        return t, v


def opened(path) -> bool:
    """Is ``path`` (a pty slave) open in this process?"""
    real = os.path.realpath(path)
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == real:
                return True
        except OSError:
            pass
    return False


def wait_open(r, link):
    """Wait until the reader has opened the pty, and a little more: pyserial flushes the input
    right after opening the device (a line written in between would be discarded)."""
    r.wait_for(lambda: opened(link), "the reader to open the port")
    time.sleep(0.15)


def bound(port: int, proto: str) -> bool:
    """Is a local socket bound to ``port`` (UDP) or listening on it (TCP), per /proc/net?"""
    with open(f"/proc/net/{proto}") as f:
        rows = [ln.split() for ln in f.readlines()[1:]]
    return any(int(r[1].split(":")[1], 16) == port and (proto == "udp" or r[3] == "0A") for r in rows)


def free_port(kind=socket.SOCK_STREAM) -> int:
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def check_equal(t, v, ref, rate=100.0):
    assert v.shape == ref.shape, f"received {v.shape[0]} samples, expected {ref.shape[0]}"
    np.testing.assert_array_equal(v, ref)                  # exactly the values as printed in the file
    np.testing.assert_allclose(t, np.arange(len(ref)) / rate, atol=1e-9)


# ---------------------------------------------------------------------- serial over a pseudo-terminal


def test_serial_pty_replay_equals_file(recording, writers, tmp_path):
    file, ref = recording
    link = tmp_path / "ttyIMU"
    w = writers.start("pty", link, file, "--sep", "mixed", "--go", "--hold", WAIT)
    r = Reader(f"serial://{link}?baud=115200&rate=100", want=len(ref), reconnect=0, timeout=5)
    wait_open(r, link)
    go(w)
    t, v = r.finish()
    check_equal(t, v, ref)
    src = r.src
    assert src.info.rate == 100.0 and src.info.channels == 6 and src.info.extra["rate_detected"] is False
    assert src.stats.repaired == 0 and src.stats.reconnects == 0
    assert max(len(c) for c in r.chunks) == 1                 # 10 ms of data at 100 Hz
    arrival = np.array([c.arrival for c in r.chunks])
    assert np.all(np.diff(arrival) >= 0)


def test_serial_rate_detection(recording, writers, tmp_path):
    file, ref = recording
    link = tmp_path / "ttyRate"
    w = writers.start("pty", link, file, "--stop", 160, "--rate", 200, "--go", "--hold", WAIT)
    r = Reader(f"serial://{link}", want=160, reconnect=0, timeout=5)
    wait_open(r, link)
    go(w)
    t, v = r.finish()
    info = r.src.info
    assert info.extra["rate_detected"] is True and info.rate == 200.0, info
    assert abs(info.extra["rate_measured"] / 200.0 - 1) < 0.03
    check_equal(t, v, ref[:160], rate=200.0)                  # the lines used for detection are not lost


def test_serial_link_drop_and_reconnect(recording, writers, tmp_path):
    """The writer (holding the pty master: the device) is killed mid-stream, after half a line; a new
    one appears at the same path; the reader reopens it and the rest of the recording arrives."""
    file, ref = recording
    link = tmp_path / "ttyDrop"
    half = 700
    w1 = writers.start("pty", link, file, "--stop", half, "--cut", "--go", "--hold", WAIT)
    r = Reader(f"serial://{link}", want=len(ref), rate=100, timeout=5, reconnect=50, backoff=0.02,
               backoff_max=0.1)
    wait_open(r, link)
    go(w1)
    r.wait_for(lambda: r.count >= half, "the first part")
    time.sleep(0.1)                                           # the half line arrives too
    t_drop = time.perf_counter()
    w1.kill()
    w1.wait(5)
    time.sleep(0.3)                                           # the device is away for a while
    w2 = writers.start("pty", link, file, "--start", half, "--go", "--hold", WAIT)
    r.wait_for(lambda: r.src is not None and r.src.stats.reconnects == 1 and opened(link), "the reconnection")
    t_back = time.perf_counter() - t_drop
    go(w2)
    t, v = r.finish()
    check_equal(t, v, ref)
    st = r.src.stats
    assert st.reconnects == 1 and st.repaired == 1, st.messages
    assert any("partial line discarded" in m for m in st.messages)
    msg = next(m for m in st.messages if "reconnected after" in m)
    secs = float(msg.split("reconnected after ")[1].split(" s")[0])
    assert 0.25 < secs < 2.0 and t_back < 3.0, (msg, t_back)
    print(f"\nserial reconnect: {msg} (device away 0.3 s; reopen seen {t_back:.2f} s after the kill)")


def test_serial_garbage_and_partial_lines(recording, writers, tmp_path):
    file, ref = recording
    link = tmp_path / "ttyJunk"
    damage = ["garbage@150", "partial@300", "nonutf8@450", "long@600", "nan@750", "fields@900", "err@1050",
              "garbage@1051", "partial@1200"]
    w = writers.start("pty", link, file, "--sep", "mixed", "--go", "--hold", WAIT,
                      *[a for d in damage for a in ("--inject", d)])
    r = Reader(f"serial://{link}", want=len(ref), rate=100, reconnect=0, timeout=5)
    wait_open(r, link)
    go(w)
    t, v = r.finish()
    check_equal(t, v, ref)                                    # every valid sample around the damage
    st = r.src.stats
    assert st.repaired == len(damage), st.messages
    text = " ".join(st.messages)
    for what in ("line with", "unparsable line", "longer than 4096 bytes", "NaN/inf", "device reported an error"):
        assert what in text, what


# ---------------------------------------------------------------------- TCP and UDP on loopback


def test_tcp_client_reconnects_to_a_restarted_server(recording, writers):
    file, ref = recording
    port = free_port()
    half = 600
    writers.start("tcp-serve", port, file, "--stop", half, "--hold", WAIT)
    r = Reader(f"tcp://127.0.0.1:{port}?rate=100", want=len(ref), timeout=5, reconnect=50, backoff=0.02,
               backoff_max=0.1)
    r.wait_for(lambda: r.count >= half, "the first part")
    w1 = writers.procs[0]
    t_drop = time.perf_counter()
    w1.kill()
    w1.wait(5)
    writers.start("tcp-serve", port, file, "--start", half, "--hold", WAIT)
    t, v = r.finish()
    check_equal(t, v, ref)
    st = r.src.stats
    assert st.reconnects == 1 and st.repaired == 0, st.messages
    assert any("connection closed by the peer" in m or "Reset" in m for m in st.messages)
    print(f"\ntcp reconnect: {next(m for m in st.messages if 'reconnected' in m)}; "
          f"all data {time.perf_counter() - t_drop:.2f} s after the kill")


def test_tcp_listen_accepts_the_device_again(recording, writers):
    file, ref = recording
    port = free_port()
    half = 500
    r = Reader(f"tcp://:{port}", want=len(ref), rate=100, timeout=5, reconnect=50, backoff=0.05, backoff_max=0.2,
               connect_timeout=WAIT)
    r.wait_for(lambda: bound(port, "tcp"), "the reader to listen")
    w1 = writers.start("tcp-connect", port, file, "--stop", half, "--sep", "mixed", "--hold", WAIT)
    r.wait_for(lambda: r.count >= half, "the first part")
    w1.kill()
    w1.wait(5)
    writers.start("tcp-connect", port, file, "--start", half, "--inject", f"garbage@{half + 100}", "--hold", WAIT)
    t, v = r.finish()
    check_equal(t, v, ref)
    st = r.src.stats
    assert st.reconnects == 1 and st.repaired == 1, st.messages


def test_udp_datagrams_with_several_lines(recording, writers):
    file, ref = recording
    port = free_port(socket.SOCK_DGRAM)
    r = Reader(f"udp://127.0.0.1:{port}", rate=100, timeout=1.0)
    r.wait_for(lambda: bound(port, "udp"), "the reader to bind")
    writers.start("udp", port, file, "--sep", "mixed", "--inject", "nonutf8@400", "--inject", "partial@401")
    t0 = time.perf_counter()
    t, v = r.finish()                                         # ends by itself: no datagram for 1 s
    check_equal(t, v, ref)
    st = r.src.stats
    assert r.ended and st.repaired == 2, st.messages
    assert any("no data for 1 s; stream ends" in m for m in st.messages)
    assert time.perf_counter() - t0 < 10


def test_labels_column_and_names(recording, writers):
    file, ref = recording
    labels = np.loadtxt(file, delimiter=",", skiprows=1, usecols=7, dtype=str)
    port = free_port()
    writers.start("tcp-serve", port, file, "--labels", "--sep", "mixed", "--hold", WAIT)
    r = Reader(f"tcp://127.0.0.1:{port}?rate=100&labels_col=6&names=ax,ay,az,gx,gy,gz", want=len(ref), reconnect=0)
    t, v = r.finish()
    check_equal(t, v, ref)
    assert r.src.info.channel_names == ["ax", "ay", "az", "gx", "gy", "gz"] and r.src.info.channels == 6
    assert list(np.concatenate([c.labels for c in r.chunks])) == list(labels)


# ---------------------------------------------------------------------- never hang


def test_gives_up_and_ends_cleanly(recording, writers, tmp_path):
    file, ref = recording
    port = free_port()
    writers.start("tcp-serve", port, file, "--stop", 100, "--hold", 0.2)    # serves 100 lines, then goes away
    t0 = time.perf_counter()
    r = Reader(f"tcp://127.0.0.1:{port}", rate=100, timeout=5, reconnect=3, backoff=0.05, backoff_max=0.1)
    t, v = r.finish()
    took = time.perf_counter() - t0
    check_equal(t, v, ref[:100])
    st = r.src.stats
    assert r.ended and st.reconnects == 0
    assert any("gave up after 3 reconnection attempts" in m for m in st.messages), st.messages
    assert took < 5, took
    # nothing to connect to at all: a clear error, quickly
    t0 = time.perf_counter()
    with pytest.raises(InputError, match=f"tcp://127.0.0.1:{port}: cannot open"):
        open_source(f"tcp://127.0.0.1:{port}", rate=100, reconnect=2, backoff=0.05)
    with pytest.raises(InputError, match="cannot open"):
        open_source(f"serial://{tmp_path}/no-such-tty", reconnect=1, backoff=0.05)
    assert time.perf_counter() - t0 < 5
    with pytest.raises(InputError, match="unknown option"):
        open_source(f"tcp://127.0.0.1:{port}?bogus=1")
    with pytest.raises(InputError, match="no port"):
        open_source("tcp://127.0.0.1")


def test_silent_device_does_not_hang(recording, writers, tmp_path):
    file, ref = recording
    link = tmp_path / "ttySilent"
    writers.start("pty", link, file, "--go", "--hold", WAIT)           # never told to go: sends nothing
    t0 = time.perf_counter()
    with pytest.raises(InputError, match="no data received"):
        open_source(f"serial://{link}", timeout=0.3, reconnect=2, backoff=0.05)
    assert time.perf_counter() - t0 < 5


def test_keyboard_interrupt_closes_cleanly(recording, writers):
    """Ctrl-C while a reader waits for data: the source closes its socket and the interrupt reaches
    the caller (the pipeline ends with its summary)."""
    file, ref = recording
    port = free_port()
    writers.start("tcp-serve", port, file, "--stop", 50, "--hold", WAIT)
    code = textwrap.dedent(f"""
        import sys
        from edgebrain.stream import open_source
        src = open_source("tcp://127.0.0.1:{port}", rate=100, timeout=60)
        n = 0
        try:
            for ch in src.chunks():
                n += len(ch)
                if n == 50:
                    print("waiting", flush=True)
        except KeyboardInterrupt:
            print("interrupted", n, src.link.sock is None, flush=True)
            sys.exit(0)
    """)
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         cwd=str(REPO))
    try:
        assert _readline(p).strip() == "waiting"
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=WAIT)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert p.returncode == 0, err
    assert out.strip() == "interrupted 50 True"


# ---------------------------------------------------------------------- start-up (issue 11, items 4 and 5)


class Flood(threading.Thread):
    """A TCP server that sends ``payload(k)`` for k = 0, 1, ... to its one client until ``seconds`` have
    passed or the client goes away; ``sent`` counts the bytes."""

    def __init__(self, payload, seconds=15.0):
        super().__init__(daemon=True)
        self.ls = socket.socket()
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(1)
        self.port = self.ls.getsockname()[1]
        self.payload, self.seconds, self.sent = payload, seconds, 0
        self.start()

    def run(self):
        self.ls.settimeout(WAIT)
        try:
            c, _ = self.ls.accept()
        except OSError:
            return
        t0 = time.monotonic()
        k = 0
        with c:
            while time.monotonic() - t0 < self.seconds:
                try:
                    c.sendall(self.payload(k))
                except OSError:
                    break
                self.sent += len(self.payload(k))
                k += 1
        self.ls.close()


def test_blank_lines_do_not_extend_the_start_up_limit():
    """A peer that sends only blank lines (for 15 s here) is refused once the wall-clock start-up limit,
    4 × max(detect_seconds, timeout), has passed: it was only checked when a line of text came."""
    srv = Flood(lambda k: b"\n" * 4096)
    t0 = time.perf_counter()
    with pytest.raises(InputError, match="no line of samples within the start-up limit of 2 s"):
        open_source(f"tcp://127.0.0.1:{srv.port}", detect_seconds=0.5, timeout=0.5, reconnect=0)
    took = time.perf_counter() - t0
    assert 1.9 < took < 4, took
    assert srv.sent > 0


def test_start_up_lines_are_bounded(monkeypatch):
    """Lines that never agree on a channel count (field counts 1, 2, 3, 1, 2, ...) sent as fast as the
    link carries them: the source refuses after the start-up limit, having held at most START_LINES of
    them; lines held before a good start are streamed, the oldest dropped and counted."""
    from edgebrain.stream.sources import livelines

    held = []
    real_trim = livelines.LineSource._trim

    def trim(self, h):  # what is held between reads
        real_trim(self, h)
        held.append(sum(len(x) for _, x in self._pending))

    monkeypatch.setattr(livelines.LineSource, "_trim", trim)
    block = b"".join(b",".join([b"1.5"] * (1 + i % 3)) + b"\n" for i in range(3000))
    srv = Flood(lambda k: block, seconds=4)
    t0 = time.perf_counter()
    with pytest.raises(InputError, match="no three consecutive lines of numbers agree"):
        open_source(f"tcp://127.0.0.1:{srv.port}", detect_seconds=0.25, timeout=0.25, reconnect=0)
    assert time.perf_counter() - t0 < 3
    assert srv.sent > 10 * len(block), "the flood was too small to test the bound"
    assert len(held) > 10 and max(held) <= livelines.START_LINES
    # more lines than START_LINES in the first read: the source opens on it (rate given) and keeps them all
    n = 6000
    lines = b"".join(b"%d,%d,%d\n" % (i, i, i) for i in range(n))
    srv = Flood(lambda k: lines if k == 0 else b"", seconds=1)
    time.sleep(0.05)
    src = open_source(f"tcp://127.0.0.1:{srv.port}", channels=3, rate=100, timeout=0.3, reconnect=0)
    got = np.concatenate([c.values for c in src.chunks()])
    # every line arrived and was streamed (the source opened after its first read, nothing to drop)
    assert got[:, 0].tolist() == list(range(n)) and src.stats.dropped == 0


@pytest.mark.parametrize("rate", [-5, 0, "inf", "nan", "fast"])
def test_live_lines_rate_must_be_positive_and_finite(rate):
    srv = Flood(lambda k: b"1,2,3\n", seconds=1)
    with pytest.raises(InputError, match="rate"):
        open_source(f"tcp://127.0.0.1:{srv.port}?rate={rate}", timeout=0.3, reconnect=0)
