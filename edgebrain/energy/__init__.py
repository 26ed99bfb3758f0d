"""Energy, a plain library: analytical estimates from operation counts and a device profile
(:mod:`.estimate`), power meters (:mod:`.meters`), the measurement recipe (:mod:`.measure`), the
timeline plot (:mod:`.plot`) and the joule and second formatters every report uses (:mod:`.units`).
``edgebrain profile``, which puts them together, is an application: :mod:`edgebrain.apps.profile`."""

from .estimate import Estimate, estimate, latency

__all__ = ["Estimate", "estimate", "latency"]
