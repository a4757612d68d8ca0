"""`python -m models` on bad input: a named error and exit status 2 before any work, bounded
messages, no partial output; Ctrl-C ends with "interrupted" and status 130; checkpoints refuse what
they cannot use."""

import gc
import json
import math
import os
import signal
import struct
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import models.train
from models import checkpoint as ck
from models import cli
from models.backbone import build_graph
from models.evaluate import evaluate_checkpoint
from models.network import init_arrays
from models.tasks import SHAPES, TASKS
from models.train import INT_RANGES, NOT_OPTIONS, BadTrainConfig, TrainConfig, config_from_metadata

ROOT = Path(__file__).resolve().parents[2]
ZOO = ROOT / "models" / "zoo"
TRAIN = ["train", "--task", "flipflop", "--cell", "fq_bmru", "--d", "2", "--steps", "1", "-q"]
MESSAGE_LIMIT = 1000  # longest error message a bad input may produce
_PROPS = settings(
    max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture
def no_training(monkeypatch):
    """Make any training run fail the test: bad input must be refused before training starts."""

    def refuse(*args, **kwargs):
        raise AssertionError("training started on bad input")

    monkeypatch.setattr(models.train, "train", refuse)


def _fails_cleanly(argv, capsys, error: str) -> str:
    """Run the CLI; assert exit status 2 with the named error and a bounded message; return it."""
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert f"error: {error}: " in err and "Traceback" not in err
    assert len(err) < MESSAGE_LIMIT
    return err


# ---------------------------------------------------------------------------- output paths


def _output_cases(tmp_path) -> dict:
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "a_dir").mkdir()
    return {
        "missing directory": tmp_path / "missing" / "m.ckpt",
        "a directory": tmp_path / "a_dir",
        "parent is a file": tmp_path / "a_file" / "m.ckpt",
        "trailing slash": f"{tmp_path}/new/",
    }


@pytest.mark.parametrize("case", ["missing directory", "a directory", "parent is a file", "trailing slash"])
def test_train_refuses_an_unwritable_output_before_training(tmp_path, capsys, no_training, case):
    path = _output_cases(tmp_path)[case]
    before = sorted(p.name for p in tmp_path.rglob("*"))
    _fails_cleanly(TRAIN + ["-o", str(path)], capsys, "OutputPathError")
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_train_refuses_a_read_only_directory(tmp_path, capsys, no_training, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    if os.access(locked, os.W_OK):  # root writes anywhere: let the directory look read-only
        monkeypatch.setattr(ck.os, "access", lambda path, mode: False)
    err = _fails_cleanly(TRAIN + ["-o", str(locked / "m.ckpt")], capsys, "OutputPathError")
    assert "not writable" in err


def test_compare_refuses_an_unwritable_output_before_running(tmp_path, capsys, monkeypatch):
    import models.compare

    monkeypatch.setattr(models.compare, "run_comparison", lambda *a, **k: pytest.fail("ran"))
    _fails_cleanly(["compare", "-o", str(tmp_path / "missing" / "t.md")], capsys, "OutputPathError")


def _small_checkpoint(n_in=4, n_out=2, pool=False, task="flipflop"):
    graph = build_graph("fq_bmru", n_in, 2, n_out, pool=pool)
    return ck.Checkpoint(graph, init_arrays(graph, 0), {"task": task})


@pytest.mark.parametrize("failure", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_a_failed_write_keeps_the_previous_checkpoint_and_leaves_no_temporary(tmp_path, monkeypatch, failure):
    path = tmp_path / "m.ckpt"
    path.write_bytes(b"previous")

    def fail(*args):
        raise failure

    monkeypatch.setattr(ck.os, "replace", fail)
    expected = ck.OutputPathError if isinstance(failure, OSError) else KeyboardInterrupt
    with pytest.raises(expected):
        ck.save_checkpoint(path, _small_checkpoint())
    assert path.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["m.ckpt"]


# ---------------------------------------------------------------------------- option values


def _out_of_range(key):
    lo, hi = INT_RANGES[key]
    return st.one_of(st.integers(max_value=lo - 1), st.integers(min_value=hi + 1), st.just(10**3999))


_INT_OPTIONS = sorted(set(INT_RANGES) - NOT_OPTIONS)  # the integer options of `train`
_BAD_LR = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf, 0.0]),
    st.floats(max_value=0.0),
    st.floats(min_value=1.0, exclude_min=True),
)


