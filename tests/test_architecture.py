"""The house rules of docs/architecture.md, read from the code's own imports.

* no import loop between modules of ``edgebrain/``, counting imports made inside functions;
* no module imports another module's private name (one with a leading underscore), and a
  private module (``_kernels.py``) is imported only from inside its own folder;
* no module of ``edgebrain/`` is over 700 lines, and each file of the command line (``cli*.py``) is under 400;
* the layers import downwards only (``LAYERS``), and the stream's stages do not import each other
  (``STAGES``): docs/architecture.md draws the same picture.

The imports are read with :mod:`ast` (nothing is imported or run), so a lazy import inside a
function counts like one at the top of the file.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

PKG = REPO / "edgebrain"
MAX_LINES = 700
MAX_CLI_LINES = 400


#: bottom to top; a module may import modules of its own layer or below (longest prefix wins).
#: The package's own ``__init__`` (the facade ``edgebrain.load`` etc.) stands outside the layers.
LAYERS = [
    ["edgebrain.errors", "edgebrain.jit", "edgebrain._numba_cache", "edgebrain.options", "edgebrain.progress", "edgebrain.version", "edgebrain.safeio",
     "edgebrain.infile"],
    ["edgebrain.kernels"],
    ["edgebrain.ops"],
    ["edgebrain.qparams", "edgebrain.graph", "edgebrain.dialects", "edgebrain.arrays", "edgebrain.card"],
    ["edgebrain.nir_io", "edgebrain.nir_reset", "edgebrain.program", "edgebrain.blob", "edgebrain.cbuild",
     "edgebrain.proto", "edgebrain.tflite_io", "edgebrain.tflite_ann", "edgebrain.tflite_convert", "edgebrain.onnx_io",
     "edgebrain.state_pairs", "edgebrain.sidecar"],
    ["edgebrain.session", "edgebrain.csession", "edgebrain.tflite_session", "edgebrain.onnx_session"],
    ["edgebrain.ebm"],
    ["edgebrain.zoo"],
    ["edgebrain.model"],
    ["edgebrain.quant"],
    ["edgebrain.metrics", "edgebrain.datasets", "edgebrain.synthetic", "edgebrain.devices"],
    ["edgebrain.energy"],
    ["edgebrain.stream.base", "edgebrain.stream.registry"],
    ["edgebrain.stream.links", "edgebrain.stream.resample", "edgebrain.stream.reuse", "edgebrain.stream.prefetch",
     "edgebrain.stream.board", "edgebrain.stream.emulated", "edgebrain.stream.window_session",
     "edgebrain.stream.snn_window"],
    ["edgebrain.stream.sources", "edgebrain.stream.encoders", "edgebrain.stream.decoders", "edgebrain.stream.sinks"],
    ["edgebrain.stream.pipeline", "edgebrain.stream.recording", "edgebrain.stream.timeline", "edgebrain.stream"],
    ["edgebrain.report"],
    ["edgebrain.apps", "edgebrain.apps.timeline_plot", "edgebrain.apps.profile.activity", "edgebrain.tflite_stream",
     "edgebrain.onnx_stream"],
    ["edgebrain.deploy"],
    ["edgebrain.cli_common"],
    ["edgebrain.cli_groups", "edgebrain.cli_deploy"],
    ["edgebrain.cli", "edgebrain.__main__"],
]
#: the pipeline's stages: none imports another (they meet in stream/pipeline.py)
STAGES = ["edgebrain.stream.sources", "edgebrain.stream.encoders", "edgebrain.stream.decoders", "edgebrain.stream.sinks"]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _absolute(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def scan(modules: dict[str, Path] | None = None):
    """(edges, private imports): module → the edgebrain modules it imports; (importer, what) pairs."""
    modules = _modules() if modules is None else modules
    edges: dict[str, set[str]] = {}
    private: list[tuple[str, str]] = []
    for mod, path in modules.items():
        is_package = path.name == "__init__.py"
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name.split(".")[0] == "edgebrain")
                continue
            if not isinstance(node, ast.ImportFrom):
                continue
            target = _absolute(mod, is_package, node)
            if target.split(".")[0] != "edgebrain":
                continue
            # a private module anywhere on the path may only be reached from inside its folder
            parts = target.split(".")
            for i, part in enumerate(parts):
                folder = ".".join(parts[:i])
                if _is_private(part) and not mod.startswith(folder + "."):
                    private.append((mod, target))
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in modules:  # "from package import module"
                    deps.add(sub)
                    folder = target
                    if _is_private(alias.name) and not mod.startswith(folder + "."):
                        private.append((mod, sub))
                else:
                    deps.add(target)
                    if _is_private(alias.name):
                        private.append((mod, f"{target}:{alias.name}"))
        edges[mod] = {d for d in deps if d in modules and d != mod}
    return edges, private


def _reachable(edges: dict[str, set[str]], start: str) -> set[str]:
    """Modules reached from ``start`` in one or more imports."""
    seen: set[str] = set()
    todo = list(edges[start])
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo.extend(edges[m])
    return seen


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The groups of modules that import each other, directly or not (each sorted)."""
    reach = {m: _reachable(edges, m) for m in edges}
    found, placed = [], set()
    for m in sorted(edges):
        if m not in placed and m in reach[m]:
            group = sorted(x for x in reach[m] if m in reach[x])
            found.append(group)
            placed.update(group)
    return found


