-- Named statements of tools/bench.py (never used by mg itself).

-- name: load_machines
-- $3 machines '<$2><i>' in namespace $1, each with $4 events (ids 1..$4), sleeping.
INSERT INTO mg_machines (ns, id, incarnation, version, status, last_event_id, aux_data,
                         aux_format_version, created_at, updated_at)
SELECT $1, $2 || i, i, $4, 'sleeping', $4, '\x81a46c6f6164c3'::bytea, 1, now(), now()
FROM generate_series(1, $3) AS i

-- name: load_events
INSERT INTO mg_events (ns, machine_id, event_id, created_at, format_version, data)
SELECT $1, $2 || i, e, now(), 1, '\x81a46172677381a16e01'::bytea
FROM generate_series(1, $3) AS i CROSS JOIN generate_series(1, $4) AS e

-- name: load_timers
-- $4 waiting machines '<$2><i>', the i-th due at $3 + (i - 1) * $5 microseconds.
INSERT INTO mg_machines (ns, id, incarnation, version, status, last_event_id,
                         timer_fire_at, timer_set_by_version, wake_at, created_at, updated_at)
SELECT $1, $2 || i, i, 1, 'waiting', 0,
       $3::timestamptz + (i - 1) * $5 * interval '1 microsecond', 1,
       $3::timestamptz + (i - 1) * $5 * interval '1 microsecond', now(), now()
FROM generate_series(1, $4) AS i

-- name: analyze
ANALYZE

-- name: create_database
-- Not parametrisable in Postgres; the name is fixed here.
CREATE DATABASE mg_bench_dbos

-- name: drop_database
DROP DATABASE IF EXISTS mg_bench_dbos WITH (FORCE)

-- name: drop_scale_small
DROP DATABASE IF EXISTS mg_scale_small WITH (FORCE)

-- name: create_scale_small
CREATE DATABASE mg_scale_small

-- name: drop_scale_large
DROP DATABASE IF EXISTS mg_scale_large WITH (FORCE)

-- name: create_scale_large
CREATE DATABASE mg_scale_large
