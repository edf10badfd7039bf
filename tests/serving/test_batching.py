"""Micro-batching: small requests decoded in the same event-loop turn share one network
call per model, each gets exactly its own rows' answer, and models are never mixed."""

from __future__ import annotations

import asyncio
import json

import numpy as np

from components.serving.batching import MicroBatcher
from components.serving.model import load_serving_model


class Counting:
    """Wraps a network and counts its calls and the rows they carried."""

    def __init__(self, network):
        self.network = network
        self.calls: list[int] = []

    def __call__(self, rows):
        self.calls.append(len(rows))
        return self.network(rows)


def test_same_turn_requests_share_one_call_per_model(digits_bundles, digits_test):
    models = [load_serving_model(b, str(i)) for i, b in enumerate(digits_bundles[:2])]
    counters = []
    for model in models:
        counter = Counting(model.network)
        object.__setattr__(model, "network", counter)  # frozen dataclass: test-only patch
        counters.append(counter)
    x = digits_test.to_numpy()
    requests = [(models[k % 2], x[k : k + 1 + k % 3]) for k in range(12)]  # 1-3 rows each
    decoded = [
        (m, m.decoder.decode(json.dumps({"instances": rows.tolist()}).encode(), 100))
        for m, rows in requests
    ]
    alone = [
        counter.network(rows)
        for (m, rows), counter in ((d, counters[i % 2]) for i, d in enumerate(decoded))
    ]

    async def main():
        batcher = MicroBatcher()
        return await asyncio.gather(*(batcher.run(m, rows) for m, rows in decoded))

    results = asyncio.run(main())
    assert [c.calls for c in counters] == [[12], [12]]  # one call per model, all rows
    for got, expected in zip(results, alone, strict=True):
        assert np.array_equal(got, expected)  # row results do not depend on the batch


def test_a_failing_network_fails_only_its_requests(digits_bundles, digits_test):
    good = load_serving_model(digits_bundles[0], "1")
    bad = load_serving_model(digits_bundles[1], "2")

    def boom(rows):
        raise RuntimeError("network down")

    object.__setattr__(bad, "network", boom)
    body = json.dumps({"instances": digits_test.to_numpy()[:2].tolist()}).encode()

    async def main():
        batcher = MicroBatcher()
        return await asyncio.gather(
            batcher.run(good, good.decoder.decode(body, 10)),
            batcher.run(bad, bad.decoder.decode(body, 10)),
            return_exceptions=True,
        )

    ok, failed = asyncio.run(main())
    assert ok.shape == (2, 10) and isinstance(failed, RuntimeError)
