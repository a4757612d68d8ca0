"""Simulations as data (compiler/foundation/simulation.py): the records, the ngspice text they render to
(compiler/foundation/ngspice.py, the one module that writes it), and benches declared with them running."""

import dataclasses

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from compiler.foundation import ngspice
from compiler.foundation.ngspice import MANDATORY_OPTIONS, Plot, SimResult, vector_name
from compiler.foundation.simulation import (
    DC,
    TIME,
    InitialCondition,
    Op,
    Option,
    Pwl,
    Simulation,
    Tran,
    current,
    swept,
    voltage,
)


@pytest.mark.parametrize(
    "analysis, card",
    [
        (Op(), ".op"),
        (Tran(1e-6, 2e-3), ".tran 1e-06 0.002"),
        (Tran(5e-5, 0.06, tmax=2e-4), ".tran 5e-05 0.06 0 0.0002"),
        (Tran(1e-9, 2e-6, start=1e-6), ".tran 1e-09 2e-06 1e-06"),
        (Tran(1e-8, 2e-6, uic=True), ".tran 1e-08 2e-06 uic"),
        (DC("Vctl", 0.0, 2.0, 0.125), ".dc Vctl 0 2 0.125"),
        (DC("Iin", -2e-9, 1e-8, 2.5e-10), ".dc Iin -2e-09 1e-08 2.5e-10"),
    ],
)
def test_analyses_render_to_ngspice_cards(analysis, card):
    assert ngspice.analysis_card(analysis) == card


@pytest.mark.parametrize(
    "vector, name",
    [
        (voltage("out"), "v(out)"),
        (voltage("xnet", "xcell1_0", "b"), "v(xnet.xcell1_0.b)"),
        (current("vdd"), "i(vdd)"),
        (current("xnet", "vh_cell1_0"), "i(v.xnet.vh_cell1_0)"),
        (swept("Iin"), "i(i-sweep)"),
        (swept("Vctl"), "v(v-sweep)"),
        (TIME, "time"),
        ("v(b)", "v(b)"),
    ],
)
def test_vectors_are_named_as_ngspice_names_them(vector, name):
    assert vector_name(vector) == name


def test_a_deck_holds_the_cards_in_order():
    """Title, the mandatory options, the simulation's own options one to a card, the seed, temperature,
    the circuit, initial conditions, saves, analyses, stimuli, .end."""
    sim = Simulation(
        "R1 a 0 1k",
        analyses=(Op(), DC("V1", 0, 1, 0.5)),
        saves=(voltage("a"), current("v1")),
        initial=(InitialCondition(voltage("x1", "b"), 0.0),),
        options=(Option("rshunt", "1e13"),),
        stimuli=(Pwl("in", "a", "0", (0.0, 1e-3), (0.0, 1e-9)),),
        title="t",
        temp=85,
        models="none",
        mc_seed=7,
    )
    assert sim.deck() == "\n".join(
        [
            "* t",
            MANDATORY_OPTIONS,
            ".option rshunt=1e13",
            ".option seed=7",
            ".temp 85",
            "R1 a 0 1k",
            ".ic v(x1.b)=0",
            ".save v(a) i(v1)",
            ".op",
            ".dc V1 0 1 0.5",
            "Iin a 0 PWL(0 0 0.001 1e-09)",
            ".end",
            "",
        ]
    )


def test_option_values_are_written_as_given_or_in_short_form():
    card = ngspice.options_card
    assert card((Option("reltol", "1e-4"), Option("method", "gear"))) == ".option reltol=1e-4 method=gear"
    assert card((Option("seed", 12345678), Option("rshunt", 1e13))) == ".option seed=12345678 rshunt=1e+13"
    assert MANDATORY_OPTIONS == ".option gmin=1e-15 abstol=1e-15 reltol=1e-4 method=gear"


def test_a_voltage_pwl_source_is_a_v_element():
    source = Pwl("PH_1", "ph_1", "0", (0.0, 1e-3, 1.001e-3), (0.0, 0.0, 1.8), kind="V")
    assert ngspice.source_card(source) == "VPH_1 ph_1 0 PWL(0 0 0.001 0 0.001001 1.8)"


