"""Write edgebrain/data/manifests.json.gz: size and SHA-256 of every file of each zoo dataset.

Run with the datasets present (default ../shared/datasets); the manifest is what `edgebrain data
fetch` checks downloads against.

    python tools/make_manifests.py [--root ../shared/datasets]
"""

import argparse
import gzip
import json
from pathlib import Path

from edgebrain.datasets import DATASETS, sha256

# the files each dataset consists of (patterns under its path); anything else there is ignored
PATTERNS = {
    "sp-sw-har": ["s??/s??_??_sw.csv", "subjects_info.csv", "executions_info.csv"],
    "basicmotions": ["BasicMotions_TRAIN.ts", "BasicMotions_TEST.ts"],
    "fsdd": ["recordings/*.wav"],
    "nmnist-small": ["*.bs2", "train1K.txt", "test100.txt"],
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", default=str(Path(__file__).resolve().parents[2] / "shared" / "datasets"))
    a = ap.parse_args()
    out = {}
    for name, d in DATASETS.items():
        base = Path(a.root) / d.path
        files = sorted({p for pat in PATTERNS[name] for p in base.glob(pat) if p.is_file()},
                       key=lambda p: (p.suffix not in (".txt", ".csv", ".ts"), str(p)))
        if not files:
            raise SystemExit(f"{base}: no files for {name}")
        out[name] = {str(p.relative_to(base)): [p.stat().st_size, sha256(p)] for p in files}
        print(f"{name}: {len(files)} files")
    dest = Path(__file__).resolve().parents[1] / "edgebrain" / "data" / "manifests.json.gz"
    dest.write_bytes(gzip.compress(json.dumps(out, separators=(",", ":")).encode(), mtime=0))
    print("wrote", dest, dest.stat().st_size, "bytes")


if __name__ == "__main__":
    main()
