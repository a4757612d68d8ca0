"""The official sky130 sign-off decks and tools that `drc` and `lvs` run after the project's own checks.

DRC runs two KLayout decks in batch (the `klayout` program, not the Python module):
- `open_pdks`: `$PDK_ROOT/sky130A/libs.tech/klayout/drc/sky130A.lydrc`, or without it the identical deck
  that `make setup` extracts from the PyPI wheel glayout==0.2.0 into the virtualenv (`DECK_HOME`, sha256
  pinned here and checked on every use). The deck hard-codes FEOL off; a copy with FEOL, BEOL and OFFGRID
  on is what runs.
- `precheck`: the shuttle precheck deck `$PDK_ROOT/sky130A/libs.tech/klayout/drc/sky130A_mr.drc` with
  feol, beol and offgrid on. No registry ships it: without PDK_ROOT it is skipped.
LVS runs netgen (`netgen-lvs`) with `$PDK_ROOT/sky130A/libs.tech/netgen/sky130A_setup.tcl` (flows/netgen.py).

A deck or tool that cannot run is a `Tool` with the reason and the remedy in `missing`: the reports say
so, and `--require-signoff` turns it into `SignoffUnavailable`. Magic is used only at 8.3.411 or newer
(older ones cannot load the sky130A tech file); the flow does not run it yet and says so.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from compiler.foundation.data import write_atomically
from compiler.foundation.errors import DeckChanged, SignoffToolFailed, SignoffUnavailable, clip, file_label
from compiler.foundation.pdk import pdk_sky130a
from flows.gds import LOCATIONS_KEPT

GLAYOUT = "glayout==0.2.0"  # the PyPI wheel that ships the open_pdks KLayout DRC deck
GLAYOUT_MEMBER = "glayout/pdk/sky130_mapped/sky130.lydrc"
OPEN_PDKS_DECK_SHA256 = "81cf4f998fc6fb6925ccc8618afba3dc8530058db1d0e31dc1f6ad5299e52372"
DECK_HOME = Path(sys.prefix) / "share" / "fqrnn-signoff"
GLAYOUT_DECK = DECK_HOME / "sky130.lydrc"
OPEN_PDKS_DECK = Path("libs.tech/klayout/drc/sky130A.lydrc")  # under $PDK_ROOT/sky130A
PRECHECK_DECK = Path("libs.tech/klayout/drc/sky130A_mr.drc")
NETGEN_SETUP = Path("libs.tech/netgen/sky130A_setup.tcl")
MAGIC_MINIMUM = (8, 3, 411)
# The open_pdks deck's switches, each set to true in the copy that runs, and its input line, which gets the
# top cell the check is about (the precheck deck reads $top_cell itself).
SWITCHES = ("FEOL", "BEOL", "OFFGRID")
SOURCE_LINE = re.compile(r"^(\s*)source\(\$input\)\s*$", re.M)
LOG_LINES_QUOTED = 12
INSTALL_HINT = {
    "klayout": "`make setup` installs Debian's klayout (`apt-get install klayout`)",
    "netgen-lvs": "`make setup` installs Debian's netgen-lvs (`apt-get install netgen-lvs`)",
}


@dataclass(frozen=True)
class Tool:
    """An official deck or tool: what runs it and where it comes from, or why it cannot run (`missing`)."""

    name: str
    title: str
    program: str | None = None
    path: Path | None = None
    source: str = ""
    missing: str = ""
    options: tuple = ()  # extra `-rd name=value` for a KLayout deck

    @property
    def available(self) -> bool:
        return not self.missing


@dataclass
class DeckRun:
    """The markers of one official deck on one layout: per rule (category) a count and the first locations."""

    tool: Tool
    markers: dict = field(default_factory=dict)  # rule -> count
    descriptions: dict = field(default_factory=dict)  # rule -> the deck's text
    locations: dict = field(default_factory=dict)  # rule -> [{"cell", "box_um"}], at most LOCATIONS_KEPT
    rules_checked: int = 0
    seconds: float = 0.0
    report: str = ""  # file name of its .lyrdb in the report directory

    @property
    def total(self) -> int:
        return sum(self.markers.values())


def klayout_program() -> tuple[str | None, str]:
    """(path of the KLayout program, "") or (None, why not and how to get it)."""
    program = shutil.which("klayout")
    if program is None:
        return None, f"the klayout program is not on PATH: {INSTALL_HINT['klayout']}"
    return program, ""


def drc_decks() -> dict[str, Tool]:
    """The official DRC decks by name, found or with the reason they cannot run."""
    tree = pdk_sky130a()
    program, no_program = klayout_program()
    decks = {}
    if tree is not None and (tree / OPEN_PDKS_DECK).is_file():
        path, source, missing = tree / OPEN_PDKS_DECK, f"$PDK_ROOT/sky130A/{OPEN_PDKS_DECK}", ""
    elif GLAYOUT_DECK.is_file():
        path, source, missing = GLAYOUT_DECK, f"{GLAYOUT} (PyPI), {GLAYOUT_MEMBER}, sha256 checked", ""
    else:
        path, source = None, ""
        missing = (
            f"no open_pdks deck: {'PDK_ROOT is not set' if tree is None else f'no {tree / OPEN_PDKS_DECK}'} and "
            f"`make setup` has not extracted it from {GLAYOUT} to {GLAYOUT_DECK}: run `make setup` or set PDK_ROOT"
        )
    decks["open_pdks"] = Tool(
        "open_pdks", "open_pdks KLayout DRC deck (FEOL, BEOL, OFFGRID on)", program, path, source, no_program or missing
    )
    if tree is not None and (tree / PRECHECK_DECK).is_file():
        path, source, missing = tree / PRECHECK_DECK, f"$PDK_ROOT/sky130A/{PRECHECK_DECK}", ""
    else:
        path, source = None, ""
        missing = (
            "no shuttle precheck deck: it ships with no package registry; set PDK_ROOT to a tree holding "
            f"sky130A/{PRECHECK_DECK}" + ("" if tree is None else f" ({tree / PRECHECK_DECK} does not exist)")
        )
    options = ("feol=true", "beol=true", "offgrid=true")
    decks["precheck"] = Tool(
        "precheck", "shuttle precheck KLayout deck (feol, beol, offgrid on)", program, path, source,
        no_program or missing, options,
    )  # fmt: skip
    return decks


def netgen_tool() -> Tool:
    """netgen with the sky130A set-up, or why it cannot run."""
    program = shutil.which("netgen-lvs")
    tree = pdk_sky130a()
    setup = tree / NETGEN_SETUP if tree is not None else None
    if program is None:
        missing = f"the netgen-lvs program is not on PATH: {INSTALL_HINT['netgen-lvs']}"
    elif setup is None:
        missing = (
            "netgen needs the sky130A set-up, which ships with no package registry: set PDK_ROOT to a tree "
            f"holding sky130A/{NETGEN_SETUP}"
        )
    elif not setup.is_file():
        missing = f"{setup} does not exist: netgen needs the sky130A set-up file there"
    else:
        missing = ""
    source = f"$PDK_ROOT/sky130A/{NETGEN_SETUP}" if setup is not None else ""
    return Tool("netgen", "netgen LVS (sky130A set-up)", program, setup, source, missing)


def magic_tool() -> Tool:
    """Magic: never run by the flow yet; the reason says whether one new enough was found."""
    program = shutil.which("magic")
    minimum = ".".join(map(str, MAGIC_MINIMUM))
    if program is None:
        missing = f"no magic on PATH (extraction and DRC in Magic need {minimum} or newer to load the sky130A tech)"
    else:
        version = magic_version(program)
        if version is None or version < MAGIC_MINIMUM:
            shown = ".".join(map(str, version)) if version else "unknown"
            missing = f"magic on PATH is version {shown}; the sky130A tech file needs {minimum} or newer"
        else:
            missing = f"magic {'.'.join(map(str, version))} found; the flow has no Magic run (KLayout and netgen check)"
    return Tool("magic", "Magic extraction and DRC", program, None, "", missing)


def magic_version(program: str) -> tuple | None:
    """Magic's version as a tuple, from `magic --version` (None when it does not say)."""
    try:
        done = subprocess.run(
            [program, "--version"], capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"(\d+)\.(\d+)\.(\d+)", done.stdout + done.stderr)
    return tuple(int(g) for g in match.groups()) if match else None


