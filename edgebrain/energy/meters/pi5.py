"""``pi5-pmic``: Raspberry Pi 5 power from the PMIC's ADC, read with ``vcgencmd pmic_read_adc``.

The command prints one line per channel, currents first, then voltages::

       VDD_CORE_A current(7)=6.22421000A
      VDD_CORE_V volt(15)=0.86173300V
         EXT5V_V volt(24)=5.09066000V

Rails are paired by **name** (``VDD_CORE_A`` with ``VDD_CORE_V``), never by the index in
parentheses (they differ). Voltages without a current (``EXT5V_V``, ``BATT_V``) are left out.
The total is Σ V·I over the paired rails -- the on-board rails only: it under-reads wall power
(no USB/peripheral 5 V current, no PMIC conversion loss).

Each sample spawns the command (about 10 Hz at best; faster sampling slows the workload).
``command`` may be a list (argv) or a callable returning the output text, for tests.
"""

from __future__ import annotations

import re
import subprocess
from typing import Callable

from .base import Meter, MeterAbsent, MeterGarbage, MeterPermission, MeterTimeout, Sample

_LINE = re.compile(r"^\s*(\S+)_([AV])\s+(?:current|volt)\(\d+\)=\s*([-+0-9.eE]+)\s*[AV]\s*$")


def parse_pmic_read_adc(text: str) -> dict[str, tuple[float, float]]:
    """``{rail: (volts, amps)}`` for the rails that have both a voltage and a current line.

    Raises :class:`MeterGarbage` when no line has the expected form."""
    volts, amps, seen = {}, {}, 0
    for line in text.splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        seen += 1
        rail, kind, value = m.group(1), m.group(2), float(m.group(3))
        (amps if kind == "A" else volts)[rail] = value
    if not seen:
        first = text.strip().splitlines()[0][:80] if text.strip() else "(nothing)"
        raise MeterGarbage(f"pmic_read_adc output has no 'NAME_A current(N)=xA' / 'NAME_V volt(N)=xV' lines; "
                           f"got {first!r}")
    return {r: (volts[r], amps[r]) for r in amps if r in volts}


class Pi5PmicMeter(Meter):
    name = "pi5-pmic"
    kind = "power"
    period_s = 0.1
    resolution_w = 1e-3
    scope = "Raspberry Pi 5 on-board PMIC rails (excludes USB/peripheral 5 V and conversion losses)"

    def __init__(self, command: list[str] | Callable[[], str] | None = None, **kw):
        super().__init__(**kw)
        self.command = command if command is not None else ["vcgencmd", "pmic_read_adc"]
        self.target = "callable" if callable(self.command) else " ".join(self.command)

    def _open(self) -> None:
        self._read()

    def _run(self) -> str:
        if callable(self.command):
            return self.command()
        try:
            r = subprocess.run(self.command, capture_output=True, text=True, errors="replace",
                               timeout=self.timeout, stdin=subprocess.DEVNULL)
        except FileNotFoundError:
            raise self.error(MeterAbsent, f"{self.command[0]} not found (not a Raspberry Pi, or the "
                                          "raspi-utils package is missing)") from None
        except PermissionError:
            raise self.error(MeterPermission, f"cannot run {self.command[0]}: permission denied") from None
        except subprocess.TimeoutExpired:
            raise self.error(MeterTimeout, f"no answer within {self.timeout:g} s") from None
        text = r.stdout + r.stderr
        low = text.lower()
        if "not registered" in low or "unknown command" in low:
            raise self.error(MeterAbsent, "pmic_read_adc is not available: only the Raspberry Pi 5 has it "
                                          f"({text.strip()[:80]!r})")
        if "permission" in low or "vchiq" in low or "/dev/vcio" in low:
            raise self.error(MeterPermission, "vcgencmd may not access the VideoCore: add the user to group "
                                              f"`video` (sudo usermod -aG video $USER) ({text.strip()[:80]!r})")
        if r.returncode != 0 and not r.stdout.strip():
            raise self.error(MeterAbsent, f"{self.target} failed with status {r.returncode}: {text.strip()[:80]!r}")
        return r.stdout

    def _read(self) -> Sample:
        t = self.clock.now()
        text = self._run()
        try:
            pairs = parse_pmic_read_adc(text)
        except MeterGarbage as e:
            raise self.error(MeterGarbage, e.detail) from None
        if not pairs:
            raise self.error(MeterGarbage, "pmic_read_adc printed no rail with both a current and a voltage")
        rails = {r: v * a for r, (v, a) in pairs.items()}
        return Sample(t=t, power_w=sum(rails.values()), rails=rails)
