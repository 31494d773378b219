-- Machines, their histories and tags; room for timers, notifications and the sink outbox.
--
-- Values (event data, aux state, args) are stored as their canonical MessagePack encoding
-- (bytea), exactly the bytes the sink's hash chain covers.

CREATE SEQUENCE mg_incarnations;

CREATE TABLE mg_machines (
    ns                     text        NOT NULL,
    id                     text        NOT NULL,
    -- Tells apart two machines of the same id separated by a remove.
    incarnation            bigint      NOT NULL,
    -- Fencing: every step bumps it, and the commit requires the version it read.
    version                bigint      NOT NULL,
    status                 text        NOT NULL
        CHECK (status IN ('sleeping', 'waiting', 'retrying', 'failed')),
    last_event_id          bigint      NOT NULL,
    -- NULL: no aux state. A null value is stored as MessagePack nil (0xc0), not as NULL.
    aux_data               bytea,
    aux_format_version     integer,
    timer_fire_at          timestamptz,
    timer_range_after      bigint,
    timer_range_limit      bigint,
    timer_range_direction  text,
    timer_handling_timeout double precision,
    timer_trace            text,
    timer_set_by_version   bigint,
    -- When a background loop must act: the timer's fire time while waiting, the retry time
    -- while retrying, NULL otherwise. Only this column is indexed for the timer loop.
    wake_at                timestamptz,
    -- A timer loop's claim on a due machine; a crashed claimer's claim simply expires.
    lease_owner            text,
    lease_until            timestamptz,
    retry_subject          text,
    retry_attempt          integer,
    retry_next_at          timestamptz,
    retry_first_failed_at  timestamptz,
    retry_reason           text,
    failure_reason         text,
    status_before_failure  text,
    created_at             timestamptz NOT NULL,
    updated_at             timestamptz NOT NULL,
    PRIMARY KEY (ns, id)
);

CREATE INDEX mg_machines_wake_at ON mg_machines (wake_at) WHERE wake_at IS NOT NULL;
CREATE INDEX mg_machines_by_status ON mg_machines (ns, status, id);

CREATE TABLE mg_events (
    ns             text        NOT NULL,
    machine_id     text        NOT NULL,
    event_id       bigint      NOT NULL,
    created_at     timestamptz NOT NULL,
    format_version integer,
    data           bytea       NOT NULL,
    PRIMARY KEY (ns, machine_id, event_id)
);

CREATE TABLE mg_tags (
    ns         text NOT NULL,
    tag        text NOT NULL,
    machine_id text NOT NULL,
    PRIMARY KEY (ns, tag)
);

CREATE INDEX mg_tags_by_machine ON mg_tags (ns, machine_id);

-- Queued notifications, delivered in id order per machine (delivery comes with the timers).
CREATE TABLE mg_notifications (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ns              text        NOT NULL,
    machine_id      text        NOT NULL,
    args            bytea       NOT NULL,
    range_after     bigint,
    range_limit     bigint,
    range_direction text        NOT NULL DEFAULT 'forward',
    trace           text,
    created_at      timestamptz NOT NULL
);

CREATE INDEX mg_notifications_by_machine ON mg_notifications (ns, machine_id, id);

-- Events on their way to sinks: written by the step's transaction, moved into the sink log by
-- the sink's sequencer.
CREATE TABLE mg_sink_outbox (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sink           text        NOT NULL,
    ns             text        NOT NULL,
    machine_id     text        NOT NULL,
    incarnation    bigint      NOT NULL,
    event_id       bigint      NOT NULL,
    created_at     timestamptz NOT NULL,
    format_version integer,
    data           bytea       NOT NULL
);

CREATE INDEX mg_sink_outbox_by_sink ON mg_sink_outbox (sink, id);
