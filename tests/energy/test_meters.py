"""Energy meters and the measurement recipe, without the hardware.

* Parsers on the documented real output formats: tegrastats lines of JetPack 4, JetPack 5/6 and
  AGX Xavier; ``vcgencmd pmic_read_adc`` output of a Pi 5; sysfs trees laid out in tmp_path as on
  each device (powercap RAPL, hwmon INA2xx, Jetson INA3221 in both JetPack layouts); UM and FNB
  USB-meter frames built byte by byte.
* The UM25C over a real pseudo-terminal with a separate emulator process (tests/_meter_emulator.py)
  speaking the meter's protocol: a normal run checked against the emulator's known power profile,
  a meter that disconnects or falls silent mid-run (partial result, no hang), garbage frames
  (skipped and counted). tegrastats and vcgencmd run as real child processes (the emulator).
* An RAPL counter that wraps, both read by read (hand-computed delta) and over a whole measurement.
* RAPL read for real when this machine allows it.

Measurements of in-process meters (the RAPL sysfs tree, the FNB58 transport, a meter that is a
function of time) run on a simulated clock (tests/energy/_clock.py): the sampler, the workload and
the fake sensor share one timeline, so the results are exact by hand and the same under any load.
Meters behind real processes and pseudo-terminals run in real time; their checks are counts and
bounds that scheduling delays cannot break. Every wait is bounded: measurements run in a watchdog
thread and fail the test instead of hanging.
"""

from __future__ import annotations

import io
import json
import math
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from edgebrain.energy.measure import Sampler, energy_between, integrate_power, measure
from edgebrain.energy.meters import (Fnb58Meter, HwmonMeter, Ina3221Meter, Meter, MeterAbsent, MeterDisconnected,
                                     MeterError, MeterGarbage, MeterPermission, MeterTimeout, ModelMeter,
                                     Pi5PmicMeter, RaplMeter, Sample, TegrastatsMeter, UmMeter, make_meter,
                                     open_meter, parse_pmic_read_adc, parse_tegrastats)
from edgebrain.energy.meters import rapl as rapl_mod
from edgebrain.energy.meters.base import counter_delta
from edgebrain.energy.meters.usbmeter import (crc8_fnb, decode_fnb_report, decode_um_frame, encode_fnb_report,
                                              fnb_request)
from edgebrain.errors import EdgebrainError, InputError
from tests.energy._clock import SimClock

EMU = Path(__file__).with_name("_meter_emulator.py")
WAIT = 30.0

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pseudo-terminals: Linux")


def bounded(fn, timeout=WAIT):
    """Run fn() in a thread; fail (instead of hanging) if it takes longer than ``timeout``."""
    out, err = [], []

    def run():
        try:
            out.append(fn())
        except BaseException as e:  # noqa: BLE001 - re-raised below
            err.append(e)

    th = threading.Thread(target=run, daemon=True)
    t0 = time.perf_counter()
    th.start()
    th.join(timeout)
    if th.is_alive():
        pytest.fail(f"did not finish within {timeout} s (a hang)")
    if err:
        raise err[0]
    return out[0], time.perf_counter() - t0


# ============================================================================ integration arithmetic


def test_integrate_power_trapezoid_by_hand():
    t = [0.0, 1.0, 2.0, 3.0]
    p = [1.0, 3.0, 3.0, 1.0]
    # whole range: (1+3)/2 + 3 + (3+1)/2 = 7 J
    assert integrate_power(t, p, 0.0, 3.0) == pytest.approx(7.0)
    # cut at 0.5 and 2.5: P(0.5)=2, P(2.5)=2 → (2+3)/2·0.5 + 3 + (3+2)/2·0.5 = 5.5 J
    assert integrate_power(t, p, 0.5, 2.5) == pytest.approx(5.5)
    # beyond the samples the curve is held: [3, 4] at 1 W → +1 J
    assert integrate_power(t, p, 0.0, 4.0) == pytest.approx(8.0)
    assert energy_between([0.0, 2.0], [10.0, 14.0], 0.5, 1.5) == pytest.approx(2.0)


def test_counter_delta_wraps():
    assert counter_delta(100.0, 250.0, 1000.0) == 150.0
    assert counter_delta(900.0, 50.0, 1000.0) == 150.0          # 100 to the wrap, 50 after
    with pytest.raises(MeterGarbage, match="backwards"):
        counter_delta(900.0, 50.0, None)


# ===================================================================================== RAPL sysfs

MAX_UJ = 262143328850       # a real package max_energy_range_uj


def rapl_tree(root: Path, pkg_uj=1000, dram_uj=500, max_uj=MAX_UJ, psys=True) -> Path:
    """/sys/class/powercap as on an Intel laptop: package zone, its dram sub-zone, and psys."""
    zones = {"intel-rapl:0": ("package-0", pkg_uj), "intel-rapl:0:0": ("core", 10),
             "intel-rapl:0:2": ("dram", dram_uj)}
    if psys:
        zones["intel-rapl:1"] = ("psys", 77)
    for d, (name, uj) in zones.items():
        z = root / d
        z.mkdir(parents=True)
        (z / "name").write_text(name + "\n")
        (z / "energy_uj").write_text(f"{uj}\n")
        (z / "max_energy_range_uj").write_text(f"{max_uj}\n")
        (z / "enabled").write_text("1\n")
    (root / "intel-rapl").mkdir()        # the control type directory, not a zone
    return root


