"""How uvicorn runs the app: its settings from a ServeConfig, and its HTTP/1.1 protocol
with a deadline for each request's head.

uvicorn closes a connection that idles after a response (``timeout_keep_alive``), but not
one that sends nothing, or half a request head, or the rest of a body nobody reads: each
such connection stayed open for as long as its client wished. :class:`DeadlineH11Protocol`
gives the client ``read_timeout`` seconds, from the connection's start or its previous
response, to complete a request head (and to finish a body that the app answered without
reading); then it closes the connection. A body that the app reads has its own deadline
(``app.BodyReader``: a 408).
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from components.serving.config import ServeConfig


class DeadlineH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose request head is late.

    Deadlines are checked by one timer per server every ``tick`` seconds for all its
    connections, not by a timer each (arming one per request costs throughput)."""

    read_timeout = 10.0  # set by protocol_class()
    _due: float | None = None  # when the awaited head (or rest of an unread body) is late

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._due = self.loop.time() + self.read_timeout
        if self.server_state not in _SWEPT:
            _SWEPT.add(self.server_state)
            tick = min(1.0, self.read_timeout / 4)
            self.loop.call_later(tick, _sweep, self.loop, self.server_state, tick)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._due is not None and self.conn.our_state is h11.SEND_RESPONSE:
            self._due = None  # a request head is in: the app answers it

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.conn.our_state is not h11.SEND_RESPONSE:
            self._due = self.loop.time() + self.read_timeout  # the next head is due


_SWEPT: weakref.WeakSet[ServerState] = weakref.WeakSet()  # servers with a sweep scheduled


def _sweep(loop: asyncio.AbstractEventLoop, state: ServerState, tick: float) -> None:
    """Close the connections of ``state`` past due; again in a tick while there are any
    (the next connection starts it again)."""
    now = loop.time()
    for conn in list(state.connections):
        if isinstance(conn, DeadlineH11Protocol) and conn._due is not None and conn._due < now:
            conn._due = None
            if conn.conn.our_state is not h11.SEND_RESPONSE:
                conn.transport.close()
    if state.connections:
        loop.call_later(tick, _sweep, loop, state, tick)
    else:
        _SWEPT.discard(state)


def protocol_class(read_timeout: float) -> type[DeadlineH11Protocol]:
    return type("DeadlineH11Protocol", (DeadlineH11Protocol,), {"read_timeout": read_timeout})


def uvicorn_settings(config: ServeConfig) -> dict[str, Any]:
    """Keyword arguments of uvicorn.run / uvicorn.Config (all but the app and log level)."""
    return {
        "host": config.host,
        "port": config.port,
        "access_log": config.access_log,
        "http": protocol_class(config.read_timeout),
        "timeout_graceful_shutdown": 5,
    }
