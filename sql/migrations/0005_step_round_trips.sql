-- Fewer round trips per step, and what the per-node state cache needs to validate itself.
--
-- history_revision: bumped by modernize, which rewrites events in place without touching the
-- machine's version. A node's cached copy of a machine is current exactly when (incarnation,
-- version, history_revision) still match the row.

ALTER TABLE mg_machines ADD COLUMN history_revision bigint NOT NULL DEFAULT 0;

-- The first round trip of a step, inside its transaction: bound the lock wait, take the
-- machine's cluster-wide lock, then read the machine, unless the caller's cached copy
-- (p_incarnation, p_version, p_revision) is still current, in which case only `current` is
-- true. Always one row; `present` false: the machine does not exist, and new_incarnation is
-- the incarnation a new machine of that id gets.
--
-- VOLATILE plpgsql on purpose: each statement in it takes a fresh snapshot (READ COMMITTED),
-- so the row is read after the lock is granted, never from a snapshot taken while waiting.
CREATE FUNCTION mg_lock_machine(
    p_ns text, p_id text, p_lock_timeout text,
    p_incarnation bigint, p_version bigint, p_revision bigint)
RETURNS TABLE (present boolean, current boolean, new_incarnation bigint, tags text[],
               machine mg_machines)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    found_row mg_machines%ROWTYPE;
BEGIN
    PERFORM set_config('lock_timeout', p_lock_timeout, true);
    PERFORM pg_advisory_xact_lock(hashtextextended(p_ns || chr(1) || p_id, 0));
    SELECT * INTO found_row FROM mg_machines AS m WHERE m.ns = p_ns AND m.id = p_id;
    present := FOUND;
    current := false;
    IF NOT present THEN
        new_incarnation := nextval('mg_incarnations');
        RETURN NEXT;
        RETURN;
    END IF;
    IF found_row.incarnation = p_incarnation AND found_row.version = p_version
            AND found_row.history_revision = p_revision THEN
        current := true;
        RETURN NEXT;
        RETURN;
    END IF;
    tags := ARRAY(SELECT t.tag FROM mg_tags AS t
                  WHERE t.ns = p_ns AND t.machine_id = p_id ORDER BY t.tag);
    machine := found_row;
    RETURN NEXT;
END
$$;