def test_rapl_reads_package_zones_and_unwraps_by_hand(tmp_path):
    root = rapl_tree(tmp_path / "powercap", pkg_uj=MAX_UJ - 1_000_000)
    m = RaplMeter(root=root).open()
    assert [z[0] for z in m.zones] == ["package-0"]             # psys and sub-zones not by default
    s0 = m.read()
    (root / "intel-rapl:0" / "energy_uj").write_text("2000000\n")   # wrapped past max_energy_range_uj
    s1 = m.read()
    # by hand: (MAX − (MAX − 1e6)) + 2e6 µJ = 3e6 µJ = 3 J
    assert s1.energy_j - s0.energy_j == pytest.approx(3.0, abs=1e-9)
    assert m.wraps == 1
    (root / "intel-rapl:0" / "energy_uj").write_text("2500000\n")
    assert m.read().energy_j - s1.energy_j == pytest.approx(0.5, abs=1e-9)
    m.close()
    m2 = RaplMeter(root=root, domains="package-0,dram").open()
    assert m2.read().rails.keys() == {"package-0", "dram"}
    with pytest.raises(MeterAbsent, match="no RAPL zone named 'gpu'"):
        RaplMeter(root=root, domains=["gpu"]).open()


def test_rapl_absent_permission_garbage(tmp_path, monkeypatch):
    with pytest.raises(MeterAbsent, match="no powercap sysfs"):
        RaplMeter(root=tmp_path / "nothing").open()
    (tmp_path / "empty").mkdir()
    with pytest.raises(MeterAbsent, match="no intel-rapl"):
        RaplMeter(root=tmp_path / "empty").open()
    root = rapl_tree(tmp_path / "powercap")
    real = rapl_mod._read_file

    def denied(path):
        if path.name == "energy_uj":
            raise PermissionError(13, "Permission denied")
        return real(path)

    monkeypatch.setattr(rapl_mod, "_read_file", denied)
    with pytest.raises(MeterPermission) as e:
        RaplMeter(root=root).open()
    msg = str(e.value)
    assert "Linux 5.10" in msg and "root" in msg and "chmod" in msg and "\n" not in msg
    assert isinstance(e.value, InputError) and isinstance(e.value, EdgebrainError)
    monkeypatch.setattr(rapl_mod, "_read_file", real)
    (root / "intel-rapl:0" / "energy_uj").write_text("lots\n")
    with pytest.raises(MeterGarbage, match="not an integer"):
        RaplMeter(root=root).open()


class RaplCounter:
    """The package zone's energy_uj, advanced on the simulated clock at ``level`` watts and wrapping at
    ``max_uj`` (an ``on_advance`` hook: the file changes only while no reader runs)."""

    def __init__(self, path: Path, max_uj: int, level: float):
        self.path, self.max_uj, self.level = path, max_uj, level
        self.t = 0.0
        self.total_uj = 0.0

    def __call__(self, t: float) -> None:
        self.total_uj += self.level * (t - self.t) * 1e6
        self.t = t
        self.path.write_text(f"{round(self.total_uj) % self.max_uj}\n")


def test_measure_rapl_counter_that_wraps(tmp_path):
    max_uj = 20_000_000                           # 20 J: wraps every 0.8 s at 25 W
    root = rapl_tree(tmp_path / "powercap", pkg_uj=0, max_uj=max_uj, psys=False)
    clock = SimClock()
    counter = RaplCounter(root / "intel-rapl:0" / "energy_uj", max_uj, level=5.0)
    clock.on_advance.append(counter)
    meter = RaplMeter(root=root, clock=clock)

    def run_fn():
        counter.level = 25.0                      # the load starts with the first call
        clock.sleep(0.01)
        return 1

    r, _ = bounded(lambda: measure(run_fn, meter, baseline_s=0.6, min_duration_s=2.0, min_periods=50))
    T, N = r.duration_s, r.inferences
    assert N == r.calls and T == pytest.approx(0.01 * N) and 2.0 <= T < 2.011
    assert meter.wraps == 2                       # 3 J idle + 50 J loaded, at 20 J a wrap
    assert r.baseline_power_w == pytest.approx(5.0, abs=1e-5)      # (the file holds whole µJ)
    # by hand: 25 W over the run window, 20 W of it above the 5 W idle. The load starts at the window's
    # first edge, which falls between two samples 10 ms apart, and the counter is interpolated linearly
    # there: less by 20 W × 10 ms × f(1 − f) ≤ 0.05 J (f: where the edge falls), never more
    edge = 20.0 * 0.01 / 4 + 1e-5
    assert 25.0 * T - edge <= r.energy_j <= 25.0 * T + 1e-5
    assert 20.0 * T - edge - 1e-4 <= r.dynamic_energy_j <= 20.0 * T + 1e-4
    assert r.dynamic_per_inference_j == pytest.approx(r.dynamic_energy_j / N)
    assert not r.partial and not r.too_short
    assert r.energy_per_inference_uncertainty_j > 0


