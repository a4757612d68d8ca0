"""The simulation runner and its cache when things go wrong: cut-short raw files, an unusable or shared
cache, bad settings, and a program killed while ngspice runs."""

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from compiler.foundation import ngspice, simcache
from compiler.foundation.errors import NetlistError, UsageError
from compiler.foundation.ngspice import CoresSettingError, RawFileError, Runner, Simulation, parse_raw
from compiler.foundation.simcache import CacheWarning, SimCache

REPO = Path(__file__).resolve().parents[1]
CIRCUIT = "V1 a 0 1\nR1 a 0 1k\n.op\n.dc V1 0 1 0.5"
SLOW = "V1 a 0 SIN(0 1 1meg)\nR1 a b 1k\nC1 b 0 1p\n.tran 1p 1 0 1p"  # hours of time steps


@pytest.fixture(scope="module")
def real_raw(tmp_path_factory) -> bytes:
    """The raw file ngspice writes for CIRCUIT: two plots, an operating point and a DC sweep."""
    where = tmp_path_factory.mktemp("raw")
    (where / "deck.cir").write_text(f"* t\n{CIRCUIT}\n.end\n")
    subprocess.run(["ngspice", "-b", "-r", "out.raw", "deck.cir"], cwd=where, capture_output=True, check=True)
    return (where / "out.raw").read_bytes()


def _fake_ngspice(monkeypatch, raw: bytes) -> list:
    """Make every run "simulate" by returning `raw`; the list counts the runs."""
    runs = []

    def fake(deck, timeout, executable, spiceinit):
        runs.append(deck)
        return "fake log", raw, 0.5

    monkeypatch.setattr(ngspice, "_run_deck", fake)
    return runs


def _swept(result) -> bool:
    """Whether `result` holds CIRCUIT's DC sweep."""
    return result.vector("v(a)", plot="DC transfer characteristic").tolist() == [0.0, 0.5, 1.0]


def _entries(cache: SimCache) -> list:
    return sorted(cache.root.rglob("*.sim")) if cache.root.is_dir() else []


# --- a raw file that does not parse -----------------------------------------------------------------------------


@pytest.mark.tools
@settings(max_examples=300, deadline=None)
@given(cut=st.integers(min_value=0, max_value=10_000))
def test_a_cut_short_raw_file_is_a_named_error_or_whole_plots(real_raw, cut):
    """ngspice killed while writing, or a full disk: never a traceback, never a half plot."""
    whole = parse_raw(real_raw)
    try:
        plots = parse_raw(real_raw[: cut % (len(real_raw) + 1)])
    except (RawFileError, NetlistError):
        return
    assert 1 <= len(plots) <= len(whole)  # a cut between two plots leaves the first whole
    for part, full in zip(plots, whole):
        assert part.name == full.name and part.vectors.keys() == full.vectors.keys()
        assert all(part.vectors[k].tobytes() == full.vectors[k].tobytes() for k in full.vectors)


@pytest.mark.tools
@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=400), where=st.integers(min_value=0, max_value=500))
def test_garbled_raw_files_are_named_errors(real_raw, data, where):
    spliced = real_raw[:where] + data + real_raw[where:]
    for candidate in (data, spliced):
        try:
            parse_raw(candidate)
        except (RawFileError, NetlistError):
            pass


def test_raw_file_errors_are_simulation_failures():
    with pytest.raises(RawFileError, match="cut short") as caught:
        parse_raw(b"Title: t\nPlotname: Operating Point\nFlags: real\nNo. Variables: 2\n")
    assert caught.value.exit_status == 3


@pytest.mark.tools
def test_a_cut_short_raw_file_is_not_cached(tmp_path, monkeypatch, real_raw):
    cache = SimCache(tmp_path / "cache")
    runs = _fake_ngspice(monkeypatch, real_raw[: len(real_raw) - 5])
    sim = Simulation(CIRCUIT, models="none")
    for _ in range(2):
        with pytest.raises(RawFileError):
            Runner(cache=cache).run(sim)
    assert len(runs) == 2 and _entries(cache) == []
    _fake_ngspice(monkeypatch, real_raw)
    assert not Runner(cache=cache).run(sim).cached and Runner(cache=cache).run(sim).cached


@pytest.mark.tools
def test_a_cached_entry_that_does_not_parse_is_dropped_and_simulated_again(tmp_path, monkeypatch, real_raw):
    cache, sim = SimCache(tmp_path / "cache"), Simulation(CIRCUIT, models="none")
    runner = Runner(cache=cache)
    key = cache.key(runner.spiceinit + sim.deck(), ngspice.ngspice_version())
    cache.put(key, "log", real_raw[:-5], 0.5)  # valid checksum, truncated raw
    runs = _fake_ngspice(monkeypatch, real_raw)
    result = runner.run(sim)
    assert not result.cached and len(runs) == 1 and result.key == key
    assert _swept(result)
    assert runner.run(sim).cached and len(runs) == 1


