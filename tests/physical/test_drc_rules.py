"""Every rule of sky130/drc_rules.yaml fires just below its value and stays quiet at it (real KLayout).

Each case draws the few shapes a rule looks at with one critical dimension `v` (um), or a yes/no
choice for rules without a value; the hand-drawn mirror of `drawn.py` is clean under every rule.
"""

from __future__ import annotations

import json

import pytest
from drawn import LAYERS, Drawing, mirror_layout

from flows.drc import load_rules, run_drc

pytestmark = pytest.mark.tools  # DRC in KLayout

TABLE = load_rules()
VALUES = {rule.name: rule.value for rule in TABLE.rules}
KINDS = {rule.name: rule.kind for rule in TABLE.rules}
SIZES = {"licon": 0.17, "mcon": 0.17, "via": 0.15, "via2": 0.2, "via3": 0.2}


def width(layer, length=3.0):
    return lambda d, v: d.box(layer, 0, 0, v, length)


def space(layer, w=1.0):
    return lambda d, v: (d.box(layer, 0, 0, w, 3), d.box(layer, w + v, 0, 2 * w + v, 3))


def beside_wide(layer, narrow=1.0):
    """A 4 x 4 um shape of `layer` (wider than 3 um) and one `narrow` um wide, v apart."""
    return lambda d, v: (d.box(layer, 0, 0, 4, 4), d.box(layer, 4 + v, 0, 4 + v + narrow, 4))


def plate(d, x, size=2.0):
    """A capm `size` square at x on its met3 bottom plate (capm.3 enclosure: 0.14); returns the plate's right edge."""
    d.box("capm", x, 0, x + size, size)
    d.box("met3", x - 0.14, -0.14, x + size + 0.14, size + 0.14)
    return x + size + 0.14


def area(layer):
    return lambda d, v: d.box(layer, 0, 0, 0.1, 10 * v)  # on the 1 nm grid for these values


def exact(layer):
    return lambda d, v: d.box(layer, 0, 0, v, v)


def enclosed(outer, inner, *under):
    """`inner` (a cut, or a 1 um square) enclosed by `outer` by v on every side, `under` layers below both."""
    s = SIZES.get(inner, 1.0)

    def draw(d, v):
        for layer in under:
            d.box(layer, -1, -1, s + 1, s + 1)
        d.box(inner, 0, 0, s, s)
        d.box(outer, -v, -v, s + v, s + v)

    return draw


def adjacent(outer, inner, *under):
    """`inner` enclosed by v on its left and bottom sides (adjacent) and by 0.2 on the others."""
    s = SIZES[inner]

    def draw(d, v):
        for layer in under:
            d.box(layer, -1, -1, s + 1, s + 1)
        d.box(inner, 0, 0, s, s)
        d.box(outer, -v, -v, s + 0.2, s + 0.2)

    return draw


def apart(a_layers, b_layers, wa=1.0):
    """Shapes on `a_layers` and on `b_layers` facing each other v apart (negative: overlapping)."""

    def draw(d, v):
        for layer in a_layers:
            d.box(layer, 0, 0, wa, 1)
        for layer in b_layers:
            d.box(layer, wa + v, 0, wa + v + 1, 1)

    return draw


def poly_contact(d, x, y):
    d.box("licon", x, y, x + 0.17, y + 0.17)


def skewed(layer):
    """A quadrilateral on `layer` whose top-right corner is moved right by v (off the grid / off 90 degrees)."""
    import klayout.db as kdb

    def draw(d, v):
        points = [kdb.DPoint(0, 0), kdb.DPoint(1, 0), kdb.DPoint(1 + v, 1), kdb.DPoint(0, 1)]
        d.cell.shapes(d.layout.layer(*LAYERS[layer])).insert(kdb.DPolygon(points))

    return draw


