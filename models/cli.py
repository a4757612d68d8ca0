"""Command line: ``python -m models {train, eval, zoo, build-zoo, compare}``.

Exit status 0 on success; 2 on bad input (an option out of range, an output path that cannot be
written, an unreadable or invalid checkpoint), with a named error saying what to do, checked before
any training starts; 130 on Ctrl-C and 143 on SIGTERM, leaving no partial output.
"""

from __future__ import annotations

import _thread
import argparse
import json
import os
import re
import signal
import sys
import threading
from functools import partial
from pathlib import Path

from models.backbone import CELLS
from models.errors import UsageError

# The modules that import JAX are imported by the commands, inside main's handling of Ctrl-C.

EXIT_INTERRUPTED = 128 + signal.SIGINT
MAX_SEEDS = 100  # compare: seeds per configuration
MAX_SIZE = 1024  # compare: state size per layer


class BadOption(UsageError):
    """A command-line value is out of range or names nothing that exists."""


def train_config(args):
    """The TrainConfig of `train`'s options (add_train_arguments)."""
    from models.train import TrainConfig

    return TrainConfig(
        task=args.task,
        cell=args.cell,
        d=args.d,
        layers=args.layers,
        seed=args.seed,
        steps=args.steps,
        lr=args.lr,
        mlp=args.mlp,
        K=args.K,
        batch=args.batch,
        head=args.head,
        encoder=args.encoder,
        eps_hold=args.eps_hold,
        eps_decay=args.eps_decay,
        patience=args.patience,
    )


def _cmd_train(args) -> int:
    from models.checkpoint import check_output_path
    from models.train import train

    cfg = train_config(args)
    check_output_path(args.output)
    return report_training(args.output, train(cfg, progress=not args.quiet))


def report_training(output, result) -> int:
    """Save a trained checkpoint and print its metrics."""
    from models.checkpoint import save_checkpoint

    save_checkpoint(output, result.checkpoint)
    md = result.checkpoint.metadata
    print(f"saved {output}")
    print(json.dumps(md["metrics"], indent=1))
    print(
        f"{result.steps_run} steps in {result.seconds:.1f} s "
        f"({result.steps_per_second:.0f} steps/s), best at step {md['best_step']}"
    )
    return 0


def _cmd_eval(args) -> int:
    from models.checkpoint import load_checkpoint
    from models.evaluate import evaluate_checkpoint

    ckpt = load_checkpoint(args.checkpoint)
    splits = ("train", "val", "test") if args.split == "all" else (args.split,)
    metrics = evaluate_checkpoint(ckpt, splits)
    print(
        json.dumps(
            {"checkpoint": str(args.checkpoint), "task": ckpt.metadata.get("task"), "metrics": metrics}, indent=1
        )
    )
    return 0


def _cmd_zoo(args) -> int:
    from models.catalog import markdown_table, shipped, table_rows
    from models.network import shown

    if args.dir and not Path(args.dir).is_dir():
        raise BadOption(f"--dir {shown(args.dir)} is not a directory; pass a directory of .ckpt files")
    paths = sorted(Path(args.dir).glob("*.ckpt")) if args.dir else shipped()
    if not paths:
        raise BadOption(
            f"no checkpoints found in {shown(args.dir or 'models/zoo')}; run `python -m models build-zoo` to train them"
        )
    print(markdown_table(table_rows(paths)))
    return 0


def _cmd_build_zoo(args) -> int:
    from models.catalog import HARDWARE_AWARE, ZOO, zoo_path
    from models.checkpoint import check_output_path, save_checkpoint
    from models.network import shown
    from models.train import train
    from models.zoo_readme import write_readme

    names = args.only or [name for name in ZOO if name not in HARDWARE_AWARE]
    unknown = sorted(set(names) - set(ZOO))
    if unknown:
        raise BadOption(f"unknown zoo entries {shown(unknown)}; choose from {sorted(ZOO)}")
    aware = sorted(set(names) & set(HARDWARE_AWARE))
    if aware:
        raise BadOption(
            f"{shown(aware)} are trained for the circuit: retrain them with "
            "`python -m compiler train --zoo NAME` (the compiler supplies the circuit's rules)"
        )
    for name in names:
        check_output_path(zoo_path(name))
    for name in names:
        result = train(ZOO[name], progress=not args.quiet)
        save_checkpoint(zoo_path(name), result.checkpoint)
        md = result.checkpoint.metadata
        print(
            f"{name}: test {md['metric']}={md['metrics']['test_' + md['metric']]:.4f} "
            f"({result.steps_run} steps, {result.seconds:.1f} s)",
            flush=True,
        )
    write_readme()
    return 0


def _cmd_compare(args) -> int:
    from models.compare import run_comparison

    _check_compare(args)
    run_comparison(
        Path(args.output),
        seeds=tuple(range(args.seeds)),
        sizes=tuple(args.sizes),
        progress=not args.quiet,
        tasks=tuple(args.tasks),
        results=Path(args.results) if args.results else None,
        render_only=args.render_only,
        reverse=args.reverse,
    )
    return 0


