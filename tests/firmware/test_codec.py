"""Sensor to decision on the board: the C encoders and count decoder (edgebrain/cruntime/eb_codec.c)
against their Python twins, bit for bit, on real recordings, and the whole path end to end.

* the encoders (the zoo's direct with scale and offset, delta and sigma_delta, signed and split),
  through the host library (ctypes), on int16 counts of real IMU recordings: the float32 model inputs
  identical to ``SampleEncoder.encode`` with ``unit=``;
* the count decoder (the zoo's windows, sliding windows with smoothing, hysteresis, hold, minimum
  confidence and spikes) on the outputs of the Numba integer session for a real recording: every
  decision (window, class, confidence as float64) identical to ``CountDecoder``, the flush too;
* ``edgebrain stream zoo:har-lif --target host-firmware --board-encodes --json`` (the board encodes,
  runs and decodes; the host forwards counts) decides as the host-encoded ``--target host`` integer
  run with the same ``unit=``: time, label, confidence, truth;
* a codec the board cannot hold (too many channels, a window too long), SAMPLES before CODEC,
  ``--board-encodes`` without a board: one clear line each.
"""

from __future__ import annotations

import ctypes
import json
from pathlib import Path

import numpy as np
import pytest

from edgebrain import proto as P
from edgebrain.csession import model_blob
from edgebrain.model import Model
from edgebrain.stream import board as BD
from edgebrain.stream.base import Steps
from edgebrain.stream.board_codec import codec_payload, default_unit
from edgebrain.stream.registry import build_decoder, build_encoder, open_source
from tests.firmware.test_board_cli import cache_home, cli  # noqa: F401 - the fixture, shared

HAR = "imu/sp-sw-har/s16/s16_01_sw.csv"
RECORDINGS = [HAR, "imu/sp-sw-har/s13/s13_01_sw.csv", "imu/sp-sw-har/s01/s01_03_sw.csv"]
ZOO_ENC = Model.load("zoo:har-lif").graph.meta["stream"]["encoder"]
ENCODERS = [
    ZOO_ENC,
    ("delta:threshold=0.05,scale=0.2768|0.371481|0.257867|0.602878|1.04736|0.765988,offset=-7.78633|-3.51335|"
     "1.83031|0.119206|0.020446|0.0255011"),
    "delta:threshold=0.5|0.5|0.5|0.02|0.02|0.02,max_spikes=2,init=zero,layout=split",
    "sigma_delta:threshold=0.3,scale=0.5,offset=1,layout=split,max_spikes=3",
    "sigma_delta:threshold=0.25|0.5|1|0.1|0.1|0.1",
]
DECODERS = [
    "count:window=25,hop=12",
    "count:window=20,hop=3,alpha=0.3,hysteresis=0.05",
    "count:window=10,hop=4,alpha=0.7,hold=3,min_confidence=0.55,min_spikes=3",
    "count:window=8,hop=15,hysteresis=0.2,hold=2",
    "count:window=30,min_spikes=0,alpha=0.45",
]


class Decision(ctypes.Structure):
    _fields_ = [("first", ctypes.c_uint32), ("last", ctypes.c_uint32), ("index", ctypes.c_int32),
                ("confidence", ctypes.c_double)]


@pytest.fixture(scope="module")
def codec_lib(clib):
    vp = ctypes.c_void_p
    for name, res, args in (("eb_codec_parse", ctypes.c_int, (vp, vp, ctypes.c_uint32, vp)),
                            ("eb_codec_check", ctypes.c_int, (vp, ctypes.c_uint32, ctypes.c_uint32, vp)),
                            ("eb_codec_init", None, (vp, vp)), ("eb_codec_encode", None, (vp, vp, vp)),
                            ("eb_codec_decode", ctypes.c_int, (vp, vp, vp)), ("eb_codec_flush", ctypes.c_int, (vp, vp)),
                            ("eb_codec_sizeof", ctypes.c_size_t, ()), ("eb_codec_config_sizeof", ctypes.c_size_t, ())):
        f = getattr(clib, name)
        f.restype, f.argtypes = res, list(args)
    return clib


