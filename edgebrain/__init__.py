"""edgebrain: run spiking models trained elsewhere, fast and frugally, on hardware you can buy.

    import edgebrain
    model = edgebrain.load("model.nir", dt=1e-4)     # or a .ebm file
    sess = model.session("float")
    y = sess.step(x)
"""

from .errors import EdgebrainError, FormatError, InputError, ModelError
from .version import __version__


def load(path, **kw):
    """Load a model from a .ebm or .nir file (see :meth:`edgebrain.model.Model.load`)."""
    from .model import Model

    return Model.load(path, **kw)


def __getattr__(name):
    if name in ("Model", "Graph"):
        from .graph import Graph
        from .model import Model

        return {"Model": Model, "Graph": Graph}[name]
    raise AttributeError(name)


__all__ = ["load", "Model", "Graph", "EdgebrainError", "FormatError", "InputError", "ModelError", "__version__"]