CASES = {  # rule -> (draw(d, v), bad v, good v)
    "x.1b": (skewed("met2"), 0.003, 0.0),
    "x.2": (skewed("poly"), 0.01, 0.0),
    "nwell.1": (width("nwell", 5), 0.8, 0.84),
    "nwell.2a": (space("nwell"), 1.2, 1.27),
    "nwell.4": (
        lambda d, v: (
            d.box("nwell", 0, 0, 3, 3),
            d.box("tap", 1, 1, 1.41, 1.41),
            d.box("nsdm", 0.8, 0.8, 1.61, 1.61),
            v and d.box("licon", 1.12, 1.12, 1.29, 1.29),
        ),
        False,
        True,
    ),
    "difftap.1": (width("diff"), 0.14, 0.15),
    "difftap.2": (lambda d, v: (d.box("diff", -0.3, 0, 0.8, v), d.box("poly", 0, -0.2, 0.5, v + 0.2)), 0.4, 0.42),
    "difftap.3": (space("diff"), 0.26, 0.27),
    "difftap.8": (
        lambda d, v: (
            d.box("diff", 0, 0, 1, 1),
            d.box("psdm", -0.2, -0.2, 1.2, 1.2),
            d.box("nwell", -v, -v, 1 + v, 1 + v),
        ),
        0.17,
        0.18,
    ),
    "difftap.9": (apart(["diff", "nsdm"], ["nwell"]), 0.33, 0.34),
    "difftap.10": (
        lambda d, v: (
            d.box("tap", 0, 0, 1, 1),
            d.box("nsdm", -0.2, -0.2, 1.2, 1.2),
            d.box("nwell", -v, -v, 1 + v, 1 + v),
        ),
        0.17,
        0.18,
    ),
    "difftap.11": (apart(["tap", "psdm"], ["nwell"]), 0.12, 0.13),
    "poly.1a": (width("poly"), 0.14, 0.15),
    "poly.2": (space("poly"), 0.2, 0.21),
    "poly.4": (apart(["diff"], ["poly"]), 0.07, 0.075),
    "poly.5": (apart(["tap"], ["poly"]), 0.05, 0.055),
    "poly.7": (lambda d, v: (d.box("poly", 0, -0.2, 0.5, 1.2), d.box("diff", -v, 0, 0.8, 1)), 0.24, 0.25),
    "poly.8": (lambda d, v: (d.box("diff", -0.3, 0, 0.8, 1), d.box("poly", 0, -v, 0.5, 1.2)), 0.12, 0.13),
    "nsd.1": (width("nsdm"), 0.37, 0.38),
    "nsd.2": (space("nsdm"), 0.37, 0.38),
    "nsd.5a": (enclosed("nsdm", "diff"), 0.12, 0.125),
    "nsd.5b": (enclosed("nsdm", "tap"), 0.12, 0.125),
    "nsd.10a": (area("nsdm"), 0.26, 0.265),
    "psd.1": (width("psdm"), 0.37, 0.38),
    "psd.2": (space("psdm"), 0.37, 0.38),
    "psd.5a": (enclosed("psdm", "diff"), 0.12, 0.125),
    "psd.5b": (enclosed("psdm", "tap"), 0.12, 0.125),
    "psd.8": (
        lambda d, v: (
            d.box("diff", 0, 0, 1, 1),
            d.box("nsdm", -0.2, -0.2, 1.2, 1.2),
            v or d.box("psdm", 0.5, -0.2, 1.2, 1.2),
        ),
        False,
        True,
    ),
    "psd.9": (lambda d, v: (d.box("diff", 0, 0, 1, 1), v and d.box("nsdm", -0.2, -0.2, 1.2, 1.2)), False, True),
    "psd.10b": (area("psdm"), 0.25, 0.255),
    "npc.1": (width("npc"), 0.26, 0.27),
    "npc.2": (space("npc"), 0.26, 0.27),
    "npc.4": (
        lambda d, v: (
            d.box("diff", 0, 0, 1, 1),
            d.box("poly", 0.4, -0.2, 0.6, 1.2),
            d.box("npc", 0.6 + v, 0, 1.0 + v, 1),
        ),
        0.08,
        0.09,
    ),
    "licon.1": (exact("licon"), 0.18, 0.17),
    "licon.2": (space("licon", 0.17), 0.16, 0.17),
    "licon.4": (
        lambda d, v: (
            d.box("diff", -1, -1, 1, 1),
            d.box("licon", 0, 0, 0.17, 0.17),
            v and d.box("li1", -0.2, -0.2, 0.37, 0.37),
        ),
        False,
        True,
    ),
    "licon.5a": (enclosed("diff", "licon"), 0.03, 0.04),
    "licon.5c": (adjacent("diff", "licon"), 0.05, 0.06),
    "licon.7": (adjacent("tap", "licon"), 0.11, 0.12),
    "licon.8": (enclosed("poly", "licon"), 0.04, 0.05),
    "licon.8a": (adjacent("poly", "licon"), 0.07, 0.08),
    "licon.9": (
        lambda d, v: (d.box("poly", 0, 0, 1, 1), poly_contact(d, 0.4, 0.4), d.box("psdm", 0.57 + v, 0, 1.5 + v, 1)),
        0.1,
        0.11,
    ),
    "licon.11": (
        lambda d, v: (
            d.box("diff", 0, 0, 2, 1),
            d.box("poly", 1.0, -0.2, 1.2, 1.2),
            d.box("licon", 0.83 - v, 0.4, 1.0 - v, 0.57),
        ),
        0.05,
        0.055,
    ),
    "licon.13": (
        lambda d, v: (
            d.box("diff", 0, 0, 1, 1),
            d.box("licon", 0.4, 0.4, 0.57, 0.57),
            d.box("npc", 0.57 + v, 0.2, 1.2 + v, 0.8),
        ),
        0.08,
        0.09,
    ),
    "licon.14": (
        lambda d, v: (
            d.box("diff", 0, 0, 1, 1),
            d.box("poly", 1 + v - 0.05, 0, 2, 1),
            d.box("licon", 1 + v, 0.4, 1.17 + v, 0.57),
        ),
        0.18,
        0.19,
    ),
    "licon.15": (
        lambda d, v: (
            d.box("poly", -1, -1, 1.17, 1.17),
            d.box("licon", 0, 0, 0.17, 0.17),
            d.box("npc", -v, -v, 0.17 + v, 0.17 + v),
        ),
        0.09,
        0.1,
    ),
    "licon.16": (
        lambda d, v: (d.box("tap", 0, 0, 0.41, 0.41), v and d.box("licon", 0.12, 0.12, 0.29, 0.29)),
        False,
        True,
    ),
    "licon.17": (
        lambda d, v: (
            d.box("diff", 0, 0, 1, 1),
            d.box("poly", 1.2 if v else 1.05, 0, 2, 1),
            d.box("licon", 0.95, 0.4, 1.12, 0.57),
        ),
        False,
        True,
    ),
    "li.1": (width("li1"), 0.16, 0.17),
    "li.3": (space("li1"), 0.16, 0.17),
    "li.5": (adjacent("li1", "licon"), 0.07, 0.08),
    "li.6": (area("li1"), 0.0551, 0.0562),
    "ct.1": (exact("mcon"), 0.16, 0.17),
    "ct.2": (space("mcon", 0.17), 0.18, 0.19),
    "ct.4": (lambda d, v: (d.box("mcon", 0, 0, 0.17, 0.17), v and d.box("li1", -0.1, -0.1, 0.27, 0.27)), False, True),
    "m1.1": (width("met1"), 0.13, 0.14),
    "m1.2": (space("met1"), 0.13, 0.14),
    "m1.3ab": (beside_wide("met1"), 0.27, 0.28),
    "m1.4": (enclosed("met1", "mcon", "li1"), 0.02, 0.03),
    "m1.5": (adjacent("met1", "mcon", "li1"), 0.05, 0.06),
    "m1.6": (area("met1"), 0.082, 0.083),
    "via.1a": (exact("via"), 0.16, 0.15),
    "via.2": (space("via", 0.15), 0.16, 0.17),
    "via.4a": (enclosed("met1", "via", "met2"), 0.05, 0.055),
    "via.5a": (adjacent("met1", "via", "met2"), 0.08, 0.085),
    "m2.1": (width("met2"), 0.13, 0.14),
    "m2.2": (space("met2"), 0.13, 0.14),
    "m2.3ab": (beside_wide("met2"), 0.27, 0.28),
    "m2.4": (enclosed("met2", "via", "met1"), 0.05, 0.055),
    "m2.5": (adjacent("met2", "via", "met1"), 0.08, 0.085),
    "m2.6": (area("met2"), 0.067, 0.0677),
    "via2.1a": (exact("via2"), 0.19, 0.2),
    "via2.2": (space("via2", 0.2), 0.19, 0.2),
    "via2.4": (enclosed("met2", "via2", "met3"), 0.03, 0.04),
    "m3.1": (width("met3"), 0.29, 0.3),
    "m3.2": (space("met3"), 0.29, 0.3),
    "m3.3cd": (beside_wide("met3"), 0.39, 0.4),
    "m3.4": (enclosed("met3", "via2", "met2"), 0.06, 0.065),
    "via3.1": (exact("via3"), 0.21, 0.2),
    "via3.2": (space("via3", 0.2), 0.19, 0.2),
    "via3.4": (enclosed("met3", "via3", "met4"), 0.05, 0.06),
    "m4.1": (width("met4"), 0.29, 0.3),
    "m4.2": (space("met4"), 0.29, 0.3),
    "m4.3": (enclosed("met4", "via3", "met3"), 0.06, 0.065),
    "m4.4a": (area("met4"), 0.23, 0.24),
    "capm.1": (lambda d, v: (d.box("met3", -1, -1, v + 1, 4), d.box("capm", 0, 0, v, 3)), 0.99, 1.0),
    "capm.2a": (
        lambda d, v: (
            d.box("met3", -1, -1, 4 + v, 4),
            d.box("capm", 0, 0, 1.5, 3),
            d.box("capm", 1.5 + v, 0, 3 + v, 3),
        ),
        0.83,
        0.84,
    ),
    "capm.2b": (lambda d, v: plate(d, plate(d, 0.14) + v + 0.14), 1.19, 1.2),
    "capm.2b_a": (lambda d, v: d.box("met3", plate(d, 0.14) + v, 0, plate(d, 0.14) + v + 1, 2), 1.19, 1.2),
    "capm.3": (enclosed("met3", "capm"), 0.13, 0.14),
    "capm.4": (
        lambda d, v: (
            d.box("met3", -1, -1, 2, 2),
            d.box("via3", 0, 0, 0.2, 0.2),
            d.box("capm", -v, -v, 0.2 + v, 0.2 + v),
        ),
        0.13,
        0.14,
    ),
    "capm.5": (
        lambda d, v: (d.box("met3", -1, -1, 4, 3), d.box("capm", 0, 0, 2, 2), d.box("via3", 2 + v, 0.5, 2.2 + v, 0.7)),
        0.13,
        0.14,
    ),
    "capm.11": (lambda d, v: (plate(d, 0), d.box("met3", 2 + v, 0, 3 + v, 2)), 0.49, 0.5),
}
WIDE_RULES = [r.name for r in TABLE.rules if r.kind == "wide_space"]
OVERLAP_FORBIDDEN = [r.name for r in TABLE.rules if r.overlap == "forbidden"]


