-- The table a downstream Postgres creates before subscribing to mg's publication mg_sink
-- (README, "Sinks"). Same name and columns as mg's own mg_sink_events; no trigger: the
-- replicated rows already carry their positions and hashes, and `mg sink verify` (or your own
-- check, docs/sink.md) recomputes the chain from them.

CREATE TABLE mg_sink_events (
    sink           text        NOT NULL,
    id             bigint      NOT NULL,
    ns             text        NOT NULL,
    machine_id     text        NOT NULL,
    incarnation    bigint      NOT NULL,
    event_id       bigint      NOT NULL,
    created_at     timestamptz NOT NULL,
    format_version integer,
    data           bytea       NOT NULL,
    hash           bytea       NOT NULL,
    sequenced_at   timestamptz NOT NULL,
    PRIMARY KEY (sink, id)
);