def add_train_arguments(t) -> None:
    """The options of `train` (also those of the compiler's hardware-aware `train`)."""
    from models.tasks import TASKS

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
    t.add_argument("--head", type=int, default=0, help="width of a linear+ReLU layer before the readout (0: none)")
    t.add_argument(
        "--encoder", type=int, default=0, help="width of a linear+ReLU layer on the inputs, before the cells (0: none)"
    )
    t.add_argument("--eps-hold", type=int, default=1000, help="steps at eps = 1 before annealing (bistable cells)")
    t.add_argument(
        "--eps-decay",
        type=int,
        default=5000,
        help="steps of linear eps decay to 0; --eps-hold 0 --eps-decay 0 trains the "
        "deployed bistable cell from the start",
    )
    t.add_argument(
        "--patience",
        type=int,
        default=8,
        help="validation checks (every 250 steps) without improvement before stopping",
    )
    t.add_argument("-o", "--output", required=True, help="checkpoint path to write")
    t.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:

    p = _Parser(prog="python -m models", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train one model and save a .ckpt")
    add_train_arguments(t)
    t.set_defaults(func=_cmd_train)

    e = sub.add_parser("eval", help="re-measure a checkpoint on its task")
    e.add_argument("checkpoint")
    e.add_argument("--split", default="test", choices=("train", "val", "test", "all"))
    e.set_defaults(func=_cmd_eval)

    z = sub.add_parser("zoo", help="list shipped checkpoints with their metrics")
    z.add_argument("--dir", default=None, help="directory of .ckpt files (default models/zoo)")
    z.set_defaults(func=_cmd_zoo)

    b = sub.add_parser(
        "build-zoo",
        help="retrain the zoo checkpoints that are not hardware-aware (the FQ ones: python -m compiler "
        "train --zoo NAME) and rewrite its README",
    )
    b.add_argument("--only", nargs="*", help="zoo entry names (default: all)")
    b.add_argument("-q", "--quiet", action="store_true")
    b.set_defaults(func=_cmd_build_zoo)

    c = sub.add_parser("compare", help="multi-seed comparison table of the cells")
    c.add_argument("-o", "--output", default="benchmarks/zoo_comparison.md")
    c.add_argument("--seeds", type=int, default=3)
    c.add_argument("--sizes", type=int, nargs="+", default=[8, 16])
    c.add_argument(
        "--tasks",
        nargs="+",
        default=["copy_first", "digits_rows", "digits_zoo", "event_count"],
        choices=["copy_first", "digits_rows", "digits_zoo", "event_count"],
        help="digits_zoo: the zoo's FQ-BMRU digits setup at d = 4, 8, 16",
    )
    c.add_argument(
        "--results",
        default=None,
        help="JSON-lines file of finished runs (default: output with .jsonl); runs already in it are not repeated",
    )
    c.add_argument("--render-only", action="store_true", help="only rebuild the Markdown")
    c.add_argument(
        "--reverse", action="store_true", help="walk the plan backwards (a second worker sharing the results file)"
    )
    c.add_argument("-q", "--quiet", action="store_true")
    c.set_defaults(func=_cmd_compare)
    return p


def _check_compare(args) -> None:
    """Bound the comparison's plan and check where it writes, before any run."""
    from models.checkpoint import check_output_path
    from models.network import shown

    if not 1 <= args.seeds <= MAX_SEEDS:
        raise BadOption(f"--seeds must be an integer in [1, {MAX_SEEDS}], got {shown(args.seeds)}")
    bad = [d for d in args.sizes if not 1 <= d <= MAX_SIZE]
    if bad:
        raise BadOption(f"--sizes must be integers in [1, {MAX_SIZE}], got {shown(bad)}")
    check_output_path(args.output)
    check_output_path(args.results or Path(args.output).with_suffix(".jsonl"))


class _Parser(argparse.ArgumentParser):
    """argparse whose error messages cut every long word, so they never echo an unbounded
    argument (a 5000-digit number, a huge invalid choice)."""

    def error(self, message):
        super().error(re.sub(r"\S{81,}", lambda m: m.group()[:80] + "...", message)[:2000])


def _unwind_on_sigterm(signum, frame):
    """SIGTERM unwinds like Ctrl-C, so a checkpoint being written removes its temporary file."""
    raise SystemExit(128 + signum)


def _redeliver_interrupt(previous_hook, unraisable) -> None:
    """A Ctrl-C that lands in a garbage-collector callback (JAX registers one) is swallowed and
    printed by Python; deliver it again shortly, once the main thread is back in the command's
    code, so that the command stops instead of running on."""
    if unraisable.exc_type is not None and issubclass(unraisable.exc_type, KeyboardInterrupt):
        timer = threading.Timer(0.05, _thread.interrupt_main)
        timer.daemon = True
        timer.start()
    else:
        previous_hook(unraisable)


def _run(argv) -> int:
    """Parse and run the command; a named error or Ctrl-C becomes a message and an exit status."""
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except UsageError as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def main(argv=None) -> int:
    """Run one command and return its exit status.

    Called without argv (as the program), an interrupted command ends the process right after its
    message: after an interrupted XLA compilation, JAX can crash in the interpreter's teardown.
    """
    if threading.current_thread() is not threading.main_thread():
        return _run(argv)
    previous = signal.signal(signal.SIGTERM, _unwind_on_sigterm), sys.unraisablehook
    sys.unraisablehook = partial(_redeliver_interrupt, previous[1])
    try:
        status = _run(argv)
    finally:
        signal.signal(signal.SIGTERM, previous[0])
        sys.unraisablehook = previous[1]
    if status == EXIT_INTERRUPTED and argv is None:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    return status
