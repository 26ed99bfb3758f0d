"""Fixtures of the hostile suite (the helpers themselves are in ``_harness.py``)."""

import pytest

from tests.hostile import _harness as H


@pytest.fixture(scope="session")
def valid():
    """kind -> a small valid input file (see ``_harness.valid_input``); a missing kind skips."""

    class _Valid(dict):
        def __missing__(self, kind):
            return H.valid_input(kind)

    return _Valid()


@pytest.fixture(scope="session")
def example_model() -> str:
    """The bundled example model (a NIR file shipped in the package)."""
    return H.example_model()
