"""Where the stream pieces are found, by name.

Each module listed below may define any of these dictionaries (module-level constants):

* ``FORMATS``: format name → :class:`FileFormat` (how to recognise a file and open it as a Source);
* ``SCHEMES``: URL scheme → callable(url: urllib.parse.SplitResult, **options) → Source;
* ``ENCODERS``, ``DECODERS``, ``SINKS``: name → class, built from spec strings ("name:key=value,...").

Modules are imported on first use only, so ``import edgebrain`` stays light.
"""

from __future__ import annotations

import importlib
import os
import urllib.parse
from dataclasses import dataclass
from typing import Callable

from ..errors import FormatError, InputError
from . import base

MODULES = (
    "edgebrain.stream.sources.imu",         # IMU CSV, WISDM raw, UEA .ts
    "edgebrain.stream.sources.live",        # serial://, tcp://, udp:// (lines: livelines; format=pcm|wav|evt3|...: livebin)
    "edgebrain.stream.sources.events",      # event-camera files (AEDAT, EVT, .dat, N-MNIST, .npy)
    "edgebrain.stream.encoders.binning",    # event binning encoder
    "edgebrain.stream.sources.audio",       # WAV, FLAC, mic://
    "edgebrain.stream.encoders.frontend",   # audio front-end encoder
    "edgebrain.stream.encoders.basic",      # direct, delta / sigma-delta, rate
    "edgebrain.stream.decoders",            # spike count / membrane max windows
    "edgebrain.stream.sinks",               # stdout, csv, file, udp, mqtt
)


@dataclass(frozen=True)
class FileFormat:
    """A file format: its extensions, a test on the first bytes (None: extension only), and how
    to open a file of it as a Source (``open(path, **options)``). ``kind`` is samples or events."""

    name: str
    kind: str
    extensions: tuple
    open: Callable
    sniff: Callable | None = None
    description: str = ""


_cache: dict = {}


def _collect(attr: str) -> dict:
    if attr not in _cache:
        out = {}
        for mod in MODULES:
            try:
                m = importlib.import_module(mod)
            except ModuleNotFoundError as e:
                if e.name == mod:
                    continue  # not written yet
                raise
            out.update(getattr(m, attr, {}) or {})
        _cache[attr] = out
    return _cache[attr]


def formats() -> dict:
    return _collect("FORMATS")


def encoders() -> dict:
    return _collect("ENCODERS")


def decoders() -> dict:
    return _collect("DECODERS")


def sinks() -> dict:
    return _collect("SINKS")


def schemes() -> dict:
    return _collect("SCHEMES")


def detect_format(path: str) -> FileFormat:
    """The format of a file from its first bytes, else its extension."""
    fmts = formats()
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except FileNotFoundError:
        raise FormatError("file not found", file=path) from None
    except OSError as e:
        raise FormatError(f"cannot read ({e.strerror})", file=path) from None
    for f in fmts.values():
        if f.sniff is not None:
            try:
                if f.sniff(head, path):
                    return f
            except Exception:  # noqa: BLE001 - a sniffer must not decide by crashing
                continue
    ext = os.path.basename(path).lower()
    matches = [f for f in fmts.values() if any(ext.endswith(e) for e in f.extensions)]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise FormatError(f"the extension fits several formats ({', '.join(m.name for m in matches)}) and the "
                          "header does not decide; pass --format", file=path)
    raise FormatError(f"unrecognised file format; pass --format (one of {', '.join(sorted(fmts))})", file=path)


def open_source(spec: str, format: str | None = None, **options) -> base.Source:
    """Open a file path or a URL (``serial:///dev/ttyUSB0?baud=115200``, ``tcp://host:port``,
    ``udp://:port``, ``mic://default``, ``file:///path``) as a Source."""
    u = urllib.parse.urlsplit(spec)
    if u.scheme and len(u.scheme) > 1 and u.scheme != "file":
        sch = schemes()
        if u.scheme not in sch:
            raise InputError(f"unknown source scheme '{u.scheme}://'; expected a file path or one of "
                             f"{', '.join(s + '://' for s in sorted(sch))}")
        return sch[u.scheme](u, format=format, **options)
    path = urllib.parse.unquote(u.path) if u.scheme == "file" else spec
    if format:
        fmts = formats()
        if format not in fmts:
            raise InputError(f"unknown format '{format}'; expected one of {', '.join(sorted(fmts))}")
        fmt = fmts[format]
    else:
        fmt = detect_format(path)
    if not os.path.exists(path):
        raise FormatError("file not found", file=path)
    return fmt.open(path, **options)


def build_encoder(spec) -> base.Encoder:
    return base.build(encoders(), spec, "encoder")


def build_decoder(spec) -> base.Decoder:
    return base.build(decoders(), spec, "decoder")


def build_sink(spec) -> base.Sink:
    """Sinks take a target after the name: ``csv:path=out.csv``, ``mqtt:host=...,topic=...``;
    ``-`` or ``stdout`` is JSON lines on standard output."""
    if spec in ("-", "stdout"):
        spec = "stdout"
    return base.build(sinks(), spec, "sink")
