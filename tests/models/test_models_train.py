"""Training and the CLI: the loss falls, runs are bit-reproducible, bad input exits with status 2."""

import json

import pytest

from models import checkpoint as ck
from models.cli import main
from models.train import TrainConfig, train

CFG = TrainConfig(task="digits_rows", cell="fq_bmru", d=4, steps=300, eval_every=100, lr=1e-2, eps_hold=0, eps_decay=0)


@pytest.fixture(scope="module")
def run():
    return train(CFG, progress=False)


def test_short_training_run_reduces_loss(run):
    assert run.losses[-1] < 0.8 * run.losses[0]
    md = run.checkpoint.metadata
    assert md["metrics"]["test_acc"] > 0.3  # chance is 0.1


def test_same_seed_gives_same_checkpoint_bytes(run):
    again = train(CFG, progress=False)
    assert ck.encode(again.checkpoint) == ck.encode(run.checkpoint)


def test_cli_eval_zoo_and_errors(tmp_path, run, capsys):
    path = tmp_path / "m.ckpt"
    ck.save_checkpoint(path, run.checkpoint)
    assert main(["eval", str(path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["metrics"]["test_acc"] == run.checkpoint.metadata["metrics"]["test_acc"]
    assert main(["zoo", "--dir", str(tmp_path)]) == 0
    assert "digits_rows" in capsys.readouterr().out
    (tmp_path / "bad.ckpt").write_bytes(b"garbage")
    assert main(["eval", str(tmp_path / "bad.ckpt")]) == 2
    assert "BadMagic" in capsys.readouterr().err
    assert main(["zoo", "--dir", str(tmp_path / "empty")]) == 2
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--task", "nope", "--cell", "fq_bmru", "--d", "4", "-o", "x"])
    assert exit_info.value.code == 2
    assert main(["train", "--task", "flipflop", "--cell", "fq_bmru", "--d", "0", "-o", "x"]) == 2
