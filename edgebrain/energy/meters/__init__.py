"""Power and energy meters: one module per family, one :class:`Meter` interface.

    =============  ==========================================================  =========  ==========
    name           what it reads                                               kind       nominal Hz
    =============  ==========================================================  =========  ==========
    rapl           /sys/class/powercap/intel-rapl:*/energy_uj (x86 CPU)        energy     100 (poll)
    hwmon          /sys/class/hwmon/hwmon*/power*_input (INA219/226/260 ...)   power      100
    ina3221        Jetson INA3221 sysfs (JetPack 4 IIO or JetPack 5/6 hwmon)   power      100
    tegrastats     lines of a ``tegrastats --interval N`` process or a stream  power      10
    pi5-pmic       ``vcgencmd pmic_read_adc`` (Raspberry Pi 5)                 power      10
    um25c          RDTech UM24C/UM25C/UM34C over serial (0xF0 → 130 bytes)     power      2
    fnb58          FNIRSI FNB48/FNB58/C1 over USB HID (64-byte reports)        power      100
    model          no sensor                                                   none       --
    =============  ==========================================================  =========  ==========

:func:`open_meter` builds and opens one by name (options as keyword arguments), or from a spec
string ``NAME[:TARGET][?key=value&...]`` such as ``um25c:/dev/rfcomm0?period=1`` or
``rapl?domains=package-0,dram`` (the target is the meter's port, path or root).
"""

from __future__ import annotations

import urllib.parse

from .base import (Counter, Meter, MeterAbsent, MeterDisconnected, MeterError, MeterGarbage, MeterPermission,
                   MeterTimeout, Sample, counter_delta)
from .hwmon import HwmonMeter
from .jetson import Ina3221Meter, TegrastatsMeter, parse_tegrastats
from .model import ModelMeter
from .pi5 import Pi5PmicMeter, parse_pmic_read_adc
from .rapl import RaplMeter
from .usbmeter import Fnb58Meter, UmMeter, decode_fnb_report, decode_um_frame

METERS = {
    "rapl": RaplMeter,
    "hwmon": HwmonMeter,
    "ina3221": Ina3221Meter,
    "tegrastats": TegrastatsMeter,
    "pi5-pmic": Pi5PmicMeter,
    "um25c": UmMeter,
    "um24c": UmMeter,
    "um34c": UmMeter,
    "fnb58": Fnb58Meter,
    "model": ModelMeter,
}

#: the keyword the spec's TARGET fills, per meter
_TARGET = {"rapl": "root", "hwmon": "root", "ina3221": "root", "tegrastats": "command", "pi5-pmic": "command",
           "um25c": "port", "um24c": "port", "um34c": "port", "fnb58": "path", "model": None}
_FLOATS = {"timeout", "period", "keepalive_s"}
_INTS = {"baud", "interval_ms"}


def meter_names() -> list[str]:
    return list(METERS)


def make_meter(name: str, **options) -> Meter:
    """A meter by name, not yet opened."""
    head, _, query = str(name).partition("?")
    name, _, target = head.partition(":")
    for k, vs in urllib.parse.parse_qs(query).items():
        v = vs[-1]
        try:
            options.setdefault(k, float(v) if k in _FLOATS else int(v) if k in _INTS else v)
        except ValueError:
            raise MeterError(f"meter {name}: option {k}={v!r} is not a number") from None
    key = _TARGET.get(name.lower())
    if target and key:
        options.setdefault(key, target.split() if key == "command" else target)
    elif target:
        raise MeterError(f"meter {name} takes no target (got {target!r})")
    name = name.lower()
    if name not in METERS:
        raise MeterAbsent(f"unknown meter {name!r}; expected one of {', '.join(METERS)}")
    if name in ("um24c", "um34c"):
        options.setdefault("model", name)
    if name in ("um25c", "um24c", "um34c") and "port" not in options:
        raise MeterError(f"meter {name} needs a serial port, e.g. {name}:/dev/rfcomm0")
    try:
        return METERS[name](**options)
    except TypeError as e:
        raise MeterError(f"meter {name}: bad option ({e})") from None


def open_meter(name: str, **options) -> Meter:
    """A meter by name or spec, opened (raises a :class:`MeterError` saying why it cannot be used)."""
    return make_meter(name, **options).open()


__all__ = ["Meter", "Sample", "MeterError", "MeterAbsent", "MeterPermission", "MeterGarbage", "MeterTimeout",
           "MeterDisconnected", "Counter", "counter_delta", "METERS", "meter_names", "make_meter", "open_meter",
           "RaplMeter", "HwmonMeter", "Ina3221Meter", "TegrastatsMeter", "Pi5PmicMeter", "UmMeter", "Fnb58Meter",
           "ModelMeter", "parse_tegrastats", "parse_pmic_read_adc", "decode_um_frame", "decode_fnb_report"]
