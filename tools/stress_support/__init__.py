"""The parts of tools/stress.py: the workload, the invariants, and what "quiet" means."""

QUIET = """
SELECT (SELECT count(*) FROM mg_notifications)
     + (SELECT count(*) FROM mg_machines WHERE wake_at <= now() OR status = 'retrying')
     + (CASE WHEN to_regclass('mg_sink_outbox') IS NULL THEN 0
             ELSE (SELECT count(*) FROM mg_sink_outbox) END)
"""
