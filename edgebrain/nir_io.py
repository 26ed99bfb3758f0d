"""NIR import and export.

Import reads the HDF5 file itself (with h5py), so every missing or malformed field is
reported by node and field name; nested graphs are flattened (``outer.inner`` names) and
continuous-time neurons are discretised with an explicit timestep and dialect
(:mod:`edgebrain.dialects`). Export writes a NIR file with the ``nir`` package.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np

from . import dialects, nir_reset, ops
from .errors import FormatError, ModelError
from .graph import Graph
from .infile import check_regular

# fields every NIR node type must / may have
REQUIRED = {
    "Input": ("shape",), "Output": ("shape",),
    "Affine": ("weight", "bias"), "Linear": ("weight",), "Scale": ("scale",),
    "Conv1d": ("weight", "stride", "padding", "dilation", "groups", "bias"),
    "Conv2d": ("weight", "stride", "padding", "dilation", "groups", "bias"),
    "SumPool2d": ("kernel_size", "stride", "padding"), "AvgPool2d": ("kernel_size", "stride", "padding"),
    "Flatten": ("start_dim", "end_dim"), "Delay": ("delay",), "Threshold": ("threshold",),
    "LI": ("tau", "r", "v_leak"), "LIF": ("tau", "r", "v_leak", "v_threshold"),
    "CubaLI": ("tau_syn", "tau_mem", "r", "v_leak"), "CubaLIF": ("tau_syn", "tau_mem", "r", "v_leak", "v_threshold"),
    "I": ("r",), "IF": ("r", "v_threshold"), "NIRGraph": ("nodes", "edges"),
}
NEURONS = ("LI", "LIF", "CubaLI", "CubaLIF", "I", "IF")
# fields a neuron node may have besides the required ones (anything else is reported and ignored)
OPTIONAL = {"LIF": ("v_reset",), "CubaLI": ("w_in",), "CubaLIF": ("v_reset", "w_in"), "IF": ("v_reset",)}


@dataclass
class ImportReport:
    """What the importer concluded, for ``inspect`` and the CLI."""

    dialect: str
    dt: float | None
    reset: str
    detected: str
    reason: str
    dt_source: str
    warnings: list[str] = field(default_factory=list)
    nir_version: str = ""

    def as_dict(self) -> dict:
        return dict(dialect=self.dialect, dt=self.dt, reset=self.reset, detected=self.detected, reason=self.reason,
                    dt_source=self.dt_source, warnings=list(self.warnings), nir_version=self.nir_version)


# ---------------------------------------------------------------------- reading HDF5
# Reading is in two passes. The first walks the file and looks only at what each dataset
# declares (shape, type, the bytes it occupies in the file: h5py tells all three without
# reading it) and at the node it belongs to; only when every declaration fits is anything
# read. A 57 KB file declaring a never-written, compressed (62500, 4000) weight is refused
# before 1 GB of zeros is made.

#: all datasets of a NIR file together, in bytes as declared (1 GiB: far beyond an edge model)
MAX_NIR_BYTES = 1 << 30
#: a dataset larger than SMALL_DATASET must be stored in at least 1/MAX_RATIO of its declared
#: bytes: deflate cannot compress by more than about 1032:1, so a larger ratio is a dataset
#: never written (read back as fill values) or a crafted one
MAX_RATIO = 1100
SMALL_DATASET = 1 << 20
#: variable-length strings (node types, edges): how many, and their total length when read
MAX_STRINGS = 1 << 20
MAX_STRING = 1 << 20
MAX_STRING_BYTES = 64 << 20


#: groups nested deeper than this are refused (a NIR graph nests a few levels; a damaged file can
#: link a group into itself, which would be walked until memory runs out)
MAX_GROUP_DEPTH = 64


def _h5_tree(group, path: str, budget: list, depth: int = 0, seen: set | None = None) -> dict:
    """The group's members without reading any dataset: subgroups as dicts, datasets as
    h5py Dataset objects, each checked (type, declared size, stored size) on the way. Each group
    is walked once: one reached again (linked into itself, or from two places) is refused."""
    import h5py

    seen = set() if seen is None else seen
    if group.id in seen:
        raise FormatError(f"group {path[:200]} is a group met before (linked into itself or from two places); "
                          "expected a NIR graph, a tree of groups")
    seen.add(group.id)
    if depth > MAX_GROUP_DEPTH:
        raise FormatError(f"groups nested more than {MAX_GROUP_DEPTH} levels deep under {path[:200]}...; expected "
                          "a NIR graph (a group that contains itself?)")
    out = {}
    try:
        items = list(group.items())
    except Exception as e:  # noqa: BLE001 - h5py raises many kinds on damaged data
        raise FormatError(f"group {path} cannot be read ({e})") from None
    for k, v in items:
        if isinstance(k, bytes):  # h5py gives names that are not UTF-8 as bytes: NIR names are text
            raise FormatError(f"group {path} has a member named {k!r}, which is not UTF-8 text; expected "
                              "node and field names as text")
        if isinstance(v, h5py.Group):
            out[k] = _h5_tree(v, f"{path}/{k}", budget, depth + 1, seen)
        elif isinstance(v, h5py.Dataset):
            _check_dataset(v, f"{path}/{k}", budget)
            out[k] = v
        # links to nowhere, named types: not part of NIR's layout, ignored
    return out


def _check_dataset(ds, path: str, budget: list) -> None:
    import h5py

    try:
        shape, dt = ds.shape, ds.dtype
        stored = ds.id.get_storage_size()
    except Exception as e:  # noqa: BLE001
        raise FormatError(f"dataset {path} cannot be read ({e})") from None
    if shape is None:
        raise FormatError(f"dataset {path} has no dataspace (an empty placeholder); expected numbers or text")
    is_str = h5py.check_string_dtype(dt) is not None
    if not is_str and (dt.kind not in "biufc" or dt.names is not None or dt.subdtype is not None):
        raise FormatError(f"dataset {path} holds {dt} values; expected numbers or text")
    n = math.prod(shape)
    if dt.kind == "O" and n > MAX_STRINGS:
        raise FormatError(f"dataset {path} declares {n} strings; expected at most {MAX_STRINGS}")
    nbytes = n * dt.itemsize
    budget[0] += nbytes
    if budget[0] > MAX_NIR_BYTES:
        raise FormatError(f"dataset {path} declares shape {shape} of {dt} ({nbytes} bytes), which brings the "
                          f"file's datasets to {budget[0]} bytes; expected at most {MAX_NIR_BYTES} in all")
    if nbytes > SMALL_DATASET and nbytes > MAX_RATIO * stored:
        raise FormatError(f"dataset {path} declares shape {shape} of {dt} ({nbytes} bytes) but the file stores "
                          f"{stored} bytes for it; expected a dataset that was written (at most {MAX_RATIO}:1 "
                          "compression)")


def _check_vlen(ds, path: str) -> None:
    """Check a variable-length string dataset from its bytes in the file, before HDF5 reads it:
    each element is (length, global heap address, object index), and HDF5 allocates ``length``
    bytes per element and walks the heap collection (a free-space record of size 0 makes that
    walk loop forever). Contiguous and chunked layouts (uncompressed or deflate) are read here;
    a chunked one with another filter is refused, other layouts are left to h5py."""
    try:
        addr, size_len = ds.file.id.get_create_plist().get_sizes()
        n = math.prod(ds.shape)
        with open(ds.file.filename, "rb") as f:
            end_of_file = f.seek(0, 2)
            raw = _vlen_records(ds, path, f, n * (8 + addr))
            if raw is None:
                return
            refs = [(int.from_bytes(raw[i:i + 4], "little"), int.from_bytes(raw[i + 4:i + 4 + addr], "little"),
                     int.from_bytes(raw[i + 4 + addr:i + 8 + addr], "little")) for i in range(0, len(raw), 8 + addr)]
            lengths = [r[0] for r in refs]
            if lengths and (max(lengths) > MAX_STRING or sum(lengths) > MAX_STRING_BYTES):
                raise FormatError(f"dataset {path} declares a string of {max(lengths)} bytes ({sum(lengths)} in "
                                  f"all); expected node names and types (at most {MAX_STRING} bytes each, "
                                  f"{MAX_STRING_BYTES} in all)")
            for heap in {r[1] for r in refs if r[0]}:
                objects = _heap_objects(f, heap, size_len, end_of_file)
                if objects is None:
                    raise FormatError(f"dataset {path}: its text is in a damaged heap at offset {heap} (expected "
                                      "an HDF5 global heap collection)")
                for length, h, index in refs:
                    if h == heap and length and objects.get(index, -1) < length:
                        raise FormatError(f"dataset {path}: heap object {index} at offset {heap} is missing or "
                                          f"shorter than the {length} bytes declared")
    except FormatError:
        raise
    except Exception:  # noqa: BLE001 - an unusual layout: leave it to h5py
        return


def _vlen_records(ds, path: str, f, need: int) -> bytes | None:
    """The raw element records of a variable-length dataset (``need`` bytes), or None when its
    layout is neither contiguous nor chunked. Chunks are read raw (``read_direct_chunk``) and
    inflated here with a size cap, never by HDF5."""
    import zlib

    off = ds.id.get_offset()
    if off is not None:  # contiguous
        f.seek(off)
        raw = f.read(need)
        return raw if len(raw) == need else None
    if ds.chunks is None:
        return None
    filters = ds.id.get_create_plist().get_nfilters()
    kinds = [ds.id.get_create_plist().get_filter(i)[0] for i in range(filters)]
    if any(k != 1 for k in kinds):  # 1: deflate
        raise FormatError(f"dataset {path} stores text in chunks with HDF5 filters {kinds}; expected "
                          "uncompressed or deflate-compressed text (as NIR writers store it)")
    n = math.prod(ds.shape)
    if n == 0:
        return b""
    per_chunk = math.prod(ds.chunks) * (need // n)
    parts = []
    for i in range(ds.id.get_num_chunks()):  # every record of every chunk (padding is checked too)
        mask, data = ds.id.read_direct_chunk(ds.id.get_chunk_info(i).chunk_offset)
        if kinds and not mask & 1:
            d = zlib.decompressobj()
            data = d.decompress(data, per_chunk + 1)
            if len(data) > per_chunk or d.unconsumed_tail:
                raise FormatError(f"dataset {path}: chunk {i} inflates past its {per_chunk} bytes")
        parts.append(data[:per_chunk - per_chunk % (need // n)])
    return b"".join(parts)


def _heap_objects(f, heap: int, size_len: int, end_of_file: int) -> dict | None:
    """index -> size of the objects in the global heap collection at ``heap``, or None if the
    collection is malformed (bad signature, size past the file, objects past its end, a
    free-space record that does not fill the rest)."""
    f.seek(heap)
    head = f.read(8 + size_len)
    if len(head) != 8 + size_len or head[:5] != b"GCOL\x01":
        return None
    total = int.from_bytes(head[8:], "little")
    if total < 8 + size_len or heap + total > end_of_file or total > MAX_STRING_BYTES + (1 << 20):
        return None
    body = head + f.read(total - len(head))
    pos, out = 8 + size_len, {}
    while pos + 8 + size_len <= total:
        index = int.from_bytes(body[pos:pos + 2], "little")
        size = int.from_bytes(body[pos + 8:pos + 8 + size_len], "little")
        if index == 0:  # free space: from this record to the end of the collection
            return out if size == total - pos else None
        nxt = pos + 8 + size_len + (size + 7) // 8 * 8
        if nxt > total:
            return None
        out[index] = size
        pos = nxt
    return out


def _read_dataset(ds, path: str):
    try:
        if ds.dtype.kind == "O":  # variable-length strings: what they declare first
            _check_vlen(ds, path)
            if ds.ndim == 0:
                return ds[()]
            flat, total, step = [], 0, 256
            for i in range(0, ds.shape[0], step):
                part = ds[i:i + step]
                total += sum(len(x) for x in np.asarray(part).reshape(-1) if isinstance(x, (bytes, str)))
                if total > MAX_STRING_BYTES:
                    raise FormatError(f"dataset {path} holds more than {MAX_STRING_BYTES} bytes of text; "
                                      "expected node names and types")
                flat.append(part)
            return np.concatenate(flat) if flat else ds[()]
        return ds[()]
    except FormatError:
        raise
    except Exception as e:  # noqa: BLE001 - h5py raises many kinds on damaged data
        raise FormatError(f"dataset {path} cannot be read ({e})") from None


def _h5_read(tree: dict, path: str) -> dict:
    """The tree of :func:`_h5_tree` with every dataset read."""
    return {k: _h5_read(v, f"{path}/{k}") if isinstance(v, dict) else _read_dataset(v, f"{path}/{k}")
            for k, v in tree.items()}


def _declared_node(kind: str, nd: dict, where: str) -> None:
    """Check the declared shapes of one node's datasets against each other, before reading them."""
    # numeric datasets only: text where numbers belong is reported when the field is parsed
    sh = {f: tuple(v.shape) for f, v in nd.items() if not isinstance(v, dict) and v.dtype.kind in "biufc"}

    def need(f, ok, expected):
        if f in sh and not ok(sh[f]):
            raise ModelError(f"field '{f}' declares shape {sh[f]}; expected {expected}", where=where)

    for f in ("stride", "padding", "dilation", "groups", "kernel_size", "start_dim", "end_dim"):
        need(f, lambda s: math.prod(s) <= 8, "at most 8 values")
    if kind in ("Input", "Output"):
        need("shape", lambda s: len(s) <= 1 and math.prod(s) <= 32, "a list of at most 32 sizes")
    elif kind in ("Affine", "Linear"):
        need("weight", lambda s: len(s) == 2, "2-D (out, in)")
        if kind == "Affine" and "weight" in sh:
            o = sh["weight"][0]
            need("bias", lambda s: s == (o,), f"({o},), one value per output of 'weight' {sh['weight']}")
    elif kind in ("Conv1d", "Conv2d"):
        d = 3 if kind == "Conv1d" else 4
        need("weight", lambda s: len(s) == d, f"{d}-D")
        if "weight" in sh and len(sh["weight"]) == d:
            o = sh["weight"][0]
            need("bias", lambda s: math.prod(s) in (1, o) and len(s) <= 1,
                 f"({o},), one value per output channel of 'weight' {sh['weight']}")
    elif kind in NEURONS:
        _neuron_shapes(where, {f: s for f, s in sh.items() if f in REQUIRED[kind] + OPTIONAL.get(kind, ())})


