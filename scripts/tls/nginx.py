"""The gateway's TLS listen: an nginx snippet included in its server block, naming the certificate and key.

The protocol, cipher and session policy lives in nginx-template/nginx.conf.tmpl; this snippet only
turns the TLS port on, so removing it turns TLS off and a new certificate needs nothing but a reload.
"""

from __future__ import annotations

from pathlib import Path


def listen_snippet(listen: str, cert: Path, key: Path) -> str:
    """`listen ADDR ssl http2` (nginx 1.22's form) with the certificate chain and key to present."""
    for value in (listen, str(cert), str(key)):
        if any(char in value for char in ";{}\"'\n") or not value.strip():
            raise ValueError(f"not usable in nginx.conf: {value!r}")
    return (
        "# Written by scripts/tls (python -m scripts.tls nginx-snippet); included in the gateway's server block.\n"
        f"listen {listen} ssl http2;\n"
        f"ssl_certificate {cert};\n"
        f"ssl_certificate_key {key};\n"
    )


def write_listen_snippet(path: Path, listen: str, cert: Path, key: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(listen_snippet(listen, cert, key))
    tmp.replace(path)
    return path
