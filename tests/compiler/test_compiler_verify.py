"""Verification end to end: a small two-layer FQ-BMRU network built, simulated in ngspice, compared."""

import json

import pytest

from flows.build import build
from flows.verify import NotABuild, verify


def test_circuit_matches_the_reference_frame_by_frame(small_ckpt, tmp_path):
    out = tmp_path / "b"
    build(small_ckpt, out, log=lambda *_: None)
    metrics = verify(out, sequences=2, jobs=2, log=lambda *_: None)
    assert metrics["sequences"] == 2 and metrics["frames"] == 8
    assert metrics["state_agreement"] >= 0.95
    assert max(metrics["candidate_rms_units"].values()) < 0.1
    assert metrics["output_rms_units"] < 0.1
    assert metrics["prediction_agreement"] == 1.0
    report = json.loads((out / "verify" / "report.json").read_text())
    assert report["state_agreement"] == metrics["state_agreement"]
    assert (out / "verify" / "report.md").read_text().startswith("# Verification")
    assert (out / "verify" / "traces.png").stat().st_size > 1000


def test_verify_needs_a_build_directory(tmp_path):
    with pytest.raises(NotABuild, match="python -m compiler build"):
        verify(tmp_path)
