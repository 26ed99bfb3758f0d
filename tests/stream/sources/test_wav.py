"""The WAV container and PCM codec (edgebrain.stream.sources.wav), read through WavSource: the WAV reader
against scipy.io.wavfile and soundfile (libsndfile) on real FSDD recordings and on WAVs of every sample
format written here; the RIFF chunk walk; the WAV writer; damaged files (truncated, bit-flipped, padded
with garbage, lying headers).

Scaling under test (documented in edgebrain/stream/sources/wav.py): 8-bit (u − 128)/128, 16-bit i/2^15,
24-bit i/2^23, 32-bit float32(i)/2^31, float as stored (rounded to float32).
"""

from __future__ import annotations

import io
import struct
import warnings

import numpy as np
import pytest

from edgebrain.errors import FormatError
from edgebrain.stream import open_source
from edgebrain.stream.sources.wav import write_wav
from tests.stream._audio_helpers import FSDD_FILES, fixture_signal, fsdd, read

sf = pytest.importorskip("soundfile")
wavfile = pytest.importorskip("scipy.io.wavfile")


def scipy_scaled(path):
    """scipy.io.wavfile's samples scaled the documented way (float64, (n, channels))."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # scipy warns about chunks it skips (LIST, ds64)
        rate, a = wavfile.read(str(path))
    a = a.reshape(len(a), -1)
    if a.dtype == np.uint8:
        return rate, (a.astype(np.float64) - 128) / 128
    if a.dtype == np.int16:
        return rate, a / 2.0 ** 15
    if a.dtype == np.int32:       # 24-bit comes left-justified in int32
        return rate, (a.astype(np.float32) * np.float32(2.0 ** -31)).astype(np.float64)
    return rate, a.astype(np.float32).astype(np.float64)


# ------------------------------------------------------------------ real FSDD recordings


@pytest.mark.parametrize("name", FSDD_FILES)
def test_fsdd_matches_scipy_and_soundfile(datasets, name):
    p = fsdd(datasets, name)
    x, src = read(p)
    assert src.info.rate == 8000 and src.info.channels == 1 and src.info.format == "wav"
    rate, ref = scipy_scaled(p)
    assert rate == 8000
    np.testing.assert_array_equal(x, ref.astype(np.float32))
    np.testing.assert_array_equal(x, sf.read(str(p), dtype="float32", always_2d=True)[0])
    assert src.info.n_items == len(x)
    assert src.stats.repaired == src.stats.dropped == 0


# ------------------------------------------------------------------ every sample format


SUBTYPES = ["PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"]


@pytest.mark.parametrize("container", ["WAV", "WAVEX", "RF64"])
@pytest.mark.parametrize("subtype", SUBTYPES)
@pytest.mark.parametrize("channels", [1, 2, 3])
def test_sample_formats_match_soundfile_and_scipy(tmp_path, container, subtype, channels):
    p = tmp_path / f"x_{subtype}.wav"
    rate = {1: 8000, 2: 44100, 3: 22050}[channels]
    sf.write(str(p), fixture_signal(channels=channels), rate, subtype=subtype, format=container)
    x, src = read(p, chunk=256)
    ref = sf.read(str(p), dtype="float32", always_2d=True)[0]
    assert x.shape == ref.shape == (3001, channels)
    np.testing.assert_array_equal(x, ref)
    r2, ref2 = scipy_scaled(p)
    assert r2 == rate == src.info.rate
    np.testing.assert_array_equal(x, ref2.astype(np.float32))
    assert src.stats.repaired == src.stats.dropped == 0, src.stats.messages
    assert src.info.extra["container"] == ("RF64" if container == "RF64" else "RIFF")
    tag = struct.unpack_from("<H", p.read_bytes(), 20)[0]
    if container == "WAVEX":
        assert tag == 0xFFFE     # the file really is WAVE_FORMAT_EXTENSIBLE


def riff(chunks: list[tuple[bytes, bytes]], riff_size=None, pad=True, form=b"RIFF") -> bytes:
    body = b"WAVE"
    for cid, data in chunks:
        size = len(data) if not isinstance(data, tuple) else data[1]
        data = data if not isinstance(data, tuple) else data[0]
        body += cid + struct.pack("<I", size) + data + (b"\x00" if pad and len(data) & 1 else b"")
    return form + struct.pack("<I", len(body) if riff_size is None else riff_size) + body


def fmt_chunk(tag=1, channels=1, rate=8000, bits=16, extensible_sub=None, valid=None):
    width = (bits + 7) // 8
    align = channels * width
    body = struct.pack("<HHIIHH", tag if extensible_sub is None else 0xFFFE, channels, rate, rate * align, align, bits)
    if extensible_sub is not None:
        guid = struct.pack("<H", extensible_sub) + b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
        body += struct.pack("<HHI", 22, valid or bits, 0) + guid
    return body


def pcm16(n=1001, seed=1):
    return np.random.default_rng(seed).integers(-32768, 32768, n).astype("<i2")


def test_chunk_walk_odd_chunks_and_trailing_chunks(tmp_path):
    a = pcm16()
    p = tmp_path / "walk.wav"
    p.write_bytes(riff([(b"fmt ", fmt_chunk()), (b"LIST", b"INFOISFT\x05\x00\x00\x00abcd\x00"),
                        (b"fact", struct.pack("<I", len(a))), (b"junk", b"xyz"),
                        (b"data", a.tobytes()), (b"id3 ", b"tag")]))
    x, src = read(p)
    np.testing.assert_array_equal(x[:, 0], a / 32768.0)
    assert src.stats.repaired == 0, src.stats.messages     # a trailing chunk after data is no damage
    np.testing.assert_array_equal(x, sf.read(str(p), dtype="float32", always_2d=True)[0])


def test_missing_pad_byte_is_tolerated_and_counted(tmp_path):
    a = pcm16()
    p = tmp_path / "nopad.wav"
    p.write_bytes(riff([(b"fmt ", fmt_chunk()), (b"junk", b"xyz"), (b"data", a.tobytes())], pad=False))
    x, src = read(p)
    np.testing.assert_array_equal(x[:, 0], a / 32768.0)
    assert src.stats.repaired >= 1 and any("pad" in m for m in src.stats.messages)


def test_odd_data_chunk_8bit_with_pad(tmp_path):
    a = np.arange(255, dtype=np.uint8)
    p = tmp_path / "u8.wav"
    p.write_bytes(riff([(b"fmt ", fmt_chunk(bits=8)), (b"data", a.tobytes()), (b"LIST", b"INFO")]))
    x, src = read(p)
    np.testing.assert_array_equal(x[:, 0], (a.astype(np.float64) - 128) / 128)
    assert src.stats.repaired == 0, src.stats.messages


@pytest.mark.parametrize("data_size", [0, 0xFFFFFFFF])
def test_streamed_wav_reads_to_eof(tmp_path, data_size):
    a = pcm16(5000)
    p = tmp_path / "streamed.wav"
    p.write_bytes(riff([(b"fmt ", fmt_chunk()), (b"data", (a.tobytes(), data_size))], riff_size=data_size))
    x, src = read(p, chunk=1000)
    np.testing.assert_array_equal(x[:, 0], a / 32768.0)
    assert src.info.extra.get("streamed") and src.stats.repaired == 0


def test_extensible_20_bits_in_24(tmp_path):
    v = np.random.default_rng(2).integers(-(2 ** 19), 2 ** 19, (700, 2)) << 4    # 20 valid bits, left-justified
    raw = (v.astype("<i4").reshape(-1, 1).view(np.uint8)[:, :3]).tobytes()
    p = tmp_path / "x20.wav"
    p.write_bytes(riff([(b"fmt ", fmt_chunk(channels=2, bits=24, extensible_sub=1, valid=20)), (b"data", raw)]))
    x, src = read(p)
    np.testing.assert_array_equal(x, (v / 2.0 ** 23).astype(np.float32))
    np.testing.assert_array_equal(x, sf.read(str(p), dtype="float32", always_2d=True)[0])
    assert src.info.extra["sample_format"] == "pcm20"


# ------------------------------------------------------------------ writer


def test_write_wav_roundtrip_fsdd_bytes(tmp_path, datasets):
    p = fsdd(datasets, "1_jackson_0.wav")
    src = open_source(str(p), chunk=100)
    q = tmp_path / "out.wav"
    n = write_wav(str(q), src.chunks(), 8000, 1)
    original = p.read_bytes()
    written = q.read_bytes()
    assert n * 2 == len(original) - 44
    assert written[44:] == original[44:]        # the sample bytes come back exactly
    assert written[:44] == original[:44]        # FSDD headers are canonical 44-byte headers
    rate, a = wavfile.read(str(q))
    assert rate == 8000 and len(a) == n


@pytest.mark.parametrize("width,is_float", [(1, False), (2, False), (3, False), (4, False), (4, True), (8, True)])
def test_write_wav_formats_read_by_soundfile(tmp_path, width, is_float):
    x = fixture_signal(2001, 2, seed=5).astype(np.float32)
    x[5] = [1.0, np.nan]                       # +1.0 saturates, NaN becomes 0
    q = tmp_path / "w.wav"
    write_wav(str(q), [x[:1000], x[1000:]], 16000, 2, sample_width=width, float_format=is_float)
    ref = sf.read(str(q), dtype="float64", always_2d=True)[0]
    ours, _ = read(q)
    np.testing.assert_array_equal(ours, ref.astype(np.float32))
    expect = np.where(np.isfinite(x), x, 0).astype(np.float64)
    if is_float:
        np.testing.assert_array_equal(ref, expect)      # float32 values are stored exactly
    else:
        lsb = 2.0 ** (1 - 8 * width)                    # round to nearest, +1.0 saturates to 1 − lsb
        assert np.abs(ref - np.clip(expect, -1, 1 - lsb)).max() <= lsb / 2 + 1e-12


def test_write_wav_unseekable_gives_streamed_wav(tmp_path):
    class Pipe(io.BytesIO):
        def seekable(self):
            return False

    out = Pipe()
    a = pcm16(999)
    write_wav(out, [a / 32768.0], 8000, 1)
    q = tmp_path / "pipe.wav"
    q.write_bytes(out.getvalue())
    x, src = read(q)
    np.testing.assert_array_equal(x[:, 0], a / 32768.0)
    assert src.info.extra.get("streamed")


def test_write_wav_interrupted_stays_valid(tmp_path):
    a = pcm16(3000)

    def chunks():
        yield a[:1000] / 32768.0
        yield a[1000:2001] / 32768.0
        raise KeyboardInterrupt

    q = tmp_path / "cut.wav"
    with pytest.raises(KeyboardInterrupt):
        write_wav(str(q), chunks(), 8000, 1)
    x, src = read(q)
    np.testing.assert_array_equal(x[:, 0], a[:2001] / 32768.0)
    assert src.stats.repaired == 0 and not src.info.extra.get("streamed")
    np.testing.assert_array_equal(sf.read(str(q), dtype="float32")[0], a[:2001] / 32768.0)


# ------------------------------------------------------------------ damaged real files


@pytest.fixture
def george(datasets):
    p = fsdd(datasets, "0_george_27.wav")          # 8 942 bytes = 44 + 8 898 data bytes (formats.md §13.1)
    data = p.read_bytes()
    assert len(data) == 8942
    return data, sf.read(str(p), dtype="float32", always_2d=True)[0]


def write(tmp_path, data: bytes, name="bad.wav"):
    q = tmp_path / name
    q.write_bytes(bytes(data))
    return q


@pytest.mark.parametrize("cut", [0, 3, 11, 12, 20, 30, 36, 40, 43])
def test_truncated_header_is_a_format_error_with_offset(tmp_path, george, cut):
    data, _ = george
    with pytest.raises(FormatError, match=r"bad\.wav: offset \d+.*expected"):
        open_source(str(write(tmp_path, data[:cut])), format="wav")


@pytest.mark.parametrize("cut", [44, 45, 1000, 1001, 8941])
def test_truncated_data_keeps_every_whole_sample(tmp_path, george, cut):
    data, ref = george
    x, src = read(write(tmp_path, data[:cut]), chunk=64)
    n = (cut - 44) // 2
    np.testing.assert_array_equal(x, ref[:n])
    assert src.stats.repaired == 1 and "truncated" in src.stats.messages[0]
    assert src.stats.dropped == (cut - 44) % 2        # a half sample at the end is dropped and counted


def test_data_size_larger_than_file(tmp_path, george):
    data, ref = george
    d = bytearray(data)
    struct.pack_into("<I", d, 40, 100000)
    x, src = read(write(tmp_path, d))
    np.testing.assert_array_equal(x, ref)
    assert src.stats.repaired == 1 and "truncated" in src.stats.messages[0]


def test_data_size_smaller_than_file(tmp_path, george):
    data, ref = george
    d = bytearray(data)
    struct.pack_into("<I", d, 40, 4000)
    x, src = read(write(tmp_path, d))
    np.testing.assert_array_equal(x, ref[:2000])
    assert src.stats.repaired >= 1 and any("not RIFF chunks" in m for m in src.stats.messages)


@pytest.mark.parametrize("riff_size", [0x7FFFFFF0, 100, 8942])
def test_riff_size_lies(tmp_path, george, riff_size):
    data, ref = george
    d = bytearray(data)
    struct.pack_into("<I", d, 4, riff_size)
    x, src = read(write(tmp_path, d))
    np.testing.assert_array_equal(x, ref)
    assert src.stats.repaired == 1 and "RIFF header says" in src.stats.messages[0]


@pytest.mark.parametrize("garbage", [b"\x00", b"\xff" * 7, bytes(range(256)) * 40])
def test_garbage_after_data(tmp_path, george, garbage):
    data, ref = george
    x, src = read(write(tmp_path, data + garbage))
    np.testing.assert_array_equal(x, ref)
    assert src.stats.repaired >= 1
    assert any("not RIFF chunks" in m or "RIFF header says" in m for m in src.stats.messages)


@pytest.mark.parametrize("offset,value,fmt,match", [
    (20, 0x55, "<H", r"offset 20 \(fmt chunk\): audio format 0x0055 \(MP3\).*expected"),
    (20, 7, "<H", r"µ-law"),
    (22, 0, "<H", r"offset 22 \(fmt chunk\): 0 channels; expected"),
    (24, 0, "<I", r"offset 24 \(fmt chunk\): sample rate 0"),
    (32, 3, "<H", r"offset 32 \(fmt chunk\): block align 3; expected"),
    (34, 17, "<H", r"offset 32 \(fmt chunk\): block align 2; expected channels × bytes per sample = 1 × 3 = 3"),
    (34, 40, "<H", r"offset 34 \(fmt chunk\): 40 bits per sample; expected"),
    (16, 8, "<I", r"offset 16 \(fmt chunk\): fmt chunk size 8; expected at least 16"),
    (16, 0x7FFFFFFF, "<I", r"fmt chunk size .* implausible"),
    (36, 0x20202020, "<I", r"offset 8942: file ends \(at 8942 bytes\) before a 'data' chunk"),
    (8, 0x45564157 ^ 1, "<I", r"offset 8: expected 'WAVE'"),
    (0, 0x46464952 ^ 0x100, "<I", r"offset 0: expected 'RIFF'"),
])
def test_corrupt_header_fields(tmp_path, george, offset, value, fmt, match):
    data, _ = george
    d = bytearray(data)
    struct.pack_into(fmt, d, offset, value)
    with pytest.raises(FormatError, match=match):
        open_source(str(write(tmp_path, d)), format="wav")


def test_chunk_size_past_eof_before_data(tmp_path):
    p = write(tmp_path, riff([(b"fmt ", fmt_chunk()), (b"LIST", (b"abcd", 1 << 30)), (b"data", b"\x00\x01")]))
    with pytest.raises(FormatError, match=r"offset 36: chunk 'LIST' declares 1073741824 bytes.*expected a 'data'"):
        open_source(str(p))


def test_data_before_fmt(tmp_path):
    p = write(tmp_path, riff([(b"data", b"\x00\x01"), (b"fmt ", fmt_chunk())]))
    with pytest.raises(FormatError, match=r"offset 12: 'data' chunk before the 'fmt ' chunk"):
        open_source(str(p))


def test_every_single_bit_flip_in_the_header(tmp_path, george):
    """Each of the 352 one-bit flips of the 44-byte header: a FormatError, or samples that (when the
    sample format survived) equal the original ones — never another exception, never a hang."""
    data, ref = george
    outcomes = {"error": 0, "same": 0, "other format": 0}
    for bit in range(44 * 8):
        d = bytearray(data)
        d[bit // 8] ^= 1 << (bit % 8)
        q = write(tmp_path, d)
        try:
            src = open_source(str(q), format="wav")
        except FormatError as e:
            assert "offset" in str(e) or "expected" in str(e), str(e)
            outcomes["error"] += 1
            continue
        with src:
            x = src.read_all()
            h = src.header
        if (h.encoding, h.width, h.channels) == ("pcm", 2, 1):
            n = min(len(x), len(ref))
            np.testing.assert_array_equal(x[:n], ref[:n])
            assert len(x) <= len(ref)
            outcomes["same"] += 1
        else:
            outcomes["other format"] += 1
    assert outcomes["error"] > 100 and outcomes["same"] > 50, outcomes


def test_bit_flips_in_data_do_not_move_samples(tmp_path, george):
    data, ref = george
    d = bytearray(data)
    rng = np.random.default_rng(6)
    pos = rng.integers(44, len(d), 50)
    for p in pos:
        d[p] ^= 1 << int(rng.integers(8))
    x, src = read(write(tmp_path, d))
    changed = np.flatnonzero(x[:, 0] != ref[:, 0])
    assert len(x) == len(ref) and set(changed) <= set((pos - 44) // 2)


def test_not_wav_at_all(tmp_path):
    for data in (b"", b"RIFF", b"RIFX" + bytes(40), b"hello world, this is not audio" * 5):
        with pytest.raises(FormatError):
            open_source(str(write(tmp_path, data)), format="wav")
