"""``hwmon``: power sensors exposed through the Linux hwmon ABI (``Documentation/hwmon/sysfs-interface``).

    /sys/class/hwmon/hwmon*/name             the driver (ina219, ina226, ina260, ina3221, ...)
                           /power<N>_input    instantaneous power, µW
                           /in<N>_input       voltage, mV        (used with curr<N>_input when a
                           /curr<N>_input     current, mA         device has no power<N>_input)
                           /<x><N>_label      the rail name, when the driver provides one
                           /update_interval   ms between sensor updates (when exposed)

Every hwmon device with a ``power*_input`` (or a matching ``curr<N>``/``in<N>`` pair) is used unless
``device=`` names one (by its ``name`` file or directory). Never rely on the ``hwmonN`` number:
it changes across boots. The total is the sum of the channels (pass ``channels=`` to choose rails).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .base import Meter, MeterAbsent, MeterDisconnected, MeterGarbage, MeterPermission, Sample

DEFAULT_ROOT = "/sys/class/hwmon"


def read_text(path: Path) -> str:
    """The stripped text of a small sysfs file (a number, a label); OSError as open() raises it."""
    with open(path) as f:
        return f.read().strip()


class Channel:
    """One rail: either ``power`` (µW file) or ``volt`` (mV) × ``curr`` (mA)."""

    def __init__(self, label: str, power: Path | None = None, volt: Path | None = None, curr: Path | None = None,
                 power_scale: float = 1e-6):
        self.label, self.power, self.volt, self.curr, self.power_scale = label, power, volt, curr, power_scale

    def read(self, meter: Meter) -> float:
        if self.power is not None:
            return _read_number(meter, self.power) * self.power_scale
        return _read_number(meter, self.volt) * 1e-3 * _read_number(meter, self.curr) * 1e-3


def _read_number(meter: Meter, path: Path) -> float:
    try:
        text = read_text(path)
    except PermissionError:
        raise meter.error(MeterPermission, f"permission denied reading {path}: make it readable "
                                           "(chmod, or a udev rule) or run as root") from None
    except FileNotFoundError:
        raise meter.error(MeterDisconnected, f"{path} vanished (device removed?)") from None
    except OSError as e:   # e.g. EIO/ENXIO from a sensor that stopped answering on the bus
        raise meter.error(MeterDisconnected, f"cannot read {path}: {e}") from None
    try:
        return float(int(text))
    except ValueError:
        try:
            return float(text)
        except ValueError:
            raise meter.error(MeterGarbage, f"{path} holds {text[:40]!r}, not a number") from None


def hwmon_channels(d: Path, skip=lambda label: False) -> list[Channel]:
    """The power channels of one hwmon device directory: ``power<N>_input`` when present, otherwise
    ``in<N>_input`` × ``curr<N>_input`` pairs (same N), labelled by ``*_label`` when present."""

    def label(prefixes, n):
        for p in prefixes:
            f = d / f"{p}{n}_label"
            if f.exists():
                try:
                    return read_text(f)
                except OSError:
                    pass
        return None

    names = os.listdir(d)
    out = []
    power = sorted(int(m.group(1)) for m in (re.match(r"^power(\d+)_input$", n) for n in names) if m)
    if power:
        for n in power:
            lab = label(["power", "in", "curr"], n) or f"power{n}"
            if not skip(lab):
                out.append(Channel(lab, power=d / f"power{n}_input"))
        return out
    curr = sorted(int(m.group(1)) for m in (re.match(r"^curr(\d+)_input$", n) for n in names) if m)
    for n in curr:
        if f"in{n}_input" not in names:
            continue
        lab = label(["in", "curr"], n) or f"rail{n}"
        if not skip(lab):
            out.append(Channel(lab, volt=d / f"in{n}_input", curr=d / f"curr{n}_input"))
    return out


class HwmonMeter(Meter):
    name = "hwmon"
    kind = "power"
    period_s = 0.01
    resolution_w = 1e-3          # typical INA2xx power LSB is mW-level; refined nowhere (driver-specific)
    scope = "hwmon power sensor"

    def __init__(self, root: str | os.PathLike = DEFAULT_ROOT, device: str | None = None,
                 channels: list[str] | str | None = None, **kw):
        super().__init__(**kw)
        self.root = Path(root)
        self.device = device
        if isinstance(channels, str):
            channels = [c for c in channels.split(",") if c]
        self.want = channels
        self.channels: list[Channel] = []
        self.target = str(self.root)

    def _open(self) -> None:
        if not self.root.is_dir():
            raise self.error(MeterAbsent, f"no hwmon sysfs at {self.root}")
        found, chans, interval = [], [], None
        for d in sorted(self.root.iterdir(), key=lambda p: p.name):
            if not d.is_dir():
                continue
            try:
                dev = read_text(d / "name")
            except OSError:
                dev = d.name
            found.append(dev)
            if self.device and self.device not in (dev, d.name):
                continue
            cs = hwmon_channels(d)
            for c in cs:
                c.label = f"{dev}:{c.label}" if len(cs) > 1 or not self.device else c.label
            chans.extend(cs)
            if cs and (d / "update_interval").exists():
                try:
                    interval = max(interval or 0.0, float(read_text(d / "update_interval")) / 1000.0)
                except (OSError, ValueError):
                    pass
        if self.want:
            chans = [c for c in chans if c.label in self.want or c.label.split(":", 1)[-1] in self.want]
        if not chans:
            what = f" named {self.device!r}" if self.device else ""
            raise self.error(MeterAbsent, f"no hwmon device{what} with power*_input or curr*/in* pairs "
                                          f"(devices found: {', '.join(found) or 'none'}); for an INA219/226 on "
                                          "I2C, load the ina2xx driver (new_device or a device-tree overlay)")
        self.channels = chans
        if interval:
            self.period_s = max(self.period_s, interval)
        self.scope = "hwmon " + "+".join(c.label for c in chans)
        self._read()

    def _read(self) -> Sample:
        t = self.clock.now()
        rails = {c.label: c.read(self) for c in self.channels}
        return Sample(t=t, power_w=sum(rails.values()), rails=rails)
