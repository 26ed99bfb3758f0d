"""Device profiles (edgebrain.devices) and their one packaged copy, `edgebrain devices list | show | fit`
(edgebrain.apps.fit), and the analytical energy estimate (edgebrain.energy.estimate)."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgebrain import devices as D
from edgebrain import ops
from edgebrain.apps.fit import decision_window, fit
from edgebrain.apps.footprint import runtime as runtime_footprint
from edgebrain.devices import catalog
from edgebrain.energy.estimate import _worst_case_counts, counts_for, estimate, latency
from edgebrain.graph import Graph
from edgebrain.model import Model

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "edgebrain" / "examples" / "motion_snntorch.nir"
SHIPPED = ["rpi3bplus", "rpi4b", "rpi5", "rpizero2w", "jetson-nano", "jetson-orin-nano", "stm32f446", "stm32h743",
           "nrf52840", "esp32s3", "rp2040", "rp2350", "host"]


def cli(*args, timeout=300):
    p = subprocess.run([sys.executable, "-m", "edgebrain.cli", *map(str, args)], capture_output=True, text=True,
                       timeout=timeout, cwd=REPO)
    return p.returncode, p.stdout, p.stderr


# --------------------------------------------------------------------------- profiles


def test_every_shipped_profile_loads_and_validates():
    files = sorted(p.stem for p in (REPO / "devices").glob("*.toml"))
    assert files == sorted(SHIPPED)
    for name in SHIPPED:
        d = D.load(name)
        assert d.name == name
        assert d.kind in D.KINDS
        for op in D.ENERGY_OPS + ("sram_access",):
            assert d.energy(op) >= 0 and d.provenance[f"energy.{op}"]["citation"]
        if d.kind != "mcu":
            assert d.energy("dram_access") > 0
        # every numeric field has a source; estimated values are marked
        assert any(p["estimated"] for p in d.provenance.values())
        assert "model" in [s["meter"] for s in d.data["sensors"]]
        assert d.data["python"]["runtime"] in D.RUNTIMES
    assert D.load("pico").name == "rp2040" and D.load("Pi4").name == "rpi4b"  # aliases, normalised
    pmic = D.load("rpi5").data["sensors"][0]
    assert pmic["meter"] == "pi5-pmic" and "pmic_read_adc" in pmic["how"]
    assert D.load("rp2040").data["cpu"]["fpu"] == "none" and D.load("stm32h743").data["cpu"]["fpu"] == "dp"


def test_one_copy_of_the_profiles_is_packaged():
    """devices/ is the only copy: the build maps it onto the package edgebrain.device_profiles, and the
    installed view (editable or not) lists exactly its profiles."""
    assert not (REPO / "edgebrain" / "devices_data").exists()
    assert '"edgebrain.device_profiles" = "devices"' in (REPO / "pyproject.toml").read_text()
    assert '"edgebrain.device_profiles"' in (REPO / "setup.py").read_text()
    pkg = D.packaged_dir()
    if pkg is None:
        pytest.skip("edgebrain runs from a source tree that was never installed (pip install -e .)")
    assert sorted(p.name for p in pkg.glob("*.toml")) == sorted(p.name for p in (REPO / "devices").glob("*.toml"))


def test_profiles_found_from_the_installed_copy_alone(monkeypatch):
    if D.packaged_dir() is None:
        pytest.skip("edgebrain runs from a source tree that was never installed (pip install -e .)")
    monkeypatch.setattr(catalog, "checkout_dir", lambda: None)
    assert D.names() == sorted(SHIPPED)
    assert D.load("rp2040").path.startswith(str(D.packaged_dir()))


def test_host_profile_matches_proc():
    text = Path("/proc/cpuinfo").read_text()
    n_cpu = len(re.findall(r"^processor\s*:", text, re.M))
    mem_kb = int(re.search(r"^MemTotal:\s*(\d+) kB", Path("/proc/meminfo").read_text(), re.M).group(1))
    h = D.load("host")
    assert h.kind == "host"
    assert h.data["cpu"]["cores"] == n_cpu
    assert h.data["memory"]["ram_bytes"] == mem_kb * 1024
    assert h.provenance["cpu.cores"]["source"] == "detected"
    assert h.data["python"]["version"] == ".".join(map(str, sys.version_info[:3]))
    meters = [s["meter"] for s in h.data["sensors"]]
    assert meters[-1] == "model"
    assert ("rapl" in meters) == bool(list(Path("/sys/class/powercap").glob("intel-rapl:*"))
                                      if Path("/sys/class/powercap").is_dir() else False)


def test_user_profile_file(tmp_path):
    text = (REPO / "devices" / "rp2040.toml").read_text().replace('name = "rp2040"', 'name = "my-board"')
    text = text.replace("clock_mhz = 133", "clock_mhz = 250")
    p = tmp_path / "my.toml"
    p.write_text(text)
    rc, so, se = cli("devices", "show", p, "--json")
    assert rc == 0, se
    d = json.loads(so)
    assert d["name"] == "my-board" and d["cpu"]["clock_mhz"] == 250
    assert d["provenance"]["power.active_w"]["estimated"] is True


def _bad(tmp_path, old, new, name="bad.toml"):
    text = (REPO / "devices" / "rp2040.toml").read_text()
    assert old in text
    p = tmp_path / name
    p.write_text(text.replace(old, new, 1))
    return p


@pytest.mark.parametrize("old,new,field,expect", [
    ("clock_mhz = 133\n", "", "cpu.clock_mhz", "missing field"),
    ("cores = 2\n", 'cores = "two"\n', "cpu.cores", "expected an integer"),
    ("int8_add = 0.03\n", "int8_add = -0.03\n", "energy.int8_add", "expected a number >= 0"),
    ('fpu = "none"', 'fpu = "yes"', "cpu.fpu", "expected one of none, sp, dp"),
    ('meter = "fnb58"', 'meter = "multimeter"', "sensors[1].meter", "expected one of rapl"),
    ('source = "edgebrain"\nestimated = true\nnote', 'source = "nowhere"\nestimated = true\nnote', "perf.source",
     "expected a key of [sources]"),
    ("[runtime]", "[runtimes]", "runtimes", "unknown field"),
    ("int16_mul = { value = 0.8,", "int16_mul = { valu = 0.8,", "energy.int16_mul", "unknown key"),
])
def test_schema_errors_are_one_line_naming_file_and_field(tmp_path, old, new, field, expect):
    p = _bad(tmp_path, old, new)
    rc, so, se = cli("devices", "show", p)
    assert rc == 2, (so, se)
    assert "Traceback" not in se
    lines = se.strip().splitlines()
    assert len(lines) == 1, se
    assert str(p) in lines[0] and field in lines[0] and expect in lines[0], lines[0]


def test_not_toml_and_unknown_device(tmp_path):
    p = tmp_path / "broken.toml"
    p.write_text("name = [\n")
    rc, so, se = cli("devices", "fit", EXAMPLE, "--device", p)
    assert rc == 2 and "not valid TOML" in se and str(p) in se and len(se.strip().splitlines()) == 1
    rc, so, se = cli("devices", "show", "toaster")
    assert rc == 2 and "no device profile 'toaster'" in se and "rp2040" in se and "Traceback" not in se


def test_list_and_show():
    rc, so, se = cli("devices", "list", "--json")
    assert rc == 0, se
    rows = {r["name"]: r for r in json.loads(so)}
    assert set(rows) == set(SHIPPED)
    assert rows["rp2040"]["ram_bytes"] == 264 * 1024 and rows["rp2040"]["python"] == "micropython"
    rc, so, se = cli("devices", "show", "rpi5")
    assert rc == 0, se
    assert "pi5-pmic" in so and "estimated" in so and "horowitz45" in so


# --------------------------------------------------------------------------- fit


def _mlp(n_in, n_h, n_out, seed=0):
    rng = np.random.default_rng(seed)
    w1 = (rng.standard_normal((n_h, n_in)) + 0.01).astype(np.float32)
    w2 = (rng.standard_normal((n_out, n_h)) + 0.01).astype(np.float32)
    g = Graph.sequential(ops.Input(shape=(n_in,)), ops.Affine(weight=w1, bias=np.zeros(n_h, np.float32)),
                         ops.LIF(beta=np.full(n_h, 0.9, np.float32), threshold=np.ones(n_h, np.float32)),
                         ops.Affine(weight=w2, bias=np.zeros(n_out, np.float32)),
                         ops.LIF(beta=np.full(n_out, 0.9, np.float32), threshold=np.ones(n_out, np.float32)),
                         ops.Output(), names=["input", "fc1", "lif1", "fc2", "lif2", "output"])
    g.meta.update(dt=1e-3)
    return Model(g)


def test_fit_float_on_sbc_matches_hand_footprint():
    m = Model.load(EXAMPLE)
    g = m.graph
    fc1, fc2 = g.nodes["fc1"], g.nodes["fc2"]
    # float32: weights + biases, and 5 per-neuron LIF arrays (beta, g_mem, bias, threshold, v_reset) per neuron
    weights = 4 * (fc1.weight.size + fc1.bias.size + fc2.weight.size + fc2.bias.size + 5 * 48 + 5 * 3)
    assert weights == 4 * (3 * 48 + 48 + 48 * 3 + 3 + 240 + 15) == 2376
    state = 4 * (48 + 3)
    buffers = 4 * (3 + 48 + 48 + 3 + 3 + 3)  # every node's output
    dev = D.load("rpi4b")
    r = fit(m, dev, "auto")
    assert r["precision"] == "float" and r["fits"] and r["verdict"] == "fits"
    runtime = dev.data["runtime"]["ram_bytes"]
    assert r["ram"]["items"] == {"weights": weights, "state": state, "buffers": buffers, "runtime": runtime}
    assert r["ram"]["need"] == weights + state + buffers + runtime
    assert r["ram"]["margin"] == 4 * 2**30 - r["ram"]["need"]
    assert r["flash"]["checked"] is False
    # latency from the worst-case counts and the profile's [perf] figures
    c = r["counts"]
    perf = dev.data["perf"]
    syn = c["eff_macs"] + c["eff_acs"]
    t = (syn / perf["float_ops_per_cycle"] + c["membrane_updates"] * perf["neuron_update_cycles"]) / 1500e6 \
        + perf["step_overhead_us"] * 1e-6
    assert r["latency_s"] == pytest.approx(t)
    assert c["dense"] == 3 * 48 + 48 * 3 and c["membrane_updates"] == 51
    assert r["energy"]["device_per_step_j"] == pytest.approx(6.0 * t)


def test_fit_int_on_mcu_matches_hand_footprint_via_cli():
    m = Model.load(EXAMPLE)
    g = m.graph
    # not quantized: projected int8 weights, int32 biases and requantisation (8 B per output channel),
    # int32 neuron constants, int16 state
    w = 0
    for n in ("fc1", "fc2"):
        op = g.nodes[n]
        w += op.weight.size * 1 + 4 * op.bias.size + 8 * op.weight.shape[0]
    for n, size in (("lif1", 48), ("lif2", 3)):
        w += 4 * sum(min(a.size, size) for a in g.nodes[n].arrays().values())
    state = 2 * (48 + 3)
    buffers = 4 * 108
    rc, so, se = cli("devices", "fit", EXAMPLE, "--device", "rp2040", "--json")
    assert rc == 0, se
    r = json.loads(so)
    assert r["precision"] == "int" and r["verdict"] == "fits"
    rt = runtime_footprint(D.load("rp2040"))  # measured on a Cortex-M0+ build (edgebrain/data/firmware_footprint.json)
    assert rt["source"] == "measured" and r["runtime"]["source"] == "measured"
    assert r["flash"]["items"] == {"weights": w, "runtime": rt["flash"]}
    assert r["flash"]["margin"] == 2 * 2**20 - (w + rt["flash"])
    assert r["ram"]["items"] == {"state": state, "buffers": buffers, "runtime": rt["ram"]}
    assert r["ram"]["margin"] == 264 * 1024 - (state + buffers + rt["ram"])
    assert any("projected" in a for a in r["assumptions"]) and any("C runtime" in a for a in r["warnings"])
    rc, so, se = cli("devices", "fit", EXAMPLE, "--device", "rp2040")
    assert rc == 0 and "FITS" in so and "assumptions" in so


def test_big_model_does_not_fit_rp2040(tmp_path):
    m = _mlp(64, 1536, 1536)  # 64·1536 + 1536·1536 int8 weights ≈ 2.4 MB > the Pico's 2 MB flash
    path = tmp_path / "big.ebm"
    m.save(path)
    rc, so, se = cli("devices", "fit", path, "--device", "rp2040", "--json")
    assert rc == 3, se  # the documented "verdict negative" exit code, with the JSON printed all the same
    r = json.loads(so)
    assert r["verdict"] == "does not fit" and not r["fits"]
    # int8 weights, int32 biases, 8 B requantisation per output channel; LIF constants as int32, per neuron
    # for beta and threshold (arrays), once for the scalar g_mem, bias and v_reset
    w = 64 * 1536 + 1536 * 1536 + 4 * (1536 + 1536) + 8 * (1536 + 1536) + 2 * 4 * (2 * 1536 + 3)
    rt = runtime_footprint(D.load("rp2040"))["flash"]
    assert r["flash"]["need"] == w + rt and r["flash"]["margin"] == 2 * 2**20 - w - rt < 0
    rc, so, se = cli("devices", "fit", path, "--device", "rp2040")
    assert rc == 3 and "DOES NOT FIT" in so
    # the same model fits a Pi 5 comfortably
    r5 = fit(Model.load(path), D.load("rpi5"))
    assert r5["fits"] and r5["ram"]["margin"] > 0


def test_fit_zoo_model_reports_decision_window():
    m = Model.load("zoo:basicmotions")
    win = decision_window(m)
    if win is None:
        pytest.skip("zoo:basicmotions carries no decoder window")
    r = fit(m, D.load("stm32f446"))
    e = r["energy"]
    assert e["per_window_j"] == pytest.approx(e["per_step_j"] * win["window"])
    assert r["precision"] == "int"


# --------------------------------------------------------------------------- energy


def test_energy_estimate_equals_hand_computation():
    counts = {"dense": 100, "eff_macs": 10, "eff_acs": 40, "membrane_updates": 5, "weight_bytes_read": 80,
              "state_bytes_rw": 16, "steps": 2, "precision": "int"}
    dev = D.load("rp2040")  # MCU: weights and state at sram_access = 20 pJ per 64-bit access
    e = estimate(counts, dev, static=None)
    # E_MAC = 0.2 + 0.1, E_AC = 0.1, E_neuron = 3.1 + 2·0.1; memory per byte = 20/8 pJ
    hand = 10 * 0.3 + 40 * 0.1 + 5 * 3.3 + 80 / 8 * 20 + 16 / 8 * 20
    assert hand == pytest.approx(263.5)
    assert e.total_j == pytest.approx(hand * 1e-12)
    assert e.per_step_j == pytest.approx(hand * 1e-12 / 2)
    assert e.breakdown_j["weight_memory_j"] == pytest.approx(200e-12)
    assert any("Horowitz" in a for a in e.assumptions)
    # with static power: idle 0.03 W for 1 ms
    e2 = estimate(counts, dev, time_s=1e-3, static="idle")
    assert e2.total_j == pytest.approx(hand * 1e-12 + 0.03 * 1e-3)
    # float on a Pi 4, weights beyond the 1 MB L2 come from DRAM (1300 pJ per 64-bit access)
    big = dict(counts, precision="float", weight_bytes_read=4e6, steps=1)
    e3 = estimate(big, D.load("rpi4b"), static=None)
    hand3 = 10 * (3.7 + 0.9) + 40 * 0.9 + 5 * (3.7 + 1.8) + 4e6 / 8 * 1300 + 16 / 8 * 100
    assert e3.weights_in == "dram" and e3.total_j == pytest.approx(hand3 * 1e-12)


def test_tiny_model_counts_and_energy_by_hand():
    m = _mlp(2, 3, 2)
    wc = _worst_case_counts(m, "int")
    assert wc["dense"] == 2 * 3 + 3 * 2
    assert wc["eff_macs"] == 6 and wc["eff_acs"] == 6 and wc["membrane_updates"] == 5
    c = counts_for(m, "int")  # edgebrain.metrics (no zero weights here, so the same counts)
    for k in ("dense", "eff_macs", "eff_acs", "membrane_updates", "steps"):
        assert c[k] == wc[k], k
    dev = D.load("stm32f446")
    e = estimate(wc, dev, static=None)
    hand = 6 * 0.3 + 6 * 0.1 + 5 * 3.3 + wc["weight_bytes_read"] / 8 * 20 + wc["state_bytes_rw"] / 8 * 20
    # weights: 12 int8 + int32 biases 4·(3 + 2); state: 5 int16 neurons read and written
    assert wc["weight_bytes_read"] == 12 + 4 * 5 and wc["state_bytes_rw"] == 2 * 2 * 5
    assert e.total_j == pytest.approx(hand * 1e-12)
    t, text = latency(wc, dev)
    assert t == pytest.approx((12 / 1 + 5 * 10) / 180e6 + 2e-6) and "MHz" in text[0]


def test_bad_counts_are_clear():
    from edgebrain.errors import InputError

    with pytest.raises(InputError, match="missing key"):
        estimate({"dense": 1}, D.load("rp2040"))
    bad = {k: 1 for k in ("dense", "eff_macs", "eff_acs", "membrane_updates", "weight_bytes_read", "state_bytes_rw",
                          "steps")}
    with pytest.raises(InputError, match="'eff_acs' is -1"):
        estimate(dict(bad, eff_acs=-1), D.load("rp2040"))
