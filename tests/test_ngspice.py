"""The ngspice runner against circuits whose answers are known by hand, and its named errors."""

import math
import os
import shutil
import signal
import threading
import time

import numpy as np
import pytest

from compiler.foundation import ngspice
from compiler.foundation.errors import (
    ConvergenceError,
    NetlistError,
    NgspiceNotFound,
    SimulationError,
    SimulationKilled,
    SimulationTimeout,
    UsageError,
)
from compiler.foundation.ngspice import MANDATORY_OPTIONS, Runner, Simulation, Stimulus, ngspice_version, parse_raw
from compiler.foundation.simcache import SimCache

U_T = 0.025865  # kT/q at 27 C
SLOW = "V1 a 0 SIN(0 1 1meg)\nR1 a b 1k\nC1 b 0 1p\n.tran 1p 1 0 1p"  # hours of time steps


def test_resistor_divider_matches_ohms_law(fresh_runner):
    result = fresh_runner.run(Simulation("V1 a 0 1.8\nR1 a b 1k\nR2 b 0 2k\n.op"))
    assert result["v(b)"][0] == pytest.approx(1.8 * 2 / 3, rel=1e-9)
    assert result["i(v1)"][0] == pytest.approx(-1.8 / 3e3, rel=1e-9)  # current into the + terminal
    assert result.ngspice_version.startswith("ngspice-")


def test_diode_connected_nfet_follows_the_subthreshold_law(fresh_runner):
    """A decade of drain current must cost n*U_T*ln(10) of gate voltage, n = 1/kappa in 1.3..1.6."""
    circuit = "XM1 d d 0 0 sky130_fd_pr__nfet_01v8 W=2 L=4\nI1 0 d 1n\n.dc I1 0.1n 10n 0.1n\n"
    result = fresh_runner.run(Simulation(circuit))
    current, vgs = result["i(i-sweep)"], result["v(d)"]
    v_1n, v_10n = np.interp([1e-9, 1e-8], current, vgs)
    slope = (v_10n - v_1n) / (U_T * math.log(10))  # the slope factor n
    assert 1.3 < slope < 1.6
    assert 0.30 < v_1n < 0.40  # weak inversion: well below the 0.58 V threshold voltage


def test_pwl_current_stimulus_charges_a_capacitor_linearly(fresh_runner):
    """1 nA into 1 pF ramps at 1 mV/us: dV = I*t/C."""
    stim = Stimulus("in", "0", "c", (0.0, 1e-6, 2e-6), (0.0, 1e-9, 1e-9))
    result = fresh_runner.run(Simulation("C1 c 0 1p\n.ic v(c)=0\n.tran 10n 2u uic", stimuli=(stim,)))
    time, volts = result["time"], result["v(c)"]
    expected = np.where(time < 1e-6, 0.5e3 * time**2 * 1e6, 0.5e-3 + 1e-3 * (time - 1e-6) * 1e6)
    assert np.max(np.abs(volts - expected)) < 1e-6


def test_ac_analysis_is_read_as_complex(fresh_runner):
    result = fresh_runner.run(Simulation("V1 a 0 dc 0 ac 1\nR1 a b 1k\nC1 b 0 1n\n.ac dec 10 1k 1meg"))
    freq, vb = result["frequency"].real, result["v(b)"]
    assert np.iscomplexobj(vb)
    expected = 1 / (1 + 2j * np.pi * freq * 1e3 * 1e-9)
    assert np.max(np.abs(vb - expected)) < 1e-6


def test_several_analyses_give_several_plots(fresh_runner):
    result = fresh_runner.run(Simulation("V1 a 0 1\nR1 a 0 1k\n.op\n.dc V1 0 1 0.5"))
    assert sorted(p.name for p in result.plots) == ["DC transfer characteristic", "Operating Point"]
    assert result.vector("v(a)", plot="DC transfer characteristic").tolist() == [0.0, 0.5, 1.0]
    assert result.vector("v(a)", plot="Operating Point").tolist() == [1.0]


