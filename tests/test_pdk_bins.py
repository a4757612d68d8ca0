"""Bin slicing: simulation decks keep only the binned model cards their instance sizes select."""

import re

import numpy as np
import pytest

from compiler.foundation.ngspice import Runner, deck
from compiler.foundation.pdk import CORNERS, devices_in, find_models, sizes_in
from compiler.foundation.simulation import Simulation

NFET, PFET = "sky130_fd_pr__nfet_01v8", "sky130_fd_pr__pfet_01v8"

# Sizes the cell library uses (mirror units 2/4, 4/4, 4/8; bistable and bias devices 1/0.5, 1/1, 2/0.5),
# sizes exactly at bin edges (W 1.26, 7, 0.42; L 0.15, 20), a per-finger width at an edge (nf=2), and m.
SIZES = [
    (NFET, "W=2 L=4 m=16"),
    (NFET, "W=4.0 L=4.0"),
    (NFET, "W=4.0 L=8.0 m=3"),
    (NFET, "W=1 L=0.5"),
    (NFET, "W=1 L=1"),
    (NFET, "W=1.26 L=0.15"),
    (NFET, "W=7 L=20"),
    (NFET, "W=2 L=1 nf=2"),
    (PFET, "W=2.0 L=4.0 m=2"),
    (PFET, "W=4 L=8"),
    (PFET, "W=2 L=0.5"),
    (PFET, "W=1 L=1"),
    (PFET, "W=0.42 L=0.15"),
    (PFET, "W=1.26 L=0.5"),
]


def _bench() -> str:
    """Every size above as a device with its own drain source, gates swept together."""
    lines = ["VDD vdd 0 1.8", "VGN gn 0 0.6", "VGP gp 0 1.2"]
    for k, (device, size) in enumerate(SIZES):
        gate, bulk = ("gn", "0") if device == NFET else ("gp", "vdd")
        lines += [f"XM{k} d{k} {gate} {bulk} {bulk} {device} {size}", f"VD{k} d{k} 0 0.9"]
    return "\n".join([*lines, ".dc VGN 0 1.8 0.3 VGP 0 1.8 0.6"]) + "\n"


BENCH = _bench()


def _bins(block: str, device: str) -> set[str]:
    return set(re.findall(rf"^\.model ({device}__model\.\d+)\s", block, re.MULTILINE | re.IGNORECASE))


def test_sizes_are_read_from_instance_lines():
    netlist = f"""
.subckt cell a b
XMa a b 0 0 {NFET} W=2 L=4 m=3
XMb a b 0 0 {NFET}
+ W=0.5u L=1e-6 nf=2
.ends
* {PFET} in a comment counts for nothing
XMc a b vdd vdd {PFET} W = 1 L = 0.5
"""
    assert sizes_in(netlist) == {
        NFET: frozenset({(4.0, 2.0), (1e-6, 0.5e-6), (1e-6, 0.25e-6)}),
        PFET: frozenset({(0.5, 1.0)}),
    }


@pytest.mark.parametrize(
    "line",
    [
        f"XM1 a b 0 0 {NFET} W={{w}} L=1",  # an expression
        f"XM1 a b 0 0 {NFET} L=1",  # no W: the subcircuit's default
        f"XM1 a b 0 0 {NFET} W=wide L=1",  # a parameter name
        f"M1 a b 0 0 {NFET} W=1 L=1",  # not a subcircuit instance
    ],
)
def test_a_size_that_cannot_be_read_keeps_every_bin(line):
    assert sizes_in(f"XM0 a b 0 0 {NFET} W=1 L=1\n{line}\n") == {NFET: None}
    block = find_models().model_block([NFET], "tt", sizes=sizes_in(line))
    assert len(_bins(block, NFET)) == 180


def test_only_the_bins_of_the_sizes_used_are_kept():
    library = find_models()
    one = library.model_block([NFET], "tt", sizes=sizes_in(f"XM1 a b 0 0 {NFET} W=4 L=8\n"))
    inside = library.model_block([NFET], "tt", sizes=sizes_in(f"XM1 a b 0 0 {NFET} W=4.5 L=10\n"))
    assert _bins(one, NFET) == {f"{NFET}__model.19", f"{NFET}__model.20"}  # L=8u is the edge of both
    assert _bins(inside, NFET) == {f"{NFET}__model.19"}
    assert f".subckt  {NFET} d g s b" in one and "nfet_01v8__tt.pm3.spice" not in one


def test_a_size_outside_every_bin_keeps_every_bin():
    block = find_models().model_block([NFET], "ss", sizes=sizes_in(f"XM1 a b 0 0 {NFET} W=1000 L=1\n"))
    assert len(_bins(block, NFET)) == 180


def test_without_sizes_the_block_is_file_slices_only():
    """The delivered models.spice (no sizes) keeps including whole files."""
    block = find_models().model_block([NFET, PFET], "tt")
    assert not _bins(block, NFET) and not _bins(block, PFET)
    assert any("nfet_01v8__tt.pm3.spice" in line for line in block.splitlines() if line.startswith(".include"))


def test_simulation_decks_slice_bins_and_files_mode_does_not():
    sliced = deck(Simulation(BENCH))
    whole = deck(Simulation(BENCH, models="files"))
    assert 0 < len(_bins(sliced, NFET)) < 40 and 0 < len(_bins(sliced, PFET)) < 40
    assert not _bins(whole, NFET) and devices_in(BENCH) == (NFET, PFET)


def _assert_identical(a, b):
    assert len(a.plots) == len(b.plots) > 0
    for pa, pb in zip(a.plots, b.plots):
        assert pa.vectors.keys() == pb.vectors.keys()
        for name, vector in pb.vectors.items():
            assert np.array_equal(pa.vectors[name], vector), name


@pytest.mark.tools
@pytest.mark.parametrize(("corner", "seed"), [*((c, None) for c in CORNERS), ("tt", 7), ("ss", 11)])
def test_bin_sliced_models_equal_the_file_slices(corner, seed):
    """Every vector of a DC sweep over all the sizes is bit-identical with bin and file slicing,
    at each corner and with Monte Carlo mismatch (each instance's draw survives the slicing)."""
    runner = Runner(cache=None)
    binned, files = runner.run_many(
        [
            Simulation(BENCH, corner=corner, mc_seed=seed),
            Simulation(BENCH, corner=corner, mc_seed=seed, models="files"),
        ],
        jobs=1,
    )
    _assert_identical(binned, files)
    assert np.max(np.abs(files["i(vd0)"])) > 1e-6  # the devices conduct
