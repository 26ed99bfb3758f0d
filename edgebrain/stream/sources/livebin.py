"""Binary live streams over ``serial://``, ``tcp://`` and ``udp://``: audio and event cameras.

A live link carries Edge Impulse data-forwarder lines by default (:mod:`.live`); ``format=`` in the
URL (or ``--format``) makes it carry one of these instead:

    tcp://host:port?format=pcm&rate=16000&channels=1&sample=s16le     raw PCM audio
    serial:///dev/ttyACM0?baud=921600&format=wav                      a streamed WAV (header, then samples)
    udp://:5000?format=pcm&rate=16000                                 PCM, whole frames per datagram
    tcp://camera:5000?format=evt3&width=1280&height=720               Prophesee EVT 3.0 words
    tcp://:5000?format=evt2                                           EVT 2.0 (size from header lines)
    tcp://dv-host:7777?format=aedat4                                  AEDAT 4 packets (iniVation DV)

========  ==========================================================================================
format    what the link carries
========  ==========================================================================================
pcm       little-endian samples, interleaved: ``sample=`` s16le (default), s24le, s32le, f32le, f64le
          or u8; ``rate=`` (required) and ``channels=`` (default 1)
wav       a WAV as a writer that cannot seek sends it: RIFF header first (its sizes are not trusted:
          0, 0xFFFFFFFF or wrong), then samples until the link ends; rate, channels and sample format
          come from the header (bytes before a ``RIFF`` header are skipped and counted)
evt3      Prophesee EVT 3.0 16-bit words; evt2: EVT 2.0 32-bit words; evt21: EVT 2.1 64-bit words;
          raw: the encoding from the header. Optional ``% key value`` header lines at the start (as
          the camera's or metavision's tools send them) give encoding and sensor size, else
          ``width=`` and ``height=`` (or ``sensor_size=WxH``) do
aedat4    AEDAT 4.0 (DV): the IOHeader (with or without the ``#!AER-DAT4.0`` line, as DV's network
          output sends it), then size-prefixed packets (stream id, size, LZ4/zstd body); events of
          the first (or ``stream=``) event stream, other packets skipped and counted; a file's data
          table at the end (a recording sent with ``cat``) is recognised and skipped
========  ==========================================================================================

The decoding is that of the file readers: :class:`~.audio.PcmDecoder` (WAV files),
:class:`~.events.prophesee.RawDecoder` (RAW files) and the AEDAT 4 packet decoding and event
finishing of :class:`~.events.aedat4.Aedat4Source` / :class:`~.events._base.EventFileSource`, fed with
whatever each read returns: a read may end inside a sample, a word or a packet, and EVT 3.0 time
(TIME_HIGH / TIME_LOW state) carries across reads, so the output equals that of reading the same
bytes from a file. Each chunk carries the wall-clock time its bytes arrived (``now()``) and holds at
most ``chunk_ms`` (10 ms) of audio, or ``chunk_events`` (4096) events / ``chunk_us`` (10 ms).

Links behave as for lines (:class:`.live._LinkReader`): a dropped link is reopened with backoff
(``timeout``, ``reconnect``, ``backoff``, ``backoff_max``, ``give_up``, ``connect_timeout``, ``poll``)
and the stream goes on; the incomplete sample frame, word or packet at the drop is discarded and
counted, and a header sent again on the new connection (a restarted device) is recognised and
skipped. Over UDP every datagram must hold whole frames (audio) or words (EVT): a partial one is
dropped and counted. Garbage in AEDAT 4 is skipped to the next packet (found by its compressed-frame
magic) and counted; words of unknown type in EVT streams are skipped and counted by the decoder.
"""

from __future__ import annotations

import io
import struct

from ...errors import FormatError, InputError
from .audio import SAMPLE_FORMATS, PcmDecoder, _AudioSource, parse_wav_stream_header
from ..base import Events, Source, SourceInfo, log, now
from .live import _Link, _LinkReader

AUDIO_FORMATS = ("pcm", "wav")
EVENT_FORMATS = ("evt3", "evt2", "evt21", "raw", "aedat4")
FORMATS = AUDIO_FORMATS + EVENT_FORMATS

