"""Emulate power meters for tests/test_meters.py (run as a separate process).

    python tests/energy/_meter_emulator.py um25c PATH [--model um25c] [--volts 5.0] [--idle-amps 0.24]
           [--load-amps 0.6] [--drop-after N] [--silent-after N] [--garbage-at K ...] [--short-at K ...]
    python tests/energy/_meter_emulator.py tegrastats [--dialect jp4|jp6|xavier] [--interval MS] [--count N]
           [--garbage-at K ...]
    python tests/energy/_meter_emulator.py pmic [--fail registered|vchiq] [--sleep S]

``um25c``: creates a pseudo-terminal pair (raw mode), links PATH to the slave and prints ``ready``;
then answers every 0xF0 request byte with a 130-byte UM frame (big-endian, the model's scaling)
at ``--volts`` and the current level, which starts at ``--idle-amps``. A line ``load`` (or
``idle``) on stdin switches the current to ``--load-amps`` (``--idle-amps``) and prints ``ok N``
(N: frames sent so far) once switched. Damage, by request number (0-based): ``--garbage-at``
answers with 130 bytes whose fields disagree, ``--short-at`` with 60 bytes only, ``--silent-after``
stops answering (the port stays open), ``--drop-after`` closes the port and exits (a meter that
disconnects).

``tegrastats``: prints tegrastats lines of the dialect every ``--interval`` ms, with the input rail
at 1000 + 10·i mW for line i, ``--count`` lines, then exits (``--garbage-at``: a line without rails).

``pmic``: prints the output of ``vcgencmd pmic_read_adc`` on a Raspberry Pi 5 (or fails like a
Pi 4 does, or like a user outside group video).
"""

from __future__ import annotations

import argparse
import os
import random
import select
import struct
import sys
import threading
import time
import tty

SCALE = {"um24c": (100.0, 1000.0), "um25c": (1000.0, 10000.0), "um34c": (100.0, 1000.0)}
MARKER = {"um24c": 0x0963, "um25c": 0x09C9, "um34c": 0x0D4C}


def um_frame(model, volts, amps, temp_c=27):
    """The 130-byte frame, built field by field from the documented layout (big-endian)."""
    vdiv, adiv = SCALE[model]
    v, a = int(round(volts * vdiv)), int(round(amps * adiv))
    f = bytearray(130)
    struct.pack_into(">H", f, 0, MARKER[model])
    struct.pack_into(">H", f, 2, v)                                   # voltage
    struct.pack_into(">H", f, 4, a)                                   # current
    struct.pack_into(">I", f, 6, int(round(v / vdiv * a / adiv * 1000)))   # power, mW
    struct.pack_into(">H", f, 10, temp_c)
    struct.pack_into(">H", f, 12, int(temp_c * 9 / 5 + 32))
    for g in range(10):                                               # data groups: mAh, mWh
        struct.pack_into(">II", f, 16 + 8 * g, 10 * g, 50 * g)
    struct.pack_into(">HH", f, 96, 60, 62)                            # D+ / D-
    struct.pack_into(">I", f, 122, int(volts / max(amps, 1e-3) * 10))  # load resistance
    struct.pack_into(">H", f, 128, 0xFFF1)
    return bytes(f)


def garbage_frame(rng):
    f = bytearray(rng.getrandbits(8) for _ in range(130))
    struct.pack_into(">HHHI", f, 0, 0x1234, 5000, 10000, 999999)      # 5 V × 1 A ≠ 999.999 W
    return bytes(f)


def run_um(a):
    rng = random.Random(3)
    master, slave = os.openpty()
    tty.setraw(slave)
    tmp = a.target + ".tmp"
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(os.ttyname(slave), tmp)
    os.replace(tmp, a.target)
    state = {"amps": a.idle_amps, "sent": 0}
    lock = threading.Lock()

    def commands():
        for line in sys.stdin:
            cmd = line.strip()
            with lock:
                if cmd == "load":
                    state["amps"] = a.load_amps
                elif cmd == "idle":
                    state["amps"] = a.idle_amps
                else:
                    continue
                print("ok", state["sent"], flush=True)

    threading.Thread(target=commands, daemon=True).start()
    print("ready", flush=True)
    n = 0
    while True:
        r, _, _ = select.select([master], [], [], 0.2)
        if not r:
            continue
        try:
            data = os.read(master, 64)
        except OSError:
            data = b""
        if not data:
            time.sleep(0.01)
            continue
        for byte in data:
            if byte != 0xF0:
                continue
            i, n = n, n + 1
            if a.drop_after is not None and i >= a.drop_after:
                print("dropped", i, flush=True)
                os.close(master)
                os.close(slave)
                os.unlink(a.target)
                sys.exit(0)
            if a.silent_after is not None and i >= a.silent_after:
                continue
            if i in a.garbage_at:
                out = garbage_frame(rng)
            elif i in a.short_at:
                out = um_frame(a.model, a.volts, state["amps"])[:60]
            else:
                with lock:
                    amps = state["amps"]
                    out = um_frame(a.model, a.volts, amps)
                    state["sent"] += 1
            while out:
                out = out[os.write(master, out):]


