-- Named queries of the operator console (mg/console): small reads, each bounded by what a page
-- shows.

-- name: console_machine_counts
-- The overview's machines by status: an index-only count over mg_machines_by_status
-- (ns, status, id), grouped per namespace and status.
SELECT ns, status, count(*) AS machines
FROM mg_machines
GROUP BY ns, status

-- name: console_timers_overdue
-- Machines whose timer (or timer retry) is due and not yet handled; served by
-- mg_machines_wake_at, so it reads the overdue ones only.
SELECT ns, count(*) AS overdue
FROM mg_machines
WHERE wake_at < now()
GROUP BY ns

-- name: console_sink_bounds
-- min and max of a primary-key prefix: two index probes, whatever the sink's length.
SELECT min(id) AS first, max(id) AS last
FROM mg_sink_events
WHERE sink = $1

-- name: console_machine_notifications
-- A machine's queued notifications, oldest (next to deliver) first, one page.
SELECT id, args, range_after, range_limit, range_direction, created_at, attempt, deliver_at,
       last_error
FROM mg_notifications
WHERE ns = $1 AND machine_id = $2
ORDER BY id
LIMIT $3

-- name: console_count_status
-- How many machines of a namespace have a status (the bulk repair's confirmation): an
-- index-only count over mg_machines_by_status.
SELECT count(*) FROM mg_machines WHERE ns = $1 AND status = $2
