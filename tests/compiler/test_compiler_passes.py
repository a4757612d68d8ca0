"""Each pass on its own: what it changes, what it must leave alone, and what it records."""

import numpy as np
import pytest

from cells.mirror import output_sigma
from compiler.config import Config
from compiler.frontend import load_network
from compiler.ir import BiasArray, BiasGenerator, Bistable, Receiver, WeightArray
from compiler.lower import lower
from compiler.passes import program_cells, quantise_ratios, scale_currents, size_devices, split_signs
from compiler.passes.program_cells import UnrealisableCurrent


@pytest.fixture
def lowered(small_ckpt):
    return lower(load_network(small_ckpt))


def test_program_cells_widens_narrow_windows_about_their_centre_and_records_it(tmp_path, checkpoint_factory):
    def narrow(graph, arrays):
        arrays["cell1.beta_lo"] = np.array([1.0, 1.0, 1.0, 1.0], np.float32)
        arrays["cell1.delta"] = np.array([0.02, 0.5, 0.5, 0.5], np.float32)
        arrays["cell1.alpha"] = np.array([1.0, 0.01, 0.08, 1.0], np.float32)

    ir = lower(load_network(checkpoint_factory(tmp_path / "n.ckpt", edit=narrow)))
    out = program_cells.run(ir, Config(model={"min_width_ratio": 0.25}))
    legal = {a["unit"]: a["to"] for a in out.meta["adjustments"] if a["stage"] == "cell1"}  # software units
    assert sorted((a["stage"], a["unit"]) for a in out.meta["adjustments"]) == [("cell1", k) for k in range(3)]
    (thresh, width, _), one, two = legal[0], legal[1], legal[2]
    assert width == pytest.approx(0.25 * thresh)
    assert (thresh + thresh - width) / 2 == pytest.approx(1.01, rel=1e-6)  # centre kept
    assert one[1] == two[1] == pytest.approx(0.5)
    assert one[2] == 0.0  # 10 pA: too small, switched off
    assert two[2] == pytest.approx(0.1)  # 80 pA: raised to the 100 pA minimum
    cell = out.stage("cell1")  # programmed in amperes: what the calibrated cell realises on the bias grid
    assert cell.gain[1] == 0.0 and cell.programmed.gain[1] == 0.0
    assert cell.width[0] == pytest.approx(0.25 * cell.thresh[0], rel=0.1)


def test_program_cells_rejects_currents_above_weak_inversion(tmp_path, checkpoint_factory):
    def big(graph, arrays):
        arrays["cell1.alpha"] = np.array([20.0, 1, 1, 1], np.float32)

    ir = lower(load_network(checkpoint_factory(tmp_path / "b.ckpt", edit=big)))
    with pytest.raises(UnrealisableCurrent, match="(?i)lower i_unit"):
        program_cells.run(ir, Config())
    assert program_cells.run(ir, Config(model={"i_unit": 1e-10})).stage("cell1").gain[0] == pytest.approx(
        2e-9, rel=0.05
    )


def test_split_signs_gives_non_negative_parts_whose_difference_is_w(lowered):
    out = split_signs.run(lowered, Config())
    for array in out.of_kind(WeightArray):
        pos, neg, w = (np.array(m) for m in (array.positive, array.negative, array.weights))
        assert np.all(pos >= 0) and np.all(neg >= 0) and np.all(pos * neg == 0)
        np.testing.assert_array_equal(pos - neg, w)


def test_scale_currents_turns_units_into_amperes_once(lowered):
    out = scale_currents.run(lowered, Config(model={"i_unit": 2e-9}))
    assert out.meta["units"] == "A"
    assert out.stage("cell1") == lowered.stage("cell1")  # a memory cell is program_cells' to scale
    assert out.stage("cell1.b").values == pytest.approx(tuple(2e-9 * v for v in lowered.stage("cell1.b").values))
    assert scale_currents.run(out, Config(model={"i_unit": 2e-9})) == out  # idempotent


def test_quantise_ratios_rounds_onto_a_shared_grid(lowered):
    out = quantise_ratios.run(split_signs.run(lowered, Config()), Config(model={"denominator": 4}))
    for rx in out.of_kind(Receiver):
        for name in out.successors(rx.name):
            array = out.stage(name)
            assert array.denominator == rx.denominator == 4
            realised = np.array(array.realised())
            assert np.max(np.abs(realised - np.array(array.weights))) <= 1 / 8 + 1e-12


