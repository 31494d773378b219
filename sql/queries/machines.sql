-- Named queries for machines, events and tags. Parameters are positional ($1, ...).

-- name: load_machine
SELECT ns, id, incarnation, version, status, last_event_id, aux_data, aux_format_version,
       timer_fire_at, timer_range_after, timer_range_limit, timer_range_direction,
       timer_handling_timeout, timer_trace, timer_set_by_version,
       retry_subject, retry_attempt, retry_next_at, retry_first_failed_at, retry_reason,
       failure_reason, status_before_failure, created_at, updated_at, history_revision,
       first_event_id
FROM mg_machines
WHERE ns = $1 AND id = $2

-- name: load_events_forward
SELECT event_id, created_at, format_version, data
FROM mg_events
WHERE ns = $1 AND machine_id = $2 AND event_id BETWEEN $3 AND $4
ORDER BY event_id

-- name: load_events_backward
SELECT event_id, created_at, format_version, data
FROM mg_events
WHERE ns = $1 AND machine_id = $2 AND event_id BETWEEN $3 AND $4
ORDER BY event_id DESC

-- name: load_tags
SELECT tag FROM mg_tags WHERE ns = $1 AND machine_id = $2 ORDER BY tag

-- name: resolve_tag
SELECT machine_id FROM mg_tags WHERE ns = $1 AND tag = $2

-- name: claim_tag
-- DO NOTHING waits for a concurrent claim of the same tag to end, without aborting this
-- transaction, so a conflict can still fail the machine in the same step.
INSERT INTO mg_tags (ns, tag, machine_id) VALUES ($1, $2, $3)
ON CONFLICT (ns, tag) DO NOTHING
RETURNING machine_id

-- name: delete_machine
DELETE FROM mg_machines WHERE ns = $1 AND id = $2

-- name: delete_events
DELETE FROM mg_events WHERE ns = $1 AND machine_id = $2

-- name: delete_tags
DELETE FROM mg_tags WHERE ns = $1 AND machine_id = $2

-- name: lock_notification_queue
-- Before deleting a machine's queue (its own statement, so the delete's snapshot comes after
-- the lock): a notify holding the lock commits first and its notification is deleted too.
SELECT mg_lock_notification_queue($1, $2)

-- name: delete_notifications
DELETE FROM mg_notifications WHERE ns = $1 AND machine_id = $2

-- name: delete_notification
-- Consumed by its step; the next one in the machine's queue becomes the head (0006).
SELECT mg_consume_notification($1)

-- name: search_machines
-- Keyset pagination by id ('' before the first page: ids are never empty).
SELECT id, status, timer_fire_at, updated_at
FROM mg_machines
WHERE ns = $1 AND id > $2
ORDER BY id
LIMIT $3

-- name: search_machines_by_status
SELECT id, status, timer_fire_at, updated_at
FROM mg_machines
WHERE ns = $1 AND status = $2 AND id > $3
ORDER BY id
LIMIT $4

-- name: ping
SELECT 1

-- name: begin
-- A step's transaction spans several bridge calls (the processor is called in between), so it
-- is opened and closed by explicit statements rather than a client-side transaction block.
BEGIN

-- name: commit
COMMIT

-- name: notify_wake
-- Sent outside step transactions, coalesced (see mg/postgres/wakeups.py).
SELECT pg_notify($1, $2)

-- name: lock_and_load_machine
-- The first round trip of a step (after BEGIN): see mg_lock_machine in migration 0005. The
-- machine's columns come back flat, NULL unless it was read. $7 bounds, for this transaction
-- only, how long it may sit idle (the step's time left plus a margin): if the node stalls,
-- Postgres ends the session, which rolls the step back and frees its advisory lock.
SELECT l.present, l.current, l.new_incarnation, l.tags, (l.machine).*
FROM set_config('idle_in_transaction_session_timeout', $7, true) AS bound,
     mg_lock_machine($1, $2, $3, $4, $5, $6) AS l

-- name: bound_idle_transaction
-- A step whose processor deadline ends later than the one lock_and_load_machine was given.
SELECT set_config('idle_in_transaction_session_timeout', $1, true)

-- name: machine_version
-- Whether a node's cached copy is current, for reads outside a step (one snapshot: a step is
-- seen whole or not at all).
SELECT incarnation, version, history_revision FROM mg_machines WHERE ns = $1 AND id = $2

