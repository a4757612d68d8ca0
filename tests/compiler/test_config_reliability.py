"""Build configurations and tolerance files are user input: every malformed or hostile file is a named error
(exit status 2) with a short message, and nothing else: no traceback, no unbounded memory or output."""

import argparse
import math
import os
import subprocess
import sys
import threading

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compiler.config import DEFAULTS, MAX_YAML_BYTES, Config, ConfigError, load_config, starter_config
from compiler.frontend import load_network
from compiler.ir import STAGE_TYPES
from compiler.lower import lower
from flows import starter_config as starter
from flows.tolerances import ToleranceFileError, load_tolerances
from flows.verify import failures

MESSAGE_BOUND = 2000
FILE_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _laughs(levels: int) -> str:
    """Nested aliases: a few hundred bytes that expand to 9**levels strings."""
    lines = ['- &l0 ["ha","ha","ha","ha","ha","ha","ha","ha","ha"]']
    lines += [f"- &l{i} [{','.join([f'*l{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "model:\n  vdd:\n  " + "\n  ".join(lines) + "\n"


def _config_error(path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert len(message) < MESSAGE_BOUND
    return message


def _write(tmp_path, text, name="c.yaml"):
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def test_nested_aliases_are_refused_before_they_expand(tmp_path):
    path = _write(tmp_path, _laughs(6))
    assert len(path.read_bytes()) < 600
    assert "YAML aliases (&x / *x) are not allowed in a build configuration" in _config_error(path)


def test_an_anchor_alone_is_refused(tmp_path):
    assert "aliases" in _config_error(_write(tmp_path, "model: &m {vdd: 1.8}\n"))


@pytest.mark.parametrize(
    "text, key, line",
    [
        ("model:\n  i_unit: 1.0e-9\n  i_unit: 2.0e-9\n", "'i_unit'", 2),
        ("model: {}\nstages: {}\nmodel: {vdd: 1.7}\n", "'model'", 1),
        ("stages:\n  cell1.W: {denominator: 4}\n  cell1.W: {denominator: 8}\n", "'cell1.W'", 2),
    ],
)
def test_duplicate_keys_are_named_with_their_lines(tmp_path, text, key, line):
    message = _config_error(_write(tmp_path, text))
    assert f"duplicate key {key} (first on line {line})" in message


def test_unknown_stage_names_and_kinds_are_refused_with_suggestions():
    names, kinds = ["cell1.W", "cell1.B", "cell1"], list(STAGE_TYPES)
    Config(stages={"cell1.W": {"denominator": 4}}, stage_types={"bistable": {}}).check_stages(names, kinds)
    with pytest.raises(ConfigError, match=r"'CELL1\.w' is not a stage of this model \(did you mean 'cell1\.W'\?\)"):
        Config(stages={"CELL1.w": {}}).check_stages(names, kinds)
    with pytest.raises(ConfigError, match=r"'weight_arrays' is not a stage kind \(did you mean 'weight_array'\?\)"):
        Config(stage_types={"weight_arrays": {}}).check_stages(names, kinds)
    with pytest.raises(ConfigError, match="is not a stage of this model; `python -m compiler config"):
        Config(stages={"x" * 10_000: {}}).check_stages(names, kinds)


def test_the_starter_config_names_only_real_stages(small_ckpt, tmp_path):
    ir = lower(load_network(small_ckpt))
    config = load_config(_write(tmp_path, starter_config(ir)))
    config.check_stages([s.name for s in ir.stages], STAGE_TYPES)


@pytest.mark.parametrize(
    "content, match",
    [
        ("- 1\n- 2\n", "must be a mapping with the sections"),
        ("just text\n", "must be a mapping with the sections"),
        (b"model:\n  corner: \xff\xfe\n", "not UTF-8 text"),
        ("[" * 10_000, "nests at most"),
        ("model: [" + "1," * 30_000 + "]\n", "holds at most"),
        ("model: {denominator: " + "1" * 5000 + "}\n", "integer of more than"),
        ("model: {denominator: 0x" + "f" * 5000 + "}\n", "integer of more than"),
        ("model: {denominator: 0b_}\n", "is not an integer"),
        ("model: {vdd: .nan}\n", "must be a finite number"),
        ("model: {temp: -.inf}\n", "must be a finite number"),
        ("model: {frame_period: 1.0e+999}\n", "must be a finite number"),
        ("model: {vdd: !!float 1.8}\n", "tags"),
        ("model: {corner: 2001-02-30}\n", "corner must be one of"),
        ("stages: []\n", "section 'stages' must be a mapping"),
        ("stages: 0\n", "section 'stages' must be a mapping"),
        ("modle: {}\n", "unknown section 'modle' (did you mean 'model'?)"),
        ("model: {I_unit: 1.0e-9}\n", "did you mean 'i_unit'"),
        ("model: {vdd: '" + "v" * 100_000 + "'}\n", "must be a number"),
        ("a: 1\n---\nb: 2\n", "not valid YAML"),
    ],
)
def test_malformed_configs_are_named_errors(tmp_path, content, match):
    assert match in _config_error(_write(tmp_path, content))


def test_oversized_configs_are_refused_unread(tmp_path):
    path = _write(tmp_path, "#" * (MAX_YAML_BYTES + 10) + "\n")
    assert "larger than 1 MiB" in _config_error(path)


def test_a_directory_or_a_missing_file_is_a_named_error(tmp_path):
    assert "not a regular file" in _config_error(tmp_path)
    assert "No such file" in _config_error(tmp_path / "missing.yaml")
    assert "embedded null" in _config_error(str(tmp_path / "a\0b"))
    assert len(_config_error(tmp_path / ("d" * 100_000))) < MESSAGE_BOUND


def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "c.yaml"
    os.mkfifo(fifo)
    outcome = []
    reader = threading.Thread(target=lambda: outcome.append(_config_error(fifo)), daemon=True)
    reader.start()
    reader.join(10)
    if reader.is_alive():  # unblock the reader stuck in open() before failing
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        reader.join(10)
        pytest.fail("load_config blocked on a FIFO")
    assert "not a regular file" in outcome[0]


def test_option_values_are_never_echoed_in_full():
    huge = 10**5000
    for value in (huge, [huge], "v" * 100_000, {"k" * 100_000: [[[["deep"]]]] * 1000}):
        with pytest.raises(ConfigError) as caught:
            Config(model={"vdd": value})
        assert len(str(caught.value)) < MESSAGE_BOUND
    with pytest.raises(ConfigError) as caught:
        Config(stages={"s" * 100_000: {"vdd": "x"}})
    assert len(str(caught.value)) < MESSAGE_BOUND


def test_cli_exit_status_is_2_without_a_traceback(small_ckpt, tmp_path):
    config = _write(tmp_path, _laughs(6))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "compiler",
            "build",
            str(small_ckpt),
            "-o",
            str(tmp_path / "out"),
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2
    assert "ConfigError" in proc.stderr and "Traceback" not in proc.stderr and len(proc.stderr) < MESSAGE_BOUND


# -- properties: any input either loads into a valid Config or is a ConfigError with a short message

FRAGMENTS = [
    "[",
    "]",
    "{",
    "}",
    ": ",
    ", ",
    "- ",
    "\n",
    "  ",
    "'",
    '"',
    "#",
    "? ",
    "<<: ",
    "~",
    "&a ",
    "*a",
    "!!int ",
    "!!float ",
    "!x ",
    "model",
    "stages",
    "stage_types",
    "vdd",
    "i_unit",
    "corner",
    "cell1.W",
    "1.0e-9",
    "16",
    ".nan",
    "-.inf",
    "0b_",
    "0x_",
    "._",
    "1:2:3",
    "2001-02-30",
    "1" * 5000,
    "[" * 2000,
]
YAMLISH = st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=5), max_size=40).map("".join) | st.binary(max_size=64)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(10**60), 10**60)
    | st.floats()
    | st.text(max_size=200)
    | st.sampled_from(["tt", "ss", "1.0e-9", "1e-9"])
)
KEYS = st.sampled_from([*DEFAULTS, "model", "stages", "stage_types", "cell1.W", "bistable"]) | st.text(max_size=20)
STRUCTURES = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4), max_leaves=30
)


