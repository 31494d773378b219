"""Combining observers: the service reports each fact once, to one callable."""

from __future__ import annotations

import logging

from mg.core.facts import Fact, Observer

log = logging.getLogger("mg.observability")


def fan_out(*observers: Observer) -> Observer:
    """One observer calling each of ``observers`` in turn. A failing observer is logged and
    skipped: watching a step must never fail it."""

    def observe(fact: Fact) -> None:
        for observer in observers:
            try:
                observer(fact)
            except Exception:
                log.exception("observer %r failed on %r", observer, fact)

    return observe