def require(tools, wanted: bool) -> None:
    """Raise SignoffUnavailable naming every tool of `tools` that cannot run, when `wanted`."""
    missing = [t for t in tools if not t.available]
    if wanted and missing:
        raise SignoffUnavailable("; ".join(f"{t.name}: {t.missing}" for t in missing) + ".")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def runnable_open_pdks_deck(text: str) -> str:
    """The open_pdks deck with FEOL, BEOL and OFFGRID on and the top cell read from $top_cell.

    Each edited line must occur exactly once: a deck that reads otherwise is not the one this runner knows.
    """
    for name in SWITCHES:
        text, found = re.subn(rf"^{name}(\s*)=\s*(?:true|false)\b", rf"{name}\1= true", text, flags=re.M)
        if found != 1:
            raise DeckChanged(
                f"the open_pdks DRC deck sets {name} {found} times (expected once, as `{name} = false|true` at the "
                "start of a line); the deck changed: check flows/signoff.py against it."
            )
    text, found = SOURCE_LINE.subn(r"\1source($input, $top_cell)", text)
    if found != 1:
        raise DeckChanged(
            f"the open_pdks DRC deck has {found} `source($input)` lines (expected one); the deck changed: "
            "check flows/signoff.py against it."
        )
    return text


def deck_text(tool: Tool) -> str:
    """The text of the open_pdks deck `tool` points at; the registry copy must have the pinned checksum."""
    if tool.path == GLAYOUT_DECK and sha256(GLAYOUT_DECK) != OPEN_PDKS_DECK_SHA256:
        raise DeckChanged(
            f"{file_label(GLAYOUT_DECK)} has sha256 {sha256(GLAYOUT_DECK)}, not the pinned {OPEN_PDKS_DECK_SHA256}: "
            "delete it and run `make setup`."
        )
    return tool.path.read_text()