class CCodec:
    """The C codec through ctypes, configured from a CODEC payload as the board is."""

    def __init__(self, lib, payload: bytes, n_in: int, n_out: int):
        self.lib = lib
        self.cfg = ctypes.create_string_buffer(lib.eb_codec_config_sizeof())
        self.c = ctypes.create_string_buffer(lib.eb_codec_sizeof())
        detail = ctypes.c_uint32()
        assert lib.eb_codec_parse(self.cfg, payload, len(payload), ctypes.byref(detail)) == 0
        st = lib.eb_codec_check(self.cfg, n_in, n_out, ctypes.byref(detail))
        assert st == 0, (st, detail.value)
        lib.eb_codec_init(self.c, self.cfg)
        self.n_in = n_in

    def encode(self, counts: np.ndarray) -> np.ndarray:
        counts = np.ascontiguousarray(counts, np.int16)
        out = np.zeros((len(counts), self.n_in), np.float32)
        for t in range(len(counts)):
            self.lib.eb_codec_encode(self.c, counts[t].ctypes.data, out[t].ctypes.data)
        return out

    def decode(self, y: np.ndarray) -> list[tuple]:
        y = np.ascontiguousarray(y, np.float32)
        d, out = Decision(), []
        for t in range(len(y)):
            if self.lib.eb_codec_decode(self.c, y[t].ctypes.data, ctypes.byref(d)):
                out.append((d.first, d.last, d.index, d.confidence))
        return out

    def flush(self) -> list[tuple]:
        d = Decision()
        return [(d.first, d.last, d.index, d.confidence)] if self.lib.eb_codec_flush(self.c, ctypes.byref(d)) else []


def recording(datasets, rel) -> Path:
    p = Path(datasets) / rel
    if not p.is_file():
        pytest.skip(f"{p} not in the test datasets")
    return p


def with_unit(spec: str, n: int = 6) -> tuple[str, np.ndarray]:
    enc = build_encoder(spec)
    enc.configure(open_source(str(Path(__file__).parents[1] / "data" / HAR)).info, None, 0.02)
    unit = default_unit(enc.scale, enc.offset, n)
    return spec + ("," if ":" in spec else ":") + "unit=" + "|".join(repr(float(u)) for u in unit), unit


# ---------------------------------------------------------------------- the encoders, bit for bit


@pytest.mark.parametrize("rel", RECORDINGS)
@pytest.mark.parametrize("spec", ENCODERS)
def test_c_encoders_are_bit_identical_to_the_python_ones_on_int16_counts(codec_lib, datasets, rel, spec):
    path = recording(datasets, rel)
    spec, _ = with_unit(spec)
    a, b = build_encoder(spec), build_encoder(spec)   # a: the counts the host sends; b: the Python encoding
    with open_source(str(path)) as src:
        for e in (a, b):
            e.configure(src.info, None, 0.02)         # the zoo models' 50 steps per second: resampled
        dec = build_decoder("count:window=5")
        c = CCodec(codec_lib, codec_payload(a, dec, 5), a.n_outputs(a.n_in), 5)
        counts, want, got = [], [], []
        for chunk in src.chunks():
            _, v, _, _ = a.samples(chunk)
            counts.append(v)
            want.append(np.asarray(b.encode(chunk).x, np.float32).reshape(len(v), -1))
            got.append(c.encode(v.astype(np.int16)))
    counts, want, got = np.concatenate(counts), np.concatenate(want), np.concatenate(got)
    assert len(want) > 200 and np.array_equal(counts, np.rint(counts))
    assert np.abs(counts).max() < 32767  # the default unit covers the recording
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    if not spec.startswith("direct"):
        assert np.abs(want).sum() > 0  # spikes, not silence


# ---------------------------------------------------------------------- the decoder, bit for bit


@pytest.fixture(scope="module")
def har_outputs(datasets):
    path = recording(datasets, HAR)
    m = Model.load("zoo:har-lif")
    from edgebrain.stream.pipeline import encode_file

    x, _, _ = encode_file(path, ZOO_ENC, rate=50.0, input_shape=(6,))
    y, _ = m.session("int").run(x)
    y = np.asarray(y, np.float32).reshape(len(x), -1)
    assert y.sum() > 0 and len(np.unique(y.argmax(axis=1))) > 1
    return y


