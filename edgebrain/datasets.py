"""Public recordings the model zoo is trained on and the demos play: where to find them, how to fetch them.

A dataset is looked for, in this order, in ``$EDGEBRAIN_DATA/<path>``, ``shared/datasets/<path>``
beside the source checkout edgebrain runs from (an editable or source install) and beside the working
directory (``../shared/datasets``), and the user cache (``$EDGEBRAIN_CACHE`` or
``~/.cache/edgebrain/datasets``). ``fetch`` downloads a dataset file by file
from its original public location (or a mirror with the same layout, e.g. ``file:///srv/datasets``)
into the cache, checking each file's size and SHA-256 against the manifest shipped with edgebrain
(``data/manifests.json.gz``, written by ``tools/make_manifests.py``); a file that does not match is
deleted and reported, never used. At most the manifest's size plus one byte is read of each file,
into a temporary file with an unpredictable name (:func:`edgebrain.safeio.atomic_write`) that is
renamed into place only when it matches and removed on every other way out (an error, Ctrl-C,
SIGTERM); links planted in the cache are never followed.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from .errors import InputError
from .safeio import atomic_write


@dataclass(frozen=True)
class Dataset:
    name: str
    path: str          # relative location under a data root (and in a mirror)
    url: str           # original public location; manifest paths are appended
    licence: str
    description: str


DATASETS = {d.name: d for d in (
    Dataset("sp-sw-har", "imu/sp-sw-har",
            "https://raw.githubusercontent.com/GeoTecINIT/sp-sw-har-dataset/1408d85/DATA/",
            "CC BY 4.0", "smartwatch accelerometer + gyroscope, 100 Hz, 18 subjects, per-sample activity labels "
            "(Matey-Sanz et al. 2023, doi 10.5281/zenodo.8398688)"),
    Dataset("basicmotions", "imu/basicmotions",
            "https://raw.githubusercontent.com/sktime/sktime/main/sktime/datasets/data/BasicMotions/",
            "BSD-3-Clause (sktime)", "UEA BasicMotions: 6-axis smartwatch IMU, 10 Hz, 4 classes, 40 + 40 cases"),
    Dataset("fsdd", "audio/fsdd",
            "https://raw.githubusercontent.com/Jakobovski/free-spoken-digit-dataset/26eb9aa/",
            "CC BY-SA 4.0", "Free Spoken Digit Dataset: 8 kHz WAV, 5 speakers, digits 0-9"),
    Dataset("nmnist-small", "events/nmnist-small",
            "https://raw.githubusercontent.com/bamsumit/slayerPytorch/8f4654e/example/NMNISTsmall/",
            "CC BY-SA 4.0", "N-MNIST subset: 1,000 training and 100 test samples (SLAYER .bs2)"),
)}


def _get(name: str) -> Dataset:
    try:
        return DATASETS[name]
    except KeyError:
        raise InputError(f"unknown dataset '{name}'; known: {', '.join(DATASETS)}") from None


@lru_cache(maxsize=1)
def manifests() -> dict:
    """{dataset: {relative file path: [size, sha256]}}."""
    raw = (resources.files("edgebrain") / "data" / "manifests.json.gz").read_bytes()
    return json.loads(gzip.decompress(raw))


def cache_dir() -> Path:
    return Path(os.environ.get("EDGEBRAIN_CACHE") or Path.home() / ".cache" / "edgebrain") / "datasets"


def checkout() -> Path | None:
    """The source checkout this package is imported from (editable or source install), else None."""
    top = Path(__file__).resolve().parent.parent
    return top if (top / "pyproject.toml").is_file() and (top / "edgebrain").is_dir() else None


def roots() -> list[tuple[str, Path]]:
    """Candidate data roots in search order, as absolute paths, with where each came from."""
    out = []
    if os.environ.get("EDGEBRAIN_DATA"):
        out.append(("EDGEBRAIN_DATA", Path(os.environ["EDGEBRAIN_DATA"]).expanduser().absolute()))
    top = checkout()
    if top is not None:
        out.append(("beside the checkout", top.parent / "shared" / "datasets"))
    here = Path.cwd().parent / "shared" / "datasets"
    if all(here.resolve() != p.resolve() for _, p in out):  # a pip install run from its checkout
        out.append(("../shared/datasets from the working directory", here))
    out.append(("cache", cache_dir().expanduser().absolute()))
    return out


def searched(name: str | None = None) -> str:
    """Where datasets (or dataset ``name``) were looked for, in words with absolute paths, for a
    message that says how to point edgebrain at them."""
    sub = _get(name).path if name else ""
    where = "; ".join(f"{w}: {r / sub if sub else r}" for w, r in roots())
    if not os.environ.get("EDGEBRAIN_DATA"):
        where = "EDGEBRAIN_DATA not set; " + where
    return where


def find(name: str, required_file: str | None = None) -> Path | None:
    """Directory of dataset ``name`` in the first root that holds it (``required_file``, default the
    manifest's first file, must exist there), else None."""
    d = _get(name)
    probe = required_file or next(iter(manifests().get(name, {})), None)
    for _, root in roots():
        p = root / d.path
        if p.is_dir() and (probe is None or (p / probe).is_file()):
            return p
    return None


def locate(name: str) -> Path:
    p = find(name)
    if p is None:
        raise InputError(f"dataset '{name}' not found (looked in {searched(name)}); run `edgebrain data fetch "
                         f"{name}` or set EDGEBRAIN_DATA to the folder holding {_get(name).path}")
    return p


def nmnist_labels(path: Path) -> dict[int, int]:
    """Sample number → digit, from an N-MNIST split list (``train1K.txt``, ``test100.txt``: a
    ``#sample #class`` header line, then one ``number<TAB>class`` line per sample)."""
    out = {}
    for line in Path(path).read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].isdigit():
            out[int(parts[0])] = int(float(parts[1]))
    return out


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch(name: str, mirror: str | None = None, progress=None, timeout: float = 30.0) -> dict:
    """Download dataset ``name`` into the cache; files already there with the right hash are kept.

    ``mirror``: a base URL laid out like ``../shared/datasets`` (``<mirror>/<dataset path>/<file>``);
    default ``$EDGEBRAIN_MIRROR``, else the dataset's original location. Returns counts and the
    destination; raises InputError naming the first file that could not be fetched or verified."""
    d = _get(name)
    files = manifests().get(name)
    if not files:
        raise InputError(f"no manifest for dataset '{name}'")
    mirror = mirror or os.environ.get("EDGEBRAIN_MIRROR")
    base = (mirror.rstrip("/") + "/" + d.path + "/") if mirror else d.url
    dest = cache_dir() / d.path
    dest.mkdir(parents=True, exist_ok=True)
    got = kept = 0
    nbytes = 0
    for rel, (size, digest) in files.items():
        out = dest / rel
        if out.is_file() and out.stat().st_size == size and sha256(out) == digest:
            kept += 1
            if progress:
                progress(1)
            continue
        out.parent.mkdir(parents=True, exist_ok=True)
        url = base + rel
        try:
            n = _download(url, out, size, digest, timeout)
        except (urllib.error.URLError, OSError, ValueError) as e:
            raise InputError(f"dataset '{name}': could not download {url}: {getattr(e, 'reason', e)} "
                             f"({got} files fetched, {kept} already present)") from None
        except InputError as e:
            raise InputError(f"dataset '{name}': {url} {e.detail}") from None
        got += 1
        nbytes += n
        if progress:
            progress(1)
    return {"dataset": name, "destination": str(dest), "fetched": got, "already_present": kept,
            "bytes_fetched": nbytes, "source": base}


