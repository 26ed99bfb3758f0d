"""Every loop of the convolution and pooling kernels, each forced on its own, against the
references: the integer kernels bit-exact against tests/reference/intref.py, the float kernels
bit-identical to a float32 sum taken in the contract's order (bias, then input channel, row,
column; zero inputs skipped), which is the order the kernels promise, and within rounding of
tests/reference/floatref.py (float64).

Paths of ``conv2d_*``: stride 1 without dilation (one run per kernel row when groups == 1,
one run per kernel column otherwise) or the general loop; a row's list of nonzero inputs kept
in the output buffer (when it is at least as long as an input row) or the inputs tested one by
one;
float with a scratch accumulator or without (accumulating in the output); int32 or int64
accumulators; spike (0/1) or multi-valued inputs. Paths of ``pool2d_*``: 2×2 windows with
stride 2, other windows inside the input, windows reaching the padding.
"""

from __future__ import annotations

import itertools
import zlib

import numpy as np
import pytest

from edgebrain.kernels.conv import conv2d_f32, conv2d_int, scatter_weights
from edgebrain.kernels.pool import pool2d_f32, pool2d_int
from tests.reference import floatref as F
from tests.reference import intref as R

F32 = np.float32


def _seed(*key):
    return zlib.crc32(repr(key).encode())


def _geometry(C, H, W, Co, k, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1, pad_end=(0, 0)):
    kh, kw = k
    (sh, sw), (pt, pl), (dh, dw) = stride, padding, dilation
    Ho = (H + pt + pad_end[0] - (kh - 1) * dh - 1) // sh + 1
    Wo = (W + pl + pad_end[1] - (kw - 1) * dw - 1) // sw + 1
    assert Ho >= 1 and Wo >= 1
    return {"C": C, "H": H, "W": W, "Co": Co, "kh": kh, "kw": kw, "stride": stride, "padding": padding,
            "dilation": dilation, "groups": groups, "out_size": (Ho, Wo)}


def _dims(g):
    return np.array([g["C"], g["H"], g["W"], g["Co"], g["kh"], g["kw"], *g["stride"], *g["padding"],
                     *g["dilation"], g["groups"], *g["out_size"]], np.int64)


#: geometries: (name, geometry); in the "row longer than out" ones the output buffer is shorter
#: than an input row, so the kernels cannot keep a row's list of nonzero inputs in it and test
#: the inputs one by one
GEOMETRIES = [
    ("nmnist conv1", _geometry(2, 12, 12, 12, (5, 5))),
    ("nmnist conv2", _geometry(12, 7, 7, 32, (4, 4))),
    ("padded", _geometry(3, 6, 7, 5, (3, 3), padding=(1, 2), pad_end=(2, 1))),
    ("groups", _geometry(4, 6, 6, 6, (3, 2), padding=(1, 1), groups=2, pad_end=(1, 0))),
    ("conv1d", _geometry(3, 1, 9, 4, (1, 3), padding=(0, 1), pad_end=(0, 1))),
    ("strided", _geometry(2, 7, 8, 3, (3, 3), stride=(2, 3), padding=(1, 1), pad_end=(1, 2))),
    ("dilated", _geometry(2, 8, 8, 3, (2, 3), dilation=(2, 2), padding=(1, 2), groups=1)),
    ("small out", _geometry(6, 6, 6, 2, (3, 3), stride=(2, 2))),
    ("small out groups", _geometry(6, 5, 5, 3, (2, 2), stride=(2, 1), dilation=(1, 2), groups=3, pad_end=(1, 1))),
    ("row longer than out", _geometry(2, 1, 9, 1, (1, 7), stride=(1, 2))),
    ("row longer than out, stride 1", _geometry(1, 2, 8, 1, (2, 8))),
]


def _input(rng, n, kind):
    if kind == "spikes":
        return (rng.random(n) < 0.1).astype(np.int32)
    if kind == "counts":
        return ((rng.random(n) < 0.3) * rng.integers(1, 10, n)).astype(np.int32)
    return ((rng.random(n) < 0.7) * rng.integers(-(2 ** 20), 2 ** 20, n)).astype(np.int32)


