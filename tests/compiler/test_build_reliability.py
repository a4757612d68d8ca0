"""Bad input to `build` and `verify`: named errors, exit status 2, and no user file ever lost."""

import os
import shutil
import string
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compiler.frontend import CurrentNotRealisable, NameClash, NetworkTooLarge, load_network
from flows.build import BuildModified, OutputNotReplaceable, build, check_output_directory
from flows.cli import main as cli
from flows.verify import _float_model, _load
from models.checkpoint import load_checkpoint
from models.errors import InvalidGraph
from models.network import validate_graph

QUIET = {"log": lambda *_: None, "layout": False}


def test_force_never_deletes_a_directory_it_did_not_make(small_ckpt, tmp_path):
    users = tmp_path / "u"
    users.mkdir()
    (users / "thesis.tex").write_text("x")
    status = cli(["build", str(small_ckpt), "-o", str(users), "-f", "--no-layout"])
    assert status == 2 and (users / "thesis.tex").read_text() == "x" and sorted(os.listdir(users)) == ["thesis.tex"]


@pytest.mark.tools
def test_force_refuses_a_build_that_holds_a_users_file(small_ckpt, tmp_path):
    out = tmp_path / "b"
    build(small_ckpt, out, **QUIET)
    for mine in (out / "notes.txt", out / "reports" / "notes.txt"):
        mine.write_text("mine")
        with pytest.raises(OutputNotReplaceable, match="notes.txt"):
            build(small_ckpt, out, force=True, **QUIET)
        assert mine.read_text() == "mine"
        mine.unlink()
    build(small_ckpt, out, force=True, **QUIET)  # only its own outputs: replaced


@pytest.mark.parametrize("where", [".", "/", "~", "HERE_PARENT"])
def test_root_home_and_the_current_directory_are_never_an_output(where, tmp_path, monkeypatch, small_ckpt):
    here = tmp_path / "work"
    here.mkdir()
    (here / "keep.txt").write_text("keep")
    monkeypatch.chdir(here)
    path = {"~": Path.home(), "HERE_PARENT": tmp_path}.get(where, Path(where))
    with pytest.raises(OutputNotReplaceable, match="root, home or current"):
        build(small_ckpt, path, force=True, **QUIET)
    assert (here / "keep.txt").exists()


def test_a_file_or_a_link_as_output_is_a_named_error(small_ckpt, tmp_path):
    (tmp_path / "f").write_text("file")
    (tmp_path / "dangling").symlink_to(tmp_path / "absent")
    (tmp_path / "parentfile").write_text("file")
    for out in (tmp_path / "f", tmp_path / "dangling", tmp_path / "parentfile" / "b"):
        with pytest.raises(OutputNotReplaceable):
            build(small_ckpt, out, force=True, **QUIET)
    assert (tmp_path / "f").read_text() == "file" and (tmp_path / "dangling").is_symlink()


NAMES = st.text(string.ascii_letters + string.digits + "._-", min_size=1, max_size=12).filter(
    lambda n: n not in (".", "..")
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=st.lists(NAMES, min_size=1, max_size=5, unique=True), manifest=st.booleans())
def test_any_directory_of_other_files_is_refused(names, manifest, tmp_path_factory):
    """Whatever a directory holds, it is replaceable only if it is a build holding nothing but build outputs."""
    out = tmp_path_factory.mktemp("out")
    for name in names:
        (out / name).write_text("user data")
    if manifest:
        (out / "manifest.json").write_text('{"inputs": {}, "steps": {}, "outputs": {}}')
    own = {"manifest.json", "config.yaml", "ir.json", "model.ckpt"}
    if manifest and set(names) <= own:
        assert check_output_directory(out) is not None
    else:
        with pytest.raises(OutputNotReplaceable):
            check_output_directory(out)
    assert all((out / name).exists() for name in names)


@pytest.mark.tools
def test_a_deleted_output_is_rebuilt_without_force(small_ckpt, tmp_path):
    out = tmp_path / "b"
    build(small_ckpt, out, **QUIET)
    shutil.rmtree(out / "netlist")
    (out / "reports" / "build.md").write_text("edited")
    build(small_ckpt, out, **QUIET)
    assert (out / "netlist" / "network.spice").is_file()
    assert (out / "reports" / "build.md").read_text().startswith("# Build report")


@pytest.mark.tools
def test_a_build_is_self_contained(small_ckpt, tmp_path, monkeypatch):
    """The float model comes from the build's copy: moving or replacing the original changes nothing."""
    monkeypatch.chdir(small_ckpt.parent)
    build(small_ckpt.name, tmp_path / "b", **QUIET)
    original = load_checkpoint(small_ckpt)
    small_ckpt.unlink()
    monkeypatch.chdir(tmp_path)
    graph, arrays = _float_model(tmp_path / "b")
    assert graph == original.graph and all(np.array_equal(arrays[k], original.arrays[k]) for k in arrays)


@pytest.mark.tools
@pytest.mark.parametrize("edited", ["ir.json", "config.yaml", "model.ckpt", "netlist/network.spice"])
def test_verify_refuses_outputs_changed_after_the_build(small_ckpt, tmp_path, edited):
    out = tmp_path / "b"
    build(small_ckpt, out, **QUIET)
    _load(out)
    with open(out / edited, "a") as handle:
        handle.write("\n* edited\n")
    with pytest.raises(BuildModified, match=edited):
        _load(out)


