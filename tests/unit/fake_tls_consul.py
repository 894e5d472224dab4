"""A stand-in for Consul's HTTPS API: a certificate from a CA of scripts/tls, a canned answer for every GET."""

from __future__ import annotations

import http.server
import json
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from scripts.secured.consul_tls import ConsulTls, ensure_consul_tls


@dataclass
class FakeTlsConsul:
    """Answers `[]` (X-Consul-Index 5) for any GET on https://127.0.0.1:PORT; records the paths and tokens asked."""

    tls: ConsulTls
    server: http.server.ThreadingHTTPServer
    asked: list[tuple[str, str]] = field(default_factory=list)

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


def serve(directory: Path) -> Iterator[FakeTlsConsul]:
    """Issue Consul's certificate into directory and serve HTTPS with it until the generator is closed."""
    tls = ensure_consul_tls(directory)
    fake: FakeTlsConsul

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            fake.asked.append((self.path, self.headers.get("X-Consul-Token", "")))
            body = json.dumps([]).encode()
            self.send_response(200)
            self.send_header("X-Consul-Index", "5")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls.cert_file, tls.key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    fake = FakeTlsConsul(tls, server)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
