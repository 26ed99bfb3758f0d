"""Integer primitives shared by every fixed-point kernel (see docs/fixed-point.md).

All of them work on int64 values, so intermediate results are exact; results are then
saturated to the width of the destination.
"""

import numpy as np
from numba.core import types
from numba.extending import intrinsic

from ..jit import njit

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


@njit(cache=True, inline="always")
def mulshift_sat32(a, m, s):
    """sat32(rsr(a·m, s)) exactly for any int64 ``a`` (a wide accumulator), int32 ``m`` and
    0 <= s <= 62, where a·m itself may not fit in int64.

    |a| <= 2^31 is the direct product. Otherwise the product is formed as h·2^32 + l with
    0 <= l < 2^32 (a = ah·2^32 + al, al·m split the same way), and the rounding shift is
    applied to that pair.
    """
    a = np.int64(a)
    m = np.int64(m)
    if -2147483648 <= a <= 2147483648:  # |a·m| <= 2^62: no overflow, even with the rounding term
        return sat(rsr(a * m, s), INT32_MIN, INT32_MAX)
    mask = np.int64(0xFFFFFFFF)
    pl = (a & mask) * m                 # |pl| < 2^63
    h = (a >> 32) * m + (pl >> 32)      # a·m = h·2^32 + l exactly, |h| <= 2^62 + 2^31
    l = pl & mask
    if s >= 33:
        # rounding term 2^(s-1) = 2^(s-33)·2^32; l < 2^32 cannot change floor(·/2^s)
        return sat((h + (np.int64(1) << (s - 33))) >> (s - 32), INT32_MIN, INT32_MAX)
    if s <= 0:
        s = 0
    else:
        l += np.int64(1) << (s - 1)
        h += l >> 32
        l &= mask
    if h >= 2147483648:                 # result >= 2^31 · 2^(32-s) >= 2^31
        return np.int64(INT32_MAX)
    if h < -2147483648:                 # result < -2^31 · 2^(32-s) <= -2^31
        return np.int64(INT32_MIN)
    return sat((h << (32 - s)) + (l >> s), INT32_MIN, INT32_MAX)


# ---------------------------------------------------------------------- 32-bit arithmetic
# Numba computes every integer expression in int64 (NumPy's scalar promotion), which halves
# the vector width and, without AVX-512, leaves no vector 64-bit multiply, arithmetic shift or
# min/max. These helpers do one operation in int32, wrapping as C does: a kernel uses them only
# where the builder has proved that no value leaves the int32 range (see neuron.narrow_ok), so
# the results are the int64 results, bit for bit.


def _cast32(context, builder, ty, v):
    return context.cast(builder, v, ty, types.int32)


@intrinsic
def i32(typingctx, a):
    """``a`` as int32 (truncated)."""
    def codegen(context, builder, sig, args):
        return _cast32(context, builder, sig.args[0], args[0])
    return types.int32(a), codegen


def _op32(name: str):
    def typer(typingctx, a, b):
        def codegen(context, builder, sig, args):
            x = _cast32(context, builder, sig.args[0], args[0])
            y = _cast32(context, builder, sig.args[1], args[1])
            return getattr(builder, name)(x, y)
        return types.int32(a, b), codegen
    typer.__name__ = f"{name}32"
    return intrinsic(typer)


add32 = _op32("add")
sub32 = _op32("sub")
mul32 = _op32("mul")
shl32 = _op32("shl")
ashr32 = _op32("ashr")


@njit(cache=True, inline="always")
def clamp32(v, lo, hi):
    """min(max(v, lo), hi) of int32 values, as int32."""
    v = v if v > lo else lo
    return v if v < hi else hi