# --- a cache that cannot be read or written ---------------------------------------------------------------------


@pytest.mark.tools
def test_a_cache_path_that_is_a_file_warns_once_and_loses_no_result(tmp_path, monkeypatch, real_raw):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    _fake_ngspice(monkeypatch, real_raw)
    runner = Runner(cache=SimCache(blocker))
    sims = [Simulation(CIRCUIT + f"\n* {i}", models="none") for i in range(3)]
    with pytest.warns(CacheWarning, match="cannot be") as caught:
        results = runner.run_many(sims, jobs=2)
    assert len(results) == 3 and all(_swept(r) for r in results)
    assert len([w for w in caught if w.category is CacheWarning]) == 1
    assert blocker.read_text() == "x"


@pytest.mark.tools
def test_a_full_disk_warns_and_leaves_no_partial_entry(tmp_path, monkeypatch, real_raw):
    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    cache = SimCache(tmp_path / "cache")
    _fake_ngspice(monkeypatch, real_raw)
    monkeypatch.setattr(simcache.os, "replace", disk_full)
    with pytest.warns(CacheWarning, match="No space left"):
        result = Runner(cache=cache).run(Simulation(CIRCUIT, models="none"))
    assert _swept(result)
    assert [p for p in (tmp_path / "cache").rglob("*") if p.is_file()] == []


@pytest.mark.tools
def test_an_unreadable_entry_is_a_miss(tmp_path, monkeypatch, real_raw):
    cache, sim = SimCache(tmp_path / "cache"), Simulation(CIRCUIT, models="none")
    key = cache.key(ngspice.SPICEINIT + sim.deck(), ngspice.ngspice_version())
    cache.path(key).mkdir(parents=True)  # reading it fails with IsADirectoryError
    runs = _fake_ngspice(monkeypatch, real_raw)
    with pytest.warns(CacheWarning, match="cannot be read"):
        assert not Runner(cache=cache).run(sim).cached
    assert len(runs) == 1


def test_cache_dir_expands_the_home_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FQRNN_CACHE_DIR", "~/sim-cache")
    monkeypatch.chdir(tmp_path)
    cache = simcache.default_cache()
    assert cache.root == tmp_path / "home" / "sim-cache"
    cache.put("ab" * 32, "log", b"raw", 1.0)
    assert cache.get("ab" * 32) == ("log", b"raw", 1.0) and not (tmp_path / "~").exists()


# --- a shared cache fed another deck's entry --------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(
    log=st.text(max_size=50),
    raw=st.binary(max_size=200),
    first=st.binary(min_size=1, max_size=20),
    second=st.binary(min_size=1, max_size=20),
)
def test_an_entry_copied_under_another_key_is_rejected(log, raw, first, second):
    assume(first != second)
    first, second = hashlib.sha256(first).hexdigest(), hashlib.sha256(second).hexdigest()
    with tempfile.TemporaryDirectory() as tmp:
        cache = SimCache(Path(tmp))
        cache.put(first, log, raw, 2.0)
        assert cache.get(first) == (log, raw, 2.0)
        cache.path(second).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(cache.path(first), cache.path(second))
        assert cache.get(second) is None and not cache.path(second).exists()
        assert cache.get(first) == (log, raw, 2.0)


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=300))
def test_any_bytes_in_an_entry_are_a_hit_or_a_miss(data):
    with tempfile.TemporaryDirectory() as tmp:
        cache = SimCache(Path(tmp))
        key = "cd" * 32
        cache.path(key).parent.mkdir(parents=True)
        cache.path(key).write_bytes(data)
        assert cache.get(key) is None


# --- FQRNN_NGSPICE_CORES ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["¹", "٣", "0", "-1", "1025", "99999999999999999999", "2.0", "two", "1 2"])
def test_cores_setting_out_of_range_or_not_ascii_digits_is_a_named_error(value):
    with mock.patch.dict(os.environ, {ngspice.CORES_VARIABLE: value}):
        with pytest.raises(CoresSettingError, match=f"{ngspice.CORES_VARIABLE}.*from 1 to 1024") as caught:
            ngspice.available_cores()
    assert isinstance(caught.value, UsageError) and len(str(caught.value)) < 300


