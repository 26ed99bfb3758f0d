"""``edgebrain demo``: zoo models on real test recordings (:mod:`.recorded`), or the built-in
synthetic example (:mod:`.motion`); their scoring (:mod:`.scoring`), energy figure (:mod:`.energy`)
and printing (:mod:`.printing`). The example's generated data is a library: :mod:`edgebrain.synthetic`.
"""

from .motion import run_demo
from .recorded import ZOO_DEMOS, demo_recordings, run_zoo_demo

__all__ = ["ZOO_DEMOS", "demo", "demo_recordings", "run_demo", "run_zoo_demo"]


def demo(name: str = "har", *, precision: str = "int", items: int = 0, realtime: bool = False,
         json_out: bool = False) -> None:
    """``edgebrain demo NAME``: ``motion`` runs the built-in synthetic example, any other name a zoo
    demo on real recordings (which itself falls back to synthetic data when none are found)."""
    if name == "motion":
        run_demo(json_out=json_out)
    else:
        run_zoo_demo(name, precision=precision, items=items, realtime=realtime, json_out=json_out)
