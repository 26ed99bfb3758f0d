"""Live line sources over real links: a pseudo-terminal pair (serial://), TCP and UDP on loopback, with a
separate writer process (tests/stream/sources/_replay.py) replaying a real sp-sw-har recording line by line in the
Edge Impulse data-forwarder format. The samples received must equal those read from the same file
(the values as printed); a writer killed mid-stream and restarted gives a reconnection after which
the data still arrives; garbage and partial lines are counted repairs; nothing hangs (every wait
has a timeout). No assertion depends on how fast the machine is: the tests wait for events (a port
opened, samples arrived) rather than sleeping, and timeouts, backoff, rates and limits are checked on
an injected clock (:class:`RecordingClock`, :class:`LinkClock`)."""

from __future__ import annotations

import select
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from edgebrain.errors import InputError
from edgebrain.stream import links, open_source
from edgebrain.stream.links import Clock
from edgebrain.stream.sources import live
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


# ---------------------------------------------------------------------- clocks, and links the tests can see


class RecordingClock(Clock):
    """Real time; notes the length of every wait a link reader asks for (its backoff)."""

    def __init__(self):
        self.waits = []

    def wait(self, event, seconds):
        self.waits.append(seconds)
        return super().wait(event, seconds)


class LinkClock(Clock):
    """Simulated time that passes only on the links: reading n bytes takes n·``per_byte`` s and
    ``per_line`` s per line, a read that finds nothing ``idle`` s (0: time stands still while the link
    is silent, until the test changes it), a wait its length at once (noted in ``waits``). Timeouts,
    rates and limits then come out the same however slow the machine is."""

    def __init__(self, per_byte=0.0, per_line=0.0, idle=0.0, t0=1.0):
        self.t0 = self.t = t0
        self.per_byte, self.per_line, self.idle = per_byte, per_line, idle
        self.waits = []
        self._lock = threading.Lock()

    def now(self):
        return self.t

    def wait(self, event, seconds):
        self.waits.append(seconds)
        with self._lock:
            self.t += max(0.0, seconds)
        return event.is_set()

    def read(self, data):
        with self._lock:
            self.t += self.idle if data is None else len(data) * self.per_byte + data.count(b"\n") * self.per_line


def use_clock(monkeypatch, clock):
    """``clock`` for every link reader the test opens."""
    monkeypatch.setattr(links, "CLOCK", clock)
    return clock


OPENS = Counter()        # port → times a link to it was opened
LINES_READ = Counter()   # port → newlines read from it


def _observed(base):
    class Observed(base):
        """The real link, counting its openings and the lines it read, and telling a LinkClock of its reads."""

        def open(self, wait):
            super().open(wait)
            OPENS[str(self.port)] += 1

        def read(self, timeout):
            data = super().read(timeout)
            if data:
                LINES_READ[str(self.port)] += data.count(b"\n")
            if isinstance(links.CLOCK, LinkClock):
                links.CLOCK.read(data)
            return data

    Observed.__name__ = Observed.__qualname__ = base.__name__
    return Observed


@pytest.fixture(autouse=True)
def observed_links(monkeypatch):
    """Links opened by URL (serial, TCP client, UDP) are observed: see _observed."""
    for name in ("SerialLink", "TcpClient", "UdpLink"):
        monkeypatch.setattr(live, name, _observed(getattr(links, name)))
    OPENS.clear()
    LINES_READ.clear()


def wait_open(r, link, times=1):
    """Wait until the reader has opened the port ``times`` times: pyserial empties the input while
    opening it, so a device may only send once that is done."""
    r.wait_for(lambda: OPENS[str(link)] >= times, f"the reader to open the port ({times})")


def release(w, arrived):
    """Let a ``--burst`` writer go on each time ``arrived(k)`` (k: sample lines it has sent) has
    returned; its last line ("sent N")."""
    while (line := _readline(w)).startswith("at "):
        arrived(int(line.split()[1]))
        go(w)
    return line


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


