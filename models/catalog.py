"""The zoo: which models are shipped, how each is trained, and how the zoo table is rendered.

Each entry is a full ``TrainConfig``; ``python -m models build-zoo`` retrains them into
``models/zoo/<name>.ckpt`` and rewrites ``models/zoo/README.md`` from the checkpoints' own metadata,
so the table always shows the numbers measured at save time.
"""

from __future__ import annotations

from pathlib import Path

from compiler.foundation.data import package_path
from models.checkpoint import load_checkpoint
from models.train import TrainConfig

ZOO_DIR = package_path("models", "zoo")

# Settings shared by the two-layer FQ-BMRU models (a residual between the layers) and no eps-annealing
# (on the digits, annealing from the counter regime ended at a worse bistable solution; see zoo/README.md).
FQ_TWO_LAYERS = dict(cell="fq_bmru", layers=2, lr=1e-2, eps_hold=0, eps_decay=0, steps=10000, patience=20)
# The digit models read the rows with a frame clock (a bistable layer cannot otherwise tell which row it reads).
DIGITS_FQ = dict(task="digits_rows_clock", **FQ_TWO_LAYERS)
_CMP = dict(layers=1, lr=3e-3)

ZOO: dict[str, TrainConfig] = {
    # the published d=4 size: a 4-wide input encoder and an 8-wide head around the cells; seed 2 of 0-2,
    # chosen on validation (docs/measurements.md, "Low power")
    "fq_bmru_d4_digits_clock": TrainConfig(d=4, seed=2, encoder=4, head=8, **DIGITS_FQ),
    # the published topology (13 inputs -> FC 4 -> ReLU -> 2 x [FQ-BMRU 4 + skip] -> FC out) on the published
    # kind of task, keyword spotting; seed 1 of 0-2, chosen on validation (docs/measurements.md, "Low power")
    "fq_bmru_d4_kws_yes": TrainConfig(task="kws_yes", d=4, seed=1, encoder=4, **FQ_TWO_LAYERS),
    "fq_bmru_d8_digits_clock": TrainConfig(d=8, seed=1, **DIGITS_FQ),  # seed 0 tested 0.839
    "fq_bmru_d16_digits_clock": TrainConfig(d=16, **DIGITS_FQ),
    "fq_bmru_d4_flipflop": TrainConfig(
        task="flipflop", cell="fq_bmru", d=4, layers=1, lr=3e-3, steps=14000, patience=20
    ),
    "fq_cmru_d8_event_count": TrainConfig(task="event_count", cell="fq_cmru", d=8, layers=1, lr=3e-3, K=4),
    "fq_bmru_d8_event_count": TrainConfig(task="event_count", cell="fq_bmru", d=8, layers=1, lr=3e-3),
    **{
        f"{cell}_d8_{task}": TrainConfig(task=task, cell=cell, d=8, **_CMP)
        for task in ("copy_first", "digits_rows")
        for cell in ("bmru", "cmru", "acmru", "lru", "mingru")
    },
}


# The FQ entries are trained hardware-aware, for their shipped build configuration, by
# `python -m compiler train --zoo NAME` (flows/train.py): the decision margin, its weight, and whether
# every step draws a chip's device mismatch.
HARDWARE_AWARE = {
    name: dict(margin=0.02, margin_weight=1.0, mismatch=True) for name, cfg in ZOO.items() if cfg.cell.startswith("fq_")
}


def zoo_path(name: str) -> Path:
    return ZOO_DIR / f"{name}.ckpt"


def shipped() -> list[Path]:
    return sorted(ZOO_DIR.glob("*.ckpt"))


def build_config(checkpoint) -> Path | None:
    """The build configuration a zoo checkpoint ships with (zoo/<name>.yaml: settings its circuit needs to
    verify, e.g. a longer frame), or None where the compiler's defaults do or it is not in the zoo."""
    checkpoint = Path(checkpoint).resolve()
    path = ZOO_DIR / f"{checkpoint.stem}.yaml"
    return path if checkpoint.parent == ZOO_DIR.resolve() and path.is_file() else None


def _num(value) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) else "?"


def _row(path: Path) -> list[str]:
    """One table row from a checkpoint's metadata ('?' where a foreign file lacks a field)."""
    md = load_checkpoint(path).metadata
    cfg = _mapping(md.get("train_config"))
    m = {k: v for k, v in _mapping(md.get("metrics")).items() if isinstance(v, (int, float))}
    metric = md.get("metric", "?")
    extra = ", ".join(f"{k}={v:.4g}" for k, v in m.items() if k.startswith(f"test_{metric}_") or k == "test_frame_acc")
    hw = md.get("hardware_mappable")
    return [
        path.stem,
        str(md.get("task", "?")),
        str(cfg.get("cell", "?")),
        str(cfg.get("d", "?")),
        str(cfg.get("layers", "?")),
        {True: "yes", False: "no"}.get(hw, "?"),
        metric,
        _num(m.get(f"val_{metric}")),
        _num(m.get(f"test_{metric}")),
        extra or "-",
        str(md.get("best_step", "?")),
        f"{path.stat().st_size / 1024:.1f}",
    ]


def _mapping(value) -> dict:
    """A metadata field that should be an object; anything else (a foreign file's) reads as empty."""
    return value if isinstance(value, dict) else {}


HEADER = ["model", "task", "cell", "d", "layers", "hardware", "metric", "val", "test", "more (test)", "best step", "KB"]


def table_rows(paths=None) -> list[list[str]]:
    return [_row(p) for p in (shipped() if paths is None else paths)]


def markdown_table(rows) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)
