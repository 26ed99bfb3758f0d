"""The deploy smoke test, run here when the bundle is built and on the target after installing it:
``python -m edgebrain.deploy.smoke MODEL INPUT.npy`` prints one JSON line.

It runs the model over the input (time-major, from a real recording) from a fresh session, at the
model's deployed precision, and hashes what came out: the model file, every output and the final
state. The integer path is exact across instruction sets (fixed-point arithmetic, the same on x86-64
and AArch64), so on a quantized model the target's hashes must equal the ones computed here; a float
model's are reported, not required to match.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time

_T0 = time.perf_counter()  # the warm-up time includes importing edgebrain and Numba


def _hash_arrays(arrays) -> str:
    import numpy as np

    h = hashlib.sha256()
    for name, a in arrays:
        a = np.ascontiguousarray(a)
        a = a.astype(a.dtype.newbyteorder("<"), copy=False)
        h.update(f"{name}|{a.dtype.str}|{a.shape}\n".encode())
        h.update(a.tobytes())
    return h.hexdigest()


class _CompileCounter:
    """Counts Numba compiles (:func:`edgebrain.jit.watch_compiles`): none means the cache was warm."""

    def __init__(self):
        self.n = 0

    def started(self) -> None:
        self.n += 1

    def ended(self) -> None:
        pass


def run(model_path: str, input_path: str) -> dict:
    """{model_sha256, precision, steps, output_sha256, state_sha256, compiles, seconds}."""
    from .. import jit

    counter = _CompileCounter()
    jit.watch_compiles(counter)
    try:
        res = _run(model_path, input_path)
    finally:
        jit.unwatch_compiles(counter)
    return {**res, "compiles": counter.n, "seconds": round(time.perf_counter() - _T0, 3)}


def _run(model_path: str, input_path: str) -> dict:
    import numpy as np

    from ..arrays import load_array
    from ..model import Model

    with open(model_path, "rb") as f:
        model_sha = hashlib.sha256(f.read()).hexdigest()
    model = Model.load(model_path)
    precision = "int" if model.quant else "float"
    xs = load_array(input_path, "smoke input")
    sess = model.session(precision)
    out, _ = sess.run(xs)
    outs = sorted(out.items()) if isinstance(out, dict) else [("output", out)]
    state = [("state", sess.state), ("act", sess.act), ("clock", sess.clock)]
    return {"model_sha256": model_sha, "precision": precision, "steps": int(np.asarray(xs).shape[0]),
            "output_sha256": _hash_arrays(outs), "state_sha256": _hash_arrays(state)}


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m edgebrain.deploy.smoke MODEL INPUT.npy", file=sys.stderr)
        return 2
    try:
        res = run(*args)
    except Exception as e:  # noqa: BLE001 - one line for the deploying side to show
        print(f"{type(e).__name__}: {e}".replace("\n", " "), file=sys.stderr)
        return 1
    print(json.dumps(res, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