def _float_reference(x, w, b, g):
    """The float32 sum of each output in the contract's order, one rounding per operation."""
    C, H, W, Co, kh, kw = g["C"], g["H"], g["W"], g["Co"], g["kh"], g["kw"]
    (sh, sw), (pt, pl), (dh, dw), G, (Ho, Wo) = g["stride"], g["padding"], g["dilation"], g["groups"], g["out_size"]
    cin_g, cout_g = C // G, Co // G
    x3 = x.reshape(C, H, W)
    y = np.zeros((Co, Ho, Wo), F32)
    for co, oy, ox in itertools.product(range(Co), range(Ho), range(Wo)):
        s = F32(b[co])
        for ci in range(cin_g):
            c = (co // cout_g) * cin_g + ci
            for ky in range(kh):
                iy = oy * sh - pt + ky * dh
                for kx in range(kw):
                    ix = ox * sw - pl + kx * dw
                    if 0 <= iy < H and 0 <= ix < W and x3[c, iy, ix] != 0:
                        s = F32(s + F32(x3[c, iy, ix] * w[co, ci, ky, kx]))
        y[co, oy, ox] = s
    return y.reshape(-1)


@pytest.mark.parametrize("name,g", GEOMETRIES, ids=[n for n, _ in GEOMETRIES])
@pytest.mark.parametrize("kind", ["spikes", "counts", "wide"])
def test_conv2d_int_every_path_matches_reference(name, g, kind):
    rng = np.random.default_rng(_seed(name, kind))
    Co, cin_g = g["Co"], g["C"] // g["groups"]
    x = _input(rng, g["C"] * g["H"] * g["W"], kind)
    w = rng.integers(-127, 128, (Co, cin_g, g["kh"], g["kw"])).astype(np.int8)
    b = rng.integers(-(2 ** 20), 2 ** 20, Co).astype(np.int32)
    n = Co * g["out_size"][0] * g["out_size"][1]
    geo = (g["kh"], g["kw"], g["stride"], g["padding"], g["dilation"], g["groups"], g["out_size"])
    ws = scatter_weights(w)
    bound = int(np.abs(b).max()) + int(np.abs(x.astype(np.int64)).sum()) * 127
    for identity in (1, 0):
        m = np.ones(Co, np.int32) if identity else rng.integers(1 << 30, 2 ** 31 - 1, Co).astype(np.int32)
        s = np.zeros(Co, np.int32) if identity else rng.integers(20, 40, Co).astype(np.int32)
        want = R.conv2d(x, g["C"], g["H"], g["W"], w, b, Co, *geo, m, s, identity)
        for acc_dtype in (np.int64, np.int32) if bound < 2 ** 31 else (np.int64,):
            y = np.full(n, -7, np.int32)
            conv2d_int(x, ws, b, y, _dims(g), np.full(n, 3, acc_dtype), m, s, identity)
            assert y.tolist() == want, (acc_dtype, identity)


@pytest.mark.parametrize("name,g", GEOMETRIES, ids=[n for n, _ in GEOMETRIES])
@pytest.mark.parametrize("kind", ["spikes", "counts", "dense"])
def test_conv2d_f32_every_path_in_the_contract_order(name, g, kind):
    rng = np.random.default_rng(_seed(name, kind, "f"))
    Co, cin_g = g["Co"], g["C"] // g["groups"]
    n_in = g["C"] * g["H"] * g["W"]
    if kind == "dense":
        x = rng.standard_normal(n_in).astype(F32)
    else:
        x = _input(rng, n_in, kind).astype(F32)
    w = rng.standard_normal((Co, cin_g, g["kh"], g["kw"])).astype(F32)
    b = rng.standard_normal(Co).astype(F32)
    n = Co * g["out_size"][0] * g["out_size"][1]
    want = _float_reference(x, w, b, g)
    ws = scatter_weights(w)
    y = np.full(n, np.nan, F32)
    conv2d_f32(x, ws, b, y, _dims(g), np.full(n + 5, np.nan, F32))
    assert np.array_equal(y, want)
    geo = (g["stride"], g["padding"], g["dilation"], g["groups"], g["out_size"])
    ref = F.conv2d(x, g["C"], g["H"], g["W"], w, b, *geo)
    mag = F.conv2d(np.abs(x), g["C"], g["H"], g["W"], np.abs(w), np.abs(b), *geo)
    assert np.all(np.abs(want - ref) <= 1e-5 * mag + 1e-30)


def test_scatter_weights_layout():
    w = np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)
    ws = scatter_weights(w)
    assert ws.shape == (3, 4, 5, 2) and ws.flags.c_contiguous
    for co, ci, ky, kx in itertools.product(range(2), range(3), range(4), range(5)):
        assert ws[ci, ky, 4 - kx, co] == w[co, ci, ky, kx]


