"""The executor is compiled per set of op families a program uses (engine.executor): a model
without convolutions never compiles the convolution kernels. Every variant must compute
exactly what the variant with every family computes."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from edgebrain import ops
from edgebrain.graph import Graph
from edgebrain.kernels import engine as E
from edgebrain.model import Model
from edgebrain.quant import quantize


def _cuba_model(seed=5):
    """A current-based recurrent network: its neuron rows are off the int32 path."""
    rng = np.random.default_rng(seed)
    n = 16
    g = Graph()
    g.add("input", ops.Input(shape=(4,)))
    g.add("fc", ops.Affine(weight=rng.standard_normal((n, 4)).astype(np.float32),
                           bias=(0.1 * rng.standard_normal(n)).astype(np.float32)))
    g.add("lif", ops.CubaLIF(alpha=np.full(n, 0.8, np.float32), beta=np.full(n, 0.9, np.float32),
                             threshold=np.ones(n, np.float32)))
    g.add("ro", ops.Linear(weight=rng.standard_normal((3, n)).astype(np.float32)))
    g.add("li", ops.LI(beta=np.full(3, 0.8, np.float32)))
    g.add("output", ops.Output())
    for e in [("input", "fc"), ("fc", "lif"), ("lif", "ro"), ("ro", "li"), ("li", "output")]:
        g.connect(*e)
    m = Model(g.prepare())
    qm, _ = quantize(m, (2 * rng.standard_normal((80, 4, 4))).astype(np.float32), state_bits=32)
    return qm


def _lif32_model(seed=6):
    """LIF layers (immediate reset) with 32-bit state: off the int32 path, on the simple one."""
    rng = np.random.default_rng(seed)
    g = Graph.sequential(
        ops.Input(shape=(6,)),
        ops.Affine(weight=(2 * rng.standard_normal((24, 6))).astype(np.float32), bias=np.zeros(24, np.float32)),
        ops.LIF(beta=rng.uniform(0.6, 0.95, 24).astype(np.float32), threshold=np.ones(24, np.float32),
                reset="subtract"),
        ops.Affine(weight=rng.standard_normal((5, 24)).astype(np.float32), bias=np.zeros(5, np.float32)),
        ops.LI(beta=np.full(5, 0.9, np.float32)), ops.Output())
    qm, _ = quantize(Model(g.prepare()), (2 * rng.standard_normal((60, 8, 6))).astype(np.float32), state_bits=32)
    return qm


def _model(name):
    if name == "cuba":
        return _cuba_model()
    if name == "lif32":
        return _lif32_model()
    return Model.load("zoo:" + name)


@pytest.mark.parametrize("name,bits", [("har-lif", 0), ("nmnist", E.USES_CONV), ("cuba", E.USES_GENERAL_NEURON | E.USES_SIMPLE_NEURON),
                                       ("lif32", E.USES_SIMPLE_NEURON)])
def test_variant_matches_the_executor_with_every_family(name, bits):
    m = _model(name)
    s = m.session("int")
    p = s.program
    assert E.features(p.prog, integer=True) == bits
    assert s._exec.bits == bits  # noqa: SLF001 - the variant the session chose
    rng = np.random.default_rng(7)
    xs = rng.standard_normal((40,) + tuple(m.input_shape)).astype(np.float32)
    if name == "nmnist":  # event frames: sparse non-negative counts
        xs = (rng.random(xs.shape) < 0.05).astype(np.float32) * rng.integers(1, 4, xs.shape).astype(np.float32)
    else:
        xs *= 3
    want, _ = s.run(xs)
    # the same program on the variant with every family, through the same entry point
    full = E.executor(E.ALL)
    state = np.zeros_like(s.state)
    act = np.zeros_like(s.act)
    clock = np.zeros(1, np.int64)
    out = np.zeros((xs.shape[0], 1, max(p.n_out, 1)), np.float32)
    sat = np.zeros_like(s.saturations)
    full.run_int(p.prog, p.fpar, p.ipar, p.wbuf, state, act, np.zeros_like(s._acc32), np.zeros_like(s._acc64),  # noqa: SLF001
                 np.zeros_like(s._idx), clock, xs.reshape(xs.shape[0], 1, -1), out, np.zeros((0, 4), np.int64),  # noqa: SLF001
                 np.zeros((1, 1, 1)), sat)
    got = out[:, 0, :want.reshape(xs.shape[0], -1).shape[1]]
    np.testing.assert_array_equal(got, want.reshape(xs.shape[0], -1))
    np.testing.assert_array_equal(sat, s.saturations)
    assert np.abs(want).sum() > 0  # the network did something


def test_float_variant_keys_only_on_convolution():
    m = _cuba_model()
    assert E.features(m.program("float").prog, integer=False) == 0
    assert E.features(Model.load("zoo:nmnist").program("float").prog, integer=False) == E.USES_CONV


CHILD = """
import json, sys
import numpy as np
from numba.core import event
from edgebrain.model import Model
m = Model.load("zoo:har-lif")
s = m.session("int")
with event.install_recorder("numba:compile") as rec:
    s.step(np.zeros(m.input_shape, np.float32))
print(json.dumps(sorted({ev.data["dispatcher"].py_func.__name__ for _, ev in rec.buffer if ev.is_start})))
"""


def test_a_dense_model_does_not_compile_convolution_kernels(tmp_path):
    """With an empty cache, the first step of zoo:har-lif compiles its dense and int32 neuron
    kernels, and not the convolution, pooling or wide neuron kernels it does not use."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    r = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    compiled = set(json.loads(r.stdout.strip().splitlines()[-1]))
    assert {"dense_int", "neuron_int32", "_step1_int"} <= compiled, compiled
    assert not compiled & {"conv2d_int", "pool2d_int", "neuron_int", "neuron_int_simple"}, compiled
