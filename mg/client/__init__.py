"""mg's Python client: every operation of the client API, async (``AsyncClient``, on trio or
asyncio) and blocking (``Client``), with typed results and one exception class per error code.

    from mg.client import AsyncClient, Range

    async with AsyncClient("http://127.0.0.1:8022") as mg:
        await mg.start("orders", "order-1", {"item": "book", "cents": 1200})
        await mg.call("orders", "order-1", "pay", timeout=5)
        machine = await mg.get("orders", "order-1", range=Range(limit=3, direction="backward"))

``Range.direction`` is a ``Direction`` (``Direction.FORWARD``, the default, or
``Direction.BACKWARD``) or its string, ``"forward"`` or ``"backward"``. While a machine is
``retrying``, ``Machine.retry`` (a ``Retry``) says what is retried, which attempt is next and why
the last one failed.
"""

from mg.client.asynchronous import AsyncClient
from mg.client.errors import (
    ConnectionLost,
    DeadlineExceeded,
    Forbidden,
    InternalError,
    InvalidArgs,
    InvalidRequest,
    LogicError,
    MachineAlreadyExists,
    MachineAlreadyWorking,
    MachineFailed,
    MachineNotFound,
    MethodNotAllowed,
    MgError,
    ModernizerFailed,
    NamespaceNotFound,
    Overloaded,
    PayloadTooLarge,
    RepairFailed,
    RouteNotFound,
    SinkEventsPruned,
    SinkNotFound,
    TransientError,
    Unauthorized,
    Unavailable,
    UnexpectedAnswer,
    UnsupportedMediaType,
)
from mg.client.exchange import Encoding, Exchange, Exchanges, Options
from mg.client.results import (
    Address,
    Content,
    Direction,
    Event,
    HistoryBounds,
    Machine,
    MachineSummary,
    Range,
    Retry,
    SearchPage,
    SinkBounds,
    SinkEvent,
    Status,
    Tag,
)
from mg.client.synchronous import Client

__all__ = [
    "Address",
    "AsyncClient",
    "Client",
    "ConnectionLost",
    "Content",
    "DeadlineExceeded",
    "Direction",
    "Encoding",
    "Event",
    "Exchange",
    "Exchanges",
    "Forbidden",
    "HistoryBounds",
    "InternalError",
    "InvalidArgs",
    "InvalidRequest",
    "LogicError",
    "Machine",
    "MachineAlreadyExists",
    "MachineAlreadyWorking",
    "MachineFailed",
    "MachineNotFound",
    "MachineSummary",
    "MethodNotAllowed",
    "MgError",
    "ModernizerFailed",
    "NamespaceNotFound",
    "Options",
    "Overloaded",
    "PayloadTooLarge",
    "Range",
    "RepairFailed",
    "Retry",
    "RouteNotFound",
    "SearchPage",
    "SinkBounds",
    "SinkEvent",
    "SinkEventsPruned",
    "SinkNotFound",
    "Status",
    "Tag",
    "TransientError",
    "Unauthorized",
    "UnexpectedAnswer",
    "Unavailable",
    "UnsupportedMediaType",
]
