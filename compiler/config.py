"""Build configuration: YAML with model -> stage type -> stage name granularity (the name wins).

```yaml
model:                    # every stage
  i_unit: 1.0e-9
stage_types:              # every stage of a kind (weight_array, bistable, bias_array, receiver, ...)
  weight_array: {denominator: 8}
stages:                   # one stage by its IR name
  cell1.W: {denominator: 16}
```
`python -m compiler config MODEL.ckpt` writes a starter file listing every stage of that model.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import stat
from dataclasses import dataclass, field

import yaml

from compiler.foundation.errors import SHOWN_CHARS, UsageError, clip, file_label, shown  # noqa: F401 (re-exported)


class ConfigError(UsageError):
    """The configuration file is malformed or sets an unknown or out-of-range option."""


# Every option, its default, and the range that makes physical sense.
DEFAULTS = {
    "i_unit": 1e-9,  # A per software unit: the current a model value of 1.0 becomes
    "vdd": 1.8,  # V
    "corner": "tt",
    "temp": 27.0,  # C
    "frame_period": None,  # s per input frame (None: the build chooses it, compiler/passes/choose_frame.py)
    "denominator": 16,  # unit devices of each mirror input diode (the weight grid is 1/denominator)
    "max_units": 64,  # most unit devices in one mirror output
    "bias_denominator": 16,  # the bias grid is i_unit / bias_denominator
    "mismatch_budget": 0.15,  # target sigma of one mirror output (relative); tighter budgets pick larger
    # devices whose gate capacitance slows sub-nA signal nodes (see README)
    "min_width_ratio": 0.15,  # smallest hysteresis width / threshold a bistable cell realises well
    "calibrated": True,  # program currents through the cell calibration tables
    "phased": True,  # enable each layer of cells in its own slot of the frame (no inter-layer race)
    "keep_alive": False,  # a standing, cancelled current in receivers too slow for their slot (README)
    "max_unit_devices": 500_000,  # ceiling on the circuit's unit transistors (the largest zoo model: ~45 000)
    "max_area_mm2": 25.0,  # ceiling on the estimated layout area (the largest zoo model: ~4 mm^2)
    "pin_layer": "met3",  # metal of the layout's boundary pins
    "pin_side": "top",  # side of the layout the pins are on
    "cell_prefix": "",  # prefix of every GDS cell name (empty: `fq` and six hex digits of the netlist's hash)
}
RANGES = {
    "i_unit": (5e-11, 1e-8),  # from cells/common.py I_UNIT_MIN
    "vdd": (1.6, 1.95),
    "temp": (-40.0, 125.0),
    "frame_period": (1e-5, 10.0),
    "denominator": (1, 64),
    "max_units": (1, 256),
    "bias_denominator": (1, 64),
    "max_unit_devices": (1, 10_000_000),
    "max_area_mm2": (0.001, 400.0),
    "mismatch_budget": (0.005, 0.5),
    "min_width_ratio": (0.15, 0.9),  # above cells/bistable.py MIN_WIDTH_RATIO after calibration
}
CORNERS = ("tt", "ff", "ss", "sf", "fs")
CHOICES = {"corner": CORNERS, "pin_layer": ("met3", "met4"), "pin_side": ("top", "bottom", "left", "right")}
CHIP_WIDE = frozenset({"pin_layer", "pin_side", "cell_prefix", "frame_period"})  # options of the whole chip: model only
CELL_PREFIX = re.compile(r"(|[A-Za-z][A-Za-z0-9]{0,7})")  # GDS, LEF and Verilog safe; cell names stay short
SECTIONS = ("model", "stage_types", "stages")

# Bounds on what a user's YAML file may make the tool read and build: configurations are a few kB.
MAX_YAML_BYTES = 1 << 20
MAX_YAML_DEPTH = 16
MAX_YAML_NODES = 20_000
MAX_INT_CHARS = 40


def _label(name) -> str:
    """A user-chosen name (a stage, a section) as printed inside a dotted path."""
    return clip(name) if isinstance(name, str) else shown(name)


def did_you_mean(name, known) -> str:
    """' (did you mean 'x'?)' for the closest of `known` to `name` ignoring case, or ''."""
    if not isinstance(name, str) or len(name) > 4 * SHOWN_CHARS:
        return ""
    by_lower = {}
    for candidate in known:
        by_lower.setdefault(str(candidate).lower(), candidate)
    match = difflib.get_close_matches(name.lower(), list(by_lower), n=1)
    return f" (did you mean {shown(by_lower[match[0]])}?)" if match else ""


@dataclass(frozen=True)
class Config:
    model: dict = field(default_factory=dict)
    stage_types: dict = field(default_factory=dict)
    stages: dict = field(default_factory=dict)

    def __post_init__(self):
        if not isinstance(self.model, dict):
            raise ConfigError(f"config section 'model' must be a mapping of options, not {shown(self.model)}")
        for where, options in [
            ("model", self.model),
            *_nested("stage_types", self.stage_types),
            *_nested("stages", self.stages),
        ]:
            for key, value in options.items():
                _check_option(where, key, value)

    def get(self, key: str, stage=None):
        """The value of `key` for a stage (its name, then its kind, then the model, then the default)."""
        if key not in DEFAULTS:
            raise KeyError(key)
        if stage is not None:
            if key in self.stages.get(stage.name, {}):
                return self.stages[stage.name][key]
            if key in self.stage_types.get(stage.kind, {}):
                return self.stage_types[stage.kind][key]
        return self.model.get(key, DEFAULTS[key])

    def resolved(self) -> dict:
        """The whole configuration with defaults filled in (written to the build directory)."""
        return {
            "model": {k: self.model.get(k, v) for k, v in DEFAULTS.items()},
            "stage_types": self.stage_types,
            "stages": self.stages,
        }

    def check_stages(self, names, kinds) -> None:
        """Refuse a `stages` entry that names no stage of the model, or a `stage_types` entry of no known kind.

        The configuration alone cannot know a model's stage names, so the build calls this once it has the IR;
        a misspelt name would otherwise be ignored silently."""
        _check_known(
            "stages",
            self.stages,
            names,
            "stage of this model",
            "`python -m compiler config MODEL.ckpt` lists the model's stages",
        )
        _check_known("stage_types", self.stage_types, kinds, "stage kind", f"the kinds are {', '.join(sorted(kinds))}")


def _check_known(section: str, table: dict, known, noun: str, hint: str) -> None:
    known = set(known)
    for name in table:
        if name not in known:
            raise ConfigError(f"config {section}: {shown(name)} is not a {noun}{did_you_mean(name, known)}; {hint}")


def _nested(section: str, table) -> list:
    if not isinstance(table, dict):
        raise ConfigError(f"config section {section!r} must be a mapping of names to option mappings")
    out = []
    for name, options in table.items():
        if not isinstance(options, dict):
            raise ConfigError(f"config {section}.{_label(name)} must be a mapping of options, not {shown(options)}")
        out.append((f"{section}.{_label(name)}", options))
    return out


def _check_option(where: str, key, value) -> None:
    if key not in DEFAULTS:
        raise ConfigError(
            f"config {where}: unknown option {shown(key)}{did_you_mean(key, DEFAULTS)}; "
            f"known options: {', '.join(DEFAULTS)}"
        )
    default = DEFAULTS[key]
    if value is None and default is None:  # null: the build chooses (as when the option is not set)
        return
    if key in CHIP_WIDE and where != "model":
        raise ConfigError(f"config {where}: {key} applies to the whole chip; set it under model:")
    if key in CHOICES:
        if value not in CHOICES[key]:
            raise ConfigError(f"config {where}: {key} must be one of {', '.join(CHOICES[key])}, not {shown(value)}")
        return
    if key == "cell_prefix":
        if not isinstance(value, str) or not CELL_PREFIX.fullmatch(value):
            raise ConfigError(
                f"config {where}: cell_prefix must be a letter and at most 7 letters or digits, not {shown(value)}"
            )
        return
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"config {where}: {key} must be true or false, not {shown(value)}")
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        hint = " (YAML reads 1e-9 as text: write 1.0e-9)" if isinstance(value, str) else ""
        raise ConfigError(f"config {where}: {key} must be a number, not {shown(value)}{hint}")
    if isinstance(default, int) and not isinstance(value, int):
        raise ConfigError(f"config {where}: {key} must be an integer, not {shown(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"config {where}: {key} must be a finite number, not {shown(value)}")
    lo, hi = RANGES[key]
    if not lo <= value <= hi:
        raise ConfigError(f"config {where}: {key} = {shown(value)} is outside [{lo:g}, {hi:g}]")


class _Refused(yaml.MarkedYAMLError):
    """A YAML construct a user file may not use, or a value it cannot hold (the message says which)."""


class UserYamlLoader(yaml.SafeLoader):
    """SafeLoader for files a user hands the tool: no aliases or anchors (a few hundred bytes of nested
    aliases expand to gigabytes), no explicit tags, no duplicate keys, no dates, bounded depth and node
    count, integers of a bounded length."""

    def __init__(self, stream, what: str = "YAML file"):
        super().__init__(stream)
        self.what, self.nodes, self.depth = what, 0, 0

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _Refused(
                None,
                None,
                f"YAML aliases (&x / *x) are not allowed in a {self.what}; write each value out",
                event.start_mark,
            )
        if getattr(event, "tag", None) is not None:
            raise _Refused(
                None, None, f"YAML tags (!x) are not allowed in a {self.what}; write plain values", event.start_mark
            )
        self.nodes += 1
        if self.depth >= MAX_YAML_DEPTH:
            raise _Refused(None, None, f"a {self.what} nests at most {MAX_YAML_DEPTH} levels deep", event.start_mark)
        if self.nodes > MAX_YAML_NODES:
            raise _Refused(None, None, f"a {self.what} holds at most {MAX_YAML_NODES} values", event.start_mark)
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_mapping(self, node, deep=False):
        """A mapping whose keys are all different: YAML would silently keep only the last of two."""
        seen = {}
        for key_node, _ in node.value if isinstance(node, yaml.MappingNode) else ():
            if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
                continue
            key = self.construct_object(key_node)
            if key in seen:
                raise _Refused(
                    None,
                    None,
                    f"duplicate key {shown(key)} (first on line {seen[key]}); keep only one",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node):
        if len(node.value) > MAX_INT_CHARS:
            raise _Refused(None, None, f"an integer of more than {MAX_INT_CHARS} characters", node.start_mark)
        try:
            return super().construct_yaml_int(node)
        except ValueError:
            raise _Refused(None, None, f"{shown(node.value)} is not an integer", node.start_mark) from None


UserYamlLoader.add_constructor("tag:yaml.org,2002:int", UserYamlLoader.construct_yaml_int)
UserYamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def read_user_yaml(path, what: str, error: type[UsageError] = ConfigError):
    """The data of a small YAML file a user hands the tool (`what` names it in messages), read with
    `UserYamlLoader`; anything unreadable or refused raises `error`."""
    text, name = _read_user_text(path, what, error), file_label(path)
    try:
        return _parse(text, what)
    except _Refused as exc:
        raise error(f"{what} {name}, {_yaml_problem(exc)}") from None
    except yaml.YAMLError as exc:
        raise error(f"{what} {name} is not valid YAML: {_yaml_problem(exc)}") from None


def _parse(text: str, what: str):
    loader = UserYamlLoader(text, what)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """Where and what the YAML error is, without PyYAML's echo of the source."""
    mark, problem = getattr(exc, "problem_mark", None), getattr(exc, "problem", None) or str(exc)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return clip(where + problem, 4 * SHOWN_CHARS)


