"""``edgebrain run | inspect | stream MODEL.onnx``: ONNX models through ONNX Runtime
(:mod:`edgebrain.onnx_session`), with the same outputs and JSON shapes as for spiking models (``bench``:
:func:`edgebrain.apps.bench.bench_onnx`; ``stream``: :mod:`edgebrain.onnx_stream`). docs/onnx.md says what is
supported."""

from __future__ import annotations

import time

import numpy as np

from ..errors import InputError, ModelError
from ..onnx_session import OnnxModel
from ..safeio import atomic_write, check_output, reading


def load_onnx(path: str, command, dt=None, dialect=None, reset=None):
    """The ONNX model at ``path`` for a command (:func:`edgebrain.cli_common.load_model`): ``command`` false for
    a command that does not run ONNX models (one line), ``"stream"`` for the stream pipeline's model."""
    if not command:
        raise ModelError("an ONNX model; edgebrain runs those with run, stream, inspect and bench (docs/onnx.md), not "
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
    from ..arrays import load_array

    name = model_name if model_name is not None else model.path
    if precision is not None:
        raise InputError(f"--precision {precision}: an ONNX model runs at the precision it was exported at "
                         f"({model.precision} input)", file=name)
    if record:
        raise InputError("--record names nodes of spiking models; an ONNX model has none", file=name)
    if backend != "numba":
        raise InputError(f"--backend {backend}: an ONNX model runs on ONNX Runtime", file=name)
    with reading(input, model.path):
        check_output(output)
        xs = model.check_input(load_array(input, "input"), file=input)
        t0 = time.perf_counter()
        outs, states = model.run(xs, file=input)
        elapsed = time.perf_counter() - t0
        arrays = ({"output": next(iter(outs.values()))} if len(outs) == 1 else
                  {f"output/{k}": v for k, v in outs.items()})
        arrays.update({f"state/{k}": v for k, v in states.items()})
        with atomic_write(output, "output") as f:
            np.savez(f, **arrays)
    return {"model": name, "format": "onnx", "input": input, "output": output, "precision": model.precision,
            "deployed_precision": model.precision, "backend": model.runtime, "threads": model.threads,
            "stateful": model.stateful, "steps": int(xs.shape[0]), "batch": 1, "seconds": elapsed,
            "us_per_step": 1e6 * elapsed / max(1, xs.shape[0]), "arrays": sorted(arrays), "spike_rate": {}}


def format_run(s: dict) -> str:
    """The line ``edgebrain run`` prints for an ONNX model."""
    what = "timesteps (states fed back)" if s["stateful"] else "inferences"
    return (f"ran {s['steps']} {what} ({s['precision']} input) on {s['backend']} with {s['threads']} "
            f"thread{'s' if s['threads'] != 1 else ''} in {s['seconds']:.3f} s ({s['us_per_step']:.1f} µs each); "
            f"wrote {s['output']}: " + ", ".join(s["arrays"]))


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
