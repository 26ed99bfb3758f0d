"""Property-based fuzzing of every parser entry point, seeded from the real recordings.

Each target takes bytes that started as a real file of its format (``../shared/datasets``, the
bundled models, or, for formats with no real sample there, a file written by the test helpers
from real events) and mutates them: truncation, bit flips, byte insertions and deletions,
overwrites with boundary values (0, 0xFF.., 0x7F.., 0x80..), and splices of two files. The
property: the parser either accepts the bytes or raises an :class:`~edgebrain.errors.EdgebrainError`
(a clear message), never any other exception, never hangs, never blows up memory.

The parses run in a forked worker process (forked once per target, after the parsers and their
Numba kernels are loaded, so each example costs a pipe round trip, not a start-up):

* memory: the worker runs under ``RLIMIT_AS`` = its size at fork + ``MEM_LIMIT_MIB``; each
  example's peak RSS (``VmHWM``, reset before every example through ``/proc/self/clear_refs``)
  may not exceed the worker's RSS at fork by more than ``RSS_LIMIT_MIB``, and its resident size
  after an example may not have grown by more than ``LEAK_LIMIT_MIB`` over the run (a leak,
  judged after a garbage collection and ``malloc_trim``); a
  ``MemoryError`` (or an error message that is one in disguise: "Unable to allocate") counts as
  a failure;
* time: each example gets ``TIME_LIMIT_S`` of wall time; past it the worker is killed and the
  example fails as a hang (a Numba kernel stuck in a loop cannot be interrupted from inside);
* a worker that dies (a segfault in a C library) fails the example with the signal.

Examples per target: ``EDGEBRAIN_FUZZ_EXAMPLES`` (default 2,000, the CI setting, about 4 minutes
for all targets on 2 cores). The long run before resolving an issue::

    EDGEBRAIN_FUZZ_EXAMPLES=100000 python -m pytest -q -p no:cacheprovider tests/hostile/test_fuzz_parsers.py

``HYPOTHESIS_PROFILE=explore`` draws fresh examples instead of the repeatable ones (tests/conftest.py).
"""

from __future__ import annotations

import gc
import json
import logging
import multiprocessing
import os
import resource
import struct
import tempfile
import traceback
import zlib
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from edgebrain.errors import EdgebrainError  # noqa: E402
from tests.conftest import find_datasets, read_bs2  # noqa: E402

EXAMPLES = int(os.environ.get("EDGEBRAIN_FUZZ_EXAMPLES", "2000"))
TIME_LIMIT_S = float(os.environ.get("EDGEBRAIN_FUZZ_TIME_LIMIT", "20"))
MEM_LIMIT_MIB = 1024  # address space the worker may add
RSS_LIMIT_MIB = 256   # resident memory one example may add at its peak
LEAK_LIMIT_MIB = 64   # resident memory the worker may keep after examples, over a whole run
SAVE_DIR = os.environ.get("EDGEBRAIN_FUZZ_SAVE")  # write each failing input there
# shrinking re-runs failing inputs many times (a hang costs TIME_LIMIT_S each): off unless asked
SHRINK = os.environ.get("EDGEBRAIN_FUZZ_SHRINK", "") not in ("", "0")
SEED_CAP = 24 << 10   # bytes of a seed file kept (prefixes: each parse stays in the millisecond range)

REPO = Path(__file__).resolve().parents[2]
ZOO = REPO / "edgebrain" / "zoo"
DATA, _WHY = find_datasets()


# ============================================================================ seeds


def _read(rel: str, cap: int = SEED_CAP) -> bytes | None:
    if DATA is None or not (DATA / rel).exists():
        return None
    with open(DATA / rel, "rb") as f:
        return f.read(cap)


def _helper_file(write) -> bytes | None:
    """Bytes of a file written by a test helper (tests/stream/sources/events/_helpers.py) from the
    real N-MNIST events of sample 60001."""
    if DATA is None or not (DATA / "events/nmnist-small/60001.bs2").exists():
        return None
    ev = read_bs2(DATA / "events/nmnist-small/60001.bs2")[:1500]
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "f"
        write(p, ev)
        return p.read_bytes()[:SEED_CAP]