def _declared(tree: dict, where: str) -> None:
    """Walk the (unread) node tree: each node's type is read (a short string), its datasets'
    declared shapes checked. Structure errors are left to the flattening, after reading."""
    nodes = tree.get("nodes")
    edges = tree.get("edges")
    if edges is not None and not isinstance(edges, dict) and edges.shape not in ((0,), ()) and (
            len(edges.shape) != 2 or edges.shape[1] != 2):
        raise ModelError(f"field 'edges' declares shape {edges.shape}; expected (E, 2)", where=where)
    if not isinstance(nodes, dict):
        return
    for name, nd in nodes.items():
        t = nd.get("type") if isinstance(nd, dict) else None
        if t is None or isinstance(t, dict) or t.shape != ():
            continue
        kind = _str(_read_dataset(t, t.name))
        if kind == "NIRGraph":
            _declared(nd, f"node '{name}'")
        elif kind in REQUIRED:
            _declared_node(kind, nd, f"node '{name}' ({kind})")


def _str(v) -> str:
    if isinstance(v, bytes):
        return v.decode("utf8", "replace")
    if isinstance(v, np.ndarray) and v.shape == ():
        return _str(v.item())
    return str(v)


def read_nir_dict(path) -> tuple[dict, str]:
    """The raw node tree of a NIR file and its version string."""
    import h5py

    path = os.fspath(path)
    check_regular(path, "a NIR file (HDF5)")  # a FIFO would block, a device never end
    try:
        with h5py.File(path, "r") as f:
            if "node" not in f or not isinstance(f["node"], h5py.Group):
                raise FormatError("not a NIR file: no '/node' group (expected NIR's HDF5 layout)", file=path)
            budget = [0]
            version = ""
            if isinstance(f.get("version"), h5py.Dataset):
                _check_dataset(f["version"], "/version", budget)
                version = _str(_read_dataset(f["version"], "/version"))[:100]
            lazy = _h5_tree(f["node"], "/node", budget)
            _declared(lazy, "top-level graph")
            tree = _h5_read(lazy, "/node")
    except (FormatError, ModelError) as e:
        raise e.with_file(path)
    except Exception as e:  # noqa: BLE001 - h5py raises OSError, KeyError, RuntimeError... on damaged files
        raise FormatError(f"cannot read as HDF5 ({e}); expected a NIR file (HDF5), complete and undamaged",
                          file=path) from None
    return tree, version


