"""Raw-socket HTTP for requests no well-behaved client library will send."""

from __future__ import annotations

import http.client
import json
import socket
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)


def request_bytes(
    path: str, body: bytes, headers: dict[str, str] | None = None, content_length: int | None = None
) -> bytes:
    """A POST exactly as given; content_length=None sends the true length, -1 sends none."""
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    if content_length is None:
        content_length = len(body)
    if content_length >= 0:
        all_headers["Content-Length"] = str(content_length)
    lines += [f"{k}: {v}" for k, v in all_headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def exchange(
    port: int,
    pieces: list[bytes],
    pause: float = 0.0,
    timeout: float = 10.0,
    half_close: bool = False,
    sent_at: list[float] | None = None,
) -> RawResponse:
    """Send pieces (pausing between them), then read one response; a peer that stops reading is fine.

    half_close ends the client's sending side, as a client that lied about the body length and gave up.
    sent_at, when given, gets the time.monotonic() at which each piece was handed to the socket.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        for index, piece in enumerate(pieces):
            if index and pause:
                time.sleep(pause)
            try:
                sock.sendall(piece)
            except (BrokenPipeError, ConnectionResetError):
                break  # the server answered early (e.g. 413) and closed: read what it said
            if sent_at is not None:
                sent_at.append(time.monotonic())
        if half_close:
            try:
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        response = http.client.HTTPResponse(sock)
        response.begin()
        body = response.read()
        return RawResponse(response.status, {k.lower(): v for k, v in response.getheaders()}, body)
