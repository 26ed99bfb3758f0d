"""Binary live streams (``format=`` on serial://, tcp://, udp://): audio as raw PCM or a streamed WAV,
event cameras as Prophesee EVT 3.0 / 2.0 words or AEDAT 4 packets.

A separate writer process (tests/stream/sources/_replay_binary.py) replays real recordings from ../shared/datasets
over TCP on loopback, a real pseudo-terminal pair (serial://) or UDP, in pieces of random size (so
that reads end inside samples, words and packets). What arrives must equal, exactly, what the file
readers make of the same file: the same samples, the same events (x, y, t, p). Also: a link dropped
mid-word / mid-frame and restored (the device sends its header again), garbage on the link (counted
repairs, the data around it kept), UDP datagrams with a partial frame, and `edgebrain stream` on a
live EVT 3.0 link deciding exactly as on the file. Every wait has a timeout.
"""

from __future__ import annotations

import json
import random
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from edgebrain.errors import EdgebrainError, InputError
from edgebrain.stream import open_source
from edgebrain.stream.sources.wav import SAMPLE_FORMATS, PcmDecoder, decode_pcm, encode_pcm
from edgebrain.stream.sources.livebin_events import raw_header_length
from tests.conftest import expected, need
from tests.stream.sources.test_live import Reader as LiveReader
from tests.stream.sources.test_live import (LinkClock, RecordingClock, backoff, check_reconnect_time,  # noqa: F401
                                            observed_links, use_clock, wait_open)  # (observed_links: autouse)

REPLAY = Path(__file__).with_name("_replay_binary.py")
from tests.conftest import REPO  # noqa: E402  (the repository root)
WAIT = 20.0               # seconds any single wait may take before the test fails (never hangs)
FSDD = "audio/fsdd/recordings/7_jackson_3.wav"
FMT = "events/formats"

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pseudo-terminals and /proc: Linux")


# ---------------------------------------------------------------------- recordings and their file readings


@pytest.fixture(scope="module")
def wav(datasets):
    path = need(datasets / FSDD)
    with open_source(str(path)) as src:
        ref = src.read_all()
    return str(path), ref


def _file_events(path, **options):
    with open_source(str(path), **options) as src:
        ev = np.concatenate([c.events for c in src.chunks()])
        return ev, src.info


@pytest.fixture(scope="module")
def events(datasets):
    """name → (path, events as the file reader decodes them, info)."""
    d = datasets / FMT
    out = {}
    for name, opts in (("evt3_sample.raw", {"format": "evt3"}), ("evt2.raw", {}), ("sample.aedat4", {})):
        p = need(d / name)
        out[name] = (str(p), *_file_events(p, **opts))
    return out


# ---------------------------------------------------------------------- writer processes and readers


