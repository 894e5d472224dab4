"""ensure_ca / ensure_server_cert: keep a CA and its certificates on disk, issuing only when needed."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from scripts.secured.secretfiles import SecretStore
from scripts.tls import issue

CA_CERT = "ca.pem"
CA_KEY = "ca-key.pem"
CA_NAME = "NER cluster local CA"
CA_DAYS = 3650
CERT_DAYS = 365
RENEW_WITHIN_DAYS = 30


@dataclass(frozen=True)
class CaFiles:
    """The CA's certificate (what clients trust) and its signing key."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class CertFiles:
    """One endpoint's certificate (what its server presents), its key, and the chain (certificate then CA)."""

    cert: Path
    key: Path
    chain: Path

    def fingerprint(self) -> str:
        """SHA-256 of the certificate now on disk: what a client sees after the next reload."""
        return issue.fingerprint(issue.load_cert(self.cert.read_bytes()))


def split_names(names: Iterable[str]) -> tuple[list[str], list[str]]:
    """DNS names and IP addresses out of one list (`localhost,127.0.0.1,::1`), order kept, no repeats."""
    dns: list[str] = []
    ips: list[str] = []
    for raw in names:
        name = raw.strip()
        if not name:
            continue
        try:
            target, value = ips, str(ipaddress.ip_address(name))
        except ValueError:
            target, value = dns, name.lower()
        if value not in target:
            target.append(value)
    return dns, ips


def ensure_ca(
    directory: Path, common_name: str = CA_NAME, days: int = CA_DAYS, renew_within_days: int = RENEW_WITHIN_DAYS
) -> CaFiles:
    """The CA in directory (ca.pem, ca-key.pem), created when missing, unreadable or expiring."""
    if days <= renew_within_days:
        raise ValueError(f"days={days} must exceed renew_within_days={renew_within_days}, or every start re-issues")
    store = _store(directory)
    files = CaFiles(cert=store.file(CA_CERT), key=store.file(CA_KEY))
    if ca_reissue_reason(files, renew_within_days) is not None:
        made = issue.issue_ca(common_name, days)
        store.write(CA_KEY, made.key_pem.decode())
        store.write(CA_CERT, made.cert_pem.decode())
    return files


def ca_reissue_reason(files: CaFiles, renew_within_days: int = RENEW_WITHIN_DAYS) -> str | None:
    """Why the CA must be made again, or None when it is fine."""
    try:
        cert, key = issue.load_cert(files.cert.read_bytes()), issue.load_key(files.key.read_bytes())
    except FileNotFoundError:
        return "missing"
    except ValueError as error:
        return f"unreadable: {error}"
    if not issue.key_matches(cert, key):
        return "key does not match the certificate"
    return _expiry_reason(cert, renew_within_days)


def ensure_server_cert(
    ca: CaFiles,
    directory: Path,
    name: str,
    dns_names: Sequence[str],
    ips: Sequence[str],
    client_auth: bool = False,
    days: int = CERT_DAYS,
    renew_within_days: int = RENEW_WITHIN_DAYS,
    force: bool = False,
) -> CertFiles:
    """NAME.pem, NAME-key.pem and NAME-chain.pem in directory, issued by ca when needed (force: always)."""
    if days <= renew_within_days:
        raise ValueError(f"days={days} must exceed renew_within_days={renew_within_days}, or every start re-issues")
    store = _store(directory)
    files = CertFiles(
        cert=store.file(f"{name}.pem"), key=store.file(f"{name}-key.pem"), chain=store.file(f"{name}-chain.pem")
    )
    addresses = [ipaddress.ip_address(ip) for ip in ips]
    wanted = (set(dns_names), set(addresses), client_auth)
    if force or cert_reissue_reason(ca, files, wanted, renew_within_days) is not None:
        ca_cert = issue.load_cert(ca.cert.read_bytes())
        ca_key = issue.load_key(ca.key.read_bytes())
        made = issue.issue_leaf(ca_cert, ca_key, name, list(dns_names), addresses, days, client_auth)
        ca_pem = ca.cert.read_text()
        # Key, then certificate: a reload in between fails its key check and the running config stays.
        store.write(files.key.name, made.key_pem.decode())
        store.write(files.cert.name, made.cert_pem.decode())
        store.write(files.chain.name, made.cert_pem.decode() + ca_pem)
    return files


def cert_reissue_reason(
    ca: CaFiles,
    files: CertFiles,
    wanted: tuple[set[str], set[issue.IpAddress], bool],
    renew_within_days: int = RENEW_WITHIN_DAYS,
) -> str | None:
    """Why the certificate must be issued again (missing, expiring, other names or usages, other CA), or None."""
    try:
        cert = issue.load_cert(files.cert.read_bytes())
        key = issue.load_key(files.key.read_bytes())
        chain = files.chain.read_bytes()
        ca_cert = issue.load_cert(ca.cert.read_bytes())
    except FileNotFoundError:
        return "missing"
    except ValueError as error:
        return f"unreadable: {error}"
    dns_names, ips, client_auth = wanted
    if not issue.key_matches(cert, key):
        return "key does not match the certificate"
    if not issue.signed_by(cert, ca_cert):
        return "signed by another CA"
    if issue.names_of(cert) != ({name.lower() for name in dns_names}, ips):
        return "names changed"
    if issue.has_client_auth(cert) != client_auth:
        return "usages changed"
    if not chain.startswith(files.cert.read_bytes()) or ca.cert.read_bytes() not in chain:
        return "chain out of date"
    return _expiry_reason(cert, renew_within_days)


def describe(path: Path) -> dict[str, object]:
    """What an operator checks of a certificate file: subject, names, serial, fingerprint, expiry."""
    cert = issue.load_cert(path.read_bytes())
    dns_names, ips = issue.names_of(cert)
    return {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "dns_names": sorted(dns_names),
        "ips": sorted(str(ip) for ip in ips),
        "serial": format(cert.serial_number, "x"),
        "sha256": issue.fingerprint(cert),
        "not_after": issue.not_after(cert).isoformat(),
    }


def _expiry_reason(cert, renew_within_days: int) -> str | None:
    left = issue.not_after(cert) - issue.now()
    if left <= datetime.timedelta(days=renew_within_days):
        return f"expires in {max(left.days, 0)} days"
    return None


def _store(directory: Path) -> SecretStore:
    store = SecretStore(Path(directory))
    store.ensure_dir()
    return store
