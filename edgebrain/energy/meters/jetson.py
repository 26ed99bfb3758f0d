"""NVIDIA Jetson power rails (TI INA3221 monitors): ``ina3221`` (sysfs) and ``tegrastats`` (its output).

``ina3221`` reads the sensors directly, in either layout:

* JetPack 5/6 (hwmon driver ``ina3221``)::

      <root>/ina3221/<bus>-0040/hwmon/hwmon*/in{1,2,3}_label    VDD_IN, VDD_CPU_GPU_CV, VDD_SOC (Orin)
                                          /in{1,2,3}_input    bus voltage, mV
                                          /curr{1,2,3}_input  current, mA

* JetPack 4 (IIO driver ``ina3221x``)::

      <root>/ina3221x/<bus>-0040/iio:device*/rail_name_<N>         POM_5V_IN, POM_5V_GPU, POM_5V_CPU (Nano)
                                            /in_power<N>_input      mW
                                            /in_voltage<N>_input    mV
                                            /in_current<N>_input    mA

``<root>`` is ``/sys/bus/i2c/drivers``. Channels whose name contains ``NC`` (not connected) and the
sum channels (``in7``, ``curr4``) are skipped. The total is the module input rail (``VDD_IN`` or
``POM_5V_IN``) when there is one, else the sum of the rails. These rails measure the *module*, not
the carrier board.

``tegrastats`` parses the lines the ``tegrastats`` utility prints (``NAME cur/avg`` in mW, with a
``mW`` suffix since JetPack 5), from a ``tegrastats --interval <ms>`` process it starts or from a
stream it is given. Only the instantaneous value (``cur``) is used; the running average is not
time-weighted.
"""

from __future__ import annotations

import os
import queue
import re
import subprocess
import threading
from pathlib import Path
from typing import IO, Iterable

from .base import Meter, MeterAbsent, MeterDisconnected, MeterError, MeterGarbage, MeterTimeout, Sample
from .hwmon import Channel, hwmon_channels, read_text

DEFAULT_ROOT = "/sys/bus/i2c/drivers"
TOTAL_RAILS = ("VDD_IN", "POM_5V_IN")


def _skip(label: str) -> bool:
    return "NC" in label.upper().split("_") or label.upper() == "NC" or label.upper().startswith("NC ")


def _total(rails: dict[str, float]) -> float:
    for name in TOTAL_RAILS:
        if name in rails:
            return rails[name]
    return sum(rails.values())


class Ina3221Meter(Meter):
    name = "ina3221"
    kind = "power"
    period_s = 0.01          # bounded by the driver's update_interval (read when exposed)
    resolution_w = 1e-3
    scope = "Jetson module rails (INA3221)"

    def __init__(self, root: str | os.PathLike = DEFAULT_ROOT, **kw):
        super().__init__(**kw)
        self.root = Path(root)
        self.target = str(self.root)
        self.channels: list[Channel] = []
        self.layout = ""

    def _open(self) -> None:
        chans: list[Channel] = []
        interval = None
        jp4 = self.root / "ina3221x"
        jp5 = self.root / "ina3221"
        if jp4.is_dir():        # JetPack 4: IIO devices
            for dev in sorted(jp4.glob("*/iio:device*")):
                for f in sorted(dev.glob("rail_name_*")):
                    n = f.name.rsplit("_", 1)[1]
                    try:
                        label = read_text(f)
                    except OSError:
                        continue
                    if _skip(label) or not (dev / f"in_power{n}_input").exists():
                        continue
                    chans.append(Channel(label, power=dev / f"in_power{n}_input", power_scale=1e-3))
            self.layout = "JetPack 4 (ina3221x IIO)"
        if not chans and jp5.is_dir():   # JetPack 5/6: hwmon
            for dev in sorted(jp5.glob("*/hwmon/hwmon*")):
                cs = [c for c in hwmon_channels(dev, skip=_skip) if c.power is not None or
                      int(re.sub(r"\D", "", c.curr.name) or 0) <= 3]
                chans.extend(cs)
                if (dev / "update_interval").exists():
                    try:
                        interval = max(interval or 0.0, float(read_text(dev / "update_interval")) / 1000.0)
                    except (OSError, ValueError):
                        pass
            self.layout = "JetPack 5/6 (ina3221 hwmon)"
        if not chans:
            raise self.error(MeterAbsent, f"no INA3221 rails under {self.root} (looked for ina3221x/*/iio:device*/"
                                          "rail_name_* and ina3221/*/hwmon/hwmon*/in*_label): not a Jetson?")
        self.channels = chans
        if interval:
            self.period_s = max(self.period_s, interval)
        self._read()

    def _read(self) -> Sample:
        t = self.clock.now()
        rails = {c.label: c.read(self) for c in self.channels}
        return Sample(t=t, power_w=_total(rails), rails=rails)