def _seeds_aedat2():
    from tests.stream.sources.events import _helpers as Hh
    return [_helper_file(lambda p, ev: Hh.write_aedat_dvs128(p, _dvs128(ev), version="2.0")),
            _helper_file(lambda p, ev: Hh.write_aedat_dvs128(p, _dvs128(ev), version="1.0"))]


def _dvs128(ev):
    out = np.zeros(len(ev), [("x", "<i8"), ("y", "<i8"), ("t", "<i8"), ("p", "<i8")])
    for k in "xytp":
        out[k] = ev[k]
    return out


def _seeds_aedat3():
    from tests.stream.sources.events import _helpers as Hh
    return [_helper_file(lambda p, ev: Hh.write_aedat31(p, _dvs128(ev), t0=1_000_000, per_packet=400))]


def _seeds_evt21():
    from tests.stream.sources.events import _helpers as Hh
    return [_helper_file(lambda p, ev: Hh.write_evt21(p, _dvs128(ev))),
            _helper_file(lambda p, ev: Hh.write_evt21(p, _dvs128(ev), legacy=True))]


def _seeds_events_npy():
    if DATA is None:
        return []
    ev = read_bs2(DATA / "events/nmnist-small/60001.bs2")[:800]
    out = []
    for dt in ([("x", "<u2"), ("y", "<u2"), ("t", "<i8"), ("p", "u1")],
               [("t", "<f8"), ("x", "<i4"), ("y", "<i4"), ("p", "<f4")]):
        a = np.zeros(len(ev), dt)
        for k in "xytp":
            a[k] = ev[k]
        out.append(_npy_bytes(a))
    return out


def _npy_bytes(a) -> bytes:
    import io
    b = io.BytesIO()
    np.save(b, a)
    return b.getvalue()


def _seeds_arrays():
    rng = np.random.default_rng(0)
    out = [_npy_bytes(rng.normal(size=(50, 3)).astype(np.float32)),
           _npy_bytes(rng.integers(0, 5, size=(20, 2, 6), dtype=np.int16))]
    if DATA is not None and (DATA / "audio/lauscher/reference.npz").exists():
        out.append((DATA / "audio/lauscher/reference.npz").read_bytes())
    return out


def _seeds_lines():
    csv = _read("imu/sp-sw-har/s01/s01_03_sw.csv", 6000)
    if csv is None:
        return []
    lines = csv.split(b"\n")[1:-1]  # data-forwarder lines: numbers only, no header
    nums = [b",".join(ln.split(b",")[:6]) for ln in lines]
    return [b"\n".join(nums) + b"\n", b"\n".join(n.replace(b",", b"\t") for n in nums[:40]) + b"\n"]


def _ebm_seeds():
    return [(ZOO / n).read_bytes() for n in ("basicmotions.ebm", "har-l2mu.ebm")]


# ============================================================================ parse entry points (run in the worker)


def _drain(src, limit=1 << 26) -> int:
    n = 0
    try:
        for ch in src.chunks():
            n += len(ch)
            if n > limit:
                raise AssertionError(f"more than {limit} items from a {SEED_CAP}-byte-scale input")
    finally:
        src.close()
    return n


def _file_source(fmt):
    def parse(path):
        from edgebrain.stream.registry import open_source
        return _drain(open_source(str(path), format=fmt))
    return parse


def _detected_source(path):
    from edgebrain.stream.registry import open_source
    return _drain(open_source(str(path)))


def _load_array(path):
    from edgebrain.arrays import load_array
    return load_array(str(path), "input").size


def _load_model(path):
    from edgebrain.card import StreamConfig
    from edgebrain.model import Model

    m = Model.load(str(path))
    m.summary()
    StreamConfig.from_meta(m.graph.meta)
    m.program("int" if m.quant else "float")
    return 1


class _MemLink:
    """An in-memory transport carrying the fuzzed bytes in reads of the drawn sizes, then closing
    (the network stands in for nothing here: the parsers under test are fed exactly these bytes)."""

    kind = "fuzz"
    datagram = False
    reconnectable = False

    def __init__(self, parts):
        self.parts = list(parts)

    def open(self, wait):
        pass

    def read(self, timeout):
        from edgebrain.stream.links import Dropped
        if not self.parts:
            raise Dropped("end of the fuzzed bytes")
        return self.parts.pop(0)

    def close(self):
        pass

    def shutdown(self):
        pass


