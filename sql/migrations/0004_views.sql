-- Views for operators, to read in psql (README, "Inspecting with psql"). They only read; each
-- is a plain view, so it costs nothing until queried and always shows the current state.

-- How many machines each namespace has in each status, and when they last changed.
CREATE VIEW mg_machine_counts AS
SELECT ns, status, count(*) AS machines,
       min(updated_at) AS oldest_change, max(updated_at) AS latest_change
FROM mg_machines
GROUP BY ns, status;

-- Failed machines with the reason kept for failure.reason, newest failure first. A failed
-- machine keeps its timer (it fires again after a simple repair) and its queued notifications
-- (parked until a repair).
CREATE VIEW mg_failed_machines AS
SELECT m.ns, m.id, m.updated_at AS failed_at, m.failure_reason AS reason,
       m.status_before_failure AS status_before, m.timer_fire_at AS kept_timer,
       m.last_event_id AS events,
       (SELECT count(*) FROM mg_notifications n
        WHERE n.ns = m.ns AND n.machine_id = m.id) AS queued_notifications
FROM mg_machines m
WHERE m.status = 'failed'
ORDER BY m.updated_at DESC;

-- Machines whose timer or notification step failed transiently and will be tried again.
CREATE VIEW mg_retrying_machines AS
SELECT ns, id, retry_subject AS retrying, retry_attempt AS failed_attempts,
       retry_next_at AS next_attempt_at, retry_first_failed_at AS first_failed_at,
       retry_reason AS last_error
FROM mg_machines
WHERE status = 'retrying'
ORDER BY retry_next_at;

-- Every armed timer. state: scheduled (not due yet), due (due, no loop has it), firing (a timer
-- loop holds it under a lease), retrying (its step failed transiently; see next_attempt_at),
-- suspended (the machine is failed: the timer waits for a repair).
CREATE VIEW mg_timers AS
SELECT ns, id, status, timer_fire_at AS fire_at,
       CASE
           WHEN status = 'failed' THEN 'suspended'
           WHEN lease_until > now() THEN 'firing'
           WHEN status = 'retrying' AND retry_subject = 'timer' THEN 'retrying'
           WHEN timer_fire_at <= now() THEN 'due'
           ELSE 'scheduled'
       END AS state,
       timer_fire_at - now() AS fires_in,
       CASE WHEN status = 'retrying' AND retry_subject = 'timer' THEN retry_next_at END
           AS next_attempt_at,
       lease_owner AS claimed_by, lease_until AS claimed_until, timer_trace AS trace
FROM mg_machines
WHERE timer_fire_at IS NOT NULL
ORDER BY timer_fire_at;

-- Work the timer loops should be doing now: timers past their fire time and timer retries past
-- their attempt time that no loop holds (a claim whose lease ran out counts: its claimer died).
-- overdue_by is how late it is; normally rows appear only for milliseconds. Served by the
-- partial index on wake_at.
CREATE VIEW mg_due_timers AS
SELECT ns, id, status,
       CASE WHEN retry_subject = 'timer' AND status = 'retrying' THEN 'retry' ELSE 'timer' END
           AS kind,
       coalesce(CASE WHEN retry_subject = 'timer' AND status = 'retrying' THEN retry_next_at END,
                timer_fire_at) AS due_at,
       now() - coalesce(
           CASE WHEN retry_subject = 'timer' AND status = 'retrying' THEN retry_next_at END,
           timer_fire_at) AS overdue_by,
       lease_owner AS expired_claim_of,
       timer_trace AS trace
FROM mg_machines
WHERE wake_at <= now()
ORDER BY wake_at;

-- Every queued notification, in delivery order per machine. state: due (its attempt time has
-- come), scheduled (a retry or a notification behind its machine's queue head waits), parked
-- (its machine is failed: delivered after a repair).
CREATE VIEW mg_queued_notifications AS
SELECT id, ns, machine_id,
       row_number() OVER (PARTITION BY ns, machine_id ORDER BY id) AS place_in_queue,
       created_at AS queued_at, now() - created_at AS waiting,
       CASE
           WHEN deliver_at IS NULL THEN 'parked'
           WHEN deliver_at <= now() THEN 'due'
           ELSE 'scheduled'
       END AS state,
       deliver_at AS next_attempt_at, attempt AS failed_attempts, last_error, trace
FROM mg_notifications
ORDER BY ns, machine_id, id;

-- Notification queues per namespace: how many, how many parked or retrying, the oldest.
CREATE VIEW mg_notification_queues AS
SELECT ns, count(*) AS queued,
       count(*) FILTER (WHERE deliver_at IS NULL) AS parked,
       count(*) FILTER (WHERE attempt > 0) AS retrying,
       count(DISTINCT machine_id) AS machines,
       min(created_at) AS oldest_queued_at, now() - min(created_at) AS oldest_waiting
FROM mg_notifications
GROUP BY ns;

-- Events committed but not yet moved into their sink by its sequencer: the sequencer's lag is
-- the age of the oldest (zero rows: the sequencer is caught up).
CREATE VIEW mg_sink_backlog AS
SELECT sink, count(*) AS pending, min(created_at) AS oldest_event_at,
       now() - min(created_at) AS lag
FROM mg_sink_outbox
GROUP BY sink;

-- Each sink's head: its last position and hash, when that event was sequenced and how long it
-- took from commit, with the backlog above (pending events and the sequencer's lag). Sinks are
-- found by a skip scan of the primary key (sink, id), one index probe per sink, so reading the
-- view costs the same on sinks of any length.
CREATE VIEW mg_sink_heads AS
WITH RECURSIVE sinks (sink) AS (
    (SELECT sink FROM mg_sink_events ORDER BY sink LIMIT 1)
    UNION ALL
    SELECT (SELECT e.sink FROM mg_sink_events e WHERE e.sink > s.sink ORDER BY e.sink LIMIT 1)
    FROM sinks s
    WHERE s.sink IS NOT NULL
),
known (sink) AS (
    SELECT sink FROM sinks WHERE sink IS NOT NULL
    UNION
    SELECT sink FROM mg_sink_backlog
)
SELECT k.sink, h.id AS position, encode(h.hash, 'hex') AS head_hash,
       h.sequenced_at AS last_sequenced_at,
       h.sequenced_at - h.created_at AS last_commit_to_sequenced,
       coalesce(b.pending, 0) AS pending, coalesce(b.lag, interval '0') AS lag
FROM known k
LEFT JOIN LATERAL (
    SELECT e.id, e.hash, e.sequenced_at, e.created_at
    FROM mg_sink_events e
    WHERE e.sink = k.sink
    ORDER BY e.id DESC
    LIMIT 1
) h ON true
LEFT JOIN mg_sink_backlog b ON b.sink = k.sink
ORDER BY k.sink;