def test_no_import_loops():
    edges, _ = scan()
    assert cycles(edges) == [], "import loops (each list is a set of modules that import each other)"


def test_no_private_names_across_modules():
    _, private = scan()
    assert private == [], "imports of another module's private name (importer, what)"


def test_module_sizes():
    too_long = {m: n for m, p in _modules().items() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert too_long == {}, f"modules over {MAX_LINES} lines"
    for f in PKG.glob("cli*.py"):
        assert len(f.read_text().splitlines()) < MAX_CLI_LINES, f.name


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def layer_of(module: str) -> int | None:
    best, level = "", None
    for k, names in enumerate(LAYERS):
        for prefix in names:
            if _within(module, prefix) and len(prefix) > len(best):
                best, level = prefix, k
    return level


def test_layers_import_downwards_only():
    edges, _ = scan()
    unplaced = sorted(m for m in edges if m != "edgebrain" and layer_of(m) is None)
    assert unplaced == [], "modules not placed in LAYERS (add them, and to docs/architecture.md)"
    upward = sorted((a, b) for a, deps in edges.items() if a != "edgebrain" for b in deps
                    if b != "edgebrain" and layer_of(b) > layer_of(a))
    assert upward == [], "imports of a higher layer (importer, imported)"
    crossing = sorted((a, b) for a, deps in edges.items() for b in deps
                      for sa in STAGES if _within(a, sa) for sb in STAGES if sb != sa and _within(b, sb))
    assert crossing == [], "a stream stage imports another stage"


def test_checker_finds_what_it_should(tmp_path):
    """The scanner itself, on a made-up package: a loop through a lazy import and a private import."""
    pkg = tmp_path / "edgebrain"
    (pkg / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "",
        "a.py": "from .b import thing\n",
        "b.py": "def f():\n    from . import a\n",
        "c.py": "from .sub._hidden import x\nfrom .b import _secret\n",
        "sub/__init__.py": "",
        "sub/_hidden.py": "x = 1\n",
        "sub/ok.py": "from ._hidden import x\nfrom . import _hidden\n",
    }
    for name, text in files.items():
        (pkg / name).write_text(text)
    mods = {}
    for p in sorted(pkg.rglob("*.py")):
        parts = list(p.relative_to(tmp_path).with_suffix("").parts)
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    edges, private = scan(mods)
    assert cycles(edges) == [["edgebrain.a", "edgebrain.b"]]
    assert sorted(private) == [("edgebrain.c", "edgebrain.b:_secret"), ("edgebrain.c", "edgebrain.sub._hidden")]


def test_layer_lookup():
    """Longest prefix wins: a module deep in a folder takes its folder's layer."""
    assert layer_of("edgebrain.kernels.dense") == layer_of("edgebrain.kernels") < layer_of("edgebrain.program")
    assert layer_of("edgebrain.stream.sources.events.aedat4") == layer_of("edgebrain.stream.encoders.binning")
    assert layer_of("edgebrain.stream.base") < layer_of("edgebrain.stream.sources.imu") < layer_of("edgebrain.stream")
    assert layer_of("edgebrain.stream.pipeline") < layer_of("edgebrain.apps.demo.recorded") < layer_of("edgebrain.cli")
    assert layer_of("numpy") is None
