"""worker/whole_response.py: a response leaves in one send, byte for byte what stock gunicorn sends."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from gunicorn import util
from gunicorn.http import wsgi

from worker import whole_response
from worker.whole_response import WholeResponse


class RecordingSocket:
    """Keeps every sendall() as one entry, so a test sees how many sends a response took."""

    def __init__(self) -> None:
        self.sends: list[bytes] = []

    def sendall(self, data: bytes) -> None:
        self.sends.append(bytes(data))


@pytest.fixture(autouse=True)
def fixed_date(monkeypatch):
    monkeypatch.setattr(util, "http_date", lambda *args: "Fri, 27 Nov 2026 00:00:00 GMT")


def respond(response_class, method: str, status: str, headers: list, body: list[bytes]) -> RecordingSocket:
    """Drive one response the way gunicorn's gthread worker does: start_response, write each item, close."""
    sock = RecordingSocket()
    req = SimpleNamespace(version=(1, 1), method=method, should_close=lambda: False)
    response = response_class(req, sock, SimpleNamespace(sendfile=False, is_ssl=False))
    response.start_response(status, headers)
    for item in body:
        response.write(item)
    response.close()
    return sock


JSON = [("Content-Type", "application/json"), ("Content-Length", "15")]


def test_a_response_with_a_length_leaves_in_one_send():
    sock = respond(WholeResponse, "POST", "200 OK", JSON, [b'{"entities":[]}'])
    assert len(sock.sends) == 1
    assert sock.sends[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert sock.sends[0].endswith(b'\r\n\r\n{"entities":[]}')


@pytest.mark.parametrize(
    "method, status, headers, body",
    [
        ("POST", "200 OK", JSON, [b'{"entities":[]}']),
        ("POST", "429 Too Many Requests", JSON, [b'{"entities":', b"[]}"]),
        ("GET", "200 OK", [("Content-Type", "text/plain")], [b"streamed ", b"in chunks"]),
        ("HEAD", "200 OK", JSON, []),
        ("DELETE", "204 No Content", [], [b""]),
    ],
    ids=["one body item", "two body items", "chunked", "head", "no content"],
)
def test_the_bytes_on_the_wire_are_those_stock_gunicorn_sends(method, status, headers, body):
    ours = respond(WholeResponse, method, status, headers, body)
    stock = respond(wsgi.Response, method, status, headers, body)
    assert b"".join(ours.sends) == b"".join(stock.sends)


def test_a_response_without_a_body_sends_its_head_when_closed():
    sock = respond(WholeResponse, "HEAD", "200 OK", JSON, [])
    assert len(sock.sends) == 1
    assert sock.sends[0].endswith(b"\r\n\r\n")


def test_install_makes_gunicorn_build_whole_responses(monkeypatch):
    monkeypatch.setattr(wsgi, "Response", wsgi.Response)  # restored after the test
    whole_response.install()
    assert wsgi.Response is WholeResponse
