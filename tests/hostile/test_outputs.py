"""Issue 11, items 6, 8 and part of 12: outputs are written only where the user asked, atomically,
never through a link someone planted, never replacing what is not a regular file, and never over
an input. Each test runs the real command line (``_harness.run_cli``) and hashes the folder
before and after."""

from __future__ import annotations

import json
import os
import socket
import stat
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tests.hostile._harness import (assert_ok, assert_unchanged, assert_user_error, run_cli, tree_hash,
                                    valid_input)


class FifoReader(threading.Thread):
    """Opens a FIFO for reading (blocking until a writer comes) and reads it to its end."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.path, self.data = path, None

    def run(self):
        with open(self.path, "rb") as f:
            self.data = f.read()


@pytest.fixture(scope="module")
def ebm_model(tmp_path_factory, example_model):
    """The example model converted once (a regular-file output: the reference bytes)."""
    out = tmp_path_factory.mktemp("model") / "model.ebm"
    assert_ok(run_cli(["convert", example_model, "-o", out]))
    return out


# ------------------------------------------------------------------ one-shot outputs (item 6)


def test_convert_ignores_a_link_planted_at_the_old_temporary_name(tmp_path, example_model, ebm_model):
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious\n")
    work = tmp_path / "out"
    work.mkdir()
    os.symlink(victim, work / "model.ebm.tmp")
    os.symlink(victim, work / "model.ebm.part")
    before = tree_hash(tmp_path)
    assert_ok(run_cli(["convert", example_model, "-o", work / "model.ebm"]))
    assert victim.read_bytes() == b"precious\n"
    assert (work / "model.ebm").read_bytes() == ebm_model.read_bytes()
    assert stat.S_ISREG(os.lstat(work / "model.ebm").st_mode)
    assert_unchanged(before, tree_hash(tmp_path), allowed=["out/model.ebm"])  # no temporary file left behind


def test_convert_to_a_fifo_streams_into_it_and_keeps_it(tmp_path, example_model, ebm_model):
    fifo = tmp_path / "pipe.ebm"
    os.mkfifo(fifo)
    reader = FifoReader(fifo)
    reader.start()
    before = tree_hash(tmp_path)
    r = run_cli(["convert", example_model, "-o", fifo], timeout=60)
    reader.join(10)
    assert_ok(r)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode), "the FIFO was replaced by a regular file"
    assert reader.data == ebm_model.read_bytes()
    assert_unchanged(before, tree_hash(tmp_path))


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="making a device node needs root")
def test_convert_to_a_character_device_writes_to_it_and_keeps_it(tmp_path, example_model):
    dev = tmp_path / "null"
    os.mknod(dev, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # a /dev/null of our own
    before = tree_hash(tmp_path)
    assert_ok(run_cli(["convert", example_model, "-o", dev]))
    assert stat.S_ISCHR(os.lstat(dev).st_mode), "the device node was replaced by a regular file"
    assert_unchanged(before, tree_hash(tmp_path))


def test_convert_refuses_to_replace_a_symlink_or_a_directory(tmp_path, example_model):
    target = tmp_path / "elsewhere.ebm"
    target.write_bytes(b"not yours\n")
    os.symlink(target, tmp_path / "link.ebm")
    (tmp_path / "dir.ebm").mkdir()
    before = tree_hash(tmp_path)
    assert_user_error(run_cli(["convert", example_model, "-o", tmp_path / "link.ebm"]),
                      contains=("link.ebm", "symbolic link"))
    assert_user_error(run_cli(["convert", example_model, "-o", tmp_path / "dir.ebm"]), contains=("dir.ebm", "directory"))
    assert_unchanged(before, tree_hash(tmp_path))


def test_nir_export_refuses_a_symlink(tmp_path, ebm_model):
    target = tmp_path / "elsewhere.nir"
    target.write_bytes(b"not yours\n")
    os.symlink(target, tmp_path / "out.nir")
    before = tree_hash(tmp_path)
    assert_user_error(run_cli(["convert", ebm_model, "-o", tmp_path / "out.nir"]), contains="symbolic link")
    assert_unchanged(before, tree_hash(tmp_path))


def test_run_writes_exactly_the_file_it_names(tmp_path, example_model):
    x = valid_input("samples_npy")
    out = tmp_path / "result"
    r = run_cli(["run", example_model, "-i", x, "-o", out])
    assert_ok(r)
    assert sorted(os.listdir(tmp_path)) == ["result"], "run -o result must write 'result', nothing else"
    assert f"wrote {out}" in r.stdout
    with np.load(out) as z:
        assert z["output"].shape[0] == np.load(x).shape[0]


# ------------------------------------------------------------------ output = input (item 8)


def test_record_refuses_to_write_over_its_source(tmp_path):
    wav = tmp_path / "a.wav"
    wav.write_bytes(valid_input("wav").read_bytes())
    os.link(wav, tmp_path / "hard.wav")  # another name, the same inode
    before = tree_hash(tmp_path)
    assert_user_error(run_cli(["record", "-s", wav, "-o", wav]), contains=("a.wav", "same file"))
    assert_user_error(run_cli(["record", "-s", wav, "-o", tmp_path / "hard.wav"]), contains=("hard.wav", "same file"))
    assert_unchanged(before, tree_hash(tmp_path))


def test_stream_refuses_a_sink_that_is_its_source(tmp_path):
    csv = tmp_path / "x.csv"
    csv.write_bytes(valid_input("imu_csv").read_bytes())
    before = tree_hash(tmp_path)
    r = run_cli(["stream", "zoo:har-l2mu", "--source", csv, "--sink", f"csv:path={csv}", "--json"])
    assert_user_error(r, contains=("x.csv", "same file"))
    assert_unchanged(before, tree_hash(tmp_path))


def test_run_refuses_an_output_that_is_its_input(tmp_path, example_model):
    x = tmp_path / "x.npy"
    x.write_bytes(valid_input("samples_npy").read_bytes())
    before = tree_hash(tmp_path)
    assert_user_error(run_cli(["run", example_model, "-i", x, "-o", x]), contains=("x.npy", "same file"))
    assert_unchanged(before, tree_hash(tmp_path))


# ------------------------------------------------------------------ streaming outputs (item 6)


def test_csv_sink_refuses_a_planted_link(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious\n")
    os.symlink(victim, tmp_path / "out.csv")
    before = tree_hash(tmp_path)
    r = run_cli(["stream", "zoo:har-l2mu", "--source", valid_input("imu_csv"), "--sink",
                 f"csv:path={tmp_path / 'out.csv'}"])
    assert_user_error(r, contains=("out.csv", "symbolic link"))
    assert_unchanged(before, tree_hash(tmp_path))


def test_file_sink_writes_into_a_fifo(tmp_path):
    fifo = tmp_path / "decisions"
    os.mkfifo(fifo)
    reader = FifoReader(fifo)
    reader.start()
    r = run_cli(["stream", "zoo:har-l2mu", "--source", valid_input("imu_csv"), "--sink", f"file:path={fifo}"])
    reader.join(10)
    assert_ok(r)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    rows = [json.loads(line) for line in reader.data.decode().splitlines()]
    assert len(rows) > 10 and "summary" in rows[-1] and all("label" in row for row in rows[:-1])


def test_record_of_a_live_source_is_readable_while_it_runs(tmp_path):
    """A live recording is written in place as it comes: a reader sees the samples while the link is
    still open (the server closes it only once it has seen them), not only at the end."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    out = tmp_path / "cap.csv"
    seen = {}

    def serve():
        conn, _ = srv.accept()
        with conn:
            conn.sendall(b"".join(b"%d,%d,%d\n" % (i, -i, 2 * i) for i in range(300)))
            deadline = time.monotonic() + 60  # a hang guard
            while time.monotonic() < deadline:
                if out.exists() and out.read_text().count("\n") >= 200:
                    seen["lines"] = out.read_text().count("\n")
                    conn.setblocking(False)
                    try:  # the recorder has not hung up: nothing to read, and no end of stream either
                        seen["open"] = conn.recv(1, socket.MSG_PEEK) != b""
                    except BlockingIOError:
                        seen["open"] = True
                    break
                time.sleep(0.05)
        srv.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    r = run_cli(["record", "-s", f"tcp://127.0.0.1:{port}?rate=100&reconnect=0&timeout=60", "-o", out], timeout=90)
    t.join(10)
    assert_ok(r)
    assert seen.get("lines", 0) >= 200 and seen.get("open"), "nothing readable before the recording ended"
    rows = [ln for ln in out.read_text().splitlines() if ln and not ln.startswith("#")]
    assert len(rows) - 1 >= 290  # the header, then the samples (a few may go to start-up)


def test_a_plot_is_never_written_through_a_link(tmp_path):
    pytest.importorskip("matplotlib")
    from edgebrain.energy.plot import plot_profile
    from edgebrain.errors import EdgebrainError

    result = {"model": "m", "measured": {"measured": False, "windows": {"inferences": [[0.1, 0.2, 1]], "run": [0, 1]}},
              "estimate": {"device": "d", "per_inference_j": 1e-6, "idle_power_w": 1.0}}
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious\n")
    os.symlink(victim, tmp_path / "energy.png")
    before = tree_hash(tmp_path)
    with pytest.raises(EdgebrainError, match="symbolic link"):
        plot_profile(result, str(tmp_path / "energy.png"))
    assert_unchanged(before, tree_hash(tmp_path))
    res = plot_profile(result, str(tmp_path / "ok.png"))
    assert (tmp_path / "ok.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and res["width"] > 0
