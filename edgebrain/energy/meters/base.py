"""The meter interface every power/energy sensor implements, its sample, and its errors.

A :class:`Meter` is opened, read one :class:`Sample` at a time, and closed. A sample carries a
timestamp from the meter's :class:`Clock` (``time.monotonic()`` seconds, unless a test gives the
meter a simulated one, ``Meter(clock=...)``, which its measurement then runs on too) and either an
instantaneous power (``power_w``, meters of kind ``"power"``) or a cumulative energy already
unwrapped since the meter was opened (``energy_j``, meters of kind ``"energy"``), plus per-rail
values. The ``model`` meter (kind
``"none"``) measures nothing.

Every failure is a :class:`MeterError` (an :class:`edgebrain.errors.InputError`, printed by the
CLI as one line) of one of five kinds, so a sampler can tell what to do:

* :class:`MeterAbsent`        the sensor, device or command does not exist here;
* :class:`MeterPermission`    it exists but this user may not read it (the message says how to fix it);
* :class:`MeterGarbage`       one reading could not be decoded (a sampler skips and counts it);
* :class:`MeterTimeout`       it stopped answering within the meter's ``timeout``;
* :class:`MeterDisconnected`  the link went away (port closed, process ended, file vanished).

No read blocks longer than the meter's ``timeout`` (seconds).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from ...errors import InputError


class MeterError(InputError):
    """A power meter cannot be used (absent, not permitted, garbage, silent or gone)."""

    reason = "error"


class MeterAbsent(MeterError):
    reason = "absent"


class MeterPermission(MeterError):
    reason = "permission"


class MeterGarbage(MeterError):
    reason = "garbage"


class MeterTimeout(MeterError):
    reason = "timeout"


class MeterDisconnected(MeterError):
    reason = "disconnected"


class Clock:
    """The time a meter and its measurement run on: monotonic seconds, waits, and the sampler's thread.

    This one is real time. Tests pass a simulated clock with the same methods (tests/energy/_clock.py),
    so that measurements come out the same however loaded the machine is."""

    def now(self) -> float:
        return time.monotonic()

    def wait(self, event: threading.Event | None, seconds: float) -> bool:
        """Wait until ``event`` is set (True) or ``seconds`` have passed (False)."""
        if event is None:
            time.sleep(max(0.0, seconds))
            return False
        return event.wait(max(0.0, seconds))

    def sleep(self, seconds: float) -> None:
        self.wait(None, seconds)

    def start(self, target, name: str) -> threading.Thread:
        """Run ``target`` in a new daemon thread (one that may wait on this clock)."""
        th = threading.Thread(target=target, daemon=True, name=name)
        th.start()
        return th


REAL_CLOCK = Clock()


@dataclass
class Sample:
    """One reading. ``rails`` holds per-rail watts (power meters) or cumulative joules (energy meters)."""

    t: float                               # the meter's clock, seconds (time.monotonic() by default)
    power_w: float | None = None           # instantaneous total power (kind "power")
    energy_j: float | None = None          # cumulative total energy since open, unwrapped (kind "energy")
    rails: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"t": self.t, "power_w": self.power_w, "energy_j": self.energy_j, "rails": dict(self.rails)}


class Meter:
    """Base class of all meters. Subclasses set the class attributes and implement ``_open``,
    ``_read`` and ``_close``.

    * ``name``: the meter's registry name (``rapl``, ``um25c``, ...);
    * ``kind``: ``"power"`` (samples carry watts), ``"energy"`` (cumulative joules) or ``"none"``;
    * ``period_s``: the nominal interval between useful samples (the sensor's update rate, or the
      poll interval a sampler should keep); ``streaming``: ``read()`` itself waits for the next
      sample (the sampler must not add a sleep);
    * ``resolution_w`` / ``resolution_j``: the smallest step of one reading;
    * ``scope``: what the sensor sees (CPU package, module input rail, USB port, ...).
    """

    name = "meter"
    kind = "power"
    streaming = False
    period_s = 0.1
    resolution_w = 0.0
    resolution_j = 0.0
    scope = ""

    def __init__(self, *, timeout: float = 2.0, period: float | None = None, clock: Clock | None = None):
        self.timeout = float(timeout)
        self.clock = clock or REAL_CLOCK
        if period is not None:
            if not period > 0:
                raise MeterError(f"meter {self.name}: period must be > 0 seconds, got {period}")
            self.period_s = float(period)
        self.is_open = False
        self.target = ""               # the path, port or command, for messages

    # -- lifecycle
    def open(self) -> "Meter":
        if not self.is_open:
            self._open()
            self.is_open = True
        return self

    def close(self) -> None:
        if self.is_open:
            self.is_open = False
            self._close()

    def __enter__(self):
        return self.open()

    def __exit__(self, *exc):
        self.close()

    # -- reading
    def read(self) -> Sample:
        """One sample; raises a :class:`MeterError` (never blocks longer than ``timeout``)."""
        if not self.is_open:
            self.open()
        return self._read()

    @property
    def rate_hz(self) -> float:
        return 1.0 / self.period_s

    def describe(self) -> dict:
        return {"name": self.name, "kind": self.kind, "target": self.target, "scope": self.scope,
                "period_s": self.period_s, "rate_hz": self.rate_hz,
                "resolution_w": self.resolution_w, "resolution_j": self.resolution_j}

    def error(self, cls: type[MeterError], message: str) -> MeterError:
        """An error of class ``cls`` prefixed with the meter's name and target."""
        where = f"meter {self.name}" + (f" ({self.target})" if self.target else "")
        return cls(message, where=where)

    # -- to implement
    def _open(self) -> None:
        pass

    def _read(self) -> Sample:  # pragma: no cover - abstract
        raise NotImplementedError

    def _close(self) -> None:
        pass


def now() -> float:
    """Real monotonic seconds (a meter's default :class:`Clock`)."""
    return time.monotonic()


class Counter:
    """Unwraps a cumulative hardware counter that wraps at ``wrap`` (e.g. RAPL's
    ``max_energy_range_uj``): the total grows by ``cur - prev``, plus ``wrap`` when that is negative.
    Only one wrap between two reads can be detected; read more often than the counter's wrap time."""

    def __init__(self, wrap: float | None):
        self.wrap = wrap
        self.prev: float | None = None
        self.total = 0.0
        self.wraps = 0

    def update(self, value: float) -> float:
        if self.prev is not None:
            self.total += counter_delta(self.prev, value, self.wrap)
            if value < self.prev:
                self.wraps += 1
        self.prev = value
        return self.total


def counter_delta(prev: float, cur: float, wrap: float | None) -> float:
    """``cur - prev`` for a counter that wraps at ``wrap`` (one wrap at most)."""
    d = cur - prev
    if d < 0:
        if not wrap:
            raise MeterGarbage(f"counter went backwards ({prev} -> {cur}) and its wrap range is unknown")
        d += wrap
    return d
