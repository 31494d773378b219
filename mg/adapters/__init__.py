"""Adapters for the outside world other than Postgres: processors over HTTP."""
