"""The model zoo: models trained on real recordings, shipped with edgebrain (``<name>.ebm`` with its
model card in the metadata and as ``<name>.md`` beside it). Addressable as ``zoo:<name>`` wherever a
model is accepted. Training scripts: ``tools/train/``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from .. import ebm
from ..errors import InputError

PREFIX = "zoo:"


def _dir() -> Path:
    return Path(str(resources.files("edgebrain") / "zoo"))


def names() -> list[str]:
    return sorted(p.stem for p in _dir().glob("*.ebm"))


def path(name: str) -> str:
    """File of zoo model ``name`` (with or without the ``zoo:`` prefix)."""
    if name.startswith(PREFIX):
        name = name[len(PREFIX):]
    p = _dir() / f"{name}.ebm"
    if not p.is_file():
        known = ", ".join(PREFIX + n for n in names()) or "none installed"
        raise InputError(f"no zoo model '{name}'; available: {known}")
    return str(p)


def card_path(name: str) -> str:
    return str(Path(path(name)).with_suffix(".md"))


def entries() -> list[dict]:
    """One row per zoo model: name, title, classes, accuracy (float, int8), parameters, size."""
    rows = []
    for n in names():
        graph, _ = ebm.load(path(n))  # the file's own reader: the zoo sits below Model, which resolves zoo: names
        card = graph.meta.get("card") or {}
        acc = card.get("accuracy") or {}
        fp = card.get("footprint") or {}
        rows.append({"name": PREFIX + n, "title": card.get("title", ""), "labels": card.get("labels"),
                     "accuracy_float": acc.get("float"), "accuracy_int8": acc.get("int8"),
                     "params": fp.get("params"), "int8_bytes": fp.get("weights_int8_bytes"),
                     "file": path(n), "card": card_path(n)})
    return rows
