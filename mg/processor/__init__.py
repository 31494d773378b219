"""Writing an mg processor in Python: subclass ``Processor``, override its handlers, return
``Result``s, and serve it with ``serve`` (or any ASGI server, via ``ProcessorApp``).

    from mg.processor import Processor, Result, SetTimer, run

    class Orders(Processor):
        format_version = 1

        def init(self, args, machine):
            return Result(events=[{"created": args}], timer=SetTimer(timeout=3600))

        def call(self, args, machine):
            return Result(response=len(machine.history), events=[{"called": args}])

    run(Orders(), port=9000)   # processor.url = "http://127.0.0.1:9000/processor"

See ``docs/processor.md`` for the whole tutorial.
"""

from mg.core.model import Content, Direction, Event, HistoryBounds, Range
from mg.processor.app import ProcessorApp
from mg.processor.base import Processor
from mg.processor.results import (
    KEEP,
    UNSET_TIMER,
    InvalidArgs,
    RepairRefused,
    Result,
    SetTimer,
    Transient,
    UnsetTimer,
)
from mg.processor.serving import run, serve
from mg.processor.upcasting import UpcastError, upcaster
from mg.processor.wire import Machine, ProcessorRequest

__all__ = [
    "KEEP",
    "UNSET_TIMER",
    "Content",
    "Direction",
    "Event",
    "HistoryBounds",
    "InvalidArgs",
    "Machine",
    "Processor",
    "ProcessorApp",
    "ProcessorRequest",
    "Range",
    "RepairRefused",
    "Result",
    "SetTimer",
    "Transient",
    "UnsetTimer",
    "UpcastError",
    "run",
    "serve",
    "upcaster",
]