def test_rapl_real_machine():
    path = Path("/sys/class/powercap/intel-rapl:0/energy_uj")
    if not path.exists():
        pytest.skip(f"{path} does not exist on this machine (no RAPL: not x86, a VM or container without "
                    "powercap, or intel_rapl_msr not loaded)")
    if not os.access(path, os.R_OK):
        pytest.skip(f"{path} is not readable by this user (root-only since Linux 5.10)")
    try:
        with open(path) as f:
            f.read()
    except OSError as e:
        pytest.skip(f"{path} cannot be read: {e}")
    m = RaplMeter()

    def busy():
        x = 0
        for i in range(20000):
            x += i * i
        return 1

    r, _ = bounded(lambda: measure(busy, m, baseline_s=0.5, min_duration_s=1.0, min_periods=50))
    assert r.measured and r.energy_j > 0 and r.inferences > 0
    assert 0.1 < r.mean_power_w < 1000


# ================================================================================== hwmon sysfs


def hwmon_tree(root: Path) -> Path:
    devs = {
        "hwmon0": {"name": "coretemp", "temp1_input": "45000"},
        "hwmon1": {"name": "ina226", "power1_input": "2345000", "in1_input": "5020", "curr1_input": "467",
                   "update_interval": "5"},
        "hwmon2": {"name": "ina219", "in0_input": "12", "in1_input": "5020", "curr1_input": "512",
                   "shunt1_resistor": "100000"},                     # no power1_input: in1 × curr1
    }
    for d, files in devs.items():
        (root / d).mkdir(parents=True)
        for k, v in files.items():
            (root / d / k).write_text(v + "\n")
    return root


def test_hwmon_power_and_pairs(tmp_path):
    root = hwmon_tree(tmp_path / "hwmon")
    m = HwmonMeter(root=root).open()
    s = m.read()
    assert s.rails == pytest.approx({"ina226:power1": 2.345, "ina219:rail1": 5.020 * 0.512})
    assert s.power_w == pytest.approx(2.345 + 5.020 * 0.512)
    assert m.period_s == pytest.approx(0.01)       # update_interval 5 ms < the 10 ms poll
    m2 = HwmonMeter(root=root, device="ina219").open()
    assert m2.read().power_w == pytest.approx(2.57024)
    with pytest.raises(MeterAbsent, match="coretemp"):
        HwmonMeter(root=root, device="coretemp").open()
    with pytest.raises(MeterAbsent, match="no hwmon sysfs"):
        HwmonMeter(root=tmp_path / "none").open()
    (root / "hwmon1" / "power1_input").write_text("oops\n")
    with pytest.raises(MeterGarbage, match="not a number"):
        m2 = HwmonMeter(root=root, device="ina226").open()
    (root / "hwmon1" / "power1_input").unlink()
    (root / "hwmon1" / "in1_input").unlink()
    m3 = HwmonMeter(root=root, device="ina219").open()
    (root / "hwmon2" / "curr1_input").unlink()
    with pytest.raises(MeterDisconnected, match="vanished"):
        m3.read()


# ============================================================================ Jetson INA3221 sysfs


def jetson_jp4(root: Path) -> Path:
    """Jetson Nano, JetPack 4: the ina3221x IIO device."""
    d = root / "ina3221x" / "6-0040" / "iio:device0"
    d.mkdir(parents=True)
    rails = [("POM_5V_IN", 1022, 5072, 201), ("POM_5V_GPU", 0, 5072, 0), ("POM_5V_CPU", 204, 5064, 40)]
    for n, (name, mw, mv, ma) in enumerate(rails):
        (d / f"rail_name_{n}").write_text(name + "\n")
        (d / f"in_power{n}_input").write_text(f"{mw}\n")
        (d / f"in_voltage{n}_input").write_text(f"{mv}\n")
        (d / f"in_current{n}_input").write_text(f"{ma}\n")
    (d / "name").write_text("ina3221x\n")
    return root


def jetson_jp6(root: Path, labels=("VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC")) -> Path:
    """Orin Nano, JetPack 6: the ina3221 hwmon device."""
    d = root / "ina3221" / "1-0040" / "hwmon" / "hwmon3"
    d.mkdir(parents=True)
    vals = [(5072, 1150), (5072, 258), (5072, 289)]
    (d / "name").write_text("ina3221\n")
    for n, (label, (mv, ma)) in enumerate(zip(labels, vals), start=1):
        (d / f"in{n}_label").write_text(label + "\n")
        (d / f"in{n}_input").write_text(f"{mv}\n")
        (d / f"curr{n}_input").write_text(f"{ma}\n")
        (d / f"in{n + 3}_input").write_text("5750\n")                 # shunt voltages, µV: ignored
        (d / f"shunt{n}_resistor").write_text("5000\n")
        (d / f"curr{n}_crit").write_text("7784\n")
    (d / "in7_input").write_text("17250\n")                          # sum of shunts: ignored
    (d / "curr4_input").write_text("1697\n")
    (d / "update_interval").write_text("7\n")
    return root


def test_ina3221_jetpack4_layout(tmp_path):
    m = Ina3221Meter(root=jetson_jp4(tmp_path / "drivers")).open()
    s = m.read()
    assert s.rails == pytest.approx({"POM_5V_IN": 1.022, "POM_5V_GPU": 0.0, "POM_5V_CPU": 0.204})
    assert s.power_w == pytest.approx(1.022)                          # the module input rail, not the sum
    assert "JetPack 4" in m.layout