def test_serial_rate_detection(recording, writers, tmp_path, monkeypatch):
    """The rate is measured from the lines' arrival times, here on a clock where each line takes
    1/202 s (a device 1 % faster than 200 Hz): measured 202, snapped to 200. The lines come in bursts
    of 40 that the reader reads apart (the rate needs at least three reads)."""
    file, ref = recording
    use_clock(monkeypatch, LinkClock(per_line=1 / 202))
    link = tmp_path / "ttyRate"
    w = writers.start("pty", link, file, "--stop", 160, "--burst", 40, "--go", "--hold", WAIT)
    r = Reader(f"serial://{link}", want=160, reconnect=0, timeout=5)
    wait_open(r, link)
    go(w)
    release(w, lambda k: r.wait_for(lambda: LINES_READ[str(link)] >= k, f"{k} lines read"))
    t, v = r.finish()
    info = r.src.info
    assert info.extra["rate_detected"] is True and info.rate == 200.0, info
    assert info.extra["rate_measured"] == pytest.approx(202.0, abs=1e-3)
    check_equal(t, v, ref[:160], rate=200.0)                  # the lines used for detection are not lost


def backoff(n, first, most):
    """The first ``n`` waits of a link reader's backoff: ``first`` doubling up to ``most``."""
    return [min(first * 2 ** k, most) for k in range(n)]


def check_reconnect_time(st, clock, seen):
    """The reported reconnection time covers the backoff waits (real time), and no more than the
    ``seen`` seconds from before the drop to after the reconnection, measured from outside."""
    msg = next(m for m in st.messages if "reconnected after" in m)
    secs = float(msg.split("reconnected after ")[1].split(" s")[0])
    attempts = int(msg.split(" s (")[1].split(" attempt")[0])
    assert clock.waits == backoff(attempts, 0.02, 0.1), (msg, clock.waits)
    assert sum(clock.waits) - 0.01 <= secs <= seen + 0.01, (msg, clock.waits, seen)   # 0.01: printed to 0.01 s
    return attempts


def test_serial_link_drop_and_reconnect(recording, writers, tmp_path, monkeypatch):
    """The writer (holding the pty master: the device) is killed mid-stream, after half a line; a new
    one appears at the same path once the reader has tried three times to reopen it; the reader
    reopens it and the rest of the recording arrives."""
    file, ref = recording
    clock = use_clock(monkeypatch, RecordingClock())
    link = tmp_path / "ttyDrop"
    half = 700
    w1 = writers.start("pty", link, file, "--stop", half, "--cut", "--go", "--hold", WAIT)
    r = Reader(f"serial://{link}", want=len(ref), rate=100, timeout=WAIT, reconnect=10_000, backoff=0.02,
               backoff_max=0.1, give_up=WAIT)
    wait_open(r, link)
    go(w1)
    assert _readline(w1).startswith("sent")
    # the first part, and the half line after it held by the source
    r.wait_for(lambda: r.count >= half and r.src._buf, "the first part and the half line")
    t_drop = time.perf_counter()
    w1.kill()
    w1.wait(5)
    # the device stays away until three attempts to reopen the port have failed (a fourth wait began)
    r.wait_for(lambda: len(clock.waits) >= 4, "three failed attempts to reopen the port")
    w2 = writers.start("pty", link, file, "--start", half, "--go", "--hold", WAIT)
    wait_open(r, link, 2)
    seen = time.perf_counter() - t_drop
    go(w2)
    t, v = r.finish()
    check_equal(t, v, ref)
    st = r.src.stats
    assert st.reconnects == 1 and st.repaired == 1, st.messages
    assert any("partial line discarded" in m for m in st.messages)
    assert check_reconnect_time(st, clock, seen) >= 4


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


def test_tcp_client_reconnects_to_a_restarted_server(recording, writers, monkeypatch):
    file, ref = recording
    clock = use_clock(monkeypatch, RecordingClock())
    port = free_port()
    half = 600
    writers.start("tcp-serve", port, file, "--stop", half, "--hold", WAIT)
    # the attempts go on until the new server is up, however long it takes to start (WAIT at most)
    r = Reader(f"tcp://127.0.0.1:{port}?rate=100", want=len(ref), timeout=WAIT, reconnect=10_000, backoff=0.02,
               backoff_max=0.1, give_up=WAIT)
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
    check_reconnect_time(st, clock, time.perf_counter() - t_drop)