@settings(max_examples=300, deadline=None)
@given(value=st.text(alphabet=st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=200))
def test_cores_setting_is_a_count_in_range_or_a_named_error(value):
    with mock.patch.dict(os.environ, {ngspice.CORES_VARIABLE: value}):
        try:
            cores = ngspice.available_cores()
        except CoresSettingError as error:
            assert len(str(error)) < 300
            return
    text = value.strip()
    if text:
        assert text.isascii() and cores == int(text) and 1 <= cores <= ngspice.MAX_CORES
    else:
        assert cores >= 1


# --- a program killed while ngspice runs -------------------------------------------------------------------------

CHILD = textwrap.dedent("""
    import threading, time
    from compiler.foundation import ngspice
    from compiler.foundation.ngspice import Runner, Simulation

    def report():
        while len(ngspice._RUNNING) < 2:
            time.sleep(0.05)
        print(*ngspice._RUNNING, flush=True)

    threading.Thread(target=report, daemon=True).start()
    slow = {slow!r}
    Runner(cache=None).run_many([Simulation(slow, models="none"), Simulation(slow + "\\n* b", models="none")], jobs=2)
""").format(slow=SLOW)

NEXT_START = (
    "from compiler.foundation.ngspice import Runner, Simulation\n"
    "Runner(cache=None).run(Simulation('R1 a 0 1k\\n.op', models='none'))"
)


def _running(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie nobody has reaped yet counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


@pytest.mark.tools
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_ngspice_dies_with_a_killed_program_and_the_next_run_clears_its_directories(tmp_path):
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp)}
    child = subprocess.Popen([sys.executable, "-c", CHILD], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
    pids, watchdog = [], threading.Timer(120, child.kill)  # ngspice never started: fail, do not hang
    watchdog.start()
    try:
        pids = [int(p) for p in child.stdout.readline().split()]
        assert len(pids) == 2 and all(_running(p) for p in pids)
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        deadline = time.monotonic() + 10
        while any(_running(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(_running(p) for p in pids), "ngspice outlived the program that started it"
    finally:
        watchdog.cancel()
        child.kill()
        for pid in pids:
            if _running(pid):
                os.killpg(pid, signal.SIGKILL)
    left = sorted(temp.glob(f"fqrnn-sim-{child.pid}-*"))
    assert len(left) == 2
    subprocess.run([sys.executable, "-c", NEXT_START], cwd=REPO, env=env, check=True, timeout=120)
    assert all(d.exists() for d in left)  # young: perhaps a program in another PID namespace
    old = time.time() - ngspice.STALE_AFTER - 60
    for directory in left:
        os.utime(directory, (old, old))
    subprocess.run([sys.executable, "-c", NEXT_START], cwd=REPO, env=env, check=True, timeout=120)
    assert not any(d.exists() for d in left)


def test_only_old_run_directories_of_dead_programs_are_removed(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.Popen(["true"])
    dead.wait()
    names = {
        "stale": f"fqrnn-sim-{dead.pid}-abc_12",
        "live": f"fqrnn-sim-{os.getpid()}-abc",
        "young": f"fqrnn-sim-{dead.pid}-new",
        "unnamed": "fqrnn-sim-k3j_x9a1",
        "other": f"other-{dead.pid}-abc",
        "file": f"fqrnn-sim-{dead.pid}-file",
    }
    for kind, name in names.items():
        (tmp_path / name).write_text("x") if kind == "file" else (tmp_path / name).mkdir()
    (tmp_path / f"fqrnn-sim-{dead.pid}-link").symlink_to(tmp_path / names["other"])
    now = time.time() + ngspice.STALE_AFTER + 60
    os.utime(tmp_path / names["young"], (now, now))
    assert ngspice.remove_stale_runs(now=now) == [names["stale"]]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        set(names.values()) - {names["stale"]} | {f"fqrnn-sim-{dead.pid}-link"}
    )


@pytest.mark.parametrize("load,cores_set,expected", [(0.3, None, 2), (1.9, None, 1), (1.9, "2", 2), (0.3, "1", 1)])
def test_a_lone_run_takes_both_cores_only_when_the_machine_is_idle(monkeypatch, load, cores_set, expected):
    monkeypatch.setattr(ngspice.os, "getloadavg", lambda: (load, load, load))
    monkeypatch.setattr(ngspice.os, "sched_getaffinity", lambda pid: {0, 1})
    if cores_set is None:
        monkeypatch.delenv(ngspice.CORES_VARIABLE, raising=False)
    else:
        monkeypatch.setenv(ngspice.CORES_VARIABLE, cores_set)
    assert ngspice.threads_per_process(1) == expected
    assert ngspice.threads_per_process(2) == 1
