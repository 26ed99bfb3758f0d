"""``edgebrain remote URL profile``, ``profile --remote`` and ``bench --remote --write-profile`` against the real
sshd on loopback (conftest.py).

The target is the session's deploy of zoo:har-lif shared with test_service.py and test_remote.py. The meters are
opened on the target: a Jetson Orin Nano's INA3221 hwmon tree (JetPack 6 layout, as tests/energy/test_meters.py
lays it out) written there over ssh and passed as the meter's root, and the tegrastats emulator of
tests/energy/_meter_emulator.py copied there with scp and run by the meter as its command.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.deploy.test_service import first_deploy, ok_json

EMULATOR = REPO / "tests" / "energy" / "_meter_emulator.py"
#: the emulated Orin Nano rails (mV, mA); the total is VDD_IN
RAILS = {"VDD_IN": (5072, 1150), "VDD_CPU_GPU_CV": (5072, 258), "VDD_SOC": (5072, 289)}
P_IN = 5.072 * 1.150  # W
#: short runs: 100 periods of a 100 Hz meter (the recipe's minimum) in 2 s
SHORT = ["--baseline", "1", "--duration", "2"]


def eb(*args, env=None, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgebrain", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=timeout, env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def target(sshd, wheel, datasets, tmp_path_factory, request):
    first = first_deploy(sshd, wheel, datasets, tmp_path_factory, request)
    ok_json(first["result"])
    return first


@pytest.fixture(scope="module")
def ina_root(sshd, target):
    """An INA3221 hwmon tree made on the target, over ssh (the files a JetPack 6 kernel exposes)."""
    root = str(Path(target["path"]).parent / "jetson-sysfs")
    d = f"{root}/ina3221/1-0040/hwmon/hwmon3"
    cmds = [f"mkdir -p {shlex.quote(d)}", f"cd {shlex.quote(d)}", "echo ina3221 > name", "echo 7 > update_interval"]
    for n, (label, (mv, ma)) in enumerate(RAILS.items(), start=1):
        cmds += [f"echo {label} > in{n}_label", f"echo {mv} > in{n}_input", f"echo {ma} > curr{n}_input"]
    r = sshd.ssh(" && ".join(cmds))
    assert r.returncode == 0, r.stderr
    return root


def shape(x):
    """The structure of a JSON value: the keys of every object, recursively (lists and values by kind)."""
    if isinstance(x, dict):
        return {k: shape(v) for k, v in x.items()}
    return "list" if isinstance(x, list) else "value"


def test_remote_profile_ina3221_energy_by_hand(sshd, target, ina_root, tmp_path):
    """The meter reads the rails on the board; its energy equals VDD_IN's power × the run's time, and the JSON
    has the shape of the local profile --json. A device profile here (--device FILE) is copied there."""
    dev = tmp_path / "orin-copy.toml"
    dev.write_text((REPO / "devices" / "jetson-orin-nano.toml").read_text().replace(
        'name = "jetson-orin-nano"', 'name = "orin-copy"'))
    r = eb("remote", target["url"], "profile", "model.ebm", "--source", str(target["rec"]), "--meter",
           f"ina3221:{ina_root}", "--device", str(dev), *SHORT, "--json", *sshd.options())
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(r.stdout)
    assert res["meter"]["name"] == "ina3221" and res["meter"]["target"] == ina_root
    assert res["device"]["name"] == "orin-copy" and res["model"] == "model.ebm"
    m = res["measured"]
    # by hand: the rails are constant, so E = P(VDD_IN) × T, within the meter's resolution (1 mW) over the run
    T, n = m["duration_s"], m["inferences"]
    assert T >= 2.0 and n > 0 and m["samples"] >= 100
    assert m["energy_j"] == pytest.approx(P_IN * T, abs=1e-3 * T)
    assert m["energy_per_inference_j"] == pytest.approx(P_IN * T / n, abs=1e-3 * T / n)
    assert m["mean_power_w"] == pytest.approx(P_IN, abs=1e-3)
    assert m["baseline_power_w"] == pytest.approx(P_IN, abs=1e-3)
    assert abs(m["dynamic_energy_j"]) <= max(m["dynamic_energy_uncertainty_j"], 1e-9) + 1e-3 * T
    assert not res["partial"] and not res["too_short"]
    # the same profile here (the tree is on this machine too: the target is loopback) has the same shape
    local = eb("profile", "zoo:har-lif", "--source", str(target["rec"]), "--meter", f"ina3221:{ina_root}",
               "--device", str(dev), *SHORT, "--json")
    assert local.returncode == 0, local.stderr[-2000:]
    assert shape(res) == shape(json.loads(local.stdout))
    assert sshd.ssh(f"ls -A {shlex.quote(target['path'])}").stdout.split().count(".remote") == 0


def test_profile_remote_tegrastats_emulator_on_the_board(sshd, target, tmp_path):
    """profile --remote: the meter starts the (copied) tegrastats emulator on the board. Its VDD_IN ramps by
    10 mW per 20 ms line (0.5 W/s), so the run's mean power exceeds the idle baseline's by 0.5 W/s times the
    time between the middles of the two windows (within 15 %: the lines' arrival on a busy machine)."""
    emu = f"{Path(target['path']).parent}/meter_emulator.py"
    cp = subprocess.run(["scp", "-q", "-P", str(sshd.port), "-o", f"IdentityFile={sshd.key}", "-o",
                         f"UserKnownHostsFile={sshd.known_hosts}", "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
                         str(EMULATOR), f"{sshd.user}@{sshd.host}:{emu}"], capture_output=True, text=True, timeout=60)
    assert cp.returncode == 0, cp.stderr
    spec = f"tegrastats:python3 {emu} tegrastats --dialect jp6 --interval 20 --count 100000?interval_ms=20"
    r = eb("profile", "zoo:har-lif", "--remote", target["url"], "--source", str(target["rec"]), "--meter", spec,
           *SHORT, "--json", *sshd.options())
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(r.stdout)
    m = res["measured"]
    assert res["meter"]["name"] == "tegrastats" and emu in res["meter"]["target"]
    assert m["samples"] >= 80 and not res["partial"]
    (b0, b1), (s, e) = m["windows"]["baseline"], m["windows"]["run"]
    rise = 0.5 * ((s + e) / 2 - (b0 + b1) / 2)
    assert m["mean_power_w"] - m["baseline_power_w"] == pytest.approx(rise, rel=0.15, abs=0.05)
    # the energy is that mean power over the run: by hand, P_idle + rise over T, per inference
    assert m["energy_j"] == pytest.approx((m["baseline_power_w"] + rise) * m["duration_s"], rel=0.05)
    assert m["dynamic_energy_j"] == pytest.approx(rise * m["duration_s"], rel=0.15, abs=0.05 * m["duration_s"])


def test_remote_profile_plot_comes_back(sshd, target, ina_root, tmp_path):
    """--plot: written on the board, copied here; the JSON and the report name the file here."""
    venv = shlex.quote(target["path"] + "/venv/bin/python")
    if sshd.ssh(f"{venv} -c 'import matplotlib'").returncode != 0:
        pytest.importorskip("matplotlib")
        pip = sshd.ssh(f"{venv} -m pip install -q --disable-pip-version-check matplotlib", timeout=300)
        if pip.returncode != 0:
            pytest.skip(f"cannot install matplotlib in the target's venv: {pip.stderr.strip()[-200:]}")
    png = tmp_path / "energy.png"
    r = eb("profile", "model.ebm", "--remote", target["url"], "--source", str(target["rec"]), "--meter",
           f"ina3221:{ina_root}", *SHORT, "--plot", str(png), "--json", *sshd.options())
    assert r.returncode == 0, r.stderr[-2000:]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads(r.stdout)["plot"]["path"] == str(png)


def test_a_meter_the_board_lacks_is_one_line_from_the_board(sshd, target):
    """No INA3221 on the loopback board, no vcgencmd: the board's own error, naming the board, exit code 2.
    The input is the deployed release's own (nothing is copied, so nothing else is said)."""
    for args in (["remote", target["url"], "profile", "model.ebm", "--input", "smoke_input.npy", "--meter", "ina3221",
                  *SHORT],
                 ["profile", "model.ebm", "--remote", target["url"], "--input", "smoke_input.npy", "--meter",
                  "pi5-pmic", "--baseline", "1", "--duration", "10"]):  # 100 periods of a 10 Hz meter
        r = eb(*args, *sshd.options())
        assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
        assert r.stderr.startswith(f"error: on {sshd.user}@{sshd.host}: meter ") and "Traceback" not in r.stderr


# ------------------------------------------------------------------------------------ bench --write-profile


def board_profile(folder: Path, name: str = "loopback-board", arch: str | None = None) -> Path:
    """A profile of this machine as a board: rpi4b's file with this machine's architecture (what a user does:
    copy a profile and edit it)."""
    arch = arch or {"amd64": "x86_64", "arm64": "aarch64"}.get(platform.machine().lower(), platform.machine().lower())
    text = (REPO / "devices" / "rpi4b.toml").read_text()
    text = text.replace('name = "rpi4b"', f'name = "{name}"').replace('arch = "aarch64"', f'arch = "{arch}"')
    text = "\n".join("aliases = []" if ln.startswith("aliases") else ln for ln in text.splitlines()) + "\n"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.toml").write_text(text)
    return folder / f"{name}.toml"


def outside_perf(text: str) -> list[str]:
    lines, out, skip = text.splitlines(), [], False
    for ln in lines:
        if ln.startswith("["):
            skip = ln.strip() == "[perf]"
        if not skip and not ln.startswith("measured = "):
            out.append(ln)
    return out


def test_bench_write_profile_fills_measured_perf(sshd, target, tmp_path):
    from edgebrain import devices as D
    from edgebrain.version import __version__

    folder = tmp_path / "my-devices"
    prof = board_profile(folder)
    before = prof.read_text()
    env = {"EDGEBRAIN_DEVICES": str(folder)}
    shipped = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (REPO / "devices").glob("*.toml")}
    for steps in (400, 300):  # the second run replaces the first's figures
        r = eb("bench", "zoo:har-lif", "--remote", target["url"], "--steps", str(steps), "--batch", "2", "--json",
               "--write-profile", "loopback-board", *sshd.options(), env=env)
        assert r.returncode == 0, r.stderr[-2000:]
        res = json.loads(r.stdout)
        assert res["steps"] == steps and "wrote measured [perf] of loopback-board" in r.stderr
        w = res["profile_written"]
        assert w["path"] == str(prof) and w["from"] == str(prof)  # the user's own profile: updated in place
        dev = D.load_file(prof)  # through the devices loader (validated)
        perf, prov = dev.data["perf"], dev.provenance
        step_us = res["latency_us"]["p50"]
        run_us = 1e6 / res["throughput"]["steps_per_s_batch1"]
        assert perf["measured_step_us"] == pytest.approx(step_us, rel=1e-5)
        assert perf["measured_run_step_us"] == pytest.approx(run_us, rel=1e-5)
        assert perf["step_overhead_us"] == pytest.approx(max(0.0, step_us - run_us), rel=1e-5, abs=1e-9)
        assert perf["measured_precision"] == res["precision"] == "int"
        assert perf["measured_edgebrain"] == __version__ and "zoo:har-lif" in perf["measured_model"]
        assert perf["measured_on"].endswith(f"({platform.machine()})") and perf["measured_date"].endswith("Z")
        for k in ("int_ops_per_cycle", "neuron_update_cycles", "step_overhead_us", "measured_step_us"):
            assert prov[f"perf.{k}"]["source"] == "measured" and not prov[f"perf.{k}"]["estimated"], k
        assert prov["perf.float_ops_per_cycle"]["estimated"]  # not measured: the estimate is kept, marked
        # devices fit's latency estimate of the benchmarked model is now its measured step time
        fit = eb("devices", "fit", "zoo:har-lif", "--device", str(prof), "--json")
        assert json.loads(fit.stdout)["latency_s"] == pytest.approx(step_us * 1e-6, rel=1e-4)
    text = prof.read_text()
    assert text.count("\n[perf]\n") == 1 and text.count("\nmeasured = ") == 1
    assert outside_perf(text) == outside_perf(before)  # nothing else of the file changed
    # devices show (the name is found in the user's folder) shows them as measured
    show = eb("devices", "show", "loopback-board", env=env)
    assert show.returncode == 0, show.stderr
    line = next(ln for ln in show.stdout.splitlines() if ln.strip().startswith("int_ops_per_cycle"))
    assert "[measured]" in line and "estimated" not in line
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (REPO / "devices").glob("*.toml")} == shipped


