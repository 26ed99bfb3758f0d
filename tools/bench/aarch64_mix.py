#!/usr/bin/env python
"""Static instruction mix of the integer kernels' hot loops on aarch64 (NEON), against the C loop.

    python tools/bench/aarch64_mix.py [--model zoo:har-lif] [--json OUT] [--asm-dir DIR] [--no-x86]

What it does:

1. Numba's LLVM IR of ``dense_int``, ``neuron_int32`` and ``neuron_int`` (edgebrain/kernels/), for the
   argument types the executor passes them: typed from a real session's buffers of ``--model``
   (int32 node outputs, its state dtype, its weight dtype, int32 parameters, int64 index list,
   int32 and int64 accumulator rows). The IR is taken with ``NUMBA_OPT=0``, i.e. as Numba lowers it
   and before any LLVM pass ran for this machine (the host's vectorizer would otherwise have chosen
   x86 vector widths already).
2. Numba's own pass sequence (function passes at O3, its cheap module pass with loop rotation,
   instcombine and jump threading, then the full O3 module pipeline with the loop vectorizer, SLP
   off as Numba's default) run by llvmlite with a target machine for ``aarch64-unknown-linux-gnu``
   (+neon; cortex-a72 as in a Pi 4, cortex-a53 as in a Pi 3 / Zero 2 W), then ``emit_assembly``. The
   same for this x86 host (native, and pinned to haswell/AVX2) as a reference.
3. tools/bench/ref_loop.c, the C loop doing the same integer work, compiled with
   ``aarch64-linux-gnu-gcc -O3 -S -mcpu=...`` (and gcc for x86), through a small wrapper that
   exposes its dense and neuron loops as functions (with the neuron flags of the model's layers).
   ``neuron_int32`` is also compiled behind a wrapper that passes the model's neuron flags as
   constants (the executor passes them at run time): it shows what the loop becomes when the
   kernel is specialised per flag set.
4. In each function's assembly: the innermost loops (a branch back to a label above it), each
   given a role from what it does (int8 weight loads with or without a multiply = a dense row; two
   stores of state and output = the neuron update; ...), and counted per element.

Check of the method: run for this x86 host, the pass sequence above gives the same loops, with
instruction counts within two per loop body, as Numba's own ``inspect_asm`` of the same kernels.

Limits, said in the output too: these are static counts of instructions in a loop body, not
timings (no Pi here; on a real core, latency, dual issue and memory decide). Elements per
iteration come from the bytes the loop stores (or, for the gather loop, the int8 weights it loads)
divided by the bytes one element stores. The kernels are compiled on their own: in edgebrain they
are called from the executor and may be inlined there, which can change the code around the loop
(not the loop's vectorization, as long as the same facts about aliasing hold). A loop's role is a
heuristic from its instructions; ``--asm-dir`` keeps the assembly to check it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
REF_C = REPO / "tools" / "bench" / "ref_loop.c"
AARCH64_CPUS = ("cortex-a72", "cortex-a53")

# ---------------------------------------------------------------------- instruction classes

A64_BRANCH = {"b", "bl", "br", "blr", "ret", "cbz", "cbnz", "tbz", "tbnz"}
#: b.COND (LLVM) and bCOND (GCC) spell a conditional branch
A64_COND = {"b" + sep + c for sep in ("", ".") for c in
            ("eq", "ne", "cs", "hs", "cc", "lo", "mi", "pl", "vs", "vc", "hi", "ls", "ge", "lt", "gt", "le")}
A64_MUL = {"mul", "madd", "msub", "mneg", "smull", "smull2", "umull", "umull2", "smaddl", "umaddl", "smsubl",
           "smulh", "umulh", "mla", "mls", "smlal", "smlal2", "smlsl", "smlsl2", "sqdmulh", "sqrdmulh", "sqdmull"}
A64_SHIFT = {"lsl", "lsr", "asr", "ror", "lslv", "lsrv", "asrv", "sshl", "ushl", "sshr", "ushr", "shl", "srshl",
             "urshl", "sqshl", "srshr", "urshr", "ssra", "usra", "shrn", "shrn2", "rshrn", "sqshrn", "sqshrn2",
             "sqrshrn", "sqrshrn2", "sli", "sri"}
A64_EXTEND = {"sxtw", "sxth", "sxtb", "uxtw", "uxth", "uxtb", "sshll", "sshll2", "ushll", "ushll2", "sxtl", "sxtl2",
              "uxtl", "uxtl2", "xtn", "xtn2", "sqxtn", "sqxtn2", "uqxtn", "uqxtn2", "sqxtun", "sqxtun2"}
A64_CMPSEL = {"cmp", "cmn", "ccmp", "ccmn", "csel", "cset", "csetm", "csinc", "cinc", "csinv", "csneg", "cneg",
              "cmgt", "cmge", "cmeq", "cmlt", "cmle", "cmhi", "cmhs", "cmtst", "smin", "smax", "umin", "umax",
              "bit", "bif", "bsl", "tst", "sminv", "smaxv"}
X86_SHIFT = ("sar", "shl", "shr", "sal", "psra", "psll", "psrl", "vpsra", "vpsll", "vpsrl", "vpshl", "vpsha")
X86_EXTEND = ("movsx", "movzx", "movsb", "movsw", "movsl", "movzb", "movzw", "cltq", "cdqe", "cqto", "cltd", "cwtl",
              "vpmovsx", "vpmovzx", "pmovsx", "pmovzx", "vpmovdw", "vpmovqd", "vpmovdb", "vpmovqw", "vpmovqb",
              "vpmovwb", "vpmovsdw", "vpmovsqd", "vpackssdw", "packssdw")
X86_CMPSEL = ("cmp", "test", "cmov", "set", "vpcmp", "pcmp", "vpmin", "vpmax", "pmin", "pmax", "vpblend", "pblend",
              "blend", "vpternlog", "kor", "kand", "kmov", "vpand", "vpor", "vpxor", "pand", "por")
A64_SIZE = {"w": 4, "x": 8, "q": 16, "d": 8, "s": 4, "h": 2, "b": 1}
X86_VREG = {"xmm": 16, "ymm": 32, "zmm": 64}


def _split(line: str):
    """(mnemonic, [operands]) of one assembly line, or None for labels, directives and comments."""
    s = line.split("//")[0].split("#")[0] if "\t#" in line or line.lstrip().startswith(("#", "//")) else line.split("//")[0]
    s = s.strip()
    if not s or s.endswith(":") or s.startswith("."):
        return None
    parts = s.split(None, 1)
    ops = []
    if len(parts) > 1:  # split on commas outside brackets / parentheses / braces
        depth, cur = 0, ""
        for ch in parts[1]:
            if ch in "[({":
                depth += 1
            elif ch in "])}":
                depth -= 1
            if ch == "," and depth == 0:
                ops.append(cur.strip())
                cur = ""
            else:
                cur += ch
        ops.append(cur.strip())
    return parts[0].lower(), ops


class Arch:
    """Instruction classes of one instruction set."""

    def __init__(self, name: str):
        self.name = name
        self.a64 = name == "aarch64"

    def is_branch(self, m: str) -> bool:
        return (m in A64_BRANCH or m in A64_COND) if self.a64 else (m.startswith("j") or m in ("call", "ret"))

    def is_cond_branch(self, m: str) -> bool:
        return (m in A64_COND or m in ("cbz", "cbnz", "tbz", "tbnz")) if self.a64 else (m.startswith("j") and m != "jmp")

    def is_vector(self, m: str, ops) -> bool:
        text = " ".join(ops)
        if self.a64:
            if re.search(r"\bv\d+(\.|\b)", text) or re.search(r"\bq\d+\b", text):
                return True
            # scalar SIMD&FP registers: loads/stores of 32/64-bit lanes and moves into the vector file
            return bool(re.search(r"^\s*[bhsd]\d+\b", ops[0] if ops else "")) and m not in ("fadd", "fmul")
        return bool(re.search(r"%[xyz]mm\d+|%k\d", text))

    def mem_access(self, m: str, ops):
        """(bytes loaded, bytes stored) by one instruction."""
        if self.a64:
            if m.startswith(("ld", "st")) and not m.startswith(("ldaxr", "stlxr")) or m in ("prfm",):
                if m == "prfm":
                    return 0, 0
                if m.startswith(("ld1", "ld2", "ld3", "ld4", "st1", "st2", "st3", "st4")):
                    regs = re.findall(r"v\d+\.(\d+)([bhsd])", ops[0])
                    n = sum(int(k) * A64_SIZE[t] for k, t in regs)
                else:
                    regs = [o for o in ops if not o.startswith("[") and not o.startswith("#")]
                    pair = m.startswith(("ldp", "stp"))
                    regs = regs[:2] if pair else regs[:1]
                    if m.endswith("b") and not pair and m not in ("stp",):
                        n = 1
                    elif m.endswith("h") and not pair:
                        n = 2
                    elif m in ("ldrsw", "ldursw"):
                        n = 4
                    else:
                        n = sum(A64_SIZE.get(re.sub(r"zr$", "", r)[:1] if r.endswith("zr") else r[:1], 0) for r in regs)
                return (n, 0) if m.startswith("ld") else (0, n)
            return 0, 0
        if m.startswith(("lea", "nop", "prefetch")) or not ops:
            return 0, 0
        dst = ops[-1]
        mem_ops = [o for o in ops if "(" in o and not o.startswith("{")]
        if not mem_ops:
            return 0, 0
        stored = loaded = 0
        if "(" in dst and not m.startswith(("cmp", "test", "bt")):
            src = [o for o in ops[:-1] if o.startswith("%")]
            size = self._x86_size(m, src[0] if src else "")
            for trunc, div in (("vpmovqb", 8), ("vpmovdb", 4), ("vpmovqw", 4), ("vpmovdw", 2), ("vpmovqd", 2),
                               ("vpmovwb", 2), ("vpmovsdw", 2), ("vpmovsqd", 2)):
                if m.startswith(trunc):
                    size //= div
            stored = size
            if not m.startswith(("mov", "vmov", "vpmov")):
                loaded = size  # read-modify-write
        else:
            regs = [o for o in ops if o.startswith("%")]
            loaded = self._x86_size(m, regs[-1] if regs else "")
            if m.startswith(("vpmovsx", "vpmovzx", "pmovsx", "pmovzx", "movsb", "movzb", "movsw", "movzw")):
                loaded = {"b": 1, "w": 2, "l": 4}.get(re.sub(r"^(v?p?mov[sz]x?)", "", m)[:1], loaded)
        return loaded, stored

    @staticmethod
    def _x86_size(m: str, reg: str) -> int:
        reg = reg.lstrip("%")
        for k, v in X86_VREG.items():
            if reg.startswith(k):
                return v
        if re.fullmatch(r"r\d+", reg) or (reg.startswith("r") and len(reg) == 3):
            return 8
        if re.fullmatch(r"r\d+d", reg) or (reg.startswith("e") and len(reg) == 3):
            return 4
        if re.fullmatch(r"r\d+w", reg) or reg in ("ax", "bx", "cx", "dx", "si", "di", "bp"):
            return 2
        if re.fullmatch(r"r\d+b", reg) or reg in ("al", "bl", "cl", "dl", "sil", "dil"):
            return 1
        return {"q": 8, "l": 4, "w": 2, "b": 1}.get(m[-1:], 8)

    def is_mul(self, m: str) -> bool:
        return m in A64_MUL if self.a64 else ("mul" in m or "madd" in m) and not m.startswith(("vf", "f"))

    def is_shift(self, m: str, ops) -> bool:
        if self.a64:
            return m in A64_SHIFT
        return m.startswith(X86_SHIFT)

    def is_extend(self, m: str, ops) -> bool:
        if self.a64:
            return m in A64_EXTEND
        return m.startswith(X86_EXTEND)

    def is_cmpsel(self, m: str) -> bool:
        return m in A64_CMPSEL if self.a64 else m.startswith(X86_CMPSEL)

    def loads_int8(self, m: str, ops) -> bool:
        if self.a64:
            # a sign-extending byte load, or a widening of byte lanes (``.16b`` alone is any bitwise op)
            return m in ("ldrsb", "ldursb") or ((m in A64_EXTEND or m.startswith(("saddw", "smlal", "smull")))
                                                and bool(re.search(r"\.(8|16)b\b", " ".join(ops[1:]))))
        return m.startswith(("movsb", "vpmovsxb", "pmovsxb"))

    def lanes(self, m: str, ops) -> set:
        if self.a64:
            return set(re.findall(r"v\d+\.(\d+[bhsd])", " ".join(ops)))
        regs = re.findall(r"%([xyz])mm", " ".join(ops))
        if not regs:
            return set()
        width = max({"x": 128, "y": 256, "z": 512}[r] for r in regs)
        suffix = {"d": 32, "q": 64, "w": 16, "b": 8}.get(m[-1:]) if m.startswith(("vp", "p")) else None
        return {f"{width}b" + (f"/i{suffix}" if suffix else "")}


# ---------------------------------------------------------------------- assembly -> loops

def functions(asm: str) -> dict[str, list[str]]:
    """Function name -> its lines, for the functions defined in ``asm``."""
    out, name = {}, None
    for line in asm.splitlines():
        m = re.match(r"^([A-Za-z_.$][\w.$]*):", line)
        if m and not m.group(1).startswith((".L", "L")):
            name = m.group(1)
            out[name] = []
            continue
        if name is not None:
            if re.match(r"^\s*\.(size|cfi_endproc)\b", line) and not out[name]:
                continue
            out[name].append(line)
    return out


def innermost_loops(lines: list[str], arch: Arch) -> list[dict]:
    """The innermost natural loops of one function: basic blocks, dominators, back edges (an edge to a
    block that dominates its source); a loop is its header with every block that reaches a back
    edge's source without passing the header (all back edges to one header make one loop). Its
    body holds every path through the loop: for a loop with branches inside, more than one
    iteration executes."""
    blocks, cur, names = [], None, {}
    for line in lines:
        m = re.match(r"^(\.?L[\w.$]+):", line)
        if m:
            cur = dict(label=m.group(1), insns=[])
            names[m.group(1)] = len(blocks)
            blocks.append(cur)
            continue
        p = _split(line)
        if not p:
            continue
        if cur is None or (cur["insns"] and arch.is_branch(cur["insns"][-1][0])):
            cur = dict(label=None, insns=[])
            blocks.append(cur)
        cur["insns"].append(p)
    n = len(blocks)
    succ = [set() for _ in range(n)]
    for b, blk in enumerate(blocks):
        last = blk["insns"][-1] if blk["insns"] else None
        ends = False
        for m, ops in blk["insns"]:
            if arch.is_branch(m) and ops and ops[-1] in names:
                succ[b].add(names[ops[-1]])
        if last is not None:
            m = last[0]
            ends = m in ("b", "br", "ret", "jmp", "retq") or (m == "jmpq")
        if not ends and b + 1 < n:
            succ[b].add(b + 1)
    pred = [set() for _ in range(n)]
    for b in range(n):
        for t in succ[b]:
            pred[t].add(b)
    # dominators, iteratively (functions here have at most a few hundred blocks)
    every = set(range(n))
    dom = [every.copy() for _ in range(n)]
    if n:
        dom[0] = {0}
    changed = True
    while changed:
        changed = False
        for b in range(1, n):
            ps = [dom[p] for p in pred[b]]
            new = (set.intersection(*ps) if ps else set()) | {b}
            if new != dom[b]:
                dom[b], changed = new, True
    loops = {}
    for u in range(n):
        for h in succ[u]:
            if h in dom[u]:  # back edge u -> h
                body, stack = {h, u}, [u]
                while stack:
                    x = stack.pop()
                    if x == h:
                        continue
                    for p in pred[x]:
                        if p not in body:
                            body.add(p)
                            stack.append(p)
                loops.setdefault(h, set()).update(body)
    inner = [h for h, body in loops.items() if not any(o != h and o in body for o in loops)]
    return [dict(label=blocks[h]["label"] or f"block{h}", body=[i for b in sorted(loops[h]) for i in blocks[b]["insns"]])
            for h in sorted(inner)]


def mix(body, arch: Arch) -> dict:
    c = Counter()
    lanes = set()
    stored_at = {}  # store address -> bytes: a store on each of two paths to one address counts once
    for m, ops in body:
        c["instructions"] += 1
        vec = arch.is_vector(m, ops)
        c["vector" if vec else "scalar"] += 1
        ld, st = arch.mem_access(m, ops)
        c["loads"] += ld > 0
        c["stores"] += st > 0
        c["load_bytes"] += ld
        addr = next((o for o in ops if "[" in o or "(" in o), "")
        spill = addr.startswith("[sp") or "(%rsp)" in addr
        c["spills"] += spill and (ld or st) > 0  # a register spilled to the stack or reloaded: not an element's data
        if st and not spill:
            addr = addr or str(len(stored_at))
            stored_at[addr] = max(stored_at.get(addr, 0), st)
        c["branches"] += arch.is_branch(m)
        c["cond_branches"] += arch.is_cond_branch(m)
        c["muls"] += arch.is_mul(m)
        c["shifts"] += arch.is_shift(m, ops)
        c["extends"] += arch.is_extend(m, ops)
        c["cmp_select"] += arch.is_cmpsel(m)
        c["int8_loads"] += arch.loads_int8(m, ops) and ld > 0
        c["int8_ops"] += arch.loads_int8(m, ops)
        lanes |= arch.lanes(m, ops)
    d = dict(c)
    d["store_bytes"] = sum(stored_at.values())
    d["lanes"] = sorted(lanes)
    return d


def role(kernel: str, mx: dict) -> tuple[str, int]:
    """(what the loop does, bytes one element stores), guessed from its instruction mix."""
    wide = "64" in kernel and "dense" in kernel
    int8 = mx.get("int8_ops", 0) > 0
    if "neuron" in kernel:
        if mx.get("store_bytes", 0) == 0:
            return "other", 0
        # the shift decay shifts by a per-neuron amount; the multiply decay multiplies (a guess from counts)
        decay = "shift" if mx.get("shifts", 0) > mx.get("muls", 0) else "mul"
        return f"neuron update (decay {decay})", 6
    if int8 and mx.get("store_bytes", 0) == 0:
        return "gather, n_out < 16 (per synapse)", -1
    if int8 and mx.get("muls", 0):
        return "row multiply-add (x != 1)", 8 if wide else 4
    if int8:
        return "row add (x = 1, spikes)", 8 if wide else 4
    if mx.get("muls", 0):
        return "requantise acc -> y", 4
    if mx.get("cmp_select", 0) and mx.get("store_bytes", 0) and mx.get("loads", 0):
        return "nonzero scan / copy", 8
    return "copy", 4


def per_element(kernel: str, loop: dict, arch: Arch) -> dict:
    mx = mix(loop["body"], arch)
    what, nbytes = role(kernel, mx)
    if nbytes == -1:  # the gather loop stores nothing: one int8 weight per element
        int8_loads = sum(1 for m, ops in loop["body"] if arch.loads_int8(m, ops) and arch.mem_access(m, ops)[0])
        elems = None if mx.get("vector", 0) else max(int8_loads, 1)  # (vector gathers: not derivable)
    else:
        elems = mx.get("store_bytes", 0) / nbytes if nbytes else None
    res = dict(label=loop["label"], role=what, vectorized=mx.get("vector", 0) > 0, lanes=mx["lanes"],
               elements_per_iteration=elems, mix=mx)
    if elems:
        res["per_element"] = {k: round(mx.get(k, 0) / elems, 3) for k in
                              ("instructions", "vector", "scalar", "loads", "stores", "muls", "shifts", "extends",
                               "cmp_select", "branches", "spills")}
    return res


# ---------------------------------------------------------------------- the Numba side

def kernel_ir(model_name: str) -> tuple[dict, dict]:
    """{(kernel, variant): LLVM IR at NUMBA_OPT=0}, and facts about the model's types."""
    import numpy as np
    from numba import typeof

    from edgebrain.kernels import dense, neuron
    from edgebrain.kernels.layout import NEURON_FLAGS, OP, OP_NEURON
    from edgebrain.model import Model

    m = Model.load(model_name)
    s = m.session(precision="int")
    p = s.program
    act, state, wbuf, ipar = s.act[0], s.state[0], p.wbuf, p.ipar
    idx = np.zeros(max(p.idx_size, 8), np.int64)
    n_in = n_out = 8
    i64 = np.int64(0)
    x, y = act[:n_in], act[:n_out]
    wt = np.zeros((n_in, n_out), wbuf.dtype)  # a reshaped C-contiguous slice of wbuf: the same type
    b = ipar[:n_out]
    variants = {
        ("dense_int", "acc int32"): (dense.dense_int, (x, wt, b, y, idx, np.zeros(n_out, np.int32), b, b, i64)),
        ("dense_int", "acc int64"): (dense.dense_int, (x, wt, b, y, idx, np.zeros(n_out, np.int64), b, b, i64)),
        ("neuron_int32", f"state {state.dtype}"): (neuron.neuron_int32,
                                                   (x, state[:n_out], y, b, b, b, b, i64, i64, i64, i64)),
        ("neuron_int", f"state {state.dtype}"): (neuron.neuron_int,
                                                 (x, state[:n_out], state[:n_out], y, *([b] * 9), i64, i64, i64, i64, i64)),
    }
    flags = sorted({int(r[NEURON_FLAGS]) for r in p.prog if r[OP] == OP_NEURON})
    # What the loop becomes when the model's flags are compile-time constants (the executor passes
    # them at run time, from the instruction row): a wrapper with the flags frozen in, which the
    # optimizer inlines the kernel into. Shows what specialising the kernel per flag set would give.
    for fl in flags:
        wrapper = _frozen_flags(neuron.neuron_int32, fl)
        variants[("neuron_int32", f"state {state.dtype}, flags {fl} constant")] = (
            wrapper, (x, state[:n_out], y, b, b, b, b, i64, i64, i64))
    out = {}
    for key, (disp, args) in variants.items():
        sig = tuple(typeof(a) for a in args)
        disp.compile(sig)
        out[key] = disp.inspect_llvm(sig)
    facts = dict(model=model_name, state_dtype=str(state.dtype), weight_dtype=str(wbuf.dtype), neuron_flags=flags)
    return out, facts


