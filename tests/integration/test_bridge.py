"""Both Postgres bridges against a real server: results, errors, timeouts, cancellation, sessions,
LISTEN and shutdown. The cancellation tests are the point: a trio caller cancelled mid-transaction
must never leave a connection in the pool with that transaction (or its locks) still open."""

from __future__ import annotations

import os
import random
import signal
import threading
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import pytest
import trio

from mg.postgres.bridge.factory import BRIDGE_KINDS, make_bridge
from mg.postgres.bridge.interface import Bridge, Session

POOL_SIZE = 5
# Generous bound that only a hang can exceed; tests never assert timings.
HANG = 30


@pytest.fixture
def bridge_dsn(request: pytest.FixtureRequest) -> str:
    """The embedded test server from conftest if there is one, else ``MG_TEST_DATABASE_URL``."""
    try:
        server = request.getfixturevalue("postgres_server")
    except pytest.FixtureLookupError:
        url = os.environ.get("MG_TEST_DATABASE_URL")
        if not url:
            pytest.skip("no Postgres: no postgres_server fixture and no MG_TEST_DATABASE_URL")
        return url
    return str(server.admin_url)


def _tagged(dsn: str, application_name: str) -> str:
    """``dsn`` with an application_name, so the test can find its own backends on the server."""
    parts = urlsplit(dsn)
    query = [*parse_qsl(parts.query), ("application_name", application_name)]
    return urlunsplit(parts._replace(query=urlencode(query)))


