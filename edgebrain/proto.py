"""The board link's wire protocol, defined once: framing, message types and their layouts.

This module is the one definition of what ``docs/protocol.md`` describes. The C side
(``edgebrain/cruntime/eb_proto_layout.h``) is GENERATED from it by :func:`c_header`
(``python tools/firmware/gen_header.py``; a test fails when the committed copy is stale).

A frame on the wire is ``COBS(header ‖ payload ‖ crc) ‖ 0x00``:

* ``header``: 6 bytes, little-endian: ``version u8 · type u8 · seq u16 · length u16`` (the
  payload's length in bytes, at most :data:`MAX_PAYLOAD`);
* ``crc``: CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no final XOR; check value
  0x29B1 over ASCII ``123456789``) of header and payload, little-endian;
* COBS (Cheshire & Baker) removes every zero byte, so a single zero ends a frame and a receiver
  resynchronises after any damage by skipping to the next zero.

Every message's payload is a fixed part (:data:`MESSAGES`: named little-endian fields) followed,
for some types, by a variable tail (chunk bytes, float32 steps or outputs, ping bytes).

    frame = encode_frame(MSG["HELLO"], seq, b"")
    d = Deframer(); frames = d.feed(data)       # Frame(type, seq, payload) for each intact frame
    fields = unpack("INFO", frame.payload)       # dict of the fixed part, "tail": the rest
"""

from __future__ import annotations

import binascii
import struct
from dataclasses import dataclass

from .blob import STATUS
from .errors import FormatError

#: protocol version (the header's first byte); a frame of another version is refused
VERSION = 1
#: firmware (device loop) version reported in INFO: major << 16 | minor << 8 | patch. 0.2.0 added the
#: on-board codec (CODEC, SAMPLES, DECISIONS): a host checks for it before sending them; 0.3.0 added
#: its audio front end (CODEC with encoder = audio)
FIRMWARE_VERSION = (0 << 16) | (3 << 8) | 0
#: the first firmware version with the on-board codec
CODEC_FIRMWARE = (0 << 16) | (2 << 8) | 0
#: the first firmware version with the on-board audio front end
AUDIO_FIRMWARE = (0 << 16) | (3 << 8) | 0
HEADER = struct.Struct("<BBHH")
HEADER_SIZE = HEADER.size
CRC_SIZE = 2
#: largest payload of one frame, in bytes
MAX_PAYLOAD = 4096
#: largest frame before COBS (header + payload + CRC)
MAX_RAW = HEADER_SIZE + MAX_PAYLOAD + CRC_SIZE
#: largest COBS-encoded frame, without its zero delimiter (COBS adds one byte per 254, plus one)
MAX_ENCODED = MAX_RAW + MAX_RAW // 254 + 1
#: CRC-16/CCITT-FALSE of b"123456789"
CRC_CHECK = 0x29B1
#: largest ping payload echoed
MAX_PING = 64

# ---------------------------------------------------------------------- message types

