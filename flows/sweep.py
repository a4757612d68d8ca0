"""Where a sweep's simulations run: a pool of ngspice processes here, or a Dask cluster.

Every simulation of a sweep (sequences x corners x temperatures x Monte Carlo seeds x partitions) is
independent, so they go to an executor as one batch. `local` runs `jobs` ngspice processes at once on
this machine. `dask` sends them to dask.distributed: a LocalCluster of `jobs` worker processes by
default, or the scheduler at `scheduler` (tcp://host:8786) for a cluster that shares this file system
and has ngspice (the simulation cache is then shared through it too). Each ngspice gets its share of
this machine's cores as OpenMP threads; on a remote cluster, whose cores are unknown, one thread.
"""

from __future__ import annotations

from compiler.errors import UsageError
from compiler.ngspice import Runner, kill_running, outcome, threads_per_process

EXECUTORS = ("local", "dask")


class ExecutorUnavailable(UsageError):
    """The chosen executor cannot start (Dask not installed, scheduler unreachable)."""


def run_all(runner: Runner, sims: list, jobs: int = 1, executor: str = "local", scheduler: str | None = None,
            on_done=None, keep_going: bool = False) -> list:
    """Results of `sims` in input order; `on_done(result)` after each finishes. With `keep_going` a failed
    simulation leaves its SimulationError in its place (compiler/ngspice.py `outcome`)."""
    if executor == "local":
        return runner.run_many(sims, jobs=jobs, on_done=on_done, keep_going=keep_going)
    if executor != "dask":
        raise UsageError(f"unknown executor {executor!r}; choose from {', '.join(EXECUTORS)}")
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise ExecutorUnavailable("the dask executor needs dask.distributed: pip install 'fqrnn-compiler[dask]'") from None
    try:
        if scheduler:
            client = Client(scheduler, timeout=30)
        else:
            client = Client(LocalCluster(n_workers=max(1, jobs), threads_per_worker=1, processes=True,
                                         dashboard_address=None))
    except OSError as exc:
        raise ExecutorUnavailable(f"cannot reach the Dask scheduler {scheduler!r}: {exc}") from None
    threads = 1 if scheduler else threads_per_process(min(jobs, len(sims)))
    with client:
        futures = client.map(runner.run, sims, pure=False, threads=threads)
        try:
            for future in as_completed(futures):
                if on_done is not None:
                    on_done(future.result() if future.status == "finished" else future.exception())
        except BaseException:  # interrupted: the workers' ngspice processes run in their own sessions
            client.cancel(futures)
            client.run(kill_running, False)
            raise
        results = [outcome(f.exception() if f.status == "error" else None, f.result, keep_going) for f in futures]
        if not scheduler:
            client.cluster.close()
    return results
