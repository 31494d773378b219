"""The parts of tools/stress.py: the workload, the invariants, and what "quiet" means."""

QUIET = """
SELECT (SELECT count(*) FROM mg_notifications)
     -- Timers not yet due count too: one firing after the check began would write events the
     -- check had not waited for.
     + (SELECT count(*) FROM mg_machines WHERE wake_at IS NOT NULL)
     + (CASE WHEN to_regclass('mg_sink_outbox') IS NULL THEN 0
             ELSE (SELECT count(*) FROM mg_sink_outbox) END)
"""
