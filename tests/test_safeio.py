"""edgebrain.safeio: the one-shot writer (atomic_write) and the streaming writer (open_stream),
checked on real files, links and FIFOs of this machine (the CLI-level tests are in
tests/hostile/test_outputs.py)."""

from __future__ import annotations

import os
import signal
import stat
import threading

import numpy as np
import pytest

from edgebrain import safeio
from edgebrain.errors import EdgebrainError, OutputError
from edgebrain.safeio import atomic_write, check_output, local_path, open_stream, reading


def _umask() -> int:
    old = os.umask(0o022)
    os.umask(old)
    return old


def listing(d):
    return sorted(os.listdir(d))


# ------------------------------------------------------------------ one-shot


def test_atomic_write_new_file_gets_the_usual_permissions(tmp_path):
    out = tmp_path / "a.bin"
    with atomic_write(out) as f:
        f.write(b"hello")
        assert not out.exists()  # nothing visible under the name until the end
    assert out.read_bytes() == b"hello" and listing(tmp_path) == ["a.bin"]
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~_umask()


def test_atomic_write_replacing_keeps_mode_and_an_error_keeps_the_old_file(tmp_path):
    out = tmp_path / "a.bin"
    out.write_bytes(b"old")
    os.chmod(out, 0o640)
    with pytest.raises(RuntimeError):
        with atomic_write(out) as f:
            f.write(b"half")
            raise RuntimeError("writer failed")
    assert out.read_bytes() == b"old" and listing(tmp_path) == ["a.bin"]
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(out) as f:
            f.write(b"half")
            raise KeyboardInterrupt
    assert out.read_bytes() == b"old" and listing(tmp_path) == ["a.bin"]
    with atomic_write(out) as f:
        f.write(b"new")
    assert out.read_bytes() == b"new" and stat.S_IMODE(out.stat().st_mode) == 0o640


def test_atomic_write_turns_sigterm_into_a_clean_exit_and_restores_the_handler(tmp_path):
    out = tmp_path / "a.bin"
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    with pytest.raises(SystemExit) as e:
        with atomic_write(out) as f:
            f.write(b"half")
            os.kill(os.getpid(), signal.SIGTERM)  # the handler runs at the next bytecode
            f.write(b"never")
    assert e.value.code == 143
    assert listing(tmp_path) == [] and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_atomic_write_refuses_links_directories_and_inputs(tmp_path):
    target = tmp_path / "t"
    target.write_bytes(b"keep")
    os.symlink(target, tmp_path / "link")
    os.symlink(tmp_path / "nowhere", tmp_path / "dangling")
    (tmp_path / "d").mkdir()
    for name, words in (("link", "symbolic link"), ("dangling", "symbolic link"), ("d", "directory")):
        with pytest.raises(OutputError, match=words) as e:
            with atomic_write(tmp_path / name) as f:
                f.write(b"x")
        assert str(tmp_path / name) in str(e.value)
    with reading(target):
        with pytest.raises(OutputError, match="same file as an input"):
            check_output(target)
        os.link(target, tmp_path / "hard")
        with pytest.raises(OutputError, match="same file as an input"):
            with atomic_write(tmp_path / "hard") as f:
                f.write(b"x")
    assert target.read_bytes() == b"keep" and os.readlink(tmp_path / "link") == str(target)
    assert not (tmp_path / "nowhere").exists()
    check_output(target)  # no longer being read


def _fifo_reader(tmp_path):
    """A FIFO in ``tmp_path`` and a thread reading it to the end: (path, thread, {"data": bytes})."""
    fifo = tmp_path / "p"
    os.mkfifo(fifo)
    got = {}

    def read():
        with open(fifo, "rb") as f:
            got["data"] = f.read()

    t = threading.Thread(target=read, daemon=True)
    t.start()
    return fifo, t, got


def test_atomic_write_streams_into_a_fifo(tmp_path):
    fifo, t, got = _fifo_reader(tmp_path)
    payload = np.arange(100_000, dtype=np.int32).tobytes()  # more than a pipe holds
    with atomic_write(fifo) as f:
        f.write(payload)
        f.seek(0)  # writers may seek: the content is spooled first
        f.write(b"\1\2\3\4")
    t.join(10)
    assert got["data"] == b"\1\2\3\4" + payload[4:]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and listing(tmp_path) == ["p"]


