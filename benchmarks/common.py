"""What the benchmarks share: the run settings, builds and cold-cache verifications done once per run.

Several figures come from the same simulations (one verification times the simulator, gives the
behavioural model's speed ratio and is the cold run the cache is measured against), so each build and
each verification is done once per process and handed to every benchmark that needs it. Every
verification starts from an empty simulation cache of its own: a cached result never fakes a speedup.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from compiler.foundation.errors import SimulationError
from compiler.foundation.ngspice import Runner
from compiler.foundation.simcache import SimCache
from models.catalog import build_config

ROOT = Path(__file__).resolve().parent.parent
ZOO = ROOT / "models" / "zoo"
PUBLISHED_MODEL = "fq_bmru_d4_kws_yes"  # the keyword spotter of the published topology, next to its figures


@dataclass(frozen=True)
class Settings:
    """The size of a benchmark run: `quick` to try the runner, `default` (4 to 8 min on 2 cores), `full`."""

    corners: tuple  # model_load
    build_models: tuple  # build: zoo models built ("*" = all FQ models) ...
    drc_lvs_models: tuple  # ... and those also checked with DRC and LVS
    timing_model: str  # verification, behavioural, cache: the zoo model timed ...
    sequences: int  # ... on its first test sequences ...
    frames: int | None  # ... and their first frames (None: all)
    scaling_frames: int  # scaling: frames of the one sequence per network
    monolithic_cells: tuple  # scaling: network sizes simulated whole
    partitioned_cells: tuple  # scaling: network sizes simulated layer by layer
    zoo_figure_models: tuple  # zoo_figures: zoo models verified for power ("*" = all FQ-BMRU) ...
    figure_sequences: int  # ... on their first test sequences ...
    figure_frames: int | None  # ... and their first frames (None: all)
    cmru_limits: tuple  # cmru_limits: plans (Ks, tau / T_f values, frame periods in ms, mismatch draws)
    replay_model: tuple  # replay: zoo model, its first sequences, their first frames (None: all)

    @classmethod
    def of(cls, mode: str) -> "Settings":
        return MODES[mode]

    def command(self, benchmark: str) -> str:
        """The command line that runs one benchmark at these settings."""
        mode = next((name for name, settings in MODES.items() if settings == self), None)
        if mode is None:
            return f"benchmarks.{benchmark}.run(Settings(...)) with custom settings"
        return f"python -m benchmarks.run {benchmark}" + ("" if mode == "default" else f" --{mode}")


FLIPFLOP = "fq_bmru_d4_flipflop"
DIGITS_MODEL = "fq_bmru_d4_digits_clock"  # the d=4 sequence whose simulation cost the replay benchmark tracks
CMRU_LIMITS_FULL = (
    ((2, 4, 8, 12, 16), (0.6,), (10,), 0),
    ((4,), (0.3, 0.45, 0.9), (10,), 0),
    ((4,), (0.6,), (5, 20), 0),
    ((4, 8, 16), (0.6,), (10,), 4),
)
MODES = {
    "quick": Settings(
        ("tt",),
        (FLIPFLOP,),
        (FLIPFLOP,),
        FLIPFLOP,
        2,
        1,
        1,
        (4,),
        (4,),
        (FLIPFLOP,),
        1,
        1,
        (((2,), (0.6,), (10,), 0),),
        (FLIPFLOP, 2, 2),
    ),
    "default": Settings(
        ("tt", "ss"),
        ("*",),
        (FLIPFLOP, "fq_bmru_d8_event_count"),
        FLIPFLOP,
        2,
        1,
        1,
        (4, 16),
        (4, 16),
        (PUBLISHED_MODEL, FLIPFLOP),
        1,
        None,
        (((4,), (0.3, 0.6), (10,), 0),),
        (DIGITS_MODEL, 1, None),
    ),
    "full": Settings(
        ("tt", "ff", "ss", "sf", "fs"),
        ("*",),
        ("*",),
        PUBLISHED_MODEL,
        4,
        8,
        2,
        (4, 16, 64),
        (4, 16, 64),
        ("*",),
        8,
        None,
        CMRU_LIMITS_FULL,
        (DIGITS_MODEL, 4, None),
    ),
}


def zoo_models(chosen: tuple = ("*",), prefix: str = "fq_") -> list[Path]:
    """Zoo checkpoints whose name starts with `prefix`, all of them or the `chosen` names."""
    found = sorted(ZOO.glob(f"{prefix}*.ckpt"))
    return found if "*" in chosen else [p for p in found if p.stem in chosen]


_WORK = Path(tempfile.mkdtemp(prefix="fqrnn-bench-"))
atexit.register(shutil.rmtree, _WORK, ignore_errors=True)
_BUILDS: dict = {}
_VERIFIED: dict = {}


def workdir(name: str) -> Path:
    """A fresh directory for this run, removed at exit."""
    path = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=_WORK))
    return path


def build_command(checkpoint: str) -> str:
    """`python -m compiler build` of a zoo model's name (with the config it ships) or of a path."""
    config = build_config(ZOO / f"{checkpoint}.ckpt")
    if (ZOO / f"{checkpoint}.ckpt").is_file():
        checkpoint = f"models/zoo/{checkpoint}.ckpt"
    option = f" --config {config.relative_to(ROOT)}" if config else ""
    return f"python -m compiler build {checkpoint}{option} -o DIR"


