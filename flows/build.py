"""`python -m compiler build MODEL.ckpt -o DIR`: checkpoint -> IR -> passes -> netlist, reference, report.

A build is an ordered list of steps over one `Build` object; each step writes its artifacts into the
build directory and records its time in `manifest.json`. The directory is assembled in a temporary
sibling and renamed into place at the end, so a failed build leaves nothing half-written. A build
directory whose manifest matches the inputs (checkpoint and config hashes, tool version) is resumed:
only the steps that have not run are run. `-f` rebuilds from scratch.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from compiler.config import Config, load_config
from compiler.errors import UsageError
from compiler.frontend import Network, load_network
from compiler.ir import IR
from compiler.lower import lower
from compiler.passes import run_pipeline

TOOL_VERSION = "0.1.0"


class BuildExists(UsageError):
    """The output directory holds a build of different inputs."""


@dataclass
class Build:
    checkpoint: Path
    directory: Path            # the temporary directory being assembled
    config: Config
    network: Network | None = None
    ir: IR | None = None
    facts: dict = field(default_factory=dict)   # figures steps hand to the report

    def write(self, relative: str, text: str) -> Path:
        path = self.directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path


def step_load(build: Build) -> None:
    build.network = load_network(build.checkpoint)
    build.write("config.yaml", yaml.safe_dump(build.config.resolved(), sort_keys=True))


def step_compile(build: Build) -> None:
    lowered = lower(build.network)
    build.ir, timings = run_pipeline(lowered, build.config)
    build.facts["pass_seconds"] = {k: round(v, 4) for k, v in timings.items()}
    build.write("ir.json", build.ir.to_json())


def step_netlist(build: Build) -> None:
    from compiler.backends.spice import write_netlist

    build.facts["netlist"] = write_netlist(build.ir, build.directory / "netlist", build.config)


def step_layout(build: Build) -> None:
    """layout/top.gds, top.png, sky130.lyp from the netlist just written; area figures for the report."""
    from compiler.backends.layout import write_layout

    figures = write_layout(build.directory / "netlist", build.directory / "layout",
                           [stage.name for stage in build.ir.stages])
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


STEPS = (("load", step_load), ("compile", step_compile), ("netlist", step_netlist), ("layout", step_layout),
         ("reference", step_reference), ("report", step_report))


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _inputs(checkpoint: Path, config: Config) -> dict:
    return {
        "checkpoint": str(checkpoint), "checkpoint_sha256": _sha256(checkpoint),
        "config_sha256": hashlib.sha256(json.dumps(config.resolved(), sort_keys=True).encode()).hexdigest(),
        "tool_version": TOOL_VERSION,
    }


def build(checkpoint, out, config_path=None, *, force: bool = False, layout: bool = True, log=print) -> dict:
    """Build (or resume) a build directory; returns its manifest. `layout=False` skips the GDS."""
    checkpoint, out = Path(checkpoint), Path(out)
    config = load_config(config_path)
    if not checkpoint.is_file():
        raise UsageError(f"checkpoint {checkpoint} does not exist; pass the path of a .ckpt file.")
    inputs = _inputs(checkpoint, config)
    previous = _previous_manifest(out)
    if previous is not None and not force and previous.get("inputs") != inputs:
        raise BuildExists(f"{out} holds a build of other inputs (checkpoint or config changed); "
                          "use -f to rebuild it or choose another -o directory.")
    if out.exists() and previous is None and any(out.iterdir()) and not force:
        raise BuildExists(f"{out} exists and is not a build directory; choose another -o or use -f.")
    resume = previous is not None and not force
    done = set(previous.get("steps", {})) if resume else set()
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    work.chmod(0o755)  # mkdtemp makes it private; a build directory is shared like any output
    try:
        if resume:
            shutil.copytree(out, work, dirs_exist_ok=True)
        state = Build(checkpoint, work, config,
                      facts=dict(previous.get("facts", {})) if resume else {})
        manifest = _manifest_base(inputs, previous if resume else None)
        skipped = set() if layout else {"layout"}
        for name, step in STEPS:
            needed = name not in done or name in ("load", "compile")  # in-memory state for later steps
            # a layout added to a resumed build puts its area into the report
            needed = needed or (name == "report" and "layout" in manifest["steps"] and "layout" not in done)
            if not needed or name in skipped:
                continue
            start = time.perf_counter()
            step(state)
            manifest["steps"][name] = round(time.perf_counter() - start, 3)
            log(f"  {name:<10} {manifest['steps'][name]:8.3f} s")
        manifest["facts"] = state.facts
        (work / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        _swap_into_place(work, out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return manifest


def _previous_manifest(out: Path) -> dict | None:
    try:
        return json.loads((out / "manifest.json").read_text())
    except (OSError, ValueError):
        return None


def _manifest_base(inputs: dict, previous: dict | None) -> dict:
    from compiler.ngspice import ngspice_version
    from compiler.pdk import find_models

    import jax

    return {
        "inputs": inputs,
        "versions": {"tool": TOOL_VERSION, "pdk": find_models().source, "ngspice": ngspice_version(),
                     "python": platform.python_version(), "jax": jax.__version__},
        "steps": dict(previous.get("steps", {})) if previous else {},
    }


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
    parser.add_argument("--no-layout", action="store_true", help="skip the GDS layout (layout/top.gds, top.png)")


def run(args) -> int:
    out = Path(args.out) if args.out else Path("build") / Path(args.checkpoint).stem
    print(f"building {args.checkpoint} -> {out}")
    manifest = build(args.checkpoint, out, args.config, force=args.force, layout=not args.no_layout)
    print((out / "reports" / "build.md").read_text().split("\n## Parameter mapping")[0])
    print(f"build directory: {out} ({sum(manifest['steps'].values()):.2f} s)")
    return 0
