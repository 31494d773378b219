-- compatible-with: 6
-- Trimming (contract v1.1, section 7): the oldest event a machine holds, kept on its row so
-- that history bounds and range arithmetic never scan events. `first_event_id = last_event_id
-- + 1` when none is held.
--
-- Additive only (expand/contract): a column with a constant default is added without
-- rewriting the table, and 1 is exact for every machine stored before trimming existed. Nodes
-- of the previous release keep working: they neither read nor write the column (they do not
-- trim, and their steps leave it as it is).
ALTER TABLE mg_machines ADD COLUMN first_event_id bigint NOT NULL DEFAULT 1;

-- For psql: machines whose history was trimmed, with what they hold (first..last) and how
-- many of their events are gone. Reads every machine row: a view for looking, not polling.
CREATE VIEW mg_trimmed_machines AS
SELECT ns, id, status, first_event_id AS first, last_event_id AS last,
       last_event_id - first_event_id + 1 AS held, first_event_id - 1 AS trimmed, updated_at
FROM mg_machines
WHERE first_event_id > 1
ORDER BY ns, id;
