"""``edgebrain record`` and ``edgebrain data info``: copy a source to a file, describe a file."""

from __future__ import annotations

import os

from ..errors import InputError
from .base import Events, Samples
from .registry import open_source

WRITERS = {".npy": "events", ".csv": "samples", ".wav": "samples"}


def _limited(src, duration, counter):
    """The source's chunks up to ``duration`` seconds of stream time; Ctrl-C ends cleanly."""
    try:
        for ch in src.chunks():
            if isinstance(ch, Events):
                if duration is not None and len(ch) and ch.events["t"][0] * 1e-6 >= duration:
                    break
                if duration is not None and len(ch):
                    ch = Events(ch.events[ch.events["t"] * 1e-6 < duration], ch.arrival, ch.t_end)
                counter["items"] += len(ch)
                if len(ch):
                    counter["seconds"] = float(ch.events["t"][-1]) * 1e-6
            else:
                if duration is not None and len(ch) and ch.t[0] >= duration:
                    break
                if duration is not None and len(ch):
                    keep = ch.t < duration
                    ch = Samples(ch.t[keep], ch.values[keep], None if ch.labels is None else ch.labels[keep],
                                 ch.arrival)
                counter["items"] += len(ch)
                if len(ch):
                    counter["seconds"] = float(ch.t[-1])
            yield ch
    except KeyboardInterrupt:
        counter["interrupted"] = True


def record(source: str, output: str, format: str | None = None, options: dict | None = None,
           duration: float | None = None) -> dict:
    ext = os.path.splitext(output)[1].lower()
    if ext not in WRITERS:
        raise InputError(f"cannot write '{output}': expected .npy (events), .csv (IMU samples) or .wav (audio)")
    src = open_source(source, format=format, **(options or {}))
    counter = {"items": 0, "seconds": 0.0, "interrupted": False}
    try:
        info = src.info
        if WRITERS[ext] != info.kind:
            raise InputError(f"a {info.kind} source ({info.format}) cannot be written as {ext}; expected "
                             + ("an .npy file" if info.kind == "events" else "a .csv or .wav file"))
        chunks = _limited(src, duration, counter)
        if ext == ".npy":
            from .sources.events import write_events_npy

            write_events_npy(output, chunks)
        elif ext == ".csv":
            from .sources.imu import write_csv

            write_csv(output, chunks, info.channel_names, info.rate)
        else:
            from .sources.wav import write_wav

            write_wav(output, chunks, info.rate, info.channels or 1)
    finally:
        src.close()
    return {"source": source, "output": output, "format": info.format, "items": counter["items"],
            "unit": "events" if info.kind == "events" else "samples", "seconds": counter["seconds"],
            "interrupted": counter["interrupted"], "input": src.stats.as_dict()}


def info(path: str, format: str | None = None, options: dict | None = None) -> dict:
    """Read a recording to its end and describe it, including any damage found."""
    src = open_source(path, format=format, **(options or {}))
    items, t_first, t_last, labels = 0, None, None, set()
    try:
        for ch in src.chunks():
            if not len(ch):
                continue
            items += len(ch)
            if isinstance(ch, Events):
                t0, t1 = ch.events["t"][0] * 1e-6, ch.events["t"][-1] * 1e-6
            else:
                t0, t1 = float(ch.t[0]), float(ch.t[-1])
                if ch.labels is not None and len(labels) < 1000:
                    labels.update(str(x) for x in set(ch.labels.tolist()))
            t_first = t0 if t_first is None else t_first
            t_last = t1
    finally:
        src.close()
    d = src.info.as_dict()
    d.update(items=items, duration=None if t_last is None else round(t_last - t_first, 6),
             damage=src.stats.as_dict())
    if labels and not d.get("label_names"):
        d["label_names"] = sorted(labels)
    return d
