"""Report helpers of tools/bench/kernels.py: the machine's description, stolen CPU time, and the
results table."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess

import numpy as np


def steal_seconds():
    """Seconds of CPU time stolen by the hypervisor so far (all CPUs; /proc/stat), or None.
    Stolen time slows everything measured while it happens, on either clock."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def machine_info(have):
    info = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "python": platform.python_version(), "platform": platform.platform()}
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in lscpu.splitlines():
            k, _, v = line.partition(":")
            if k.strip() in ("Model name", "CPU(s)", "Thread(s) per core", "L2 cache", "L3 cache"):
                info[k.strip()] = v.strip()
        flags = next((ln for ln in lscpu.splitlines() if ln.startswith("Flags")), "")
        info["simd"] = " ".join(f for f in ("avx2", "avx512f", "avx512bw", "avx512_vnni") if f" {f}" in flags)
    except OSError:
        pass
    import numba

    info["numpy"] = np.__version__
    info["numba"] = numba.__version__
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        info["numpy_blas"] = f"{blas.get('name')} {blas.get('version')}"
    except Exception:  # noqa: BLE001 - informational only
        pass
    info["OPENBLAS_CORETYPE"] = os.environ.get("OPENBLAS_CORETYPE", "(unset)")
    info.update(have)
    return info


def fmt_us(v):
    if v is None:
        return "—"
    return f"{v * 1e6:9.2f}" if v * 1e6 < 1000 else f"{v * 1e6:9.0f}"


def table(results, ratios, clk, ratios_cols=True):
    names = []
    for r in results.values():
        for k in r:
            if k not in names:
                names.append(k)
    cols = "".join(f" {k:>10s} | {'/C':>6s} | {'snnT/x':>7s} | {'ORT/x':>6s} |" if ratios_cols else f" {k:>10s} |"
                   for k in results)
    lines = [f"| {'engine':24s} |" + cols,
             "|" + "-" * 26 + "|" + ("------------|--------|---------|--------|" if ratios_cols else "------------|")
             * len(results)]
    for nm in names:
        row = f"| {nm:24s} |"
        for key in results:
            t = results[key].get(nm)
            med = t[clk][0] if t else None
            row += f" {fmt_us(med):>10s} |"
            if ratios_cols:
                rr = ratios[key].get(nm, {})
                vc, vs, vo = rr.get("vs_fastest_C"), rr.get("speedup_vs_snnTorch"), rr.get("speedup_vs_onnxruntime")
                row += (f" {('%.2f' % vc) if vc else '—':>6s} | {('%.0f' % vs) if vs else '—':>7s} |"
                        f" {('%.1f' % vo) if vo else '—':>6s} |")
        lines.append(row)
    return "\n".join(lines)