def run_deck(tool: Tool, gds: Path, top: str, scratch: Path) -> DeckRun:
    """Run one official KLayout deck on `gds` (cell `top`) in batch; its report lands in `scratch`."""
    start = time.perf_counter()
    scratch = Path(scratch).resolve()  # klayout runs inside it: every path it gets must be absolute
    script = tool.path.resolve()
    if tool.name == "open_pdks":
        script = scratch / "deck" / "sky130A_feol_beol_offgrid.lydrc"  # a sub-folder: not published
        script.parent.mkdir(exist_ok=True)
        script.write_text(runnable_open_pdks_deck(deck_text(tool)))
    report = scratch / f"{tool.name}.lyrdb"
    variables = (f"input={Path(gds).resolve()}", f"report={report}", f"top_cell={top}", *tool.options)
    command = [tool.program, "-b", "-r", str(script)] + [a for v in variables for a in ("-rd", v)]
    log = run_program(command, tool, scratch)
    if not report.is_file():
        raise SignoffToolFailed(f"{tool.title}: KLayout wrote no report.{_tail(log)}")
    run = DeckRun(tool, report=report.name, seconds=time.perf_counter() - start)
    read_lyrdb(report, run)
    if run.rules_checked == 0:
        raise SignoffToolFailed(f"{tool.title}: its report names no rule, so it checked nothing.{_tail(log)}")
    return run


def run_program(command: list, tool: Tool, scratch: Path) -> str:
    """Run a sign-off program, its output kept in `scratch`/<tool>.log; raise SignoffToolFailed on an error."""
    log_path = scratch / f"{tool.name}.log"
    with open(log_path, "w") as log:
        try:
            done = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=scratch)
        except OSError as error:
            raise SignoffToolFailed(f"{tool.title}: cannot start {command[0]}: {error.strerror or error}") from None
    log = log_path.read_text(errors="replace")
    if done.returncode != 0:
        raise SignoffToolFailed(f"{tool.title}: {Path(command[0]).name} exited with {done.returncode}.{_tail(log)}")
    return log


def _tail(log: str) -> str:
    return " Its log ends: " + clip(" | ".join(log.strip().splitlines()[-LOG_LINES_QUOTED:]), 1200)


