"""scripts/tls: a local CA and the certificates it signs, issued again only when they need it."""

from __future__ import annotations

import socket
import ssl
import stat
import threading
from pathlib import Path

import pytest

from scripts.tls import CaFiles, CertFiles, ensure_ca, ensure_server_cert, split_names
from scripts.tls.cli import main as tls_cli
from scripts.tls.nginx import listen_snippet
from scripts.tls.store import describe

NAMES = (["localhost"], ["127.0.0.1", "::1"])


def issue(directory: Path, **options) -> tuple[CaFiles, CertFiles]:
    ca = ensure_ca(directory)
    dns_names, ips = options.pop("names", NAMES)
    return ca, ensure_server_cert(ca, directory, "gateway", dns_names, ips, **options)


def serial(path: Path) -> str:
    return describe(path)["serial"]


def test_files_are_0600_in_a_0700_directory(tmp_path: Path) -> None:
    ca, cert = issue(tmp_path / "tls")
    assert stat.S_IMODE((tmp_path / "tls").stat().st_mode) == 0o700
    for path in (ca.cert, ca.key, cert.cert, cert.key, cert.chain):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_a_second_start_keeps_the_certificate(tmp_path: Path) -> None:
    _, first = issue(tmp_path)
    before = serial(first.cert)
    _, again = issue(tmp_path)
    assert serial(again.cert) == before


def test_changed_names_issue_a_certificate_for_the_new_names(tmp_path: Path) -> None:
    _, first = issue(tmp_path)
    before = serial(first.cert)
    _, again = issue(tmp_path, names=(["localhost", "gateway.example"], ["127.0.0.1"]))
    shown = describe(again.cert)
    assert shown["serial"] != before
    assert (shown["dns_names"], shown["ips"]) == (["gateway.example", "localhost"], ["127.0.0.1"])


def test_a_certificate_expiring_within_the_renewal_window_is_issued_again(tmp_path: Path) -> None:
    _, first = issue(tmp_path, days=40)
    before = serial(first.cert)
    _, kept = issue(tmp_path, days=40)
    assert serial(kept.cert) == before  # 40 days left, renewal window 30
    _, renewed = issue(tmp_path, renew_within_days=45)
    assert serial(renewed.cert) != before


def test_asking_for_client_auth_issues_a_certificate_with_that_usage(tmp_path: Path) -> None:
    _, first = issue(tmp_path)
    before = serial(first.cert)
    _, again = issue(tmp_path, client_auth=True)
    assert serial(again.cert) != before
    assert ssl_usable(tmp_path, again, client_cert=True)


def test_a_new_ca_issues_the_certificate_again(tmp_path: Path) -> None:
    ca, first = issue(tmp_path)
    before = serial(first.cert)
    ca.cert.unlink()
    _, again = issue(tmp_path)
    assert serial(again.cert) != before
    assert ssl_usable(tmp_path, again)


def test_force_rotates_the_certificate_under_the_same_ca(tmp_path: Path) -> None:
    ca, first = issue(tmp_path)
    ca_before, cert_before = serial(ca.cert), serial(first.cert)
    _, rotated = issue(tmp_path, force=True)
    assert serial(rotated.cert) != cert_before
    assert serial(ca.cert) == ca_before


def test_a_validity_not_longer_than_the_renewal_window_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="must exceed"):
        issue(tmp_path, days=30)


def test_a_client_trusting_only_the_ca_verifies_the_chain_for_each_name(tmp_path: Path) -> None:
    _, cert = issue(tmp_path)
    for name in ("localhost", "127.0.0.1", "::1"):
        assert ssl_usable(tmp_path, cert, server_hostname=name)


def test_a_name_outside_the_certificate_fails_verification(tmp_path: Path) -> None:
    _, cert = issue(tmp_path)
    with pytest.raises(ssl.SSLCertVerificationError):
        ssl_usable(tmp_path, cert, server_hostname="other.example")


def test_split_names_separates_dns_names_from_addresses() -> None:
    assert split_names(["LocalHost", "127.0.0.1", " ::1 ", "", "localhost", "0:0::1"]) == (
        ["localhost"],
        ["127.0.0.1", "::1"],
    )


def test_cli_ensure_prints_the_files_and_keeps_them_on_the_next_call(tmp_path: Path, capsys) -> None:
    argv = ["ensure", "--dir", str(tmp_path), "--name", "gateway", "--names", "localhost,127.0.0.1"]
    assert tls_cli(argv) == 0
    first = capsys.readouterr()
    paths = dict(line.split("=", 1) for line in first.out.splitlines())
    assert paths == {
        "ca": str(tmp_path / "ca.pem"),
        "cert": str(tmp_path / "gateway.pem"),
        "key": str(tmp_path / "gateway-key.pem"),
        "chain": str(tmp_path / "gateway-chain.pem"),
    }
    assert "certificate issued" in first.err
    assert tls_cli(argv) == 0
    assert "certificate kept" in capsys.readouterr().err


def test_nginx_snippet_refuses_values_that_would_break_the_config() -> None:
    with pytest.raises(ValueError):
        listen_snippet("127.0.0.1:8443; include /etc/passwd", Path("/c.pem"), Path("/k.pem"))


def ssl_usable(tmp_path: Path, cert: CertFiles, server_hostname: str = "localhost", client_cert: bool = False) -> bool:
    """A real TLS handshake over a socket pair: server presents the chain, client trusts only the CA."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert.chain, cert.key)
    client_ctx = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
    if client_cert:
        server_ctx.verify_mode = ssl.CERT_REQUIRED
        server_ctx.load_verify_locations(tmp_path / "ca.pem")
        client_ctx.load_cert_chain(cert.chain, cert.key)
    left, right = socket.socketpair()
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            with server_ctx.wrap_socket(right, server_side=True) as tls:
                tls.sendall(b"ok")
        except (OSError, ssl.SSLError) as error:
            errors.append(error)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        left.settimeout(10)
        with client_ctx.wrap_socket(left, server_hostname=server_hostname) as tls:
            assert tls.recv(2) == b"ok"
    finally:
        left.close()
        thread.join(timeout=10)
        right.close()
    return not errors
