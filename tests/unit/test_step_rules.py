"""The pure step rules: what a step changes, computed without I/O."""

from datetime import UTC, datetime, timedelta

from mg.core import step
from mg.core.model import Content, MachineRecord, Range, Status
from mg.core.processor_wire import Kind, Reply, TimerSpec, Unset

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def started(reply: Reply) -> MachineRecord:
    return step.start("ns", "m", reply, NOW, "trace", incarnation=7).record


def test_start_numbers_events_from_one() -> None:
    transition = step.start(
        "ns", "m", Reply(events=(Content("a"), Content("b"))), NOW, None, incarnation=7
    )
    assert [e.id for e in transition.events] == [1, 2]
    assert transition.record.last_event_id == 2
    assert transition.record.version == 1
    assert transition.expected_version is None
    assert transition.record.status is Status.SLEEPING


def test_a_timer_action_makes_the_machine_wait() -> None:
    spec = TimerSpec(timeout=30, deadline=None, range=Range(limit=1), handling_timeout=None)
    record = started(Reply(timer=spec))
    assert record.status is Status.WAITING
    assert record.timer is not None
    assert record.timer.fire_at == NOW + timedelta(seconds=30)
    assert record.wake_at == record.timer.fire_at
    assert record.timer.trace == "trace"


def test_no_timer_action_keeps_the_timer_on_a_call() -> None:
    spec = TimerSpec(timeout=30, deadline=None, range=Range(), handling_timeout=None)
    record = started(Reply(timer=spec))
    later = step.advance(record, Kind.CALL, Reply(), NOW + timedelta(seconds=1), None).record
    assert later.timer == record.timer
    assert later.status is Status.WAITING


def test_the_fired_timer_is_cleared_after_a_timeout() -> None:
    spec = TimerSpec(timeout=30, deadline=None, range=Range(), handling_timeout=None)
    record = started(Reply(timer=spec))
    later = step.advance(record, Kind.TIMEOUT, Reply(), NOW, None).record
    assert later.timer is None
    assert later.status is Status.SLEEPING


def test_unset_clears_the_timer() -> None:
    spec = TimerSpec(timeout=30, deadline=None, range=Range(), handling_timeout=None)
    record = started(Reply(timer=spec))
    later = step.advance(record, Kind.CALL, Reply(timer=Unset.TIMER), NOW, None).record
    assert later.timer is None
    assert later.status is Status.SLEEPING


def test_absent_aux_state_keeps_the_previous_one() -> None:
    record = started(Reply(aux_state=Content({"n": 1}, 3)))
    kept = step.advance(record, Kind.CALL, Reply(), NOW, None).record
    assert kept.aux_state == Content({"n": 1}, 3)
    replaced = step.advance(record, Kind.CALL, Reply(aux_state=Content(None)), NOW, None).record
    assert replaced.aux_state == Content(None, None)


def test_events_continue_after_the_last_id_and_the_version_is_fenced() -> None:
    record = started(Reply(events=(Content(1),)))
    transition = step.advance(record, Kind.CALL, Reply(events=(Content(2), Content(3))), NOW, None)
    assert [e.id for e in transition.events] == [2, 3]
    assert transition.expected_version == record.version
    assert transition.record.version == record.version + 1


def test_fail_keeps_state_and_simple_repair_restores_waiting_with_its_timer() -> None:
    spec = TimerSpec(timeout=30, deadline=None, range=Range(), handling_timeout=None)
    record = started(Reply(timer=spec, aux_state=Content("aux")))
    failed = step.fail(record, "boom", NOW).record
    assert failed.status is Status.FAILED
    assert failed.failure_reason == "boom"
    assert failed.status_before_failure is Status.WAITING
    assert failed.wake_at is None
    assert failed.timer == record.timer
    repaired = step.simple_repair(failed, NOW).record
    assert repaired.status is Status.WAITING
    assert repaired.timer == record.timer
    assert repaired.failure_reason is None
    assert repaired.wake_at == record.timer.fire_at  # type: ignore[union-attr]


def test_repair_success_returns_the_machine_to_work() -> None:
    failed = step.fail(started(Reply()), "boom", NOW).record
    repaired = step.advance(failed, Kind.REPAIR, Reply(events=(Content("fixed"),)), NOW, None)
    assert repaired.record.status is Status.SLEEPING
    assert repaired.record.failure_reason is None


def test_retry_counts_attempts() -> None:
    record = started(Reply())
    first = step.schedule_retry(record, "timer", "503", 1, NOW + timedelta(seconds=1), NOW).record
    later = NOW + timedelta(seconds=5)
    second = step.schedule_retry(first, "timer", "503", 2, later + timedelta(seconds=2), later)
    second = second.record
    assert second.status is Status.RETRYING
    assert second.retry is not None
    assert second.retry.attempt == 2
    assert second.wake_at == later + timedelta(seconds=2)
    assert second.retry.first_failed_at == NOW
