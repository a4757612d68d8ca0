"""`make demo`'s flow: it builds the default model with the configuration the zoo ships for it."""

import pytest

from compiler.config import load_config
from flows import demo


@pytest.mark.tools
def test_demo_builds_the_default_model_with_its_own_config(tmp_path):
    out = tmp_path / "demo"
    assert demo.main(["-o", str(out), "--sequences", "0"]) == 0
    assert (out / "layout" / "top.gds").is_file() and (out / "netlist" / "top.spice").is_file()
    assert load_config(out / "config.yaml").get("i_unit") == 1.5e-10  # models/zoo/<name>.yaml, not the default
    assert "frame period 500 ms (chosen" in (out / "reports" / "build.md").read_text()


def test_demo_rejects_a_negative_sequence_count(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        demo.main(["-o", str(tmp_path / "demo"), "--sequences", "-1"])
    assert stop.value.code == 2 and "--sequences" in capsys.readouterr().err
    assert not (tmp_path / "demo").exists()  # nothing built
