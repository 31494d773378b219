"""The commands of ``mg`` that talk to a running node over HTTP, through ``mg.client``:
``mg machines ...`` and ``mg sink tail``. (``mg serve``, ``mg migrate`` and ``mg sink verify``
work on the database and live in ``mg.cli`` and ``mg.sink_cli``; ``mg demo`` in ``mg.demo``.)

Every command prints readable text by default and one JSON document with ``--json`` (JSON lines
for ``mg sink tail``). Exit codes: 0 success, 1 mg answered with an error (its code and message
go to stderr), 2 a usage error, 3 no answer from mg (unreachable, or the connection was lost),
130 interrupted by Ctrl-C (except ``mg sink tail --follow``, which Ctrl-C ends normally).
"""
