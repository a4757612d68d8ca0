"""Run ngspice in batch mode as a subprocess and read its binary raw file into numpy.

This is the one module that writes ngspice syntax: `deck` writes the input file of a `Simulation`
(compiler/foundation/simulation.py, records of analyses, saves, initial conditions, options and stimuli)
and `SimResult` looks vectors up by the same records.

A subprocess (not the shared library) keeps us independent of libngspice's ABI and of the Python
bindings' version quirks. Every deck gets the simulator options that sub-nA work needs
(`MANDATORY_OPTIONS`: without them ngspice shows 1 % offsets and non-physical currents at pA-nA levels)
and only the sky130 model cards its devices select (their files, and in them the size bins of the
instances: compiler/foundation/pdk.py). Results go through `SimCache`, keyed on
everything that can change them, so an unchanged simulation never runs twice; a result is cached only
once its raw file has been read.

Each ngspice runs in a directory `fqrnn-sim-PID-*` of the temporary directory, PID being this program's.
ngspice dies with this program (Linux's parent-death signal) even when it is SIGKILLed, and the next run
removes the directories such a program left behind.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from compiler.foundation.errors import (
    ConvergenceError,
    NetlistError,
    NgspiceNotFound,
    SimulationError,
    SimulationKilled,
    SimulationTimeout,
    UsageError,
    shown,
)
from compiler.foundation.pdk import ModelLibrary, devices_in, find_models, sizes_in
from compiler.foundation.simcache import SimCache, default_cache
from compiler.foundation.simulation import (
    DC,
    Current,
    InitialCondition,
    Op,
    Option,
    Pwl,
    Simulation,
    Swept,
    Time,
    Tran,
    Voltage,
)

Stimulus = Pwl  # a piecewise-linear stimulus, by its other name
# The options of every deck, on one card ahead of a simulation's own.
MANDATORY = (Option("gmin", "1e-15"), Option("abstol", "1e-15"), Option("reltol", "1e-4"), Option("method", "gear"))
# Read by ngspice before it parses a deck. The sky130 devices are subcircuits holding ~180 binned models
# each; in ngspice's default mode their expansion grows faster than quadratically with the instance count,
# in HSPICE-compatibility mode about linearly, with identical results (tests/test_ngspice.py checks both;
# docs/measurements.md has the times).
SPICEINIT = "set ngbehavior=hsa\n"
INSTALL_HINT = "install it with `sudo apt-get install ngspice` (Debian/Ubuntu) or run `make setup`"


EXECUTABLE_VARIABLE = "FQRNN_NGSPICE"  # the ngspice to run, a name on PATH or a path (default: ngspice)
CORES_VARIABLE = "FQRNN_NGSPICE_CORES"  # cores one command's ngspice runs share (default: those it may use)
MAX_CORES = 1024  # the most FQRNN_NGSPICE_CORES may say: far above any one machine, low enough to catch a typo
STALE_AFTER = 3600.0  # s: a dead program's run directory younger than this is left alone (see remove_stale_runs)


class CoresSettingError(UsageError):
    """$FQRNN_NGSPICE_CORES is not a whole number of cores from 1 to MAX_CORES."""


class RawFileError(SimulationError):
    """ngspice's raw file is truncated or malformed (ngspice killed while writing it, disk full)."""


