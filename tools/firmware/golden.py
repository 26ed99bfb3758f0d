"""Golden vectors for the C runtime's test driver (``make -C firmware test``): for each case of
tests/firmware/cases.py, the blob, the inputs and what the Numba integer session computes from
them (every output, the final state, activations and saturation counters), in one ``.ebgv`` file.

    python tools/firmware/golden.py OUT_DIR [--quick]

``--quick`` writes one case of each kind (a neuron-flag program per state width, each random
network at one width, two pruned networks, one zoo model) instead of all of them.

The ``.ebgv`` layout (little-endian; firmware/test/eb_golden_test.c reads it):

    "EBGV", u32 version (1), u32 steps, n_in, n_out, n_rows, state_bytes, act_n, blob_len,
    u32 name_len, the name (padded to 8 bytes), the blob (padded to 8 bytes),
    inputs (steps × n_in float32), outputs (steps × n_out float32),
    final state (state_bytes), final activations (act_n int32), saturation counters (n_rows int64)
"""

from __future__ import annotations

import argparse
import struct
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from edgebrain import blob  # noqa: E402
from edgebrain.session import Session  # noqa: E402
from tests.conftest import find_datasets  # noqa: E402
from tests.firmware import cases  # noqa: E402

GOLDEN_VERSION = 1


def _pad(b: bytes) -> bytes:
    return b + b"\0" * ((-len(b)) % 8)


def golden_bytes(name: str, program, xs: np.ndarray) -> bytes:
    """One ``.ebgv`` file's bytes: the Numba int session run over ``xs`` from reset."""
    data = blob.pack(program)
    sess = Session(program)
    xs = np.ascontiguousarray(xs, np.float32).reshape(len(xs), -1)
    ys, _ = sess.run(xs.reshape((len(xs),) + tuple(program.input_shape)))
    if isinstance(ys, dict):  # in output-column order
        ys = np.concatenate([np.asarray(ys[k]).reshape(len(xs), -1) for k in program.outputs], axis=1)
    ys = np.ascontiguousarray(ys, np.float32).reshape(len(xs), -1)
    state = sess.state[0, :program.state_size]
    act = sess.act[0, :program.act_size]
    head = struct.pack("<4s9I", b"EBGV", GOLDEN_VERSION, len(xs), xs.shape[1], ys.shape[1], len(program.prog),
                       state.nbytes, act.size, len(data), len(name.encode()))
    return b"".join([head, _pad(name.encode()), _pad(data), xs.astype("<f4").tobytes(), ys.astype("<f4").tobytes(),
                     state.astype(state.dtype.newbyteorder("<")).tobytes(), act.astype("<i4").tobytes(),
                     sess.saturations.astype("<i8").tobytes()])


def all_cases(quick: bool):
    for sb in (16, 32):
        for k, (name, prog, xs, _) in enumerate(cases.neuron_programs(sb)):
            if not quick or k == 0:
                yield name, prog, xs
    for k, (name, prog, xs) in enumerate(cases.networks()):
        if not quick or k % len(cases.WIDTHS) == len(cases.WIDTHS) - 1:
            yield name, prog, xs
    for k, (name, prog, xs) in enumerate(cases.pruned_cases()):
        if not quick or k in (1, len(cases.PRUNED_WIDTHS) - 1):  # sparse 4-bit rows; 64-bit accumulators
            yield name, prog, xs
    root, _ = find_datasets()
    if root is not None:
        for name, prog, xs in cases.zoo_cases(root):
            yield name, prog, xs
            if quick:
                break


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--quick", action="store_true", help="one case of each kind")
    a = ap.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    for old in a.out.glob("*.ebgv"):
        old.unlink()
    n = 0
    for name, prog, xs in all_cases(a.quick):
        (a.out / f"{name}.ebgv").write_bytes(golden_bytes(name, prog, xs))
        n += 1
    print(f"wrote {n} golden vectors to {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
