-- compatible-with: 6
-- Sink retention (contract v1.1, section 7): what a sink's pruner has deleted.
--
-- first: the first position the sink holds (older ones were pruned); anchor: the hash of
-- position first - 1, so the chain still verifies from first. No row: nothing was pruned
-- (first is 1, the anchor is hash_0). The pruner deletes a prefix of mg_sink_events and moves
-- this row in the same transaction; readers read it in the same statement (one snapshot) as
-- the events, so a read of a pruned span is refused (410), never silently shortened.
--
-- Additive only (expand/contract): a new table and a new view. Nodes of the previous release
-- ignore both (they do not prune, and their reads of a pruned sink simply start later).
-- Deletes are not published (mg_sink publishes inserts only): a downstream archive keeps all.
CREATE TABLE mg_sink_bounds (
    sink      text        PRIMARY KEY,
    first     bigint      NOT NULL CHECK (first > 1),
    anchor    bytea       NOT NULL CHECK (length(anchor) = 32),
    pruned_at timestamptz NOT NULL DEFAULT now()
);

-- Each sink's held span, for psql: first and last positions, the anchor, how many events are
-- held and when the oldest held one was sequenced (what max_age is measured against).
CREATE VIEW mg_sink_retention AS
SELECT h.sink, coalesce(b.first, 1) AS first, h.position AS last,
       h.position - coalesce(b.first, 1) + 1 AS held,
       encode(coalesce(b.anchor, decode(repeat('00', 32), 'hex')), 'hex') AS anchor,
       o.sequenced_at AS oldest_sequenced_at, b.pruned_at AS last_pruned_at
FROM mg_sink_heads AS h
LEFT JOIN mg_sink_bounds AS b ON b.sink = h.sink
LEFT JOIN LATERAL (
    SELECT e.sequenced_at
    FROM mg_sink_events AS e
    WHERE e.sink = h.sink AND e.id >= coalesce(b.first, 1)
    ORDER BY e.id
    LIMIT 1
) AS o ON true
WHERE h.position IS NOT NULL
ORDER BY h.sink;
