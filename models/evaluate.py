"""Measure a model's task metrics on a split (used at save time, by `eval`, and by CI)."""

from __future__ import annotations

import json
from functools import lru_cache

import jax
import numpy as np

from models.checkpoint import check_task
from models.errors import CheckpointError
from models.network import apply, shown
from models.tasks import SHAPES, Split, Task, get_task

EVAL_BATCH = 256  # every batch is padded to this size so each sequence length compiles once


@lru_cache(maxsize=64)
def _predictor(graph_json: str):
    graph = json.loads(graph_json)
    return jax.jit(lambda arrays, x: apply(graph, arrays, x)[0])


def predictor(graph):
    """A jitted deployed-mode forward pass (eps at its deployed value), cached per graph."""
    return _predictor(json.dumps(graph, sort_keys=True))


def predict(fn, arrays, x: np.ndarray) -> np.ndarray:
    outs = []
    for i in range(0, len(x), EVAL_BATCH):
        part = x[i : i + EVAL_BATCH]
        pad = EVAL_BATCH - len(part)
        if pad:
            part = np.concatenate([part, np.zeros((pad,) + part.shape[1:], part.dtype)])
        outs.append(np.asarray(fn(arrays, part))[: EVAL_BATCH - pad])
    return np.concatenate(outs, axis=0)


@lru_cache(maxsize=None)
def _jitted_loss(task_name: str):
    return jax.jit(get_task(task_name).loss)


def loss_value(task: Task, out: np.ndarray, y: np.ndarray) -> float:
    """The task loss of network outputs, compiled once per task instead of op by op."""
    return float(_jitted_loss(task.name)(out, y))


def split_metrics(task: Task, fn, arrays, split: Split, prefix: str) -> dict:
    out = predict(fn, arrays, split.x)
    metrics = {f"{prefix}_{k}": v for k, v in task.metrics(out, split.y).items()}
    metrics[f"{prefix}_loss"] = loss_value(task, out, split.y)
    return metrics


def evaluate(graph, arrays, task: Task, splits=("val", "test"), extra_tests: bool = True) -> dict:
    """Metrics on the named splits, plus (with "test") the task's extra test sets, e.g. longer
    sequences."""
    fn = predictor(graph)
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    metrics = {}
    for name in splits:
        metrics.update(split_metrics(task, fn, arrays, task.split(name), name))
    if "test" in splits and extra_tests:
        for suffix, split in task.extra_tests.items():
            for k, v in task.metrics(predict(fn, arrays, split.x), split.y).items():
                metrics[f"test_{k}_{suffix}"] = v
    return {k: round(float(v), 6) for k, v in sorted(metrics.items())}


def evaluate_checkpoint(ckpt, splits=("test",), extra_tests: bool = True) -> dict:
    """Re-measure a loaded checkpoint on its own task's splits (TaskMismatch if the network's input,
    readout or output width does not fit the task)."""
    task_name = ckpt.metadata.get("task")
    if not isinstance(task_name, str):
        raise CheckpointError("checkpoint metadata has no 'task'; it cannot be evaluated")
    if task_name not in SHAPES:
        raise CheckpointError(
            f"checkpoint task {shown(task_name)} is unknown to this package; it knows {', '.join(SHAPES)}"
        )
    check_task(ckpt.graph, task_name)
    return evaluate(ckpt.graph, ckpt.arrays, get_task(task_name), splits, extra_tests)
