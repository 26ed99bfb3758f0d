"""``edgebrain profile``: the estimate in its JSON equals counted operations × the device profile's
energies worked out here; a measurement through the CLI with the UM25C emulator over a real
pseudo-terminal gives the emulator's known power profile; the PNG timeline is a real PNG; bad input
gives one-line errors (exit 2), a meter that stops gives a result marked partial, never a hang."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from edgebrain import devices as D
from edgebrain import metrics as M
from edgebrain.cli import main
from edgebrain.model import Model

from tests.conftest import REPO  # noqa: E402  (the repository root)
EMU = REPO / "tests" / "energy" / "_meter_emulator.py"
ZOO = "zoo:basicmotions"
WAIT = 60.0
P_IDLE, P_LOAD = 5.0 * 0.24, 5.0 * 0.6      # the emulator's profile: 1.2 W idle, 3.0 W loaded
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pseudo-terminals: Linux")


# --------------------------------------------------------------------------- helpers


def cli(args, capsys, timeout=WAIT):
    """Run the CLI in-process (bounded in time); returns (exit code, stdout, stderr)."""
    box = {}

    def run():
        try:
            main(list(map(str, args)))
            box["code"] = 0
        except SystemExit as e:
            box["code"] = e.code
        except BaseException as e:  # noqa: BLE001 - reported below
            box["exc"] = e

    th = threading.Thread(target=run, daemon=True)
    th.start()
    th.join(timeout)
    if th.is_alive():
        pytest.fail(f"edgebrain {' '.join(map(str, args))} did not finish within {timeout} s (a hang)")
    if "exc" in box:
        raise box["exc"]
    out = capsys.readouterr()
    return box["code"], out.out, out.err


@pytest.fixture(scope="module")
def model():
    return Model.load(ZOO)


@pytest.fixture(scope="module")
def x_npy(tmp_path_factory, model):
    """A generated input: 100 steps of 6 normal channels (the model's encoder output is unit-scaled)."""
    x = np.random.default_rng(5).normal(size=(100, *model.input_shape)).astype(np.float32)
    p = tmp_path_factory.mktemp("profile") / "x.npy"
    np.save(p, x)
    return p, x


def energy_by_hand(model, counts, dev, precision="int"):
    """Operations × the profile's energies per operation, written out here (pJ → J)."""
    e = dev.energy
    if precision == "int":
        mac, ac, neuron = e("int8_mul") + e("int32_add"), e("int32_add"), e("int32_mul") + 2 * e("int32_add")
    else:
        mac, ac, neuron = e("fp32_mul") + e("fp32_add"), e("fp32_add"), e("fp32_mul") + 2 * e("fp32_add")
    fp = M.footprint(model, precision)
    resident = fp["param_bytes"] + fp["state_bytes"]
    on_chip = dev.is_mcu or resident <= (dev.data["cpu"].get("cache_bytes") or 0)
    e_w = e("sram_access") if on_chip else e("dram_access")
    pj = (counts["eff_macs"] * mac + counts["eff_acs"] * ac + counts["membrane_updates"] * neuron
          + counts["weight_bytes_read"] / 8 * e_w + counts["state_bytes_rw"] / 8 * e("sram_access"))
    return pj * 1e-12


from tests.energy.test_meters import emulators  # noqa: E402,F401  (the emulator fixture, shared)


# --------------------------------------------------------------------------- the model meter: the estimate


def test_model_meter_json_matches_estimate_by_hand(model, x_npy, capsys):
    path, x = x_npy
    code, out, err = cli(["profile", ZOO, "--input", path, "--json", "--duration", 0.3], capsys)
    assert code == 0, err
    r = json.loads(out)
    assert r["precision"] == "int" and r["device"]["name"] == "host" and r["meter"]["name"] == "model"
    assert not r["measured"]["measured"] and r["measured"]["energy_per_inference_j"] is None
    assert not r["partial"] and not r["too_short"]
    # an inference = one pass over the 100-step input
    assert r["workload"]["steps_per_inference"] == 100 and "one pass over the 100-step" in r["workload"]["definition"]
    assert r["measured"]["inferences"] >= 1 and r["measured"]["inferences"] == r["measured"]["calls"]

    counts = M.count_ops(model, x, "int")
    host = D.load("host")
    want = energy_by_hand(model, counts, host)
    est = r["estimate"]
    assert est["per_inference_j"] == pytest.approx(want, rel=1e-9)
    assert est["per_step_j"] == pytest.approx(want / 100, rel=1e-9)
    assert sum(est["breakdown_per_inference_j"].values()) == pytest.approx(want, rel=1e-9)
    assert est["counts"]["eff_acs"] == counts["eff_acs"] and est["counts"]["eff_macs"] == counts["eff_macs"]
    assert any("E_MAC" in a for a in est["assumptions"])

    # the metrics, NeuroBench's definitions, on the actual input at the deployed precision
    met = r["metrics"]
    assert met["footprint"]["total_bytes"] == M.footprint(model, "int")["total_bytes"]
    assert met["connection_sparsity"] == M.connection_sparsity(model, "int")
    w = M.workload(model, x, "int")
    assert met["activation_sparsity"] == pytest.approx(w["activation_sparsity"])
    assert met["synaptic_operations"] == {k: pytest.approx(v) for k, v in w["synaptic_operations"].items()}
    assert met["membrane_updates"] == pytest.approx(w["membrane_updates"])
    assert met["synaptic_operations"]["Effective_ACs"] == counts["eff_acs"]


def test_model_meter_on_a_microcontroller_profile(model, x_npy, capsys):
    path, x = x_npy
    code, out, err = cli(["profile", ZOO, "-i", path, "--device", "stm32h743", "--json", "--duration", 0.2], capsys)
    assert code == 0, err
    r = json.loads(out)
    dev = D.load("stm32h743")
    assert r["estimate"]["weights_in"] == "sram"
    assert r["estimate"]["per_inference_j"] == pytest.approx(energy_by_hand(model, M.count_ops(model, x, "int"), dev),
                                                             rel=1e-9)
    # float precision on the same input: fp32 energies
    code, out, err = cli(["profile", ZOO, "-i", path, "--precision", "float", "--json", "--duration", 0.2], capsys)
    assert code == 0, err
    r = json.loads(out)
    assert r["precision"] == "float"
    assert r["estimate"]["per_inference_j"] == pytest.approx(
        energy_by_hand(model, M.count_ops(model, x, "float"), D.load("host"), "float"), rel=1e-9)


def test_human_report_and_estimate_plot(x_npy, tmp_path, capsys):
    path, _ = x_npy
    png = tmp_path / "est.png"
    code, out, err = cli(["profile", ZOO, "-i", path, "--duration", 0.3, "--plot", png], capsys)
    assert code == 0, err
    for s in ("no sensor (meter model)", "analytical estimate (host, int)", "energy per inference",
              "connection sparsity", "activation sparsity", "eff MACs", "membrane updates", "assumptions",
              f"wrote {png}"):
        assert s in out, s
    _check_png(png)


def _check_png(png):
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    w, h = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")   # IHDR
    assert 600 <= w <= 3000 and 250 <= h <= 2000
    import matplotlib.image as mpimg

    img = mpimg.imread(str(png))
    assert img.shape[:2] == (h, w)
    assert float(np.std(img[..., :3])) > 0.01            # not a blank canvas


def test_source_counts_decisions_and_matches_estimate(datasets, model, capsys):
    f = datasets / "imu" / "basicmotions" / "BasicMotions_TEST.ts"
    if not f.is_file():
        pytest.skip(f"BasicMotions not found at {f}")
    code, out, err = cli(["profile", ZOO, "--source", f, "--json", "--duration", 0.5], capsys)
    assert code == 0, err
    r = json.loads(out)
    wl = r["workload"]
    # 40 test cases of 100 steps, decoder count:window=100: one decision per case
    assert wl["kind"] == "source" and wl["steps_per_pass"] == 4000 and wl["decisions_per_pass"] == 40
    assert wl["steps_per_inference"] == 100 and "one decision" in wl["definition"]
    assert r["measured"]["inferences"] % 40 == 0 and r["measured"]["inferences"] >= 40

    # the same input, independently: the file through the model's encoder
    from edgebrain.stream.pipeline import encode_file

    cfg = model.graph.meta["stream"]
    x = encode_file(f, cfg["encoder"], cfg["rate"], model.input_shape)[0]
    assert len(x) == 4000
    counts = M.count_ops(model, x, "int")
    per_step = energy_by_hand(model, counts, D.load("host")) / 4000
    assert r["estimate"]["per_inference_j"] == pytest.approx(per_step * 100, rel=1e-9)
    assert r["metrics"]["synaptic_operations"]["Effective_ACs"] == counts["eff_acs"]


# --------------------------------------------------------------------------- measured, over a pseudo-terminal


@linux_only
def test_um25c_measured_through_cli_matches_emulator(emulators, tmp_path, x_npy, capsys, monkeypatch):
    """The workload switches the emulated meter to its load current on its first call (as the
    measurement tests do), so the run draws 3.0 W and the baseline 1.2 W. The energy is checked by
    hand against those, within bounds the measurement's own times give (however late the emulator)."""
    from edgebrain.energy import measure as measure_mod

    path, _ = x_npy
    link = tmp_path / "rfcomm0"
    emu = emulators("um25c", link)
    real = measure_mod.measure

    def measure_with_load(run_fn, meter, **kw):
        first = [True]

        def loaded():
            if first[0]:
                # switch once the frame requested before the call is answered: every baseline frame is idle
                frames = meter.frames
                deadline = time.monotonic() + WAIT  # a hang guard
                while meter.frames == frames and time.monotonic() < deadline:
                    time.sleep(0.001)
                emu.send("load")
                emu.expect("ok")
                first[0] = False
            return run_fn()

        return real(loaded, meter, **kw)

    monkeypatch.setattr(measure_mod, "measure", measure_with_load)
    png = tmp_path / "um.png"
    # a read timeout of 3 s, not 1: on a loaded 2-core CI machine one late frame made the run partial
    code, out, err = cli(["profile", ZOO, "-i", path, "--meter", f"um25c:{link}?period=0.02&timeout=3",
                          "--baseline", 1.0, "--duration", 3.0, "--json", "--plot", png], capsys)
    assert code == 0, err
    r = json.loads(out)
    m = r["measured"]
    assert m["measured"] and not r["partial"] and m["garbage"] == 0
    # too_short is the sampler's own verdict: with the emulator slowed down by a busy machine fewer than
    # 100 periods may fit in 3 s; then it must say so, with the run length it needs
    if r["too_short"]:
        assert "at least 100 periods" in m["too_short_reason"] and "run for at least" in m["too_short_reason"]
    assert m["meter"]["name"] == "um25c"
    assert m["baseline_power_w"] == pytest.approx(P_IDLE, abs=1e-9)
    T, N = m["duration_s"], m["inferences"]
    assert T >= 3.0 and N == m["calls"] >= 1
    # by hand: at most P_LOAD·T (no sample is above it), at least that less (P_LOAD − P_IDLE) over the
    # first call (which waits for the switch) and one sample interval after it (frames asked for before it)
    first = m["windows"]["inferences"][0][1] - m["windows"]["inferences"][0][0]
    gap = max(b - a for a, b in zip(m["timeline"]["t"], m["timeline"]["t"][1:]))
    low = P_LOAD * T - (P_LOAD - P_IDLE) * (first + gap)
    assert (low - 1e-9) / N <= m["energy_per_inference_j"] <= (P_LOAD * T + 1e-9) / N
    assert m["dynamic_per_inference_j"] == pytest.approx(m["energy_per_inference_j"] - P_IDLE * T / N)
    assert 0 < r["uncertainty"]["energy_per_inference_j"] < 0.1 * m["energy_per_inference_j"]
    assert r["per_step_measured"]["energy_j"] == pytest.approx(m["energy_per_inference_j"] / 100)
    assert r["comparison"]["measured_dynamic_over_estimate"] > 0
    assert r["estimate"]["per_inference_j"] > 0 and r["plot"]["estimate"] is False
    _check_png(png)


@linux_only
def test_meter_that_stops_mid_run_is_partial(emulators, tmp_path, x_npy):
    """A real process (python -m edgebrain): the meter disconnects after 60 frames, during the run."""
    path, _ = x_npy
    link = tmp_path / "rfcomm1"
    emulators("um25c", link, "--drop-after", 60)
    # asked to run 600 s: ending within the hang guard (3 × WAIT) shows that it stopped at the drop
    p = subprocess.run([sys.executable, "-m", "edgebrain", "profile", ZOO, "-i", str(path), "--meter",
                        f"um25c:{link}?period=0.02&timeout=5", "--baseline", "0.5", "--duration", "600", "--json"],
                       capture_output=True, text=True, timeout=3 * WAIT, cwd=REPO, check=False)
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    assert r["partial"] and "serial link lost" in r["measured"]["partial_reason"]
    assert r["measured"]["inferences"] > 0 and r["measured"]["energy_per_inference_j"] > 0
    assert "warning: the measurement is partial" in p.stderr


@linux_only
def test_garbage_meter_is_one_line_error(emulators, tmp_path, x_npy, capsys):
    path, _ = x_npy
    link = tmp_path / "rfcomm2"
    emulators("um25c", link, *[a for k in range(40) for a in ("--garbage-at", k)])
    code, out, err = cli(["profile", ZOO, "-i", path, "--meter", f"um25c:{link}?period=0.02&timeout=0.5",
                          "--baseline", 1.0, "--duration", 2.0], capsys)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "undecodable readings in a row" in err and "meter um25c" in err


@linux_only
def test_silent_meter_is_one_line_error_not_a_hang(emulators, tmp_path, x_npy, capsys):
    path, _ = x_npy
    link = tmp_path / "rfcomm3"
    emulators("um25c", link, "--silent-after", 0)
    code, out, err = cli(["profile", ZOO, "-i", path, "--meter", f"um25c:{link}?period=0.02&timeout=0.5",
                          "--baseline", 1.0, "--duration", 2.0], capsys)   # (cli: bounded in time, WAIT)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "no answer" in err and "within 0.5 s" in err and "before the idle baseline" in err   # its own timeout


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("args, message", [
    (["profile", "nope.ebm", "-i", "X"], "nope.ebm"),
    (["profile", ZOO], "exactly one of --input"),
    (["profile", ZOO, "-i", "X", "--source", "Y"], "exactly one of --input"),
    (["profile", ZOO, "-i", "/nonexistent/x.npy"], "input file not found"),
    (["profile", ZOO, "-i", "X", "--meter", "nosuchmeter"], "unknown meter 'nosuchmeter'"),
    (["profile", ZOO, "-i", "X", "--meter", "um25c:/nonexistent/rfcomm9?period=0.02"], "no such port"),
    (["profile", ZOO, "-i", "X", "--meter", "rapl:/nonexistent/powercap", "--duration", 20], "rapl"),
    (["profile", ZOO, "-i", "X", "--meter", "um25c:/dev/null?period=0.5", "--duration", 5], "too short"),
    (["profile", ZOO, "-i", "X", "--device", "nosuchdevice"], "no device profile 'nosuchdevice'"),
    (["profile", ZOO, "-i", "X", "--duration", -1], "--duration"),
    (["profile", ZOO, "-i", "X", "--plot", "/nonexistent/dir/p.png"], "does not exist"),
    (["profile", ZOO, "-i", "X", "--plot", "p.jpg"], "expected a .png"),
    (["profile", ZOO, "--source", "/nonexistent/walk.csv"], "not found"),
])
def test_bad_input_one_line(args, message, x_npy, capsys):
    path, _ = x_npy
    args = [str(path) if a == "X" else a for a in args]
    code, out, err = cli(args, capsys)
    assert code == 2, (out, err)
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err


def test_bad_input_shape_and_values(tmp_path, capsys):
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((50, 7), np.float32))
    code, _, err = cli(["profile", ZOO, "-i", bad], capsys)
    assert code == 2 and "expected (T, *(6,))" in err and err.count("\n") == 1
    nan = tmp_path / "nan.npy"
    a = np.zeros((20, 6), np.float32)
    a[3, 2] = np.nan
    np.save(nan, a)
    code, _, err = cli(["profile", ZOO, "-i", nan], capsys)
    assert code == 2 and "NaN" in err


def test_plot_without_matplotlib_is_a_clear_error(monkeypatch, x_npy, tmp_path, capsys):
    import builtins

    real_import = builtins.__import__

    def no_mpl(name, *a, **k):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_mpl)
    path, _ = x_npy
    code, _, err = cli(["profile", ZOO, "-i", path, "--plot", tmp_path / "p.png"], capsys)
    assert code == 2 and "needs matplotlib" in err and "pip install 'edgebrain[plot]'" in err
    assert not (tmp_path / "p.png").exists()


def test_merge_windows():
    from edgebrain.energy.plot import merge_windows

    ws = [[0.001 * k, 0.001 * k + 0.0009, 2] for k in range(5000)]   # back-to-back calls
    m = merge_windows(ws, 5.0)
    assert len(m) == 1 and m[0][2] == 10000 and m[0][0] == 0.0
    sparse = [[1.0 * k, 1.0 * k + 0.1, 1] for k in range(10)]
    assert merge_windows(sparse, 10.0) == [[float(k), k + 0.1, 1.0] for k in range(10)]
