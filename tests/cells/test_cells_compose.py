"""Cells composed as the compiler will: a bias generator feeding a bistable cell, in one netlist."""

import pytest

from cells import bias, bistable, common
from compiler.foundation.ngspice import Simulation, Stimulus


def test_cells_bias_generator_drives_a_bistable_cell_as_calibrated(runner, report):
    """I_ref = 1 nA over 4 units: I_thresh = 1 nA (sink), I_width = 0.25 nA and I_gain = 1 nA (sources),
    the starving bias as a chip has it (STARVE_UNITS x 1 nA); the thresholds must match the two calibrated
    models chained, within 3 %."""
    gen = bias.Params(sources=(1, 4), sinks=(4,), den=4, starve=4 * bistable.STARVE_UNITS)
    gen_sub, cell = bias.subckt(gen), bistable.subckt()
    bcal, ccal = bias.load_calibration(), bistable.load_calibration()
    i_th = bcal.current("sink", 1e-9, 4, 4)
    i_w = bcal.current("source", 1e-9, 1, 4)
    i_g = bcal.current("source", 1e-9, 4, 4)
    nominal = bistable.Params(1e-9, 0.25e-9, 1e-9)
    pts = bistable._ramp_stimulus(nominal)
    circuit = "\n".join(
        [
            gen_sub.text,
            cell.text,
            "Vdd vdd 0 1.8",
            "Vbias vddb 0 1.8",
            "Iref ref 0 1n",
            gen_sub.instance(
                "G",
                {"vdd": "vddb", "ref": "ref", "src1": "iw", "src2": "ig", "snk1": "ith", "vsp": "vsp", "vsn": "vsn"},
            ),
            f"Vout vo 0 {bistable.V_OUT:g}",
            cell.instance(
                "C",
                {
                    "vdd": "vdd",
                    "in": "in",
                    "out": "vo",
                    "ith": "ith",
                    "iw": "iw",
                    "ig": "ig",
                    "vsp": "vsp",
                    "vsn": "vsn",
                    "en": "vdd",
                    "enb": "0",
                },
            ),
            ".save i(vout) i(vdd)",
            f".tran {bistable.RAMP_TIME / 1000:g} {pts[-1][0]:g} 0 {bistable.RAMP_TIME / 100:g}",
        ]
    )
    times, values = common.pwl(pts)
    res = runner.run(
        Simulation(circuit, title="bias + bistable", stimuli=(Stimulus("in", "vddb", "in", times, values),))
    )
    got = bistable._measure_hysteresis(res, nominal, pts)
    hi, lo, level = ccal.thresholds(i_th, i_w, i_g)
    report(up=got["up"], down=got["down"], level=got["level"], predicted=(float(hi), float(lo), float(level)))
    assert got["up"] == pytest.approx(hi, rel=0.03)
    assert got["down"] == pytest.approx(lo, rel=0.03)
    assert got["level"] == pytest.approx(level, rel=0.03)
