"""The power model on model arrays (compiler/power.py) is the build report's, and training can lower it."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from compiler.backends.behavioural import arrays_from_ir, reference
from compiler.config import Config, load_config
from compiler.frontend import load_network
from compiler.lower import lower
from compiler.passes import run_pipeline
from compiler.power import PowerModel
from flows.report import POWER_SEQUENCES, power_estimate
from flows.train import hardware
from models.catalog import ZOO, build_config, zoo_path
from models.network import apply
from models.tasks import get_task
from models.train import TrainConfig, graph_of, train

BMRU_ZOO = sorted(name for name, cfg in ZOO.items() if cfg.cell == "fq_bmru")


@pytest.mark.parametrize("name", BMRU_ZOO)
def test_the_model_arrays_give_the_build_reports_power_per_block(name):
    """Model values against programmed (calibrated, on the bias grid) ones: within 2 % per block."""
    network = load_network(zoo_path(name))
    config = load_config(build_config(zoo_path(name)))
    ir, _ = run_pipeline(lower(network), config)
    x = get_task(network.checkpoint.metadata["task"]).test.x[:POWER_SEQUENCES]
    traces = reference(ir, x)[1]
    report = power_estimate(ir, x, traces)
    supply = PowerModel.of(lower(network), config).supply(arrays_from_ir(ir), traces, x)
    for block, units in supply.items():
        watts = float(units) * ir.meta.i_unit * ir.meta.vdd
        assert watts == pytest.approx(report["blocks_W"][block], rel=0.02), block


TINY = TrainConfig(task="flipflop", cell="fq_bmru", d=2, steps=40, eps_hold=5, eps_decay=10, eval_every=40, lr=3e-2)


def test_the_power_term_is_differentiable_and_training_with_it_lowers_the_power():
    graph = graph_of(TINY)
    model = PowerModel.of(lower(load_network_of(graph)), Config())
    x = get_task("flipflop").train.x[:16]

    @jax.jit
    def supply(arrays):
        return sum(model.supply(arrays, apply(graph, arrays, x)[1], x, xp=jnp).values())

    trained = {}
    for weight in (0.0, 0.05):
        chip = hardware(graph, Config(), power_weight=weight)
        trained[weight] = {
            k: jnp.asarray(v) for k, v in train(TINY, progress=False, hardware=chip).checkpoint.arrays.items()
        }
    grads = jax.jit(jax.grad(supply))(trained[0.0])
    assert all(np.all(np.isfinite(g)) for g in grads.values()) and any(np.any(g != 0) for g in grads.values())
    assert float(supply(trained[0.05])) < float(supply(trained[0.0]))


def load_network_of(graph):
    """The compiler's network of a layer graph with its initial arrays (what `hardware` lowers)."""
    from compiler.frontend import network_of
    from models.checkpoint import Checkpoint
    from models.network import init_arrays

    return network_of(Checkpoint(graph, init_arrays(graph, 0), {}), "<test>")