def _frozen_flags(kernel, flags: int):
    """An njit function calling ``kernel`` (neuron_int32) with ``flags`` as a constant."""
    import numba

    @numba.njit
    def neuron_int32_flags_const(x, v, out, beta_m, bias, thr, v_reset, dq, lo, hi):
        return kernel(x, v, out, beta_m, bias, thr, v_reset, flags, dq, lo, hi)

    return neuron_int32_flags_const


def numba_pipeline(ir: str, triple: str, cpu: str, features: str) -> str:
    """The assembly Numba would make of ``ir`` on that target: its pass sequence (numba/core/codegen.py,
    CPUCodeLibrary) with that target's machine."""
    import llvmlite.binding as llvm
    from numba.core import config
    from numba.core.codegen import _parse_refprune_flags

    target = llvm.Target.from_triple(triple)
    tm = target.create_target_machine(cpu=cpu, features=features, opt=3, reloc="pic", codemodel="jitdefault")
    ir = re.sub(r'^target triple = .*$', f'target triple = "{triple}"', ir, flags=re.M)
    ir = re.sub(r'^target datalayout = .*$', f'target datalayout = "{tm.target_data}"', ir, flags=re.M)
    mod = llvm.parse_assembly(ir)

    def builder(opt, loop_vectorize, slp_vectorize):
        pto = llvm.create_pipeline_tuning_options()
        pto.speed_level = opt
        pto.loop_vectorization = loop_vectorize
        pto.slp_vectorization = slp_vectorize
        return llvm.create_pass_builder(tm, pto)

    lv, slp = bool(config.LOOP_VECTORIZE), bool(config.SLP_VECTORIZE)
    refprune = config.LLVM_REFPRUNE_PASS
    for f in mod.functions:
        if not f.is_declaration:
            pb = builder(3, lv, slp)
            fpm = pb.getFunctionPassManager()
            if refprune:
                fpm.add_refprune_pass(_parse_refprune_flags())
            fpm.run(f, pb)
    pb = builder(0, False, False)  # Numba's "cheap" pass (its default _opt_level 0), then the full one
    mpm = pb.getModulePassManager()
    mpm.add_loop_rotate_pass()
    mpm.add_instruction_combine_pass()
    mpm.add_jump_threading_pass()
    if refprune:
        mpm.add_refprune_pass(_parse_refprune_flags())
    mpm.run(mod, pb)
    pb = builder(3, lv, slp)
    mpm = pb.getModulePassManager()
    if refprune:
        mpm.add_refprune_pass(_parse_refprune_flags())
    mpm.run(mod, pb)
    mod.verify()
    return tm.emit_assembly(mod)


