"""`python -m compiler train`: hardware-aware training, so that the circuit computes the network trained.

The model zoo's training loop (models/train.py) runs every step on the values the circuit realises under
a build configuration: the compiler's own realisation rules (compiler/realisation.py: mirror ratios on
each receiver's grid, bias taps, legalised and calibrated cell windows), with straight-through gradients,
plus a decision-margin term that keeps each memory cell's candidates away from its thresholds (a
candidate at a threshold is decided by mismatch, not by the model). The checkpoint holds the realised
values and records the build settings it was trained for; `build` warns when built with others.
`--zoo NAME` retrains a shipped FQ model this way, with its shipped build configuration.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

from compiler.config import Config, load_config
from compiler.foundation.errors import UsageError, shown
from compiler.frontend import check_design_rules, network_of
from compiler.ir import STAGE_TYPES
from compiler.lower import lower
from compiler.power import PowerModel
from compiler.realisation import Realisation
from models.checkpoint import Checkpoint, check_output_path
from models.network import init_arrays

# The settings the realisation reads: a network trained for one value of these is realised differently
# under another. The unit current reads only as the cells' ceiling in units (I_MAX / i_unit): every grid,
# floor and calibration lookup scales with it, so a network is realised the same at any smaller i_unit
# (tests/compiler/test_realisation.py), and only a larger one differs.
REALISATION_KEYS = (
    "i_unit",
    "denominator",
    "max_units",
    "bias_denominator",
    "min_width_ratio",
    "calibrated",
    "corner",
    "temp",
)
ZOO_OPTIONS = ("zoo", "seed", "output", "config", "quiet")  # the options `train --zoo` takes
DEFAULT_MARGIN = 0.02  # 5 x the build report's tie distance (flows/quantisation.py TIE)
DEFAULT_MARGIN_WEIGHT = 1.0


class BadMargin(UsageError):
    """A decision margin or its weight outside its range."""


class BadTrainRequest(UsageError):
    """`train` without a model to train (--task, --cell, --d, -o), or --zoo naming no hardware-aware entry."""


def realisation_settings(config: Config) -> dict:
    """The build settings that decide what the circuit realises: the model-wide values and any per-stage
    or per-kind override of them."""
    settings = {"model": {key: config.get(key) for key in REALISATION_KEYS}}
    for section in ("stage_types", "stages"):
        table = {
            name: {k: v for k, v in values.items() if k in REALISATION_KEYS}
            for name, values in getattr(config, section).items()
        }
        if any(table.values()):
            settings[section] = {name: values for name, values in sorted(table.items()) if values}
    return settings


def hardware(
    graph: dict,
    config: Config,
    margin: float = DEFAULT_MARGIN,
    margin_weight: float = DEFAULT_MARGIN_WEIGHT,
    mismatch: bool = False,
    power_weight: float = 0.0,
):
    """The `Hardware` of a model graph under a build configuration, for models.train.train; `mismatch`
    draws one chip's device mismatch per training step (the statistical model's sigmas); `power_weight`
    adds that times the circuit's supply current, in unit currents, to the loss (compiler/power.py)."""
    import jax.numpy as jnp

    from models.train import Hardware

    for name, value, high in (
        ("--margin", margin, 0.5),
        ("--margin-weight", margin_weight, 100.0),
        ("--power-weight", power_weight, 1.0),
    ):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and 0 <= value <= high):
            raise BadMargin(f"{name} must be a number in [0, {high:g}], got {shown(value)}")
    network = network_of(Checkpoint(graph, init_arrays(graph, 0), {}), "<training>")
    check_design_rules(network)  # a layer the circuit cannot build is refused before training, not after
    lowered = lower(network)
    config.check_stages([stage.name for stage in lowered.stages], STAGE_TYPES)
    plan = Realisation.of(lowered, config)
    record = {
        "build_settings": realisation_settings(config),
        "mismatch_noise": mismatch,
        "margin_weight": margin_weight,
        **({"power_weight": power_weight} if power_weight else {}),
    }
    supply = PowerModel.of(lowered, config)

    def power(params, traces, x):
        return sum(supply.supply(params, traces, x, xp=jnp).values())

    return Hardware(plan.settle, margin, margin_weight, record, plan.spread if mismatch else None, power, power_weight)


def settings_mismatch(metadata: dict, config: Config) -> str | None:
    """What differs between the settings a hardware-aware checkpoint was trained for and `config`'s, or None."""
    record = metadata.get("hardware_aware")
    if not isinstance(record, dict):
        return None
    trained, now = record.get("build_settings"), realisation_settings(config)
    if trained == now:
        return None
    if not isinstance(trained, dict):
        return "the checkpoint's record of its build settings is unreadable"
    was, built = _flat(trained), _flat(now)
    differ = [key for key in sorted(set(was) | set(built)) if was.get(key) != built.get(key)]
    return (
        "; ".join(
            f"{key}: trained for {shown(was.get(key))}, built with {shown(built.get(key))}"
            for key in differ
            if not _scaled_down(was, built) or key.rsplit(".", 1)[-1] != "i_unit"
        )
        or None
    )


