"""Seed corpora of the libFuzzer harnesses in firmware/fuzz, written from real frames and a real
model blob (zoo:basicmotions, lowered by edgebrain.csession.model_blob), at build time:

    python firmware/fuzz/make_corpus.py OUT_DIR      # OUT_DIR/rx, OUT_DIR/device, OUT_DIR/blob

* rx: single frames of every host and board message type (empty, small and a maximal payload,
  one without any zero byte so that its encoding is as long as a frame can be, one whose encoding
  ends with a full COBS block), a session's
  wire, damaged frames (a bit flipped, a byte dropped, duplicated, two bytes swapped), an
  overlong run;
* device: byte 0 even, a whole session as wire bytes (HELLO, PING, a model load in LOAD_CHUNKs,
  STEPS, STEP_PART + STEP_STAGED, STATS_REQ, RESET, and where the protocol has them, CODEC with
  the model's own encoder and decoder and SAMPLES); byte 0 odd, the same session as records
  (type · flags · length · payload; the LOAD_BEGIN flagged to keep the blob's CRC-32 valid);
* blob: the blob itself, and with the control bits that keep its checksum valid while it mutates;
  the same for the model pruned (80 % of each dense synapse's weights zeroed: sparse rows) and with
  4-bit weights (90 % zeroed: sparse and dense 4-bit rows), format version 2.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from edgebrain import proto as P
from edgebrain.csession import model_blob
from edgebrain.errors import EdgebrainError
from edgebrain.model import Model

MODEL = "zoo:basicmotions"
CHUNK = 4000


def session(blob: bytes, n_in: int, rng) -> list[tuple[str, int, bytes]]:
    """(message, flags, payload) of a session that loads ``blob`` and steps it."""
    crc = struct.unpack_from("<I", blob, 16)[0]
    msgs = [("HELLO", 0, b""), ("PING", 0, b"\x00\x01edge\x00"),
            ("LOAD_BEGIN", 4, P.pack("LOAD_BEGIN", total=len(blob), crc32=crc))]
    msgs += [("LOAD_CHUNK", 0, P.pack("LOAD_CHUNK", blob[off:off + CHUNK], offset=off))
             for off in range(0, len(blob), CHUNK)]
    msgs.append(("LOAD_END", 0, b""))
    xs = rng.normal(0, 1.5, (3, n_in)).astype("<f4")
    msgs += [("STEPS", 0, P.pack("STEPS", xs.tobytes(), n=3)), ("STEPS", 1, P.pack("STEPS", xs.tobytes(), n=3)),
             ("STEP_PART", 0, P.pack("STEP_PART", xs[0, :2].tobytes(), offset=0)),
             ("STEP_PART", 0, P.pack("STEP_PART", xs[0, 2:].tobytes(), offset=2)),
             ("STEP_STAGED", 0, b""), ("STATS_REQ", 0, b""), ("RESET", 0, b""), ("HELLO", 0, b"")]
    return msgs + codec_session(blob, n_in, rng)


def codec_session(blob: bytes, n_in: int, rng) -> list[tuple[str, int, bytes]]:
    """CODEC (the model's own on-board encoder and decoder) and SAMPLES, when this protocol has them
    (firmware 0.2): raw int16 counts in, decisions out."""
    if "CODEC" not in P.MSG or "SAMPLES" not in P.MSG:
        return []
    try:
        from edgebrain.apps.firmware import codec_config

        n_out = struct.unpack_from("<I", blob, 68)[0]
        cfg, why = codec_config(Model.load(MODEL), n_in, n_out)
        if cfg is None:
            print(f"no CODEC seed: {why}")
            return []
        fields = {f: cfg[f] for f, _ in P.MESSAGES["CODEC"][2] if f in cfg}
        cols = np.column_stack([cfg["unit"], cfg["offset"], cfg["scale"], cfg["threshold"]]).astype("<f8")
        codec = P.pack("CODEC", cols.tobytes(), **fields)
    except (ImportError, AttributeError, KeyError, TypeError, ValueError, EdgebrainError) as e:  # optional
        print(f"no CODEC seed: {type(e).__name__}: {e}")
        return []
    ch = int(cfg["channels"])
    samples = rng.integers(-2000, 2000, (150, ch)).astype("<i2")
    return [("CODEC", 0, codec), ("SAMPLES", 0, P.pack("SAMPLES", samples[:120].tobytes(), n=120)),
            ("SAMPLES", 0, P.pack("SAMPLES", samples[120:].tobytes(), n=30, flags=1))]


def compact_blobs(m: Model) -> dict[str, bytes]:
    """Blobs of ``m`` with its dense synapses' integer weights pruned (the smallest 80 % zeroed: sparse
    rows) and with 4-bit weights (values divided by 18, 90 % zeroed): compact rows of format 2."""
    import copy

    from edgebrain import ops

    out = {}
    for name, bits, sparsity in (("sparse", 8, 0.8), ("int4", 4, 0.9)):
        q = copy.deepcopy(m.quant)
        q["weight_bits"] = bits
        for n, op in m.graph.nodes.items():
            if isinstance(op, ops.Affine):
                w = q["nodes"][n]["w"].astype(np.int64).reshape(-1)
                w[np.argsort(np.abs(w), kind="stable")[:int(sparsity * w.size)]] = 0
                w = np.sign(w) * (np.abs(w) // 18) if bits == 4 else w  # [-7, 7]
                q["nodes"][n]["w"] = w.reshape(op.weight.shape).astype(np.int8)
        out[name] = model_blob(Model(m.graph, q), cache=False)[0]
    return out


def wire(msgs) -> bytes:
    return b"".join(P.encode_frame(P.MSG[name], seq, payload) for seq, (name, _, payload) in enumerate(msgs, 1))


def records(msgs) -> bytes:
    return b"".join(struct.pack("<BBH", P.MSG[name], flags, len(payload)) + payload for name, flags, payload in msgs)


def damage(frame: bytes, kind: str, rng) -> bytes:
    body = bytearray(frame[:-1])
    i = int(rng.integers(0, len(body) - 1))
    if kind == "flip":
        body[i] ^= 1 << int(rng.integers(0, 8))
        body[i] = body[i] or 1
    elif kind == "drop":
        del body[i]
    elif kind == "dup":
        body.insert(i, body[i])
    else:
        body[i], body[i + 1] = body[i + 1], body[i]
    return bytes(body) + b"\0"


def main(out: Path) -> None:
    rng = np.random.default_rng(15)
    m = Model.load(MODEL)
    blob = model_blob(m, cache=False)[0]
    n_in = struct.unpack_from("<I", blob, 64)[0]
    msgs = session(blob, n_in, rng)
    seeds: dict[str, dict[str, bytes]] = {"rx": {}, "device": {}, "blob": {}}
    for name, code in P.MSG.items():
        seeds["rx"][f"{name.lower()}-empty"] = P.encode_frame(code, 1, b"")
        seeds["rx"][f"{name.lower()}-small"] = P.encode_frame(code, 0x1234, rng.integers(0, 256, 40, np.uint8).tobytes())
    seeds["rx"]["max-payload"] = P.encode_frame(P.MSG["STEPS"], 7, rng.integers(0, 256, P.MAX_PAYLOAD, np.uint8).tobytes())
    seeds["rx"]["max-no-zero"] = P.encode_frame(P.MSG["LOAD_CHUNK"], 0x0101, rng.integers(1, 256, P.MAX_PAYLOAD, np.uint8).tobytes())
    while True:  # a frame whose COBS encoding ends with a full (0xFF) block: the canonical-tail edge
        f = P.encode_frame(P.MSG["PING"], 0x0101, rng.integers(1, 256, 252, np.uint8).tobytes())
        if len(f) == 262 and f[-256] == 0xFF:
            seeds["rx"]["full-last-block"] = f
            break
    small = wire(msgs[:2] + msgs[-6:])
    seeds["rx"]["session"] = small
    for k, kind in enumerate(("flip", "drop", "dup", "reorder")):
        f = P.encode_frame(P.MSG["STEPS"], 9 + k, rng.integers(0, 256, 100, np.uint8).tobytes())
        seeds["rx"][f"damaged-{kind}"] = damage(f, kind, rng) + f
    seeds["rx"]["overlong"] = bytes([7]) * (P.MAX_ENCODED + 3) + b"\0" + P.encode_frame(2, 3, b"ok")
    seeds["rx"]["version-2"] = P.cobs_encode(P.HEADER.pack(2, 1, 0, 0) + struct.pack("<H", P.crc16(P.HEADER.pack(2, 1, 0, 0)))) + b"\0"
    seeds["device"]["wire-session"] = b"\x00" + wire(msgs)
    seeds["device"]["wire-bytewise"] = b"\x02" + wire(msgs[:2] + msgs[-4:])
    seeds["device"]["records-session"] = b"\x01" + records(msgs)
    seeds["device"]["records-no-model"] = b"\x01" + records(msgs[:2] + msgs[-6:])
    seeds["blob"]["plain"] = b"\x00" + blob
    seeds["blob"]["fixed-crc-steps"] = bytes([0x01 | 0x0C | 0x10]) + blob
    seeds["blob"]["fixed-total-crc"] = bytes([0x03 | 0x04 | 0x20]) + blob
    for name, data in compact_blobs(m).items():
        seeds["blob"][f"{name}-plain"] = b"\x00" + data
        seeds["blob"][f"{name}-fixed-crc-steps"] = bytes([0x01 | 0x0C | 0x10]) + data
    for harness, files in seeds.items():
        d = out / harness
        d.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            (d / name).write_bytes(data)
    print(f"seeds: {', '.join(f'{h} {len(f)}' for h, f in seeds.items())} (model {MODEL}, blob of {len(blob)} bytes)")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
