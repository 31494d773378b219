"""Clusters relocated under root, and their clean-up.

As root, PostgreSQL runs as an unprivileged user; if that user cannot reach the configured data
directory, the cluster lives in ``<state_dir>/embedded/<hash of the data dir>`` instead. mg then
leaves a symlink at the configured path pointing there (so the operator finds it, and removing
the data directory removes the symlink too) and writes ``<hash>.owner`` beside the cluster: the
configured path and the device of its parent directory.

At each start as root, the clusters whose configured path is gone are removed, unless in use
(their lock is held) or their path's nearest existing ancestor is on another device than the
one recorded: a volume that is not mounted yet must not cost its database.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

from mg.embedded.secret import write_private

_log = logging.getLogger("mg.embedded.server")


def relocated_dir(state_root: Path, requested: Path) -> Path:
    digest = hashlib.sha256(str(requested).encode()).hexdigest()[:12]
    return state_root / "embedded" / digest


def record_owner(cluster: Path, requested: Path) -> None:
    """Write ``<cluster>.owner`` and the symlink at ``requested`` (if nothing is there)."""
    owner = {"data_dir": str(requested), "device": requested.parent.stat().st_dev}
    write_private(cluster.with_name(cluster.name + ".owner"), json.dumps(owner) + "\n")
    if not os.path.lexists(requested):
        with contextlib.suppress(OSError):
            requested.symlink_to(cluster, target_is_directory=True)


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path("/")


def remove_abandoned(state_root: Path) -> list[Path]:
    """Remove the relocated clusters whose configured data directory is gone (module doc);
    return the clusters removed."""
    removed: list[Path] = []
    for marker in sorted((state_root / "embedded").glob("*.owner")):
        cluster = marker.with_suffix("")
        try:
            owner = json.loads(marker.read_text(encoding="utf-8"))
            requested, device = Path(owner["data_dir"]), int(owner["device"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if os.path.lexists(requested) or _nearest_existing(requested).stat().st_dev != device:
            continue
        lock_path = cluster.with_name(cluster.name + ".lock")
        with open(lock_path, "a", encoding="utf-8") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # in use: its mg will see again next time
            _log.warning(
                "removing the embedded cluster %s: its data directory %s no longer exists",
                cluster,
                requested,
            )
            shutil.rmtree(cluster, ignore_errors=True)
            for leftover in (cluster.with_name(cluster.name + ".log"), marker, lock_path):
                leftover.unlink(missing_ok=True)
        removed.append(cluster)
    return removed
