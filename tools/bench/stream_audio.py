#!/usr/bin/env python
"""Audio streaming benchmark: front-end real-time factor, WAV decode throughput, peak memory.

    python tools/bench/stream_audio.py                 # about a minute on 2 cores
    python tools/bench/stream_audio.py --quick         # fewer files and repeats (smoke test)
    python tools/bench/stream_audio.py --json out.json # also write machine-readable results

Input: FSDD recordings (8 kHz, 16-bit mono; ``$EDGEBRAIN_DATA`` or ../shared/datasets) concatenated
into one temporary WAV (outside the repository, deleted afterwards).

* **Front end RTF** (audio seconds processed per wall second, and per CPU second): the ``audio``
  encoder alone on in-memory chunks of 4096 samples, at 16 kHz (the FSDD audio resampled once,
  beforehand, with edgebrain's Resampler) and at the native 8 kHz, for the ``mel`` and ``bandpass``
  filterbanks (the latter also in fixed point, "bandpass int") with 32 and 64 channels, emitting
  send-on-delta spikes. Best of several repeats.
  "end-to-end" rows add WAV decoding and the front end's own 8 → 16 kHz resampling (file → steps).
* **WAV decode**: edgebrain's WavSource (streaming, 4096-frame blocks) in MB/s and million
  samples/s, next to soundfile.blocks (libsndfile, streaming) and scipy.io.wavfile.read (whole file).
* **Peak memory**: VmHWM of a fresh process that streams a file through WavSource(rate=16000) and a
  64-channel bandpass front end, for the concatenated file and for a 10× longer one (the same audio
  ten times): constant memory means the two peaks are (nearly) equal.
Single-threaded (NUMBA/BLAS threads = 1).
"""

from __future__ import annotations

import os
import sys

for _k in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_k] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from edgebrain.stream.resample import Resampler  # noqa: E402
from edgebrain.stream.sources.audio import WavSource  # noqa: E402
from edgebrain.stream.sources.wav import write_wav  # noqa: E402
from edgebrain.stream.base import Samples, SourceInfo  # noqa: E402
from edgebrain.stream.encoders.frontend import AudioFrontEnd  # noqa: E402

CHUNK = 4096


def datasets_dir() -> Path:
    env = os.environ.get("EDGEBRAIN_DATA")
    p = Path(env) if env else ROOT.parent / "shared" / "datasets"
    rec = p / "audio" / "fsdd" / "recordings"
    if not rec.is_dir():
        raise SystemExit(f"FSDD recordings not found at {rec} (set EDGEBRAIN_DATA)")
    return rec


def load_fsdd(rec: Path, n_files: int) -> np.ndarray:
    files = sorted(rec.glob("*.wav"))[:n_files]
    parts = []
    for f in files:
        with WavSource(str(f)) as s:
            parts.append(s.read_all()[:, 0])
    return np.concatenate(parts)


def vmhwm_kib() -> int | None:
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return None


# ------------------------------------------------------------------------------------ front end


def frontend_rtf(x: np.ndarray, rate: int, filterbank: str, channels: int, repeats: int, fixed=False) -> dict:
    info = SourceInfo(format="bench", kind="samples", rate=float(rate), channels=1)
    chunks = [Samples(t=(i + np.arange(len(c))) / rate, values=c[:, None]) for i, c in
              ((i, x[i:i + CHUNK]) for i in range(0, len(x), CHUNK))]
    fe = AudioFrontEnd(filterbank=filterbank, channels=channels, output="delta", threshold=1.0, fixed=fixed)
    fe.configure(info, None, 0.010)
    fe.encode(chunks[0])          # compile / warm up
    best_wall = best_cpu = float("inf")
    steps = 0
    for _ in range(repeats):
        fe.reset()
        w0, c0 = time.perf_counter(), time.process_time()
        steps = sum(len(fe.encode(c)) for c in chunks)
        w, c = time.perf_counter() - w0, time.process_time() - c0
        best_wall, best_cpu = min(best_wall, w), min(best_cpu, c)
    seconds = len(x) / rate
    return {"audio_s": seconds, "steps": steps, "wall_s": best_wall, "cpu_s": best_cpu,
            "rtf_wall": seconds / best_wall, "rtf_cpu": seconds / max(best_cpu, 1e-9),
            "us_per_step": 1e6 * best_wall / max(steps, 1)}


def end_to_end_rtf(path: str, filterbank: str, channels: int, repeats: int) -> dict:
    best = float("inf")
    seconds = steps = 0
    for _ in range(repeats + 1):
        w0 = time.perf_counter()
        with WavSource(path, chunk=CHUNK) as src:
            fe = AudioFrontEnd(filterbank=filterbank, channels=channels, output="delta", rate=16000)
            fe.configure(src.info, None, 0.010)
            steps = sum(len(fe.encode(c)) for c in src.chunks())
            seconds = src.info.duration
        best = min(best, time.perf_counter() - w0) if steps else best
    return {"audio_s": seconds, "steps": steps, "wall_s": best, "rtf_wall": seconds / best}


# ------------------------------------------------------------------------------------ decoding


def decode_throughput(path: str, repeats: int) -> dict:
    size = os.path.getsize(path)
    out = {}

    def timed(fn):
        best = float("inf")
        n = 0
        for _ in range(repeats):
            t0 = time.perf_counter()
            n = fn()
            best = min(best, time.perf_counter() - t0)
        return {"wall_s": best, "MB_per_s": size / best / 1e6, "Msamples_per_s": n / best / 1e6}

    def ours():
        with WavSource(path, chunk=CHUNK) as s:
            return sum(len(c) for c in s.chunks())

    out["edgebrain WavSource (streaming)"] = timed(ours)
    try:
        import soundfile as sf

        out["soundfile.blocks (streaming)"] = timed(
            lambda: sum(len(b) for b in sf.blocks(path, blocksize=CHUNK, dtype="float32")))
    except ImportError:
        pass
    try:
        from scipy.io import wavfile

        def whole():
            _, a = wavfile.read(path)
            return len(np.asarray(a, np.float32) / 32768.0)

        out["scipy.io.wavfile.read (whole file)"] = timed(whole)
    except ImportError:
        pass
    return out