def violations(tmp_path, draw, v, rule) -> dict:
    d = Drawing("case")
    draw(d, v)
    return run_drc(d.save(tmp_path / "case.gds"), only=[rule]).violations


def test_every_rule_has_a_case():
    assert sorted(CASES) == sorted(VALUES)


@pytest.mark.parametrize("rule", sorted(CASES))
def test_rule_fires_below_its_value_and_not_at_it(rule, tmp_path):
    draw, bad, good = CASES[rule]
    if not isinstance(bad, bool) and KINDS[rule] not in ("exact_size", "grid", "orthogonal"):
        assert bad < VALUES[rule] <= good
    assert violations(tmp_path, draw, bad, rule)[rule] > 0
    assert violations(tmp_path, draw, good, rule)[rule] == 0


@pytest.mark.parametrize("rule", OVERLAP_FORBIDDEN)
def test_separation_rules_that_forbid_overlap_fire_on_it(rule, tmp_path):
    draw, _, _ = CASES[rule]
    assert violations(tmp_path, draw, -0.05, rule)[rule] > 0


@pytest.mark.parametrize("rule", WIDE_RULES)
def test_wide_spacing_rules_leave_shapes_of_the_wide_width_alone(rule, tmp_path):
    """Shapes exactly `wide` um wide, v apart just below the rule's value: only wider shapes are held to it."""
    rule_of = next(r for r in TABLE.rules if r.name == rule)
    layer, w, v = rule_of.layers[0], rule_of.wide, rule_of.value - 0.01

    def draw(d, v):
        d.box(layer, 0, 0, w, 4), d.box(layer, w + v, 0, 2 * w + v, 4)

    assert violations(tmp_path, draw, v, rule)[rule] == 0