@pytest.fixture(params=BRIDGE_KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def app_name() -> str:
    return f"mg-bridge-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def bridge(kind: str, bridge_dsn: str, app_name: str) -> AsyncIterator[Bridge]:
    # Opened in a fixture task and used from the test task: the trio-asyncio bridge must not
    # depend on its caller descending from the task that opened the loop (quart-trio handlers).
    b = make_bridge(
        kind, _tagged(bridge_dsn, app_name), min_size=1, max_size=POOL_SIZE, connect_timeout=10
    )
    await b.open()
    yield b
    await b.close()


@pytest.fixture
async def observer(kind: str, bridge_dsn: str) -> AsyncIterator[Bridge]:
    """A separate one-connection bridge: it sees the server from outside the pool under test."""
    b = make_bridge(kind, bridge_dsn, min_size=1, max_size=1, connect_timeout=10)
    await b.open()
    yield b
    await b.close()


def _key() -> int:
    return random.randrange(1, 2**62)


async def _lock_is_free(observer: Bridge, key: int) -> bool:
    async def work(conn: asyncpg.Connection) -> bool:
        taken: bool = await conn.fetchval("SELECT pg_try_advisory_lock($1)", key)
        if taken:
            await conn.execute("SELECT pg_advisory_unlock($1)", key)
        return taken

    return await observer.run(work)


async def _assert_pool_clean(bridge: Bridge, observer: Bridge, app_name: str) -> None:
    """Every pooled connection is out of transaction, on the client and on the server."""
    async with AsyncExitStack() as stack:
        sessions: list[Session] = [
            await stack.enter_async_context(bridge.session(timeout=HANG)) for _ in range(POOL_SIZE)
        ]

        async def state(conn: asyncpg.Connection) -> tuple[bool, int]:
            return conn.is_in_transaction(), await conn.fetchval("SELECT pg_backend_pid()")

        states = [await s.run(state) for s in sessions]
    assert [in_tx for in_tx, _ in states] == [False] * POOL_SIZE
    assert len({pid for _, pid in states}) == POOL_SIZE

    async def busy(conn: asyncpg.Connection) -> list[str]:
        rows = await conn.fetch(
            "SELECT state FROM pg_stat_activity WHERE application_name = $1 AND state <> 'idle'",
            app_name,
        )
        return [r["state"] for r in rows]

    assert await observer.run(busy) == []


async def test_run_returns_the_result_of_the_work(bridge: Bridge) -> None:
    async def work(conn: asyncpg.Connection) -> list[int]:
        return [r[0] for r in await conn.fetch("SELECT generate_series(1, 3)")]

    assert await bridge.run(work) == [1, 2, 3]


async def test_run_propagates_errors_with_their_type(bridge: Bridge) -> None:
    async def divide(conn: asyncpg.Connection) -> None:
        await conn.fetchval("SELECT 1 / 0")

    with pytest.raises(asyncpg.DivisionByZeroError):
        await bridge.run(divide)

    mine = LookupError("from the work")

    async def raising(conn: asyncpg.Connection) -> None:
        raise mine

    with pytest.raises(LookupError) as caught:
        await bridge.run(raising)
    assert caught.value is mine


async def test_timeout_raises_timeout_error_and_the_pool_stays_healthy(bridge: Bridge) -> None:
    async def slow(conn: asyncpg.Connection) -> None:
        async with conn.transaction():
            await conn.execute("SELECT pg_sleep(10)")

    async def times_out() -> None:
        with pytest.raises(TimeoutError):
            await bridge.run(slow, timeout=0.2)

    with trio.fail_after(HANG):
        # More than the pool holds, so every connection gets a timed-out query.
        async with trio.open_nursery() as nursery:
            for _ in range(POOL_SIZE + 1):
                nursery.start_soon(times_out)

        results: list[int] = []

        async def unit(i: int) -> None:
            async def work(conn: asyncpg.Connection) -> int:
                value: int = await conn.fetchval("SELECT $1::int FROM pg_sleep(0.05)", i)
                return value

            results.append(await bridge.run(work, timeout=HANG))

        async with trio.open_nursery() as nursery:
            for i in range(POOL_SIZE + 5):
                nursery.start_soon(unit, i)
    assert sorted(results) == list(range(POOL_SIZE + 5))
    assert bridge.pool_stats["size"] <= POOL_SIZE


async def test_timeout_waiting_for_a_connection_raises_timeout_error(bridge: Bridge) -> None:
    async def one(conn: asyncpg.Connection) -> int:
        value: int = await conn.fetchval("SELECT 1")
        return value

    with trio.fail_after(HANG):
        async with AsyncExitStack() as stack:
            for _ in range(POOL_SIZE):
                await stack.enter_async_context(bridge.session())
            with pytest.raises(TimeoutError):
                await bridge.run(one, timeout=0.2)
            with pytest.raises(TimeoutError):
                async with bridge.session(timeout=0.2):
                    pass
        assert await bridge.run(one) == 1


async def test_cancelled_session_leaves_no_transaction_or_lock_behind(
    bridge: Bridge, observer: Bridge, app_name: str
) -> None:
    key = _key()
    locked = trio.Event()

    async def lock(conn: asyncpg.Connection) -> None:
        await conn.execute("BEGIN")
        await conn.execute("SELECT pg_advisory_xact_lock($1)", key)

    async def sleep(conn: asyncpg.Connection) -> None:
        await conn.execute("SELECT pg_sleep(30)")

    with trio.fail_after(HANG):
        with trio.move_on_after(HANG / 2) as scope:
            async with bridge.session() as session:
                await session.run(lock)
                locked.set()
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(session.run, sleep)
                    await trio.sleep(0.2)  # the sleep is now running on the server
                    assert not await _lock_is_free(observer, key)
                    scope.cancel()
        assert scope.cancelled_caught
        assert locked.is_set()
        # Checked straight away: the cancelled session has already rolled back and released.
        assert await _lock_is_free(observer, key)
        await _assert_pool_clean(bridge, observer, app_name)


async def test_session_rolls_back_when_its_block_raises(
    bridge: Bridge, observer: Bridge, app_name: str
) -> None:
    key = _key()

    async def lock(conn: asyncpg.Connection) -> None:
        await conn.execute("BEGIN")
        await conn.execute("SELECT pg_advisory_xact_lock($1)", key)

    async def failing_step() -> Session:
        async with bridge.session() as session:
            await session.run(lock)
            raise LookupError("from the block")

    with pytest.raises(LookupError):
        await failing_step()
    assert await _lock_is_free(observer, key)
    await _assert_pool_clean(bridge, observer, app_name)
    async with bridge.session() as ended:
        pass
    with pytest.raises(trio.ClosedResourceError):
        await ended.run(lock)


async def test_cancelled_run_leaves_no_transaction_or_lock_behind(
    bridge: Bridge, observer: Bridge, app_name: str
) -> None:
    managed, raw = _key(), _key()

    async def with_transaction(conn: asyncpg.Connection) -> None:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", managed)
            await conn.execute("SELECT pg_sleep(30)")

    async def with_begin(conn: asyncpg.Connection) -> None:
        await conn.execute("BEGIN")
        await conn.execute("SELECT pg_advisory_xact_lock($1)", raw)
        await conn.execute("SELECT pg_sleep(30)")

    with trio.fail_after(HANG):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(bridge.run, with_transaction)
            nursery.start_soon(bridge.run, with_begin)
            await trio.sleep(0.3)
            assert not await _lock_is_free(observer, managed)
            assert not await _lock_is_free(observer, raw)
            nursery.cancel_scope.cancel()
        assert await _lock_is_free(observer, managed)
        assert await _lock_is_free(observer, raw)
        await _assert_pool_clean(bridge, observer, app_name)


def _local_backend(dsn: str, pid: int) -> bool:
    """Whether ``pid`` is a Postgres backend on this machine that this process may signal."""
    if urlsplit(dsn).hostname not in ("127.0.0.1", "localhost", "::1"):
        return False
    try:
        return b"postgres" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


async def test_cancellation_returns_even_when_the_server_stops_answering(
    kind: str, bridge_dsn: str, observer: Bridge
) -> None:
    bridge = make_bridge(
        kind, bridge_dsn, min_size=1, max_size=2, connect_timeout=5, release_timeout=1
    )
    await bridge.open()
    try:

        async def begin(conn: asyncpg.Connection) -> int:
            await conn.execute("BEGIN")
            pid: int = await conn.fetchval("SELECT pg_backend_pid()")
            return pid

        async def sleep(conn: asyncpg.Connection) -> None:
            await conn.execute("SELECT pg_sleep(30)")

        frozen: list[int] = []
        with trio.fail_after(HANG):
            try:
                with trio.move_on_after(HANG / 2) as scope:
                    async with bridge.session() as session:
                        pid = await session.run(begin)
                        if not _local_backend(bridge_dsn, pid):
                            pytest.skip("the test server's backends are not local processes")
                        async with trio.open_nursery() as nursery:
                            nursery.start_soon(session.run, sleep)
                            await trio.sleep(0.2)
                            # A frozen backend answers neither the query, nor the cancel
                            # request, nor the rollback: only the bridge's own timeouts can end
                            # the wait (the session cleanup runs while it is still frozen).
                            os.kill(pid, signal.SIGSTOP)
                            frozen.append(pid)
                            scope.cancel()
            finally:
                for pid in frozen:
                    os.kill(pid, signal.SIGCONT)
            assert scope.cancelled_caught

            async def alive(conn: asyncpg.Connection) -> bool:
                found: bool = await conn.fetchval(
                    "SELECT count(*) > 0 FROM pg_stat_activity WHERE pid = $1", pid
                )
                return found

            for _ in range(100):  # the frozen connection was terminated, not reused
                if not await observer.run(alive):
                    break
                await trio.sleep(0.05)
            else:
                pytest.fail(f"backend {pid} is still connected")
            assert await bridge.run(lambda conn: conn.fetchval("SELECT 1")) == 1
    finally:
        await bridge.close()


async def test_cancelling_one_run_keeps_the_session_usable(bridge: Bridge) -> None:
    async def pid(conn: asyncpg.Connection) -> int:
        value: int = await conn.fetchval("SELECT pg_backend_pid()")
        return value

    async def sleep(conn: asyncpg.Connection) -> None:
        await conn.execute("SELECT pg_sleep(30)")

    with trio.fail_after(HANG):
        async with bridge.session() as session:
            before = await session.run(pid)
            with trio.move_on_after(0.2):
                await session.run(sleep)
            assert await session.run(pid) == before


async def test_cancelled_while_waiting_for_a_connection_leaks_nothing(bridge: Bridge) -> None:
    async def one(conn: asyncpg.Connection) -> int:
        value: int = await conn.fetchval("SELECT 1")
        return value

    with trio.fail_after(HANG):
        async with AsyncExitStack() as stack:
            for _ in range(POOL_SIZE):
                await stack.enter_async_context(bridge.session())
            async with trio.open_nursery() as nursery:
                for _ in range(10):
                    nursery.start_soon(bridge.run, one)
                    nursery.start_soon(_enter_session, bridge)
                await trio.sleep(0.1)
                nursery.cancel_scope.cancel()
        results = []
        async with trio.open_nursery() as nursery:
            for _ in range(POOL_SIZE * 3):
                nursery.start_soon(lambda: _append(results, bridge.run(one)))
    assert results == [1] * (POOL_SIZE * 3)
    assert bridge.pool_stats["size"] <= POOL_SIZE


async def _enter_session(bridge: Bridge) -> None:
    async with bridge.session():
        pass


async def _append(results: list[Any], call: Any) -> None:
    results.append(await call)


async def test_many_concurrent_units_share_a_small_pool(bridge: Bridge) -> None:
    async def unit(i: int, results: list[int]) -> None:
        async def work(conn: asyncpg.Connection) -> int:
            async with conn.transaction():
                value: int = await conn.fetchval("SELECT $1::int", i)
                return value

        results.append(await bridge.run(work))

    results: list[int] = []
    with trio.fail_after(HANG * 2):
        async with trio.open_nursery() as nursery:
            for i in range(200):
                nursery.start_soon(unit, i, results)
    assert sorted(results) == list(range(200))
    assert bridge.pool_stats["size"] <= POOL_SIZE


async def test_session_holds_one_connection_across_trio_work(bridge: Bridge) -> None:
    async def pid(conn: asyncpg.Connection) -> int:
        value: int = await conn.fetchval("SELECT pg_backend_pid()")
        return value

    async with bridge.session() as session:
        first = await session.run(pid)
        await trio.sleep(0.05)
        # Meanwhile the rest of the pool is busy with other callers.
        async with trio.open_nursery() as nursery:
            for _ in range(POOL_SIZE * 4):
                nursery.start_soon(bridge.run, pid)
        assert await session.run(pid) == first
        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(session.run, pid)  # serialised on the one connection
        assert await session.run(pid) == first


async def test_listen_receives_notify_payloads(bridge: Bridge) -> None:
    channel = f"mg_test_{uuid.uuid4().hex[:8]}"

    async def notify(conn: asyncpg.Connection) -> None:
        for payload in ("one", "two", "three"):
            await conn.execute("SELECT pg_notify($1, $2)", channel, payload)

    with trio.fail_after(HANG):
        async with bridge.listen(channel) as notifications:
            await bridge.run(notify)
            received = []
            async for payload in notifications:
                received.append(payload)
                if len(received) == 3:
                    break
    assert received == ["one", "two", "three"]


async def test_listen_raises_connection_error_when_the_backend_is_terminated(
    bridge: Bridge, observer: Bridge, app_name: str
) -> None:
    channel = f"mg_test_{uuid.uuid4().hex[:8]}"

    async def terminate(conn: asyncpg.Connection) -> int:
        found: int = await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = $1 AND query LIKE 'LISTEN%'",
            app_name,
        )
        return found

    with trio.fail_after(HANG):
        async with bridge.listen(channel) as notifications:
            assert await observer.run(terminate) == 1
            with pytest.raises(ConnectionError):
                async for _ in notifications:
                    pass
        # The pool is untouched by the loss of the listening connection.
        assert await bridge.run(lambda conn: conn.fetchval("SELECT 1")) == 1


