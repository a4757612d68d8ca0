"""Run ngspice in batch mode as a subprocess and read its binary raw file into numpy.

A subprocess (not the shared library) keeps us independent of libngspice's ABI and of the Python
bindings' version quirks. Every deck gets the simulator options that sub-nA work needs (DOMAIN.md
section 5) and only the sky130 model files its devices use. Results go through `SimCache`, keyed on
everything that can change them, so an unchanged simulation never runs twice.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from compiler.errors import (ConvergenceError, NetlistError, NgspiceNotFound, SimulationError, SimulationKilled,
                             SimulationTimeout, UsageError)
from compiler.pdk import ModelLibrary, devices_in, find_models
from compiler.simcache import SimCache, default_cache

MANDATORY_OPTIONS = ".option gmin=1e-15 abstol=1e-15 reltol=1e-4 method=gear"
# Read by ngspice before it parses a deck. The sky130 devices are subcircuits holding ~180 binned models
# each; in ngspice's default mode their expansion grows faster than quadratically with the instance count
# (100 nfets: ~40 s), in HSPICE-compatibility mode about linearly (~2 s), with identical results
# (tests/test_ngspice.py checks both).
SPICEINIT = "set ngbehavior=hsa\n"
INSTALL_HINT = "install it with `sudo apt-get install ngspice` (Debian/Ubuntu) or run `make setup`"


CORES_VARIABLE = "FQRNN_NGSPICE_CORES"  # cores one command's ngspice runs share (default: those it may use)


def threads_per_process(jobs: int) -> int:
    """OpenMP threads (sky130's BSIM4 device evaluation) for each of `jobs` ngspice processes at once:
    the cores, shared out. ngspice sets its own count (2 unless `set num_threads`) and ignores
    OMP_NUM_THREADS; two 2-thread runs on 2 cores spin against each other (a 3-s deck took 22 s).
    The count does not change results (raw files identical), so it is not in the cache key."""
    return max(1, available_cores() // max(1, jobs))


def available_cores() -> int:
    """$FQRNN_NGSPICE_CORES, else the CPUs this process may run on (its affinity, not the host's count)."""
    value = os.environ.get(CORES_VARIABLE, "").strip()
    if value:
        if not value.isdigit() or int(value) < 1:
            raise UsageError(f"{CORES_VARIABLE}={value!r} is not a positive whole number of cores; set it to "
                             "e.g. 1 for each of two commands that simulate at once on 2 cores, or unset it.")
        return int(value)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


_CONVERGENCE = re.compile(
    r"timestep too small|no convergence|gmin stepping failed|source stepping failed|"
    r"transient op failed|op failed|singular matrix",
    re.IGNORECASE,
)
_ERROR = re.compile(r"^\s*(error\b.*|.*\berror:.*|unknown (subckt|model|device).*)$", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True)
class Stimulus:
    """A piecewise-linear source: `kind` 'I' drives current from `plus` through the source to `minus`."""

    name: str
    plus: str
    minus: str
    times: tuple[float, ...]
    values: tuple[float, ...]
    kind: str = "I"

    def card(self) -> str:
        points = " ".join(f"{t:.9g} {v:.9g}" for t, v in zip(self.times, self.values))
        return f"{self.kind}{self.name} {self.plus} {self.minus} PWL({points})"


@dataclass(frozen=True)
class Simulation:
    """One ngspice run: a circuit with its analyses, how to load models, and run limits.

    `circuit` holds elements, subcircuits, `.save` lines and analysis cards (no `.end`).
    `models` is 'sliced' (only the devices used), 'full' (the whole library section, slow) or 'none'.
    `mc_seed` turns on the PDK's mismatch Monte Carlo with that random seed.
    """

    circuit: str
    title: str = "fqrnn simulation"
    corner: str = "tt"
    temp: float = 27.0
    models: str = "sliced"
    mc_seed: int | None = None
    stimuli: tuple[Stimulus, ...] = ()
    options: str = MANDATORY_OPTIONS
    timeout: float = 600.0

    def deck(self, library: ModelLibrary | None = None) -> str:
        """The complete ngspice input file."""
        lines = [f"* {self.title}", self.options]
        if self.mc_seed is not None:
            lines.append(f".option seed={int(self.mc_seed)}")
        lines.append(f".temp {self.temp:g}")
        devices = devices_in(self.circuit)
        if self.models != "none" and devices:
            library = library or find_models()
            if self.models == "full":
                lines.append(f".param mc_mm_switch={int(self.mc_seed is not None)}")
                lines.append(library.full_block(self.corner).rstrip())
            elif self.models == "sliced":
                lines.append(library.model_block(devices, self.corner, self.mc_seed is not None).rstrip())
            else:
                raise ValueError(f"models must be 'sliced', 'full' or 'none', not {self.models!r}")
        lines.append(self.circuit.rstrip())
        lines.extend(s.card() for s in self.stimuli)
        lines.append(".end")
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Plot:
    """One analysis of a raw file: its name and its vectors (the scale vector first)."""

    name: str
    vectors: dict[str, np.ndarray]


@dataclass(frozen=True)
class SimResult:
    plots: tuple[Plot, ...]
    log: str
    ngspice_version: str
    wall_time: float
    cached: bool = False
    key: str = ""

    def __getitem__(self, name: str) -> np.ndarray:
        """A vector of the last analysis, by its ngspice name (case-insensitive), e.g. 'v(out)'."""
        return self.vector(name)

    def vector(self, name: str, plot: int | str = -1) -> np.ndarray:
        """A vector by name from a plot given by index or by its name (ngspice orders analyses itself)."""
        chosen = self.plot(plot) if isinstance(plot, str) else self.plots[plot]
        key = name.lower()
        if key not in chosen.vectors:
            raise KeyError(f"no vector {name!r} in plot {chosen.name!r}; have {sorted(chosen.vectors)}")
        return chosen.vectors[key]

    def plot(self, name: str) -> Plot:
        """The plot whose name is `name`, e.g. 'Operating Point', 'DC transfer characteristic'."""
        for candidate in self.plots:
            if candidate.name.lower() == name.lower():
                return candidate
        raise KeyError(f"no plot {name!r}; have {[p.name for p in self.plots]}")


@dataclass
class Runner:
    """Runs simulations, through the cache, one or many at a time. A subclass overriding `run` passes its
    keyword arguments on (run_many hands each simulation its thread share)."""

    cache: SimCache | None = field(default_factory=default_cache)
    library: ModelLibrary | None = None
    executable: str = "ngspice"
    spiceinit: str = SPICEINIT
    timeout: float | None = None  # s, caps every simulation's own limit (a sweep's budget per simulation)
    threads: int | None = None    # OpenMP threads per ngspice; None: the cores, shared among the runs at once

    def __post_init__(self):
        if self.threads is not None and self.threads < 1:
            raise UsageError(f"Runner threads must be at least 1 (or None to share the cores out), not {self.threads}")

    def run(self, sim: Simulation, threads: int | None = None) -> SimResult:
        """One simulation, from the cache when it holds it; `threads` (run_many's share) yields to self.threads."""
        version = ngspice_version(self.executable)
        library = self.library or (find_models() if sim.models != "none" else None)
        deck = sim.deck(library)
        key = self.cache.key(self.spiceinit + deck, version) if self.cache else ""
        if self.cache:
            hit = self.cache.get(key)
            if hit is not None:
                log, raw, wall = hit
                return SimResult(parse_raw(raw), log, version, wall, cached=True, key=key)
        timeout = sim.timeout if self.timeout is None else min(sim.timeout, self.timeout)
        threads = self.threads or threads or threads_per_process(1)
        spiceinit = f"{self.spiceinit.rstrip()}\nset num_threads={threads}\n".lstrip()
        log, raw, wall = _run_deck(deck, timeout, self.executable, spiceinit)
        if self.cache:
            self.cache.put(key, log, raw, wall)
        return SimResult(parse_raw(raw), log, version, wall, cached=False, key=key)

    def run_many(self, sims, jobs: int = 1, on_done=None, keep_going: bool = False) -> list:
        """Run independent simulations, `jobs` ngspice processes at a time, results in input order.

        `on_done(result)` is called as each one finishes (for a progress bar). With `keep_going`, a
        simulation that fails (SimulationError: no convergence, timeout) leaves its error in its place
        instead of discarding the others: one bad sequence must not cost an hour's sweep.
        """
        sims = list(sims)
        threads = threads_per_process(min(jobs, len(sims)))
        try:
            with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:  # each worker waits on its ngspice
                futures = [pool.submit(self.run, s, threads=threads) for s in sims]
                try:
                    for future in as_completed(futures):
                        if on_done is not None:
                            on_done(future.exception() or future.result())
                except BaseException:  # Ctrl-C or an error: stop the queue and the running ngspice processes
                    for future in futures:
                        future.cancel()
                    kill_running()
                    raise
                return [outcome(f.exception(), f.result, keep_going) for f in futures]
        finally:
            _STOPPING.clear()  # the pool has drained: later runs may start ngspice again


def outcome(error: BaseException | None, result, keep_going: bool):
    """A finished simulation's result, or with `keep_going` its SimulationError; any other error is raised."""
    if error is None:
        return result()
    if keep_going and isinstance(error, SimulationError):
        return error
    raise error


def simulate(circuit: str, **kwargs) -> SimResult:
    """Convenience: run one circuit with the default runner and cache."""
    return Runner().run(Simulation(circuit, **kwargs))


@functools.cache
def ngspice_version(executable: str = "ngspice") -> str:
    """ngspice's version and build date, e.g. 'ngspice-39 (Sun Feb  5 13:44:35 UTC 2023)'."""
    path = shutil.which(executable)
    if path is None:
        raise NgspiceNotFound(f"ngspice was not found on PATH; {INSTALL_HINT}.")
    out = subprocess.run([path, "-v"], capture_output=True, text=True, timeout=30).stdout
    name = re.search(r"(ngspice-[\w.+-]+)", out)
    built = re.search(r"Creation Date:\s*(.+)", out)
    return f"{name.group(1) if name else 'ngspice-unknown'} ({built.group(1).strip() if built else 'unknown build'})"


_RUNNING: set[int] = set()  # process groups of the ngspice processes running now
_RUNNING_LOCK = threading.Lock()
_STOPPING = threading.Event()  # set by kill_running until its sweep drains: a worker about to start
                               # ngspice kills it at once instead


def kill_running(drain: bool = True) -> None:
    """Kill every ngspice process this program started and is still waiting on and, with `drain`, any a
    worker starts until the interrupted `run_many` has drained. Each runs in its own session (so a
    timeout can kill its whole group), which also hides it from Ctrl-C and from the end of this program."""
    with _RUNNING_LOCK:
        if drain:
            _STOPPING.set()
        groups = list(_RUNNING)
    for group in groups:
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _run_deck(deck: str, timeout: float, executable: str, spiceinit: str) -> tuple[str, bytes, float]:
    path = shutil.which(executable)
    if path is None:
        raise NgspiceNotFound(f"ngspice was not found on PATH; {INSTALL_HINT}.")
    with tempfile.TemporaryDirectory(prefix="fqrnn-sim-") as tmp:
        cir, raw = Path(tmp) / "deck.cir", Path(tmp) / "out.raw"
        cir.write_text(deck)
        (Path(tmp) / ".spiceinit").write_text(spiceinit)
        start = time.perf_counter()
        proc = subprocess.Popen(
            [path, "-b", "-r", str(raw), str(cir)], cwd=tmp, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
            start_new_session=True,
        )
        with _RUNNING_LOCK:
            _RUNNING.add(proc.pid)
            if _STOPPING.is_set():  # the sweep was interrupted while this worker was preparing
                os.killpg(proc.pid, signal.SIGKILL)
        try:
            log, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise SimulationTimeout(
                f"ngspice ran longer than {timeout:g} s and was killed. Shorten the transient, loosen "
                "the time step, or raise the timeout."
            ) from None
        except BaseException:  # interrupted while waiting (Ctrl-C, SIGTERM): ngspice must not outlive it
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
        finally:
            with _RUNNING_LOCK:
                _RUNNING.discard(proc.pid)
        wall = time.perf_counter() - start
        _raise_for_failure(log, proc.returncode, deck)
        if not raw.is_file() or raw.stat().st_size == 0:
            raise NetlistError(f"ngspice wrote no results (does the deck have an analysis card?).\n{_tail(log)}")
        return log, raw.read_bytes(), wall


def _raise_for_failure(log: str, returncode: int, deck: str) -> None:
    if returncode < 0:
        raise SimulationKilled(f"ngspice was killed by {signal.Signals(-returncode).name}: the run was interrupted "
                               "or the system stopped it (out of memory?).\n" + _tail(log))
    errors = [m.group(0).strip() for m in _ERROR.finditer(log)]
    if _CONVERGENCE.search(log) and (returncode != 0 or "simulation(s) aborted" in log.lower()):
        raise ConvergenceError(
            "ngspice did not converge: "
            + "; ".join(sorted({m.group(0) for m in _CONVERGENCE.finditer(log)}))
            + ". Check for floating nodes, add initial conditions, or shorten the time step.\n"
            + _tail(log)
        )
    if returncode != 0 or errors:
        message = errors[0] if errors else f"ngspice exited with status {returncode}"
        line = _offending_line(message, deck)
        where = f"\n  offending line: {line}" if line else ""
        raise NetlistError(f"ngspice rejected the netlist: {message}{where}\n{_tail(log)}")


def _offending_line(message: str, deck: str) -> str | None:
    """The deck line an ngspice error is about: it names the instance, or quotes the line."""
    words = set(re.findall(r"[\w.#]+", message.lower()))
    for line in deck.splitlines():
        first = line.split()[0].lower() if line.split() else ""
        if first and not first.startswith((".", "*", "+")) and first in words:
            return line.strip()
    return None


def _tail(log: str, lines: int = 15) -> str:
    kept = [line for line in log.splitlines() if line.strip()]
    return "ngspice said:\n  " + "\n  ".join(kept[-lines:])


def parse_raw(data: bytes) -> tuple[Plot, ...]:
    """Parse an ngspice binary raw file (one or more plots, real or complex)."""
    plots, pos = [], 0
    while pos < len(data):
        end = data.find(b"Binary:\n", pos)
        if end < 0:
            break
        header = data[pos:end].decode("latin-1")
        fields, names, in_vars = {}, [], False
        for line in header.splitlines():
            if in_vars and line.startswith(("\t", " ")):
                names.append(line.split()[1].lower())
                continue
            in_vars = False
            key, _, value = line.partition(":")
            fields[key.strip().lower()] = value.strip()
            if key.strip().lower() == "variables":
                in_vars = True
        complex_ = "complex" in fields.get("flags", "")
        npoints, nvars = int(fields["no. points"]), int(fields["no. variables"])
        width = 2 if complex_ else 1
        count = npoints * nvars * width
        start = end + len(b"Binary:\n")
        values = np.frombuffer(data, dtype="<f8", count=count, offset=start).reshape(npoints, nvars * width)
        if complex_:
            values = values[:, 0::2] + 1j * values[:, 1::2]
        plots.append(Plot(fields.get("plotname", ""), {n: values[:, i].copy() for i, n in enumerate(names)}))
        pos = start + count * 8
    if not plots:
        raise NetlistError("ngspice's raw file holds no results; the deck probably has no analysis.")
    return tuple(plots)
