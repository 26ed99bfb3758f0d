"""``edgebrain profile`` on files: a ``.npy`` input or a source, the power timeline written to a PNG, for a
spiking model (:func:`.run.profile`) or a model another runtime runs (:func:`.interpreted.profile_interpreted`)."""

from __future__ import annotations

import numpy as np

from .interpreted import is_interpreted, profile_interpreted
from .run import check_plot_path, profile


def profile_files(model, *, input: str | None = None, source: str | None = None, plot: str | None = None,
                  **options) -> dict:
    """:func:`profile` on a ``.npy`` input file or a source, with the power timeline written to
    ``plot`` (a PNG; checked before the run, which takes minutes) when given."""
    from ...arrays import load_array

    if plot:
        check_plot_path(plot)
    xs = load_array(input, "input") if input is not None else None
    how = profile_interpreted if is_interpreted(model) else profile
    res = how(model, xs=xs, source=source, input_name=input or "input", timeline=bool(plot), **options)
    if plot:
        from ...energy.plot import plot_profile

        res["plot"] = plot_profile(res, plot)
    tl = res.get("estimate_timeline")
    if tl is not None:  # the JSON keeps the per-decision figures, not the per-step arrays
        res["estimate_timeline"] = {"per": tl["per"], "t": np.asarray(tl["t"]).tolist(),
                                    "energy_j": np.asarray(tl["energy_j"]).tolist(),
                                    "steps": np.asarray(tl["steps"]).tolist(), "mean_j": tl["mean_j"],
                                    "note": tl["note"]}
    return res