def _split_reads(data: bytes, seed: int) -> list:
    rng = np.random.default_rng(seed)
    out, i = [], 0
    while i < len(data):
        n = int(rng.integers(1, 4096))
        out.append(data[i:i + n])
        i += n
    return out


LINK_OPTS = dict(timeout=0.2, reconnect=0, connect_timeout=1.0, poll=0.005)


def _live_lines(path):
    from edgebrain.stream.sources.livelines import LineSource
    data = Path(path).read_bytes()
    return _drain(LineSource(_MemLink(_split_reads(data, len(data))), "tcp://fuzz:1", rate=100,
                             **LINK_OPTS))


def _live_bin(fmt, **opts):
    def parse(path):
        from edgebrain.stream.sources.live import open_binary
        data = Path(path).read_bytes()
        return _drain(open_binary(_MemLink(_split_reads(data, len(data))), "tcp://fuzz:1", fmt,
                                  dict(LINK_OPTS, **opts)))
    return parse


# ============================================================================ targets

# name: (extension of the temporary file, seeds() -> list of bytes, parse(path), owner if not H5)
TARGETS = {
    "aedat4": (".aedat4", lambda: [_read("events/formats/sample.aedat4"), _read("events/formats/davis346.aedat4")],
               _file_source("aedat4")),
    "aedat2": (".aedat", _seeds_aedat2, _file_source("aedat2")),
    "aedat3": (".aedat", _seeds_aedat3, _file_source("aedat3")),
    "evt2": (".raw", lambda: [_read("events/formats/evt2.raw")], _file_source("evt2")),
    "evt21": (".raw", _seeds_evt21, _file_source("evt21")),
    "evt3": (".raw", lambda: [_read("events/formats/evt3_sample.raw")], _file_source("evt3")),
    "dat": (".dat", lambda: [_read("events/formats/sample_ncars.dat")], _file_source("dat")),
    "nmnist": (".bin", lambda: [_read("events/formats/sample_nmnist.bin"), _read("events/nmnist-small/60001.bs2")],
               _file_source("nmnist")),
    "events_npy": (".npy", _seeds_events_npy, _file_source("npy")),
    "detect": (".bin", lambda: [_read("events/formats/sample.aedat4", 4096), _read("events/formats/evt3_sample.raw", 4096),
                                _read("audio/fsdd/recordings/0_george_0.wav", 4096),
                                _read("imu/sp-sw-har/s01/s01_03_sw.csv", 4096)], _detected_source),
    "wav": (".wav", lambda: [_read("audio/fsdd/recordings/0_george_0.wav"), _read("audio/fsdd/recordings/6_nicolas_7.wav")],
            _file_source("wav")),
    "flac": (".flac", lambda: [_read("audio/lauscher/spoken_digit.flac", 1 << 20)], _file_source("flac")),
    "csv": (".csv", lambda: [_read("imu/sp-sw-har/s01/s01_03_sw.csv", 8000)], _file_source("csv")),
    "uea_ts": (".ts", lambda: [_read("imu/basicmotions/BasicMotions_TEST.ts", 12000)], _file_source("uea_ts")),
    "wisdm": (".txt", lambda: [_wisdm_seed()], _file_source("wisdm")),
    "array_npy": (".npy", _seeds_arrays, _load_array),
    "ebm": (".ebm", _ebm_seeds, _load_model),
    "ebm_json": (".ebm", _ebm_seeds, _load_model),
    "nir": (".nir", lambda: [(REPO / "edgebrain" / "examples" / "motion_snntorch.nir").read_bytes()], _load_model),
    "live_lines": (".txt", _seeds_lines, _live_lines),
    "live_pcm": (".bin", lambda: [(_read("audio/fsdd/recordings/0_george_0.wav") or b"")[44:]],
                 _live_bin("pcm", rate=8000)),
    "live_wav": (".bin", lambda: [_read("audio/fsdd/recordings/0_george_0.wav")], _live_bin("wav")),
    "live_evt3": (".bin", lambda: [_read("events/formats/evt3_sample.raw")],
                  _live_bin("evt3", width=1280, height=720)),
    "live_evt2": (".bin", lambda: [_read("events/formats/evt2.raw")], _live_bin("evt2", width=640, height=480)),
    "live_aedat4": (".bin", lambda: [_read("events/formats/sample.aedat4")], _live_bin("aedat4")),
}

