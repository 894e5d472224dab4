"""supervisord's XML-RPC API over its unix control socket, as supervisorctl reaches it, with a timeout."""

from __future__ import annotations

import socket
import xmlrpc.client
from pathlib import Path

from supervisor.xmlrpc import SupervisorTransport


class _UnixTransport(SupervisorTransport):
    """supervisorctl's transport, with a timeout so a hung daemon cannot hang us."""

    def __init__(self, socket_path: Path, timeout: float) -> None:
        super().__init__(None, None, f"unix://{socket_path}")
        self._timeout = timeout

    def request(self, host, handler, request_body, verbose=0):  # noqa: ANN001 - xmlrpc's signature
        previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(self._timeout)
        try:
            return super().request(host, handler, request_body, verbose)
        finally:
            socket.setdefaulttimeout(previous)


def control_proxy(socket_path: Path, timeout: float) -> xmlrpc.client.ServerProxy:
    return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=_UnixTransport(socket_path, timeout))