@pytest.mark.parametrize("spec", DECODERS)
def test_c_count_decoder_decides_as_the_python_one(codec_lib, har_outputs, spec):
    y = har_outputs
    dec = build_decoder(spec)
    enc = build_encoder("direct:unit=1")
    enc.configure(open_source(str(Path(__file__).parents[1] / "data" / HAR)).info, None, 0.02)
    c = CCodec(codec_lib, codec_payload(enc, dec, y.shape[1]), 6, y.shape[1])
    want, a = [], 0
    for n in [1, 7, 40, 3, 100, 2, 400] * 4:                    # chunked as a stream: windows span updates
        part = y[a:a + n]
        if not len(part):
            break
        steps = Steps(np.zeros((len(part), 6), np.float32), np.arange(a, a + len(part), dtype=np.float64),
                      np.zeros(len(part)), None)
        want += dec.update(part, steps)
        a += len(part)
    want += dec.flush()
    got = c.decode(y) + c.flush()
    assert len(got) == len(want) > 10
    assert [(d[1], d[2], d[3]) for d in got] == [(int(w.t), w.index, w.confidence) for w in want]
    if "min_confidence" in spec:
        assert any(d[2] < 0 for d in got)                       # undecided windows are there too
    if "hysteresis" in spec or "hold" in spec:
        assert len({d[2] for d in got}) > 1


# ---------------------------------------------------------------------- end to end


def decisions(out: str) -> list[tuple]:
    rows = [json.loads(ln) for ln in out.splitlines() if ln.startswith("{") and '"summary"' not in ln]
    return [(d["t"], d["label"], d["confidence"], d.get("truth"), d.get("flush")) for d in rows]


IMU_STREAMS = {"har-lif": HAR, "har-l2mu": "imu/sp-sw-har/s13/s13_01_sw.csv",
               "basicmotions": "imu/basicmotions/BasicMotions_TEST.ts"}


@pytest.mark.parametrize("name", list(IMU_STREAMS))
def test_board_encoded_stream_decides_as_the_host_encoded_integer_path(cache_home, datasets, name):  # noqa: F811
    """har-*: 100 Hz recordings resampled to the model's 50 Hz on the host, then forwarded;
    basicmotions: at the model's rate, forwarded as they are."""
    src = str(recording(datasets, IMU_STREAMS[name]))
    board = cli(cache_home, "stream", f"zoo:{name}", "--source", src, "--target", "host-firmware", "--board-encodes",
                "--json")
    assert board.returncode == 0, board.stderr
    summary = json.loads(board.stdout.splitlines()[-1])["summary"]
    unit = summary["board"]["codec"]["unit"]
    host = cli(cache_home, "stream", f"zoo:{name}", "--source", src, "--json", "--encoder",
               "unit=" + "|".join(repr(u) for u in unit))
    assert host.returncode == 0, host.stderr
    got, want = decisions(board.stdout), decisions(host.stdout)
    assert len(got) == len(want) >= 40 and got == want
    hsum = json.loads(host.stdout.splitlines()[-1])["summary"]
    assert summary["accuracy"] == hsum["accuracy"] and summary["precision"] == "int"
    assert summary["board"]["board"]["errors"] == 0 and summary["board"]["link"]["crc_errors"] == 0


def test_a_codec_the_board_cannot_hold_is_one_clear_line(cache_home, datasets):  # noqa: F811
    src = str(recording(datasets, HAR))
    r = cli(cache_home, "stream", "zoo:har-lif", "--source", src, "--target", "host-firmware", "--board-encodes",
            "--decoder", "count:window=400,hop=10")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "400 steps × 5 classes = 2000 outputs kept; it keeps at most 1024" in lines[0], r.stderr
    r = cli(cache_home, "stream", "zoo:har-lif", "--source", src, "--board-encodes")
    assert r.returncode == 2 and "needs a board" in r.stderr and "Traceback" not in r.stderr
    r = cli(cache_home, "stream", "zoo:har-lif", "--source", src, "--target", "host-firmware", "--board-encodes",
            "--decoder", "vmax:window=25")
    assert r.returncode == 2 and "count decoder" in r.stderr and "Traceback" not in r.stderr


