"""Fixtures of the C runtime's tests: the shared library, built once per machine (skipped, saying
how to install one, only when there is no C compiler)."""

from __future__ import annotations

import pytest

from edgebrain import cbuild
from edgebrain.errors import EdgebrainError


def need_compiler() -> list[str]:
    try:
        return cbuild.compiler()
    except EdgebrainError as e:
        pytest.skip(str(e))


@pytest.fixture(scope="session")
def clib():
    """The C runtime's shared library (a build failure fails the test; only a missing compiler skips)."""
    need_compiler()
    from edgebrain.csession import load_library

    return load_library()