def _scaled_down(trained: dict, built: dict) -> bool:
    """Whether every unit current (the model's and each override's) is built at the same fraction, at most
    1, of what it was trained for: the grids and floors then scale together and realise the same network."""
    units = sorted({key for key in (*trained, *built) if key.rsplit(".", 1)[-1] == "i_unit"})
    pairs = [(trained.get(key), built.get(key)) for key in units]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for pair in pairs for v in pair):
        return False
    ratios = [b / t for t, b in pairs]
    return all(r <= 1 and math.isclose(r, ratios[0], rel_tol=1e-9) for r in ratios)


def _flat(settings: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in settings.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def add_arguments(parser) -> None:
    from models.cli import add_train_arguments

    parser.add_argument(
        "--zoo",
        metavar="NAME",
        help="retrain this shipped FQ model with its zoo settings (models/catalog.py: every training and "
        "margin setting, its seed unless --seed is given) and build configuration",
    )
    add_train_arguments(parser)
    for action in parser._actions:  # with --zoo, the model's settings come from the zoo
        if action.dest in ("task", "cell", "d", "output"):
            action.required = False
    parser.set_defaults(seed=None)  # --zoo: the zoo entry's own seed unless one is given
    parser.add_argument("--config", help="build configuration to train for (default: the compiler's defaults)")
    parser.add_argument(
        "--margin",
        type=float,
        default=DEFAULT_MARGIN,
        help="distance candidates keep from a threshold, relative to it (0: no margin term)",
    )
    parser.add_argument("--margin-weight", type=float, default=DEFAULT_MARGIN_WEIGHT)
    parser.add_argument(
        "--power-weight",
        type=float,
        default=0.0,
        help="loss per unit current of the circuit's supply current (compiler/power.py; 0: no power term)",
    )
    parser.add_argument(
        "--mismatch",
        action="store_true",
        help="train under device mismatch: one draw of the cells' mismatch sigmas per step (more robust chips)",
    )
    # Every training setting defaults to None here, so that one given with --zoo can be refused; run()
    # fills in the real defaults (kept in `train_defaults`) otherwise.
    settings = [a for a in parser._actions if a.dest not in ZOO_OPTIONS and a.dest != "help" and a.default is not None]
    parser.set_defaults(train_defaults={a.dest: a.default for a in settings}, **{a.dest: None for a in settings})


def run(args) -> int:
    from dataclasses import replace

    from models.catalog import HARDWARE_AWARE, ZOO, build_config, zoo_path
    from models.cli import report_training, train_config
    from models.train import graph_of, train

    given = sorted(dest for dest in args.train_defaults if getattr(args, dest) is not None)
    for dest, default in args.train_defaults.items():
        if getattr(args, dest) is None:
            setattr(args, dest, default)
    if args.zoo is not None:
        if given:
            options = ", ".join("--" + dest.replace("_", "-") for dest in given)
            raise BadTrainRequest(
                f"--zoo trains the entry with its own settings: drop {options} (or train without --zoo)"
            )
        if args.zoo not in HARDWARE_AWARE:
            raise BadTrainRequest(
                f"--zoo {shown(args.zoo)} is not a hardware-aware zoo model; choose one of "
                f"{', '.join(sorted(HARDWARE_AWARE))}"
            )
        cfg = ZOO[args.zoo] if args.seed is None else replace(ZOO[args.zoo], seed=args.seed)
        output = args.output or zoo_path(args.zoo)
        config_path = args.config or build_config(zoo_path(args.zoo))
        settings = HARDWARE_AWARE[args.zoo]
    else:
        missing = [f"--{name}" for name in ("task", "cell", "d", "output") if getattr(args, name) is None]
        if missing:
            raise BadTrainRequest(f"train needs {', '.join(missing)} (or --zoo NAME)")
        args.seed = 0 if args.seed is None else args.seed
        cfg = train_config(args)
        output, config_path = args.output, args.config
        settings = {
            "margin": args.margin,
            "margin_weight": args.margin_weight,
            "mismatch": args.mismatch,
            "power_weight": args.power_weight,
        }
    check_output_path(output)
    config = load_config(config_path)
    chip = hardware(graph_of(cfg), config, **settings)
    result = train(cfg, progress=not args.quiet, hardware=chip)
    status = report_training(output, result)
    if args.zoo is not None and Path(output).resolve() == zoo_path(args.zoo).resolve():
        from models.zoo_readme import write_readme

        write_readme()
    print(f"trained for the build settings {realisation_settings(config)}", file=sys.stderr)
    return status
