"""Numba kernels, one file per family, each with its float32 reference and integer twin.

Nothing here compiles on import: every function is ``@njit(cache=True)`` without an
explicit signature, so Numba compiles (or loads from its on-disk cache) on first call.
The integer rules are written down in docs/fixed-point.md.
"""