def read_lyrdb(path: Path, run: DeckRun) -> None:
    """Fill `run` from a KLayout report database: every category a rule, every item a marker."""
    try:
        root = ElementTree.parse(path).getroot()
    except ElementTree.ParseError as error:
        raise SignoffToolFailed(f"{file_label(path)} is not a readable KLayout report database: {error}") from None
    for category in _categories(root.find("categories")):
        run.markers.setdefault(category[0], 0)
        run.descriptions[category[0]] = category[1]
    for item in root.iter("item"):
        name = ".".join(part.strip("'") for part in (item.findtext("category") or "").split("'.'"))
        run.markers[name] = run.markers.get(name, 0) + 1
        kept = run.locations.setdefault(name, [])
        if len(kept) < LOCATIONS_KEPT:
            value = item.find("values/value")
            kept.append({"cell": item.findtext("cell") or "", "box_um": _bbox(value.text if value is not None else "")})
    run.rules_checked = len(run.descriptions)


def _categories(node, prefix: str = ""):
    """(dotted name, description) of every leaf category under a <categories> node."""
    for category in node.findall("category") if node is not None else ():
        name = prefix + (category.findtext("name") or "")
        children = list(_categories(category.find("categories"), name + "."))
        yield from children or [(name, category.findtext("description") or "")]


def _bbox(value: str) -> list:
    """[x1, y1, x2, y2] (um) around the coordinates of a marker value (`edge-pair: (x,y;x,y)|(...)`, ...)."""
    numbers = [float(n) for n in re.findall(r"-?\d+(?:\.\d+)?(?:e-?\d+)?", value.split(":", 1)[-1])]
    xs, ys = numbers[0::2], numbers[1::2]
    return [min(xs), min(ys), max(xs), max(ys)] if xs and ys else []


def publish(scratch: Path, out_dir: Path) -> None:
    """Move every file of `scratch` into `out_dir`, each replacing its old version in one rename."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for path in sorted(scratch.iterdir()):
        if path.is_file():
            os.replace(path, out_dir / path.name)


def scratch_beside(out_dir: Path) -> tempfile.TemporaryDirectory:
    """A temporary folder beside `out_dir` (same file system: its files rename into place)."""
    out_dir = Path(out_dir).resolve()  # an absolute name: the sign-off programs run inside it
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    return tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=f".{out_dir.name}.tmp-{os.getpid()}-")


def fetch_open_pdks_deck() -> Path:
    """Download the glayout wheel (no dependencies), extract only the open_pdks DRC deck into DECK_HOME and
    check its pinned sha256. What `make setup` runs; raises DeckChanged on a checksum mismatch."""
    with tempfile.TemporaryDirectory() as scratch:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", GLAYOUT, "-d", scratch], check=True)
        wheels = list(Path(scratch).glob("glayout-*.whl"))
        if len(wheels) != 1:
            raise DeckChanged(f"pip download of {GLAYOUT} gave {len(wheels)} wheels, not one.")
        with zipfile.ZipFile(wheels[0]) as archive:
            if GLAYOUT_MEMBER not in archive.namelist():
                raise DeckChanged(f"{GLAYOUT} no longer ships {GLAYOUT_MEMBER}.")
            data = archive.read(GLAYOUT_MEMBER)
    digest = hashlib.sha256(data).hexdigest()
    if digest != OPEN_PDKS_DECK_SHA256:
        raise DeckChanged(
            f"{GLAYOUT} ships {GLAYOUT_MEMBER} with sha256 {digest}, not the pinned {OPEN_PDKS_DECK_SHA256}: "
            "the wheel changed; compare the deck with the open_pdks one before pinning the new checksum."
        )
    write_atomically(GLAYOUT_DECK, lambda tmp: Path(tmp).write_bytes(data))
    return GLAYOUT_DECK


if __name__ == "__main__":  # `python -m flows.signoff fetch-deck` (make setup)
    if sys.argv[1:] != ["fetch-deck"]:
        sys.exit("usage: python -m flows.signoff fetch-deck")
    try:
        print(f"open_pdks KLayout DRC deck from {GLAYOUT}: {fetch_open_pdks_deck()} (sha256 checked)")
    except (DeckChanged, subprocess.CalledProcessError) as error:
        sys.exit(f"error: {type(error).__name__}: {error}")