def test_ina3221_jetpack6_layout(tmp_path):
    m = Ina3221Meter(root=jetson_jp6(tmp_path / "drivers")).open()
    s = m.read()
    assert s.rails == pytest.approx({"VDD_IN": 5.072 * 1.150, "VDD_CPU_GPU_CV": 5.072 * 0.258,
                                     "VDD_SOC": 5.072 * 0.289})
    assert s.power_w == pytest.approx(5.8328)
    assert m.period_s == pytest.approx(0.01)
    # no input rail and an unconnected channel: sum of the connected ones
    m2 = Ina3221Meter(root=jetson_jp6(tmp_path / "d2", labels=("VDD_GPU", "NC", "VDD_CPU"))).open()
    s2 = m2.read()
    assert set(s2.rails) == {"VDD_GPU", "VDD_CPU"}
    assert s2.power_w == pytest.approx(5.072 * 1.150 + 5.072 * 0.289)
    with pytest.raises(MeterAbsent, match="not a Jetson"):
        Ina3221Meter(root=tmp_path / "x86").open()


# ===================================================================================== tegrastats

JP4_LINE = ("RAM 534/3964MB (lfb 585x4MB) SWAP 0/1982MB (cached 0MB) IRAM 0/252kB(lfb 252kB) "
            "CPU [16%@204,9%@204,8%@204,6%@204] EMC_FREQ 0%@1600 GR3D_FREQ 0%@76 APE 25 PLL@21C CPU@23.5C "
            "PMIC@100C GPU@22C AO@29.5C thermal@22.75C POM_5V_IN 1022/1022 POM_5V_GPU 0/0 POM_5V_CPU 204/204")
JP6_LINE = ("08-23-2026 13:57:46 RAM 3595/7607MB (lfb 2x4MB) SWAP 0/3804MB (cached 0MB) "
            "CPU [2%@729,1%@729,0%@729,0%@729,off,off] GR3D_FREQ 7%@[306] cpu@47.75C soc2@46.5C "
            "VDD_IN 5832mW/5852mW VDD_CPU_GPU_CV 1307mW/1327mW VDD_SOC 1468mW/1468mW")
XAVIER_LINE = ("RAM 1520/15692MB (lfb 3179x4MB) CPU [1%@1190,off] EMC_FREQ 0% GR3D_FREQ 0% AO@34C GPU@35C "
               "PMIC@100C GPU 1155/1155 CPU 385/385 SOC 2504/2503 CV 0/0 VDDRQ 192/192 SYS5V 2692/2692")


def test_parse_tegrastats_dialects():
    assert parse_tegrastats(JP4_LINE) == pytest.approx({"POM_5V_IN": 1.022, "POM_5V_GPU": 0.0, "POM_5V_CPU": 0.204})
    assert parse_tegrastats(JP6_LINE) == pytest.approx({"VDD_IN": 5.832, "VDD_CPU_GPU_CV": 1.307, "VDD_SOC": 1.468})
    x = parse_tegrastats(XAVIER_LINE)
    assert x == pytest.approx({"GPU": 1.155, "CPU": 0.385, "SOC": 2.504, "CV": 0.0, "VDDRQ": 0.192, "SYS5V": 2.692})
    assert parse_tegrastats("RAM 534/3964MB (lfb 585x4MB) SWAP 0/1982MB") == {}


def test_tegrastats_from_stream():
    m = TegrastatsMeter(stream=io.StringIO("\n".join([JP6_LINE, "garbled line", JP4_LINE, XAVIER_LINE]) + "\n"),
                        timeout=2.0).open()
    assert m.read().power_w == pytest.approx(5.832)                   # VDD_IN
    with pytest.raises(MeterGarbage, match="no power rails"):
        m.read()
    assert m.read().power_w == pytest.approx(1.022)                   # POM_5V_IN
    assert m.read().power_w == pytest.approx(1.155 + 0.385 + 2.504 + 0.192 + 2.692)   # sum (no input rail)
    with pytest.raises(MeterDisconnected, match="end of output"):
        m.read()
    m.close()


@pytest.mark.parametrize("dialect", ["jp4", "jp6", "xavier"])
def test_tegrastats_process(dialect):
    cmd = [sys.executable, str(EMU), "tegrastats", "--dialect", dialect, "--interval", "20", "--count", "6",
           "--garbage-at", "2"]
    m = TegrastatsMeter(command=cmd, interval_ms=20, timeout=5.0)
    got, garbage = [], 0

    def read_all():
        nonlocal garbage
        with m:
            while True:
                try:
                    got.append(m.read())
                except MeterGarbage:
                    garbage += 1
                except MeterDisconnected as e:
                    return e

    err, _ = bounded(read_all)
    assert "stopped" in str(err)
    assert len(got) == 6 and garbage == 1
    # the emulator's input rail: 1000 + 10·i mW (Xavier: no input rail, the sum of its rails)
    extra = 0.385 + 2.504 + 0.192 + 2.692 if dialect == "xavier" else 0.0
    assert [s.power_w for s in got] == pytest.approx([1.0 + 0.01 * i + extra for i in range(6)])
    assert all(b.t > a.t for a, b in zip(got, got[1:]))


def test_tegrastats_absent_and_silent():
    with pytest.raises(MeterAbsent, match="not found"):
        TegrastatsMeter(command=["/nonexistent/tegrastats"]).open()
    m = TegrastatsMeter(command=[sys.executable, "-c", "import time; time.sleep(30)"], timeout=0.5)
    (e, _) = bounded(lambda: _expect(m, MeterTimeout), timeout=10)
    assert "within 0.5 s" in str(e)          # the meter's own timeout ended the wait, not the watchdog