@pytest.mark.tools
def test_bias_beyond_the_bias_taps_is_a_design_rule_error(tmp_path, checkpoint_factory):
    def huge_bias(graph, arrays):
        arrays["cell1.b"] = arrays["cell1.b"].copy()
        arrays["cell1.b"][0] = 1e6

    path = checkpoint_factory(tmp_path / "b.ckpt", edit=huge_bias)
    with pytest.raises(CurrentNotRealisable, match="cell1"):
        load_network(path)
    assert cli(["build", str(path), "-o", str(tmp_path / "o"), "--no-layout"]) == 2
    assert not (tmp_path / "o").exists()


def test_too_many_weights_is_a_design_rule_error(tmp_path):
    from models.backbone import build_graph
    from models.checkpoint import Checkpoint, save_checkpoint
    from models.network import init_arrays

    graph = build_graph("fq_bmru", 8, 64, 3, layers=1, pool=True, head=1100)  # a 64 x 1100 head
    save_checkpoint(tmp_path / "w.ckpt", Checkpoint(graph, init_arrays(graph, 0), {"task": "digits_rows"}))
    with pytest.raises(NetworkTooLarge, match="weights"):
        load_network(tmp_path / "w.ckpt")


def test_layer_names_differing_only_in_case_are_a_design_rule_error(tmp_path, checkpoint_factory):
    def rename(graph, arrays):
        for layer in graph["layers"]:
            if layer["name"] == "cell2":
                layer["name"] = "Cell1"
        graph["edges"] = [[{"cell2": "Cell1"}.get(n, n) for n in edge] for edge in graph["edges"]]
        for key in [k for k in arrays if k.startswith("cell2.")]:
            arrays["Cell1." + key.split(".", 1)[1]] = arrays.pop(key)

    with pytest.raises(NameClash, match="Cell1"):
        load_network(checkpoint_factory(tmp_path / "c.ckpt", edit=rename))


def small_graph() -> dict:
    from models.backbone import build_graph

    return build_graph("fq_bmru", 8, 4, 3, layers=2, pool=True)


def test_a_duplicated_edge_is_rejected():
    graph = small_graph()
    graph["edges"].append(["cell1", "res2"])
    with pytest.raises(InvalidGraph, match="twice"):
        validate_graph(graph)


@settings(max_examples=200, deadline=None)
@given(name=st.text(max_size=70))
def test_a_layer_name_is_accepted_only_if_it_is_a_plain_identifier(name):
    graph = small_graph()
    graph["layers"][1]["name"] = name
    graph["edges"] = [[name if n == "cell1" else n for n in edge] for edge in graph["edges"]]
    plain = (
        0 < len(name) <= 64
        and name.isascii()
        and (name[0].isalpha() or name[0] == "_")
        and all(c.isalnum() or c == "_" for c in name)
        and name not in {"x", "cell2", "res2", "readout", "pool"}
    )
    if plain:
        validate_graph(graph)
    else:
        with pytest.raises(InvalidGraph):
            validate_graph(graph)


@pytest.mark.parametrize(
    "argv",
    [
        ["verify", "DIR", "-j", "0"],
        ["verify", "DIR", "-j", "-3"],
        ["verify", "DIR", "--temp", "nan"],
        ["verify", "DIR", "--sim-timeout", "nan"],
        ["verify", "DIR", "--sequences", "9" * 5000],
        ["characterize", "--temp", "inf"],
    ],
)
def test_out_of_range_options_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as stop:
        cli(argv)
    assert stop.value.code == 2 and "Traceback" not in capsys.readouterr().err


def test_ctrl_c_ends_with_a_message_and_status_130(monkeypatch, capsys):
    import flows.verify

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(flows.verify, "run", interrupted)
    assert cli(["verify", "DIR"]) == 130
    assert "interrupted" in capsys.readouterr().err


def test_cli_reports_a_file_system_refusal_with_status_2(tmp_path):
    (tmp_path / "file").write_text("x")
    proc = subprocess.run(
        [sys.executable, "-m", "compiler", "verify", str(tmp_path / "file")], capture_output=True, text=True
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


@pytest.mark.tools
def test_a_killed_builds_temporary_directory_is_swept_at_the_next_start(small_ckpt, tmp_path):
    """A SIGKILLed build leaves `.NAME.tmp-PID-*`; the next build of NAME removes it, not a live one's."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".b.tmp-{dead.pid}-abc123"
    live = tmp_path / f".b.tmp-{os.getpid()}-def456"
    for path in (stale, live):
        path.mkdir()
        (path / "ir.json").write_text("{}")
    build(small_ckpt, tmp_path / "b", **QUIET)
    assert not stale.exists() and live.exists()


@pytest.mark.tools
@pytest.mark.parametrize(
    "ceiling, match", [("max_unit_devices: 100", "unit transistors"), ("max_area_mm2: 0.001", "area")]
)
def test_a_circuit_over_the_configured_ceiling_is_refused_before_layout(small_ckpt, tmp_path, ceiling, match):
    from flows.build import DesignTooLarge

    config = tmp_path / "c.yaml"
    config.write_text(f"model:\n  {ceiling}\n")
    with pytest.raises(DesignTooLarge, match=match):
        build(small_ckpt, tmp_path / "b", config, log=lambda *_: None)
    assert not (tmp_path / "b").exists() and not list(tmp_path.glob(".b.*"))


@pytest.mark.tools
def test_a_misspelt_stage_name_in_the_config_is_refused(small_ckpt, tmp_path):
    from compiler.config import ConfigError

    config = tmp_path / "c.yaml"
    config.write_text("stages:\n  CELL1.w: {denominator: 8}\n")
    with pytest.raises(ConfigError, match="cell1.W"):
        build(small_ckpt, tmp_path / "b", config, **QUIET)