# ------------------------------------------------------------------------------------ memory

WORKER = r"""
import os, sys, json, time
sys.path.insert(0, sys.argv[1])
from edgebrain.stream.sources.audio import WavSource
from edgebrain.stream.encoders.frontend import AudioFrontEnd
t0 = time.perf_counter()
with WavSource(sys.argv[2], rate=16000) as src:
    fe = AudioFrontEnd(filterbank="bandpass", channels=64, output="delta")
    fe.configure(src.info, None, 0.010)
    steps = sum(len(fe.encode(c)) for c in src.chunks())
    f = fe.flush()
    steps += len(f) if f is not None else 0
    dur = src.info.duration
with open("/proc/self/status") as fh:
    hwm = next(int(l.split()[1]) for l in fh if l.startswith("VmHWM:"))
print(json.dumps({"steps": steps, "audio_s": dur, "wall_s": time.perf_counter() - t0, "vmhwm_kib": hwm}))
"""


def peak_memory(path: str) -> dict:
    r = subprocess.run([sys.executable, "-c", WORKER, str(ROOT), path], capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"memory worker failed: {r.stderr}")
    d = json.loads(r.stdout.strip().splitlines()[-1])
    d["file_MB"] = os.path.getsize(path) / 1e6
    return d


# ------------------------------------------------------------------------------------ main


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer files and repeats")
    ap.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    ap.add_argument("--files", type=int, default=None, help="FSDD files to concatenate (default 300, quick 60)")
    a = ap.parse_args(argv)
    n_files = a.files or (60 if a.quick else 300)
    repeats = 2 if a.quick else 5

    rec = datasets_dir()
    x8 = load_fsdd(rec, n_files)
    r = Resampler(8000, 16000)
    x16 = np.concatenate([r.process(x8)[:, 0], r.flush()[:, 0]])
    tmp = Path(tempfile.mkdtemp(prefix="eb_bench_audio_"))
    results = {"machine": {"python": platform.python_version(), "numpy": np.__version__,
                           "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
               "input": {"fsdd_files": n_files, "audio_s": len(x8) / 8000}}
    try:
        base = tmp / "fsdd_cat.wav"
        write_wav(str(base), [x8], 8000, 1)
        long = tmp / "fsdd_cat_x10.wav"
        write_wav(str(long), (x8 for _ in range(10)), 8000, 1)

        rows = []
        for rate, x in ((16000, x16), (8000, x8)):
            for fb in ("mel", "bandpass", "bandpass int"):
                for ch in (32, 64):
                    d = frontend_rtf(x, rate, fb.split()[0], ch, repeats, fixed=fb.endswith("int"))
                    d.update(rate=rate, filterbank=fb, channels=ch, mode="front end")
                    rows.append(d)
        for fb in ("mel", "bandpass"):
            d = end_to_end_rtf(str(base), fb, 64, max(1, repeats // 2))
            d.update(rate=16000, filterbank=fb, channels=64, mode="end-to-end (8k WAV → 16k)")
            rows.append(d)
        results["frontend"] = rows
        results["decode"] = decode_throughput(str(base), repeats)
        results["memory"] = {"1x": peak_memory(str(base)), "10x": peak_memory(str(long))}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"input: {n_files} FSDD files concatenated, {results['input']['audio_s']:.1f} s of audio at 8 kHz\n")
    print("front end (output=delta spikes, hop 10 ms), real-time factor = audio s / wall s")
    print(f"  {'mode':<28} {'rate':>6} {'filterbank':<12} {'ch':>3} {'RTF wall':>9} {'RTF cpu':>8} {'µs/step':>8}")
    for d in rows:
        print(f"  {d['mode']:<28} {d['rate']:>6} {d['filterbank']:<12} {d['channels']:>3} {d['rtf_wall']:>9.0f} "
              f"{d.get('rtf_cpu', float('nan')):>8.0f} {1e6 * d['wall_s'] / max(d['steps'], 1):>8.2f}")
    print("\nWAV decode (16-bit mono 8 kHz)")
    for name, d in results["decode"].items():
        print(f"  {name:<38} {d['MB_per_s']:>8.0f} MB/s {d['Msamples_per_s']:>8.1f} Msamples/s")
    m = results["memory"]
    print("\npeak memory, file → WavSource(rate=16000) → bandpass 64-channel front end (fresh process)")
    for k in ("1x", "10x"):
        d = m[k]
        print(f"  {k:>4}: {d['file_MB']:7.1f} MB file, {d['audio_s']:8.1f} s audio, {d['steps']:>7} steps, "
              f"VmHWM {d['vmhwm_kib'] / 1024:7.1f} MiB")
    ratio = m["10x"]["vmhwm_kib"] / m["1x"]["vmhwm_kib"]
    results["memory"]["ratio_10x_over_1x"] = ratio
    print(f"  10× longer file: peak memory ×{ratio:.3f}")
    target = min(d["rtf_wall"] for d in rows if d["mode"] == "front end" and d["rate"] == 16000)
    verdict = "met" if target >= 200 else "MISSED"
    print(f"\nslowest 16 kHz front end: {target:.0f}× real time (target ≥ 200×): {verdict}")
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
