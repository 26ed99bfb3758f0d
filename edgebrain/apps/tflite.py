"""``edgebrain run | inspect MODEL.tflite``: TensorFlow Lite models through the TFLite interpreter
(:mod:`edgebrain.tflite_session`), with the same outputs and JSON shapes as for spiking models
(``bench``: :func:`edgebrain.apps.bench.bench_tflite`). docs/tflite.md says what is supported."""

from __future__ import annotations

from ..tflite_session import TFLiteModel
from .interpreted import refuse_spiking_options, run_and_save


def run_tflite_file(model: TFLiteModel, input: str, output: str, precision=None, record=(), backend: str = "numba",
                    model_name: str | None = None) -> dict:
    """``edgebrain run MODEL.tflite -i X.npy -o OUT.npz``: one inference per sample of ``X``
    (``(N, *sample)``, or one sample), outputs dequantized to float, saved as ``output`` (one output)
    or ``output/NAME`` (several) with shape ``(N, *output sample)``. A stateful model (as an ONNX one,
    :func:`edgebrain.apps.onnx.run_onnx_file`): one timestep per row of ``X`` (``(T, *sample)``) from the
    initial state, each state output fed back, and ``state/NAME`` for each state output after each step.
    Returns the summary ``--json`` prints (the keys of a spiking model's run, ``steps`` being the samples)."""
    name = model_name if model_name is not None else model.path
    refuse_spiking_options(name, model, precision, record, backend, "a TFLite model", "converted to",
                           "the TFLite interpreter")

    def compute(xs):
        return model.run_steps(xs, file=input) if model.stateful else (model.run(xs, file=input), {})

    return run_and_save(model, name, "tflite", input, output, compute)


def print_inspect(c, s: dict) -> None:
    """``edgebrain inspect MODEL.tflite`` for people: inputs and outputs, one row per operator, the
    tensors with their quantization, then the totals."""
    from rich.table import Table

    def io(rows):
        return ", ".join(f"{r['name']} {tuple(r['shape'])} {r['dtype']}" + _q(r["quantization"]) + _role(r)
                         for r in rows)

    c.print(f"[bold]{s['file']}[/]  TFLite schema v{s['schema_version']}, {s['file_bytes']} bytes, "
            f"{s['subgraphs']} subgraph(s); read with {s['runtime']}")
    c.print(f"inputs: {io(s['inputs'])}")
    c.print(f"outputs: {io(s['outputs'])}")
    if s.get("state"):
        states = ", ".join(f"{i} ← {o}" for i, o in s["state"].items())
        how = {"sidecar": f"the sidecar {s['sidecar']}", "names": "their names"}.get(s["state_from"], "")
        c.print(f"{s['kind']}: states {states} (paired by {how}; initial state: {s['initial_state']})")
    t = Table()
    for col in ("#", "operator", "inputs", "outputs", "output shape", "MACs"):
        t.add_column(col, justify="right" if col in ("#", "MACs") else "left")
    for op in s["operators"]:
        t.add_row(str(op["index"]), op["op"], str(op["inputs"]), str(op["outputs"]), str(tuple(op["output_shape"])),
                  str(op["macs"]))
    c.print(t)
    t = Table()
    for col in ("#", "tensor", "shape", "dtype", "bytes", "kind", "quantization"):
        t.add_column(col, justify="right" if col in ("#", "bytes") else "left")
    for r in s["tensors"]:
        name = r["name"] if len(r["name"]) <= 60 else r["name"][:28] + "…" + r["name"][-31:]  # --json: in full
        t.add_row(str(r["index"]), name, str(tuple(r["shape"])), r["dtype"], str(r["bytes"]),
                  "constant" if r["constant"] else "activation", _q(r["quantization"]).strip())
    c.print(t)
    tot = s["totals"]
    c.print(f"{tot['operators']} operators, {tot['macs']} MACs per inference; {tot['parameters']} parameters, "
            f"{tot['constant_bytes']} B of constants; activations {tot['activation_bytes']} B in all, at most "
            f"{tot['activation_peak_bytes']} B alive at once (the tensor arena's lower bound)")


def _role(r) -> str:
    if r.get("role") in (None, "data", "output"):
        return ""
    return f" (state, {'from ' + r['fed_from'] if 'fed_from' in r else 'to ' + r['feeds']})"


def _q(q) -> str:
    if not q:
        return ""
    sc, zp = q["scale"], q["zero_point"]
    if len(sc) == 1:
        return f" scale {sc[0]:.6g} zero point {zp[0]}"
    return f" per-channel (axis {q['quantized_dimension']}, {len(sc)} scales {min(sc):.3g}…{max(sc):.3g})"
