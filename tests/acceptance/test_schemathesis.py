"""Schemathesis as a client runs it: the ``st run`` command line with every check, over the
coverage and fuzzing phases, against a live node. It must find nothing: no 5xx, no answer the
OpenAPI document does not describe, no valid request refused, no invalid one accepted, no
request left hanging."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import trio

from mg.node import Node
from tests.support.cluster import NodeFactory

SEED = 1
EXAMPLES = 5  # per operation in the fuzzing phase; the coverage phase is what it is (~1,400 cases)


@pytest.mark.timeout(240)
async def test_schemathesis_finds_nothing(nodes: NodeFactory, tmp_path: Path) -> None:
    node: Node = await nodes(sinks_config={"main": {"max_wait": "1s"}}, sinks=["main"])
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        f"{node.url}/openapi.json",
        "--checks",
        "all",
        "--phases",
        "coverage,fuzzing",
        "--seed",
        str(SEED),
        "--max-examples",
        str(EXAMPLES),
        "--generation-database",
        "none",
        "--request-timeout",
        "20",
        "--no-color",
    ]
    result = await trio.run_process(
        command, cwd=tmp_path, capture_stdout=True, stderr=subprocess.STDOUT, check=False
    )
    output = result.stdout.decode(errors="replace")
    summary = output[output.rfind("SUMMARY") :] if "SUMMARY" in output else output[-3000:]
    assert result.returncode == 0, output[-20000:]
    assert "generated" in summary
    assert "failures" not in summary.lower().split("warnings")[0], summary