#: known crashes in parsers owned by another engineer this session: target -> reason (xfail, strict)
KNOWN = {
}


def _wisdm_seed() -> bytes:
    """WISDM v1.1 raw lines (user,activity,timestamp,x,y,z;) made from the real sp-sw-har accelerometer."""
    csv = _read("imu/sp-sw-har/s01/s01_03_sw.csv", 8000)
    if csv is None:
        return None
    out = []
    for ln in csv.split(b"\n")[1:-1]:
        c = ln.split(b",")
        if len(c) >= 7:
            out.append(b"33,Walking,%s,%s,%s,%s;" % (c[6], c[0], c[1], c[2]))
    return b"\n".join(out) + b"\n"


# ============================================================================ mutations


def _ebm_fix_crc(blob: bytes) -> bytes:
    """Recompute the header CRC of a mutated .ebm (when its length field still fits the file), so
    that mutations reach the JSON and buffer checks behind the CRC."""
    if len(blob) < 20 or blob[:8] != b"EDGEBRN\x00":
        return blob
    (hlen,) = struct.unpack_from("<I", blob, 12)
    if 16 + hlen + 4 > len(blob):
        return blob
    crc = zlib.crc32(blob[16:16 + hlen])
    return blob[:16 + hlen] + struct.pack("<I", crc) + blob[16 + hlen + 4:]


HOSTILE_VALUES = [None, True, -1, 0, -5, 5, 63, 64, 200, -7, 2 ** 31, -(2 ** 31), 2 ** 63, 1e300, -1e300, 1e-300,
                  float("nan"), "fast", "", "x" * 300, [], {}, [1, 2], {"a": 1}, [[]], 0.5]


def _json_paths(v, prefix=()):
    yield prefix
    if isinstance(v, dict):
        for k, x in v.items():
            yield from _json_paths(x, prefix + (k,))
    elif isinstance(v, list):
        for i, x in enumerate(v[:8]):
            yield from _json_paths(x, prefix + (i,))


def _ebm_json_mutate(blob: bytes, picks: list) -> bytes:
    """Replace or delete values anywhere in a .ebm's JSON header (meta, card, stream settings,
    nodes, quantization, buffer entries), then rewrite the header length, CRC and padding: a file
    with a valid CRC whose contents are hostile."""
    (hlen,) = struct.unpack_from("<I", blob, 12)
    header = json.loads(blob[16:16 + hlen])
    data0 = 16 + hlen + 4
    data = blob[data0 + (-data0) % 64:]
    paths = [p for p in _json_paths(header) if p]
    for i, val, delete in picks:
        p = paths[i % len(paths)]
        parent = header
        try:
            for k in p[:-1]:
                parent = parent[k]
            if delete and isinstance(parent, dict):
                del parent[p[-1]]
            else:
                parent[p[-1]] = HOSTILE_VALUES[val % len(HOSTILE_VALUES)]
        except (KeyError, IndexError, TypeError):
            continue
    hj = json.dumps(header).encode()
    head = b"EDGEBRN\x00" + blob[8:12] + struct.pack("<I", len(hj)) + hj + struct.pack("<I", zlib.crc32(hj))
    return head + b"\x00" * ((-len(head)) % 64) + data


def mutated(seeds: list, name: str):
    return mutated_raw(seeds, name).map(Blob)


BOUNDARY = [b"\x00", b"\xff", b"\x7f", b"\x80", b"\x00\x00\x00\x00", b"\xff\xff\xff\xff", b"\xff\xff\xff\x7f",
            b"\x00\x00\x00\x80", b"\xff" * 8, b"\x00" * 8, b"\n", b",", b"%", b"nan", b"-1", b"1e308"]


class Blob(bytes):
    """Bytes with a short repr (hypothesis prints failing examples; a 60 KB literal helps nobody:
    set EDGEBRAIN_FUZZ_SAVE=DIR to get the file)."""

    def __repr__(self):
        import hashlib
        return (f"<{len(self)} bytes, sha256 {hashlib.sha256(self).hexdigest()[:12]}, "
                f"starting {bytes(self[:48])!r}>")


