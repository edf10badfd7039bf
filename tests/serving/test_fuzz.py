"""Fuzzing the request path (hypothesis): whatever the body (JSON of any shape, numbers of
any size, NaN and Infinity literals, deep nesting, bytes that are not JSON or not UTF-8),
the answer is a 200 or a 4xx whose one-line JSON error names the instance and field where
it has them, with orjson and with the standard library's parser; and a large body (parsed a
run of instances at a time) is accepted exactly when the same body parsed whole is."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from components.serving import fastjson
from components.serving import instances as instances_module
from components.serving.errors import BadRequest
from components.serving.instances import InstanceDecoder

NAMES = [f"pixel_{i // 8}_{i % 8}" for i in range(64)]
FUZZ = settings(
    max_examples=250,
    deadline=None,
    derandomize=True,  # the same examples on every run; no example database written
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
CONTENT_TYPES = {"application/json": None, "application/json; charset=utf-8": None}
CONTENT_TYPES |= {"text/plain": 415, "application/x-www-form-urlencoded": 415, None: None}


class Raw:
    """A JSON literal written as is (json.dumps cannot write 5,000-digit integers)."""

    def __init__(self, text: str) -> None:
        self.text = text


def dump(value: Any) -> str:
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, list):
        return "[" + ", ".join(dump(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)}: {dump(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)  # floats: NaN, Infinity, -Infinity as Python writes them


literals = st.one_of(
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1E-400", "-0", "0e0"]),
    st.integers(300, 6000).map(lambda n: "1" * n),
    st.integers(300, 6000).map(lambda n: "-" + "9" * n + ".5e3"),
    st.integers(1, 30).map(lambda n: "0." + "0" * n + "1e-400"),
).map(Raw)
numbers = st.one_of(
    st.integers(-(10**25), 10**25),
    st.floats(allow_nan=True, allow_infinity=True),
    literals,
)
leaves = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=6))
values = st.recursive(
    leaves,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(st.sampled_from(NAMES[:3]) | st.text(max_size=5), inner, max_size=5)
    ),
    max_leaves=20,
)
rows = st.lists(st.one_of(numbers, st.none(), leaves), min_size=62, max_size=66)
objects = st.dictionaries(
    st.sampled_from([*NAMES, "bogus", "id"]), st.one_of(numbers, leaves), min_size=61, max_size=66
)
instances = st.lists(st.one_of(rows, rows, objects, values), max_size=4)
documents = st.one_of(
    st.builds(lambda i: {"instances": i}, instances),
    st.builds(lambda i, p: {"instances": i, "parameters": p}, instances, values),
    st.builds(lambda p, i: {"parameters": p, "instances": i}, values, instances),
    values,
)


@st.composite
def bodies(draw) -> bytes:
    """Mostly JSON documents; some of them cut or with a byte changed; some deep nesting
    and some arbitrary bytes."""
    kind = draw(st.sampled_from(["json"] * 6 + ["cut", "flip", "deep", "bytes"]))
    if kind == "deep":
        n = draw(st.integers(1, 3000))
        return b'{"instances": ' + b"[" * n + b"]" * n + b"}"
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    body = dump(draw(documents)).encode()
    if kind == "cut" and body:
        return body[: draw(st.integers(0, len(body) - 1))]
    if kind == "flip" and body:
        at = draw(st.integers(0, len(body) - 1))
        return body[:at] + bytes([draw(st.integers(0, 255))]) + body[at + 1 :]
    return body


@pytest.fixture(scope="module")
def client(digits_bundles, helpers):
    from fastapi.testclient import TestClient

    from components.serving.app import create_app
    from components.serving.config import ServeConfig

    config = ServeConfig(storage_uri=str(digits_bundles[0]), port=helpers.free_port())
    with TestClient(create_app(config)) as test_client:
        helpers.wait_for(lambda: test_client.get("/health").status_code == 200, 30, "the model")
        yield test_client


class _Parser:
    """orjson, or the standard library alone (as without orjson installed)."""

    def __init__(self, use_orjson: bool) -> None:
        self.use_orjson = use_orjson and fastjson.HAVE_ORJSON

    def __enter__(self) -> None:
        self.saved = fastjson.orjson
        if not self.use_orjson:
            fastjson.orjson = None  # type: ignore[assignment]

    def __exit__(self, *exc: object) -> None:
        fastjson.orjson = self.saved


@FUZZ
@given(body=bodies(), use_orjson=st.booleans(), content_type=st.sampled_from(list(CONTENT_TYPES)))
def test_any_body_is_a_200_or_a_located_4xx(client, body, use_orjson, content_type):
    headers = {} if content_type is None else {"content-type": content_type}
    with _Parser(use_orjson):
        response = client.post("/predict", content=body, headers=headers)
    expected = CONTENT_TYPES[content_type]
    assert response.status_code in ((expected,) if expected else (200, 400, 413)), (
        response.status_code,
        response.text,
    )
    answer = response.json()
    if response.status_code == 200:
        assert len(answer["predictions"]) == len(json.loads(body)["instances"])
        return
    assert set(answer) == {"error", "instance", "field"}
    assert "\n" not in answer["error"]
    if answer["instance"] is not None:
        assert answer["error"].startswith(f"instance {answer['instance']}")
    if answer["field"] is not None and answer["instance"] is not None:
        assert repr(answer["field"]) in answer["error"]


def _decode(decoder: InstanceDecoder, body: bytes, large: bool) -> Any:
    saved = instances_module.WHOLE_BODY_BYTES, instances_module.CHUNK_BYTES
    if large:  # every body takes the large path, in runs of a few instances
        instances_module.WHOLE_BODY_BYTES, instances_module.CHUNK_BYTES = -1, 300
    try:
        rows = decoder.decode(body, 3)
    except BadRequest as exc:
        assert 400 <= exc.status < 500
        return exc.status
    finally:
        instances_module.WHOLE_BODY_BYTES, instances_module.CHUNK_BYTES = saved
    return np.nan_to_num(rows.numeric, nan=-1.5).tolist(), rows.codes.tolist()


DECODERS = {
    "numbers": InstanceDecoder(NAMES, NAMES, [], [], ignored=["id"]),
    "mixed": InstanceDecoder(
        [*NAMES[:62], "c1", "c2"], NAMES[:62], ["c1", "c2"], [["a", "b"], ["x"]], ignored=["id"]
    ),
}


@pytest.mark.parametrize("name", sorted(DECODERS))
@FUZZ
@given(body=bodies(), use_orjson=st.booleans())
def test_a_large_body_is_accepted_exactly_when_a_small_one_is(name, body, use_orjson):
    decoder = DECODERS[name]
    with _Parser(use_orjson):
        small, large = _decode(decoder, body, False), _decode(decoder, body, True)
    if isinstance(small, tuple) or isinstance(large, tuple):
        assert small == large
