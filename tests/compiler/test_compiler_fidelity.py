"""Fidelity regression: a zoo model built and verified in ngspice must stay as close to its reference as
the golden metrics recorded in tests/golden/fidelity.json (with the tool and PDK versions that made them)."""

import json
from pathlib import Path

import pytest

from flows.build import build
from flows.verify import verify
from models.catalog import build_config, zoo_path

pytestmark = pytest.mark.tools  # builds and verifies in ngspice

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = json.loads((ROOT / "tests" / "golden" / "fidelity.json").read_text())


@pytest.mark.parametrize("model", sorted(GOLDEN["models"]))
def test_zoo_model_fidelity_does_not_regress(model, tmp_path):
    golden, margins = GOLDEN["models"][model], GOLDEN["margins"]
    out = tmp_path / model
    build(zoo_path(model), out, build_config(zoo_path(model)), log=lambda *_: None)
    metrics = verify(out, sequences=golden["sequences"], log=lambda *_: None)
    assert metrics["frames"] == golden["frames"]
    assert metrics["state_agreement"] >= golden["state_agreement"] - margins["state_agreement"]
    for cell, rms in golden["candidate_rms_units"].items():
        assert metrics["candidate_rms_units"][cell] <= rms * margins["rms_factor"] + margins["rms_floor_units"]
    assert (
        metrics["output_rms_units"] <= golden["output_rms_units"] * margins["rms_factor"] + margins["rms_floor_units"]
    )