def test_write_profile_of_a_shipped_name_writes_a_copy(tmp_path, monkeypatch):
    """A shipped profile's name: a copy in the user's folder gets the figures, found first by that name; the
    shipped file is unchanged. (In-process, with made-up figures: no board needed.)"""
    from edgebrain import devices as D
    from edgebrain.devices import measured as DM
    from edgebrain.errors import InputError

    monkeypatch.setenv("EDGEBRAIN_DEVICES", str(tmp_path / "mine"))
    shipped = (REPO / "devices" / "rpi5.toml").read_bytes()
    base, out = DM.destination("pi5")  # an alias
    assert base == REPO / "devices" / "rpi5.toml" and out == tmp_path / "mine" / "rpi5.toml"
    DM.check_writable(out)
    DM.write_measured_perf(base, out, {"step_overhead_us": {"value": 12.5, "note": "measured"}},
                           {"measured_on": "Raspberry Pi 5 Model B Rev 1.0 (aarch64)", "measured_precision": "int",
                            "measured_step_us": 40.0, "measured_run_step_us": 27.5})
    d = D.load("rpi5")
    assert d.path == str(out) and d.data["perf"]["step_overhead_us"] == 12.5
    assert d.provenance["perf.step_overhead_us"]["source"] == "measured"
    assert (REPO / "devices" / "rpi5.toml").read_bytes() == shipped
    with pytest.raises(InputError, match="not overwritten"):
        DM.destination(str(REPO / "devices" / "rpi5.toml"))


