"""``edgebrain firmware export``: an integer model as C source for a firmware project.

    export("zoo:kws", "out/kws", "stm32f446")  ->  out/kws/model_blob.c, model.h, README.md

``model_blob.c`` holds the blob (:mod:`edgebrain.blob`) as an 8-byte aligned ``const uint8_t``
array (flash); ``model.h`` its length, the input and output shapes, the output class names, the
dequantisation scales and the state/activation/scratch sizes as macros, so that RAM is sized at
compile time, with the edgebrain and blob format versions. Before anything is written the model
is checked against the target: every row's op and neuron flags must be ones the C runtime
implements, and blob + runtime code must fit its flash, the buffers + the runtime's RAM its RAM
(measured for the cross-built targets, see :mod:`edgebrain.apps.footprint`). The folder is
written whole or not at all: a temporary folder beside it, renamed into place.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from .. import blob as B
from ..cbuild import SOURCE_DIR
from ..devices import fmt_bytes
from ..errors import InputError, ModelError
from ..kernels import layout as L
from ..safeio import check_output_folder, write_folder
from ..version import __version__
from . import footprint as F

#: the files an export writes
FILES = ("model_blob.c", "model.h", "README.md")


def c_ops(runtime_dir=SOURCE_DIR) -> set[str]:
    """Opcode names (``DENSE``, ``NEURON``...) the C interpreter dispatches, read from its source
    (``eb_runtime.c`` of ``runtime_dir``, the package's runtime unless given)."""
    text = (Path(runtime_dir) / "eb_runtime.c").read_text()
    return set(re.findall(r"case\s+EB_OP_(\w+)\s*:", text))


def _op_names() -> dict[int, str]:
    return {v: k[3:] for k, v in vars(L).items() if k.startswith("OP_") and isinstance(v, int)}


def check_c_support(program, graph, runtime_dir=SOURCE_DIR) -> None:
    """Refuse (ModelError naming the node, its kind and the op or flag) a program with a row the C
    runtime does not implement."""
    from ..kernels import neuron

    have, names = c_ops(runtime_dir), _op_names()
    known = {k: v for k, v in vars(neuron).items() if k.isupper() and k != "X_CLAMP" and isinstance(v, int)
             and v > 0 and v & (v - 1) == 0}
    supported = sum(getattr(neuron, k) for k in B.NEURON_FLAGS if hasattr(neuron, k))
    for r, row in enumerate(program.prog):
        node = program.instr_node[r] if r < len(program.instr_node) else None
        kind = getattr(graph.nodes.get(node), "kind", "?") if node else "?"
        where = f"node '{node}' ({kind})" if node else f"row {r}"
        op = names.get(int(row[L.OP]), f"opcode {int(row[L.OP])}")
        if op not in have:
            raise ModelError(f"{where} lowers to op {op.lower()}, which the C runtime does not implement "
                             f"(it has: {', '.join(sorted(o.lower() for o in have))})")
        if op == "NEURON":
            extra = int(row[L.NEURON_FLAGS]) & ~supported
            if extra:
                bits = [k for k, v in known.items() if v & extra] or [hex(extra)]
                raise ModelError(f"{where}: neuron flag(s) {', '.join(bits)} not implemented by the C runtime")


def class_names(model, n_out: int) -> list[str]:
    """The output class names from the model's stream settings or card ([] when it has none)."""
    meta = model.graph.meta or {}
    for labels in ((meta.get("stream") or {}).get("labels"), (meta.get("card") or {}).get("labels")):
        if labels and len(labels) == n_out:
            return [str(x) for x in labels]
    return []


def plan(model, device, runtime_dir=SOURCE_DIR) -> dict:
    """The blob, its sizes and its fit on ``device`` (``fits``: False when RAM or flash overflows);
    raises InputError / ModelError (one line) for a float-only model, a target that is not a
    microcontroller, or an op or neuron flag the C runtime lacks."""
    if not model.quant:
        raise InputError(f"{model.path or 'the model'} is a float model without integer parameters; the C runtime "
                         "runs integer models: quantize it first (edgebrain convert MODEL --quantize int8 -o M.ebm)")
    if not device.is_mcu:
        from ..devices import load_all

        mcus = ", ".join(d.name for d in load_all() if d.is_mcu)
        raise InputError(f"target {device.name} is not a microcontroller ({device.data['kind']}): run the model there with "
                         f"edgebrain itself; firmware export targets the mcu profiles ({mcus})")
    prog = model.program("int")
    check_c_support(prog, model.graph, runtime_dir)
    data = B.pack(prog)
    bl = B.unpack(data)
    bufs = F.blob_buffers(bl.header, len(data))
    rt = F.runtime(device)
    mem = device.data["memory"]
    in_flash = mem["weights_in"] == "flash" and mem.get("flash_bytes")
    flash_items = {"blob": bufs["blob"], "runtime code": rt["flash"]} if in_flash else None
    ram_items = {"state": bufs["state"], "act": bufs["act"], "scratch": bufs["scratch"], "runtime": rt["ram"]}
    if not in_flash:
        ram_items = {"blob": bufs["blob"], **ram_items}

    def check(items, avail):
        need = sum(items.values())
        return {"items": items, "need": need, "available": int(avail), "margin": int(avail) - need,
                "fits": need <= int(avail)}

    ram = check(ram_items, mem["ram_bytes"])
    flash = check(flash_items, mem["flash_bytes"]) if flash_items else None
    return {"blob": data, "header": bl.header, "outputs": bl.outputs, "buffers": bufs, "runtime": rt,
            "ram": ram, "flash": flash, "fits": ram["fits"] and (flash is None or flash["fits"])}


def misfit_message(name: str, device, p: dict) -> str:
    """One line: which memory overflows, by how much, and each buffer's share."""
    parts = []
    for what, r in (("flash", p["flash"]), ("RAM", p["ram"])):
        if r is None or r["fits"]:
            continue
        items = ", ".join(f"{k} {fmt_bytes(v)}" for k, v in r["items"].items())
        parts.append(f"{what} needs {fmt_bytes(r['need'])} of {fmt_bytes(r['available'])}, "
                     f"{fmt_bytes(-r['margin'])} ({-r['margin']} B) too much ({items})")
    return (f"{name} does not fit {device.name}: " + "; ".join(parts)
            + f" [runtime {p['runtime']['source']}]; nothing written")


# ---------------------------------------------------------------------- the C files


def _c_string(s: str) -> str:
    out = []
    for ch in s.encode("utf-8"):
        c = chr(ch)
        out.append(f"\\{ch:03o}" if ch < 32 or ch > 126 or c in '"\\?' else c)
    return '"' + "".join(out) + '"'


def _ident(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", s).upper()


def _float(x: float) -> str:
    return f"{float(x):.9g}f" if "e" in f"{float(x):.9g}" or "." in f"{float(x):.9g}" else f"{float(x):.9g}.0f"


def model_h(name: str, device, p: dict, labels: list[str], codec=None, why: str = "not exported") -> str:
    h, bufs = p["header"], p["buffers"]
    shape = tuple(h["input_shape"][:h["input_ndim"]])
    lines = [f"/* model.h: GENERATED by edgebrain {__version__} (edgebrain firmware export {name} --target {device.name}).",
             " * Do not edit: export the model again. Sizes in bytes; see README.md beside it. */",
             "#ifndef EB_EXPORTED_MODEL_H", "#define EB_EXPORTED_MODEL_H", "",
             "#include <stddef.h>", "#include <stdint.h>", "",
             f'#define MODEL_EDGEBRAIN_VERSION "{__version__}"  /* must equal EB_EDGEBRAIN_VERSION of the runtime */',
             f"#define MODEL_BLOB_FORMAT_VERSION {B.FORMAT_VERSION}u  /* the runtime's EB_FORMAT_VERSION (the blob "
             f"itself: {h['format_version']}) */", f"#define MODEL_TARGET {_c_string(device.name)}",
             "", "/* the blob (model_blob.c): read in place from flash by eb_model_load */",
             f"#define MODEL_BLOB_LEN {bufs['blob']}u",
             "", "/* buffers the caller provides, exact sizes (eb_state_bytes, eb_act_bytes, eb_scratch_bytes) */",
             f"#define MODEL_STATE_BYTES {bufs['state']}u", f"#define MODEL_ACT_BYTES {bufs['act']}u",
             f"#define MODEL_SCRATCH_BYTES {bufs['scratch']}u",
             "/* the same as element counts, for static arrays: int32_t state[], int32_t act[], int64_t scratch[] */",
             f"#define MODEL_STATE_WORDS {max(1, -(-bufs['state'] // 4))}u",
             f"#define MODEL_ACT_WORDS {max(1, -(-bufs['act'] // 4))}u",
             f"#define MODEL_SCRATCH_WORDS {max(1, -(-bufs['scratch'] // 8))}u",
             "", "/* input: MODEL_N_IN float32 per step, quantized with MODEL_INPUT_SCALE */",
             f"#define MODEL_N_IN {h['n_in']}u", f"#define MODEL_INPUT_NDIM {len(shape)}u",
             f"#define MODEL_INPUT_SHAPE {{{', '.join(str(d) + 'u' for d in shape) or '0u'}}}",
             f"#define MODEL_INPUT_SCALE {_float(h['input_scale'])}",
             "", "/* outputs: MODEL_N_OUT float32 per step; each output's columns, shape and dequantisation scale */",
             f"#define MODEL_N_OUT {h['n_out']}u", f"#define MODEL_N_OUTPUTS {len(p['outputs'])}u"]
    for k, (oname, (col, size, oshape, scale)) in enumerate(p["outputs"].items()):
        pre = f"MODEL_OUTPUT{k}"
        lines += [f"#define {pre}_NAME {_c_string(oname)}", f"#define {pre}_COLUMN {col}u", f"#define {pre}_SIZE {size}u",
                  f"#define {pre}_NDIM {len(oshape)}u",
                  f"#define {pre}_SHAPE {{{', '.join(str(d) + 'u' for d in oshape) or '0u'}}}",
                  f"#define {pre}_SCALE {_float(scale)}"]
    lines += ["", "/* class names of the output, in column order (0 when the model names none) */",
              f"#define MODEL_N_CLASSES {len(labels)}u"]
    if labels:
        lines.append(f"#define MODEL_CLASS_NAMES {{{', '.join(_c_string(x) for x in labels)}}}")
    lines += codec_h(codec, why)
    lines += ["", "/* 8-byte alignment of the blob: GCC, Clang, armclang, IAR, Arm Compiler 5, C11; else a union */",
              "#if !defined(MODEL_BLOB_ALIGN) && !defined(MODEL_BLOB_PORTABLE)",
              "#  if defined(__GNUC__) || defined(__clang__)", "#    define MODEL_BLOB_ALIGN __attribute__((aligned(8)))",
              "#  elif defined(__ICCARM__) || defined(__IAR_SYSTEMS_ICC__)",
              '#    define MODEL_BLOB_ALIGN _Pragma("data_alignment=8")',
              "#  elif defined(__CC_ARM)", "#    define MODEL_BLOB_ALIGN __align(8)",
              "#  elif defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L",
              "#    define MODEL_BLOB_ALIGN _Alignas(8)", "#  else", "#    define MODEL_BLOB_PORTABLE 1", "#  endif",
              "#endif",
              "/* an optional placement, e.g. -DMODEL_BLOB_SECTION='__attribute__((section(\".rodata.model\")))' */",
              "#ifndef MODEL_BLOB_SECTION", "#  define MODEL_BLOB_SECTION", "#endif", "",
              "#ifdef __cplusplus", 'extern "C" {', "#endif",
              "#ifdef MODEL_BLOB_PORTABLE", "/* no alignment attribute known: a union with uint64_t aligns the bytes */",
              "typedef union { uint64_t align; uint8_t bytes[MODEL_BLOB_LEN]; } model_blob_storage_t;",
              "extern const model_blob_storage_t model_blob_storage;", "#  define model_blob (model_blob_storage.bytes)",
              "#else", "extern const uint8_t model_blob[MODEL_BLOB_LEN];", "#endif",
              "extern const size_t model_blob_len;",
              "#ifdef __cplusplus", "}", "#endif", "", "#endif /* EB_EXPORTED_MODEL_H */", ""]
    return "\n".join(lines)


def codec_config(model, n_in: int, n_out: int):
    """The on-board codec of the model's stream settings (``eb_codec_config``'s fields, for
    :func:`codec_h`), or ``(None, why)`` when the board cannot encode or decode them (an audio or
    event encoder, a decoder other than count). The counts' unit: the encoder's ``unit=``, else the
    default of ``edgebrain stream --board-encodes`` (:func:`edgebrain.stream.board_codec.default_unit`)."""
    from .. import proto as P
    from ..card import StreamConfig
    from ..errors import EdgebrainError
    from ..stream.base import SourceInfo
    from ..stream.board_codec import codec_payload, default_unit
    from ..stream.pipeline import with_labels
    from ..stream.registry import build_decoder, build_encoder

    cfg = StreamConfig.from_meta(model.graph.meta)
    try:
        enc = build_encoder(cfg.encoder or "direct")
        if getattr(enc, "name", None) not in P.CODEC_ENCODERS:
            return None, f"its encoder '{cfg.encoder}' runs on the host only"
        chans = enc.channels
        n = (max(chans) + 1) if chans else (n_in // 2 if getattr(enc, "layout", "") == "split" else n_in)
        enc.configure(SourceInfo(format="board", kind="samples", channels=n, rate=cfg.rate), (n_in,), cfg.dt)
        if enc.unit is None:
            enc.unit = default_unit(enc.scale, enc.offset, enc.n_in)
        name, kw = with_labels(cfg.decoder or "count", cfg.class_names(n_out))
        dec = build_decoder({"type": name, **kw})
        payload = codec_payload(enc, dec, n_out)
    except EdgebrainError as e:
        return None, e.detail if hasattr(e, "detail") else str(e)
    f = P.unpack("CODEC", payload)
    cols = np.frombuffer(f.pop("tail"), "<f8").reshape(-1, 4)
    return {**f, "unit": cols[:, 0].tolist(), "offset": cols[:, 1].tolist(), "scale": cols[:, 2].tolist(),
            "threshold": cols[:, 3].tolist(), "rate": cfg.rate, "encoder_spec": enc.spec(),
            "decoder_spec": dec.spec()}, ""


def codec_h(codec, why: str) -> list[str]:
    """model.h's lines for the on-board codec: MODEL_CODEC_CONFIG, an eb_codec_config initializer
    (eb_codec.h; float64 values as exact hexadecimal literals)."""
    def text(v) -> str:  # in a C comment: no line breaks, no end of the comment
        return " ".join(str(v).split()).replace("*/", "* /")

    if codec is None:
        return ["", f"/* no on-board codec: {text(why)} */", "#define MODEL_HAS_CODEC 0"]

    def arr(v):
        return "{" + ", ".join(float(x).hex() for x in v) + "}"

    c = codec
    return ["", "/* the on-board codec (eb_codec.h): raw int16 samples of MODEL_CODEC_CHANNELS channels at",
            f" * MODEL_CODEC_RATE per second in, decisions out. encoder {text(c['encoder_spec'])}",
            f" * decoder {text(c['decoder_spec'])}",
            " *     static const eb_codec_config codec_cfg = MODEL_CODEC_CONFIG;  (eb_codec_check, eb_codec_init) */",
            "#define MODEL_HAS_CODEC 1", f"#define MODEL_CODEC_CHANNELS {c['channels']}u",
            f"#define MODEL_CODEC_RATE {float(c['rate'] or 0)!r}",
            "#define MODEL_CODEC_CONFIG { \\",
            (f"    {c['encoder']}u, {c['layout']}u, {c['init']}u, {c['flags']}u, {c['decoder']}u, "
             f"{c['channels']}u, {c['classes']}u, {c['max_spikes']}u, {c['window']}u, {c['hop']}u, "
             f"{c['min_spikes']}u, {c['hold']}u, \\"),
            f"    {float(c['alpha']).hex()}, {float(c['min_confidence']).hex()}, {float(c['hysteresis']).hex()}, \\",
            f"    {arr(c['unit'])}, \\", f"    {arr(c['offset'])}, \\", f"    {arr(c['scale'])}, \\",
            f"    {arr(c['threshold'])} }}"]


def _blob_version(data: bytes) -> int:
    """The format version a blob carries (1, or 2 when it has sparse or 4-bit rows: blob.format_version)."""
    return int.from_bytes(data[B.HEADER_OFFSETS["format_version"][0]:][:4], "little")


def model_blob_c(name: str, device, data: bytes) -> str:
    body = "\n".join("    " + ",".join(f"0x{b:02x}" for b in data[k:k + 20]) + ","
                     for k in range(0, len(data), 20))
    return (f"/* model_blob.c: GENERATED by edgebrain {__version__} (edgebrain firmware export {name} --target "
            f"{device.name}).\n * The model as an edgebrain blob (format version {_blob_version(data)}, {len(data)} bytes, "
            "CRC-32 checked by eb_model_load): const, so it\n * stays in flash; 8-byte aligned, as the runtime reads "
            "its int64 rows in place. Do not edit. */\n"
            '#include "model.h"\n\n'
            "#ifdef MODEL_BLOB_PORTABLE\n"
            "const model_blob_storage_t model_blob_storage MODEL_BLOB_SECTION = {.bytes = {\n"
            "#else\n"
            "MODEL_BLOB_ALIGN const uint8_t model_blob[MODEL_BLOB_LEN] MODEL_BLOB_SECTION = {\n"
            "#endif\n"
            f"{body}\n"
            "#ifdef MODEL_BLOB_PORTABLE\n}};\n#else\n};\n#endif\n"
            "const size_t model_blob_len = MODEL_BLOB_LEN;\n")


def readme(name: str, device, p: dict) -> str:
    b, rt = p["buffers"], p["runtime"]
    return f"""# {name} for {device.name} (edgebrain {__version__})

Generated by `edgebrain firmware export {name} --target {device.name}`. Do not edit; export again.

| file | what |
|---|---|
| `model_blob.c` | the model as a blob: `const uint8_t model_blob[MODEL_BLOB_LEN]`, 8-byte aligned, in flash |
| `model.h` | sizes, shapes, class names, scales and versions as macros |

Sizes: blob {b['blob']} B (flash); state {b['state']} B, activations {b['act']} B, scratch {b['scratch']} B (RAM);
runtime ({rt['source']}): {fmt_bytes(rt['flash'])} flash, {fmt_bytes(rt['ram'])} RAM.

## Building it in

Add to your project, as C99 sources compiled with `-ffp-contract=off` (no fused multiply-add):

* the runtime: every `*.c` and `*.h` of `edgebrain/cruntime/` (from the same edgebrain version,
  {__version__}: `python -c "import edgebrain.cbuild as c; print(c.SOURCE_DIR)"` prints where);
* this folder's `model_blob.c` and `model.h`, with both folders on the include path.

```c
#include "eb_runtime.h"
#include "model.h"

static eb_model model;
static eb_session sess;
static int32_t state[MODEL_STATE_WORDS];
static int32_t act[MODEL_ACT_WORDS];
static int64_t scratch[MODEL_SCRATCH_WORDS];

int model_init(void) {{
    eb_error err;
    if (eb_model_load(&model, model_blob, model_blob_len, &err) != EB_OK) return err.code;
    return eb_session_init(&sess, &model, state, sizeof state, act, sizeof act, scratch, sizeof scratch);
}}

/* each step: x holds MODEL_N_IN floats, y receives MODEL_N_OUT */
eb_status model_step(const float *x, float *y) {{ return eb_step(&sess, x, y); }}
```

{codec_readme(p.get("codec"))}
See docs/firmware.md of edgebrain for STM32CubeIDE, pico-sdk and nRF Connect projects.
"""


def codec_readme(codec) -> str:
    """README.md's section on the on-board codec (empty when the model has none)."""
    if codec is None:
        return ""
    return f"""## From raw sensor samples to decisions on the board

`model.h` also holds the model's encoder and decoder (`MODEL_CODEC_CONFIG`, for `eb_codec.h`):
{codec['encoder_spec']} on int16 counts of `unit` = {', '.join(repr(u) for u in codec['unit'])}
per channel, at {codec['rate']!r} samples per second, and {codec['decoder_spec']}.

```c
#include "eb_codec.h"

static const eb_codec_config codec_cfg = MODEL_CODEC_CONFIG;
static eb_codec codec;   /* after model_init: eb_codec_check(&codec_cfg, MODEL_N_IN, MODEL_N_OUT, &d), eb_codec_init */

/* each sample: raw holds MODEL_CODEC_CHANNELS int16 counts */
int on_sample(const int16_t *raw, eb_decision *d) {{
    float x[MODEL_N_IN], y[MODEL_N_OUT];
    eb_codec_encode(&codec, raw, x);
    if (eb_step(&sess, x, y) != EB_OK) return -1;
    return eb_codec_decode(&codec, y, d);   /* 1: d->index (-1: none), d->confidence */
}}
```

The decisions are those of `edgebrain stream MODEL --encoder unit=...` with the same units, bit for bit.
"""


# ---------------------------------------------------------------------- writing the folder


def export(model, device, out_dir: str, name: str | None = None, force: bool = False,
           runtime_dir=SOURCE_DIR) -> dict:
    """Check ``model`` (a :class:`~edgebrain.model.Model`) against ``device`` (a profile) and write
    the folder; returns the sizes, the fit and the files (plain data, for --json)."""
    name = name or model.path or "model"
    check_output_folder(out_dir, force)  # before the work: a refusal costs nothing
    p = plan(model, device, runtime_dir)
    if not p["fits"]:
        raise ModelError(misfit_message(name, device, p))
    main_out = next(iter(p["outputs"].values()))
    labels = class_names(model, main_out[1]) if len(p["outputs"]) == 1 else []
    codec, why = codec_config(model, p["header"]["n_in"], p["header"]["n_out"])
    p["codec"] = codec
    files = {"model_blob.c": model_blob_c(name, device, p["blob"]), "model.h": model_h(name, device, p, labels, codec, why),
             "README.md": readme(name, device, p)}
    write_folder(out_dir, files, force)
    h = p["header"]
    return {"model": name, "target": device.name, "out": os.path.abspath(out_dir), "files": list(FILES),
            "edgebrain_version": __version__, "format_version": B.FORMAT_VERSION,
            "blob_format_version": h["format_version"],
            "input_shape": list(h["input_shape"][:h["input_ndim"]]), "n_in": h["n_in"], "n_out": h["n_out"],
            "outputs": {k: {"column": c, "size": s, "shape": list(sh), "scale": sc}
                        for k, (c, s, sh, sc) in p["outputs"].items()},
            "classes": labels, "sizes": p["buffers"], "runtime": {k: v for k, v in p["runtime"].items()},
            "flash": p["flash"], "ram": p["ram"],
            "codec": None if codec is None else {k: codec[k] for k in ("encoder_spec", "decoder_spec", "unit", "rate")}}


def format_export(r: dict) -> str:
    """The result for people: where, and the sizes against the target."""
    b = r["sizes"]
    lines = [f"exported {r['model']} for {r['target']} to {r['out']}: {', '.join(r['files'])}",
             (f"  blob {fmt_bytes(b['blob'])} (flash); state {fmt_bytes(b['state'])}, act {fmt_bytes(b['act'])}, "
              f"scratch {fmt_bytes(b['scratch'])} (RAM)")]
    for what in ("flash", "ram"):
        m = r[what]
        if m:
            lines.append(f"  {what}: {fmt_bytes(m['need'])} of {fmt_bytes(m['available'])} "
                         f"(margin {fmt_bytes(m['margin'])})")
    lines.append(f"  {r['runtime']['description']}")
    return "\n".join(lines)
