-- Named queries of the metrics sampler: small aggregates run every few seconds by each node.

-- name: sample_troubled_machines
-- Only the rare statuses: counting every sleeping machine each sample would read the table.
-- Served by mg_machines_by_status (ns, status, id).
SELECT ns, status, count(*) AS machines
FROM mg_machines
WHERE status IN ('retrying', 'failed')
GROUP BY ns, status

-- name: sample_queued_notifications
SELECT ns, count(*) AS queued
FROM mg_notifications
GROUP BY ns

-- name: sample_sink_outbox
-- Events committed but not yet moved into their sink, and the age of the oldest of them.
SELECT sink, count(*) AS pending,
       coalesce(extract(epoch FROM now() - min(created_at)), 0)::double precision AS oldest_seconds
FROM mg_sink_outbox
GROUP BY sink

-- name: sample_sink_heads
SELECT sink, position FROM mg_sink_heads WHERE position IS NOT NULL
