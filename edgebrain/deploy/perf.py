"""``edgebrain bench MODEL --remote URL --write-profile DEVICE``: a benchmark run on the board, its figures
written into a device profile's ``[perf]`` table as measured (:mod:`edgebrain.devices.measured`).

What is measured, and how it becomes ``[perf]``:

* ``measured_step_us``: the median time of one ``Session.step`` from Python at batch 1 (bench's
  ``latency_us.p50``); ``measured_run_step_us``: the time per step of the compiled ``Session.run`` loop
  at batch 1 (``1e6 / throughput.steps_per_s_batch1``);
* ``step_overhead_us`` = the first minus the second (never below 0: on a busy machine the single timed
  run can come out slower than the median step): what calling one step from Python costs beyond the step;
* the ops per cycle of the benchmarked precision and ``neuron_update_cycles``: the profile's figures
  scaled by one factor, so that the latency estimate of ``edgebrain devices fit`` (worst-case operation
  counts of the benchmarked model, the profile's ``cpu.clock_mhz``) equals the measured compiled step time
  (at most the median step time), and with the overhead the median step time.
  With one model measured, the split between synaptic operations and neuron updates stays the profile's;
  the other precision's ops per cycle is not measured and keeps its estimate.

So ``devices fit`` of the benchmarked model on the written profile estimates its measured step time. The
board (device-tree model, else the CPU's name; its architecture), the date (UTC), the board's edgebrain
version and the model (argument, file name, SHA-256) are recorded beside the figures.
"""

from __future__ import annotations

import hashlib
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ..devices import load_file
from ..devices import measured as DM
from ..devices.schema import Device
from ..energy.estimate import counts_for
from ..errors import InputError
from ..version import __version__
from .target import Ssh, norm_arch

#: what the board is, read on the board: $1 the deploy folder (its venv's edgebrain version), may be empty
BOARD = r"""
printf 'arch=%s\n' "$(uname -m)"
m=""
for f in /proc/device-tree/model /sys/firmware/devicetree/base/model; do
    if [ -r "$f" ]; then m=$(tr -d '\000' < "$f"); break; fi
done
printf 'model=%s\n' "$m"
printf 'cpu=%s\n' "$(grep -m 1 -E '^(model name|Hardware|Model)[[:space:]]*:' /proc/cpuinfo 2>/dev/null \
    | sed 's/^[^:]*:[[:space:]]*//')"
P=${1:-}
if [ -n "$P" ]; then
    case $P in /*) ;; *) P="$HOME/$P" ;; esac
    printf 'edgebrain=%s\n' "$("$P/venv/bin/python" -I -c 'from edgebrain.version import __version__; print(__version__)' 2>/dev/null)"
fi
"""


@dataclass
class Destination:
    """Where the measured profile goes: the profile it starts from, the file written, the base's Device."""

    base: Path
    out: Path
    device: Device


def prepare(spec: str) -> Destination:
    """Check ``--write-profile SPEC`` before anything runs: the profile exists, is one a Linux board's
    benchmark can describe, and its destination can be written (one line and exit code 2 otherwise)."""
    base, out = DM.destination(spec)
    dev = load_file(base)
    DM.check_base(dev)
    DM.check_writable(out)
    return Destination(base, out, dev)


def _parse_board(text: str) -> dict:
    info = {}
    for line in text.splitlines():
        k, eq, v = line.partition("=")
        if eq and k in ("arch", "model", "cpu", "edgebrain"):
            info[k] = v.strip()
    return info


def board_remote(ssh: Ssh, path: str) -> dict:
    """The board behind ``ssh``: ``arch``, ``model`` (device tree), ``cpu`` and its deployed ``edgebrain``."""
    res = ssh.run(BOARD, [path], timeout=60, what="reading what the board is")
    return _parse_board(res.stdout)


def board_local() -> dict:
    """This machine, as :func:`board_remote` describes a board."""
    res = subprocess.run(["sh", "-c", BOARD, "edgebrain-board", ""], capture_output=True, text=True, timeout=60,
                         stdin=subprocess.DEVNULL)
    return {**_parse_board(res.stdout), "edgebrain": __version__}


def board_name(board: dict) -> str:
    name = board.get("model") or board.get("cpu") or "unknown board"
    return f"{name} ({board.get('arch') or 'unknown architecture'})"


def check_board(dev: Device, board: dict) -> None:
    """Refuse a profile made for another architecture: its [perf] would describe another machine."""
    mine, theirs = norm_arch(board.get("arch", "")), norm_arch(dev.data["cpu"]["arch"])
    if mine and theirs and mine != theirs:
        raise InputError(f"the board is {mine} ({board_name(board)}) but profile {dev.name} is for {theirs}: its "
                         "[perf] would describe another machine; give a profile of this board (copy one, set its "
                         "cpu.arch and cpu.clock_mhz)", file=dev.path)