@pytest.mark.tools
def test_hspice_compatibility_mode_changes_no_result(tmp_path):
    """The runner's `ngbehavior=hsa` (fast sky130 subcircuit expansion) gives the default mode's numbers."""
    circuit = (
        "XMN d g 0 0 sky130_fd_pr__nfet_01v8 W=2 L=4\nXMP d g vdd vdd sky130_fd_pr__pfet_01v8 W=2 L=4 m=3\n"
        "VDD vdd 0 1.8\nVG g 0 0.5\n.dc VG 0 1.8 0.05\n"
    )
    fast = Runner(cache=SimCache(tmp_path / "a")).run(Simulation(circuit))
    plain = Runner(cache=SimCache(tmp_path / "b"), spiceinit="").run(Simulation(circuit))
    assert fast.key != plain.key
    np.testing.assert_allclose(fast["v(d)"], plain["v(d)"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(fast["i(vdd)"], plain["i(vdd)"], rtol=1e-9, atol=1e-18)


def _thread_counts(monkeypatch) -> list:
    """The `set num_threads` of every run from now on (ngspice itself is not started)."""
    seen = []

    def fake(deck, timeout, executable, spiceinit):
        seen.append(int(spiceinit.rsplit("set num_threads=", 1)[1]))
        raise SimulationError("not run")

    monkeypatch.setattr(ngspice, "_run_deck", fake)
    return seen


@pytest.mark.tools
def test_parallel_runs_share_the_cores_out(monkeypatch):
    """ngspice's own OpenMP default (2 threads each) made two runs on 2 cores spin against each other."""
    monkeypatch.setenv(ngspice.CORES_VARIABLE, "4")
    seen, sim = _thread_counts(monkeypatch), Simulation("R1 a 0 1k\n.op", models="none")
    runner = Runner(cache=None)
    for jobs, sims in ((1, 1), (2, 4), (4, 4), (8, 2)):  # 2 simulations on 8 jobs: 2 processes, 2 threads each
        runner.run_many([sim] * sims, jobs=jobs, keep_going=True)
    assert seen == [4] + [2] * 4 + [1] * 4 + [2] * 2
    with pytest.raises(SimulationError):
        Runner(cache=None, threads=3).run(sim)
    assert seen[-1] == 3  # a fixed count wins


def test_cores_variable_must_be_a_positive_count(monkeypatch):
    monkeypatch.setenv(ngspice.CORES_VARIABLE, "two")
    with pytest.raises(UsageError, match=ngspice.CORES_VARIABLE):
        ngspice.available_cores()
    with pytest.raises(UsageError):
        Runner(threads=0)


@pytest.mark.tools
def test_thread_count_changes_no_result(tmp_path):
    """Why the count stays out of the cache key: 16 devices evaluated by 1 or 2 threads, same bytes."""
    deck = "\n".join(
        ["VDD vdd 0 1.8", "IREF d0 0 1n"]
        + [f"XM{i} d{i} d0 vdd vdd sky130_fd_pr__pfet_01v8 W=2 L=4 m={1 + i % 4}" for i in range(16)]
        + [f"V{i} d{i} 0 0.9" for i in range(1, 16)]
        + [".tran 10u 2m"]
    )
    one = Runner(cache=SimCache(tmp_path / "a"), threads=1).run(Simulation(deck))
    two = Runner(cache=SimCache(tmp_path / "b"), threads=2).run(Simulation(deck))
    assert not one.cached and not two.cached and one.key == two.key
    assert one["i(v15)"].tobytes() == two["i(v15)"].tobytes() and one["time"].tobytes() == two["time"].tobytes()


def test_mandatory_options_are_in_every_deck():
    assert MANDATORY_OPTIONS in Simulation("R1 a 0 1k\n.op").deck()
    assert "method=gear" in MANDATORY_OPTIONS and "gmin=1e-15" in MANDATORY_OPTIONS


@pytest.mark.tools
def test_cache_miss_then_hit_gives_identical_results(tmp_path):
    runner = Runner(cache=SimCache(tmp_path))
    sim = Simulation("XM1 d d 0 0 sky130_fd_pr__nfet_01v8 W=2 L=4\nI1 0 d 1n\n.op")
    cold, warm = runner.run(sim), runner.run(sim)
    assert (cold.cached, warm.cached) == (False, True)
    assert cold.key == warm.key
    assert warm["v(d)"].tobytes() == cold["v(d)"].tobytes()
    other = runner.run(Simulation(sim.circuit.replace("1n", "2n")))
    assert not other.cached and other.key != cold.key


@pytest.mark.tools
def test_corrupt_cache_entry_is_detected_and_rerun(tmp_path):
    cache = SimCache(tmp_path)
    runner = Runner(cache=cache)
    sim = Simulation("V1 a 0 1\nR1 a 0 1k\n.op")
    first = runner.run(sim)
    entry = cache.path(first.key)
    data = bytearray(entry.read_bytes())
    data[-3] ^= 0xFF  # flip bits in the stored raw data
    entry.write_bytes(bytes(data))
    again = runner.run(sim)
    assert not again.cached
    assert again["i(v1)"][0] == pytest.approx(-1e-3)
    assert runner.run(sim).cached  # the entry was rewritten


def test_cache_key_follows_included_file_contents(tmp_path):
    cache = SimCache(tmp_path / "cache")
    model = tmp_path / "params.spice"
    model.write_text(".param rval=1k\n")
    deck = f'.include "{model}"\nR1 a 0 rval\n'
    key = cache.key(deck, "ngspice-x")
    model.write_text(".param rval=2k\n")
    assert cache.key(deck, "ngspice-x") != key
    assert cache.key(deck, "ngspice-y") != cache.key(deck, "ngspice-x")


@pytest.mark.tools
def test_parallel_runs_share_the_cache_safely(tmp_path):
    runner = Runner(cache=SimCache(tmp_path))
    sims = [Simulation(f"V1 a 0 {v}\nR1 a 0 1k\n.op") for v in (1, 2, 1, 2, 3)]
    results = runner.run_many(sims, jobs=2)
    assert [r["i(v1)"][0] for r in results] == pytest.approx([-1e-3, -2e-3, -1e-3, -2e-3, -3e-3])
    assert all(runner.run(s).cached for s in sims)
    assert not list(tmp_path.rglob(".tmp-*"))


def test_missing_ngspice_is_a_named_error_with_the_install_command(tmp_path):
    runner = Runner(cache=SimCache(tmp_path), executable="ngspice-not-installed")
    with pytest.raises(NgspiceNotFound, match="apt-get install ngspice"):
        runner.run(Simulation("R1 a 0 1k\n.op"))


@pytest.mark.tools
def test_the_ngspice_variable_picks_the_executable(tmp_path, monkeypatch):
    wrapper = tmp_path / "my-ngspice"  # another ngspice beside the system's, as a newer build would be
    wrapper.write_text(f'#!/bin/sh\nexec {shutil.which("ngspice")} "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("FQRNN_NGSPICE", str(wrapper))
    assert Runner(cache=None).executable == str(wrapper)
    assert ngspice_version().startswith("ngspice-")
    monkeypatch.setenv("FQRNN_NGSPICE", str(tmp_path / "missing"))
    with pytest.raises(NgspiceNotFound, match="FQRNN_NGSPICE names .*missing"):
        Runner(cache=None).run(Simulation("R1 a 0 1k\n.op"))


def test_netlist_error_quotes_ngspice_and_the_offending_line(fresh_runner):
    with pytest.raises(NetlistError) as caught:
        fresh_runner.run(Simulation("V1 a 0 1\nXU1 a b no_such_cell\n.op"))
    message = str(caught.value)
    assert "unknown subckt" in message.lower()
    assert "offending line: XU1 a b no_such_cell" in message


def test_non_convergence_is_a_named_error(fresh_runner):
    circuit = (
        ".option itl1=5 noopiter gminsteps=0 srcsteps=0\n"
        "V1 in 0 1\nR1 in a 1k\nB1 a 0 I=-1e-3*tanh(1000*v(a))*exp(v(a)*v(a))\nC1 a 0 1p\n.op"
    )
    with pytest.raises(ConvergenceError, match="did not converge"):
        fresh_runner.run(Simulation(circuit))


def test_timeout_kills_ngspice(fresh_runner):
    with pytest.raises(SimulationTimeout, match="killed"):
        fresh_runner.run(Simulation(SLOW, timeout=1.0))


def test_runner_timeout_caps_each_simulation(fresh_runner):
    runner = Runner(cache=fresh_runner.cache, timeout=1.0)
    with pytest.raises(SimulationTimeout, match="1 s"):
        runner.run(Simulation(SLOW, timeout=3600))


def test_a_failed_simulation_stays_in_its_place_when_the_sweep_keeps_going(fresh_runner):
    good = Simulation("V1 a 0 1.8\nR1 a 0 1k\n.op")
    slow = Simulation(SLOW, timeout=1.0)
    first, failed = Runner(cache=fresh_runner.cache).run_many([good, slow], jobs=2, keep_going=True)
    assert first["i(v1)"][0] == pytest.approx(-1.8e-3) and isinstance(failed, SimulationTimeout)
    with pytest.raises(SimulationTimeout):  # without keep_going the sweep fails as a whole
        fresh_runner.run_many([good, slow], jobs=2)


def test_an_interrupted_sweep_kills_its_ngspice(fresh_runner):
    """ngspice runs in its own session, out of reach of Ctrl-C: an interrupted sweep must kill it."""
    quick = Simulation("V1 a 0 1.8\nR1 a 0 1k\n.op")
    groups = []

    def interrupt(_):  # Ctrl-C as the first result comes in, once a slow run's ngspice has started
        deadline = time.monotonic() + 30  # its worker may not have spawned it yet when the quick one is done
        while not ngspice._RUNNING and time.monotonic() < deadline:
            time.sleep(0.01)
        groups.extend(ngspice._RUNNING)
        raise KeyboardInterrupt

    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        fresh_runner.run_many([quick, Simulation(SLOW), Simulation(SLOW + "\n* another")], jobs=2, on_done=interrupt)
    assert time.monotonic() - start < 60 and not ngspice._RUNNING and groups
    for group in groups:
        with pytest.raises(ProcessLookupError):
            os.killpg(group, 0)
    assert fresh_runner.run(quick)["i(v1)"][0] == pytest.approx(-1.8e-3)  # and the next run is not refused


def test_an_interrupted_run_kills_its_ngspice_and_a_killed_one_is_named(fresh_runner):
    groups = []

    def interrupt(signum, frame):
        groups.extend(ngspice._RUNNING)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 2.0)
    try:
        with pytest.raises(KeyboardInterrupt):
            fresh_runner.run(Simulation(SLOW))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    (group,) = groups
    with pytest.raises(ProcessLookupError):
        os.killpg(group, 0)


def test_ngspice_killed_from_outside_is_a_simulation_error_not_a_netlist_error(fresh_runner):
    result = []
    worker = threading.Thread(target=lambda: result.append(_error_of(fresh_runner.run, Simulation(SLOW))))
    worker.start()
    deadline = time.monotonic() + 30
    while not ngspice._RUNNING and time.monotonic() < deadline:
        time.sleep(0.05)
    for group in list(ngspice._RUNNING):
        os.killpg(group, signal.SIGKILL)  # what the out-of-memory killer does
    worker.join(30)
    (error,) = result
    assert isinstance(error, SimulationKilled) and "SIGKILL" in str(error)


def _error_of(run, sim):
    try:
        run(sim)
    except Exception as error:  # noqa: BLE001 - the test inspects what the killed run raised
        return error
    return None


def test_raw_without_results_is_rejected():
    with pytest.raises(NetlistError):
        parse_raw(b"Title: x\n")


@pytest.mark.tools
def test_ngspice_is_installed_for_the_test_suite():
    assert shutil.which("ngspice"), "make setup installs ngspice; the runner tests need the real simulator"
