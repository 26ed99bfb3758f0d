"""The harness measures what it claims: each child's own peak memory, a wall-clock limit that kills
a hung command, file changes, and the shape of a user error."""

import os
import sys
import time

import pytest

from tests.hostile import _harness as H

PY = sys.executable


def test_peak_rss_is_the_childs_own():
    big = H.run_command([PY, "-c", "b = bytearray(200 << 20); b[::4096] = b'x' * len(b[::4096])"])
    small = H.run_command([PY, "-c", "pass"])
    assert big.returncode == 0 and small.returncode == 0
    assert big.peak_rss_mib >= 200, big.describe()
    # a maximum over all children (RUSAGE_CHILDREN) would report the 200 MiB child again here
    assert small.peak_rss_mib < 60, small.describe()
    with pytest.raises(AssertionError, match="above the baseline"):
        H.assert_rss_close(big, small)
    H.assert_rss_close(small, big)


def _gone(pid: int) -> bool:
    """Has process ``pid`` ended (no such process, or a zombie waiting to be reaped)?"""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc: Linux")
def test_a_hung_command_is_killed_at_the_timeout(tmp_path):
    # the sleeper starts a grandchild in the same process group and notes its pid: both must go
    pidfile = tmp_path / "grandchild.pid"
    code = ("import pathlib, subprocess, sys, time; "
            "g = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
            f"t = pathlib.Path({str(pidfile) + '.tmp'!r}); t.write_text(str(g.pid)); t.replace({str(pidfile)!r}); "
            "time.sleep(60)")
    with pytest.raises(pytest.fail.Exception, match="hung: still running after 1.5 s"):
        H.run_command([PY, "-c", code], timeout=1.5)
    if pidfile.exists():  # (on a very slow machine the child may be killed before it started one)
        pid = int(pidfile.read_text())
        deadline = time.monotonic() + 30  # a hang guard: SIGKILL takes effect at once
        while not _gone(pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _gone(pid), f"the grandchild {pid} outlived the timeout"
    r = H.run_command([PY, "-c", "import time; time.sleep(60)"], timeout=1, expect_hang=True)
    assert r.extra["hung"] and r.signal == 9 and r.wall_s >= 1  # killed at the timeout, not before


def test_output_is_captured_and_bounded():
    r = H.run_command([PY, "-c", f"import sys; sys.stdout.write('x' * ({H.MAX_CAPTURE} + 5000)); "
                                 "sys.stderr.write('error: one\\n'); sys.exit(2)"])
    assert r.returncode == 2 and r.stdout_bytes == H.MAX_CAPTURE + 5000 and len(r.stdout) == H.MAX_CAPTURE
    assert r.stderr == "error: one\n"


def test_stdin_bytes_and_closed_stdout():
    r = H.run_command([PY, "-c", "import sys; print(len(sys.stdin.buffer.read()))"], stdin=b"abc" * 1000)
    assert r.stdout.strip() == "3000"
    r = H.run_command([PY, "-c", "import os, sys; sys.stderr.write(str(os.path.exists('/proc/self/fd/1')))"],
                      close_stdout=True)
    assert r.stderr == "False"


def test_tree_hash_sees_content_modes_links_and_fifos(tmp_path):
    (tmp_path / "a").write_bytes(b"one")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b").write_bytes(b"two")
    os.symlink("a", tmp_path / "ln")
    os.mkfifo(tmp_path / "fifo")  # hashing must not open it (that would block)
    before = H.tree_hash(tmp_path)
    assert before["ln"][0] == "link:a" and before["fifo"][0] == "fifo"
    H.assert_unchanged(before, H.tree_hash(tmp_path))

    (tmp_path / "sub" / "b").write_bytes(b"twO")  # same size, one byte changed
    with pytest.raises(AssertionError, match=r"changed \['sub/b'\]"):
        H.assert_unchanged(before, H.tree_hash(tmp_path))
    H.assert_unchanged(before, H.tree_hash(tmp_path), allowed=["sub/*"])

    (tmp_path / "sub" / "b").write_bytes(b"two")
    os.chmod(tmp_path / "a", 0o600)
    os.chmod(tmp_path / "a", 0o666)
    with pytest.raises(AssertionError, match=r"changed \['a'\]"):
        H.assert_unchanged(before, H.tree_hash(tmp_path))
    os.chmod(tmp_path / "a", before["a"][1] & 0o7777)

    os.remove(tmp_path / "ln")
    os.symlink("sub/b", tmp_path / "ln")  # a link retargeted
    (tmp_path / "a.tmp").write_bytes(b"")  # a stray temporary file
    with pytest.raises(AssertionError, match=r"changed \['ln'\], added \['a.tmp'\]"):
        H.assert_unchanged(before, H.tree_hash(tmp_path))


def test_user_error_shape():
    ok = H.Result(["x"], 2, "", "error: x.npy: file not found\n", 0.1, 1000)
    assert H.assert_user_error(ok, contains="not found").startswith("error:")
    bad = [
        H.Result(["x"], 1, "", "error: internal error (ValueError: boom); please report it\n", 0.1, 1000),
        H.Result(["x"], 2, "", "Traceback (most recent call last):\nValueError\nerror: boom\n", 0.1, 1000),
        H.Result(["x"], 2, "", "error: one\nerror: two\n", 0.1, 1000),
        H.Result(["x"], 2, "", "error: a message broken\nover two lines\n", 0.1, 1000),
        H.Result(["x"], 0, "", "", 0.1, 1000),
    ]
    for r in bad:
        with pytest.raises(AssertionError):
            H.assert_user_error(r)
    with pytest.raises(AssertionError, match="does not mention"):
        H.assert_user_error(ok, contains="offset")


def test_the_real_cli_missing_file_is_a_user_error(tmp_path):
    before = H.tree_hash(tmp_path)
    r = H.run_cli(["inspect", str(tmp_path / "missing.nir")], cwd=tmp_path, timeout=120)
    H.assert_user_error(r, contains="missing.nir")
    H.assert_rss_close(r, H.baseline("model"))
    H.assert_unchanged(before, H.tree_hash(tmp_path))
