"""`python -m compiler characterize`: tables, plots and report in the output directory, cached re-runs."""

import json

import pytest

from compiler.foundation.ngspice import Runner
from compiler.foundation.simcache import SimCache
from flows.characterize import characterize_cell
from flows.cli import main


@pytest.mark.tools
def test_cells_characterize_cli_writes_table_plot_and_report(tmp_path, capsys):
    assert main(["characterize", "mirror", "rectifier", "-j", "2", "-o", str(tmp_path)]) == 0
    for name in ("mirror", "rectifier"):
        table = json.loads((tmp_path / f"{name}_tt_27C.json").read_text())
        assert table["cell"] == name and table["temp"] == 27.0
        assert (tmp_path / "plots" / f"{name}_tt_27C.png").stat().st_size > 10_000
    report = json.loads((tmp_path / "report_tt_27C.json").read_text())
    assert [r["cell"] for r in report] == ["mirror", "rectifier"]
    assert "| mirror | tt | 27 |" in capsys.readouterr().out
    assert all(r["ngspice_seconds"] > 0 for r in report)


@pytest.mark.tools
def test_cells_characterize_is_cached(tmp_path):
    cold = characterize_cell("bias", output=tmp_path / "a", runner=_Counting(tmp_path / "cache"))
    warm = characterize_cell("bias", output=tmp_path / "b", runner=_Counting(tmp_path / "cache"))
    assert cold["cached"] == 0 and warm["cached"] == warm["simulations"] == cold["simulations"]
    a = json.loads((tmp_path / "a" / "bias_tt_27C.json").read_text())
    b = json.loads((tmp_path / "b" / "bias_tt_27C.json").read_text())
    assert a["fit"] == b["fit"]


def test_cells_characterize_rejects_unknown_cells(tmp_path, capsys):
    assert main(["characterize", "opamp", "-o", str(tmp_path)]) == 2
    assert "unknown cell" in capsys.readouterr().err


class _Counting(Runner):
    def __init__(self, root):
        super().__init__(cache=SimCache(root))
        self.ran = self.hits = 0

    def run(self, sim, **kwargs):
        result = super().run(sim, **kwargs)
        self.ran += 1
        self.hits += int(result.cached)
        return result
