"""Binary live streams over ``serial://``, ``tcp://`` and ``udp://``: audio and event cameras.

A live link carries Edge Impulse data-forwarder lines by default (:mod:`.livelines`); ``format=`` in
the URL (or ``--format``) makes it carry one of these instead (the URL openers of :mod:`.live` pick the
source):

    tcp://host:port?format=pcm&rate=16000&channels=1&sample=s16le     raw PCM audio
    serial:///dev/ttyACM0?baud=921600&format=wav                      a streamed WAV (header, then samples)
    udp://:5000?format=pcm&rate=16000                                 PCM, whole frames per datagram
    tcp://camera:5000?format=evt3&width=1280&height=720               Prophesee EVT 3.0 words
    tcp://:5000?format=evt2                                           EVT 2.0 (size from header lines)
    tcp://dv-host:7777?format=aedat4                                  AEDAT 4 packets (iniVation DV)
    serial:///dev/ttyACM0?baud=921600&format=eb                       a board's sensor, framed (docs/protocol.md)

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
eb        SENSOR frames of edgebrain's board protocol (docs/protocol.md): int16 counts with each
          channel's units and the rate in every frame, CRC-checked (:mod:`.livebin_frames`);
          ``names=`` names the channels
========  ==========================================================================================

The decoding is that of the file readers: :class:`~.wav.PcmDecoder` (WAV files),
:class:`~.events.prophesee.RawDecoder` (RAW files) and the AEDAT 4 packet decoding and event
finishing of :class:`~.events.aedat4.Aedat4Source` / :class:`~.events.base.EventFileSource`, fed with
whatever each read returns: a read may end inside a sample, a word or a packet, and EVT 3.0 time
(TIME_HIGH / TIME_LOW state) carries across reads, so the output equals that of reading the same
bytes from a file. Each chunk carries the time its bytes arrived (the link reader's clock: ``now()``) and holds at
most ``chunk_ms`` (10 ms) of audio, or ``chunk_events`` (4096) events / ``chunk_us`` (10 ms).

Links behave as for lines (:class:`~edgebrain.stream.links.LinkReader`): a dropped link is reopened
with backoff (``timeout``, ``reconnect``, ``backoff``, ``backoff_max``, ``give_up``, ``connect_timeout``,
``poll``) and the stream goes on; the incomplete sample frame, word or packet at the drop is discarded and
counted, and a header sent again on the new connection (a restarted device) is recognised and
skipped. Over UDP every datagram must hold whole frames (audio) or words (EVT): a partial one is
dropped and counted. Garbage in AEDAT 4 is skipped to the next packet (found by its compressed-frame
magic) and counted; words of unknown type in EVT streams are skipped and counted by the decoder.

This module holds what the binary sources share (:class:`LiveBinary`, the format and option
names); the sources are in :mod:`.livebin_audio` (pcm, wav), :mod:`.livebin_events` (evt*, raw,
aedat4) and :mod:`.livebin_frames` (eb).
"""

from __future__ import annotations

from ...errors import FormatError, InputError
from ..links import Link, LinkReader

AUDIO_FORMATS = ("pcm", "wav")
EVENT_FORMATS = ("evt3", "evt2", "evt21", "raw", "aedat4")
FRAME_FORMATS = ("eb",)
FORMATS = AUDIO_FORMATS + EVENT_FORMATS + FRAME_FORMATS

LINK_OPTIONS = ("timeout", "reconnect", "backoff", "backoff_max", "give_up", "connect_timeout", "poll")
AUDIO_OPTIONS = ("rate", "channels", "sample", "resample", "mono", "clip", "chunk_ms")
EVENT_OPTIONS = ("sensor_size", "width", "height", "chunk_events", "chunk_us", "max_jump_us")
FORMAT_OPTIONS = {"raw": ("evt21_order",), "evt21": ("evt21_order",), "aedat4": ("stream",), "eb": ("names",)}

MAX_HEADER = 16 << 20     # bytes a header may take before the data (RAW text lines, AEDAT 4 IOHeader)


def check_options(url: str, fmt: str, opts: dict) -> None:
    """An InputError unless every option in ``opts`` is one that ``format=fmt`` takes."""
    kind = AUDIO_OPTIONS if fmt in AUDIO_FORMATS else EVENT_OPTIONS if fmt in EVENT_FORMATS else ()
    allowed = LINK_OPTIONS + kind + FORMAT_OPTIONS.get(fmt, ())
    unknown = [k for k in opts if k not in allowed]
    if unknown:
        raise InputError(f"{url}: unknown option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} for "
                         f"format={fmt}; expected {', '.join(allowed)}")


# ---------------------------------------------------------------------------------------- the link


class LiveBinary:
    """What the binary link sources share (a mixin before the file reader or audio base they
    extend): the link reader, bytes read while opening, waits with a deadline, and ``close()``
    (from any thread). A subclass calls :meth:`_start`, reads its header with :meth:`_wait`, then
    its data with :meth:`_data`; it discards its partial record in :meth:`_on_drop`."""

    live = True
    url = ""
    _fresh = False      # a new connection began: a header may come again

    def _start(self, link: Link, url: str, link_opts: dict) -> None:
        self.url, self.link = url, link
        lo = dict(link_opts)
        connect_timeout = float(lo.pop("connect_timeout", 30.0))
        self.link_reader = LinkReader(link, url, self.stats, on_drop=self._on_drop,
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
        now = self.link_reader.clock.now
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


def split_link_options(opts: dict) -> tuple[dict, dict]:
    """(the link's options, the rest): ``opts`` split (in place: the link's are popped)."""
    link = {k: opts.pop(k) for k in LINK_OPTIONS if k in opts}
    return link, opts