def kernel_function(asm: str, kernel: str) -> list[str]:
    """The lines of the kernel itself (not its Python or cfunc wrappers)."""
    for name, lines in functions(asm).items():
        if kernel in name and not name.startswith(("_ZN7cpython", "cfunc.", "_ZN8cpython")):
            return lines
    raise LookupError(f"no function for {kernel} in the assembly")


# ---------------------------------------------------------------------- the C side

def c_wrapper(flags: int) -> str:
    """ref_loop.c with its dense and neuron loops exposed as functions; the neuron loop gets the
    model's flags (shift decay, identity gain, spiking, subtract)."""
    from edgebrain.kernels import neuron as N

    shift, gmem, spk, sub = (int(bool(flags & f)) for f in (N.SHIFT_DECAY, N.GMEM_IDENTITY, N.SPIKING, N.SUBTRACT))
    return (f'#define main ref_loop_main\n#include "{REF_C}"\n#undef main\n'
            "#define FLAT __attribute__((flatten))\n"  # the loops inlined into each wrapper
            "FLAT void mix_dense32(const layer_t *L, const int32_t *x) { dense32(L, x); }\n"
            "FLAT void mix_dense64(const layer_t *L, const int32_t *x) { dense64(L, x); }\n"
            f"FLAT int64_t mix_neuron(const layer_t *L) {{ return neuron_loop(L, {shift}, {gmem}, {spk}, {sub}); }}\n")


