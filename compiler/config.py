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

from dataclasses import dataclass, field

import yaml

from compiler.errors import UsageError


class ConfigError(UsageError):
    """The configuration file is malformed or sets an unknown or out-of-range option."""


# Every option, its default, and the range that makes physical sense.
DEFAULTS = {
    "i_unit": 1e-9,            # A per software unit (DOMAIN.md section 3)
    "vdd": 1.8,                # V
    "corner": "tt",
    "temp": 27.0,              # C
    "frame_period": 1e-2,      # s per input frame: mirror gates recharging at sub-nA inputs need ~ms (2 ms: 8 % state errors)
    "denominator": 16,         # unit devices of each mirror input diode (the weight grid is 1/denominator)
    "max_units": 64,           # most unit devices in one mirror output
    "bias_denominator": 16,    # the bias grid is i_unit / bias_denominator
    "mismatch_budget": 0.15,   # target sigma of one mirror output (relative); tighter budgets pick larger
                               # devices whose gate capacitance slows sub-nA signal nodes (see README)
    "min_width_ratio": 0.15,   # smallest hysteresis width / threshold a bistable cell realises well
    "calibrated": True,        # program currents through the cell calibration tables
    "phased": True,            # enable each layer of cells in its own slot of the frame (no inter-layer race)
    "keep_alive": False,       # a standing, cancelled current in receivers too slow for their slot (README)
}
RANGES = {
    "i_unit": (1e-11, 1e-8), "vdd": (1.6, 1.95), "temp": (-40.0, 125.0), "frame_period": (1e-5, 1.0),
    "denominator": (1, 64), "max_units": (1, 256), "bias_denominator": (1, 64),
    "mismatch_budget": (0.005, 0.5), "min_width_ratio": (0.15, 0.9),  # above cells/bistable.py MIN_WIDTH_RATIO after calibration
}
CORNERS = ("tt", "ff", "ss", "sf", "fs")
SECTIONS = ("model", "stage_types", "stages")


@dataclass(frozen=True)
class Config:
    model: dict = field(default_factory=dict)
    stage_types: dict = field(default_factory=dict)
    stages: dict = field(default_factory=dict)

    def __post_init__(self):
        for where, options in [("model", self.model), *_nested("stage_types", self.stage_types),
                               *_nested("stages", self.stages)]:
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
        return {"model": {k: self.model.get(k, v) for k, v in DEFAULTS.items()},
                "stage_types": self.stage_types, "stages": self.stages}


def _nested(section: str, table) -> list:
    if not isinstance(table, dict):
        raise ConfigError(f"config section {section!r} must be a mapping of names to option mappings")
    out = []
    for name, options in table.items():
        if not isinstance(options, dict):
            raise ConfigError(f"config {section}.{name} must be a mapping of options, got {options!r}")
        out.append((f"{section}.{name}", options))
    return out


def _check_option(where: str, key: str, value) -> None:
    if key not in DEFAULTS:
        raise ConfigError(f"config {where}: unknown option {key!r}; known options: {', '.join(DEFAULTS)}")
    default = DEFAULTS[key]
    if key == "corner":
        if value not in CORNERS:
            raise ConfigError(f"config {where}: corner must be one of {', '.join(CORNERS)}, not {value!r}")
        return
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"config {where}: {key} must be true or false, not {value!r}")
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        hint = " (YAML reads 1e-9 as text: write 1.0e-9)" if isinstance(value, str) else ""
        raise ConfigError(f"config {where}: {key} must be a number, not {value!r}{hint}")
    if isinstance(default, int) and not isinstance(value, int):
        raise ConfigError(f"config {where}: {key} must be an integer, not {value!r}")
    lo, hi = RANGES[key]
    if not lo <= value <= hi:
        raise ConfigError(f"config {where}: {key} = {value!r} is outside [{lo:g}, {hi:g}]")


def load_config(path=None) -> Config:
    """Read a YAML config (None: all defaults); named errors for anything malformed."""
    if path is None:
        return Config()
    try:
        with open(path) as handle:
            data = yaml.safe_load(handle)
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config {path} is not valid YAML: {exc}") from exc
    if data is None:
        return Config()
    if not isinstance(data, dict) or set(data) - set(SECTIONS):
        raise ConfigError(f"config {path} must be a mapping with the sections {', '.join(SECTIONS)}")
    for section in SECTIONS:
        if section in data and not isinstance(data[section] or {}, dict):
            raise ConfigError(f"config {path}: section {section!r} must be a mapping")
    return Config(**{section: data.get(section) or {} for section in SECTIONS})


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
