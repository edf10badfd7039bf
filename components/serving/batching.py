"""Micro-batching of small requests on the event loop.

Under concurrent load, several small requests are decoded in the same turn of the event
loop. Instead of one ONNX Runtime call each (whose fixed cost dwarfs a one-row matrix
product), their rows are stacked and run in one call at the end of that turn, and each
request gets its own slice back. A request alone is run at once after one loop turn, so
an idle server adds only that turn's latency.

Requests are grouped by the model object they captured: during a hot swap, rows for the
old and the new model are never stacked together. Row results do not depend on the batch
they ran in (the network is row-wise; ONNX Runtime's GEMM accumulates each row alike).
"""

from __future__ import annotations

import asyncio
import logging

import numpy as np

from components.serving.instances import Rows
from components.serving.model import ServingModel

log = logging.getLogger(__name__)

MAX_BATCH_ROWS = 256  # stack at most this many rows per network call


class MicroBatcher:
    def __init__(self) -> None:
        self._pending: list[tuple[ServingModel, Rows, asyncio.Future[np.ndarray]]] = []
        self._scheduled = False

    async def run(self, model: ServingModel, rows: Rows) -> np.ndarray:
        """The network's outputs for ``rows``; must be awaited on the event loop."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[np.ndarray] = loop.create_future()
        self._pending.append((model, rows, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        pending, self._pending, self._scheduled = self._pending, [], False
        groups: dict[int, list[tuple[ServingModel, Rows, asyncio.Future[np.ndarray]]]] = {}
        for item in pending:
            groups.setdefault(id(item[0]), []).append(item)
        for items in groups.values():
            start = 0
            while start < len(items):
                chunk: list[tuple[ServingModel, Rows, asyncio.Future[np.ndarray]]] = []
                size = 0
                while start < len(items) and (
                    not chunk or size + len(items[start][1]) <= MAX_BATCH_ROWS
                ):
                    chunk.append(items[start])
                    size += len(items[start][1])
                    start += 1
                self._run(chunk)

    @staticmethod
    def _run(chunk: list[tuple[ServingModel, Rows, asyncio.Future[np.ndarray]]]) -> None:
        model = chunk[0][0]
        try:
            if len(chunk) == 1:
                results = [model.network(chunk[0][1])]
            else:
                stacked = Rows(
                    np.concatenate([rows.numeric for _, rows, _ in chunk]),
                    np.concatenate([rows.codes for _, rows, _ in chunk]),
                )
                proba = model.network(stacked)
                bounds = np.cumsum([len(rows) for _, rows, _ in chunk])[:-1]
                results = np.split(proba, bounds)
        except Exception as exc:  # noqa: BLE001 - handed to each waiting request
            for _, _, future in chunk:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, _, future), result in zip(chunk, results, strict=True):
            if not future.done():  # a cancelled request (client gone) needs no answer
                future.set_result(result)
