"""The audio front end on the board (edgebrain/cruntime/eb_codec_audio.c) against its Python twin
(edgebrain/stream/encoders/frontend.py), bit for bit, on real spoken-digit recordings, and the kws
stream end to end.

* ``eb_log1p`` against ``frontend.log1p`` (the plain-double log1p both sides use) on a million doubles;
* the C front end, configured from the CODEC payload the host sends (``audio_codec_payload``) and fed
  the int16 samples one by one as the board is (``eb_codec_push``), against ``AudioFrontEnd.encode`` /
  ``flush`` on the same recordings: the float32 model inputs identical bit for bit, for zoo:kws's
  front end (24 bands, gain control, log1p, its normalisation) and variants (no gain control, no log,
  ``rectify=abs``, other band counts and hops, the integer bank ``fixed=true``), on the committed FSDD recordings and, when
  ../shared/datasets holds them, on 60 more across all six speakers;
* ``edgebrain stream zoo:kws --target host-firmware --board-encodes --json`` decides as the
  host-encoded ``--precision int`` run (time, label, confidence, truth), and on ``--target qemu-m4``
  when its cross compiler and QEMU are installed;
* a front end the board cannot hold (more bands than EB_AUDIO_MAX_BANDS) or run (log=log2): one
  clear line each; a CODEC payload of the wrong length or with a zero hop: BAD_LENGTH, BAD_CODEC.
"""

from __future__ import annotations

import ctypes
import json
import re
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from edgebrain import proto as P
from edgebrain.csession import model_blob
from edgebrain.model import Model
from edgebrain.stream import board as BD
from edgebrain.stream.board_codec import OnBoard, audio_codec_payload
from edgebrain.stream.encoders.frontend import log1p
from edgebrain.stream.registry import build_decoder, build_encoder, open_source
from tests.firmware.test_board_cli import cache_home, cli  # noqa: F401 - the fixture, shared

FIXTURES = Path(__file__).parents[1] / "data" / "audio" / "fsdd" / "recordings"
KWS = Model.load("zoo:kws")
KWS_ENC = KWS.graph.meta["stream"]["encoder"]
VARIANTS = [
    KWS_ENC,
    "audio:filterbank=bandpass,channels=24,hop_ms=20,fmin=100,fmax=3800,log=log1p,k=10000,mean=7,scale=0.4",
    "audio:filterbank=bandpass,channels=16,hop_ms=10,rectify=abs,agc=true,agc_ms=300,log=none,mean=0.01,scale=30",
    "audio:filterbank=bandpass,channels=32,hop_ms=16,fmin=60,tau_ms=5,agc=true,log=log1p,k=300",
    KWS_ENC + ",fixed=true",
    "audio:filterbank=bandpass,channels=20,hop_ms=10,fixed=true,rectify=abs,log=log1p,k=30,scale=2",
]


@pytest.fixture(scope="module")
def audio_lib(clib):
    vp = ctypes.c_void_p
    for name, res, args in (("eb_codec_parse", ctypes.c_int, (vp, vp, ctypes.c_uint32, vp)),
                            ("eb_codec_parse_audio", ctypes.c_int, (vp, vp, ctypes.c_uint32)),
                            ("eb_codec_check_audio", ctypes.c_int, (vp, vp, ctypes.c_uint32, ctypes.c_uint32, vp)),
                            ("eb_codec_init_audio", None, (vp, vp, vp)), ("eb_codec_push", ctypes.c_int, (vp, vp, vp)),
                            ("eb_codec_sizeof", ctypes.c_size_t, ()), ("eb_codec_config_sizeof", ctypes.c_size_t, ()),
                            ("eb_audio_config_sizeof", ctypes.c_size_t, ()),
                            ("eb_log1p", ctypes.c_double, (ctypes.c_double,))):
        f = getattr(clib, name)
        f.restype, f.argtypes = res, list(args)
    return clib


class CFrontEnd:
    """The board's codec with the audio encoder, through ctypes, configured from a CODEC payload."""

    def __init__(self, lib, payload: bytes, n_in: int, n_out: int):
        self.lib, self.n = lib, n_in
        self.cfg = ctypes.create_string_buffer(lib.eb_codec_config_sizeof())
        self.audio = ctypes.create_string_buffer(lib.eb_audio_config_sizeof())
        self.c = ctypes.create_string_buffer(lib.eb_codec_sizeof())
        detail = ctypes.c_uint32()
        assert lib.eb_codec_parse(self.cfg, payload, len(payload), ctypes.byref(detail)) == 0
        assert lib.eb_codec_parse_audio(self.audio, payload, len(payload)) == 0
        st = lib.eb_codec_check_audio(self.cfg, self.audio, n_in, n_out, ctypes.byref(detail))
        assert st == 0, (st, detail.value)
        lib.eb_codec_init_audio(self.c, self.cfg, self.audio)

    def push(self, samples: np.ndarray) -> np.ndarray:
        samples = np.ascontiguousarray(samples, np.int16)
        out, x = [], np.zeros(self.n, np.float32)
        for t in range(len(samples)):
            if self.lib.eb_codec_push(self.c, samples[t:t + 1].ctypes.data, x.ctypes.data):
                out.append(x.copy())
        return np.array(out, np.float32).reshape(-1, self.n)