# ---------------------------------------------------------------------- flattening


def _flatten(tree: dict, prefix: str, nodes: dict, edges: list, where: str) -> tuple[list[str], list[str]]:
    """Add the nodes of one (sub)graph; return the names of its Input and Output nodes."""
    if _str(tree.get("type", b"")) != "NIRGraph":
        raise ModelError("expected a NIRGraph", where=where)
    for f in REQUIRED["NIRGraph"]:
        if f not in tree:
            raise ModelError(f"graph is missing field '{f}' (expected a NIRGraph with fields nodes and edges)",
                             where=where)
    inner, ins, outs = tree["nodes"], [], []
    if not isinstance(inner, dict):
        raise ModelError("field 'nodes' is not a group", where=where)
    sub_io = {}
    for name, nd in inner.items():
        full = prefix + name
        if not isinstance(nd, dict) or "type" not in nd:
            raise ModelError("node has no 'type' field (expected a group with a NIR node type such as 'LIF')",
                             where=f"node '{full}'")
        kind = _str(nd["type"])
        if kind == "NIRGraph":
            sub_io[name] = _flatten(nd, full + ".", nodes, edges, f"node '{full}'")
            continue
        if kind not in REQUIRED:
            raise ModelError(f"unknown node type '{kind}'; expected one of {', '.join(REQUIRED)}",
                             where=f"node '{full}'")
        for f in REQUIRED[kind]:
            if f not in nd:
                article = "an" if kind[0] in "AEIOU" else "a"
                raise ModelError(f"missing field '{f}' (expected {article} {kind} to have "
                                 f"{', '.join(REQUIRED[kind])})", where=f"node '{full}'")
        nodes[full] = (kind, nd)
        if kind == "Input":
            ins.append(full)
        elif kind == "Output":
            outs.append(full)
    raw = tree["edges"]
    arr = np.asarray(raw)
    if arr.size == 0:
        pairs = []
    elif arr.ndim != 2 or arr.shape[1] != 2:
        raise ModelError(f"field 'edges' has shape {arr.shape}; expected (E, 2)", where=where)
    else:
        pairs = [(_str(a), _str(b)) for a, b in arr]
    for a, b in pairs:
        # an edge into a subgraph goes to its Input nodes; out of it, from its Output nodes
        srcs = sub_io[a][1] if a in sub_io else [prefix + a]
        dsts = sub_io[b][0] if b in sub_io else [prefix + b]
        for s in srcs:
            for d in dsts:
                edges.append((s, d))
    return ins, outs


