"""Streaming benchmarks in one run: events, IMU latency, audio front end.

Runs, one after the other on the same machine:

* ``stream_events.py`` — event decoding + binning throughput (EVT 3.0, AEDAT 4.0) against the
  independent decoders, and peak memory for a recording vs a 10× longer one;
* ``stream_imu.py`` — IMU end-to-end latency, sample arrival → decision, live TCP and realtime file;
* ``stream_audio.py`` — audio front-end real-time factor and peak memory vs file length;

then prints the issue's targets and whether each is met. Each script can also be run alone.

    python tools/bench/stream.py [--quick] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run(script: str, args: list[str]) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = f.name
    print(f"\n=== {script} {' '.join(args)}", flush=True)
    p = subprocess.run([sys.executable, str(HERE / script), *args, "--json", out])
    if p.returncode != 0:
        print(f"{script} failed with exit code {p.returncode}")
        return {}
    return json.loads(Path(out).read_text())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", metavar="FILE")
    a = ap.parse_args()
    q = ["--quick"] if a.quick else []
    res = {
        "events": run("stream_events.py", q),
        "imu": run("stream_imu.py", ["--seconds", "5" if a.quick else "20"]),
        "audio": run("stream_audio.py", q),
    }
    print("\n=== targets (issue 3)")
    imu = res["imu"]
    if imu:
        p99 = max(imu["live_tcp_ms"]["p99"], imu["realtime_file_ms"]["p99"])
        print(f"IMU latency p99 < 1 ms: live {imu['live_tcp_ms']['p99']:.3f} ms, file "
              f"{imu['realtime_file_ms']['p99']:.3f} ms -> {'met' if p99 < 1 else 'MISSED'}")
    print("event and audio targets: see the verdict lines of stream_events.py and stream_audio.py above")
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
