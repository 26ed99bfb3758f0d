"""``edgebrain profile``: measured energy per inference beside the analytical estimate, and the
NeuroBench metrics, for one model on one workload.

An application of the libraries: the workloads (:mod:`.workload`), the profile itself (:mod:`.run`)
and its human-readable report (:mod:`.report`).

    from edgebrain.apps.profile import profile, format_report
    res = profile(model, xs=x, meter="um25c:/dev/rfcomm0", device="rpi4b")   # or source="walk.csv"
    print(format_report(res)); json.dumps(res)

**What an inference is.**

* ``xs`` (a time-major array ``(T, *input)`` or ``(T, B, *input)``): one inference is one pass over
  the whole ``T``-step sequence from the reset state, for one sample; a batch of ``B`` samples is
  ``B`` inferences per pass. The array is run again and again (state reset before each pass) to
  fill the measurement. Per-timestep values are the per-inference ones divided by ``T``.
* ``source`` (a recording or live link, as ``edgebrain stream`` takes it): one inference is one
  *decision* of the model's decoder. A recording is streamed from its start on every pass (a
  fresh pipeline, state reset) until the measurement is long enough; a live source is streamed
  once, for the measurement's duration. Per-timestep values divide by the model steps the
  decisions took.

**How.** A first, unmeasured pass compiles the kernels and captures the input the model actually
sees (the array, or the encoder's output for a source, up to :data:`METRIC_STEPS_CAP` steps).
The measurement then follows :func:`edgebrain.energy.measure.measure` (idle baseline, sampling
thread, integration, baseline subtraction, uncertainty). The NeuroBench metrics
(:func:`edgebrain.metrics.metrics`) and the operation counts (:func:`edgebrain.metrics.count_ops`)
are computed on the captured input at the deployed precision, and the analytical estimate
(:func:`edgebrain.energy.estimate.estimate`) multiplies the counts by the device profile's energies
per operation: per inference = per step × steps per inference.
"""

from .files import profile_files
from .interpreted import call_counts, is_interpreted, profile_interpreted
from .report import format_report, measurement_warnings
from .run import (DEFAULT_BASELINE_S, MIN_PERIODS, MODEL_METER_DURATION_S, check_duration, check_plot_path,
                  default_precision, profile)
from .workload import METRIC_STEPS_CAP, Workload, input_workload, source_workload

__all__ = ["DEFAULT_BASELINE_S", "METRIC_STEPS_CAP", "MIN_PERIODS", "MODEL_METER_DURATION_S", "Workload",
           "call_counts", "check_duration", "check_plot_path", "default_precision", "format_report", "input_workload",
           "is_interpreted", "measurement_warnings", "profile", "profile_files", "profile_interpreted",
           "source_workload"]