def c_asm(cc: list[str], flags_c: list[str], src: Path) -> str | None:
    if not shutil.which(cc[0]):
        return None
    out = src.with_suffix(f".{abs(hash(tuple(cc + flags_c)))}.s")
    r = subprocess.run([*cc, "-O3", "-S", "-ffp-contract=off", "-DSTATE_BITS=16", *flags_c, str(src), "-o", str(out)],
                       capture_output=True, text=True)
    if r.returncode:
        print(f"  {' '.join(cc)} failed: {r.stderr.strip()[:300]}", file=sys.stderr)
        return None
    return out.read_text()


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def tool_version(cmd: list[str]) -> str:
    try:
        return subprocess.run([*cmd, "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    except (OSError, IndexError):
        return "?"


# ---------------------------------------------------------------------- report

def analyse(asm: str, fn: str, kernel: str, arch: Arch) -> list[dict]:
    lines = kernel_function(asm, fn) if not fn.startswith("mix_") else functions(asm)[fn]
    return [per_element(kernel, lp, arch) for lp in innermost_loops(lines, arch)]


HOT = ("row add", "row multiply-add", "requantise", "neuron update (decay mul)", "neuron update (decay shift)", "gather",
       "nonzero scan")


def summary_rows(results: list[dict]) -> list[dict]:
    """Per (target, kernel, role): the loop that handles the most elements per iteration (the vector
    body when there is one), with its scalar fallback's instruction count beside it."""
    rows = {}
    for r in results:
        for lp in r["loops"]:
            if not lp["role"].startswith(HOT):
                continue
            key = (r["target"], r["kernel"], lp["role"])
            best = rows.get(key)
            e = lp["elements_per_iteration"] or 0
            if best is None or e > (best["elements_per_iteration"] or 0):
                rows[key] = dict(lp, target=r["target"], kernel=r["kernel"], scalar_per_element=None)
    for r in results:
        for lp in r["loops"]:
            key = (r["target"], r["kernel"], lp["role"])
            if key in rows and not lp["vectorized"] and lp.get("per_element"):
                rows[key]["scalar_per_element"] = lp["per_element"]["instructions"]
    order = {r: i for i, r in enumerate(HOT)}
    targets = {}
    for r in results:
        targets.setdefault(r["target"], len(targets))
    return sorted(rows.values(), key=lambda r: (next(v for k, v in order.items() if r["role"].startswith(k)), r["role"],
                                                 r["kernel"].startswith("C "), r["kernel"], targets[r["target"]]))


def markdown(rows: list[dict]) -> str:
    head = ("| loop | kernel | target | vectorized (lanes) | elem/iter | instr/elem | NEON or SIMD/elem | scalar/elem "
            "| loads/elem | stores/elem | mul/elem | shifts/elem | extends/elem | cmp+select/elem | branches/elem "
            "| scalar loop instr/elem |")
    out = [head, "|" + "|".join(["---"] * (head.count("|") - 1)) + "|"]
    for r in rows:
        pe = r.get("per_element") or {}

        def f(k, pe=pe):
            return f"{pe[k]:g}" if k in pe else "?"
        vec = ("yes " + ",".join(r["lanes"])) if r["vectorized"] else "no"
        e = r["elements_per_iteration"]
        out.append(f"| {r['role']} | {r['kernel']} | {r['target']} | {vec} | {e if e is None else f'{e:g}'} "
                   f"| {f('instructions')} | {f('vector')} | {f('scalar')} | {f('loads')} | {f('stores')} | {f('muls')} "
                   f"| {f('shifts')} | {f('extends')} | {f('cmp_select')} | {f('branches')} "
                   f"| {'' if r['scalar_per_element'] is None else r['scalar_per_element']} |")
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="zoo:har-lif", help="model whose buffers type the kernels' arguments")
    ap.add_argument("--json", metavar="OUT", help="write every loop's counts here")
    ap.add_argument("--asm-dir", metavar="DIR", help="keep the assembly files here")
    ap.add_argument("--no-x86", action="store_true", help="aarch64 only")
    args = ap.parse_args(argv)

    # Numba's IR before any LLVM pass, from a throw-away cache (never the user's: O0 code)
    tmp = Path(tempfile.mkdtemp(prefix="aarch64-mix-"))
    os.environ["NUMBA_OPT"] = "0"
    os.environ["NUMBA_CACHE_DIR"] = str(tmp / "numba-cache")
    sys.path.insert(0, str(REPO))
    import warnings

    warnings.filterwarnings("ignore")
    import llvmlite
    import llvmlite.binding as llvm
    import numba

    asm_dir = Path(args.asm_dir) if args.asm_dir else tmp
    asm_dir.mkdir(parents=True, exist_ok=True)
    print(f"compiling the kernels' IR (NUMBA_OPT=0) for the types of {args.model} ...", file=sys.stderr)
    irs, facts = kernel_ir(args.model)
    llvm.initialize_all_targets()
    llvm.initialize_all_asmprinters()
    host_triple = llvm.get_process_triple()
    targets = [(f"aarch64 {cpu}", "aarch64", "aarch64-unknown-linux-gnu", cpu, "+neon") for cpu in AARCH64_CPUS]
    if not args.no_x86 and platform.machine() in ("x86_64", "AMD64"):
        targets += [(f"x86-64 native ({llvm.get_host_cpu_name()})", "x86", host_triple, llvm.get_host_cpu_name(),
                     llvm.get_host_cpu_features().flatten()),
                    ("x86-64 haswell (AVX2)", "x86", host_triple, "haswell", "")]
    results = []
    for tname, arch_name, triple, cpu, feats in targets:
        arch = Arch(arch_name)
        for (kernel, variant), ir in irs.items():
            print(f"  {tname}: {kernel} ({variant})", file=sys.stderr)
            asm = numba_pipeline(ir, triple, cpu, feats)
            safe = re.sub(r"[^\w.-]+", "_", f"{tname}_{kernel}_{variant}")
            (asm_dir / f"{safe}.s").write_text(asm)
            fn = kernel + "_flags_const" if "constant" in variant else kernel
            results.append(dict(target=tname, kernel=f"{kernel} ({variant})", source="numba",
                                loops=analyse(asm, fn, kernel + ("64" if "int64" in variant else ""), arch)))

    # the C loop
    flags = facts["neuron_flags"][0] if facts["neuron_flags"] else 0
    src = asm_dir / "ref_loop_mix.c"
    src.write_text(c_wrapper(flags))
    c_builds = [(f"aarch64 {cpu}", "aarch64", ["aarch64-linux-gnu-gcc"], [f"-mcpu={cpu}"], "gcc") for cpu in AARCH64_CPUS]
    c_builds += [(f"aarch64 {cpu}", "aarch64", ["clang", "--target=aarch64-linux-gnu"], [f"-mcpu={cpu}"], "clang")
                 for cpu in AARCH64_CPUS[:1]]
    if not args.no_x86 and platform.machine() in ("x86_64", "AMD64"):
        c_builds += [(f"x86-64 native ({llvm.get_host_cpu_name()})", "x86", ["gcc"], ["-march=native"], "gcc"),
                     ("x86-64 haswell (AVX2)", "x86", ["gcc"], ["-march=haswell"], "gcc")]
    tools = {}
    for tname, arch_name, cc, cflags, label in c_builds:
        asm = c_asm(cc, cflags, src)
        if asm is None:
            continue
        tools[f"{label} {arch_name}"] = tool_version(cc[:1])
        (asm_dir / re.sub(r"[^\w.-]+", "_", f"C_{label}_{tname}.s")).write_text(asm)
        arch = Arch(arch_name)
        for fn, kernel in (("mix_dense32", "dense32"), ("mix_dense64", "dense64"), ("mix_neuron", "neuron")):
            results.append(dict(target=tname, kernel=f"C {label} {fn[4:]}", source="c",
                                loops=analyse(asm, fn, kernel, arch)))

    rows = summary_rows(results)
    meta = dict(facts, numba=numba.__version__, llvmlite=llvmlite.__version__,
                llvm=".".join(map(str, llvm.llvm_version_info)), c_compilers=tools,
                host_cpu=llvm.get_host_cpu_name(), host=cpu_model(),
                c_neuron_flags=flags, method="static counts of innermost-loop bodies; no timing")
    print(f"\nInteger kernels' hot loops, static instruction mix per element ({args.model}: state "
          f"{facts['state_dtype']}, weights {facts['weight_dtype']}, neuron flags {facts['neuron_flags']})\n")
    print(markdown(rows))
    print("\nStatic counts of each loop body (every path through it) divided by the elements it handles per "
          "iteration; not a timing: no aarch64 hardware was used. Host: " + meta["host"] + ". "
          "Numba " + numba.__version__ + ", llvmlite " + llvmlite.__version__ + ", LLVM " + meta["llvm"] + "; "
          + "; ".join(f"{k}: {v}" for k, v in tools.items()))
    if args.json:
        Path(args.json).write_text(json.dumps(dict(meta=meta, summary=rows, all=results), indent=1, default=str))
        print(f"wrote {args.json}", file=sys.stderr)
    if not args.asm_dir:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
