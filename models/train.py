"""Training: AdamW + cosine decay + gradient clipping, eps-annealing, early stopping on validation.

Deterministic for a given config: initialisation and batch order come from numpy generators seeded
by ``seed``, the optimiser runs in jitted chunks of ``eval_every`` steps, and the checkpoint holds no
timestamps, so the same config gives the same checkpoint bytes on the same software stack.

Hardware-aware training (a ``Hardware`` given by the compiler, flows/train.py) runs every step on the
values the circuit realises, with straight-through gradients, adds a decision-margin term, selects on the
realised network and saves the realised values: the checkpoint is the network the circuit computes.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm import tqdm

from models import __version__
from models.backbone import CELLS, build_graph
from models.cells import open_comparisons
from models.checkpoint import SCHEMA_VERSION, Checkpoint
from models.errors import UsageError
from models.evaluate import evaluate, loss_value, predict, predictor
from models.layers import NON_NEGATIVE
from models.mismatch import perturb
from models.network import apply, has_annealed_cells, init_arrays, is_hardware_mappable, shown
from models.schedule import EpsSchedule, cosine_lr
from models.tasks import TASKS, get_task


class BadTrainConfig(UsageError):
    """A training setting is of the wrong kind or outside its range."""


class TrainingDiverged(UsageError):
    """Training ended with non-finite parameters (the learning rate is too high for the model)."""


MAX_STEPS = 1_000_000
MISMATCH_SEED = 17  # the device-mismatch draws of hardware-aware training (one per step)
# Integer settings: (lowest, highest). The highest bound what one training run on a CPU can hold.
INT_RANGES = {
    "d": (1, 1024),
    "layers": (1, 16),
    "head": (0, 1024),
    "encoder": (0, 1024),
    "K": (1, 16),
    "batch": (1, 1024),
    "steps": (0, MAX_STEPS),
    "eps_hold": (0, MAX_STEPS),
    "eps_decay": (0, MAX_STEPS),
    "eval_every": (1, MAX_STEPS),
    "patience": (1, 10_000),
    "seed": (0, 2**32 - 1),
}
# Real settings: (lowest, highest, lowest included).
REAL_RANGES = {"lr": (0.0, 1.0, False), "weight_decay": (0.0, 1.0, True), "clip": (0.0, 1e6, False)}


NOT_OPTIONS = frozenset({"eval_every", "weight_decay", "clip"})  # not options of `train`


def _setting(key: str) -> str:
    """A setting's name as the command line spells it (--eps-hold), or its field name."""
    return key if key in NOT_OPTIONS else "--" + key.replace("_", "-")


def _check_int(key: str, value) -> None:
    lo, hi = INT_RANGES[key]
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise BadTrainConfig(f"{_setting(key)} must be an integer in [{lo}, {hi}], got {shown(value)}")


def _check_real(key: str, value) -> None:
    lo, hi, closed = REAL_RANGES[key]
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not (ok and (lo <= value if closed else lo < value) and value <= hi):
        interval = f"{'[' if closed else '('}{lo:g}, {hi:g}]"
        raise BadTrainConfig(f"{_setting(key)} must be a finite number in {interval}, got {shown(value)}")


@dataclass(frozen=True)
class TrainConfig:
    task: str
    cell: str
    d: int
    layers: int = 1
    seed: int = 0
    steps: int = 0  # 0: eps-annealing length + 3000 for annealed cells, else 3000
    batch: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    clip: float = 1.0
    eps_hold: int = 1000
    eps_decay: int = 5000
    eval_every: int = 250
    patience: int = 8  # evaluations without improvement (counted once eps = 0)
    mlp: bool = False
    K: int = 4
    head: int = 0  # width of a linear+ReLU layer before the readout (0: none)
    encoder: int = 0  # width of a linear+ReLU layer on the inputs, before the first cells (0: none)

    def __post_init__(self):
        """Refuse a config that cannot train (BadTrainConfig), before any data or compilation."""
        if self.task not in TASKS:
            raise BadTrainConfig(f"unknown task {shown(self.task)}; choose one of {', '.join(TASKS)}")
        if self.cell not in CELLS:
            raise BadTrainConfig(f"unknown cell {shown(self.cell)}; choose one of {', '.join(CELLS)}")
        if not isinstance(self.mlp, bool):
            raise BadTrainConfig(f"mlp must be true or false, got {shown(self.mlp)}")
        for key in INT_RANGES:
            _check_int(key, getattr(self, key))
        for key in REAL_RANGES:
            _check_real(key, getattr(self, key))

    def total_steps(self, annealed: bool) -> int:
        if self.steps:
            return self.steps
        return (self.eps_hold + self.eps_decay + 3000) if annealed else 3000