#: name → (type code, direction, fixed fields [(name, struct code)], tail description).
#: Host → board types are below 0x80; the board's replies have the high bit set.
MESSAGES = {
    "HELLO": (0x01, "host", [], ""),
    "PING": (0x02, "host", [], "up to 64 bytes, echoed in PONG"),
    "LOAD_BEGIN": (0x03, "host", [("total", "I"), ("crc32", "I")], ""),
    "LOAD_CHUNK": (0x04, "host", [("offset", "I")], "the blob's bytes from offset"),
    "LOAD_END": (0x05, "host", [], ""),
    "STEPS": (0x06, "host", [("n", "H"), ("reserved", "H")], "n x n_in float32, step-major"),
    "STATS_REQ": (0x07, "host", [], ""),
    "RESET": (0x08, "host", [], ""),
    "STEP_PART": (0x09, "host", [("offset", "I")], "float32 input values from element offset (a step too large "
                  "for one STEPS frame, staged in parts)"),
    "STEP_STAGED": (0x0A, "host", [], "runs one step on the staged input: OUTPUTS with n = 1"),
    "CODEC": (0x0B, "host", [
        ("encoder", "B"), ("layout", "B"), ("init", "B"), ("flags", "B"), ("decoder", "B"), ("reserved", "B"),
        ("channels", "H"), ("classes", "H"), ("reserved2", "H"), ("max_spikes", "I"), ("window", "I"), ("hop", "I"),
        ("min_spikes", "I"), ("hold", "I"), ("alpha", "d"), ("min_confidence", "d"), ("hysteresis", "d")],
        "channels x (unit, offset, scale, threshold) float64: the on-board encoder and decoder (ACK value = n_in); "
        "with encoder = audio, then the AUDIO part and bands x (b0, b1, b2, a1, a2, mean, scale) float64"),
    "SAMPLES": (0x0C, "host", [("n", "H"), ("flags", "H")],
                "n x channels int16 raw sensor counts, sample-major (flags bit 0: flush the partial window after)"),
    "INFO": (0x81, "board", [
        ("proto", "B"), ("boot", "B"), ("loaded", "B"), ("has_cycles", "B"),
        ("max_payload", "H"), ("reserved", "H"),
        ("fw_version", "I"), ("blob_format", "I"), ("model_buf", "I"), ("work_buf", "I"),
        ("model_hash", "I"), ("model_bytes", "I"), ("n_in", "I"), ("n_out", "I"),
        ("input_ndim", "I"), ("shape0", "I"), ("shape1", "I"), ("shape2", "I"), ("shape3", "I"),
        ("edgebrain_version", "16s")], ""),
    "PONG": (0x82, "board", [], "the PING's bytes"),
    "ACK": (0x83, "board", [("acked", "B"), ("reserved", "3s"), ("value", "I")], ""),
    "OUTPUTS": (0x86, "board", [("n", "H"), ("reserved", "H"), ("clock", "I"), ("saturations", "I")],
                "n x n_out float32, step-major"),
    "STATS": (0x87, "board", [
        ("steps", "Q"), ("saturations", "Q"), ("cycles", "Q"),
        ("frames_rx", "I"), ("frames_tx", "I"), ("crc_errors", "I"), ("frame_errors", "I"),
        ("seq_gaps", "I"), ("duplicates", "I"), ("errors", "I"), ("reserved", "I")], ""),
    "DECISIONS": (0x8C, "board", [("n", "H"), ("reserved", "H"), ("clock", "I"), ("saturations", "I")],
                  "n x (first u32, last u32, index i32, reserved u32, confidence float64)"),
    "SENSOR": (0x8D, "board", [("channels", "B"), ("reserved", "B"), ("n", "H"), ("index", "I"), ("rate", "f")],
               "channels x unit float32 (physical units per count), then n x channels int16 raw sensor counts, "
               "sample-major: sent unsolicited by a board that streams its sensor (edgebrain record "
               "--source serial://...?format=eb)"),
    "ERROR": (0xFF, "board", [("code", "H"), ("about", "B"), ("reserved", "B"), ("detail", "I")], ""),
}
MSG = {name: code for name, (code, _, _, _) in MESSAGES.items()}
MSG_NAME = {code: name for name, code in MSG.items()}
STRUCTS = {name: struct.Struct("<" + "".join(c for _, c in fields)) for name, (_, _, fields, _) in MESSAGES.items()}

#: ERROR codes: 1-11 are the C runtime's eb_status (edgebrain/blob.py STATUS); these are the link's
ERRORS = {
    "BAD_TYPE": (32, "unknown message type"),
    "BAD_LENGTH": (33, "payload length does not match the message type (or the model's step sizes)"),
    "NO_MODEL": (34, "no model loaded"),
    "TOO_LARGE": (35, "the blob does not fit the board's model buffer, or its buffers the work buffer"),
    "LOAD_ORDER": (36, "LOAD_CHUNK or LOAD_END without LOAD_BEGIN, or a chunk out of order"),
    "BAD_CRC": (37, "the loaded blob's CRC-32 differs from LOAD_BEGIN's"),
    "BAD_CODEC": (38, "the codec configuration is invalid or does not match the loaded model's inputs and outputs"),
    "CODEC_LIMIT": (39, ("the codec configuration exceeds the board's limits (detail: the limit: channels, "
                         "classes, window x classes values kept, or audio bands)")),
    "NO_CODEC": (40, "SAMPLES before a CODEC configuration (or after a model load, which clears it)"),
}
ERROR_CODE = {k: v[0] for k, v in ERRORS.items()}