def _loads_or_named_error(path) -> None:
    try:
        config = load_config(path)
    except ConfigError as error:
        assert len(str(error)) < MESSAGE_BOUND
        return
    assert isinstance(config, Config)
    for key in DEFAULTS:
        config.get(key)


@FILE_SETTINGS
@given(text=YAMLISH)
def test_any_yamlish_text_loads_or_is_a_config_error(tmp_path, text):
    _loads_or_named_error(_write(tmp_path, text))


@FILE_SETTINGS
@given(data=st.dictionaries(st.sampled_from(["model", "stages", "stage_types"]) | KEYS, STRUCTURES, max_size=4))
def test_any_nested_structure_loads_or_is_a_config_error(tmp_path, data):
    _loads_or_named_error(_write(tmp_path, yaml.safe_dump(data)))


@settings(max_examples=300, deadline=None)
@given(key=st.sampled_from(sorted(DEFAULTS)), value=STRUCTURES, section=st.sampled_from(["model", "types", "stage"]))
def test_any_option_value_is_valid_or_a_config_error(key, value, section):
    tables = {
        "model": {"model": {key: value}},
        "types": {"stage_types": {"bistable": {key: value}}},
        "stage": {"stages": {"cell1": {key: value}}},
    }
    try:
        config = Config(**tables[section])
    except ConfigError as error:
        assert len(str(error)) < MESSAGE_BOUND
        return
    assert type(value) is type(DEFAULTS[key]) or isinstance(value, int) and isinstance(DEFAULTS[key], float)
    assert not isinstance(value, float) or math.isfinite(value)
    assert config.resolved()


# -- tolerance files


