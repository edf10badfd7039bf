"""Slow and half-sent requests on real uvicorn: a connection that does not send a complete
request head within read_timeout is closed, a body that does not arrive in time is a 408
(and the connection is closed), and /health stays fast while hundreds of such connections
are open. The timeout here is 0.5 s; the default is 10 s."""

from __future__ import annotations

import json
import socket
import statistics
import time

import pytest

from components.serving.config import ServeConfig
from components.serving.server import DeadlineH11Protocol, uvicorn_settings

TIMEOUT = 0.5
ROW = json.dumps({"instances": [[0] * 64]}).encode()


@pytest.fixture()
def url(registry, config_for, helpers):
    with helpers.running_server(config_for(registry, read_timeout=TIMEOUT)) as base:
        helpers.wait_for(lambda: _request(base, b"GET /health HTTP/1.1\r\n\r\n")[0] == 200)
        yield base


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=5)
    return sock


def _request(url: str, data: bytes) -> tuple[int, bytes]:
    """Send ``data`` (a whole request, Host added), read one response: (status, body)."""
    with _connect(url) as sock:
        sock.sendall(data.replace(b"\r\n", b"\r\nHost: test\r\n", 1))
        return _response(sock)


def _response(sock: socket.socket) -> tuple[int, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return 0, data
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    while len(body) < length:
        body += sock.recv(65536)
    return int(head.split()[1]), body


def _closed_after(sock: socket.socket, limit: float = 5.0) -> float:
    """Seconds until the server closes ``sock`` (reading and dropping what it sends)."""
    start = time.monotonic()
    sock.settimeout(limit)
    while sock.recv(65536):
        pass
    return time.monotonic() - start


def test_uvicorn_runs_the_deadline_protocol_with_the_configured_timeout():
    settings = uvicorn_settings(ServeConfig(read_timeout=3.5, port=9999))
    assert issubclass(settings["http"], DeadlineH11Protocol)
    assert settings["http"].read_timeout == 3.5 and settings["port"] == 9999


def test_a_connection_that_sends_nothing_is_closed(url):
    with _connect(url) as sock:
        assert TIMEOUT * 0.8 < _closed_after(sock) < TIMEOUT + 2


def test_a_trickled_request_head_is_closed_at_its_deadline(url):
    with _connect(url) as sock:
        start = time.monotonic()
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: test\r\n")
        for byte in b"Content-Type: application/json":  # one byte every 50 ms: not a reset
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                break
            time.sleep(0.05)
        _closed_after(sock)
        assert time.monotonic() - start < TIMEOUT + 2


def test_a_late_body_is_a_408_and_the_connection_closes(url):
    with _connect(url) as sock:
        sock.sendall(
            b"POST /predict HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000\r\n\r\n" + ROW[:20]
        )
        start = time.monotonic()
        status, body = _response(sock)
        assert status == 408 and TIMEOUT * 0.8 < time.monotonic() - start < TIMEOUT + 2
        error = json.loads(body)
        assert error["field"] == "body" and "did not arrive within 0.5 s" in error["error"]
        assert _closed_after(sock) < 2


def test_an_unread_body_must_still_arrive_in_time(url):
    """A 415 is answered without reading the body; the rest of it is still due."""
    with _connect(url) as sock:
        sock.sendall(
            b"POST /predict HTTP/1.1\r\nHost: test\r\nContent-Type: text/plain\r\n"
            b"Content-Length: 1000\r\n\r\n{"
        )
        assert _response(sock)[0] == 415
        assert _closed_after(sock) < TIMEOUT + 2


def test_a_kept_alive_connection_serves_request_after_request(url):
    with _connect(url) as sock:
        for _ in range(3):
            sock.sendall(
                b"POST /predict HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % len(ROW) + ROW
            )
            assert _response(sock)[0] == 200
            time.sleep(TIMEOUT / 3)


def test_health_stays_fast_while_many_requests_hang(url):
    def health_ms() -> float:
        start = time.perf_counter()
        assert _request(url, b"GET /health HTTP/1.1\r\nConnection: close\r\n\r\n")[0] == 200
        return 1e3 * (time.perf_counter() - start)

    idle = statistics.median(health_ms() for _ in range(20))
    hanging = []
    try:
        for i in range(300):  # half of them a half head, half a half body
            sock = _connect(url)
            sock.sendall(
                b"POST /predict HTTP/1.1\r\nHost: t\r\nContent-Length: 900\r\n\r\n[[1,"
                if i % 2
                else b"POST /predict HTTP/1.1\r\nHo"
            )
            hanging.append(sock)
        busy = statistics.median(health_ms() for _ in range(20))
        assert busy < max(20 * idle, 50.0), (idle, busy)
        closed = sum(_closed_after(sock, TIMEOUT + 3) < TIMEOUT + 3 for sock in hanging)
        assert closed == len(hanging)
    finally:
        for sock in hanging:
            sock.close()