LINK_OPTIONS = ("timeout", "reconnect", "backoff", "backoff_max", "give_up", "connect_timeout", "poll")
AUDIO_OPTIONS = ("rate", "channels", "sample", "resample", "mono", "clip", "chunk_ms")
EVENT_OPTIONS = ("sensor_size", "width", "height", "chunk_events", "chunk_us", "max_jump_us")
FORMAT_OPTIONS = {"raw": ("evt21_order",), "evt21": ("evt21_order",), "aedat4": ("stream",)}

MAX_HEADER = 16 << 20     # bytes a header may take before the data (RAW text lines, AEDAT 4 IOHeader)
MAX_PACKET = 64 << 20     # AEDAT 4 packet size beyond which a packet header is judged corrupt
AEDAT4_MAGIC = b"#!AER-DAT4.0\r\n"


def open_binary(link: _Link, url: str, fmt: str, opts: dict) -> Source:
    """The source for ``format=fmt`` on an opened-to-be link (called by :mod:`.live`'s URL openers)."""
    allowed = LINK_OPTIONS + (AUDIO_OPTIONS if fmt in AUDIO_FORMATS else EVENT_OPTIONS) + FORMAT_OPTIONS.get(fmt, ())
    unknown = [k for k in opts if k not in allowed]
    if unknown:
        raise InputError(f"{url}: unknown option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} for "
                         f"format={fmt}; expected {', '.join(allowed)}")
    if fmt in AUDIO_FORMATS:
        return LinkAudioSource(link, url, fmt, **opts)
    if fmt == "aedat4":
        if link.datagram:
            raise InputError(f"{url}: AEDAT 4 packets do not fit in datagrams; use tcp:// or serial://")
        return LinkAedat4Source(link, url, **opts)
    return LinkRawSource(link, url, fmt, **opts)


# ---------------------------------------------------------------------------------------- the link


class _Live:
    """What the binary link sources share: the link reader, bytes read while opening, waits with a
    deadline, and ``close()`` (from any thread)."""

    live = True
    url = ""
    _fresh = False      # a new connection began: a header may come again

    def _start(self, link: _Link, url: str, link_opts: dict) -> None:
        self.url, self.link = url, link
        lo = dict(link_opts)
        connect_timeout = float(lo.pop("connect_timeout", 30.0))
        self.link_reader = _LinkReader(link, url, self.stats, on_drop=self._on_drop,
                                       on_reconnect=self._on_reconnect, **lo)
        self._header_wait = self.link_reader.timeout
        self._held: list = []       # (arrival, bytes) read while opening, not yet decoded
        self._arrival = 0.0
        self._extra = {"link": link.kind}
        if isinstance(getattr(link, "port", None), int):
            self._extra["port"] = link.port
        self.link_reader.connect_first(connect_timeout)
        self._reads = self.link_reader.reads(idle=True)

    def _on_drop(self) -> None:
        """The link dropped: discard the incomplete record (subclasses)."""

    def _on_reconnect(self) -> None:
        self._fresh = True

    def _wait(self, done, what: str):
        """Read until ``done(buffer)`` is not None (returned with the buffer and the last arrival
        time), or ``timeout`` seconds without it (``done`` is then asked with ``final=True``)."""
        buf = b""
        t0 = t = now()
        for t, data in self._reads:
            if data:
                buf += data
                r = done(buf, False)
                if r is not None:
                    return r, buf, t
                if len(buf) > MAX_HEADER:
                    break
            elif now() - t0 > self._header_wait:
                break
        if not buf:
            raise InputError(f"{self.url}: no data received (waited {now() - t0:.1f} s for {what})")
        r = done(buf, True)
        if r is None:
            raise FormatError(f"no complete {what} in the first {len(buf)} bytes", file=self.url)
        return r, buf, t

    def _data(self):
        """(arrival, bytes): first what was read while opening, then the link."""
        while self._held:
            yield self._held.pop(0)
        for t, data in self._reads:
            if data:
                yield t, data

    def close(self) -> None:
        reader = getattr(self, "link_reader", None)
        if reader is not None:
            reader.close()


def _split_link_opts(opts: dict) -> tuple[dict, dict]:
    link = {k: opts.pop(k) for k in LINK_OPTIONS if k in opts}
    return link, opts


# ---------------------------------------------------------------------------------------- audio


