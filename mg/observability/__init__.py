"""Seeing inside a node: log context, the facts turned into log lines and Prometheus series,
the database gauges sampled in the background, and health checks."""