@_PROPS
@given(st.data())
def test_out_of_range_options_are_named_errors_before_training(capsys, no_training, data):
    key = data.draw(st.sampled_from(_INT_OPTIONS + ["lr"]))
    value = data.draw(_BAD_LR if key == "lr" else _out_of_range(key))
    flag = "--" + key.replace("_", "-")
    err = _fails_cleanly(TRAIN + [f"{flag}={value}", "-o", "unused.ckpt"], capsys, "BadTrainConfig")
    assert flag in err


def test_a_number_too_long_to_parse_gets_a_bounded_usage_message(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(TRAIN + ["--steps", "9" * 5000, "-o", "unused.ckpt"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--steps" in err and "9" * 100 not in err and len(err) < 2500


@pytest.mark.parametrize("flag", ["--task", "--cell"])
def test_an_unknown_choice_is_echoed_bounded(capsys, flag):
    argv = ["train", "--task", "flipflop", "--cell", "fq_bmru", "--d", "2", "-o", "x.ckpt"]
    argv[argv.index(flag) + 1] = "n" * 10_000
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    assert "n" * 100 not in capsys.readouterr().err


def test_train_config_refuses_non_finite_and_unknown_values():
    for bad in (
        {"lr": math.nan},
        {"weight_decay": math.inf},
        {"clip": 0.0},
        {"eval_every": 0},
        {"task": "nope"},
        {"cell": ["fq_bmru"]},
        {"d": True},
        {"mlp": "yes"},
    ):
        with pytest.raises(BadTrainConfig):
            TrainConfig(**{"task": "flipflop", "cell": "fq_bmru", "d": 2, **bad})


def test_stored_train_config_that_does_not_fit_is_a_named_error():
    with pytest.raises(BadTrainConfig, match="no 'train_config'"):
        config_from_metadata({})
    with pytest.raises(BadTrainConfig, match="does not fit"):
        config_from_metadata({"train_config": {"task": "flipflop", "cell": "fq_bmru", "d": 2, "x" * 500: 1}})


def test_divergence_is_a_named_error_and_writes_nothing(tmp_path, capsys, monkeypatch):
    def diverged(graph, seed):
        return {k: np.full_like(v, np.nan) for k, v in init_arrays(graph, seed).items()}

    monkeypatch.setattr(models.train, "init_arrays", diverged)
    err = _fails_cleanly(TRAIN + ["-o", str(tmp_path / "m.ckpt")], capsys, "TrainingDiverged")
    assert "lower --lr" in err and not list(tmp_path.iterdir())


# ---------------------------------------------------------------------------- reading checkpoints


def _load_in_thread(path, timeout=20.0):
    """load_checkpoint(path)'s exception, failing (not hanging) if the call blocks."""
    outcome = {}

    def target():
        try:
            ck.load_checkpoint(path)
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        with open(path, "wb"):  # a writer releases a reader blocked on a FIFO
            pass
        pytest.fail(f"load_checkpoint({path}) blocked")
    return outcome.get("error")


def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "x.ckpt"
    os.mkfifo(fifo)
    error = _load_in_thread(fifo)
    assert isinstance(error, ck.CheckpointError) and "not a regular file" in str(error)


@pytest.mark.parametrize("path", ["/dev/zero", "."])
def test_devices_and_directories_are_refused(path):
    with pytest.raises(ck.CheckpointError, match="not a regular file"):
        ck.load_checkpoint(path)


def test_an_oversized_file_is_refused_before_it_is_read(tmp_path, monkeypatch):
    big = tmp_path / "big.ckpt"
    with open(big, "wb") as fh:
        fh.truncate(ck.MAX_FILE_BYTES + 1)  # sparse: no disk space used
    monkeypatch.setattr(ck.os, "fdopen", lambda *a, **k: pytest.fail("read an oversized file"), raising=True)
    with pytest.raises(ck.CorruptCheckpoint, match="byte limit"):
        ck.load_checkpoint(big)


def _with_task(path: Path, task, out: Path) -> Path:
    """A copy of a checkpoint whose metadata names another task."""
    data = path.read_bytes()
    n = struct.unpack_from("<Q", data, 12)[0]
    header = json.loads(data[20 : 20 + n])
    header["metadata"]["task"] = task
    raw = json.dumps(header).encode()
    out.write_bytes(data[:12] + struct.pack("<Q", len(raw)) + raw + data[20 + n :])
    return out


def _zoo_task_pairs():
    """(zoo checkpoint, another task whose input width or readout differs from its own)."""
    pairs = []
    for path in sorted(ZOO.glob("*.ckpt")):
        own = SHAPES[ck.load_checkpoint(path).metadata["task"]]
        pairs += [
            (path.name, task) for task, shape in SHAPES.items() if (shape.n_in, shape.pool) != (own.n_in, own.pool)
        ]
    return pairs


@_PROPS
@given(st.sampled_from(_zoo_task_pairs()))
def test_a_task_the_network_cannot_take_is_refused_at_load(tmp_path_factory, pair):
    name, task = pair
    path = _with_task(ZOO / name, task, tmp_path_factory.mktemp("t") / "x.ckpt")
    with pytest.raises(ck.TaskMismatch) as info:
        ck.load_checkpoint(path)
    own = ck.network_shape(ck.load_checkpoint(ZOO / name).graph)
    message = str(info.value)
    assert repr(task) in message
    if own.n_in != SHAPES[task].n_in:
        assert f"is {own.n_in} wide" in message and f"gives {SHAPES[task].n_in}" in message


def test_eval_on_a_mismatched_task_exits_2(tmp_path, capsys):
    path = _with_task(ZOO / "fq_bmru_d4_flipflop.ckpt", "copy_first", tmp_path / "x.ckpt")
    err = _fails_cleanly(["eval", str(path)], capsys, "TaskMismatch")
    assert "is 4 wide" in err and "gives 2" in err


def test_eval_refuses_a_network_with_another_output_width():
    ckpt = ck.decode(ck.encode(_small_checkpoint(n_in=8, n_out=3, pool=True, task="digits_rows")))
    with pytest.raises(ck.TaskMismatch, match="output is 3 wide .* scores 10"):
        evaluate_checkpoint(ckpt)


@pytest.mark.parametrize("task", [["flipflop"], 7, {"name": "flipflop"}])
def test_a_task_that_is_not_a_name_is_refused(tmp_path, task):
    path = tmp_path / "x.ckpt"
    ck.save_checkpoint(path, _small_checkpoint())
    with pytest.raises(ck.CorruptCheckpoint, match="not a task name"):
        ck.load_checkpoint(_with_task(path, task, tmp_path / "y.ckpt"))


def test_every_task_shape_matches_its_data():
    from models.tasks import get_task

    assert TASKS == tuple(SHAPES)
    for name in TASKS:
        task = get_task(name)
        assert (task.n_in, task.n_out, task.pool) == tuple(vars(SHAPES[name]).values())
        assert task.test.x.shape[-1] == SHAPES[name].n_in


# ---------------------------------------------------------------------------- other bad input


BAD_INPUT = {  # case: (arguments, with {d} a directory holding the files below; named error;
    # what the message says)
    "eval missing file": ("eval {d}/absent.ckpt", "CheckpointError", "No such file"),
    "eval a directory": ("eval {d}", "CheckpointError", "not a regular file"),
    "eval an empty file": ("eval {d}/empty.ckpt", "BadMagic", "not a checkpoint"),
    "eval a non-UTF-8 file": ("eval {d}/latin1.ckpt", "BadMagic", "not a checkpoint"),
    "zoo --dir a file": ("zoo --dir {d}/plain.txt", "BadOption", "is not a directory"),
    "zoo --dir missing": ("zoo --dir {d}/absent", "BadOption", "is not a directory"),
    "zoo --dir without checkpoints": ("zoo --dir {d}/none", "BadOption", "no checkpoints"),
    "build-zoo unknown entry": ("build-zoo --only " + "z" * 5000, "BadOption", "unknown zoo"),
    "compare --seeds 0": ("compare --seeds 0", "BadOption", "[1, 100]"),
    "compare huge --seeds": ("compare --seeds " + "9" * 4000, "BadOption", "[1, 100]"),
    "compare --sizes 0": ("compare --sizes 0", "BadOption", "[1, 1024]"),
    "compare huge --sizes": ("compare --sizes 8 99999", "BadOption", "[1, 1024]"),
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_other_bad_input_is_a_named_error(tmp_path, capsys, no_training, monkeypatch, case):
    import models.compare

    monkeypatch.setattr(models.compare, "run_comparison", lambda *a, **k: pytest.fail("ran"))
    (tmp_path / "empty.ckpt").write_bytes(b"")
    (tmp_path / "latin1.ckpt").write_bytes("Müller".encode("latin-1") * 10)
    (tmp_path / "plain.txt").write_text("x")
    (tmp_path / "none").mkdir()
    arguments, error, says = BAD_INPUT[case]
    assert says in _fails_cleanly(arguments.format(d=tmp_path).split(), capsys, error)


def test_a_checkpoint_file_name_is_echoed_bounded(tmp_path, capsys):
    err = _fails_cleanly(["eval", str(tmp_path / ("n" * 200 + ".ckpt"))], capsys, "CheckpointError")
    assert "n" * 100 not in err


# ---------------------------------------------------------------------------- Ctrl-C


def _main_catching_interrupts(argv) -> int:
    """cli.main(argv), failing the test (instead of stopping pytest) if Ctrl-C escapes it."""
    try:
        return cli.main(argv)
    except KeyboardInterrupt:
        pytest.fail("KeyboardInterrupt escaped main")


@pytest.mark.parametrize("command", ["train", "eval"])
def test_ctrl_c_prints_interrupted_exits_130_and_writes_nothing(tmp_path, capsys, monkeypatch, command):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(models.train, "train", interrupt)
    monkeypatch.setattr("models.evaluate.evaluate_checkpoint", interrupt)
    argv = (
        TRAIN + ["-o", str(tmp_path / "m.ckpt")]
        if command == "train"
        else ["eval", str(ZOO / "fq_bmru_d4_flipflop.ckpt")]
    )
    assert _main_catching_interrupts(argv) == cli.EXIT_INTERRUPTED == 130
    captured = capsys.readouterr()
    assert captured.err == "interrupted\n" and captured.out == ""
    assert not list(tmp_path.iterdir())


def test_ctrl_c_swallowed_by_a_gc_callback_still_stops_the_command(capsys, monkeypatch):
    """Python drops a KeyboardInterrupt raised in a garbage-collector callback; it is delivered
    again, so the command stops instead of finishing."""

    def eval_interrupted_in_gc(args):
        def callback(phase, info):
            gc.callbacks.remove(callback)
            raise KeyboardInterrupt

        gc.callbacks.append(callback)
        gc.collect()
        for _ in range(10**9):  # the interrupt arrives again while the command runs
            pass
        print("finished")
        return 0

    monkeypatch.setattr(cli, "_cmd_eval", eval_interrupted_in_gc)
    # Python's Ctrl-C handling even where the runner was started with SIGINT ignored (a background job)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        assert _main_catching_interrupts(["eval", "x.ckpt"]) == 130
    finally:
        signal.signal(signal.SIGINT, previous)
    captured = capsys.readouterr()
    assert "finished" not in captured.out and captured.err.endswith("interrupted\n")


def test_sigint_to_a_real_training_run(tmp_path):
    """A real Ctrl-C (SIGINT) to `python -m models train`, whatever it is doing at the time."""
    out = tmp_path / "m.ckpt"
    # `python -m models` with Python's Ctrl-C handling even where the test runner ignores SIGINT
    program = (
        "import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "runpy.run_module('models', run_name='__main__', alter_sys=True)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", program, *TRAIN[:-3], "--steps", "100000", "-q", "-o", str(out)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        proc.communicate(timeout=4)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert stderr.strip().endswith("interrupted") and "Traceback" not in stderr
    assert not list(tmp_path.iterdir())


def test_sigterm_unwinds_like_ctrl_c_and_the_handler_is_restored(monkeypatch):
    """SIGTERM raises SystemExit(143) inside the command, so `finally` clean-ups (a checkpoint's
    temporary file) run; the process's own SIGTERM handler is back afterwards."""

    def terminated(args):
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(10**9):  # the signal is handled here
            pass
        return 0

    def not_unwound(signum, frame):
        raise AssertionError("main did not handle SIGTERM")

    monkeypatch.setattr(cli, "_cmd_eval", terminated)
    previous = signal.signal(signal.SIGTERM, not_unwound)
    try:
        with pytest.raises(SystemExit) as info:
            cli.main(["eval", "x.ckpt"])
        assert info.value.code == 143
        assert signal.getsignal(signal.SIGTERM) is not_unwound
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_results_file_of_other_lines_is_a_named_error(tmp_path, capsys):
    (tmp_path / "r.jsonl").write_text('{"task": "digits_rows"}\nnot json\n')
    out = tmp_path / "t.md"
    _fails_cleanly(
        ["compare", "-o", str(out), "--results", str(tmp_path / "r.jsonl"), "--render-only"], capsys, "BadResults"
    )


def test_a_foreign_checkpoints_odd_metadata_still_lists(tmp_path, capsys):
    from models.backbone import build_graph
    from models.catalog import _row
    from models.checkpoint import Checkpoint, save_checkpoint
    from models.network import init_arrays

    graph = build_graph("fq_bmru", 8, 4, 10, layers=1, pool=True)
    path = tmp_path / "odd.ckpt"
    save_checkpoint(
        path, Checkpoint(graph, init_arrays(graph, 0), {"task": "digits_rows", "metrics": [1, 2], "train_config": "x"})
    )
    assert _row(path)[0] == "odd"