@pytest.mark.parametrize(
    "text, match",
    [
        ("state_agreement: {min: .nan}\n", "must be a finite number"),
        ("output_rms_units: {max: .inf}\n", "must be a finite number"),
        ("state_agreement: {min: true}\n", "must be a finite number"),
        ("state_agreement: {minimum: 0.9}\n", "unknown bound 'minimum' (did you mean 'min'?)"),
        ("State_Agreement: {min: 0.9}\n", "did you mean 'state_agreement'"),
        ("state_agreement: {min: 0.9, max: 0.8}\n", "min is above its max"),
        ("state_agreement: {}\n", "must be {min: number}"),
        ("- state_agreement\n", "expected a mapping"),
        ("", "expected a mapping"),
        ("a: &a {min: 0.9}\nstate_agreement: *a\n", "not allowed in a tolerance file"),
        ("state_agreement: {min: 0.9}\nstate_agreement: {min: 0.5}\n", "duplicate key 'state_agreement'"),
    ],
)
def test_malformed_tolerance_files_are_named_errors(tmp_path, text, match):
    with pytest.raises(ToleranceFileError) as caught:
        load_tolerances(_write(tmp_path, text, "tol.yaml"))
    assert match in str(caught.value) and len(str(caught.value)) < MESSAGE_BOUND


def test_a_tolerance_may_bound_both_sides(tmp_path):
    tolerances = load_tolerances(_write(tmp_path, "output_rms_units: {min: 0.1, max: 0.5}\n", "tol.yaml"))
    assert failures({"output_rms_units": 0.05}, tolerances) == ["output_rms_units"]
    assert failures({"output_rms_units": 0.3}, tolerances) == []


def test_a_tolerance_file_that_is_a_directory_is_a_named_error(tmp_path):
    with pytest.raises(ToleranceFileError, match="not a regular file"):
        load_tolerances(tmp_path)


@FILE_SETTINGS
@given(data=STRUCTURES)
def test_any_tolerance_file_loads_finite_bounds_or_is_a_named_error(tmp_path, data):
    try:
        tolerances = load_tolerances(_write(tmp_path, yaml.safe_dump(data), "tol.yaml"))
    except ToleranceFileError as error:
        assert len(str(error)) < MESSAGE_BOUND
        return
    assert all(math.isfinite(v) for bound in tolerances.values() for v in bound.values())


# -- `python -m compiler config CKPT -o PATH`


def _starter(small_ckpt, out):
    return starter.run(argparse.Namespace(checkpoint=str(small_ckpt), out=str(out)))


@pytest.mark.parametrize(
    "where, match",
    [
        (lambda tmp: tmp / "d", "is a directory"),
        (lambda tmp: tmp / "missing" / "c.yaml", "does not exist"),
        (lambda tmp: tmp / "fifo", "not a regular file"),
    ],
)
def test_starter_config_output_errors_leave_nothing_behind(small_ckpt, tmp_path, where, match):
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "d").mkdir()
    before = sorted(tmp_path.iterdir())
    with pytest.raises(starter.ConfigOutputError, match=match):
        _starter(small_ckpt, where(tmp_path))
    assert sorted(tmp_path.iterdir()) == before


@pytest.mark.parametrize("failure", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_a_failed_write_removes_its_temporary_file(small_ckpt, tmp_path, monkeypatch, failure):
    (tmp_path / "c.yaml").write_text("model: {}\n")

    def fail(*_):
        raise failure

    monkeypatch.setattr(starter.os, "replace", fail)
    with pytest.raises(starter.ConfigOutputError if isinstance(failure, OSError) else KeyboardInterrupt):
        _starter(small_ckpt, tmp_path / "c.yaml")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml", "small.ckpt"]
    assert (tmp_path / "c.yaml").read_text() == "model: {}\n"


def test_starter_config_cli_exit_status_is_2_on_a_directory(small_ckpt, tmp_path):
    (tmp_path / "d").mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "compiler", "config", str(small_ckpt), "-o", str(tmp_path / "d")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2 and "ConfigOutputError" in proc.stderr and "Traceback" not in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "small.ckpt"] and not any((tmp_path / "d").iterdir())


@pytest.mark.parametrize(
    "options,match",
    [
        ({"model": {"pin_layer": "met2"}}, "pin_layer must be one of met3, met4"),
        ({"model": {"pin_side": "north"}}, "pin_side must be one of"),
        ({"model": {"cell_prefix": "9abc"}}, "cell_prefix must be a letter"),
        ({"model": {"cell_prefix": "abcdefghi"}}, "cell_prefix must be a letter"),
        ({"model": {"cell_prefix": "a-b"}}, "cell_prefix must be a letter"),
        ({"stages": {"cell1": {"pin_side": "left"}}}, "applies to the whole chip"),
        ({"stage_types": {"ladder": {"frame_period": 0.02}}}, "applies to the whole chip"),
    ],
)
def test_layout_options_are_checked_and_model_wide(options, match):
    with pytest.raises(ConfigError, match=match):
        Config(**options)
    assert Config(model={"pin_layer": "met4", "pin_side": "left", "cell_prefix": "ab12"}).get("pin_side") == "left"