def test_quantise_ratios_lowers_the_denominator_for_large_weights(tmp_path, checkpoint_factory):
    def large(graph, arrays):
        arrays["cell1.W"] = arrays["cell1.W"].copy()
        arrays["cell1.W"][0, 0] = 20.0

    ir = lower(load_network(checkpoint_factory(tmp_path / "l.ckpt", edit=large)))
    out = quantise_ratios.run(split_signs.run(ir, Config()), Config(model={"denominator": 8}))
    array = out.stage("cell1.W")
    assert array.denominator == 3  # 64 units // 20
    assert array.pos_ratios[0][0] == 60
    assert max(max(r) for r in (*array.pos_ratios, *array.neg_ratios)) <= 64


def test_size_devices_meets_the_budget_with_the_smallest_device(lowered):
    quantised = quantise_ratios.run(split_signs.run(lowered, Config()), Config())
    loose = size_devices.run(quantised, Config(model={"mismatch_budget": 0.2}))
    tight = size_devices.run(quantised, Config(model={"mismatch_budget": 0.05}))
    area = {n: loose.stage(n).unit_w * loose.stage(n).unit_l for n in ("cell1.W", "readout.W")}
    area_tight = {n: tight.stage(n).unit_w * tight.stage(n).unit_l for n in ("cell1.W", "readout.W")}
    assert all(area_tight[n] >= area[n] for n in area) and area_tight != area
    for array in tight.of_kind(WeightArray):
        used = [
            (pol, r) for pol, m in (("p", array.pos_ratios), ("n", array.neg_ratios)) for row in m for r in row if r
        ]
        worst = max(output_sigma(pol, r, array.denominator, array.unit_w, array.unit_l) for pol, r in used)
        assert worst <= 0.05 or any(n["stage"] for n in tight.meta["sizing"])


def test_passes_leave_other_stages_untouched(lowered):
    out = split_signs.run(lowered, Config())
    for stage in lowered.stages:
        if not isinstance(stage, WeightArray):
            assert out.stage(stage.name) == stage
    assert isinstance(out.stage("cell1"), Bistable) and isinstance(out.stage("cell1.b"), BiasArray)


def test_check_settling_flags_slow_nodes_and_a_longer_frame_clears_them(small_ckpt):
    from compiler.passes import run_pipeline

    def settling(**options):
        ir, _ = run_pipeline(lower(load_network(small_ckpt)), Config(model=options))
        return ir.meta["settling"]

    short, long = settling(frame_period=1e-4), settling(frame_period=1.0)
    assert short["slot_s"] == pytest.approx(1e-4 / 4)  # two layers: four slots
    assert short["nodes"] == long["nodes"] > 0
    assert short["slow_nodes"] > long["slow_nodes"] == 0
    slowest = short["slowest"][0]
    assert slowest["gate_pF"] > 0 and slowest["t_on_s"] == max(n["t_on_s"] for n in short["slowest"])
    wider = settling(frame_period=1e-4, denominator=4)  # fewer unit gates on every node: faster
    assert wider["slowest"][0]["t_on_s"] < slowest["t_on_s"]


def test_without_a_configured_frame_the_build_chooses_the_shortest_round_one_every_node_settles_in(small_ckpt):
    from compiler.passes import run_pipeline
    from compiler.passes.choose_frame import FLOOR_S, MARGIN, round_down, round_up

    assert [round_up(x) for x in (0.0123, 0.039, 0.04, 0.0401, 0.9, 12.0)] == [0.015, 0.04, 0.04, 0.05, 1.0, 10.0]
    assert [round_down(x) for x in (0.0123, 0.0119, 0.5)] == [0.01, 0.01, 0.5]

    def chosen(**options):
        ir, _ = run_pipeline(lower(load_network(small_ckpt)), Config(model=options))
        return ir.meta.frame_period, ir.meta.settling

    configured, _ = chosen(frame_period=1e-4)
    assert configured == 1e-4
    for i_unit in (1e-9, 0.1e-9):  # a tenth of the current: ten times slower nodes, a longer frame
        frame, settling = chosen(i_unit=i_unit)
        slowest = settling["slowest"][0]["t_on_s"]
        assert settling["slow_nodes"] == 0 and settling["slot_s"] == pytest.approx(frame / 4)
        assert frame >= max(MARGIN * slowest * 4, FLOOR_S) and frame == round_up(max(MARGIN * slowest * 4, FLOOR_S))
    assert chosen(i_unit=0.1e-9)[0] > chosen()[0]