# ------------------------------------------------------------------ pooling

POOLS = [  # (C, H, W, kernel, stride, padding, out_size)
    (3, 6, 8, (2, 2), (2, 2), (0, 0), (3, 4)),      # the 2x2 / stride-2 loop
    (2, 7, 9, (2, 2), (2, 2), (0, 0), (3, 4)),      # the same, the last row and column unused
    (2, 6, 7, (3, 2), (2, 3), (0, 0), (2, 2)),      # other windows inside the input
    (2, 5, 5, (2, 2), (1, 1), (0, 0), (4, 4)),      # overlapping windows
    (2, 5, 6, (3, 3), (2, 2), (1, 1), (3, 3)),      # windows reaching the padding
    (1, 4, 4, (2, 2), (2, 2), (1, 1), (3, 3)),      # 2x2 / stride 2 with padding: the checked loop
]


def _pool_dims(C, H, W, k, st, pad, out):
    return np.array([C, H, W, *k, *st, *pad, *out], np.int64)


@pytest.mark.parametrize("geo", POOLS)
@pytest.mark.parametrize("kind", ["spikes", "counts", "wide"])
def test_pool2d_int_every_path_matches_reference(geo, kind):
    rng = np.random.default_rng(_seed(geo, kind))
    C, H, W, k, st, pad, out = geo
    if kind == "wide":  # window sums beyond int32
        x = rng.choice(np.array([2 ** 31 - 1, -(2 ** 31), 0, 5, -3], np.int64), C * H * W).astype(np.int32)
    else:
        x = _input(rng, C * H * W, kind)
    for m, s in ((1, 0), (1 << 30, 31), (-(2 ** 31 - 1), 62), (2 ** 31 - 1, 0), (3, 1)):
        y = np.full(C * out[0] * out[1], 9, np.int32)
        pool2d_int(x, y, _pool_dims(*geo), np.int64(m), np.int64(s))
        assert y.tolist() == R.pool2d_sum(x, C, H, W, k, st, pad, out, m, s), (m, s)


@pytest.mark.parametrize("geo", POOLS)
@pytest.mark.parametrize("factor", [1.0, 0.25, 1 / 9])
def test_pool2d_f32_every_path_in_order(geo, factor):
    rng = np.random.default_rng(_seed(geo, factor))
    C, H, W, (kh, kw), (sh, sw), (ph, pw), (Ho, Wo) = geo
    x = rng.standard_normal(C * H * W).astype(F32)
    x[::5] = -0.0  # a window of negative zeros sums to +0 (the sum starts from 0)
    f = F32(factor)
    want = np.zeros(C * Ho * Wo, F32)
    x3 = x.reshape(C, H, W)
    for c, oy, ox in itertools.product(range(C), range(Ho), range(Wo)):
        s = F32(0)
        for ky, kx in itertools.product(range(kh), range(kw)):
            iy, ix = oy * sh - ph + ky, ox * sw - pw + kx
            if 0 <= iy < H and 0 <= ix < W:
                s = F32(s + x3[c, iy, ix])
        want[(c * Ho + oy) * Wo + ox] = F32(s * f) if factor != 1.0 else s
    y = np.full(C * Ho * Wo, np.nan, F32)
    pool2d_f32(x, y, _pool_dims(*geo), f)
    assert np.array_equal(y, want) and np.array_equal(np.signbit(y), np.signbit(want))
    ref = F.pool2d(x, C, H, W, (kh, kw), (sh, sw), (ph, pw), (Ho, Wo), factor=float(factor))
    assert np.allclose(y, ref, rtol=1e-5, atol=1e-6)
