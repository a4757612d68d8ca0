"""Build time per zoo model, without and with the layout, and the DRC and LVS of the layout.

A build without layout is what a designer iterates on; the layout, DRC and LVS are the sign-off path,
so each is timed on its own (DRC and LVS of the larger models only with --full).
"""

from __future__ import annotations

from benchmarks.common import Settings, build_command, built, rounded, workdir, zoo_models
from compiler.foundation.errors import CompilerError


def run(settings: Settings) -> list[dict]:
    rows = []
    for ckpt in zoo_models(settings.build_models):
        command = f"{build_command(ckpt.stem)} [--no-layout]"
        row = {"benchmark": "build", "model": ckpt.stem}
        try:
            _, manifest, plain_s = built(ckpt, layout=False)
            row.update(
                {"no_layout_s": rounded(plain_s), "transistors": manifest["facts"]["netlist"]["transistor_instances"]}
            )
            directory, manifest, layout_s = built(ckpt, layout=True)
        except CompilerError as error:  # a model the compiler or the layout generator does not take yet
            rows.append({**row, "note": f"{type(error).__name__}: {str(error)[:80]}", "command": command})
            continue
        layout = manifest["facts"]["layout"]
        row.update(
            {
                "with_layout_s": rounded(layout_s),
                "layout_step_s": rounded(manifest["steps"]["layout"]),
                "unit_transistors": layout["unit_transistors"],
                "area_mm2": rounded(layout["area_um2"] / 1e6),
            }
        )
        if "*" in settings.drc_lvs_models or ckpt.stem in settings.drc_lvs_models:
            row.update(_signoff(directory))
            command += "; python -m compiler drc DIR; python -m compiler lvs DIR"
        rows.append({**row, "command": command})
    return rows


def _signoff(directory) -> dict:
    from flows.drc import run_drc
    from flows.lvs import run_lvs

    drc = run_drc(directory, workdir("drc"))
    lvs = run_lvs(directory, workdir("lvs"))
    return {
        "drc_s": rounded(drc.seconds),
        "drc_violations": drc.total,
        "lvs_s": rounded(lvs.seconds),
        "lvs": "match" if lvs.match else "mismatch",
    }
