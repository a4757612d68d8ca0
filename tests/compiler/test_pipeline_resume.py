"""Typed joints: pass order, the IR saved after every pass, and a build resumed at a named pass."""

import json
import subprocess
import sys

import pytest

from compiler.config import Config
from compiler.frontend import load_network
from compiler.ir import IR, Meta, Programmed, Tap
from compiler.lower import lower
from compiler.passes import PIPELINE, PassOrderError, UnknownPass, check_order, module, run_pipeline
from flows.build import CannotResume, OutputNotReplaceable, build, check_output_directory

QUIET = dict(layout=False, log=lambda *_: None)


def test_every_pass_declares_what_it_requires_and_the_pipeline_honours_it():
    check_order(PIPELINE)
    assert all(set(module(name).REQUIRES) <= set(PIPELINE) for name in PIPELINE)
    swapped = ("split_signs", "scale_currents", "program_cells", "quantise_ratios")
    with pytest.raises(PassOrderError, match="'scale_currents' reads what program_cells computes"):
        check_order(swapped)


def test_a_pipeline_in_the_wrong_order_or_from_an_unknown_pass_is_refused(small_ckpt):
    lowered = lower(load_network(small_ckpt))
    with pytest.raises(PassOrderError):
        run_pipeline(lowered, Config(), passes=("split_signs", "size_devices", "quantise_ratios"))
    with pytest.raises(UnknownPass, match="calibrat' is not a pass"):
        run_pipeline(lowered, Config(), start="calibrat")


def test_resuming_at_any_pass_from_its_saved_ir_gives_the_same_ir(small_ckpt):
    lowered = lower(load_network(small_ckpt))
    saved = {}
    full, _ = run_pipeline(lowered, Config(), after_pass=lambda name, ir: saved.setdefault(name, ir.to_json()))
    before = dict(zip(PIPELINE, (lowered.to_json(), *(saved[name] for name in PIPELINE[:-1]))))
    for name in PIPELINE:
        resumed, timings = run_pipeline(IR.from_json(before[name]), Config(), start=name)
        assert resumed == full and resumed.to_json() == full.to_json() and next(iter(timings)) == name


def test_the_joints_are_typed_and_ir_json_keeps_its_shape(small_ckpt):
    lowered = lower(load_network(small_ckpt))
    ir, _ = run_pipeline(lowered, Config())
    cell, generator = ir.stage("cell1"), ir.stage("bias")
    assert isinstance(cell.programmed, Programmed) and isinstance(ir.meta, Meta) and ir.meta.units == "A"
    assert all(isinstance(tap, Tap) for tap in generator.taps) and ir.meta["i_unit"] == ir.meta.i_unit
    data = json.loads(ir.to_json())
    assert set(data["meta"]) == {
        "adjustments",
        "calibrated",
        "graph",
        "i_unit",
        "model",
        "phases",
        "settling",
        "sizing",
        "frame_period",
        "task",
        "units",
        "vdd",
    }
    stages = {s["name"]: s for s in data["stages"]}
    assert set(stages["cell1"]["programmed"]) == {"thresh", "width", "gain"}
    assert all(isinstance(tap, list) and len(tap) == 5 for tap in stages["bias"]["taps"])
    unset = json.loads(lowered.to_json())
    assert set(unset["meta"]) == {"graph", "model", "task"}
    assert {s["name"]: s for s in unset["stages"]}["cell1"]["programmed"] == {}


@pytest.mark.tools  # builds: the ngspice version in the manifest
def test_the_build_saves_the_ir_after_every_pass(small_ckpt, tmp_path):
    out = tmp_path / "b"
    manifest = build(small_ckpt, out, **QUIET)
    names = ["00_lower.json", *(f"{k:02d}_{name}.json" for k, name in enumerate(PIPELINE, 1))]
    assert sorted(p.name for p in (out / "ir").iterdir()) == names
    assert (out / "ir" / names[-1]).read_bytes() == (out / "ir.json").read_bytes()
    assert {f"ir/{name}" for name in names} <= set(manifest["outputs"]["compile"])


@pytest.mark.tools  # builds: the ngspice version in the manifest
def test_a_build_resumed_at_a_pass_is_the_same_build(small_ckpt, tmp_path):
    out = tmp_path / "b"
    build(small_ckpt, out, **QUIET)
    first = {p: (out / p).read_bytes() for p in ("ir.json", "netlist/network.spice", "netlist/cells.spice")}
    manifest = build(small_ckpt, out, start="size_devices", **QUIET)
    assert {p: (out / p).read_bytes() for p in first} == first
    assert list(manifest["facts"]["pass_seconds"])[0] == "size_devices"
    assert "ir/00_lower.json" in manifest["outputs"]["compile"]  # the IR it did not redo stays recorded
    assert check_output_directory(out) is not None
    build(small_ckpt, out, **QUIET)  # and a plain build resumes it


@pytest.mark.tools  # builds: the ngspice version in the manifest
def test_resuming_without_an_intact_saved_ir_is_refused(small_ckpt, tmp_path):
    out = tmp_path / "b"
    with pytest.raises(CannotResume, match="no intact ir/04_quantise_ratios.json"):
        build(small_ckpt, out, start="size_devices", **QUIET)
    assert not out.exists()
    build(small_ckpt, out, **QUIET)
    with pytest.raises(CannotResume, match="-f"):
        build(small_ckpt, out, start="size_devices", force=True, **QUIET)
    saved = out / "ir" / "04_quantise_ratios.json"
    saved.write_text(saved.read_text().replace('"units": "A"', '"units": "mA"'))
    with pytest.raises(CannotResume, match="04_quantise_ratios"):
        build(small_ckpt, out, start="size_devices", **QUIET)
    saved.unlink()
    with pytest.raises(CannotResume):
        build(small_ckpt, out, start="size_devices", **QUIET)
    assert (out / "ir.json").is_file()  # nothing of the build was touched


@pytest.mark.tools  # builds: the ngspice version in the manifest
def test_the_command_line_names_an_unknown_pass_with_status_2(small_ckpt, tmp_path):
    command = [sys.executable, "-m", "compiler", "build", str(small_ckpt), "-o", str(tmp_path / "b"), "--no-layout"]
    for start, error in (("nope", "UnknownPass"), ("size_devices", "CannotResume")):
        result = subprocess.run(command + ["--from", start], capture_output=True, text=True)
        assert result.returncode == 2 and f"error: {error}:" in result.stderr
    assert not (tmp_path / "b").exists()


def test_a_file_named_like_an_output_folder_is_not_an_output(tmp_path):
    (tmp_path / "manifest.json").write_text('{"inputs": {}, "steps": {}, "outputs": {}}')
    (tmp_path / "ir").write_text("user data")
    with pytest.raises(OutputNotReplaceable, match="ir"):
        check_output_directory(tmp_path)
