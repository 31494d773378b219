"""The embedded server's password: role ``mg`` authenticates with SCRAM, with a random secret
made when the cluster is made and kept in ``<data_dir>/mg.password`` (mode 0600), so that other
users of the host cannot connect although the server listens on 127.0.0.1.

A cluster made by an older mg (``trust`` in ``pg_hba.conf``, no password file) is secured in
place at its next start, before the server listens: the password is set in single-user mode
(no connection, so no authentication needed), then written to the file, then ``pg_hba.conf`` is
rewritten. The file is written only once the role has the password, so a start interrupted
half-way makes a new password next time instead of keeping one the role does not have.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from mg.embedded.errors import EmbeddedPostgresError

PASSWORD_FILE = "mg.password"
HBA = (
    "# mg embedded: role mg with its password (SCRAM) on 127.0.0.1 only; no trust\n"
    "host all mg 127.0.0.1/32 scram-sha-256\n"
    "host replication mg 127.0.0.1/32 scram-sha-256\n"
)


def write_private(path: Path, text: str, owner: tuple[int, int] | None = None) -> None:
    """Write ``path`` atomically with mode 0600 (owned by ``owner`` = (uid, gid) if given)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            os.fchmod(f.fileno(), 0o600)
            if owner is not None:
                os.fchown(f.fileno(), *owner)
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def read_password(data_dir: Path) -> str | None:
    try:
        return (data_dir / PASSWORD_FILE).read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None


def secure(
    data_dir: Path, bin_dir: Path, as_user: dict[str, Any], owner: tuple[int, int] | None
) -> str:
    """Make sure the stopped cluster in ``data_dir`` has a password and no ``trust`` line;
    return the password. ``as_user``: the keyword arguments that run a binary as the server's
    OS user; ``owner``: that user's (uid, gid) when it is not mg's."""
    password = read_password(data_dir)
    if password is None:
        password = secrets.token_hex(24)  # hex: nothing to quote in SQL or in a URL
        _set_password(data_dir, bin_dir, as_user, password)
        write_private(data_dir / PASSWORD_FILE, password + "\n", owner)
    hba = data_dir / "pg_hba.conf"
    if hba.read_text(encoding="utf-8") != HBA:
        write_private(hba, HBA, owner)
    return password


def _set_password(data_dir: Path, bin_dir: Path, as_user: dict[str, Any], password: str) -> None:
    # Single-user mode reads the statement from stdin: the password is on no command line.
    argv = [str(bin_dir / "postgres"), "--single", "-D", str(data_dir), "-c", "fsync=off"]
    proc = subprocess.run(
        [*argv, "postgres"],
        input=f"ALTER ROLE mg WITH PASSWORD '{password}'\n",
        capture_output=True,
        text=True,
        cwd=data_dir,
        timeout=120,
        check=False,
        **as_user,
    )
    if proc.returncode != 0 or "ERROR" in proc.stdout + proc.stderr:
        raise EmbeddedPostgresError(
            f"could not set the password of role mg in {data_dir}: {proc.stdout}{proc.stderr}"
        )
