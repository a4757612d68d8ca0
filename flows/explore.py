"""`python -m compiler explore CKPT [CKPT ...]`: the design space of a model as a circuit, and its Pareto front.

Every combination of the swept build settings (`i_unit`, `mismatch_budget`, `denominator`, and the frame
period, chosen by the build unless given) is built without a layout, for each checkpoint given (train one
per head width or state size to sweep those). Each point reports its accuracy (the realised model's task
metric, and its mean over statistical mismatch draws, compiler/backends/statistical.py), the build's power
estimate, its area estimate, its transistors and its frame period. A point is on the Pareto front when no
other point is at least as good on every objective (accuracy under mismatch up, power, area, transistors
and frame period down) and better on one; `--max-frame` leaves out the points whose frame is longer than
the application allows (power alone always favours the smallest i_unit, whose frame is the longest).
`--spice K` verifies K front points in ngspice on a few test sequences: SPICE power, state and prediction
agreement beside the estimates. Outputs in -o DIR:
explore.md, explore.json, explore.png and each point's build.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import yaml

from compiler.config import Config, ConfigError, load_config
from compiler.foundation.errors import CompilerError, UsageError, file_label, shown
from compiler.ir import IR
from flows import mc_model
from flows.arguments import count, number
from flows.build import build
from flows.verify import per_frame_layer
from models.tasks import get_task

SWEPT = ("i_unit", "mismatch_budget", "denominator", "frame_period")
MAX_POINTS = 200  # builds one command may make (each takes seconds)
OBJECTIVES = {"accuracy": +1, "power_W": -1, "area_um2": -1, "transistors": -1, "frame_period_s": -1}
WITHIN = 0.01  # accuracy below the best that still counts as "as accurate" (one point)


class ExploreRequestError(UsageError):
    """An explore request that cannot run: an unusable output directory, a grid too large, a bad value."""


def add_arguments(parser) -> None:
    parser.add_argument("checkpoints", nargs="+", help="model checkpoints (.ckpt), e.g. one per head width")
    parser.add_argument("-o", "--out", required=True, help="a new (or empty) directory for the results")
    parser.add_argument("--config", default=None, help="base build configuration the sweep starts from")
    parser.add_argument("--i-unit", default="1e-9,5e-10,2e-10,1e-10", help="comma-separated unit currents (A)")
    parser.add_argument("--mismatch-budget", default="0.15", help="comma-separated mirror mismatch budgets")
    parser.add_argument("--denominator", default="16", help="comma-separated mirror diode sizes (unit devices)")
    parser.add_argument("--frame-period", default="", help="comma-separated frame periods (s); empty: the build's")
    parser.add_argument("--mc-draws", type=count(0, 10_000), default=200, help="mismatch draws per point")
    parser.add_argument("--sequences", type=count(1, 100_000), default=None, help="test sequences (all)")
    parser.add_argument(
        "--max-frame",
        type=number(1e-5, 10.0),
        default=None,
        help="longest frame period (s) a point may need to count (the latency the application allows)",
    )
    parser.add_argument("--spice", type=count(0, 16), default=0, help="front points to verify in ngspice")
    parser.add_argument("--spice-sequences", type=count(1, 1000), default=2)
    parser.add_argument("-j", "--jobs", type=count(1, 256), default=1)


def run(args) -> int:
    out = Path(args.out)
    _check_output(out)
    grid = _grid(args)
    base = load_config(args.config)
    for checkpoint in args.checkpoints:
        if not Path(checkpoint).is_file():
            raise ExploreRequestError(f"checkpoint {file_label(checkpoint)} does not exist or is not a file")
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.explore-{os.getpid()}-", dir=out.parent))
    try:
        explore(args, grid, base, work)
        os.replace(work, out)  # onto a missing or empty directory: the results appear whole or not at all
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    print(f"wrote {out / 'explore.md'}, {out / 'explore.json'}, {out / 'explore.png'}")
    return 0


def explore(args, grid: list[dict], base, out: Path) -> None:
    """Build and measure every point into `out`, mark the front, spot-check it, write the reports."""
    points = []
    for c, checkpoint in enumerate(args.checkpoints):
        for k, settings in enumerate(grid):
            point = out / "points" / f"{c:02d}_{k:03d}"
            try:
                points.append(explore_point(checkpoint, point, base, settings, args.mc_draws, args.sequences))
            except CompilerError as error:  # a point the compiler refuses is reported, not fatal
                refused = f"{type(error).__name__}: {error}"
                points.append({"id": point.name, "checkpoint": str(checkpoint), "settings": settings, "error": refused})
                print(f"  {point.name}: {settings} refused: {refused}")
                continue
            print(f"  {point.name}: {_describe(points[-1])}")
    mark_front(points, args.max_frame)
    chosen = lowest_power_within(points, WITHIN)
    for point in spot_checks(points, chosen, args.spice):
        point["spice"] = spice_check(out / point["build"], args.spice_sequences, args.jobs)
    summary = {
        "points": points,
        "lowest_power_within_one_point": chosen and chosen["id"],
        "swept": SWEPT,
        "max_frame_s": args.max_frame,
    }
    (out / "explore.json").write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")
    (out / "explore.md").write_text(markdown(points, chosen, args.max_frame))
    plot(points, out / "explore.png")


def _check_output(out: Path) -> None:
    if out.is_symlink() or (out.exists() and (not out.is_dir() or any(out.iterdir()))):
        raise ExploreRequestError(f"-o {file_label(out)} exists and is not an empty directory; choose a new one")


def _values(text: str, key: str) -> list:
    try:
        values = [float(v) if key != "denominator" else int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ExploreRequestError(f"--{key.replace('_', '-')} takes comma-separated numbers, not {shown(text)}")
    return values or [None]


def _grid(args) -> list[dict]:
    axes = {key: _values(getattr(args, key), key) for key in SWEPT}
    size = int(np.prod([len(v) for v in axes.values()])) * len(args.checkpoints)
    if size > MAX_POINTS:
        raise ExploreRequestError(f"{size} points to build, more than {MAX_POINTS}; sweep fewer values")
    grid = []
    for combination in itertools.product(*axes.values()):
        settings = {k: v for k, v in zip(axes, combination) if v is not None}
        try:
            Config(model=settings)  # each value in its configurable range
        except ConfigError as error:
            raise ExploreRequestError(str(error)) from None
        grid.append(settings)
    return grid


def explore_point(checkpoint, directory: Path, base, settings: dict, draws: int, sequences: int | None) -> dict:
    """Build one point of the grid (no layout) and measure it."""
    directory.mkdir(parents=True)
    config = {**base.resolved(), "model": {**base.resolved()["model"], **settings}}
    config["model"] = {k: v for k, v in config["model"].items() if v is not None}
    (directory / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=True))
    build(checkpoint, directory / "build", directory / "config.yaml", layout=False, log=lambda *_: None)
    report = json.loads((directory / "build" / "reports" / "build.json").read_text())
    point = {
        "id": directory.name,
        "checkpoint": str(checkpoint),
        "build": f"points/{directory.name}/build",  # relative to the output directory
        "settings": settings,
        "metric": report["task"].get("metric"),
        "float": report["task"].get("float"),
        "realised": report["task"].get("realised"),
        "power_W": report["power_estimate"]["total_W"],
        "area_um2": report["area_estimate_um2"],
        "transistors": report["transistors"]["instances"],
        "frame_period_s": report["frame_period_s"],
    }
    point["accuracy"] = point["realised"]
    if point["realised"] is not None and not get_task(report["task"]["task"]).higher_is_better:
        raise ExploreRequestError(f"explore ranks by accuracy (higher is better); {report['task']['metric']} is not")
    if draws and point["realised"] is not None:
        ir = IR.from_json((directory / "build" / "ir.json").read_text())
        task = get_task(ir.meta.task)
        x, y = task.test.x[:sequences], task.test.y[:sequences]
        stats = mc_model.statistics(ir, task, x, per_frame_layer(ir), draws, labels=y)
        point["accuracy"] = stats["quantiles"]["task_metric"]["mean"]
        point["accuracy_q5"] = stats["quantiles"]["task_metric"]["q5"]
        point["mismatch_draws"] = draws
    return point


def dominates(a: dict, b: dict) -> bool:
    """Whether point a is at least as good as b on every objective and better on one."""
    pairs = [(sign * a[key], sign * b[key]) for key, sign in OBJECTIVES.items()]
    return all(x >= y for x, y in pairs) and any(x > y for x, y in pairs)


def mark_front(points: list[dict], max_frame: float | None = None) -> None:
    """Mark the Pareto front among the points whose frame period is within `max_frame` (None: all)."""
    allowed = [
        p
        for p in points
        if "error" not in p and p["accuracy"] is not None and (max_frame is None or p["frame_period_s"] <= max_frame)
    ]
    for point in points:
        point["front"] = point in allowed and not any(dominates(other, point) for other in allowed)


def lowest_power_within(points: list[dict], within: float) -> dict | None:
    """The front point of least power whose accuracy is within `within` of the best point's."""
    front = [p for p in points if p["front"]]
    if not front:
        return None
    best = max(p["accuracy"] for p in front)
    return min((p for p in front if p["accuracy"] >= best - within), key=lambda p: (p["power_W"], p["id"]))


