"""A gunicorn response that puts its status line, headers and first body bytes on the wire in one send.

Stock gunicorn sends the headers and the body with two separate writes. A worker killed with
SIGKILL between the two leaves nginx holding a response head with no body. nginx has already
passed that head to the client, so it cannot retry the request on another worker, and the
client sees a broken response. When the whole response goes out in one send, a killed worker
has either sent all of it or none of it, and nginx retries the "none" case on a live worker.
"""

from __future__ import annotations

from gunicorn import util
from gunicorn.http import wsgi


class WholeResponse(wsgi.Response):
    """Holds the response head until the first body write (or close) and sends them together."""

    def __init__(self, req, sock, cfg) -> None:
        super().__init__(req, sock, cfg)
        self._held_head = b""

    def send_headers(self) -> None:
        if self.headers_sent:
            return
        lines = self.default_headers() + [f"{name}: {value}\r\n" for name, value in self.headers]
        head = util.to_bytestring("".join(lines) + "\r\n", "latin-1")
        self.headers_sent = True
        if self.chunked:  # a streamed body: its framing is gunicorn's; send the head as it would
            util.write(self.sock, head)
        else:
            self._held_head = head

    def _emit_body(self, data: bytes) -> None:
        head, self._held_head = self._held_head, b""
        util.write(self.sock, head + data, self.chunked)

    def _flush_head(self) -> None:
        head, self._held_head = self._held_head, b""
        if head:
            util.write(self.sock, head)

    def sendfile(self, respiter) -> bool:
        self.send_headers()
        self._flush_head()  # the file itself goes out through the kernel, after the head
        return super().sendfile(respiter)

    def close(self) -> None:
        super().close()
        self._flush_head()  # a response without body bytes (HEAD, 204, an empty body)


def install() -> None:
    """Make every HTTP/1 response of this gunicorn process a WholeResponse."""
    wsgi.Response = WholeResponse
