-- Sinks: one totally ordered, hash-chained log per sink (PROTOCOL section 5; docs/sink.md).
--
-- Steps write mg_sink_outbox rows in their own transaction (0001). The sink's sequencer, one per
-- sink cluster-wide (it holds the session-level advisory lock (1296520011, hashtext(sink))),
-- moves them here in batches. The trigger below gives each row its position and its hash, from
-- the previous row of the same sink, so positions are gap-free (1, 2, 3, ...) and follow the
-- commit order of the batches.

CREATE TABLE mg_sink_events (
    sink           text        NOT NULL,
    -- The position: the event's "id" in the sink. Assigned by the trigger, never by callers.
    id             bigint      NOT NULL,
    ns             text        NOT NULL,
    machine_id     text        NOT NULL,
    -- Tells apart two machines of the same id separated by a remove (each starts at event 1).
    incarnation    bigint      NOT NULL,
    event_id       bigint      NOT NULL,
    created_at     timestamptz NOT NULL,
    format_version integer,
    -- The canonical MessagePack encoding of the event's data: exactly the bytes hashed.
    data           bytea       NOT NULL,
    hash           bytea       NOT NULL,
    sequenced_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sink, id)
);

-- Each event enters a sink once: moving an outbox row again changes nothing (the sequencer
-- inserts ON CONFLICT DO NOTHING). The incarnation is part of the key, or a machine started
-- again after a remove would have its event 1 dropped as a duplicate of the old machine's.
CREATE UNIQUE INDEX mg_sink_events_once
    ON mg_sink_events (sink, ns, machine_id, incarnation, event_id);

-- hash_n = sha256(hash_(n-1) || be8(id) || utf8(ns) || 0x00 || utf8(machine_id) || 0x00 ||
--                 be8(event_id) || be8(created_at in µs since the epoch) ||
--                 be4(coalesce(format_version, -1)) || data),   hash_0 = 32 zero bytes.
CREATE FUNCTION mg_sink_chain() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    last_id   bigint;
    last_hash bytea;
BEGIN
    -- One writer per sink makes "the previous row" well defined. The sequencer holds this lock
    -- for as long as it leads (a session may take again a lock it holds), so any other session
    -- is refused at once; with no sequencer running, an insert by hand holds it until its
    -- transaction ends, and a sequencer starting meanwhile waits.
    IF NOT pg_try_advisory_xact_lock(1296520011, hashtext(NEW.sink)) THEN
        RAISE EXCEPTION 'sink % is being written by its sequencer in another session', NEW.sink
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'rows of mg_sink_events are written by the sink''s sequencer only';
    END IF;
    -- Rows inserted earlier by the same statement are visible here (a row-level BEFORE trigger
    -- sees the rows its statement has already processed), so a batch chains row after row.
    SELECT e.id, e.hash INTO last_id, last_hash
    FROM mg_sink_events AS e
    WHERE e.sink = NEW.sink
    ORDER BY e.id DESC
    LIMIT 1;
    IF last_id IS NULL THEN
        last_id := 0;
        last_hash := decode(repeat('00', 32), 'hex');
    END IF;
    IF NEW.id IS NOT NULL AND NEW.id <> last_id + 1 THEN
        RAISE EXCEPTION 'position % is not the next position (%) of sink %',
            NEW.id, last_id + 1, NEW.sink
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    NEW.id := last_id + 1;
    NEW.hash := sha256(
        last_hash
        || int8send(NEW.id)
        || convert_to(NEW.ns, 'UTF8') || '\x00'::bytea
        || convert_to(NEW.machine_id, 'UTF8') || '\x00'::bytea
        || int8send(NEW.event_id)
        || int8send((extract(epoch FROM NEW.created_at) * 1000000)::bigint)
        || int4send(coalesce(NEW.format_version, -1))
        || NEW.data);
    RETURN NEW;
END
$$;

CREATE TRIGGER mg_sink_chain BEFORE INSERT ON mg_sink_events
    FOR EACH ROW EXECUTE FUNCTION mg_sink_chain();

-- Published rows are never changed: a changed row would break the chain from there on.
-- (Deleting an old prefix, for retention, stays possible: verify the rest with --from.)
CREATE FUNCTION mg_sink_immutable() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'rows of mg_sink_events are immutable'
        USING ERRCODE = 'object_not_in_prerequisite_state';
END
$$;

CREATE TRIGGER mg_sink_immutable BEFORE UPDATE ON mg_sink_events
    FOR EACH ROW EXECUTE FUNCTION mg_sink_immutable();

-- For logical replication: a downstream Postgres subscribes to this publication (README,
-- "Sinks"). Inserts only: pruning old rows here does not prune a downstream archive.
CREATE PUBLICATION mg_sink FOR TABLE mg_sink_events WITH (publish = 'insert');