def test_the_starving_bias_and_every_floor_scale_with_the_unit_current(small_ckpt):
    """A tenth of i_unit: the same tap unit devices (every current a tenth), the starving tap included."""
    from cells.bistable import STARVE_UNITS
    from compiler.passes import run_pipeline

    def generator(i_unit):
        ir, _ = run_pipeline(lower(load_network(small_ckpt)), Config(model={"i_unit": i_unit}))
        (bias,) = ir.of_kind(BiasGenerator)
        return bias

    one, tenth = generator(1e-9), generator(0.1e-9)
    assert one.taps == tenth.taps and tenth.i_ref == pytest.approx(one.i_ref / 10)
    (starve,) = [t for t in tenth.taps if t.field == "starve"]
    assert tenth.current(starve.units) == pytest.approx(STARVE_UNITS * 0.1e-9)


def test_keep_alive_adds_standing_currents_its_destinations_cancel_exactly_on_the_bias_grid(small_ckpt):
    """Slow receivers of non-negative signals carry a standing current; every mirror output's share of it
    is sunk again at the destination, on the bias grid, so the network computes the same thing."""
    from compiler.backends.behavioural import arrays_from_ir
    from compiler.passes import run_pipeline
    from compiler.passes.keep_alive import non_negative
    from compiler.realisation import bias_grid
    from compiler.settling import keep_alive_name

    config = Config(model={"frame_period": 1e-4, "keep_alive": True})
    plain, _ = run_pipeline(lower(load_network(small_ckpt)), Config(model={"frame_period": 1e-4}))
    kept, _ = run_pipeline(lower(load_network(small_ckpt)), config)
    receivers = [rx for rx in kept.of_kind(Receiver) if keep_alive_name(rx.name) in kept.predecessors(rx.name)]
    assert receivers and all(non_negative(plain, rx.name) for rx in receivers)  # no ReLU is shifted
    step = bias_grid(config).step
    for rx in receivers:
        standing = np.asarray(kept.stage(keep_alive_name(rx.name)).values)
        assert np.all(standing >= 0) and np.allclose(
            standing / (rx.denominator * step), np.round(standing / (rx.denominator * step))
        )
        for name in kept.successors(rx.name):
            array = kept.stage(name)
            (dest,) = kept.successors(name)
            cancel = np.asarray(kept.stage(keep_alive_name(name)).values)
            assert keep_alive_name(name) in kept.predecessors(dest)
            np.testing.assert_allclose(np.asarray(array.realised()) @ standing + cancel, 0.0, atol=1e-18)
            np.testing.assert_allclose(cancel / step, np.round(cancel / step), atol=1e-6)  # exact on the grid
    taps = {t[0] for g in kept.of_kind(BiasGenerator) for t in g.taps}
    assert all(keep_alive_name(rx.name) in taps for rx in receivers)
    reference, realised = arrays_from_ir(plain), arrays_from_ir(kept)  # the model the circuit computes is unchanged
    assert reference.keys() == realised.keys() and all(np.array_equal(reference[k], realised[k]) for k in reference)
    assert kept.meta["settling"]["kept_alive"] > 0
    assert kept.meta["settling"]["slow_nodes"] < plain.meta["settling"]["slow_nodes"]
    assert "keep_alive" not in {s.name.rsplit(".", 1)[-1] for s in plain.stages}  # off by default


def test_program_cells_keeps_every_reset_level_above_zero_on_the_bias_grid(tmp_path, checkpoint_factory):
    """Windows reaching almost to zero input: rounding onto the bias grid must not make width = threshold."""
    from compiler.passes import run_pipeline

    def wide(graph, arrays):
        arrays["cell1.beta_lo"] = np.array([0.005, 0.01, 0.02, 0.005], np.float32)
        arrays["cell1.delta"] = np.array([0.2, 0.19, 0.25, 0.31], np.float32)

    ir, _ = run_pipeline(lower(load_network(checkpoint_factory(tmp_path / "w.ckpt", edit=wide))), Config())
    prog = ir.stage("cell1").programmed
    assert all(w < t for t, w in zip(prog["thresh"], prog["width"]))