def built(checkpoint: Path, layout: bool) -> tuple[Path, dict, float]:
    """(build directory, manifest, wall seconds) of a fresh build with its benchmark configuration, made
    once per run."""
    key = (Path(checkpoint), layout)
    if key not in _BUILDS:
        from flows.build import build

        out = workdir(Path(checkpoint).stem) / "build"
        start = time.perf_counter()
        manifest = build(checkpoint, out, build_config(checkpoint), layout=layout, log=lambda *_: None)
        _BUILDS[key] = (out, manifest, time.perf_counter() - start)
    return _BUILDS[key]


def verified(directory: Path, sequences: int, frames: int, jobs: int = 1, replay: str | None = None):
    """(verify metrics, the cache directory it filled) of a verification from an empty cache, once per run:
    of the whole netlist (`replay` None) or partitioned with that replay (flows/verify.py REPLAYS)."""
    key = (Path(directory), sequences, frames, jobs, replay)
    if key not in _VERIFIED:
        cache = workdir("cache")
        _VERIFIED[key] = (_verify(directory, sequences, frames, jobs, replay, cache), cache)
    return _VERIFIED[key]


def reverified(directory: Path, sequences: int, frames: int) -> tuple[dict, dict]:
    """(cold, repeated) metrics: a monolithic verification, then the same one again on its cache."""
    cold, cache = verified(directory, sequences, frames)
    return cold, _verify(directory, sequences, frames, 1, None, cache)


def simulation(replay: str | None) -> str:
    """How a verification simulated, for the tables: the whole netlist, or partitioned with a replay."""
    return f"partitioned, {replay} replay" if replay else "monolithic"


def _verify(directory, sequences, frames, jobs, replay, cache: Path) -> dict:
    from compiler.backends.behavioural import compiled
    from flows.verify import verify

    compiled.cache_clear()  # each verification compiles its reference, as a designer's run does
    start = time.perf_counter()
    metrics = verify(
        directory,
        sequences,
        jobs,
        frames=frames,
        partitioned=replay is not None,
        replay=replay or "held",
        runner=Runner(cache=SimCache(cache)),
        log=None,
    )
    if metrics["simulation_failures"]:  # a time over fewer simulations than asked would mislead
        raise SimulationError(
            f"{len(metrics['simulation_failures'])} simulations failed in a benchmark's "
            f"verification of {directory}: {metrics['simulation_failures'][0]['error']}"
        )
    return {**metrics, "command_s": time.perf_counter() - start}  # all of it: SPICE, reference, reports


def verify_command(
    checkpoint: str, sequences: int, frames: int, jobs: int = 1, replay: str | None = None, cache: str = "$(mktemp -d)"
) -> str:
    """The command line that measures a verification figure; `checkpoint` a zoo model's name or a path."""
    part = (" --partitioned" + (f" --replay {replay}" if replay != "held" else "")) if replay else ""
    frames = f" --frames {frames}" if frames else ""
    return (
        f"{build_command(checkpoint)} --no-layout && FQRNN_CACHE_DIR={cache} "
        f"python -m compiler verify DIR --sequences {sequences}{frames} -j {jobs}{part}"
    )


def task_frames(directory: Path) -> int:
    """Frames in one test sequence of a build's task."""
    from compiler.ir import IR
    from models.tasks import get_task

    return int(get_task(IR.from_json((Path(directory) / "ir.json").read_text()).meta["task"]).test.x.shape[1])


def whole_sequence_prediction(metrics: dict, full_frames: int, key: str = "prediction_agreement"):
    """A prediction figure of a verification (`key`: an agreement or an accuracy), None when it simulated
    fewer than the task's `full_frames`: a pooled readout predicts after the whole sequence."""
    return rounded(metrics.get(key)) if metrics["frames"] == full_frames else None


def rounded(value, digits: int = 3):
    """A figure for the tables: floats to `digits` significant digits, None and the rest unchanged."""
    if isinstance(value, float):
        return float(f"{value:.{digits}g}")
    return value
