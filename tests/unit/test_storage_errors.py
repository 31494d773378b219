"""What a client reads when storage fails: words, not the driver's text with the address."""

from __future__ import annotations

import logging

import asyncpg
import pytest

from mg.errors import StorageUnavailable
from mg.postgres import failures
from mg.postgres.failures import translate

REFUSED = ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 15433)")


def test_a_storage_error_says_what_happened_without_the_database_address(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(failures, "_last_logged", [float("-inf")])  # not throttled here
    with caplog.at_level(logging.WARNING, logger="mg.postgres"):
        mapped = translate(REFUSED, doing="reading a machine")
    assert isinstance(mapped, StorageUnavailable)
    assert str(mapped) == "storage unavailable while reading a machine: Postgres does not answer"
    conflict = translate(asyncpg.SerializationError("could not serialize"), doing="a step")
    assert str(conflict).endswith("a conflict with a concurrent transaction")
    assert "15433" in caplog.text  # the details are in the log
