"""The official sign-off checks, real runs: the open_pdks and shuttle precheck KLayout decks (klayout in batch)
and netgen with the sky130A set-up pass a zoo build and catch deliberate errors; without PDK_ROOT the
open_pdks deck comes from the copy `make setup` extracts from the glayout wheel (checksum checked).

The decks and the netgen set-up come from $PDK_ROOT (CI sets it: .ci/run); the tests that need them are
skipped, saying so, without one.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from drawn import MIRROR_SPICE, Drawing, mirror_layout

from compiler.foundation.errors import DeckChanged, SignoffUnavailable
from flows import signoff
from flows.cli import main
from flows.lvs import run_lvs

pytestmark = pytest.mark.tools  # klayout and netgen-lvs programs, KLayout's Python module

REPOSITORY = Path(__file__).resolve().parents[2]
ZOO = REPOSITORY / "models" / "zoo"
SMALL_MODEL = "fq_bmru_d4_flipflop"


@pytest.fixture
def pdk_root():
    """$PDK_ROOT when it holds sky130A (the official decks and netgen set-up); a skip without."""
    root = os.environ.get("PDK_ROOT")
    if not root or not (Path(root) / "sky130A").is_dir():
        pytest.skip(f"no sign-off PDK_ROOT: $PDK_ROOT ({root or 'unset'}) holds no sky130A folder")
    return Path(root)


def build(model: str, out: Path) -> Path:
    config = ZOO / f"{model}.yaml"
    extra = ["--config", str(config)] if config.is_file() else []
    assert main(["build", str(ZOO / f"{model}.ckpt"), "-o", str(out), *extra]) == 0
    return out


@pytest.fixture(scope="module")
def zoo_build(tmp_path_factory):
    return build(SMALL_MODEL, tmp_path_factory.mktemp("signoff") / SMALL_MODEL)


@pytest.fixture(scope="module")
def met1_too_close(tmp_path_factory) -> str:
    """A negative control: two met1 squares 0.1 um apart (m1.2: 0.14 um)."""
    d = Drawing("too_close")
    d.box("met1", 0, 0, 1, 1)
    d.box("met1", 1.1, 0, 2.1, 1)
    return d.save(tmp_path_factory.mktemp("control") / "too_close.gds")


def deck_rules(report: Path, deck: str) -> dict:
    check = json.loads(report.read_text())["checks"][deck]
    assert check["ran"], check
    return {name: rule["markers"] for name, rule in check["rules"].items()}


def test_a_zoo_build_passes_every_check_and_netgen(zoo_build, pdk_root):
    assert main(["drc", str(zoo_build), "--require-signoff"]) == 0
    report = json.loads((zoo_build / "drc" / "report.json").read_text())
    assert report["clean"] and report["markers"] == 0
    assert set(report["checks"]) == {"table", "antenna", "open_pdks", "precheck"}
    for deck in ("open_pdks", "precheck"):
        assert report["checks"][deck]["ran"] and report["checks"][deck]["markers"] == 0
        assert report["checks"][deck]["rules_checked"] > 200
        assert (zoo_build / "drc" / f"{deck}.lyrdb").is_file()
    assert main(["lvs", str(zoo_build), "--require-signoff"]) == 0
    lvs = json.loads((zoo_build / "lvs" / "report.json").read_text())
    assert lvs["match"] and lvs["netgen"]["match"] and lvs["netgen"]["result"] == "Circuits match uniquely."
    assert lvs["netgen"]["devices"]["layout"] == lvs["netgen"]["devices"]["schematic"]
    assert "magic" in lvs["not_run"]


def test_a_build_named_by_a_relative_path_runs_every_official_check(zoo_build, pdk_root, monkeypatch, tmp_path):
    """The programs run inside a scratch folder: every path they get must be absolute."""
    monkeypatch.chdir(zoo_build.parent)
    monkeypatch.setenv("PDK_ROOT", os.path.relpath(pdk_root, zoo_build.parent))
    out = os.path.relpath(tmp_path / "drc", zoo_build.parent)
    assert main(["drc", zoo_build.name, "-o", out, "--deck", "open_pdks", "--deck", "precheck"]) == 0
    assert main(["lvs", zoo_build.name, "-o", os.path.relpath(tmp_path / "lvs", zoo_build.parent)]) == 0
    assert json.loads((tmp_path / "lvs" / "report.json").read_text())["netgen"]["match"]


def test_both_decks_catch_met1_too_close(met1_too_close, pdk_root, tmp_path):
    assert main(["drc", met1_too_close, "-o", str(tmp_path), "--require-signoff"]) == 1
    report = tmp_path / "report.json"
    assert deck_rules(report, "open_pdks") == {"m1.2": 1}
    assert deck_rules(report, "precheck") == {"m1.2": 1}
    assert json.loads(report.read_text())["violations"] == 1  # the rule table's m1.2
    assert "| m1.2 | 1 | m1.2 : min. m1 spacing : 0.14um |" in (tmp_path / "report.md").read_text()


@pytest.fixture(scope="module")
def mirror_gds(tmp_path_factory):
    return mirror_layout().save(tmp_path_factory.mktemp("mirror") / "mirror.gds")


def netgen_of(tmp_path, gds, spice: str):
    path = tmp_path / "schematic.spice"
    path.write_text(spice)
    return run_lvs(gds, tmp_path / "lvs", schematic=[path], official=True, require_signoff=True)


def test_netgen_matches_the_drawn_mirror_with_its_capacitor(mirror_gds, pdk_root, tmp_path):
    result = netgen_of(tmp_path, mirror_gds, MIRROR_SPICE)
    assert result.clean and result.netgen.match and not result.netgen.property_errors
    assert result.netgen.devices["layout"]["sky130_fd_pr__cap_mim_m3_1"] == 1
    assert "sky130_fd_pr__cap_mim_m3_1 area=4\n" in (tmp_path / "lvs" / "layout_netgen.spice").read_text()


@pytest.mark.parametrize(
    "edit, found",
    [
        (
            ("XM2 out in 0 0 sky130_fd_pr__nfet_01v8 W=1 ", "XM2 out in 0 0 sky130_fd_pr__nfet_01v8 W=1.5 "),
            "properties",
        ),
        (("XM3 in bias vdd vdd sky130_fd_pr__pfet_01v8 W=2 L=0.6\n", ""), "badelements"),
        (("sky130_fd_pr__cap_mim_m3_1 W=2 L=2", "sky130_fd_pr__cap_mim_m3_1 W=2 L=2.01"), "properties"),
    ],
    ids=["one width", "a missing device", "a capacitor's area (0.5 %)"],
)
def test_netgen_catches_a_schematic_that_differs(mirror_gds, pdk_root, tmp_path, edit, found):
    result = netgen_of(tmp_path, mirror_gds, MIRROR_SPICE.replace(*edit))
    assert not result.netgen.match and not result.clean
    assert any(issue["kind"] == found for issue in result.netgen.issues), result.netgen.issues
    assert json.loads((tmp_path / "lvs" / "report.json").read_text())["netgen"]["match"] is False


def test_without_pdk_root_the_glayout_copy_of_the_open_pdks_deck_runs(met1_too_close, monkeypatch, tmp_path):
    monkeypatch.delenv("PDK_ROOT", raising=False)
    if not signoff.GLAYOUT_DECK.is_file():
        pytest.skip(
            f"`make setup` has not extracted the open_pdks deck from {signoff.GLAYOUT} to {signoff.GLAYOUT_DECK}"
        )
    decks = signoff.drc_decks()
    assert decks["open_pdks"].path == signoff.GLAYOUT_DECK and signoff.GLAYOUT_DECK.is_relative_to(sys.prefix)
    assert signoff.sha256(signoff.GLAYOUT_DECK) == signoff.OPEN_PDKS_DECK_SHA256
    assert not decks["precheck"].available and "PDK_ROOT" in decks["precheck"].missing
    assert main(["drc", met1_too_close, "-o", str(tmp_path)]) == 1
    assert deck_rules(tmp_path / "report.json", "open_pdks") == {"m1.2": 1}
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["checks"]["precheck"] == {"ran": False, "skipped_because": decks["precheck"].missing}
    assert "**not run**" in (tmp_path / "report.md").read_text()


def test_a_deck_that_cannot_run_is_exit_2_when_required(met1_too_close, monkeypatch, tmp_path):
    """No precheck deck without PDK_ROOT: skipped by default, exit 2 with --require-signoff or --deck precheck,
    before anything runs (no report written)."""
    monkeypatch.delenv("PDK_ROOT", raising=False)
    with pytest.raises(SignoffUnavailable, match="precheck"):
        signoff.require(signoff.drc_decks().values(), True)
    for options in (["--require-signoff"], ["--deck", "precheck"]):
        assert main(["drc", met1_too_close, "-o", str(tmp_path / "drc"), *options]) == 2
    assert main(["lvs", met1_too_close, "-o", str(tmp_path / "lvs"), "--require-signoff"]) == 2
    assert not (tmp_path / "drc").exists() and not (tmp_path / "lvs").exists()


@pytest.mark.parametrize("model", sorted(p.stem for p in ZOO.glob("fq_*.ckpt") if p.stem != SMALL_MODEL))
def test_every_fq_zoo_build_passes_every_check_as_a_macro(model, pdk_root, tmp_path):
    """Every FQ zoo build (the small one above): the rule table, the antenna check, both official decks,
    KLayout and netgen LVS; and a macro: every shape inside the outline, short names, LEF and Verilog."""
    import klayout.db as kdb

    out = build(model, tmp_path / model)
    assert main(["drc", str(out), "--require-signoff"]) == 0, (out / "drc" / "report.md").read_text()
    assert main(["lvs", str(out), "--require-signoff"]) == 0, (out / "lvs" / "report.md").read_text()
    layout = kdb.Layout()
    layout.read(str(out / "layout" / "top.gds"))
    top = layout.top_cell()
    outline = next(top.each_shape(layout.find_layer(235, 4))).box
    assert top.bbox() == outline and max(len(c.name) for c in layout.each_cell()) <= 32
    assert f"MACRO {top.name}\n" in (out / "layout" / "top.lef").read_text()
    assert f"module {top.name} (" in (out / "layout" / "top.v").read_text()


def test_a_changed_open_pdks_deck_is_a_named_error(monkeypatch, tmp_path):
    """The switches must each be set once; the registry copy must have the pinned checksum."""
    text = "FEOL    = false # front\nBEOL = true\nOFFGRID = true\nif $input\n  source($input)\nend\n"
    runnable = signoff.runnable_open_pdks_deck(text)
    assert "FEOL    = true" in runnable and "source($input, $top_cell)" in runnable
    with pytest.raises(DeckChanged, match="FEOL"):
        signoff.runnable_open_pdks_deck(text.replace("FEOL    = false", "FEOL_ON = false"))
    with pytest.raises(DeckChanged, match="BEOL"):
        signoff.runnable_open_pdks_deck(text + "BEOL = false\n")
    copy = tmp_path / "sky130.lydrc"
    copy.write_text(text)
    monkeypatch.setattr(signoff, "GLAYOUT_DECK", copy)
    with pytest.raises(DeckChanged, match="make setup"):
        signoff.deck_text(signoff.Tool("open_pdks", "", path=copy))