@st.composite
def mutated_raw(draw, seeds: list, name: str):
    data = bytearray(draw(st.sampled_from(seeds)))
    if name == "ebm_json":
        n = draw(st.integers(1, 4))
        picks = [(draw(st.integers(0, 10 ** 6)), draw(st.integers(0, 10 ** 6)), draw(st.booleans())) for _ in range(n)]
        return _ebm_json_mutate(bytes(data), picks)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["truncate", "flip", "flip", "insert", "delete", "boundary", "boundary", "splice"]))
        n = len(data)
        pos = draw(st.integers(0, max(0, n - 1)))
        if op == "truncate":
            del data[pos:]
        elif op == "flip" and n:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=64))
        elif op == "delete":
            del data[pos:pos + draw(st.integers(1, 256))]
        elif op == "boundary" and n:
            v = draw(st.sampled_from(BOUNDARY))
            data[pos:pos + len(v)] = v
        elif op == "splice":
            other = draw(st.sampled_from(seeds))
            cut = draw(st.integers(0, len(other)))
            data = data[:pos] + bytearray(other[cut:])
    out = bytes(data)
    if name == "ebm" and draw(st.booleans()):
        out = _ebm_fix_crc(out)
    return out


# ============================================================================ the worker


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for ln in f:
            if ln.startswith(field + ":"):
                return int(ln.split()[1])
    return 0


