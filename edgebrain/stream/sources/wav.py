"""The WAV container and its PCM sample codec: the RIFF/WAVE header parser (of files and of streamed
WAVs arriving on a link), PCM decoding and encoding, and the WAV writer of ``edgebrain record``.
:class:`~edgebrain.stream.sources.audio.WavSource` reads WAV files with it; the live links
(``format=pcm|wav``, :mod:`.livebin`) decode with :class:`PcmDecoder` and
:func:`parse_wav_stream_header`.

Integer PCM is scaled by the full-scale value of its container so that values lie in [-1, 1)
exactly as libsndfile (and soundfile's ``dtype='float32'``) does:

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

(The header checks are here; reading the data chunk and counting the damage found in it is
:class:`~edgebrain.stream.sources.audio.WavSource`'s.)
"""

from __future__ import annotations

import io
import os
import struct
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from ...errors import FormatError, InputError
from ...safeio import open_stream
from ..base import Samples

MAX_CHUNKS = 10000            # RIFF chunks walked before 'data' before giving up

# ---------------------------------------------------------------------------------------- WAV header

_FMT_PCM, _FMT_FLOAT, _FMT_EXTENSIBLE = 1, 3, 0xFFFE
_GUID_SUFFIX = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
_KNOWN_TAGS = {2: "MS ADPCM", 6: "A-law", 7: "µ-law", 0x11: "IMA ADPCM", 0x31: "GSM 6.10", 0x50: "MPEG",
               0x55: "MP3", 0x161: "WMA"}
_STREAMED = (0, 0xFFFFFFFF)


def is_chunk_id(b: bytes) -> bool:
    """True for a RIFF chunk id: 4 printable ASCII characters (used to tell chunks from garbage)."""
    return len(b) == 4 and all(0x20 <= c <= 0x7E for c in b)


@dataclass
class WavHeader:
    """What a WAV header says (from :func:`read_wav_header` or :func:`parse_wav_stream_header`):
    the sample format and where the samples are, plus the inconsistencies to count as repairs."""

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
        if not is_chunk_id(cid):
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
            if not is_chunk_id(at_pad) and is_chunk_id(unpadded):
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
        if not is_chunk_id(cid):
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
    block. Used by :class:`~.audio.WavSource` on file blocks and by the live links (``format=pcm|wav``)."""

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

# ---------------------------------------------------------------------------------------- writer


def write_wav(path, chunks: Iterable, rate: float, channels: int, sample_width: int = 2,
              float_format: bool = False) -> int:
    """Write chunks (Samples, or (n, channels) / (n,) arrays of values in [-1, 1)) to a WAV file,
    streaming; returns the number of sample frames written.

    ``sample_width`` bytes per sample: 1 (unsigned 8-bit), 2, 3 or 4 (signed PCM), or with
    ``float_format`` 4 or 8 (IEEE float). PCM conversion is ``sat(floor(x·2^(bits−1) + 0.5))``
    (round half up, saturate: +1.0 becomes the largest code), NaN becomes 0. The header's sizes are
    patched at the end; on an unseekable output they stay 0xFFFFFFFF (a streamed WAV, which
    :class:`~.audio.WavSource` reads to its end)."""
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
    f = open_stream(path, what="WAV file") if own else path  # in place, fsync-ed each second, never via a link
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




__all__ = ["MAX_CHUNKS", "MAX_STREAM_HEADER", "SAMPLE_FORMATS", "PcmDecoder", "WavHeader", "decode_pcm",
           "encode_pcm", "is_chunk_id", "parse_wav_stream_header", "read_wav_header", "write_wav"]
