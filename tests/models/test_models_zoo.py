"""The shipped zoo: every checkpoint loads, and re-evaluating it on its test split reproduces the
metric stored at save time (CI does this instead of retraining)."""

import pytest

from compiler.config import load_config
from models.catalog import HARDWARE_AWARE, ZOO, ZOO_DIR, build_config, shipped, zoo_path
from models.checkpoint import load_checkpoint
from models.evaluate import evaluate_checkpoint
from models.network import is_hardware_mappable
from models.tasks import get_task
from models.train import config_from_metadata, graph_of, train

HARDWARE_ENTRIES = [name for name, cfg in ZOO.items() if cfg.cell.startswith("fq_")]
TOLERANCE = 0.02  # absolute, on the test metric, when retraining on a different software stack


def test_zoo_is_complete_and_small():
    names = {p.stem for p in shipped()}
    assert names == set(ZOO)
    for p in shipped():
        assert p.stat().st_size < 64 * 1024


def test_zoo_build_configs_load_and_belong_to_a_shipped_model(tmp_path):
    configs = sorted(ZOO_DIR.glob("*.yaml"))
    assert configs and {c.stem for c in configs} <= set(ZOO)
    for config in configs:
        load_config(config)  # validates: a misspelt option raises ConfigError
    assert load_config(build_config(zoo_path("fq_bmru_d4_digits_clock"))).get("i_unit") == 1.5e-10  # low power
    assert build_config(zoo_path("fq_cmru_d8_event_count")) is None
    assert build_config(tmp_path / "fq_bmru_d4_digits_clock.ckpt") is None  # a namesake outside the zoo


@pytest.mark.parametrize("name", sorted(ZOO))
def test_shipped_checkpoint_reproduces_its_metric(name):
    ckpt = load_checkpoint(zoo_path(name))
    md = ckpt.metadata
    metric = f"test_{md['metric']}"
    measured = evaluate_checkpoint(ckpt, ("test",), extra_tests=False)
    assert measured[metric] == pytest.approx(md["metrics"][metric], abs=1e-5)
    assert config_from_metadata(md) == ZOO[name]  # the catalog and the shipped file agree
    if name in HARDWARE_ENTRIES:
        assert is_hardware_mappable(ckpt.graph) and md["hardware_mappable"]
        assert md["hardware_aware"]["mismatch_noise"] == HARDWARE_AWARE[name]["mismatch"]
        assert md["hardware_aware"]["margin"] == HARDWARE_AWARE[name]["margin"]
        x = get_task(md["task"]).test.x
        assert x.min() >= 0 and x.max() <= 1  # inputs become currents


def test_counting_needs_a_counter():
    acc = {
        c: load_checkpoint(zoo_path(f"{c}_d8_event_count")).metadata["metrics"]["test_acc"]
        for c in ("fq_cmru", "fq_bmru")
    }
    assert acc["fq_cmru"] > acc["fq_bmru"] + 0.3


@pytest.mark.slow
@pytest.mark.parametrize("name", ["fq_cmru_d8_event_count", "fq_bmru_d8_digits_clock", "lru_d8_digits_rows"])
def test_retraining_reproduces_metric(name):
    """A hardware-aware entry is retrained as `python -m compiler train --zoo NAME` does."""
    from flows.train import hardware

    shipped_ckpt = load_checkpoint(zoo_path(name))
    cfg = config_from_metadata(shipped_ckpt.metadata)
    chip = None
    if name in HARDWARE_AWARE:
        chip = hardware(graph_of(cfg), load_config(build_config(zoo_path(name))), **HARDWARE_AWARE[name])
    again = train(cfg, progress=False, hardware=chip).checkpoint
    key = f"test_{shipped_ckpt.metadata['metric']}"
    assert again.metadata["metrics"][key] == pytest.approx(shipped_ckpt.metadata["metrics"][key], abs=TOLERANCE)
    if again.metadata["jax_version"] == shipped_ckpt.metadata["jax_version"]:
        for k, v in shipped_ckpt.arrays.items():  # same stack: bit-identical parameters
            assert again.arrays[k].tobytes() == v.tobytes(), k
