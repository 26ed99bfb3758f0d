"""Live sources by URL: ``serial://``, ``tcp://`` and ``udp://``, in the Edge Impulse data-forwarder convention.

    serial:///dev/ttyUSB0?baud=115200        a serial port (or a pseudo-terminal path), via pyserial
    tcp://192.168.1.20:5000                  connect to a device that serves lines
    tcp://:5000                              listen on port 5000 for one device (another after a drop)
    udp://:5000                              datagrams on port 5000, each holding one or more lines

By default a link carries lines of samples (:mod:`.livelines`: the channel count and rate detected
from the first lines, damaged lines counted and skipped). With ``format=`` in the URL (or
``--format``) the same links carry binary streams instead: raw PCM or a streamed WAV
(``format=pcm|wav``), Prophesee EVT words (``format=evt3|evt2|evt21|raw``) or AEDAT 4 packets
(``format=aedat4``); see :mod:`.livebin`. The URL options (``?key=value&...``) are the source's
options; the caller's options win.

A link that drops (end of stream, serial error, TCP reset, or no data for ``timeout`` seconds) is
reopened with exponential backoff (``backoff`` doubling to ``backoff_max``) up to ``reconnect``
attempts or ``give_up`` seconds, and the stream goes on ("reconnected after N s"); when it cannot
be reopened the stream ends cleanly. UDP has no link: it ends after ``timeout`` seconds without a
datagram. Every wait is bounded; ``close()`` may be called from another thread to stop a stream.
The links and their reconnection are :mod:`edgebrain.stream.links`.
"""

from __future__ import annotations

import urllib.parse

from ...errors import InputError
from ...options import option_value
from ..base import Source
from ..links import Link, SerialLink, TcpClient, TcpServer, UdpLink
from .livebin import AUDIO_FORMATS, check_options
from .livebin import FORMATS as BINARY
from .livebin_audio import LinkAudioSource
from .livebin_events import LinkAedat4Source, LinkRawSource
from .livebin_frames import LinkFrameSource
from .livelines import LineSource


_OPTIONS = ("rate", "channels", "names", "labels_col", "timeout", "reconnect", "backoff", "backoff_max", "give_up",
            "connect_timeout", "detect_lines", "detect_seconds", "max_line", "chunk_ms", "valid", "repair", "poll")
LINE_FORMATS = (None, "", "lines", "ei")


def _options(u: urllib.parse.SplitResult, format, options: dict, extra: tuple) -> tuple[str | None, dict]:
    """(format, options) from the URL query and the caller's options (which win). ``format`` (or
    ``?format=``) selects a binary stream (:mod:`.livebin`); without it the link carries lines
    (:mod:`.livelines`)."""
    opts = {k: option_value(v) for k, v in urllib.parse.parse_qsl(u.query, keep_blank_values=True)}
    opts.update(options)
    q = opts.pop("format", None)
    fmt = format or q
    fmt = None if fmt in LINE_FORMATS else str(fmt).lower()
    if fmt is not None:
        if fmt not in BINARY:
            raise InputError(f"{u.scheme}://: format '{fmt}' is not a live stream format; expected lines (the "
                             f"default) or one of {', '.join(BINARY)}")
        return fmt, opts
    if isinstance(opts.get("valid"), str) and "," in opts["valid"]:
        opts["valid"] = [option_value(x) for x in opts["valid"].split(",")]
    unknown = [k for k in opts if k not in _OPTIONS + extra]
    if unknown:
        raise InputError(f"{u.scheme}://: unknown option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
                         f"expected {', '.join(_OPTIONS + extra)} (or format= for a binary stream)")
    return None, opts


def _url(u) -> str:
    return f"{u.scheme}://{u.netloc}{u.path}" + (f"?{u.query}" if u.query else "")


def _port(u) -> int:
    try:
        p = u.port
    except ValueError:
        p = None
    if p is None:
        raise InputError(f"{_url(u)}: no port; expected {u.scheme}://host:port or {u.scheme}://:port")
    return p


def open_binary(link: Link, url: str, fmt: str, opts: dict) -> Source:
    """The source for ``format=fmt`` (one of :data:`.livebin.FORMATS`) on a link about to be opened."""
    check_options(url, fmt, opts)
    if fmt in AUDIO_FORMATS:
        return LinkAudioSource(link, url, fmt, **opts)
    if fmt == "eb":
        return LinkFrameSource(link, url, **opts)
    if fmt == "aedat4":
        if link.datagram:
            raise InputError(f"{url}: AEDAT 4 packets do not fit in datagrams; use tcp:// or serial://")
        return LinkAedat4Source(link, url, **opts)
    return LinkRawSource(link, url, fmt, **opts)


def _make(link: Link, url: str, fmt: str | None, opts: dict) -> Source:
    try:
        if fmt is not None:
            return open_binary(link, url, fmt, opts)
        return LineSource(link, url, **opts)
    except BaseException:
        link.shutdown()
        raise


def open_serial(u: urllib.parse.SplitResult, format=None, **options) -> Source:
    fmt, opts = _options(u, format, options, ("baud",))
    port = urllib.parse.unquote(u.netloc + u.path)
    if not port:
        raise InputError(f"{_url(u)}: no port; expected serial:///dev/ttyUSB0?baud=115200")
    link = SerialLink(port, int(opts.pop("baud", 115200)), float(opts.get("poll", 0.02)))
    return _make(link, _url(u), fmt, opts)


def open_tcp(u: urllib.parse.SplitResult, format=None, **options) -> Source:
    fmt, opts = _options(u, format, options, ())
    port, host = _port(u), u.hostname or ""
    poll = float(opts.get("poll", 0.02))
    link = TcpServer(host, port, poll) if not host else TcpClient(host, port, poll)
    return _make(link, _url(u), fmt, opts)


def open_udp(u: urllib.parse.SplitResult, format=None, **options) -> Source:
    fmt, opts = _options(u, format, options, ())
    link = UdpLink(u.hostname or "", _port(u), float(opts.get("poll", 0.02)))
    return _make(link, _url(u), fmt, opts)


SCHEMES = {"serial": open_serial, "tcp": open_tcp, "udp": open_udp}
