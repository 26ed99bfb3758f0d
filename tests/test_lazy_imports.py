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