def threads_per_process(jobs: int) -> int:
    """OpenMP threads (sky130's BSIM4 device evaluation) for each of `jobs` ngspice processes at once: the
    cores, shared out; one each when FQRNN_NGSPICE_CORES is unset and the machine is already busy (its 1-min
    load average above the cores less half of one). ngspice sets its own count (2 unless `set num_threads`)
    and ignores OMP_NUM_THREADS. On an idle machine a second thread made a lone run about 1.4x faster for
    about 1.5x the CPU; beside two busy processes it made the run 4.8x slower (the threads spin at the device-load
    barrier): docs/measurements.md. The count does not change results, so it is not in the cache key."""
    share = max(1, available_cores() // max(1, jobs))
    if share > 1 and not os.environ.get(CORES_VARIABLE, "").strip() and machine_busy():
        return 1
    return share


def machine_busy() -> bool:
    """Whether other work already keeps this machine's cores busy (1-min load average)."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # no load average on this platform
        return False
    return load > available_cores() - 0.5


def available_cores() -> int:
    """$FQRNN_NGSPICE_CORES, else the CPUs this process may run on (its affinity, not the host's count)."""
    value = os.environ.get(CORES_VARIABLE, "").strip()
    if value:
        if not re.fullmatch(r"[0-9]{1,5}", value) or not 1 <= int(value) <= MAX_CORES:
            raise CoresSettingError(
                f"{CORES_VARIABLE}={shown(value)} is not a whole number of cores from 1 to {MAX_CORES}; set it "
                "to e.g. 1 for each of two commands that simulate at once on 2 cores, or unset it."
            )
        return int(value)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


_CONVERGENCE = re.compile(
    r"timestep too small|no convergence|gmin stepping failed|source stepping failed|"
    r"transient op failed|op failed|singular matrix",
    re.IGNORECASE,
)
_ERROR = re.compile(r"^\s*(error\b.*|.*\berror:.*|unknown (subckt|model|device).*)$", re.IGNORECASE | re.MULTILINE)


def deck(sim: Simulation, library: ModelLibrary | None = None) -> str:
    """The complete ngspice input file of `sim`: title, options, temperature, models, the circuit, its
    initial conditions, saves and analyses, its stimuli, `.end`."""
    seed = () if sim.mc_seed is None else (Option("seed", int(sim.mc_seed)),)
    lines = [f"* {sim.title}", MANDATORY_OPTIONS, *(options_card((o,)) for o in sim.options + seed)]
    lines.append(f".temp {sim.temp:g}")
    lines.extend(_models(sim, library))
    lines.append(sim.circuit.rstrip())
    lines.extend(initial_card(c) for c in sim.initial)
    if sim.saves:
        lines.append(".save " + " ".join(map(vector_name, sim.saves)))
    lines.extend(map(analysis_card, sim.analyses))
    lines.extend(map(source_card, sim.stimuli))
    lines.append(".end")
    return "\n".join(lines) + "\n"


def _models(sim: Simulation, library: ModelLibrary | None) -> list[str]:
    """The model cards of the devices the circuit uses: 'sliced' keeps those devices' files and only the
    bins their instance sizes select, 'files' those devices' files whole, 'full' the whole library section,
    'none' nothing."""
    devices = devices_in(sim.circuit)
    if sim.models == "none" or not devices:
        return []
    library = library or find_models()
    if sim.models == "full":
        return [f".param mc_mm_switch={int(sim.mc_seed is not None)}", library.full_block(sim.corner).rstrip()]
    mismatch = sim.mc_seed is not None
    if sim.models == "sliced":
        return [library.model_block(devices, sim.corner, mismatch, sizes=sizes_in(sim.circuit)).rstrip()]
    if sim.models == "files":
        return [library.model_block(devices, sim.corner, mismatch).rstrip()]
    raise ValueError(f"models must be 'sliced', 'files', 'full' or 'none', not {sim.models!r}")


def analysis_card(analysis: Op | Tran | DC) -> str:
    """`.op`, `.tran step stop [start [tmax]] [uic]` or `.dc source start stop step`."""
    if isinstance(analysis, Op):
        return ".op"
    if isinstance(analysis, Tran):
        times = [analysis.step, analysis.stop]
        if analysis.tmax is not None:
            times += [analysis.start, analysis.tmax]
        elif analysis.start:
            times.append(analysis.start)
        return " ".join([".tran", *(f"{t:g}" for t in times), *(["uic"] if analysis.uic else [])])
    if isinstance(analysis, DC):
        return f".dc {analysis.source} {analysis.start:g} {analysis.stop:g} {analysis.step:g}"
    raise TypeError(f"not an analysis: {analysis!r}")


def vector_name(vector: Voltage | Current | Swept | Time | str) -> str:
    """A vector as ngspice names it (text passes through): v(xnet.xc0.b), i(vdd), i(v.xnet.vprobe) for a
    source inside an instance, v(v-sweep) / i(i-sweep) for a DC sweep's value, time."""
    if isinstance(vector, str):
        return vector
    if isinstance(vector, Voltage):
        return f"v({'.'.join(vector.path)})"
    if isinstance(vector, Current):
        *within, source = vector.path
        return f"i({'.'.join([source[0], *within, source])})" if within else f"i({source})"
    if isinstance(vector, Swept):
        letter = vector.source[0].lower()
        return f"{letter}({letter}-sweep)"
    if isinstance(vector, Time):
        return "time"
    raise TypeError(f"not a vector: {vector!r}")


def initial_card(condition: InitialCondition) -> str:
    """`.ic v(node)=volts`."""
    return f".ic {vector_name(condition.node)}={condition.volts:g}"


def options_card(options: tuple[Option, ...]) -> str:
    """`.option name=value ...`: text and whole numbers as they are, other numbers in the shortest general form."""
    return " ".join(
        [
            ".option",
            *(f"{o.name}={o.value if isinstance(o.value, (str, int)) else format(o.value, 'g')}" for o in options),
        ]
    )


MANDATORY_OPTIONS = options_card(MANDATORY)


def source_card(source: Pwl) -> str:
    """A piecewise-linear source element: `I<name> plus minus PWL(t0 v0 t1 v1 ...)` (or `V<name>`)."""
    points = " ".join(f"{t:.9g} {v:.9g}" for t, v in zip(source.times, source.values))
    return f"{source.kind}{source.name} {source.plus} {source.minus} PWL({points})"


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

    def __getitem__(self, name) -> np.ndarray:
        """A vector of the last analysis: a record (voltage('out'), TIME) or its ngspice name, any case."""
        return self.vector(name)

    def vector(self, name, plot: int | str = -1) -> np.ndarray:
        """A vector, as for [], from a plot given by index or by its name (ngspice orders analyses itself)."""
        chosen = self.plot(plot) if isinstance(plot, str) else self.plots[plot]
        name = vector_name(name)
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
    executable: str = field(default_factory=lambda: default_executable())
    spiceinit: str = SPICEINIT
    timeout: float | None = None  # s, caps every simulation's own limit (a sweep's budget per simulation)
    threads: int | None = None  # OpenMP threads per ngspice; None: the cores, shared among the runs at once

    def __post_init__(self):
        if self.threads is not None and self.threads < 1:
            raise UsageError(f"Runner threads must be at least 1 (or None to share the cores out), not {self.threads}")

    def run(self, sim: Simulation, threads: int | None = None) -> SimResult:
        """One simulation, from the cache when it holds it; `threads` (run_many's share) yields to self.threads."""
        version = ngspice_version(self.executable)
        library = self.library or (find_models() if sim.models != "none" else None)
        deck = sim.deck(library)
        key = self.cache.key(self.spiceinit + deck, version) if self.cache else ""
        cached = self._cached(key, version)
        if cached is not None:
            return cached
        timeout = sim.timeout if self.timeout is None else min(sim.timeout, self.timeout)
        threads = self.threads or threads or threads_per_process(1)
        spiceinit = f"{self.spiceinit.rstrip()}\nset num_threads={threads}\n".lstrip()
        log, raw, wall = _run_deck(deck, timeout, self.executable, spiceinit)
        plots = parse_raw(raw)  # before caching: a raw file that cannot be read must not be stored
        if self.cache:
            self.cache.put(key, log, raw, wall)
        return SimResult(plots, log, version, wall, cached=False, key=key)

    def _cached(self, key: str, version: str) -> SimResult | None:
        """The cached result for `key`, or None; an entry whose raw file does not parse is dropped as corrupt."""
        hit = self.cache.get(key) if self.cache else None
        if hit is None:
            return None
        log, raw, wall = hit
        try:
            plots = parse_raw(raw)
        except (RawFileError, NetlistError):
            self.cache.discard(key)
            return None
        return SimResult(plots, log, version, wall, cached=True, key=key)

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


def default_executable() -> str:
    """The ngspice that runs: $FQRNN_NGSPICE (a newer build beside the system's, say), else `ngspice`."""
    return os.environ.get(EXECUTABLE_VARIABLE) or "ngspice"


def _found(executable: str) -> str:
    """The path of `executable`, or NgspiceNotFound saying where it was looked for."""
    path = shutil.which(executable)
    if path is None:
        where = f"${EXECUTABLE_VARIABLE} names {executable!r}, which" if executable != "ngspice" else "ngspice"
        raise NgspiceNotFound(f"{where} was not found (a path, or a name on PATH); {INSTALL_HINT}.")
    return path


@functools.cache
def ngspice_version(executable: str | None = None) -> str:
    """ngspice's version and build date, e.g. 'ngspice-39 (Sun Feb  5 13:44:35 UTC 2023)'."""
    out = subprocess.run(
        [_found(executable or default_executable()), "-v"], capture_output=True, text=True, timeout=30
    ).stdout
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
    """Run one deck in a directory of its own, waiting on ngspice until it has exited (which the
    parent-death signal of `_tied_to_this_thread` relies on): (log, raw bytes, wall time)."""
    path = _found(executable)
    _remove_stale_runs_once()
    with tempfile.TemporaryDirectory(prefix=f"{RUN_DIR_PREFIX}{os.getpid()}-") as tmp:
        cir, raw = Path(tmp) / "deck.cir", Path(tmp) / "out.raw"
        cir.write_text(deck)
        (Path(tmp) / ".spiceinit").write_text(spiceinit)
        start = time.perf_counter()
        proc = subprocess.Popen(
            _tied_to_this_thread([path, "-b", "-r", str(raw), str(cir)]),
            cwd=tmp,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
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


RUN_DIR_PREFIX = "fqrnn-sim-"
_RUN_DIR = re.compile(re.escape(RUN_DIR_PREFIX) + r"([0-9]{1,7})-\w+")


def _tied_to_this_thread(command: list[str]) -> list[str]:
    """`command` started through util-linux's `setpriv --pdeathsig KILL` where it exists (Linux), so the
    child is SIGKILLed when the thread starting it ends.

    ngspice runs in its own session, out of reach of the signals that end this program; this ties it to
    the program even through a SIGKILL. The kernel signals the death of the starting *thread*, and
    `_run_deck` waits on ngspice in that thread (run_many's workers included) until it has exited, so
    the signal fires only when this program dies. A wrapper program, not a preexec_fn: running Python in
    a child forked from a multithreaded process (JAX's) can deadlock.
    """
    setpriv = _setpriv()
    return [setpriv, "--pdeathsig", "KILL", "--", *command] if setpriv else command


@functools.cache
def _setpriv() -> str | None:
    return shutil.which("setpriv") if sys.platform.startswith("linux") else None


@functools.cache
def _remove_stale_runs_once() -> None:
    """The first run of this program clears what killed programs left behind."""
    remove_stale_runs()


def remove_stale_runs(now: float | None = None) -> list[str]:
    """Remove run directories that killed programs left in the temporary directory; their names.

    Only directories this tool names (fqrnn-sim-PID-*), owned by this user, unchanged for STALE_AFTER
    seconds and whose program (PID) no longer runs: a concurrent run's directory is never removed (the
    age also covers a program in another PID namespace sharing the directory).
    """
    now = time.time() if now is None else now
    try:
        entries = list(os.scandir(tempfile.gettempdir()))
    except OSError:
        return []
    removed = []
    for entry in entries:
        match = _RUN_DIR.fullmatch(entry.name)
        if match and _is_stale(entry, int(match.group(1)), now):
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(entry.name)
    return removed


def _is_stale(entry: os.DirEntry, owner: int, now: float) -> bool:
    try:
        info = entry.stat(follow_symlinks=False)
    except OSError:
        return False
    return (
        stat.S_ISDIR(info.st_mode)
        and info.st_uid == os.getuid()
        and now - info.st_mtime > STALE_AFTER
        and not process_exists(owner)
    )


def process_exists(pid: int) -> bool:
    """Whether a process `pid` runs (another user's included); when unsure, yes."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _raise_for_failure(log: str, returncode: int, deck: str) -> None:
    if returncode < 0:
        raise SimulationKilled(
            f"ngspice was killed by {signal.Signals(-returncode).name}: the run was interrupted "
            "or the system stopped it (out of memory?).\n" + _tail(log)
        )
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
    """Parse an ngspice binary raw file (one or more plots, real or complex). A file cut short or garbled
    (ngspice killed while writing it, disk full) is a RawFileError; one holding no analysis a NetlistError."""
    try:
        plots = _plots(data)
    except _Garbled as what:
        raise RawFileError(
            f"ngspice's raw file ({len(data)} bytes) is cut short or garbled: {what}. ngspice was "
            "probably killed while writing it, or the disk filled up; free disk space and run "
            "again."
        ) from None
    if not plots:
        raise NetlistError("ngspice's raw file holds no results; the deck probably has no analysis.")
    return plots


class _Garbled(ValueError):
    """What is wrong with a raw file, for RawFileError's message."""


def _plots(data: bytes) -> tuple[Plot, ...]:
    plots, pos = [], 0
    while pos < len(data):
        end = data.find(b"Binary:\n", pos)
        if end < 0:
            break
        plot, pos = _plot_at(data, pos, end)
        plots.append(plot)
    rest = data[pos:]
    if (plots and rest.strip()) or b"plotname:" in rest.lower():
        raise _Garbled("a plot's header has no data after it")
    return tuple(plots)


def _plot_at(data: bytes, pos: int, end: int) -> tuple[Plot, int]:
    """The plot whose header spans data[pos:end] and whose values follow it, and where the next one starts."""
    fields, names = _raw_header(data[pos:end].decode("latin-1"))
    try:
        npoints, nvars = int(fields["no. points"]), int(fields["no. variables"])
    except (KeyError, ValueError):
        raise _Garbled("a plot's header lacks its point or variable count") from None
    if npoints < 0 or nvars < 1 or nvars != len(names):
        raise _Garbled(f"a plot claims {npoints} points of {nvars} variables and names {len(names)}")
    width = 2 if "complex" in fields.get("flags", "") else 1
    start, count = end + len(b"Binary:\n"), npoints * nvars * width
    if start + 8 * count > len(data):
        raise _Garbled(f"a plot's values stop {start + 8 * count - len(data)} bytes short")
    values = np.frombuffer(data, dtype="<f8", count=count, offset=start).reshape(npoints, nvars * width)
    if width == 2:
        values = values[:, 0::2] + 1j * values[:, 1::2]
    plot = Plot(fields.get("plotname", ""), {n: values[:, i].copy() for i, n in enumerate(names)})
    return plot, start + 8 * count


def _raw_header(header: str) -> tuple[dict[str, str], list[str]]:
    """A plot header's fields (lower-case names) and its variable names, in order."""
    fields, names, in_vars = {}, [], False
    for line in header.splitlines():
        if in_vars and line.startswith(("\t", " ")):
            parts = line.split()
            if len(parts) < 2:
                raise _Garbled("a variable line has no name")
            names.append(parts[1].lower())
            continue
        key, _, value = line.partition(":")
        fields[key.strip().lower()] = value.strip()
        in_vars = key.strip().lower() == "variables"
    return fields, names
