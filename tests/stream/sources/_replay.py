"""Replay an sp-sw-har recording as an Edge Impulse data-forwarder device would print it (a test helper,
run as a separate process by tests/test_live.py).

    python tests/stream/sources/_replay.py MODE TARGET --file F [--start A] [--stop B] [--rate HZ] [--sep mixed]
                            [--inject KIND@LINE ...] [--go] [--hold SECONDS] [--cut] [--burst N]

MODE/TARGET: ``pty PATH`` (create a pseudo-terminal pair, keep the master, link PATH to the slave,
raw mode), ``tcp-serve PORT`` (accept one reader), ``tcp-connect PORT`` (connect to a listening
reader), ``udp PORT`` (send datagrams of 1-3 lines). Lines A..B of the file's samples are sent as
the six sensor fields exactly as printed in the file, separated by ``,`` or (``--sep mixed``)
by ``,``, tab or space in turn, paced at HZ lines per second (0: as fast as the link takes them,
in writes of a few lines). ``--inject`` inserts damage before sample LINE (0-based, relative
to the file): garbage (random bytes), partial (half a line), nonutf8, long (10 kB without a
newline), nan, fields (a line with 7 numbers), err (an ``ERR`` message). ``--go`` waits for a line
on stdin before sending; ``--cut`` writes half of the next line at the end (a link cut mid-line);
``--hold`` keeps the link open for that long after the last line (until killed); ``--labels``
appends each sample's label as a 7th field; ``--burst N``: after each write that completes another N
sample lines (more to come), print ``at K`` (sample lines sent so far) and wait for a line on stdin
(the test lets the reader catch up: datagrams are not lost, reads do not merge). The script
prints ``ready`` on stdout once the link exists.
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import sys
import time
import tty


def sample_lines(path, start, stop, sep, labels=False):
    with open(path, "rb") as f:
        rows = f.read().split(b"\n")[1:]
    rows = [r for r in rows if r.strip()][start:stop]
    seps = [b",", b"\t", b" "] if sep == "mixed" else [sep.encode()]
    cols = [0, 1, 2, 3, 4, 5] + ([7] if labels else [])
    return [seps[i % len(seps)].join(r.split(b",")[j] for j in cols) + b"\n" for i, r in enumerate(rows)]


def damage(kind, rng, example):
    if kind == "garbage":
        return bytes(rng.getrandbits(8) for _ in range(200)).replace(b"\n", b"x") + b"\n"
    if kind == "partial":
        return example[: len(example) // 2] + b"\n"
    if kind == "nonutf8":
        return b"\xff\xfe" + example[2:]
    if kind == "long":
        return b"1," * 5000 + b"\n"
    if kind == "nan":
        return b"nan," + example.split(b",", 1)[1]
    if kind == "fields":
        return b"1,2,3,4,5,6,7\n"
    if kind == "err":
        return b"ERR: sensor not ready\n"
    raise SystemExit(f"unknown damage {kind}")


def open_link(mode, target):
    """Open the writer's end of the link (pty: a pseudo-terminal whose slave ``target`` links to;
    tcp-serve / tcp-connect / udp on 127.0.0.1:``target``), print "ready" once a reader can attach,
    and return a function sending bytes over it."""
    if mode == "pty":
        master, slave = os.openpty()
        tty.setraw(slave)
        tmp = target + ".tmp"
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(os.ttyname(slave), tmp)
        os.replace(tmp, target)

        def send(b):
            while b:
                b = b[os.write(master, b):]
    elif mode == "tcp-serve":
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", int(target)))
        ls.listen(1)
        print("ready", flush=True)
        conn, _ = ls.accept()
        send = conn.sendall
    elif mode == "tcp-connect":
        deadline = time.time() + 20
        while True:
            try:
                conn = socket.create_connection(("127.0.0.1", int(target)), timeout=5)
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.05)
        send = conn.sendall
    else:
        us = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

        def send(b):
            us.sendto(b, ("127.0.0.1", int(target)))
    if mode != "tcp-serve":
        print("ready", flush=True)
    return send


def link_parser() -> argparse.ArgumentParser:
    """The arguments every replay writer takes: the link, the recording, which part of it, damage to
    inject, and when to start (``--go``: on a line from the test) and how long to hold the link open."""
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["pty", "tcp-serve", "tcp-connect", "udp"])
    ap.add_argument("target")
    ap.add_argument("--file", required=True)
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--stop", type=int, default=None)
    ap.add_argument("--inject", action="append", default=[])
    ap.add_argument("--go", action="store_true")
    ap.add_argument("--hold", type=float, default=0.0)
    return ap


def main():
    ap = link_parser()
    ap.add_argument("--rate", type=float, default=0.0)
    ap.add_argument("--sep", default=",")
    ap.add_argument("--cut", action="store_true")
    ap.add_argument("--labels", action="store_true", help="append the sample's label as a 7th field")
    ap.add_argument("--burst", type=int, default=0)
    a = ap.parse_args()
    rng = random.Random(1)
    lines = sample_lines(a.file, a.start, a.stop, a.sep, a.labels)
    extra = {}
    for spec in a.inject:
        kind, _, at = spec.partition("@")
        extra.setdefault(int(at) - a.start, []).append(damage(kind, rng, lines[0]))
    out, samples = [], []       # what is sent, and whether each is a sample line
    for i, ln in enumerate(lines):
        out.extend(extra.get(i, []))
        out.append(ln)
        samples += [False] * len(extra.get(i, [])) + [True]
    if a.cut:
        out.append(lines[-1][: len(lines[-1]) // 2])
        samples.append(False)

    send = open_link(a.mode, a.target)
    if a.go:
        sys.stdin.readline()

    t0 = time.perf_counter()
    i = k = done = 0
    mark = a.burst
    while i < len(out):
        n = (1 + k % 3) if a.mode == "udp" else 1 if a.rate > 0 else 8   # datagrams of 1-3 lines
        if a.rate > 0:
            d = t0 + i / a.rate - time.perf_counter()
            if d > 0:
                time.sleep(d)
        send(b"".join(out[i:i + n]))
        done += sum(samples[i:i + n])
        i, k = i + n, k + 1
        if a.rate <= 0:
            time.sleep(0.0005)
        if a.burst and done >= mark and i < len(out):
            print("at", done, flush=True)
            sys.stdin.readline()
            mark = done + a.burst
    print("sent", len(lines), flush=True)
    time.sleep(a.hold)


if __name__ == "__main__":
    main()