class LinkAudioSource(_Live, _AudioSource):
    """Raw PCM (``format=pcm``) or a streamed WAV (``format=wav``) from a live link; see the module.
    Options: rate, channels, sample (pcm), resample (to this rate), mono, clip, chunk_ms, and the link
    options."""

    def __init__(self, link: _Link, url: str, fmt: str, *, rate=None, channels=None, sample=None, resample=None,
                 mono=False, clip=True, chunk_ms=10.0, **opts):
        self.format = fmt
        _AudioSource.__init__(self, url, rate=resample, mono=mono, clip=clip)
        link_opts, _ = _split_link_opts(opts)
        self.chunk_ms = float(chunk_ms)
        if not self.chunk_ms > 0:
            raise InputError(f"{url}: chunk_ms={chunk_ms}; expected a positive number of milliseconds")
        self.dec = None
        self._wavbuf = b""
        if fmt == "pcm":
            if rate is None:
                raise InputError(f"{url}: format=pcm needs rate= (samples per second of the stream)")
            sample = str(sample or "s16le").lower()
            if sample not in SAMPLE_FORMATS:
                raise InputError(f"{url}: sample={sample}; expected one of {', '.join(SAMPLE_FORMATS)} "
                                 "(little-endian)")
            try:
                rate, channels = float(rate), int(channels or 1)
            except (TypeError, ValueError):
                raise InputError(f"{url}: rate={rate!r}, channels={channels!r}; expected numbers") from None
            if not rate > 0 or channels < 1:
                raise InputError(f"{url}: rate={rate:g}, channels={channels}; expected a positive rate and at "
                                 "least one channel")
        elif rate is not None or channels is not None or sample is not None:
            raise InputError(f"{url}: format=wav takes rate, channels and the sample format from the WAV header; "
                             "to resample give resample=RATE")
        try:
            self._start(link, url, link_opts)
            if fmt == "pcm":
                enc, width = SAMPLE_FORMATS[sample]
                self._configure(enc, width, channels, rate, {"sample_format": sample})
            else:
                h, buf, t = self._wait(self._wav_header, "WAV header")
                extra = {"sample_format": h.sample_format, "container": h.container, "streamed": True}
                if h.data_size is not None:
                    extra["data_size_declared"] = h.data_size
                self._configure(h.encoding, h.width, h.channels, h.rate, extra)
                self.header = h
                if len(buf) > self._hdr_end:
                    self._held.append((t, buf[self._hdr_end:]))
        except BaseException:
            self.close()
            raise
        log.info("%s: %s audio, %d channel(s) at %g Hz", url, fmt, self.src_channels, self.src_rate)

    def _configure(self, enc, width, channels, rate, extra):
        self.dec = PcmDecoder(enc, width, channels)
        self._setup(rate, channels, None, {**self._extra, **extra})
        self.info.path = self.url
        self.per_chunk = max(1, int(self.src_rate * self.chunk_ms / 1000.0))

    def _wav_header(self, buf: bytes, final: bool):
        """The header once complete (None: more bytes needed); garbage before ``RIFF`` skipped."""
        skip = _find_riff(buf)
        if skip is None:
            if final or len(buf) > MAX_HEADER:
                raise FormatError(f"no RIFF/WAVE header in the first {len(buf)} bytes; expected a WAV stream",
                                  file=self.url)
            return None
        h = parse_wav_stream_header(buf[skip:], self.url)
        if h is None:
            return None
        if skip:
            self.stats.note("repaired", f"{self.url}: byte 0", f"{skip} bytes before the WAV header skipped")
        self._hdr_end = skip + h.data_offset
        return h

    def _on_drop(self) -> None:
        self._wavbuf = b""
        n = self.dec.discard() if self.dec is not None else 0
        if n:
            self.stats.note("repaired", self.url, f"partial sample frame ({n} bytes) discarded when the link dropped")

    def _again(self, data: bytes):
        """After a reconnection: a WAV header sent again (a restarted device) is skipped when it
        describes the same audio; the bytes that follow it (None: wait for more)."""
        buf = self._wavbuf + data
        if not (b"RIFF".startswith(buf[:4]) or b"RF64".startswith(buf[:4])):
            self._wavbuf, self._fresh = b"", False
            return buf
        try:
            h = parse_wav_stream_header(buf, self.url)
        except FormatError:
            self._wavbuf, self._fresh = b"", False
            return buf
        if h is None:
            self._wavbuf = buf
            return None
        self._wavbuf, self._fresh = b"", False
        old = self.header
        if (h.rate, h.channels, h.encoding, h.width) != (old.rate, old.channels, old.encoding, old.width):
            raise _FormatChanged(f"the WAV header after reconnecting describes other audio ({h.rate} Hz, "
                                 f"{h.channels} channel(s), {h.sample_format}; was {old.rate} Hz, {old.channels}, "
                                 f"{old.sample_format}); stream ends")
        self.info.extra["headers_after_reconnect"] = self.info.extra.get("headers_after_reconnect", 0) + 1
        return buf[h.data_offset:]

    def _blocks(self):
        dg = self.link.datagram
        try:
            for t, data in self._data():
                if self._fresh and self.format == "wav":
                    try:
                        data = self._again(data)
                    except _FormatChanged as e:
                        self.stats.note("link", self.url, str(e), 0)
                        break
                    if not data:
                        continue
                x = self.dec.feed(data)
                if dg:
                    n = self.dec.discard()
                    if n:
                        self.stats.note("repaired", self.url, f"datagram of {len(data)} bytes ends inside a sample "
                                                              f"frame: its last {n} bytes dropped")
                if not len(x):
                    continue
                self._arrival = t
                for a in range(0, len(x), self.per_chunk):
                    yield x[a:a + self.per_chunk]
            n = self.dec.discard()
            if n:
                self.stats.note("dropped", self.url, f"stream ended inside a sample frame: last {n} bytes dropped")
        finally:
            self.close()

    def close(self) -> None:
        _Live.close(self)