def spot_checks(points: list[dict], chosen: dict | None, count: int) -> list[dict]:
    """Up to `count` front points to simulate: the chosen one, the least power, the most accurate, then
    the rest of the front by power."""
    front = sorted((p for p in points if p["front"]), key=lambda p: (p["power_W"], p["id"]))
    order = [chosen] if chosen else []
    if front:
        order += [front[0], max(front, key=lambda p: (p["accuracy"], -p["power_W"])), *front]
    picked = []
    for point in order:
        if point is not None and point not in picked:
            picked.append(point)
    return picked[:count]


def spice_check(directory: Path, sequences: int, jobs: int) -> dict:
    """The point's circuit in ngspice on the first test sequences."""
    from flows.verify import verify

    metrics = verify(directory, sequences=sequences, jobs=jobs, log=None)
    keep = ("power_W", "state_agreement", "prediction_agreement", "sequences")
    return {k: metrics[k] for k in keep if k in metrics}


def _describe(point: dict) -> str:
    accuracy = "n/a" if point["accuracy"] is None else f"{point['accuracy']:.4f}"
    return (
        f"{point['settings']} accuracy {accuracy}, {point['power_W'] * 1e9:.1f} nW, "
        f"{point['area_um2'] / 1e6:.3f} mm^2, {point['transistors']} transistors, frame "
        f"{point['frame_period_s'] * 1e3:g} ms"
    )