def figures(bench: dict, counts: dict, dev: Device, model_label: str, date: str) -> dict:
    """The measured [perf] figures (``{field: {"value", "note"}}``) from bench's JSON, the benchmarked model's
    worst-case ``counts`` (:func:`edgebrain.energy.estimate.counts_for`) and the base profile ``dev``."""
    if "runtime" in bench:
        raise InputError(f"a model run by {bench['runtime']} (TFLite, ONNX), not by edgebrain's kernels: its timings "
                         "do not describe the profile's [perf]; benchmark a spiking model (.ebm or zoo:NAME)")
    precision = bench["precision"]
    step_us = float(bench["latency_us"]["p50"])
    run_us = 1e6 / float(bench["throughput"]["steps_per_s_batch1"])
    perf, clock = dev.data["perf"], float(dev.data["cpu"]["clock_mhz"])
    key = f"{precision}_ops_per_cycle"
    steps = max(int(counts["steps"]), 1)
    syn = (counts["eff_macs"] + counts["eff_acs"]) / steps
    neu = counts["membrane_updates"] / steps
    where = f"{model_label} at {precision} precision, {date}"
    compute_us = min(run_us, step_us)
    out = {"step_overhead_us": {"value": step_us - compute_us, "note": (
        f"measured: Session.step from Python ({step_us:.4g} us, median) minus the compiled run's time per step "
        f"({run_us:.4g} us), batch 1, never below 0; {where}")}}
    est_cycles = syn / perf[key] + neu * perf["neuron_update_cycles"]
    if est_cycles > 0:
        k = compute_us * clock / est_cycles
        how = (f"scaled by {k:.4g} from {perf[key]:g} ops per cycle and {perf['neuron_update_cycles']:g} cycles per "
               f"neuron update, so that the estimate for {syn:.0f} synaptic ops and {neu:.0f} membrane updates per "
               f"step (worst case) at {clock:g} MHz equals the measured {compute_us:.4g} us per step without the "
               f"overhead; {where}")
        out[key] = {"value": perf[key] / k, "note": "fitted: " + how}
        out["neuron_update_cycles"] = {"value": perf["neuron_update_cycles"] * k, "note": "fitted: " + how}
    return out


def _sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write(dest: Destination, bench: dict, model_file, model_label: str, board: dict) -> dict:
    """Write the measured figures of ``bench`` (the JSON of bench on the board, of ``model_file`` here) into
    ``dest``; what was written, as plain data."""
    from ..model import Model

    date = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    counts = counts_for(Model.load(str(model_file)), bench["precision"])
    figs = figures(bench, counts, dest.device, model_label, date)
    info = {"measured_on": board_name(board), "measured_date": date,
            "measured_edgebrain": board.get("edgebrain") or "unknown",
            "measured_model": f"{model_label} ({Path(model_file).name}, sha256 {_sha256(model_file)[:16]})",
            "measured_precision": bench["precision"],
            "measured_step_us": float(bench["latency_us"]["p50"]),
            "measured_run_step_us": 1e6 / float(bench["throughput"]["steps_per_s_batch1"])}
    dev = DM.write_measured_perf(dest.base, dest.out, figs, info)
    return {"path": str(dest.out), "device": dev.name, "from": str(dest.base),
            "perf": {k: v for k, v in dev.data["perf"].items() if k != "note"},
            "measured": sorted(figs)}


def fetch_model(ssh: Ssh, bench_model: str, work: str) -> Path:
    """The model the board benchmarked (bench's ``model``: a path on the board, relative to the active
    release's folder), copied here into ``work``."""
    from .remote import scp

    path = bench_model if bench_model.startswith("/") else f"{ssh.target.path}/current/{bench_model}"
    local = Path(work) / (Path(bench_model).name or "model.ebm")
    scp(ssh, [f"{ssh.target.destination}:{path}"], str(local))
    return local


def format_written(res: dict) -> str:
    p = res["perf"]
    return (f"wrote measured [perf] of {res['device']} to {res['path']}"
            + (f" (a copy of {res['from']})" if res["from"] != res["path"] else "")
            + f": step {p['measured_step_us']:.4g} us, compiled step {p['measured_run_step_us']:.4g} us, "
            f"overhead {p['step_overhead_us']:.4g} us; measured on {p['measured_on']}")


def model_here(model: str, bench: dict, ssh: Ssh | None, work: str) -> Path:
    """The benchmarked model as a file here: the file given, a zoo model, or a copy of the board's."""
    from .. import zoo

    if Path(model).is_file():
        return Path(model)
    if model.startswith("zoo:"):
        return Path(zoo.path(model[4:]))
    if ssh is None:
        return Path(bench["model"])
    return fetch_model(ssh, bench["model"], work)


def temp_folder():
    return tempfile.TemporaryDirectory(prefix="edgebrain-perf-")


__all__ = ["BOARD", "Destination", "board_local", "board_name", "board_remote", "check_board", "fetch_model",
           "figures", "format_written", "model_here", "prepare", "temp_folder", "write"]
