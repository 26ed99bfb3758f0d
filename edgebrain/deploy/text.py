"""The deploy report for people (``--json`` prints the same dict)."""

from __future__ import annotations


def _mib(n) -> str:
    if n is None:
        return "?"
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def format_report(r: dict) -> str:
    if r.get("action") == "rolled back":
        return (f"{r['target']}: rolled back: release {r['release']} is current "
                f"(release {r['previous']} kept as previous; --rollback again swaps them back)")
    p = r.get("probe", {})
    lines = [f"target   {r['target']}: {p.get('arch')}, Python {p.get('python')}, "
             f"{_mib(p.get('disk_free'))} free, {_mib(p.get('mem_available'))} memory available"
             + (f", {p['board']}" if p.get("board") else "") + (f", {p['tegra']}" if p.get("tegra") else "")]
    lines.append(f"device   {r.get('device') or 'none given or detected (no profile checks beyond memory)'}")
    b = r.get("bundle", {})
    lines.append(f"bundle   {b.get('id')}: {b.get('files')} files, {_mib(b.get('bytes'))}, {b.get('wheel')}, "
                 f"model {b.get('model')}" + (", offline wheels" if b.get("offline") else ""))
    t = r.get("times", {})
    if r["action"] == "unchanged":
        lines.append(f"release  {r['release']} is already current: nothing copied or installed")
    elif r["action"] == "reactivated":
        lines.append(f"release  {r['release']} was installed before: made current again without copying")
    else:
        s = r.get("smoke", {})
        lines.append(f"copied   with {r.get('copy_tool')} in {t.get('copy_s', 0):.1f} s; "
                     f"{r.get('verified_files')} files checked by SHA-256 on the target")
        lines.append(f"venv     {r.get('venv')}; Numba cache warmed on the target in {r.get('warmup_s')} s "
                     f"(compiles: {r.get('warmup_compiles')}; then {r.get('smoke_compiles')} in the smoke test)")
        lines.append(f"smoke    {s.get('precision')} run of {s.get('steps')} steps on {b.get('smoke_input')}: "
                     + ("bit-identical to this machine" if s.get("match") else "outputs differ from this machine")
                     + ("" if s.get("exact") else " (float path: not required to be identical)")
                     + f" ({r.get('smoke_s')} s)")
        lines.append(f"release  {r['release']} is current" + (f"; {r['previous']} kept for --rollback"
                                                                if r.get("previous") else ""))
    lines.append(f"took     {t.get('total_s', 0):.1f} s")
    return "\n".join(lines)