def test_write_profile_refusals(sshd, target, tmp_path):
    """Each: one line, exit code 2, nothing written, and for the checks made here, no ssh at all."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder\n")
    cases = [
        ({"EDGEBRAIN_DEVICES": str(blocker)}, "rpi4b", "cannot write the device profile"),   # folder is a file
        ({"EDGEBRAIN_DEVICES": "/proc/self"}, "rpi4b", "cannot write the device profile"),   # not writable (root too)
        ({"EDGEBRAIN_DEVICES": str(tmp_path / "d")}, str(REPO / "devices" / "rpi4b.toml"), "not overwritten"),
        ({"EDGEBRAIN_DEVICES": str(tmp_path / "d")}, str(tmp_path / "none.toml"), "no such device profile"),
        ({"EDGEBRAIN_DEVICES": str(tmp_path / "d")}, "host", "host profile"),
        ({"EDGEBRAIN_DEVICES": str(tmp_path / "d")}, "rp2040", "microcontroller"),
    ]
    for env, spec, expect in cases:
        r = eb("bench", "zoo:har-lif", "--remote", "ssh://127.0.0.1:9/nowhere", "--write-profile", spec, env=env)
        assert r.returncode == 2 and r.stderr.count("\n") == 1 and expect in r.stderr, (spec, r.stderr)
    # a board of another architecture than the profile's: refused after asking the board, before the bench
    other = "aarch64" if platform.machine() != "aarch64" else "x86_64"
    r = eb("bench", "zoo:har-lif", "--remote", target["url"], "--write-profile",
           str(board_profile(tmp_path / "x", "other-board", arch=other)), *sshd.options(),
           env={"EDGEBRAIN_DEVICES": str(tmp_path / "d")})
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "would describe another machine" in r.stderr, r.stderr
    assert not (tmp_path / "d").exists() or not any((tmp_path / "d").iterdir())
