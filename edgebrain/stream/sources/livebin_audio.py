"""Audio over a live link: raw PCM (``format=pcm``) or a streamed WAV (``format=wav``); see :mod:`.livebin`."""

from __future__ import annotations

from ...errors import FormatError, InputError
from ..base import log
from ..links import Link
from .audio import AudioSource
from .livebin import MAX_HEADER, LiveBinary, split_link_options
from .wav import SAMPLE_FORMATS, PcmDecoder, parse_wav_stream_header


class LinkAudioSource(LiveBinary, AudioSource):
    """Raw PCM (``format=pcm``) or a streamed WAV (``format=wav``) from a live link; see the module.
    Options: rate, channels, sample (pcm), resample (to this rate), mono, clip, chunk_ms, and the link
    options."""

    def __init__(self, link: Link, url: str, fmt: str, *, rate=None, channels=None, sample=None, resample=None,
                 mono=False, clip=True, chunk_ms=10.0, **opts):
        self.format = fmt
        AudioSource.__init__(self, url, rate=resample, mono=mono, clip=clip)
        link_opts, _ = split_link_options(opts)
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
            if not 0 < rate < float("inf") or channels < 1:
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
        LiveBinary.close(self)


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
