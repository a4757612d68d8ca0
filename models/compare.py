"""The multi-seed comparison of cells (benchmarks/zoo_comparison.md).

Every cell is trained with the same backbone and budget (one layer, lr 3e-3, the default step
count: eps-annealed cells get the annealing phase on top), over several seeds and state sizes, and
the table reports mean and spread of the test metric, wall-clock training time and steps/s on the
machine that ran it. Nothing is hand-entered: the Markdown is generated from the runs.
"""

from __future__ import annotations

import json
import platform
import statistics
from pathlib import Path

import jax

from models.errors import UsageError
from models.tasks import get_task
from models.train import TrainConfig, train

COMPARE_CELLS = ("fq_bmru", "bmru", "cmru", "acmru", "lru", "mingru")
COMPARE_TASKS = ("copy_first", "digits_rows")
COUNTING_CELLS = ("fq_cmru", "fq_bmru")


class BadResults(UsageError):
    """The results file of a comparison holds lines this command did not write."""


def memoryless_baseline(task_name: str = "digits_rows") -> float:
    """Test accuracy of a logistic regression on the time-averaged input features."""
    from sklearn.linear_model import LogisticRegression

    task = get_task(task_name)
    clf = LogisticRegression(max_iter=5000).fit(task.train.x.mean(1), task.train.y)
    return float(clf.score(task.test.x.mean(1), task.test.y))


# A hardware-mappable FQ-BMRU digits setup trained in software (the zoo's before it trained for the
# circuit and read a frame clock), repeated over seeds.
ZOO_CONFIG_LABEL = "fq_bmru (zoo config)"
ZOO_CONFIG = dict(
    task="digits_rows", cell="fq_bmru", layers=2, head=64, lr=1e-2, eps_hold=0, eps_decay=0, steps=10000, patience=20
)


def _config(task: str, cell: str, d: int, seed: int) -> TrainConfig:
    if cell == ZOO_CONFIG_LABEL:
        return TrainConfig(d=d, seed=seed, **ZOO_CONFIG)
    return TrainConfig(task=task, cell=cell, d=d, layers=1, seed=seed, lr=3e-3)


def _run(task: str, cell: str, d: int, seed: int, progress: bool) -> dict:
    res = train(_config(task, cell, d, seed), progress=progress)
    md = res.checkpoint.metadata
    return {
        "task": task,
        "cell": cell,
        "d": d,
        "seed": seed,
        "metric": md["metric"],
        "metrics": md["metrics"],
        "seconds": res.seconds,
        "steps": res.steps_run,
        "steps_per_s": res.steps_per_second,
    }


def _fmt(values, digits=3):
    mean = statistics.fmean(values)
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.{digits}f} ± {spread:.{digits}f}"


def _summary_rows(runs, keys):
    groups = {}
    for r in runs:
        groups.setdefault((r["task"], r["cell"], r["d"]), []).append(r)
    order = {c: i for i, c in enumerate((*COMPARE_CELLS, ZOO_CONFIG_LABEL, "fq_cmru"))}
    rows = []
    for (task, cell, d), rs in sorted(groups.items(), key=lambda kv: (order.get(kv[0][1], 99), kv[0][2])):
        cols = [_fmt([r["metrics"][k] for r in rs]) if k in rs[0]["metrics"] else "-" for k in keys]
        rows.append(
            [
                task,
                cell,
                str(d),
                str(len(rs)),
                *cols,
                f"{statistics.fmean(r['seconds'] for r in rs):.1f}",
                f"{statistics.fmean(r['steps'] for r in rs):.0f}",
                f"{statistics.fmean(r['steps_per_s'] for r in rs):.0f}",
            ]
        )
    return rows


def _table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(out + ["| " + " | ".join(r) + " |" for r in rows])


def _mean(runs, task, cell, d, key):
    vals = [r["metrics"][key] for r in runs if (r["task"], r["cell"], r["d"]) == (task, cell, d)]
    return statistics.fmean(vals) if vals else float("nan")


def _verdicts(runs, sizes) -> list[str]:
    """Plain statements, computed from the numbers, about where CMRU does or does not beat LRU."""
    lines = []
    for task, key, higher in (("copy_first", "test_mae", False), ("digits_rows", "test_acc", True)):
        for d in sizes:
            c, lru = _mean(runs, task, "cmru", d, key), _mean(runs, task, "lru", d, key)
            wins = c > lru if higher else c < lru
            lines.append(
                f"- {task}, d={d}: CMRU {key}={c:.3f} vs LRU {lru:.3f}: CMRU "
                f"{'beats' if wins else 'does NOT beat'} LRU."
            )
    return lines


def _plan(seeds, sizes, tasks):
    for task in COMPARE_TASKS:
        if task in tasks:
            for cell in COMPARE_CELLS:
                for d in sizes:
                    for seed in seeds:
                        yield task, cell, d, seed
    if "digits_zoo" in tasks:
        for d in (4, 8, 16):
            for seed in seeds:
                yield "digits_rows", ZOO_CONFIG_LABEL, d, seed
    if "event_count" in tasks:
        for cell in COUNTING_CELLS:
            for seed in seeds:
                yield "event_count", cell, 8, seed