def recordings(datasets) -> list[Path]:
    """The committed recordings, and 60 more from the full FSDD (10 per speaker) when present."""
    files = sorted(FIXTURES.glob("*.wav"))
    full = Path(datasets) / "audio" / "fsdd" / "recordings"
    if full.is_dir() and len(list(full.glob("*.wav"))) > len(files):
        have = {f.name for f in files}
        for sp in ("george", "jackson", "lucas", "nicolas", "theo", "yweweler"):
            files += [full / f"{d}_{sp}_5.wav" for d in range(10) if f"{d}_{sp}_5.wav" not in have]
    assert len(files) >= 100
    return [f for f in files if f.is_file()]


def bits(a) -> np.ndarray:
    return np.ascontiguousarray(a, np.float32).view(np.uint32)


def test_c_log1p_is_the_python_one_bit_for_bit(audio_lib):
    rng = np.random.default_rng(15)
    xs = np.concatenate([rng.uniform(0, 3e5, 400_000), 10.0 ** rng.uniform(-30, 300, 300_000),
                         rng.uniform(-1, 0, 100_000), rng.uniform(0, 4, 200_000),
                         [0.0, -0.0, 5e-324, 1e-300, 2.0 ** -53, 1.0, np.sqrt(2) - 1, -0.5, -1.0, -2.0, np.inf,
                          1.7976931348623157e308, np.nan]])
    for x in xs:
        c, p = audio_lib.eb_log1p(float(x)), log1p(float(x))
        assert struct.pack("<d", c) == struct.pack("<d", p) or (np.isnan(c) and np.isnan(p)), x
    ref = np.log1p(xs[:900_000])          # and close to the maths library's, which differ between platforms
    got = np.array([log1p(float(x)) for x in xs[:900_000]])
    assert np.all(np.abs(got - ref) <= 4 * np.spacing(np.abs(ref)))


@pytest.mark.parametrize("spec", VARIANTS)
def test_c_audio_front_end_is_bit_identical_to_the_python_one(audio_lib, datasets, spec):
    dec = build_decoder("count:window=150")
    frames = 0
    for path in recordings(datasets):
        a = build_encoder(spec)                              # the Python front end
        with open_source(str(path)) as src:
            a.configure(src.info, None, None)
            payload = audio_codec_payload(a, dec, 10)
            c = CFrontEnd(audio_lib, payload, a.n, 10)
            want, got = [], []
            for chunk in src.chunks():
                v = np.asarray(chunk.values, np.float32).reshape(-1)
                q = np.floor(v * np.float32(32768) + np.float32(0.5)).astype(np.int16)
                assert np.array_equal(q.astype(np.float32) / np.float32(32768), v)   # 16-bit PCM: exact
                want.append(np.asarray(a.encode(chunk).x, np.float32).reshape(-1, a.n))
                got.append(c.push(q))
            pad = a.hop - a.pending()
            tail = a.flush()
            if tail is not None:
                want.append(np.asarray(tail.x, np.float32).reshape(-1, a.n))
                got.append(c.push(np.zeros(pad, np.int16)))       # the host pads the last frame with zeros
        want, got = np.concatenate(want), np.concatenate(got)
        assert want.shape == got.shape and len(want) >= 5, path.name
        bad = np.argwhere(bits(want) != bits(got))
        assert len(bad) == 0, f"{path.name}: {len(bad)} values differ, first at (frame, band) {tuple(bad[0])}: " \
                              f"{want[tuple(bad[0])]!r} vs {got[tuple(bad[0])]!r}"
        frames += len(want)
    assert frames >= 2000


def decisions(out: str) -> list[tuple]:
    rows = [json.loads(ln) for ln in out.splitlines() if ln.startswith("{") and '"summary"' not in ln]
    return [(d["t"], d["label"], d["confidence"], d.get("truth"), d.get("flush")) for d in rows]


KWS_STREAMS = ["0_theo_0.wav", "2_theo_1.wav", "4_jackson_3.wav", "7_lucas_31.wav", "5_nicolas_2.wav", "9_theo_1.wav"]


