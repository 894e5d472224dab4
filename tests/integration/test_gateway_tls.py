"""HTTPS at the gateway, against the real cluster: who may connect, how, and a rotation under load.

The shared cluster serves HTTPS on a port of its own beside plain HTTP, with a certificate from
the local CA scripts/tls generated in its run directory. Clients here trust only that CA.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import shutil
import socket
import ssl
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from scripts.localcluster import LocalCluster
from scripts.tls.store import describe
from tests.support.load import RequestLoop
from tests.support.processes import free_port
from tests.support.waiting import wait_for, wait_outcomes

PAYLOAD = {"text": "张三在北京的清华大学工作。"}
# The client's own floor for the old-protocol checks: OpenSSL 3 refuses TLS 1.0/1.1 itself at
# security level 1 and above, which would hide whether the server refuses them.
OLD_PROTOCOL_CIPHERS = "DEFAULT:@SECLEVEL=0"


@dataclass(frozen=True)
class Connected:
    """What one TLS connection to the gateway negotiated and what it answered."""

    version: str
    alpn: str | None
    fingerprint: str
    status: int
    reused: bool
    session: ssl.SSLSession | None


@pytest.fixture(scope="module")
def gateway(cluster: LocalCluster) -> LocalCluster:
    cluster.up(2)
    cluster.wait_gateway_serving()
    return cluster


@pytest.fixture(scope="module")
def ca_file(gateway: LocalCluster) -> Path:
    return gateway.config.tls_dir / "ca.pem"


def client_context(
    ca: Path | None, version: ssl.TLSVersion | None = None, alpn: list[str] | None = None
) -> ssl.SSLContext:
    """A client that trusts only ca (None: the system's CAs), optionally pinned to one TLS version."""
    context = ssl.create_default_context(cafile=str(ca) if ca else None)
    if version is not None:
        with warnings.catch_warnings():  # TLSv1 / TLSv1_1 are deprecated names; that is the point
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = context.maximum_version = version
        if version < ssl.TLSVersion.TLSv1_2:
            context.set_ciphers(OLD_PROTOCOL_CIPHERS)
    if alpn:
        context.set_alpn_protocols(alpn)
    return context


def connect(
    port: int, context: ssl.SSLContext, session: ssl.SSLSession | None = None, request: bool = True
) -> Connected:
    """One fresh connection to 127.0.0.1:port named localhost; a POST /v1/ner over HTTP/1.1 when request."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="localhost", session=session) as tls:
            status = 0
            if request:
                body = json.dumps(PAYLOAD).encode()
                tls.sendall(
                    b"POST /v1/ner HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                    + body
                )
                response = http.client.HTTPResponse(tls)
                response.begin()
                response.read()
                status = response.status
            der = tls.getpeercert(binary_form=True)
            return Connected(
                version=tls.version() or "",
                alpn=tls.selected_alpn_protocol(),
                fingerprint=hashlib.sha256(der or b"").hexdigest(),
                status=status,
                reused=tls.session_reused,
                session=tls.session,
            )


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2], ids=["tls1.3", "tls1.2"])
def test_a_client_trusting_only_the_generated_ca_gets_200(gateway, ca_file, version) -> None:
    connected = connect(gateway.config.tls_port, client_context(ca_file, version))
    assert (connected.status, connected.version) == (200, version.name.replace("v1_", "v1."))


@pytest.fixture(scope="module")
def old_protocol_server(gateway: LocalCluster, tmp_path_factory) -> Iterator[int]:
    """openssl s_server accepting TLS 1.0 and 1.1 with the gateway's certificate: the control case."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    tls_dir = gateway.config.tls_dir
    port = free_port()
    log = (tmp_path_factory.mktemp("s_server") / "s_server.log").open("wb")
    server = subprocess.Popen(
        ["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-cert", str(tls_dir / "gateway.pem")]
        + [
            "-key",
            str(tls_dir / "gateway-key.pem"),
            "-min_protocol",
            "TLSv1",
            "-max_protocol",
            "TLSv1.1",
            "-cipher",
            OLD_PROTOCOL_CIPHERS,
            "-www",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: socket.create_connection(("127.0.0.1", port), timeout=1).close() or True, 10, "s_server")
        yield port
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_1, ssl.TLSVersion.TLSv1], ids=["tls1.1", "tls1.0"])
def test_tls_1_1_and_below_are_refused_by_the_server(gateway, ca_file, old_protocol_server, version) -> None:
    context = client_context(ca_file, version)
    # The same client completes that handshake with a server that allows it: the client can speak it.
    assert connect(old_protocol_server, context, request=False).version == version.name.replace("v1_", "v1.")
    with pytest.raises(ssl.SSLError) as refused:
        connect(gateway.config.tls_port, context)
    # An alert the server sent, not the client's own refusal (that would be NO_PROTOCOLS_AVAILABLE).
    assert "ALERT_PROTOCOL_VERSION" in str(refused.value), refused.value


def test_a_client_that_does_not_trust_the_ca_fails_verification(gateway) -> None:
    with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer certificate"):
        connect(gateway.config.tls_port, client_context(None))


def test_http2_is_negotiated_by_alpn(gateway, ca_file) -> None:
    connected = connect(gateway.config.tls_port, client_context(ca_file, alpn=["h2", "http/1.1"]), request=False)
    assert connected.alpn == "h2"


def test_curl_over_http2_gets_entities(gateway, ca_file) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    done = subprocess.run(
        ["curl", "-sS", "--http2", "--cacert", str(ca_file), "-H", "Content-Type: application/json"]
        + [
            "-d",
            json.dumps(PAYLOAD),
            "-w",
            "\n%{http_version} %{http_code}",
            f"{gateway.config.gateway_tls_url}/v1/ner",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    body, _, versions = done.stdout.rpartition("\n")
    assert versions == "2 200", done.stdout + done.stderr
    assert {entity["span"] for entity in json.loads(body)["entities"]} >= {"张三", "北京"}


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2], ids=["tls1.3", "tls1.2"])
def test_a_second_connection_resumes_the_session(gateway, ca_file, version) -> None:
    context = client_context(ca_file, version)
    first = connect(gateway.config.tls_port, context)  # TLS 1.3 hands out its ticket after the handshake
    again = connect(gateway.config.tls_port, context, session=first.session)
    assert (first.reused, again.reused, again.status) == (False, True, 200)


def test_rotation_under_paced_load_fails_no_request_and_serves_the_new_certificate(
    gateway, ca_file, record_figure
) -> None:
    port = gateway.config.tls_port
    chain = gateway.config.tls_dir / "gateway.pem"
    before = connect(port, client_context(ca_file)).fingerprint
    assert before == describe(chain)["sha256"]
    url = f"{gateway.config.gateway_tls_url}/v1/ner"
    loop = RequestLoop(url, PAYLOAD, max_requests=2000, max_seconds=60, interval=0.02, verify=str(ca_file)).start()
    try:
        wait_outcomes(loop.outcomes, 50)
        started = time.monotonic()
        gateway.rotate_cert()
        rotated = time.monotonic() - started
        after = describe(chain)["sha256"]
        wait_for(lambda: connect(port, client_context(ca_file)).fingerprint == after, 10, "the new certificate served")
        wait_outcomes(loop.outcomes, 50)
    finally:
        loop.stop()
    record_figure("gateway_tls_rotation_s", rotated)
    record_figure("gateway_tls_rotation_requests", len(loop.outcomes))
    print(loop.summary())
    assert after != before
    assert loop.failures == [], loop.summary()
