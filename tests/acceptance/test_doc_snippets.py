"""The snippets of README.md and docs/ run as printed, against the example processor they sit
next to: the order example (``mg.demo.orders``, namespace ``orders``) and the subscription
example (``examples/subscriptions``, namespace ``subscriptions``) behind one live node.

A snippet is the fenced block right after a ``<!-- snippet: MODE ... -->`` comment. Modes:

- ``run TARGET``: a Python program, run against the node (its URL replaces the docs' default);
  each ``print(...)  # expected`` must print the expected text (``...`` matches anything).
- ``sh TARGET``: shell lines; those starting with ``mg`` run (exit 0), ``curl`` GETs are sent,
  ``export`` sets the environment of the following lines.
- ``transcript TARGET``: ``$ command`` lines with their output, compared line by line with
  times masked; ``; echo "exit $?"`` checks the exit code.
- ``processor ARGS``: a module defining a ``Processor``; its ``init`` must accept ``ARGS``.
- ``tests``: pytest-style test functions, each run.
- ``define``: a module that must run without error (it defines what the text explains).
- ``excerpt PATH``: every line of the snippet (but ``...`` and comments) is a line of ``PATH``.
- ``skip REASON``: not run; the reason says where it is checked instead.

The snippets of one page run in order on one node, as a reader following the page would; every
Python block of a page must carry a marker.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import re
import shlex
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import httpx
import pytest
import trio

from mg.demo.orders import Orders
from mg.node import Node, running_node
from mg.processor import Processor, ProcessorApp, serve
from mg.settings import from_mapping
from tests.support.cli import ROOT, environment, mg_process

PAGES = ["README.md", "docs/tutorial.md", "docs/processor.md", "docs/sink.md"]
MARKER = re.compile(r"^<!-- snippet: (\S+)\s*(.*?)\s*-->$")
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")
DEFAULT_URLS = ("http://127.0.0.1:8022", "http://127.0.0.1:8023")


@dataclass(frozen=True)
class Snippet:
    page: str
    line: int
    mode: str
    argument: str
    language: str
    text: str

    def where(self) -> str:
        return f"{self.page}:{self.line}"


def snippets(page: str) -> list[Snippet]:
    lines = (ROOT / page).read_text().splitlines()
    found: list[Snippet] = []
    marker: re.Match[str] | None = None
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("```") and len(line) > 3:
            end = lines.index("```", index + 1)
            language = line[3:].strip()
            if marker is not None:
                body = "\n".join(lines[index + 1 : end]) + "\n"
                found.append(Snippet(page, index + 1, marker[1], marker[2], language, body))
            elif language == "python":
                raise AssertionError(f"{page}:{index + 1}: a python block without a marker")
            marker = None
            index = end + 1
            continue
        matched = MARKER.match(line)
        if matched:
            marker = matched
        elif line.strip():
            marker = None
        index += 1
    return found


def load_subscriptions() -> ModuleType:
    path = ROOT / "examples" / "subscriptions" / "processor.py"
    spec = importlib.util.spec_from_file_location("example_subscriptions", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
async def node(database_url: str) -> AsyncIterator[Node]:
    """One node with both examples: ``orders`` and ``subscriptions``."""
    subscriptions = load_subscriptions().Subscriptions()
    async with trio.open_nursery() as nursery:
        orders_url = await nursery.start(serve, Orders(), "127.0.0.1", 0)
        subscriptions_url = await nursery.start(serve, subscriptions, "127.0.0.1", 0)
        settings = from_mapping(
            {
                "sinks": {"main": {}, "billing": {}},
                "namespaces": {
                    "orders": {
                        "processor": {"url": orders_url + "/processor"},
                        "modernizer": {
                            "url": orders_url + "/modernizer",
                            "current_format_version": 2,
                        },
                        "sinks": ["main"],
                    },
                    "subscriptions": {
                        "processor": {"url": subscriptions_url + "/processor"},
                        "sinks": ["billing"],
                    },
                },
            },
            environ={},
        )
        async with running_node(settings, database_url, port=0) as started:
            yield started
        nursery.cancel_scope.cancel()


def masked(text: str) -> list[str]:
    """Lines with times masked and runs of blanks collapsed (column widths follow the data)."""
    lines = [" ".join(TIME.sub("<time>", line).split()) for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def matches(expected: str, actual: str) -> bool:
    pattern = ".*".join(re.escape(part.strip()) for part in expected.split("..."))
    return re.fullmatch(pattern, actual.strip()) is not None


def with_url(text: str, url: str) -> str:
    for default in DEFAULT_URLS:
        text = text.replace(default, url)
    return text


async def run_program(snippet: Snippet, node: Node) -> None:
    source = with_url(snippet.text, node.url)
    expected = [
        line.split("#", 1)[1].strip() if "#" in line else None
        for line in snippet.text.splitlines()
        if line.strip().startswith("print(")
    ]

    def run() -> str:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(source, snippet.where(), "exec"), {"__name__": "__main__"})
        return out.getvalue()

    printed = (await trio.to_thread.run_sync(run)).splitlines()
    assert len(printed) == len(expected), (snippet.where(), printed)
    for want, got in zip(expected, printed, strict=True):
        if want is not None:
            assert matches(want, got), (snippet.where(), want, got)


def environment_for(node: Node, exported: dict[str, str]) -> dict[str, str]:
    return environment(**{"MG_URL": node.url, **exported})


def export(command: str, exported: dict[str, str], node: Node) -> None:
    for assignment in shlex.split(command)[1:]:
        name, _, value = assignment.partition("=")
        exported[name] = node.url if name == "MG_URL" else value


async def run_shell(snippet: Snippet, node: Node, exported: dict[str, str]) -> None:
    for line in snippet.text.splitlines():
        words = shlex.split(line, comments=True)
        if not words:
            continue
        if words[0] == "export":
            export(line.split("#", 1)[0], exported, node)
        elif words[0] == "mg":
            ran = await mg_process(*words[1:], env=environment_for(node, exported))
            assert ran.code == 0, (snippet.where(), line, ran)
        elif words[0] == "curl":
            url = words[1].replace("localhost:8022", node.url.removeprefix("http://"))
            async with httpx.AsyncClient(trust_env=False) as http:
                got = await http.get(url if "://" in url else "http://" + url)
            assert got.status_code == 200, (snippet.where(), line, got.text)


async def run_transcript(snippet: Snippet, node: Node, exported: dict[str, str]) -> None:
    steps: list[tuple[str, list[str]]] = []
    for line in snippet.text.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        else:
            steps[-1][1].append(line)
    for given, output in steps:
        if given.startswith("export "):
            export(given, exported, node)
            continue
        code = 0
        command = given.removesuffix('; echo "exit $?"')
        if command != given:
            code = int(output.pop().split()[1])
        words = shlex.split(command)
        assert words[0] == "mg", (snippet.where(), command)
        ran = await mg_process(*words[1:], env=environment_for(node, exported))
        assert ran.code == code, (snippet.where(), command, ran)
        assert masked(ran.out + ran.err) == masked("\n".join(output)), (snippet.where(), command)


async def run_processor(snippet: Snippet) -> None:
    namespace: dict[str, Any] = {"__name__": "snippet"}
    exec(compile(snippet.text, snippet.where(), "exec"), namespace)
    classes = [
        value
        for value in namespace.values()
        if isinstance(value, type) and issubclass(value, Processor) and value is not Processor
    ]
    assert classes, snippet.where()
    body = {
        "kind": "signal",
        "signal": {"type": "init", "args": json.loads(snippet.argument)},
        "machine": {
            "ns": "orders",
            "id": "o-1",
            "history": [],
            "aux_state": None,
            "timer": None,
            "tags": [],
        },
    }
    for cls in classes:
        transport = httpx.ASGITransport(app=ProcessorApp(cls()))
        async with httpx.AsyncClient(transport=transport, base_url="http://p") as http:
            answer = await http.post("/processor", json=body)
        assert answer.status_code == 200, (snippet.where(), answer.text)


async def run_tests(snippet: Snippet) -> None:
    namespace: dict[str, Any] = {"__name__": "snippet"}
    exec(compile(snippet.text, snippet.where(), "exec"), namespace)
    tests: list[Callable[[], Any]] = [
        value for name, value in namespace.items() if name.startswith("test_")
    ]
    assert tests, snippet.where()
    for test in tests:
        await trio.to_thread.run_sync(test)


def check_excerpt(snippet: Snippet) -> None:
    def bare(line: str) -> str:
        return line.split("  # ", 1)[0].strip()  # a comment may differ; the code may not

    source = {bare(line) for line in (ROOT / snippet.argument).read_text().splitlines()}
    for line in snippet.text.splitlines():
        stripped = bare(line)
        if not stripped or stripped.startswith(("...", "#")):
            continue
        assert stripped in source, (snippet.where(), f"not in {snippet.argument}: {stripped}")


@pytest.mark.timeout(240)
@pytest.mark.parametrize("page", PAGES)
async def test_the_snippets_of_a_page_run_as_printed(page: str, node: Node) -> None:
    found = snippets(page)
    exported: dict[str, str] = {}  # the reader's shell: an export holds for the rest of the page
    for snippet in found:
        if snippet.mode == "run":
            await run_program(snippet, node)
        elif snippet.mode == "sh":
            await run_shell(snippet, node, exported)
        elif snippet.mode == "transcript":
            await run_transcript(snippet, node, exported)
        elif snippet.mode == "processor":
            await run_processor(snippet)
        elif snippet.mode == "tests":
            await run_tests(snippet)
        elif snippet.mode == "define":
            exec(compile(snippet.text, snippet.where(), "exec"), {"__name__": "snippet"})
        elif snippet.mode == "excerpt":
            check_excerpt(snippet)
        else:
            assert snippet.mode == "skip", (snippet.where(), snippet.mode)
            assert snippet.argument, (snippet.where(), "a skipped snippet says why")


def test_the_pages_mark_their_snippets() -> None:
    counted = {page: len(snippets(page)) for page in PAGES}
    assert all(counted.values()), counted