def board_vs_host(cache_home, target: str, names) -> int:  # noqa: F811
    n = 0
    for name in names:
        src = str(FIXTURES / name)
        board = cli(cache_home, "stream", "zoo:kws", "--source", src, "--target", target, "--board-encodes", "--json")
        assert board.returncode == 0, board.stderr
        host = cli(cache_home, "stream", "zoo:kws", "--source", src, "--precision", "int", "--json")
        assert host.returncode == 0, host.stderr
        got, want = decisions(board.stdout), decisions(host.stdout)
        assert len(got) == len(want) == 1 and got == want, (name, got, want)
        summary = json.loads(board.stdout.splitlines()[-1])["summary"]
        hsum = json.loads(host.stdout.splitlines()[-1])["summary"]
        assert summary["steps"] == hsum["steps"] and summary["precision"] == "int"
        assert summary["board"]["codec"]["encoder"].startswith("audio:") and summary["board"]["board"]["errors"] == 0
        n += 1
    return n


def test_board_encoded_kws_decides_as_the_host_encoded_integer_path(cache_home):  # noqa: F811
    assert board_vs_host(cache_home, "host-firmware", KWS_STREAMS) == len(KWS_STREAMS)


def test_board_encoded_kws_on_the_emulated_cortex_m4(cache_home):  # noqa: F811
    from edgebrain.stream import emulated as E

    b = E.BOARDS["qemu-m4"]
    for tool, apt in ((b.qemu, b.qemu_apt), (b.cc, b.cc_apt)):
        if not shutil.which(tool):
            pytest.skip(f"{tool} is not installed (apt-get install {apt})")
    assert board_vs_host(cache_home, "qemu-m4", KWS_STREAMS[:2]) == 2


def test_a_front_end_beyond_the_board_is_one_clear_line(clib, cache_home):  # noqa: F811
    board = BD.HostBoard(())
    s = BD.BoardSession(model_blob(KWS, cache=False)[0], board.link, board=board)
    try:
        fe = build_encoder("audio:filterbank=bandpass,channels=40,hop_ms=20,agc=true")
        with open_source(str(FIXTURES / "0_theo_0.wav")) as src:
            fe.configure(src.info, None, None)
        on = OnBoard(s)
        with pytest.raises(BD.BoardError) as e:
            on.configure(fe, build_decoder("count:window=150"))
        msg = str(e.value)
        assert "\n" not in msg and msg == ("the board cannot encode and decode this stream on its own: an audio front "
                                           "end of 40 bands; it runs at most 32 (EB_AUDIO_MAX_BANDS): fewer channels, "
                                           "or firmware built with a larger EB_AUDIO_MAX_BANDS")
        # the payloads themselves: the limit (before the length), a length that is not 24 bands', a bad one
        with pytest.raises(BD.BoardError, match=r"CODEC_LIMIT.*detail 32"):
            s.request("CODEC", audio_codec_payload(fe, build_decoder("count:window=150"), 10))
        ok = build_encoder(KWS_ENC)
        with open_source(str(FIXTURES / "0_theo_0.wav")) as src:
            ok.configure(src.info, (24,), None)
        pl = audio_codec_payload(ok, build_decoder("count:window=150"), 10)
        with pytest.raises(BD.BoardError, match="BAD_LENGTH"):
            s.request("CODEC", pl[:-8])
        off = P.STRUCTS["CODEC"].size + 32 + 4                     # the front end's hop: 0 is invalid
        with pytest.raises(BD.BoardError, match="BAD_CODEC"):
            s.request("CODEC", pl[:off] + b"\0\0\0\0" + pl[off + 4:])
        assert s.request("CODEC", pl)["value"] == 24
    finally:
        s.close()
    r = cli(cache_home, "stream", "zoo:kws", "--source", str(FIXTURES / "0_theo_0.wav"), "--target", "host-firmware",
            "--board-encodes", "--encoder", "log=log2")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and re.search(r"the board's audio front end cannot run .*: log=log2 \(it computes none or log1p\)",
                                          lines[0]), r.stderr


def test_the_audio_codec_layout_is_the_documented_one():
    assert P.AUDIO.size == 40 and P.AUDIO_BAND.size == 56 and P.CODEC_AUDIO == 4
    assert P.FIRMWARE_VERSION >= P.AUDIO_FIRMWARE == 0x000300
    doc = (Path(__file__).parents[2] / "docs" / "protocol.md").read_text()
    assert "EB_AUDIO_MAX_BANDS" in doc and "firmware 0.3.0" in doc
