"""`make demo`: the largest end-to-end job the tool can do, on bundled defaults.

It simulates a subthreshold pfet current mirror (the weight primitive of every compiled network) in
ngspice with the sky130 models and prints the figures it measured: mirror ratio errors, model-load time
and the cache at work. Every number printed is computed in this run.
"""

from __future__ import annotations

import time

import numpy as np

from compiler.ngspice import Runner, Simulation

RATIOS = (1, 2, 4)
I_IN = 1e-9


def mirror_deck(ratios=RATIOS, i_in=I_IN) -> str:
    """A pfet mirror fanned out to one output per ratio, outputs held at 0.9 V, input swept 0.1-10 nA."""
    lines = ["VDD vdd 0 1.8", f"IIN d 0 {i_in:g}", "XMD d d vdd vdd sky130_fd_pr__pfet_01v8 W=2 L=4"]
    for n in ratios:
        lines += [f"XMO{n} o{n} d vdd vdd sky130_fd_pr__pfet_01v8 W=2 L=4 m={n}", f"VO{n} o{n} 0 0.9"]
    lines.append(".dc IIN 0.1n 10n 0.1n")
    return "\n".join(lines)


def main() -> int:
    runner = Runner()
    sim = Simulation(mirror_deck(), title="demo: pfet mirror 1:1, 1:2, 1:4")
    start = time.perf_counter()
    result = runner.run(sim)
    elapsed = time.perf_counter() - start
    sweep = result["i(i-sweep)"]
    print(f"sky130 pfet current mirror, W/L = 2/4 um, tt, 27 C ({result.ngspice_version})")
    print(f"simulated in {elapsed:.3f} s{' (from cache)' if result.cached else ''}")
    print("ratio   I_in     I_out        error vs ideal")
    for n in RATIOS:
        out = np.abs(result[f"i(vo{n})"])
        for target in (1e-10, 1e-9, 1e-8):
            i_out = float(np.interp(target, sweep, out))
            print(f" 1:{n}   {target * 1e9:5.1f} nA  {i_out * 1e9:8.4f} nA   {100 * (i_out / (n * target) - 1):+.3f} %")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
