"""A session on the C runtime: the integer program run by ``edgebrain/cruntime/`` through ctypes.

    sess = model.session("int", backend="c")          # for_model(model): the blob cache, below
    from edgebrain import blob
    from edgebrain.csession import CSession
    sess = CSession(blob.pack(model.program("int")))   # or CSession(model.program("int"))
    y = sess.step(x)
    ys, rec = sess.run(xs, record=["lif1"])
    sess.saturations, sess.state, sess.act, sess.clock; sess.reset()

It computes what ``model.session("int")`` computes, bit for bit, and offers what the stream
pipeline uses of a session (``spiking_nodes``, ``output_buffer``, ``output_size``, ``snapshot``,
``restore``, ``program.input_shape``). Importing this module (and running a blob) imports NumPy
and ctypes only: no Numba, no LLVM. The shared library is compiled on first use
(:mod:`edgebrain.cbuild`).

**The blob cache.** Lowering a model (:mod:`edgebrain.program`) imports the kernel modules, and
they import Numba (about 0.3 s and 40 MiB before anything compiles). :func:`for_model` therefore
keeps each model's blob, with the node table a blob does not carry (:func:`node_table`), in
``${XDG_CACHE_HOME:-~/.cache}/edgebrain/blobs/``, keyed by a hash of the model file's bytes, this
edgebrain's version, the blob format and the sources that lower: a model run before with
``--backend c`` is loaded from there and never lowered, so Numba stays out of the process. A
damaged or unreadable entry is a miss, rewritten; an unwritable cache only costs the lowering.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

import numpy as np

from . import blob as B
from .arrays import time_major
from .cbuild import library
from .errors import EdgebrainError, FormatError, InputError, ModelError
from .kernels import layout as L
from .version import __version__

log = logging.getLogger("edgebrain.csession")

_lib = None


class _Error(ctypes.Structure):
    _fields_ = [("code", ctypes.c_int), ("offset", ctypes.c_uint32), ("row", ctypes.c_int32),
                ("column", ctypes.c_int32)]


class _Session(ctypes.Structure):
    """``eb_session`` as eb_runtime.h declares it (checked against ``eb_sizeof_session``): only
    :meth:`CSession.restore` writes through it, to put the clock back."""
    _fields_ = [("model", ctypes.c_void_p), ("state", ctypes.c_void_p), ("act", ctypes.c_void_p),
                ("sat", ctypes.c_void_p), ("acc", ctypes.c_void_p), ("clock", ctypes.c_int64)]


def load_library() -> ctypes.CDLL:
    """The runtime's shared library (built on first use), with its functions' signatures."""
    global _lib
    if _lib is None:
        lib = ctypes.CDLL(str(library()))
        vp, sz = ctypes.c_void_p, ctypes.c_size_t
        for name, res, args in (
                ("eb_model_load", ctypes.c_int, (vp, vp, sz, ctypes.POINTER(_Error))),
                ("eb_state_bytes", sz, (vp,)), ("eb_act_bytes", sz, (vp,)), ("eb_scratch_bytes", sz, (vp,)),
                ("eb_session_init", ctypes.c_int, (vp, vp, vp, sz, vp, sz, vp, sz)),
                ("eb_session_reset", None, (vp,)), ("eb_step", ctypes.c_int, (vp, vp, vp)),
                ("eb_run", ctypes.c_int, (vp, vp, ctypes.c_uint32, vp, ctypes.POINTER(ctypes.c_uint32))),
                ("eb_sizeof_model", sz, ()), ("eb_sizeof_session", sz, ()),
                ("eb_session_clock", ctypes.c_int64, (vp,))):
            f = getattr(lib, name)
            f.restype, f.argtypes = res, list(args)
        _lib = lib
    return _lib


def _aligned_copy(data: bytes) -> np.ndarray:
    """The blob's bytes in 8-byte aligned memory (the runtime reads its int64 rows in place)."""
    buf = np.zeros((len(data) + 7) // 8, np.uint64)
    buf.view(np.uint8)[:len(data)] = np.frombuffer(data, np.uint8)
    return buf


def c_load(data: bytes) -> tuple[int, int, int, int]:
    """Run only the C runtime's checks on ``data``: (status code, header byte offset, row, column)
    of :c:func:`eb_model_load` (code 0: accepted). For tests and diagnostics."""
    lib = load_library()
    buf = _aligned_copy(bytes(data))
    model = ctypes.create_string_buffer(lib.eb_sizeof_model())
    err = _Error()
    rc = lib.eb_model_load(model, buf.ctypes.data, len(data), ctypes.byref(err))
    return rc, err.offset, err.row, err.column


def describe(code: int, offset: int, row: int, column: int, prog=None) -> str:
    """One line for a status of :func:`c_load`: what is wrong and where (field or row and column)."""
    name, meaning = B.STATUS[code] if 0 <= code < len(B.STATUS) else (f"code {code}", "unknown status")
    where = ""
    if row >= 0:
        op = int(prog[row, L.OP]) if prog is not None and row < len(prog) else None
        cols = L.HEADER + L.FIELDS.get(op, ()) if op is not None else L.HEADER
        col = cols[column] if 0 <= column < len(cols) else f"column {column}"
        opname = next((k[3:].lower() for k, v in vars(L).items() if k.startswith("OP_") and v == op), "?")
        where = f" (row {row}, {opname}: {col})"
    elif code not in (0, B.STATUS_CODE["ERR_ARG"], B.STATUS_CODE["ERR_NONFINITE"]):
        field = next((k for k, (o, _, _) in B.HEADER_OFFSETS.items() if o == offset), None)
        where = f" (field '{field}', byte {offset})" if field else f" (byte {offset})"
    return f"C runtime: {meaning}{where} [EB_{name}]"


class CSession:
    """One stream (batch 1) through the C runtime; ``source`` is a blob (bytes) or an integer
    Program (packed with :func:`edgebrain.blob.pack`). ``nodes``: the :func:`node_table` of the
    program the blob was packed from (taken from a Program itself), for recording nodes and the
    stream's spike statistics; without it the session knows its outputs only."""

    batch = 1
    precision = "int"

    def __init__(self, source, file=None, nodes: dict | None = None):
        if isinstance(source, (bytes, bytearray, memoryview)):
            data = bytes(source)
        else:
            data, nodes = B.pack(source), (node_table(source) if nodes is None else nodes)
        self.blob = bl = B.unpack(data, file=file)  # the Python checks: clear messages naming the field
        #: the program as the blob carries it (``input_shape``, ``outputs``, ``prog``...)
        self.program = bl
        self._nodes = (nodes or {}).get("nodes", {})
        self._spiking = list((nodes or {}).get("spiking", ()))
        lib = self._lib = load_library()
        self._buf = _aligned_copy(data)
        self._model = ctypes.create_string_buffer(lib.eb_sizeof_model())
        err = _Error()
        rc = lib.eb_model_load(self._model, self._buf.ctypes.data, len(data), ctypes.byref(err))
        if rc:
            raise FormatError(describe(rc, err.offset, err.row, err.column, bl.prog), file=file)
        h = bl.header
        self.state = np.zeros(max(h["state_size"], 1), bl.state_dtype)
        self.act = np.zeros(max(h["act_size"], 1), np.int32)
        self._scratch = np.zeros(max(h["n_rows"] + h["acc_size"], 1), np.int64)
        self.saturations = self._scratch[:h["n_rows"]]
        self._sess = ctypes.create_string_buffer(lib.eb_sizeof_session())
        rc = lib.eb_session_init(self._sess, self._model, self.state.ctypes.data, self.state.nbytes,
                                 self.act.ctypes.data, self.act.nbytes, self._scratch.ctypes.data,
                                 self._scratch.nbytes)
        if rc:  # pragma: no cover - the buffers above are sized from the same header
            raise FormatError(describe(rc, 0, -1, -1), file=file)
        self.input_shape = bl.input_shape
        self._n_in, self._n_out = h["n_in"], h["n_out"]
        self._out = np.zeros(max(self._n_out, 1), np.float32)
        self._views = {n: self._out[c:c + k].reshape(s) for n, (c, k, s, _) in bl.outputs.items()}
        self._single = len(self._views) == 1
        self.step = self._fast_step()

    def _fast_step(self):
        """This session's ``step``, installed on the instance: a C-contiguous float32 input of the
        input shape (a stream's usual case) goes straight to ``eb_step`` with the other pointers
        bound; anything else (and a refused step, to say why) takes :meth:`CSession.step`."""
        slow, nd, f32, shape = CSession.step.__get__(self), np.ndarray, np.dtype(np.float32), self.input_shape
        self._xbuf = xb = np.zeros(shape, np.float32)  # x is copied here: cheaper than asking x for its address
        f, ret = self._lib.eb_step, self._ret(self._views)
        vs, vx, vo = (ctypes.c_void_p(a) for a in (ctypes.addressof(self._sess), xb.ctypes.data, self._out.ctypes.data))

        def step(x):
            if type(x) is nd and x.dtype == f32 and x.shape == shape:
                xb[...] = x
                if f(vs, vx, vo) == 0:
                    return ret
            return slow(x)

        step.__doc__ = CSession.step.__doc__
        return step

    @property
    def clock(self) -> int:
        """Steps taken since the last reset."""
        return int(self._lib.eb_session_clock(self._sess))

    def reset(self) -> None:
        """Back to the initial state: zero state, activations, saturation counters and clock."""
        self._lib.eb_session_reset(self._sess)

    def snapshot(self) -> dict:
        return {"state": self.state.copy(), "act": self.act.copy(), "clock": np.array([self.clock], np.int64)}

    def restore(self, snap: dict) -> None:
        """Back to a :meth:`snapshot` (state, activations and clock; the saturation counts stay)."""
        for k in ("state", "act"):
            if snap[k].shape != getattr(self, k).shape:
                raise InputError(f"snapshot field '{k}' has shape {snap[k].shape}; this session needs "
                                 f"{getattr(self, k).shape}")
        clock = int(np.asarray(snap["clock"]).reshape(-1)[0])
        if clock != self.clock:
            if ctypes.sizeof(_Session) != self._lib.eb_sizeof_session():  # pragma: no cover - a changed runtime
                raise EdgebrainError("cannot restore the C session's clock: eb_session's layout differs from "
                                     "csession._Session")
            _Session.from_buffer(self._sess).clock = clock
        self.state[...] = snap["state"]
        self.act[...] = snap["act"]

    @property
    def spiking_nodes(self) -> list[str]:
        """Names of the nodes whose output is spikes, in execution order (from the node table)."""
        return list(self._spiking)

    @property
    def output_size(self) -> int:
        """Values per step of all outputs together (in the graph's output order)."""
        return int(self._n_out)

    def _node(self, name: str) -> dict:
        node = self._nodes.get(name)
        if node is None:
            known = ", ".join(self._nodes) or "none: this session has no node table"
            raise InputError(f"no node named '{name}' (nodes: {known})")
        return node

    def output_buffer(self, name: str) -> np.ndarray:
        """Node ``name``'s output as stored, shape (1, n): a live view that every step rewrites (as
        :meth:`Session.output_buffer`: integers, so spike counts for spiking nodes)."""
        off, n, _ = self._node(name)["act"]
        return self.act[off:off + n].reshape(1, n)

    def _record_spec(self, names):
        """[(key, buffer, offset, n, shape, scale)] as :meth:`Session.run` records them."""
        cols = []
        for name in names:
            node = self._node(name)
            off, n, shape = node["act"]
            neuron = "v" in node
            key = "spikes" if neuron and node["spiking"] else "out"
            cols.append((f"{key}/{name}", self.act, off, n, shape, node["scale"]))
            for k in ("v", "i"):
                if k in node:
                    off, n, shape = node[k]
                    cols.append((f"{k}/{name}", self.state, off, n, shape, node[f"{k}_scale"]))
        return cols

    def _ret(self, views):
        return next(iter(views.values())) if self._single else views

    def step(self, x):
        """One timestep; returns the output (a dict for several), views overwritten by the next step."""
        x = np.asarray(x)
        if x.shape != self.input_shape:
            raise InputError(f"input has shape {x.shape}; expected {self.input_shape}")
        x = _as_f32(x)
        rc = self._lib.eb_step(self._sess, x.ctypes.data, self._out.ctypes.data)
        if rc == B.STATUS_CODE["ERR_NONFINITE"]:
            raise InputError(f"input at step {self.clock} contains NaN or infinite values (or values beyond "
                             "float32's range); expected finite numbers; the step was not taken")
        return self._ret(self._views)

    def run(self, xs, record=()):
        """Run a time-major sequence (T, *input); returns ``(outputs, records)`` as
        :meth:`Session.run` does (``spikes/NODE`` or ``out/NODE``, ``v/NODE``, ``i/NODE``, dequantized
        float64). Recording steps one at a time from Python (about a µs per step more)."""
        cols = self._record_spec(record) if record else ()
        xs = np.asarray(xs)
        time_major(xs, self.input_shape, batch=1, what="input sequence")
        xs = _as_f32(xs)
        if not np.isfinite(xs).all():
            bad = np.argwhere(~np.isfinite(xs))[0]
            raise InputError(f"input contains NaN or infinite values (first at index {tuple(int(i) for i in bad)}; "
                             "values beyond float32's range count as infinite); expected finite numbers")
        T = xs.shape[0]
        out = np.zeros((T, max(self._n_out, 1)), np.float32)
        if not cols:
            done = ctypes.c_uint32(0)
            self._lib.eb_run(self._sess, xs.ctypes.data, T, out.ctypes.data, ctypes.byref(done))
            records = {}
        else:
            records = self._run_recording(xs.reshape(T, -1), out, cols)
        outs = {n: out[:, c:c + k].reshape((T,) + tuple(s)) for n, (c, k, s, _) in self.blob.outputs.items()}
        return self._ret(outs), records

    def _run_recording(self, x2, out, cols) -> dict:
        T = x2.shape[0]
        width = sum(c[3] for c in cols)
        recbuf = np.zeros((T, max(width, 1)), np.float64)
        copies, col = [], 0
        for _, buf, off, n, _, _ in cols:
            copies.append((col, col + n, buf[off:off + n]))
            col += n
        step, sess = self._lib.eb_step, self._sess
        xp, xs_ = x2.ctypes.data, x2.strides[0]
        op, os_ = out.ctypes.data, out.strides[0]
        for t in range(T):
            step(sess, xp + t * xs_, op + t * os_)
            row = recbuf[t]
            for a, b, src in copies:
                row[a:b] = src
        records, col = {}, 0
        for key, _, _, n, shape, scale in cols:
            records[key] = recbuf[:, col:col + n].reshape((T,) + tuple(shape)) * scale
            col += n
        return records


# ---------------------------------------------------------------------- a model's blob, cached

#: bumped when what the cache stores changes
CACHE_FORMAT = 1


def node_table(program) -> dict:
    """What a :class:`CSession` knows of a Program's nodes beyond its blob (which names its outputs
    only), as plain data (JSON): ``nodes`` maps each node to its output's ``act`` region
    ``[offset, n, shape]``, its output ``scale`` and whether it ``spiking``, and a neuron's ``v``
    (and ``i``) state regions with ``v_scale`` (``i_scale``); ``spiking`` lists the spiking nodes
    in execution order (the session's ``spiking_nodes``)."""
    p = program
    nodes = {}
    for name, reg in p.out_regions.items():
        e = {"act": [int(reg.off), int(reg.n), [int(d) for d in reg.shape]],
             "scale": float(p.scales.get(name, 1.0)), "spiking": name in p.spiking}
        if name in p.state_regions:
            v, i = p.state_regions[name]
            s_v, s_i = p.state_scales[name]
            e["v"], e["v_scale"] = [int(v.off), int(v.n), [int(d) for d in v.shape]], float(s_v)
            if i is not None:
                e["i"], e["i_scale"] = [int(i.off), int(i.n), [int(d) for d in i.shape]], float(s_i or 1.0)
        nodes[name] = e
    return {"nodes": nodes, "spiking": list(dict.fromkeys(n for n in p.instr_node if n in p.spiking))}


def cache_dir() -> Path:
    """Where :func:`for_model` keeps blobs: ``${XDG_CACHE_HOME:-~/.cache}/edgebrain/blobs``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "edgebrain" / "blobs"


#: the modules (besides kernels/) that decide a model's blob: loading, the contract, lowering, packing
LOWERING_SOURCES = ("ebm.py", "graph.py", "ops.py", "qparams.py", "program.py", "blob.py", "model.py")


@functools.lru_cache(maxsize=None)
def lowering_digest() -> str:
    """SHA-256 (16 hex digits) of the sources a blob depends on (:data:`LOWERING_SOURCES`): a change
    to how models load or lower is a cache miss, also between releases' version numbers."""
    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for p in sorted([*(root / f for f in LOWERING_SOURCES), *(root / "kernels").glob("*.py")]):
        try:
            h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
        except OSError:
            continue
    return h.hexdigest()[:16]


def cache_key(source_digest: str) -> str:
    """The cache's name for the blob of the model file whose bytes hash to ``source_digest``."""
    text = f"{CACHE_FORMAT}\0{__version__}\0{B.FORMAT_VERSION}\0{lowering_digest()}\0{source_digest}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _read_cached(key: str):
    d = cache_dir()
    try:
        data = (d / f"{key}.ebb").read_bytes()
        table = json.loads((d / f"{key}.json").read_text())
        h = B.unpack(data).header  # a damaged blob (checksum, sizes) is a miss
        _check_table(table, h["act_size"], h["state_size"])
        return data, table
    except FileNotFoundError:
        return None
    except (OSError, ValueError, FormatError) as e:  # damaged or unreadable: lowered again and rewritten
        log.debug("blob cache entry %s unusable: %s", key, e)
        return None


def _check_table(table, act_size: int, state_size: int) -> None:
    """ValueError unless ``table`` is a node table whose regions lie inside the blob's buffers."""
    try:
        for node in table["nodes"].values():
            for k, size in (("act", act_size), ("v", state_size), ("i", state_size)):
                if k in node:
                    off, n, shape = node[k]
                    if not (0 <= off and 0 <= n and off + n <= size and int(np.prod(shape)) == n):
                        raise ValueError(f"region {node[k]} outside the buffer of {size}")
        if not set(table["spiking"]) <= set(table["nodes"]):
            raise ValueError("a spiking node without a region")
    except (KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"not a node table ({e})") from None


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _write_cached(key: str, data: bytes, table: dict) -> None:
    d = cache_dir()
    try:
        d.mkdir(parents=True, exist_ok=True)
        _write_atomic(d / f"{key}.json", json.dumps(table).encode())
        _write_atomic(d / f"{key}.ebb", data)  # last: both files present means a complete entry
    except OSError as e:  # an unwritable cache costs the lowering, every time, and nothing else
        log.debug("blob cache not written (%s): %s", d, e)


def model_blob(model, cache: bool = True) -> tuple[bytes, dict, bool]:
    """(blob, :func:`node_table`, whether it came from the cache) of ``model``'s integer program.
    With ``cache`` and a model loaded from a file (``model.source_digest``), the cache is read
    first and written after lowering. The key is the file's bytes as loaded: a model changed in
    memory after loading needs ``cache=False`` (or ``model.source_digest = None``)."""
    digest = getattr(model, "source_digest", None) if cache else None
    key = cache_key(digest) if digest else None
    if key:
        hit = _read_cached(key)
        if hit is not None:
            return hit[0], hit[1], True
    prog = model.program("int")
    data, table = B.pack(prog), node_table(prog)
    if key:
        _write_cached(key, data, table)
    return data, table, False


def for_model(model, precision: str | None = None, batch: int = 1, cache: bool = True) -> CSession:
    """A :class:`CSession` on ``model``'s integer program, its blob from the cache when the model
    file was lowered before (:func:`model_blob`). The C runtime runs integer programs of one
    stream: a float precision, a model without fixed-point parameters or a batch above 1 is a
    :class:`ModelError` / :class:`InputError` saying so."""
    where = getattr(model, "path", None)
    if precision not in (None, "int"):
        raise ModelError(f"the C backend runs integer programs only; precision '{precision}' needs the Numba "
                         "backend (--backend numba)", file=where)
    if not model.quant:
        raise ModelError("the C backend runs integer programs only, and this model has no fixed-point parameters: "
                         "quantize it (edgebrain convert --quantize int8) or use the Numba backend", file=where)
    if int(batch) != 1:
        raise InputError(f"batch {batch}: a C session runs one stream (batch 1)")
    data, table, _ = model_blob(model, cache)
    return CSession(data, file=where, nodes=table)


def _as_f32(x: np.ndarray) -> np.ndarray:
    if x.dtype.kind not in "fiub":
        raise InputError(f"input has dtype {x.dtype}; expected a numeric array (float32)")
    with np.errstate(over="ignore", invalid="ignore"):
        return np.ascontiguousarray(x, dtype=np.float32)
