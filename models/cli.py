"""Command line: ``python -m models {train, eval, zoo, build-zoo, compare}``.

Exit status 0 on success, 2 on bad input (unknown task or cell, unreadable or invalid checkpoint),
with a message saying what to do.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from models.backbone import CELLS
from models.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from models.tasks import TASKS

EXIT_BAD_INPUT = 2


class UsageError(ValueError):
    """A command-line value is out of range."""


def _cmd_train(args) -> int:
    from models.train import TrainConfig, train

    cfg = TrainConfig(task=args.task, cell=args.cell, d=args.d, layers=args.layers, seed=args.seed,
                      steps=args.steps, lr=args.lr, mlp=args.mlp, K=args.K, batch=args.batch,
                      head=args.head, eps_hold=args.eps_hold, eps_decay=args.eps_decay,
                      patience=args.patience)
    result = train(cfg, progress=not args.quiet)
    save_checkpoint(args.output, result.checkpoint)
    md = result.checkpoint.metadata
    print(f"saved {args.output}")
    print(json.dumps(md["metrics"], indent=1))
    print(f"{result.steps_run} steps in {result.seconds:.1f} s "
          f"({result.steps_per_second:.0f} steps/s), best at step {md['best_step']}")
    return 0


def _cmd_eval(args) -> int:
    from models.evaluate import evaluate_checkpoint

    ckpt = load_checkpoint(args.checkpoint)
    splits = ("train", "val", "test") if args.split == "all" else (args.split,)
    metrics = evaluate_checkpoint(ckpt, splits)
    print(json.dumps({"checkpoint": str(args.checkpoint), "task": ckpt.metadata.get("task"),
                      "metrics": metrics}, indent=1))
    return 0


def _cmd_zoo(args) -> int:
    from models.catalog import markdown_table, shipped, table_rows

    paths = sorted(Path(args.dir).glob("*.ckpt")) if args.dir else shipped()
    if not paths:
        print(f"no checkpoints found in {args.dir or 'models/zoo'}; run `python -m models "
              "build-zoo` to train them", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(markdown_table(table_rows(paths)))
    return 0


def _cmd_build_zoo(args) -> int:
    from models.catalog import ZOO, zoo_path
    from models.train import train
    from models.zoo_readme import write_readme

    names = args.only or list(ZOO)
    unknown = sorted(set(names) - set(ZOO))
    if unknown:
        print(f"unknown zoo entries {unknown}; choose from {sorted(ZOO)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    for name in names:
        result = train(ZOO[name], progress=not args.quiet)
        save_checkpoint(zoo_path(name), result.checkpoint)
        md = result.checkpoint.metadata
        print(f"{name}: test {md['metric']}={md['metrics']['test_' + md['metric']]:.4f} "
              f"({result.steps_run} steps, {result.seconds:.1f} s)", flush=True)
    write_readme()
    return 0


def _cmd_compare(args) -> int:
    from models.compare import run_comparison

    run_comparison(Path(args.output), seeds=tuple(range(args.seeds)), sizes=tuple(args.sizes),
                   progress=not args.quiet, tasks=tuple(args.tasks),
                   results=Path(args.results) if args.results else None,
                   render_only=args.render_only, reverse=args.reverse)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m models", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train one model and save a .ckpt")
    t.add_argument("--task", required=True, choices=TASKS)
    t.add_argument("--cell", required=True, choices=CELLS)
    t.add_argument("--d", required=True, type=int, help="state size per layer")
    t.add_argument("--layers", type=int, default=1)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--steps", type=int, default=0, help="0: automatic (longer for annealed cells)")
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--batch", type=int, default=64)
    t.add_argument("--K", type=int, default=4, help="levels of an FQ-CMRU")
    t.add_argument("--mlp", action="store_true", help="add linear+ReLU after each cell")
    t.add_argument("--head", type=int, default=0, help="width of a linear+ReLU layer before the "
                   "readout (0: none)")
    t.add_argument("--eps-hold", type=int, default=1000,
                   help="steps at eps = 1 before annealing (bistable cells)")
    t.add_argument("--eps-decay", type=int, default=5000,
                   help="steps of linear eps decay to 0; --eps-hold 0 --eps-decay 0 trains the "
                        "deployed bistable cell from the start")
    t.add_argument("--patience", type=int, default=8,
                   help="validation checks (every 250 steps) without improvement before stopping")
    t.add_argument("-o", "--output", required=True, help="checkpoint path to write")
    t.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=_cmd_train)

    e = sub.add_parser("eval", help="re-measure a checkpoint on its task")
    e.add_argument("checkpoint")
    e.add_argument("--split", default="test", choices=("train", "val", "test", "all"))
    e.set_defaults(func=_cmd_eval)

    z = sub.add_parser("zoo", help="list shipped checkpoints with their metrics")
    z.add_argument("--dir", default=None, help="directory of .ckpt files (default models/zoo)")
    z.set_defaults(func=_cmd_zoo)

    b = sub.add_parser("build-zoo", help="retrain the zoo checkpoints and rewrite its README")
    b.add_argument("--only", nargs="*", help="zoo entry names (default: all)")
    b.add_argument("-q", "--quiet", action="store_true")
    b.set_defaults(func=_cmd_build_zoo)

    c = sub.add_parser("compare", help="multi-seed comparison table of the cells")
    c.add_argument("-o", "--output", default="benchmarks/zoo_comparison.md")
    c.add_argument("--seeds", type=int, default=3)
    c.add_argument("--sizes", type=int, nargs="+", default=[8, 16])
    c.add_argument("--tasks", nargs="+",
                   default=["copy_first", "digits_rows", "digits_zoo", "event_count"],
                   choices=["copy_first", "digits_rows", "digits_zoo", "event_count"],
                   help="digits_zoo: the zoo's FQ-BMRU digits setup at d = 4, 8, 16")
    c.add_argument("--results", default=None,
                   help="JSON-lines file of finished runs (default: output with .jsonl); "
                        "runs already in it are not repeated")
    c.add_argument("--render-only", action="store_true", help="only rebuild the Markdown")
    c.add_argument("--reverse", action="store_true",
                   help="walk the plan backwards (a second worker sharing the results file)")
    c.add_argument("-q", "--quiet", action="store_true")
    c.set_defaults(func=_cmd_compare)
    return p


def _positive(args) -> None:
    for key in ("d", "layers", "batch", "K", "patience"):
        if getattr(args, key, 1) < 1:
            raise UsageError(f"--{key} must be a positive integer")
    for key in ("head", "eps_hold", "eps_decay"):
        if getattr(args, key, 0) < 0:
            raise UsageError(f"--{key.replace('_', '-')} must be >= 0")
    if getattr(args, "steps", 0) < 0 or getattr(args, "lr", 1.0) <= 0:
        raise UsageError("--steps must be >= 0 and --lr > 0")


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        _positive(args)
        return args.func(args)
    except CheckpointError as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
