"""Stream time and rates, run as a hostile user would through the real command line (issue 11,
items 1, 4 and 5, and the stream-option side of item 11):

* a pause of 1 or 10 minutes in the middle of an event recording (a file, and the same events
  live over TCP) costs the time and memory of the recording without it, and is reported;
* a line peer that sends only blank lines, or a flood of lines that never agree, is refused once
  the wall-clock start-up limit has passed, in bounded memory;
* a ``rate=`` that contradicts a CSV's timestamps, a rate or ``--duration`` that is not a finite
  positive number: one ``error:`` line, exit code 2.
"""

from __future__ import annotations

import json
import socket
import threading
import time

import numpy as np
import pytest

from edgebrain.stream.base import EVENT_DTYPE
from tests.hostile._harness import (assert_fast, assert_ok, assert_rss_close, assert_user_error, baseline, run_cli,
                                    valid_input)
from tests.stream.sources.events._helpers import write_evt21

NMNIST = "zoo:nmnist"
HAR = "zoo:har-l2mu"


def summary(result) -> dict:
    rows = [json.loads(x) for x in result.stdout.splitlines() if x.strip()]
    assert rows and "summary" in rows[-1], result.describe()
    return rows[-1]["summary"]


@pytest.fixture(scope="module")
def events(tmp_path_factory):
    """N-MNIST events in time order (EVENT_DTYPE), and .npy files of them: as they are, and with the
    second half shifted 1 and 10 minutes later."""
    raw = np.load(valid_input("events_npy"))
    ev = np.zeros(len(raw), EVENT_DTYPE)
    for k in "xytp":
        ev[k] = raw[k]
    ev = ev[np.argsort(ev["t"], kind="stable")]
    ev["t"] -= ev["t"][0]
    d = tmp_path_factory.mktemp("gaps")
    files = {0: d / "nogap.npy"}
    np.save(files[0], ev)
    for minutes in (1, 10):
        g = ev.copy()
        g["t"][len(g) // 2:] += minutes * 60_000_000
        files[minutes] = d / f"gap{minutes}.npy"
        np.save(files[minutes], g)
    return ev, files


@pytest.mark.parametrize("minutes", [1, 10])
def test_event_gap_costs_what_no_gap_costs(events, minutes):
    """Before: one dense frame (and model step) per window across the pause, 1.27 GB for 1 minute, out
    of memory for 10. Now the pause is counted, the model and decoder start over after it, and time
    and memory are those of the same events without it."""
    ev, files = events
    base = baseline("events_npy_sorted", ["stream", NMNIST, "--source", str(files[0]), "--json"])
    r = run_cli(["stream", NMNIST, "--source", str(files[minutes]), "--json"], timeout=120)
    assert_ok(r)
    s, s0 = summary(r), summary(base)
    gap_s = (int(ev["t"][len(ev) // 2]) + minutes * 60_000_000 - int(ev["t"][len(ev) // 2 - 1])) / 1e6
    assert s["gaps"]["count"] == 1 and abs(s["gaps"]["seconds"] - gap_s) < 1e-6, s["gaps"]
    assert s["gaps"]["max_gap_s"] == 1.0 and s0["gaps"]["count"] == 0
    assert s["items"] == s0["items"] == len(ev)
    assert s0["steps"] <= s["steps"] <= s0["steps"] + 2, (s["steps"], s0["steps"])
    assert s["stream_seconds"] > minutes * 60
    assert_rss_close(r, base)
    assert_fast(r, 2 * base.wall_s + 5)


def test_realtime_playback_does_not_wait_through_a_long_gap(events):
    """--realtime releases events at their recorded times; across a 10-minute pause it used to sleep
    10 minutes."""
    ev, files = events
    r = run_cli(["stream", NMNIST, "--source", str(files[10]), "--realtime", "--json"], timeout=60)
    assert_ok(r)
    s = summary(r)
    # the pause was not waited through (not even a tenth of it): no speed limit on the rest
    assert s["gaps"]["count"] == 1 and s["realtime_playback"] and s["wall_seconds"] < s["gaps"]["seconds"] / 10, s


def test_max_gap_option(events):
    """-O max_gap=SECONDS sets the limit for an event source: at 100 s the 1-minute pause is stepped
    (3000 empty windows), not reset; values that are not a finite positive number are one line."""
    ev, files = events
    r = run_cli(["stream", NMNIST, "--source", str(files[1]), "-O", "max_gap=100", "--json"], timeout=120)
    assert_ok(r)
    assert summary(r)["gaps"] == {"count": 0, "seconds": 0.0, "max_gap_s": 100.0}
    for bad in ("0", "-1", "nan", "inf", "soon"):
        r = run_cli(["stream", NMNIST, "--source", str(files[0]), "-O", f"max_gap={bad}"], timeout=60)
        assert_user_error(r, contains="max_gap")


class Server(threading.Thread):
    """A TCP server for one client: sends ``data`` (bytes), or ``block`` over and over for
    ``seconds`` or until the client goes away (``client_left``), then closes."""

    def __init__(self, data: bytes = b"", block: bytes | None = None, seconds: float = 0.0, pace: float = 0.0):
        super().__init__(daemon=True)
        self.ls = socket.socket()
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(1)
        self.port = self.ls.getsockname()[1]
        self.data, self.block, self.seconds, self.pace = data, block, seconds, pace
        self.sent = 0
        self.client_left = False
        self.start()

    def run(self):
        self.ls.settimeout(60)
        try:
            c, _ = self.ls.accept()
        except OSError:
            return
        with c:
            try:
                if self.data:
                    c.sendall(self.data)
                    self.sent += len(self.data)
                t0 = time.monotonic()
                while self.block is not None and time.monotonic() - t0 < self.seconds:
                    c.sendall(self.block)
                    self.sent += len(self.block)
                    if self.pace:
                        time.sleep(self.pace)
            except OSError:
                self.client_left = True
        self.ls.close()


def test_live_event_gap_costs_what_no_gap_costs(events, tmp_path):
    """The same over a live link: EVT 2.1 words over TCP, with and without a 10-minute pause."""
    ev, _ = events
    runs = {}
    for minutes in (0, 10):
        g = ev.copy()
        g["t"][len(g) // 2:] += minutes * 60_000_000
        data = write_evt21(tmp_path / f"gap{minutes}.raw", g, size=(34, 34)).read_bytes()
        srv = Server(data)
        runs[minutes] = run_cli(["stream", NMNIST, "--source", f"tcp://127.0.0.1:{srv.port}?format=evt21&reconnect=0",
                                 "--json"], timeout=120)
        assert_ok(runs[minutes])
    s0, s = summary(runs[0]), summary(runs[10])
    assert s0["gaps"]["count"] == 0 and s["gaps"]["count"] == 1 and s["gaps"]["seconds"] > 599
    assert s["items"] == s0["items"] > 0.99 * len(ev)  # (EVT 2.1 has one bit per pixel and time: a few merge)
    assert s0["steps"] <= s["steps"] <= s0["steps"] + 2
    assert_rss_close(runs[10], runs[0])
    assert_fast(runs[10], 2 * runs[0].wall_s + 5)


# ---------------------------------------------------------------------- line sources starting up


LIVE_OPTS = ["-O", "detect_seconds=0.5", "-O", "timeout=0.5", "-O", "reconnect=0"]  # start-up limit 4 × 0.5 s


def test_blank_lines_are_refused_at_the_start_up_limit():
    """Before: the limit was checked only when a non-blank line came, so a peer sending blank lines
    kept `stream` waiting as long as it went on (88 s seen)."""
    srv = Server(block=b"\n" * 8192, seconds=120)   # longer than the command may run (60 s)
    r = run_cli(["stream", HAR, "--source", f"tcp://127.0.0.1:{srv.port}", *LIVE_OPTS], timeout=60)
    assert_user_error(r, contains=("no line of samples", "start-up limit of 2 s"))
    srv.join(60)
    assert srv.client_left and srv.sent > 0  # it hung up while the peer was still sending


def test_start_up_buffer_is_bounded():
    """Before: every line received while opening was kept (70 MB of lines that never agree on a channel
    count: 454 MB). Now at most START_LINES are held: memory as for a valid live stream."""
    good = Server(block=b"".join(b"0.1,0.2,9.8,0.01,0.02,0.03\n" for _ in range(10)), seconds=2, pace=0.1)
    base = run_cli(["stream", HAR, "--source", f"tcp://127.0.0.1:{good.port}?rate=100", *LIVE_OPTS, "--json"],
                   timeout=60)
    assert_ok(base)
    flood = (b"n" * 4000 + b"\n") * 16  # lines that are not samples, about as long as a line may be
    srv = Server(block=flood, seconds=30)
    # start-up limit 12 s: time for more than 128 MB of lines to come even on a slow machine
    opts = ["-O", "detect_seconds=3", "-O", "timeout=3", "-O", "reconnect=0"]
    r = run_cli(["stream", HAR, "--source", f"tcp://127.0.0.1:{srv.port}", *opts], timeout=60)
    assert_user_error(r, contains=("no three consecutive lines of numbers agree", "pass channels="))
    lines = int(r.stderr.split("among the first ")[1].split()[0])
    assert lines * 4000 > 128 << 20, f"only {lines} lines came: too few to test the bound"
    assert_rss_close(r, base)


# ---------------------------------------------------------------------- rates and durations


def test_rate_contradicting_the_timestamps():
    """Before: rate=0.001 read a CSV's millisecond timestamps as seconds: 2.9 hours of stream from a
    10-s recording (2.1 GB, exit 0 on a longer one)."""
    csv = valid_input("imu_csv")
    r = run_cli(["stream", HAR, "--source", str(csv), "-O", "rate=0.001", "--json"], timeout=60)
    line = assert_user_error(r, contains=("rate=0.001 Hz contradicts", "100 Hz in ms", "5%"))
    assert str(csv) in line
    r = run_cli(["stream", HAR, "--source", str(csv), "-O", "rate=102", "--json"], timeout=60)
    assert_ok(r)
    assert summary(r)["stream_seconds"] < 60


@pytest.mark.parametrize("option,value", [("-O", "inf"), ("-O", "nan"), ("-O", "-5"), ("-O", "0"), ("-O", "fast"),
                                          ("--encoder", "inf"), ("--encoder", "fast")])
def test_rate_must_be_a_finite_positive_number(option, value):
    """A source's rate= and an encoder's (before: rate=inf accepted by the CSV reader, an internal
    error from the encoder)."""
    opt = f"rate={value}" if option == "-O" else f"direct:rate={value}"
    r = run_cli(["stream", HAR, "--source", str(valid_input("imu_csv")), option, opt], timeout=60)
    assert_user_error(r, contains=("rate=", "finite number"))


@pytest.mark.parametrize("command,value", [("stream", "-1"), ("stream", "nan"), ("record", "-1"), ("record", "nan"),
                                           ("record", "inf")])
def test_duration_must_be_a_finite_positive_number(command, value, tmp_path):
    csv = str(valid_input("imu_csv"))
    args = (["stream", HAR, "--source", csv] if command == "stream" else
            ["record", "--source", csv, "-o", str(tmp_path / "out.csv")])
    r = run_cli([*args, "--duration", value], timeout=60)
    assert_user_error(r, contains="--duration")
    assert not (tmp_path / "out.csv").exists()
