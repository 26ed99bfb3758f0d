"""Integer primitives shared by every fixed-point kernel (see docs/fixed-point.md).

All of them work on int64 values, so intermediate results are exact; results are then
saturated to the width of the destination.
"""

from numba import njit

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1


@njit(cache=True, inline="always")
def rsr(p, s):
    """Rounding shift right: round(p / 2**s), ties toward +inf; s = 0 returns p."""
    if s <= 0:
        return p
    return (p + (1 << (s - 1))) >> s


@njit(cache=True, inline="always")
def sat(v, lo, hi):
    if v < lo:
        return lo
    if v > hi:
        return hi
    return v


@njit(cache=True, inline="always")
def mulshift(x, m, s):
    """round(x * m / 2**s) with the rounding of :func:`rsr`."""
    return rsr(x * m, s)
