"""A step's transaction cannot outlive its deadline by more than the margin: if the node holding
it stalls, Postgres ends the session, which rolls the step back and frees the machine's
advisory lock (mg/postgres/step_session.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio

from mg.core import step as rules
from mg.core.clock import utc_now
from mg.core.deadline import Deadline
from mg.core.model import NO_HISTORY
from mg.core.processor_wire import Reply
from mg.errors import StorageUnavailable
from mg.postgres.bridge.factory import make_bridge
from mg.postgres.storage import PostgresStorage

MARGIN = 0.3


@pytest.fixture
async def storage(database_url: str) -> AsyncIterator[PostgresStorage]:
    bridge = make_bridge("thread", database_url, min_size=0, max_size=4, connect_timeout=10)
    await bridge.open()
    try:
        yield PostgresStorage(bridge, commit_timeout=5.0, step_idle_margin=MARGIN)
    finally:
        await bridge.close()


async def test_a_stalled_step_is_rolled_back_by_postgres_and_frees_the_lock(
    storage: PostgresStorage,
) -> None:
    reply = Reply()
    async with storage.step("n", "m1", Deadline.after(0.5)) as stalled:
        loaded = await stalled.load(NO_HISTORY)
        assert loaded.machine is None
        # The node "stalls" well past deadline + margin while holding the step open.
        await trio.sleep(2.5)
        # Meanwhile the machine's lock is free again: another step takes it at once.
        with trio.fail_after(5):
            async with storage.step("n", "m1", Deadline.after(2)) as other:
                again = await other.load(NO_HISTORY)
                assert again.machine is None
                transition = rules.start("n", "m1", reply, utc_now(), None, again.new_incarnation)
                await other.commit(transition, ())
        # The stalled step's late commit is a transient storage failure: nothing applied.
        late = rules.start("n", "m1", reply, utc_now(), None, loaded.new_incarnation)
        with pytest.raises(StorageUnavailable):
            await stalled.commit(late, ())
    found = await storage.get("n", "m1", NO_HISTORY)
    assert found is not None
    assert found.record.incarnation == again.new_incarnation


async def test_a_step_told_to_hold_longer_keeps_its_transaction(storage: PostgresStorage) -> None:
    # A timer whose handling timeout outlasts the step's deadline extends the bound first.
    async with storage.step("n", "m1", Deadline.after(0.2)) as step:
        loaded = await step.load(NO_HISTORY)
        await step.hold_until(Deadline.after(3))
        await trio.sleep(1.5)  # past 0.2 s + margin, within the extended bound
        reply = Reply()
        await step.commit(
            rules.start("n", "m1", reply, utc_now(), None, loaded.new_incarnation), ()
        )
    assert await storage.get("n", "m1", NO_HISTORY) is not None


async def test_holding_a_little_longer_costs_no_round_trip(storage: PostgresStorage) -> None:
    # A timer's deadline counted after the load is later than the load's by the lock wait:
    # within half the margin the bound set by the load covers it, and nothing is sent.
    async with storage.step("n", "m1", Deadline.after(2)) as step:
        loaded = await step.load(NO_HISTORY)
        session = step._session  # type: ignore[attr-defined]
        crossings = 0
        run = session.run

        async def counted(*args: object, **kwargs: object) -> object:
            nonlocal crossings
            crossings += 1
            return await run(*args, **kwargs)

        session.run = counted
        await step.hold_until(Deadline.after(2 + MARGIN / 4))
        assert crossings == 0
        await step.hold_until(Deadline.after(2 + MARGIN * 2))
        assert crossings == 1
        await step.commit(
            rules.start("n", "m1", Reply(), utc_now(), None, loaded.new_incarnation), ()
        )
