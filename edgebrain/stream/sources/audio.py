"""Audio sources: WAV (pure Python/NumPy RIFF reader, :mod:`.wav`), FLAC (via soundfile) and a live
microphone (``mic://``, via sounddevice), on a shared base, :class:`AudioSource`.

Every source yields :class:`~edgebrain.stream.base.Samples` chunks: ``values`` (n, channels) float32,
``t`` the stream time of each sample in seconds from the first sample. Integer PCM is scaled by the
full-scale value of its container so that values lie in [-1, 1) exactly as libsndfile does (the
table, and how damaged WAV files are read, are in :mod:`edgebrain.stream.sources.wav`).

Resampling (option ``rate=``) uses :class:`~edgebrain.stream.resample.Resampler`, a polyphase
windowed-sinc FIR filter that keeps its state across chunks, so the output does not depend on how
the input was chunked; output sample n is at time n / rate.
"""

from __future__ import annotations

import queue
import struct
import urllib.parse
from typing import Iterator

import numpy as np

from ...errors import FormatError, InputError
from ...options import option_value, positive_number
from ..base import Samples, Source, SourceInfo, now
from ..registry import FileFormat
from ..resample import Resampler
from .wav import PcmDecoder, is_chunk_id, read_wav_header

DEFAULT_CHUNK = 4096          # sample frames per chunk read from a file

# ---------------------------------------------------------------------------------------- sources


_COMMON_OPTIONS = ("rate", "chunk", "mono", "clip")


class AudioSource(Source):
    """Shared logic: resampling to ``rate``, mixing to mono, repairing NaN / out-of-range values,
    per-sample times, chunking. Subclasses call ``_setup`` once the input's rate and channels are
    known and yield raw (n, channels) float32 blocks from ``_blocks``; a live one sets ``_arrival``.
    The file sources here and the live links' audio (:mod:`.livebin`) build on it."""

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
        self.target_rate = None if rate in (None, 0, "") else positive_number(rate, f"{self.format} source: rate",
                                                                               "samples per second")

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


class WavSource(AudioSource):
    """A WAV file, read block by block (see :mod:`.wav` for formats and damage handling).

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
            if not is_chunk_id(hdr[:4]) or pos + 8 + n > size:
                break
            pos += 8 + n + (n & 1)
        if pos < size:
            self.stats.note("repaired", f"{self.path}: offset {pos}",
                            f"{size - pos} byte(s) after the data chunk are not RIFF chunks (garbage?); ignored")


def _import_soundfile():
    try:
        import soundfile
    except ImportError:   # also OSError when libsndfile itself is missing
        raise InputError("reading FLAC needs the optional dependency soundfile: pip install 'edgebrain[audio]'") from None
    except OSError as e:
        raise InputError(f"reading FLAC needs libsndfile ({e}): pip install 'edgebrain[audio]'") from None
    return soundfile


class FlacSource(AudioSource):
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
        try:  # a fresh file is at its start; rewinding one with a damaged seek table or header can fail
            if f.tell() != 0:
                f.seek(0)
        except Exception as e:  # noqa: BLE001 - libsndfile reports every failure as LibsndfileError
            raise FormatError(f"cannot go back to the first frame ({_sf_message(e)}): damaged header, seek "
                              "table or first frame", file=self.path) from None
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
        if error is not None and got == 0:
            raise FormatError(f"no sample could be decoded ({error}): damaged header, seek table or first frame",
                              file=self.path)
        declared = f.frames if 0 < f.frames < 2 ** 62 else None
        if (error is not None and declared is None) or (declared is not None and got < declared):
            lost = "" if declared is None else f" of {declared} declared; {declared - got} lost"
            self.stats.note("dropped", f"{self.path}: sample {got}",
                            f"FLAC decoding stopped after {got} samples{lost} ("
                            f"{error or 'file ends early'}: truncated or damaged frame); used the samples "
                            "before it", max(1, (declared or got) - got))


def _sf_message(e: Exception) -> str:
    return " ".join(str(e).split()) or type(e).__name__


# ---------------------------------------------------------------------------------------- microphone


class MicSource(AudioSource):
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
            raise InputError("mic:// needs the optional dependency sounddevice: pip install 'edgebrain[mic]'") from None
        except OSError as e:   # PortAudio library missing
            raise InputError(f"mic:// needs PortAudio for sounddevice ({e}); install it (e.g. apt-get install "
                             "libportaudio2) and pip install 'edgebrain[mic]'") from None
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
    q = {k: option_value(v[-1]) for k, v in urllib.parse.parse_qs(u.query).items()}
    q.update(options)
    if "queue" in q:
        q["queue_blocks"] = q.pop("queue")
    device = urllib.parse.unquote(u.netloc or u.path.lstrip("/") or "default")
    return MicSource(device, **q)


# ---------------------------------------------------------------------------------------- registry


def _sniff_wav(head: bytes, path) -> bool:
    return head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE"


def _sniff_flac(head: bytes, path) -> bool:
    return head[:4] == b"fLaC"


FORMATS = {
    "wav": FileFormat("wav", "samples", (".wav", ".wave"), WavSource, _sniff_wav,
                      "RIFF/RF64 WAVE: 8/16/24/32-bit PCM, 32/64-bit float, extensible; any rate and channels"),
    "flac": FileFormat("flac", "samples", (".flac",), FlacSource, _sniff_flac,
                       "FLAC (via soundfile / libsndfile: pip install 'edgebrain[audio]')"),
}

SCHEMES = {"mic": open_mic}

__all__ = ["DEFAULT_CHUNK", "FORMATS", "SCHEMES", "AudioSource", "FlacSource", "MicSource", "WavSource", "open_mic"]

