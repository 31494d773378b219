-- Named queries of the timer and notification loops.

-- name: claim_due_timers
-- Due machines in fire-time order. The claim moves wake_at to the end of a lease: while the
-- claimer works the row is not due for anyone else, and if the claimer dies the row simply
-- becomes due again when the lease ends. The step's commit writes the real wake_at back.
WITH due AS (
    SELECT ns, id, wake_at
    FROM mg_machines
    WHERE wake_at <= $1
    ORDER BY wake_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
UPDATE mg_machines m
SET wake_at = $1 + make_interval(secs => $3), lease_owner = $4, lease_until = $1 + make_interval(secs => $3)
FROM due
WHERE m.ns = due.ns AND m.id = due.id
RETURNING m.ns, m.id, due.wake_at AS due_at, m.timer_fire_at, m.timer_set_by_version

-- name: next_wake
SELECT wake_at FROM mg_machines WHERE wake_at IS NOT NULL ORDER BY wake_at LIMIT 1

-- name: release_wake
-- A claim that found nothing to do puts the machine's real wake time back (no version bump:
-- nothing about the machine changed).
UPDATE mg_machines SET wake_at = $3, lease_owner = NULL, lease_until = NULL
WHERE ns = $1 AND id = $2 AND version = $4

-- name: enqueue_notification
-- Queued only if the machine exists (in any status), due at once only as its queue's head
-- (0006_notification_heads.sql).
SELECT mg_enqueue_notification($1, $2, $3, $4, $5, $6, $7, $8)

-- name: claim_due_notifications
-- Only the head of each machine's queue has a deliver_at (0006), so this reads heads only;
-- the NOT EXISTS is a guard (one index probe per head) that keeps the order even if a row was
-- written by hand. Claims move deliver_at to the end of a lease, like timers.
WITH due AS (
    SELECT n.id, n.deliver_at
    FROM mg_notifications n
    WHERE n.deliver_at <= $1
      AND NOT EXISTS (
          SELECT 1 FROM mg_notifications e
          WHERE e.ns = n.ns AND e.machine_id = n.machine_id AND e.id < n.id)
    ORDER BY n.deliver_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
UPDATE mg_notifications n
SET deliver_at = $1 + make_interval(secs => $3)
FROM due
WHERE n.id = due.id
RETURNING n.id, n.ns, n.machine_id, n.args, n.range_after, n.range_limit, n.range_direction,
          n.trace, n.attempt, n.created_at, due.deliver_at AS due_at

-- name: next_notification
-- The next future attempt (a retry, or a lease ending). A notification behind its queue head
-- has none: consuming the head makes it due, and the consuming node re-arms its own loop.
SELECT deliver_at FROM mg_notifications WHERE deliver_at > $1 ORDER BY deliver_at LIMIT 1

-- name: postpone_notification
UPDATE mg_notifications SET deliver_at = $2, attempt = $3, last_error = $4 WHERE id = $1

-- name: resume_notifications
-- A repaired machine gets its parked queue back: its head is due again (the rest follow it).
UPDATE mg_notifications SET deliver_at = $3
WHERE id = (SELECT min(id) FROM mg_notifications WHERE ns = $1 AND machine_id = $2)
  AND deliver_at IS NULL