@dataclass(frozen=True, eq=False)
class Hardware:
    """What hardware-aware training takes from the compiler (the models know no circuit).

    `realise` maps the model's arrays (numpy) to the values the circuit realises for those it sets
    (float32, the same names and shapes); `margin` is the smallest distance, relative to the set
    threshold, that a memory cell's candidate should keep from a threshold whose comparison changes its
    state (`margin_loss`), with the loss weight `margin_weight`; `record` goes into the checkpoint's
    metadata (the build configuration trained for); with `spread`, each step draws one chip's device
    mismatch (models/mismatch.py) on the realised values; with `power`, the loss adds `power_weight` times
    the circuit's supply current (in its unit current) that `power(params, traces, x)` returns (JAX)."""

    realise: Callable[[dict], dict]
    margin: float = 0.0
    margin_weight: float = 1.0
    record: dict = field(default_factory=dict)
    spread: Callable[[dict], dict] | None = None  # realised arrays -> element sigmas (models.mismatch)
    power: Callable | None = None  # (params, traces, x) -> supply current in unit currents (traceable)
    power_weight: float = 0.0


@dataclass
class TrainResult:
    checkpoint: Checkpoint
    losses: list  # mean training loss per chunk
    steps_run: int
    seconds: float

    @property
    def steps_per_second(self) -> float:
        return self.steps_run / max(self.seconds, 1e-9)


def _fit_schedule(cfg: TrainConfig, annealed: bool) -> TrainConfig:
    """Shrink the eps-annealing phase when an explicit --steps is too short to hold it, so that eps
    reaches 0 at two thirds of the run and the final third selects the deployed (eps = 0) model."""
    settled = cfg.eps_hold + cfg.eps_decay
    if not annealed or not cfg.steps or cfg.steps >= settled + cfg.eval_every:
        return cfg
    scale = (2 * cfg.steps / 3) / max(settled, 1)
    return replace(cfg, eps_hold=int(cfg.eps_hold * scale), eps_decay=int(cfg.eps_decay * scale))


def _non_negative_keys(graph) -> frozenset:
    """Arrays that are bias currents in the circuit (kept >= 0 by projection after each step)."""
    return frozenset(f"{layer['name']}.{p}" for layer in graph["layers"] for p in NON_NEGATIVE.get(layer["type"], ()))


@lru_cache(maxsize=16)
def _compiled(
    graph_json: str,
    task_name: str,
    lr: float,
    weight_decay: float,
    clip: float,
    total: int,
    hold: int,
    decay: int,
    annealed: bool,
    hardware: Hardware | None = None,
):
    """Optimiser and jitted training chunk, shared by runs that differ only in seed (compile once)."""
    graph, task = json.loads(graph_json), get_task(task_name)
    eps_schedule = EpsSchedule(hold, decay) if annealed else EpsSchedule(0, 0)
    optimizer = optax.chain(
        optax.clip_by_global_norm(clip), optax.adamw(cosine_lr(lr, total), weight_decay=weight_decay)
    )
    return optimizer, _make_chunk(graph, task, optimizer, eps_schedule, hardware), predictor(graph)


def straight_through(hardware: Hardware, params: dict, names: tuple, spread_names: tuple, key) -> dict:
    """The realised values of the arrays `names` in the forward pass, the identity in the backward pass;
    with the hardware's `spread`, one draw of device mismatch on top (gradients pass through it)."""

    def shape(name):  # a memory cell's sigmas ("<cell>.set") have its units' shape
        return params[name].shape if name in params else params[name.rsplit(".", 1)[0] + ".alpha"].shape

    shapes = {name: jax.ShapeDtypeStruct(shape(name), jnp.float32) for name in names}
    spread_shapes = {name: jax.ShapeDtypeStruct(shape(name), jnp.float32) for name in spread_names}

    def realise(arrays):
        arrays = {k: np.asarray(v) for k, v in arrays.items()}
        realised = hardware.realise(arrays)
        return realised, (hardware.spread({**arrays, **realised}) if spread_names else {})

    realised, spread = jax.pure_callback(realise, (shapes, spread_shapes), jax.lax.stop_gradient(params))
    params = {k: v + jax.lax.stop_gradient(realised[k] - v) if k in realised else v for k, v in params.items()}
    return perturb(params, spread, key) if spread_names else params