-- name: insert_machine_with_events
-- A start's writes in one statement: the machine row ($1..$25, in rows.record_params order,
-- and first_event_id $31), its events ($26..$29 as column arrays) and their sink outbox rows
-- (sinks $30, incarnation $3). The events and outbox rows are inserted only if the machine row
-- was. Events below first_event_id (trimmed by this very step) go to the sinks only.
WITH machine AS (
    INSERT INTO mg_machines (
        ns, id, incarnation, version, status, last_event_id, aux_data, aux_format_version,
        timer_fire_at, timer_range_after, timer_range_limit, timer_range_direction,
        timer_handling_timeout, timer_trace, timer_set_by_version, wake_at,
        retry_subject, retry_attempt, retry_next_at, retry_first_failed_at, retry_reason,
        failure_reason, status_before_failure, created_at, updated_at, first_event_id)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
            $19, $20, $21, $22, $23, $24, $25, $31)
    ON CONFLICT (ns, id) DO NOTHING
    RETURNING version
), events AS (
    INSERT INTO mg_events (ns, machine_id, event_id, created_at, format_version, data)
    SELECT $1, $2, e.event_id, e.created_at, e.format_version, e.data
    FROM unnest($26::bigint[], $27::timestamptz[], $28::integer[], $29::bytea[])
        AS e(event_id, created_at, format_version, data)
    WHERE EXISTS (SELECT 1 FROM machine) AND e.event_id >= $31
), outbox AS (
    INSERT INTO mg_sink_outbox (sink, ns, machine_id, incarnation, event_id, created_at,
                                format_version, data)
    SELECT s.sink, $1, $2, $3, e.event_id, e.created_at, e.format_version, e.data
    FROM unnest($30::text[]) AS s(sink)
    CROSS JOIN unnest($26::bigint[], $27::timestamptz[], $28::integer[], $29::bytea[])
        AS e(event_id, created_at, format_version, data)
    WHERE EXISTS (SELECT 1 FROM machine)
    ORDER BY s.sink, e.event_id
)
SELECT version FROM machine

-- name: update_machine_with_events
-- A step's writes in one statement: the machine row fenced on the version read ($26; the
-- others in rows.record_params order, and first_event_id $32), its new events ($27..$30), their
-- sink outbox rows (sinks $31) and the trim: events below first_event_id are deleted (those
-- appended by this very step are not inserted, but still go to the sinks). Nothing is written
-- unless the fenced update matched. The delete cannot see the rows this statement inserts
-- (one snapshot), hence the filter on the insert.
WITH machine AS (
    UPDATE mg_machines SET
        incarnation = $3, version = $4, status = $5, last_event_id = $6, aux_data = $7,
        aux_format_version = $8, timer_fire_at = $9, timer_range_after = $10,
        timer_range_limit = $11, timer_range_direction = $12, timer_handling_timeout = $13,
        timer_trace = $14, timer_set_by_version = $15, wake_at = $16, retry_subject = $17,
        retry_attempt = $18, retry_next_at = $19, retry_first_failed_at = $20,
        retry_reason = $21, failure_reason = $22, status_before_failure = $23,
        created_at = $24, updated_at = $25, lease_owner = NULL, lease_until = NULL,
        first_event_id = $32
    WHERE ns = $1 AND id = $2 AND version = $26
    RETURNING version
), events AS (
    INSERT INTO mg_events (ns, machine_id, event_id, created_at, format_version, data)
    SELECT $1, $2, e.event_id, e.created_at, e.format_version, e.data
    FROM unnest($27::bigint[], $28::timestamptz[], $29::integer[], $30::bytea[])
        AS e(event_id, created_at, format_version, data)
    WHERE EXISTS (SELECT 1 FROM machine) AND e.event_id >= $32
), trimmed AS (
    DELETE FROM mg_events AS v
    WHERE v.ns = $1 AND v.machine_id = $2 AND v.event_id < $32
      AND EXISTS (SELECT 1 FROM machine)
), outbox AS (
    INSERT INTO mg_sink_outbox (sink, ns, machine_id, incarnation, event_id, created_at,
                                format_version, data)
    SELECT s.sink, $1, $2, $3, e.event_id, e.created_at, e.format_version, e.data
    FROM unnest($31::text[]) AS s(sink)
    CROSS JOIN unnest($27::bigint[], $28::timestamptz[], $29::integer[], $30::bytea[])
        AS e(event_id, created_at, format_version, data)
    WHERE EXISTS (SELECT 1 FROM machine)
    ORDER BY s.sink, e.event_id
)
SELECT version FROM machine

-- name: load_machine_newest
-- A read outside a step in one statement, so in one snapshot: the row, its tags, and its
-- newest $3 events (one result row each, machine columns repeated; one row with NULL event
-- columns when it has none). Ranges that reach further back are read in a REPEATABLE READ
-- transaction instead (load_machine, load_tags, load_events_*).
SELECT m.ns, m.id, m.incarnation, m.version, m.status, m.last_event_id, m.aux_data,
       m.aux_format_version, m.timer_fire_at, m.timer_range_after, m.timer_range_limit,
       m.timer_range_direction, m.timer_handling_timeout, m.timer_trace,
       m.timer_set_by_version, m.retry_subject, m.retry_attempt, m.retry_next_at,
       m.retry_first_failed_at, m.retry_reason, m.failure_reason, m.status_before_failure,
       m.created_at, m.updated_at, m.history_revision, m.first_event_id,
       ARRAY(SELECT t.tag FROM mg_tags AS t
             WHERE t.ns = m.ns AND t.machine_id = m.id ORDER BY t.tag) AS tags,
       e.event_id, e.created_at AS event_created_at, e.format_version, e.data
FROM mg_machines AS m
LEFT JOIN LATERAL (
    SELECT v.event_id, v.created_at, v.format_version, v.data
    FROM mg_events AS v
    WHERE v.ns = m.ns AND v.machine_id = m.id
    ORDER BY v.event_id DESC
    LIMIT $3
) AS e ON true
WHERE m.ns = $1 AND m.id = $2
