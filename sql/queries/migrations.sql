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

-- name: create_schema_table
-- One row: the schema version (the last migration applied) and the oldest code schema version
-- that may still run against it. Kept by the migration runner, not by a migration, so that the
-- release before it (which refuses migrations it does not know) still runs beside it.
CREATE TABLE IF NOT EXISTS mg_schema (
    one               boolean PRIMARY KEY DEFAULT true CHECK (one),
    version           integer     NOT NULL,
    oldest_compatible integer     NOT NULL,
    updated_at        timestamptz NOT NULL DEFAULT now()
)

-- name: schema_table_exists
SELECT to_regclass('mg_schema') IS NOT NULL

-- name: schema_record
SELECT version, oldest_compatible FROM mg_schema

-- name: record_schema
INSERT INTO mg_schema (version, oldest_compatible) VALUES ($1, $2)
ON CONFLICT (one) DO UPDATE
SET version = excluded.version, oldest_compatible = excluded.oldest_compatible, updated_at = now()
