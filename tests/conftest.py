"""Shared fixtures: a runner whose cache lives in the test's temporary directory."""

import pytest

from compiler.foundation.ngspice import Runner
from compiler.foundation.simcache import SimCache


@pytest.fixture
def fresh_runner(tmp_path):
    """A runner with an empty cache of its own, for tests about caching and failures."""
    return Runner(cache=SimCache(tmp_path / "simcache"))
