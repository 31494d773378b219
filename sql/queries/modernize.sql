-- Named queries of the modernize operation: events rewritten in place under the machine lock.

-- name: fence_machine
-- Modernize changes no version, so it cannot fence with update_machine: it checks the version
-- it read, and bumps history_revision so that nodes' cached copies of the history go stale.
UPDATE mg_machines SET history_revision = history_revision + 1
WHERE ns = $1 AND id = $2 AND version = $3
RETURNING version

-- name: update_events
-- Same ids and created_at; only the content changes. The sink outbox and the sink keep the
-- content the events had when they were committed.
UPDATE mg_events AS e
SET format_version = u.format_version, data = u.data
FROM unnest($3::bigint[], $4::integer[], $5::bytea[]) AS u(event_id, format_version, data)
WHERE e.ns = $1 AND e.machine_id = $2 AND e.event_id = u.event_id
