"""Namespaces over two Postgres clusters (``[namespaces.X] database.url``): the second cluster
is started in the test, late, then stopped under load and started again."""

from __future__ import annotations

import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from mg.embedded.server import EmbeddedPostgres, run_psql
from mg.node import running_node
from mg.settings import from_mapping
from tests.support.api import Api
from tests.support.cli import environment, mg_process
from tests.support.processes import write_config
from tests.support.processor import Answer, FakeProcessor, Seen


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def second() -> Iterator[EmbeddedPostgres]:
    """A second cluster, made (so its URL and password exist) and stopped; under root it runs
    as nobody, so its directory must be reachable. A fixed port, so that it comes back where
    the node looks for it."""
    base = Path(tempfile.mkdtemp(prefix="mg-second-"))
    base.chmod(0o755)
    server = EmbeddedPostgres(base / "data", port=free_port(), settings={"fsync": "off"})
    try:
        server.start()
        server.stop()
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


def config(processor: FakeProcessor, second_url: str) -> dict[str, Any]:
    return {
        "database": {"connect_timeout": "1s"},
        "server": {"graceful_timeout": "2s"},
        "sinks": {"near": {}, "far": {}},
        "namespaces": {
            "near": {"processor": {"url": processor.url}, "sinks": ["near"]},
            "far": {
                "processor": {"url": processor.url},
                "sinks": ["far"],
                "database": {"url": second_url},
            },
        },
    }


def _overview_row(html: str, name: str) -> str:
    """The overview's table row of a namespace or sink, from its link to the end of the row."""
    start = html.index(f">{name}</a>")
    return html[start : html.index("</tr>", start)]


async def ready_body(api: Api) -> tuple[int, Any]:
    response = await api.http.get("/health/ready")
    return response.status_code, response.json()


async def until_answers(api: Api, machine: str, arg: str) -> None:
    with trio.fail_after(60):
        while (await api.call(machine, arg)).status_code != 200:
            await trio.sleep(0.2)


@pytest.mark.timeout(240)
async def test_a_database_away_takes_only_its_own_namespaces_down(
    database_url: str, processor: FakeProcessor, second: EmbeddedPostgres, tmp_path: Path
) -> None:
    second_url = second.url()
    settings = from_mapping(config(processor, second_url), environ={})
    far_name = f"127.0.0.1:{second.port}/mg"
    async with running_node(settings, database_url, port=0, wait_ready=False) as node:
        near, far = Api(node.url, ns="near"), Api(node.url, ns="far")
        # The second cluster is not there at start: the node serves the first one anyway.
        with trio.fail_after(30):
            while (await near.start("n", "s")).status_code != 201:
                await trio.sleep(0.1)
        assert (await far.start("f", "s")).status_code == 503
        status, body = await ready_body(near)
        assert status == 503
        assert body["databases"] == {"default": "ready", far_name: "Postgres does not answer"}
        assert far_name in body["message"]
        assert second_url not in str(body)

        await trio.to_thread.run_sync(second.start)
        with trio.fail_after(60):
            while (await far.start("f", "s")).status_code != 201:
                await trio.sleep(0.2)
        assert await ready_body(near) == (
            200,
            {
                "status": "ready",
                "message": "every database answers and its schema is current",
                "databases": {"default": "ready", far_name: "ready"},
            },
        )

        acknowledged: dict[str, list[str]] = {"near": [], "far": []}
        near_failures: list[int] = []
        far_statuses: set[int] = set()
        outage_over = trio.Event()

        async def load(api: Api, machine: str) -> None:
            i = 0
            while not outage_over.is_set():
                try:
                    response = await api.call(machine, f"{machine}{i}")
                except httpx.TransportError:
                    response = None
                if response is not None and response.status_code == 200:
                    acknowledged[api.ns].append(f"{machine}{i}")
                elif api.ns == "near":
                    near_failures.append(0 if response is None else response.status_code)
                else:
                    far_statuses.add(0 if response is None else response.status_code)
                i += 1
                await trio.sleep(0.02)

        async with trio.open_nursery() as clients:
            clients.start_soon(load, near, "n")
            clients.start_soon(load, far, "f")
            await trio.sleep(0.5)
            await trio.to_thread.run_sync(second.stop)
            with trio.fail_after(30):
                while 503 not in far_statuses:
                    await trio.sleep(0.1)
            status, body = await ready_body(near)
            assert status == 503
            assert body["databases"][far_name] != "ready"
            assert body["databases"]["default"] == "ready"
            during_outage = len(acknowledged["near"])
            # The console's overview shows the near database and says why far is not shown.
            page = await near.http.get("/ui/")
            assert page.status_code == 200
            near_row, far_row = _overview_row(page.text, "near"), _overview_row(page.text, "far")
            assert "unavailable" not in near_row
            assert f"unavailable: database {far_name}" in far_row
            assert second_url not in page.text
            await trio.sleep(1.0)
            assert len(acknowledged["near"]) > during_outage  # near keeps answering
            await trio.to_thread.run_sync(second.start)
            await until_answers(far, "f", "after")
            outage_over.set()
        assert near_failures == []
        assert far_statuses <= {503, 504}
        for api, machine in ((near, "n"), (far, "f")):
            history = [e["data"] for e in (await api.get(machine)).json()["history"]]
            assert [a for a in history if a in acknowledged[api.ns]] == acknowledged[api.ns]
        assert (await ready_body(near))[0] == 200
        await near.aclose()
        await far.aclose()

    # Each namespace and sink in its own database.
    where = "SELECT ns || ':' || count(*) FROM mg_machines GROUP BY ns"
    assert run_psql(second.bin_dir, second_url, where).split() == ["far:1"]
    sinks = "SELECT DISTINCT sink FROM mg_sink_events"
    assert run_psql(second.bin_dir, second_url, sinks).split() == ["far"]
    assert run_psql(second.bin_dir, database_url, where).split() == ["near:1"]
    # Each sink verifies on its own database, through the CLI users run.
    path = write_config(tmp_path / "mg.toml", config(processor, second_url))
    env = environment(MG_DATABASE_URL=database_url)
    for sink in ("near", "far"):
        ran = await mg_process("sink", "verify", sink, "--config", str(path), env=env)
        assert ran.code == 0, ran.out + ran.err
        assert "intact" in ran.out


