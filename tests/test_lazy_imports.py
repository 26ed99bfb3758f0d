"""Commands that compute nothing do not pay for what they do not use: ``edgebrain --help`` and
the catalogue commands never import Numba (0.3 s here, several seconds on a Raspberry Pi, and
most of the process's memory), and ``--help`` not NumPy either. Each runs in a fresh process,
which reports the modules it imported."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO

CHILD = """
import json, sys
from edgebrain.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
sys.stderr.write("\\nMODULES " + json.dumps(sorted(m for m in sys.modules if "." not in m)) + "\\n")
"""


def imported_by(*args) -> set[str]:
    r = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True, cwd=REPO, timeout=300)
    line = [ln for ln in r.stderr.splitlines() if ln.startswith("MODULES ")][-1]
    return set(json.loads(line[len("MODULES "):]))


@pytest.mark.parametrize("args,absent", [(["--help"], {"numba", "numpy", "llvmlite"}),
                                         (["stream", "--help"], {"numba", "llvmlite"}),
                                         (["devices", "list"], {"numba", "llvmlite"}),
                                         (["devices", "show", "rpi4b"], {"numba", "llvmlite"}),
                                         (["zoo", "list"], {"numba", "llvmlite"})])
def test_catalogue_and_help_commands_import_no_compiler(args, absent):
    mods = imported_by(*args)
    assert "edgebrain" in mods  # the child ran
    assert not (mods & absent), f"edgebrain {' '.join(args)} imported {sorted(mods & absent)}"


def test_run_on_the_c_backend_imports_no_compiler_once_the_blob_is_cached(tmp_path):
    """``run --backend c`` on a zoo model: loading the model and the session import neither Numba
    nor LLVM (the model's blob comes from the cache the first run fills: lowering imports the
    kernels, and they import Numba). tests/firmware/test_backend_c.py checks the outputs."""
    import os
    import shutil

    import numpy as np

    from edgebrain import cbuild
    from edgebrain.errors import EdgebrainError
    from edgebrain.model import Model

    try:
        lib = cbuild.library()
    except EdgebrainError as e:  # no C compiler
        pytest.skip(str(e))
    home = tmp_path / "xdg"
    (home / "edgebrain" / "cruntime" / lib.parent.name).mkdir(parents=True)
    shutil.copy2(lib, home / "edgebrain" / "cruntime" / lib.parent.name / lib.name)
    m = Model.load("zoo:har-lif")
    np.save(tmp_path / "x.npy", np.ones((20,) + tuple(m.input_shape), np.float32))
    args = ["run", "zoo:har-lif", "-i", str(tmp_path / "x.npy"), "-o", str(tmp_path / "y.npz"), "--backend", "c"]
    env = {**os.environ, "XDG_CACHE_HOME": str(home)}
    for _ in range(2):  # the first run fills the blob cache
        r = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True, cwd=REPO, env=env,
                           timeout=300)
        line = [ln for ln in r.stderr.splitlines() if ln.startswith("MODULES ")][-1]
        mods = set(json.loads(line[len("MODULES "):]))
    assert "edgebrain" in mods and (tmp_path / "y.npz").is_file()
    assert not mods & {"numba", "llvmlite"}, f"run --backend c imported {sorted(mods & {'numba', 'llvmlite'})}"
    # nor pydantic (typer 0.29 brought it, 70 ms of every command's start-up: pyproject.toml pins typer < 0.29)
    assert "pydantic" not in mods, "the command line imported pydantic (typer >= 0.29?)"
