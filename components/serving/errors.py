"""The one error type of the request path: a request the server refuses, with its 4xx/5xx
status and where in the request the problem is (instance index, field)."""

from __future__ import annotations

from typing import Any


class BadRequest(Exception):
    """A request the server refuses; ``status`` is a 4xx (503 when the server is too busy
    to take it), ``index``/``field`` locate it."""

    def __init__(
        self, status: int, message: str, index: int | None = None, field: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.index = index
        self.field = field

    def to_json(self) -> dict[str, Any]:
        return {"error": self.message, "instance": self.index, "field": self.field}