def run_comparison(
    output: Path,
    seeds=(0, 1, 2),
    sizes=(8, 16),
    progress=True,
    tasks=(*COMPARE_TASKS, "digits_zoo", "event_count"),
    results: Path | None = None,
    render_only: bool = False,
    reverse: bool = False,
) -> list:
    """Train every (task, cell, d, seed) of the plan, appending each run to ``results`` (JSON
    lines, so an interrupted sweep resumes where it stopped), then render the Markdown table.

    The results file is re-read before each run, so a second process walking the plan in
    ``reverse`` shares the work with the first one."""
    results = results or output.with_suffix(".jsonl")

    def finished():
        """Runs in the results file, the first one per (task, cell, d, seed) if two workers
        happened to run the same one."""
        runs = {}
        if results.exists():
            for number, line in enumerate(results.read_text().splitlines(), 1):
                try:
                    r = json.loads(line)
                    runs.setdefault((r["task"], r["cell"], r["d"], r["seed"]), r)
                except (ValueError, KeyError, TypeError):
                    raise BadResults(
                        f"{str(results)[:200]}: line {number} is not a result this command wrote; move the file "
                        "away or pass another --results"
                    ) from None
        return list(runs.values())

    if not render_only:
        plan = list(_plan(seeds, sizes, tasks))
        for key in reversed(plan) if reverse else plan:
            if key not in {(r["task"], r["cell"], r["d"], r["seed"]) for r in finished()}:
                run = _run(*key, progress)
                with results.open("a") as fh:
                    fh.write(json.dumps(run, sort_keys=True) + "\n")
    done = finished()
    render(output, done, sorted({r["seed"] for r in done}), sorted({r["d"] for r in done if r["cell"] == "cmru"}))
    return done


def render(output: Path, runs, seeds, sizes) -> None:
    baseline = memoryless_baseline()
    timing = ["time (s)", "steps", "steps/s"]
    total = sum(r["seconds"] for r in runs)
    text = [
        "# Cell comparison",
        "",
        "Generated by `python -m models compare -o benchmarks/zoo_comparison.md` "
        f"({len(runs)} runs, seeds {list(seeds)}, summed training time {total:.0f} s).",
        f"Machine: {platform.machine()}, 2 shared CPU cores, jax {jax.__version__}. JAX was pinned to",
        "one thread while other jobs (ngspice) loaded both cores, so times are indicative only;",
        "time includes compilation (amortised over seeds of one architecture).",
        "",
        "Setup: one recurrent layer of width d, linear per-frame readout (mean over time for digits),",
        "AdamW lr 3e-3 with cosine decay to 1 %, weight decay 1e-4, clipping 1.0, batch 64, early",
        "stopping on the validation split. BMRU and FQ-BMRU are eps-annealed (eps = 1 for 1000 steps,",
        "linear to 0 over 5000, then 3000 more); the others train 3000 steps. Values: mean ± sample",
        "standard deviation over seeds of the test metric.",
        "",
        "## Noisy copy-first-input (MAE at the last frame, lower is better)",
        "",
        "Trained at T = 64; the same models evaluated at T = 256 and T = 1024. Predicting the mean",
        "(0.5) gives MAE 0.25. minGRU stays at that constant predictor in this budget (a likely cause:",
        "with zero gate bias its state halves every frame, so little gradient reaches t = 0); the LRU",
        "degrades beyond the trained length, the bistable cells do not.",
        "",
        _table(
            ["task", "cell", "d", "seeds", "MAE T=64", "MAE T=256", "MAE T=1024", *timing],
            _summary_rows(
                [r for r in runs if r["task"] == "copy_first"], ["test_mae", "test_mae_T256", "test_mae_T1024"]
            ),
        ),
        "",
        "## Sequential digits, row by row (test accuracy, higher is better)",
        "",
        f"Memoryless baseline (logistic regression on time-averaged rows): {baseline:.3f}.",
        "",
        _table(
            ["task", "cell", "d", "seeds", "test acc", *timing],
            _summary_rows([r for r in runs if r["task"] == "digits_rows"], ["test_acc"]),
        ),
        "",
        f"`{ZOO_CONFIG_LABEL}` is a hardware-mappable setup trained in software (`models/compare.py`: two FQ-BMRU",
        "layers, a 64-wide linear+ReLU head before the readout, no eps-annealing, lr 1e-2,",
        "10000 steps); the other rows use the common one-layer setup above.",
        "",
        "## Event counting (last-frame accuracy; 5 classes, chance about 0.2)",
        "",
        _table(
            ["task", "cell", "d", "seeds", "test acc", "per-frame acc", *timing],
            _summary_rows([r for r in runs if r["task"] == "event_count"], ["test_acc", "test_frame_acc"]),
        ),
        "",
        "## CMRU versus LRU",
        "",
        *_verdicts(runs, sizes),
        "",
        "## Every run",
        "",
        _table(
            ["task", "cell", "d", "seed", "test metric", "time (s)", "steps"],
            [
                [
                    r["task"],
                    r["cell"],
                    str(r["d"]),
                    str(r["seed"]),
                    f"{r['metric']}={r['metrics']['test_' + r['metric']]:.4f}",
                    f"{r['seconds']:.1f}",
                    str(r["steps"]),
                ]
                for r in runs
            ],
        ),
        "",
    ]
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text("\n".join(text))


__all__ = ["run_comparison", "memoryless_baseline"]