#: the on-board codec's encoders and decoders (CODEC's ``encoder``, ``decoder``, ``layout``,
#: ``init``, ``flags``); eb_codec.h says the same
CODEC_ENCODERS = {"direct": 1, "delta": 2, "sigma_delta": 3}
#: CODEC's ``encoder`` for the audio front end (firmware 0.3.0; its configuration follows the channel's)
CODEC_AUDIO = 4
CODEC_DECODERS = {"count": 1}
CODEC_LAYOUTS = {"signed": 0, "split": 1}
CODEC_INITS = {"first": 0, "zero": 1}
CODEC_HAS_HYSTERESIS, CODEC_HAS_HOLD = 1, 2
#: SAMPLES flags: decide the partial window after these samples (the end of a stream)
SAMPLES_FLUSH = 1
#: one decision in DECISIONS' tail: first step, last step, class index (-1: none), confidence
DECISION = struct.Struct("<IIiId")
#: CODEC with encoder = audio (one raw channel: the audio samples): after the channel's 32 bytes, this
#: fixed part (the front end of eb_codec_audio.h), then AUDIO_BAND per band
AUDIO_FIELDS = [("bands", "H"), ("flags", "B"), ("log", "B"), ("hop", "I"), ("leak", "d"), ("k", "d"),
                ("agc_decay", "d"), ("agc_floor", "d")]
AUDIO = struct.Struct("<" + "".join(c for _, c in AUDIO_FIELDS))
#: per band: the biquad's b0, b1, b2, a1, a2 (a0 = 1), the normalisation's mean and scale
AUDIO_BAND = struct.Struct("<7d")
AUDIO_AGC, AUDIO_SQUARE, AUDIO_FIXED = 1, 2, 4
AUDIO_LOGS = {"none": 0, "log1p": 1}


def error_text(code: int) -> str:
    """What an ERROR code means, in words."""
    for name, (c, text) in ERRORS.items():
        if c == code:
            return f"{text} [{name}]"
    if 0 < code < len(STATUS):
        return f"C runtime: {STATUS[code][1]} [EB_{STATUS[code][0]}]"
    return f"unknown error code {code}"


# ---------------------------------------------------------------------- CRC and COBS


