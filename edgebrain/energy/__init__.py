"""Energy: analytical estimates from operation counts and a device profile (:mod:`.estimate`)."""

from .estimate import Estimate, estimate, latency

__all__ = ["Estimate", "estimate", "latency"]
