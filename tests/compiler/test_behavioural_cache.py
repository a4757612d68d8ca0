"""The behavioural reference is compiled once per layer graph, not once per call."""

import json

import jax
import numpy as np

from compiler.backends.behavioural import compiled, reference
from compiler.config import Config
from compiler.frontend import load_network
from compiler.lower import lower
from compiler.passes import run_pipeline


def test_a_second_reference_reuses_the_compiled_network(small_ckpt):
    ir, _ = run_pipeline(lower(load_network(small_ckpt)), Config())
    x = np.random.default_rng(0).uniform(0, 1, (2, 3, 8)).astype(np.float32)
    compiled.cache_clear()
    first, _ = reference(ir, x)
    network = compiled(json.dumps(ir.meta.graph, sort_keys=True))
    second, _ = reference(ir, x)
    assert compiled.cache_info().misses == 1  # one jitted network for the graph, reused by every call
    assert network._cache_size() == 1  # and compiled once for this input shape
    assert np.array_equal(np.asarray(first), np.asarray(second))


def test_the_cached_network_computes_what_a_fresh_jit_computes(small_ckpt):
    from compiler.backends.behavioural import arrays_from_ir
    from models.network import apply

    ir, _ = run_pipeline(lower(load_network(small_ckpt)), Config())
    x = np.random.default_rng(1).uniform(0, 1, (2, 3, 8)).astype(np.float32)
    fresh = jax.jit(lambda arrays, x: apply(ir.meta.graph, arrays, x, mode="sequential"))(arrays_from_ir(ir), x)
    assert np.array_equal(np.asarray(reference(ir, x)[0]), np.asarray(fresh[0]))
