"""`python -m compiler build MODEL.ckpt -o DIR`: checkpoint -> IR -> passes -> netlist, reference, report.

A build is an ordered list of steps over one `Build` object; each step writes its artifacts into the
build directory and records their hashes and its time in `manifest.json`. The directory is assembled in
a temporary sibling and renamed into place at the end, so a failed build leaves nothing half-written. A
build directory whose manifest matches the inputs (checkpoint and config hashes, tool version) is
resumed: the steps whose outputs are all still there, unchanged, are skipped. `-f` rebuilds from
scratch, and only ever replaces a directory this tool made and nothing but its outputs: a directory
holding anything else is refused, so no user file is ever deleted. The checkpoint is copied into the
build (`model.ckpt`), so a build directory is self-contained.

The compile step saves the IR after lowering and after each pass (`ir/00_lower.json`,
`ir/NN_<pass>.json`; the last is `ir.json`). `--from PASS` resumes a build at a pass: it reads the IR
saved before that pass (checked against the manifest), runs the pipeline from there and redoes every
step after it.
"""

from __future__ import annotations

import errno
import glob
import hashlib
import json
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from compiler.config import Config, load_config
from compiler.foundation.errors import UsageError, file_label
from compiler.foundation.ngspice import process_exists
from compiler.frontend import Network, load_network
from compiler.ir import IR, STAGE_TYPES
from compiler.lower import lower
from compiler.passes import PIPELINE, check_name, run_pipeline
from compiler.realisation import leakage_warning
from flows.train import settings_mismatch

TOOL_VERSION = "0.1.0"


class BuildExists(UsageError):
    """The output directory holds a build of different inputs."""


class OutputNotReplaceable(UsageError):
    """The output path is not a directory the build may write or replace (a file, a link, a folder of
    other files, the current or home directory)."""


class DesignTooLarge(UsageError):
    """The circuit exceeds the configured ceiling on unit transistors or area."""


class BuildModified(UsageError):
    """A build directory's outputs differ from what its manifest recorded (edited, deleted or replaced)."""


class CannotResume(UsageError):
    """`--from PASS` without a build to resume there: no build, no intact IR saved before the pass, or -f."""


# Everything a build directory may hold: the build's outputs and the folders later commands write.
OUTPUT_FOLDERS = frozenset({"netlist", "layout", "reports", "ir"})
OUTPUTS = frozenset({"manifest.json", "config.yaml", "ir.json", "model.ckpt"}) | OUTPUT_FOLDERS
LATER = frozenset({"verify", "drc", "lvs"})
WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}  # the disk says no


@dataclass
class Build:
    checkpoint: Path
    directory: Path  # the temporary directory being assembled
    config: Config
    network: Network | None = None
    ir: IR | None = None
    facts: dict = field(default_factory=dict)  # figures steps hand to the report
    start: str | None = None  # the pass to resume at (`--from`); None: lower and run all

    def write(self, relative: str, text: str) -> Path:
        path = self.directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path


def step_load(build: Build) -> None:
    build.network = load_network(build.checkpoint)
    mismatch = settings_mismatch(build.network.checkpoint.metadata, build.config)
    if mismatch:
        build.facts["trained_for_other_settings"] = mismatch
        print(f"warning: the model was trained for other build settings ({mismatch})", file=sys.stderr)
    shutil.copyfile(build.checkpoint, build.directory / "model.ckpt")  # verify reads the float model here
    build.write("config.yaml", yaml.safe_dump(build.config.resolved(), sort_keys=True))


def step_compile(build: Build) -> None:
    """Lower and run the passes (from `build.start`, on the IR saved before it), saving the IR after each."""
    lowered = lower(build.network)
    build.config.check_stages([stage.name for stage in lowered.stages], STAGE_TYPES)
    if build.start is None:
        ir = lowered
        build.write(saved_ir(0, "lower"), ir.to_json())
    else:
        ir = IR.from_json((build.directory / ir_before(build.start)).read_text())
    number = {name: index for index, name in enumerate(PIPELINE, 1)}

    def save(name: str, ir: IR) -> None:
        build.write(saved_ir(number[name], name), ir.to_json())

    build.ir, timings = run_pipeline(ir, build.config, start=build.start, after_pass=save)
    leaking = leakage_warning((cell.facts.calibration for cell in build.ir.memory_cells()), build.config)
    build.facts.pop("leakage", None)  # a resumed build's facts start from the previous manifest's
    if leaking:
        build.facts["leakage"] = leaking
        print(f"warning: {leaking}", file=sys.stderr)
    build.facts["pass_seconds"] = {k: round(v, 4) for k, v in timings.items()}
    build.write("ir.json", build.ir.to_json())


