"""Event-camera file readers (streaming, constant memory) and the ``.npy`` event writer.

Formats (``FORMATS``, found by :mod:`edgebrain.stream.registry`):

=========  ===============================================  ====================================
name       file                                             recognised by
=========  ===============================================  ====================================
aedat      AEDAT 1.0/2.0/3.1/4.0 by its version line        extension ``.aedat``
aedat2     AEDAT 1.0 / 2.0 (jAER; DVS128 or DAVIS)          ``#!AER-DAT2.0`` / ``1.0``
aedat3     AEDAT 3.1 (cAER packets)                         ``#!AER-DAT3.1``
aedat4     AEDAT 4.0 (DV; LZ4 / zstd packets)               ``#!AER-DAT4.0``, ``.aedat4``
raw        Prophesee RAW, encoding from the header          extension ``.raw``
evt2       RAW EVT 2.0                                      ``% evt 2.0`` / ``% format EVT2``
evt21      RAW EVT 2.1 (u64 or legacy word order)           ``% evt 2.1`` / ``% format EVT21``
evt3       RAW EVT 3.0                                      ``% evt 3.0`` / ``% format EVT3``
dat        Prophesee .dat (Event2d / EventCD)               ``%`` header without ``evt``, ``.dat``
nmnist     N-MNIST / N-Caltech101 ``.bin``                  extension ``.bin``
bs2        SLAYER ``.bs2`` (same layout as nmnist)          extension ``.bs2``
npy        NumPy structured array x, y, t, p                ``.npy`` header with those fields
=========  ===============================================  ====================================

Every reader takes ``sensor_size`` (``(w, h)`` or ``"WxH"``; overrides the header),
``chunk_events`` (at most this many events per chunk, default 524 288), ``chunk_us`` (at most this
time span per chunk, default 10 ms, so that an encoder's output per chunk stays small enough to be
recycled while it is in the cache: full-resolution 1 ms frames bin 2.6× faster than with 50 ms) and
``max_jump_us`` (default 1000: backward time steps up to this are clamped, larger ones are judged
as glitch or reset), plus its own options (see each class). Events come out time-ordered in
``EVENT_DTYPE`` with ``t`` in µs from the first event (its raw time, e.g. Unix µs for AEDAT 4, is
``info.extra["t0_us"]``); each chunk's ``t_end`` is the time no later event precedes. Damage is a
:class:`~edgebrain.errors.FormatError` naming file and byte (headers) or a counted, logged repair
in ``source.stats`` (see :mod:`._finish` and each reader).
"""

from __future__ import annotations

import os

from ...registry import FileFormat
from .base import EventFileSource, parse_size
from .aedat import Aedat2Source, Aedat31Source
from .aedat4 import Aedat4Source
from .nmnist import NmnistSource
from .npy import NpySource, sniff_npy, write_events_npy
from .prophesee import DatSource, RawSource, sniff_raw


def open_aedat(path, **options) -> EventFileSource:
    """An ``.aedat`` file of any version, by its first line."""
    with open(path, "rb") as f:
        head = f.read(16)
    if head.startswith(b"#!AER-DAT4"):
        return Aedat4Source(path, **options)
    if head.startswith(b"#!AER-DAT3"):
        return Aedat31Source(path, **options)
    return Aedat2Source(path, **options)


def _raw(encoding):
    def open_(path, **options):
        options.setdefault("encoding", encoding)
        return RawSource(path, **options)
    return open_


def _bs2(path, **options) -> NmnistSource:
    src = NmnistSource(path, **options)
    src.info.format = "bs2"
    return src


def _sniff_dat(head: bytes, path: str) -> bool:
    if not head.startswith(b"% ") or sniff_raw(head, "evt2") or sniff_raw(head, "evt21") or sniff_raw(head, "evt3"):
        return False
    if b"\n% evt " in head or b"% format EVT" in head:
        return False
    return (os.path.basename(path).lower().endswith(".dat") or b"Data file containing" in head
            or b"Event2d" in head or b"EventCD" in head)


def _sniff_aedat2(head: bytes, path: str) -> bool:
    return head.startswith(b"#!AER-DAT2.0") or head.startswith(b"#!AER-DAT1.0")


FORMATS = {
    "aedat4": FileFormat("aedat4", "events", (".aedat4",), Aedat4Source,
                         lambda h, p: h.startswith(b"#!AER-DAT4.0"), "AEDAT 4.0 (iniVation DV)"),
    "aedat3": FileFormat("aedat3", "events", (), Aedat31Source,
                         lambda h, p: h.startswith(b"#!AER-DAT3."), "AEDAT 3.1 (iniVation cAER)"),
    "aedat2": FileFormat("aedat2", "events", (), Aedat2Source, _sniff_aedat2,
                         "AEDAT 1.0/2.0 (jAER; DVS128 or DAVIS)"),
    "aedat": FileFormat("aedat", "events", (".aedat",), open_aedat, None,
                        "AEDAT of any version (by its first line)"),
    "evt3": FileFormat("evt3", "events", (), _raw("evt3"), lambda h, p: sniff_raw(h, "evt3"),
                       "Prophesee RAW EVT 3.0"),
    "evt21": FileFormat("evt21", "events", (), _raw("evt21"), lambda h, p: sniff_raw(h, "evt21"),
                        "Prophesee RAW EVT 2.1"),
    "evt2": FileFormat("evt2", "events", (), _raw("evt2"), lambda h, p: sniff_raw(h, "evt2"),
                       "Prophesee RAW EVT 2.0"),
    "raw": FileFormat("raw", "events", (".raw",), RawSource, None,
                      "Prophesee RAW (encoding from the header, or encoding=evt2|evt21|evt3)"),
    "dat": FileFormat("dat", "events", (".dat",), DatSource, _sniff_dat, "Prophesee .dat (CD events)"),
    "nmnist": FileFormat("nmnist", "events", (".bin",), NmnistSource, None, "N-MNIST / N-Caltech101 .bin"),
    "bs2": FileFormat("bs2", "events", (".bs2",), _bs2, None, "SLAYER .bs2 (N-MNIST layout)"),
    "npy": FileFormat("npy", "events", (".npy",), NpySource, sniff_npy,
                      "NumPy structured array of events (x, y, t, p)"),
}

__all__ = ["FORMATS", "EventFileSource", "Aedat2Source", "Aedat31Source", "Aedat4Source", "RawSource",
           "DatSource", "NmnistSource", "NpySource", "write_events_npy", "open_aedat", "parse_size"]
