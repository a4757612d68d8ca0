"""Shared fixtures, and the test tiers.

A test that runs a real external tool (ngspice, KLayout, a build: it records the ngspice version and
draws the layout; a wheel installed in a fresh virtualenv) is marked `tools`. A bare `pytest` (the
quick tier) leaves those out, `make test` runs them too. A test using one of TOOL_FIXTURES is marked
here; any other carries the marker itself. A test not marked runs with ngspice and KLayout refused in
this process, so a tool test cannot hide in the quick tier: it fails, saying to mark it. (A tool that
a test starts through a child process, the CLI run with `subprocess`, is out of the refusal's reach:
mark such a test by hand.)
"""

import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import jax
import klayout.db as kdb
import pytest

from compiler.foundation import ngspice
from compiler.foundation.ngspice import Runner
from compiler.foundation.simcache import SimCache

# Fixtures that run a tool, so every test using one is a tool test: the runners simulate, `installed`
# (tests/test_wheel.py) builds a wheel and installs it.
TOOL_FIXTURES = {"runner", "fresh_runner", "installed"}
KLAYOUT_ENTRY_POINTS = ("__init__", "new", "create_cell", "read")  # any drawing or reading starts at one
TOOL_USES = pytest.StashKey[list]()


class UnmarkedToolUse(RuntimeError):
    """A test not marked `tools` reached ngspice or KLayout."""

    def __init__(self, test: str, tools):
        super().__init__(
            f"{test} uses {' and '.join(sorted(set(tools)))} but is not marked `tools`: add "
            "@pytest.mark.tools (tests/conftest.py explains the tiers)"
        )


@pytest.fixture
def fresh_runner(tmp_path):
    """A runner with an empty cache of its own, for tests about caching and failures."""
    return Runner(cache=SimCache(tmp_path / "simcache"))


def pytest_configure(config):
    """Keep JAX's compiled programs in pytest's cache folder between runs, child processes included: most
    of the quick tier's time is compiling, so a re-run takes a third of the first. The caller's own
    JAX_COMPILATION_CACHE_DIR wins; `--cache-clear` or `-p no:cacheprovider` runs cold."""
    if getattr(config, "cache", None) is None:
        return
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(config.cache.mkdir("jax-compilation-cache")))
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
    jax.config.update(
        "jax_persistent_cache_min_compile_time_secs", float(os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"])
    )


def pytest_collection_modifyitems(items):
    """Mark `tools` every test that uses a fixture running a tool."""
    for item in items:
        if TOOL_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.tools)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """Set up, run and tear down a test not marked `tools` with the tools refused."""
    if item.get_closest_marker("tools"):
        return (yield)
    with tools_refused(item):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """Fail a test that reached a refused tool even if it caught the error."""
    result = yield
    if item.stash.get(TOOL_USES, []):
        raise UnmarkedToolUse(item.nodeid, item.stash[TOOL_USES])
    return result


@contextmanager
def tools_refused(item):
    """ngspice is not found and KLayout makes and reads no layout; each attempt is noted on `item`.

    Every ngspice run and version query looks the program up with `shutil.which`. The version query
    remembers its answer, so that is forgotten first: a simulation in the disk cache would otherwise
    reach no look-up.
    """
    uses = item.stash[TOOL_USES] = []

    def refuse(tool):
        uses.append(tool)
        raise UnmarkedToolUse(item.nodeid, [tool])

    which = shutil.which

    def which_but_ngspice(command, *args, **kwargs):
        return refuse("ngspice") if Path(command).name == "ngspice" else which(command, *args, **kwargs)

    def klayout(*args, **kwargs):
        refuse("KLayout")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(shutil, "which", which_but_ngspice)
        for name in KLAYOUT_ENTRY_POINTS:
            patch.setattr(kdb.Layout, name, klayout)
        ngspice.ngspice_version.cache_clear()
        yield
