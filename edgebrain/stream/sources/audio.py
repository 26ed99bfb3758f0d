"""Audio sources: WAV (pure Python/NumPy RIFF reader), FLAC (via soundfile) and a live microphone
(``mic://``, via sounddevice); a streaming resampler; and a WAV writer for ``edgebrain record``.

Every source yields :class:`~edgebrain.stream.base.Samples` chunks: ``values`` (n, channels) float32,
``t`` the stream time of each sample in seconds from the first sample. Integer PCM is scaled by
the full-scale value of its container so that values lie in [-1, 1) exactly as libsndfile (and
soundfile's ``dtype='float32'``) does:

========================  =====================================
stored                    value
========================  =====================================
8-bit PCM (unsigned)      (u − 128) / 128
16-bit PCM                i / 2**15
24-bit PCM                i / 2**23
32-bit PCM                float32(i) / 2**31 (rounded once to float32)
32/64-bit IEEE float      as stored (64-bit rounded to float32); NaN/±inf → 0 and values beyond
                          ±1 clipped to ±1, both counted as repairs
========================  =====================================

Samples with fewer valid bits than their container (WAVE_FORMAT_EXTENSIBLE ``wValidBitsPerSample``,
e.g. 20 bits in 3 bytes) are left-justified in the container, so the same scaling applies.

The WAV reader walks the RIFF chunk list (odd-sized chunks are padded to even length; unknown chunks
are skipped), understands plain PCM, IEEE float and WAVE_FORMAT_EXTENSIBLE headers and RF64 (``ds64``),
and reads the ``data`` chunk in blocks, so its memory does not grow with the file. Damage:

* a header it cannot use (not RIFF/WAVE, a ``fmt `` chunk with impossible fields, no ``data`` chunk)
  is a :class:`~edgebrain.errors.FormatError` naming the byte offset and what was expected;
* a ``data`` chunk shorter than declared (a truncated file) is read as far as it goes, and counted;
* a trailing partial sample frame is dropped and counted;
* a data size of 0 or 0xFFFFFFFF (a WAV written to a pipe) means "read to the end of the file";
* a RIFF size that disagrees with the file length, or bytes after the data chunk that are not RIFF
  chunks, are counted and otherwise ignored.

Resampling (option ``rate=``) uses :class:`Resampler`, a polyphase windowed-sinc FIR filter that
keeps its state across chunks, so the output does not depend on how the input was chunked. Its
filter is the one :func:`scipy.signal.resample_poly` designs by default (Kaiser window β = 5,
10·max(up, down) taps each side of the centre, cutoff at the lower Nyquist frequency), with the same
time alignment and zero padding at both ends; output sample n is at time n / rate.
"""

from __future__ import annotations

import io
import math
import os
import queue
import struct
import urllib.parse
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Iterable, Iterator

import numpy as np
from numba import njit

from ...errors import FormatError, InputError
from ..base import Samples, Source, SourceInfo, _value, now
from ..registry import FileFormat

DEFAULT_CHUNK = 4096          # sample frames per chunk read from a file
MAX_RATIO_TERM = 4096         # largest up or down factor the resampler accepts
MAX_CHUNKS = 10000            # RIFF chunks walked before 'data' before giving up

# ---------------------------------------------------------------------------------------- resampler


def _resample_filter(up: int, down: int, half_len: int, beta: float = 5.0) -> np.ndarray:
    """The low-pass FIR filter of scipy.signal.resample_poly (``firwin(2·half_len + 1, 1/max(up, down),
    window=('kaiser', beta)) · up``), computed with NumPy only."""
    n = 2 * half_len + 1
    cutoff = 1.0 / max(up, down)
    m = np.arange(n, dtype=np.float64) - half_len
    h = cutoff * np.sinc(cutoff * m) * np.kaiser(n, beta)
    h /= h.sum()
    return h * up


