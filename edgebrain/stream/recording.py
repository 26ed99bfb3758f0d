"""``edgebrain record`` and ``edgebrain data info``: copy a source to a file, describe a file."""

from __future__ import annotations

import io
import os
import stat

from ..errors import InputError
from ..options import positive_number
from ..safeio import StreamOutput, atomic_write, check_output, local_path, open_stream, reading
from .base import Events, until
from .registry import open_source

WRITERS = {".npy": "events", ".csv": "samples", ".wav": "samples"}


def _limited(src, duration, counter):
    """The source's chunks up to ``duration`` seconds of stream time, cut at exactly that time
    (nothing at or after it is written; a live source is not waited on past it); Ctrl-C ends cleanly."""
    try:
        for ch in src.chunks():
            reached = False
            if duration is not None:
                ch, reached = until(ch, duration)
            counter["items"] += len(ch)
            if len(ch):
                counter["seconds"] = (float(ch.events["t"][-1]) * 1e-6 if isinstance(ch, Events)
                                      else float(ch.t[-1]))
            if len(ch) or not reached:
                yield ch
            if reached:
                break
    except KeyboardInterrupt:
        counter["interrupted"] = True


def record(source: str, output: str, format: str | None = None, options: dict | None = None,
           duration: float | None = None) -> dict:
    """Copy ``source`` to ``output`` (.npy events, .csv IMU samples, .wav audio). A finished file is
    a one-shot output (written whole, then renamed into place); a live source is a streaming one
    (written in place as it comes, fsync-ed each second). ``output`` may not be the source."""
    ext = os.path.splitext(output)[1].lower()
    if ext not in WRITERS:
        raise InputError(f"cannot write '{output}': expected .npy (events), .csv (IMU samples) or .wav (audio)")
    if duration is not None:
        duration = positive_number(duration, "--duration", "seconds")
    with reading(local_path(source)):
        check_output(output, "recording")  # before the source is opened: not a link, not the source
        src = open_source(source, format=format, **(options or {}))
        counter = {"items": 0, "seconds": 0.0, "interrupted": False}
        try:
            info = src.info
            if WRITERS[ext] != info.kind:
                raise InputError(f"a {info.kind} source ({info.format}) cannot be written as {ext}; expected "
                                 + ("an .npy file" if info.kind == "events" else "a .csv or .wav file"))
            _write(ext, output, _limited(src, duration, counter), info, getattr(src, "live", False))
        finally:
            src.close()
    return {"source": source, "output": output, "format": info.format, "items": counter["items"],
            "unit": "events" if info.kind == "events" else "samples", "seconds": counter["seconds"],
            "interrupted": counter["interrupted"], "input": src.stats.as_dict()}


def _write(ext: str, output: str, chunks, info, live: bool) -> None:
    if ext == ".npy":
        from .sources.events import write_events_npy

        def write(f):
            write_events_npy(f, chunks)
    elif ext == ".csv":
        from .sources.imu import write_csv

        def write(f):
            if isinstance(f, StreamOutput):  # takes text as it is
                write_csv(f, chunks, info.channel_names, info.rate)
                return
            text = io.TextIOWrapper(f, encoding="utf-8", newline="\n", write_through=True)
            try:
                write_csv(text, chunks, info.channel_names, info.rate)
            finally:
                text.detach()
    else:
        from .sources.wav import write_wav

        def write(f):
            write_wav(f, chunks, info.rate, info.channels or 1)
    if live and not (ext == ".npy" and _is_stream(output)):  # an .npy header is patched at the end: needs a file
        with open_stream(output, what="recording") as f:
            write(f)
    else:
        with atomic_write(output, "recording") as f:
            write(f)


def _is_stream(path: str) -> bool:
    try:
        return not stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


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