def test_tcp_listen_accepts_the_device_again(recording, writers):
    file, ref = recording
    port = free_port()
    half = 500
    r = Reader(f"tcp://:{port}", want=len(ref), rate=100, timeout=WAIT, reconnect=10_000, backoff=0.05,
               backoff_max=0.2, give_up=WAIT, connect_timeout=WAIT)
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


def test_udp_datagrams_with_several_lines(recording, writers, monkeypatch):
    file, ref = recording
    clock = use_clock(monkeypatch, LinkClock())               # time stands still while the link is silent
    port = free_port(socket.SOCK_DGRAM)
    r = Reader(f"udp://127.0.0.1:{port}", rate=100, timeout=1.0)
    r.wait_for(lambda: bound(port, "udp"), "the reader to bind")
    w = writers.start("udp", port, file, "--sep", "mixed", "--inject", "nonutf8@400", "--inject", "partial@401",
                      "--burst", 100)
    # bursts the reader catches up with: no datagram is lost to a full socket buffer, however slow it is
    assert release(w, lambda k: r.wait_for(lambda: r.count >= k, f"{k} samples")).startswith("sent")
    r.wait_for(lambda: r.count >= len(ref), "every sample")
    clock.idle = 0.02                                         # from now on silence takes time
    t, v = r.finish()                                         # ends by itself: no datagram for 1 s
    check_equal(t, v, ref)
    st = r.src.stats
    assert r.ended and st.repaired == 2, st.messages
    assert any("no data for 1 s; stream ends" in m for m in st.messages)


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


def test_gives_up_and_ends_cleanly(recording, writers, tmp_path, monkeypatch):
    file, ref = recording
    clock = use_clock(monkeypatch, RecordingClock())
    port = free_port()
    writers.start("tcp-serve", port, file, "--stop", 100, "--hold", 0.2)    # serves 100 lines, then goes away
    r = Reader(f"tcp://127.0.0.1:{port}", rate=100, timeout=WAIT, reconnect=3, backoff=0.05, backoff_max=0.1)
    t, v = r.finish()
    check_equal(t, v, ref[:100])
    st = r.src.stats
    assert r.ended and st.reconnects == 0
    # the close is seen as it comes (not after `timeout`), then three attempts with backoff, and no other wait
    assert any("link dropped (connection closed by the peer)" in m for m in st.messages), st.messages
    assert any("gave up after 3 reconnection attempts" in m for m in st.messages), st.messages
    assert clock.waits == backoff(3, 0.05, 0.1)
    # nothing to connect to at all: a clear error after the backoff waits alone
    clock.waits.clear()
    with pytest.raises(InputError, match=f"tcp://127.0.0.1:{port}: cannot open"):
        open_source(f"tcp://127.0.0.1:{port}", rate=100, reconnect=2, backoff=0.05)
    assert clock.waits == backoff(2, 0.05, 2.0)
    clock.waits.clear()
    with pytest.raises(InputError, match="cannot open"):
        open_source(f"serial://{tmp_path}/no-such-tty", reconnect=1, backoff=0.05)
    assert clock.waits == [0.05]
    with pytest.raises(InputError, match="unknown option"):
        open_source(f"tcp://127.0.0.1:{port}?bogus=1")
    with pytest.raises(InputError, match="no port"):
        open_source("tcp://127.0.0.1")