def _read_user_text(path, what: str, error: type[UsageError]) -> str:
    """The UTF-8 text of a regular file of at most MAX_YAML_BYTES; a directory, FIFO or device is refused
    before it is opened (reading a FIFO would block), and checked again once open."""
    name = file_label(path)
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise error(f"{what} {name} is not a regular file; pass the path of a YAML file")
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise error(f"{what} {name} is not a regular file; pass the path of a YAML file")
            data = handle.read(MAX_YAML_BYTES + 1)
    except OSError as exc:
        raise error(f"cannot read the {what} {name}: {exc.strerror or exc}") from None
    except ValueError as exc:  # a NUL in the path
        raise error(f"cannot read the {what} {name}: {exc}") from None
    if len(data) > MAX_YAML_BYTES:
        raise error(f"{what} {name} is larger than {MAX_YAML_BYTES >> 20} MiB; it should be a few kB of YAML")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{what} {name} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None


def load_config(path=None) -> Config:
    """Read a YAML config (None: all defaults); named errors for anything malformed."""
    if path is None:
        return Config()
    data = read_user_yaml(path, "build configuration")
    return Config(**_sections(data, file_label(path)))


def _sections(data, name: str) -> dict:
    """The sections of a loaded configuration (an empty file or an empty section means the defaults)."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config {name} must be a mapping with the sections {', '.join(SECTIONS)}, not {shown(data)}")
    for section, table in data.items():
        if section not in SECTIONS:
            raise ConfigError(
                f"config {name}: unknown section {shown(section)}{did_you_mean(section, SECTIONS)}; "
                f"the sections are {', '.join(SECTIONS)}"
            )
        if table is not None and not isinstance(table, dict):
            raise ConfigError(f"config {name}: section {section!r} must be a mapping, not {shown(table)}")
    return {section: data.get(section) or {} for section in SECTIONS}


def starter_config(ir) -> str:
    """A commented YAML config for one model: the defaults, and every stage by kind and name."""
    lines = [
        "# Build configuration. Precedence: stages.<name> > stage_types.<kind> > model > defaults.",
        "model:",
        *[f"  {k}: {yaml.safe_dump(v).splitlines()[0]}" for k, v in DEFAULTS.items()],
        "stage_types:",
        *sorted({f"  {s.kind}: {{}}" for s in ir.stages}),
        "stages:",
        *[f"  {s.name}: {{}}   # {s.kind}, {s.size} units, realises {s.source}" for s in ir.stages],
    ]
    return "\n".join(lines) + "\n"
