"""Element-wise kernels: copy/sum of inputs, Scale, Threshold, Delay; float32 and integer.

Integer Scale: y = sat32(rsr(x·m[j], s[j])); Threshold: y = x > θ_q (θ_q = floor(θ/s_x), which
makes the integer test equal to the real one); Delay copies values unchanged.
"""

import numpy as np
from numba import njit

from .fixed import INT32_MAX, INT32_MIN, mulshift, sat


@njit(cache=True)
def copy_into(src, dst):
    for k in range(dst.shape[0]):
        dst[k] = src[k]


@njit(cache=True)
def add_into(src, dst):
    for k in range(dst.shape[0]):
        dst[k] += src[k]


@njit(cache=True)
def add_into_sat(src, dst):
    for k in range(dst.shape[0]):
        dst[k] = sat(np.int64(dst[k]) + np.int64(src[k]), INT32_MIN, INT32_MAX)


@njit(cache=True)
def scale_f32(x, s, y):
    for k in range(y.shape[0]):
        y[k] = x[k] * s[k]


@njit(cache=True)
def scale_int(x, m, s, y):
    for k in range(y.shape[0]):
        y[k] = sat(mulshift(np.int64(x[k]), np.int64(m[k]), s[k]), INT32_MIN, INT32_MAX)


@njit(cache=True)
def threshold(x, th, y):
    """y = 1 where x > th (works for float and integer alike)."""
    for k in range(y.shape[0]):
        y[k] = 1 if x[k] > th[k] else 0


@njit(cache=True)
def delay(x, y, ring, steps, clock):
    """ring has (D+1) rows of len(x); row (clock mod (D+1)) receives x at this step and
    y[k] = the value written steps[k] steps ago (0 before the first write)."""
    depth = ring.shape[0] // x.shape[0]
    n = x.shape[0]
    row = clock % depth
    for k in range(n):
        ring[row * n + k] = x[k]
    for k in range(n):
        d = steps[k]
        if d > clock:
            y[k] = 0
        else:
            y[k] = ring[((clock - d) % depth) * n + k]
