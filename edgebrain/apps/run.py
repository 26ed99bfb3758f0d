"""``edgebrain run``: a model over a whole input sequence from a .npy file, outputs saved to .npz."""

from __future__ import annotations

import sys
import time

import numpy as np

from ..errors import InputError, ModelError
from ..safeio import atomic_write, check_output, reading

PROGRESS_MIN_STEPS = 20000  # steps × batch below which a run is too short for a progress bar


def run_file(model, input: str, output: str, precision: str | None = None, record=(), progress: bool = True,
             model_name: str | None = None, backend: str = "numba") -> dict:
    """Run ``model`` over the time-major sequence in the .npy file ``input`` ((T, *input) or
    (T, B, *input)) at ``precision`` (None: the one it was deployed at, int when quantized) and save
    the outputs (``output``, or ``output/NAME`` for several) and the recorded nodes' ``spikes/``,
    ``v/`` (``i/``) arrays to the .npz file ``output``. The nodes in ``record`` are checked, and the
    int program built, before the input is read. ``progress`` allows a bar on an interactive
    terminal for long runs. Returns the summary ``--json`` prints.
    ``output`` is written atomically, exactly under that name, and may not be the input or the model.
    ``backend="c"`` runs the integer program on the C runtime (:func:`edgebrain.csession.for_model`:
    no Numba in the process once the model's blob is cached; a batched input runs its sequences one
    after the other); the outputs are those of the Numba integer path, bit for bit."""
    if getattr(model, "format", None) == "tflite":  # a TFLite model: through its interpreter (docs/tflite.md)
        from .tflite import run_tflite_file

        return run_tflite_file(model, input, output, precision, record, backend, model_name)
    if getattr(model, "format", None) == "onnx":  # an ONNX model: through ONNX Runtime (docs/onnx.md)
        from .onnx import run_onnx_file

        return run_onnx_file(model, input, output, precision, record, backend, model_name)
    with reading(input, getattr(model, "path", None)):
        check_output(output)
        return _run_file(model, input, output, precision, record, progress, model_name, backend)


def _run_c(sess, xs, batch, record):
    """(outputs, records) of the C session over xs, as :meth:`Session.run` returns them."""
    if batch == 1 and xs.ndim == len(sess.program.input_shape) + 1:
        return sess.run(xs, record=record)
    runs = []
    for b in range(batch):  # one stream per batch element, from the initial state (as a batch runs)
        sess.reset()
        runs.append(sess.run(xs[:, b], record=record))
    def stack(vs):  # (T, B, ...) as a batched Session returns
        return np.stack(vs, axis=1)

    outs = [o for o, _ in runs]
    out = {k: stack([o[k] for o in outs]) for k in outs[0]} if isinstance(outs[0], dict) else stack(outs)
    return out, {k: stack([r[k] for _, r in runs]) for k in runs[0][1]}


def _run_file(model, input, output, precision, record, progress, model_name, backend) -> dict:
    from ..arrays import load_array, time_major

    name = model_name if model_name is not None else model.path
    if backend not in ("numba", "c"):
        raise InputError(f"backend '{backend}'; expected numba or c")
    deployed = "int" if model.quant else "float"
    precision = precision or deployed
    for node in record:
        if node not in model.graph.nodes:
            raise InputError(f"--record {node}: no node of that name; expected one of {', '.join(model.graph.order)}",
                             file=name)
    if backend == "c":
        if precision != "int":
            raise ModelError(f"--backend c runs integer programs only; this model runs in {precision} precision "
                             + ("(--precision float needs --backend numba)" if model.quant else
                                "(quantize it with edgebrain convert --quantize int8, or use --backend numba)"),
                             file=name)
        csess = model.session("int", backend="c")  # a clear error now (no C compiler...), before reading the input
    elif precision == "int":
        model.program("int")  # a clear error now if the model is not quantized, before reading the input
    xs = load_array(input, "input")
    b = time_major(xs, model.input_shape, file=input)
    batch = 1 if b is None else b
    try:
        if backend == "c":
            t0 = time.perf_counter()
            out, rec = _run_c(csess, xs, batch, record)
        else:
            sess = model.session(precision, batch=batch)
            t0 = time.perf_counter()
            out, rec = sess.run(xs, record=record, progress=(progress and xs.shape[0] * batch > PROGRESS_MIN_STEPS
                                                             and sys.stderr.isatty()))
        elapsed = time.perf_counter() - t0
    except InputError as e:
        raise e.with_file(input)
    arrays = {"output": out} if not isinstance(out, dict) else {f"output/{k}": v for k, v in out.items()}
    arrays.update(rec)
    with atomic_write(output, "output") as f:  # exactly the file named (np.savez would add .npz to a name)
        np.savez(f, **arrays)
    spikes = {k: float(np.mean(v)) for k, v in rec.items() if k.startswith("spikes/")}
    return {"model": name, "input": input, "output": output, "precision": precision, "deployed_precision": deployed,
            "backend": backend,
            "steps": int(xs.shape[0]), "batch": batch, "seconds": elapsed,
            "us_per_step": 1e6 * elapsed / max(1, xs.shape[0]), "arrays": sorted(arrays), "spike_rate": spikes}


def format_run(s: dict) -> str:
    """The line ``edgebrain run`` prints for the summary ``s`` of :func:`run_file`."""
    if s.get("format") in ("tflite", "onnx"):  # a model another runtime ran
        from .interpreted import format_run as format_interpreted_run

        return format_interpreted_run(s)
    as_deployed = " (as deployed)" if s.get("deployed_precision") == s["precision"] else ""
    on_c = s.get("backend") == "c"
    return (f"ran {s['steps']} steps × batch {s['batch']} in {s['precision']} precision{as_deployed}"
            f"{' on the C runtime' if on_c else ''} in {s['seconds']:.3f} s "
            f"({s['us_per_step']:.1f} µs/step{'' if on_c else ', including first-call compile'}); wrote {s['output']}: "
            + ", ".join(s["arrays"]))