def _expect(m, cls):
    """Open ``m`` and read once, expecting ``cls`` (from the open or the read); closes ``m``."""
    with pytest.raises(cls) as e:
        with m:
            m.read()
    return e.value


# ========================================================================================== Pi 5

PMIC_TEXT = """\
   VDD_CORE_A current(7)=6.22421000A
   3V3_SYS_A current(1)=0.05562810A
  VDD_CORE_V volt(15)=0.86173300V
   3V3_SYS_V volt(9)=3.31440500V
     EXT5V_V volt(24)=5.09066000V
      BATT_V volt(25)=0.00000000V
"""


def test_parse_pmic_pairs_rails_by_name():
    pairs = parse_pmic_read_adc(PMIC_TEXT)
    assert pairs == {"VDD_CORE": (0.861733, 6.22421), "3V3_SYS": (3.314405, 0.0556281)}   # no EXT5V, BATT
    with pytest.raises(MeterGarbage, match="no 'NAME_A"):
        parse_pmic_read_adc("hello\nworld\n")


def test_pi5_meter_with_real_process():
    m = Pi5PmicMeter(command=[sys.executable, str(EMU), "pmic"], timeout=10).open()
    s = m.read()
    assert len(s.rails) == 12 and "EXT5V" not in s.rails and "BATT" not in s.rails
    assert s.rails["VDD_CORE"] == pytest.approx(0.8 * 0.6)
    by_hand = (3.744293 * 0.00390372 + 3.314405 * 0.0556281 + 1.799266 * 0.1727527 + 1.112207 * 0.02049451
               + 0.606224 * 0.0 + 1.106346 * 0.1824969 + 0.802206 * 0.3162096 + 0.8 * 0.6 + 3.306221 * 0.00006105
               + 3.306221 * 0.00054945 + 0.803964 * 0.004698 + 5.1549 * 0.0234432)
    assert s.power_w == pytest.approx(by_hand)
    m.close()


def test_pi5_meter_failures():
    with pytest.raises(MeterAbsent, match="only the Raspberry Pi 5"):
        Pi5PmicMeter(command=[sys.executable, str(EMU), "pmic", "--fail", "registered"]).open()
    with pytest.raises(MeterPermission, match="group `video`"):
        Pi5PmicMeter(command=[sys.executable, str(EMU), "pmic", "--fail", "vchiq"]).open()
    with pytest.raises(MeterAbsent, match="not found"):
        Pi5PmicMeter(command=["/nonexistent/vcgencmd", "pmic_read_adc"]).open()
    m = Pi5PmicMeter(command=[sys.executable, str(EMU), "pmic", "--sleep", "20"], timeout=1.0)
    (e, _) = bounded(lambda: _expect(m, MeterTimeout), timeout=15)
    assert "no answer within 1 s" in str(e)
    with pytest.raises(MeterGarbage):
        Pi5PmicMeter(command=lambda: "VDD_CORE_A current(7)=1.0A\n").open()   # no voltage to pair


# ================================================================================ USB meter frames


def test_um_frames_by_hand():
    import struct

    f = bytearray(130)
    struct.pack_into(">HHHI", f, 0, 0x09C9, 5123, 4567, 2339)           # UM25C: 5.123 V, 0.4567 A, 2.339 W
    struct.pack_into(">H", f, 10, 31)
    d = decode_um_frame(bytes(f), "um25c")
    assert (d["volts"], d["amps"], d["watts"], d["temp_c"]) == (5.123, 0.4567, 2.339, 31)
    struct.pack_into(">HHHI", f, 0, 0x0963, 512, 457, 2339)             # UM24C: /100 V, /1000 A
    d = decode_um_frame(bytes(f), "um25c")                              # the marker tells the model
    assert (d["model"], d["volts"], d["amps"]) == ("um24c", 5.12, 0.457)
    struct.pack_into(">HHHI", f, 0, 0x1234, 5000, 10000, 999999)
    with pytest.raises(MeterGarbage, match="disagree"):
        decode_um_frame(bytes(f))
    with pytest.raises(MeterGarbage, match="60 bytes"):
        decode_um_frame(bytes(60))


def test_fnb_reports_by_hand():
    # the documented host reports
    assert fnb_request(0x81) == b"\xaa\x81" + bytes(61) + b"\x8e"
    assert fnb_request(0x82) == b"\xaa\x82" + bytes(61) + b"\x96"
    assert fnb_request(0x83) == b"\xaa\x83" + bytes(61) + b"\x9e"
    r = bytearray(64)
    r[0], r[1] = 0xAA, 0x04
    # sample 0: 5.12345 V = 512345 LE, 0.4 A = 40000 LE, D+ 0.6 V, D− 0.61 V, temp 25.3 °C
    r[2:6] = (512345).to_bytes(4, "little")
    r[6:10] = (40000).to_bytes(4, "little")
    r[10:12] = (600).to_bytes(2, "little")
    r[12:14] = (610).to_bytes(2, "little")
    r[14] = 1
    r[15:17] = (253).to_bytes(2, "little")
    r[63] = crc8_fnb(bytes(r[1:63]))
    s = decode_fnb_report(bytes(r))
    assert len(s) == 4
    assert s[0] == {"volts": 5.12345, "amps": 0.4, "dp": 0.6, "dn": 0.61, "temp_c": 25.3}
    assert s[1]["volts"] == 0.0
    bad = bytearray(r)
    bad[63] ^= 0xFF
    with pytest.raises(MeterGarbage, match="CRC"):
        decode_fnb_report(bytes(bad))
    other = bytearray(64)
    other[0], other[1] = 0xAA, 0x03
    assert decode_fnb_report(bytes(other)) == []
    assert encode_fnb_report([(5.0, 0.5)] * 4) [1] == 0x04