def margin_loss(graph, params, traces, margin: float):
    """Mean over memory-cell decisions of how far inside `margin` (relative to the set threshold) the
    candidate sits from a threshold whose comparison changes the state (the set threshold while the unit can
    step up, the reset threshold while it can step down), in [0, 1]: zero once every decision is clear."""
    terms = []
    for layer in graph["layers"]:
        if layer["type"] in NON_NEGATIVE:
            beta_lo, delta = params[f"{layer['name']}.beta_lo"], params[f"{layer['name']}.delta"]
            beta_hi = jnp.maximum(beta_lo + delta, 1e-6)
            h, q = traces[layer["name"]]["h"], jax.lax.stop_gradient(traces[layer["name"]]["q"])
            can_set, can_reset = open_comparisons(q, layer.get("K", 1))  # an FQ-BMRU's top level is 1
            up = jax.nn.relu(1.0 - jnp.abs(h - beta_hi) / (margin * beta_hi)) * can_set
            down = jax.nn.relu(1.0 - jnp.abs(h - beta_lo) / (margin * beta_hi)) * can_reset
            terms.append(jnp.mean(jnp.maximum(up, down)))
    return sum(terms) / max(len(terms), 1)


def _make_chunk(graph, task, optimizer, eps_schedule, hardware=None):
    clipped = _non_negative_keys(graph)
    realised_names, spread_names = (), ()
    if hardware is not None:  # the names the callbacks return, from the initial arrays
        first = init_arrays(graph, 0)
        realised = hardware.realise(first)
        realised_names = tuple(sorted(realised))
        if hardware.spread is not None:
            spread_names = tuple(sorted(hardware.spread({**first, **realised})))

    def project(params):
        return {k: jnp.maximum(v, 0.0) if k in clipped else v for k, v in params.items()}

    def loss_fn(params, x, y, eps, key):
        if hardware is None:
            out, _ = apply(graph, params, x, eps=eps)
            return task.loss(out, y)
        params = straight_through(hardware, params, realised_names, spread_names, key)
        out, traces = apply(graph, params, x, eps=eps)
        loss = task.loss(out, y)
        if hardware.margin > 0:
            loss = loss + hardware.margin_weight * margin_loss(graph, params, traces, hardware.margin)
        if hardware.power is not None and hardware.power_weight > 0:
            loss = loss + hardware.power_weight * hardware.power(params, traces, x)
        return loss

    def one_step(carry, batch):
        params, opt_state, step = carry
        x, y = batch
        key = jax.random.fold_in(jax.random.PRNGKey(MISMATCH_SEED), step)
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y, eps_schedule(step), key)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = project(optax.apply_updates(params, updates))
        return (params, opt_state, step + 1), loss

    @jax.jit
    def chunk(params, opt_state, step, xs, ys):
        (params, opt_state, step), losses = jax.lax.scan(one_step, (params, opt_state, step), (xs, ys))
        return params, opt_state, step, jnp.mean(losses)

    return chunk


def graph_of(cfg: TrainConfig) -> dict:
    """The layer graph a training config builds."""
    task = get_task(cfg.task)
    return build_graph(
        cfg.cell,
        task.n_in,
        cfg.d,
        task.n_out,
        layers=cfg.layers,
        pool=task.pool,
        mlp=cfg.mlp,
        K=cfg.K,
        head=cfg.head,
        encoder=cfg.encoder,
    )


