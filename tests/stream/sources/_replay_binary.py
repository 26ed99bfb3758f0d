"""Replay a recording's bytes over a live link as a device would send them: a test helper, run as a
separate process by tests/test_live_binary.py (no NumPy: it starts fast).

    python tests/stream/sources/_replay_binary.py MODE TARGET --file F [--as raw|pcm|wav|headerless] [--wav-size N]
        [--strip-header] [--start B] [--stop B] [--resend B] [--inject OFFSET:HEX ...]
        [--pieces A:B] [--seed S] [--frame B] [--tail-byte K] [--go] [--hold SECONDS]

MODE/TARGET: ``pty PATH`` (a pseudo-terminal pair, master kept, PATH linked to the slave, raw mode),
``tcp-serve PORT`` (accept one reader), ``tcp-connect PORT``, ``udp PORT`` (datagrams).

The payload: ``--as raw`` the file's bytes; ``pcm`` a WAV's data chunk (raw samples); ``wav`` the
WAV with its RIFF and data sizes replaced by ``--wav-size`` (default 0xFFFFFFFF: a streamed WAV);
``headerless`` an AEDAT 4 file without its ``#!AER-DAT4.0`` line (as DV's network output sends
it). ``--strip-header`` removes leading ``%`` header lines (a RAW stream without them). Then bytes
``--start``..``--stop`` of it are sent, preceded by its first ``--resend`` bytes (a restarted device
sending its header again), with ``--inject`` inserting bytes (hex, or ``rN`` for N seeded random
bytes) before the given payload offsets. Bytes go out in pieces of random size in A..B (a read on
the other side can end anywhere); on UDP each datagram holds a random number of whole ``--frame``
-byte frames, and datagram number ``--tail-byte K`` gets one extra byte (a partial frame).
``--go`` waits for a line on stdin before sending; ``--hold`` keeps the link open that long after
the last byte. Prints ``ready`` once the link exists and ``sent N`` at the end.
"""

from __future__ import annotations

import random
import struct
import sys
import time

from _replay import link_parser, open_link  # noqa: E402  (the script's directory is on sys.path)


def wav_parts(data: bytes):
    """(offset of the data chunk's size field, offset and length of its samples)."""
    pos = 12
    while pos + 8 <= len(data):
        cid, size = data[pos:pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        if cid == b"data":
            return pos + 4, pos + 8, min(size, len(data) - pos - 8)
        pos += 8 + size + (size & 1)
    raise SystemExit("no data chunk")


def raw_header_len(data: bytes) -> int:
    pos = 0
    while data[pos:pos + 1] == b"%":
        nl = data.find(b"\n", pos)
        if nl < 0:
            break
        pos = nl + 1
    return pos


def payload(a) -> bytes:
    with open(a.file, "rb") as f:
        data = f.read()
    if a.as_ == "pcm":
        _, off, n = wav_parts(data)
        return data[off:off + n]
    if a.as_ == "wav":
        size_at, off, n = wav_parts(data)
        b = bytearray(data[:off + n])
        struct.pack_into("<I", b, 4, a.wav_size)
        struct.pack_into("<I", b, size_at, a.wav_size)
        return bytes(b)
    if a.as_ == "headerless":
        assert data.startswith(b"#!AER-DAT4.0\r\n")
        return data[14:]
    if a.strip_header:
        return data[raw_header_len(data):]
    return data


def main():
    ap = link_parser()
    ap.add_argument("--as", dest="as_", default="raw", choices=["raw", "pcm", "wav", "headerless"])
    ap.add_argument("--wav-size", type=lambda s: int(s, 0), default=0xFFFFFFFF)
    ap.add_argument("--strip-header", action="store_true")
    ap.add_argument("--resend", type=int, default=0)
    ap.add_argument("--pieces", default="1:4000")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--frame", type=int, default=2)
    ap.add_argument("--tail-byte", type=int, default=-1)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    data = payload(a)
    stop = len(data) if a.stop is None else a.stop
    inject = {}
    for spec in a.inject:
        at, _, what = spec.partition(":")
        blob = bytes(rng.getrandbits(8) for _ in range(int(what[1:]))) if what.startswith("r") else bytes.fromhex(what)
        inject[int(at)] = inject.get(int(at), b"") + blob
    cuts = sorted(k for k in inject if a.start <= k < stop)
    out = bytearray(data[:a.resend])
    pos = a.start
    for k in cuts:
        out += data[pos:k] + inject[k]
        pos = k
    out += data[pos:stop]
    lo, hi = (int(x) for x in a.pieces.split(":"))

    send = open_link(a.mode, a.target)
    if a.go:
        sys.stdin.readline()

    out = bytes(out)
    i = k = 0
    while i < len(out):
        if a.mode == "udp":
            n = a.frame * rng.randint(1, 64)
            dg = out[i:i + n] + (b"\x00" if k == a.tail_byte else b"")
            send(dg)
            time.sleep(0.0002)
        else:
            n = rng.randint(lo, hi)
            send(out[i:i + n])
            if k % 16 == 0:
                time.sleep(0.0002)
        i, k = i + n, k + 1
    print("sent", len(out), flush=True)
    time.sleep(a.hold)


if __name__ == "__main__":
    main()