class _FormatChanged(Exception):
    pass


def _find_riff(buf: bytes) -> int | None:
    """Offset of the first ``RIFF``/``RF64`` … ``WAVE`` header (or of a possible start of one at the
    end of ``buf``); None if there is none."""
    pos = 0
    while True:
        cands = [i for i in (buf.find(b"RIFF", pos), buf.find(b"RF64", pos)) if i >= 0]
        if not cands:
            break
        i = min(cands)
        if len(buf) < i + 12 or buf[i + 8:i + 12] == b"WAVE":
            return i
        pos = i + 1
    for k in range(min(3, len(buf)), 0, -1):   # "R", "RI", "RIF" at the very end
        if b"RIFF".startswith(buf[-k:]) or b"RF64".startswith(buf[-k:]):
            return len(buf) - k
    return None


# ---------------------------------------------------------------------------------------- events


def _is_text(b: bytes) -> bool:
    from .events._base import _is_text as is_text

    return is_text(b)


def raw_header_length(buf: bytes, final: bool = False) -> int | None:
    """Bytes of ``% key value`` header lines at the start of a RAW stream, or None while the next
    bytes could still be a header line (``final``: nothing more will come). A line must be text; the
    header ends at the first byte of a line that is not ``%`` or after ``% end``."""
    pos = 0
    while True:
        if pos >= len(buf):
            return pos if final else None
        if buf[pos:pos + 1] != b"%":
            return pos
        nl = buf.find(b"\n", pos)
        if nl < 0:
            if final or len(buf) - pos > 65536:
                return pos
            return None
        line = buf[pos:nl].rstrip(b"\r")
        if not _is_text(line):
            return pos
        pos = nl + 1
        if line.strip().lower() == b"% end":
            return pos


class _LiveEvents(_Live):
    """An event-file reader (a subclass of it follows in the MRO) whose bytes come from a link."""

    def _init_events(self, link, url, fmt, sensor_size, width, height, chunk_events, chunk_us, max_jump_us,
                     link_opts):
        from .events._base import parse_size

        Source.__init__(self)
        self.path = url
        self._f = None
        self.chunk_events = max(1, int(chunk_events))
        self.chunk_us = max(1, int(chunk_us)) if chunk_us else None
        self.jump = int(max_jump_us) if max_jump_us is not None else self.jump_us
        if (width is None) != (height is None):
            raise InputError(f"{url}: give both width= and height= (or sensor_size=WIDTHxHEIGHT)")
        if width is not None:
            if sensor_size is not None:
                raise InputError(f"{url}: give either width=/height= or sensor_size=, not both")
            sensor_size = (width, height)
        self.sensor_given = parse_size(sensor_size)
        self.info = SourceInfo(format=fmt, kind="events", path=url)
        self._start(link, url, link_opts)

    def _split(self, ev) -> list:
        """Chunks of at most ``chunk_us`` and ``chunk_events``, stamped with the arrival of their bytes."""
        out = []
        for e in super()._split(ev):
            e.arrival = self._arrival
            n = len(e)
            if n <= self.chunk_events:
                out.append(e)
                continue
            t = e.events["t"]
            for a in range(0, n, self.chunk_events):
                b = min(n, a + self.chunk_events)
                out.append(Events(e.events[a:b], arrival=self._arrival, t_end=int(t[b]) if b < n else e.t_end))
        return out

    def _datagram_end(self, dec, n_bytes: int) -> None:
        n = dec.discard_partial()
        if n:
            self.stats.note("repaired", self.url, f"datagram of {n_bytes} bytes ends inside a word: its last {n} "
                                                  "bytes dropped")

    def close(self) -> None:
        _Live.close(self)

    def __repr__(self):
        return f"<{type(self).__name__} {self.url}>"