def test_board_refuses_too_many_channels_and_samples_before_a_codec(clib):
    m = Model.load("zoo:har-lif")
    board = BD.HostBoard(())
    s = BD.BoardSession(model_blob(m, cache=False)[0], board.link, board=board)
    try:
        with pytest.raises(BD.BoardError, match="NO_CODEC"):
            s.request("SAMPLES", P.pack("SAMPLES", b"\0" * 12, n=1), reply="DECISIONS")
        big = P.pack("CODEC", b"\0" * 32 * 17, encoder=1, decoder=1, channels=17, classes=5, window=25, hop=12,
                     alpha=1.0)
        with pytest.raises(BD.BoardError, match=r"exceeds the board's limits.*CODEC_LIMIT.*detail 16"):
            s.request("CODEC", big)
        enc = build_encoder("direct:unit=1")
        enc.configure(open_source(str(Path(__file__).parents[1] / "data" / HAR)).info, None, 0.02)
        with pytest.raises(BD.BoardError, match="BAD_CODEC"):        # 4 classes for a model of 5 outputs
            s.request("CODEC", codec_payload(enc, build_decoder("count:window=5"), 4))
        assert s.request("CODEC", codec_payload(enc, build_decoder("count:window=5"), 5))["value"] == 6
        r = s.request("SAMPLES", P.pack("SAMPLES", np.zeros((12, 6), "<i2").tobytes(), n=12), reply="DECISIONS")
        assert r["n"] == 2 and len(r["tail"]) == 2 * P.DECISION.size
        assert s.board_stats()["errors"] == 3
    finally:
        s.close()


# ---------------------------------------------------------------------- a standalone board

STANDALONE = r"""
#include <stdio.h>
#include "eb_codec.h"
#include "eb_runtime.h"
#include "model.h"

static eb_model model;
static eb_session sess;
static int32_t state[MODEL_STATE_WORDS];
static int32_t act[MODEL_ACT_WORDS];
static int64_t scratch[MODEL_SCRATCH_WORDS];
static const eb_codec_config cfg = MODEL_CODEC_CONFIG;
static eb_codec codec;

static void show(const eb_decision *d) {
    printf("%lu %lu %ld %.17g\n", (unsigned long)d->first, (unsigned long)d->last, (long)d->index, d->confidence);
}

int main(void) {
    eb_error err;
    eb_decision d;
    uint32_t detail;
    int16_t raw[MODEL_CODEC_CHANNELS];
    float x[MODEL_N_IN], y[MODEL_N_OUT];
    if (eb_model_load(&model, model_blob, model_blob_len, &err) != EB_OK) return 2;
    if (eb_session_init(&sess, &model, state, sizeof state, act, sizeof act, scratch, sizeof scratch) != EB_OK) return 3;
    if (eb_codec_check(&cfg, MODEL_N_IN, MODEL_N_OUT, &detail) != EB_CODEC_OK) return 4;
    eb_codec_init(&codec, &cfg);
    while (fread(raw, sizeof raw, 1, stdin) == 1) {
        eb_codec_encode(&codec, raw, x);
        if (eb_step(&sess, x, y) != EB_OK) return 5;
        if (eb_codec_decode(&codec, y, &d)) show(&d);
    }
    if (eb_codec_flush(&codec, &d)) show(&d);
    return 0;
}
"""


