"""FQ-CMRU ladder limits: level agreement and power against K, frame period and DPI tau, with mismatch.

Each row is one ladder (`cells.cmru.limits`: the nominal biases, 1 / 0.4 / 1 nA) on frames that climb to
level K, saturate once, then take 16 random supra / sub / hold frames, in ngspice at tt, 27 C, against
the model's FQ-CMRU; power is the ladder's supply pin and bias ports at 1.8 V. The timing margins are the
calibrated rules of cells/cmru.py (positive: met). The simulation cache is this run's own.
"""

from __future__ import annotations

from benchmarks.common import Settings, rounded, workdir
from compiler.foundation.ngspice import Runner
from compiler.foundation.simcache import SimCache


def run(settings: Settings):
    from cells import cmru

    runner = Runner(cache=SimCache(workdir("cmru-limits")))
    for Ks, taus, frames_ms, mc in settings.cmru_limits:
        call = (
            f"cells.cmru.limits(Runner(), Ks={Ks}, tau_over_frames={taus}, "
            f"frames={tuple(f / 1e3 for f in frames_ms)}, mc={mc})"
        )
        for row in cmru.limits(runner, Ks=Ks, tau_over_frames=taus, frames=tuple(f / 1e3 for f in frames_ms), mc=mc):
            yield {
                "benchmark": "cmru_limits",
                "K": row["K"],
                "frame_ms": rounded(row["frame_ms"]),
                "tau_over_frame": row["tau_over_frame"],
                "mc_seed": row["mc_seed"],
                "C_pF": row["C_pF"],
                "frames": row["frames"],
                "level_agreement": rounded(row["level_agreement"], 4),
                "level_rms_of_alpha": rounded(row["level_rms_of_alpha"]),
                "power_nW": rounded(row["power_W"] * 1e9),
                "no_cascade_margin_ms": row["no_cascade_margin_ms"],
                "ready_margin_ms": row["ready_margin_ms"],
                "wall_s": row["wall_s"],
                "command": f"python -m benchmarks.run cmru_limits ({call})",
            }
