"""``edgebrain convert``: read a model (NIR or .ebm), give it stream settings, quantize it, write it."""

from __future__ import annotations

from pathlib import Path

from ..errors import EdgebrainError, InputError
from ..safeio import check_output, reading


def convert(model: str, output: str, *, dt=None, dialect=None, reset=None, weight_bits: int | None = None,
            calib: str | None = None, labels: str | None = None, state_bits: int = 16, per_channel: bool = True,
            decay: str = "mul", encoder=None, decoder=None, class_names: list | None = None, rate=None,
            progress: bool = False) -> tuple[dict, dict, object]:
    """Convert the model file ``model`` to ``output`` (.ebm, or .nir to export), storing the stream
    settings given (checked, see :func:`edgebrain.stream.pipeline.set_stream_config`) and, with
    ``weight_bits``, quantizing it on the calibration input in the .npy file ``calib`` (class
    ``labels`` from a .npy file, optional). Returns (result, the written model's summary, the
    :class:`edgebrain.quant.QuantReport` or None); ``result`` is what ``--json`` prints."""
    from ..tflite_io import is_tflite_file

    if is_tflite_file(model):  # a TFLite ANN converts with --to-snn (apps/convert_snn.py)
        raise InputError("a TensorFlow Lite model converts to a spiking model with --to-snn --calib SAMPLES.npy "
                         "(docs/conversion.md)", file=model)
    with reading(model, calib, labels):
        check_output(output, "model file")  # before any work: not a link, not a directory, not an input
        return _convert(model, output, dt=dt, dialect=dialect, reset=reset, weight_bits=weight_bits, calib=calib,
                        labels=labels, state_bits=state_bits, per_channel=per_channel, decay=decay,
                        encoder=encoder, decoder=decoder, class_names=class_names, rate=rate, progress=progress)


def _convert(model, output, *, dt, dialect, reset, weight_bits, calib, labels, state_bits, per_channel, decay,
             encoder, decoder, class_names, rate, progress):
    from ..model import Model
    from ..stream.pipeline import set_stream_config

    m = Model.load(model, dt=dt, dialect=dialect, reset=reset)
    set_stream_config(m, encoder=encoder, decoder=decoder, labels=class_names, rate=rate)
    report = None
    if weight_bits:
        if not calib:
            raise InputError("quantization needs calibration data: pass --calib FILE.npy (inputs the model will see)")
        from ..arrays import load_array
        from ..quant import quantize

        xs = load_array(calib, "calibration")
        lab = load_array(labels, "labels") if labels else None
        try:
            m, report = quantize(m, xs, weight_bits=weight_bits, state_bits=state_bits, per_channel=per_channel,
                                 decay=decay, labels=lab, progress=progress)
        except EdgebrainError as e:
            raise e.with_file(calib) if isinstance(e, InputError) else e
    out = Path(output)
    if out.suffix.lower() == ".nir":
        m.export_nir(out)
    else:
        m.save(out)
    summary = m.summary()
    result = {"input": model, "output": str(out), "import": summary.get("import"), "dt": summary["dt"],
              "dialect": summary["dialect"], "nodes": len(summary["nodes"]), "params": summary["totals"]["params"],
              "quantization": report.as_dict() if report else None}
    return result, summary, report
