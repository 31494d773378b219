"""The console's actions on machines: the service calls the API makes, with the API's errors.

Every action is confirmed on a page of its own before it is done (no script needed): a form
posted without ``confirmed=yes`` answers with the confirmation, naming the machine (or, for
the bulk simple repair, the count); posted again with it, the action is done. The bulk
simple repair works one page of the search at a time and shows a result per machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from quart import Response

from mg.api import requests
from mg.console import render
from mg.console.pages import MAX_PAGE, SEARCH_LIMIT
from mg.console.web import View, error_page, redirect
from mg.core import values
from mg.core.deadline import Deadline
from mg.core.model import WHOLE_HISTORY, Status
from mg.errors import InvalidRequest, MgError, RouteNotFound
from mg.service.machines import Ref

ACTIONS = {
    "repair": "Repair",
    "simple-repair": "Simple repair",
    "notify": "Notify",
    "remove": "Remove",
}
TAKES_ARGS = ("repair", "notify")


def parse_args(text: str) -> Any:
    """Args typed as JSON (``{"$base64": ...}`` for binary), read and checked by the one value
    rule the API applies to a body."""
    try:
        found = values.loads_json(text)
    except ValueError as error:
        raise InvalidRequest(f"args are not valid JSON: {error}") from error
    try:
        values.check(found, "args")
    except values.ValueRejected as error:
        raise InvalidRequest(str(error)) from error
    return found


def _deadline(view: View, ns: str) -> Deadline:
    return Deadline.after(view.console.service.namespace(ns).default_processing_timeout)


async def act(view: View, ns: str, action: str) -> Response:
    view.check(ns=ns)
    service = view.console.service
    service.namespace(ns)
    if action not in ACTIONS:
        raise RouteNotFound(f"no console action {action!r}")
    machine_id = requests.machine_id(view.form.get("id", ""))
    args_text = view.form.get("args", "null") if action in TAKES_ARGS else ""
    args = parse_args(args_text) if action in TAKES_ARGS else None
    back = render.machine_path(ns, machine_id)
    if view.form.get("confirmed") != "yes":
        return await view.render(
            "confirm.html",
            ns=ns,
            action=action,
            title=ACTIONS[action],
            machine_id=machine_id,
            args_text=args_text,
            args_json=render.as_json(args) if action in TAKES_ARGS else "",
            back=back,
        )
    ref = Ref(id=machine_id)
    try:
        if action == "repair":
            await service.repair(ns, ref, args, WHOLE_HISTORY, _deadline(view, ns), view.trace)
        elif action == "simple-repair":
            await service.simple_repair(ns, ref, _deadline(view, ns))
        elif action == "notify":
            await service.notify(ns, ref, args, WHOLE_HISTORY, view.trace)
        else:
            await service.remove(ns, machine_id, _deadline(view, ns))
            return redirect(render.search_path(ns, done="remove", id=machine_id))
    except MgError as error:
        return await error_page(view, error)
    return redirect(f"{back}?done={action}")


@dataclass(frozen=True, slots=True)
class Result:
    machine_id: str
    ok: bool
    message: str


async def bulk_simple_repair(view: View, ns: str) -> Response:
    """Simple-repair the failed machines of ``ns``, one search page per confirmed POST."""
    view.check(ns=ns)
    service = view.console.service
    service.namespace(ns)
    given = view.form.get("limit", "")
    limit = requests.query_limit({"limit": given} if given else {}, SEARCH_LIMIT)
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidRequest(f"limit must be between 1 and {MAX_PAGE}")
    cursor = view.form.get("cursor", "") or None
    if view.form.get("confirmed") != "yes":
        count = await view.console.reads.count(ns, Status.FAILED.value)
        return await view.render("bulk_confirm.html", ns=ns, count=count, limit=limit)
    page = await service.search(ns, Status.FAILED, limit, cursor)
    results = []
    for row in page.machines:
        try:
            await service.simple_repair(ns, Ref(id=row.id), _deadline(view, ns))
            results.append(Result(row.id, True, "repaired"))
        except MgError as error:
            results.append(Result(row.id, False, f"{error.code}: {error.message}"))
    return await view.render(
        "bulk_done.html",
        ns=ns,
        results=results,
        next_cursor=page.next_cursor,
        limit=limit,
        repaired=sum(1 for result in results if result.ok),
    )