def _remove_passthrough(nodes: dict, edges: list, names: list[str]) -> list:
    """Drop inner Input/Output nodes, connecting each predecessor to each successor."""
    for n in names:
        preds = [a for a, b in edges if b == n]
        succs = [b for a, b in edges if a == n]
        edges = [(a, b) for a, b in edges if n not in (a, b)]
        edges += [(p, s) for p in preds for s in succs]
        del nodes[n]
    return edges


# ---------------------------------------------------------------------- field parsing


def _describe(v) -> str:
    if isinstance(v, dict):
        return "a group"
    if isinstance(v, (bytes, str)):
        return f"the text {_str(v)[:40]!r}"
    a = np.asarray(v)
    return f"{a.dtype} values" if a.dtype.kind in "cSUOV" else type(v).__name__


def _num(nd: dict, f: str, where: str, dtype=np.float64) -> np.ndarray:
    v = nd[f]
    if isinstance(v, (dict, bytes, str)) or np.asarray(v).dtype.kind not in "biuf":
        raise ModelError(f"field '{f}' is not numeric (got {_describe(v)}); expected real numbers", where=where)
    try:
        a = np.asarray(v, dtype=dtype)
    except (TypeError, ValueError, OverflowError):
        raise ModelError(f"field '{f}' is not numeric (got {_describe(v)}); expected real numbers",
                         where=where) from None
    if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
        raise ModelError(f"field '{f}' contains NaN or infinite values; expected finite numbers", where=where)
    return a


