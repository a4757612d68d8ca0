"""The Dask executor: a local cluster exposes nothing beyond loopback, and a bad scheduler address is a
named error before any connection is tried."""

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compiler.foundation.ngspice import Runner, Simulation
from flows.sweep import ExecutorUnavailable, check_scheduler_address, run_all

pytest.importorskip("dask.distributed")
psutil = pytest.importorskip("psutil")  # a dependency of distributed

SIMS = [Simulation(f"V1 a 0 1\nR1 a b 1k\nR2 b 0 {r}k\n.op", models="none") for r in (1, 3)]


def _listening_addresses() -> list:
    """(host, port) of every listening socket of this process and its children (the cluster's workers)."""
    me = psutil.Process()
    found = []
    for process in [me, *me.children(recursive=True)]:
        try:
            sockets = process.net_connections(kind="inet")
        except psutil.Error:
            continue
        found += [(s.laddr.ip, s.laddr.port) for s in sockets if s.status == psutil.CONN_LISTEN]
    return found


@pytest.mark.tools
def test_the_local_cluster_listens_on_loopback_only_without_a_dashboard():
    seen = []
    results = run_all(
        Runner(cache=None), SIMS, jobs=1, executor="dask", on_done=lambda _: seen.extend(_listening_addresses())
    )
    assert results[1]["v(b)"][0] == pytest.approx(0.75)
    assert seen, "no listening socket seen while the cluster ran"
    assert all(host == "127.0.0.1" for host, _ in seen), seen
    assert 8787 not in {port for _, port in seen}, seen


@pytest.mark.parametrize(
    "address",
    [
        "garbage://x",
        "tcp://",
        "tcp://host:notaport",
        "inproc://x",
        "x" * 5000,
        "http://127.0.0.1:8786",
        "tcp://tcp://127.0.0.1:8786",
        "tls://127.0.0.1:1",
    ],
)
def test_a_bad_scheduler_address_is_a_named_error(address):
    start = time.monotonic()
    with pytest.raises(ExecutorUnavailable) as caught:
        run_all(Runner(cache=None), SIMS, executor="dask", scheduler=address)
    assert caught.value.exit_status == 2 and len(str(caught.value)) < 600
    assert time.monotonic() - start < 20  # refused up front, not after a connection timeout


@settings(max_examples=300, deadline=None)
@given(
    address=st.text(max_size=120)
    | st.builds(
        lambda s, rest: s + "://" + rest,
        st.sampled_from(["tcp", "tls", "ws", "wss", "ucx", "inproc", "xyz"]),
        st.text(max_size=60),
    )
)
def test_scheduler_addresses_are_accepted_or_named_errors(address):
    try:
        check_scheduler_address(address)
    except ExecutorUnavailable as error:
        assert len(str(error)) < 600
