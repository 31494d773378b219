-- Named queries for sinks: the sequencer's leadership and batches, reads, verification.

-- name: lead_sink
-- Session-level, on the sequencer's dedicated connection: waits until no other session leads
-- the sink, then leads until the connection closes. The trigger on mg_sink_events takes the
-- same key, which is what keeps every other writer out.
SELECT pg_advisory_lock(1296520011, hashtext($1))

-- name: move_to_sink
-- One batch, one statement (one transaction): take the oldest committed outbox rows, insert them
-- in outbox order (the trigger gives positions and hashes in that order), delete what was taken.
-- An outbox row committed late with a smaller id is simply taken by a later batch: rows leave
-- the outbox only here, so none is skipped. ON CONFLICT makes moving an event twice a no-op.
WITH taken AS (
    DELETE FROM mg_sink_outbox
    WHERE id IN (SELECT o.id FROM mg_sink_outbox AS o WHERE o.sink = $1 ORDER BY o.id LIMIT $2)
    RETURNING id, sink, ns, machine_id, incarnation, event_id, created_at, format_version, data
), moved AS (
    INSERT INTO mg_sink_events (sink, ns, machine_id, incarnation, event_id, created_at,
                                format_version, data)
    SELECT sink, ns, machine_id, incarnation, event_id, created_at, format_version, data
    FROM taken
    ORDER BY id
    ON CONFLICT (sink, ns, machine_id, incarnation, event_id) DO NOTHING
    RETURNING id, created_at
)
SELECT (SELECT count(*) FROM taken) AS taken,
       count(*) AS moved,
       max(id) AS last_position,
       min(created_at) AS oldest
FROM moved

-- name: read_sink_forward
-- Positions after $2, oldest first.
SELECT id, ns, machine_id, incarnation, event_id, created_at, format_version, data, hash
FROM mg_sink_events
WHERE sink = $1 AND id > $2
ORDER BY id
LIMIT $3

-- name: read_sink_backward
-- Positions before $2, newest first.
SELECT id, ns, machine_id, incarnation, event_id, created_at, format_version, data, hash
FROM mg_sink_events
WHERE sink = $1 AND id < $2
ORDER BY id DESC
LIMIT $3

-- name: sink_chain_from
-- For verification: the stored chain from position $2 on, in order.
SELECT id, ns, machine_id, event_id, created_at, format_version, data, hash
FROM mg_sink_events
WHERE sink = $1 AND id >= $2
ORDER BY id
LIMIT $3

-- name: sink_hash_at
SELECT hash FROM mg_sink_events WHERE sink = $1 AND id = $2

-- name: sink_outbox_backlog
-- Outbox rows of a sink still waiting for its sequencer.
SELECT count(*) FROM mg_sink_outbox WHERE sink = $1