@given(
    st.lists(
        st.tuples(st.floats(0, 10, allow_nan=False), st.floats(-1e-6, 1e-6, allow_nan=False)), min_size=1, max_size=20
    )
)
def test_pwl_points_survive_to_nine_significant_digits(points):
    times, values = zip(*points)
    card = ngspice.source_card(Pwl("x", "a", "0", times, values))
    numbers = [float(n) for n in card[card.index("(") + 1 : -1].split()]
    np.testing.assert_allclose(numbers, [x for point in points for x in point], rtol=1e-8, atol=0)


def test_lists_are_kept_as_tuples():
    sim = Simulation("R1 a 0 1k", analyses=[Op()], saves=[voltage("a")])
    assert sim.analyses == (Op(),) and sim.saves == (voltage("a"),)
    assert hash(sim) == hash(dataclasses.replace(sim))


def test_results_are_looked_up_by_records_or_names():
    plot = Plot("Transient Analysis", {"time": np.arange(3.0), "v(xnet.x0.b)": np.ones(3), "i(v.xnet.vp)": np.zeros(3)})
    result = SimResult((plot,), "", "ngspice-test", 0.0)
    assert result[TIME].tolist() == [0.0, 1.0, 2.0]
    assert result[voltage("xnet", "x0", "b")] is result["V(XNET.X0.B)"]
    assert result[current("xnet", "vp")] is result["i(v.xnet.vp)"]
    with pytest.raises(KeyError, match="v\\(nowhere\\)"):
        result[voltage("nowhere")]


def test_a_bench_declared_as_data_runs(fresh_runner):
    """An operating point, a DC sweep and a transient from an initial condition through a PWL source,
    read back by the same records, inside a subcircuit too."""
    circuit = "\n".join(
        [".subckt half a", "Vp a m 0", "R1 m n 1k", "R2 n 0 1k", ".ends half", "V1 in 0 1.8", "X1 in half", "C1 c 0 1p"]
    )
    sim = Simulation(
        circuit,
        analyses=(Op(), DC("V1", 0.0, 1.8, 0.9), Tran(10e-9, 2e-6, uic=True)),
        saves=(voltage("x1", "n"), current("x1", "vp"), voltage("c")),
        initial=(InitialCondition(voltage("c"), 0.0),),
        stimuli=(Pwl("in", "0", "c", (0.0, 1e-6, 2e-6), (0.0, 1e-9, 1e-9)),),
        models="none",
    )
    result = fresh_runner.run(sim)
    op, dc, tran = map(result.plot, ("Operating Point", "DC transfer characteristic", "Transient Analysis"))
    assert result.vector(voltage("x1", "n"), plot=op.name)[0] == pytest.approx(0.9, rel=1e-9)
    assert result.vector(current("x1", "vp"), plot=op.name)[0] == pytest.approx(0.9e-3, rel=1e-9)
    np.testing.assert_allclose(result.vector(swept("V1"), plot=dc.name), [0.0, 0.9, 1.8], atol=1e-12)
    np.testing.assert_allclose(result.vector(voltage("x1", "n"), plot=dc.name), [0.0, 0.45, 0.9], atol=1e-12)
    t, volts = tran.vectors["time"], result.vector(voltage("c"), plot=tran.name)
    expected = np.where(t < 1e-6, 0.5e3 * t**2 * 1e6, 0.5e-3 + 1e-3 * (t - 1e-6) * 1e6)  # 1 nA into 1 pF
    assert np.max(np.abs(volts - expected)) < 1e-6


def test_a_cell_bench_runs_and_reads_its_declared_vectors(fresh_runner):
    """A characterisation bench of the mirror cell: sky130 devices, a DC sweep, its outputs read by record."""
    from cells import mirror

    sim, outputs = mirror._bench("p", [(1, (1, 2), 0.7)], (0.0, 1.0, 0.5), title="mirror p test")
    assert ".save" not in sim.circuit and ".dc" not in sim.circuit
    result = fresh_runner.run(sim)
    i_unit = 1e-10 * 10 ** result[mirror.CONTROL]
    for n_in, ratio, _, vector in outputs:
        np.testing.assert_allclose(result[vector] / (n_in * i_unit), ratio, rtol=0.05)
