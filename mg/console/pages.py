"""The console's pages (PROTOCOL section 9), each reading only what it shows: the overview,
a namespace's search (the service's keyset cursor), a machine with a page of its history,
a sink's newest events with a chain check of a chosen span, and the login."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from quart import Response, request

from mg.api import requests
from mg.console import render
from mg.console.security import COOKIE_PATH, TOKEN_COOKIE, bearer
from mg.console.spans import verify_span
from mg.console.web import View, redirect, safe_next
from mg.core.model import NO_HISTORY, Direction, Range, Status
from mg.core.sink import SinkEvent
from mg.errors import Forbidden, InvalidRequest, MgError, Unauthorized
from mg.service.machines import Ref
from mg.service.ports import SearchRow

SEARCH_LIMIT = 50
HISTORY_LIMIT = 20
MAX_PAGE = 200
NOTIFICATIONS_SHOWN = 20
SINK_EVENTS_SHOWN = 50
LIVE_WAIT_SECONDS = 10.0


def _page_limit(query: dict[str, str], default: int) -> int:
    found = requests.query_limit(query, default)
    if not 1 <= found <= MAX_PAGE:
        raise InvalidRequest(f"limit must be between 1 and {MAX_PAGE}")
    return found


def _query() -> dict[str, str]:
    """The query, without empty fields (a form's "any" choice sends ``status=``)."""
    return {key: value for key in request.args if (value := request.args.get(key, ""))}


async def overview(view: View) -> Response:
    console = view.console
    namespaces = [ns for ns in console.namespaces if _allowed(view, ns=ns)]
    sinks = tuple(sink for sink in console.sink_names if _allowed(view, sink=sink))
    found = await console.reads.overview(sinks)
    return await view.render(
        "overview.html",
        namespaces=[(ns, found.namespaces.get(ns)) for ns in namespaces],
        sinks=[(sink, found.sinks.get(sink)) for sink in sinks],
        unavailable=found.unavailable,
        statuses=[status.value for status in Status],
    )


def _allowed(view: View, *, ns: str | None = None, sink: str | None = None) -> bool:
    try:
        view.check(ns=ns, sink=sink)
    except Forbidden:
        return False
    return True


@dataclass(frozen=True, slots=True)
class Row:
    machine: SearchRow
    reason: str | None


async def search(view: View, ns: str) -> Response:
    view.check(ns=ns)
    service = view.console.service
    service.namespace(ns)
    query = _query()
    if query.get("id"):
        # The "open a machine by id" form: a GET form cannot put the id in the path.
        return redirect(render.machine_path(ns, requests.machine_id(query["id"])))
    if query.get("tag"):
        tag = requests.machine_id(query["tag"], "tag")
        holder = await service.get(ns, Ref(tag=tag), NO_HISTORY)
        return redirect(render.machine_path(ns, holder.record.id))
    status = requests.query_status(query)
    limit = _page_limit(query, SEARCH_LIMIT)
    cursor = requests.query_cursor(query)
    found = await service.search(ns, status, limit, cursor)
    rows = []
    for row in found.machines:
        reason = None
        if row.status is Status.FAILED:
            # One small read per failed machine shown: bounded by the page.
            try:
                machine = await service.get(ns, Ref(id=row.id), NO_HISTORY)
                reason = machine.record.failure_reason
            except MgError:
                reason = None
        rows.append(Row(row, reason))
    return await view.render(
        "machines.html",
        ns=ns,
        rows=rows,
        status=status.value if status else "",
        statuses=[s.value for s in Status],
        limit=limit,
        cursor=cursor,
        next_cursor=found.next_cursor,
        done=query.get("done", ""),
        done_id=query.get("id", ""),
    )


async def machine(view: View, ns: str, machine_id: str) -> Response:
    view.check(ns=ns)
    service = view.console.service
    service.namespace(ns)
    machine_id = requests.machine_id(machine_id)
    query = _query()
    limit = _page_limit(query, HISTORY_LIMIT)
    direction = query.get("direction", "backward")
    selection = requests.query_range({**query, "limit": str(limit), "direction": direction})
    found = await service.get(ns, Ref(id=machine_id), selection)
    record = found.record
    last = record.last_event_id
    first = record.first_event_id  # last + 1 when every event was trimmed
    queued = await view.console.reads.notifications(ns, machine_id, NOTIFICATIONS_SHOWN + 1)
    links = render.history_links(found.history, selection, first, last, limit)
    return await view.render(
        "machine.html",
        ns=ns,
        machine=found,
        record=record,
        first=first,
        last=last,
        selection=selection,
        links=links,
        notifications=queued[:NOTIFICATIONS_SHOWN],
        more_notifications=len(queued) > NOTIFICATIONS_SHOWN,
        done=query.get("done", ""),
        args_text=view.form.get("args", "null"),
    )


def sink_event_row(event: SinkEvent) -> dict[str, Any]:
    """A sink event as the live tail's script shows it: text only, set as textContent."""
    return {
        "position": event.position,
        "ns": event.ns,
        "machine_id": event.machine_id,
        "machine_url": render.machine_path(event.ns, event.machine_id),
        "event_id": event.event.id,
        "created_at": render.utc(event.event.created_at),
        "data": render.as_json(event.event.data),
        "hash": event.hash.hex(),
    }


async def sink(view: View, name: str) -> Response:
    view.check(sink=name)
    sinks = view.console.sinks
    sinks.sink(name)
    query = _query()
    # Newest first; ``before=N`` pages back (positions below N), without the live feed.
    before = requests.query_range({"after": query["before"]}).after if "before" in query else None
    newest = await sinks.read(
        name, Range(after=before, limit=SINK_EVENTS_SHOWN, direction=Direction.BACKWARD), 0.0
    )
    verdict = None
    check_from = query.get("from", "")
    check_to = query.get("to", "")
    if check_from:
        verdict = await verify_span(view.console.chain, name, check_from, check_to)
    return await view.render(
        "sink.html",
        sink=name,
        events=[sink_event_row(event) for event in newest],
        last=newest[0].position if newest else 0,
        live=before is None,
        older=newest[-1].position if newest and newest[-1].position > 1 else None,
        verdict=verdict,
        check_from=check_from,
        check_to=check_to,
    )


async def sink_events(view: View, name: str) -> Response:
    """The live tail's feed: events after ``after``, waiting up to a few seconds for some."""
    view.check(sink=name)
    query = _query()
    after = requests.query_range({"after": query.get("after", "0")}).after
    found = await view.console.sinks.read(
        name, Range(after=after, limit=SINK_EVENTS_SHOWN), LIVE_WAIT_SECONDS
    )
    body = json.dumps({"events": [sink_event_row(event) for event in found]})
    return Response(body, status=200, content_type="application/json")


async def login(view: View) -> Response:
    authenticator = view.console.authenticator
    target = safe_next(request.args.get("next") or view.form.get("next"))
    if request.method == "GET":
        return await view.render("login.html", next=target, failed=None)
    token = (view.form.get("token") or "").strip()
    try:
        authenticator.check(bearer(token), ns=None, sink=None)
    except Unauthorized as error:
        return await view.render("login.html", 401, next=target, failed=error.message)
    response = redirect(target)
    if authenticator.enabled:
        response.set_cookie(
            TOKEN_COOKIE,
            token,
            httponly=True,
            samesite="Strict",
            secure=request.scheme == "https",
            path=COOKIE_PATH,
        )
    return response


async def logout(view: View) -> Response:
    response = redirect("/ui/login")
    response.delete_cookie(TOKEN_COOKIE, path=COOKIE_PATH, httponly=True, samesite="Strict")
    return response
