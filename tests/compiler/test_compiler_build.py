"""The build flow: artifacts, manifest, resume, rebuild, and nothing left behind on bad input."""

import json
import subprocess
import sys

import numpy as np
import pytest

from compiler.backends.behavioural import reference
from compiler.config import ConfigError
from compiler.frontend import BadCheckpoint
from compiler.ir import IR, Bistable
from flows.build import BuildExists, build
from flows.quantisation import decision_ties
from models.tasks import get_task

pytestmark = pytest.mark.tools  # builds: the ngspice version in the manifest, the layout in KLayout


def test_build_writes_every_artifact(small_ckpt, tmp_path):
    out = tmp_path / "b"
    manifest = build(small_ckpt, out, log=lambda *_: None)
    for name in (
        "manifest.json",
        "config.yaml",
        "ir.json",
        "netlist/network.spice",
        "netlist/cells.spice",
        "netlist/models.spice",
        "netlist/top.spice",
        "reports/build.md",
        "reports/build.json",
    ):
        assert (out / name).is_file(), name
    assert set(manifest["steps"]) == {"load", "compile", "netlist", "layout", "reference", "report"}
    assert manifest["inputs"]["checkpoint_sha256"] and manifest["versions"]["pdk"].startswith("sky130")
    report = json.loads((out / "reports" / "build.json").read_text())
    assert report["transistors"]["instances"] > 0 and report["power_estimate"]["total_W"] > 0
    assert any(row["parameter"] == "cell1.W[0,0]" for row in report["mapping"])
    assert not list(tmp_path.glob(".b.*"))  # no temporary directory left


def test_rebuild_is_byte_identical_and_resume_keeps_the_directory(small_ckpt, tmp_path):
    out = tmp_path / "b"
    build(small_ckpt, out, log=lambda *_: None)
    first = {p: (out / p).read_bytes() for p in ("ir.json", "netlist/network.spice", "netlist/cells.spice")}
    resumed = build(small_ckpt, out, log=lambda *_: None)  # same inputs: resumed, no error
    assert resumed["facts"]["netlist"]["transistor_instances"] > 0  # facts of skipped steps are kept
    build(small_ckpt, out, force=True, log=lambda *_: None)
    assert {p: (out / p).read_bytes() for p in first} == first


def test_other_inputs_need_force(small_ckpt, tmp_path):
    out = tmp_path / "b"
    build(small_ckpt, out, log=lambda *_: None)
    config = tmp_path / "c.yaml"
    config.write_text("model:\n  denominator: 4\n")
    with pytest.raises(BuildExists, match="-f"):
        build(small_ckpt, out, config, log=lambda *_: None)
    build(small_ckpt, out, config, force=True, log=lambda *_: None)
    assert "denominator: 4" in (out / "config.yaml").read_text()


def test_bad_inputs_leave_nothing_behind(tmp_path):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(BadCheckpoint):
        build(bad, tmp_path / "out", log=lambda *_: None)
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.*"))


def test_invalid_config_is_a_named_error(small_ckpt, tmp_path):
    config = tmp_path / "c.yaml"
    for text, match in (
        ("model:\n  i_unit: 1e-9\n", "write 1.0e-9"),
        ("model:\n  colour: red\n", "unknown option"),
        ("stages: [1, 2]\n", "mapping"),
        ("model:\n  denominator: 999\n", "outside"),
    ):
        config.write_text(text)
        with pytest.raises(ConfigError, match=match):
            build(small_ckpt, tmp_path / "out", config, log=lambda *_: None)


def test_cli_exit_status_is_2_on_bad_input(tmp_path):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"nonsense")
    proc = subprocess.run(
        [sys.executable, "-m", "compiler", "build", str(bad), "-o", str(tmp_path / "o")], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "BadCheckpoint" in proc.stderr and "Traceback" not in proc.stderr


def test_starter_config_lists_every_stage_and_loads_back(small_ckpt, tmp_path):
    out = tmp_path / "starter.yaml"
    proc = subprocess.run(
        [sys.executable, "-m", "compiler", "config", str(small_ckpt), "-o", str(out)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    assert "cell1.W:" in text and "bistable:" in text and "i_unit: 1.0e-09" in text
    build(small_ckpt, tmp_path / "b", out, log=lambda *_: None)  # the starter file is a valid config


def test_a_threshold_on_a_candidate_value_is_reported_as_a_tie(small_ckpt, tmp_path):
    build(small_ckpt, tmp_path / "b", layout=False, log=lambda *_: None)
    ir = IR.from_json((tmp_path / "b" / "ir.json").read_text())
    x = get_task("digits_rows").test.x[:4]
    cell = ir.of_kind(Bistable)[0]  # the first layer: its candidates depend on x alone
    h = np.asarray(reference(ir, x)[1][cell.name]["h"])
    scale, size = ir.meta["i_unit"], cell.size
    far = ir.replace_stages({cell.name: cell.replace(thresh=(1e3 * scale,) * size, width=(1.0 * scale,) * size)})
    assert decision_ties(far, x)[cell.name] == {"share": 0.0, "units": {}}
    on = float(h[..., 0].max()) * scale  # unit 0's threshold exactly on one of its candidates
    tie = ir.replace_stages(
        {
            cell.name: cell.replace(
                thresh=(on,) + (1e3 * scale,) * (size - 1), width=(on / 2,) + (1.0 * scale,) * (size - 1)
            )
        }
    )
    found = decision_ties(tie, x)[cell.name]
    assert found["share"] * h.size > 0.99 and list(found["units"]) == [0]  # at least that one candidate
