"""The exit-code table (edgebrain.cli_common.ExitCode), through the real command line in a
subprocess: shown in ``--help``; 2 for usage errors and bad files; 3 when a model does not fit a
device (JSON still printed) and 0 when it fits; 130 after Ctrl-C; 141, silently, when the reader of
the output goes away (``| head -1``)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys

import pytest

from edgebrain.cli_common import ExitCode

from tests.conftest import REPO


def cli(*args, env=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "edgebrain.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=REPO, timeout=timeout, env=env)


def test_the_table_is_in_the_top_level_help():
    r = cli("--help", env=dict(os.environ, COLUMNS="200"))
    assert r.returncode == 0
    text = r.stdout[r.stdout.index("Exit codes:"):]
    for code, words in ((0, "ok"), (1, "internal error"), (2, "bad input or usage"), (3, "DOES NOT FIT"),
                        (4, "partial failure"), (130, "interrupted"), (141, "reader of the output went away"),
                        (143, "terminated")):
        assert any(line.split()[:1] == [str(code)] and words in line for line in text.splitlines()), (code, text)
    assert {int(c) for c in ExitCode} == {0, 1, 2, 3, 4, 130, 141, 143}


@pytest.mark.parametrize("args", [["devices", "fit", "zoo:nmnist"],            # missing --device
                                  ["stream", "zoo:har-l2mu", "--bogus"],       # unknown option
                                  ["no-such-command"]])
def test_usage_error_is_2_with_one_error_line(args):
    r = cli(*args)
    assert r.returncode == ExitCode.BAD_INPUT == 2, r.stderr
    assert r.stdout == "" and len(r.stderr.splitlines()) == 1 and r.stderr.startswith("error: ")


def test_bad_file_is_2(tmp_path):
    bad = tmp_path / "model.ebm"
    bad.write_bytes(b"not a model at all")
    r = cli("inspect", bad)
    assert r.returncode == 2 and r.stderr.startswith("error: ") and str(bad) in r.stderr, r.stderr
    r = cli("data", "info", tmp_path / "missing.csv")
    assert r.returncode == 2 and r.stderr.startswith("error: "), r.stderr


@pytest.mark.parametrize("json_out", [False, True])
def test_fit_is_3_when_the_model_does_not_fit_and_0_when_it_does(json_out):
    extra = ["--json"] if json_out else []
    r = cli("devices", "fit", "zoo:nmnist", "--device", "stm32f446", *extra)  # 183 KiB of RAM on a 128 KiB MCU
    assert r.returncode == ExitCode.NEGATIVE == 3, r.stderr
    if json_out:
        res = json.loads(r.stdout)
        assert res["fits"] is False and res["ram"]["need"] > res["ram"]["available"]
    else:
        assert "DOES NOT FIT" in r.stdout
    r = cli("devices", "fit", "zoo:nmnist", "--device", "rpi5", *extra)
    assert r.returncode == 0, r.stderr
    if json_out:
        assert json.loads(r.stdout)["fits"] is True
    else:
        assert "FITS" in r.stdout and "DOES NOT FIT" not in r.stdout


def test_ctrl_c_is_130(tmp_path):
    """``data fetch`` from a mirror that accepts the connection and never answers: once the request
    has arrived, the process is waiting inside the download, and SIGINT ends it with 130."""
    srv = socket.create_server(("127.0.0.1", 0))
    srv.settimeout(300)  # a hang guard only: no assertion depends on time
    port = srv.getsockname()[1]
    env = dict(os.environ, EDGEBRAIN_CACHE=str(tmp_path / "cache"))
    # Ctrl-C's own handler, even where this test runs with SIGINT ignored (a background job)
    main = ("import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
            "from edgebrain.cli import main; main(sys.argv[1:])")
    p = subprocess.Popen([sys.executable, "-c", main, "data", "fetch", "fsdd", "--mirror", f"http://127.0.0.1:{port}"],
                         cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        conn, _ = srv.accept()
        conn.settimeout(300)
        request = b""
        while b"\r\n\r\n" not in request:
            block = conn.recv(4096)
            assert block, "the client closed the connection"
            request += block
        assert request.startswith(b"GET /audio/fsdd/")
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=300)
        conn.close()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        srv.close()
    assert p.returncode == ExitCode.INTERRUPTED == 130, err
    assert err.strip().splitlines()[-1] == "error: interrupted"
    # the download in progress left nothing behind
    assert not [f for f in (tmp_path / "cache").rglob("*") if f.is_file()]


# rich tables, the streamed decision lines (text and JSON sink), and typer's own help: three writers.
# Deterministic either way: the reader leaves before the command writes anything, or (like
# `| head -1`) after one line of an output larger than the pipe's buffer, shrunk to one page.
PER_SAMPLE = ["stream", "zoo:har-l2mu", "--source", "{data}/imu/sp-sw-har/s16/s16_01_sw.csv",
              "--decoder", "vmax:window=1"]  # 40-60 KB of decisions


@pytest.mark.parametrize("args,read_a_line", [
    (["data", "info", "{data}/events/formats/sample.aedat4"], False),
    (PER_SAMPLE, True),
    (PER_SAMPLE + ["--json"], True),
    (PER_SAMPLE + ["--json"], False),
    (["--help"], False)])
def test_a_reader_that_goes_away_is_141_without_a_word(args, read_a_line):
    import fcntl

    from tests.conftest import find_datasets

    data, why = find_datasets()
    if data is None:
        pytest.skip(why)
    args = [a.format(data=data) for a in args]
    r, w = os.pipe()
    fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, 4096)
    p = subprocess.Popen([sys.executable, "-m", "edgebrain.cli", *args], stdout=w, stderr=subprocess.PIPE, cwd=REPO)
    os.close(w)
    if read_a_line:  # what `| head -1` reads, before it goes away
        line = b""
        while not line.endswith(b"\n"):
            chunk = os.read(r, 1)
            assert chunk, "the command ended before writing a line"
            line += chunk
    os.close(r)
    try:
        _, err = p.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        p.kill()
        raise
    assert p.returncode == ExitCode.BROKEN_PIPE == 141, err.decode()
    assert err.decode().strip() == "" or "compiling" in err.decode(), err.decode()
