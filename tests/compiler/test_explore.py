"""`python -m compiler explore`: the grid is built, measured and ranked, and bad requests are refused whole."""

from __future__ import annotations

import json

import pytest

from flows.cli import main
from flows.explore import dominates, lowest_power_within, mark_front
from models.catalog import zoo_path


def _point(name, accuracy, power, area=1.0, transistors=10, frame=0.01):
    return {
        "id": name,
        "accuracy": accuracy,
        "power_W": power,
        "area_um2": area,
        "transistors": transistors,
        "frame_period_s": frame,
    }


def test_the_front_keeps_every_point_nothing_beats_and_the_choice_is_the_cheapest_within_a_point():
    points = [
        _point("a", 0.90, 100e-9),
        _point("b", 0.895, 40e-9),  # within one point of a, less power
        _point("c", 0.85, 20e-9),  # less accurate, least power: on the front
        _point("d", 0.85, 30e-9),  # dominated by c
        _point("e", 0.80, 20e-9, frame=0.001),  # a shorter frame keeps it on the front
    ]
    assert dominates(points[2], points[3]) and not dominates(points[0], points[1])
    mark_front(points)
    assert [p["id"] for p in points if p["front"]] == ["a", "b", "c", "e"]
    assert lowest_power_within(points, 0.01)["id"] == "b"
    mark_front(points, max_frame=0.005)  # only e's frame is short enough
    assert [p["id"] for p in points if p["front"]] == ["e"] and lowest_power_within(points, 0.01)["id"] == "e"


@pytest.mark.tools  # each point is a build, which records the ngspice version
def test_explore_builds_every_point_and_writes_the_front(tmp_path):
    out = tmp_path / "ex"
    args = ["explore", str(zoo_path("fq_bmru_d4_flipflop")), "-o", str(out), "--i-unit", "1e-9,1e-10"]
    assert main([*args, "--mismatch-budget", "0.15", "--mc-draws", "4", "--sequences", "32"]) == 0
    summary = json.loads((out / "explore.json").read_text())
    points = {p["settings"]["i_unit"]: p for p in summary["points"]}
    one, tenth = points[1e-9], points[1e-10]
    assert tenth["power_W"] == pytest.approx(one["power_W"] / 10, rel=0.02)  # every current scales
    assert tenth["frame_period_s"] > one["frame_period_s"] and tenth["realised"] == one["realised"]
    assert one["front"] and tenth["front"]  # faster or cheaper: neither dominates
    assert summary["lowest_power_within_one_point"] == tenth["id"]
    assert (out / "explore.png").stat().st_size > 0 and "Pareto" in (out / "explore.md").read_text()
    assert (out / tenth["build"] / "ir.json").is_file()


@pytest.mark.tools  # each point is a build
def test_a_point_the_compiler_refuses_is_listed_and_the_rest_explored(tmp_path):
    """At a unit current of 10 nA the flip-flop's cell currents exceed the cells' ceiling (UnrealisableCurrent)."""
    out = tmp_path / "ex"
    args = ["explore", str(zoo_path("fq_bmru_d4_flipflop")), "-o", str(out), "--i-unit", "1e-8,1e-9", "--mc-draws", "0"]
    assert main(args) == 0
    points = {p["settings"]["i_unit"]: p for p in json.loads((out / "explore.json").read_text())["points"]}
    assert "UnrealisableCurrent" in points[1e-8]["error"] and points[1e-9]["front"]
    assert "refused, UnrealisableCurrent" in (out / "explore.md").read_text()


def test_bad_explore_requests_exit_2_and_write_nothing(tmp_path, capsys):
    checkpoint = str(zoo_path("fq_bmru_d4_flipflop"))
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "mine.txt").write_text("keep")
    cases = [
        (["-o", str(tmp_path / "full")], "not an empty directory"),
        (["-o", str(tmp_path / "a"), "--i-unit", "1e-9,x"], "comma-separated numbers"),
        (["-o", str(tmp_path / "b"), "--i-unit", "1e-12"], "outside"),
        (["-o", str(tmp_path / "c"), "--i-unit", ",".join(["1e-9"] * 201)], "more than 200"),
    ]
    for extra, message in cases:
        assert main(["explore", checkpoint, *extra]) == 2
        assert message in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full"]
    assert (tmp_path / "full" / "mine.txt").read_text() == "keep"