def test_bottom_plates_joined_by_met3_are_not_capm_2b(tmp_path):
    """Two capm on one met3 plate, their bottom plates 1 um apart: the met3 between them is one plate."""

    def draw(d, v):
        d.box("met3", 0, -0.14, 5.42, 2.14)
        plate(d, 0.14), plate(d, 3.28)

    assert violations(tmp_path, draw, 0, "capm.2b")["capm.2b"] == 0


def test_drawn_mirror_is_clean_and_reports_are_written(tmp_path):
    gds = mirror_layout().save(tmp_path / "mirror.gds")
    result = run_drc(gds, tmp_path / "drc")
    assert result.violations == {name: 0 for name in VALUES}
    data = json.loads((tmp_path / "drc" / "report.json").read_text())
    assert data["clean"] and data["rules_checked"] == len(VALUES)
    assert "**clean**" in (tmp_path / "drc" / "report.md").read_text()
    assert (tmp_path / "drc" / "report.lyrdb").stat().st_size > 0


def test_hierarchical_layouts_are_checked_through_their_cells(tmp_path):
    """A child cell placed three times with one m1.2 error: flagged at every placement, nothing else."""
    import klayout.db as kdb

    d = mirror_layout(name="child")
    d.box("met1", 20.0, 0.0, 20.5, 1.0)
    d.box("met1", 20.6, 0.0, 21.1, 1.0)  # 0.1 um from the first
    top = d.layout.create_cell("parent")
    for k in range(3):
        top.insert(kdb.DCellInstArray(d.cell.cell_index(), kdb.DTrans(kdb.DVector(0, 10.0 * k))))
    result = run_drc(d.save(tmp_path / "hierarchy.gds"))
    assert result.top == "parent"
    assert result.violations["m1.2"] == 3 and result.total == 3


def test_unknown_rule_name_is_a_named_error_with_exit_2(tmp_path):
    from compiler.foundation.errors import RuleTableError
    from flows.cli import main

    gds = mirror_layout().save(tmp_path / "mirror.gds")
    with pytest.raises(RuleTableError):
        run_drc(gds, only=["m1.99"])
    assert main(["drc", gds, "--rule", "m1.99"]) == 2
    assert main(["drc", str(tmp_path / "missing")]) == 2
