"""Dense (Affine / Linear) kernels: y = W·x + b, float32 reference and integer twin.

Weights are stored transposed, ``wt[j, c] = W[c, j]`` (shape (n_in, n_out)), so that the
contribution of one input is one contiguous row. When the input is sparse (spikes), only
the rows of nonzero inputs are added ("event-driven": an addition per synapse when the
input is a 0/1 spike); when more than ``DENSE_ABOVE`` of the inputs are nonzero the loop
over all rows is cheaper, and is used instead. Both paths visit rows in increasing j, so
they give bit-identical results, in float as in integer arithmetic.
"""

import numpy as np
from numba import njit

from .fixed import INT32_MAX, INT32_MIN, mulshift, sat

#: fraction of nonzero inputs above which the dense path is used
DENSE_ABOVE = 0.25


@njit(cache=True)
def _active(x, idx):
    n = 0
    for j in range(x.shape[0]):
        if x[j] != 0:
            idx[n] = j
            n += 1
    return n


@njit(cache=True)
def dense_f32(x, wt, b, y, idx):
    """y[c] = b[c] + Σ_j x[j]·wt[j, c]. x (n_in,), wt (n_in, n_out), b (n_out,) or empty."""
    n_in, n_out = wt.shape
    if b.shape[0]:
        for c in range(n_out):
            y[c] = b[c]
    else:
        for c in range(n_out):
            y[c] = 0.0
    nnz = _active(x, idx)
    if nnz > DENSE_ABOVE * n_in:
        for j in range(n_in):
            xj = x[j]
            if xj != 0:
                row = wt[j]
                for c in range(n_out):
                    y[c] += xj * row[c]
    else:
        for k in range(nnz):
            j = idx[k]
            xj = x[j]
            row = wt[j]
            if xj == 1.0:
                for c in range(n_out):
                    y[c] += row[c]
            else:
                for c in range(n_out):
                    y[c] += xj * row[c]


@njit(cache=True)
def dense_int(x, wt, b, y, idx, acc, rq_m, rq_s, identity):
    """Integer twin: acc[c] = b[c] + Σ_j x[j]·wt[j, c] (exact), then
    y[c] = sat32(rsr(acc[c]·rq_m[c], rq_s[c])), or sat32(acc[c]) when ``identity``.

    ``acc`` is an int32 scratch row when the builder proved |acc| < 2**31 for every input
    the quantizer allows, else int64; either way the sum is exact.
    """
    n_in, n_out = wt.shape
    if b.shape[0]:
        for c in range(n_out):
            acc[c] = b[c]
    else:
        for c in range(n_out):
            acc[c] = 0
    nnz = _active(x, idx)
    if nnz > DENSE_ABOVE * n_in:
        for j in range(n_in):
            xj = x[j]
            if xj != 0:
                row = wt[j]
                for c in range(n_out):
                    acc[c] += xj * row[c]
    else:
        for k in range(nnz):
            j = idx[k]
            xj = x[j]
            row = wt[j]
            if xj == 1:
                for c in range(n_out):
                    acc[c] += row[c]
            else:
                for c in range(n_out):
                    acc[c] += xj * row[c]
    if identity:
        for c in range(n_out):
            y[c] = sat(np.int64(acc[c]), INT32_MIN, INT32_MAX)
    else:
        for c in range(n_out):
            y[c] = sat(mulshift(np.int64(acc[c]), np.int64(rq_m[c]), rq_s[c]), INT32_MIN, INT32_MAX)
