"""``edgebrain run | inspect | stream MODEL.onnx``: ONNX models through ONNX Runtime
(:mod:`edgebrain.onnx_session`), with the same outputs and JSON shapes as for spiking models (``bench``:
:func:`edgebrain.apps.bench.bench_onnx`; ``stream``: :mod:`edgebrain.onnx_stream`). docs/onnx.md says what is
supported."""

from __future__ import annotations

from ..errors import ModelError
from ..onnx_session import OnnxModel
from .interpreted import refuse_spiking_options, run_and_save


def load_onnx(path: str, command, dt=None, dialect=None, reset=None):
    """The ONNX model at ``path`` for a command (:func:`edgebrain.cli_common.load_model`): ``command`` false for
    a command that does not run ONNX models (one line), ``"stream"`` for the stream pipeline's model."""
    if not command:
        raise ModelError("an ONNX model; edgebrain runs those with run, stream, inspect, bench and profile (docs/onnx.md), not "
                         "with this command", file=path)
    if any(v is not None for v in (dt, dialect, reset)):
        raise ModelError("--dt, --dialect and --reset apply to NIR files; this is an ONNX model", file=path)
    if command == "stream":
        from ..onnx_stream import stream_model

        return stream_model(path)
    return OnnxModel.load(path)


def run_onnx_file(model: OnnxModel, input: str, output: str, precision=None, record=(), backend: str = "numba",
                  model_name: str | None = None) -> dict:
    """``edgebrain run MODEL.onnx -i X.npy -o OUT.npz``. A stateless model: one inference per sample of ``X``
    (``(N, *sample)``, or one sample). A stateful model: one timestep per row of ``X`` (``(T, *sample)``), from
    the initial state, each state output fed back. Saved: ``output`` (one output) or ``output/NAME`` (several),
    ``(N, *output sample)``, and for a stateful model ``state/NAME`` for each state output after each step.
    Returns the summary ``--json`` prints (the keys of a spiking model's run)."""
    name = model_name if model_name is not None else model.path
    refuse_spiking_options(name, model, precision, record, backend, "an ONNX model", "exported at", "ONNX Runtime")
    return run_and_save(model, name, "onnx", input, output, lambda xs: model.run(xs, file=input))


def print_inspect(c, s: dict) -> None:
    """``edgebrain inspect MODEL.onnx`` for people: inputs and outputs with their roles (data, state, output),
    then one row per operator with its MACs (with the ``onnx`` package), and the totals."""
    from rich.table import Table

    c.print(f"[bold]{s['file']}[/]  ONNX, {s['file_bytes']} bytes, produced by {s['producer'] or '?'}"
            + (f", opset {s['opset'].get('ai.onnx', '?')}" if s.get("opset") else "") + f"; run with {s['runtime']}")
    states = ", ".join(f"{i} ← {o}" for i, o in s["state"].items())
    how = {"sidecar": f"the sidecar {s['sidecar']}", "names": "their names"}.get(s["state_from"], "")
    c.print(f"{s['kind']}" + (f": states {states} (paired by {how}; initial state: {s['initial_state']})"
                              if s["state"] else ""))
    t = Table()
    for col in ("", "name", "shape", "dtype", "role"):
        t.add_column(col)
    for side in ("inputs", "outputs"):
        for r in s[side]:
            pair = r.get("fed_from") or r.get("feeds")
            role = r["role"] + (f" ({'from' if 'fed_from' in r else 'to'} {pair})" if pair else "")
            t.add_row(side[:-1], r["name"], str(r["shape"]), r["dtype"], role)
    c.print(t)
    if s["operators"] is None:
        c.print(f"note: {s['note']}")
        return
    t = Table()
    for col in ("#", "operator", "output", "output shape", "MACs"):
        t.add_column(col, justify="right" if col in ("#", "MACs") else "left")
    for op in s["operators"]:
        out = op["outputs"][0] if op["outputs"] else ""
        out = out if len(out) <= 40 else "…" + out[-39:]  # (--json: in full)
        t.add_row(str(op["index"]), op["op"], out, str(tuple(op["output_shape"])), str(op["macs"]))
    c.print(t)
    tot = s["totals"]
    c.print(f"{tot['operators']} operators, {tot['macs']} MACs per run; {tot['parameters']} parameters, "
            f"{tot['constant_bytes']} B of constants; state {tot['state_bytes']} B")
