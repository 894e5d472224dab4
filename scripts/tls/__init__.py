"""Certificates for the cluster's TLS endpoints: a local CA and certificates it signs, with `cryptography`.

For a machine or a compose project that has no certificates from its operator: the first
start creates a local certificate authority and a certificate for each endpoint, and every
later start keeps them until they need re-issuing. Clients trust the CA's certificate file.

    from scripts.tls import ensure_ca, ensure_server_cert

    ca = ensure_ca(Path("run/tls"))                            # CaFiles(cert, key)
    gateway = ensure_server_cert(ca, Path("run/tls"), "gateway",
                                 dns_names=["localhost"], ips=["127.0.0.1", "::1"])
    gateway.cert, gateway.key                                  # what nginx presents (ssl_certificate, _key)
    consul = ensure_server_cert(ca, Path("run/tls"), "consul",
                                dns_names=["server.dc1.consul", "localhost"], ips=["127.0.0.1"],
                                client_auth=True)              # serverAuth + clientAuth usages

Files (all 0600, in a 0700 directory): ca.pem and ca-key.pem; NAME.pem (the certificate),
NAME-key.pem and NAME-chain.pem (certificate then CA, for tools that want the whole path in one
file; a TLS server presents NAME.pem alone, since clients hold the CA already). Keys are ECDSA P-256. A certificate is
issued again when a file is missing, when it expires within renew_within_days, when its DNS
names, IP addresses or usages differ from the ones asked for, or when the CA that signed it is
not the current one (a CA expiring within its own renew_within_days is replaced first).
force=True issues a new one regardless: that is rotation. Every file is replaced atomically;
nginx and Consul read the new files on their next reload.

    issue     keys and certificates built with cryptography's x509 API (no files)
    store     ensure_ca / ensure_server_cert: which files exist, whether to issue again
    nginx     the gateway's TLS listen snippet, pointing at a certificate and key
    cli       `python -m scripts.tls ensure|rotate|show|nginx-snippet` (entrypoints, operators)

See docs/SECURITY.md for the gateway's use of it.
"""

from scripts.tls.store import CaFiles, CertFiles, ensure_ca, ensure_server_cert, split_names

__all__ = ["CaFiles", "CertFiles", "ensure_ca", "ensure_server_cert", "split_names"]
