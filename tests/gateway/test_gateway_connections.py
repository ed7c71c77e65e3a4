"""Slow and surplus connections, over raw sockets to the gateway served by uvicorn (issue 12).

The server's timeouts are set short and the client waits up to 10 s: each test
asserts what the server does (answers, then closes), never how fast.
"""

from __future__ import annotations

import json
import socket

import pytest
from gateway_support import ServedGateway, exchange

from kube_support import LocalKube

pytestmark = [pytest.mark.timeout(90)]
HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"


def head(served: ServedGateway, length: int, *, key: bool = True) -> bytes:
    """The headers of a POST /v1/events with a body of `length` bytes."""
    headers = served.headers()
    lines = [
        "POST /v1/events HTTP/1.1",
        "Host: x",
        f"X-Namespace: {headers['X-Namespace']}",
        "Content-Type: application/json",
        f"Content-Length: {length}",
    ]
    if key:
        lines.append(f"Authorization: {headers['Authorization']}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def status_and_body(answer: bytes) -> tuple[bytes, dict[str, str], object]:
    head_part, _, body = answer.partition(b"\r\n\r\n")
    status, *header_lines = head_part.split(b"\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, json.loads(body)


def test_idle_and_slow_header_connections_are_closed(kube: LocalKube) -> None:
    with ServedGateway(kube, header_timeout_seconds=0.5) as served:
        assert exchange(served.url, b"") == b""  # nothing sent: closed, nothing to answer
        partial = b"GET /healthz HTTP/1.1\r\nHost: x\r\n"  # the blank line never comes
        status, headers, body = status_and_body(exchange(served.url, partial))
        assert status == b"HTTP/1.1 408 Request Timeout"
        assert headers["connection"] == "close"
        assert body == {"detail": "the request was not received in time; the connection is closed"}
        # After a response, the next request's headers are waited for as long, no longer.
        answer = exchange(served.url, HEALTHZ)
        assert answer.startswith(b"HTTP/1.1 200 OK") and answer.endswith(b"ok")


def test_a_slow_body_is_cut_off(kube: LocalKube) -> None:
    with ServedGateway(kube, body_timeout_seconds=0.5) as served:
        answer = exchange(served.url, head(served, 100) + b'[{"event_type": ')
        status, headers, body = status_and_body(answer)
        assert status == b"HTTP/1.1 408 Request Timeout"
        assert headers["connection"] == "close"
        assert body == {"detail": "the request was not received in time; the connection is closed"}


def test_the_key_is_checked_before_the_body_is_read(kube: LocalKube) -> None:
    """The 401 comes while 990 of the 1,000 announced bytes are still to be sent."""
    with ServedGateway(kube) as served:
        answer = exchange(served.url, head(served, 1000, key=False) + b"[" * 10)
        status, headers, body = status_and_body(answer)
        assert status == b"HTTP/1.1 401 Unauthorized"
        assert headers["connection"] == "close"
        assert headers["www-authenticate"] == "Bearer"
        assert body == {"detail": "missing or invalid API key (send Authorization: Bearer <key>)"}


def test_connections_beyond_the_cap_are_refused(kube: LocalKube) -> None:
    with ServedGateway(kube, max_connections=2) as served:
        host, port = served.url.removeprefix("http://").split(":")
        held = [socket.create_connection((host, int(port)), timeout=10) for _ in range(2)]
        try:
            status, headers, body = status_and_body(exchange(served.url, HEALTHZ))
            assert status == b"HTTP/1.1 503 Service Unavailable"
            assert headers["retry-after"] == "1"
            assert headers["connection"] == "close"
            assert body == {"detail": "the gateway has too many open connections; retry shortly"}
            # the connections within the cap are served
            first = exchange(served.url, HEALTHZ[:-2] + b"Connection: close\r\n\r\n", held[0])
            assert first.startswith(b"HTTP/1.1 200 OK")
        finally:
            for sock in held:
                sock.close()