def train(cfg: TrainConfig, progress: bool = True, hardware: Hardware | None = None) -> TrainResult:
    """Train one model and return its checkpoint (best validation point once eps = 0); with `hardware`,
    trained, selected and saved as the circuit realises it."""
    task, graph = get_task(cfg.task), graph_of(cfg)
    annealed = has_annealed_cells(graph)
    cfg = _fit_schedule(cfg, annealed)
    settled = cfg.eps_hold + cfg.eps_decay if annealed else 0
    total = cfg.total_steps(annealed)
    optimizer, chunk, fwd = _compiled(
        json.dumps(graph, sort_keys=True),
        task.name,
        cfg.lr,
        cfg.weight_decay,
        cfg.clip,
        total,
        cfg.eps_hold,
        cfg.eps_decay,
        annealed,
        hardware,
    )
    deployed = (lambda arrays: {**arrays, **hardware.realise(arrays)}) if hardware else (lambda arrays: arrays)
    params = {k: jnp.asarray(v) for k, v in init_arrays(graph, cfg.seed).items()}
    opt_state = optimizer.init(params)
    rng = np.random.default_rng([cfg.seed, 7])
    train_x, train_y = task.train.x, task.train.y

    best, best_score, best_step, stale, losses = None, None, 0, 0, []
    step, start = 0, time.perf_counter()
    with tqdm(
        total=total, disable=not progress, desc=f"{cfg.cell} d={cfg.d} {cfg.task}", leave=False
    ) as bar:  # closed (its line cleared) on Ctrl-C too
        while step < total:
            n = min(cfg.eval_every, total - step)
            idx = rng.integers(0, len(train_x), (n, cfg.batch))
            params, opt_state, _, loss = chunk(params, opt_state, jnp.int32(step), train_x[idx], train_y[idx])
            step += n
            losses.append(float(loss))
            bar.update(n)
            if step < settled and step < total:
                continue
            np_params = deployed({k: np.asarray(v) for k, v in params.items()})
            out = predict(fwd, np_params, task.val.x)
            score = (task.metrics(out, task.val.y)[task.metric], loss_value(task, out, task.val.y))
            bar.set_postfix(loss=f"{losses[-1]:.4f}", val=f"{score[0]:.4f}")
            if (
                best is None
                or task.better(score[0], best_score[0])
                or (score[0] == best_score[0] and score[1] < best_score[1])
            ):
                best, best_score, best_step, stale = np_params, score, step, 0
            else:
                stale += 1
                if stale >= cfg.patience:
                    break
    seconds = time.perf_counter() - start
    if not np.all([np.all(np.isfinite(v)) for v in best.values()]):
        raise TrainingDiverged(f"training diverged at --lr {cfg.lr:g} (the parameters became NaN or Inf); lower --lr")
    metrics = evaluate(graph, best, task)
    metadata = {
        "schema_version": SCHEMA_VERSION,
        "package": "fqrnn-compiler.models",
        "package_version": __version__,
        "jax_version": jax.__version__,
        "task": task.name,
        "task_description": task.description,
        "split": {
            "train": len(task.train.y),
            "val": len(task.val.y),
            "test": len(task.test.y),
            "definition": f"models.tasks.get_task({task.name!r}) (fixed seeds)",
        },
        "readout": "mean_time" if task.pool else "per_frame",
        "metric": task.metric,
        "higher_is_better": task.higher_is_better,
        "metrics": metrics,
        "train_config": asdict(cfg),
        "seed": cfg.seed,
        "best_step": best_step,
        "steps_run": step,
        "hardware_mappable": is_hardware_mappable(graph),
    }
    if hardware is not None:
        metadata["hardware_aware"] = {"margin": hardware.margin, **hardware.record}
    arrays = {k: np.asarray(v, np.float32) for k, v in best.items()}
    return TrainResult(Checkpoint(graph, arrays, metadata), losses, step, seconds)


def config_from_metadata(metadata: dict, **overrides) -> TrainConfig:
    """Rebuild the training config stored in a checkpoint (to retrain it)."""
    stored = metadata.get("train_config")
    if not isinstance(stored, dict):
        raise BadTrainConfig("the checkpoint metadata holds no 'train_config'; it cannot be retrained")
    try:
        return replace(TrainConfig(**stored), **overrides)
    except TypeError as exc:
        raise BadTrainConfig(
            f"the stored train_config does not fit this package "
            f"({shown(str(exc), 160)}); "
            "retrain with explicit settings"
        ) from None
