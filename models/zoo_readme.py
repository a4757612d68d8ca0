"""Render models/zoo/README.md from the shipped checkpoints' own metadata (no hand-typed numbers)."""

from __future__ import annotations

from models.catalog import ZOO, ZOO_DIR, markdown_table, table_rows

INTRO = """# Model zoo

Trained checkpoints in the `.ckpt` format of `models/checkpoint.py` (see `models/README.md`).
Every number below is read from the checkpoint's own metadata, measured on the fixed splits of
`models.tasks.get_task` when the checkpoint was saved. Regenerate everything with

    python -m models build-zoo          # retrains every entry of models/catalog.py (ZOO)
    python -m models zoo                # prints this table from the files
    python -m models eval models/zoo/<name>.ckpt   # re-measures one model on its test split

"hardware" = only layers the circuit library maps (FQ cells, linear, ReLU, add, mean_time).
Metrics: `acc` = accuracy (higher is better; last-frame accuracy for `event_count`, per-frame bit
accuracy for `flipflop`), `mae` = mean absolute error at the last frame (lower is better; the
`mae_T256` / `mae_T1024` columns are the same model on longer sequences than it was trained on).

**Reproducibility.** Training is deterministic: retraining an entry with the same seed on the same
software stack gives the same checkpoint bytes, so the tolerance is 0 there; on another
jax/jaxlib/CPU the stated tolerance is 0.02 absolute on the test metric (the check is
`tests/models/test_models_zoo.py::test_retraining_reproduces_metric`, marked slow).
CI re-evaluates the shipped files on their test split instead of retraining them.
"""


def write_readme() -> None:
    names = [n for n in ZOO if (ZOO_DIR / f"{n}.ckpt").exists()]
    rows = table_rows([ZOO_DIR / f"{n}.ckpt" for n in names])
    configs = "\n".join(f"- `{n}`: `{ZOO[n]}`" for n in names)
    text = f"{INTRO}\n## Models\n\n{markdown_table(rows)}\n\n## Training configurations\n\n{configs}\n"
    (ZOO_DIR / "README.md").write_text(text)
