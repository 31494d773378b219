"""The cap on open connections: the idlest makes room, busy ones get a little headroom."""

from __future__ import annotations

from contextlib import ExitStack

import trio

from mg.connections import Connections


class FakeSocket:
    def __init__(self, port: int) -> None:
        self.port = port
        self.closed = False

    def getpeername(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def close(self) -> None:
        self.closed = True


class FakeStream:
    def __init__(self, port: int) -> None:
        self.socket = FakeSocket(port)


async def test_at_the_cap_the_connection_idle_longest_makes_room() -> None:
    connections = Connections(cap=3)
    streams = [FakeStream(port) for port in (1, 2, 3)]
    with ExitStack() as stack:
        for stream in streams:
            stack.enter_context(connections.opened(stream))
            await trio.sleep(0.01)
        with connections.busy(("127.0.0.1", 1)):  # the oldest is busy: the next oldest goes
            with trio.fail_after(1):
                await connections.wait_for_room()
        assert [s.socket.closed for s in streams] == [False, True, False]
        assert connections.count == 2


async def test_when_every_connection_is_busy_a_few_more_get_in_then_none() -> None:
    connections = Connections(cap=4)
    assert connections.headroom == 4
    with ExitStack() as stack:
        for port in range(8):
            stack.enter_context(connections.opened(FakeStream(port)))
            stack.enter_context(connections.busy(("127.0.0.1", port)))
            if port < 7:
                with trio.fail_after(1):
                    await connections.wait_for_room()
        with trio.move_on_after(0.2) as waited:
            await connections.wait_for_room()
        assert waited.cancelled_caught
