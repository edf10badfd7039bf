"""Strict input: every kind of bad request is a 4xx JSON error naming the instance index and
the field, never a 500, and the server goes on answering good requests. Each case runs with
orjson and with the standard library's JSON parser (the two must agree)."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from components.serving import fastjson
from components.serving.app import create_app
from components.serving.config import ServeConfig

MAX_INSTANCES = 50
MAX_BODY = 100_000
GOOD = {"instances": [[0] * 64, [1] * 64]}


@pytest.fixture(params=["orjson", "stdlib"])
def json_impl(request, monkeypatch):
    if request.param == "stdlib":
        monkeypatch.setattr(fastjson, "orjson", None)
        monkeypatch.setattr(fastjson, "HAVE_ORJSON", False)
    elif not fastjson.HAVE_ORJSON:
        pytest.skip("orjson is not installed")
    return request.param


def _client(bundle, helpers):
    config = ServeConfig(
        storage_uri=str(bundle),
        max_instances=MAX_INSTANCES,
        max_body_bytes=MAX_BODY,
        port=helpers.free_port(),
    )
    client = TestClient(create_app(config))
    client.__enter__()
    helpers.wait_for(lambda: client.get("/health").status_code == 200, 30, "the model")
    return client


@pytest.fixture(scope="module")
def digits_client(digits_bundles, helpers):
    client = _client(digits_bundles[0], helpers)
    yield client
    client.__exit__(None, None, None)


@pytest.fixture(scope="module")
def mixed_client(mixed_bundle, helpers):
    client = _client(mixed_bundle, helpers)
    yield client
    client.__exit__(None, None, None)


@pytest.fixture(scope="module")
def names(digits_test):
    return list(digits_test.columns)


def _rows(n=3):
    return [[float(i % 17) for i in range(64)] for _ in range(n)]


def _with(row_index, col, value_json, n=3):
    """A body (text) whose instance ``row_index`` has ``value_json`` at column ``col``."""
    rows = [[json.dumps(v) for v in r] for r in _rows(n)]
    rows[row_index][col] = value_json
    return '{"instances": [' + ",".join("[" + ",".join(r) + "]" for r in rows) + "]}"


def _objects(names, edit):
    rows = [dict(zip(names, r, strict=True)) for r in _rows(3)]
    edit(rows)
    return json.dumps({"instances": rows})


# (name, body builder(names) -> str | bytes, status, instance index, field (None, a name,
#  or an int: the name of that column), words the message must contain)
CASES = [
    ("malformed json", lambda n: '{"instances": [[1, 2', 400, None, "body", "not valid JSON"),
    ("empty body", lambda n: b"", 400, None, "body", "empty"),
    ("not utf-8", lambda n: b'{"instances": [["\xff"]]}', 400, None, "body", "UTF-8"),
    ("too deep", lambda n: "[" * 100_000, 400, None, "body", "nested too deeply"),
    ("top level is a list", lambda n: "[[1, 2]]", 400, None, "instances", "JSON object"),
    ("no instances key", lambda n: '{"rows": []}', 400, None, "instances", "instances"),
    (
        "instances not a list",
        lambda n: '{"instances": {"a": 1}}',
        400,
        None,
        "instances",
        "must be a list",
    ),
    ("empty instance list", lambda n: '{"instances": []}', 400, None, "instances", "empty"),
    (
        "unknown top-level key",
        lambda n: json.dumps({"instances": _rows(1), "model": "x"}),
        400,
        None,
        "model",
        "unknown top-level key",
    ),
    (
        "too many instances",
        lambda n: json.dumps({"instances": _rows(MAX_INSTANCES + 1)}),
        413,
        None,
        "instances",
        "limit of 50",
    ),
    (
        "body too large",
        lambda n: '{"instances": [[' + " " * (MAX_BODY + 10) + "1]]}",
        413,
        None,
        "body",
        "limit of 100000 bytes",
    ),
    (
        "instance is a number",
        lambda n: '{"instances": [[' + ",".join(["0"] * 64) + "], 7]}",
        400,
        1,
        None,
        "object keyed by feature name",
    ),
    (
        "unknown feature",
        lambda n: _objects(n, lambda r: r[1].update(bogus=1)),
        400,
        1,
        "bogus",
        "unknown feature",
    ),
    (
        "missing feature",
        lambda n: _objects(n, lambda r: r[2].pop("pixel_3_3")),
        400,
        2,
        "pixel_3_3",
        "missing feature",
    ),
    (
        "too few values",
        lambda n: json.dumps({"instances": [list(range(63))]}),
        400,
        0,
        63,
        "expected 64 values",
    ),
    (
        "too many values",
        lambda n: json.dumps({"instances": [[0] * 64, list(range(65))]}),
        400,
        1,
        "[64]",
        "got 65",
    ),
    ("string value", lambda n: _with(1, 5, '"five"'), 400, 1, 5, "expected a number"),
    ("numeric string", lambda n: _with(2, 0, '"3"'), 400, 2, 0, "expected a number"),
    ("boolean", lambda n: _with(0, 9, "true"), 400, 0, 9, "true/false"),
    ("nested list", lambda n: _with(1, 3, "[1]"), 400, 1, 3, "a list"),
    (
        "object value",
        lambda n: _objects(n, lambda r: r[0].update(pixel_0_0={"v": 1})),
        400,
        0,
        0,
        "an object",
    ),
    ("NaN", lambda n: _with(1, 2, "NaN"), 400, 1, 2, "NaN"),
    ("Infinity", lambda n: _with(2, 63, "Infinity"), 400, 2, 63, "Infinity"),
    ("-Infinity", lambda n: _with(0, 1, "-Infinity"), 400, 0, 1, "Infinity"),
    ("float overflow", lambda n: _with(1, 7, "1e400"), 400, 1, 7, "out of range"),
    ("huge integer", lambda n: _with(2, 8, "1" + "0" * 400), 400, 2, 8, "out of range"),
    (
        "beyond what the network takes",
        lambda n: _with(1, 20, "1e300"),
        400,
        1,
        20,
        "outside the training range",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_a_located_4xx(case, json_impl, digits_client, names):
    _, build, status, index, field, words = case
    body = build(names)
    response = digits_client.post(
        "/predict",
        content=body if isinstance(body, bytes) else body.encode(),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == status, response.text
    error = response.json()
    assert error["instance"] == index
    assert error["field"] == (names[field] if isinstance(field, int) else field)
    assert words in error["error"] and "\n" not in error["error"]
    if index is not None:
        assert f"instance {index}" in error["error"]
    # the server keeps serving
    good = digits_client.post("/predict", json=GOOD)
    assert good.status_code == 200 and len(good.json()["predictions"]) == 2


MIXED_CASES = [
    ("category as number", {"x1": 0.1, "x2": 1.0, "color": 3}, "color", "category string"),
    ("category as boolean", {"x1": 0.1, "x2": 1.0, "color": False}, "color", "category string"),
    ("number as string", {"x1": "0.1", "x2": 1.0, "color": "red"}, "x1", "expected a number"),
]


@pytest.mark.parametrize("case", MIXED_CASES, ids=[c[0] for c in MIXED_CASES])
def test_categorical_features_take_strings_only(case, json_impl, mixed_client):
    _, instance, field, words = case
    good = {"x1": 0.5, "x2": None, "color": None}  # nulls are missing values: imputed
    response = mixed_client.post("/predict", json={"instances": [good, instance]})
    assert response.status_code == 400, response.text
    assert response.json()["instance"] == 1 and response.json()["field"] == field
    assert words in response.json()["error"]
    assert mixed_client.post("/predict", json={"instances": [good]}).status_code == 200


def test_wrong_method_and_route_are_4xx(digits_client):
    assert digits_client.get("/predict").status_code == 405
    assert digits_client.post("/nowhere", json=GOOD).status_code == 404
    assert digits_client.post("/noop", json=GOOD).status_code == 404  # only when enabled