# ======================================================================= UM25C over a pseudo-terminal


class Emulator:
    def __init__(self, *args):
        self.p = subprocess.Popen([sys.executable, str(EMU), *map(str, args)], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in self.p.stdout:
            self.lines.put(line.strip())
        self.lines.put(None)

    def expect(self, prefix, timeout=WAIT):
        deadline = time.perf_counter() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.perf_counter()))
            except queue.Empty:
                pytest.fail(f"emulator did not print {prefix!r} within {timeout} s")
            if line is None:
                pytest.fail(f"emulator ended before printing {prefix!r}")
            if line.startswith(prefix):
                return line

    def send(self, text):
        self.p.stdin.write(text + "\n")
        self.p.stdin.flush()

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait(5)
        for f in (self.p.stdin, self.p.stdout):
            try:
                f.close()
            except OSError:
                pass


@pytest.fixture
def emulators():
    started = []

    def start(*args):
        e = Emulator(*args)
        started.append(e)
        e.expect("ready")
        return e

    yield start
    for e in started:
        e.kill()


def loaded_run(emu, meter, seconds=0.02, per_call=2):
    """A workload: switches the emulated meter to its load current on the first call, once the
    frame requested before the call has been answered (so that every baseline frame is idle, however
    late the emulator runs)."""
    state = {"first": True}

    def run_fn():
        if state["first"]:
            frames = meter.frames
            deadline = time.monotonic() + 10
            while meter.frames == frames and time.monotonic() < deadline:
                time.sleep(0.001)
            emu.send("load")
            emu.expect("ok", timeout=10)
            state["first"] = False
        time.sleep(seconds)
        return per_call

    return run_fn


P_IDLE, P_LOAD = 5.0 * 0.24, 5.0 * 0.6      # the emulator's profile: 1.2 W idle, 3.0 W loaded


def check_loaded_energy(r):
    """The run window's energy against the emulator's profile, by hand, whatever the scheduling: at
    most P_LOAD·T (no sample is above it), and at least that less 1.8 W over the first call (which
    waits for the switch) and one sample interval after it (frames requested before the switch)."""
    T, N = r.duration_s, r.inferences
    first = r.windows["inferences"][0][1] - r.windows["inferences"][0][0]
    gap = max(b - a for a, b in zip(r.timeline["t"], r.timeline["t"][1:]))
    low = P_LOAD * T - (P_LOAD - P_IDLE) * (first + gap)
    assert low - 1e-9 <= r.energy_j <= P_LOAD * T + 1e-9
    assert (low - 1e-9) / N <= r.energy_per_inference_j <= (P_LOAD * T + 1e-9) / N
    if r.dynamic_energy_j is not None:
        assert r.dynamic_energy_j == pytest.approx(r.energy_j - P_IDLE * T)
        assert r.dynamic_per_inference_j == pytest.approx(r.dynamic_energy_j / N)


@linux_only
def test_um25c_pty_measure_matches_profile(emulators, tmp_path):
    link = tmp_path / "rfcomm0"
    emu = emulators("um25c", link)
    meter = UmMeter(str(link), period=0.02, timeout=1.0)
    r, _ = bounded(lambda: measure(loaded_run(emu, meter), meter, baseline_s=1.0, min_duration_s=2.0,
                                   min_periods=50))
    assert r.measured and not r.partial and not r.too_short and r.garbage == 0
    assert r.baseline_power_w == pytest.approx(P_IDLE, abs=1e-9)      # every idle frame is 1.2 W exactly
    assert r.baseline_power_std_w == pytest.approx(0.0, abs=1e-12)
    # by hand: 3.0 W over the window (less while the emulator switched), 1.8 W above idle
    T, N = r.duration_s, r.inferences
    assert N == 2 * r.calls and T >= 2.0
    check_loaded_energy(r)
    assert 0 < r.energy_per_inference_uncertainty_j < 0.05 * r.energy_per_inference_j
    assert r.samples >= 50
    d = json.loads(json.dumps(r.as_dict()))
    assert d["meter"]["name"] == "um25c" and len(d["timeline"]["t"]) == len(d["timeline"]["power_w"])
    assert d["windows"]["run"][0] >= d["windows"]["baseline"][1] - 1e-9
    assert len(d["windows"]["inferences"]) == r.calls
    assert "energy/inference" in r.summary()


@linux_only
def test_um25c_pty_disconnect_mid_run_is_partial(emulators, tmp_path):
    link = tmp_path / "rfcomm1"
    emu = emulators("um25c", link, "--drop-after", 80)
    meter = UmMeter(str(link), period=0.02, timeout=1.0)
    r, _ = bounded(lambda: measure(loaded_run(emu, meter), meter, baseline_s=0.5, min_duration_s=8.0,
                                   min_periods=20))
    emu.expect("dropped")
    assert r.partial and "serial link lost" in r.partial_reason and "PARTIAL" in r.summary()
    # stopped at the drop: a full run would have called on for 8 s
    assert r.windows["inferences"][-1][1] - r.windows["run"][0] < 8.0
    assert 20 < len(r.timeline["t"]) <= 80        # the samples before the drop were kept
    assert r.calls < len(r.windows["inferences"]) + 1 and r.inferences > 0
    check_loaded_energy(r)