def _raw_base():
    from .events.prophesee import RawSource

    return RawSource


def _aedat4_base():
    from .events.aedat4 import Aedat4Source

    return Aedat4Source


class LinkRawSource(_LiveEvents, _raw_base()):
    """Prophesee RAW words (``format=evt3|evt2|evt21|raw``) from a live link; see the module."""

    def __init__(self, link: _Link, url: str, fmt: str, *, sensor_size=None, width=None, height=None,
                 chunk_events=4096, chunk_us=10_000, max_jump_us=None, evt21_order="auto", **opts):
        link_opts, _ = _split_link_opts(opts)
        self._dec = None
        self._hbuf = b""
        self._init_events(link, url, fmt, sensor_size, width, height, chunk_events, chunk_us, max_jump_us, link_opts)
        try:
            _, buf, t = self._wait(lambda b, final: raw_header_length(b, final), "RAW header lines or data")
            self._f = io.BytesIO(buf)
            self.size = len(buf)
            self._open(encoding=None if fmt == "raw" else fmt, evt21_order=evt21_order)
            self._f = None
            if self.sensor_given is not None:
                self.info.sensor_size = self.sensor_given
            self.info.extra.update(self._extra)
            if len(buf) > self.start:
                self._held.append((t, buf[self.start:]))
        except BaseException:
            self.close()
            raise

    def _decoder(self, **kw):
        from .events.prophesee import RawDecoder

        dec = RawDecoder(self, self.encoding, offset=self.start, cap=self.chunk_events, legacy=self.legacy,
                         what="stream", **kw)
        self._dstate = dec.st
        self._dec = dec
        return dec

    def _on_drop(self) -> None:
        if self._dec is not None:
            n = self._dec.discard_partial()
            if n:
                self.stats.note("repaired", f"{self.url}: byte {self._dec.off + len(self._dec.buf)}",
                                f"link dropped inside a {self._dec.ws}-byte word: {n} bytes discarded")
        self._hbuf = b""

    def _bytes(self):
        """The link's bytes, without header lines sent again after a reconnection."""
        for t, data in self._data():
            if self._fresh:
                buf = self._hbuf + data
                n = raw_header_length(buf)
                if n is None:
                    self._hbuf = buf
                    continue
                self._hbuf, self._fresh = b"", False
                if n:
                    self.info.extra["headers_after_reconnect"] = self.info.extra.get("headers_after_reconnect", 0) + 1
                data = buf[n:]
                if not data:
                    continue
            yield t, data

    def _batches(self):
        dec = self._decoder()
        dg = self.link.datagram
        for t, data in self._bytes():
            self._arrival = t
            yield from dec.batches(data)
            if dg:
                self._datagram_end(dec, len(data))
            yield None
        yield from dec.batches(final=True)

    def chunks(self):
        try:
            if self.encoding != "evt3":
                from .events._base import EventFileSource

                yield from EventFileSource.chunks(self)
                return
            from .events import _kernels as K

            dec = self._decoder(size=self._limits(), jump=self.jump)
            dg = self.link.datagram
            for t, data in self._bytes():
                self._arrival = t
                for ev in dec.events(data):
                    yield from self._emit(ev)
                if dg:
                    self._datagram_end(dec, len(data))
                ev = dec.take()
                if ev is not None:
                    yield from self._emit(ev)
            for ev in dec.events(final=True):
                yield from self._emit(ev)
            ev = dec.take()
            if ev is not None:
                yield from self._emit(ev)
            if dec.fst[K.F_INIT]:
                self.info.extra.setdefault("t0_us", int(dec.fst[K.F_FIRST]))
            self._after(dec.fst)
        finally:
            self.close()