def crc16(data: bytes, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE (the C twin is eb_proto_crc16)."""
    return binascii.crc_hqx(bytes(data), crc)


def cobs_encode(data: bytes) -> bytes:
    """COBS-encode ``data`` (no zero byte in the result; the delimiter is not added)."""
    data = bytes(data)
    out = bytearray([0])
    code_at, code, last = 0, 1, len(data) - 1
    for i, b in enumerate(data):
        if b == 0:
            out[code_at] = code
            code_at, code = len(out), 1
            out.append(0)
        else:
            out.append(b)
            code += 1
            if code == 0xFF and i < last:  # a full block; a new one only if bytes follow (canonical COBS)
                out[code_at] = code
                code_at, code = len(out), 1
                out.append(0)
    out[code_at] = code
    return bytes(out)


def cobs_decode(data: bytes) -> bytes:
    """Decode one COBS block (without its delimiter); ValueError when it is malformed or not
    canonical (an empty last block after a block of 254 non-zero bytes: a damaged frame's tail)."""
    out = bytearray()
    i, n, last = 0, len(data), 0
    while i < n:
        code = data[i]
        if code == 0:
            raise ValueError("zero byte inside a COBS block")
        if code == 1 and i + 1 == n and last == 0xFF:  # canonical COBS only, as the board's receiver
            raise ValueError("non-canonical COBS: an empty last block after a full one")
        last = code
        end = i + code
        if end > n:
            raise ValueError("COBS block truncated")
        chunk = data[i + 1:end]
        if 0 in chunk:
            raise ValueError("zero byte inside a COBS block")
        out += chunk
        i = end
        if code != 0xFF and i < n:
            out.append(0)
    return bytes(out)


# ---------------------------------------------------------------------- frames


@dataclass
class Frame:
    type: int
    seq: int
    payload: bytes

    @property
    def name(self) -> str:
        return MSG_NAME.get(self.type, f"0x{self.type:02x}")


def encode_frame(type_: int, seq: int, payload: bytes = b"") -> bytes:
    """One frame on the wire: COBS(header ‖ payload ‖ CRC) followed by the zero delimiter."""
    payload = bytes(payload)
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes; at most {MAX_PAYLOAD}")
    raw = HEADER.pack(VERSION, type_, seq & 0xFFFF, len(payload)) + payload
    raw += struct.pack("<H", crc16(raw))
    return cobs_encode(raw) + b"\0"


def decode_frame(block: bytes) -> Frame:
    """The frame in one COBS block (delimiter removed); ValueError saying what is wrong."""
    if len(block) > MAX_ENCODED:
        raise ValueError("frame too long")
    raw = cobs_decode(block)
    if len(raw) > MAX_RAW:
        raise ValueError("frame too long")
    if len(raw) < HEADER_SIZE + CRC_SIZE:
        raise ValueError("frame too short")
    version, type_, seq, length = HEADER.unpack_from(raw)
    if len(raw) != HEADER_SIZE + length + CRC_SIZE:
        raise ValueError("length field does not match the frame")
    if crc16(raw[:-2]) != struct.unpack_from("<H", raw, len(raw) - 2)[0]:
        raise ValueError("CRC mismatch")
    if version != VERSION:
        raise ValueError(f"protocol version {version}; this host speaks {VERSION}")
    return Frame(type_, seq, raw[HEADER_SIZE:-2])


class Deframer:
    """Bytes in, intact frames out, resynchronising at each zero byte. Counts what it drops:
    ``crc_errors`` (decoded, CRC wrong), ``frame_errors`` (bad COBS, length or version),
    ``overlong`` (no zero within :data:`MAX_ENCODED` bytes: skipped to the next zero) and
    ``frames`` (delivered). Its buffer never exceeds MAX_ENCODED bytes."""

    def __init__(self):
        self.buf = bytearray()
        self.skipping = False
        self.frames = self.crc_errors = self.frame_errors = self.overlong = 0
        self.last_error = ""

    def feed(self, data: bytes) -> list[Frame]:
        out = []
        start = 0
        while True:
            z = data.find(0, start)
            piece = data[start:] if z < 0 else data[start:z]
            if not self.skipping:
                if len(self.buf) + len(piece) > MAX_ENCODED:
                    self.buf.clear()
                    self.skipping = True
                    self.overlong += 1
                    self.last_error = "frame too long"
                else:
                    self.buf += piece
            if z < 0:
                return out
            if not self.skipping and self.buf:
                try:
                    out.append(decode_frame(bytes(self.buf)))
                    self.frames += 1
                except ValueError as e:
                    self.last_error = str(e)
                    if "CRC" in str(e):
                        self.crc_errors += 1
                    else:
                        self.frame_errors += 1
            self.buf.clear()
            self.skipping = False
            start = z + 1

    @property
    def dropped(self) -> int:
        return self.crc_errors + self.frame_errors + self.overlong


# ---------------------------------------------------------------------- payloads


def pack(name: str, tail: bytes = b"", **fields) -> bytes:
    """The payload of message ``name``: its fixed fields (missing ones zero) and ``tail``."""
    _, _, spec, _ = MESSAGES[name]
    vals = [fields.get(f, b"" if c.endswith("s") else 0) for f, c in spec]
    return STRUCTS[name].pack(*vals) + bytes(tail)


def unpack(name: str, payload: bytes) -> dict:
    """The fields of message ``name`` (a dict; ``tail``: the bytes after the fixed part).
    FormatError when the payload is shorter than the fixed part."""
    s = STRUCTS[name]
    if len(payload) < s.size:
        raise FormatError(f"{name} payload of {len(payload)} bytes; its fixed part has {s.size}")
    vals = s.unpack_from(payload)
    d = {f: v for (f, _), v in zip(MESSAGES[name][2], vals)}
    d["tail"] = bytes(payload[s.size:])
    return d


# ---------------------------------------------------------------------- the C header


def _offsets(name: str):
    off = 0
    for f, c in MESSAGES[name][2]:
        size = struct.calcsize("<" + c)
        yield f, off, size
        off += size


def c_header() -> str:
    """eb_proto_layout.h: the constants above as C macros (generated, never edited by hand)."""
    L = ["/* eb_proto_layout.h: GENERATED by edgebrain.proto.c_header() (python tools/firmware/gen_header.py).",
         " * Do not edit: the wire protocol is defined in edgebrain/proto.py and described in docs/protocol.md. */",
         "#ifndef EB_PROTO_LAYOUT_H", "#define EB_PROTO_LAYOUT_H", "",
         f"#define EB_PROTO_VERSION {VERSION}u",
         f"#define EB_PROTO_FIRMWARE_VERSION 0x{FIRMWARE_VERSION:06x}u",
         f"#define EB_PROTO_HEADER_SIZE {HEADER_SIZE}u",
         f"#define EB_PROTO_CRC_SIZE {CRC_SIZE}u",
         f"#define EB_PROTO_MAX_PAYLOAD {MAX_PAYLOAD}u",
         f"#define EB_PROTO_MAX_RAW {MAX_RAW}u",
         f"#define EB_PROTO_MAX_ENCODED {MAX_ENCODED}u",
         f"#define EB_PROTO_CRC_CHECK 0x{CRC_CHECK:04X}u",
         f"#define EB_PROTO_MAX_PING {MAX_PING}u", "",
         "/* header: byte offsets */",
         "#define EB_PROTO_H_VERSION 0u", "#define EB_PROTO_H_TYPE 1u", "#define EB_PROTO_H_SEQ 2u",
         "#define EB_PROTO_H_LENGTH 4u", "", "/* message types */"]
    for name, (code, direction, _, _) in MESSAGES.items():
        L.append(f"#define EB_MSG_{name} 0x{code:02X}u  /* {direction} */")
    L += ["", "/* fixed parts: byte offsets of each field and the part's size */"]
    for name in MESSAGES:
        for f, off, size in _offsets(name):
            L.append(f"#define EB_{name}_{f.upper()} {off}u")
        L.append(f"#define EB_{name}_SIZE {STRUCTS[name].size}u")
    L += ["", "/* the on-board codec: SAMPLES flags, one DECISIONS entry (first u32, last u32, index i32, reserved u32,",
          " * confidence f64) and the CODEC tail per channel (unit, offset, scale, threshold: f64) */",
          f"#define EB_PROTO_SAMPLES_FLUSH {SAMPLES_FLUSH}u", f"#define EB_DECISION_SIZE {DECISION.size}u",
          "#define EB_CODEC_CHANNEL_SIZE 32u"]
    L += ["", "/* CODEC with encoder = audio: the front end's fixed part after the raw channel, then per band",
          " * (b0, b1, b2, a1, a2, mean, scale: f64) */", f"#define EB_PROTO_CODEC_AUDIO {CODEC_AUDIO}u"]
    off = 0
    for f, c in AUDIO_FIELDS:
        L.append(f"#define EB_AUDIO_{f.upper()} {off}u")
        off += struct.calcsize("<" + c)
    L += [f"#define EB_AUDIO_SIZE {AUDIO.size}u", f"#define EB_AUDIO_BAND_SIZE {AUDIO_BAND.size}u",
          f"#define EB_PROTO_AUDIO_AGC {AUDIO_AGC}u", f"#define EB_PROTO_AUDIO_SQUARE {AUDIO_SQUARE}u",
          f"#define EB_PROTO_AUDIO_FIXED {AUDIO_FIXED}u"]
    L += ["", "/* ERROR codes of the link (1-11: eb_status of the runtime) */"]
    for name, (code, text) in ERRORS.items():
        L.append(f"#define EB_PERR_{name} {code}u  /* {text} */")
    L += ["", "#endif /* EB_PROTO_LAYOUT_H */", ""]
    return "\n".join(L)