# ------------------------------------------------------------------------------------------ tegrastats

_POWER = re.compile(r"\b([A-Za-z_][A-Za-z0-9_]*) ([0-9.]+)/([0-9.]+)\b")
_NOT_POWER = {"RAM", "SWAP", "IRAM", "LFB", "lfb"}


def parse_tegrastats(line: str) -> dict[str, float]:
    """The power rails of one tegrastats line: ``{rail: instantaneous watts}`` (empty: no rails).

    Handles the JetPack 4 form ``POM_5V_IN 1022/1022`` (mW, no unit), the JetPack 5/6 form
    ``VDD_IN 5832mW/5852mW`` and the short AGX Xavier names (``GPU 1155/1155``)."""
    s = line.replace("mW", "")
    out = {}
    for m in _POWER.finditer(s):
        name = m.group(1)
        if name in _NOT_POWER or _skip(name):
            continue
        try:
            out[name] = float(m.group(2)) / 1000.0
        except ValueError:
            continue
    return out


class TegrastatsMeter(Meter):
    name = "tegrastats"
    kind = "power"
    streaming = True
    period_s = 0.1
    resolution_w = 1e-3
    scope = "Jetson module rails (tegrastats)"

    def __init__(self, stream: IO[str] | Iterable[str] | None = None, command: list[str] | None = None,
                 interval_ms: int | None = None, **kw):
        super().__init__(**kw)
        if interval_ms is not None:
            self.period_s = interval_ms / 1000.0
        self.stream = stream
        self.command = command
        self.proc = None
        self.q: queue.Queue = queue.Queue()
        self.thread = None
        self.target = "stream" if stream is not None else " ".join(self._command())

    def _command(self) -> list[str]:
        if self.command is not None:
            return list(self.command)
        return ["tegrastats", "--interval", str(max(1, int(round(self.period_s * 1000))))]

    def _open(self) -> None:
        src = self.stream
        if src is None:
            try:
                self.proc = subprocess.Popen(self._command(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                             stdin=subprocess.DEVNULL, text=True, errors="replace", bufsize=1)
            except FileNotFoundError:
                raise self.error(MeterAbsent, f"{self._command()[0]} not found (not a Jetson, or not on PATH)") \
                    from None
            except PermissionError:
                raise self.error(MeterAbsent, f"cannot run {self._command()[0]}: permission denied") from None
            src = self.proc.stdout
        self.q = queue.Queue()
        self.thread = threading.Thread(target=self._pump, args=(src,), daemon=True, name="tegrastats-reader")
        self.thread.start()

    def _pump(self, src) -> None:
        q = self.q
        try:
            for line in src:
                t = self.clock.now()
                if not line.strip():
                    continue
                rails = parse_tegrastats(line)
                q.put(Sample(t=t, power_w=_total(rails), rails=rails) if rails else ("garbage", line))
        except (OSError, ValueError) as e:
            q.put(("gone", str(e)))
            return
        q.put(("gone", "end of output"))

    def _read(self) -> Sample:
        try:
            item = self.q.get(timeout=self.timeout)
        except queue.Empty:
            raise self.error(MeterTimeout, f"no tegrastats line within {self.timeout:g} s") from None
        if isinstance(item, Sample):
            return item
        kind, text = item
        if kind == "garbage":
            raise self.error(MeterGarbage, f"no power rails in line {text.strip()[:80]!r}")
        self.q.put(item)   # stay disconnected for later reads
        rc = self.proc.poll() if self.proc is not None else None
        extra = f" (exit status {rc})" if rc is not None else ""
        raise self.error(MeterDisconnected, f"tegrastats stopped: {text}{extra}")

    def _close(self) -> None:
        p, self.proc = self.proc, None
        if p is not None:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(2)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(2)
            if p.stdout is not None:
                try:
                    p.stdout.close()
                except OSError:
                    pass
        if self.thread is not None:
            self.thread.join(1.0)


__all__ = ["Ina3221Meter", "TegrastatsMeter", "parse_tegrastats", "MeterError"]
