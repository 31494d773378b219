"""Where mg's run-time resources that live outside the package in the repository are (``sql/``:
migrations and named queries), found one way for a checkout and an install alike. (The console's
templates and static files live in the package, ``mg/console/``, and ship as its package data.)

The repository keeps each resource folder at its top (``sql/``); the build maps it into the
package (``pyproject.toml``: ``mg.sql`` is ``sql/``, its files package data), so a wheel has it
at ``mg/sql``. ``resource_dir`` looks inside the package first (a wheel), then beside it (a source
tree: a checkout run with ``PYTHONPATH`` or ``python -m mg``, or an editable install). Beside the
package rather than through the import system's ``mg.sql``: an editable install's finder maps
``mg.sql`` to the checkout that was installed, which need not be the tree whose code is running
(a second work tree on ``PYTHONPATH``), and code and SQL must come from one tree.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from mg.startup import ResourceMissing


def resource_dir(name: str) -> Path:
    """The folder ``name`` of mg's resources (``"sql"``), or ``ResourceMissing``."""
    package = Path(str(files("mg")))
    installed = package / name
    if installed.is_dir():
        return installed
    checkout = package.parent / name
    if checkout.is_dir() and (checkout.parent / "pyproject.toml").is_file():
        return checkout
    raise ResourceMissing(
        f"mg's {name}/ resources are missing (looked in {installed} and {checkout}): "
        "the install is incomplete; reinstall mg from a wheel built with its package data"
    )
