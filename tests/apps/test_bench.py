"""``edgebrain bench``: JSON keys and sanity of the numbers, the TFLite-style report, bad input, and
the cold-start measurement being opt-in (``--cold``) and announced on stderr when asked for.

No timed assertions beyond orderings (p50 <= p90 <= p99; a cold Numba cache starts slower than a
warm one, in the same child-process measurement).
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from edgebrain.apps import bench as B
from edgebrain import ops
from edgebrain.graph import Graph
from edgebrain.model import Model

MODEL = "zoo:basicmotions"


def cli(*args, timeout=900):
    p = subprocess.run([sys.executable, "-m", "edgebrain.cli", *map(str, args)], capture_output=True, text=True,
                       timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def _check_stats(s, count):
    assert s["count"] == count
    assert s["min"] <= s["p50"] <= s["p90"] <= s["p99"] <= s["max"]
    assert s["min"] <= s["avg"] <= s["max"] and s["std"] >= 0
    assert s["min"] > 0


def test_bench_json_with_cold_start():
    rc, out, err = cli("bench", MODEL, "--steps", 300, "--batch", 4, "--cold", "--json")
    assert rc == 0, err
    assert B.COLD_NOTICE in err.splitlines()  # said up front, on stderr: stdout stays JSON
    r = json.loads(out)
    for k in ("model", "precision", "steps", "batch", "init_us", "first_step_us", "warmup", "latency_us", "throughput",
              "memory", "footprint", "cold_start", "model_file_bytes"):
        assert k in r, k
    assert r["steps"] == 300 and r["batch"] == 4 and r["precision"] == "int"  # the zoo model is quantized
    _check_stats(r["latency_us"], 300)
    t = r["throughput"]
    assert t["samples_per_s_batch"] == pytest.approx(4 * t["steps_per_s_batch"])
    assert min(t.values()) > 0
    assert r["memory"]["peak_rss_bytes"] > 0
    assert r["footprint"]["total_bytes"] == r["footprint"]["param_bytes"] + r["footprint"]["state_bytes"] > 0
    cold, warm = r["cold_start"]["cold"], r["cold_start"]["warm"]
    # an empty Numba cache compiles every kernel; the warm cache only loads them
    assert cold["first_step_us"] > warm["first_step_us"]
    assert cold["total_us"] > warm["total_us"]
    assert cold["peak_rss_bytes"] > 0 and warm["peak_rss_bytes"] > 0


def _tiny(tmp_path):
    g = Graph.sequential(ops.Input(shape=(5,)), ops.Affine(weight=np.eye(3, 5), bias=np.zeros(3)),
                         ops.LIF(beta=0.9, threshold=0.5), ops.Output())
    p = tmp_path / "tiny.ebm"
    Model(g).save(p)
    return str(p)


def test_bench_report_in_process(tmp_path):
    path = _tiny(tmp_path)
    said = []
    r = B.run(path, steps=200, batch=3, say=said.append)
    assert r["precision"] == "float" and r["cold_start"] is None  # not quantized: float; cold start is opt-in
    assert said == []  # nothing to warn about without --cold
    _check_stats(r["latency_us"], 200)
    _check_stats(r["warmup"], B.WARMUP_STEPS)
    text = B.format_report(r)
    assert "count=200 first=" in text and " curr=" in text and " std=" in text
    assert "Inference timings in us: Init: " in text and ", First inference: " in text
    assert "Warmup (avg): " in text and "Inference (avg): " in text
    assert "Memory footprint delta from the start of the tool (MB): init=" in text
    assert "Percentiles (us): p50=" in text
    assert "samples/s" in text
    assert "Cold start: not measured (--cold to measure)" in text.splitlines()


def test_bench_without_cold_is_one_process_and_says_so(tmp_path):
    path = _tiny(tmp_path)
    rc, out, err = cli("bench", path, "--steps", 50, "--batch", 2, "--json", timeout=300)
    assert rc == 0, err
    r = json.loads(out)
    assert "cold_start" in r and r["cold_start"] is None
    assert "--cold" not in err
    rc, out, err = cli("bench", path, "--steps", 50, "--batch", 2, timeout=300)
    assert rc == 0, err
    assert "Cold start: not measured (--cold to measure)" in out.splitlines()


@pytest.mark.parametrize("args,needle", [
    (("bench", "no/such/model.ebm"), "file not found"),
    (("bench", MODEL, "--steps", "0"), "--steps 0; expected >= 1"),
    (("bench", MODEL, "--batch", "0"), "--batch 0; expected >= 1"),
    (("bench", MODEL, "--precision", "double"), "double"),
])
def test_bench_bad_input(args, needle):
    rc, _, err = cli(*args, timeout=120)
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], err
    assert "Traceback" not in err


def test_bench_float_on_quantized_and_int_on_float(tmp_path):
    rc, _, err = cli("bench", _tiny(tmp_path), "--steps", 5, "--precision", "int", timeout=300)
    assert rc == 2 and "quantize" in err and len(err.strip().splitlines()) == 1
