"""`python -m compiler build` with the layout step: files, area in the report, same bytes twice, --no-layout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flows.build import build
from flows.cli import main

pytestmark = pytest.mark.tools  # builds with the layout

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "zoo" / "fq_bmru_d4_digits_clock.ckpt"


@pytest.mark.slow
def test_build_writes_a_deterministic_layout_and_reports_its_area(tmp_path):
    quiet = dict(log=lambda *_: None)
    build(MODEL, tmp_path / "a", **quiet)
    build(MODEL, tmp_path / "b", **quiet)
    layout = tmp_path / "a" / "layout"
    assert {"top.gds", "top.png", "sky130.lyp", "area.json"} <= {p.name for p in layout.iterdir()}
    assert (layout / "top.gds").read_bytes() == (tmp_path / "b" / "layout" / "top.gds").read_bytes()
    assert (layout / "top.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = json.loads((tmp_path / "a" / "reports" / "build.json").read_text())
    area = report["layout"]
    assert area["unit_transistors"] == report["transistors"]["unit_devices"]
    assert area["area_um2"] == pytest.approx(area["width_um"] * area["height_um"], rel=1e-3)
    assert sum(s["area_um2"] for s in area["by_stage"].values()) == pytest.approx(area["cells_area_um2"], abs=1.0)
    assert "## Layout area per block" in (tmp_path / "a" / "reports" / "build.md").read_text()


@pytest.mark.slow
def test_no_layout_flag_skips_the_layout_and_a_resumed_build_adds_it(tmp_path, capsys):
    assert main(["build", str(MODEL), "-o", str(tmp_path / "n"), "--no-layout"]) == 0
    assert not (tmp_path / "n" / "layout").exists()
    assert "layout" not in json.loads((tmp_path / "n" / "manifest.json").read_text())["steps"]
    assert "built with --no-layout" in capsys.readouterr().out
    assert main(["build", str(MODEL), "-o", str(tmp_path / "n")]) == 0  # resumed: only the layout is new
    steps = json.loads((tmp_path / "n" / "manifest.json").read_text())["steps"]
    assert "layout" in steps and (tmp_path / "n" / "layout" / "top.gds").is_file()
    assert "## Layout area per block" in (tmp_path / "n" / "reports" / "build.md").read_text()
