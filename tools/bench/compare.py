"""Old code against new code, in the same run: did a change make anything slower?

Checks out ``--base`` (a git revision) into a temporary worktree and runs the same benchmark script
from both trees, alternating old/new (and which goes first) round by round, so that both see the
same machine. Every figure is turned into a cost (lower is better) that is already a ratio inside
its own run where the script measures a reference (the C loop for kernels, the independent decoders
for events); each round gives new cost ÷ old cost, and the verdict is on the median of those ratios.

    python tools/bench/compare.py kernels --base HEAD~3 [--rounds 3] [--json out.json]
    python tools/bench/compare.py events imu audio --base 97968c2 --new HEAD

benchmarks: kernels (kernels.py --quick --no-cold), events (stream_events.py --quick),
imu (stream_imu.py --seconds 5), audio (stream_audio.py --quick).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LIMIT = 1.05  # a median ratio above this is a regression

SCRIPTS = {
    "kernels": ("kernels.py", ["--quick", "--no-cold"]),
    "events": ("stream_events.py", ["--quick"]),
    "imu": ("stream_imu.py", ["--seconds", "5"]),
    "audio": ("stream_audio.py", ["--quick"]),
}
REFERENCE_DECODER = {"evt3": "evt3"}  # other inputs (AEDAT 4): "aedat"


def costs(bench: str, doc: dict) -> dict[str, float]:
    """The run's figures as costs, lower is better, each relative to the run's own reference."""
    out = {}
    if bench == "kernels":
        for net, rows in doc["ratios"]["cpu"].items():
            for name, r in rows.items():
                if name.startswith("edgebrain"):
                    us = doc["us_per_step"][net][name]["cpu"]["median"]
                    out[f"{net} {name} (÷ fastest C)" if r["vs_fastest_C"] else f"{net} {name} (µs)"] = (
                        r["vs_fastest_C"] or us)
    elif bench == "events":
        for inp, engines in doc["speed"].items():
            ref = engines[REFERENCE_DECODER.get(inp, "aedat")]["events_per_s"]
            for name, r in engines.items():
                if name.startswith("edgebrain"):
                    out[f"{inp}: {name} (reference decoder's speed ÷ ours)"] = ref / r["events_per_s"]
    elif bench == "imu":
        for key in ("live_tcp_ms", "realtime_file_ms"):
            out[f"{key} p50 ÷ bare step p50"] = doc[key]["p50"] / doc["bare_step_ms"]["p50"]
            out[f"{key} p99 ÷ bare step p99"] = doc[key]["p99_over_step_p99"]
    elif bench == "audio":
        for r in doc["frontend"]:  # process CPU time where the script gives it (steadier on a shared host)
            clock = "cpu" if "rtf_cpu" in r else "wall"
            out[f"{r['mode']} {r['rate']} Hz {r['filterbank']} ×{r['channels']} (1 ÷ real-time factor, {clock})"] = (
                1.0 / r[f"rtf_{clock}"])
    return out


def run_once(tree: Path, bench: str) -> dict:
    """One run of the benchmark from ``tree``, with an empty Numba cache of its own, so that both
    sides compile the same way: the executor recompiled against kernels loaded from a warm cache
    was seen to run up to 15 % slower than when everything compiled together (the benchmarks warm
    up before timing, so compilation is not timed)."""
    script, args = SCRIPTS[bench]
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = Path(f.name)
    with tempfile.TemporaryDirectory(prefix="eb_numba_cache_") as cache:
        p = subprocess.run([sys.executable, str(tree / "tools" / "bench" / script), *args, "--json", str(out)],
                           cwd=str(tree), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                           env=dict(os.environ, NUMBA_CACHE_DIR=cache))
    if p.returncode != 0 and not out.stat().st_size:
        raise SystemExit(f"{tree}: {script} failed (exit {p.returncode}):\n{p.stderr[-2000:]}")
    doc = json.loads(out.read_text())
    out.unlink()
    return doc


def compare(bench: str, old: Path, new: Path, rounds: int) -> dict:
    ratios: dict[str, list[float]] = {}
    for k in range(rounds):
        order = [("old", old), ("new", new)] if k % 2 == 0 else [("new", new), ("old", old)]
        got = {}
        for label, tree in order:
            print(f"  {bench} round {k + 1}/{rounds}: {label} code ...", flush=True)
            got[label] = costs(bench, run_once(tree, bench))
        for name in got["new"].keys() & got["old"].keys():
            ratios.setdefault(name, []).append(got["new"][name] / got["old"][name])
    return {name: {"ratios": r, "median": statistics.median(r)} for name, r in sorted(ratios.items())}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("benches", nargs="+", choices=sorted(SCRIPTS))
    ap.add_argument("--base", required=True, help="git revision of the old code")
    ap.add_argument("--new", help="git revision of the new code (default: this working tree, as it is)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", metavar="FILE")
    a = ap.parse_args(argv)
    if not os.environ.get("EDGEBRAIN_DATA"):  # the old tree is checked out away from ../shared
        sys.path.insert(0, str(REPO))
        from edgebrain.datasets import find_root

        root, _ = find_root(REPO)
        if root is not None:
            os.environ["EDGEBRAIN_DATA"] = str(root)
    with tempfile.TemporaryDirectory(prefix="eb_compare_") as tmp:
        trees = {"old": a.base, "new": a.new}
        paths = {}
        try:
            for label, rev in trees.items():
                if rev is None:
                    paths[label] = REPO
                    continue
                paths[label] = Path(tmp) / label
                subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-q", str(paths[label]), rev],
                               check=True)
            results = {b: compare(b, paths["old"], paths["new"], a.rounds) for b in a.benches}
        finally:
            for label, path in paths.items():
                if path != REPO:
                    subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(path)], check=False)
    worst = 0.0
    for bench, rows in results.items():
        print(f"\n{bench}: new cost ÷ old cost, median of {a.rounds} alternating rounds (< 1: faster now)")
        for name, r in rows.items():
            worst = max(worst, r["median"])
            flag = "  REGRESSION" if r["median"] > LIMIT else ""
            print(f"  {r['median']:6.3f}  {name}   [{', '.join(f'{x:.3f}' for x in r['ratios'])}]{flag}")
    print(f"\nworst median ratio {worst:.3f}: {'no regression' if worst <= LIMIT else 'REGRESSION'} "
          f"beyond {100 * (LIMIT - 1):.0f} %")
    if a.json:
        Path(a.json).write_text(json.dumps({"base": a.base, "new": a.new or "working tree", "rounds": a.rounds, "limit": LIMIT,
                                            "results": results}, indent=1))
    return 0 if worst <= LIMIT else 1


if __name__ == "__main__":
    sys.exit(main())