def saved_ir(number: int, name: str) -> str:
    """The build-relative path of the IR after step `number` of the compile step (0: lowering)."""
    return f"ir/{number:02d}_{name}.json"


def ir_before(start: str) -> str:
    """The build-relative path of the IR a pipeline resumed at pass `start` reads."""
    index = PIPELINE.index(check_name(start))
    return saved_ir(index, PIPELINE[index - 1] if index else "lower")


def step_netlist(build: Build) -> None:
    from compiler.backends.spice import write_netlist

    build.facts["netlist"] = write_netlist(build.ir, build.directory / "netlist", build.config)
    check_size(build.facts["netlist"], build.config)


def check_size(netlist: dict, config: Config) -> None:
    """The configured ceilings on transistors and area, checked before the layout spends memory on them."""
    from flows.report import area_estimate_um2

    units, limit = netlist["unit_devices"], config.get("max_unit_devices")
    area_mm2 = area_estimate_um2(netlist) / 1e6
    if units > limit:
        raise DesignTooLarge(
            f"the circuit has {units} unit transistors, over the ceiling max_unit_devices = "
            f"{limit}; shrink the model or raise the ceiling in the config."
        )
    if area_mm2 > config.get("max_area_mm2"):
        raise DesignTooLarge(
            f"the circuit's estimated area is {area_mm2:.3g} mm^2, over the ceiling max_area_mm2 = "
            f"{config.get('max_area_mm2'):g}; shrink the model or raise the ceiling in the config."
        )


def step_layout(build: Build) -> None:
    """layout/top.gds, top.lef, top.v, cell_names.json, top.png, sky130.lyp from the netlist just written (the
    macro's pins as the config sets them); area figures for the report."""
    from compiler.backends.layout import write_layout

    config = build.config
    figures = write_layout(
        build.directory / "netlist",
        build.directory / "layout",
        [stage.name for stage in build.ir.stages],
        pin_layer=config.get("pin_layer"),
        pin_side=config.get("pin_side"),
        prefix=config.get("cell_prefix") or None,
    )
    cells_detail = figures.pop("cells")
    build.write("layout/area.json", json.dumps({**figures, "cells": cells_detail}, indent=1, sort_keys=True) + "\n")
    build.facts["layout"] = figures


def step_reference(build: Build) -> None:
    from flows.quantisation import quantisation_report

    build.facts["quantisation"] = quantisation_report(build.network, build.ir)


def step_report(build: Build) -> None:
    from flows.report import build_report

    markdown, data = build_report(build)
    build.write("reports/build.md", markdown)
    build.write("reports/build.json", json.dumps(data, indent=1, sort_keys=True) + "\n")


STEPS = (
    ("load", step_load),
    ("compile", step_compile),
    ("netlist", step_netlist),
    ("layout", step_layout),
    ("reference", step_reference),
    ("report", step_report),
)


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _inputs(checkpoint: Path, config: Config) -> dict:
    return {
        "checkpoint": str(checkpoint),
        "checkpoint_sha256": _sha256(checkpoint),
        "config_sha256": hashlib.sha256(json.dumps(config.resolved(), sort_keys=True).encode()).hexdigest(),
        "tool_version": TOOL_VERSION,
        "passes": list(PIPELINE),  # the saved IRs (ir/NN_<pass>.json) mean what this pipeline makes them
    }


