"""``edgebrain remote URL bench|stream|devices-show`` and ``bench --remote`` against the real sshd on loopback
(``remote profile`` and ``bench --write-profile``: test_remote_profile.py).

The target is the session's deploy of zoo:har-lif shared with test_service.py (one venv and pip install).
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys

import pytest

from tests.conftest import REPO
from tests.deploy.test_service import first_deploy, ok_json


def eb(*args, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgebrain", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=timeout)


@pytest.fixture(scope="module")
def target(sshd, wheel, datasets, tmp_path_factory, request):
    first = first_deploy(sshd, wheel, datasets, tmp_path_factory, request)
    ok_json(first["result"])
    return first


def decisions(stdout: str) -> list:
    rows = [json.loads(ln) for ln in stdout.splitlines() if ln.strip()]
    assert "summary" in rows[-1]
    return [(d["t"], d["label"], d["confidence"]) for d in rows[:-1]]


def test_remote_stream_of_a_copied_recording_equals_the_local_run(sshd, target):
    """The recording is a file here: remote copies it to the target, streams it there with the deployed
    model (model.ebm in the active release's folder), and prints the JSON lines as the local command does."""
    r = eb("remote", target["url"], "stream", "model.ebm", "--source", str(target["rec"]), "--json",
           *sshd.options())
    assert r.returncode == 0, r.stderr[-2000:]
    assert "copying" in r.stderr
    local = eb("stream", "zoo:har-lif", "--source", str(target["rec"]), "--json")
    assert local.returncode == 0, local.stderr[-2000:]
    theirs, mine = decisions(r.stdout), decisions(local.stdout)
    assert len(mine) > 10 and theirs == mine
    # the temporary folder of the copy is gone
    assert sshd.ssh(f"ls -A '{target['path']}'").stdout.split().count(".remote") == 0


def test_a_nasty_file_name_is_only_a_file_name(sshd, target, tmp_path):
    """A recording named with spaces, quotes, `;` and `$(touch ...)`: copied and streamed, never run."""
    import secrets
    import shutil

    canary = f"eb-canary-{secrets.token_hex(4)}"
    nasty = tmp_path / f"a b'c\"d; $(touch {canary}) `touch {canary}`.csv"
    shutil.copyfile(target["rec"], nasty)
    r = eb("remote", target["url"], "stream", "model.ebm", "--source", str(nasty), "--json", *sshd.options())
    assert r.returncode == 0, r.stderr[-2000:]
    assert len(decisions(r.stdout)) > 10
    where = " ".join(shlex.quote(str(p)) for p in (target["path"], REPO, tmp_path))
    found = sshd.ssh(f"find {where} \"$HOME\" -maxdepth 4 -name {canary} 2>/dev/null; ls -A /tmp | grep {canary}")
    assert canary not in found.stdout


def test_remote_bench_json_and_bench_remote(sshd, target):
    r = eb("remote", target["url"], "bench", "model.ebm", "--steps", "200", "--batch", "2", "--json", *sshd.options())
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(r.stdout)
    for k in ("model", "precision", "input_shape", "steps", "latency_us", "throughput"):
        assert k in res, k
    assert res["steps"] == 200 and res["precision"] == "int" and res["model"] == "model.ebm"
    # bench --remote is the same command; a model file here is copied there
    from edgebrain import zoo

    r2 = eb("bench", str(zoo.path("har-lif")), "--remote", target["url"], "--steps", "100", "--batch", "2", "--json",
            *sshd.options())
    assert r2.returncode == 0, r2.stderr[-2000:]
    res2 = json.loads(r2.stdout)
    assert res2["steps"] == 100 and res2["model_file_bytes"] == res["model_file_bytes"]


def test_remote_devices_show(sshd, target):
    r = eb("remote", target["url"], "devices-show", "rpi4b", "--json", *sshd.options())
    assert r.returncode == 0, r.stderr[-2000:]
    local = eb("devices", "show", "rpi4b", "--json")
    assert json.loads(r.stdout)["name"] == json.loads(local.stdout)["name"]


def test_remote_exit_code_and_error_pass_through(sshd, target):
    r = eb("remote", target["url"], "stream", "model.ebm", "--source", "/nonexistent.csv", *sshd.options())
    assert r.returncode == 2 and "error:" in r.stderr and "Traceback" not in r.stderr


def test_nothing_deployed_says_run_deploy_first(sshd, tmp_path):
    url = sshd.url(str(tmp_path / "empty"))
    for args in (["remote", url, "bench", "model.ebm"], ["remote", url, "stream", "model.ebm", "--source", __file__],
                 ["bench", "model.ebm", "--remote", url]):
        r = eb(*args, *sshd.options(), timeout=120)
        assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
        assert "nothing is deployed" in r.stderr and "edgebrain deploy" in r.stderr and "first" in r.stderr


def test_bad_remote_input(sshd):
    r = eb("remote", "ssh://127.0.0.1:9/x", "convert", "m.ebm")
    assert r.returncode == 2 and "expected one of bench, stream, profile, devices-show" in r.stderr
    r = eb("remote", "http://x/y", "bench", "m.ebm")
    assert r.returncode == 2 and "ssh://" in r.stderr and r.stderr.count("\n") == 1
    r = eb("remote", sshd.url("/x", port=9), "bench", "m.ebm", "--timeout", "20", *sshd.options(), timeout=60)
    assert r.returncode == 2 and "connection refused" in r.stderr and r.stderr.count("\n") == 1


def test_remote_stream_plot_comes_back(sshd, target, tmp_path):
    """--plot needs matplotlib, which deploy does not ship (a core install): the target's error comes back
    as it is; with matplotlib installed in the target's venv the figure is written there and copied here."""
    png = tmp_path / "timeline.png"
    args = ["remote", target["url"], "stream", "model.ebm", "--source", str(target["rec"]), "--duration", "3",
            "--plot", str(png), *sshd.options()]
    venv = shlex.quote(target["path"] + "/venv/bin/python")
    if sshd.ssh(f"{venv} -c 'import matplotlib'").returncode != 0:
        r = eb(*args)
        assert r.returncode == 2 and "needs matplotlib" in r.stderr and not png.exists()
        pytest.importorskip("matplotlib")  # its wheel is in pip's cache here when matplotlib is installed
        pip = sshd.ssh(f"{venv} -m pip install -q --disable-pip-version-check matplotlib", timeout=300)
        if pip.returncode != 0:
            pytest.skip(f"cannot install matplotlib in the target's venv: {pip.stderr.strip()[-200:]}")
    r = eb(*args)
    assert r.returncode == 0, r.stderr[-2000:]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "copied the figure back" in r.stderr


def test_plan_finds_the_model_after_options(tmp_path):
    """The MODEL is copied wherever it stands: option values (--steps 100, --meter X) are not taken for it;
    profile's --device FILE here is copied too, and --plot comes back."""
    from edgebrain.deploy.remote import plan

    model, dev = tmp_path / "m.ebm", tmp_path / "board.toml"
    model.write_bytes(b"x")
    dev.write_text("x")
    argv, ups, downs = plan("bench", ["--steps", "100", str(model), "--json"])
    assert argv[0] == "bench" and ups == [(3, model)] and downs == []
    argv, ups, downs = plan("profile", ["--meter", "ina3221:/sys/x", str(model), "--device=" + str(dev), "--plot",
                                        "e.png"])
    assert argv[:3] == ["profile", "--meter", "ina3221:/sys/x"] and argv[4:6] == ["--device", str(dev)]
    assert [p for _, p in ups] == [model, dev] and [str(p) for _, p in downs] == ["e.png"]