async def test_close_is_idempotent_and_leaves_no_thread(kind: str, bridge_dsn: str) -> None:
    before = set(threading.enumerate())
    bridge = make_bridge(kind, bridge_dsn, min_size=2, max_size=POOL_SIZE, connect_timeout=10)
    await bridge.open()
    assert await bridge.run(lambda conn: conn.fetchval("SELECT 1")) == 1
    async with bridge.listen("mg_test_close"):
        pass
    await bridge.close()
    await bridge.close()
    left = {t for t in set(threading.enumerate()) - before if not t.name.startswith("Trio thread")}
    assert left == set()
    with pytest.raises(trio.ClosedResourceError):
        await bridge.run(lambda conn: conn.fetchval("SELECT 1"))


async def test_bridge_is_an_async_context_manager(kind: str, bridge_dsn: str) -> None:
    async with make_bridge(kind, bridge_dsn, min_size=1, max_size=2, connect_timeout=10) as b:
        assert await b.run(lambda conn: conn.fetchval("SELECT 1")) == 1
    with pytest.raises(trio.ClosedResourceError):
        await b.run(lambda conn: conn.fetchval("SELECT 1"))


async def test_failed_open_raises_and_leaves_no_thread(kind: str) -> None:
    before = set(threading.enumerate())
    # Port 1 on loopback: nothing listens there, so the first connection is refused.
    bridge = make_bridge(
        kind, "postgresql://mg@127.0.0.1:1/mg", min_size=1, max_size=2, connect_timeout=5
    )
    with pytest.raises(ConnectionRefusedError):
        await bridge.open()
    await bridge.close()
    left = {t for t in set(threading.enumerate()) - before if not t.name.startswith("Trio thread")}
    assert left == set()


async def test_close_ends_calls_in_flight(kind: str, bridge_dsn: str) -> None:
    bridge = make_bridge(kind, bridge_dsn, min_size=1, max_size=2, connect_timeout=10)
    await bridge.open()
    failures: list[BaseException] = []

    async def stuck() -> None:
        try:
            await bridge.run(lambda conn: conn.execute("SELECT pg_sleep(30)"))
        except trio.ClosedResourceError as error:
            failures.append(error)

    with trio.fail_after(HANG):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(stuck)
            await trio.sleep(0.2)
            await bridge.close()
    assert len(failures) == 1


def test_unknown_bridge_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown Postgres bridge"):
        make_bridge("psycopg", "postgresql://nowhere/")
