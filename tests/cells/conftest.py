"""Fixtures of the cell tests: one runner on the default cache, and a place to print measured errors."""

import pytest

from compiler.foundation.ngspice import Runner


@pytest.fixture(scope="session")
def runner():
    return Runner()


@pytest.fixture
def report(request):
    """Print a measured figure so `pytest -s` (and the -ra summary of failures) shows it."""

    def emit(**figures):
        text = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in figures.items())
        print(f"\n[{request.node.name}] {text}")

    return emit
