"""``rapl``: Intel/AMD RAPL energy counters through the Linux powercap sysfs.

    /sys/class/powercap/intel-rapl:<pkg>/energy_uj            cumulative µJ
                                        /max_energy_range_uj   the value at which energy_uj wraps to 0
                                        /name                  package-0, psys, ...
                                        /intel-rapl:<pkg>:<n>  sub-zones: core, uncore, dram

By default the meter sums the top-level ``package-*`` zones (what the CPU package draws); pass
``domains=["package-0", "dram"]`` (zone names or directory names) to choose others. Counters wrap
at ``max_energy_range_uj``; the meter unwraps them on every read (one wrap between two reads is
detectable, so read at least every few seconds -- the sampler reads every 10 ms).

Since Linux 5.10 (CVE-2020-8694, "PLATYPUS") ``energy_uj`` is readable by root only.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .base import Counter, Meter, MeterAbsent, MeterGarbage, MeterPermission, MeterDisconnected, Sample

DEFAULT_ROOT = "/sys/class/powercap"

PERMISSION_HELP = (
    "permission denied reading {path}: since Linux 5.10 RAPL energy_uj is readable by root only "
    "(CVE-2020-8694). Run as root, or grant read access until the next boot with "
    "`sudo chmod o+r /sys/class/powercap/intel-rapl:*/energy_uj /sys/class/powercap/intel-rapl:*:*/energy_uj`, "
    "or permanently with a udev rule or a sysfsutils line "
    "`mode class/powercap/intel-rapl:0/energy_uj = 0444` in /etc/sysfs.conf")


def _read_file(path: Path) -> str:
    with open(path) as f:
        return f.read()


class RaplMeter(Meter):
    name = "rapl"
    kind = "energy"
    period_s = 0.01          # poll interval; the counters update about every 1 ms
    resolution_j = 61e-6     # the usual RAPL energy unit, 2^-14 J (the counter itself is in µJ)
    scope = "CPU package (RAPL)"

    def __init__(self, root: str | os.PathLike = DEFAULT_ROOT, domains: list[str] | str | None = None, **kw):
        super().__init__(**kw)
        self.root = Path(root)
        self.target = str(self.root)
        if isinstance(domains, str):
            domains = [d for d in domains.split(",") if d]
        self.domains = domains
        self.zones: list[tuple[str, Path, Counter]] = []

    def _zone_dirs(self) -> list[Path]:
        if not self.root.is_dir():
            raise self.error(MeterAbsent, f"no powercap sysfs at {self.root} (no RAPL: not an Intel/AMD x86 "
                                          "machine, or the intel_rapl_msr module is not loaded)")
        pat = re.compile(r"^intel-rapl:\d+(:\d+)?$")
        return sorted((p for p in self.root.iterdir() if pat.match(p.name)), key=lambda p: p.name)

    def _open(self) -> None:
        dirs = self._zone_dirs()
        names = {}
        for d in dirs:
            try:
                names[d] = _read_file(d / "name").strip()
            except FileNotFoundError:
                names[d] = d.name
            except PermissionError:
                raise self.error(MeterPermission, PERMISSION_HELP.format(path=d / "name")) from None
        if self.domains:
            chosen = []
            for want in self.domains:
                hit = [d for d in dirs if names[d] == want or d.name == want]
                if not hit:
                    found = ", ".join(f"{d.name}={names[d]}" for d in dirs) or "none"
                    raise self.error(MeterAbsent, f"no RAPL zone named {want!r} (found: {found})")
                chosen.extend(h for h in hit if h not in chosen)
        else:
            chosen = [d for d in dirs if d.name.count(":") == 1 and names[d].startswith("package")]
            if not chosen:
                chosen = [d for d in dirs if d.name.count(":") == 1]
        if not chosen:
            raise self.error(MeterAbsent, f"no intel-rapl:* zones under {self.root}")
        self.zones = []
        for d in chosen:
            wrap = None
            try:
                wrap = float(int(_read_file(d / "max_energy_range_uj").strip()))
            except FileNotFoundError:
                pass
            except PermissionError:
                raise self.error(MeterPermission, PERMISSION_HELP.format(path=d / "max_energy_range_uj")) from None
            except ValueError:
                raise self.error(MeterGarbage, f"{d / 'max_energy_range_uj'} does not hold an integer") from None
            self.zones.append((names[d], d / "energy_uj", Counter(wrap)))
        self.scope = "RAPL " + "+".join(n for n, _, _ in self.zones)
        self._read()   # check that the counters are readable now, not in the middle of a run

    def _read(self) -> Sample:
        t = self.clock.now()
        raw = []
        for name, path, _ in self.zones:
            try:
                text = _read_file(path)
            except PermissionError:
                raise self.error(MeterPermission, PERMISSION_HELP.format(path=path)) from None
            except FileNotFoundError:
                raise self.error(MeterDisconnected, f"{path} vanished") from None
            except OSError as e:
                raise self.error(MeterDisconnected, f"cannot read {path}: {e}") from None
            try:
                raw.append(int(text.strip()))
            except ValueError:
                raise self.error(MeterGarbage, f"{path} holds {text.strip()[:40]!r}, not an integer µJ count") from None
        rails = {}
        for (name, _, counter), v in zip(self.zones, raw):
            rails[name] = counter.update(float(v)) * 1e-6
        return Sample(t=t, energy_j=sum(rails.values()), rails=rails)

    @property
    def wraps(self) -> int:
        return sum(c.wraps for _, _, c in self.zones)
