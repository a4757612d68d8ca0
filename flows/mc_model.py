"""`verify --mc-model N`: the statistical behavioural model's Monte Carlo, and its comparison with SPICE's.

Per draw, the same three measures `verify` takes of each SPICE Monte Carlo draw, against the same
reference (the realised network without mismatch): state agreement, output RMS error (units of i_unit,
the readout's per-frame values) and, for classifiers, prediction agreement. Also, per test sequence, the
share of draws that keep its prediction (the yield of that decision). When the same verification ran
SPICE Monte Carlo draws (`--mc M`), both distributions are reported side by side.
"""

from __future__ import annotations

import time

import numpy as np

from compiler.backends.behavioural import reference
from compiler.backends.statistical import monte_carlo
from compiler.ir import IR

MEASURES = ("state_agreement", "output_rms_units", "prediction_agreement")
QUANTILES = (0.0, 0.05, 0.5, 0.95, 1.0)


def predictions(outputs: np.ndarray, task) -> np.ndarray | None:
    """Class predictions of per-frame readout values [..., S, T, n] (verify's rule), None for a task
    without classes."""
    if task.pool:
        return np.argmax(outputs.mean(axis=-2), -1)
    if np.ndim(task.test.y) == 2 and outputs.shape[-1] > 1:  # a per-frame classifier read at the last frame
        return np.argmax(outputs[..., -1, :], -1)
    return None


def statistics(ir: IR, task, x, output: str, draws: int, seed: int = 0, labels=None) -> dict:
    """The model's Monte Carlo on inputs x: per-draw measures and per-sequence prediction yield (each
    chunk of draws reduced as it comes, so memory does not grow with the draws); with the inputs' `labels`,
    also each draw's task metric (`task_metric`: the chip's accuracy, for a classifier)."""
    start = time.perf_counter()
    _, traces = reference(ir, x)
    nominal = np.asarray(traces[output]["y"])
    nominal_pred = predictions(nominal, task)
    per_draw = {measure: [] for measure in (*MEASURES, *(("task_metric",) if labels is not None else ()))}
    kept = np.zeros(len(x))
    for outputs, states in monte_carlo(ir, x, output, draws, seed):
        n = len(outputs)
        if states:
            same = [(q == np.asarray(traces[c]["q"])[None]).reshape(n, -1) for c, q in states.items()]
            per_draw["state_agreement"].append(np.concatenate(same, axis=1).mean(axis=1))
        per_draw["output_rms_units"].append(
            np.sqrt(np.mean((outputs - nominal[None]) ** 2, axis=tuple(range(1, outputs.ndim))))
        )
        if labels is not None:
            pooled = outputs.mean(axis=-2) if task.pool else outputs  # the network's output per draw
            per_draw["task_metric"].append([float(task.metrics(o, labels)[task.metric]) for o in pooled])
        if nominal_pred is not None:
            keep = predictions(outputs, task) == nominal_pred[None]
            per_draw["prediction_agreement"].append(keep.mean(axis=1))
            kept += keep.sum(axis=0)
    result = {"draws": draws, "sequences": int(len(x)), "seed": seed}
    if nominal_pred is not None:
        result["prediction_kept_by_sequence"] = [round(float(v), 4) for v in kept / draws]
        result["prediction_kept"] = float(kept.sum() / (draws * len(x)))
    result["quantiles"] = {k: _quantiles(np.concatenate(v)) for k, v in per_draw.items() if v}
    result["seconds"] = round(time.perf_counter() - start, 2)
    return result


def spice_draws(conditions: list[dict]) -> dict:
    """The same measures over a verification's SPICE Monte Carlo draws (conditions with an mc_seed)."""
    draws = [c for c in conditions if c.get("mc_seed") is not None]
    if not draws:
        return {}
    out = {"draws": len(draws), "quantiles": {}}
    for measure in MEASURES:
        values = [c.get(measure) for c in draws]
        if all(v is not None for v in values):
            out["quantiles"][measure] = _quantiles(np.asarray(values, np.float64))
    return out


def _quantiles(values) -> dict:
    values = np.asarray(values, np.float64)
    return {
        "mean": round(float(values.mean()), 5),
        **{f"q{int(q * 100)}": round(float(np.quantile(values, q)), 5) for q in QUANTILES},
    }


def markdown(model: dict, spice: dict) -> str:
    """The report of the model's draws, beside the SPICE draws' when there are any."""
    lines = [
        "# Mismatch: statistical behavioural model" + (" and SPICE Monte Carlo" if spice else ""),
        "",
        f"Model: {model['draws']} draws x {model['sequences']} sequences in {model['seconds']} s "
        f"(compiler/backends/statistical.py)." + (f" SPICE: {spice['draws']} PDK Monte Carlo draws." if spice else ""),
        "Each measure is taken per draw against the realised network without mismatch; columns are its "
        "distribution over the draws (min, 5 %, median, 95 %, max).",
        "",
        "| measure | source | mean | min | 5 % | median | 95 % | max |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for measure in MEASURES:
        for source, data in (("model", model), ("SPICE", spice)):
            q = data.get("quantiles", {}).get(measure) if data else None
            if q:
                lines.append(
                    f"| {measure.replace('_', ' ')} | {source} | {q['mean']:.4g} | {q['q0']:.4g} | {q['q5']:.4g} | "
                    f"{q['q50']:.4g} | {q['q95']:.4g} | {q['q100']:.4g} |"
                )
    if "prediction_kept" in model:
        kept = model["prediction_kept_by_sequence"]
        lines += [
            "",
            f"Share of draws that keep each sequence's prediction (model): mean {model['prediction_kept']:.4f}, "
            f"lowest {min(kept):.4f} (sequence {int(np.argmin(kept))}).",
        ]
    return "\n".join(lines) + "\n"