def aedat4_header_length(buf: bytes, final: bool = False):
    """(header bytes on the link, the header as a file starts: ``#!AER-DAT4.0`` line, u32 size,
    IOHeader) or None while more bytes are needed. DV's network output sends the size-prefixed
    IOHeader without the version line; a file sent as is has it. Raises FormatError otherwise."""
    if buf.startswith(AEDAT4_MAGIC[:12]):
        if len(buf) < 18:
            return None
        n = struct.unpack_from("<I", buf, 14)[0]
        if n > MAX_HEADER:
            raise FormatError(f"IOHeader of {n} bytes is implausible (corrupt length)", where="byte 14")
        return (18 + n, bytes(buf[:18 + n])) if len(buf) >= 18 + n else None
    if AEDAT4_MAGIC.startswith(buf[:14]) or len(buf) < 12:
        return None
    if buf[8:12] == b"IOHE":
        n = struct.unpack_from("<I", buf, 0)[0]
        if n > MAX_HEADER:
            raise FormatError(f"IOHeader of {n} bytes is implausible (corrupt length)", where="byte 0")
        return (4 + n, AEDAT4_MAGIC + bytes(buf[:4 + n])) if len(buf) >= 4 + n else None
    raise FormatError("expected an AEDAT 4 header ('#!AER-DAT4.0' or a size-prefixed IOHeader flatbuffer), "
                      f"found {bytes(buf[:16])!r}", where="byte 0")