def build(
    checkpoint, out, config_path=None, *, force: bool = False, layout: bool = True, start: str | None = None, log=print
) -> dict:
    """Build (or resume) a build directory; returns its manifest. `layout=False` skips the GDS. `start`
    resumes the build at that pass (`--from`): every step from the compile step on is redone."""
    checkpoint, out = Path(checkpoint), Path(out)
    if start is not None:
        check_name(start)
    config = load_config(config_path)
    if not checkpoint.is_file():
        raise UsageError(
            f"checkpoint {file_label(checkpoint)} does not exist or is not a file; pass the path of a .ckpt file."
        )
    inputs = _inputs(checkpoint, config)
    previous = check_output_directory(out)
    if previous is not None and not force and previous.get("inputs") != inputs:
        raise BuildExists(
            f"{out} holds a build of other inputs (checkpoint, config or the compiler's passes changed); "
            "use -f to rebuild it or choose another -o directory."
        )
    if start is not None:
        check_resumable(out, previous, start, force)
    resume = previous is not None and not force
    done = intact_steps(out, previous) if resume and start is None else set()
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        sweep_stale_work(out)
        work = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-{os.getpid()}-", dir=out.parent))
    except OSError as exc:
        raise OutputNotReplaceable(
            f"cannot create the build directory beside {out}: {exc.strerror}; choose a writable -o."
        ) from None
    try:
        work.chmod(0o755)  # mkdtemp makes it private; a build directory is shared like any output
        if resume:
            shutil.copytree(out, work, dirs_exist_ok=True, symlinks=True)
        state = Build(checkpoint, work, config, facts=dict(previous.get("facts", {})) if resume else {}, start=start)
        manifest = _manifest_base(inputs, previous if resume else None)
        skipped = set() if layout else {"layout"}
        for name, step in STEPS:
            needed = name not in done or name in ("load", "compile")  # in-memory state for later steps
            # a layout added to a resumed build puts its area into the report
            needed = needed or (name == "report" and "layout" in manifest["steps"] and "layout" not in done)
            if not needed or name in skipped:
                continue
            before = _stats(work)
            began = time.perf_counter()
            step(state)
            manifest["steps"][name] = round(time.perf_counter() - began, 3)
            written = [p for p, stat in _stats(work).items() if before.get(p) != stat]
            kept = {
                p: h
                for p, h in manifest["outputs"].get(name, {}).items()  # earlier outputs it did not redo
                if p not in written and (work / p).is_file()
            }
            manifest["outputs"][name] = {**kept, **{p: _sha256(work / p) for p in written}}
            log(f"  {name:<10} {manifest['steps'][name]:8.3f} s")
        manifest["facts"] = state.facts
        (work / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        _swap_into_place(work, out)
    except OSError as exc:
        shutil.rmtree(work, ignore_errors=True)
        if exc.errno not in WRITE_ERRNOS:
            raise
        raise OutputNotReplaceable(
            f"cannot write the build into {out}: {exc.strerror or exc}; free space or choose a writable -o."
        ) from None
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return manifest


def check_output_directory(out: Path) -> dict | None:
    """The manifest of the build at `out` (None: `out` is absent or empty), or a named error when `out` is
    not a directory the build may write into and replace."""
    shown = file_label(out)
    if out.is_symlink():
        raise OutputNotReplaceable(f"{shown} is a symbolic link; pass the directory itself (or a new path) as -o.")
    if out.exists() and not out.is_dir():
        raise OutputNotReplaceable(f"{shown} exists and is not a directory; choose another -o.")
    resolved, here = out.resolve(), Path.cwd().resolve()
    if resolved in (Path(resolved.anchor), Path.home().resolve(), here) or resolved in here.parents:
        raise OutputNotReplaceable(
            f"{shown} is the root, home or current directory (or holds it); a build "
            "replaces its whole directory: choose a new -o such as build/NAME."
        )
    if not out.exists() or not any(out.iterdir()):
        return None
    previous = _previous_manifest(out)
    if previous is None:
        raise OutputNotReplaceable(
            f"{shown} exists, is not empty and is not a build directory (no valid "
            "manifest.json); the build never replaces such a directory: choose a new "
            "or empty -o."
        )
    folders = OUTPUT_FOLDERS | LATER  # a file named like one of them is no output either
    foreign = sorted(
        p.name for p in out.iterdir() if p.name not in OUTPUTS | LATER or (p.name in folders) != p.is_dir()
    )
    recorded = {p for files in previous.get("outputs", {}).values() for p in files}
    foreign += sorted(
        str(p.relative_to(out))
        for sub in sorted(OUTPUT_FOLDERS)
        if recorded
        for p in (out / sub).rglob("*")
        if not p.is_dir() and str(p.relative_to(out)) not in recorded
    )
    if foreign:
        raise OutputNotReplaceable(
            f"{shown} holds files the build did not make ({', '.join(foreign[:5])[:300]}"
            f"{', ...' if len(foreign) > 5 else ''}); move them out or choose another -o."
        )
    return previous


def check_resumable(out: Path, previous: dict | None, start: str, force: bool) -> None:
    """A named error unless `out` holds a build whose IR saved before pass `start` is intact."""
    if force:
        raise CannotResume("-f rebuilds from scratch and --from resumes a build at a pass; use one of them.")
    saved = ir_before(start)
    recorded = (previous or {}).get("outputs", {}).get("compile", {})
    if saved not in recorded or changed_outputs(out, {saved: recorded[saved]}):
        raise CannotResume(
            f"{file_label(out)} holds no intact {saved} (the IR before pass {start}) to resume from; "
            "build it without --from first (a plain build saves the IR after every pass)."
        )


def intact_steps(out: Path, manifest: dict) -> set:
    """The steps of a previous build whose outputs are all present and unchanged, up to the first that is
    not: a later step may depend on an earlier one's files, so everything after a damaged step reruns."""
    outputs, intact = manifest.get("outputs"), set()
    if outputs is None:  # a manifest that recorded no outputs: nothing can be trusted to be there
        return intact
    for name, _ in STEPS:
        if name not in manifest.get("steps", {}):
            continue
        if name not in outputs or changed_outputs(out, outputs[name]):
            break
        intact.add(name)
    return intact


def changed_outputs(directory: Path, recorded: dict) -> list[str]:
    """The recorded files (relative path -> sha256) that are missing or differ under `directory`."""
    changed = []
    for relative, digest in sorted(recorded.items()):
        path = directory / relative
        if not path.is_file() or path.is_symlink() or _sha256(path) != digest:
            changed.append(relative)
    return changed


def check_build_outputs(directory: Path, relatives) -> None:
    """A named error when any of the given outputs of a build differs from what its manifest recorded."""
    manifest = _previous_manifest(directory)
    if manifest is None or "outputs" not in manifest:
        raise BuildModified(
            f"{directory} has no manifest of its outputs; rebuild it with `python -m compiler "
            "build MODEL.ckpt -o DIR` (a plain rebuild resumes and records them)."
        )
    recorded = {p: h for files in manifest["outputs"].values() for p, h in files.items()}

    def under(path: str, relative: str) -> bool:  # the file itself, or a file in the folder `relative/`
        return path == relative or path.startswith(relative.rstrip("/") + "/")

    wanted = {p: h for p, h in recorded.items() if any(under(p, r) for r in relatives)}
    missing = [r for r in relatives if not any(under(p, r) for p in recorded)]
    changed = missing + changed_outputs(directory, wanted)
    if changed:
        raise BuildModified(
            f"{directory}: {', '.join(changed[:5])} changed since the build (manifest.json records "
            "each output's hash); rebuild with `python -m compiler build` (it redoes what changed)."
        )


def _stats(directory: Path) -> dict:
    """relative path -> (inode, size, mtime) of every file under `directory`: what a step wrote changes it."""
    stats = {}
    for path in sorted(directory.rglob("*")):
        if path.is_file() and not path.is_symlink() and path.name != "manifest.json":
            stat = path.stat()
            stats[str(path.relative_to(directory))] = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
    return stats


def _previous_manifest(out: Path) -> dict | None:
    try:
        manifest = json.loads((out / "manifest.json").read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(manifest, dict) or not {"inputs", "steps"} <= set(manifest):
        return None
    return manifest


def _manifest_base(inputs: dict, previous: dict | None) -> dict:
    import jax

    from compiler.foundation.ngspice import ngspice_version
    from compiler.foundation.pdk import find_models

    return {
        "inputs": inputs,
        "versions": {
            "tool": TOOL_VERSION,
            "pdk": find_models().source,
            "ngspice": ngspice_version(),
            "python": platform.python_version(),
            "jax": jax.__version__,
        },
        "steps": dict(previous.get("steps", {})) if previous else {},
        "outputs": dict(previous.get("outputs", {})) if previous else {},
    }


def sweep_stale_work(out: Path) -> None:
    """Remove the temporary siblings (`.NAME.tmp-PID-*`, `.NAME.old-PID`) that a killed build of `out` left:
    only those whose process is gone, so a build running beside this one keeps its own."""
    pattern = re.compile(rf"\.{re.escape(out.name)}\.(?:tmp-(\d+)-\w+|old-(\d+))")
    for path in out.parent.glob(f".{glob.escape(out.name)}.*"):
        match = pattern.fullmatch(path.name)
        if match and path.is_dir() and not path.is_symlink() and not process_exists(int(match[1] or match[2])):
            shutil.rmtree(path, ignore_errors=True)


def _swap_into_place(work: Path, out: Path) -> None:
    """Replace `out` by `work` with renames, so `out` is always either the old or the new build."""
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
        os.replace(work, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(work, out)


def add_arguments(parser) -> None:
    parser.add_argument("checkpoint", help="a model checkpoint (.ckpt) from the zoo or `python -m models train`")
    parser.add_argument("-o", "--out", default=None, help="build directory (default: build/<model name>)")
    parser.add_argument("--config", default=None, help="YAML build configuration (`python -m compiler config`)")
    parser.add_argument("-f", "--force", action="store_true", help="rebuild from scratch")
    parser.add_argument(
        "--no-layout", action="store_true", help="skip the layout (layout/top.gds, top.lef, top.v, top.png)"
    )
    parser.add_argument(
        "--from",
        dest="start",
        metavar="PASS",
        default=None,
        help="resume the build at this pass, from the IR saved before it (ir/NN_<pass>.json), "
        f"redoing every later step; passes: {', '.join(PIPELINE)}",
    )


def run(args) -> int:
    out = Path(args.out) if args.out else Path("build") / Path(args.checkpoint).stem
    print(f"building {args.checkpoint} -> {out}")
    manifest = build(args.checkpoint, out, args.config, force=args.force, layout=not args.no_layout, start=args.start)
    print((out / "reports" / "build.md").read_text().split("\n## Parameter mapping")[0])
    print(f"build directory: {out} ({sum(manifest['steps'].values()):.2f} s)")
    return 0
