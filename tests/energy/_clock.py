"""A simulated clock for measurements: the same results however loaded the machine is.

``SimClock`` has the methods of :class:`edgebrain.energy.meters.base.Clock`. Time stands still
while any participating thread runs, and jumps to the earliest wake-up when all of them wait on the
clock: a discrete-event simulation over real threads. A participant is a thread started with
:meth:`SimClock.start` (the sampler), the thread that started it (the measuring thread), or one
that has waited on the clock; one that has ended no longer counts. So a sample's time stamp, the workload's calls and the power
profile a fake meter reads all come from one timeline that no scheduling delay can shift.

``on_advance`` hooks run with the new time at each jump, while no participant runs: a fake sensor
(a RAPL counter file) is updated there, consistent with every reading.

A participant must not block on anything but this clock for long (its time would stand still and
the others would wait for it); the measurement's waits all go through the clock.
"""

from __future__ import annotations

import threading


class SimClock:
    def __init__(self, t0: float = 0.0):
        self.t = float(t0)
        self.on_advance: list = []
        self._cond = threading.Condition()
        self._threads: set[threading.Thread] = set()
        self._waiting: dict[threading.Thread, tuple[float, threading.Event | None]] = {}

    def now(self) -> float:
        return self.t

    def wait(self, event: threading.Event | None, seconds: float) -> bool:
        me = threading.current_thread()
        with self._cond:
            self._threads.add(me)
            wake = self.t + max(0.0, seconds)
            self._waiting[me] = (wake, event)
            try:
                while True:
                    if event is not None and event.is_set():
                        return True
                    if self.t >= wake:
                        return False
                    if self._all_waiting():
                        self._advance()
                        continue
                    # another thread runs; an event it sets does not notify this condition: look again soon
                    self._cond.wait(0.001)
            finally:
                del self._waiting[me]
                self._cond.notify_all()

    def sleep(self, seconds: float) -> None:
        self.wait(None, seconds)

    def start(self, target, name: str) -> threading.Thread:
        def run():
            try:
                target()
            finally:
                with self._cond:
                    self._threads.discard(th)
                    self._cond.notify_all()

        th = threading.Thread(target=run, daemon=True, name=name)
        with self._cond:
            # both participants before the new one runs: time cannot jump while either has work to do
            self._threads.update((th, threading.current_thread()))
        th.start()
        return th

    def _all_waiting(self) -> bool:
        for th in list(self._threads):
            if th.ident is not None and not th.is_alive():
                self._threads.discard(th)
                continue
            w = self._waiting.get(th)
            if w is None:  # running (or not started yet)
                return False
            wake, event = w
            if self.t >= wake or (event is not None and event.is_set()):  # woken, not yet running
                return False
        return True

    def _advance(self) -> None:
        self.t = min(wake for wake, _ in self._waiting.values())
        for hook in self.on_advance:
            hook(self.t)
        self._cond.notify_all()