async def test_timers_and_notifications_run_on_each_database(
    database_url: str, processor: FakeProcessor, second: EmbeddedPostgres
) -> None:
    async def behaviour(seen: Seen) -> Answer:
        if seen.kind == "init":
            return Answer(
                body={"events": [{"data": "init"}], "action": {"timer": {"set": {"timeout": 0.3}}}}
            )
        return Answer(body={"events": [{"data": seen.kind}]})

    processor.behaviour = behaviour
    await trio.to_thread.run_sync(second.start)
    settings = from_mapping(config(processor, second.url()), environ={})
    async with running_node(settings, database_url, port=0) as node:
        for ns in ("near", "far"):
            api = Api(node.url, ns=ns)
            assert (await api.start("t", None)).status_code == 201
            notified = await api.post(api.machine_path("t") + "/notify", {"args": "hello"})
            assert notified.status_code == 202, notified.text
            with trio.fail_after(15):
                while True:
                    history = [e["data"] for e in (await api.get("t")).json()["history"]]
                    if {"timeout", "notification"} <= set(history):
                        break
                    await trio.sleep(0.05)
            await api.aclose()


async def test_db_url_and_psql_reach_the_database_of_a_namespace(
    database_url: str, processor: FakeProcessor, second: EmbeddedPostgres, tmp_path: Path
) -> None:
    await trio.to_thread.run_sync(second.start)
    path = str(write_config(tmp_path / "mg.toml", config(processor, second.url())))
    env = environment(MG_DATABASE_URL=database_url)
    for ns, url in (("far", second.url()), ("near", database_url), (None, database_url)):
        chosen = ("--namespace", ns) if ns else ()
        named = await mg_process("db", "url", "--config", path, *chosen, env=env)
        assert (named.code, named.out.strip()) == (0, url), named
    # psql's own options after mg's, in either spelling of mg's.
    port = "SELECT inet_server_port()"
    for chosen in (("--namespace", "far"), ("--namespace=far",)):
        ran = await mg_process("psql", *chosen, "--config", path, "-At", "-c", port, env=env)
        assert (ran.code, ran.out.strip(), ran.err) == (0, str(second.port), "")
    unknown = await mg_process("db", "url", "--config", path, "--namespace", "elsewhere", env=env)
    assert unknown.code == 2
    assert unknown.err.strip() == (
        "mg: bad configuration: no namespace 'elsewhere' in the configuration "
        "(namespaces: far, near)"
    )
