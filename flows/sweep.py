"""Where a sweep's simulations run: a pool of ngspice processes here, or a Dask cluster.

Every simulation of a sweep (sequences x corners x temperatures x Monte Carlo seeds x partitions) is
independent, so they go to an executor as one batch. `local` runs `jobs` ngspice processes at once on
this machine. `dask` sends them to dask.distributed: a LocalCluster of `jobs` worker processes by
default, or the scheduler at `scheduler` (tcp://host:8786) for a cluster that shares this file system
and has ngspice (the simulation cache is then shared through it too). Each ngspice gets its share of
this machine's cores as OpenMP threads; on a remote cluster, whose cores are unknown, one thread.

The LocalCluster listens on the loopback interface only, with no dashboard. A scheduler's port has no
authentication and runs whatever it is sent: `scheduler` must be on a trusted network, or a `tls://`
address with distributed's TLS settings (client certificate and CA).
"""

from __future__ import annotations

from compiler.foundation.errors import UsageError, clip, shown
from compiler.foundation.ngspice import Runner, kill_running, outcome, threads_per_process

EXECUTORS = ("local", "dask")
SCHEDULER_SCHEMES = ("tcp", "tls", "ws", "wss", "ucx")  # distributed's transports that reach another process
TLS_HINT = (
    "a tls:// scheduler needs DASK_DISTRIBUTED__COMM__TLS__CA_FILE, DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT "
    "and DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY set"
)


class ExecutorUnavailable(UsageError):
    """The chosen executor cannot start (Dask not installed, bad or unreachable scheduler address)."""


def run_all(
    runner: Runner,
    sims: list,
    jobs: int = 1,
    executor: str = "local",
    scheduler: str | None = None,
    on_done=None,
    keep_going: bool = False,
) -> list:
    """Results of `sims` in input order; `on_done(result)` after each finishes. With `keep_going` a failed
    simulation leaves its SimulationError in its place (compiler/foundation/ngspice.py `outcome`)."""
    if executor == "local":
        return runner.run_many(sims, jobs=jobs, on_done=on_done, keep_going=keep_going)
    if executor != "dask":
        raise UsageError(f"unknown executor {shown(executor)}; choose from {', '.join(EXECUTORS)}")
    client = dask_client(scheduler, jobs)
    threads = 1 if scheduler else threads_per_process(min(jobs, len(sims)))
    with client:
        try:
            return _run_on(client, runner, sims, threads, on_done, keep_going)
        finally:
            if not scheduler:
                client.cluster.close()


def _run_on(client, runner: Runner, sims: list, threads: int, on_done, keep_going: bool) -> list:
    from dask.distributed import as_completed

    futures = client.map(runner.run, sims, pure=False, threads=threads)
    try:
        for future in as_completed(futures):
            if on_done is not None:
                on_done(future.result() if future.status == "finished" else future.exception())
    except BaseException:  # interrupted: the workers' ngspice processes run in their own sessions
        client.cancel(futures)
        client.run(kill_running, False)
        raise
    return [outcome(f.exception() if f.status == "error" else None, f.result, keep_going) for f in futures]


def dask_client(scheduler: str | None, jobs: int):
    """A client of the scheduler at `scheduler`, else of a new LocalCluster of `jobs` worker processes
    listening on the loopback interface only, dashboard off (dashboard_address=None still serves 8787)."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise ExecutorUnavailable(
            "the dask executor needs dask.distributed: pip install 'fqrnn-compiler[dask]'"
        ) from None
    if not scheduler:
        try:
            return Client(
                LocalCluster(
                    n_workers=max(1, jobs),
                    threads_per_worker=1,
                    processes=True,
                    host="127.0.0.1",
                    dashboard_address="127.0.0.1:0",
                    scheduler_kwargs={"dashboard": False},
                )
            )
        except OSError as exc:
            raise ExecutorUnavailable(f"cannot start a local Dask cluster: {clip(str(exc))}") from None
    check_scheduler_address(scheduler)
    try:
        return Client(scheduler, timeout=30)
    except (OSError, ValueError, TypeError) as exc:
        what_to_do = TLS_HINT if scheduler.startswith(("tls://", "wss://")) else "check that it runs and the address"
        raise ExecutorUnavailable(
            f"cannot reach the Dask scheduler {shown(scheduler)}: {clip(str(exc))}; {what_to_do}."
        ) from None


def check_scheduler_address(address: str) -> None:
    """Reject what is not SCHEME://HOST:PORT with a scheme distributed can reach another process by."""
    from distributed.comm.addressing import parse_address
    from distributed.comm.registry import get_backend

    quoted = shown(address)
    scheme, location = parse_address(address)
    if scheme not in SCHEDULER_SCHEMES:
        raise ExecutorUnavailable(
            f"the Dask scheduler address {quoted} has the scheme {shown(scheme)}; use one "
            f"of {', '.join(s + '://' for s in SCHEDULER_SCHEMES)}, e.g. tcp://HOST:8786."
        )
    try:
        get_backend(scheme).get_address_host_port(location)
    except (ValueError, TypeError, ImportError, NotImplementedError) as exc:
        why = clip(str(exc)) or f"this installation of distributed has no {scheme} transport"
        raise ExecutorUnavailable(
            f"the Dask scheduler address {quoted} is not usable ({why}); give SCHEME://HOST:PORT, e.g. tcp://HOST:8786."
        ) from None