def test_atomic_write_a_full_device_is_one_clear_error(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("making a device node needs root")
    full = tmp_path / "full"
    os.mknod(full, 0o666 | stat.S_IFCHR, os.makedev(1, 7))  # a /dev/full of our own
    with pytest.raises(OutputError, match="No space left") as e:
        with atomic_write(full) as f:
            f.write(b"x" * 10000)
    assert str(full) in str(e.value) and stat.S_ISCHR(os.lstat(full).st_mode)


def test_atomic_write_an_output_error_names_the_file(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root may write into a read-only folder")
    d = tmp_path / "ro"
    d.mkdir()
    os.chmod(d, 0o500)
    try:
        with pytest.raises(EdgebrainError, match="cannot write") as e:
            with atomic_write(d / "x.bin") as f:
                f.write(b"x")
        assert "x.bin" in str(e.value)
    finally:
        os.chmod(d, 0o700)


# ------------------------------------------------------------------ streaming


def test_open_stream_writes_through_at_once_and_fsyncs_within_the_interval(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(safeio, "SYNC_INTERVAL", 0.05)
    monkeypatch.setattr(safeio.os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    out = tmp_path / "s.csv"
    out.write_text("old contents\n")
    s = open_stream(out, text=True)
    assert out.read_text() == ""  # truncated in place
    s.write("a,1\n")
    assert out.read_text() == "a,1\n"  # a live reader sees it before close
    deadline = 200
    while not synced and deadline:
        threading.Event().wait(0.01)
        deadline -= 1
    assert synced == [s.fileno()]
    s.close()
    s2 = open_stream(out, append=True)
    s2.write(b"b,2\n")
    s2.close()
    assert out.read_text() == "a,1\nb,2\n"


def test_open_stream_refuses_a_link_and_an_input_before_truncating(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    os.symlink(victim, tmp_path / "link")
    with pytest.raises(OutputError, match="symbolic link"):
        open_stream(tmp_path / "link")
    with reading(str(victim)):
        with pytest.raises(OutputError, match="same file as an input"):
            open_stream(victim)
    assert victim.read_text() == "precious\n"
    with pytest.raises(OutputError, match="directory"):
        open_stream(tmp_path)


def test_open_stream_accepts_a_fifo(tmp_path):
    fifo, t, got = _fifo_reader(tmp_path)
    with open_stream(fifo) as s:
        assert not s.seekable()
        s.write(b"line\n")
    t.join(10)
    assert got["data"] == b"line\n" and stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_local_path():
    assert local_path("rec.csv") == "rec.csv"
    assert local_path("file:///tmp/a%20b.wav") == "/tmp/a b.wav"
    assert local_path("tcp://127.0.0.1:5000?rate=100") is None
    assert local_path(None) is None


def test_write_events_npy_counts_what_was_written_when_interrupted(tmp_path):
    from edgebrain.stream.base import EVENT_DTYPE
    from edgebrain.stream.sources.events import write_events_npy

    ev = np.zeros(10, EVENT_DTYPE)
    ev["t"] = np.arange(10)

    def chunks():
        yield ev[:6]
        raise KeyboardInterrupt

    with open(tmp_path / "e.npy", "w+b") as f, pytest.raises(KeyboardInterrupt):
        write_events_npy(f, chunks())
    np.testing.assert_array_equal(np.load(tmp_path / "e.npy"), ev[:6])
    with pytest.raises(KeyboardInterrupt):  # by name: atomic, nothing left
        write_events_npy(tmp_path / "f.npy", chunks())
    assert listing(tmp_path) == ["e.npy"]


_HOLD_OPEN = """
import sys, time
from edgebrain.safeio import atomic_write
with atomic_write(sys.argv[1]) as f:
    f.write(b"half of a new file")
    f.flush()
    print("writing", flush=True)
    time.sleep(600)
"""


def _writer_in_the_middle(path):
    """A real process inside atomic_write(path), its temporary file on disk."""
    import subprocess
    import sys

    p = subprocess.Popen([sys.executable, "-c", _HOLD_OPEN, str(path)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "writing"
    return p


def _temporaries(folder):
    return sorted(n for n in os.listdir(folder) if n.endswith(".tmp"))


def test_a_temporary_file_left_by_a_killed_writer_is_removed_by_the_next_write(tmp_path):
    """Issue 11: SIGKILL or a power cut leaves the hidden temporary file of atomic_write behind
    (no handler runs); the next write of the same output removes it, and never one that a living
    writer is still filling."""
    out = tmp_path / "model.ebm"
    out.write_bytes(b"old")
    dead = _writer_in_the_middle(out)
    dead.kill()
    dead.wait()
    orphans = _temporaries(tmp_path)
    assert len(orphans) == 1 and f"-{dead.pid}-" in orphans[0]
    alive = _writer_in_the_middle(out)  # the next writer removes the dead one's file ...
    try:
        left = _temporaries(tmp_path)
        assert len(left) == 1 and f"-{alive.pid}-" in left[0]
        with atomic_write(out) as f:  # ... and a writer never removes a living one's
            f.write(b"new")
        assert _temporaries(tmp_path) == left
        assert out.read_bytes() == b"new"
    finally:
        alive.kill()
        alive.wait()
    other = tmp_path / ".model.ebm.eb-otherhost-1-abc.tmp"  # another machine's, on a shared folder
    other.write_bytes(b"x")
    with atomic_write(out) as f:
        f.write(b"newer")
    assert other.exists()