class LinkAedat4Source(_LiveEvents, _aedat4_base()):
    """AEDAT 4.0 packets (``format=aedat4``) from a live link; see the module."""

    def __init__(self, link: _Link, url: str, *, stream=None, sensor_size=None, width=None, height=None,
                 chunk_events=4096, chunk_us=10_000, max_jump_us=None, **opts):
        link_opts, _ = _split_link_opts(opts)
        self._pbuf = bytearray()
        self._new_batch()
        self._garbage = None       # (start offset, bytes) of a run of bytes being skipped
        self._init_events(link, url, "aedat4", sensor_size, width, height, chunk_events, chunk_us, max_jump_us,
                          link_opts)
        try:
            (n, hdr), buf, t = self._wait(self._header, "AEDAT 4 header")
            self._hdr = hdr
            self.size = 1 << 62
            self._open(stream=stream)
            self.dtp = -1
            if self.sensor_given is not None:
                self.info.sensor_size = self.sensor_given
            self.info.extra.update(self._extra)
            self.info.extra["header"] = "file" if buf.startswith(AEDAT4_MAGIC[:12]) else "network"
            self._off = n               # link offset of _pbuf[0]
            if len(buf) > n:
                self._held.append((t, buf[n:]))
        except FormatError as e:
            self.close()
            raise e.with_file(url) from None
        except BaseException:
            self.close()
            raise

    def _header(self, buf, final):
        return aedat4_header_length(buf, final)

    # the file reader's header code reads the header through these
    def read_at(self, offset: int, n: int) -> bytes:
        return self._hdr[offset:offset + n]

    def _table(self) -> None:
        pass

    def _plausible(self, sid: int, size: int) -> bool:
        return sid in self.streams and 0 < size <= MAX_PACKET

    def _on_drop(self) -> None:
        if self._pbuf:
            self.stats.note("repaired", f"{self.url}: byte {self._off}",
                            f"link dropped inside a packet: {len(self._pbuf)} bytes discarded")
            self._off += len(self._pbuf)
            self._pbuf = bytearray()
        self._end_garbage()

    def _end_garbage(self, what: str = "skipped to the next packet") -> None:
        if self._garbage is not None:
            a, n = self._garbage
            self._garbage = None
            self.stats.note("repaired", f"{self.url}: byte {a}",
                            f"{n} bytes that are not a valid packet (garbage or a damaged packet header) {what}")

    def _skip(self, buf, pos: int, n: int) -> None:
        if self._garbage is None:
            self._garbage = (self._off + pos, 0)
        a, m = self._garbage
        self._garbage = (a, m + n)

    def _next_header(self, buf, pos: int) -> int | None:
        """Offset of the next plausible packet header after ``pos`` (found by its compressed-frame magic
        or, uncompressed, by the flatbuffer identifier), or None."""
        from .events.aedat4 import LZ4_MAGIC, ZSTD_MAGIC

        magic = {1: LZ4_MAGIC, 2: LZ4_MAGIC, 3: ZSTD_MAGIC, 4: ZSTD_MAGIC}.get(self.compression)
        pats, back = ([magic], 8) if magic is not None else ([b"EVTS", b"IMUS", b"FRME", b"TRIG"], 16)
        q = pos + 1 + back
        while True:
            hits = [i for i in (buf.find(p, q) for p in pats) if i >= 0]
            if not hits:
                return None
            i = min(hits)
            cand = i - back
            sid, size = struct.unpack_from("<ii", buf, cand)
            if self._plausible(sid, size):
                return cand
            q = i + 1

    def _data_table(self, buf, pos: int):
        """Bytes of a file data table (a bare compressed FileDataTable) at ``pos``: an int, None if it
        is not one, -1 if more bytes are needed to tell."""
        from .events.aedat4 import LZ4_MAGIC, ZSTD_MAGIC

        if bytes(buf[pos:pos + 4]) not in (LZ4_MAGIC, ZSTD_MAGIC):
            return None
        try:
            body, rest = self._decompress_prefix(bytes(buf[pos:]))
        except ValueError as e:
            return -1 if "truncated" in str(e) else None
        except Exception:  # noqa: BLE001 - not a frame
            return None
        if body[8:12] != b"FTAB":
            return None
        return len(buf) - pos - rest

    def _batches(self):
        for t, data in self._data():
            if self._fresh:
                self._pbuf += data
                try:
                    r = aedat4_header_length(self._pbuf)
                except FormatError:
                    r, self._fresh = False, False
                if r is None:
                    if len(self._pbuf) <= MAX_HEADER:
                        continue
                    self._fresh = False
                elif r:
                    self._fresh = False
                    del self._pbuf[:r[0]]
                    self._off += r[0]
                    self.info.extra["headers_after_reconnect"] = self.info.extra.get("headers_after_reconnect", 0) + 1
            else:
                self._pbuf += data
            self._arrival = t
            batch = self._packets()
            if batch is not None:
                yield batch
            yield None
        self._end_garbage()
        if self._pbuf:
            self.stats.note("repaired", f"{self.url}: byte {self._off}",
                            f"stream ended inside a packet: last {len(self._pbuf)} bytes ignored")

    def _packets(self):
        """Decode the whole packets in the buffer; a batch of their events (or None)."""
        buf = self._pbuf
        pos = 0
        unpack = struct.Struct("<ii").unpack_from
        while len(buf) - pos >= 8:
            sid, size = unpack(buf, pos)
            if not self._plausible(sid, size):
                tb = self._data_table(buf, pos) if self._garbage is None else None
                if tb == -1 and len(buf) - pos <= MAX_PACKET:
                    break       # maybe a file data table: wait for the rest of it
                if tb:
                    self.info.extra["data_table"] = "a file's data table arrived after the packets: skipped"
                    pos += tb
                    continue
                nxt = self._next_header(buf, pos)
                if nxt is None:
                    keep = max(pos, len(buf) - 24)   # a header may straddle the next read
                    self._skip(buf, pos, keep - pos)
                    pos = keep
                    break
                self._skip(buf, pos, nxt - pos)
                self._end_garbage()
                pos = nxt
                continue
            if len(buf) - pos < 8 + size:
                break
            if self._garbage is not None:
                self._end_garbage()
            at = self._off + pos
            if sid != self.stream:
                kind = self.streams[sid]["typeIdentifier"]
                self.skipped[kind] = self.skipped.get(kind, 0) + 1
                pos += 8 + size
                continue
            try:
                body = self.decompress(bytes(buf[pos + 8:pos + 8 + size]))
                s, cnt = self._events(body)
            except Exception as e:  # noqa: BLE001 - any decoder error means a damaged packet
                self.stats.note("repaired", f"{self.url}: byte {at}", f"event packet does not decode "
                                f"({type(e).__name__}: {str(e)[:80]}): skipped")
                pos += 8 + size
                continue
            if cnt:
                self._add(body, s, cnt, at)  # (the file reader's: garbage packets skipped and counted)
            pos += 8 + size
        if pos:
            del buf[:pos]
            self._off += pos
        return self._take_batch() if self._n else None

    def chunks(self):
        from .events._base import EventFileSource

        try:
            yield from EventFileSource.chunks(self)
        finally:
            self.close()