def _malloc_trim() -> bool:
    """Hand the C heap's free memory back to the system (glibc); False where that is not possible."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
        return True
    except (OSError, AttributeError):
        return False


def _reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux 4.0+); False where the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class _FormatAndDrop(logging.Handler):
    """Formats every log record (the parsers' repair notices are part of what is fuzzed) and
    keeps none: pytest's capture handler, inherited through the fork, keeps every record, which
    over 100,000 examples looks like a leak of the parser."""

    def emit(self, record):
        self.format(record)


def _worker(conn, name: str, tmpdir: str):
    ext, _, parse = TARGETS[name][0], TARGETS[name][1], TARGETS[name][2]
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(_FormatAndDrop())
    lim = _status_kib("VmSize") * 1024 + (MEM_LIMIT_MIB << 20)
    resource.setrlimit(resource.RLIMIT_AS, (lim, resource.getrlimit(resource.RLIMIT_AS)[1]))
    rss0 = _status_kib("VmRSS")
    per_example = _reset_peak_rss()  # else the peak is over the whole run (stricter)
    path = os.path.join(tmpdir, "input" + ext)
    while True:
        try:
            data = conn.recv_bytes()
        except EOFError:
            return
        with open(path, "wb") as f:
            f.write(data)
        if per_example:
            _reset_peak_rss()
        try:
            parse(path)
            out = ("ok", "")
        except EdgebrainError as e:
            msg = str(e)
            memory = "unable to allocate" in msg.lower() or "memoryerror" in msg.lower()
            out = ("memory", msg) if memory else ("error", msg)
        except MemoryError:
            out = ("memory", traceback.format_exc())
        except BaseException as e:  # noqa: BLE001 - the property: nothing but EdgebrainError
            out = ("crash", f"{type(e).__name__}: {e}\n{traceback.format_exc()}")
        peak = (_status_kib("VmHWM") - rss0) / 1024
        kept = (_status_kib("VmRSS") - rss0) / 1024
        if kept > LEAK_LIMIT_MIB:
            # garbage waiting for the cycle collector and memory the C heap keeps for reuse are
            # no leak (the parsers leave no cycles: tests/stream/sources/test_freed_on_close.py)
            gc.collect()
            _malloc_trim()
            kept = (_status_kib("VmRSS") - rss0) / 1024
        if out[0] in ("ok", "error") and peak > RSS_LIMIT_MIB:
            out = ("memory", f"peak RSS of this example {peak:.0f} MiB above the worker's start "
                             f"(allowed {RSS_LIMIT_MIB})")
        elif out[0] in ("ok", "error") and kept > LEAK_LIMIT_MIB:
            out = ("leak", f"resident size grew by {kept:.0f} MiB over the run (allowed {LEAK_LIMIT_MIB})")
        conn.send(out)


class Worker:
    """A forked process that parses examples of one target; restarted after a crash or hang."""

    def __init__(self, name: str, tmpdir: str):
        self.name, self.tmpdir, self.p = name, tmpdir, None

    def start(self):
        ctx = multiprocessing.get_context("fork")
        self.conn, child = ctx.Pipe()
        self.p = ctx.Process(target=_worker, args=(child, self.name, self.tmpdir), daemon=True)
        self.p.start()
        child.close()

    def parse(self, data: bytes) -> tuple[str, str]:
        if self.p is None or not self.p.is_alive():
            self.start()
        self.conn.send_bytes(data)
        if not self.conn.poll(TIME_LIMIT_S):
            self.stop()
            return ("hang", f"no result within {TIME_LIMIT_S:g} s")
        try:
            return self.conn.recv()
        except EOFError:
            self.p.join(5)
            code = self.p.exitcode
            self.p = None
            return ("died", f"the worker died (exit code {code}; negative: killed by that signal)")

    def stop(self):
        if self.p is not None:
            self.p.kill()
            self.p.join(5)
            self.p = None


def _seeds_of(name: str) -> list:
    seeds = [s for s in TARGETS[name][1]() if s]
    if not seeds:
        pytest.skip(f"no seed files for {name} ({_WHY or 'recordings absent'})")
    return seeds


def _start_numba():
    """Numba's JIT starts (LLVM, about 65 MiB, once per process) at the first call of any compiled
    function. A seed cut short (``detect`` keeps 4 KiB) may never reach one, and the worker would
    then count that start-up as a leak: start it here, before the fork."""
    from edgebrain.kernels.elementwise import copy_into

    a = np.zeros(2, np.float32)
    copy_into(a, a.copy())


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=KNOWN[n]))
                                  if n in KNOWN else n for n in TARGETS])
def test_parser_accepts_or_raises_a_clear_error(name, tmp_path):
    seeds = _seeds_of(name)
    parse = TARGETS[name][2]
    # the unmutated seeds parse here, in this process (not vacuous; loads the kernels before the fork)
    for i, s in enumerate(seeds):
        p = tmp_path / f"seed{i}{TARGETS[name][0]}"
        p.write_bytes(s)
        try:
            parse(p)
        except EdgebrainError as e:
            # prefixes of a file may end in the middle of a record that the reader must refuse
            if not ("trunc" in str(e).lower() or "end" in str(e).lower()):
                pytest.fail(f"seed {i} of {name} fails: {e}")
    _start_numba()
    worker = Worker(name, str(tmp_path))
    stats = {"ok": 0, "error": 0}
    try:
        @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck),
                  phases=[Phase.explicit, Phase.generate] + ([Phase.shrink] if SHRINK else []))
        @given(mutated(seeds, name))
        def prop(data):
            kind, msg = worker.parse(data)
            if kind in stats:
                stats[kind] += 1
            elif SAVE_DIR:
                import hashlib
                os.makedirs(SAVE_DIR, exist_ok=True)
                h = hashlib.sha256(data).hexdigest()[:12]
                Path(SAVE_DIR, f"{name}-{kind}-{h}{TARGETS[name][0]}").write_bytes(data)
            assert kind in ("ok", "error"), f"{name}: {kind} on a {len(data)}-byte input: {msg[-4000:]}"

        prop()
    finally:
        worker.stop()
    # the mutations are not all rejected at the first byte, nor all accepted
    assert stats["ok"] > 0 or name in ("ebm",), stats


def test_npy_header_cut_inside_a_token_is_a_clear_error(tmp_path):
    """Found by the fuzzer: numpy's .npy header parser raises tokenize.TokenError (neither
    ValueError nor SyntaxError) on a header dict that never closes; load_array let it through as
    an internal error."""
    from numpy.lib import format as npf
    from tokenize import TokenError

    from edgebrain.arrays import load_array
    from edgebrain.errors import InputError

    hdr = b"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), |"
    hdr += b" " * (118 - len(hdr)) + b"\n"
    blob = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hdr)) + hdr + bytes(24)
    import io
    with pytest.raises(TokenError):  # what numpy does: the reason this test exists
        f = io.BytesIO(blob)
        npf.read_magic(f)
        npf.read_array_header_1_0(f)
    p = tmp_path / "x.npy"
    p.write_bytes(blob)
    with pytest.raises(InputError, match="x.npy.*header at offset 0 is malformed"):
        load_array(str(p), "input")