def _ints(nd, f, where, n) -> tuple:
    a = _num(nd, f, where).reshape(-1)
    if a.size == 1:
        a = np.repeat(a, n)
    if a.size != n or np.any(a != np.round(a)):
        raise ModelError(f"field '{f}' = {a.tolist()}; expected {n} integer(s)", where=where)
    return tuple(int(x) for x in a)


def _padding(nd, where, kernel, dilation, ndim) -> tuple:
    p = nd["padding"]
    if isinstance(p, (bytes, str)) or (isinstance(p, np.ndarray) and p.dtype.kind in "SUO"):
        s = _str(p)
        if s == "valid":
            return (0,) * (2 * ndim)
        if s == "same":
            out = []
            for k, d in zip(kernel, dilation):
                total = d * (k - 1)
                out += [total // 2, total - total // 2]
            return tuple(out)
        raise ModelError(f"field 'padding' = '{s}'; expected an integer, a pair, 'same' or 'valid'", where=where)
    vals = _ints(nd, "padding", where, ndim)
    return tuple(v for v in vals for _ in range(2))


def _neuron_fields(where: str, kind: str, nd: dict, warnings: list) -> dict:
    """The numeric NIR fields of a neuron node, checked to be per-neuron arrays of one size."""
    p = {}
    for f in nd:
        if f in ("type", "metadata", "input_type", "output_type"):
            continue
        if f not in REQUIRED[kind] + OPTIONAL.get(kind, ()):
            warnings.append(f"{where}: field '{f}' is not part of NIR's {kind} and was ignored")
            continue
        p[f] = _num(nd, f, where)
    if kind.startswith("Cuba") and "w_in" not in p:
        p["w_in"] = np.ones(1)
    for f in ("tau", "tau_mem", "tau_syn"):
        if f in p and p[f].size and not (p[f] > 0).all():
            raise ModelError(f"field '{f}' has values <= 0 (smallest {p[f].min():g}); expected time constants > 0",
                             where=where)
    _neuron_shapes(where, {f: a.shape for f, a in p.items()})
    return p


def _neuron_shapes(where: str, shapes: dict) -> None:
    """The shapes of a neuron's fields (as declared in the file, or as read) fit together."""
    size = {f: math.prod(s) for f, s in shapes.items()}
    # a time constant and its gain are read together (dialect detection flattens both)
    for a, b in (("tau", "r"), ("tau_mem", "r"), ("tau_syn", "w_in")):
        if a in size and b in size and 1 not in (size[a], size[b]) and size[a] != size[b]:
            raise ModelError(f"field '{a}' has shape {tuple(shapes[a])} but field '{b}' has shape "
                             f"{tuple(shapes[b])}; expected one value per neuron (or a single value) in both",
                             where=where)
    # fields combined by the discretisation must broadcast together; each is checked against the
    # node's shape once that is known
    for group in (("tau", "tau_mem", "r", "v_leak"), ("tau_syn", "w_in"), ("v_threshold", "v_reset")):
        fs = [f for f in group if f in shapes]
        try:
            np.broadcast_shapes(*(tuple(shapes[f]) for f in fs))
        except ValueError:
            desc = ", ".join(f"'{f}' {tuple(shapes[f])}" for f in fs)
            raise ModelError(f"fields have shapes that do not fit together ({desc}); expected one value per "
                             "neuron (or a single value) in each", where=where) from None


def _op_from_nir(kind: str, nd: dict, where: str, dialect: dialects.Dialect, dt: float) -> ops.Op:
    g = lambda f: _num(nd, f, where)  # noqa: E731
    if kind == "Input":
        return ops.Input(shape=_ints(nd, "shape", where, _num(nd, "shape", where).size))
    if kind == "Output":
        return ops.Output(shape=_ints(nd, "shape", where, _num(nd, "shape", where).size))
    if kind == "Affine":
        return ops.Affine(weight=g("weight"), bias=g("bias"))
    if kind == "Linear":
        return ops.Linear(weight=g("weight"))
    if kind == "Scale":
        return ops.Scale(scale=g("scale"))
    if kind == "Threshold":
        return ops.Threshold(threshold=g("threshold"))
    if kind in ("Conv1d", "Conv2d"):
        nd_ = 1 if kind == "Conv1d" else 2
        w = g("weight")
        if w.ndim != nd_ + 2:
            raise ModelError(f"field 'weight' has shape {w.shape}; expected {nd_ + 2}-D", where=where)
        groups = _ints(nd, "groups", where, 1)[0]
        stride = _ints(nd, "stride", where, nd_)
        dil = _ints(nd, "dilation", where, nd_)
        pad = _padding(nd, where, w.shape[2:], dil, nd_)
        if kind == "Conv1d":
            return ops.Conv1d(weight=w, bias=g("bias"), stride=stride[0], padding=pad, dilation=dil[0], groups=groups)
        return ops.Conv2d(weight=w, bias=g("bias"), stride=stride, padding=pad, dilation=dil, groups=groups)
    if kind in ("SumPool2d", "AvgPool2d"):
        cls = ops.SumPool2d if kind == "SumPool2d" else ops.AvgPool2d
        return cls(kernel_size=_ints(nd, "kernel_size", where, 2), stride=_ints(nd, "stride", where, 2),
                   padding=_ints(nd, "padding", where, 2))
    if kind == "Flatten":
        return ops.Flatten(start_dim=_ints(nd, "start_dim", where, 1)[0], end_dim=_ints(nd, "end_dim", where, 1)[0])
    if kind == "Delay":
        d = g("delay") / dt
        steps = np.round(d)
        if np.any(np.abs(d - steps) > 1e-3 * np.maximum(1, d)):
            raise ModelError(f"field 'delay' is not a whole number of timesteps at dt={dt:g}", where=where)
        return ops.Delay(steps=steps.astype(np.int32))
    if kind in NEURONS:
        p = _neuron_fields(where, kind, nd, [])
        try:
            fields = dialect.discretize(kind, p, dt)
        except ModelError as e:
            e.where = where
            e.args = (e._format(),)
            raise
        except ValueError as e:  # parameter arrays that cannot be combined
            desc = ", ".join(f"'{f}' {a.shape}" for f, a in p.items())
            raise ModelError(f"fields cannot be combined ({desc}): {e}", where=where) from None
        cls = ops.OPS[kind]
        return cls(**{k: v.astype(np.float32) for k, v in fields.items()},
                   **({} if kind in ("LI", "CubaLI", "I") else dialect.flags()),
                   **({"current_lag": dialect.current_lag} if kind in ("CubaLI",) else {}))
    raise ModelError(f"unsupported node type '{kind}'", where=where)


def read_nir(path, dt: float | None = None, dialect: str | None = None, reset: str | None = None,
             ) -> tuple[Graph, ImportReport]:
    """Read a NIR file into an edgebrain graph.

    dt: timestep in seconds (None: use the one the exporter's convention implies, if any).
    dialect: the exporting framework's discretisation (None: detect from the parameters).
    reset: 'zero' or 'subtract' to override the dialect's reset.
    """
    path = os.fspath(path)
    try:
        tree, version = read_nir_dict(path)
        nodes: dict = {}
        edges: list = []
        top_in, top_out = _flatten(tree, "", nodes, edges, "top-level graph")
        inner = [n for n, (k, _) in nodes.items() if k in ("Input", "Output") and n not in top_in + top_out]
        edges = _remove_passthrough(nodes, edges, inner)
        for a, b in edges:
            for end, n in (("source", a), ("target", b)):
                if n not in nodes:
                    raise ModelError(f"edge {a} -> {b}: {end} node '{n}' does not exist; expected one of "
                                     f"{', '.join(list(nodes)[:12])}{', ...' if len(nodes) > 12 else ''}")

        neuron_fields = []
        warnings = []
        for n, (k, nd) in nodes.items():
            if k in NEURONS:
                neuron_fields.append((n, k, _neuron_fields(f"node '{n}' ({k})", k, nd, warnings)))
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            det = dialects.detect(neuron_fields)
        chosen = dialect or det.dialect
        d = dialects.get(chosen, reset)
        if dt is not None:
            if not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
                raise ModelError(f"dt={dt!r}; expected a positive number of seconds")
            dt_source = "given"
            implied = d.fixed_dt if d.fixed_dt is not None else (det.dt if chosen == det.dialect else None)
            if implied is not None and abs(implied - dt) > 1e-6 * implied:
                warnings.append(
                    f"the file's parameters imply dt={implied:g} ({chosen} convention) but dt={dt:g} was given: "
                    "time constants will act on a different time scale than in training")
        elif d.fixed_dt is not None:
            dt, dt_source = d.fixed_dt, f"fixed by the {chosen} convention"
        elif chosen == det.dialect and det.dt is not None:
            dt, dt_source = det.dt, "inferred from r·dt/tau" if chosen == "snntorch" else "inferred from the parameters"
        elif not neuron_fields or all(k in ("I", "IF") for _, k, _ in neuron_fields) and d.integrator == "r":
            dt, dt_source = 1.0, "not needed by this graph"
        else:
            raise ModelError(f"cannot tell the timestep: {det.reason}. Pass --dt (seconds)")
        if dialect and dialect != det.dialect:
            warnings.append(f"dialect '{dialect}' given; the parameters suggested '{det.dialect}' ({det.reason})")
        graph = Graph()
        for n, (k, nd) in nodes.items():
            graph.add(n, _op_from_nir(k, nd, f"node '{n}' ({k})", d, dt))
        graph.edges = edges
        nir_reset.fuse(graph)  # I → Threshold → Scale(−θ) loops: integrate-and-fire with reset by subtraction
        graph.prepare()
    except (ModelError, FormatError) as e:
        raise e.with_file(path)
    rep = ImportReport(dialect=chosen, dt=dt, reset=d.reset, detected=det.dialect, reason=det.reason,
                       dt_source=dt_source, warnings=warnings, nir_version=version)
    graph.meta.update(source={"format": "nir", "file": os.path.basename(path), "nir_version": version},
                      dt=dt, dialect=chosen, reset=d.reset, import_report=rep.as_dict())
    return graph, rep


# ---------------------------------------------------------------------- export


def to_nir_graph(graph: Graph):
    """An equivalent ``nir.NIRGraph`` (flat; the inverse of the import discretisation)."""
    import nir

    dt = float(graph.meta.get("dt") or 1.0)
    d = dialects.get(graph.meta.get("dialect", "nir"))
    nodes, edges = {}, list(graph.edges)
    for name, op in graph.nodes.items():
        k = op.kind
        if isinstance(op, ops.Neuron) and nir_reset.explicit(op, d):  # reset by subtraction as a feedback loop
            edges = nir_reset.write_explicit(nodes, edges, name, graph, d.continuous(ops.I(g_mem=op.g_mem), dt)["r"])
        elif k == "Input":
            nodes[name] = nir.Input(input_type=np.array(op.shape))
        elif k == "Output":
            nodes[name] = nir.Output(output_type=np.array(op.shape))
        elif k == "Affine":
            nodes[name] = nir.Affine(weight=op.weight, bias=op.bias)
        elif k == "Linear":
            nodes[name] = nir.Linear(weight=op.weight)
        elif k == "Scale":
            nodes[name] = nir.Scale(scale=op.scale)
        elif k == "Threshold":
            nodes[name] = nir.Threshold(threshold=op.threshold)
        elif k == "Flatten":
            nodes[name] = nir.Flatten(input_type={"input": np.array(graph.in_shapes[name])},
                                      start_dim=op.start_dim, end_dim=op.end_dim)
        elif k == "Delay":
            nodes[name] = nir.Delay(delay=op.steps.astype(np.float64) * dt)
        elif k in ("SumPool2d", "AvgPool2d"):
            cls = nir.SumPool2d if k == "SumPool2d" else nir.AvgPool2d
            nodes[name] = cls(kernel_size=np.array(op.kernel_size), stride=np.array(op.stride),
                              padding=np.array(op.padding))
        elif k == "Conv1d":
            lo, hi = op.padding
            if lo != hi:
                raise ModelError(f"node '{name}': asymmetric padding {op.padding} cannot be written to NIR")
            nodes[name] = nir.Conv1d(input_shape=graph.in_shapes[name][1], weight=op.weight, stride=op.stride,
                                     padding=lo, dilation=op.dilation, groups=op.groups, bias=op.bias)
        elif k == "Conv2d":
            t, b, l_, r = op.padding
            if t != b or l_ != r:
                raise ModelError(f"node '{name}': asymmetric padding {op.padding} cannot be written to NIR")
            nodes[name] = nir.Conv2d(input_shape=tuple(graph.in_shapes[name][1:]), weight=op.weight,
                                     stride=op.stride, padding=(t, l_), dilation=op.dilation, groups=op.groups,
                                     bias=op.bias)
        elif isinstance(op, ops.Neuron):
            shape = graph.in_shapes[name]
            p = {f: np.broadcast_to(v, shape).astype(np.float32).copy() for f, v in d.continuous(op, dt).items()}
            nodes[name] = getattr(nir, k)(**p)
        else:  # pragma: no cover - every op kind is handled above
            raise ModelError(f"node '{name}': cannot export {k} to NIR")
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False,
                        metadata={"exported_by": "edgebrain", "dt": dt, "dialect": d.name})


def write_nir(graph: Graph, path) -> None:
    """Export ``graph`` to the NIR file ``path`` (written atomically, see :func:`edgebrain.safeio.atomic_write`)."""
    import nir

    from .safeio import atomic_write

    g = to_nir_graph(graph)
    with atomic_write(os.fspath(path), "NIR file") as f:
        nir.write(f, g)