def _download(url: str, out: Path, size: int, digest: str, timeout: float) -> int:
    """Download ``url`` to ``out`` if it has exactly ``size`` bytes with SHA-256 ``digest``: at
    most ``size + 1`` bytes are read (a longer body fails at once), into an unpredictably named
    temporary file beside ``out`` that is renamed into place only when it matches, and removed
    on every other way out (an error, Ctrl-C, SIGTERM). Returns the number of bytes."""
    h = hashlib.sha256()
    n = 0
    with atomic_write(out, "dataset file") as f, urllib.request.urlopen(url, timeout=timeout) as r:
        declared = r.headers.get("Content-Length")
        if declared is not None and declared.strip().isdigit() and int(declared) != size:
            raise InputError(f"declares {int(declared)} bytes; the manifest says {size} bytes; nothing was kept")
        read = getattr(r, "read1", r.read)  # what has arrived, not waiting for a whole block
        while True:
            block = read(min(1 << 20, size + 1 - n))
            if not block:
                break
            n += len(block)
            if n > size:
                raise InputError(f"sends more than the manifest's {size} bytes (stopped after {n}); nothing was kept")
            h.update(block)
            f.write(block)
        if n != size or h.hexdigest() != digest:
            raise InputError(f"does not match the manifest (got {n} bytes, sha256 {h.hexdigest()[:16]}…; expected "
                             f"{size} bytes, sha256 {digest[:16]}…); the file was discarded")
    return n


def status() -> list[dict]:
    """Each known dataset, where it was found (or not), its licence."""
    out = []
    for name, d in DATASETS.items():
        p = find(name)
        out.append({"name": name, "found": str(p) if p else None, "files": len(manifests().get(name, {})),
                    "licence": d.licence, "description": d.description, "url": d.url})
    return out


def find_root(near: Path | None = None) -> tuple[Path | None, str]:
    """The folder of real recordings and, when there is none, why: ``$EDGEBRAIN_DATA`` if set
    (it must be a directory), else ``shared/datasets`` beside the folder ``near`` (default: the
    working directory), the layout of a checkout next to the project's shared data."""
    env = os.environ.get("EDGEBRAIN_DATA")
    if env:
        p = Path(env).expanduser()
        if p.is_dir():
            return p, ""
        return None, f"EDGEBRAIN_DATA={env} is not a directory"
    p = ((near or Path.cwd()).parent / "shared" / "datasets").resolve()
    if p.is_dir():
        return p, ""
    return None, (f"real recordings not found: set EDGEBRAIN_DATA to a folder laid out like the datasets "
                  f"(edgebrain data list), provide {p}, or run edgebrain data fetch NAME")