@linux_only
def test_um25c_pty_silent_meter_times_out(emulators, tmp_path):
    link = tmp_path / "rfcomm2"
    emu = emulators("um25c", link, "--silent-after", 60)
    meter = UmMeter(str(link), period=0.02, timeout=0.5)
    r, _ = bounded(lambda: measure(loaded_run(emu, meter), meter, baseline_s=0.5, min_duration_s=8.0,
                                   min_periods=20))
    assert r.partial and "no answer to the 0xF0 request within 0.5 s" in r.partial_reason
    assert r.windows["inferences"][-1][1] - r.windows["run"][0] < 8.0   # stopped when the meter fell silent
    # silent before the baseline ends: a clear error, not a hang
    link2 = tmp_path / "rfcomm3"
    emulators("um25c", link2, "--silent-after", 0)
    with pytest.raises(MeterTimeout, match="before the idle baseline"):
        bounded(lambda: measure(lambda: 1, UmMeter(str(link2), period=0.02, timeout=0.5), baseline_s=0.5,
                                min_duration_s=1.0))


@linux_only
def test_um25c_pty_garbage_frames_skipped_and_counted(emulators, tmp_path):
    link = tmp_path / "rfcomm4"
    emu = emulators("um25c", link, "--garbage-at", 5, "--garbage-at", 40, "--short-at", 50)
    meter = UmMeter(str(link), period=0.02, timeout=1.0)
    r, _ = bounded(lambda: measure(loaded_run(emu, meter), meter, baseline_s=0.5, min_duration_s=1.5,
                                   min_periods=20))
    assert r.garbage == 3 and not r.partial
    assert any("3 undecodable" in n for n in r.notes)
    check_loaded_energy(r)
    # read by read: the damaged answer is a clear MeterGarbage, the next one is fine again
    link2 = tmp_path / "rfcomm5"
    emulators("um25c", link2, "--garbage-at", 1)
    with UmMeter(str(link2), timeout=1.0) as m:
        assert m.read().power_w == pytest.approx(P_IDLE)
        with pytest.raises(MeterGarbage, match="disagree") as e:
            m.read()
        assert "meter um25c" in str(e.value)
        assert m.read().power_w == pytest.approx(P_IDLE)


def test_um25c_absent_port(tmp_path):
    with pytest.raises(MeterAbsent, match="no such port.*rfcomm bind"):
        UmMeter(str(tmp_path / "ttyNOPE")).open()
    with pytest.raises(MeterError, match="needs a serial port"):
        make_meter("um25c")


@linux_only
def test_um24c_scaling_over_pty(emulators, tmp_path):
    link = tmp_path / "rfcomm6"
    emulators("um25c", link, "--model", "um24c", "--volts", 5.12, "--idle-amps", 0.457)
    with open_meter(f"um24c:{link}?timeout=1") as m:
        assert m.read().power_w == pytest.approx(5.12 * 0.457)


# ====================================================================== FNB58 (injected HID transport)


class FakeFnb:
    """A transport speaking the FNB58 report protocol on a simulated clock: 25 data reports/s (100
    samples/s) at 5 V and ``amps`` (mutable), optional bad CRC at some reports, and a disconnect after
    ``drop_after``."""

    def __init__(self, clock, amps=0.4, drop_after=None, bad_crc_at=()):
        self.clock = clock
        self.changes = [(-math.inf, amps)]          # (time, amps from then on)
        self.drop_after, self.bad = drop_after, set(bad_crc_at)
        self.host: list[bytes] = []
        self.n = 0
        self.t0 = None

    def set_amps(self, amps):
        self.changes.append((self.clock.now(), amps))

    def amps_at(self, t):
        return [a for (tc, a) in self.changes if tc <= t][-1]

    def write(self, report):
        assert len(report) == 64 and report[0] == 0xAA
        self.host.append(bytes(report))

    def read(self, timeout):
        if self.t0 is None:
            self.t0 = self.clock.now()
        due = self.t0 + (self.n + 1) * 0.04
        wait = due - self.clock.now()
        if wait > timeout:
            self.clock.sleep(timeout)
            return None
        if wait > 0:
            self.clock.sleep(wait)
        if self.drop_after is not None and self.n >= self.drop_after:
            raise OSError(19, "No such device")
        i, self.n = self.n, self.n + 1
        # the four samples were measured over the last 40 ms, 10 ms apart
        vals = [(5.0, self.amps_at(self.t0 + i * 0.04 + (k + 1) * 0.01)) for k in range(4)]
        return encode_fnb_report(vals, crc=i not in self.bad)

    def close(self):
        pass


