"""``edgebrain run`` of a model another runtime runs (TFLite through its interpreter, ONNX through ONNX
Runtime): what the two share. The options that only a spiking model takes are refused in one line; the
input is read and checked, the outputs (and a stateful model's states) saved as a spiking model's run
saves them, and the summary has the same keys (:mod:`edgebrain.apps.tflite`, :mod:`edgebrain.apps.onnx`)."""

from __future__ import annotations

import time

import numpy as np

from ..errors import InputError
from ..safeio import atomic_write, check_output, reading


def refuse_spiking_options(name: str, model, precision, record, backend: str, what: str, fixed: str,
                           runner: str) -> None:
    """One line for ``--precision``, ``--record`` or ``--backend`` on ``model`` (``what``: "a TFLite model";
    ``fixed``: how its precision was fixed, "converted to"; ``runner``: what runs it)."""
    if precision is not None:
        raise InputError(f"--precision {precision}: {what} runs at the precision it was {fixed} "
                         f"({model.precision} input)", file=name)
    if record:
        raise InputError(f"--record names nodes of spiking models; {what} has none", file=name)
    if backend != "numba":
        raise InputError(f"--backend {backend}: {what} runs on {runner}", file=name)


def run_and_save(model, name: str, fmt: str, input: str, output: str, compute) -> dict:
    """Read ``input``, check it (``model.check_input``), compute ``(outputs, states)`` with ``compute(xs)``
    and save them to the .npz ``output`` (``output`` or ``output/NAME``, and ``state/NAME``); the summary."""
    from ..arrays import load_array

    with reading(input, model.path):
        check_output(output)
        xs = model.check_input(load_array(input, "input"), file=input)
        t0 = time.perf_counter()
        outs, states = compute(xs)
        elapsed = time.perf_counter() - t0
        arrays = ({"output": next(iter(outs.values()))} if len(outs) == 1 else
                  {f"output/{k}": v for k, v in outs.items()})
        arrays.update({f"state/{k}": v for k, v in states.items()})
        with atomic_write(output, "output") as f:
            np.savez(f, **arrays)
    return {"model": name, "format": fmt, "input": input, "output": output, "precision": model.precision,
            "deployed_precision": model.precision, "backend": model.runtime, "threads": model.threads,
            "stateful": model.stateful, "steps": int(xs.shape[0]), "batch": 1, "seconds": elapsed,
            "us_per_step": 1e6 * elapsed / max(1, xs.shape[0]), "arrays": sorted(arrays), "spike_rate": {}}


def format_run(s: dict) -> str:
    """The line ``edgebrain run`` prints for the summary of :func:`run_and_save`."""
    what = "timesteps (states fed back)" if s.get("stateful") else "inferences"
    return (f"ran {s['steps']} {what} ({s['precision']} input) on {s['backend']} with {s['threads']} "
            f"thread{'s' if s['threads'] != 1 else ''} in {s['seconds']:.3f} s ({s['us_per_step']:.1f} µs each); "
            f"wrote {s['output']}: " + ", ".join(s["arrays"]))
