"""Benchmark tasks with fixed splits, their losses and their metrics (all offline, deterministic).

Every input is non-negative and in [0, 1] so that any task can drive a hardware-mappable network
(inputs become currents). Data are generated from fixed seeds that do not depend on the training
seed, so a test split is the same for every model and every run.

Tasks
* ``copy_first``   noisy continuous copy-first-input: channel 0 carries a value v ~ U(0, 1) at t = 0
  and uniform distractors afterwards, channel 1 flags t = 0; predict v at the last frame. Metric: MAE
  (also reported at longer sequences, ``mae_T256``, ``mae_T1024``).
* ``digits_rows``  scikit-learn's bundled 8x8 digits read row by row (T = 8, 8 features).
* ``digits_rows_clock`` the same rows with a frame clock: 8 more channels, one-hot in the frame index (in a
  circuit, a frame counter switching one unit current per frame), because a bistable layer's candidate has
  no recurrence and cannot otherwise tell which row it is reading (T = 8, 16 features).
* ``digits_pixels`` the same digits pixel by pixel (T = 64, 1 feature).
* ``flipflop``     two latches, each with a set and a reset channel (noisy pulses); predict every
  latch's state at every frame. Metric: per-frame bit accuracy.
* ``event_count``  pulses on one channel, some supra-threshold (>= 0.6), some sub-threshold (<= 0.35);
  the answer is the number of supra-threshold pulses (0..4), read at the last frame (trained on the
  running count at every frame). A counter (CMRU) can solve it; a bistable cell can only tell 0 from
  >= 1. Metric: last-frame accuracy.
* ``kws_yes``      keyword spotting: 'yes' against nine other command words, synthesised by espeak-ng
  across accents, voices, speeds, pitches and noise, as 16 frames of 13 log-mel bands
  (``models/speech.py``; stored in ``models/data/kws_yes.npz``). Metric: accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable

import jax.numpy as jnp
import numpy as np
import optax


@dataclass(frozen=True)
class Split:
    x: np.ndarray  # [N, T, F] float32 in [0, 1]
    y: np.ndarray


@dataclass(frozen=True)
class TaskShape:
    """What a network for the task must take and give, known without generating the data."""

    n_in: int  # input features per frame
    n_out: int  # output features (logits or values) per frame
    pool: bool  # classification by the mean over time of per-frame logits


SHAPES = {
    "copy_first": TaskShape(2, 1, False),
    "digits_rows": TaskShape(8, 10, True),
    "digits_rows_clock": TaskShape(16, 10, True),
    "digits_pixels": TaskShape(1, 10, True),
    "flipflop": TaskShape(4, 2, False),
    "event_count": TaskShape(1, 5, False),
    "kws_yes": TaskShape(13, 2, True),
}


@dataclass(frozen=True)
class Task:
    name: str
    description: str
    n_in: int
    n_out: int
    pool: bool  # classification by the mean over time of per-frame logits
    train: Split
    val: Split
    test: Split
    loss: Callable  # jax: (network output, targets) -> scalar
    metrics: Callable  # numpy: (network output, targets) -> {name: float}
    metric: str  # primary metric name
    higher_is_better: bool
    extra_tests: dict = field(default_factory=dict)  # suffix -> Split, evaluated at save time

    def split(self, name: str) -> Split:
        if name not in ("train", "val", "test"):
            raise ValueError(f"unknown split {name!r}; use train, val or test")
        return getattr(self, name)

    def better(self, a: float, b: float) -> bool:
        """True if metric value a is strictly better than b."""
        return a > b if self.higher_is_better else a < b


# ---------------------------------------------------------------------------- losses and metrics


def _ce_loss(logits, y):
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y))


def _acc(logits, y):
    return {"acc": float(np.mean(np.argmax(logits, -1) == y))}


def _bce_loss(logits, y):
    return jnp.mean(optax.sigmoid_binary_cross_entropy(logits, y))


def _bit_acc(logits, y):
    return {"acc": float(np.mean((logits > 0) == (y > 0.5)))}


def _last_mse(out, y):
    return jnp.mean((out[..., -1, 0] - y) ** 2)


def _last_mae(out, y):
    return {"mae": float(np.mean(np.abs(out[..., -1, 0] - y)))}


def _count_loss(logits, y):
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y))


def _count_acc(logits, y):
    pred = np.argmax(logits, -1)
    return {"acc": float(np.mean(pred[:, -1] == y[:, -1])), "frame_acc": float(np.mean(pred == y))}


# ---------------------------------------------------------------------------- generators


def _copy_first(n: int, T: int, seed: int) -> Split:
    rng = np.random.default_rng(seed)
    x = np.zeros((n, T, 2), np.float32)
    v = rng.uniform(0, 1, n).astype(np.float32)
    x[:, :, 0] = rng.uniform(0, 1, (n, T))
    x[:, 0, 0] = v
    x[:, 0, 1] = 1.0
    return Split(x, v)


def _flipflop(n: int, T: int, seed: int, bits: int = 2, rate: float = 0.08) -> Split:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 0.1, (n, T, 2 * bits)).astype(np.float32)
    y = np.zeros((n, T, bits), np.float32)
    event = rng.uniform(size=(n, T, bits)) < rate
    kind = rng.integers(0, 2, (n, T, bits))  # 0 = set, 1 = reset
    amp = rng.uniform(0.5, 1.0, (n, T, bits)).astype(np.float32)
    state = np.zeros((n, bits), np.float32)
    for t in range(T):
        for b in range(bits):
            on = event[:, t, b]
            ch = 2 * b + kind[:, t, b]
            x[on, t, ch[on]] = amp[on, t, b]
            state[on, b] = (kind[on, t, b] == 0).astype(np.float32)
        y[:, t] = state
    return Split(x, y)


def _event_count(n: int, T: int, seed: int, max_count: int = 4, max_sub: int = 4) -> Split:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 0.05, (n, T, 1)).astype(np.float32)
    y = np.zeros((n, T), np.int32)
    for i in range(n):
        n_sup = rng.integers(0, max_count + 1)
        n_sub = rng.integers(0, max_sub + 1)
        pos = rng.choice(T, n_sup + n_sub, replace=False)
        sup, sub = pos[:n_sup], pos[n_sup:]
        x[i, sup, 0] = rng.uniform(0.6, 1.0, n_sup)
        x[i, sub, 0] = rng.uniform(0.1, 0.35, n_sub)
        marks = np.zeros(T, np.int32)
        marks[sup] = 1
        y[i] = np.cumsum(marks)
    return Split(x, y)


def _with_clock(split: Split) -> Split:
    """The frames of a split with a one-hot frame index appended to each."""
    n, T, _ = split.x.shape
    clock = np.broadcast_to(np.eye(T, dtype=np.float32), (n, T, T))
    return Split(np.concatenate([split.x, clock], axis=-1), split.y)


def _digits_splits(pixels: bool):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    images = (data.images / 16.0).astype(np.float32)
    seqs = images.reshape(-1, 64, 1) if pixels else images.reshape(-1, 8, 8)
    labels = data.target.astype(np.int32)
    idx = np.arange(len(labels))
    rest, test = train_test_split(idx, test_size=360, stratify=labels, random_state=0)
    train, val = train_test_split(rest, test_size=180, stratify=labels[rest], random_state=0)
    return tuple(Split(seqs[np.sort(s)], labels[np.sort(s)]) for s in (train, val, test))


# ---------------------------------------------------------------------------- registry


def _shape(name: str) -> tuple:
    """(n_in, n_out, pool) of a task, in the order of the Task fields."""
    s = SHAPES[name]
    return s.n_in, s.n_out, s.pool


def _make(name: str) -> Task:
    if name == "copy_first":
        T = 64
        return Task(
            name,
            "noisy copy-first-input (regression at the last frame)",
            *_shape(name),
            _copy_first(4096, T, 101),
            _copy_first(512, T, 102),
            _copy_first(1024, T, 103),
            _last_mse,
            _last_mae,
            "mae",
            False,
            {"T256": _copy_first(512, 256, 104), "T1024": _copy_first(256, 1024, 105)},
        )
    if name in ("digits_rows", "digits_pixels"):
        pixels = name == "digits_pixels"
        train, val, test = _digits_splits(pixels)
        how = "pixel by pixel (T=64)" if pixels else "row by row (T=8)"
        return Task(name, f"sklearn 8x8 digits {how}", *_shape(name), train, val, test, _ce_loss, _acc, "acc", True)
    if name == "digits_rows_clock":
        train, val, test = (_with_clock(split) for split in _digits_splits(False))
        how = "row by row (T=8) with a one-hot frame clock"
        return Task(name, f"sklearn 8x8 digits {how}", *_shape(name), train, val, test, _ce_loss, _acc, "acc", True)
    if name == "flipflop":
        T = 64
        return Task(
            name,
            "2-bit latching flip-flop (per-frame state)",
            *_shape(name),
            _flipflop(2048, T, 201),
            _flipflop(256, T, 202),
            _flipflop(512, T, 203),
            _bce_loss,
            _bit_acc,
            "acc",
            True,
        )
    if name == "event_count":
        T = 32
        return Task(
            name,
            "count supra-threshold pulses (0..4, read at the last frame)",
            *_shape(name),
            _event_count(4096, T, 301),
            _event_count(512, T, 302),
            _event_count(1024, T, 303),
            _count_loss,
            _count_acc,
            "acc",
            True,
        )
    if name == "kws_yes":
        from models import speech

        train, val, test = (Split(*split) for split in speech.load().values())
        about = "keyword spotting: 'yes' vs 9 other words (espeak-ng, 16 frames x 13 log-mel bands)"
        return Task(name, about, *_shape(name), train, val, test, _ce_loss, _acc, "acc", True)
    raise KeyError(f"unknown task {str(name)[:80]!r}; choose one of {TASKS}")


TASKS = tuple(SHAPES)


@lru_cache(maxsize=None)
def get_task(name: str) -> Task:
    """The task with its fixed train/val/test splits (cached; arrays are shared, do not mutate)."""
    return _make(name)
