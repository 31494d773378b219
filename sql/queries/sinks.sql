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
-- Positions after $2, oldest first, with the sink's first held position (0008) read in the
-- same statement, so in the same snapshot: the caller refuses a read that would have started
-- below it. One row with NULL event columns when no event qualifies.
SELECT f.first, e.id, e.ns, e.machine_id, e.incarnation, e.event_id, e.created_at,
       e.format_version, e.data, e.hash
FROM (SELECT coalesce((SELECT b.first FROM mg_sink_bounds AS b WHERE b.sink = $1), 1) AS first)
    AS f
LEFT JOIN LATERAL (
    SELECT v.id, v.ns, v.machine_id, v.incarnation, v.event_id, v.created_at,
           v.format_version, v.data, v.hash
    FROM mg_sink_events AS v
    WHERE v.sink = $1 AND v.id > greatest($2, f.first - 1)
    ORDER BY v.id
    LIMIT $3
) AS e ON true
ORDER BY e.id

-- name: read_sink_backward
-- Positions before $2, newest first (a pruned part is simply not there: clipped), with the
-- first held position as in read_sink_forward.
SELECT f.first, e.id, e.ns, e.machine_id, e.incarnation, e.event_id, e.created_at,
       e.format_version, e.data, e.hash
FROM (SELECT coalesce((SELECT b.first FROM mg_sink_bounds AS b WHERE b.sink = $1), 1) AS first)
    AS f
LEFT JOIN LATERAL (
    SELECT v.id, v.ns, v.machine_id, v.incarnation, v.event_id, v.created_at,
           v.format_version, v.data, v.hash
    FROM mg_sink_events AS v
    WHERE v.sink = $1 AND v.id < $2 AND v.id >= f.first
    ORDER BY v.id DESC
    LIMIT $3
) AS e ON true
ORDER BY e.id DESC

-- name: sink_bounds
-- A sink's held span and anchor (GET /v1/sinks/{sink}), in one snapshot: first (1 and hash_0
-- when nothing was pruned), last (0 when empty).
SELECT coalesce(b.first, 1) AS first, b.anchor,
       coalesce((SELECT e.id FROM mg_sink_events AS e WHERE e.sink = $1
                 ORDER BY e.id DESC LIMIT 1), 0) AS last
FROM (SELECT $1::text AS sink) AS s
LEFT JOIN mg_sink_bounds AS b ON b.sink = s.sink

-- name: sink_last
-- The last position of a sink (0 when empty), where no mg_sink_bounds exists (a replica).
SELECT coalesce((SELECT e.id FROM mg_sink_events AS e WHERE e.sink = $1
                 ORDER BY e.id DESC LIMIT 1), 0)

-- name: lead_sink_pruning
-- Session-level, on the pruner's dedicated connection: one pruner per sink in the cluster
-- (a key of its own: pruning and sequencing run side by side).
SELECT pg_advisory_lock(1296520012, hashtext($1))

-- name: prune_sink
-- One batch of retention for sink $1, one statement (one transaction): of the oldest $4 held
-- events, never the newest, delete those beyond the newest $2 (NULL: no count bound) or
-- sequenced more than $3 seconds ago (NULL: no age bound; a prefix only: it stops at the first
-- young one), and save the new first position with its anchor, the hash of the last deleted.
-- Deleting a range from the old first up (not "below"), so dead index entries of earlier
-- batches are not walked again.
WITH bounds AS (
    SELECT coalesce((SELECT b.first FROM mg_sink_bounds AS b WHERE b.sink = $1), 1) AS first,
           coalesce((SELECT e.id FROM mg_sink_events AS e WHERE e.sink = $1
                     ORDER BY e.id DESC LIMIT 1), 0) AS last
), oldest AS (
    SELECT e.id, e.sequenced_at
    FROM mg_sink_events AS e, bounds AS b
    WHERE e.sink = $1 AND e.id >= b.first AND e.id < b.last
    ORDER BY e.id
    LIMIT $4
), reach AS (
    SELECT coalesce(max(o.id), 0) + 1 AS end_of_batch FROM oldest AS o
), target AS (
    SELECT b.first AS old_first,
           least(r.end_of_batch, greatest(
               CASE WHEN $2::bigint IS NULL THEN 0 ELSE b.last - $2::bigint + 1 END,
               CASE WHEN $3::double precision IS NULL THEN 0
                    ELSE coalesce(
                        (SELECT min(o.id) FROM oldest AS o
                         WHERE o.sequenced_at >= now() - make_interval(secs => $3)),
                        r.end_of_batch)
               END)) AS first
    FROM bounds AS b, reach AS r
), pruned AS (
    DELETE FROM mg_sink_events AS e
    USING target AS t
    WHERE e.sink = $1 AND e.id >= t.old_first AND e.id < t.first
    RETURNING e.id, e.hash
), saved AS (
    INSERT INTO mg_sink_bounds AS s (sink, first, anchor)
    SELECT $1, t.first, p.hash
    FROM target AS t
    JOIN pruned AS p ON p.id = t.first - 1
    ON CONFLICT (sink) DO UPDATE SET first = excluded.first, anchor = excluded.anchor,
                                     pruned_at = now()
    RETURNING s.first
)
SELECT (SELECT count(*) FROM pruned) AS pruned,
       coalesce((SELECT v.first FROM saved AS v), (SELECT b.first FROM bounds AS b)) AS first

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
