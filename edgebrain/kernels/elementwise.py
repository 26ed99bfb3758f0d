"""Element-wise kernels: copy/sum of inputs, Scale, Threshold, Delay; float32 and integer.

Integer Scale: y = sat32(rsr(x·m[j], s[j])); Threshold: y = x > θ_q (θ_q = floor(θ/s_x), which
makes the integer test equal to the real one); Delay copies values unchanged.
"""

import numpy as np
from ..jit import njit

from .fixed import INT32_MAX, INT32_MIN, mulshift, sat
from .layout import OP_DELAY, OP_SCALE, OP_THRESHOLD


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


# ---------------------------------------------------------------------- lowering
# How Scale, Threshold and Delay nodes become instructions (called by edgebrain.program.build
# with its Builder; the rows' columns are named in layout.py). Parameters are expanded to one
# value per element.


def lower_scale(b, name, op, q, inp, out):
    shape = b.graph.in_shapes[name]
    if b.is_int:
        b.emit(name, OP_SCALE, inp, out, scale_off=b.ipar.add(b.expand(q["m"], shape)),
               shift_off=b.ipar.add(b.expand(q["s"], shape)))
    else:
        b.emit(name, OP_SCALE, inp, out, scale_off=b.fpar.add(b.expand(op.scale, shape)))


def lower_threshold(b, name, op, q, inp, out):
    shape = b.graph.in_shapes[name]
    th = b.ipar.add(b.expand(q["th"], shape)) if b.is_int else b.fpar.add(b.expand(op.threshold, shape))
    b.emit(name, OP_THRESHOLD, inp, out, th_off=th)


def lower_delay(b, name, op, q, inp, out):
    """The ring holds max(steps) + 1 past inputs, in the activation buffer (so it is per batch
    element and saved by snapshots)."""
    steps = b.expand(op.steps, b.graph.in_shapes[name]).astype(np.int64)
    ring_len = (int(steps.max(initial=0)) + 1) * out.n
    ring_off = b.alloc_act(ring_len)
    b.emit(name, OP_DELAY, inp, out, ring_off=ring_off, steps_off=b.ipar.add(steps), ring_len=ring_len)


#: op kind -> lowering
LOWERING = {"Scale": lower_scale, "Threshold": lower_threshold, "Delay": lower_delay}