class Writers:
    def __init__(self):
        self.procs = []

    def start(self, mode, target, file, *args):
        p = subprocess.Popen([sys.executable, str(REPLAY), mode, str(target), "--file", str(file), *map(str, args)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.procs.append(p)
        if mode != "tcp-connect":
            assert _readline(p).strip() == "ready"
        return p

    def kill_all(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait(5)
            for f in (p.stdin, p.stdout):
                f.close()


@pytest.fixture
def writers():
    w = Writers()
    yield w
    w.kill_all()


def _readline(p, timeout=WAIT):
    out = []
    th = threading.Thread(target=lambda: out.append(p.stdout.readline()), daemon=True)
    th.start()
    th.join(timeout)
    assert out and out[0], "writer process did not answer"
    return out[0]


def go(p):
    p.stdin.write("go\n")
    p.stdin.flush()


class Reader(LiveReader):
    """test_live's reader; ``finish`` returns the chunks (events or samples) as they came."""

    finish = LiveReader.collect


def samples(chunks):
    return np.concatenate([c.values for c in chunks]), np.concatenate([c.t for c in chunks])


def event_array(chunks):
    return np.concatenate([c.events for c in chunks])


def free_port(kind=socket.SOCK_STREAM) -> int:
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def bound(port: int, proto: str) -> bool:
    with open(f"/proc/net/{proto}") as f:
        rows = [ln.split() for ln in f.readlines()[1:]]
    return any(int(r[1].split(":")[1], 16) == port and (proto == "udp" or r[3] == "0A") for r in rows)


def check_audio(chunks, ref, rate=8000.0):
    v, t = samples(chunks)
    assert v.shape == ref.shape, f"received {v.shape[0]} samples, expected {ref.shape[0]}"
    np.testing.assert_array_equal(v, ref)
    np.testing.assert_array_equal(t, np.arange(len(ref)) / rate)
    assert max(len(c) for c in chunks) <= rate * 0.010          # at most 10 ms of audio per chunk
    arrival = np.array([c.arrival for c in chunks])
    assert np.all(arrival > 0) and np.all(np.diff(arrival) >= 0)


def check_events(chunks, ref):
    ev = event_array(chunks)
    assert len(ev) == len(ref), f"received {len(ev)} events, expected {len(ref)}"
    for k in ("x", "y", "t", "p"):
        np.testing.assert_array_equal(ev[k], ref[k], err_msg=k)
    for c in chunks:                                            # small chunks: low latency
        assert len(c) <= 4096 and int(c.events["t"][-1]) - int(c.events["t"][0]) <= 10_000
        assert c.t_end >= int(c.events["t"][-1]) and c.arrival > 0
    assert np.all(np.diff([c.arrival for c in chunks]) >= 0)


# ---------------------------------------------------------------------- the decoders, fed any split


def test_decoders_carry_state_across_any_split(wav, events):
    """The stateful decoders the file and link readers share, fed 1..7-byte pieces (then larger),
    give exactly the file's samples, raw EVT 2.0 words and finished EVT 3.0 events."""
    rng = random.Random(5)

    def pieces(b, small=20000):
        i = 0
        while i < len(b):
            n = rng.randint(1, 7) if i < small else rng.randint(1, 9000)
            yield b[i:i + n]
            i += n

    path, ref = wav
    data = open(path, "rb").read()[44:]
    dec = PcmDecoder("pcm", 2, 1)
    got = np.concatenate([dec.feed(p) for p in pieces(data)])
    np.testing.assert_array_equal(got, ref)
    np.testing.assert_array_equal(got, decode_pcm(data, "pcm", 2, 1))
    stereo24 = encode_pcm(np.stack([ref[:, 0], -ref[:, 0]], 1), 3).tobytes()  # 6-byte frames
    dec = PcmDecoder(*SAMPLE_FORMATS["s24le"], 2)
    got = np.concatenate([dec.feed(p) for p in pieces(stereo24)])
    np.testing.assert_array_equal(got, decode_pcm(stereo24, "pcm", 3, 2))
    assert dec.pending == 0 and got.shape == (len(ref), 2)

    p3, ref3, _ = events["evt3_sample.raw"]
    with open_source(p3, format="evt3") as src:
        d = src._decoder(size=src._limits(), jump=src.jump)
        raw = open(p3, "rb").read()[src.start:]
        out = []
        for piece in pieces(raw):
            out.extend(d.events(piece))
            tail = d.take()
            if tail is not None:
                out.append(tail)
        out.extend(d.events(final=True))
        tail = d.take()
        out += [tail] if tail is not None else []
        assert src.stats.repaired == 0
    ev = np.concatenate(out)
    np.testing.assert_array_equal(ev, ref3)

    p2 = events["evt2.raw"][0]
    with open_source(p2) as src:
        whole = list(src._batches())
        d = src._decoder()
        raw = open(p2, "rb").read()[src.start:]
        split = [b for piece in pieces(raw) for b in d.batches(piece)] + list(d.batches(final=True))
    for k in range(4):
        np.testing.assert_array_equal(np.concatenate([b.src[k] for b in split]),
                                      np.concatenate([b.src[k] for b in whole]))


# ---------------------------------------------------------------------- audio


def test_pcm_over_tcp_equals_file(wav, writers):
    path, ref = wav
    port = free_port()
    writers.start("tcp-serve", port, path, "--as", "pcm", "--pieces", "1:700", "--hold", 0.2)
    r = Reader(f"tcp://127.0.0.1:{port}?format=pcm&rate=8000&channels=1&sample=s16le", reconnect=0)
    chunks = r.finish()
    check_audio(chunks, ref)
    info = r.src.info
    assert (info.format, info.kind, info.rate, info.channels) == ("pcm", "samples", 8000.0, 1)
    assert info.extra["sample_format"] == "s16le" and info.extra["link"] == "tcp"
    assert r.src.stats.repaired == 0 and r.src.stats.dropped == 0


def test_streamed_wav_over_pty_equals_file(wav, writers, tmp_path):
    path, ref = wav
    link = tmp_path / "ttyMic"
    w = writers.start("pty", link, path, "--as", "wav", "--pieces", "1:300", "--go", "--hold", WAIT)
    r = Reader(f"serial://{link}?baud=921600&format=wav", want=len(ref), reconnect=0)
    wait_open(r, link)
    go(w)
    chunks = r.finish()
    check_audio(chunks, ref)
    info = r.src.info
    assert info.format == "wav" and info.rate == 8000.0 and info.extra["streamed"] is True
    assert info.extra["link"] == "serial" and r.src.stats.repaired == 0


@pytest.mark.parametrize("size", [0, 100])
def test_streamed_wav_size_is_not_trusted(wav, writers, size):
    """A data size of 0 or a wrong one: the samples run until the link ends (here the reader
    listens and the writer connects; bytes before the RIFF header are skipped and counted)."""
    path, ref = wav
    port = free_port()
    r = Reader(f"tcp://:{port}?format=wav", reconnect=0, connect_timeout=WAIT)
    r.wait_for(lambda: bound(port, "tcp"), "the reader to listen")
    writers.start("tcp-connect", port, path, "--as", "wav", "--wav-size", size, "--inject", "0:0d0a6f6b0d0a")
    chunks = r.finish()
    check_audio(chunks, ref)
    st = r.src.stats
    assert st.repaired == 1 and "6 bytes before the WAV header skipped" in st.messages[0], st.messages
    assert r.src.info.extra.get("data_size_declared") == (size or None)


def test_pcm_over_udp_whole_frames_per_datagram(wav, writers, monkeypatch):
    path, ref = wav
    clock = use_clock(monkeypatch, LinkClock())                 # time stands still while the link is silent
    port = free_port(socket.SOCK_DGRAM)
    r = Reader(f"udp://127.0.0.1:{port}?format=pcm&rate=8000", timeout=1.0)
    r.wait_for(lambda: bound(port, "udp"), "the reader to bind")
    writers.start("udp", port, path, "--as", "pcm", "--frame", 2, "--tail-byte", 5)
    r.wait_for(lambda: r.count >= len(ref), "every sample")
    clock.idle = 0.02                                           # from now on silence takes time
    chunks = r.finish()                                         # ends by itself: no datagram for 1 s
    check_audio(chunks, ref)
    st = r.src.stats
    assert st.repaired == 1 and any("ends inside a sample frame" in m for m in st.messages), st.messages


def test_wav_serial_link_drop_and_reconnect(wav, writers, tmp_path, monkeypatch):
    """The device (the writer holding the pty master) dies after half a sample frame; a new one
    appears at the same path, once the reader has tried three times to reopen it, and starts with its
    WAV header again; the reader reopens the port, discards the half frame (counted), skips the
    repeated header and gets the rest."""
    path, ref = wav
    clock = use_clock(monkeypatch, RecordingClock())
    link = tmp_path / "ttyDrop"
    head = 44
    cut = head + 2 * 1700 + 1                                   # inside frame 1700
    w1 = writers.start("pty", link, path, "--as", "wav", "--stop", cut, "--go", "--hold", WAIT)
    r = Reader(f"serial://{link}?format=wav", want=len(ref), timeout=WAIT, reconnect=10_000, backoff=0.02,
               backoff_max=0.1, give_up=WAIT)
    wait_open(r, link)
    go(w1)
    assert _readline(w1).startswith("sent")
    # the first part, and the half frame after it held by the decoder
    r.wait_for(lambda: r.count >= 1700 and r.src.dec.pending == 1, "the first part and the half frame")
    t_drop = time.perf_counter()
    w1.kill()
    w1.wait(5)
    # the device stays away until three attempts to reopen the port have failed (a fourth wait began)
    r.wait_for(lambda: len(clock.waits) >= 4, "three failed attempts to reopen the port")
    w2 = writers.start("pty", link, path, "--as", "wav", "--start", cut - 1, "--resend", head, "--go", "--hold", WAIT)
    wait_open(r, link, 2)
    seen = time.perf_counter() - t_drop
    go(w2)
    chunks = r.finish()
    check_audio(chunks, ref)
    st = r.src.stats
    assert st.reconnects == 1 and st.repaired == 1, st.messages
    assert any("partial sample frame (1 bytes) discarded" in m for m in st.messages), st.messages
    assert r.src.info.extra["headers_after_reconnect"] == 1
    assert check_reconnect_time(st, clock, seen) >= 4


# ---------------------------------------------------------------------- event cameras


def test_evt3_over_tcp_without_header_lines(events, writers):
    path, ref, _ = events["evt3_sample.raw"]
    port = free_port()
    writers.start("tcp-serve", port, path, "--strip-header", "--pieces", "1:5000", "--hold", 0.2)
    r = Reader(f"tcp://127.0.0.1:{port}?format=evt3&width=1280&height=720", reconnect=0)
    chunks = r.finish()
    check_events(chunks, ref)
    info = r.src.info
    assert info.format == "evt3" and info.sensor_size == (1280, 720) and info.kind == "events"
    assert r.src.stats.repaired == 0 and r.src.stats.dropped == 0


def test_evt3_with_header_lines_over_pty(events, writers, tmp_path):
    """The stream starts with the recording's ``%`` header lines: they give the sensor size."""
    path, ref, _ = events["evt3_sample.raw"]
    link = tmp_path / "ttyEvk"
    w = writers.start("pty", link, path, "--pieces", "1:3000", "--go", "--hold", WAIT)
    r = Reader(f"serial://{link}?baud=2000000&format=evt3", want=len(ref), reconnect=0)
    wait_open(r, link)
    go(w)
    chunks = r.finish()
    check_events(chunks, ref)
    info = r.src.info
    assert info.sensor_size == (1280, 720) and info.extra["plugin_name"] == "hal_plugin_gen41_evk3"


def test_evt2_over_pty_encoding_from_header(events, writers, tmp_path):
    path, ref, _ = events["evt2.raw"]
    link = tmp_path / "ttyGen3"
    w = writers.start("pty", link, path, "--pieces", "1:4000", "--go", "--hold", WAIT)
    r = Reader(f"serial://{link}?format=raw", want=len(ref), reconnect=0)
    wait_open(r, link)
    go(w)
    chunks = r.finish()
    check_events(chunks, ref)
    assert r.src.info.format == "evt2" and r.src.info.sensor_size == (640, 480)


@pytest.mark.parametrize("variant", ["file", "headerless"])
def test_aedat4_over_tcp(events, writers, variant):
    """A recording sent as is (its data table at the end is recognised and skipped) or as DV's network
    output sends it (the IOHeader without the version line)."""
    path, ref, _ = events["sample.aedat4"]
    port = free_port()
    as_ = "raw" if variant == "file" else "headerless"
    writers.start("tcp-serve", port, path, "--as", as_, "--pieces", "1:3000", "--hold", 0.2)
    r = Reader(f"tcp://127.0.0.1:{port}?format=aedat4", reconnect=0)
    chunks = r.finish()
    check_events(chunks, ref)
    info, st = r.src.info, r.src.stats
    assert info.sensor_size == (320, 240) and info.extra["header"] == ("file" if variant == "file" else "network")
    imus = expected(path, imu_packets=59)["imu_packets"]
    assert info.extra["skipped_packets"] == {"IMUS": imus} and st.repaired == 0, st.messages


def test_evt3_tcp_link_drop_and_reconnect(events, writers):
    """The camera server dies after half a word; a restarted one sends its header lines again and
    the words from that word on; the reader reconnects and the events equal the file's exactly
    (EVT 3.0 time state kept across the drop)."""
    path, ref, _ = events["evt3_sample.raw"]
    data = open(path, "rb").read()
    head = raw_header_length(data, final=True)
    cut = head + 2 * min(150_001, (len(data) - head) // 4) + 1   # inside a word, well into the data
    port = free_port()
    w1 = writers.start("tcp-serve", port, path, "--stop", cut, "--hold", WAIT)
    # the attempts go on until the new server is up, however long it takes to start (WAIT at most)
    r = Reader(f"tcp://127.0.0.1:{port}?format=evt3", want=len(ref), timeout=WAIT, reconnect=10_000, backoff=0.02,
               backoff_max=0.1, give_up=WAIT)
    assert _readline(w1).startswith("sent")
    r.wait_for(lambda: r.count > 0, "the first events")
    w1.kill()
    w1.wait(5)
    writers.start("tcp-serve", port, path, "--start", cut - 1, "--resend", head, "--hold", WAIT)
    chunks = r.finish()
    check_events(chunks, ref)
    st = r.src.stats
    assert st.reconnects == 1 and st.repaired == 1, st.messages
    assert any("link dropped inside a 2-byte word: 1 bytes discarded" in m for m in st.messages), st.messages
    assert r.src.info.extra["headers_after_reconnect"] == 1


def _aedat4_packet_starts(path):
    data = open(path, "rb").read()
    pos = 18 + struct.unpack_from("<I", data, 14)[0]
    starts = []
    while pos + 8 <= len(data):
        sid, size = struct.unpack_from("<ii", data, pos)
        if size <= 0 or sid < 0 or sid > 16:
            break
        starts.append(pos)
        pos += 8 + size
    return starts


def test_garbage_on_the_link_is_counted_and_the_data_around_kept(events, writers):
    """AEDAT 4: random bytes between packets are skipped to the next packet (one repair per run);
    EVT 3.0: words of undefined type are skipped by the decoder. Every event is still there."""
    path, ref, _ = events["sample.aedat4"]
    starts = _aedat4_packet_starts(path)
    at = [starts[3], starts[40], starts[41], starts[len(starts) // 2]]
    port = free_port()
    writers.start("tcp-serve", port, path, "--pieces", "1:2000", "--hold", 0.2,
                  *[a for k, n in zip(at, (37, 500, 5, 3000)) for a in ("--inject", f"{k}:r{n}")])
    r = Reader(f"tcp://127.0.0.1:{port}?format=aedat4", reconnect=0)
    chunks = r.finish()
    check_events(chunks, ref)
    st = r.src.stats
    garbage = [m for m in st.messages if "not a valid packet" in m]
    assert st.repaired == 4 and len(garbage) == 4, st.messages
    assert any("37 bytes" in m for m in garbage) and any("3000 bytes" in m for m in garbage)

    path, ref, _ = events["evt3_sample.raw"]
    data = open(path, "rb").read()
    head = raw_header_length(data, final=True)
    junk = b"".join(struct.pack("<H", 0xC000 | (k * 37 % 4096)) + struct.pack("<H", 0xB000 | k) for k in range(8))
    port = free_port()
    writers.start("tcp-serve", port, path, "--pieces", "1:2000", "--hold", 0.2,
                  "--inject", f"{head + 2 * 1000}:{junk.hex()}",
                  "--inject", f"{head + 2 * min(90_000, (len(data) - head) // 4)}:{junk.hex()}")
    r = Reader(f"tcp://127.0.0.1:{port}?format=evt3", reconnect=0)
    chunks = r.finish()
    check_events(chunks, ref)
    st = r.src.stats
    assert st.repaired == 32 and any("words of unknown type skipped" in m for m in st.messages), st.messages


# ---------------------------------------------------------------------- no hangs, clear errors


class _Server(threading.Thread):
    """A TCP server in this process that sends ``data`` to one client and then holds the link for
    ``hold`` seconds, or (None) until the client goes away (``client_left``; WAIT at most)."""

    def __init__(self, data=b"", hold=None):
        super().__init__(daemon=True)
        self.ls = socket.socket()
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(1)
        self.ls.settimeout(WAIT)
        self.port = self.ls.getsockname()[1]
        self.data, self.hold, self.client_left = data, hold, False
        self.start()

    def run(self):
        try:
            c, _ = self.ls.accept()
            c.sendall(self.data)
            if self.hold is None:
                c.settimeout(WAIT)
                self.client_left = c.recv(1) == b""
            else:
                time.sleep(self.hold)
            c.close()
        except OSError:
            self.client_left = self.hold is None
        finally:
            self.ls.close()


def test_bad_options_and_silent_links_are_clear_errors():
    url = "tcp://127.0.0.1:1"
    for query, match in (("format=pcm", "format=pcm needs rate="), ("format=pcm&rate=8000&sample=s16be", "sample="),
                         ("format=wav&rate=8000", "format=wav takes rate"), ("format=mp3", "not a live stream format"),
                         ("format=evt3&bogus=1", "unknown option bogus"),
                         ("format=evt3&width=640", "both width= and height=")):
        with pytest.raises(InputError, match=match):
            open_source(f"{url}?{query}", reconnect=0)
    with pytest.raises(InputError, match="do not fit in datagrams"):
        open_source(f"udp://127.0.0.1:{free_port(socket.SOCK_DGRAM)}?format=aedat4")
    # each server holds the link until the source gives up by itself and hangs up (no hang)
    for data, fmt, error, match in ((b"", "evt3", InputError, "no data received"),  # sends nothing
                                    (b"this is not an AEDAT 4 stream at all", "aedat4", EdgebrainError,
                                     "expected an AEDAT 4 header"),
                                    (b"\x00" * 5000, "wav", EdgebrainError, "no RIFF/WAVE header")):
        srv = _Server(data)
        with pytest.raises(error, match=match):
            open_source(f"tcp://127.0.0.1:{srv.port}?format={fmt}&timeout=0.3&reconnect=0")
        srv.join(WAIT)
        assert srv.client_left, fmt


def test_gives_up_cleanly_after_the_device_is_gone(monkeypatch):
    """A device sends 1001 bytes of 16-bit PCM and goes away for good: the 500 whole samples are
    kept, the odd byte is counted, the reconnection attempts back off and the stream ends."""
    clock = use_clock(monkeypatch, RecordingClock())
    x = (np.arange(500) * 37 % 2000 - 1000).astype("<i2")
    srv = _Server(x.tobytes() + b"\x01", hold=0.0)
    src = open_source(f"tcp://127.0.0.1:{srv.port}?format=pcm&rate=16000&reconnect=2&backoff=0.05&backoff_max=0.1")
    chunks = list(src.chunks())
    v, t = samples(chunks)
    np.testing.assert_array_equal(v[:, 0], x.astype(np.float32) / 32768)
    assert max(len(c) for c in chunks) <= 160 and t[-1] == 499 / 16000
    st = src.stats
    assert st.repaired == 1 and st.reconnects == 0, st.messages
    assert any("partial sample frame (1 bytes) discarded" in m for m in st.messages)
    assert any("gave up after 2 reconnection attempts" in m for m in st.messages), st.messages
    # the close is seen as it comes (not after the 5 s timeout); the only waits are the backoff
    assert any("link dropped (connection closed by the peer)" in m for m in st.messages), st.messages
    assert clock.waits == backoff(2, 0.05, 0.1)


# ---------------------------------------------------------------------- edgebrain stream on a live link


def _cli(*args, timeout=120):
    p = subprocess.run([sys.executable, "-m", "edgebrain.cli", *map(str, args)], capture_output=True, text=True,
                       timeout=timeout, cwd=str(REPO))
    return p.returncode, p.stdout, p.stderr


def _jsonl(text):
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert "summary" in rows[-1]
    return rows[:-1], rows[-1]["summary"]


def test_cli_stream_live_evt3_decides_as_the_file(events, writers, tmp_path):
    """`edgebrain stream MODEL --source tcp://...?format=evt3...` (a writer process serving the
    recording's words without header lines) gives the same decisions as streaming the file."""
    from edgebrain import ops
    from edgebrain.graph import Graph
    from edgebrain.model import Model

    rng = np.random.default_rng(7)
    n_in, n_h, n_out = 2 * 18 * 32, 48, 4
    g = Graph.sequential(
        ops.Input(shape=(n_in,)),
        ops.Affine(weight=(rng.standard_normal((n_h, n_in)) * 0.15).astype(np.float32),
                   bias=np.zeros(n_h, np.float32)),
        ops.LIF(beta=np.full(n_h, 0.9, np.float32), threshold=np.ones(n_h, np.float32)),
        ops.Affine(weight=(rng.standard_normal((n_out, n_h)) * 0.8).astype(np.float32),
                   bias=np.zeros(n_out, np.float32)),
        ops.LIF(beta=np.full(n_out, 0.9, np.float32), threshold=np.ones(n_out, np.float32)), ops.Output())
    m = Model(g.prepare())
    m.graph.meta["stream"] = {"encoder": "bin:window_us=250,polarity=split,downsample=40,clip=3",
                              "decoder": "count:window=4", "labels": ["a", "b", "c", "d"]}
    model = tmp_path / "evk.ebm"
    m.save(model)
    path = events["evt3_sample.raw"][0]
    rc, out, err = _cli("stream", model, "--source", path, "--format", "evt3", "--json")
    assert rc == 0, err
    file_rows, file_sum = _jsonl(out)
    port = free_port()
    writers.start("tcp-serve", port, path, "--strip-header", "--pieces", "1:5000", "--hold", 0.5)
    rc, out, err = _cli("stream", model, "--source", f"tcp://127.0.0.1:{port}?format=evt3&width=1280&height=720"
                        "&reconnect=0", "--json", timeout=60)
    assert rc == 0, err
    live_rows, live_sum = _jsonl(out)
    key = lambda rows: [(r["t"], r["label"], r["confidence"]) for r in rows]
    assert key(live_rows) == key(file_rows) and len(file_rows) >= 8
    assert len({r["label"] for r in file_rows}) >= 2                       # not a trivial model
    assert live_sum["items"] == file_sum["items"] == len(events["evt3_sample.raw"][1])
    assert live_sum["steps"] == file_sum["steps"] and live_sum["format"] == "evt3"
    assert live_sum["input"]["repaired"] == 0 and live_sum["latency_ms"]["p99"] is not None
