"""A small FQ-BMRU network checkpoint built in the test (two layers, residual, pooled readout)."""

import numpy as np
import pytest

from models.backbone import build_graph
from models.checkpoint import Checkpoint, save_checkpoint
from models.network import init_arrays


def make_checkpoint(path, *, n_in=8, d=4, n_out=3, layers=2, seed=0, edit=None):
    graph = build_graph("fq_bmru", n_in, d, n_out, layers=layers, pool=True)
    arrays = init_arrays(graph, seed)
    if edit:
        edit(graph, arrays)
    save_checkpoint(path, Checkpoint(graph, arrays, {"task": "digits_rows"}))
    return path


@pytest.fixture
def small_ckpt(tmp_path):
    return make_checkpoint(tmp_path / "small.ckpt")


@pytest.fixture
def checkpoint_factory():
    """make_checkpoint(path, n_in=, d=, n_out=, layers=, seed=, edit=) for tests that shape their model."""
    return make_checkpoint


@pytest.fixture
def rng():
    return np.random.default_rng(0)
