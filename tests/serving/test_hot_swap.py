"""Hot swap under load: real uvicorn on loopback, eight concurrent httpx clients, three
deploys while they run. No request may fail, and every answer must be exactly what the
model version it reports gives for those rows (so none mixes two models)."""

from __future__ import annotations

import asyncio
import json
import random
import time

import httpx
import numpy as np
import pytest

from components.core.model.bundle import load_bundle
from components.core.registry import LocalRegistry
from components.serving.config import ServeConfig
from components.serving.model import load_serving_model

CONCURRENCY = 8
SWAP_EVERY = 1.2  # seconds between deploys


@pytest.mark.slow
def test_hot_swap_under_concurrent_load(tmp_path, digits_bundles, digits_test, helpers):
    registry = LocalRegistry(tmp_path / "registry", "digits-mlp")
    registry.register(digits_bundles[0], {"deploy": True})
    # version -> bundle: each deploy changes the model (v4 returns to v1's weights)
    deploys = {"2": digits_bundles[1], "3": digits_bundles[2], "4": digits_bundles[0]}
    bundle_of = {"1": digits_bundles[0], **deploys}

    rows = digits_test.to_numpy()
    bodies = [json.dumps({"instances": rows[i : i + 1].tolist()}).encode() for i in range(40)]
    bodies += [
        json.dumps({"instances": rows[i : i + 25].tolist()}).encode() for i in range(0, 200, 25)
    ]
    starts = [i for i in range(40)] + list(range(0, 200, 25))
    sizes = [1] * 40 + [25] * 8

    # What each version must answer, computed offline: exactly (the serving path run
    # in-process) and within 1e-6 of the torch bundle.
    exact = {}
    offline = {}
    for version, bundle in bundle_of.items():
        model = load_serving_model(bundle, version)
        exact[version] = [json.loads(model.predict_body(b, 1000))["predictions"] for b in bodies]
        offline[version] = load_bundle(bundle).predict_proba(digits_test.iloc[:200])
    for a, b in (("1", "2"), ("2", "3"), ("3", "4")):  # a mix would show
        assert np.abs(offline[a] - offline[b]).max() > 1e-3

    config = ServeConfig(
        registry=str(registry.root),
        model_name="digits-mlp",
        poll_seconds=0.05,
        port=helpers.free_port(),
    )
    results: list[tuple[int, int, str]] = []  # (body index, status, text)
    errors: list[str] = []

    async def client_loop(stop: asyncio.Event, seed: int) -> None:
        rng = random.Random(seed)
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            while not stop.is_set():
                k = rng.randrange(len(bodies))
                try:
                    r = await client.post(
                        "/predict", content=bodies[k], headers={"content-type": "application/json"}
                    )
                    results.append((k, r.status_code, r.text))
                except httpx.HTTPError as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")

    async def deployer(stop: asyncio.Event) -> None:
        for version, bundle in deploys.items():
            await asyncio.sleep(SWAP_EVERY)
            champion = await asyncio.to_thread(registry.register, bundle, {"deploy": True})
            assert champion.version == version
        await asyncio.sleep(SWAP_EVERY)
        stop.set()

    async def main() -> None:
        stop = asyncio.Event()
        await asyncio.gather(deployer(stop), *(client_loop(stop, s) for s in range(CONCURRENCY)))

    with helpers.running_server(config) as url:
        helpers.wait_for(lambda: httpx.get(f"{url}/health").status_code == 200, 30, "model")
        started = time.monotonic()
        asyncio.run(main())
        elapsed = time.monotonic() - started
        final = httpx.get(f"{url}/health").json()

    assert not errors, errors[:5]
    bad = [(status, text[:200]) for _, status, text in results if status != 200]
    assert not bad, bad[:5]
    seen = {}
    for k, _, text in results:
        answer = json.loads(text)
        version = answer["model_version"]
        seen[version] = seen.get(version, 0) + 1
        assert answer["predictions"] == exact[version][k], f"body {k} mixed models"
        proba = np.array(
            [[p["probabilities"][str(c)] for c in range(10)] for p in answer["predictions"]]
        )
        expected = offline[version][starts[k] : starts[k] + sizes[k]]
        assert np.abs(proba - expected).max() < 1e-6
        assert [p["label"] for p in answer["predictions"]] == expected.argmax(1).tolist()
    assert set(seen) == {"1", "2", "3", "4"}, seen
    assert final["model_version"] == "4"
    assert len(results) > 100, f"only {len(results)} requests in {elapsed:.1f} s"