def test_exported_codec_decides_on_a_standalone_board_as_python(clib, datasets, tmp_path):
    """``firmware export`` writes the codec into model.h; a program built from the export alone (no
    link, no host) turns int16 counts of a real recording into the decisions of the Python path."""
    import subprocess

    from edgebrain import devices as D
    from edgebrain.apps import firmware as FW
    from edgebrain.cbuild import SOURCE_DIR
    from edgebrain.stream.pipeline import encode_file
    from tests.firmware.conftest import need_compiler

    path = recording(datasets, HAR)
    m = Model.load("zoo:har-lif")
    r = FW.export(m, D.load("stm32f446"), str(tmp_path / "out"))
    assert r["codec"]["rate"] == 50.0
    unit = r["codec"]["unit"]
    spec = ZOO_ENC + ",unit=" + "|".join(repr(u) for u in unit)
    enc = build_encoder(spec)
    with open_source(str(path)) as src:
        enc.configure(src.info, (6,), 0.02)
        counts = np.concatenate([enc.samples(c)[1] for c in src.chunks()]).astype("<i2")
    (tmp_path / "main.c").write_text(STANDALONE)
    exe = tmp_path / "standalone"
    cc = need_compiler()
    b = subprocess.run([*cc, "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-ffp-contract=off", "-O2",
                        "-I", str(SOURCE_DIR), "-I", str(tmp_path / "out"), "-o", str(exe), str(tmp_path / "main.c"),
                        str(tmp_path / "out" / "model_blob.c"), *map(str, sorted(SOURCE_DIR.glob("*.c")))],
                       capture_output=True, text=True)
    assert b.returncode == 0, b.stderr
    run = subprocess.run([str(exe)], input=counts.tobytes(), capture_output=True)
    assert run.returncode == 0, run.returncode
    got = [(int(a), int(b), int(c), float(d)) for a, b, c, d in (ln.split() for ln in run.stdout.decode().splitlines())]
    x, _, _ = encode_file(path, spec, rate=50.0, input_shape=(6,))
    y, _ = m.session("int").run(x)
    dec = build_decoder(m.graph.meta["stream"]["decoder"])
    n = len(x)
    want = dec.update(np.asarray(y).reshape(n, -1), Steps(x, np.arange(n, dtype=np.float64), np.zeros(n), None))
    want += dec.flush()
    assert len(got) == len(want) > 40
    assert [(g[1], g[2], g[3]) for g in got] == [(int(w.t), w.index, w.confidence) for w in want]


def test_a_board_that_restarts_gets_the_model_and_codec_again_and_goes_on(codec_lib, datasets, caplog):
    """A board that restarts mid-stream (on_reset="resume", what the stream uses): the model and the
    codec are sent again, and the decisions after the reset are those of a fresh codec on the
    samples after it, numbered as the stream's steps."""
    from edgebrain.stream.board_codec import OnBoard
    from tests.firmware.test_board import Relay

    exe = BD.build_board()
    m = Model.load("zoo:har-lif")
    path = recording(datasets, HAR)
    spec, _ = with_unit(ZOO_ENC)
    enc, dec = build_encoder(spec), build_decoder("count:window=20,hop=7,alpha=0.5,hysteresis=0.1")
    with open_source(str(path)) as src:
        enc.configure(src.info, (6,), 0.02)
        counts = np.concatenate([enc.samples(c)[1] for c in src.chunks()]).astype(np.int16)[:300]
    data = model_blob(m, cache=False)[0]
    first = BD.HostBoard(exe=exe)
    relay = Relay(first.link)
    board = OnBoard(BD.BoardSession(data, BD.SerialLink(relay.path), timeout=0.5, on_reset="resume"))
    second = None
    try:
        board.configure(enc, dec)
        before = board.samples(counts[:130])
        first.close()
        second = BD.HostBoard(exe=exe)
        relay.swap(second.link)
        with caplog.at_level("WARNING", logger="edgebrain.stream.board"):
            after = board.samples(counts[130:], flush=True)
        assert board.board.link_stats()["resets"] == 1
    finally:
        board.close()
        relay.close()
        if second is not None:
            second.close()

    def fresh(part, flush):
        c = CCodec(codec_lib, codec_payload(enc, dec, 5), 6, 5)
        y, _ = m.session("int").run(c.encode(part))
        return c.decode(np.asarray(y).reshape(len(part), -1)) + (c.flush() if flush else [])

    assert before == fresh(counts[:130], False) and len(before) > 10
    assert after == [(a + 130, b + 130, i, p) for a, b, i, p in fresh(counts[130:], True)]
    assert "resumed from the initial state" in caplog.text
