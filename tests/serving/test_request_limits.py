"""What a request may be, and what the server answers when it is not: huge number literals
are a located 400 (never a 500), a Content-Type other than JSON a 415, bodies beyond the
in-flight budget a 503, a large body gives exactly the answer of the same rows sent small,
and an unexpected error is one log record and a JSON 500 on a connection kept open."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from components.serving import instances as instances_module
from components.serving.model import load_serving_model

ROW = [0] * 64
GOOD = json.dumps({"instances": [ROW]}).encode()
MIB = 1 << 20


@pytest.fixture()
def client(client_for, config_for, registry):
    return client_for(config_for(registry))


def _with(value: bytes, index: int = 1, column: int = 8) -> bytes:
    rows = [[b"1"] * 64 for _ in range(3)]
    rows[index][column] = value
    return b'{"instances": [' + b",".join(b"[" + b",".join(r) + b"]" for r in rows) + b"]}"


@pytest.mark.parametrize(
    "literal",
    [b"1" * 5000, b"-" + b"9" * 4400, b"1" * 5000 + b".5", b"1" * 100_000, b"1e99999999999"],
    ids=["5000 digits", "-4400 digits", "long float", "100k digits", "huge exponent"],
)
def test_huge_number_literals_are_a_located_400(client, digits_test, literal, caplog):
    names = list(digits_test.columns)
    with caplog.at_level(logging.WARNING):
        response = client.post(
            "/predict", content=_with(literal), headers={"content-type": "application/json"}
        )
    assert response.status_code == 400, response.text
    assert response.json() == {
        "error": f"instance 1, field {names[8]!r}: number out of range (not a finite float)",
        "instance": 1,
        "field": names[8],
    }
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert client.post("/predict", content=GOOD).status_code == 200


def test_a_huge_integer_in_an_object_instance_is_located_too(client, digits_test):
    instance = {name: 0 for name in digits_test.columns}
    body = json.dumps({"instances": [instance]}).replace(
        '"pixel_2_2": 0', '"pixel_2_2": ' + "7" * 5000
    )
    response = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert (response.json()["instance"], response.json()["field"]) == (0, "pixel_2_2")


@pytest.mark.parametrize(
    "content_type, status",
    [
        ("application/json", 200),
        ("application/json; charset=UTF-8", 200),
        ("Application/JSON;charset=utf-8", 200),
        ("application/vnd.sigdeploy+json", 200),
        (None, 200),
        ("text/plain", 415),
        ("application/x-www-form-urlencoded", 415),
        ("image/png", 415),
        ("multipart/form-data; boundary=x", 415),
        ("application/json; charset=latin-1", 415),
        ("", 415),
    ],
)
def test_only_json_content_is_taken(client, content_type, status):
    headers = {} if content_type is None else {"content-type": content_type}
    if content_type is None:
        # httpx adds no Content-Type for raw content
        response = client.post("/predict", content=GOOD)
    else:
        response = client.post("/predict", content=GOOD, headers=headers)
    assert response.status_code == status, response.text
    if status == 415:
        error = response.json()
        assert error["field"] == "content-type" and error["instance"] is None
        assert "send Content-Type: application/json" in error["error"]
        assert "\n" not in error["error"]


def test_a_large_body_gets_exactly_the_answer_of_small_ones(client, digits_bundles, digits_test):
    """8,000 rows (~10 MiB as long floats): parsed in runs, run through the network and
    formatted in slices; byte for byte what the same rows give parsed and run whole."""
    rng = np.random.default_rng(0)
    rows = np.tile(digits_test.to_numpy(float), (23, 1))[:8000] + rng.random((8000, 64))
    body = json.dumps({"instances": rows.tolist()}).encode()
    assert 8 * MIB < len(body) < 10 * MIB
    response = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 200
    model = load_serving_model(digits_bundles[0], "1")
    saved = instances_module.WHOLE_BODY_BYTES
    instances_module.WHOLE_BODY_BYTES = 1 << 40
    try:
        whole = model.format(model.network(model.decoder.decode(body, 10_000)))
    finally:
        instances_module.WHOLE_BODY_BYTES = saved
    assert response.content == whole


def _send_head(port: int, length: int, first: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(
        b"POST /predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % length + first
    )
    return sock


def _status(sock: socket.socket) -> tuple[int, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    return int(data.split()[1]), data


def test_bodies_beyond_the_in_flight_budget_are_a_503(registry, config_for, helpers):
    limit = 100_000
    config = config_for(registry, max_body_bytes=limit, max_inflight_bytes=limit)
    body = json.dumps({"instances": [ROW] * 500}).encode()
    assert len(body) <= limit
    with helpers.running_server(config):
        port = config.port
        helpers.wait_for(lambda: _status(_send_head(port, len(GOOD), GOOD))[0] == 200)
        first = _send_head(port, len(body), body[:1000])  # holds len(body) of the budget
        time.sleep(0.2)
        second = _send_head(port, len(body), body)
        status, head = _status(second)
        assert status == 503 and b"retry-after: 1" in head.lower()
        first.sendall(body[1000:])
        assert _status(first)[0] == 200
        assert _status(_send_head(port, len(body), body))[0] == 200  # the budget is back
        first.close()
        second.close()


def test_large_requests_wait_for_a_slot(registry, config_for, helpers):
    config = config_for(registry, large_request_slots=1)
    body = json.dumps({"instances": [[float(i % 17) + 0.123456789 for i in range(64)]] * 4000})
    statuses: list[int] = []
    with helpers.running_server(config) as url:
        import httpx

        def post() -> None:
            statuses.append(
                httpx.post(
                    f"{url}/predict",
                    content=body,
                    headers={"content-type": "application/json"},
                    timeout=60,
                ).status_code
            )

        senders = [threading.Thread(target=post) for _ in range(4)]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join()
    assert statuses == [200] * 4


def test_an_unexpected_error_is_one_log_record_and_a_json_500(
    registry, config_for, helpers, caplog, monkeypatch
):
    import httpx

    from components.serving.model import ServingModel

    def broken(self, rows, proba):
        raise RuntimeError("boom")

    with helpers.running_server(config_for(registry)) as url:
        helpers.wait_for(lambda: httpx.get(f"{url}/health").status_code == 200)
        monkeypatch.setattr(ServingModel, "answer", broken)
        with httpx.Client(base_url=url) as http, caplog.at_level(logging.ERROR):
            response = http.post("/predict", content=GOOD)
            assert response.status_code == 500
            assert response.json()["error"] == "internal error (RuntimeError); see the server log"
            assert response.headers.get("connection") != "close"
            monkeypatch.undo()
            assert http.post("/predict", content=GOOD).status_code == 200  # same connection
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "unexpected error on POST /predict" in errors[0].getMessage()


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
def test_a_10_mib_request_costs_a_few_times_its_size(registry, config_for, helpers):
    """Peak RSS growth of this process (the server runs in a thread of it) while it answers
    one 10 MiB body; before bounded decoding it was ~6x for long floats, ~27x for [0]s."""
    rng = np.random.default_rng(1)
    floats = json.dumps({"instances": (rng.random((8300, 64)) * 16).tolist()}).encode()
    lists = b'{"instances":[' + b",".join([b"[0]"] * (10 * MIB // 4 - 8)) + b"]}"
    assert len(floats) <= 10 * MIB and len(lists) <= 10 * MIB
    status = Path("/proc/self/status")

    def kib(name: str) -> int:
        return int(
            next(t for t in status.read_text().splitlines() if t.startswith(name)).split()[1]
        )

    config = config_for(registry)
    with helpers.running_server(config):
        helpers.wait_for(lambda: _status(_send_head(config.port, len(GOOD), GOOD))[0] == 200)
        for body, expected, most in ((floats, 200, 4.0), (lists, 413, 2.0)):
            base = kib("VmRSS:")
            Path("/proc/self/clear_refs").write_text("5")
            sock = _send_head(config.port, len(body), body)
            got, _ = _status(sock)
            sock.close()
            growth = (kib("VmHWM:") - base) * 1024
            assert got == expected
            assert growth < most * len(body), (expected, growth / len(body))


def test_the_limits_come_from_the_environment_and_are_checked():
    from components.core.errors import ConfigError
    from components.serving.config import ServeConfig

    config = ServeConfig.from_env(
        {
            "SIGDEPLOY_SERVE_READ_TIMEOUT": "2.5",
            "SIGDEPLOY_SERVE_MAX_INFLIGHT_BYTES": str(64 * MIB),
            "SIGDEPLOY_SERVE_LARGE_REQUEST_SLOTS": "3",
        }
    )
    assert (config.read_timeout, config.max_inflight_bytes, config.large_request_slots) == (
        2.5,
        64 * MIB,
        3,
    )
    with pytest.raises(ConfigError, match="max_inflight_bytes=1000 must be >= max_body_bytes"):
        ServeConfig(max_inflight_bytes=1000)
    with pytest.raises(ConfigError, match="read_timeout=0 must be > 0"):
        ServeConfig(read_timeout=0)
    with pytest.raises(ConfigError, match="large_request_slots=0 must be >= 1"):
        ServeConfig(large_request_slots=0)