def markdown(points: list[dict], chosen: dict | None, max_frame: float | None = None) -> str:
    lines = [
        "# Design-space exploration",
        "",
        "Accuracy: the task metric of the realised network, as the mean over statistical mismatch draws where "
        "they ran, on the first --sequences test sequences (`realised`: without mismatch, the whole test split). "
        "Power: the build's estimate (SPICE where checked). Area: the "
        "build's estimate before layout. Front: the Pareto front, the points no other point matches or beats on "
        "every objective (accuracy, power, area, transistors, frame period).",
        "",
        "| point | checkpoint | settings | realised | accuracy (mismatch mean) | power (nW) | area (mm^2) | "
        "transistors | frame (ms) | front | SPICE power (nW) | SPICE state / prediction agreement |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in sorted((p for p in points if "error" not in p), key=lambda p: (p["power_W"], p["id"])):
        spice = p.get("spice") or {}
        sp_power = f"{spice['power_W'] * 1e9:.1f}" if "power_W" in spice else ""
        agree = f"{spice.get('state_agreement', 'n/a')} / {spice.get('prediction_agreement', 'n/a')}" if spice else ""
        accuracy = "n/a" if p["accuracy"] is None else f"{p['accuracy']:.4f}"
        lines.append(
            f"| {p['id']} | {Path(p['checkpoint']).name} | {p['settings']} | {p['realised']} | {accuracy} | "
            f"{p['power_W'] * 1e9:.1f} | {p['area_um2'] / 1e6:.3f} | {p['transistors']} | "
            f"{p['frame_period_s'] * 1e3:g} | {'yes' if p['front'] else ''} | {sp_power} | {agree} |"
        )
    lines.append("")
    lines += [f"- {p['id']} {p['settings']}: refused, {p['error']}" for p in points if "error" in p]
    if max_frame is not None:
        lines += [f"Points whose frame is longer than {max_frame * 1e3:g} ms are left out of the front.", ""]
    if chosen:
        lines.append(
            f"Lowest power on the front with accuracy within {WITHIN * 100:g} point of the best: point "
            f"{chosen['id']}, {_describe(chosen)}."
        )
    return "\n".join(lines) + "\n"


def plot(points: list[dict], path: Path) -> None:
    """Accuracy against power and against area; the front in colour."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measured = [p for p in points if "error" not in p and p["accuracy"] is not None]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, key, scale, label in ((axes[0], "power_W", 1e9, "power (nW)"), (axes[1], "area_um2", 1e-6, "area (mm^2)")):
        for front, style in ((False, dict(color="0.6", marker="o")), (True, dict(color="tab:red", marker="D"))):
            chosen = [p for p in measured if p["front"] == front]
            ax.scatter(
                [p[key] * scale for p in chosen],
                [p["accuracy"] for p in chosen],
                label=("Pareto front" if front else "other points"),
                **style,
            )
        for p in measured:
            if p["front"]:
                ax.annotate(
                    f"{p['id']} ({p['frame_period_s'] * 1e3:g} ms)",
                    (p[key] * scale, p["accuracy"]),
                    fontsize=7,
                    xytext=(3, 3),
                    textcoords="offset points",
                )
        ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("accuracy (realised, mean under mismatch)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
