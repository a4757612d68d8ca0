"""Training schedules: eps-annealing for bistable cells and the cosine learning rate."""

from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp
import optax


@dataclass(frozen=True)
class EpsSchedule:
    """eps = 1 for ``hold`` steps, linear decay to 0 over ``decay`` steps, then 0.

    Training starts as a CMRU (gradients pass every switch) and ends as the bistable cell that is
    deployed; checkpoints are only kept once eps has reached 0.
    """

    hold: int = 1000
    decay: int = 5000

    def __call__(self, step):
        step = jnp.asarray(step, jnp.float32)
        if self.decay == 0:  # no annealing: eps = 1 for `hold` steps, then the deployed cell
            return jnp.where(step < self.hold, 1.0, 0.0)
        return jnp.clip(1.0 - (step - self.hold) / self.decay, 0.0, 1.0)

    @property
    def settled_at(self) -> int:
        """First step at which eps is exactly 0."""
        return self.hold + self.decay


def cosine_lr(lr: float, total_steps: int):
    """lr with cosine decay to 1 % of its value over the run."""
    return optax.cosine_decay_schedule(lr, max(total_steps, 1), alpha=0.01)
