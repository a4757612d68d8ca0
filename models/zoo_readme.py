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


# (zoo entry, target on the test metric, what the target is compared with)
TARGETS = [
    ("fq_bmru_d8_digits_rows", 0.85, "FQ-BMRU d=8, row-by-row digits"),
    ("fq_bmru_d16_digits_rows", 0.90, "FQ-BMRU d=16, row-by-row digits"),
]

NOTES = """
## Notes on the targets

- The memoryless baseline of the issue ("about 77 %") was not reproduced with the definition given:
  a logistic regression on the time average of the row-by-row input (8 column means) scores about
  0.53 on this test split (`python -m models compare` prints it as "Memoryless baseline").
- What limits the FQ-BMRU on digits: every unit holds one bit, and mean-over-time pooling of a
  linear readout only sees how long each bit was on. A 32-wide linear+ReLU head on the residual
  stream (hardware-mappable: a mirror array and diode rectifiers) lets the per-frame logits combine
  latched bits with the current row; that took d = 8 from about 0.71 to about 0.85 on test.
- eps-annealing (eps = 1 -> 0) is implemented and used for the symmetric BMRU and for FQ-BMRU on
  flip-flop / event counting, but on digits the annealed runs fitted well at eps = 1 (loss about
  0.16) and then lost most of it as eps went to 0 (test about 0.76-0.79 with the head); training the
  deployed bistable cell from the start was better. Counting (`event_count`) needs a counter: the
  FQ-CMRU solves it, the FQ-BMRU cannot count beyond one.
- Test splits are small (digits: 360 images, so 1 image = 0.28 %), validation 180 images.
"""


def _targets() -> str:
    lines = ["| model | target (test acc) | measured | status |", "|---|---|---|---|"]
    for name, target, label in TARGETS:
        path = ZOO_DIR / f"{name}.ckpt"
        if not path.exists():
            continue
        from models.checkpoint import load_checkpoint

        value = load_checkpoint(path).metadata["metrics"]["test_acc"]
        status = "met" if value >= target else "missed"
        lines.append(f"| {label} | >= {target:.2f} | {value:.4f} | {status} |")
    return "\n".join(lines)


def write_readme() -> None:
    names = [n for n in ZOO if (ZOO_DIR / f"{n}.ckpt").exists()]
    rows = table_rows([ZOO_DIR / f"{n}.ckpt" for n in names])
    configs = "\n".join(f"- `{n}`: `{ZOO[n]}`" for n in names)
    text = (f"{INTRO}\n## Models\n\n{markdown_table(rows)}\n\n## Targets\n\n{_targets()}\n"
            f"{NOTES}\n## Training configurations\n\n{configs}\n")
    (ZOO_DIR / "README.md").write_text(text)