def test_fnb58_measure_with_transport():
    clock = SimClock()
    tr = FakeFnb(clock, amps=0.4, bad_crc_at=(10,))
    meter = Fnb58Meter(transport=tr, timeout=1.0, clock=clock)
    state = {"first": True}

    def run_fn():
        if state["first"]:
            tr.set_amps(0.8)
            state["first"] = False
        clock.sleep(0.01)
        return 1

    r, _ = bounded(lambda: measure(run_fn, meter, baseline_s=0.6, min_duration_s=1.5, min_periods=100))
    assert tr.host[:3] == [fnb_request(0x81), fnb_request(0x82), fnb_request(0x83)]
    assert r.garbage == 1 and not r.partial and not r.too_short
    assert r.baseline_power_w == pytest.approx(2.0, abs=1e-9)
    # by hand: 4 W (5 V × 0.8 A) over the window, 2 W above idle. The load starts at the window's first
    # edge, between two samples 10 ms apart, interpolated linearly: less by at most 2 W × 10 ms / 2
    T, N = r.duration_s, r.inferences
    assert N == r.calls and T == pytest.approx(0.01 * N) and 1.5 <= T < 1.511
    edge = 2.0 * 0.01 / 2 + 1e-9
    assert 4.0 * T - edge <= r.energy_j <= 4.0 * T + 1e-9
    assert (2.0 * T - edge) / N <= r.dynamic_per_inference_j <= (2.0 * T + 1e-9) / N
    # 10 ms apart, except where the report with the bad CRC took its four samples with it
    assert r.sample_period_s == pytest.approx(0.01, rel=0.05) and r.sample_period_s > 0.01


def test_fnb58_disconnect_and_absent(tmp_path):
    clock = SimClock()
    tr = FakeFnb(clock, drop_after=40)
    r, _ = bounded(lambda: measure(lambda: clock.sleep(0.01), Fnb58Meter(transport=tr, timeout=1.0, clock=clock),
                                   baseline_s=0.5, min_duration_s=5.0, min_periods=10))
    assert r.partial and "USB link lost" in r.partial_reason
    # the 40 reports span 1.6 s of meter time: the run stopped there, not after the requested 5 s
    assert r.timeline["t"][-1] == pytest.approx(1.6) and r.windows["run"][1] <= 1.6 + 1e-9
    with pytest.raises(MeterAbsent, match="2e3c:5558"):
        Fnb58Meter(hidraw_root=str(tmp_path)).open()
    hid = tmp_path / "hidraw0" / "device"
    hid.mkdir(parents=True)
    (hid / "uevent").write_text("DRIVER=hid-generic\nHID_ID=0003:00002E3C:00005558\nHID_NAME=FNIRSI FNB58\n")
    with pytest.raises(MeterAbsent, match="/dev/hidraw0"):      # found by VID:PID, but no device node here
        Fnb58Meter(hidraw_root=str(tmp_path)).open()


# ======================================================================= recipe edge cases (in-process)


class StepMeter(Meter):
    """A power meter whose reading is a known function of time (for the recipe's edge cases)."""

    name = "step"
    kind = "power"
    resolution_w = 0.001

    def __init__(self, fn, **kw):
        super().__init__(**kw)
        self.fn = fn

    def _read(self):
        t = self.clock.now()
        return Sample(t=t, power_w=self.fn(t))


def test_too_short_run_says_how_long():
    clock = SimClock()
    m = StepMeter(lambda t: 2.0, period=0.05, clock=clock)
    r, _ = bounded(lambda: measure(lambda: clock.sleep(0.01), m, baseline_s=0.2, min_duration_s=0.5))
    assert r.too_short and "at least 100 periods" in r.too_short_reason
    # 100 periods of the sensor's 50 ms, which the sampler kept exactly
    assert "run for at least 5.0 s" in r.too_short_reason and "TOO SHORT" in r.summary()
    assert r.required_duration_s == pytest.approx(5.0) and r.sample_period_s == pytest.approx(0.05)
    assert r.energy_j == pytest.approx(2.0 * r.duration_s, rel=1e-9)
    assert any("shorter than a sensor period" in n for n in r.notes)


def test_model_meter_measures_nothing():
    clock = SimClock()

    def run_fn():
        clock.sleep(0.125)
        return 3

    r, _ = bounded(lambda: measure(run_fn, ModelMeter(clock=clock), baseline_s=5.0, min_duration_s=0.5))
    assert not r.measured and r.energy_j is None
    assert r.calls == 4 and r.inferences == 12 and r.duration_s == 0.5     # 4 calls of 1/8 s reach 0.5 s
    assert "analytical estimate" in r.summary()
    json.dumps(r.as_dict())


def test_sampler_records_and_stops():
    clock = SimClock()
    m = StepMeter(lambda t: 1.5 + t, period=0.01, clock=clock)
    s = Sampler(m).start()
    clock.sleep(0.205)
    tr = s.stop()
    assert tr.error is None and len(tr.samples) == 21          # at 0, 10, ..., 200 ms
    assert [x.t for x in tr.samples] == pytest.approx([0.01 * k for k in range(21)])
    assert [x.power_w for x in tr.samples] == pytest.approx([1.5 + 0.01 * k for k in range(21)])
    assert not s.running and tr.stopped == pytest.approx(0.205)


def test_meter_errors_one_line_and_registry():
    with pytest.raises(MeterAbsent, match="unknown meter 'joulescope'"):
        make_meter("joulescope")
    m = make_meter("rapl?domains=package-0,dram&period=0.02")
    assert m.domains == ["package-0", "dram"] and m.period_s == 0.02
    with pytest.raises(MeterError, match="period must be > 0"):
        make_meter("hwmon?period=0")
    with pytest.raises(MeterError, match="not a number"):
        make_meter("hwmon?timeout=soon")
    with pytest.raises(MeterError, match="takes no target"):
        make_meter("model:/dev/x")
    e = MeterTimeout("no answer\nat all", where="meter x")
    assert "\n" not in str(e) and str(e).startswith("meter x: ")
