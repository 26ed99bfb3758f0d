"""IMU end-to-end latency: from a sample's arrival to the decision it completes.

A smartwatch-size model (6 → 128 LIF → 128 LIF → 5 LI readout, as in kernels.py) streams a real
sp-sw-har recording (100 Hz, 6 channels) and decides at every sample (``vmax:window=1``), so
every sample's latency is measured. Two paths, in the same run:

* live: a separate writer process serves the recording over TCP on loopback at 100 Hz, one
  line per sample, in the Edge Impulse data-forwarder format; edgebrain reads ``tcp://``;
* realtime file playback (``--realtime``): the file's samples are released at their recorded times.

For reference the same model's bare ``session.step`` is timed in the same run, so the
pipeline's own overhead (socket read, parsing, encoder, decoder, sinks) is visible as a ratio.

    python tools/bench/stream_imu.py [--seconds 10] [--json out.json] [--precision int]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from edgebrain import ops  # noqa: E402
from edgebrain.graph import Graph  # noqa: E402
from edgebrain.model import Model  # noqa: E402
from edgebrain.quant import quantize  # noqa: E402
from edgebrain.stream.pipeline import build_pipeline  # noqa: E402

LABELS = ["SEATED", "STANDING_UP", "WALKING", "TURNING", "SITTING_DOWN"]

WRITER = textwrap.dedent("""
    import socket, sys, time
    path, port, rate, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
    rows = [l.split(",")[:6] for l in open(path).read().splitlines()[1:]]
    srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port)); srv.listen(1)
    print("ready", flush=True)
    conn, _ = srv.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    t0 = time.perf_counter(); n = int(seconds * rate)
    for k in range(n):
        due = t0 + k / rate
        while time.perf_counter() < due:
            time.sleep(max(0.0, min(0.002, due - time.perf_counter() - 0.0005)))
        conn.sendall((",".join(rows[k % len(rows)]) + "\\n").encode())
    conn.close()
""")


def find_recording() -> Path:
    env = os.environ.get("EDGEBRAIN_DATA")
    root = Path(env) if env else REPO.parent / "shared" / "datasets"
    p = root / "imu" / "sp-sw-har" / "s16" / "s16_01_sw.csv"
    if not p.exists():
        sys.exit(f"recording not found: {p} (set EDGEBRAIN_DATA)")
    return p


def watch_model(seed=0) -> Model:
    rng = np.random.default_rng(seed)

    def lif(n):
        return ops.LIF(beta=np.full(n, 0.9, np.float32), threshold=np.ones(n, np.float32), reset="subtract")

    def aff(o, i, g):
        return ops.Affine(weight=(rng.standard_normal((o, i)) * g / np.sqrt(i)).astype(np.float32),
                          bias=(0.1 * rng.standard_normal(o)).astype(np.float32))

    g = Graph.sequential(ops.Input(shape=(6,)), aff(128, 6, 3.0), lif(128), aff(128, 128, 3.0), lif(128),
                         aff(5, 128, 1.0), ops.LI(beta=np.full(5, 0.9, np.float32)), ops.Output())
    m = Model(g.prepare())
    # sp-sw-har: m/s² and rad/s; scale the accelerometer down to gyroscope-like magnitudes
    m.graph.meta["stream"] = {"encoder": "direct:scale=0.1|0.1|0.1|1|1|1", "decoder": "vmax:window=1",
                              "labels": LABELS, "rate": 100.0}
    return m


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def run_live(model, rec, seconds, precision):
    port = free_port()
    w = subprocess.Popen([sys.executable, "-c", WRITER, str(rec), str(port), "100", str(seconds)],
                         stdout=subprocess.PIPE, text=True)
    try:
        assert w.stdout.readline().strip() == "ready"
        pipe = build_pipeline(model, f"tcp://127.0.0.1:{port}?rate=100&channels=6&reconnect=0&timeout=2",
                              precision=precision)
        summary = pipe.run()
        lat = np.array(pipe.latencies) * 1e3
    finally:
        w.kill()
        w.wait()
    return summary, lat


def run_realtime(model, rec, precision, seconds):
    pipe = build_pipeline(model, str(rec), realtime=True, precision=precision, max_seconds=seconds)
    summary = pipe.run()
    return summary, np.array(pipe.latencies) * 1e3


def bare_step(model, rec, precision):
    xs = np.loadtxt(rec, delimiter=",", skiprows=1, usecols=range(6), dtype=np.float32)
    xs *= np.array([0.1, 0.1, 0.1, 1, 1, 1], np.float32)
    s = model.session(precision)
    for x in xs[:50]:
        s.step(x)
    ts = []
    for x in xs:
        t = time.perf_counter()
        s.step(x)
        ts.append(time.perf_counter() - t)
    return np.array(ts) * 1e3


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--precision", choices=["float", "int"], default="float")
    ap.add_argument("--json", metavar="FILE")
    a = ap.parse_args()
    rec = find_recording()
    model = watch_model()
    if a.precision == "int":
        xs = np.loadtxt(rec, delimiter=",", skiprows=1, usecols=range(6), dtype=np.float32)[:, None, :]
        model, _ = quantize(model, xs * np.array([0.1, 0.1, 0.1, 1, 1, 1], np.float32))
        model.graph.meta["stream"] = watch_model().graph.meta["stream"]
    # warm the compiled code (first use compiles; not part of the latency)
    build_pipeline(model, str(rec), precision=a.precision, max_seconds=1.0).run()
    step = bare_step(model, rec, a.precision)
    live_sum, live = run_live(model, rec, a.seconds, a.precision)
    rt_sum, rt = run_realtime(model, rec, a.precision, a.seconds)

    def stats(x):
        return {"n": int(x.size), "p50": float(np.percentile(x, 50)), "p90": float(np.percentile(x, 90)),
                "p99": float(np.percentile(x, 99)), "max": float(x.max())}

    res = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": platform.processor() or
           platform.machine(), "precision": a.precision, "recording": rec.name,
           "bare_step_ms": stats(step), "live_tcp_ms": stats(live), "realtime_file_ms": stats(rt),
           "live_summary": {k: live_sum[k] for k in ("steps", "decisions", "realtime_factor", "input")},
           "target_p99_ms": 1.0}
    print(f"IMU end-to-end latency, {a.precision} model 6→128→128→5, decision per sample, 100 Hz "
          f"({rec.name}, {a.seconds:g} s)")
    print(f"{'path':<22}{'n':>7}{'p50 ms':>10}{'p90 ms':>10}{'p99 ms':>10}{'max ms':>10}")
    for name, key in (("bare session.step", "bare_step_ms"), ("live TCP (Edge Impulse)", "live_tcp_ms"),
                      ("realtime file", "realtime_file_ms")):
        s = res[key]
        print(f"{name:<22}{s['n']:>7}{s['p50']:>10.3f}{s['p90']:>10.3f}{s['p99']:>10.3f}{s['max']:>10.3f}")
    for key in ("live_tcp_ms", "realtime_file_ms"):
        res[key]["p99_over_step_p99"] = res[key]["p99"] / res["bare_step_ms"]["p99"]
    ok = max(res["live_tcp_ms"]["p99"], res["realtime_file_ms"]["p99"]) < 1.0
    print(f"target p99 < 1 ms: {'met' if ok else 'MISSED'}; pipeline p99 / bare step p99: live "
          f"{res['live_tcp_ms']['p99_over_step_p99']:.1f}×, file {res['realtime_file_ms']['p99_over_step_p99']:.1f}×")
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
