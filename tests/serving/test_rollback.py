"""A rollback reaches a running server: `sigdeploy registry rollback` moves the champion and
`sigdeploy serve` (real uvicorn on loopback) answers with the restored version's weights."""

from __future__ import annotations

import json

import httpx

from components.serving.model import load_serving_model
from pipelines.cli import main


def test_rollback_swaps_the_served_model(
    registry, digits_bundles, digits_test, config_for, helpers
):
    registry.register(digits_bundles[1], {"deploy": True})  # version 2 is the champion
    body = json.dumps({"instances": digits_test.to_numpy()[:20].tolist()}).encode()
    expected = {
        v: json.loads(load_serving_model(b, v).predict_body(body, 1000))["predictions"]
        for v, b in (("1", digits_bundles[0]), ("2", digits_bundles[1]))
    }
    assert expected["1"] != expected["2"]  # otherwise the swap would not show

    def served() -> dict:
        r = httpx.post(f"{url}/predict", content=body, headers={"content-type": "application/json"})
        assert r.status_code == 200, r.text
        return r.json()

    with helpers.running_server(config_for(registry)) as url:
        helpers.wait_for(lambda: served()["model_version"] == "2", 30, "version 2")
        assert served()["predictions"] == expected["2"]
        code = main(
            ["registry", "rollback", "--registry", str(registry.root), "--model-name",
             registry.model_name, "--reason", "version 2 regressed"]
        )  # fmt: skip
        assert code == 0
        helpers.wait_for(lambda: served()["model_version"] == "1", 30, "the rollback")
        assert served()["predictions"] == expected["1"]
