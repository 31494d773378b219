-- name: migration_lock
-- Transaction-level: two nodes starting at once apply migrations one after the other, and the
-- lock cannot outlive the transaction.
SELECT pg_advisory_xact_lock(1296516946, 1)

-- name: create_migrations_table
CREATE TABLE IF NOT EXISTS mg_schema_migrations (
    version    integer PRIMARY KEY,
    name       text        NOT NULL,
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)

-- name: migrations_table_exists
SELECT to_regclass('mg_schema_migrations') IS NOT NULL

-- name: applied_migrations
SELECT version, name, checksum FROM mg_schema_migrations ORDER BY version

-- name: record_migration
INSERT INTO mg_schema_migrations (version, name, checksum) VALUES ($1, $2, $3)