@njit(cache=True)
def _polyphase(buf, buf_start, n_total, n0, n1, up, down, half, h, out):
    """out[n − n0, c] = Σ_i x[i, c] · h[n·down + half − i·up] for n in [n0, n1), over the inputs i with
    0 ≤ n·down + half − i·up ≤ 2·half and 0 ≤ i < n_total (inputs outside are zero). ``buf`` holds
    inputs buf_start, buf_start + 1, …; the sum always runs over increasing i, so the result does
    not depend on how the input was split into chunks."""
    nch = buf.shape[1]
    for n in range(n0, n1):
        c = n * down + half
        i_hi = c // up
        i_lo = -((2 * half - c) // up)          # ceil((c − 2·half) / up)
        if i_lo < 0:
            i_lo = 0
        if i_hi > n_total - 1:
            i_hi = n_total - 1
        for ch in range(nch):
            acc = 0.0
            for i in range(i_lo, i_hi + 1):
                acc += buf[i - buf_start, ch] * h[c - i * up]
            out[n - n0, ch] = acc


def rate_ratio(rate_in: float, rate_out: float) -> tuple[int, int]:
    """(up, down): the smallest integers with rate_out / rate_in = up / down."""
    if not (rate_in > 0 and rate_out > 0 and math.isfinite(rate_in) and math.isfinite(rate_out)):
        raise InputError(f"cannot resample from {rate_in} Hz to {rate_out} Hz: rates must be positive")
    if float(rate_in).is_integer() and float(rate_out).is_integer():
        fr = Fraction(int(rate_out), int(rate_in))
    else:
        fr = Fraction(rate_out / rate_in).limit_denominator(MAX_RATIO_TERM)
    up, down = fr.numerator, fr.denominator
    if max(up, down) > MAX_RATIO_TERM:
        raise InputError(f"cannot resample from {rate_in:g} Hz to {rate_out:g} Hz: the ratio {up}/{down} has "
                         f"terms above {MAX_RATIO_TERM}; choose rates with a simpler ratio")
    return up, down


class Resampler:
    """Streaming rational-ratio resampler (polyphase windowed-sinc FIR), stateful across chunks.

    ``process(x)`` takes (n, channels) samples and returns the output samples that are complete
    (each needs ``half_len / up`` input samples of look-ahead); ``flush()`` returns the rest, with
    the input continued by zeros, so that ``process`` over any chunking followed by ``flush``
    equals ``scipy.signal.resample_poly(x, up, down)`` on the whole signal (to float rounding), and
    equals itself exactly for every chunking. Output sample n lies at time n / rate_out.
    """

    def __init__(self, rate_in: float, rate_out: float, channels: int = 1, beta: float = 5.0):
        self.rate_in, self.rate_out = float(rate_in), float(rate_out)
        self.up, self.down = rate_ratio(rate_in, rate_out)
        self.channels = int(channels)
        self.half = 10 * max(self.up, self.down)
        self.h = _resample_filter(self.up, self.down, self.half, beta)
        self.reset()

    @property
    def identity(self) -> bool:
        return self.up == self.down

    @property
    def delay(self) -> float:
        """Input samples of look-ahead an output sample needs."""
        return self.half / self.up

    def reset(self) -> None:
        self.n_in = 0            # input samples seen
        self.n_out = 0           # output samples produced
        self.buf = np.zeros((0, self.channels), np.float32)
        self.buf_start = 0       # input index of buf[0]

    def n_outputs(self, n_in: int) -> int:
        """Output length for n_in input samples (as resample_poly: ceil(n_in·up / down))."""
        return -((-n_in * self.up) // self.down)

    def _run(self, n1: int) -> np.ndarray:
        n0 = self.n_out
        out = np.empty((max(n1 - n0, 0), self.channels), np.float64)
        if n1 > n0:
            _polyphase(self.buf, self.buf_start, self.n_in, n0, n1, self.up, self.down, self.half, self.h, out)
            self.n_out = n1
        # keep the inputs the next output still needs
        keep_from = max(0, -((2 * self.half - (self.n_out * self.down + self.half)) // self.up))
        if keep_from > self.buf_start:
            cut = min(keep_from - self.buf_start, len(self.buf))
            self.buf = self.buf[cut:]
            self.buf_start += cut
        return out.astype(np.float32)

    def process(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float32)
        if x.ndim == 1:
            x = x[:, None]
        if x.shape[1] != self.channels:
            raise InputError(f"resampler set up for {self.channels} channels got {x.shape[1]}")
        if self.identity:
            self.n_in += len(x)
            self.n_out += len(x)
            return x.copy()
        self.buf = np.concatenate([self.buf, x]) if len(self.buf) else np.ascontiguousarray(x)
        self.n_in += len(x)
        # output n is complete when its last input floor((n·down + half) / up) has arrived
        n1 = (self.n_in * self.up - 1 - self.half) // self.down + 1 if self.n_in else 0
        n1 = min(max(n1, self.n_out), self.n_outputs(self.n_in))
        return self._run(n1)

    def flush(self) -> np.ndarray:
        if self.identity:
            return np.zeros((0, self.channels), np.float32)
        return self._run(self.n_outputs(self.n_in))


# ---------------------------------------------------------------------------------------- WAV header

_FMT_PCM, _FMT_FLOAT, _FMT_EXTENSIBLE = 1, 3, 0xFFFE
_GUID_SUFFIX = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
_KNOWN_TAGS = {2: "MS ADPCM", 6: "A-law", 7: "µ-law", 0x11: "IMA ADPCM", 0x31: "GSM 6.10", 0x50: "MPEG",
               0x55: "MP3", 0x161: "WMA"}
_STREAMED = (0, 0xFFFFFFFF)


def _is_chunk_id(b: bytes) -> bool:
    return len(b) == 4 and all(0x20 <= c <= 0x7E for c in b)


@dataclass
class WavHeader:
    encoding: str          # "pcm" or "float"
    channels: int
    rate: int
    bits: int              # valid bits per sample
    width: int             # bytes per sample (container)
    block_align: int
    data_offset: int       # file offset of the first sample byte
    data_size: int | None  # bytes declared, None: read to the end of the file (streamed WAV)
    file_size: int
    riff_size: int | None  # bytes the RIFF header declares for the whole file (size − 8), None for streamed
    container: str = "RIFF"
    tag: int = 1
    channel_mask: int | None = None
    notes: list = field(default_factory=list)   # (what) header inconsistencies to count as repairs

    @property
    def sample_format(self) -> str:
        if self.encoding == "float":
            return f"float{8 * self.width}"
        return f"pcm{self.bits}" + ("u" if self.width == 1 else "")

    def frames_declared(self) -> int | None:
        if self.data_size is None:
            return None
        return min(self.data_size, self.file_size - self.data_offset) // self.block_align


def read_wav_header(f, path: str | None = None) -> WavHeader:
    """Parse the RIFF/WAVE header of an open binary file up to the start of the ``data`` chunk."""
    def err(offset, what):
        return FormatError(what, file=path, where=f"offset {offset}")

    f.seek(0, os.SEEK_END)
    file_size = f.tell()
    f.seek(0)
    head = f.read(12)
    if len(head) < 12:
        raise err(0, f"file is {len(head)} bytes; expected at least 12 (a RIFF/WAVE header)")
    if head[:4] == b"RIFX":
        raise err(0, "big-endian RIFX WAV is not supported; expected 'RIFF' (little-endian)")
    if head[:4] not in (b"RIFF", b"RF64"):
        raise err(0, f"expected 'RIFF' or 'RF64', found {head[:4]!r}: not a WAV file")
    if head[8:12] != b"WAVE":
        raise err(8, f"expected 'WAVE' after the RIFF header, found {head[8:12]!r}")
    container = head[:4].decode()
    riff_size = struct.unpack_from("<I", head, 4)[0]
    notes = []
    fmt = None
    ds64 = None
    pos = 12
    for _ in range(MAX_CHUNKS):
        f.seek(pos)
        hdr = f.read(8)
        if len(hdr) < 8:
            raise err(pos, f"file ends (at {file_size} bytes) before a '{'fmt ' if fmt is None else 'data'}' "
                           "chunk; expected one")
        cid, size = hdr[:4], struct.unpack_from("<I", hdr, 4)[0]
        if not _is_chunk_id(cid):
            raise err(pos, f"expected a chunk id (4 ASCII characters), found {cid!r}")
        name = cid.decode("ascii")
        if cid == b"fmt ":
            fmt = _parse_fmt(f, pos, size, file_size, path)
        elif cid == b"ds64":
            body = f.read(min(size, 28))
            if len(body) < 24:
                raise err(pos, f"'ds64' chunk of {size} bytes; expected at least 24 (RF64 sizes)")
            ds64 = struct.unpack_from("<QQ", body, 0)
        elif cid == b"data":
            if fmt is None:
                raise err(pos, "'data' chunk before the 'fmt ' chunk; expected 'fmt ' first")
            data_size = size
            if container == "RF64" and size == 0xFFFFFFFF and ds64 is not None:
                data_size = ds64[1]
                riff_size = ds64[0]
            elif size in _STREAMED:
                data_size = None
            if riff_size in _STREAMED:      # unknown (written to a pipe; RF64 without ds64)
                riff_size = None
            if riff_size is not None and riff_size + 8 != file_size:
                notes.append(f"RIFF header says the file has {riff_size + 8} bytes, it has {file_size}")
            return WavHeader(channel_mask=fmt.pop("channel_mask"), tag=fmt.pop("tag"), data_offset=pos + 8,
                             data_size=data_size, file_size=file_size, riff_size=riff_size,
                             container=container, notes=notes + fmt.pop("notes"), **fmt)
        nxt = pos + 8 + size + (size & 1)
        if nxt > file_size:
            raise err(pos, f"chunk '{name}' declares {size} bytes but the file ends at {file_size}; "
                           f"expected a '{'fmt ' if fmt is None else 'data'}' chunk before the end")
        if size & 1:
            # a writer that forgot the pad byte: the next id then starts one byte earlier
            f.seek(nxt)
            at_pad = f.read(4)
            f.seek(nxt - 1)
            unpadded = f.read(4)
            if not _is_chunk_id(at_pad) and _is_chunk_id(unpadded):
                notes.append(f"chunk '{name}' at offset {pos} has odd size {size} without a pad byte")
                nxt -= 1
        pos = nxt
    raise err(pos, f"no 'data' chunk among the first {MAX_CHUNKS} chunks; expected one")


MAX_STREAM_HEADER = 1 << 20   # bytes of RIFF chunks a streamed WAV may send before its audio data


def parse_wav_stream_header(buf: bytes, where: str | None = None) -> WavHeader | None:
    """The header of a WAV arriving on a link (a streamed WAV), from the bytes received so far:
    None while more are needed, else the header, ``data_offset`` being the number of header bytes.
    The sizes in it are not trusted (a writer that cannot seek leaves 0 or 0xFFFFFFFF, some leave a
    wrong one): the audio runs until the link ends; the declared data size is kept in ``data_size``
    (None when 0 or 0xFFFFFFFF) for information. A header it cannot use is a FormatError."""
    def err(offset, what):
        return FormatError(what, file=where, where=f"byte {offset}")

    head = bytes(buf[:12])
    if head[:4] == b"RIFX":
        raise err(0, "big-endian RIFX WAV is not supported; expected 'RIFF' (little-endian)")
    if not (b"RIFF".startswith(head[:4]) or b"RF64".startswith(head[:4])):
        raise err(0, f"expected 'RIFF' or 'RF64', found {head[:4]!r}: not a WAV stream")
    if len(buf) < 12:
        return None
    if head[8:12] != b"WAVE":
        raise err(8, f"expected 'WAVE' after the RIFF header, found {head[8:12]!r}")
    container = head[:4].decode()
    fmt = None
    pos = 12
    for _ in range(MAX_CHUNKS):
        if len(buf) < pos + 8:
            return None
        cid, size = bytes(buf[pos:pos + 4]), struct.unpack_from("<I", buf, pos + 4)[0]
        if not _is_chunk_id(cid):
            raise err(pos, f"expected a chunk id (4 ASCII characters), found {cid!r}")
        if cid == b"data":
            if fmt is None:
                raise err(pos, "'data' chunk before the 'fmt ' chunk; expected 'fmt ' first")
            return WavHeader(channel_mask=fmt.pop("channel_mask"), tag=fmt.pop("tag"), data_offset=pos + 8,
                             data_size=None if size in _STREAMED else size, file_size=0, riff_size=None,
                             container=container, notes=fmt.pop("notes"), **fmt)
        nxt = pos + 8 + size + (size & 1)
        if nxt > MAX_STREAM_HEADER:
            raise err(pos, f"chunk '{cid.decode('ascii')}' of {size} bytes before the audio data; expected the "
                           f"'data' chunk within the first {MAX_STREAM_HEADER} bytes")
        if len(buf) < nxt:
            return None
        if cid == b"fmt ":
            fmt = _parse_fmt(io.BytesIO(bytes(buf[pos + 8:pos + 8 + size])), pos, size, 0, where)
        pos = nxt
    raise err(pos, f"no 'data' chunk among the first {MAX_CHUNKS} chunks; expected one")


def _parse_fmt(f, pos: int, size: int, file_size: int, path) -> dict:
    def err(rel, what):
        return FormatError(what, file=path, where=f"offset {pos + 8 + rel} (fmt chunk)")

    if size < 16:
        raise err(-4, f"fmt chunk size {size}; expected at least 16")
    if size > 4096:
        raise err(-4, f"fmt chunk size {size} is implausible; expected 16, 18 or 40")
    body = f.read(size)
    if len(body) < size:
        raise err(len(body), f"file ends inside the fmt chunk after {len(body)} of its {size} bytes; "
                                 "expected the whole chunk")
    tag, channels, rate, byte_rate, block_align, bits = struct.unpack_from("<HHIIHH", body, 0)
    notes = []
    channel_mask = None
    valid = bits
    if tag == _FMT_EXTENSIBLE:
        if size < 40:
            raise err(-4, f"WAVE_FORMAT_EXTENSIBLE fmt chunk of {size} bytes; expected 40")
        cb_size, valid, channel_mask = struct.unpack_from("<HHI", body, 16)
        if cb_size < 22:
            raise err(16, f"extensible cbSize {cb_size}; expected 22")
        guid = body[24:40]
        if guid[2:] != _GUID_SUFFIX:
            raise err(24, f"extensible sub-format GUID {guid.hex()} is not a KSDATAFORMAT_SUBTYPE; "
                          "expected PCM (0001…) or IEEE float (0003…)")
        sub = struct.unpack_from("<H", guid, 0)[0]
        if sub not in (_FMT_PCM, _FMT_FLOAT):
            raise err(24, f"extensible sub-format {sub:#06x} ({_KNOWN_TAGS.get(sub, 'unknown')}) is not supported; "
                          "expected 1 (PCM) or 3 (IEEE float)")
        if valid == 0:
            valid = bits
        if valid > bits:
            raise err(18, f"{valid} valid bits per sample in a {bits}-bit container; expected at most {bits}")
        enc = "pcm" if sub == _FMT_PCM else "float"
    elif tag == _FMT_PCM:
        enc = "pcm"
    elif tag == _FMT_FLOAT:
        enc = "float"
    else:
        name = _KNOWN_TAGS.get(tag, "unknown")
        raise err(0, f"audio format {tag:#06x} ({name}) is not supported; expected 1 (PCM), 3 (IEEE float) "
                     "or 0xFFFE (extensible)")
    if channels == 0:
        raise err(2, "0 channels; expected at least 1")
    if rate == 0:
        raise err(4, "sample rate 0; expected a positive rate in Hz")
    if enc == "pcm" and not 1 <= bits <= 32:
        raise err(14, f"{bits} bits per sample; expected 8, 16, 24 or 32 for PCM")
    if enc == "float" and bits not in (32, 64):
        raise err(14, f"{bits} bits per sample; expected 32 or 64 for IEEE float")
    width = (bits + 7) // 8
    if block_align != channels * width:
        raise err(12, f"block align {block_align}; expected channels × bytes per sample = "
                      f"{channels} × {width} = {channels * width}")
    if enc == "pcm" and width not in (1, 2, 3, 4):
        raise err(14, f"{bits} bits per sample; expected 8, 16, 24 or 32")
    if byte_rate != rate * block_align:
        notes.append(f"fmt byte rate {byte_rate} ≠ rate × block align = {rate * block_align}")
    return dict(encoding=enc, channels=channels, rate=rate, bits=valid if enc == "pcm" else bits, width=width,
                block_align=block_align, channel_mask=channel_mask, tag=tag, notes=notes)


def decode_pcm(raw: bytes | np.ndarray, encoding: str, width: int, channels: int) -> np.ndarray:
    """Whole sample frames of little-endian WAV data → (n, channels) float32 (see the module's table)."""
    b = np.frombuffer(raw, np.uint8) if not isinstance(raw, np.ndarray) else raw
    if encoding == "float":
        x = b.view("<f4" if width == 4 else "<f8").astype(np.float32, copy=True)
    elif width == 1:
        x = (b.astype(np.float32) - 128.0) * np.float32(1 / 128)
    elif width == 2:
        x = b.view("<i2").astype(np.float32) * np.float32(2.0 ** -15)
    elif width == 3:
        t = b.reshape(-1, 3).astype(np.int32)
        v = (t[:, 0] | (t[:, 1] << 8) | (t[:, 2] << 16)) << 8     # sign lands in bit 31
        x = (v >> 8).astype(np.float32) * np.float32(2.0 ** -23)
    else:
        x = b.view("<i4").astype(np.float32) * np.float32(2.0 ** -31)
    return x.reshape(-1, channels)


#: raw PCM sample formats of live links (``sample=``): name → (encoding, bytes per sample)
SAMPLE_FORMATS = {"u8": ("pcm", 1), "s16le": ("pcm", 2), "s24le": ("pcm", 3), "s32le": ("pcm", 4),
                  "f32le": ("float", 4), "f64le": ("float", 8)}


class PcmDecoder:
    """Little-endian PCM bytes in blocks of any length → whole sample frames, (n, channels) float32
    (:func:`decode_pcm`). A block may end inside a sample or a frame: those bytes wait for the next
    block. Used by :class:`WavSource` on file blocks and by the live links (``format=pcm|wav``)."""

    def __init__(self, encoding: str, width: int, channels: int):
        self.encoding, self.width, self.channels = encoding, int(width), int(channels)
        self.block_align = self.width * self.channels
        self._tail = b""

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame held back."""
        return len(self._tail)

    def feed(self, data) -> np.ndarray:
        raw = self._tail + bytes(data) if self._tail else data
        usable = len(raw) - len(raw) % self.block_align
        self._tail = bytes(raw[usable:])
        if not usable:
            return np.zeros((0, self.channels), np.float32)
        return decode_pcm(raw[:usable] if usable < len(raw) else raw, self.encoding, self.width, self.channels)

    def discard(self) -> int:
        """Drop the bytes of an incomplete frame (the link dropped, a datagram ended); their number."""
        n, self._tail = len(self._tail), b""
        return n


# ---------------------------------------------------------------------------------------- sources


_COMMON_OPTIONS = ("rate", "chunk", "mono", "clip")


class _AudioSource(Source):
    """Shared logic: resampling to ``rate``, mixing to mono, repairing NaN / out-of-range values,
    per-sample times, chunking. Subclasses yield raw (n, channels) float32 blocks from ``_blocks``."""

    format = "audio"
    _arrival = None     # a live source sets this to the wall-clock arrival of the block it yields

    def __init__(self, path, rate=None, chunk=DEFAULT_CHUNK, mono=False, clip=True, **options):
        super().__init__()
        if options:
            raise InputError(f"{self.format} source: unknown option(s) {', '.join(sorted(options))}; expected "
                             f"{', '.join(_COMMON_OPTIONS)}")
        self.path = None if path is None else str(path)
        try:
            self.chunk = int(chunk)
        except (TypeError, ValueError):
            raise InputError(f"{self.format} source: chunk={chunk!r}; expected a number of samples") from None
        if self.chunk < 1:
            raise InputError(f"{self.format} source: chunk={chunk}; expected at least 1 sample")
        self.mono = bool(mono)
        self.clip = bool(clip)
        self.target_rate = None if rate in (None, 0, "") else float(rate)

    def _setup(self, rate: float, channels: int, frames: int | None, extra: dict):
        self.src_rate = float(rate)
        self.src_channels = channels
        out_ch = 1 if self.mono else channels
        out_rate = self.target_rate or self.src_rate
        self.resampler = None
        if out_rate != self.src_rate:
            self.resampler = Resampler(self.src_rate, out_rate, out_ch)
        n_items = frames
        if frames is not None and self.resampler is not None:
            n_items = self.resampler.n_outputs(frames)
        extra = dict(extra)
        if self.resampler is not None:
            extra.update(source_rate=self.src_rate, resampled=True)
        self.info = SourceInfo(format=self.format, kind="samples", path=self.path, rate=out_rate, channels=out_ch,
                               channel_names=None if out_ch > 1 else ["audio"], n_items=n_items,
                               duration=None if n_items is None else n_items / out_rate, extra=extra)

    def _blocks(self) -> Iterator[np.ndarray]:
        raise NotImplementedError

    def _repair(self, x: np.ndarray, start: int) -> np.ndarray:
        bad = ~np.isfinite(x)
        if bad.any():
            k = int(bad.sum())
            first = start + int(np.argwhere(bad)[0][0])
            x = np.where(bad, np.float32(0), x)
            self.stats.note("repaired", self._where(first), f"{k} NaN/infinite sample value(s) set to 0")
        if self.clip:
            over = np.abs(x) > 1.0
            if over.any():
                k = int(over.sum())
                first = start + int(np.argwhere(over)[0][0])
                x = np.clip(x, -1.0, 1.0)
                self.stats.note("repaired", self._where(first), f"{k} sample value(s) beyond ±1 clipped")
        return x

    def _where(self, frame: int) -> str:
        return f"{self.path or self.format}: sample {frame}"

    def chunks(self) -> Iterator[Samples]:
        if self.resampler is not None:
            self.resampler.reset()
        n_src = 0       # source frames read
        n_out = 0       # output frames yielded
        rate = self.info.rate
        for block in self._blocks():
            if not len(block):
                continue
            if block.dtype != np.float32 or not block.flags.c_contiguous:
                block = np.ascontiguousarray(block, np.float32)
            block = self._repair(block, n_src)
            n_src += len(block)
            if self.mono and block.shape[1] > 1:
                block = block.mean(axis=1, dtype=np.float32, keepdims=True)
            if self.resampler is not None:
                block = self.resampler.process(block)
            if len(block):
                t = (n_out + np.arange(len(block), dtype=np.float64)) / rate
                n_out += len(block)
                yield Samples(t=t, values=block, arrival=self._arrival or now())
        if self.resampler is not None:
            block = self.resampler.flush()
            if len(block):
                t = (n_out + np.arange(len(block), dtype=np.float64)) / rate
                yield Samples(t=t, values=block, arrival=self._arrival or now())

    def read_all(self) -> np.ndarray:
        """All samples as one (n, channels) float32 array (for tests and small files)."""
        parts = [c.values for c in self.chunks()]
        if not parts:
            return np.zeros((0, self.info.channels), np.float32)
        return np.concatenate(parts)


class WavSource(_AudioSource):
    """A WAV file, read block by block (see the module docstring for formats and damage handling).

    Options: ``rate`` (resample to this rate), ``chunk`` (sample frames per block, default 4096),
    ``mono`` (average the channels), ``clip`` (clip float samples to ±1, default on)."""

    format = "wav"

    def __init__(self, path, **options):
        super().__init__(path, **options)
        try:
            self._f = open(self.path, "rb")
        except OSError as e:
            raise FormatError(f"cannot open ({e.strerror})", file=self.path) from None
        try:
            self.header = h = read_wav_header(self._f, self.path)
        except Exception:
            self._f.close()
            raise
        extra = {"sample_format": h.sample_format, "container": h.container}
        if h.data_size is None:
            extra["streamed"] = True
        self._setup(h.rate, h.channels, h.frames_declared() if h.data_size is not None else
                    (h.file_size - h.data_offset) // h.block_align, extra)

    def close(self):
        if not self._f.closed:
            self._f.close()

    def _blocks(self) -> Iterator[np.ndarray]:
        h = self.header
        f = self._f
        f.seek(h.data_offset)
        declared = h.data_size
        remaining = declared if declared is not None else None
        step = self.chunk * h.block_align
        got = 0
        dec = PcmDecoder(h.encoding, h.width, h.channels)
        while remaining is None or remaining > 0:
            want = step if remaining is None else min(step, remaining)
            raw = f.read(want)
            if not raw:
                break
            got += len(raw)
            if remaining is not None:
                remaining -= len(raw)
            x = dec.feed(raw)
            if len(x):
                yield x
        leftover = dec.pending
        frames = (got - leftover) // h.block_align
        truncated = declared is not None and got < declared
        if truncated:
            self.stats.note("repaired", f"{self.path}: offset {h.data_offset + got}",
                            f"data chunk declares {declared} bytes but the file ends after {got} (truncated); "
                            f"used the {frames} complete sample frames present")
        if leftover:
            self.stats.note("dropped", f"{self.path}: offset {h.data_offset + got - leftover}",
                            f"{leftover} trailing byte(s), less than one sample frame "
                            f"({h.block_align} bytes); dropped")
        for what in h.notes:
            if truncated and what.startswith("RIFF header says"):
                continue
            self.stats.note("repaired", f"{self.path}: header", what + "; ignored")
        if declared is not None and not truncated:
            self._check_tail(h.data_offset + declared + (declared & 1))

    def _check_tail(self, pos: int) -> None:
        """Bytes after the data chunk should be further RIFF chunks (LIST, id3, …); count garbage."""
        f, size = self._f, self.header.file_size
        while pos + 8 <= size:
            f.seek(pos)
            hdr = f.read(8)
            n = struct.unpack_from("<I", hdr, 4)[0]
            if not _is_chunk_id(hdr[:4]) or pos + 8 + n > size:
                break
            pos += 8 + n + (n & 1)
        if pos < size:
            self.stats.note("repaired", f"{self.path}: offset {pos}",
                            f"{size - pos} byte(s) after the data chunk are not RIFF chunks (garbage?); ignored")


def _import_soundfile():
    try:
        import soundfile
    except ImportError:   # also OSError when libsndfile itself is missing
        raise InputError("reading FLAC needs the optional dependency soundfile: pip install edgebrain[audio]") from None
    except OSError as e:
        raise InputError(f"reading FLAC needs libsndfile ({e}): pip install edgebrain[audio]") from None
    return soundfile


class FlacSource(_AudioSource):
    """A FLAC file decoded block by block with libsndfile (through soundfile). Same options as WAV.
    A file that ends early or has a damaged frame is decoded up to the damage (reads are retried in
    smaller blocks so that every sample before the damaged frame is kept); libsndfile cannot
    resynchronise after it, so the samples after it are lost and counted as dropped. A header it
    cannot read is a FormatError."""

    format = "flac"

    def __init__(self, path, **options):
        super().__init__(path, **options)
        sf = _import_soundfile()
        try:
            self._f = sf.SoundFile(self.path)
        except Exception as e:  # noqa: BLE001 - libsndfile reports every header problem this way
            raise FormatError(f"not a readable FLAC file ({_sf_message(e)})", file=self.path) from None
        frames = self._f.frames if 0 < self._f.frames < 2 ** 62 else None
        self._setup(self._f.samplerate, self._f.channels, frames,
                    {"sample_format": str(self._f.subtype).lower()})

    def close(self):
        if not self._f.closed:
            self._f.close()

    def _blocks(self) -> Iterator[np.ndarray]:
        f = self._f
        f.seek(0)
        got = 0
        size = self.chunk
        error = None
        while True:
            try:
                x = f.read(size, dtype="float32", always_2d=True)
            except Exception as e:  # noqa: BLE001 - libsndfile: lost sync, failed seek, …
                # salvage the samples before the damaged frame with ever smaller reads
                error = error or _sf_message(e).rstrip(".")
                if size == 1:
                    break
                size = max(1, size // 4)
                try:
                    f.seek(got)
                except Exception:  # noqa: BLE001
                    break
                continue
            if not len(x):
                break
            got += len(x)
            yield x
            if len(x) < size:
                break
        declared = f.frames if 0 < f.frames < 2 ** 62 else None
        if error is not None or (declared is not None and got < declared):
            lost = "" if declared is None else f" of {declared} declared; {declared - got} lost"
            self.stats.note("dropped", f"{self.path}: sample {got}",
                            f"FLAC decoding stopped after {got} samples{lost} ("
                            f"{error or 'file ends early'}: truncated or damaged frame); used the samples "
                            "before it", max(1, (declared or got) - got))


def _sf_message(e: Exception) -> str:
    return " ".join(str(e).split()) or type(e).__name__


# ---------------------------------------------------------------------------------------- microphone


class MicSource(_AudioSource):
    """Live audio from a sound card input (``mic://default?rate=16000&channels=1``), through the
    optional dependency sounddevice. Query options: ``rate`` (capture rate, default the device's),
    ``channels`` (default 1), ``block`` (frames per callback, default 10 ms), ``seconds`` (stop after
    this long; default: until closed), ``queue`` (blocks buffered before the oldest is dropped and
    counted, default 100)."""

    format = "mic"
    live = True

    def __init__(self, device="default", rate=None, channels=1, block=None, seconds=None, queue_blocks=100,
                 resample=None, **options):
        try:
            import sounddevice as sd
        except ImportError:
            raise InputError("mic:// needs the optional dependency sounddevice: pip install edgebrain[mic]") from None
        except OSError as e:   # PortAudio library missing
            raise InputError(f"mic:// needs PortAudio for sounddevice ({e}); install it (e.g. apt-get install "
                             "libportaudio2) and pip install edgebrain[mic]") from None
        super().__init__(None, rate=resample, **options)
        self._sd = sd
        self.device = None if device in (None, "", "default") else (int(device) if str(device).isdigit() else device)
        try:
            dev = sd.query_devices(self.device, "input")
        except Exception as e:  # noqa: BLE001
            raise InputError(f"mic://{device}: no such input device ({e})") from None
        cap_rate = float(rate or dev["default_samplerate"])
        self.channels = int(channels)
        self.block = int(block or max(1, round(cap_rate / 100)))
        self.seconds = None if seconds is None else float(seconds)
        self._q: queue.Queue = queue.Queue(maxsize=int(queue_blocks))
        self._stream = None
        self._closed = False
        self._setup(cap_rate, self.channels, None, {"device": str(dev.get("name", device))})

    def _callback(self, indata, frames, time_info, status):
        item = (np.array(indata, np.float32, copy=True), now(), str(status) if status else "")
        try:
            self._q.put_nowait(item)
        except queue.Full:
            try:
                self._q.get_nowait()
                self.stats.note("dropped", "mic", "input queue full: oldest block dropped", frames)
            except queue.Empty:
                pass
            self._q.put_nowait(item)

    def _blocks(self) -> Iterator[np.ndarray]:
        self._stream = self._sd.InputStream(device=self.device, channels=self.channels, samplerate=self.src_rate,
                                            blocksize=self.block, dtype="float32", callback=self._callback)
        limit = None if self.seconds is None else int(round(self.seconds * self.src_rate))
        got = 0
        with self._stream:
            while not self._closed and (limit is None or got < limit):
                try:
                    x, arrival, status = self._q.get(timeout=1.0)
                except queue.Empty:
                    continue
                if status:
                    self.stats.note("dropped" if "overflow" in status else "repaired", "mic", status, 0)
                if limit is not None:
                    x = x[: limit - got]
                got += len(x)
                self._arrival = arrival
                yield x

    def close(self):
        self._closed = True


def open_mic(u: urllib.parse.SplitResult, format=None, **options) -> MicSource:
    if format not in (None, "", "mic"):
        raise InputError(f"mic:// delivers raw audio samples; --format {format} does not apply")
    q = {k: _value(v[-1]) for k, v in urllib.parse.parse_qs(u.query).items()}
    q.update(options)
    if "queue" in q:
        q["queue_blocks"] = q.pop("queue")
    device = urllib.parse.unquote(u.netloc or u.path.lstrip("/") or "default")
    return MicSource(device, **q)


# ---------------------------------------------------------------------------------------- writer


def write_wav(path, chunks: Iterable, rate: float, channels: int, sample_width: int = 2,
              float_format: bool = False) -> int:
    """Write chunks (Samples, or (n, channels) / (n,) arrays of values in [-1, 1)) to a WAV file,
    streaming; returns the number of sample frames written.

    ``sample_width`` bytes per sample: 1 (unsigned 8-bit), 2, 3 or 4 (signed PCM), or with
    ``float_format`` 4 or 8 (IEEE float). PCM conversion is ``sat(floor(x·2^(bits−1) + 0.5))``
    (round half up, saturate: +1.0 becomes the largest code), NaN becomes 0. The header's sizes are
    patched at the end; on an unseekable output they stay 0xFFFFFFFF (a streamed WAV, which
    :class:`WavSource` reads to its end)."""
    rate_i = int(round(float(rate)))
    if rate_i <= 0:
        raise InputError(f"write_wav: rate {rate}; expected a positive integer rate")
    channels = int(channels)
    if channels < 1:
        raise InputError(f"write_wav: {channels} channels; expected at least 1")
    valid = (4, 8) if float_format else (1, 2, 3, 4)
    if sample_width not in valid:
        raise InputError(f"write_wav: sample_width {sample_width}; expected one of {valid}")
    bits = 8 * sample_width
    block = channels * sample_width
    tag = _FMT_FLOAT if float_format else _FMT_PCM
    fmt = struct.pack("<HHIIHH", tag, channels, rate_i, rate_i * block, block, bits)
    header = (b"RIFF" + struct.pack("<I", 0xFFFFFFFF) + b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
              + b"data" + struct.pack("<I", 0xFFFFFFFF))
    frames = 0
    own = not hasattr(path, "write")
    f = open(path, "wb") if own else path
    try:
        f.write(header)
        for c in chunks:
            x = c.values if isinstance(c, Samples) else np.asarray(c)
            if x.ndim == 1:
                x = x[:, None]
            if x.shape[1] != channels:
                raise InputError(f"write_wav: chunk has {x.shape[1]} channels; expected {channels}")
            f.write(encode_pcm(x, sample_width, float_format).tobytes())
            frames += len(x)
    finally:
        # also when interrupted (Ctrl-C during a recording): the file stays a valid WAV
        nbytes = frames * block
        try:
            if nbytes & 1:
                f.write(b"\x00")
            if f.seekable() and nbytes + 36 < 0xFFFFFFFF:
                f.seek(4)
                f.write(struct.pack("<I", 36 + nbytes + (nbytes & 1)))
                f.seek(40)
                f.write(struct.pack("<I", nbytes))
                f.seek(0, os.SEEK_END)
        except (OSError, ValueError):
            pass
        if own:
            f.close()
    return frames


def encode_pcm(x: np.ndarray, sample_width: int = 2, float_format: bool = False) -> np.ndarray:
    """(n, channels) values → the little-endian bytes of WAV sample frames (as a uint8 array)."""
    x = np.asarray(x, np.float64)
    x = np.where(np.isfinite(x), x, 0.0)
    if float_format:
        return np.ascontiguousarray(x.astype("<f4" if sample_width == 4 else "<f8")).view(np.uint8).ravel()
    bits = 8 * sample_width
    q = np.floor(x * 2.0 ** (bits - 1) + 0.5)
    q = np.clip(q, -(2 ** (bits - 1)), 2 ** (bits - 1) - 1).astype(np.int64)
    if sample_width == 1:
        return (q + 128).astype(np.uint8).ravel()
    if sample_width == 3:
        q = q.astype("<i4").ravel()
        return q.view(np.uint8).reshape(-1, 4)[:, :3].ravel()
    return np.ascontiguousarray(q.astype("<i2" if sample_width == 2 else "<i4")).view(np.uint8).ravel()


# ---------------------------------------------------------------------------------------- registry


def _sniff_wav(head: bytes, path) -> bool:
    return head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE"


def _sniff_flac(head: bytes, path) -> bool:
    return head[:4] == b"fLaC"


FORMATS = {
    "wav": FileFormat("wav", "samples", (".wav", ".wave"), WavSource, _sniff_wav,
                      "RIFF/RF64 WAVE: 8/16/24/32-bit PCM, 32/64-bit float, extensible; any rate and channels"),
    "flac": FileFormat("flac", "samples", (".flac",), FlacSource, _sniff_flac,
                       "FLAC (via soundfile / libsndfile: pip install edgebrain[audio])"),
}

SCHEMES = {"mic": open_mic}

__all__ = ["FORMATS", "SCHEMES", "FlacSource", "MicSource", "Resampler", "WavHeader", "WavSource", "decode_pcm",
           "encode_pcm", "open_mic", "rate_ratio", "read_wav_header", "write_wav"]