def test_silent_device_does_not_hang(recording, writers, tmp_path, monkeypatch):
    """A device that sends nothing: after `timeout` of silence the port is reopened, `reconnect`
    times, then the source gives up, long before the start-up limit (4 × 5 s). On a clock where a
    read that finds nothing takes the poll interval (0.02 s)."""
    file, ref = recording
    clock = use_clock(monkeypatch, LinkClock(idle=0.02))
    link = tmp_path / "ttySilent"
    writers.start("pty", link, file, "--go", "--hold", WAIT)           # never told to go: sends nothing
    with pytest.raises(InputError, match="no data received") as e:
        open_source(f"serial://{link}", timeout=0.3, reconnect=2, backoff=0.05)
    assert OPENS[str(link)] == 3 and clock.waits == [0.05, 0.05]      # opened, then reopened twice
    waited = float(str(e.value).split("waited ")[1].split(" s")[0])
    assert waited == pytest.approx(clock.t - clock.t0, abs=0.06) and waited < 2, str(e.value)


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
    """A TCP server that sends ``payload(k)`` for k = 0, 1, ... to its one client (None: nothing more,
    the link stays open) until the client goes away (``client_left``), or WAIT has passed (a hang
    guard); ``sent`` counts the bytes."""

    def __init__(self, payload):
        super().__init__(daemon=True)
        self.ls = socket.socket()
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(1)
        self.port = self.ls.getsockname()[1]
        self.payload, self.sent, self.client_left = payload, 0, False
        self.start()

    def run(self):
        self.ls.settimeout(WAIT)
        try:
            c, _ = self.ls.accept()
        except OSError:
            return
        end = time.monotonic() + WAIT
        k = 0
        with c:
            while time.monotonic() < end:
                data = self.payload(k)
                try:
                    if data is None:
                        if select.select([c], [], [], 0.1)[0] and not c.recv(1 << 16):
                            raise ConnectionResetError
                        continue
                    c.sendall(data)
                except OSError:
                    self.client_left = True
                    break
                self.sent += len(data)
                k += 1
        self.ls.close()


def test_blank_lines_do_not_extend_the_start_up_limit(monkeypatch):
    """A peer that sends only blank lines (on and on) is refused once the start-up limit,
    4 × max(detect_seconds, timeout), has passed: it was only checked when a line of text came. On a
    clock where the link carries 1 MB/s."""
    clock = use_clock(monkeypatch, LinkClock(per_byte=1e-6))
    srv = Flood(lambda k: b"\n" * 4096)
    with pytest.raises(InputError, match="no line of samples within the start-up limit of 2 s"):
        open_source(f"tcp://127.0.0.1:{srv.port}", detect_seconds=0.5, timeout=0.5, reconnect=0)
    # refused at the limit, within one read (64 KiB at most) of it, while the peer was still sending
    assert 2.0 < clock.t - clock.t0 <= 2.0 + 65536e-6 + 1e-9, clock.t
    srv.join(WAIT)
    assert srv.client_left and srv.sent >= 2_000_000


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
    clock = use_clock(monkeypatch, LinkClock(per_byte=1e-6))     # the link carries 1 MB/s
    srv = Flood(lambda k: block)
    with pytest.raises(InputError, match="no three consecutive lines of numbers agree"):
        open_source(f"tcp://127.0.0.1:{srv.port}", detect_seconds=0.25, timeout=0.25, reconnect=0)
    assert 1.0 < clock.t - clock.t0 <= 1.0 + 65536e-6 + 1e-9, clock.t    # at the limit: 1 MB read
    srv.join(WAIT)
    assert srv.client_left and srv.sent > 10 * len(block), "the flood was too small to test the bound"
    assert len(held) > 10 and max(held) <= livelines.START_LINES
    # more lines than START_LINES in the first read: the source opens on it (rate given) and keeps them all
    n = 6000
    lines = b"".join(b"%d,%d,%d\n" % (i, i, i) for i in range(n))
    srv = Flood(lambda k: lines if k == 0 else None)
    src = open_source(f"tcp://127.0.0.1:{srv.port}", channels=3, rate=100, reconnect=0)
    got = []
    for c in src.chunks():
        got.append(c.values)
        if sum(map(len, got)) >= n:
            break
    src.close()
    got = np.concatenate(got)
    # every line arrived and was streamed (the source opened after its first read, nothing to drop)
    assert got[:, 0].tolist() == list(range(n)) and src.stats.dropped == 0


@pytest.mark.parametrize("rate", [-5, 0, "inf", "nan", "fast"])
def test_live_lines_rate_must_be_positive_and_finite(rate):
    srv = Flood(lambda k: b"1,2,3\n")
    with pytest.raises(InputError, match="rate"):
        open_source(f"tcp://127.0.0.1:{srv.port}?rate={rate}", timeout=0.3, reconnect=0)
