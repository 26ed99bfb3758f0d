"""The sidecar JSON beside a model file that is not an edgebrain model (``.tflite``, ``.onnx``): where it
is and reading it, with one clear line naming the sidecar when it is not a JSON object of known fields."""

from __future__ import annotations

import json
import os

from .errors import InputError


def sidecar_path(path: str) -> str | None:
    """The sidecar of the model at ``path``: ``PATH.json`` (``m.onnx.json``), else the name with ``.json`` in
    place of the model's extension; None when neither exists."""
    for c in (path + ".json", os.path.splitext(path)[0] + ".json"):
        if os.path.isfile(c):
            return c
    return None


def read_fields(side: str, keys, example: str, doc: str | None = None) -> dict:
    """The JSON object in the sidecar file ``side``. Not JSON, not an object, or a field not in ``keys``: an
    :class:`InputError` naming the sidecar (with ``example`` of an object, and ``doc`` in parentheses)."""
    see = f" ({doc})" if doc else ""
    try:
        with open(side, encoding="utf-8") as f:
            d = json.load(f)
    except (OSError, ValueError) as e:
        raise InputError(f"cannot read it as JSON: {' '.join(str(e).split())}", file=side) from None
    if not isinstance(d, dict):
        raise InputError(f"a JSON {type(d).__name__}; expected an object such as {example}{see}", file=side)
    unknown = sorted(set(d) - set(keys))
    if unknown:
        raise InputError(f"unknown field '{unknown[0]}'; the fields are {', '.join(keys)}{see}", file=side)
    return d


def read_sidecar(path: str, keys, example: str, doc: str | None = None) -> tuple[dict | None, str | None]:
    """``(fields, sidecar path)`` of the model at ``path`` (:func:`read_fields`), ``(None, None)`` without one."""
    side = sidecar_path(path)
    if side is None:
        return None, None
    return read_fields(side, keys, example, doc), side
