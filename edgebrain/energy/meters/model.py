"""``model``: no sensor. Reads measure nothing, so ``measure()`` reports only the run (duration,
inference count) and the ``profile`` command shows the analytical estimate alone."""

from __future__ import annotations

from .base import Meter, Sample


class ModelMeter(Meter):
    name = "model"
    kind = "none"
    period_s = 1.0
    scope = "none (analytical estimate only)"

    def _read(self) -> Sample:
        return Sample(t=self.clock.now())