JP4 = ("RAM 534/3964MB (lfb 585x4MB) SWAP 0/1982MB (cached 0MB) IRAM 0/252kB(lfb 252kB) "
       "CPU [16%@204,9%@204,8%@204,6%@204] EMC_FREQ 0%@1600 GR3D_FREQ 0%@76 APE 25 PLL@21C CPU@23.5C "
       "PMIC@100C GPU@22C AO@29.5C thermal@22.75C POM_5V_IN {p}/{avg} POM_5V_GPU 0/0 POM_5V_CPU 204/204")
JP6 = ("08-23-2026 13:57:46 RAM 3595/7607MB (lfb 2x4MB) SWAP 0/3804MB (cached 0MB) "
       "CPU [2%@729,1%@729,0%@729,0%@729,off,off] GR3D_FREQ 7%@[306] cpu@47.75C soc2@46.5C soc0@46.343C "
       "gpu@47.343C tj@47.75C soc1@46.062C VDD_IN {p}mW/{avg}mW VDD_CPU_GPU_CV 1307mW/1327mW VDD_SOC 1468mW/1468mW")
XAVIER = ("RAM 1520/15692MB (lfb 3179x4MB) SWAP 0/7846MB (cached 0MB) CPU [1%@1190,0%@1190,0%@1190,0%@1190,"
          "off,off,off,off] EMC_FREQ 0% GR3D_FREQ 0% AO@34C GPU@35C Tdiode@38C PMIC@100C AUX@34C CPU@36C "
          "thermal@35.1C Tboard@35C GPU {p}/{avg} CPU 385/385 SOC 2504/2503 CV 0/0 VDDRQ 192/192 SYS5V 2692/2692")


def run_tegrastats(a):
    fmt = {"jp4": JP4, "jp6": JP6, "xavier": XAVIER}[a.dialect]
    t0 = time.perf_counter()
    for i in range(a.count):
        d = t0 + i * a.interval / 1000.0 - time.perf_counter()
        if d > 0:
            time.sleep(d)
        if i in a.garbage_at:
            print("RAM 534/3964MB (lfb 585x4MB) SWAP 0/1982MB garbled", flush=True)
        print(fmt.format(p=1000 + 10 * i, avg=1000 + 5 * i), flush=True)


PMIC = """\
 3V7_WL_SW_A current(0)=0.00390372A
   3V3_SYS_A current(1)=0.05562810A
   1V8_SYS_A current(2)=0.17275270A
  DDR_VDD2_A current(3)=0.02049451A
  DDR_VDDQ_A current(4)=0.00000000A
   1V1_SYS_A current(5)=0.18249690A
   0V8_SW_A current(6)=0.31620960A
  VDD_CORE_A current(7)=0.60000000A
   3V3_DAC_A current(17)=0.00006105A
   3V3_ADC_A current(18)=0.00054945A
   0V8_AON_A current(16)=0.00469800A
      HDMI_A current(22)=0.02344320A
 3V7_WL_SW_V volt(8)=3.74429300V
   3V3_SYS_V volt(9)=3.31440500V
   1V8_SYS_V volt(10)=1.79926600V
  DDR_VDD2_V volt(11)=1.11220700V
  DDR_VDDQ_V volt(12)=0.60622400V
   1V1_SYS_V volt(13)=1.10634600V
   0V8_SW_V volt(14)=0.80220600V
  VDD_CORE_V volt(15)=0.80000000V
   3V3_DAC_V volt(20)=3.30622100V
   3V3_ADC_V volt(21)=3.30622100V
   0V8_AON_V volt(19)=0.80396400V
      HDMI_V volt(23)=5.15490000V
     EXT5V_V volt(24)=5.09066000V
      BATT_V volt(25)=0.00000000V
"""


def run_pmic(a):
    if a.sleep:
        time.sleep(a.sleep)
    if a.fail == "registered":
        print('error=1 error_msg="Command not registered"')
        sys.exit(255)
    if a.fail == "vchiq":
        print("VCHI initialization failed", file=sys.stderr)
        print("* failed to open vchiq instance", file=sys.stderr)
        sys.exit(255)
    sys.stdout.write(PMIC)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="kind", required=True)
    u = sub.add_parser("um25c")
    u.add_argument("target")
    u.add_argument("--model", default="um25c", choices=sorted(SCALE))
    u.add_argument("--volts", type=float, default=5.0)
    u.add_argument("--idle-amps", type=float, default=0.24)
    u.add_argument("--load-amps", type=float, default=0.6)
    u.add_argument("--drop-after", type=int, default=None)
    u.add_argument("--silent-after", type=int, default=None)
    u.add_argument("--garbage-at", type=int, action="append", default=[])
    u.add_argument("--short-at", type=int, action="append", default=[])
    t = sub.add_parser("tegrastats")
    t.add_argument("--dialect", default="jp6", choices=["jp4", "jp6", "xavier"])
    t.add_argument("--interval", type=float, default=20.0)
    t.add_argument("--count", type=int, default=10)
    t.add_argument("--garbage-at", type=int, action="append", default=[])
    p = sub.add_parser("pmic")
    p.add_argument("--fail", default=None)
    p.add_argument("--sleep", type=float, default=0.0)
    a = ap.parse_args()
    {"um25c": run_um, "tegrastats": run_tegrastats, "pmic": run_pmic}[a.kind](a)


if __name__ == "__main__":
    main()
