"""Tolerance files for `python -m compiler verify --tolerances FILE`: YAML of `metric: {min: x}`,
`metric: {max: x}` or both; each entry replaces the default bound of its metric."""

from __future__ import annotations

import math

from compiler.config import did_you_mean, file_label, read_user_yaml, shown
from compiler.foundation.errors import UsageError

CHECKABLE = ("state_agreement", "prediction_agreement", "output_rms_units", "circuit_accuracy")
BOUNDS = ("min", "max")
EXAMPLE = "`state_agreement: {min: 0.99}`"


class ToleranceFileError(UsageError):
    """The tolerance file is malformed or names a metric the verification does not report."""


def load_tolerances(path) -> dict:
    """The bounds of a tolerance file, each checked: a known metric, known bound keys, finite numbers."""
    data = read_user_yaml(path, "tolerance file", ToleranceFileError)
    name = file_label(path)
    if not isinstance(data, dict) or not data:
        raise ToleranceFileError(f"tolerance file {name}: expected a mapping like {EXAMPLE}, not {shown(data)}")
    return {metric: _bound(name, metric, bound) for metric, bound in data.items()}


def _bound(name: str, metric, bound) -> dict:
    """One metric's bound, `{min: x}`, `{max: x}` or both (min <= max); a NaN bound would never fail."""
    if metric not in CHECKABLE:
        raise ToleranceFileError(
            f"tolerance file {name}: unknown metric {shown(metric)}"
            f"{did_you_mean(metric, CHECKABLE)}; choose from {', '.join(CHECKABLE)}"
        )
    if not isinstance(bound, dict) or not bound:
        raise ToleranceFileError(
            f"tolerance file {name}: {metric} must be {{min: number}} or {{max: number}}, not {shown(bound)}"
        )
    for key, value in bound.items():
        if key not in BOUNDS:
            raise ToleranceFileError(
                f"tolerance file {name}: {metric} has the unknown bound {shown(key)}"
                f"{did_you_mean(key, BOUNDS)}; use min and/or max"
            )
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ToleranceFileError(
                f"tolerance file {name}: {metric} {key} must be a finite number, not {shown(value)}"
            )
    if bound.get("min", -math.inf) > bound.get("max", math.inf):
        raise ToleranceFileError(f"tolerance file {name}: {metric} min is above its max; no value could pass")
    return dict(bound)
