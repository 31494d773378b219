-- The benchmark's writers (tools/bench_sink.py, "concurrent"): outbox rows alone, without the
-- machine row and events, so the sequencer is what is measured. The same INSERT as the outbox
-- part of a step's write statement (insert_machine_with_events / update_machine_with_events in
-- sql/queries/machines.sql); keep the two alike.
-- $1 ns, $2 machine id, $3 incarnation, $4 sinks, $5..$8 the events as column arrays.
INSERT INTO mg_sink_outbox (sink, ns, machine_id, incarnation, event_id, created_at,
                            format_version, data)
SELECT s.sink, $1, $2, $3, e.event_id, e.created_at, e.format_version, e.data
FROM unnest($4::text[]) AS s(sink)
CROSS JOIN unnest($5::bigint[], $6::timestamptz[], $7::integer[], $8::bytea[])
    AS e(event_id, created_at, format_version, data)
ORDER BY s.sink, e.event_id
